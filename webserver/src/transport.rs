//! The byte-stream interface the connection logic runs over.
//!
//! [`Transport`] is implemented by the network backends (kernel sockets via threadlib's
//! epoll loop, or the user-space TCP stack) and by in-memory mocks in the tests. It is
//! deliberately tiny: read with a deadline, write everything with a deadline, and tell
//! the time on the clock the deadlines are measured against.

use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::files::SendError;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The deadline passed before the operation could complete.
    #[error("deadline passed")]
    TimedOut,
    /// The underlying stream failed (reset, broken pipe, cancelled thread, ...).
    #[error("transport I/O: {0}")]
    Io(#[from] io::Error),
}

/// A bidirectional byte stream with deadlines, such as one accepted TCP connection.
///
/// Deadlines are instants on the clock returned by [`Transport::now`]; a mock transport
/// may run a virtual clock so that timeout tests take no wall time.
// The futures are driven by threadlib's single-core schedulers and need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Reads at least one byte into `buf`, returning how many were read; `Ok(0)` means
    /// the peer closed its sending side (end of stream).
    ///
    /// Fails with [`TransportError::TimedOut`] when no byte arrived before `deadline`.
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError>;

    /// Writes all of `buf`, or fails; [`TransportError::TimedOut`] if the peer took no
    /// byte for `stall` (each byte taken restarts it, as nginx's `send_timeout` does: a
    /// slow reader that keeps reading is served, a stalled one is not).
    async fn write_all(&mut self, buf: &[u8], stall: Duration) -> Result<(), TransportError>;

    /// The current time on the clock that deadlines refer to.
    fn now(&self) -> Instant;

    /// The kernel socket under this transport, if there is one.
    ///
    /// A [`FileSource`](crate::FileSource) may use it in
    /// [`FileSource::send_to`](crate::FileSource::send_to) for a zero-copy path
    /// (sendfile, splice). Transports that are not kernel sockets keep the default.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// Sends `len` bytes of an open file starting at `offset`, if this transport knows
    /// a faster way than copying them through memory (e.g. `sendfile(2)` from a kernel
    /// file to a kernel socket); each write must finish within `write_timeout`.
    ///
    /// `file` is a [`FileSource`](crate::FileSource)'s file handle, type-erased so that
    /// the two sides stay independent: a transport recognises the file types it can
    /// send (by downcasting) and returns `None` for the rest, and the caller then copies
    /// through a buffer. The default returns `None`.
    async fn send_file(
        &mut self,
        _file: &dyn Any,
        _offset: u64,
        _len: u64,
        _write_timeout: Duration,
    ) -> Option<Result<(), SendError>> {
        None
    }
}
