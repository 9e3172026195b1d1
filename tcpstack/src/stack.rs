//! The stack: demultiplexing, listeners, connection table, control packets, timers and
//! the application-facing API.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use crate::config::{KeepAlive, StackConfig};
use crate::conn::{Ctx, Notes, Tcb};
use crate::control::Control;
use crate::counters::Counters;
use crate::error::{ConfigError, ConnError, Error};
use crate::event::{ConnInfo, Event, TcpState};
use crate::handle::{ConnId, ListenerId, Slab};
use crate::isn::{FourTuple, KeyedHasher, Secrets};
use crate::listener::Listener;
use crate::wire::{self, flags, Ingress, Segment};
use crate::Instant;

/// A bounded queue of stateless control packets.
#[derive(Debug)]
pub(crate) struct ControlQueue {
    queue: VecDeque<Control>,
    cap: usize,
}

impl ControlQueue {
    /// Queues `c`, or drops it and counts the overflow.
    pub fn push(&mut self, c: Control, counters: &mut Counters) {
        if self.queue.len() < self.cap {
            self.queue.push_back(c);
        } else {
            counters.control_queue_overflow += 1;
        }
    }
}

/// Token bucket for challenge ACKs (RFC 5961 section 7), shared by all connections.
#[derive(Debug)]
pub(crate) struct ChallengeLimiter {
    per_second: u32,
    window_start: Instant,
    sent: u32,
}

impl ChallengeLimiter {
    /// Whether one more challenge ACK may be sent at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now - self.window_start >= Duration::from_secs(1) {
            self.window_start = now;
            self.sent = 0;
        }
        if self.sent < self.per_second {
            self.sent += 1;
            true
        } else {
            false
        }
    }
}

/// One slot of the connection table.
#[derive(Debug)]
struct Conn {
    tcb: Tcb,
    tuple: FourTuple,
    /// The listener this connection came from, until it is accepted.
    listener: Option<ListenerId>,
    /// Counted in its listener's half-open total.
    half_open: bool,
    /// The application gave up the handle; free the slot once CLOSED.
    released: bool,
    /// Present in `tx_queue`.
    in_tx_queue: bool,
    /// Its entry in `timers`.
    timer: Option<Instant>,
    /// Registered in `by_tuple`.
    in_map: bool,
}

/// A TCP/IPv4 stack: a deterministic state machine with no I/O.
///
/// Feed it packets with [`handle_packet`](Self::handle_packet) and the passage of time
/// with [`handle_timeout`](Self::handle_timeout); drain
/// [`poll_transmit`](Self::poll_transmit) (packets to send) and
/// [`poll_event`](Self::poll_event) (application events) after every input, and sleep
/// until [`poll_timeout`](Self::poll_timeout). Every `now` passed in must be
/// non-decreasing. Given the same inputs in the same order, the outputs are identical.
///
/// ```
/// use std::net::Ipv4Addr;
/// use tcpstack::{Instant, Stack, StackConfig};
///
/// let mut stack = Stack::new(StackConfig::new(Ipv4Addr::new(10, 0, 0, 2), [7; 16])).unwrap();
/// let listener = stack.listen(80, 128).unwrap();
/// let mut buf = vec![0u8; 1500];
/// // for each packet read from the device:  stack.handle_packet(now, &packet);
/// while let Some(len) = stack.poll_transmit(Instant::ZERO, &mut buf) {
///     let _packet = &buf[..len]; // write it to the device
/// }
/// assert!(stack.poll_event().is_none());
/// assert!(stack.accept(listener).is_err());
/// ```
#[derive(Debug)]
pub struct Stack {
    cfg: StackConfig,
    secrets: Secrets,
    counters: Counters,
    conns: Slab<Conn>,
    by_tuple: HashMap<FourTuple, u32, KeyedHasher>,
    listeners: Slab<Listener>,
    by_port: BTreeMap<u16, ListenerId>,
    events: VecDeque<Event>,
    control: ControlQueue,
    tx_queue: VecDeque<u32>,
    timers: BTreeSet<(Instant, u32)>,
    challenge: ChallengeLimiter,
    next_port: u32,
}

impl Stack {
    /// A stack with `config`, after validating it.
    pub fn new(config: StackConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let secrets = Secrets::new(&config.isn_secret);
        Ok(Self {
            by_tuple: HashMap::with_hasher(secrets.build_hasher()),
            secrets,
            counters: Counters::default(),
            conns: Slab::default(),
            listeners: Slab::default(),
            by_port: BTreeMap::new(),
            events: VecDeque::new(),
            control: ControlQueue {
                queue: VecDeque::new(),
                cap: config.max_control_queue,
            },
            tx_queue: VecDeque::new(),
            timers: BTreeSet::new(),
            challenge: ChallengeLimiter {
                per_second: config.tcp.challenge_ack_limit,
                window_start: Instant::ZERO,
                sent: 0,
            },
            next_port: 0,
            cfg: config,
        })
    }

    /// The configuration the stack runs with.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// The stack's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Number of connections in the table (any state, including released ones still
    /// closing and TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    // ----- inputs ---------------------------------------------------------------------

    /// Processes one IPv4 packet received at `now`. Malformed packets are dropped and
    /// counted; nothing here can fail or panic.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.counters.ip_rx_packets += 1;
        match wire::parse(packet, self.cfg.addr) {
            Err(reason) => self.counters.record_drop(reason),
            Ok(Ingress::Tcp { src, seg }) => {
                self.counters.tcp_rx_segments += 1;
                self.handle_segment(now, src, &seg);
            }
            Ok(Ingress::EchoRequest { src, icmp }) => {
                if self.cfg.icmp_echo {
                    self.counters.icmp_echo_requests += 1;
                    let c = Control::EchoReply {
                        dst: src,
                        request: icmp.into(),
                    };
                    self.control.push(c, &mut self.counters);
                } else {
                    self.counters.icmp_ignored += 1;
                }
            }
            Ok(Ingress::OtherIcmp) => self.counters.icmp_ignored += 1,
        }
    }

    fn handle_segment(&mut self, now: Instant, src: Ipv4Addr, seg: &Segment<'_>) {
        let tuple = FourTuple {
            local: SocketAddrV4::new(self.cfg.addr, seg.dst_port),
            remote: SocketAddrV4::new(src, seg.src_port),
        };
        if seg.opts.wscale.is_some_and(|w| w > 14) && seg.has(flags::SYN) {
            self.counters.tcp_wscale_clamped += 1;
        }
        if let Some(&idx) = self.by_tuple.get(&tuple) {
            let reuse = seg.flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
                && self.by_port.contains_key(&seg.dst_port)
                && self
                    .conns
                    .at(idx)
                    .is_some_and(|c| c.tcb.syn_may_reuse_time_wait(seg));
            if reuse {
                if let Some(conn) = self.conns.at_mut(idx) {
                    conn.tcb.end_time_wait();
                }
                self.after(idx);
                if let Some(&lid) = self.by_port.get(&seg.dst_port) {
                    self.listen_segment(now, lid, tuple, seg);
                }
                return;
            }
            let Self {
                conns,
                counters,
                control,
                challenge,
                ..
            } = self;
            if let Some(conn) = conns.at_mut(idx) {
                let mut ctx = Ctx {
                    counters,
                    control,
                    challenge,
                };
                conn.tcb.on_segment(now, seg, &mut ctx);
            }
            self.after(idx);
            return;
        }
        if let Some(&lid) = self.by_port.get(&seg.dst_port) {
            self.listen_segment(now, lid, tuple, seg);
            return;
        }
        self.counters.tcp_no_socket += 1;
        self.reset_for(tuple, seg);
    }

    /// RFC 9293 section 3.10.7.1: the reset answering a segment with no connection.
    fn reset_for(&mut self, tuple: FourTuple, seg: &Segment<'_>) {
        if seg.has(flags::RST) {
            return;
        }
        let c = if seg.has(flags::ACK) {
            Control::Rst {
                tuple,
                seq: seg.ack,
                ack: None,
            }
        } else {
            Control::Rst {
                tuple,
                seq: crate::SeqNum(0),
                ack: Some(seg.seq + seg.seq_len()),
            }
        };
        self.counters.rst_sent += 1;
        self.control.push(c, &mut self.counters);
    }

    /// RFC 9293 section 3.10.7.2, plus SYN cookies.
    fn listen_segment(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        seg: &Segment<'_>,
    ) {
        if seg.has(flags::RST) {
            return;
        }
        if seg.has(flags::ACK) {
            if !seg.has(flags::SYN) && self.cfg.syn_cookies {
                if let Some(mss) =
                    self.secrets
                        .check_cookie(now, &tuple, seg.seq - 1u32, seg.ack - 1u32)
                {
                    self.accept_cookie(now, lid, tuple, seg, mss);
                    return;
                }
                self.counters.syn_cookies_rejected += 1;
            }
            self.reset_for(tuple, seg);
            return;
        }
        if !seg.has(flags::SYN) {
            return;
        }
        let Some(listener) = self.listeners.get(lid.index, lid.generation) else {
            return;
        };
        if !listener.has_room() {
            self.counters.listen_overflow += 1;
            return;
        }
        if listener.half_open >= self.cfg.max_half_open
            || self.conns.len() >= self.cfg.max_connections
        {
            if self.cfg.syn_cookies {
                self.send_cookie(now, tuple, seg);
            } else if listener.half_open >= self.cfg.max_half_open {
                self.counters.listen_overflow += 1;
            } else {
                self.counters.conn_table_full += 1;
            }
            return;
        }
        let iss = self.secrets.isn(now, &tuple);
        let ts_offset = self.secrets.ts_offset(&tuple);
        let tcb = Tcb::accept_syn(now, &self.cfg.tcp, tuple, iss, ts_offset, seg);
        self.counters.passive_opens += 1;
        if let Some(l) = self.listeners.get_mut(lid.index, lid.generation) {
            l.half_open += 1;
        }
        let idx = self.insert_conn(tcb, tuple, Some(lid), true);
        self.after(idx);
    }

    fn send_cookie(&mut self, now: Instant, tuple: FourTuple, seg: &Segment<'_>) {
        let t = &self.cfg.tcp;
        let peer_mss = seg.opts.mss.unwrap_or(536).min(t.mss());
        let iss = self.secrets.cookie(now, &tuple, seg.seq, peer_mss);
        let sack = t.sack && seg.opts.sack_permitted;
        let ours = crate::buffer::window::shift_for_buffer(t.recv_buffer);
        // Window scaling and SACK survive only through the timestamp echo; without
        // timestamps the connection runs without them.
        let (wscale, timestamp) = match seg.opts.timestamp {
            Some((tsval, _)) if t.timestamps => {
                let peer_ws = match seg.opts.wscale {
                    Some(w) if t.window_scaling => u32::from(w.min(14)),
                    _ => 0xf,
                };
                let clock = crate::conn::ts_clock(now, self.secrets.ts_offset(&tuple));
                let encoded = (clock & !0x3f) | (u32::from(sack) << 4) | peer_ws;
                let ws = (peer_ws != 0xf).then_some(ours);
                (ws, Some((encoded, tsval)))
            }
            _ => (None, None),
        };
        let window = u16::try_from(t.recv_buffer).unwrap_or(u16::MAX);
        self.counters.syn_cookies_sent += 1;
        let c = Control::CookieSynAck {
            tuple,
            iss,
            ack: seg.seq + 1u32,
            window,
            mss: t.mss(),
            wscale,
            sack: sack && timestamp.is_some(),
            timestamp,
        };
        self.control.push(c, &mut self.counters);
    }

    fn accept_cookie(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        seg: &Segment<'_>,
        mss: u16,
    ) {
        let Some(listener) = self.listeners.get(lid.index, lid.generation) else {
            return;
        };
        if !listener.has_room() || self.conns.len() >= self.cfg.max_connections {
            self.counters.listen_overflow += 1;
            return;
        }
        let t = &self.cfg.tcp;
        let (peer_ws, sack) = match seg.opts.timestamp {
            Some((_, tsecr)) if t.timestamps => {
                let ws = tsecr & 0xf;
                ((ws != 0xf).then_some(ws as u8), tsecr & 0x10 != 0)
            }
            _ => (None, false),
        };
        let ts_offset = self.secrets.ts_offset(&tuple);
        let tcb = Tcb::from_cookie(now, t, tuple, ts_offset, seg, mss, peer_ws, sack);
        self.counters.syn_cookies_accepted += 1;
        self.counters.passive_opens += 1;
        self.counters.established += 1;
        let idx = self.insert_conn(tcb, tuple, Some(lid), false);
        // The completing ACK may already carry data (or a FIN).
        if !seg.payload.is_empty() || seg.has(flags::FIN) {
            let Self {
                conns,
                counters,
                control,
                challenge,
                ..
            } = self;
            if let Some(conn) = conns.at_mut(idx) {
                let mut ctx = Ctx {
                    counters,
                    control,
                    challenge,
                };
                conn.tcb.on_segment(now, seg, &mut ctx);
            }
        }
        self.after(idx);
    }

    fn insert_conn(
        &mut self,
        tcb: Tcb,
        tuple: FourTuple,
        listener: Option<ListenerId>,
        half_open: bool,
    ) -> u32 {
        let (idx, _) = self.conns.insert(Conn {
            tcb,
            tuple,
            listener,
            half_open,
            released: listener.is_some(),
            in_tx_queue: false,
            timer: None,
            in_map: true,
        });
        self.by_tuple.insert(tuple, idx);
        idx
    }

    /// Advances timers to `now`: retransmissions, delayed ACKs, probes, TIME-WAIT.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, idx)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Self {
                conns,
                counters,
                control,
                challenge,
                ..
            } = self;
            if let Some(conn) = conns.at_mut(idx) {
                if conn.timer != Some(at) {
                    continue;
                }
                conn.timer = None;
                let mut ctx = Ctx {
                    counters,
                    control,
                    challenge,
                };
                conn.tcb.on_timeout(now, &mut ctx);
            }
            self.after(idx);
        }
    }

    // ----- outputs --------------------------------------------------------------------

    /// Writes the next packet to send into `buf` and returns its length, or `None` when
    /// there is nothing to send. `buf` should hold at least the configured MTU; a
    /// smaller buffer makes segments smaller.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        while let Some(c) = self.control.queue.pop_front() {
            if let Some(n) = c.emit(buf, self.cfg.addr, self.cfg.ttl) {
                self.counters.ip_tx_packets += 1;
                if !matches!(c, Control::EchoReply { .. }) {
                    self.counters.tcp_tx_segments += 1;
                }
                return Some(n);
            }
        }
        while let Some(&idx) = self.tx_queue.front() {
            let Self {
                conns,
                counters,
                control,
                challenge,
                cfg,
                ..
            } = self;
            let Some(conn) = conns.at_mut(idx) else {
                self.tx_queue.pop_front();
                continue;
            };
            let mut ctx = Ctx {
                counters,
                control,
                challenge,
            };
            let out = conn.tcb.poll_transmit(now, buf, cfg.ttl, &mut ctx);
            match out {
                Some(n) => {
                    self.counters.ip_tx_packets += 1;
                    self.counters.tcp_tx_segments += 1;
                    self.after(idx);
                    return Some(n);
                }
                None => {
                    self.tx_queue.pop_front();
                    conn.in_tx_queue = false;
                    self.after_with(idx, false);
                }
            }
        }
        None
    }

    /// The next application event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) must be
    /// called, if any timer is armed. It may be earlier than strictly needed (a timer
    /// that was pushed back or cancelled); calling `handle_timeout` then does nothing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    // ----- bookkeeping after every call into a connection -----------------------------

    /// Propagates a connection's notes into events, queues, timers and the table.
    fn after(&mut self, idx: u32) {
        self.after_with(idx, true);
    }

    /// [`after`](Self::after); `requeue` false when the connection just declined to
    /// transmit (its "wants" may be held back by Nagle or the windows until an input).
    fn after_with(&mut self, idx: u32, requeue: bool) {
        let generation = self.conns.generation(idx);
        let Some(conn) = self.conns.at_mut(idx) else {
            return;
        };
        let id = ConnId::new(idx, generation);
        let notes = conn.tcb.take_notes();
        let released = conn.released;
        // Passive connections are reported through their listener until accepted.
        if let Some(lid) = conn.listener {
            if notes.contains(Notes::ESTABLISHED) {
                conn.half_open = false;
                if let Some(l) = self.listeners.get_mut(lid.index, lid.generation) {
                    l.half_open = l.half_open.saturating_sub(1);
                    l.ready.push_back(id);
                    if !l.notified {
                        l.notified = true;
                        self.events.push_back(Event::Incoming(lid));
                    }
                }
            }
        } else if !released {
            if notes.contains(Notes::ESTABLISHED) {
                self.events.push_back(Event::Connected(id));
            }
            if notes.contains(Notes::READABLE) {
                self.events.push_back(Event::Readable(id));
            }
            if notes.contains(Notes::PEER_FIN) {
                self.events.push_back(Event::PeerClosed(id));
            }
            if notes.contains(Notes::WRITABLE) {
                self.events.push_back(Event::Writable(id));
            }
            if notes.contains(Notes::CLOSED) {
                self.events.push_back(match conn.tcb.error() {
                    None => Event::Closed(id),
                    Some(ConnError::Reset) => Event::Reset(id),
                    Some(e) => Event::Error(id, e),
                });
            }
        }
        let conn = self.conns.at_mut(idx).expect("checked above");
        if requeue && !conn.in_tx_queue && conn.tcb.wants_transmit() {
            conn.in_tx_queue = true;
            self.tx_queue.push_back(idx);
        }
        // Timers are indexed lazily: an entry is replaced only when the deadline moves
        // earlier. A later or cancelled deadline leaves the old entry, which fires early
        // and harmlessly re-registers the real one (an RTO restarted by every ACK then
        // costs no index update).
        if let Some(new) = conn.tcb.deadline() {
            if conn.timer.is_none_or(|registered| new < registered) {
                if let Some(old) = conn.timer.replace(new) {
                    self.timers.remove(&(old, idx));
                }
                self.timers.insert((new, idx));
            }
        }
        if conn.tcb.state() == TcpState::Closed {
            self.finish(idx, id);
        }
    }

    /// A connection reached CLOSED: unmap it, report it, free it when released.
    fn finish(&mut self, idx: u32, id: ConnId) {
        let Some(conn) = self.conns.at_mut(idx) else {
            return;
        };
        if conn.in_map {
            conn.in_map = false;
            let tuple = conn.tuple;
            self.by_tuple.remove(&tuple);
        }
        if let Some(old) = conn.timer.take() {
            self.timers.remove(&(old, idx));
        }
        let listener = conn.listener.take();
        let half_open = std::mem::take(&mut conn.half_open);
        if let Some(lid) = listener {
            // Died before accept: nobody holds the handle.
            if let Some(l) = self.listeners.get_mut(lid.index, lid.generation) {
                if half_open {
                    l.half_open = l.half_open.saturating_sub(1);
                }
                l.ready.retain(|&c| c != id);
            }
            self.release(idx);
            return;
        }
        if conn.released {
            self.release(idx);
        }
    }

    fn release(&mut self, idx: u32) {
        if let Some(conn) = self.conns.remove(idx) {
            if conn.in_map {
                self.by_tuple.remove(&conn.tuple);
            }
            if let Some(t) = conn.timer {
                self.timers.remove(&(t, idx));
            }
            if conn.in_tx_queue {
                self.tx_queue.retain(|&i| i != idx);
            }
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Result<&mut Conn, Error> {
        self.conns
            .get_mut(id.index, id.generation)
            .filter(|c| !c.released)
            .ok_or(Error::InvalidConnection)
    }

    fn conn(&self, id: ConnId) -> Result<&Conn, Error> {
        self.conns
            .get(id.index, id.generation)
            .filter(|c| !c.released)
            .ok_or(Error::InvalidConnection)
    }

    /// Runs `f` on the connection's TCB with a context, then does the bookkeeping.
    fn with_tcb<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Tcb, &mut Ctx<'_>) -> R,
    ) -> Result<R, Error> {
        self.conn_mut(id)?;
        let Self {
            conns,
            counters,
            control,
            challenge,
            ..
        } = self;
        let conn = conns
            .get_mut(id.index, id.generation)
            .ok_or(Error::InvalidConnection)?;
        let mut ctx = Ctx {
            counters,
            control,
            challenge,
        };
        let r = f(&mut conn.tcb, &mut ctx);
        self.after(id.index);
        Ok(r)
    }

    // ----- application requests -------------------------------------------------------

    /// Listens on `port`, keeping at most `backlog` established connections waiting
    /// for [`accept`](Self::accept) (at least one).
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, Error> {
        if port == 0 {
            return Err(Error::InvalidArgument("port 0"));
        }
        if self.by_port.contains_key(&port) {
            return Err(Error::AddrInUse(port));
        }
        let (i, g) = self.listeners.insert(Listener::new(port, backlog));
        let id = ListenerId::new(i, g);
        self.by_port.insert(port, id);
        Ok(id)
    }

    /// Stops listening. Connections not yet accepted are reset.
    pub fn unlisten(&mut self, listener: ListenerId) -> Result<(), Error> {
        let l = self
            .listeners
            .get(listener.index, listener.generation)
            .ok_or(Error::InvalidListener)?;
        self.by_port.remove(&l.port);
        let orphans: Vec<u32> = self.conns_of(listener).collect();
        for idx in orphans {
            let Self {
                conns,
                counters,
                control,
                challenge,
                ..
            } = self;
            if let Some(conn) = conns.at_mut(idx) {
                let mut ctx = Ctx {
                    counters,
                    control,
                    challenge,
                };
                conn.tcb.abort(&mut ctx);
            }
            self.after(idx);
        }
        self.listeners.remove(listener.index);
        Ok(())
    }

    fn conns_of(&self, listener: ListenerId) -> impl Iterator<Item = u32> + '_ {
        self.by_tuple
            .values()
            .copied()
            .filter(move |&i| {
                self.conns
                    .at(i)
                    .is_some_and(|c| c.listener == Some(listener))
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    /// Takes the next established connection from `listener`'s queue;
    /// [`Error::WouldBlock`] when none is waiting.
    pub fn accept(&mut self, listener: ListenerId) -> Result<ConnId, Error> {
        let l = self
            .listeners
            .get_mut(listener.index, listener.generation)
            .ok_or(Error::InvalidListener)?;
        let Some(id) = l.ready.pop_front() else {
            l.notified = false;
            return Err(Error::WouldBlock);
        };
        if l.ready.is_empty() {
            l.notified = false;
        }
        let conn = self
            .conns
            .get_mut(id.index, id.generation)
            .ok_or(Error::InvalidConnection)?;
        conn.listener = None;
        conn.released = false;
        // Data or FIN may have arrived before the accept: report it now.
        conn.tcb.renotify();
        self.after(id.index);
        Ok(id)
    }

    /// Opens a connection to `remote` (active open). `local_port` 0 picks an
    /// ephemeral port. [`Event::Connected`] or an error event follows.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        local_port: u16,
    ) -> Result<ConnId, Error> {
        if remote.port() == 0 || remote.ip().is_unspecified() || remote.ip().is_broadcast() {
            return Err(Error::InvalidArgument("remote address"));
        }
        if self.conns.len() >= self.cfg.max_connections {
            return Err(Error::TooManyConnections);
        }
        let tuple = if local_port == 0 {
            self.ephemeral(remote)?
        } else {
            let t = FourTuple {
                local: SocketAddrV4::new(self.cfg.addr, local_port),
                remote,
            };
            if self.by_tuple.contains_key(&t) {
                return Err(Error::AddrInUse(local_port));
            }
            t
        };
        let iss = self.secrets.isn(now, &tuple);
        let ts_offset = self.secrets.ts_offset(&tuple);
        let tcb = Tcb::connect(now, &self.cfg.tcp, tuple, iss, ts_offset);
        self.counters.active_opens += 1;
        let idx = self.insert_conn(tcb, tuple, None, false);
        let id = ConnId::new(idx, self.conns.generation(idx));
        self.after(idx);
        Ok(id)
    }

    /// RFC 6056 algorithm 3: a keyed offset per remote endpoint, then linear search.
    fn ephemeral(&mut self, remote: SocketAddrV4) -> Result<FourTuple, Error> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let n = u32::from(hi - lo) + 1;
        let probe = FourTuple {
            local: SocketAddrV4::new(self.cfg.addr, 0),
            remote,
        };
        let offset = self.secrets.ts_offset(&probe);
        for i in 0..n {
            let port = lo + (offset.wrapping_add(self.next_port).wrapping_add(i) % n) as u16;
            let t = FourTuple {
                local: SocketAddrV4::new(self.cfg.addr, port),
                remote,
            };
            if !self.by_tuple.contains_key(&t) && !self.by_port.contains_key(&port) {
                self.next_port = self.next_port.wrapping_add(i + 1);
                return Ok(t);
            }
        }
        Err(Error::NoFreePorts)
    }

    /// Queues `data` for sending; returns how many bytes were taken (possibly fewer than
    /// offered). [`Error::WouldBlock`] when the send buffer is full; a
    /// [`Event::Writable`] follows when space frees up.
    pub fn send(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> Result<usize, Error> {
        self.with_tcb(conn, |tcb, _| tcb.send(now, data))?
    }

    /// Reads received bytes into `buf`. `Ok(0)` (with a non-empty `buf`) is end of
    /// stream: the peer closed its side and everything was read.
    /// [`Error::WouldBlock`] when nothing is available yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, Error> {
        self.with_tcb(conn, |tcb, _| tcb.recv(buf))?
    }

    /// Closes the send side after the queued data (half-close: sends FIN); reading
    /// continues until the peer closes.
    pub fn shutdown(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, _| tcb.shutdown(now))?
    }

    /// Gives up the handle. The connection closes gracefully in the background (queued
    /// data is still delivered, then FIN); if received data was left unread it is reset
    /// instead (RFC 9293 section 3.10.4 / RFC 2525). The handle is invalid afterwards.
    pub fn close(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, ctx| tcb.close(now, ctx))?;
        let c = self.conn_mut(conn)?;
        c.released = true;
        let closed = c.tcb.state() == TcpState::Closed;
        if closed {
            self.release(conn.index);
        }
        Ok(())
    }

    /// Resets the connection at once (RST to the peer if synchronized) and gives up
    /// the handle.
    pub fn abort(&mut self, conn: ConnId) -> Result<(), Error> {
        self.conn_mut(conn)?.released = true;
        let Self {
            conns,
            counters,
            control,
            challenge,
            ..
        } = self;
        if let Some(c) = conns.get_mut(conn.index, conn.generation) {
            let mut ctx = Ctx {
                counters,
                control,
                challenge,
            };
            c.tcb.abort(&mut ctx);
        }
        self.after(conn.index);
        self.release(conn.index);
        Ok(())
    }

    /// Disables (`true`) or enables Nagle's algorithm.
    pub fn set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, _| tcb.set_nodelay(nodelay))
    }

    /// Enables keep-alive with the given parameters, or disables it.
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        conn: ConnId,
        keepalive: Option<KeepAlive>,
    ) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, _| tcb.set_keepalive(now, keepalive))
    }

    /// The connection's state.
    pub fn state(&self, conn: ConnId) -> Result<TcpState, Error> {
        Ok(self.conn(conn)?.tcb.state())
    }

    /// A snapshot of the connection's state, windows and timers.
    pub fn conn_info(&self, conn: ConnId) -> Result<ConnInfo, Error> {
        Ok(self.conn(conn)?.tcb.info())
    }

    /// Local and remote endpoints of the connection.
    pub fn endpoints(&self, conn: ConnId) -> Result<(SocketAddrV4, SocketAddrV4), Error> {
        let c = self.conn(conn)?;
        Ok((c.tuple.local, c.tuple.remote))
    }

    /// Bytes that [`send`](Self::send) would accept now.
    pub fn send_capacity(&self, conn: ConnId) -> Result<usize, Error> {
        Ok(self.conn(conn)?.tcb.send_capacity())
    }

    /// Bytes that [`recv`](Self::recv) would return now.
    pub fn recv_available(&self, conn: ConnId) -> Result<usize, Error> {
        Ok(self.conn(conn)?.tcb.recv_available())
    }
}

#[cfg(test)]
mod tests;
