//! The stack: demultiplexing, listeners, connection table, control packets, timers and
//! the application-facing API.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use core::time::Duration;

use crate::buffer::BufferPool;
use crate::config::StackConfig;
use crate::conn::{Ctx, Notes, Tcb};
use crate::control::Control;
use crate::counters::Counters;
use crate::error::{ConfigError, ConnError, Error};
use crate::event::{Event, TcpState};
use crate::handle::{ConnId, ListenerId, Slab};
use crate::isn::{FourTuple, KeyedHasher, Secrets};
use crate::listener::Listener;
use crate::sink::{CopyInto, GatherInto, Gathered, PacketSink};
use crate::Instant;

/// The shortest buffer [`Stack::poll_transmit`] writes into: an IPv4 header without
/// options and the largest TCP header (60 bytes, options included).
pub const MIN_TRANSMIT_BUF: usize = 20 + 60;

/// One packet written by [`Stack::poll_transmit`] (or handed out in pieces by
/// [`Stack::poll_transmit_gathered`]), and what a device with
/// [`TxOffload`](crate::TxOffload) must finish before it goes on the wire.
///
/// The stack sends no IPv4 options, so a TCP header always starts 20 bytes into the
/// packet and its checksum field 16 bytes further (`csum_start` 20, `csum_offset` 16
/// in virtio-net terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes of the IPv4 packet: at the front of the buffer, or in its headers and
    /// payload pieces together.
    pub len: usize,
    /// `Some(n)` for a TCP super-segment (segmentation offload only): the device cuts
    /// its payload into segments of `n` bytes (the last may be shorter), repeating the
    /// headers, as virtio-net's `gso_size`.
    pub segment_size: Option<u16>,
    /// Bytes of IPv4 and TCP headers before the payload (0 for a packet that is not
    /// TCP).
    pub header_len: u16,
    /// The TCP checksum field holds only the pseudo-header sum (checksum offload): the
    /// device completes it over the TCP header and payload.
    pub partial_checksum: bool,
}

impl Transmit {
    /// A packet the device sends as it is.
    fn complete(len: usize, header_len: u16) -> Transmit {
        Transmit {
            len,
            segment_size: None,
            header_len,
            partial_checksum: false,
        }
    }
}

/// A bounded queue of stateless control packets.
#[derive(Debug)]
pub(crate) struct ControlQueue {
    queue: VecDeque<Control>,
    cap: usize,
}

impl ControlQueue {
    /// Queues `c`, counting it as sent (a reset, a cookie SYN-ACK), or drops it and
    /// counts the overflow.
    pub fn push(&mut self, c: Control, counters: &mut Counters) {
        if self.queue.len() >= self.cap {
            counters.control_queue_overflow += 1;
            return;
        }
        match c {
            Control::Rst { .. } => counters.rst_sent += 1,
            Control::CookieSynAck { .. } => counters.syn_cookies_sent += 1,
            Control::EchoReply { .. } => {}
        }
        self.queue.push_back(c);
    }
}

/// The rate limits of challenge ACKs (RFC 5961 section 7): one per connection per
/// interval, and a budget per second for the whole stack, if one is set, whose size
/// is drawn anew each second from the stack's secret.
#[derive(Debug)]
pub(crate) struct ChallengeLimiter {
    interval: Duration,
    /// The configured limit per second (`u32::MAX`: none).
    per_second: u32,
    secrets: Secrets,
    window_start: Instant,
    /// How many the current second allows, and how many it sent.
    budget: u32,
    sent: u32,
}

impl ChallengeLimiter {
    fn new(cfg: &crate::config::TcpConfig, secrets: Secrets) -> Self {
        let mut limiter = ChallengeLimiter {
            interval: cfg.challenge_ack_interval,
            per_second: cfg.challenge_ack_limit,
            secrets,
            window_start: Instant::ZERO,
            budget: 0,
            sent: 0,
        };
        limiter.budget = limiter.draw_budget();
        limiter
    }

    /// The current second's budget: between half and one and a half times the limit.
    fn draw_budget(&self) -> u32 {
        let half = self.per_second.div_ceil(2);
        let spread = u64::from(self.per_second.max(1));
        let second = self.window_start.as_micros() / 1_000_000;
        half.saturating_add((self.secrets.keyed(second) % spread) as u32)
    }

    /// Whether one more challenge ACK may be sent at `now` for a connection whose last
    /// one went out at `last` (updated when it may).
    pub fn allow(&mut self, now: Instant, last: &mut Option<Instant>) -> bool {
        if last.is_some_and(|t| now - t < self.interval) {
            return false;
        }
        if self.per_second != u32::MAX {
            if now - self.window_start >= Duration::from_secs(1) {
                self.window_start = now;
                self.sent = 0;
                self.budget = self.draw_budget();
            }
            if self.sent >= self.budget {
                return false;
            }
            self.sent += 1;
        }
        *last = Some(now);
        true
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
    /// Its entry in `time_wait` (when it entered TIME-WAIT, its expiry then).
    time_wait_key: Option<Instant>,
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
/// while let Some(t) = stack.poll_transmit(Instant::ZERO, &mut buf) {
///     let _packet = &buf[..t.len]; // write it to the device
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
    /// The connections in TIME-WAIT, by expiry: a full table recycles the first.
    time_wait: BTreeSet<(Instant, u32)>,
    challenge: ChallengeLimiter,
    next_port: u32,
    /// Storage of idle connections' buffers, for the next ones that need some.
    pool: BufferPool,
}

impl Stack {
    /// A stack with `config`, after validating it.
    pub fn new(config: StackConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let secrets = Secrets::new(&config.isn_secret);
        let challenge = ChallengeLimiter::new(&config.tcp, secrets.clone());
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
            time_wait: BTreeSet::new(),
            challenge,
            next_port: 0,
            pool: BufferPool::new(config.buffer_pool_bytes),
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

    /// The state of every connection in the table, in slot order (released ones still
    /// closing and TIME-WAIT included).
    pub fn connection_states(&self) -> impl Iterator<Item = TcpState> + '_ {
        self.conns.values().map(|c| c.tcb.state())
    }

    /// Bytes of buffer storage the connections hold (send and receive queues with data
    /// in them) and, separately, free storage kept for reuse: `(in use, pooled)`.
    pub fn buffer_memory(&self) -> (usize, usize) {
        let used = self
            .conns
            .values()
            .map(|c| c.tcb.buffer_bytes())
            .sum::<usize>();
        (used, self.pool.held_bytes())
    }

    /// Number of connections in the table (any state, including released ones still
    /// closing and TIME-WAIT).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
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
            time_wait_key: None,
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
            // A stale entry (the deadline moved or the slot was reused) is skipped.
            let Some(conn) = self.conns.at_mut(idx) else {
                continue;
            };
            if conn.timer != Some(at) {
                continue;
            }
            conn.timer = None;
            self.call(idx, |tcb, ctx| tcb.on_timeout(now, ctx));
            self.after(idx);
        }
    }

    // ----- outputs --------------------------------------------------------------------

    /// Writes the next packet to send into `buf` and says how long it is and what the
    /// device must finish, or returns `None` when there is nothing to send. `buf`
    /// should hold at least the configured MTU (with segmentation offload,
    /// [`TxOffload::segmentation`](crate::TxOffload::segmentation) bytes); a smaller
    /// buffer makes segments smaller. A buffer shorter than [`MIN_TRANSMIT_BUF`] may get
    /// `None` while a packet waits whose headers do not fit: it stays queued for the
    /// next call.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.transmit_into(now, &mut CopyInto(buf)).map(|(t, ())| t)
    }

    /// [`poll_transmit`](Self::poll_transmit) without copying the payload: writes the
    /// next packet's headers into `head` and calls `send` with them and the payload,
    /// borrowed from the connection's send buffer, to send (or copy) before it
    /// returns. Returns what `send` returned, or `None` when there is nothing to send.
    ///
    /// A packet is at most `max_len` bytes, payload included, as it is at most
    /// `buf.len()` for `poll_transmit`. `head` should hold at least the configured MTU:
    /// packets without payload (an ICMP echo reply among them) are written into it
    /// whole. With a `head` or `max_len` shorter than [`MIN_TRANSMIT_BUF`] a packet
    /// may wait for a later call, as with a short buffer. The stack does the same
    /// bookkeeping either way; whatever `send` does with the packet, the stack counts
    /// it as sent (TCP repairs a loss).
    pub fn poll_transmit_gathered<R>(
        &mut self,
        now: Instant,
        head: &mut [u8],
        max_len: usize,
        send: impl FnOnce(Transmit, Gathered<'_>) -> R,
    ) -> Option<R> {
        let mut sink = GatherInto {
            head,
            max_len,
            send: Some(send),
        };
        self.transmit_into(now, &mut sink).and_then(|(_, r)| r)
    }

    /// Puts the next packet into `sink`: control packets first, then the connections
    /// that have something to send, in turn.
    fn transmit_into<S: PacketSink>(
        &mut self,
        now: Instant,
        sink: &mut S,
    ) -> Option<(Transmit, S::Sent)> {
        while let Some(c) = self.control.queue.pop_front() {
            let Some(n) = c.emit(sink.head_room(), self.cfg.addr, self.cfg.ttl) else {
                if sink.is_short() {
                    // Too short a buffer: keep the packet for the next call.
                    self.control.queue.push_front(c);
                    return None;
                }
                // An echo reply longer than this caller's packets.
                self.counters.icmp_reply_too_long += 1;
                continue;
            };
            self.counters.ip_tx_packets += 1;
            let tcp = !matches!(c, Control::EchoReply { .. });
            if tcp {
                self.counters.tcp_tx_segments += 1;
            }
            let t = Transmit::complete(n, if tcp { n as u16 } else { 0 });
            return Some((t, sink.send(t, [&[], &[]])));
        }
        let (ttl, offload) = (self.cfg.ttl, self.cfg.tx_offload);
        while let Some(&idx) = self.tx_queue.front() {
            match self.call(idx, |tcb, ctx| {
                tcb.poll_transmit(now, sink, ttl, offload, ctx)
            }) {
                Some(Some(sent)) => {
                    self.counters.ip_tx_packets += 1;
                    self.counters.tcp_tx_segments += 1;
                    self.after(idx);
                    return Some(sent);
                }
                // With a short buffer, "nothing" may mean "nothing that fits": leave
                // the connection queued for a call with a larger one.
                Some(None) if sink.is_short() => return None,
                Some(None) => {
                    self.tx_queue.pop_front();
                    if let Some(conn) = self.conns.at_mut(idx) {
                        conn.in_tx_queue = false;
                    }
                    self.after_with(idx, false);
                }
                None => {
                    self.tx_queue.pop_front();
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
                // A connection made from a SYN cookie was never counted as half-open.
                let was_half_open = std::mem::take(&mut conn.half_open);
                if let Some(l) = self.listeners.get_mut(lid.index, lid.generation) {
                    if was_half_open {
                        l.half_open = l.half_open.saturating_sub(1);
                    }
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
        conn.tcb.reclaim_idle_buffers(&mut self.pool);
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
        let in_time_wait = conn.tcb.state() == TcpState::TimeWait;
        match (in_time_wait, conn.time_wait_key) {
            (true, None) => {
                let key = conn.tcb.deadline().unwrap_or(Instant::ZERO);
                conn.time_wait_key = Some(key);
                self.time_wait.insert((key, idx));
            }
            (false, Some(key)) => {
                conn.time_wait_key = None;
                self.time_wait.remove(&(key, idx));
            }
            _ => {}
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

    /// Whether a new connection fits the table, recycling the TIME-WAIT connection
    /// closest to expiry if that is what it takes (as Linux does when its TIME-WAIT
    /// bucket limit is reached). O(log connections): a full table with no TIME-WAIT
    /// connection costs a SYN nothing more.
    fn table_has_room(&mut self) -> bool {
        if self.conns.len() < self.cfg.max_connections {
            return true;
        }
        let idx = loop {
            let Some(&(key, idx)) = self.time_wait.first() else {
                return false;
            };
            let current = self.conns.at(idx).is_some_and(|c| {
                c.time_wait_key == Some(key) && c.tcb.state() == TcpState::TimeWait
            });
            if current {
                break idx;
            }
            // `after` and `release` keep the set exact; an entry out of date anyway
            // is dropped rather than trusted.
            self.time_wait.remove(&(key, idx));
        };
        self.counters.time_wait_recycled += 1;
        self.call(idx, |tcb, _| tcb.end_time_wait());
        self.after(idx);
        // A handle the application still holds keeps its slot.
        self.conns.len() < self.cfg.max_connections
    }

    fn release(&mut self, idx: u32) {
        if let Some(mut conn) = self.conns.remove(idx) {
            conn.tcb.release_buffers(&mut self.pool);
            if conn.in_map {
                self.by_tuple.remove(&conn.tuple);
            }
            if let Some(t) = conn.timer {
                self.timers.remove(&(t, idx));
            }
            if let Some(key) = conn.time_wait_key {
                self.time_wait.remove(&(key, idx));
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
        let r = self.call(id.index, f).ok_or(Error::InvalidConnection)?;
        self.after(id.index);
        Ok(r)
    }

    /// Runs `f` on the TCB in slot `idx` (whatever its generation) with a context.
    fn call<R>(&mut self, idx: u32, f: impl FnOnce(&mut Tcb, &mut Ctx<'_>) -> R) -> Option<R> {
        let conn = self.conns.at_mut(idx)?;
        let mut ctx = Ctx {
            counters: &mut self.counters,
            control: &mut self.control,
            challenge: &mut self.challenge,
            pool: &mut self.pool,
        };
        Some(f(&mut conn.tcb, &mut ctx))
    }
}

mod ingress;
mod requests;
#[cfg(test)]
mod tests;
