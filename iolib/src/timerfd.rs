//! timerfd: a timer on the monotonic clock whose expiry makes a descriptor readable, so
//! an epoll wait can end at a time without a timeout of its own.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{cvt, Result};

/// A non-blocking, close-on-exec timerfd on `CLOCK_MONOTONIC` (the clock of
/// [`crate::clock::monotonic_ns`]), disarmed when made.
///
/// Arming it resets its count of expirations, so it is readable only from its latest
/// expiry on: registered edge-triggered, each expiry raises one event and it never
/// needs to be read.
#[derive(Debug)]
pub struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// Creates a disarmed timer.
    pub fn new() -> Result<Self> {
        // SAFETY: plain syscall with valid flags; the result is checked.
        let fd = cvt("timerfd_create", unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` is a fresh descriptor we exclusively own.
        Ok(TimerFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Arms the timer to expire once, when `CLOCK_MONOTONIC` reaches `at_ns` (at once
    /// if it has), replacing any earlier setting.
    pub fn arm_at(&self, at_ns: u64) -> Result<()> {
        // A zero `it_value` would disarm the timer: a time that far in the past is due
        // at once, as 1 ns is.
        let at_ns = at_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (at_ns / 1_000_000_000).min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec for the duration of the call; a null
        // old-value pointer is allowed.
        cvt("timerfd_settime", unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::clock::monotonic_ns;
    use crate::epoll::{Epoll, Events, Interest};

    #[test]
    fn an_armed_timer_raises_one_edge_at_its_time_and_rearming_resets_it() {
        let ep = Epoll::new().unwrap();
        let t = TimerFd::new().unwrap();
        ep.add(t.as_raw_fd(), Interest::READABLE.edge(), 9).unwrap();
        let mut events = Events::with_capacity(4);
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);

        let start = Instant::now();
        t.arm_at(monotonic_ns() + 5_000_000).unwrap();
        assert_eq!(ep.wait(&mut events, None).unwrap(), 1);
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert_eq!(events.iter().next().unwrap().0, 9);
        // Edge-triggered and never read: no second event for the same expiry.
        assert_eq!(ep.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);

        // Armed again (here: a time already past, due at once) it raises a new edge.
        t.arm_at(0).unwrap();
        assert_eq!(
            ep.wait(&mut events, Some(Duration::from_secs(1))).unwrap(),
            1
        );

        // Re-armed for later before it expired: only the later time counts.
        t.arm_at(monotonic_ns() + 2_000_000).unwrap();
        let start = Instant::now();
        t.arm_at(monotonic_ns() + 20_000_000).unwrap();
        assert_eq!(ep.wait(&mut events, None).unwrap(), 1);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
