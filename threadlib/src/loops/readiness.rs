//! The epoll loop: threads wait for a file descriptor to become readable or writable.
//!
//! Descriptors are registered edge-triggered for both directions on first use, so a
//! wait costs no system call after the first. A thread waits after it has seen
//! `EAGAIN`, or after a read that took everything the descriptor held (data arriving
//! later raises a new edge); either makes edge-triggering safe (a spurious wake-up just
//! retries). Once the peer has shut down its side (or an error is pending) a read
//! never blocks again, so a wait for reading returns at once from then on: the edge
//! that said so may have come before the read that emptied the descriptor. Close a
//! descriptor only after [`forget`] so the registration does not outlive it.
//!
//! It is an [`EventLoop`] like any other: a wait is a call (`Request::Word` of the
//! descriptor and direction) keyed by the descriptor; the
//! loop registers descriptors with the scheduler's own epoll instance
//! ([`LoopCx::register_fd`]) and hears of their readiness through
//! [`EventLoop::fd_event`], so a wake-up costs one `epoll_wait` for all loops.

use std::future::Future;
use std::os::fd::RawFd;

use iolib::epoll::{Interest, Readiness as EpollReadiness};

use crate::core::{with_core, Completion, ThreadId};
use crate::error::{Error, Result};
use crate::loops::{EventLoop, LoopCx, Request};
use crate::syscall::{Readiness, SimpleCall, SimpleKind};

#[derive(Default, Clone, Copy)]
struct Entry {
    registered: bool,
    /// An edge arrived while no thread waited for it (consumed by the next wait).
    read_ready: bool,
    write_ready: bool,
    /// The peer shut down its sending side or an error is pending: reads never block.
    read_closed: bool,
    reader: Option<ThreadId>,
    writer: Option<ThreadId>,
}

/// Per-core table of descriptors and the threads waiting on them.
pub(crate) struct FdLoop {
    entries: Vec<Entry>,
}

impl FdLoop {
    pub(crate) fn new() -> Self {
        FdLoop {
            entries: Vec::new(),
        }
    }

    /// The request word of a wait for `r` on `fd`.
    pub(crate) fn request(fd: RawFd, r: Readiness) -> u64 {
        ((fd as u32 as u64) << 1) | (r == Readiness::Write) as u64
    }

    /// Registers `tid` as waiting for `r` on `fd`. Returns `true` if readiness already
    /// arrived since the last wait (the caller completes the wait at once; at worst
    /// the thread retries its operation and waits again).
    fn wait(
        &mut self,
        cx: &mut LoopCx<'_>,
        fd: RawFd,
        r: Readiness,
        tid: ThreadId,
    ) -> Result<bool> {
        if fd < 0 {
            return Err(Error::Io(std::io::Error::from_raw_os_error(libc::EBADF)));
        }
        let i = fd as usize;
        if i >= self.entries.len() {
            self.entries.resize(i + 1, Entry::default());
        }
        let e = &mut self.entries[i];
        if !e.registered {
            cx.register_fd(fd, Interest::BOTH.edge())?;
            e.registered = true;
        }
        let never_blocks = r == Readiness::Read && e.read_closed;
        let (slot, ready) = match r {
            Readiness::Read => (&mut e.reader, &mut e.read_ready),
            Readiness::Write => (&mut e.writer, &mut e.write_ready),
        };
        if slot.is_some_and(|t| t != tid) {
            return Err(Error::FdBusy(fd));
        }
        if *ready {
            *ready = false;
            return Ok(true);
        }
        if never_blocks {
            return Ok(true);
        }
        *slot = Some(tid);
        Ok(false)
    }

    /// Readiness arrived for `fd`: the threads to wake.
    fn on_event(&mut self, fd: RawFd, r: EpollReadiness) -> [Option<ThreadId>; 2] {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            return [None, None];
        };
        let rd = if r.is_readable() {
            e.reader.take()
        } else {
            None
        };
        let wr = if r.is_writable() {
            e.writer.take()
        } else {
            None
        };
        // Edges nobody waited for are remembered for the next wait.
        e.read_ready |= r.is_readable() && rd.is_none();
        e.read_closed |= r.is_read_closed();
        e.write_ready |= r.is_writable() && wr.is_none();
        [rd, wr]
    }

    fn remove_waiter(&mut self, fd: RawFd, tid: ThreadId) {
        if let Some(e) = self.entries.get_mut(fd as usize) {
            if e.reader == Some(tid) {
                e.reader = None;
            }
            if e.writer == Some(tid) {
                e.writer = None;
            }
        }
    }

    /// Deregisters `fd`; threads waiting on it resume with `EBADF`.
    pub(crate) fn forget(&mut self, fd: RawFd, cx: &mut LoopCx<'_>) {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            return;
        };
        let registered = e.registered;
        let out = [e.reader.take(), e.writer.take()];
        *e = Entry::default();
        if registered {
            let _ = cx.deregister_fd(fd);
        }
        for tid in out.into_iter().flatten() {
            let ebadf = Completion::Value(-(libc::EBADF as i64));
            cx.finish(tid, Some(fd as u64), ebadf);
        }
    }
}

impl EventLoop for FdLoop {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        let Request::Word(w) = request else {
            return cx.fail_keyed(tid, None, Error::other("epoll: not a wait"));
        };
        let fd = (w >> 1) as u32 as RawFd;
        let r = if w & 1 == 0 {
            Readiness::Read
        } else {
            Readiness::Write
        };
        match self.wait(cx, fd, r, tid) {
            Ok(false) => cx.set_key(fd as u64),
            Ok(true) => cx.finish(tid, None, Completion::Value(0)),
            Err(e) => cx.fail_keyed(tid, None, e),
        }
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.remove_waiter(cx.key() as RawFd, tid);
        cx.cancelled(tid);
    }

    fn poll(&mut self, _cx: &mut LoopCx<'_>) {}

    fn fd_event(&mut self, fd: RawFd, readiness: EpollReadiness, cx: &mut LoopCx<'_>) {
        for tid in self.on_event(fd, readiness).into_iter().flatten() {
            cx.finish(tid, Some(fd as u64), Completion::Value(0));
        }
    }

    fn polled_every_pass(&self) -> bool {
        false
    }
}

/// Suspends the calling thread until `fd` is ready for `r` (or it is cancelled).
/// Call it after an operation on the non-blocking `fd` returned `EAGAIN`.
pub fn wait(fd: RawFd, r: Readiness) -> impl Future<Output = Result<()>> {
    SimpleCall::new(SimpleKind::WaitFd(r), fd as u64)
}

/// Drops the epoll registration of `fd` before it is closed; threads still waiting on
/// it resume with `EBADF`.
pub fn forget(fd: RawFd) {
    with_core(|c| c.forget_fd(fd));
}
