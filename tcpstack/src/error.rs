//! Error types.

/// Why a connection ended abnormally. Reported by [`Event::Error`](crate::Event::Error)
/// and by operations on the dead connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The peer answered the SYN with a reset (nothing listens there).
    #[error("connection refused")]
    Refused,
    /// The peer reset an established connection.
    #[error("connection reset by peer")]
    Reset,
    /// The retransmission limit was reached without an acknowledgment.
    #[error("connection timed out after {retries} retransmissions")]
    TimedOut {
        /// Retransmissions made before giving up.
        retries: u32,
    },
    /// Keep-alive probes went unanswered.
    #[error("keep-alive timed out")]
    KeepAliveTimedOut,
    /// The application aborted the connection.
    #[error("connection aborted locally")]
    Aborted,
}

/// Errors of the application-facing operations of [`Stack`](crate::Stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection handle is stale (closed and released) or was never valid.
    #[error("invalid or stale connection handle")]
    InvalidConnection,
    /// The listener handle is stale or was never valid.
    #[error("invalid or stale listener handle")]
    InvalidListener,
    /// Nothing to do right now: no data to read, no room to write, no connection to
    /// accept. An event announces when to retry.
    #[error("operation would block")]
    WouldBlock,
    /// A listener already owns the port.
    #[error("port {0} is already in use")]
    AddrInUse(u16),
    /// No ephemeral port is free for this remote endpoint.
    #[error("no free local port")]
    NoFreePorts,
    /// The connection table is full ([`StackConfig::max_connections`](crate::StackConfig::max_connections)).
    #[error("too many connections")]
    TooManyConnections,
    /// The send side was already shut down (or the peer's data already ended for a
    /// connect on a closed connection).
    #[error("send side is shut down")]
    SendShutdown,
    /// The connection is not in a state that allows the operation (e.g. sending on a
    /// connection that is closing).
    #[error("connection is not open")]
    NotConnected,
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] ConnError),
    /// An argument was out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

/// A rejected [`StackConfig`](crate::StackConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stack configuration: {0}")]
pub struct ConfigError(pub(crate) &'static str);
