//! What a bench server does with its connections, shared by every server under test.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

/// Port of the bulk sink on every server under test.
pub const SINK_PORT: u16 = 5001;
/// Port of the echo service on every server under test.
pub const ECHO_PORT: u16 = 5002;

/// The application a bench server runs on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Read to end of stream, answer with the byte count (8 bytes, big-endian), close.
    Sink,
    /// Echo every byte back; close after the peer does.
    Echo,
}

/// Waits until `fd` is readable or `timeout` passes (rounded up to whole milliseconds,
/// so a sub-millisecond deadline does not turn into a busy loop of zero timeouts).
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_micros().div_ceil(1000);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
