//! loadgen's [`Network`] and [`Transport`] over any threadlib network
//! ([`threadlib::net::Network`]): kernel sockets, the user-space TCP stack, or the
//! simulation's stack.
//!
//! Deadlines become [`threadlib::with_timeout`] around each call; a call that times
//! out is cancelled at its suspension point (the readiness wait), so a timed-out read
//! has consumed nothing and the stream stays usable.

use std::net::SocketAddr;
use std::time::Instant;

use crate::transport::{Network, Transport, TransportError};
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
}

/// Maps a threadlib error: a passed deadline is [`TransportError::TimedOut`], anything
/// else an I/O error.
fn transport_error(e: threadlib::Error) -> TransportError {
    match e {
        threadlib::Error::TimedOut => TransportError::TimedOut,
        other => TransportError::Io(other.into()),
    }
}

/// Runs `op` until `deadline` on the current core's clock.
async fn until<T>(
    deadline: Instant,
    op: impl std::future::Future<Output = threadlib::Result<T>>,
) -> Result<T, TransportError> {
    let left = deadline.saturating_duration_since(threadlib::time::now());
    threadlib::with_timeout(left, op)
        .await
        .map_err(transport_error)
}

impl<N: ThreadNetwork> Network for ThreadNet<N> {
    type Conn = ThreadConn<N::Stream>;

    async fn connect(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Self::Conn, TransportError> {
        let stream = until(deadline, self.net.connect(addr)).await?;
        stream.set_nodelay(true).map_err(transport_error)?;
        Ok(ThreadConn { stream })
    }

    fn now(&self) -> Instant {
        threadlib::time::now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        // Only cancellation ends a sleep early, and a cancelled connection stops at its
        // next call anyway.
        let _ = threadlib::sleep_until(deadline).await;
    }
}

impl<S: Stream> Transport for ThreadConn<S> {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        until(deadline, self.stream.read(buf)).await
    }

    async fn write_all(&mut self, buf: &[u8], deadline: Instant) -> Result<(), TransportError> {
        until(deadline, self.stream.write_all(buf)).await
    }
}
