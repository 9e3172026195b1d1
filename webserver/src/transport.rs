//! The byte-stream interface the connection logic runs over.
//!
//! [`Transport`] is implemented by the network backends (kernel sockets via threadlib's
//! epoll loop, or the user-space TCP stack) and by in-memory mocks in the tests. It is
//! deliberately tiny: read with a deadline, write with a stall timeout, and tell the
//! time on the clock the deadlines are measured against. The connection logic counts
//! the bytes that move ([`Counted`]), so every transport's totals are exact.

use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

pub use threadlib::deadline::TransportError;

use crate::files::SendError;

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

    /// Writes some of `buf` (at least one byte when `buf` is not empty), returning how
    /// many bytes the peer took; [`TransportError::TimedOut`] if it took none for
    /// `stall`.
    async fn write(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError>;

    /// Writes some of `buf` as [`write`](Self::write) does, saying that more bytes
    /// follow at once (a response head before its body): a transport that sends
    /// segments may hold a short tail back to send it with the next write instead of
    /// alone (kernel sockets: `MSG_MORE`). The default is `write`.
    async fn write_more(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError> {
        self.write(buf, stall).await
    }

    /// Writes all of `buf`, or fails; [`TransportError::TimedOut`] if the peer took no
    /// byte for `stall` (each byte taken restarts it, as nginx's `send_timeout` does: a
    /// slow reader that keeps reading is served, a stalled one is not).
    async fn write_all(&mut self, buf: &[u8], stall: Duration) -> Result<(), TransportError> {
        write_all_by(self, buf, stall, false).await
    }

    /// Writes all of `buf` as [`write_all`](Self::write_all) does, but through
    /// [`write_more`](Self::write_more): for bytes that more will follow at once.
    async fn write_all_more(&mut self, buf: &[u8], stall: Duration) -> Result<(), TransportError> {
        write_all_by(self, buf, stall, true).await
    }

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
    /// file to a kernel socket), failing if the peer takes no byte for `stall`; adds
    /// every byte the peer took to `sent`, also when it fails.
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
        _stall: Duration,
        _sent: &mut u64,
    ) -> Option<Result<(), SendError>> {
        None
    }
}

/// The loop of [`Transport::write_all`] and [`Transport::write_all_more`].
async fn write_all_by<T: Transport + ?Sized>(
    t: &mut T,
    mut buf: &[u8],
    stall: Duration,
    more: bool,
) -> Result<(), TransportError> {
    while !buf.is_empty() {
        let n = if more {
            t.write_more(buf, stall).await?
        } else {
            t.write(buf, stall).await?
        };
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero).into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// A transport whose every byte in and out is counted in `counters`: what
/// [`serve_connection`](crate::serve_connection) runs over, whatever the transport.
pub(crate) struct Counted<'a, T> {
    pub(crate) inner: &'a mut T,
    pub(crate) counters: &'a crate::counters::Counters,
    /// Bytes written on this connection so far (taken by the transport).
    pub(crate) written: u64,
}

impl<T> Counted<'_, T> {
    fn wrote(&mut self, n: u64) {
        self.written += n;
        self.counters.wrote(n);
    }
}

impl<T: Transport> Transport for Counted<'_, T> {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        let n = self.inner.read(buf, deadline).await?;
        self.counters.read(n);
        Ok(n)
    }

    async fn write(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError> {
        let n = self.inner.write(buf, stall).await?;
        self.wrote(n as u64);
        Ok(n)
    }

    async fn write_more(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError> {
        let n = self.inner.write_more(buf, stall).await?;
        self.wrote(n as u64);
        Ok(n)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }

    async fn send_file(
        &mut self,
        file: &dyn Any,
        offset: u64,
        len: u64,
        stall: Duration,
        sent: &mut u64,
    ) -> Option<Result<(), SendError>> {
        let before = *sent;
        let r = self.inner.send_file(file, offset, len, stall, sent).await;
        self.wrote(*sent - before);
        r
    }
}
