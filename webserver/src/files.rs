//! The document-root interface the server reads files through.
//!
//! [`FileSource`] is the directory capability of the document root. The production
//! implementation (in threadlib) opens with `openat2(RESOLVE_BENEATH)` and reads through
//! io_uring; the tests use an in-memory tree. The server only ever passes it a
//! [`RelPath`]: percent-decoded, normalised, relative, without `..` or NUL.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime};

use crate::path::RelPath;
use crate::transport::{Transport, TransportError};

/// What kind of object an opened path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file: served.
    File,
    /// A directory: its `index.html`, a listing, or 403.
    Directory,
    /// Anything else (device, FIFO, socket): answered 403, never read.
    Other,
}

/// The metadata the server needs of an opened file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Size in bytes (regular files).
    pub len: u64,
    /// Last modification time.
    pub modified: SystemTime,
    /// File, directory or other.
    pub kind: FileKind,
}

/// An opened path: a handle to read from and its metadata, taken from the same open
/// file (`fstat`/`statx` on the descriptor), so the two always agree.
#[derive(Debug)]
pub struct Opened<H> {
    /// The handle to pass to [`FileSource::read_at`].
    pub handle: H,
    /// Its metadata.
    pub meta: FileMeta,
}

/// Why a path could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No such file, or a path component is not a directory (`ENOENT`, `ENOTDIR`,
    /// `ENAMETOOLONG`). Answered 404.
    #[error("not found")]
    NotFound,
    /// Permission denied, or the kernel refused to resolve the path beneath the root
    /// (`EACCES`, `EPERM`, `EXDEV`/`ELOOP` from `RESOLVE_BENEATH`). Answered 403.
    #[error("forbidden")]
    Forbidden,
    /// The process or the system ran out of file descriptors (`EMFILE`, `ENFILE`): a
    /// passing condition. Answered 503 with `Retry-After`, the connection kept.
    #[error("out of file descriptors: {0}")]
    NoDescriptors(io::Error),
    /// Any other failure. Answered 500.
    #[error("open failed: {0}")]
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    /// [`OpenError::NoDescriptors`] for `EMFILE` and `ENFILE`, else [`OpenError::Io`].
    fn from(e: io::Error) -> Self {
        if is_out_of_descriptors(&e) {
            OpenError::NoDescriptors(e)
        } else {
            OpenError::Io(e)
        }
    }
}

/// Whether `e` says the process (`EMFILE`) or the system (`ENFILE`) has no file
/// descriptor left.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name (raw bytes; Linux names need not be UTF-8).
    pub name: Vec<u8>,
    /// Whether the entry is a directory (its link gets a trailing slash).
    pub is_dir: bool,
}

/// A directory listing, bounded by the `max_entries` the caller asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirListing {
    /// The entries, excluding `.` and `..`, in any order.
    pub entries: Vec<DirEntry>,
    /// Whether entries were left out because of the bound.
    pub truncated: bool,
}

/// Why sending a file's bytes to a transport failed. The connection is closed: the
/// response header already promised a length that can no longer be delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Reading the file failed.
    #[error("reading the file: {0}")]
    Read(#[source] io::Error),
    /// The file ended before the promised length (it was truncated while being served).
    #[error("file shorter than its announced length")]
    ShortFile,
    /// Writing to the peer failed or timed out.
    #[error("writing to the peer: {0}")]
    Write(#[from] TransportError),
}

/// The document root: open, read and list files beneath it.
///
/// Implementations must confine every path beneath the root (the production one relies
/// on the kernel's `RESOLVE_BENEATH`) and must not block on special files (open with
/// `O_NONBLOCK`; the server never reads a [`FileKind::Other`]).
// The futures are driven by threadlib's single-core schedulers and need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait FileSource {
    /// An open file or directory; dropping it (or [`FileSource::close`]) releases it.
    type File;

    /// Opens `path` (relative to the root; the empty path is the root itself) for
    /// reading and returns its metadata.
    async fn open(&self, path: RelPath<'_>) -> Result<Opened<Self::File>, OpenError>;

    /// Reads up to `buf.len()` bytes at `offset`; `Ok(0)` means end of file.
    async fn read_at(&self, file: &Self::File, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Lists the directory at `path`, at most `max_entries` entries (used only when
    /// automatic indexes are on).
    async fn list_dir(
        &self,
        path: RelPath<'_>,
        max_entries: usize,
    ) -> Result<DirListing, OpenError>;

    /// Releases `file`. The default drops it; a backend may close through io_uring.
    async fn close(&self, file: Self::File) {
        drop(file);
    }

    /// Sends `len` bytes of `file` starting at `offset` to `out`, each write finishing
    /// within `write_timeout`.
    ///
    /// The default reads through [`FileSource::read_at`] into `scratch` (grown to at
    /// most [`SEND_CHUNK`] bytes) and writes each chunk. A kernel backend may override
    /// it with `sendfile`/`splice` when [`Transport::raw_fd`] returns a socket.
    async fn send_to<T: Transport>(
        &self,
        file: &Self::File,
        offset: u64,
        len: u64,
        out: &mut T,
        scratch: &mut Vec<u8>,
        write_timeout: Duration,
    ) -> Result<(), SendError> {
        copy_through_buffer(self, file, offset, len, out, scratch, write_timeout).await
    }

    /// The kernel descriptor of `file`, if it has one (for zero-copy overrides of
    /// [`FileSource::send_to`]).
    fn raw_fd(&self, _file: &Self::File) -> Option<RawFd> {
        None
    }

    /// Which precompressed variants of `file` exist (the
    /// [`Coding::bit`](crate::encoding::Coding::bit) of each), as last remembered with
    /// [`FileSource::remember_variants`], if the backend keeps it and it is still as
    /// fresh as it would trust an open. The default remembers nothing, so that every
    /// request looks the variants up.
    fn known_variants(&self, _file: &Self::File) -> Option<u8> {
        None
    }

    /// Remembers `variants` (as in [`FileSource::known_variants`]) as found now for
    /// `file`; called when a request has looked all of them up. The default forgets it.
    fn remember_variants(&self, _file: &Self::File, _variants: u8) {}
}

/// The largest chunk [`copy_through_buffer`] reads and writes at once.
pub const SEND_CHUNK: usize = 64 * 1024;

/// Copies `len` bytes of `file` from `offset` to `out` through `scratch`: the general
/// path of [`FileSource::send_to`], public so that overrides can fall back to it.
pub async fn copy_through_buffer<F: FileSource + ?Sized, T: Transport>(
    files: &F,
    file: &F::File,
    mut offset: u64,
    len: u64,
    out: &mut T,
    scratch: &mut Vec<u8>,
    write_timeout: Duration,
) -> Result<(), SendError> {
    let mut left = len;
    let chunk = usize::try_from(len).unwrap_or(usize::MAX).min(SEND_CHUNK);
    if scratch.len() < chunk {
        scratch.resize(chunk, 0);
    }
    while left > 0 {
        let want = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        let mut filled = 0;
        while filled < want {
            let n = files
                .read_at(file, offset + filled as u64, &mut scratch[filled..want])
                .await
                .map_err(SendError::Read)?;
            if n == 0 {
                return Err(SendError::ShortFile);
            }
            filled += n;
        }
        out.write_all(&scratch[..filled], write_timeout).await?;
        offset += filled as u64;
        left -= filled as u64;
    }
    Ok(())
}
