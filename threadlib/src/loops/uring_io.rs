//! The io_uring loop: threads submit operations; completions make them ready.
//!
//! Operations own their buffers (see [`iolib::uring`]). A cancelled thread's operation
//! is cancelled in the ring, and the thread resumes only when the kernel has posted the
//! operation's completion, so its buffer is never released while the kernel may still
//! write into it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};

use iolib::uring::{Completion as UringCompletion, Op, OpId, Ring};

use crate::core::{Completion, ThreadId};
use crate::error::{Error, Result};
use crate::syscall::{call, Syscall};

pub(crate) struct UringLoop {
    ring: Ring,
}

impl UringLoop {
    pub(crate) fn new(entries: u32) -> Result<Self> {
        Ok(UringLoop {
            ring: Ring::new(entries)?,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    pub(crate) fn inflight(&self) -> usize {
        self.ring.inflight()
    }

    pub(crate) fn push(&mut self, op: Op, tid: ThreadId) -> Result<OpId> {
        Ok(self.ring.push(op, tid.pack())?)
    }

    pub(crate) fn cancel(&mut self, id: OpId) -> Result<()> {
        Ok(self.ring.cancel(id)?)
    }

    pub(crate) fn submit(&mut self) -> Result<()> {
        self.ring.submit()?;
        Ok(())
    }

    pub(crate) fn reap(&mut self, out: &mut Vec<(ThreadId, UringCompletion)>) {
        self.ring
            .complete(|c| out.push((ThreadId::unpack(c.token), c)));
    }
}

/// Submits `op` to the current core's io_uring and returns its completion (with the
/// buffers it owned). A cancelled thread gets [`Error::Cancelled`] once the kernel has
/// confirmed the cancellation; if the operation finished first, its real completion.
pub async fn submit(op: Op) -> Result<UringCompletion> {
    match call(Syscall::Uring(Box::new(op))).await? {
        Completion::Boxed(b) => match (*b).downcast::<UringCompletion>() {
            Ok(c) => Ok(*c),
            Err(b) => match b.downcast::<Error>() {
                Ok(e) => Err(*e),
                Err(_) => Err(Error::other("io_uring loop returned an unexpected value")),
            },
        },
        _ => Err(Error::other("io_uring loop returned no completion")),
    }
}

fn check(c: &UringCompletion) -> Result<u32> {
    c.result().map_err(Error::from)
}

/// Reads up to `len` bytes of `fd` at `offset` (`None`: the current position).
pub async fn read(fd: RawFd, len: usize, offset: Option<u64>) -> Result<Vec<u8>> {
    read_into(fd, Vec::with_capacity(len), offset).await
}

/// Reads into the spare capacity of `buf` (appending), returning the buffer.
pub async fn read_into(fd: RawFd, buf: Vec<u8>, offset: Option<u64>) -> Result<Vec<u8>> {
    let c = submit(Op::Read { fd, buf, offset }).await?;
    check(&c)?;
    Ok(c.into_data().unwrap_or_default())
}

/// Writes `buf` at `offset`; returns the bytes written and the buffer.
pub async fn write(fd: RawFd, buf: Vec<u8>, offset: Option<u64>) -> Result<(usize, Vec<u8>)> {
    let c = submit(Op::Write { fd, buf, offset }).await?;
    let n = check(&c)? as usize;
    Ok((n, c.into_data().unwrap_or_default()))
}

/// `openat2(dirfd, path, flags, mode, resolve)`; returns the new descriptor.
pub async fn openat2(
    dirfd: RawFd,
    path: &str,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> Result<RawFd> {
    let path = CString::new(path)
        .map_err(|_| Error::Io(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    let c = submit(Op::OpenAt2 {
        dirfd,
        path,
        flags,
        mode,
        resolve,
    })
    .await?;
    Ok(check(&c)? as RawFd)
}

/// `statx(dirfd, path, flags, mask)`.
pub async fn statx(dirfd: RawFd, path: &str, flags: i32, mask: u32) -> Result<libc::statx> {
    let path = CString::new(path)
        .map_err(|_| Error::Io(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    let c = submit(Op::Statx {
        dirfd,
        path,
        flags,
        mask,
    })
    .await?;
    check(&c)?;
    c.statx()
        .copied()
        .ok_or_else(|| Error::other("statx returned no data"))
}

/// `close(fd)` through the ring.
pub async fn close(fd: RawFd) -> Result<()> {
    let c = submit(Op::Close { fd }).await?;
    check(&c).map(|_| ())
}

/// `splice` up to `len` bytes; returns the bytes moved (0 at end of input).
pub async fn splice(
    fd_in: RawFd,
    off_in: Option<u64>,
    fd_out: RawFd,
    off_out: Option<u64>,
    len: u32,
) -> Result<usize> {
    let c = submit(Op::Splice {
        fd_in,
        off_in,
        fd_out,
        off_out,
        len,
        flags: libc::SPLICE_F_MOVE,
    })
    .await?;
    Ok(check(&c)? as usize)
}
