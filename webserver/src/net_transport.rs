//! [`Transport`] over any threadlib network [`Stream`]: deadlines and stall timeouts
//! become [`Deadline::until`] and [`Deadline::within`] of one [`Deadline`] per
//! connection (threadlib's [`until`](threadlib::deadline::until) and
//! [`within`](threadlib::deadline::within) with one timer entry for all of a
//! connection's operations), the clock is the core's clock, and files go out through
//! [`Stream::send_file`] (`sendfile(2)` on kernel sockets). Writes and file sends
//! report partial progress, so the connection logic counts exactly what moved, even
//! for a response cut short; the lingering close counts what it discards itself.

use std::any::Any;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use threadlib::deadline::Deadline;
use threadlib::fs::File;
use threadlib::net::Stream;
use threadlib::{time, with_timeout};

use crate::connection::ServerContext;
use crate::files::SendError;
use crate::transport::{Transport, TransportError};

/// How often an idle read looks at the shutdown flag: an idle keep-alive connection is
/// closed at most this long after a graceful shutdown began.
const SHUTDOWN_POLL: Duration = Duration::from_millis(250);

/// Lingering close: after the server decides to close, it stops sending and discards
/// what the client still sends for at most this long (and [`LINGER_BYTES`]), so that
/// unread request bytes do not make the kernel reset the connection and destroy the
/// response before the client read it.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// One accepted connection as seen by [`webserver::serve_connection`].
pub struct NetTransport<S> {
    stream: S,
    ctx: Rc<ServerContext>,
    /// Every read, write and file send of the connection runs under it.
    deadline: Deadline,
    /// No byte has arrived since the last response was written (or since the
    /// connection opened): a read now waits for a new request, and may be abandoned
    /// when a graceful shutdown begins.
    idle: bool,
}

impl<S: Stream> NetTransport<S> {
    /// Wraps an accepted stream served under `ctx`.
    pub fn new(stream: S, ctx: Rc<ServerContext>) -> Self {
        NetTransport {
            stream,
            ctx,
            deadline: Deadline::new(),
            idle: true,
        }
    }

    /// Closes the sending side, then discards the client's remaining bytes until it
    /// closes too, [`LINGER_TIME`] passes or [`LINGER_BYTES`] were read.
    pub async fn linger(&mut self) {
        if self.stream.shutdown(Shutdown::Write).await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let (stream, ctx) = (&mut self.stream, &self.ctx);
        let _ = with_timeout(LINGER_TIME, async move {
            let mut left = LINGER_BYTES;
            while left > 0 {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => {
                        ctx.counters.read(n);
                        left = left.saturating_sub(n);
                    }
                }
            }
            Ok(())
        })
        .await;
    }

    /// Reads before `deadline`; an idle connection's read ends early (as if the peer
    /// closed) once a graceful shutdown begins.
    async fn read_within(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, TransportError> {
        loop {
            let now = time::now();
            if now >= deadline {
                return Err(TransportError::TimedOut);
            }
            if !self.idle {
                return self.deadline.until(deadline, self.stream.read(buf)).await;
            }
            if self.ctx.is_shutting_down() {
                // Between requests while the server stops: end like a peer close.
                return Ok(0);
            }
            let slice_end = deadline.min(now + SHUTDOWN_POLL);
            match self.deadline.until(slice_end, self.stream.read(buf)).await {
                Ok(n) => {
                    self.idle = n == 0;
                    return Ok(n);
                }
                Err(TransportError::TimedOut) if slice_end < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<S: Stream> Transport for NetTransport<S> {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        self.read_within(buf, deadline).await
    }

    async fn write(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError> {
        let n = match self.stream.try_write(buf) {
            Some(taken) => taken?,
            None => self.deadline.within(stall, self.stream.write(buf)).await?,
        };
        self.idle = true;
        Ok(n)
    }

    async fn write_more(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError> {
        let n = self
            .deadline
            .within(stall, self.stream.write_more(buf))
            .await?;
        self.idle = true;
        Ok(n)
    }

    fn now(&self) -> Instant {
        time::now()
    }

    async fn send_file(
        &mut self,
        file: &dyn Any,
        offset: u64,
        len: u64,
        stall: Duration,
        sent: &mut u64,
    ) -> Option<Result<(), SendError>> {
        let file = file.downcast_ref::<File>()?;
        let mut done = 0;
        while done < len {
            let piece = self.deadline.within(
                stall,
                self.stream.send_file(file, offset + done, len - done),
            );
            match piece.await {
                Ok(0) => return Some(Err(SendError::ShortFile)),
                Ok(n) => {
                    done += n;
                    *sent += n;
                }
                Err(e) => return Some(Err(SendError::Write(e))),
            }
        }
        self.idle = true;
        Some(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Settings;
    use std::io::IoSlice;
    use std::net::SocketAddr;

    /// A peer that takes one byte per `pace` (forever blocked if `pace` is `None`).
    struct Trickle {
        pace: Option<Duration>,
        taken: usize,
    }

    impl Stream for Trickle {
        async fn read(&mut self, _buf: &mut [u8]) -> threadlib::Result<usize> {
            Ok(0)
        }
        async fn write(&mut self, buf: &[u8]) -> threadlib::Result<usize> {
            match self.pace {
                Some(pace) => threadlib::sleep(pace).await?,
                None => threadlib::park().await?,
            }
            self.taken += 1;
            Ok(buf.len().min(1))
        }
        async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> threadlib::Result<usize> {
            self.write(bufs.first().map_or(&[][..], |b| &b[..])).await
        }
        async fn shutdown(&mut self, _how: Shutdown) -> threadlib::Result<()> {
            Ok(())
        }
        fn local_addr(&self) -> threadlib::Result<SocketAddr> {
            Ok(([127, 0, 0, 1], 80).into())
        }
        fn peer_addr(&self) -> threadlib::Result<SocketAddr> {
            Ok(([127, 0, 0, 1], 9).into())
        }
        fn set_nodelay(&self, _on: bool) -> threadlib::Result<()> {
            Ok(())
        }
    }

    fn write_through(pace: Option<Duration>) -> (Result<(), TransportError>, Duration, u64) {
        threadlib::Runtime::builder()
            .mock_clock(true)
            .build()
            .unwrap()
            .block_on(async move {
                let ctx = Rc::new(ServerContext::new(Settings::default()));
                let mut t = NetTransport::new(Trickle { pace, taken: 0 }, ctx);
                let r = t.write_all(&[7u8; 50], Duration::from_secs(1)).await;
                (r, time::elapsed(), t.stream.taken as u64)
            })
            .unwrap()
    }

    #[test]
    fn a_slow_reader_that_keeps_reading_is_served_and_a_stalled_one_is_not() {
        // 50 bytes at one per 500 ms: 25 s in all, never 1 s without progress.
        let (r, took, taken) = write_through(Some(Duration::from_millis(500)));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(took, Duration::from_secs(25));
        assert_eq!(taken, 50);
        let (r, took, taken) = write_through(None);
        assert!(matches!(r, Err(TransportError::TimedOut)), "{r:?}");
        assert_eq!(took, Duration::from_secs(1));
        assert_eq!(taken, 0);
    }
}
