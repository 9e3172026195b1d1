//! The network interface threads use, and its kernel-TCP implementation.
//!
//! Programs are written against the [`Network`], [`Listener`] and [`Stream`] traits, so
//! the same code runs on kernel sockets ([`KernelNet`]: non-blocking sockets with
//! readiness from the epoll loop) or on the user-space TCP stack. Every call is a
//! cancellation point; wrap any of them in [`with_timeout`](crate::with_timeout) for a
//! deadline.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use crate::error::{Error, Result};
use crate::fs::File;
use crate::readiness::wait;
use crate::syscall::Readiness;

pub use iolib::socket::{ListenOptions, ReusePort};

/// A network capability: something that can listen and connect.
#[allow(async_fn_in_trait)]
pub trait Network: Clone + 'static {
    /// Listening sockets of this network.
    type Listener: Listener<Stream = Self::Stream>;
    /// Connected streams of this network.
    type Stream: Stream;

    /// Listens on `addr` (port 0 picks a free port).
    async fn listen(&self, addr: SocketAddr, opts: ListenOptions) -> Result<Self::Listener>;

    /// Connects to `addr`.
    async fn connect(&self, addr: SocketAddr) -> Result<Self::Stream>;

    /// Waits until the connections this core closed have finished closing (their FINs
    /// acknowledged, or the peers gone), so that stopping the program loses nothing in
    /// flight. Bound it with [`with_timeout`](crate::with_timeout). Kernel sockets
    /// finish closing on their own after the program exits, so the default returns at
    /// once; a network implemented inside the program waits.
    async fn drain(&self) -> Result<()> {
        Ok(())
    }
}

/// A listening socket.
#[allow(async_fn_in_trait)]
pub trait Listener {
    /// The streams it accepts.
    type Stream: Stream;

    /// Waits for the next connection.
    async fn accept(&self) -> Result<(Self::Stream, SocketAddr)>;

    /// The address it listens on.
    fn local_addr(&self) -> Result<SocketAddr>;
}

/// The most bytes [`Stream::discard`]'s default reads at once.
const DISCARD_SCRATCH: usize = 64 * 1024;

/// A connected byte stream.
#[allow(async_fn_in_trait)]
pub trait Stream {
    /// Reads some bytes; `Ok(0)` means the peer closed its sending side.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Consumes up to `max` received bytes without handing them over, as
    /// [`read`](Self::read) would return them (waiting as it does; `Ok(0)` at the end
    /// of the stream, or when `max` is 0): for a reader that only counts what it skips,
    /// such as a body it does not look at. A stream may skip the copy (kernel TCP
    /// drops the bytes with `MSG_TRUNC`); the default reads into a buffer of its own.
    async fn discard(&mut self, max: usize) -> Result<usize> {
        let mut scratch = vec![0; max.min(DISCARD_SCRATCH)];
        self.read(&mut scratch).await
    }

    /// Writes some bytes, returning how many were taken.
    async fn write(&mut self, buf: &[u8]) -> Result<usize>;

    /// Writes from several buffers at once (one system call where possible).
    async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize>;

    /// Writes some bytes as [`write`](Self::write) does, saying that more follow at
    /// once: a stream that sends segments may hold a short tail back to send it with
    /// the next write instead of alone (a response head before its body). Follow it
    /// with a write without this hint (or a `send_file`), which sends what was held;
    /// a kernel socket may hold it until then. The default is `write`.
    async fn write_more(&mut self, buf: &[u8]) -> Result<usize> {
        self.write(buf).await
    }

    /// Shuts down one or both directions.
    async fn shutdown(&mut self, how: Shutdown) -> Result<()>;

    /// The local address.
    fn local_addr(&self) -> Result<SocketAddr>;

    /// The peer's address.
    fn peer_addr(&self) -> Result<SocketAddr>;

    /// Enables or disables Nagle's algorithm (`TCP_NODELAY`).
    fn set_nodelay(&self, on: bool) -> Result<()>;

    /// Writes some bytes if the stream takes them without waiting, returning how many
    /// it took (at least one for a non-empty `buf`); `None` if it would have to wait, or
    /// cannot tell without waiting. Not a cancellation point, and it never suspends:
    /// code that writes small messages tries this first and awaits
    /// [`write`](Self::write) (under a deadline) only when it returns `None`. The
    /// default returns `None`.
    fn try_write(&mut self, buf: &[u8]) -> Option<Result<usize>> {
        let _ = buf;
        None
    }

    /// Writes all of `buf`.
    async fn write_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(Error::Io(io::ErrorKind::WriteZero.into()));
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Writes all of `bufs`, in order.
    async fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> Result<()> {
        let mut idx = 0;
        let mut off = 0;
        while idx < bufs.len() {
            let mut slices: [IoSlice<'_>; 8] = [IoSlice::new(&[]); 8];
            let mut n = 0;
            for (k, b) in bufs[idx..].iter().take(8).enumerate() {
                slices[k] = IoSlice::new(if k == 0 { &b[off..] } else { b });
                n += 1;
            }
            let mut wrote = self.write_vectored(&slices[..n]).await?;
            if wrote == 0 && bufs[idx..].iter().any(|b| !b.is_empty()) {
                return Err(Error::Io(io::ErrorKind::WriteZero.into()));
            }
            while idx < bufs.len() {
                let left = bufs[idx].len() - off;
                if wrote >= left {
                    wrote -= left;
                    idx += 1;
                    off = 0;
                } else {
                    off += wrote;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Sends some of the `len` bytes of `file` starting at `offset`, as `write` sends
    /// some of a buffer: it returns how many the stream took, at least one unless
    /// `len` is zero or the file ends at `offset` (then 0). Implementations may use a
    /// zero-copy path (`sendfile`); the default is [`send_file_through_memory`].
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> Result<u64> {
        send_file_through_memory(self, file, offset, len).await
    }
}

/// [`Stream::send_file`] by way of a buffer: reads at most 256 KiB of `file` at
/// `offset` through io_uring (never blocking the core on the disk) and writes them
/// all. The default, and the fallback of faster paths that cannot serve a request.
pub async fn send_file_through_memory<S: Stream + ?Sized>(
    stream: &mut S,
    file: &File,
    offset: u64,
    len: u64,
) -> Result<u64> {
    let want = usize::try_from(len).unwrap_or(usize::MAX).min(256 * 1024);
    if want == 0 {
        return Ok(0);
    }
    let chunk = file.read_at(Vec::with_capacity(want), want, offset).await?;
    stream.write_all(&chunk).await?;
    Ok(chunk.len() as u64)
}

fn io_err(e: io::Error) -> Error {
    Error::Io(e)
}

/// Kernel TCP: non-blocking sockets with readiness from the epoll loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelNet;

/// A kernel TCP listener.
#[derive(Debug)]
pub struct KernelListener {
    inner: TcpListener,
}

/// A kernel TCP stream.
#[derive(Debug)]
pub struct KernelStream {
    inner: TcpStream,
    /// The last read returned less than it asked for: it took all the socket held, so
    /// the next read waits for readiness before asking again instead of spending a
    /// system call on `EAGAIN` (a request/response exchange reads that way every time).
    /// Safe with edge-triggered epoll: data that arrives after that read raises a new
    /// edge, which the wait sees even if it came before the wait began.
    drained: bool,
}

impl Network for KernelNet {
    type Listener = KernelListener;
    type Stream = KernelStream;

    async fn listen(&self, addr: SocketAddr, opts: ListenOptions) -> Result<KernelListener> {
        Ok(KernelListener {
            inner: iolib::socket::listen(addr, opts)?,
        })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<KernelStream> {
        let (s, in_progress) = iolib::socket::connect(addr)?;
        let s = KernelStream::new(s);
        if in_progress {
            wait(s.fd(), Readiness::Write).await?;
            if let Some(e) = iolib::socket::take_error(s.fd())? {
                return Err(Error::Io(e));
            }
        }
        Ok(s)
    }
}

impl KernelListener {
    fn fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }

    /// Wraps an existing non-blocking std listener.
    pub fn from_std(inner: TcpListener) -> Result<Self> {
        inner.set_nonblocking(true).map_err(io_err)?;
        Ok(KernelListener { inner })
    }
}

impl Listener for KernelListener {
    type Stream = KernelStream;

    async fn accept(&self) -> Result<(KernelStream, SocketAddr)> {
        loop {
            match iolib::socket::accept(&self.inner) {
                Ok(s) => {
                    let peer = s.peer_addr().map_err(io_err)?;
                    return Ok((KernelStream::new(s), peer));
                }
                Err(e) if e.is_would_block() || e.errno() == Some(libc::EINTR) => {
                    wait(self.fd(), Readiness::Read).await?
                }
                // The peer gave up before we accepted: try the next one.
                Err(e) if e.errno() == Some(libc::ECONNABORTED) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr().map_err(io_err)
    }
}

impl Drop for KernelListener {
    fn drop(&mut self) {
        let _ = crate::core::Core::with_current(|c| c.forget_fd(self.fd()));
    }
}

impl KernelStream {
    fn new(inner: TcpStream) -> Self {
        KernelStream {
            inner,
            drained: false,
        }
    }

    fn fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }

    /// Wraps an existing std stream (made non-blocking).
    pub fn from_std(inner: TcpStream) -> Result<Self> {
        inner.set_nonblocking(true).map_err(io_err)?;
        Ok(KernelStream::new(inner))
    }

    /// Runs the non-blocking send `op` until it is not refused for a full socket
    /// (waiting for writability each time it is), and returns what it returned.
    async fn retry_send(
        &self,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Result<usize> {
        loop {
            if let Some(r) = self.try_send(&mut op) {
                return r;
            }
            wait(self.fd(), Readiness::Write).await?
        }
    }

    /// Runs the non-blocking send `op` (again if a signal interrupted it); `None` if
    /// the socket was full.
    fn try_send(
        &self,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Option<Result<usize>> {
        loop {
            match op(&self.inner) {
                Ok(n) => return Some(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(io_err(e))),
            }
        }
    }
}

impl KernelStream {
    /// Runs `op`, a receive of at most `len` bytes, until it does not block: waits for
    /// readiness first if the last receive drained the socket (see `drained`).
    async fn receive(
        &mut self,
        len: usize,
        mut op: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Result<usize> {
        if self.drained && len > 0 {
            wait(self.fd(), Readiness::Read).await?;
        }
        loop {
            match op(&self.inner) {
                Ok(n) => {
                    self.drained = n > 0 && n < len;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(self.fd(), Readiness::Read).await?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
    }
}

impl Stream for KernelStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len();
        self.receive(len, |s| (&*s).read(buf)).await
    }

    /// `recv(2)` with `MSG_TRUNC`: the kernel drops the bytes without copying them.
    async fn discard(&mut self, max: usize) -> Result<usize> {
        self.receive(max, |s| iolib::socket::recv_discard(s, max))
            .await
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.retry_send(|s| (&*s).write(buf)).await
    }

    fn try_write(&mut self, buf: &[u8]) -> Option<Result<usize>> {
        self.try_send(|s| (&*s).write(buf))
    }

    async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        self.retry_send(|s| (&*s).write_vectored(bufs)).await
    }

    /// `send(2)` with `MSG_MORE`.
    async fn write_more(&mut self, buf: &[u8]) -> Result<usize> {
        self.retry_send(|s| iolib::socket::send_more(s, buf)).await
    }

    async fn shutdown(&mut self, how: Shutdown) -> Result<()> {
        match self.inner.shutdown(how) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        self.inner.local_addr().map_err(io_err)
    }

    fn peer_addr(&self) -> Result<SocketAddr> {
        self.inner.peer_addr().map_err(io_err)
    }

    fn set_nodelay(&self, on: bool) -> Result<()> {
        self.inner.set_nodelay(on).map_err(io_err)
    }

    /// Zero-copy: `sendfile(2)` from the page cache straight into the socket, as much
    /// as the socket takes in one call.
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> Result<u64> {
        let mut off = offset;
        let chunk = usize::try_from(len).unwrap_or(usize::MAX).min(1 << 30);
        if chunk == 0 {
            return Ok(0);
        }
        // 0: the file ends at `offset`.
        let n = self
            .retry_send(|s| {
                iolib::fd::sendfile(s.as_raw_fd(), file.as_raw_fd(), &mut off, chunk)
                    .map_err(|e| e.source)
            })
            .await?;
        Ok(n as u64)
    }
}

impl Drop for KernelStream {
    fn drop(&mut self) {
        let _ = crate::core::Core::with_current(|c| c.forget_fd(self.fd()));
    }
}
