//! Waiting for Unix signals as a thread (via `signalfd` and the epoll loop).
//!
//! Call [`block`] on the main OS thread before building the runtime, so that every
//! thread the process creates inherits the blocked mask and the signals are delivered
//! only through the signalfd. Then [`Signals::wait`] suspends a thread until one
//! arrives.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::Result;
use crate::readiness::{forget, wait};
use crate::syscall::Readiness;

pub use iolib::signal::name;

/// Blocks `signals` for the calling OS thread (and threads it creates later).
pub fn block(signals: &[i32]) -> Result<()> {
    Ok(iolib::signal::block(signals)?)
}

/// A set of signals a thread can wait for.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
}

impl Signals {
    /// A non-blocking signalfd for `signals` (which must be blocked, see [`block`]).
    pub fn new(signals: &[i32]) -> Result<Signals> {
        Ok(Signals {
            fd: iolib::signal::signalfd(signals)?,
        })
    }

    /// Waits for the next signal of the set; returns its number.
    pub async fn wait(&self) -> Result<i32> {
        loop {
            match iolib::signal::read_signal(self.fd.as_raw_fd()) {
                Ok(signo) => return Ok(signo),
                Err(e) if e.is_would_block() => wait(self.fd.as_raw_fd(), Readiness::Read).await?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
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
