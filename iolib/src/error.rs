//! The error type of every iolib call: which operation failed, and the OS error.

use std::io;

/// An OS-level failure: the operation that failed and the error the kernel returned.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct Error {
    /// The system call or operation that failed, e.g. `"epoll_ctl(ADD)"`.
    pub op: &'static str,
    /// The underlying OS error.
    #[source]
    pub source: io::Error,
}

impl Error {
    /// Wraps an `io::Error` with the name of the failing operation.
    pub fn new(op: &'static str, source: io::Error) -> Self {
        Error { op, source }
    }

    /// Builds an error from the calling thread's `errno`.
    pub fn last(op: &'static str) -> Self {
        Error {
            op,
            source: io::Error::last_os_error(),
        }
    }

    /// Builds an error from a raw errno value (positive).
    pub fn from_errno(op: &'static str, errno: i32) -> Self {
        Error {
            op,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    /// The raw errno, if this is an OS error.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The `io::ErrorKind` of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// Whether the operation would have blocked (`EAGAIN`/`EWOULDBLOCK`).
    pub fn is_would_block(&self) -> bool {
        self.kind() == io::ErrorKind::WouldBlock
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.source.kind(), e)
    }
}

/// Result alias for iolib calls.
pub type Result<T> = std::result::Result<T, Error>;

/// Turns a `-1`-on-error libc return value into a `Result`.
pub(crate) fn cvt(op: &'static str, ret: libc::c_int) -> Result<libc::c_int> {
    if ret < 0 {
        Err(Error::last(op))
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`] for `ssize_t` returns.
pub(crate) fn cvt_size(op: &'static str, ret: libc::ssize_t) -> Result<usize> {
    if ret < 0 {
        Err(Error::last(op))
    } else {
        Ok(ret as usize)
    }
}
