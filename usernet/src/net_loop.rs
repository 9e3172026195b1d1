//! The event loop that serves TCP system calls on one core: it owns that core's
//! [`Stack`] and packet [`Device`], feeds the stack what the device receives and the
//! passage of time, writes what the stack transmits, and completes the calls of threads
//! waiting for a connection to become readable, writable, connected or acceptable.
//!
//! Threads try every operation directly first, through
//! [`threadlib::with_loop`] (a read that finds data returns at once, without a system
//! call), and only wait when it would block: then they make one word-sized call
//! ([`threadlib::syscall::call_word`]) naming what they wait for, which this loop
//! records and completes when the stack reports the matching event. A cancelled wait
//! is withdrawn exactly ([`EventLoop::cancel`]); nothing was consumed by it.
//!
//! The loop is polled when the device's fd is readable, when the stack's (or the
//! device's) next deadline passes, and after any batch of threads that queued output
//! ([`LoopCx::poll_soon`]), so the packets a batch produces leave together (in one
//! flush of the device, bulk ones each in a write of its own) and an idle core sleeps
//! until a packet or a timer is due.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tcpstack::{ConnId, Event, ListenerId, Stack, TcpState};
use threadlib::{Error, EventLoop, LoopCx, LoopId, Request, ThreadId};

use crate::device::{Device, DeviceStats};
use crate::error::stack_error;
use crate::report::NetReport;
use crate::secret::random_secret;
use crate::steering::Steering;

/// Packets read in one poll before the stack transmits and threads run again (keeps
/// ACKs and responses flowing under a flood of input).
const RX_BUDGET: usize = 256;

/// What [`NetLoop::send_cached_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileSend {
    /// Queued this many bytes (0: the file ends at the offset).
    Sent(usize),
    /// The kernel could not read the first bytes at once (not in the page cache, or
    /// the file cannot be read without blocking); nothing was queued.
    NotCached,
}

/// What a waiting thread waits for; the low 32 bits of a call word are the slot index
/// of the connection or listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitFor {
    /// Data, end of stream or an error on a connection.
    Read(u32),
    /// Send space, the end of a handshake, or an error on a connection.
    Write(u32),
    /// A connection to accept on a listener.
    Accept(u32),
    /// Every connection of the stack closed or in TIME-WAIT.
    Drained,
}

impl WaitFor {
    pub(crate) fn word(self) -> u64 {
        match self {
            WaitFor::Read(i) => u64::from(i),
            WaitFor::Write(i) => 1 << 32 | u64::from(i),
            WaitFor::Accept(i) => 2 << 32 | u64::from(i),
            WaitFor::Drained => 3 << 32,
        }
    }

    fn from_word(w: u64) -> Option<WaitFor> {
        let i = w as u32;
        match w >> 32 {
            0 => Some(WaitFor::Read(i)),
            1 => Some(WaitFor::Write(i)),
            2 => Some(WaitFor::Accept(i)),
            3 => Some(WaitFor::Drained),
            _ => None,
        }
    }
}

/// The threads waiting on one connection slot.
#[derive(Debug, Default, Clone, Copy)]
struct ConnWaiters {
    reader: Option<ThreadId>,
    writer: Option<ThreadId>,
}

/// A stack handle as threads hold it, with the life of the stack it belongs to: after
/// a [restart](NetLoop::restart) the new stack hands out the same slot numbers, and
/// an old handle must reach none of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handle<T> {
    life: u32,
    pub(crate) id: T,
}

/// Counts of the loop itself (the stack and the device keep their own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Times the scheduler polled the loop.
    pub polls: u64,
    /// Packets that arrived on this core's queue for a flow another core owns, and
    /// were forwarded to it.
    pub misdirected: u64,
    /// Packets another core forwarded here.
    pub forwarded_in: u64,
    /// Device errors other than a refused packet (counted by the device).
    pub device_errors: u64,
}

/// How a network loop is set up; the same for every core of a runtime.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The stack's IPv4 address.
    pub addr: Ipv4Addr,
    /// TCP parameters (the MTU comes from the device).
    pub tcp: tcpstack::TcpConfig,
    /// Most connections per core.
    pub max_connections: usize,
    /// Most half-open passive connections per listener; SYNs beyond it are answered
    /// with SYN cookies.
    pub max_half_open: usize,
    /// Ephemeral ports for active opens.
    pub ephemeral_ports: (u16, u16),
    /// The stacks' secret (every core's); `None` for the host's
    /// ([`host_secret`](crate::host_secret)), or, if that cannot be had, one drawn
    /// once for this network. Give one for reproducible runs.
    pub isn_secret: Option<[u8; 16]>,
    /// How flows are spread over the cores' queues; `None` for a single queue.
    pub steering: Option<Steering>,
}

impl NetConfig {
    /// Defaults for everything but the address: 256 KiB buffers each way, Nagle off
    /// (servers and load generators write whole messages), 65,536 connections per core.
    pub fn new(addr: Ipv4Addr) -> NetConfig {
        NetConfig {
            addr,
            tcp: tcpstack::TcpConfig {
                nodelay: true,
                ..tcpstack::TcpConfig::default()
            },
            max_connections: 65_536,
            max_half_open: 256,
            ephemeral_ports: (32_768, 60_999),
            isn_secret: None,
            steering: None,
        }
    }
}

type Hasher = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// One core's user-space network: its stack, its device and the threads waiting on
/// them. Registered on every core by [`UserNet::install`](crate::UserNet::install).
pub struct NetLoop {
    stack: Stack,
    /// Where the stack writes each outgoing packet's headers (a packet without
    /// payload whole): an MTU.
    head: Vec<u8>,
    device: Box<dyn Device>,
    /// A core time and the stack's time then (set at the first poll or call, when
    /// the core's clock is first known; see [`NetLoop::stack_now`]).
    epoch: Option<(Instant, Duration)>,
    core: usize,
    steering: Option<Steering>,
    ephemeral_ports: (u16, u16),
    next_port: u32,
    /// This loop's id, for packets forwarded from other cores.
    id: Arc<OnceLock<LoopId>>,
    conns: Vec<ConnWaiters>,
    listeners: Vec<Vec<ThreadId>>,
    drains: Vec<ThreadId>,
    /// What each waiting thread waits for, to withdraw it when cancelled.
    waiting: HashMap<ThreadId, WaitFor, Hasher>,
    /// The last receive stopped at the budget: more packets are likely waiting.
    rx_more: bool,
    /// Restarts so far: the life of the current stack.
    life: u32,
    stats: LoopStats,
}

impl NetLoop {
    pub(crate) fn new(
        core: usize,
        config: &NetConfig,
        device: Box<dyn Device>,
        id: Arc<OnceLock<LoopId>>,
    ) -> std::io::Result<NetLoop> {
        let caps = device.caps();
        let secret = match config.isn_secret {
            Some(s) => s,
            // `UserNet::install` found neither the host's secret nor randomness.
            None => random_secret()?,
        };
        let mut sc = tcpstack::StackConfig::new(config.addr, secret);
        sc.tcp = config.tcp.clone();
        sc.tcp.mtu = caps.mtu;
        sc.tx_offload = caps.tx_offload;
        sc.max_connections = config.max_connections;
        sc.max_half_open = config.max_half_open;
        sc.ephemeral_ports = config.ephemeral_ports;
        let stack = Stack::new(sc).map_err(std::io::Error::other)?;
        Ok(NetLoop {
            stack,
            head: vec![0; caps.mtu.max(tcpstack::MIN_TRANSMIT_BUF)],
            device,
            epoch: None,
            core,
            steering: config.steering,
            ephemeral_ports: config.ephemeral_ports,
            next_port: 0,
            id,
            conns: Vec::new(),
            listeners: Vec::new(),
            drains: Vec::new(),
            waiting: HashMap::default(),
            rx_more: false,
            life: 0,
            stats: LoopStats::default(),
        })
    }

    /// The stack's time at core time `now`. On the real clock it is the host's
    /// monotonic clock, which the kernel's TCP reads too: with the host's secret, a
    /// four-tuple's next connection then carries a later ISN and timestamp than its
    /// last, from whichever process on the host (see [`crate::host_secret`]). On a mock clock
    /// it starts at zero when the loop first runs.
    fn stack_now(&mut self, now: Instant) -> tcpstack::Instant {
        let (epoch, origin) = *self.epoch.get_or_insert_with(|| (now, stack_origin(now)));
        let t = origin + now.saturating_duration_since(epoch);
        tcpstack::Instant::from_micros(t.as_micros() as u64)
    }

    /// The stack (for inspection: connection states, counters, timers).
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The stack's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.stack.config().addr
    }

    /// The core this loop runs on.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Counts of the stack, the device and the loop.
    pub fn report(&self) -> NetReport {
        let (buffers_used, buffers_pooled) = self.stack.buffer_memory();
        NetReport {
            counters: self.stack.counters().iter().collect(),
            device: self.device.stats(),
            looped: self.stats,
            connections: self.stack.connection_count() as u64,
            buffer_bytes: buffers_used as u64,
            pooled_bytes: buffers_pooled as u64,
        }
    }

    /// The device's counts.
    pub fn device_stats(&self) -> DeviceStats {
        self.device.stats()
    }

    /// Loses every connection and listener at once, as a crashed and restarted host
    /// does: the stack is replaced by a fresh one (same configuration, a new ISN
    /// secret), so peers' segments for old connections now meet resets. Waiting
    /// threads are woken and find their handles gone. The counters start again.
    pub fn restart(&mut self, cx: &mut LoopCx<'_>) {
        let mut config = self.stack.config().clone();
        for (i, b) in config.isn_secret.iter_mut().enumerate() {
            *b = b.wrapping_mul(31).wrapping_add(i as u8 + 1);
        }
        if let Ok(stack) = Stack::new(config) {
            self.stack = stack;
            self.life += 1;
        }
        for w in self.conns.iter_mut() {
            for tid in [w.reader.take(), w.writer.take()].into_iter().flatten() {
                cx.complete(tid, 0);
            }
        }
        for ws in self.listeners.iter_mut() {
            for tid in ws.drain(..) {
                cx.complete(tid, 0);
            }
        }
        for tid in self.drains.drain(..) {
            cx.complete(tid, 0);
        }
        self.waiting.clear();
    }

    // ----- the loop ------------------------------------------------------------------

    /// One pass: input, timers, events, output.
    fn run(&mut self, cx: &mut LoopCx<'_>) {
        self.stats.polls += 1;
        let now = cx.now();
        let snow = self.stack_now(now);
        let polled_device = self.device.wake_fd().is_none();
        if cx.fd_ready() || self.rx_more || polled_device {
            self.receive(now, snow, cx);
        }
        if self.stack.poll_timeout().is_some_and(|t| t <= snow) {
            self.stack.handle_timeout(snow);
        }
        self.dispatch(cx);
        self.transmit(now, snow);
    }

    /// Feeds waiting packets to the stack, forwarding those another core owns.
    fn receive(&mut self, now: Instant, snow: tcpstack::Instant, cx: &mut LoopCx<'_>) {
        self.rx_more = false;
        for _ in 0..RX_BUDGET {
            let rx = match self.device.receive(now) {
                Ok(Some(rx)) => rx,
                Ok(None) => return,
                Err(_) => {
                    self.stats.device_errors += 1;
                    return;
                }
            };
            if let Some(s) = &self.steering {
                let owner = s.queue_of_packet(rx.packet);
                if owner != self.core {
                    self.stats.misdirected += 1;
                    forward(&self.id, owner, rx.packet.to_vec(), rx.checksum_trusted);
                    continue;
                }
            }
            if rx.checksum_trusted {
                self.stack.handle_packet_trusted(snow, rx.packet);
            } else {
                self.stack.handle_packet(snow, rx.packet);
            }
        }
        self.rx_more = true;
        cx.poll_soon();
    }

    /// Writes everything the stack wants to send, then flushes the device.
    fn transmit(&mut self, now: Instant, snow: tcpstack::Instant) {
        // The stack's packets are at most as long as the device's transmit buffer; the
        // device copies them there, or sends them from where the stack keeps them.
        let max_len = self.device.transmit_buffer().len();
        let device = &mut self.device;
        // A refused packet is counted by the device; TCP retransmits it.
        let mut send = |t, g: tcpstack::Gathered<'_>| {
            let _ = device.transmit_gathered(t, g, now);
        };
        while self
            .stack
            .poll_transmit_gathered(snow, &mut self.head, max_len, &mut send)
            .is_some()
        {}
        if self.device.flush(now).is_err() {
            self.stats.device_errors += 1;
        }
    }

    /// Completes the waits the stack's events satisfy.
    fn dispatch(&mut self, cx: &mut LoopCx<'_>) {
        while let Some(ev) = self.stack.poll_event() {
            match ev {
                Event::Incoming(l) => {
                    if let Some(ws) = self.listeners.get_mut(l.index() as usize) {
                        for tid in ws.drain(..) {
                            self.waiting.remove(&tid);
                            cx.complete(tid, 0);
                        }
                    }
                }
                Event::Connected(c) | Event::Writable(c) => self.wake(c, false, true, cx),
                Event::Readable(c) | Event::PeerClosed(c) => self.wake(c, true, false, cx),
                Event::Closed(c) | Event::Reset(c) | Event::Error(c, _) => {
                    self.wake(c, true, true, cx)
                }
            }
        }
        if !self.drains.is_empty() && self.drained() {
            for tid in self.drains.drain(..) {
                self.waiting.remove(&tid);
                cx.complete(tid, 0);
            }
        }
    }

    fn wake(&mut self, c: ConnId, reader: bool, writer: bool, cx: &mut LoopCx<'_>) {
        let Some(w) = self.conns.get_mut(c.index() as usize) else {
            return;
        };
        let woken = [
            reader.then(|| w.reader.take()).flatten(),
            writer.then(|| w.writer.take()).flatten(),
        ];
        for tid in woken.into_iter().flatten() {
            self.waiting.remove(&tid);
            cx.complete(tid, 0);
        }
    }

    /// Whether every connection is closed or in TIME-WAIT.
    fn drained(&self) -> bool {
        self.stack
            .connection_states()
            .all(|s| matches!(s, TcpState::TimeWait | TcpState::Closed))
    }

    /// After an operation of a thread: wake whoever its effects satisfy and get its
    /// output sent after this batch.
    fn after_op(&mut self, cx: &mut LoopCx<'_>) {
        self.dispatch(cx);
        cx.poll_soon();
    }

    // ----- operations of threads -------------------------------------------------------

    fn handle<T>(&self, id: T) -> Handle<T> {
        Handle {
            life: self.life,
            id,
        }
    }

    /// The stack's id for `h`, if `h` belongs to the current stack.
    fn live<T>(&self, h: Handle<T>) -> Result<T, Error> {
        if h.life == self.life {
            Ok(h.id)
        } else {
            Err(stack_error(tcpstack::Error::InvalidConnection))
        }
    }

    /// A packet another core received for a flow this core owns.
    pub(crate) fn inject(&mut self, packet: &[u8], trusted: bool, cx: &mut LoopCx<'_>) {
        let snow = self.stack_now(cx.now());
        self.stats.forwarded_in += 1;
        if trusted {
            self.stack.handle_packet_trusted(snow, packet);
        } else {
            self.stack.handle_packet(snow, packet);
        }
        self.after_op(cx);
    }

    /// Listens on `port`, or on a free ephemeral port if it is 0; returns the
    /// listener and its port.
    pub(crate) fn listen(
        &mut self,
        port: u16,
        backlog: usize,
    ) -> Result<(Handle<ListenerId>, u16), Error> {
        if port != 0 {
            let l = self.stack.listen(port, backlog).map_err(stack_error)?;
            return Ok((self.handle(l), port));
        }
        let (lo, hi) = self.ephemeral_ports;
        for p in lo..=hi {
            match self.stack.listen(p, backlog) {
                Ok(l) => return Ok((self.handle(l), p)),
                Err(tcpstack::Error::AddrInUse(_)) => continue,
                Err(e) => return Err(stack_error(e)),
            }
        }
        Err(stack_error(tcpstack::Error::NoFreePorts))
    }

    pub(crate) fn unlisten(&mut self, l: Handle<ListenerId>, cx: &mut LoopCx<'_>) {
        let Ok(l) = self.live(l) else { return };
        let _ = self.stack.unlisten(l);
        self.after_op(cx);
    }

    pub(crate) fn accept(
        &mut self,
        l: Handle<ListenerId>,
        cx: &mut LoopCx<'_>,
    ) -> Result<Option<(Handle<ConnId>, SocketAddrV4, SocketAddrV4)>, Error> {
        let l = self
            .live(l)
            .map_err(|_| stack_error(tcpstack::Error::InvalidListener))?;
        match self.stack.accept(l) {
            Ok(c) => {
                let (local, remote) = self.stack.endpoints(c).map_err(stack_error)?;
                self.after_op(cx);
                Ok(Some((self.handle(c), local, remote)))
            }
            Err(tcpstack::Error::WouldBlock) => Ok(None),
            Err(e) => Err(stack_error(e)),
        }
    }

    pub(crate) fn connect(
        &mut self,
        remote: SocketAddrV4,
        cx: &mut LoopCx<'_>,
    ) -> Result<(Handle<ConnId>, SocketAddrV4), Error> {
        let now = self.stack_now(cx.now());
        let conn = match self.steering.filter(|s| s.queues() > 1) {
            None => self.stack.connect(now, remote, 0).map_err(stack_error)?,
            Some(s) => {
                // A local port whose replies the kernel steers to this core's queue.
                let (lo, hi) = self.ephemeral_ports;
                let tries = u32::from(hi - lo) + 1;
                let mut found = None;
                for _ in 0..tries {
                    let Some(port) =
                        s.port_for(self.core, remote.port(), (lo, hi), &mut self.next_port)
                    else {
                        break;
                    };
                    match self.stack.connect(now, remote, port) {
                        Ok(c) => {
                            found = Some(c);
                            break;
                        }
                        Err(tcpstack::Error::AddrInUse(_)) => continue,
                        Err(e) => return Err(stack_error(e)),
                    }
                }
                found.ok_or_else(|| stack_error(tcpstack::Error::NoFreePorts))?
            }
        };
        let (local, _) = self.stack.endpoints(conn).map_err(stack_error)?;
        self.after_op(cx);
        Ok((self.handle(conn), local))
    }

    /// Whether an active open finished: `Ok(true)` established, `Ok(false)` still in
    /// progress, or why it failed.
    pub(crate) fn connect_state(&self, c: Handle<ConnId>) -> Result<bool, Error> {
        let c = self.live(c)?;
        match self.stack.state(c).map_err(stack_error)? {
            TcpState::SynSent | TcpState::SynReceived => Ok(false),
            TcpState::Closed => {
                let info = self.stack.conn_info(c).map_err(stack_error)?;
                Err(stack_error(tcpstack::Error::Connection(
                    info.error.unwrap_or(tcpstack::ConnError::Reset),
                )))
            }
            _ => Ok(true),
        }
    }

    pub(crate) fn recv(
        &mut self,
        c: Handle<ConnId>,
        buf: &mut [u8],
        cx: &mut LoopCx<'_>,
    ) -> Result<Option<usize>, Error> {
        self.take_received(c, cx, |stack, c| stack.recv(c, buf))
    }

    /// [`NetLoop::recv`] without the copy: drops up to `max` received bytes.
    pub(crate) fn discard(
        &mut self,
        c: Handle<ConnId>,
        max: usize,
        cx: &mut LoopCx<'_>,
    ) -> Result<Option<usize>, Error> {
        self.take_received(c, cx, |stack, c| stack.discard(c, max))
    }

    /// Takes received bytes with `take`: `Ok(None)` when none are there yet.
    fn take_received(
        &mut self,
        c: Handle<ConnId>,
        cx: &mut LoopCx<'_>,
        take: impl FnOnce(&mut Stack, ConnId) -> Result<usize, tcpstack::Error>,
    ) -> Result<Option<usize>, Error> {
        let c = self.live(c)?;
        match take(&mut self.stack, c) {
            Ok(n) => {
                // Reading may open the window enough to announce it.
                self.after_op(cx);
                Ok(Some(n))
            }
            Err(tcpstack::Error::WouldBlock) => Ok(None),
            Err(e) => Err(stack_error(e)),
        }
    }

    /// Queues as much of `bufs`, in order, as the send buffer takes: `Ok(None)` when
    /// it took nothing (wait for [`WaitFor::Write`]).
    pub(crate) fn send(
        &mut self,
        c: Handle<ConnId>,
        bufs: &[&[u8]],
        cx: &mut LoopCx<'_>,
    ) -> Result<Option<usize>, Error> {
        let c = self.live(c)?;
        let now = self.stack_now(cx.now());
        let mut total = 0;
        for b in bufs {
            if b.is_empty() {
                continue;
            }
            match self.stack.send(now, c, b) {
                Ok(n) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Err(tcpstack::Error::WouldBlock) => break,
                Err(e) if total == 0 => return Err(stack_error(e)),
                Err(_) => break,
            }
        }
        if total == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Ok(None);
        }
        self.after_op(cx);
        Ok(Some(total))
    }

    /// Queues up to `len` bytes of the file `fd` from `offset`, read by the kernel
    /// straight into the send buffer from the page cache: `Ok(None)` when the buffer is
    /// full (wait for [`WaitFor::Write`]), [`FileSend::NotCached`] when the kernel
    /// cannot read the first bytes at once (read them asynchronously instead).
    pub(crate) fn send_cached_file(
        &mut self,
        c: Handle<ConnId>,
        fd: RawFd,
        offset: u64,
        len: u64,
        cx: &mut LoopCx<'_>,
    ) -> Result<Option<FileSend>, Error> {
        let c = self.live(c)?;
        let now = self.stack_now(cx.now());
        let max = usize::try_from(len).unwrap_or(usize::MAX);
        let read =
            self.stack.send_with(now, c, max, |first, second| {
                match iolib::fd::pread_cached(fd, first, second, offset) {
                    Ok(n) => (n, Ok(())),
                    Err(e) => (0, Err(e)),
                }
            });
        let sent = match read {
            Ok((n, Ok(()))) => FileSend::Sent(n),
            // Not cached (EAGAIN), or a file system that cannot tell without blocking:
            // the asynchronous read serves it, or reports the real error.
            Ok((_, Err(_))) => FileSend::NotCached,
            Err(tcpstack::Error::WouldBlock) => return Ok(None),
            Err(e) => return Err(stack_error(e)),
        };
        self.after_op(cx);
        Ok(Some(sent))
    }

    pub(crate) fn shutdown(&mut self, c: Handle<ConnId>, cx: &mut LoopCx<'_>) -> Result<(), Error> {
        let c = self.live(c)?;
        let now = self.stack_now(cx.now());
        let r = match self.stack.shutdown(now, c) {
            Ok(()) | Err(tcpstack::Error::SendShutdown | tcpstack::Error::NotConnected) => Ok(()),
            Err(e) => Err(stack_error(e)),
        };
        self.after_op(cx);
        r
    }

    /// Gives up `c`: a graceful close (FIN after the queued data, or a reset if
    /// received data was left unread), or an abort.
    pub(crate) fn close(&mut self, c: Handle<ConnId>, abort: bool, cx: &mut LoopCx<'_>) {
        let Ok(c) = self.live(c) else { return };
        let now = self.stack_now(cx.now());
        if let Some(w) = self.conns.get_mut(c.index() as usize) {
            for tid in [w.reader.take(), w.writer.take()].into_iter().flatten() {
                self.waiting.remove(&tid);
                cx.complete(tid, 0);
            }
        }
        let _ = if abort {
            self.stack.abort(c)
        } else {
            self.stack.close(now, c)
        };
        self.after_op(cx);
    }

    pub(crate) fn set_nodelay(&mut self, c: Handle<ConnId>, on: bool) -> Result<(), Error> {
        let c = self.live(c)?;
        self.stack.set_nodelay(c, on).map_err(stack_error)
    }

    pub(crate) fn endpoints(
        &self,
        c: Handle<ConnId>,
    ) -> Result<(SocketAddrV4, SocketAddrV4), Error> {
        let c = self.live(c)?;
        self.stack.endpoints(c).map_err(stack_error)
    }

    /// Registers `tid` as waiting for `what`.
    fn register(&mut self, tid: ThreadId, what: WaitFor, cx: &mut LoopCx<'_>) {
        match what {
            WaitFor::Read(i) | WaitFor::Write(i) => {
                let i = i as usize;
                if self.conns.len() <= i {
                    self.conns.resize(i + 1, ConnWaiters::default());
                }
                let w = &mut self.conns[i];
                let slot = if matches!(what, WaitFor::Read(_)) {
                    &mut w.reader
                } else {
                    &mut w.writer
                };
                if slot.is_some_and(|t| t != tid) {
                    cx.fail::<()>(
                        tid,
                        Error::other("another thread already waits on this connection"),
                    );
                    return;
                }
                *slot = Some(tid);
            }
            WaitFor::Accept(i) => {
                let i = i as usize;
                if self.listeners.len() <= i {
                    self.listeners.resize_with(i + 1, Vec::new);
                }
                self.listeners[i].push(tid);
            }
            WaitFor::Drained => {
                if self.drained() {
                    cx.complete(tid, 0);
                    return;
                }
                self.drains.push(tid);
            }
        }
        self.waiting.insert(tid, what);
    }

    fn unregister(&mut self, tid: ThreadId, what: WaitFor) {
        match what {
            WaitFor::Read(i) | WaitFor::Write(i) => {
                if let Some(w) = self.conns.get_mut(i as usize) {
                    if w.reader == Some(tid) {
                        w.reader = None;
                    }
                    if w.writer == Some(tid) {
                        w.writer = None;
                    }
                }
            }
            WaitFor::Accept(i) => {
                if let Some(ws) = self.listeners.get_mut(i as usize) {
                    ws.retain(|&t| t != tid);
                }
            }
            WaitFor::Drained => self.drains.retain(|&t| t != tid),
        }
    }
}

/// The stack's time at core time `now` when a loop first runs: the host's monotonic
/// clock if the core runs on the real clock, zero on a mock one.
fn stack_origin(now: Instant) -> Duration {
    let real = threadlib::time::Clock::current().is_ok_and(|c| !c.is_mock());
    match real.then(iolib::clock::monotonic) {
        // `now` is the core's reading of the same clock, a moment ago.
        Some(Ok(host)) => {
            host.saturating_sub(threadlib::time::now().saturating_duration_since(now))
        }
        _ => Duration::ZERO,
    }
}

/// Hands `packet` to the network loop of core `owner` (through threadlib's cross-core
/// path; it costs an allocation, and steering keeps it rare).
fn forward(id: &OnceLock<LoopId>, owner: usize, packet: Vec<u8>, trusted: bool) {
    let Some(&id) = id.get() else { return };
    let _ = threadlib::spawn_on(owner, move || async move {
        let _ = threadlib::with_loop(id, |l: &mut NetLoop, cx| l.inject(&packet, trusted, cx));
    });
}

impl EventLoop for NetLoop {
    fn name(&self) -> &'static str {
        "usernet"
    }

    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        match request {
            Request::Word(w) => match WaitFor::from_word(w) {
                Some(what) => self.register(tid, what, cx),
                None => cx.fail::<()>(tid, Error::other("usernet: unknown wait")),
            },
            Request::Boxed(_) => cx.fail::<()>(tid, Error::other("usernet: unknown request")),
        }
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        if let Some(what) = self.waiting.remove(&tid) {
            self.unregister(tid, what);
        }
        cx.cancelled(tid);
    }

    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        self.run(cx);
    }

    fn wake_fd(&self) -> Option<RawFd> {
        self.device.wake_fd()
    }

    fn wakes_at_deadlines(&self) -> bool {
        // A device without a wake fd (a simulated link) schedules every delivery.
        self.device.wake_fd().is_none()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let stack = self.epoch.and_then(|(epoch, origin)| {
            self.stack
                .poll_timeout()
                .map(|t| epoch + Duration::from_micros(t.as_micros()).saturating_sub(origin))
        });
        match (stack, self.device.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
