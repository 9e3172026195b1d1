//! State-machine tests: two stacks wired back to back in one process.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use crate::wire::{self, flags, Ingress};
use crate::{
    ConnError, ConnId, Error, Event, Instant, KeepAlive, Stack, StackConfig, TcpConfig, TcpState,
    MIN_TRANSMIT_BUF,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Decides whether to drop a packet: `(sent by A, index in that direction, packet)`.
type DropFilter = Box<dyn FnMut(bool, u64, &[u8]) -> bool>;

/// Two stacks and a link with a programmable drop filter.
struct Pair {
    a: Stack,
    b: Stack,
    now: Instant,
    /// Called with (from_a, packet index in that direction, packet); true drops it.
    drop: DropFilter,
    sent: [u64; 2],
    events_a: Vec<Event>,
    events_b: Vec<Event>,
    /// A sends with `poll_transmit_gathered`, putting each packet together itself.
    gather_a: bool,
    /// Every packet A sent, as the stack emitted it (before any offload is finished).
    log_a: Option<Vec<Vec<u8>>>,
    /// Packets A gathered whose payload came in two pieces.
    split_a: u64,
}

fn config(addr: Ipv4Addr, tcp: TcpConfig) -> StackConfig {
    let mut c = StackConfig::new(addr, [addr.octets()[3]; 16]);
    c.tcp = tcp;
    c
}

impl Pair {
    fn new(tcp: TcpConfig) -> Self {
        Self::with(tcp, |_| {})
    }

    /// A pair whose stack A's configuration `tweak` adjusts.
    fn with(tcp: TcpConfig, tweak: impl FnOnce(&mut StackConfig)) -> Self {
        let mut a = config(A, tcp.clone());
        tweak(&mut a);
        Pair {
            a: Stack::new(a).unwrap(),
            b: Stack::new(config(B, tcp)).unwrap(),
            now: Instant::from_millis(1000),
            drop: Box::new(|_, _, _| false),
            sent: [0; 2],
            events_a: Vec::new(),
            events_b: Vec::new(),
            gather_a: false,
            log_a: None,
            split_a: 0,
        }
    }

    /// Moves packets (100 us per round) and fires timers for `span` of simulated time.
    /// What a stack with transmit offload leaves undone, the link does in software (as
    /// a device would): every packet on the link is a complete wire packet.
    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        let mut buf = vec![0u8; 65536];
        let mut head = vec![0u8; 1500];
        let mut scratch = Vec::new();
        let mut wire_packets = Vec::new();
        loop {
            let mut moved = false;
            for from_a in [true, false] {
                loop {
                    let (src, dst) = if from_a {
                        (&mut self.a, &mut self.b)
                    } else {
                        (&mut self.b, &mut self.a)
                    };
                    let sent = if from_a && self.gather_a {
                        let max = buf.len();
                        let split = &mut self.split_a;
                        src.poll_transmit_gathered(self.now, &mut head, max, |t, g| {
                            *split += u64::from(g.payload.iter().all(|p| !p.is_empty()));
                            let mut at = 0;
                            for piece in [g.headers, g.payload[0], g.payload[1]] {
                                buf[at..at + piece.len()].copy_from_slice(piece);
                                at += piece.len();
                            }
                            assert_eq!(at, t.len, "{t:?}");
                            t
                        })
                    } else {
                        src.poll_transmit(self.now, &mut buf)
                    };
                    let Some(t) = sent else {
                        break;
                    };
                    moved = true;
                    if let (true, Some(log)) = (from_a, &mut self.log_a) {
                        log.push(buf[..t.len].to_vec());
                    }
                    wire_packets.clear();
                    wire::finish_offload(&buf, t, &mut scratch, |p| wire_packets.push(p.to_vec()))
                        .expect("the stack emits well-formed packets");
                    for p in &wire_packets {
                        let i = &mut self.sent[usize::from(!from_a)];
                        *i += 1;
                        if !(self.drop)(from_a, *i, p) {
                            dst.handle_packet(self.now, p);
                        }
                    }
                }
            }
            while let Some(e) = self.a.poll_event() {
                self.events_a.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                self.events_b.push(e);
            }
            if moved {
                self.now += Duration::from_micros(100);
                if self.now >= end {
                    return;
                }
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.now = self.now.max(end);
                    return;
                }
            }
        }
    }

    /// Connects A to B's listener on port 80; returns (client, server) handles.
    fn connect(&mut self) -> (ConnId, ConnId) {
        let l = self.b.listen(80, 16).unwrap();
        let c = self
            .a
            .connect(self.now, SocketAddrV4::new(B, 80), 0)
            .unwrap();
        self.run_for(Duration::from_millis(10));
        assert!(
            self.events_a.contains(&Event::Connected(c)),
            "{:?}",
            self.events_a
        );
        assert!(self.events_b.contains(&Event::Incoming(l)));
        let s = self.b.accept(l).unwrap();
        (c, s)
    }
}

/// Reads everything available.
fn drain(stack: &mut Stack, c: ConnId, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 8192];
    loop {
        match stack.recv(c, &mut buf) {
            Ok(0) => return true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Error::WouldBlock) => return false,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends all of `data` from `src` over the pair, reading at `dst`, closing after.
fn transfer(p: &mut Pair, from_a: bool, c: ConnId, s: ConnId, data: &[u8]) -> Vec<u8> {
    transfer_in_steps(p, from_a, c, s, data, Duration::from_millis(5))
}

/// [`transfer`], the application writing and reading every `step` (for up to 10 s).
fn transfer_in_steps(
    p: &mut Pair,
    from_a: bool,
    c: ConnId,
    s: ConnId,
    data: &[u8],
    step: Duration,
) -> Vec<u8> {
    let (tx, rx) = if from_a { (c, s) } else { (s, c) };
    let mut off = 0;
    let mut got = Vec::new();
    let steps = Duration::from_secs(10).as_nanos() / step.as_nanos();
    for _ in 0..steps {
        let now = p.now;
        let (src, dst) = if from_a {
            (&mut p.a, &mut p.b)
        } else {
            (&mut p.b, &mut p.a)
        };
        if off < data.len() {
            match src.send(now, tx, &data[off..]) {
                Ok(n) => off += n,
                Err(Error::WouldBlock) => {}
                Err(e) => panic!("send: {e}"),
            }
        }
        drain(dst, rx, &mut got);
        if got.len() == data.len() {
            break;
        }
        p.run_for(step);
    }
    got
}

#[test]
fn handshake_data_both_ways_and_graceful_close() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    let info = p.a.conn_info(c).unwrap();
    assert_eq!(info.state, TcpState::Established);
    assert!(info.timestamps && info.sack && info.window_scale.is_some());
    assert_eq!(info.mss, 1460 - 12);

    let up = pattern(300_000, 1);
    assert_eq!(transfer(&mut p, true, c, s, &up), up);
    p.run_for(Duration::from_millis(50)); // the last delayed ACK
    assert_eq!(p.a.conn_info(c).unwrap().bytes_acked, 300_000);
    assert_eq!(p.b.conn_info(s).unwrap().bytes_received, 300_000);
    let down = pattern(200_000, 2);
    assert_eq!(transfer(&mut p, false, c, s, &down), down);

    p.a.shutdown(p.now, c).unwrap();
    p.run_for(Duration::from_millis(10));
    assert!(p.events_b.contains(&Event::PeerClosed(s)));
    let mut rest = Vec::new();
    assert!(drain(&mut p.b, s, &mut rest));
    assert_eq!(p.a.state(c).unwrap(), TcpState::FinWait2);
    // Half-closed: B can still send.
    let tail = pattern(10_000, 3);
    assert_eq!(transfer(&mut p, false, c, s, &tail), tail);
    p.b.close(p.now, s).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.a.state(c).unwrap(), TcpState::TimeWait);
    assert!(p.events_a.contains(&Event::Closed(c)));
    assert_eq!(p.b.connection_count(), 0, "LAST-ACK side is freed");
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.a.state(c).unwrap(), TcpState::Closed);
    assert_eq!(p.a.counters().time_wait_expired, 1);
    p.a.close(p.now, c).unwrap();
    assert_eq!(p.a.connection_count(), 0);
    assert_eq!(p.a.state(c), Err(Error::InvalidConnection));
}

#[test]
fn closed_port_answers_rst_and_connect_is_refused() {
    let mut p = Pair::new(TcpConfig::default());
    let c = p.a.connect(p.now, SocketAddrV4::new(B, 9), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.b.counters().tcp_no_socket, 1);
    assert_eq!(p.b.counters().rst_sent, 1);
    assert!(p.events_a.contains(&Event::Error(c, ConnError::Refused)));
    assert_eq!(p.a.state(c).unwrap(), TcpState::Closed);
    assert_eq!(
        p.a.send(p.now, c, b"x"),
        Err(Error::Connection(ConnError::Refused))
    );
}

#[test]
fn lost_segments_are_retransmitted_after_timeout() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    // Drop the first five data packets A sends after the handshake.
    let base = p.sent[0];
    p.drop = Box::new(move |from_a, i, _| from_a && (base + 1..=base + 5).contains(&i));
    p.a.send(p.now, c, b"hello").unwrap();
    p.run_for(Duration::from_millis(150));
    assert_eq!(p.b.recv_available(s).unwrap(), 0);
    p.run_for(Duration::from_secs(3));
    let mut got = Vec::new();
    drain(&mut p.b, s, &mut got);
    assert_eq!(got, b"hello");
    // The first four repairs are loss probes (lost too), the fifth a timeout.
    let ca = p.a.counters();
    assert_eq!(ca.tail_loss_probes, 4, "{ca:?}");
    assert!(ca.rto_expirations >= 1, "{ca:?}");
    assert!(ca.retransmits >= 5, "{ca:?}");
}

#[test]
fn a_pure_ack_at_the_right_window_edge_still_acknowledges() {
    // A's window is 4 KiB; B fills it with data that is all lost, so B's pure ACKs
    // start exactly at the right edge of A's window. Their acknowledgments count:
    // A must not retransmit data B already has.
    let tcp = TcpConfig {
        recv_buffer: 4096,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, s) = p.connect();
    let payload = |pkt: &[u8]| {
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
        total - ihl - usize::from(pkt[ihl + 12] >> 4) * 4
    };
    p.drop = Box::new(move |from_a, _, pkt| !from_a && payload(pkt) > 0);
    assert_eq!(p.b.send(p.now, s, &pattern(4096, 1)).unwrap(), 4096);
    p.run_for(Duration::from_millis(5));
    p.a.send(p.now, c, b"request").unwrap();
    p.run_for(Duration::from_secs(5));
    let mut got = Vec::new();
    drain(&mut p.b, s, &mut got);
    assert_eq!(got, b"request");
    // B piggybacks its ACK of the request on data that is lost, so A may probe
    // before B's pure ACK comes; but that ACK counts, so no timeout follows.
    let ca = p.a.counters();
    assert_eq!(ca.rto_expirations, 0, "{ca:?}");
    assert!(ca.retransmits <= ca.tail_loss_probes, "{ca:?}");
    assert!(ca.out_of_window == 0, "{ca:?}");
}

#[test]
fn retry_limit_aborts_with_timeout() {
    let tcp = TcpConfig {
        max_retries: 3,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, _s) = p.connect();
    p.drop = Box::new(|_, _, _| true);
    p.a.send(p.now, c, b"into the void").unwrap();
    p.run_for(Duration::from_secs(120));
    assert!(p
        .events_a
        .contains(&Event::Error(c, ConnError::TimedOut { retries: 3 })));
    assert_eq!(p.a.counters().timeouts, 1);
}

#[test]
fn sack_blocks_drive_fast_retransmit() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    let base = p.sent[0];
    p.drop = Box::new(move |from_a, i, _| from_a && i == base + 2);
    let data = pattern(20 * 1448, 9);
    assert_eq!(transfer(&mut p, true, c, s, &data), data);
    let ca = p.a.counters();
    assert!(ca.sack_blocks_received > 0);
    assert_eq!(ca.fast_retransmits, 1);
    assert_eq!(ca.rto_expirations, 0);
    assert!(p.b.counters().out_of_order > 0);
}

/// The last segment of a burst is lost: no duplicate ACK can follow it, and the tail
/// loss probe (RFC 8985), not the retransmission timeout, repairs it.
#[test]
fn a_lost_tail_is_repaired_by_a_tail_loss_probe() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    let base = p.sent[0];
    p.drop = Box::new(move |from_a, i, _| from_a && i == base + 8);
    let data = pattern(8 * 1448, 2);
    assert_eq!(transfer(&mut p, true, c, s, &data), data);
    let ca = p.a.counters();
    assert_eq!(ca.tail_loss_probes, 1, "{ca:?}");
    assert_eq!(ca.rto_expirations, 0, "{ca:?}");
    assert_eq!(ca.retransmits, 1, "{ca:?}");
}

#[test]
fn no_sack_no_timestamps_still_recovers() {
    let tcp = TcpConfig {
        sack: false,
        timestamps: false,
        window_scaling: false,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, s) = p.connect();
    let info = p.a.conn_info(c).unwrap();
    assert!(!info.sack && !info.timestamps && info.window_scale.is_none());
    let base = p.sent[0];
    p.drop = Box::new(move |from_a, i, _| from_a && (i == base + 3 || i == base + 9));
    let data = pattern(40 * 1460, 4);
    assert_eq!(transfer(&mut p, true, c, s, &data), data);
    assert!(p.a.counters().retransmits >= 2);
}

#[test]
fn window_scaling_carries_a_large_window() {
    let tcp = TcpConfig {
        recv_buffer: 4 << 20,
        send_buffer: 4 << 20,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, s) = p.connect();
    let info = p.a.conn_info(c).unwrap();
    assert_eq!(info.window_scale, Some((7, 7)));
    p.a.send(p.now, c, &pattern(1000, 0)).unwrap();
    p.run_for(Duration::from_millis(100));
    assert!(p.a.conn_info(c).unwrap().send_window > 65535 * 8);
    assert!(p.b.conn_info(s).unwrap().recv_window > 65535 * 8);
}

#[test]
fn simultaneous_open_and_close() {
    let mut p = Pair::new(TcpConfig::default());
    let ca =
        p.a.connect(p.now, SocketAddrV4::new(B, 5000), 6000)
            .unwrap();
    let cb =
        p.b.connect(p.now, SocketAddrV4::new(A, 6000), 5000)
            .unwrap();
    p.run_for(Duration::from_millis(10));
    assert!(p.events_a.contains(&Event::Connected(ca)));
    assert!(p.events_b.contains(&Event::Connected(cb)));
    assert_eq!(transfer(&mut p, true, ca, cb, b"ping"), b"ping");
    p.a.shutdown(p.now, ca).unwrap();
    p.b.shutdown(p.now, cb).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.a.state(ca).unwrap(), TcpState::TimeWait);
    assert_eq!(p.b.state(cb).unwrap(), TcpState::TimeWait);
}

#[test]
fn abort_resets_the_peer() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    p.a.abort(c).unwrap();
    p.run_for(Duration::from_millis(10));
    assert!(p.events_b.contains(&Event::Reset(s)));
    assert_eq!(
        p.b.recv(s, &mut [0; 4]),
        Err(Error::Connection(ConnError::Reset))
    );
    assert_eq!(p.a.state(c), Err(Error::InvalidConnection));
}

#[test]
fn zero_window_is_probed_and_reopens() {
    let tcp = TcpConfig {
        recv_buffer: 8192,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, s) = p.connect();
    let data = pattern(50_000, 5);
    let n = p.a.send(p.now, c, &data).unwrap();
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.b.recv_available(s).unwrap(), 8192);
    assert_eq!(p.a.conn_info(c).unwrap().send_window, 0);
    assert!(p.a.counters().window_probes > 0);
    let mut got = Vec::new();
    drain(&mut p.b, s, &mut got);
    p.run_for(Duration::from_secs(5));
    drain(&mut p.b, s, &mut got);
    p.run_for(Duration::from_secs(5));
    drain(&mut p.b, s, &mut got);
    assert!(got.len() > 8192);
    assert_eq!(&got[..], &data[..got.len()]);
    assert!(got.len() <= n);
}

#[test]
fn syn_cookies_when_half_open_queue_is_full() {
    let mut p = Pair::new(TcpConfig::default());
    p.b.cfg.max_half_open = 0;
    let l = p.b.listen(80, 4).unwrap();
    let c = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.b.counters().syn_cookies_sent, 1);
    assert_eq!(p.b.counters().syn_cookies_accepted, 1);
    assert!(p.events_a.contains(&Event::Connected(c)));
    let s = p.b.accept(l).unwrap();
    let info = p.b.conn_info(s).unwrap();
    assert!(info.sack && info.timestamps && info.window_scale.is_some());
    let data = pattern(100_000, 6);
    assert_eq!(transfer(&mut p, true, c, s, &data), data);
}

#[test]
fn keepalive_detects_a_dead_peer() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, _s) = p.connect();
    let ka = KeepAlive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    p.a.set_keepalive(p.now, c, Some(ka)).unwrap();
    p.run_for(Duration::from_secs(12));
    assert!(p.a.counters().keepalive_probes >= 1);
    assert_eq!(p.a.state(c).unwrap(), TcpState::Established);
    p.drop = Box::new(|_, _, _| true);
    p.run_for(Duration::from_secs(30));
    assert!(p
        .events_a
        .contains(&Event::Error(c, ConnError::KeepAliveTimedOut)));
}

#[test]
fn stale_handles_are_rejected_after_reuse() {
    let mut p = Pair::new(TcpConfig::default());
    let c = p.a.connect(p.now, SocketAddrV4::new(B, 9), 0).unwrap();
    p.a.abort(c).unwrap();
    let d = p.a.connect(p.now, SocketAddrV4::new(B, 9), 0).unwrap();
    assert_eq!(c.index(), d.index());
    assert_eq!(p.a.send(p.now, c, b"x"), Err(Error::InvalidConnection));
    assert!(p.a.state(d).is_ok());
}

#[test]
fn a_new_syn_reopens_a_time_wait_connection() {
    let mut p = Pair::new(TcpConfig::default());
    let l = p.a.listen(7000, 4).unwrap();
    // B connects from a fixed port; A (the server) closes first and holds TIME-WAIT.
    let c =
        p.b.connect(p.now, SocketAddrV4::new(A, 7000), 5555)
            .unwrap();
    p.run_for(Duration::from_millis(10));
    let s = p.a.accept(l).unwrap();
    p.a.close(p.now, s).unwrap();
    p.run_for(Duration::from_millis(10));
    p.b.close(p.now, c).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.a.connection_count(), 1, "server side in TIME-WAIT");
    assert_eq!(p.b.connection_count(), 0);
    // Same 4-tuple again, later: the SYN's timestamp is newer.
    p.run_for(Duration::from_secs(1));
    let c2 =
        p.b.connect(p.now, SocketAddrV4::new(A, 7000), 5555)
            .unwrap();
    p.run_for(Duration::from_millis(10));
    assert!(p.events_b.contains(&Event::Connected(c2)));
    let s2 = p.a.accept(l).unwrap();
    assert_eq!(p.a.state(s2).unwrap(), TcpState::Established);
    assert_eq!(p.a.connection_count(), 1);
}

#[test]
fn delayed_ack_every_second_segment_or_on_timeout() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, _s) = p.connect();
    let mut buf = vec![0u8; 2048];
    p.a.set_nodelay(c, true).unwrap();
    // One small segment: B holds its ACK until the delayed-ACK timer (40 ms).
    p.a.send(p.now, c, b"one").unwrap();
    let n = p.a.poll_transmit(p.now, &mut buf).map(|t| t.len).unwrap();
    p.b.handle_packet(p.now, &buf[..n]);
    assert_eq!(p.b.poll_transmit(p.now, &mut buf).map(|t| t.len), None);
    let due = p.b.poll_timeout().unwrap();
    assert_eq!(due, p.now + Duration::from_millis(40));
    p.b.handle_timeout(due);
    assert!(p.b.poll_transmit(due, &mut buf).is_some());
    assert_eq!(p.b.counters().delayed_acks, 1);
    // Two full-sized segments: acknowledged at once.
    let full = pattern(2 * 1448, 1);
    p.a.send(due, c, &full).unwrap();
    for _ in 0..2 {
        let n = p.a.poll_transmit(due, &mut buf).map(|t| t.len).unwrap();
        assert_eq!(n, 20 + 32 + 1448);
        p.b.handle_packet(due, &buf[..n]);
    }
    let n = p.b.poll_transmit(due, &mut buf).map(|t| t.len).unwrap();
    let Ok(Ingress::Tcp { seg, .. }) = wire::parse(&buf[..n], A) else {
        panic!("not a TCP segment");
    };
    assert!(seg.payload.is_empty() && seg.has(flags::ACK));
    assert_eq!(p.b.counters().delayed_acks, 1);
}

/// A buffer too short for a packet's headers gets nothing and loses nothing: the
/// queued segment and the queued reset come out at the next call with a buffer large
/// enough, with no input or timer in between.
#[test]
fn a_buffer_too_short_for_headers_loses_nothing() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, _s) = p.connect();
    // Shorter than the bare IPv4 and TCP headers.
    let mut tiny = [0u8; 39];
    assert!(tiny.len() < MIN_TRANSMIT_BUF);
    let mut buf = vec![0u8; 2048];
    p.a.send(p.now, c, b"data").unwrap();
    assert!(p.a.poll_transmit(p.now, &mut tiny).is_none());
    let n = p.a.poll_transmit(p.now, &mut buf).map(|t| t.len);
    assert_eq!(n, Some(20 + 32 + 4), "the data segment is still queued");
    // A SYN to a closed port: B queues a reset.
    let _refused = p.a.connect(p.now, SocketAddrV4::new(B, 9), 0).unwrap();
    let n = p.a.poll_transmit(p.now, &mut buf).map(|t| t.len).unwrap();
    p.b.handle_packet(p.now, &buf[..n]);
    assert!(p.b.poll_transmit(p.now, &mut tiny).is_none());
    let n = p.b.poll_transmit(p.now, &mut buf).map(|t| t.len).unwrap();
    let Ok(Ingress::Tcp { seg, .. }) = wire::parse(&buf[..n], A) else {
        panic!("not a TCP segment");
    };
    assert!(seg.has(flags::RST), "the reset is still queued");
}

#[test]
fn nagle_holds_small_segments_while_data_is_in_flight() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, _s) = p.connect();
    let mut buf = vec![0u8; 2048];
    p.a.send(p.now, c, b"first").unwrap();
    assert!(
        p.a.poll_transmit(p.now, &mut buf).is_some(),
        "idle: sent at once"
    );
    p.a.send(p.now, c, b"second").unwrap();
    assert_eq!(
        p.a.poll_transmit(p.now, &mut buf).map(|t| t.len),
        None,
        "held by Nagle"
    );
    p.a.set_nodelay(c, true).unwrap();
    p.a.send(p.now, c, b"third").unwrap();
    let n = p.a.poll_transmit(p.now, &mut buf).map(|t| t.len).unwrap();
    assert_eq!(
        n,
        20 + 32 + "secondthird".len(),
        "nodelay sends what is queued"
    );
}

#[test]
fn unlisten_resets_pending_connections_and_frees_the_port() {
    let mut p = Pair::new(TcpConfig::default());
    let l = p.b.listen(80, 4).unwrap();
    assert_eq!(p.b.listen(80, 4), Err(Error::AddrInUse(80)));
    let c = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.b.connection_count(), 1, "established, not accepted");
    p.b.unlisten(l).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.b.connection_count(), 0);
    assert!(p.events_a.contains(&Event::Reset(c)));
    assert_eq!(p.b.accept(l), Err(Error::InvalidListener));
    assert!(p.b.listen(80, 4).is_ok());
}

#[test]
fn newreno_and_cubic_both_recover_from_loss() {
    for algorithm in [crate::CcAlgorithm::NewReno, crate::CcAlgorithm::Cubic] {
        let mut tcp = TcpConfig::default();
        tcp.congestion.algorithm = algorithm;
        let mut p = Pair::new(tcp);
        let (c, s) = p.connect();
        let base = p.sent[0];
        p.drop = Box::new(move |from_a, i, _| from_a && i > base && (i - base) % 17 == 5);
        let data = pattern(400_000, 8);
        assert_eq!(transfer(&mut p, true, c, s, &data), data, "{algorithm:?}");
        let info = p.a.conn_info(c).unwrap();
        assert!(
            info.ssthresh < crate::cc::MAX_CWND,
            "{algorithm:?} set ssthresh"
        );
        assert!(p.a.counters().fast_retransmits > 0, "{algorithm:?}");
    }
}

#[test]
fn crossing_syn_acks_complete_a_simultaneous_open() {
    let mut p = Pair::new(TcpConfig::default());
    let ca =
        p.a.connect(p.now, SocketAddrV4::new(B, 5000), 6000)
            .unwrap();
    let cb =
        p.b.connect(p.now, SocketAddrV4::new(A, 6000), 5000)
            .unwrap();
    let mut buf = vec![0u8; 2048];
    // Both SYNs are on the wire before either arrives.
    let syn_a =
        p.a.poll_transmit(p.now, &mut buf)
            .map(|t| buf[..t.len].to_vec())
            .unwrap();
    let syn_b =
        p.b.poll_transmit(p.now, &mut buf)
            .map(|t| buf[..t.len].to_vec())
            .unwrap();
    p.b.handle_packet(p.now, &syn_a);
    p.a.handle_packet(p.now, &syn_b);
    assert_eq!(p.a.state(ca).unwrap(), TcpState::SynReceived);
    assert_eq!(p.b.state(cb).unwrap(), TcpState::SynReceived);
    // And so do both SYN-ACKs.
    let sa_a =
        p.a.poll_transmit(p.now, &mut buf)
            .map(|t| buf[..t.len].to_vec())
            .unwrap();
    let sa_b =
        p.b.poll_transmit(p.now, &mut buf)
            .map(|t| buf[..t.len].to_vec())
            .unwrap();
    p.b.handle_packet(p.now, &sa_a);
    p.a.handle_packet(p.now, &sa_b);
    assert_eq!(p.a.state(ca).unwrap(), TcpState::Established);
    assert_eq!(p.b.state(cb).unwrap(), TcpState::Established);
    assert_eq!(p.a.poll_event(), Some(Event::Connected(ca)));
    assert_eq!(p.b.poll_event(), Some(Event::Connected(cb)));
    assert_eq!(transfer(&mut p, false, ca, cb, b"pong"), b"pong");
}

#[test]
fn a_full_table_recycles_time_wait_connections() {
    let mut p = Pair::new(TcpConfig::default());
    p.a.cfg.max_connections = 1;
    p.b.listen(80, 4).unwrap();
    for round in 0..3 {
        let c =
            p.a.connect(p.now, SocketAddrV4::new(B, 80), 0)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        p.run_for(Duration::from_millis(10));
        let l = p.events_b.iter().find_map(|e| match e {
            Event::Incoming(l) => Some(*l),
            _ => None,
        });
        let s = p.b.accept(l.unwrap()).unwrap();
        // A closes first and keeps TIME-WAIT; B's side is freed after LAST-ACK.
        p.a.close(p.now, c).unwrap();
        p.run_for(Duration::from_millis(10));
        p.b.close(p.now, s).unwrap();
        p.run_for(Duration::from_millis(10));
        assert_eq!(p.a.connection_count(), 1, "TIME-WAIT holds the only slot");
        assert_eq!(p.a.time_wait.len(), 1, "the recycled one left the index");
    }
    assert_eq!(p.a.counters().time_wait_recycled, 2);
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.a.connection_count(), 0);
    assert!(p.a.time_wait.is_empty(), "an expired one leaves the index");
}

#[test]
fn the_smallest_mtu_still_carries_data() {
    let tcp = TcpConfig {
        mtu: 88,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, s) = p.connect();
    assert_eq!(p.a.conn_info(c).unwrap().mss, 48 - 12);
    let data = pattern(5000, 3);
    assert_eq!(transfer(&mut p, true, c, s, &data), data);
}

#[test]
fn same_inputs_give_the_same_packets() {
    let run = || {
        let mut p = Pair::new(TcpConfig::default());
        let trace = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let t = trace.clone();
        p.drop = Box::new(move |from_a, i, pkt| {
            t.borrow_mut().push((from_a, pkt.to_vec()));
            i % 7 == 3
        });
        let (c, s) = p.connect();
        let data = pattern(100_000, 1);
        assert_eq!(transfer(&mut p, true, c, s, &data), data);
        p.a.close(p.now, c).unwrap();
        p.b.close(p.now, s).unwrap();
        p.run_for(Duration::from_secs(2));
        let packets = trace.borrow().clone();
        (packets, p.a.counters().clone(), p.b.counters().clone())
    };
    let first = run();
    assert!(first.0.len() > 100);
    assert_eq!(first, run());
}

/// With segmentation offload, bulk data leaves as super-segments (one per 64 KiB, not
/// per MSS) with partial checksums; cut and finished as a device does, they arrive
/// intact at a peer that verifies every checksum, also when one segment is lost.
#[test]
fn segmentation_offload_sends_super_segments_a_device_can_cut() {
    let tcp = TcpConfig {
        send_buffer: 1 << 20,
        recv_buffer: 1 << 20,
        ..TcpConfig::default()
    };
    let mut p = Pair::with(tcp, |c| {
        c.tx_offload = crate::TxOffload {
            checksum: true,
            segmentation: 65535,
        };
    });
    // Lose one wire segment early, to go through recovery with super-segments.
    p.drop = Box::new(|from_a, i, _| from_a && i == 30);
    let (c, s) = p.connect();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..2000 {
        if sent < data.len() {
            sent += p.a.send(p.now, c, &data[sent..]).unwrap_or(0);
        }
        p.run_for(Duration::from_millis(1));
        while let Ok(n) = p.b.recv(s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert!(
        got == data,
        "received {} of {} bytes",
        got.len(),
        data.len()
    );
    let a = p.a.counters();
    assert!(a.tx_super_segments > 0, "{a:?}");
    assert!(a.retransmits > 0, "the lost segment was resent");
    // About 1 MB / 64 KiB super-segments, against some 700 MSS-sized segments.
    assert!(
        a.tcp_tx_segments < 200,
        "{} segments sent for 1 MB",
        a.tcp_tx_segments
    );
    assert_eq!(p.b.counters().tcp_bad_checksum, 0);
}

/// A stack that hands out headers and payload pieces instead of copying the packet
/// sends the same bytes: over a ring-shaped send buffer that wraps, with odd lengths,
/// through loss and recovery, with the checksum finished by the stack or left to the
/// device, as super-segments or one MSS at a time.
#[test]
fn gathered_packets_are_the_packets_poll_transmit_writes() {
    let run = |gather: bool, offload: crate::TxOffload| {
        // The peer's window, smaller than the send buffer, keeps data waiting in it.
        let tcp = TcpConfig {
            send_buffer: 20_011,
            recv_buffer: 7_001,
            ..TcpConfig::default()
        };
        let mut p = Pair::with(tcp, |c| c.tx_offload = offload);
        p.gather_a = gather;
        p.log_a = Some(Vec::new());
        p.drop = Box::new(|from_a, i, _| from_a && (i == 9 || i == 40));
        let (c, s) = p.connect();
        let data = pattern(150_001, 5);
        // Short steps: the application writes while data is in flight, so what it
        // writes wraps around the ring.
        let got = transfer_in_steps(&mut p, true, c, s, &data, Duration::from_micros(300));
        assert!(
            got == data,
            "received {} of {} bytes",
            got.len(),
            data.len()
        );
        assert_eq!(p.b.counters().tcp_bad_checksum, 0);
        if gather {
            assert!(
                p.split_a > 0,
                "{offload:?}: no payload wrapped around the ring"
            );
        }
        (p.log_a.take().unwrap(), p.a.counters().retransmits)
    };
    for offload in [
        crate::TxOffload::default(),
        crate::TxOffload {
            checksum: true,
            segmentation: 0,
        },
        crate::TxOffload {
            checksum: true,
            segmentation: 65535,
        },
    ] {
        let (copied, retransmits) = run(false, offload);
        let (gathered, _) = run(true, offload);
        assert!(retransmits > 0, "{offload:?}: nothing was lost");
        assert_eq!(copied.len(), gathered.len(), "{offload:?}");
        for (i, (c, g)) in copied.iter().zip(&gathered).enumerate() {
            assert!(c == g, "{offload:?}: packet {i} differs");
        }
    }
}

/// `discard` consumes received bytes as `recv` does, without copying them: reading
/// goes on where it stopped, the window reopens for the rest, and with nothing there
/// or at the end of the stream it answers as `recv` does.
#[test]
fn discard_consumes_received_bytes_as_recv_does() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    let data = pattern(300_001, 9);
    let skip = 200_000;
    let (mut off, mut skipped, mut got) = (0, 0, Vec::new());
    let mut buf = [0u8; 4096];
    for _ in 0..2_000 {
        if off < data.len() {
            off += p.a.send(p.now, c, &data[off..]).unwrap_or(0);
        }
        p.run_for(Duration::from_millis(1));
        loop {
            let n = if skipped < skip {
                p.b.discard(s, skip - skipped)
            } else {
                p.b.recv(s, &mut buf)
            };
            match n {
                Ok(n) if n > 0 && skipped < skip => skipped += n,
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if skipped + got.len() == data.len() {
            break;
        }
    }
    assert_eq!(skipped, skip);
    assert!(
        got == data[skip..],
        "read {} bytes after the skip",
        got.len()
    );
    assert_eq!(p.b.discard(s, 10), Err(Error::WouldBlock));
    p.a.close(p.now, c).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.b.discard(s, 10), Ok(0), "end of stream");
}

/// A packet waits when the caller gives too little room for its headers, whether the
/// header buffer or the packet limit is short, and leaves at the next call that gives
/// enough.
#[test]
fn a_gathered_packet_waits_for_room_for_its_headers() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, _s) = p.connect();
    p.a.send(p.now, c, b"hello").unwrap();
    let (mut short, mut head) = ([0u8; 40], [0u8; 1500]);
    let now = p.now;
    let mut lens = |head: &mut [u8], max: usize| {
        p.a.poll_transmit_gathered(now, head, max, |t, g| {
            (t.len, g.payload[0].len() + g.payload[1].len())
        })
    };
    assert_eq!(
        lens(&mut short, 65_536),
        None,
        "headers cannot fit the buffer"
    );
    assert_eq!(lens(&mut head, 40), None, "headers cannot fit the limit");
    let (len, payload) = lens(&mut head, 65_536).expect("the packet left");
    assert_eq!(payload, 5);
    assert!(len > 40 + payload, "{len}");
}

/// A super-segment never exceeds what the device takes (`segmentation`, headers
/// included) and holds whole MSS-sized segments, even when the congestion window
/// would let more go at once.
#[test]
fn super_segments_fit_the_device_limit_in_whole_segments() {
    let mut p = Pair::with(TcpConfig::default(), |c| {
        c.tx_offload = crate::TxOffload {
            checksum: true,
            segmentation: 4096,
        };
    });
    let (c, _s) = p.connect();
    let mss = usize::from(p.a.conn_info(c).unwrap().mss);
    p.a.send(p.now, c, &[7u8; 20_000]).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut payloads = Vec::new();
    while let Some(t) = p.a.poll_transmit(p.now, &mut buf) {
        assert!(t.len <= 4096, "{t:?}");
        payloads.push(t.len - usize::from(t.header_len));
    }
    // The initial window (ten segments), two per super-segment.
    assert_eq!(payloads, [2 * mss; 5]);
}

/// A device finishing a super-segment cuts it on MSS boundaries: sequence numbers,
/// lengths, IPv4 identification and flags per segment, every checksum complete.
#[test]
fn finish_offload_cuts_a_super_segment_like_a_device() {
    let mut a = Stack::new({
        let mut c = config(A, TcpConfig::default());
        c.tx_offload = crate::TxOffload {
            checksum: true,
            segmentation: 65535,
        };
        c
    })
    .unwrap();
    let mut b = Stack::new(config(B, TcpConfig::default())).unwrap();
    let l = b.listen(80, 4).unwrap();
    let now = Instant::from_millis(1);
    let c = a.connect(now, SocketAddrV4::new(B, 80), 4000).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut scratch = Vec::new();
    // Handshake, by hand.
    for _ in 0..3 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            wire::finish_offload(&buf, t, &mut scratch, |p| b.handle_packet(now, p)).unwrap();
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            a.handle_packet(now, &buf[..t.len]);
        }
    }
    let s = b.accept(l).unwrap();
    // The initial window (10 segments) as one super-segment, FIN included.
    let data = vec![0x5a; 5000];
    assert_eq!(a.send(now, c, &data).unwrap(), 5000);
    a.shutdown(now, c).unwrap();
    let t = a.poll_transmit(now, &mut buf).unwrap();
    let mss = usize::from(t.segment_size.expect("a super-segment"));
    assert!(t.partial_checksum);
    assert_eq!(t.len - usize::from(t.header_len), 5000);
    let mut segments = Vec::new();
    wire::finish_offload(&buf, t, &mut scratch, |p| segments.push(p.to_vec())).unwrap();
    assert_eq!(segments.len(), 5000usize.div_ceil(mss));
    for (i, p) in segments.iter().enumerate() {
        let Ok(Ingress::Tcp { seg, .. }) = wire::parse(p, B) else {
            panic!("segment {i} does not parse with its checksum verified");
        };
        let last = i + 1 == segments.len();
        assert_eq!(seg.payload.len(), if last { 5000 - i * mss } else { mss });
        assert_eq!(seg.has(flags::FIN), last, "FIN only on the last");
        if i > 0 {
            let prev = &segments[i - 1];
            assert_eq!(
                u16::from_be_bytes([p[4], p[5]]),
                u16::from_be_bytes([prev[4], prev[5]]).wrapping_add(1)
            );
        }
        b.handle_packet(now, p);
    }
    assert_eq!(b.recv_available(s).unwrap(), 5000);
    assert_eq!(b.state(s).unwrap(), TcpState::CloseWait);
    // Without offload nothing changes: a complete packet passes through as it is.
    let mut plain = Vec::new();
    let t = b.poll_transmit(now, &mut buf).unwrap();
    assert!(t.segment_size.is_none() && !t.partial_checksum);
    wire::finish_offload(&buf, t, &mut scratch, |p| plain.push(p.to_vec())).unwrap();
    assert_eq!(plain, vec![buf[..t.len].to_vec()]);
}

/// An idle keep-alive connection holds no buffer memory: once its queues are empty
/// their storage goes to the stack's pool, and the next request takes it from there
/// instead of the allocator.
#[test]
fn idle_connections_hold_no_buffer_memory() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    let mut buf = vec![0u8; 4096];
    for round in 0..3 {
        // A request, its response, both read in full.
        p.a.send(p.now, c, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        p.run_for(Duration::from_millis(5));
        assert_eq!(p.b.recv(s, &mut buf).unwrap(), 18);
        p.b.send(p.now, s, &[7; 3000]).unwrap();
        p.run_for(Duration::from_millis(100));
        assert_eq!(p.a.recv(c, &mut buf).unwrap(), 3000);
        p.run_for(Duration::from_millis(100));
        for (name, stack) in [("client", &p.a), ("server", &p.b)] {
            let (used, pooled) = stack.buffer_memory();
            assert_eq!(
                used, 0,
                "{name}, round {round}: an idle connection holds buffers"
            );
            assert!(pooled > 0, "{name}: the storage was kept for reuse");
            assert!(pooled <= 2 * 256 * 1024, "{name}: pooled {pooled}");
        }
    }
}

#[test]
fn buffer_memory_follows_the_data_and_freed_connections_give_it_back() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    assert_eq!(
        p.a.buffer_memory().0,
        0,
        "an idle connection holds no buffers"
    );
    let states: Vec<TcpState> = p.a.connection_states().collect();
    assert_eq!(states, vec![TcpState::Established]);
    assert_eq!(p.a.send(p.now, c, &pattern(10_000, 3)).unwrap(), 10_000);
    assert!(p.a.buffer_memory().0 >= 10_000, "{:?}", p.a.buffer_memory());
    p.run_for(Duration::from_millis(50));
    let (a_used, a_pooled) = p.a.buffer_memory();
    assert_eq!(a_used, 0, "all acknowledged: the send buffer left");
    assert!(a_pooled >= 10_000, "and went to the pool: {a_pooled}");
    let (b_used, b_pooled) = p.b.buffer_memory();
    assert!(b_used >= 10_000, "B holds what it has not read: {b_used}");
    // B aborts without reading; freeing the connection gives its storage back.
    p.b.abort(s).unwrap();
    let (b_used_after, b_pooled_after) = p.b.buffer_memory();
    assert_eq!(b_used_after, 0);
    assert!(
        b_pooled_after >= b_pooled + 10_000,
        "{b_pooled} -> {b_pooled_after}"
    );
    assert_eq!(p.b.connection_states().count(), 0);
}

#[test]
fn the_control_queue_is_bounded_and_its_overflow_counted() {
    let mut p = Pair::new(TcpConfig::default());
    p.b = Stack::new({
        let mut c = config(B, TcpConfig::default());
        c.max_control_queue = 4;
        c
    })
    .unwrap();
    // Ten SYNs to a closed port reach B before it transmits: four RSTs fit.
    for _ in 0..10 {
        p.a.connect(p.now, SocketAddrV4::new(B, 9), 0).unwrap();
    }
    p.run_for(Duration::from_millis(10));
    let cb = p.b.counters();
    assert_eq!(cb.tcp_no_socket, 10);
    assert_eq!(cb.control_queue_overflow, 6, "{cb:?}");
    assert_eq!(
        cb.rst_sent, 4,
        "only the resets that went out count as sent"
    );
    assert_eq!(p.a.counters().connect_refused, 4);
}

#[test]
fn data_for_an_orphaned_connection_is_answered_with_a_reset() {
    let mut p = Pair::new(TcpConfig::default());
    let (c, s) = p.connect();
    // B closes its handle: nobody will read what A sends next.
    p.b.close(p.now, s).unwrap();
    p.run_for(Duration::from_millis(5));
    p.a.send(p.now, c, b"anyone there?").unwrap();
    p.run_for(Duration::from_millis(50));
    assert_eq!(p.b.counters().rst_sent, 1, "{:?}", p.b.counters());
    assert!(
        p.events_a.contains(&Event::Reset(c)),
        "A hears the reset: {:?}",
        p.events_a
    );
}

#[test]
fn what_arrived_before_accept_is_reported_after_it() {
    let mut p = Pair::new(TcpConfig::default());
    let l = p.b.listen(80, 16).unwrap();
    // Three connections, each in its own way before B accepts: data only, end of
    // stream only, and reset (a reset one leaves the queue: only two are accepted).
    let data = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    let fin = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    let rst = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    p.a.send(p.now, data, b"early").unwrap();
    p.a.shutdown(p.now, fin).unwrap();
    p.a.abort(rst).unwrap();
    p.run_for(Duration::from_millis(10));
    p.events_b.clear();
    let mut accepted = Vec::new();
    while let Ok(id) = p.b.accept(l) {
        accepted.push(id);
    }
    assert_eq!(accepted.len(), 2);
    let mut events = Vec::new();
    while let Some(e) = p.b.poll_event() {
        events.push(e);
    }
    let (d, f) = (accepted[0], accepted[1]);
    assert!(events.contains(&Event::Readable(d)), "{events:?}");
    assert!(!events.contains(&Event::PeerClosed(d)), "{events:?}");
    assert!(events.contains(&Event::Readable(f)), "{events:?}");
    assert!(events.contains(&Event::PeerClosed(f)), "{events:?}");
}

#[test]
fn send_capacity_is_the_free_send_buffer_until_shutdown() {
    let tcp = TcpConfig {
        send_buffer: 8192,
        ..TcpConfig::default()
    };
    let mut p = Pair::new(tcp);
    let (c, s) = p.connect();
    assert_eq!(p.a.send_capacity(c).unwrap(), 8192);
    p.a.send(p.now, c, &[1; 3000]).unwrap();
    assert_eq!(p.a.send_capacity(c).unwrap(), 8192 - 3000);
    p.a.shutdown(p.now, c).unwrap();
    assert_eq!(p.a.send_capacity(c).unwrap(), 0, "nothing more after FIN");
    // A reset closes B's side; its handle stays until B closes it.
    p.a.abort(c).unwrap();
    p.run_for(Duration::from_millis(5));
    assert_eq!(p.b.state(s).unwrap(), TcpState::Closed);
    assert_eq!(
        p.b.send_capacity(s).unwrap(),
        0,
        "nothing on a closed connection"
    );
}

#[test]
fn releasing_a_connection_leaves_the_others_queued_to_transmit() {
    let mut p = Pair::new(TcpConfig::default());
    let l = p.b.listen(80, 16).unwrap();
    let c1 = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    let c2 = p.a.connect(p.now, SocketAddrV4::new(B, 80), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    let s1 = p.b.accept(l).unwrap();
    let s2 = p.b.accept(l).unwrap();
    // Both queue data; one is aborted (released) before anything is transmitted.
    p.a.send(p.now, c1, b"first").unwrap();
    p.a.send(p.now, c2, b"second").unwrap();
    p.a.abort(c1).unwrap();
    p.run_for(Duration::from_millis(10));
    let mut got = Vec::new();
    drain(&mut p.b, s2, &mut got);
    assert_eq!(got, b"second");
    assert!(p.events_b.contains(&Event::Reset(s1)), "{:?}", p.events_b);
}

#[test]
fn a_recycled_time_wait_slot_still_held_by_its_handle_is_not_reused() {
    let tcp = TcpConfig::default();
    let mut p = Pair::with(tcp.clone(), |c| c.max_connections = 1);
    // A (table of one) listens; B connects, and A closes first without releasing its
    // handle, so A's connection sits in TIME-WAIT with the handle still held.
    let l = p.a.listen(80, 4).unwrap();
    let s = p.b.connect(p.now, SocketAddrV4::new(A, 80), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    let c = p.a.accept(l).unwrap();
    p.a.shutdown(p.now, c).unwrap();
    p.run_for(Duration::from_millis(10));
    p.b.shutdown(p.now, s).unwrap();
    p.run_for(Duration::from_millis(10));
    assert_eq!(p.a.state(c).unwrap(), TcpState::TimeWait);
    // A new connection: TIME-WAIT is ended to make room, but the held handle keeps
    // its slot, so the newcomer is answered from a cookie and finds no room.
    p.b.connect(p.now, SocketAddrV4::new(A, 80), 0).unwrap();
    p.run_for(Duration::from_millis(10));
    let ca = p.a.counters();
    assert_eq!(ca.time_wait_recycled, 1, "{ca:?}");
    assert_eq!(ca.syn_cookies_sent, 1, "{ca:?}");
    assert_eq!(p.a.connection_count(), 1);
}
