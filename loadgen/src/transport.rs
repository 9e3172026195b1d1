//! The network interface the connection logic runs over.
//!
//! [`Network`] connects and tells and waits for time; [`Transport`] is one connection.
//! threadlib provides the kernel implementation (and later the user-space stack); the
//! tests use in-memory mocks on a virtual clock.

use std::net::SocketAddr;
use std::time::Instant;

pub use threadlib::deadline::TransportError;

/// One connection: read and write with deadlines.
// The futures are driven by threadlib's single-core schedulers and need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Reads at least one byte into `buf`; `Ok(0)` is end of stream.
    ///
    /// Fails with [`TransportError::TimedOut`] when nothing arrived before `deadline`;
    /// such a read consumed nothing and the connection stays usable (constant-rate
    /// mode wakes up this way to send the next scheduled request).
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError>;

    /// Consumes at least one and at most `max` received bytes without handing them
    /// over, as [`read`](Self::read) would (the same end of stream, errors and
    /// deadline): for body bytes that are only counted. The default reads them into a
    /// buffer of its own.
    async fn discard(&mut self, max: usize, deadline: Instant) -> Result<usize, TransportError> {
        let mut scratch = vec![0; max.min(crate::connection::READ_BUFFER)];
        self.read(&mut scratch, deadline).await
    }

    /// Writes all of `buf`; [`TransportError::TimedOut`] if it could not by `deadline`.
    async fn write_all(&mut self, buf: &[u8], deadline: Instant) -> Result<(), TransportError>;
}

/// Connection establishment and the clock, shared by the connections of one core.
#[allow(async_fn_in_trait)]
pub trait Network {
    /// The connection type.
    type Conn: Transport;

    /// Opens a connection to `addr` (with `TCP_NODELAY`).
    async fn connect(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Self::Conn, TransportError>;

    /// The current time on the clock deadlines refer to.
    fn now(&self) -> Instant;

    /// Waits until `deadline`.
    async fn sleep_until(&self, deadline: Instant);

    /// Whether the run was stopped before its end (interrupted): the connections of
    /// this network then stop at once, and a call that fails from then on counts as
    /// no error. Never, by default.
    fn stopped(&self) -> bool {
        false
    }
}
