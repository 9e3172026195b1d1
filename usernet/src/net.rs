//! [`threadlib::net::Network`] over the user-space stack: what threads call.
//!
//! Every operation first acts on the core's [`NetLoop`] directly (it reads buffered
//! data, queues data to send, takes an established connection), and only when that
//! would block does the thread make one system call to the loop naming what it waits
//! for. So every call is a cancellation point and works under
//! [`threadlib::with_timeout`]: a cancelled read has consumed nothing, a cancelled
//! write has queued exactly what it reported before, and a cancelled connect aborts
//! its half-open connection.
//!
//! Listeners and streams belong to the core that made them (they name that core's
//! stack) and cannot move to another OS thread.

use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, OnceLock};

use tcpstack::{ConnId, ListenerId};
use threadlib::fs::File;
use threadlib::loops::LoopCx;
use threadlib::net::{send_file_through_memory, ListenOptions, Listener, Network, Stream};
use threadlib::syscall::call_word;
use threadlib::{with_loop, Builder, Error, LoopId, Result};

use crate::device::Device;
use crate::net_loop::{FileSend, Handle, NetConfig, NetLoop, WaitFor};
use crate::report::NetReport;
use crate::secret::{host_secret, random_secret};

/// The user-space network: a capability threads use to listen and connect through
/// their core's stack. Cheap to clone, and it may move between cores (each core uses
/// its own stack).
#[derive(Debug, Clone)]
pub struct UserNet {
    id: LoopId,
    addr: std::net::Ipv4Addr,
}

/// Marks a type as tied to its core's OS thread.
type NotSend = PhantomData<*const ()>;

impl UserNet {
    /// Adds a network loop to every core of `builder`: core `i` drives its own stack,
    /// configured by `config`, over the device `make_device(i)` (called on that core's
    /// OS thread when the runtime starts). Returns the builder and the network.
    ///
    /// # Panics
    ///
    /// When the runtime starts, if a device's stack cannot be made (an invalid
    /// configuration, or no randomness for the ISN secret).
    pub fn install(
        builder: Builder,
        config: NetConfig,
        make_device: impl Fn(usize) -> Box<dyn Device> + Send + Sync + 'static,
    ) -> (Builder, UserNet) {
        let cell = Arc::new(OnceLock::new());
        let id_cell = cell.clone();
        let addr = config.addr;
        // One secret for every core: the host's, else one drawn for this network.
        let mut config = config;
        if config.isn_secret.is_none() {
            config.isn_secret = host_secret().or_else(|_| random_secret()).ok();
        }
        let (builder, id) = builder.event_loop(move |core| {
            let device = make_device(core);
            let l = NetLoop::new(core, &config, device, id_cell.clone())
                .unwrap_or_else(|e| panic!("usernet: cannot start core {core}'s stack: {e}"));
            Box::new(l)
        });
        let _ = cell.set(id);
        (builder, UserNet { id, addr })
    }

    /// [`UserNet::install`] with one ready device per core (`devices[i]` for core `i`).
    ///
    /// # Panics
    ///
    /// When the runtime starts, if it has more cores than devices.
    pub fn install_devices<D: Device + Send + 'static>(
        builder: Builder,
        config: NetConfig,
        devices: Vec<D>,
    ) -> (Builder, UserNet) {
        let devices = Mutex::new(devices.into_iter().map(Some).collect::<Vec<_>>());
        UserNet::install(builder, config, move |core| {
            let d = devices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(core)
                .and_then(Option::take)
                .unwrap_or_else(|| panic!("usernet: no device for core {core}"));
            Box::new(d)
        })
    }

    /// The stack's address.
    pub fn addr(&self) -> std::net::Ipv4Addr {
        self.addr
    }

    /// The current core's counts.
    pub fn report(&self) -> Result<NetReport> {
        with_loop(self.id, |l: &mut NetLoop, _| l.report())
    }

    /// Drops every connection and listener of the current core's stack at once, as a
    /// host crash and restart does ([`NetLoop::restart`]): for fault injection.
    pub fn restart(&self) -> Result<()> {
        with_loop(self.id, |l: &mut NetLoop, cx| l.restart(cx))
    }

    /// Runs `f` on the current core's network loop (for a test or simulation that
    /// inspects the stack).
    pub fn with_loop<R>(&self, f: impl FnOnce(&mut NetLoop) -> R) -> Result<R> {
        with_loop(self.id, |l: &mut NetLoop, _| f(l))
    }

    fn check_local(&self, addr: SocketAddr) -> Result<u16> {
        match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() || *a.ip() == self.addr => Ok(a.port()),
            _ => Err(Error::Io(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{addr} is not the user-space stack's address ({})",
                    self.addr
                ),
            ))),
        }
    }
}

impl Network for UserNet {
    type Listener = UserListener;
    type Stream = UserStream;

    async fn listen(&self, addr: SocketAddr, opts: ListenOptions) -> Result<UserListener> {
        let port = self.check_local(addr)?;
        let backlog = usize::try_from(opts.backlog.max(1)).unwrap_or(1);
        let (lid, port) = with_loop(self.id, |l: &mut NetLoop, _| l.listen(port, backlog))??;
        Ok(UserListener {
            id: self.id,
            lid,
            local: SocketAddr::V4(SocketAddrV4::new(self.addr, port)),
            _core: PhantomData,
        })
    }

    /// Waits until every connection of the current core's stack is closed or in
    /// TIME-WAIT: the FINs of closed connections were acknowledged, or the peers gave
    /// up (the stack's retransmission limits bound that).
    async fn drain(&self) -> Result<()> {
        call_word(self.id, WaitFor::Drained.word())
            .await
            .map(|_| ())
    }

    async fn connect(&self, addr: SocketAddr) -> Result<UserStream> {
        let SocketAddr::V4(remote) = addr else {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "the user-space stack speaks IPv4 only",
            )));
        };
        let id = self.id;
        let (conn, _) = with_loop(id, |l: &mut NetLoop, cx| l.connect(remote, cx))??;
        // Aborts the half-open connection if the wait below fails or is cancelled.
        let mut pending = Aborting {
            id,
            conn: Some(conn),
        };
        while !with_loop(id, |l: &mut NetLoop, _| l.connect_state(conn))?? {
            call_word(id, WaitFor::Write(conn.id.index()).word()).await?;
        }
        pending.conn = None;
        Ok(UserStream::new(id, conn))
    }
}

/// Aborts a connection when dropped, unless disarmed.
struct Aborting {
    id: LoopId,
    conn: Option<Handle<ConnId>>,
}

impl Drop for Aborting {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = with_loop(self.id, |l: &mut NetLoop, cx| l.close(c, true, cx));
        }
    }
}

/// A listening port on the current core's stack. Every core that listens on the same
/// port gets the connections whose SYN reached its queue.
#[derive(Debug)]
pub struct UserListener {
    id: LoopId,
    lid: Handle<ListenerId>,
    local: SocketAddr,
    _core: NotSend,
}

impl Listener for UserListener {
    type Stream = UserStream;

    async fn accept(&self) -> Result<(UserStream, SocketAddr)> {
        loop {
            let got = with_loop(self.id, |l: &mut NetLoop, cx| l.accept(self.lid, cx))??;
            if let Some((conn, _, remote)) = got {
                return Ok((UserStream::new(self.id, conn), SocketAddr::V4(remote)));
            }
            call_word(self.id, WaitFor::Accept(self.lid.id.index()).word()).await?;
        }
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Drop for UserListener {
    /// Stops listening; connections not yet accepted are reset.
    fn drop(&mut self) {
        let _ = with_loop(self.id, |l: &mut NetLoop, cx| l.unlisten(self.lid, cx));
    }
}

/// A TCP connection on the current core's stack. Dropping it closes it gracefully
/// (FIN after the queued data), or resets it if received data was left unread.
#[derive(Debug)]
pub struct UserStream {
    id: LoopId,
    conn: Handle<ConnId>,
    read_shut: bool,
    _core: NotSend,
}

impl UserStream {
    fn new(id: LoopId, conn: Handle<ConnId>) -> UserStream {
        UserStream {
            id,
            conn,
            read_shut: false,
            _core: PhantomData,
        }
    }

    /// Queues `bufs` in order, waiting until the send buffer takes at least a byte.
    async fn send(&mut self, bufs: &[&[u8]]) -> Result<usize> {
        loop {
            if let Some(n) = self.try_send(bufs)? {
                return Ok(n);
            }
            call_word(self.id, WaitFor::Write(self.conn.id.index()).word()).await?;
        }
    }

    /// Takes received bytes with `take`, waiting until there are some (or the end).
    async fn receive(
        &mut self,
        mut take: impl FnMut(&mut NetLoop, Handle<ConnId>, &mut LoopCx<'_>) -> Result<Option<usize>>,
    ) -> Result<usize> {
        if self.read_shut {
            return Ok(0);
        }
        loop {
            let conn = self.conn;
            if let Some(n) = with_loop(self.id, |l: &mut NetLoop, cx| take(l, conn, cx))?? {
                return Ok(n);
            }
            call_word(self.id, WaitFor::Read(conn.id.index()).word()).await?;
        }
    }

    /// Queues what of `bufs` the send buffer takes now; `None` if it is full.
    fn try_send(&mut self, bufs: &[&[u8]]) -> Result<Option<usize>> {
        let conn = self.conn;
        with_loop(self.id, |l: &mut NetLoop, cx| l.send(conn, bufs, cx))?
    }
}

impl Stream for UserStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.receive(|l, conn, cx| l.recv(conn, buf, cx)).await
    }

    /// Drops the bytes from the connection's receive buffer without copying them.
    async fn discard(&mut self, max: usize) -> Result<usize> {
        self.receive(|l, conn, cx| l.discard(conn, max, cx)).await
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.send(&[buf]).await
    }

    fn try_write(&mut self, buf: &[u8]) -> Option<Result<usize>> {
        self.try_send(&[buf]).transpose()
    }

    async fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize> {
        let mut slices: [&[u8]; 8] = [&[]; 8];
        let n = bufs.len().min(slices.len());
        for (s, b) in slices.iter_mut().zip(bufs) {
            *s = b;
        }
        self.send(&slices[..n]).await
    }

    /// The kernel reads the file from the page cache straight into the connection's
    /// send buffer (one copy fewer than reading it into memory and writing that); a
    /// part not in the page cache is read through io_uring instead, so the core never
    /// waits for the disk.
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> Result<u64> {
        let fd = file.as_raw_fd();
        loop {
            let conn = self.conn;
            let sent = with_loop(self.id, |l: &mut NetLoop, cx| {
                l.send_cached_file(conn, fd, offset, len, cx)
            })??;
            match sent {
                Some(FileSend::Sent(n)) => return Ok(n as u64),
                Some(FileSend::NotCached) => {
                    return send_file_through_memory(self, file, offset, len).await
                }
                None => {
                    call_word(self.id, WaitFor::Write(conn.id.index()).word()).await?;
                }
            }
        }
    }

    async fn shutdown(&mut self, how: Shutdown) -> Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            let conn = self.conn;
            with_loop(self.id, |l: &mut NetLoop, cx| l.shutdown(conn, cx))??;
        }
        Ok(())
    }

    fn local_addr(&self) -> Result<SocketAddr> {
        let (local, _) = with_loop(self.id, |l: &mut NetLoop, _| l.endpoints(self.conn))??;
        Ok(SocketAddr::V4(local))
    }

    fn peer_addr(&self) -> Result<SocketAddr> {
        let (_, remote) = with_loop(self.id, |l: &mut NetLoop, _| l.endpoints(self.conn))??;
        Ok(SocketAddr::V4(remote))
    }

    fn set_nodelay(&self, on: bool) -> Result<()> {
        with_loop(self.id, |l: &mut NetLoop, _| l.set_nodelay(self.conn, on))?
    }
}

impl Drop for UserStream {
    fn drop(&mut self) {
        let conn = self.conn;
        let _ = with_loop(self.id, |l: &mut NetLoop, cx| l.close(conn, false, cx));
    }
}
