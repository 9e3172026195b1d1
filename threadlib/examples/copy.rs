//! `copy`: copies standard input to standard output, like `cat` without arguments.
//!
//! Fast path: when both ends are pipes or regular files the bytes never enter user
//! space. `splice(2)` moves them from the input into the output pipe (or, for file to
//! file, through a private pipe). The pipes are grown to 1 MiB so each call moves up
//! to 256 pages. Calls are non-blocking (`SPLICE_F_NONBLOCK`): when a pipe is full or
//! empty the thread waits for readiness in the scheduler's epoll loop instead of
//! blocking the core. Measured on 1 GiB (`copy < f | cat > /dev/null`), this was as
//! fast as a blocking splice, io_uring's splice and a splice on the blocking pool
//! (all about 0.25-0.35 s against 0.35-0.6 s for `cat`), with no kernel worker or
//! pool thread involved.
//!
//! General path (terminals, sockets, files opened for appending, ...): `read`/`write`
//! through a 256 KiB buffer; pipes and sockets are made non-blocking (and restored on
//! exit), and `EAGAIN` on any descriptor makes the thread wait for readiness.
//!
//! A closed output (`EPIPE`, e.g. `copy < f | head -c 1`) ends the copy quietly.
//!
//! ```text
//! cargo run --release -p threadlib --example copy < in > out
//! ```

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;

use iolib::fd::{self as sysfd, FdKind};
use threadlib::{Readiness, Runtime};

/// Bytes asked of each `splice` call; the kernel moves at most what the pipe holds.
const SPLICE_CHUNK: usize = 1 << 30;
/// Pipe buffer size we ask for (`/proc/sys/fs/pipe-max-size` is 1 MiB by default).
const PIPE_SIZE: usize = 1 << 20;
/// Buffer of the read/write path.
const BUF_SIZE: usize = 256 << 10;

fn main() -> ExitCode {
    let (stdin, stdout) = (io::stdin().as_raw_fd(), io::stdout().as_raw_fd());
    let result = Runtime::builder()
        .uring(None)
        .blocking_threads(0)
        .build()
        .and_then(|rt| rt.block_on(copy(stdin, stdout)))
        .and_then(|r| r);
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(threadlib::Error::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("copy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Copies everything from `input` to `output`; returns the number of bytes copied.
async fn copy(input: RawFd, output: RawFd) -> threadlib::Result<u64> {
    let (kin, kout) = (sysfd::kind(input)?, sysfd::kind(output)?);
    let spliceable = |k| matches!(k, FdKind::Pipe | FdKind::File);
    // splice(2) refuses outputs opened with O_APPEND (`>>`).
    if spliceable(kin) && spliceable(kout) && !is_append(output)? {
        for fd in [(input, kin), (output, kout)]
            .into_iter()
            .filter(|&(_, k)| k == FdKind::Pipe)
        {
            // Best effort: a smaller pipe only means more calls.
            let _ = sysfd::set_pipe_size(fd.0, PIPE_SIZE);
        }
        let spliced = if kin == FdKind::File && kout == FdKind::File {
            splice_through_pipe(input, output).await?
        } else {
            splice_direct(input, kin, output, kout).await?
        };
        if let Some(n) = spliced {
            return Ok(n);
        }
        // The kernel cannot splice these files (EINVAL before any byte moved).
    }
    read_write(input, kin, output, kout).await
}

fn is_append(fd: RawFd) -> threadlib::Result<bool> {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(flags & libc::O_APPEND != 0)
}

fn errno(e: &iolib::Error) -> i32 {
    e.errno().unwrap_or(0)
}

/// Splices straight from `input` to `output` (at least one is a pipe). `Ok(None)` if
/// the kernel refuses to splice them before any byte moved.
async fn splice_direct(
    input: RawFd,
    kin: FdKind,
    output: RawFd,
    kout: FdKind,
) -> threadlib::Result<Option<u64>> {
    let mut total = 0u64;
    loop {
        match sysfd::splice(input, output, SPLICE_CHUNK, true) {
            Ok(0) => return Ok(Some(total)),
            Ok(n) => total += n as u64,
            Err(e) if errno(&e) == libc::EINTR => {}
            Err(e) if e.is_would_block() => wait_for_pipes(input, kin, output, kout).await?,
            Err(e) if errno(&e) == libc::EINVAL && total == 0 => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// After `EAGAIN` from a non-blocking splice: waits until the pipe that stopped it can
/// move again.
///
/// A splice needs bytes (or end of file) in the input *and* room in the output, so the
/// thread waits for whichever is missing, and checks again after waking. The epoll loop
/// is edge-triggered: a wait is sure to see the next edge only if it is made after the
/// thread saw the pipe empty (or full), before the scheduler next polls epoll, which is
/// why the check and the wait happen in the same poll of this thread.
async fn wait_for_pipes(
    input: RawFd,
    kin: FdKind,
    output: RawFd,
    kout: FdKind,
) -> threadlib::Result<()> {
    match (kin, kout) {
        // A file always has bytes (or end of file): the output pipe is full.
        (FdKind::File, _) => threadlib::readiness::wait(output, Readiness::Write).await,
        // A file always has room: the input pipe is empty.
        (_, FdKind::File) => threadlib::readiness::wait(input, Readiness::Read).await,
        // Pipe to pipe: `EAGAIN` does not say which one stopped us; poll(2) does.
        _ => match pipe_state(input, output)? {
            (_, false) => threadlib::readiness::wait(output, Readiness::Write).await,
            (false, true) => threadlib::readiness::wait(input, Readiness::Read).await,
            // Both moved since the splice looked: just retry.
            (true, true) => Ok(()),
        },
    }
}

/// Whether `input` can be read (bytes or end of file) and `output` written, right now.
fn pipe_state(input: RawFd, output: RawFd) -> threadlib::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: input,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: output,
            events: libc::POLLOUT,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of two pollfd structs; a zero timeout never blocks.
    if unsafe { libc::poll(fds.as_mut_ptr(), 2, 0) } < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let readable = fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    // POLLERR on the output means no reader is left: the next splice reports EPIPE.
    let writable = fds[1].revents & (libc::POLLOUT | libc::POLLERR) != 0;
    Ok((readable, writable))
}

/// File to file: splices through a private pipe. `Ok(None)` if the input cannot be
/// spliced at all.
async fn splice_through_pipe(input: RawFd, output: RawFd) -> threadlib::Result<Option<u64>> {
    let (rd, wr) = sysfd::pipe()?;
    let _ = sysfd::set_pipe_size(wr.as_raw_fd(), PIPE_SIZE);
    let mut total = 0u64;
    loop {
        // Regular files never report EAGAIN and our pipe is empty before each round,
        // so blocking calls never block here for long.
        let n = match sysfd::splice(input, wr.as_raw_fd(), SPLICE_CHUNK, false) {
            Ok(0) => return Ok(Some(total)),
            Ok(n) => n,
            Err(e) if errno(&e) == libc::EINTR => continue,
            Err(e) if errno(&e) == libc::EINVAL && total == 0 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut left = n;
        while left > 0 {
            match sysfd::splice(rd.as_raw_fd(), output, left, false) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(m) => left -= m,
                Err(e) if errno(&e) == libc::EINTR => {}
                Err(e) => return Err(e.into()),
            }
        }
        total += n as u64;
    }
}

/// Puts pipes and sockets into non-blocking mode and restores their flags on drop, so
/// that a shared descriptor is left as we found it.
struct NonBlocking {
    restore: Vec<RawFd>,
}

impl NonBlocking {
    fn set(fds: &[(RawFd, FdKind)]) -> threadlib::Result<NonBlocking> {
        let mut guard = NonBlocking {
            restore: Vec::new(),
        };
        for &(fd, kind) in fds {
            let pollable = matches!(kind, FdKind::Pipe | FdKind::Socket);
            if pollable && !guard.restore.contains(&fd) && !sysfd::set_nonblocking(fd, true)? {
                guard.restore.push(fd);
            }
        }
        Ok(guard)
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        for &fd in &self.restore {
            let _ = sysfd::set_nonblocking(fd, false);
        }
    }
}

/// The general path: read into a buffer, write it all out, waiting for readiness on
/// `EAGAIN`. Descriptors that epoll cannot watch (files, /dev/null) never say `EAGAIN`.
async fn read_write(
    input: RawFd,
    kin: FdKind,
    output: RawFd,
    kout: FdKind,
) -> threadlib::Result<u64> {
    let _nonblocking = NonBlocking::set(&[(input, kin), (output, kout)])?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match sysfd::read(input, &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if errno(&e) == libc::EINTR => continue,
            Err(e) if e.is_would_block() => {
                threadlib::readiness::wait(input, Readiness::Read).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        write_all(output, &buf[..n]).await?;
        total += n as u64;
    }
}

async fn write_all(output: RawFd, mut data: &[u8]) -> threadlib::Result<()> {
    while !data.is_empty() {
        match sysfd::write(output, data) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => data = &data[n..],
            Err(e) if errno(&e) == libc::EINTR => {}
            Err(e) if e.is_would_block() => {
                threadlib::readiness::wait(output, Readiness::Write).await?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
