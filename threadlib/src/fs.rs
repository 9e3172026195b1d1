//! Files for threads, through the io_uring loop, and directory capabilities.
//!
//! A [`Dir`] is a capability for one directory tree: every open through it is resolved
//! by the kernel with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so `..`,
//! absolute paths and symlinks that leave the tree are refused by the kernel, not by
//! string checks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, SystemTime};

use iolib::uring::resolve;

use crate::error::{Error, Result};
use crate::uring_io;

/// File metadata from `statx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: SystemTime,
    /// Whether this is a directory.
    pub is_dir: bool,
    /// Whether this is a regular file.
    pub is_file: bool,
    /// Inode number (with `dev`, identifies the file).
    pub ino: u64,
    /// Device number.
    pub dev: u64,
}

impl Metadata {
    fn from_statx(st: &libc::statx) -> Metadata {
        let mode = st.stx_mode as u32 & libc::S_IFMT;
        let secs = st.stx_mtime.tv_sec;
        let modified = if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::new(secs as u64, st.stx_mtime.tv_nsec)
        } else {
            SystemTime::UNIX_EPOCH
        };
        Metadata {
            size: st.stx_size,
            modified,
            is_dir: mode == libc::S_IFDIR,
            is_file: mode == libc::S_IFREG,
            ino: st.stx_ino,
            dev: ((st.stx_dev_major as u64) << 32) | st.stx_dev_minor as u64,
        }
    }
}

const STATX_MASK: u32 = libc::STATX_TYPE | libc::STATX_SIZE | libc::STATX_MTIME | libc::STATX_INO;

/// An open file. Closing happens on drop (synchronously) or with [`File::close`].
#[derive(Debug)]
pub struct File {
    fd: OwnedFd,
}

impl File {
    /// Reads up to `len` bytes at `offset` into `buf`'s spare capacity (it is cleared
    /// first and grown if needed); returns the buffer holding the bytes read.
    pub async fn read_at(&self, mut buf: Vec<u8>, len: usize, offset: u64) -> Result<Vec<u8>> {
        buf.clear();
        buf.reserve(len);
        let c = uring_io::submit(iolib::uring::Op::Read {
            fd: self.fd.as_raw_fd(),
            buf,
            offset: Some(offset),
        })
        .await?;
        c.result().map_err(Error::from)?;
        let mut v = c.into_data().unwrap_or_default();
        v.truncate(len);
        Ok(v)
    }

    /// Reads the whole file (up to `limit` bytes).
    pub async fn read_to_end(&self, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let chunk = self
                .read_at(
                    Vec::new(),
                    (limit - out.len()).min(1 << 20),
                    out.len() as u64,
                )
                .await?;
            if chunk.is_empty() || out.len() + chunk.len() >= limit {
                out.extend_from_slice(&chunk[..chunk.len().min(limit - out.len())]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }

    /// The file's metadata (`statx` on the descriptor).
    pub async fn metadata(&self) -> Result<Metadata> {
        let st = uring_io::statx(self.fd.as_raw_fd(), "", libc::AT_EMPTY_PATH, STATX_MASK).await?;
        Ok(Metadata::from_statx(&st))
    }

    /// Closes the file through the io_uring loop.
    pub async fn close(self) -> Result<()> {
        let fd = self.fd.as_raw_fd();
        std::mem::forget(self.fd);
        uring_io::close(fd).await
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A directory capability: opens are confined beneath it by the kernel.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

fn relative(path: &str) -> Result<&str> {
    if path.as_bytes().contains(&0) {
        return Err(Error::Io(std::io::Error::from_raw_os_error(libc::EINVAL)));
    }
    Ok(if path.is_empty() { "." } else { path })
}

/// `bytes` as a C string for a system call; a NUL inside is `EINVAL`, as the kernel
/// would answer.
pub(crate) fn c_string(bytes: impl Into<Vec<u8>>) -> Result<std::ffi::CString> {
    std::ffi::CString::new(bytes)
        .map_err(|_| Error::Io(std::io::Error::from_raw_os_error(libc::EINVAL)))
}

impl Dir {
    /// Opens `path` as a directory capability (blocking; do it at start-up).
    pub fn open_root(path: impl AsRef<Path>) -> Result<Dir> {
        use std::os::unix::ffi::OsStrExt;
        let c = c_string(path.as_ref().as_os_str().as_bytes())?;
        Ok(Dir {
            fd: iolib::fd::open(&c, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)?,
        })
    }

    /// Opens `path` (relative to this directory) read-only. Paths that would leave the
    /// directory fail with `EXDEV`; magic links with `ELOOP`.
    pub async fn open(&self, path: &str) -> Result<File> {
        let fd = uring_io::openat2(
            self.fd.as_raw_fd(),
            relative(path)?,
            libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK,
            0,
            resolve::BENEATH | resolve::NO_MAGICLINKS,
        )
        .await?;
        // SAFETY: `fd` is a fresh descriptor returned by openat2 that we now own.
        Ok(File {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens a subdirectory as a new capability, confined the same way.
    pub async fn open_dir(&self, path: &str) -> Result<Dir> {
        let fd = uring_io::openat2(
            self.fd.as_raw_fd(),
            relative(path)?,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            resolve::BENEATH | resolve::NO_MAGICLINKS,
        )
        .await?;
        // SAFETY: as in `open`.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Lists the entry names of the subdirectory `path` (through the blocking pool).
    pub async fn read_dir(&self, path: &str) -> Result<Vec<String>> {
        let sub = self.open_dir(path).await?;
        let proc_path = format!("/proc/self/fd/{}", sub.fd.as_raw_fd());
        let names = crate::blocking::run(move || -> std::io::Result<Vec<String>> {
            let mut v: Vec<String> = std::fs::read_dir(&proc_path)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            drop(sub);
            Ok(v)
        })
        .await?;
        names.map_err(Error::Io)
    }
}

impl AsRawFd for Dir {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
