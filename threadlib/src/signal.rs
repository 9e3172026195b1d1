//! Waiting for Unix signals as a thread (via `signalfd` and the epoll loop).
//!
//! Call [`block`] on the main OS thread before building the runtime, so that every
//! thread the process creates inherits the blocked mask and the signals are delivered
//! only through the signalfd. Then [`Signals::wait`] suspends a thread until one
//! arrives.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::readiness::{forget, wait};
use crate::syscall::Readiness;

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and update a plain C struct we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` for the calling OS thread (and threads it creates later).
pub fn block(signals: &[i32]) -> Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(Error::Io(std::io::Error::from_raw_os_error(r)));
    }
    Ok(())
}

/// A set of signals a thread can wait for.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// A non-blocking signalfd for `signals` (which must be blocked, see [`block`]).
    pub fn new(signals: &[i32]) -> Result<Signals> {
        let set = sigset(signals);
        // SAFETY: `set` is initialised; -1 asks for a new fd; the result is checked.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we exclusively own.
        Ok(Signals {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Waits for the next signal of the set; returns its number.
    pub async fn wait(&self) -> Result<i32> {
        loop {
            // SAFETY: signalfd_siginfo is plain data; reading into it is sound.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: the buffer is `size` bytes of writable memory.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n == size as isize {
                return Ok(info.ssi_signo as i32);
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::WouldBlock => {
                    wait(self.fd.as_raw_fd(), Readiness::Read).await?
                }
                std::io::ErrorKind::Interrupted => {}
                _ => return Err(Error::Io(e)),
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        if crate::core::Core::is_entered() {
            forget(self.fd.as_raw_fd());
        }
    }
}
