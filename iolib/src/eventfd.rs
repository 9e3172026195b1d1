//! eventfd: a counter another OS thread can bump to wake a loop blocked in epoll.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{cvt, Error, Result};

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates an eventfd with a zero counter.
    pub fn new() -> Result<Self> {
        // SAFETY: plain syscall with valid flags; the result is checked.
        let fd = cvt("eventfd", unsafe {
            libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
        })?;
        // SAFETY: `fd` is a fresh descriptor we exclusively own.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Adds one to the counter, making the fd readable. Safe to call from any thread.
    pub fn notify(&self) -> Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n < 0 {
            let e = Error::last("eventfd write");
            // A saturated counter is still readable: the wake-up is not lost.
            if e.is_would_block() {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Resets the counter to zero; returns the value it had.
    pub fn drain(&self) -> Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n < 0 {
            let e = Error::last("eventfd read");
            if e.is_would_block() {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(v)
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_drains() {
        let e = EventFd::new().unwrap();
        assert_eq!(e.drain().unwrap(), 0);
        e.notify().unwrap();
        e.notify().unwrap();
        assert_eq!(e.drain().unwrap(), 2);
        assert_eq!(e.drain().unwrap(), 0);
    }
}
