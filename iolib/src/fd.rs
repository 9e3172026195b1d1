//! Raw file-descriptor helpers: non-blocking mode, file kind, pipes and `splice`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::{cvt, cvt_size, Error, Result};

/// What kind of file a descriptor refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// A regular file.
    File,
    /// A pipe or FIFO.
    Pipe,
    /// A socket.
    Socket,
    /// A character device (e.g. a terminal or /dev/null).
    CharDevice,
    /// Anything else (directory, block device, ...).
    Other,
}

/// Reports the kind of file `fd` refers to (`fstat`).
pub fn kind(fd: RawFd) -> Result<FdKind> {
    // SAFETY: `st` is valid for writes of a `stat`; the kernel validates `fd`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    cvt("fstat", unsafe { libc::fstat(fd, &mut st) })?;
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FdKind::File,
        libc::S_IFIFO => FdKind::Pipe,
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFCHR => FdKind::CharDevice,
        _ => FdKind::Other,
    })
}

/// Sets or clears `O_NONBLOCK` on `fd`; returns whether it was set before.
pub fn set_nonblocking(fd: RawFd, on: bool) -> Result<bool> {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = cvt("fcntl(F_GETFL)", unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let was = flags & libc::O_NONBLOCK != 0;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: F_SETFL takes an int argument.
        cvt("fcntl(F_SETFL)", unsafe {
            libc::fcntl(fd, libc::F_SETFL, new)
        })?;
    }
    Ok(was)
}

/// Creates a close-on-exec pipe: `(read end, write end)`.
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt("pipe2", unsafe {
        libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC)
    })?;
    // SAFETY: both descriptors are fresh and exclusively ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Tries to resize a pipe's buffer (`F_SETPIPE_SZ`); returns the size in effect.
pub fn set_pipe_size(fd: RawFd, size: usize) -> Result<usize> {
    // SAFETY: F_SETPIPE_SZ takes an int argument.
    let r = unsafe {
        libc::fcntl(
            fd,
            libc::F_SETPIPE_SZ,
            size.min(i32::MAX as usize) as libc::c_int,
        )
    };
    if r < 0 {
        // Over the unprivileged limit: report the current size instead.
        // SAFETY: F_GETPIPE_SZ takes no argument.
        let cur = cvt("fcntl(F_GETPIPE_SZ)", unsafe {
            libc::fcntl(fd, libc::F_GETPIPE_SZ)
        })?;
        return Ok(cur as usize);
    }
    Ok(r as usize)
}

/// `splice(2)` up to `len` bytes from `fd_in` to `fd_out` (one must be a pipe), using
/// and advancing the file positions. Returns bytes moved; 0 means end of input.
pub fn splice(fd_in: RawFd, fd_out: RawFd, len: usize, nonblock: bool) -> Result<usize> {
    let mut flags = libc::SPLICE_F_MOVE;
    if nonblock {
        flags |= libc::SPLICE_F_NONBLOCK;
    }
    // SAFETY: null offsets mean "use the file position"; the kernel validates fds.
    cvt_size("splice", unsafe {
        libc::splice(
            fd_in,
            std::ptr::null_mut(),
            fd_out,
            std::ptr::null_mut(),
            len,
            flags,
        )
    })
}

/// `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    cvt_size("read", unsafe {
        libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
    })
}

/// Reads into `first` and then `second` from `offset` of the file `fd`, only what the
/// page cache holds (`preadv2(2)` with `RWF_NOWAIT`): never waits for the disk.
/// Returns the bytes read (0 at the end of the file); `EAGAIN` (a retry error, see
/// [`is_retry`]) when the first of them would have to be read from the disk.
pub fn pread_cached(fd: RawFd, first: &mut [u8], second: &mut [u8], offset: u64) -> Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: first.as_mut_ptr().cast(),
            iov_len: first.len(),
        },
        libc::iovec {
            iov_base: second.as_mut_ptr().cast(),
            iov_len: second.len(),
        },
    ];
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| Error::new("preadv2", std::io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: both iovecs describe buffers valid for writes of their lengths, borrowed
    // mutably for the duration of the call.
    cvt_size("preadv2", unsafe {
        libc::preadv2(fd, iov.as_ptr(), 2, offset, libc::RWF_NOWAIT)
    })
}

/// `write(2)` from `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    cvt_size("write", unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len())
    })
}

/// `open(2)` of `path` with `flags` (`O_CLOEXEC` is the caller's choice); returns the
/// new descriptor.
pub fn open(path: &std::ffi::CStr, flags: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt("open", unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `sendfile(2)`: copies up to `count` bytes of `in_fd`, starting at `*offset`, into
/// `out_fd`, in the kernel. Advances `*offset` by the bytes copied and returns them
/// (0 at the end of the file).
pub fn sendfile(out_fd: RawFd, in_fd: RawFd, offset: &mut u64, count: usize) -> Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: `off` is a valid off_t for the kernel to update; the kernel checks both
    // descriptors.
    let n = cvt_size("sendfile", unsafe {
        libc::sendfile(out_fd, in_fd, &mut off, count)
    })?;
    *offset = off as u64;
    Ok(n)
}

/// Errors that mean "try again later" for a non-blocking descriptor.
pub fn is_retry(e: &Error) -> bool {
    matches!(e.errno(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn pread_cached_fills_both_buffers_in_order_and_stops_at_the_end() {
        let path = std::env::temp_dir().join(format!("iolib-pread-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let (mut a, mut b) = ([0u8; 3], [0u8; 4]);
        // Just written: in the page cache.
        assert_eq!(pread_cached(f.as_raw_fd(), &mut a, &mut b, 2).unwrap(), 7);
        assert_eq!((&a, &b), (b"234", b"5678"));
        assert_eq!(pread_cached(f.as_raw_fd(), &mut a, &mut b, 8).unwrap(), 2);
        assert_eq!(&a[..2], b"89");
        assert_eq!(pread_cached(f.as_raw_fd(), &mut a, &mut b, 10).unwrap(), 0);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn pipe_splice_roundtrip() {
        let (r1, w1) = pipe().unwrap();
        let (r2, w2) = pipe().unwrap();
        assert_eq!(kind(r1.as_raw_fd()).unwrap(), FdKind::Pipe);
        assert!(set_pipe_size(w1.as_raw_fd(), 1 << 16).unwrap() >= 4096);
        assert_eq!(write(w1.as_raw_fd(), b"hello splice").unwrap(), 12);
        assert_eq!(
            splice(r1.as_raw_fd(), w2.as_raw_fd(), 1 << 16, false).unwrap(),
            12
        );
        let mut buf = [0u8; 32];
        assert_eq!(read(r2.as_raw_fd(), &mut buf).unwrap(), 12);
        assert_eq!(&buf[..12], b"hello splice");
        assert!(!set_nonblocking(r2.as_raw_fd(), true).unwrap());
        let e = read(r2.as_raw_fd(), &mut buf).unwrap_err();
        assert!(e.is_would_block() && is_retry(&e));
        drop(w1);
        assert_eq!(
            splice(r1.as_raw_fd(), w2.as_raw_fd(), 16, false).unwrap(),
            0
        );
    }
}
