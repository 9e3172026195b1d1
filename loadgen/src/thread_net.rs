//! loadgen's [`Network`] and [`Transport`] over any threadlib network
//! ([`threadlib::net::Network`]): kernel sockets, the user-space TCP stack, or the
//! simulation's stack.
//!
//! Deadlines become threadlib's [`until`] around each call (a connection's calls share
//! one [`Deadline`]); a call that times out is cancelled at its suspension point (the
//! readiness wait), so a timed-out read has consumed nothing and the stream stays
//! usable.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use crate::transport::{Network, Transport, TransportError};
use threadlib::deadline::{until, Deadline};
use threadlib::net::{Network as ThreadNetwork, Stream};

/// A threadlib network seen through loadgen's [`Network`] trait.
#[derive(Debug, Clone)]
pub struct ThreadNet<N> {
    net: N,
}

impl<N> ThreadNet<N> {
    /// Wraps `net`.
    pub fn new(net: N) -> Self {
        ThreadNet { net }
    }
}

/// One connection of a [`ThreadNet`].
#[derive(Debug)]
pub struct ThreadConn<S> {
    stream: S,
    deadline: Deadline,
}

impl<N: ThreadNetwork> Network for ThreadNet<N> {
    type Conn = ThreadConn<N::Stream>;

    async fn connect(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Self::Conn, TransportError> {
        let stream = until(deadline, self.net.connect(addr)).await?;
        stream.set_nodelay(true)?;
        Ok(ThreadConn {
            stream,
            deadline: Deadline::new(),
        })
    }

    fn now(&self) -> Instant {
        threadlib::time::now()
    }

    /// The connection's thread was cancelled: its calls fail with `Cancelled` from
    /// now on, and it should stop.
    fn stopped(&self) -> bool {
        threadlib::is_cancelled()
    }

    async fn sleep_until(&self, deadline: Instant) {
        // Only cancellation ends a sleep early, and a cancelled connection stops at its
        // next call anyway.
        let _ = threadlib::sleep_until(deadline).await;
    }
}

impl<S: Stream> Transport for ThreadConn<S> {
    // The deadline's future itself, not an `async fn` around it: one layer fewer to
    // poll on every wake-up.
    fn read<'a, 'b>(
        &'a mut self,
        buf: &'b mut [u8],
        deadline: Instant,
    ) -> impl Future<Output = Result<usize, TransportError>> + use<'a, 'b, S> {
        self.deadline.until(deadline, self.stream.read(buf))
    }

    fn discard(
        &mut self,
        max: usize,
        deadline: Instant,
    ) -> impl Future<Output = Result<usize, TransportError>> + use<'_, S> {
        self.deadline.until(deadline, self.stream.discard(max))
    }

    /// Writes what the socket takes at once directly, and only the rest under the
    /// deadline: a request the socket takes whole (the usual case) costs one system
    /// call and no timer work.
    async fn write_all(&mut self, mut buf: &[u8], deadline: Instant) -> Result<(), TransportError> {
        while let Some(taken) = self.stream.try_write(buf) {
            match taken? {
                n if n == buf.len() => return Ok(()),
                0 => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                n => buf = &buf[n..],
            }
        }
        self.deadline
            .until(deadline, self.stream.write_all(buf))
            .await
    }
}
