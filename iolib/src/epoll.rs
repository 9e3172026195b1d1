//! epoll: register file descriptors with a 64-bit token and wait for readiness.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{cvt, Error, Result};

/// Which readiness a registration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    bits: u32,
}

impl Interest {
    /// Readable (and peer hang-up).
    pub const READABLE: Interest = Interest {
        bits: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
    };
    /// Writable.
    pub const WRITABLE: Interest = Interest {
        bits: libc::EPOLLOUT as u32,
    };
    /// Readable and writable.
    pub const BOTH: Interest = Interest {
        bits: Self::READABLE.bits | Self::WRITABLE.bits,
    };

    /// The same interest, edge-triggered (`EPOLLET`).
    pub const fn edge(self) -> Interest {
        Interest {
            bits: self.bits | libc::EPOLLET as u32,
        }
    }

    /// The same interest, one-shot (`EPOLLONESHOT`).
    pub const fn oneshot(self) -> Interest {
        Interest {
            bits: self.bits | libc::EPOLLONESHOT as u32,
        }
    }

    /// Raw `EPOLL*` bits.
    pub const fn bits(self) -> u32 {
        self.bits
    }
}

/// Readiness reported for one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness(u32);

impl Readiness {
    /// Data can be read, or the peer hung up, or an error is pending (a read will not block).
    pub fn is_readable(self) -> bool {
        self.0 & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// A write will not block (or an error is pending).
    pub fn is_writable(self) -> bool {
        self.0 & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// The peer will send nothing more (it shut down its side or hung up) or an error
    /// is pending: from now on a read never blocks.
    pub fn is_read_closed(self) -> bool {
        self.0 & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// Hang-up or error condition.
    pub fn is_hup_or_error(self) -> bool {
        self.0 & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }

    /// Raw `EPOLL*` bits.
    pub fn bits(self) -> u32 {
        self.0
    }
}

/// A buffer of readiness events filled by [`Epoll::wait`].
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    /// An event buffer that holds at most `capacity` events per wait.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
            len: 0,
        }
    }

    /// The events of the last wait: `(token, readiness)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Readiness)> + '_ {
        self.buf[..self.len]
            .iter()
            .map(|e| (e.u64, Readiness(e.events)))
    }

    /// Number of events from the last wait.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last wait returned no events.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// Creates an epoll instance (close-on-exec).
    pub fn new() -> Result<Self> {
        // SAFETY: plain syscall with a valid flag; the returned fd is checked.
        let fd = cvt("epoll_create1", unsafe {
            libc::epoll_create1(libc::EPOLL_CLOEXEC)
        })?;
        // SAFETY: `fd` is a fresh descriptor we exclusively own.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(
        &self,
        op: libc::c_int,
        name: &'static str,
        fd: RawFd,
        interest: Interest,
        token: u64,
    ) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: interest.bits,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel
        // validates the descriptors.
        cvt(name, unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev)
        })?;
        Ok(())
    }

    /// Registers `fd` with `interest`; events carry `token`.
    pub fn add(&self, fd: RawFd, interest: Interest, token: u64) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, "epoll_ctl(ADD)", fd, interest, token)
    }

    /// Changes the interest or token of a registered `fd`.
    pub fn modify(&self, fd: RawFd, interest: Interest, token: u64) -> Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, "epoll_ctl(MOD)", fd, interest, token)
    }

    /// Removes `fd` from the interest list.
    pub fn delete(&self, fd: RawFd) -> Result<()> {
        self.ctl(
            libc::EPOLL_CTL_DEL,
            "epoll_ctl(DEL)",
            fd,
            Interest { bits: 0 },
            0,
        )
    }

    /// Waits for events, at most `timeout` (`None` blocks indefinitely; zero polls).
    /// Returns the number of events; an interrupted wait (`EINTR`) returns 0.
    ///
    /// The timeout has nanosecond resolution (`epoll_pwait2`, Linux 5.11), so a wait of
    /// 0.3 ms ends after 0.3 ms plus the thread's timer slack, not after a whole
    /// millisecond. On older kernels it is rounded up to whole milliseconds
    /// (`epoll_wait`).
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> Result<usize> {
        let n = match timeout {
            // A poll (zero) needs no resolution: plain `epoll_wait` does it.
            Some(d) if !d.is_zero() && PWAIT2.load(Ordering::Relaxed) => {
                let ts = libc::timespec {
                    tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                };
                // SAFETY: the buffer pointer and length describe `events.buf`, which
                // outlives the call, and the kernel writes at most `len` entries; `ts`
                // is a valid timespec for the duration of the call; a null signal mask
                // leaves the mask as it is.
                let n = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.fd.as_raw_fd(),
                        events.buf.as_mut_ptr(),
                        events.buf.len() as libc::c_int,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                };
                if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                    PWAIT2.store(false, Ordering::Relaxed);
                    return self.wait(events, timeout);
                }
                n as libc::c_int
            }
            _ => {
                let ms: libc::c_int = match timeout {
                    None => -1,
                    // Round up so that a 0.3 ms timeout does not spin.
                    Some(d) => {
                        d.as_nanos()
                            .div_ceil(1_000_000)
                            .min(libc::c_int::MAX as u128) as libc::c_int
                    }
                };
                // SAFETY: the buffer pointer and length describe `events.buf`, which
                // outlives the call; the kernel writes at most `len` entries.
                unsafe {
                    libc::epoll_wait(
                        self.fd.as_raw_fd(),
                        events.buf.as_mut_ptr(),
                        events.buf.len() as libc::c_int,
                        ms,
                    )
                }
            }
        };
        if n < 0 {
            let err = Error::last("epoll_wait");
            if err.errno() == Some(libc::EINTR) {
                events.len = 0;
                return Ok(0);
            }
            return Err(err);
        }
        events.len = n as usize;
        Ok(events.len)
    }
}

/// Whether the kernel has `epoll_pwait2` (cleared at the first `ENOSYS`).
static PWAIT2: AtomicBool = AtomicBool::new(true);

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventfd::EventFd;

    #[test]
    fn eventfd_readiness_is_reported_with_token() {
        let ep = Epoll::new().unwrap();
        let ev = EventFd::new().unwrap();
        ep.add(ev.as_raw_fd(), Interest::READABLE, 42).unwrap();
        let mut events = Events::with_capacity(8);
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        ev.notify().unwrap();
        assert_eq!(
            ep.wait(&mut events, Some(Duration::from_secs(1))).unwrap(),
            1
        );
        let (tok, r) = events.iter().next().unwrap();
        assert_eq!(tok, 42);
        assert!(r.is_readable());
        ev.drain().unwrap();
        ep.modify(ev.as_raw_fd(), Interest::WRITABLE, 7).unwrap();
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
        assert_eq!(events.iter().next().unwrap().0, 7);
        ep.delete(ev.as_raw_fd()).unwrap();
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        let err = ep.delete(ev.as_raw_fd()).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT));
        assert!(err.to_string().starts_with("epoll_ctl(DEL)"));
    }

    #[test]
    fn a_wait_shorter_than_a_millisecond_is_not_rounded_up_to_one() {
        let ep = Epoll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let timeout = Duration::from_micros(200);
        let took: Vec<Duration> = (0..10)
            .map(|_| {
                let start = std::time::Instant::now();
                assert_eq!(ep.wait(&mut events, Some(timeout)).unwrap(), 0);
                start.elapsed()
            })
            .collect();
        // Never early; and, though a loaded machine may wake any one of them late, not
        // every one a whole millisecond after it began.
        assert!(took.iter().all(|&t| t >= timeout), "{took:?}");
        assert!(
            took.iter().any(|&t| t < Duration::from_micros(900)),
            "{took:?}"
        );
    }
}
