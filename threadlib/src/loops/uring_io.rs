//! The io_uring loop: threads submit operations; completions make them ready.
//!
//! Operations own their buffers (see [`iolib::uring`]). A cancelled thread's operation
//! is cancelled in the ring, and the thread resumes only when the kernel has posted the
//! operation's completion, so its buffer is never released while the kernel may still
//! write into it.
//!
//! It is an [`EventLoop`] like any other: an operation is a call (`Request::Boxed` of
//! an [`Op`]) keyed by a number of the loop's own; operations pushed during a batch of
//! threads are submitted together after it ([`LoopCx::poll_soon`]); the ring's fd is
//! the loop's [wake fd](EventLoop::wake_fd); and at the end of shutdown its calls are
//! not withdrawn ([`EventLoop::cancel_at_teardown`]): the ring keeps the buffers of
//! operations still in flight.

use std::any::Any;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};

use iolib::uring::{Completion as UringCompletion, Op, OpId, Ring};

use crate::core::{Completion, ThreadId};
use crate::error::{Error, Result};
use crate::fs::c_string;
use crate::loops::{EventLoop, LoopCx, Request};
use crate::syscall::{call, Syscall};

/// An operation in flight: its thread, its id in the ring, and whether its thread was
/// cancelled (the ring was asked to cancel it).
struct InFlight {
    tid: ThreadId,
    op: OpId,
    cancelling: bool,
}

pub(crate) struct UringLoop {
    ring: Ring,
    /// Operations in flight by key (the token their completion carries).
    ops: BTreeMap<u64, InFlight>,
    next_key: u64,
    /// Completions reaped in one poll, reused.
    reaped: Vec<UringCompletion>,
}

impl UringLoop {
    pub(crate) fn new(entries: u32) -> Result<Self> {
        Ok(UringLoop {
            ring: Ring::new(entries)?,
            ops: BTreeMap::new(),
            next_key: 0,
            reaped: Vec::new(),
        })
    }
}

impl UringLoop {
    /// Submits the queued operations. A failure leaves them queued for the next poll.
    fn submit_queued(&mut self) {
        if let Err(e) = self.ring.submit() {
            crate::trace::event("io_uring", "submit failed", || e.to_string());
        }
    }
}

impl EventLoop for UringLoop {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        let Some(op) = request.downcast::<Op>() else {
            return cx.fail_keyed(tid, None, Error::other("io_uring: not an operation"));
        };
        let key = self.next_key;
        match self.ring.push(*op, key) {
            Ok(op) => {
                self.next_key += 1;
                self.ops.insert(
                    key,
                    InFlight {
                        tid,
                        op,
                        cancelling: false,
                    },
                );
                cx.set_key(key);
                // Submitted with the others pushed during this batch.
                cx.poll_soon();
            }
            Err(e) => cx.fail_keyed(tid, None, e.into()),
        }
    }

    /// Asks the ring to cancel the operation; the thread resumes only when the kernel
    /// posts its completion (cancelled, or finished first).
    fn cancel(&mut self, _tid: ThreadId, cx: &mut LoopCx<'_>) {
        if let Some(f) = self.ops.get_mut(&cx.key()) {
            if !f.cancelling {
                f.cancelling = true;
                let _ = self.ring.cancel(f.op);
                cx.poll_soon();
            }
        }
    }

    /// Submits the queued operations and completes the finished ones.
    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        self.submit_queued();
        let reaped = &mut self.reaped;
        self.ring.complete(|c| reaped.push(c));
        for c in reaped.drain(..) {
            let Some(f) = self.ops.remove(&c.token) else {
                continue;
            };
            let key = c.token;
            let done = if f.cancelling && c.is_cancelled() {
                Completion::Cancelled
            } else {
                let b: Box<dyn Any> = Box::new(c);
                Completion::Boxed(Box::new(b))
            };
            cx.finish(f.tid, Some(key), done);
        }
        // What a full completion queue held back goes now that reaping made room (a
        // no-op if nothing is queued).
        self.submit_queued();
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.ring.as_raw_fd())
    }

    fn cancel_at_teardown(&self) -> bool {
        false
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
    let path = c_string(path)?;
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
    let path = c_string(path)?;
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
