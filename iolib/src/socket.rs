//! Non-blocking TCP socket helpers: listeners with `SO_REUSEPORT`, `accept4`, and
//! connects that return at once (`EINPROGRESS`). Reads and writes go through the std
//! types, which report `WouldBlock` on a non-blocking socket.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};

/// Whether a listener shares its port with other listeners (`SO_REUSEPORT`, the
/// kernel spreading new connections over them), as each core's listener of one
/// server does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReusePort {
    /// Not shared: binding fails if any socket has the port.
    #[default]
    Off,
    /// The first listener of a group: binding fails if another socket listens on
    /// the port (or holds it without `SO_REUSEADDR`), whether that one shares it or
    /// not, so a server cannot join another's group by mistake;
    /// [`ReusePort::Join`] listeners may join this one.
    First,
    /// Joins the listeners that share the port. Any process of the same user may
    /// join, so a group's first listener binds as [`ReusePort::First`].
    Join,
}

/// Options for [`listen`].
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Backlog passed to `listen(2)`.
    pub backlog: i32,
    /// Whether the port is shared with other listeners.
    pub reuse_port: ReusePort,
    /// Set `TCP_NOTSENT_LOWAT` (inherited by every accepted connection): a send queues
    /// at most this many bytes beyond what the window lets out, and the socket is
    /// writable only while fewer are waiting. `None` keeps the kernel's default (no
    /// limit: a send may queue a whole send buffer for a peer that reads slowly).
    pub unsent_limit: Option<u32>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_port: ReusePort::Off,
            unsent_limit: None,
        }
    }
}

/// Creates a non-blocking, close-on-exec TCP listener bound to `addr`
/// (`SO_REUSEADDR` always, `SO_REUSEPORT` as `opts.reuse_port` says).
pub fn listen(addr: SocketAddr, opts: ListenOptions) -> Result<TcpListener> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(|e| Error::new("socket", e))?;
    s.set_reuse_address(true)
        .map_err(|e| Error::new("setsockopt(SO_REUSEADDR)", e))?;
    let share = || {
        s.set_reuse_port(true)
            .map_err(|e| Error::new("setsockopt(SO_REUSEPORT)", e))
    };
    if opts.reuse_port == ReusePort::Join {
        share()?;
    }
    if let Some(limit) = opts.unsent_limit {
        // The kernel takes an int: a larger limit is no limit anyway.
        s.set_tcp_notsent_lowat(limit.min(i32::MAX as u32))
            .map_err(|e| Error::new("setsockopt(TCP_NOTSENT_LOWAT)", e))?;
    }
    s.bind(&addr.into()).map_err(|e| Error::new("bind", e))?;
    // Bound alone; from now on `Join` listeners may bind beside it (the kernel forms
    // the group when it listens).
    if opts.reuse_port == ReusePort::First {
        share()?;
    }
    s.listen(opts.backlog)
        .map_err(|e| Error::new("listen", e))?;
    Ok(s.into())
}

/// Accepts one pending connection as a non-blocking, close-on-exec stream.
/// `WouldBlock` when none is pending.
pub fn accept(listener: &TcpListener) -> Result<TcpStream> {
    // SAFETY: null address pointers are allowed by accept4; the flags are valid.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::last("accept4"));
    }
    // SAFETY: `fd` is a fresh socket we exclusively own.
    Ok(unsafe { TcpStream::from_raw_fd(fd) })
}

/// Starts a non-blocking connect to `addr`. Returns the stream and whether the connect
/// is still in progress (then wait for writability and check [`take_error`]).
pub fn connect(addr: SocketAddr) -> Result<(TcpStream, bool)> {
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(|e| Error::new("socket", e))?;
    let in_progress = match s.connect(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(Error::new("connect", e)),
    };
    Ok((s.into(), in_progress))
}

/// Sends some of `buf` on `sock` (`send(2)` with `MSG_MORE`), telling the kernel that
/// more data follows at once: a final partial segment waits to be filled by the next
/// send (`write`, `sendfile`) instead of leaving alone, as under `TCP_CORK`, until a
/// send without the flag. Errors as the std `write`, including `WouldBlock`.
pub fn send_more(sock: &TcpStream, buf: &[u8]) -> std::io::Result<usize> {
    socket2::SockRef::from(sock).send_with_flags(buf, libc::MSG_MORE | libc::MSG_NOSIGNAL)
}

/// Consumes up to `max` received bytes of `sock` without copying them anywhere
/// (`recv(2)` with `MSG_TRUNC`, which TCP treats as "discard"): returns how many, 0 at
/// end of stream. Errors as the std `read`, including `WouldBlock`.
pub fn recv_discard(sock: &TcpStream, max: usize) -> std::io::Result<usize> {
    // SAFETY: with MSG_TRUNC a TCP socket drops the bytes instead of copying them, so
    // the kernel never writes through the (null) buffer pointer.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            std::ptr::null_mut(),
            max,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The kernel's state of a TCP connection (`TCP_INFO`): segments, bytes, windows,
/// round-trip time. Fields newer than the running kernel read as zero.
pub fn tcp_info(fd: RawFd) -> Result<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data, for which all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    // SAFETY: any bytes the kernel writes make a valid tcp_info.
    unsafe {
        getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info,
            "getsockopt(TCP_INFO)",
        )
    }?;
    Ok(info)
}

/// Reads and clears the socket's pending error (`SO_ERROR`).
pub fn take_error(fd: RawFd) -> Result<Option<std::io::Error>> {
    let mut err: libc::c_int = 0;
    // SAFETY: any bytes the kernel writes make a valid int.
    unsafe {
        getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err,
            "getsockopt(SO_ERROR)",
        )
    }?;
    Ok((err != 0).then(|| std::io::Error::from_raw_os_error(err)))
}

/// `getsockopt(2)` of option `name` at `level` into `value` (at most its size); `op`
/// names the call in the error.
///
/// # Safety
///
/// Every bit pattern the kernel may write must be a valid `T`: a C integer or a C
/// struct of them.
unsafe fn getsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &mut T,
    op: &'static str,
) -> Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is valid for writes of `len` bytes, and the kernel writes at
    // most `len`; the caller vouches that any bytes written make a valid `T`.
    let r = unsafe { libc::getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) };
    if r < 0 {
        return Err(Error::last(op));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Accepts the next connection on `l`, waiting for it.
    fn accept_next(l: &TcpListener) -> TcpStream {
        loop {
            match accept(l) {
                Ok(s) => return s,
                Err(e) if e.is_would_block() => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Data segments `sock` has sent.
    fn data_segments_out(sock: &TcpStream) -> u32 {
        tcp_info(sock.as_raw_fd()).unwrap().tcpi_data_segs_out
    }

    /// Writes `head` (with `send_more` if `more`) and then `body` on a fresh loopback
    /// connection without Nagle's algorithm; returns the data segments that took, and
    /// checks that the peer got both.
    fn segments_for(head: &[u8], body: &[u8], more: bool) -> u32 {
        let l = listen("127.0.0.1:0".parse().unwrap(), ListenOptions::default()).unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let mut s = accept_next(&l);
        s.set_nodelay(true).unwrap();
        let before = data_segments_out(&s);
        let n = if more {
            send_more(&s, head)
        } else {
            s.write(head)
        };
        assert_eq!(n.unwrap(), head.len());
        s.write_all(body).unwrap();
        let segments = data_segments_out(&s) - before;
        let mut got = vec![0; head.len() + body.len()];
        (&c).read_exact(&mut got).unwrap();
        assert_eq!(got, [head, body].concat());
        segments
    }

    #[test]
    fn send_more_holds_a_short_write_back_for_what_follows() {
        let (head, body) = ([b'h'; 200], [b'b'; 300]);
        assert_eq!(segments_for(&head, &body, true), 1);
        assert_eq!(segments_for(&head, &body, false), 2);
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_unsent_limit() {
        let opts = |unsent_limit| ListenOptions {
            unsent_limit,
            ..ListenOptions::default()
        };
        // 0: the socket has no limit of its own (the sysctl net.ipv4.tcp_notsent_lowat
        // applies, no limit unless an administrator set one).
        for (limit, expected) in [(Some(32 * 1024), 32 * 1024), (None, 0)] {
            let l = listen("127.0.0.1:0".parse().unwrap(), opts(limit)).unwrap();
            let (_c, _) = connect(l.local_addr().unwrap()).unwrap();
            let s = accept_next(&l);
            let value = socket2::SockRef::from(&s).tcp_notsent_lowat().unwrap();
            assert_eq!(value, expected, "limit {limit:?}");
        }
    }

    #[test]
    fn listen_accept_connect_nonblocking() {
        let l = listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenOptions {
                backlog: 16,
                reuse_port: ReusePort::First,
                unsent_limit: None,
            },
        )
        .unwrap();
        let addr = l.local_addr().unwrap();
        assert!(accept(&l).unwrap_err().is_would_block());
        let (mut c, _) = connect(addr).unwrap();
        let mut s = accept_next(&l);
        assert!(take_error(c.as_raw_fd()).unwrap().is_none());
        let mut buf = [0u8; 8];
        assert_eq!(
            s.read(&mut buf).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        c.write_all(b"hi").unwrap();
        loop {
            match s.read(&mut buf) {
                Ok(n) => {
                    assert_eq!(&buf[..n], b"hi");
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        // A second listener on the same port works thanks to SO_REUSEPORT.
        listen(
            addr,
            ListenOptions {
                backlog: 16,
                reuse_port: ReusePort::Join,
                unsent_limit: None,
            },
        )
        .unwrap();
    }

    /// The kernel spreads connections over a group founded by a `First` listener, and
    /// a `First` listener cannot bind a port that any socket has, shared or not.
    #[test]
    fn a_group_is_founded_once_and_joined_after() {
        let opts = |reuse_port| ListenOptions {
            backlog: 256,
            reuse_port,
            unsent_limit: None,
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = listen(any, opts(ReusePort::First)).unwrap();
        let addr = first.local_addr().unwrap();
        let joined = listen(addr, opts(ReusePort::Join)).unwrap();
        let _clients: Vec<_> = (0..64).map(|_| connect(addr).unwrap().0).collect();
        let mut counts = [0; 2];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while counts[0] + counts[1] < 64 {
            assert!(std::time::Instant::now() < deadline, "accepted {counts:?}");
            for (n, l) in counts.iter_mut().zip([&first, &joined]) {
                *n += usize::from(accept(l).is_ok());
            }
        }
        assert!(counts.iter().all(|&n| n > 0), "spread {counts:?}");
        for taken in [ReusePort::First, ReusePort::Off] {
            let e = listen(addr, opts(taken)).unwrap_err();
            assert!(e.to_string().contains("in use"), "{taken:?}: {e}");
        }
        // A foreign group, founded by sockets that all share: a `First` cannot join.
        let foreign = listen(any, opts(ReusePort::Join)).unwrap();
        let e = listen(foreign.local_addr().unwrap(), opts(ReusePort::First)).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
    }

    #[test]
    fn connect_refused_is_reported() {
        let l = listen("127.0.0.1:0".parse().unwrap(), ListenOptions::default()).unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        match connect(addr) {
            Err(e) => assert_eq!(e.errno(), Some(libc::ECONNREFUSED)),
            Ok((c, _)) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let e = take_error(c.as_raw_fd()).unwrap().expect("an error");
                assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
            }
        }
    }
}
