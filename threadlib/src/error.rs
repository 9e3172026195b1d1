//! The error type of thread-library calls.

use std::io;

/// Why a thread-library call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The calling thread (or its scope) was cancelled while it waited.
    #[error("cancelled")]
    Cancelled,
    /// A deadline set by [`with_timeout`](crate::with_timeout) passed.
    #[error("timed out")]
    TimedOut,
    /// The thread panicked; the payload's message.
    #[error("thread panicked: {0}")]
    Panicked(String),
    /// A scoped thread failed; its error was reported to its scope, not to the joiner.
    #[error("thread failed (its error went to its scope)")]
    ScopeFailed,
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// `spawn_on` named a core the runtime does not have.
    #[error("no such core: {core} (the runtime has {cores})")]
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// How many cores exist.
        cores: usize,
    },
    /// The channel, promise or resource was closed.
    #[error("closed")]
    Closed,
    /// The scheduler has no event loop to serve this call.
    #[error("this scheduler has no {0} event loop")]
    NoEventLoop(&'static str),
    /// The call was made outside a thread of a threadlib scheduler.
    #[error("not inside a threadlib thread")]
    NoRuntime,
    /// The runtime is shutting down.
    #[error("runtime is shut down")]
    Shutdown,
    /// The file descriptor already has a thread waiting for the same readiness.
    #[error("fd {0} already has a waiting thread for this readiness")]
    FdBusy(i32),
    /// Any other error, e.g. an application error returned from a scoped thread.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps any error as [`Error::Other`].
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Other(e.into())
    }

    /// Whether this is [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }
}

impl From<iolib::Error> for Error {
    /// Keeps the raw OS error (so callers can match on errno); the operation name is
    /// dropped.
    fn from(e: iolib::Error) -> Self {
        Error::Io(e.source)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::TimedOut => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::Cancelled => io::Error::new(io::ErrorKind::Interrupted, e),
            other => io::Error::other(other),
        }
    }
}

/// Result alias for thread-library calls.
pub type Result<T> = std::result::Result<T, Error>;
