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

use std::os::fd::RawFd;

use iolib::epoll::{Epoll, Interest, Readiness as EpollReadiness};

use crate::core::{with_core, ThreadId};
use crate::error::{Error, Result};
use crate::syscall::{call, Readiness, Syscall};

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
    waiters: usize,
}

impl FdLoop {
    pub(crate) fn new() -> Self {
        FdLoop {
            entries: Vec::new(),
            waiters: 0,
        }
    }

    pub(crate) fn waiters(&self) -> usize {
        self.waiters
    }

    /// Registers `tid` as waiting for `r` on `fd`. Returns `true` if readiness already
    /// arrived since the last wait (the caller completes the wait at once; at worst
    /// the thread retries its operation and waits again).
    pub(crate) fn wait(
        &mut self,
        poller: &Epoll,
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
            poller.add(fd, Interest::BOTH.edge(), fd as u64)?;
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
        if slot.is_none() {
            self.waiters += 1;
        }
        *slot = Some(tid);
        Ok(false)
    }

    /// Readiness arrived for `fd`: the threads to wake.
    pub(crate) fn on_event(&mut self, fd: RawFd, r: EpollReadiness) -> [Option<ThreadId>; 2] {
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
        self.waiters -= rd.is_some() as usize + wr.is_some() as usize;
        [rd, wr]
    }

    pub(crate) fn remove_waiter(&mut self, fd: RawFd, tid: ThreadId) {
        if let Some(e) = self.entries.get_mut(fd as usize) {
            if e.reader == Some(tid) {
                e.reader = None;
                self.waiters -= 1;
            }
            if e.writer == Some(tid) {
                e.writer = None;
                self.waiters -= 1;
            }
        }
    }

    /// Deregisters `fd`; returns the threads that were waiting on it.
    pub(crate) fn forget(&mut self, poller: &Epoll, fd: RawFd) -> [Option<ThreadId>; 2] {
        let Some(e) = self.entries.get_mut(fd as usize) else {
            return [None, None];
        };
        if e.registered {
            let _ = poller.delete(fd);
        }
        let out = [e.reader.take(), e.writer.take()];
        self.waiters -= out.iter().flatten().count();
        *e = Entry::default();
        out
    }
}

/// Suspends the calling thread until `fd` is ready for `r` (or it is cancelled).
/// Call it after an operation on the non-blocking `fd` returned `EAGAIN`.
pub async fn wait(fd: RawFd, r: Readiness) -> Result<()> {
    crate::thread::completion_value(call(Syscall::WaitFd(fd, r)).await?).map(|_| ())
}

/// Drops the epoll registration of `fd` before it is closed; threads still waiting on
/// it resume with `EBADF`.
pub fn forget(fd: RawFd) {
    with_core(|c| c.forget_fd(fd));
}
