//! A safe io_uring: operations own their buffers until the kernel is done with them.
//!
//! [`Ring::push`] takes an [`Op`] by value. Whatever memory the kernel may read or write
//! (data buffers, paths, `open_how`, `statx` results) moves into the ring's in-flight
//! table and comes back only in the [`Completion`] of that operation, after the kernel
//! has posted its completion entry. [`Ring::cancel`] asks the kernel to cancel an
//! operation; the buffers still come back only with the (cancelled or finished)
//! completion, so no buffer is ever freed while the kernel may write to it. Dropping a
//! ring with operations in flight cancels them, waits a bounded time for their
//! completions, and leaks (never frees) the buffers of any that did not complete.
//!
//! File descriptors passed in operations are borrowed by number: keeping them open
//! until the completion arrives is the caller's job (closing early is not memory-unsafe,
//! but the operation may then act on whatever file reuses the number).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};

use crate::error::{Error, Result};

/// `user_data` of the cancel requests themselves; their completions are ignored.
const CANCEL_TAG: u64 = u64::MAX;

/// Identifies an operation in flight on one [`Ring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(u64);

impl OpId {
    fn new(index: u32, gen: u32) -> Self {
        OpId(((gen as u64) << 32) | index as u64)
    }
    fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// Resolution restrictions for [`Op::OpenAt2`] (the `RESOLVE_*` flags of `openat2(2)`).
pub mod resolve {
    /// Reject any path component that escapes the directory (`..`, absolute paths,
    /// symlinks leading outside).
    pub const BENEATH: u64 = 0x08;
    /// Reject all symlinks.
    pub const NO_SYMLINKS: u64 = 0x04;
    /// Reject magic links (`/proc/self/fd/...`).
    pub const NO_MAGICLINKS: u64 = 0x02;
    /// Reject crossing mount points.
    pub const NO_XDEV: u64 = 0x01;
}

/// An io_uring operation and the memory it owns.
#[derive(Debug)]
pub enum Op {
    /// Does nothing; completes with 0.
    Nop,
    /// Reads into the spare capacity of `buf` (after `buf.len()`), at `offset`
    /// (`None`: the file position, for pipes and sockets). On completion `buf.len()`
    /// grows by the bytes read.
    Read {
        fd: RawFd,
        buf: Vec<u8>,
        offset: Option<u64>,
    },
    /// Writes `buf[..]` at `offset` (`None`: the file position).
    Write {
        fd: RawFd,
        buf: Vec<u8>,
        offset: Option<u64>,
    },
    /// `openat2(dirfd, path, {flags, mode, resolve})`; completes with the new fd.
    OpenAt2 {
        dirfd: RawFd,
        path: CString,
        flags: i32,
        mode: u32,
        resolve: u64,
    },
    /// `close(fd)`.
    Close { fd: RawFd },
    /// `statx(dirfd, path, flags, mask)`; the result is in [`Completion::statx`].
    Statx {
        dirfd: RawFd,
        path: CString,
        flags: i32,
        mask: u32,
    },
    /// `splice(fd_in, off_in, fd_out, off_out, len, flags)`; one side must be a pipe.
    Splice {
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len: u32,
        flags: u32,
    },
    /// `fsync(fd)`.
    Fsync { fd: RawFd },
}

/// Memory an operation held, returned with its completion.
#[derive(Debug)]
pub enum OpBuf {
    /// The operation held no memory.
    None,
    /// The data buffer of a read or write.
    Data(Vec<u8>),
    /// The path of an open.
    Open(Box<(CString, types::OpenHow)>),
    /// The path and result of a statx.
    Statx(Box<(CString, libc::statx)>),
}

/// A finished operation.
#[derive(Debug)]
pub struct Completion {
    /// The operation's id.
    pub id: OpId,
    /// The caller's token given to [`Ring::push`].
    pub token: u64,
    /// The raw result: non-negative on success, `-errno` on failure.
    pub res: i32,
    /// The memory the operation owned.
    pub buf: OpBuf,
}

impl Completion {
    /// The result as `Ok(value)` or the OS error (`ECANCELED` if it was cancelled).
    pub fn result(&self) -> Result<u32> {
        if self.res < 0 {
            Err(Error::from_errno("io_uring op", -self.res))
        } else {
            Ok(self.res as u32)
        }
    }

    /// Whether the kernel reports the operation as cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.res == -libc::ECANCELED
    }

    /// The data buffer of a read or write.
    pub fn into_data(self) -> Option<Vec<u8>> {
        match self.buf {
            OpBuf::Data(v) => Some(v),
            _ => None,
        }
    }

    /// The statx result, if this was a successful statx.
    pub fn statx(&self) -> Option<&libc::statx> {
        match &self.buf {
            OpBuf::Statx(b) if self.res >= 0 => Some(&b.1),
            _ => None,
        }
    }
}

struct Slot {
    gen: u32,
    is_read: bool,
    inflight: Option<(u64, OpBuf)>,
}

/// A safe io_uring instance.
pub struct Ring {
    ring: IoUring,
    slots: Vec<Slot>,
    free: Vec<u32>,
    inflight: usize,
    unsubmitted: usize,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("fd", &self.ring.as_raw_fd())
            .field("inflight", &self.inflight)
            .finish()
    }
}

fn off(o: Option<u64>) -> u64 {
    // u64::MAX (-1) means "use the current file position".
    o.unwrap_or(u64::MAX)
}

impl Ring {
    /// Creates a ring with `entries` submission slots (rounded up to a power of two).
    pub fn new(entries: u32) -> Result<Self> {
        let ring = IoUring::new(entries.max(2)).map_err(|e| Error::new("io_uring_setup", e))?;
        Ok(Ring {
            ring,
            slots: Vec::new(),
            free: Vec::new(),
            inflight: 0,
            unsubmitted: 0,
        })
    }

    /// Operations pushed and not yet completed.
    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// Queues `op`; `token` comes back in its completion. The op is submitted to the
    /// kernel by the next [`Ring::submit`] (or right away if the queue is full).
    pub fn push(&mut self, op: Op, token: u64) -> Result<OpId> {
        self.push_with(op, token, false)
    }

    /// [`Ring::push`], linked to the operation queued after it (`IOSQE_IO_LINK`): the
    /// kernel starts that one only once this one completed, so a chain of linked
    /// operations runs in order even when one of them has to wait or is handed to a
    /// kernel worker. If one fails, the rest of its chain completes with `ECANCELED`.
    /// A chain ends with the submission it is part of.
    pub fn push_linked(&mut self, op: Op, token: u64) -> Result<OpId> {
        self.push_with(op, token, true)
    }

    fn push_with(&mut self, op: Op, token: u64, linked: bool) -> Result<OpId> {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    is_read: false,
                    inflight: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        let id = OpId::new(index, slot.gen);
        slot.is_read = matches!(op, Op::Read { .. });
        let entry = build_entry(op, &mut slot.inflight, token);
        let mut entry = entry.user_data(id.0);
        if linked {
            entry = entry.flags(squeue::Flags::IO_LINK);
        }
        self.push_entry(&entry)?;
        self.inflight += 1;
        Ok(id)
    }

    fn push_entry(&mut self, entry: &squeue::Entry) -> Result<()> {
        loop {
            // SAFETY: every pointer in `entry` refers to memory owned by a slot of
            // `self.slots` (or is null/absent), which stays allocated and unmoved until
            // the matching completion is reaped in `complete`, or is leaked in Drop.
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                self.unsubmitted += 1;
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Asks the kernel to cancel `id`. Its completion still arrives (usually with
    /// `ECANCELED`, or its real result if it had already finished).
    pub fn cancel(&mut self, id: OpId) -> Result<()> {
        let live = self
            .slots
            .get(id.index())
            .is_some_and(|s| s.gen == id.gen() && s.inflight.is_some());
        if !live {
            return Ok(());
        }
        let entry = opcode::AsyncCancel::new(id.0).build().user_data(CANCEL_TAG);
        self.push_entry(&entry)?;
        self.submit()?;
        Ok(())
    }

    /// Submits queued operations to the kernel without waiting.
    pub fn submit(&mut self) -> Result<usize> {
        if self.unsubmitted == 0 {
            return Ok(0);
        }
        loop {
            match self.ring.submit() {
                Ok(n) => {
                    self.unsubmitted = self.unsubmitted.saturating_sub(n);
                    return Ok(n);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: the caller must reap before more fit.
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        || e.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(0)
                }
                Err(e) => return Err(Error::new("io_uring_enter", e)),
            }
        }
    }

    /// Submits queued operations and blocks until at least `want` completions exist.
    pub fn submit_and_wait(&mut self, want: usize) -> Result<()> {
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(n) => {
                    self.unsubmitted = self.unsubmitted.saturating_sub(n);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(Error::new("io_uring_enter", e)),
            }
        }
    }

    /// Reaps every available completion, handing each to `f`.
    pub fn complete(&mut self, mut f: impl FnMut(Completion)) -> usize {
        let mut n = 0;
        loop {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            let ud = cqe.user_data();
            if ud == CANCEL_TAG {
                continue;
            }
            let id = OpId(ud);
            let Some(slot) = self.slots.get_mut(id.index()) else {
                continue;
            };
            if slot.gen != id.gen() {
                continue;
            }
            let Some((token, mut buf)) = slot.inflight.take() else {
                continue;
            };
            let res = cqe.result();
            if slot.is_read && res > 0 {
                if let OpBuf::Data(v) = &mut buf {
                    let new_len = v.len() + res as usize;
                    debug_assert!(new_len <= v.capacity());
                    // SAFETY: the kernel initialised `res` bytes of the spare capacity
                    // starting at the old length (it never writes more than the length
                    // we passed, which was the spare capacity).
                    unsafe { v.set_len(new_len.min(v.capacity())) };
                }
            }
            slot.gen = slot.gen.wrapping_add(1);
            self.free.push(id.index() as u32);
            self.inflight -= 1;
            n += 1;
            f(Completion {
                id,
                token,
                res,
                buf,
            });
        }
        n
    }
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.inflight == 0 {
            return;
        }
        let ids: Vec<OpId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.inflight.is_some())
            .map(|(i, s)| OpId::new(i as u32, s.gen))
            .collect();
        for id in ids {
            let _ = self.cancel(id);
        }
        for _ in 0..100 {
            if self.inflight == 0 {
                return;
            }
            let _ = self.submit();
            self.complete(drop);
            if self.inflight > 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        // Operations that would not finish: the kernel may still write into their
        // memory, so leak it rather than free it.
        for slot in &mut self.slots {
            if let Some(b) = slot.inflight.take() {
                std::mem::forget(b);
            }
        }
    }
}

/// Moves the op's memory into `store` and builds the submission entry pointing at it.
///
/// The entry is built from addresses inside `store` after the move: the heap contents
/// of a `Vec`, `CString` or `Box` do not move when the owning value is moved.
fn build_entry(op: Op, store: &mut Option<(u64, OpBuf)>, token: u64) -> squeue::Entry {
    match op {
        Op::Nop => {
            *store = Some((token, OpBuf::None));
            opcode::Nop::new().build()
        }
        Op::Read { fd, buf, offset } => {
            let (_, OpBuf::Data(v)) = store.insert((token, OpBuf::Data(buf))) else {
                unreachable!()
            };
            let spare = (v.capacity() - v.len()).min(u32::MAX as usize) as u32;
            // SAFETY: `len <= capacity`, so the offset pointer stays within (or one past
            // the end of) the allocation.
            let ptr = unsafe { v.as_mut_ptr().add(v.len()) };
            opcode::Read::new(types::Fd(fd), ptr, spare)
                .offset(off(offset))
                .build()
        }
        Op::Write { fd, buf, offset } => {
            let (_, OpBuf::Data(v)) = store.insert((token, OpBuf::Data(buf))) else {
                unreachable!()
            };
            let len = v.len().min(u32::MAX as usize) as u32;
            opcode::Write::new(types::Fd(fd), v.as_ptr(), len)
                .offset(off(offset))
                .build()
        }
        Op::OpenAt2 {
            dirfd,
            path,
            flags,
            mode,
            resolve,
        } => {
            let how = types::OpenHow::new()
                .flags((flags | libc::O_CLOEXEC) as u64)
                .mode(mode as u64)
                .resolve(resolve);
            let (_, OpBuf::Open(o)) = store.insert((token, OpBuf::Open(Box::new((path, how)))))
            else {
                unreachable!()
            };
            opcode::OpenAt2::new(types::Fd(dirfd), o.0.as_ptr(), &o.1).build()
        }
        Op::Close { fd } => {
            *store = Some((token, OpBuf::None));
            opcode::Close::new(types::Fd(fd)).build()
        }
        Op::Statx {
            dirfd,
            path,
            flags,
            mask,
        } => {
            // SAFETY: statx is plain old data; all-zero is a valid value.
            let zero: libc::statx = unsafe { std::mem::zeroed() };
            let (_, OpBuf::Statx(s)) = store.insert((token, OpBuf::Statx(Box::new((path, zero)))))
            else {
                unreachable!()
            };
            let (p, st) = &mut **s;
            opcode::Statx::new(
                types::Fd(dirfd),
                p.as_ptr(),
                (st as *mut libc::statx).cast(),
            )
            .flags(flags)
            .mask(mask)
            .build()
        }
        Op::Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            flags,
        } => {
            *store = Some((token, OpBuf::None));
            let oi = off_in.map_or(-1, |o| o as i64);
            let oo = off_out.map_or(-1, |o| o as i64);
            opcode::Splice::new(types::Fd(fd_in), oi, types::Fd(fd_out), oo, len)
                .flags(flags)
                .build()
        }
        Op::Fsync { fd } => {
            *store = Some((token, OpBuf::None));
            opcode::Fsync::new(types::Fd(fd)).build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::fd::AsRawFd;

    fn wait_one(ring: &mut Ring) -> Completion {
        ring.submit_and_wait(1).unwrap();
        let mut out = None;
        while out.is_none() {
            ring.complete(|c| out = Some(c));
            if out.is_none() {
                ring.submit_and_wait(1).unwrap();
            }
        }
        out.unwrap()
    }

    #[test]
    fn read_write_open_statx_close() {
        let dir = std::env::temp_dir().join(format!("iolib-uring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::File::create(dir.join("f"))
            .unwrap()
            .write_all(&data)
            .unwrap();
        let d = std::fs::File::open(&dir).unwrap();
        let mut ring = Ring::new(8).unwrap();

        ring.push(
            Op::OpenAt2 {
                dirfd: d.as_raw_fd(),
                path: CString::new("f").unwrap(),
                flags: libc::O_RDONLY,
                mode: 0,
                resolve: resolve::BENEATH,
            },
            1,
        )
        .unwrap();
        let c = wait_one(&mut ring);
        assert_eq!(c.token, 1);
        let fd = c.result().unwrap() as RawFd;

        ring.push(
            Op::Statx {
                dirfd: d.as_raw_fd(),
                path: CString::new("f").unwrap(),
                flags: 0,
                mask: libc::STATX_SIZE,
            },
            2,
        )
        .unwrap();
        let c = wait_one(&mut ring);
        assert_eq!(c.statx().unwrap().stx_size, data.len() as u64);

        let mut got = Vec::new();
        while got.len() < data.len() {
            ring.push(
                Op::Read {
                    fd,
                    buf: Vec::with_capacity(8192),
                    offset: Some(got.len() as u64),
                },
                3,
            )
            .unwrap();
            let c = wait_one(&mut ring);
            assert!(c.res > 0);
            got.extend_from_slice(&c.into_data().unwrap());
        }
        assert_eq!(got, data);

        ring.push(
            Op::OpenAt2 {
                dirfd: d.as_raw_fd(),
                path: CString::new("../etc/passwd").unwrap(),
                flags: libc::O_RDONLY,
                mode: 0,
                resolve: resolve::BENEATH,
            },
            4,
        )
        .unwrap();
        assert_eq!(wait_one(&mut ring).res, -libc::EXDEV);

        ring.push(Op::Close { fd }, 5).unwrap();
        assert_eq!(wait_one(&mut ring).res, 0);
        assert_eq!(ring.inflight(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cancel_returns_buffer_with_ecanceled() {
        let (r, w) = std::io::pipe().unwrap();
        let mut ring = Ring::new(8).unwrap();
        let id = ring
            .push(
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: Vec::with_capacity(64),
                    offset: None,
                },
                9,
            )
            .unwrap();
        ring.submit().unwrap();
        ring.cancel(id).unwrap();
        let c = wait_one(&mut ring);
        assert_eq!(c.id, id);
        assert!(c.is_cancelled(), "res = {}", c.res);
        assert_eq!(c.into_data().unwrap().capacity(), 64);
        drop(w);
    }

    #[test]
    fn drop_with_inflight_ops_does_not_hang() {
        let (r, _w) = std::io::pipe().unwrap();
        let mut ring = Ring::new(4).unwrap();
        for _ in 0..3 {
            ring.push(
                Op::Read {
                    fd: r.as_raw_fd(),
                    buf: Vec::with_capacity(16),
                    offset: None,
                },
                0,
            )
            .unwrap();
        }
        ring.submit().unwrap();
        drop(ring);
    }
}
