//! Hostile and malformed packets: each gets its exact answer (a counted drop, a RST, a
//! challenge ACK or a normal reply) and nothing panics. Also peers whose exact ACK
//! sequence drives loss recovery (limited transmit, early retransmit) and window
//! probing.
//!
//! The test plays the remote peer by hand: it builds raw IPv4/TCP packets, feeds them to
//! a [`Stack`] and parses what the stack sends back.

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::wire::{Ipv4Packet, TcpPacket};
use tcpstack::wire::{checksum, flags};
use tcpstack::{ConnError, ConnId, Counters, Error, Event, Instant, Stack, StackConfig, TcpState};

const US: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const PORT: u16 = 80;
const PEER_PORT: u16 = 40_000;

/// A TCP segment as the peer sends it; `options` are raw bytes (padded to 4).
#[derive(Clone)]
struct Seg {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: Vec<u8>,
    payload: Vec<u8>,
    /// Overrides the data offset field (in 32-bit words).
    data_offset: Option<u8>,
}

impl Seg {
    fn new(flags: u8, seq: u32, ack: u32) -> Self {
        Seg {
            src_port: PEER_PORT,
            dst_port: PORT,
            seq,
            ack,
            flags,
            window: 65535,
            options: Vec::new(),
            payload: Vec::new(),
            data_offset: None,
        }
    }

    fn opts(mut self, o: &[u8]) -> Self {
        self.options = o.to_vec();
        while !self.options.len().is_multiple_of(4) {
            self.options.push(0);
        }
        self
    }

    fn data(mut self, d: &[u8]) -> Self {
        self.payload = d.to_vec();
        self
    }

    fn tcp_bytes(&self) -> Vec<u8> {
        let hl = 20 + self.options.len();
        let mut t = vec![0u8; hl];
        t[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        t[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        t[4..8].copy_from_slice(&self.seq.to_be_bytes());
        t[8..12].copy_from_slice(&self.ack.to_be_bytes());
        t[12] = self.data_offset.unwrap_or((hl / 4) as u8) << 4;
        t[13] = self.flags;
        t[14..16].copy_from_slice(&self.window.to_be_bytes());
        t[20..].copy_from_slice(&self.options);
        t.extend_from_slice(&self.payload);
        let c = checksum::finish(checksum::pseudo_header(PEER, US, 6, t.len() as u16), &t);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    fn packet(&self) -> Vec<u8> {
        ip_packet(6, &self.tcp_bytes())
    }
}

fn ip_packet(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&PEER.octets());
    p[16..20].copy_from_slice(&US.octets());
    fix_ip_checksum(&mut p);
    p.extend_from_slice(payload);
    p
}

fn fix_ip_checksum(p: &mut [u8]) {
    p[10] = 0;
    p[11] = 0;
    let c = !checksum::sum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// What the stack sent back, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload_len: usize,
    /// The raw TCP options.
    options: Vec<u8>,
}

struct Harness {
    stack: Stack,
    now: Instant,
    /// The connection under test, when established.
    conn: Option<ConnId>,
    /// Our ISN (peer side) and the stack's.
    peer_isn: u32,
    stack_isn: u32,
}

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut StackConfig)) -> Self {
        let mut cfg = StackConfig::new(US, [42; 16]);
        tweak(&mut cfg);
        let mut stack = Stack::new(cfg).unwrap();
        stack.listen(PORT, 8).unwrap();
        Harness {
            stack,
            now: Instant::from_millis(10_000),
            conn: None,
            peer_isn: 0,
            stack_isn: 0,
        }
    }

    fn inject(&mut self, packet: &[u8]) {
        self.stack.handle_packet(self.now, packet);
    }

    fn send(&mut self, seg: &Seg) {
        let p = seg.packet();
        self.inject(&p);
    }

    /// Moves the clock to the next timer and runs it. Panics with `armed` (what the
    /// test expects to run) when no timer is armed.
    fn run_next_timer(&mut self, armed: &str) {
        self.now = self.stack.poll_timeout().expect(armed);
        self.stack.handle_timeout(self.now);
    }

    /// The peer acknowledges the stack's first `bytes` bytes of data; returns what the
    /// stack sends in answer.
    fn ack_data(&mut self, bytes: u32) -> Vec<Reply> {
        let ack = self.snd_nxt().wrapping_add(bytes);
        self.send(&Seg::new(flags::ACK, self.rcv_nxt(), ack));
        self.replies()
    }

    /// Every packet the stack wants to send now, as TCP replies.
    fn replies(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Some(n) = self.stack.poll_transmit(self.now, &mut buf).map(|t| t.len) {
            let ip = Ipv4Packet::new_checked(&buf[..n]).expect("valid IPv4");
            assert!(ip.verify_checksum());
            assert_eq!(ip.dst_addr(), PEER);
            let tcp = TcpPacket::new_checked(ip.payload()).expect("valid TCP");
            assert!(tcp.verify_checksum(&US.into(), &PEER.into()));
            out.push(Reply {
                seq: tcp.seq_number().0 as u32,
                ack: tcp.ack_number().0 as u32,
                flags: ip.payload()[13] & 0x3f,
                window: tcp.window_len(),
                payload_len: tcp.payload().len(),
                options: tcp.options().to_vec(),
            });
        }
        out
    }

    /// Handshake from the peer with ISN `isn` and the given SYN options; returns the
    /// SYN-ACK and leaves the connection established and accepted.
    fn establish_with(&mut self, isn: u32, syn_opts: &[u8]) -> Reply {
        self.establish_after(isn, syn_opts, Duration::ZERO)
    }

    /// [`Harness::establish_with`], the ACK arriving `rtt` after the SYN-ACK.
    fn establish_after(&mut self, isn: u32, syn_opts: &[u8], rtt: Duration) -> Reply {
        self.send(&Seg::new(flags::SYN, isn, 0).opts(syn_opts));
        let r = self.replies();
        self.now += rtt;
        assert_eq!(r.len(), 1, "one SYN-ACK: {r:?}");
        let synack = r[0].clone();
        assert_eq!(synack.flags, flags::SYN | flags::ACK);
        assert_eq!(synack.ack, isn.wrapping_add(1));
        self.peer_isn = isn;
        self.stack_isn = synack.seq;
        self.send(&Seg::new(
            flags::ACK,
            isn.wrapping_add(1),
            synack.seq.wrapping_add(1),
        ));
        assert!(self.replies().is_empty());
        let l = match self.stack.poll_event() {
            Some(Event::Incoming(l)) => l,
            other => panic!("expected Incoming, got {other:?}"),
        };
        self.conn = Some(self.stack.accept(l).unwrap());
        synack
    }

    /// A connection with SACK permitted and an MSS of 1460 (no timestamps), established
    /// after `rtt`; then `segments` full segments of `fill` bytes are sent and all go
    /// out at once. Returns the connection and its MSS.
    fn sack_flight(&mut self, rtt: Duration, segments: usize, fill: u8) -> (ConnId, u32) {
        self.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], rtt);
        let c = self.conn.unwrap();
        let mss = 1460u32;
        self.stack
            .send(self.now, c, &vec![fill; segments * mss as usize])
            .unwrap();
        assert_eq!(data_segments(&self.replies()).len(), segments);
        (c, mss)
    }

    /// A connection with SACK permitted and an MSS of 1460 (no timestamps) whose peer
    /// left its first 100 bytes out, so that our segments carry a SACK block and are
    /// cut by its 12 bytes; then `segments` such short segments go out at once.
    /// Returns the peer's hole (its `RCV.NXT`), the short length and what was sent.
    fn short_flight(&mut self, segments: usize) -> (u32, usize, Vec<(u32, usize)>) {
        self.establish_with(1000, &[2, 4, 5, 180, 4, 2]);
        let c = self.conn.unwrap();
        let hole = self.rcv_nxt();
        self.send(&Seg::new(flags::ACK, hole.wrapping_add(100), self.snd_nxt()).data(&[7; 100]));
        self.replies();
        let short = (1460 - 12) as usize;
        self.stack
            .send(self.now, c, &vec![3u8; segments * short])
            .unwrap();
        let sent = data_segments(&self.replies());
        assert_eq!(sent.len(), segments, "{sent:?}");
        assert!(sent.iter().all(|&(_, len)| len == short), "{sent:?}");
        (hole, short, sent)
    }

    /// A plain handshake (MSS only, no timestamps so sequence checks are exact).
    fn establish(&mut self) {
        self.establish_with(1000, &[2, 4, 5, 180]);
    }

    /// Next sequence number the peer sends.
    fn rcv_nxt(&self) -> u32 {
        self.peer_isn.wrapping_add(1)
    }

    /// Next sequence number the stack sends.
    fn snd_nxt(&self) -> u32 {
        self.stack_isn.wrapping_add(1)
    }

    fn counters(&self) -> Counters {
        self.stack.counters().clone()
    }

    fn state(&self) -> TcpState {
        self.stack.state(self.conn.unwrap()).unwrap()
    }
}

/// Asserts that exactly the named counters changed, by one each.
fn assert_only(before: &Counters, after: &Counters, changed: &[&str]) {
    for ((name, b), (_, a)) in before.iter().zip(after.iter()) {
        let always = [
            "ip_rx_packets",
            "ip_tx_packets",
            "tcp_rx_segments",
            "tcp_tx_segments",
        ];
        if always.contains(&name) {
            continue;
        }
        let want = if changed.contains(&name) { b + 1 } else { b };
        assert_eq!(a, want, "counter {name}");
    }
}

/// Feeds a malformed packet and asserts a silent drop counted under `counter`.
fn assert_dropped(h: &mut Harness, packet: &[u8], counter: &str) {
    let before = h.counters();
    h.inject(packet);
    assert!(h.replies().is_empty(), "no answer to a malformed packet");
    assert_only(&before, &h.counters(), &[counter]);
}

#[test]
fn bad_ip_checksum_is_dropped() {
    let mut h = Harness::new();
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p[10] ^= 0xff;
    assert_dropped(&mut h, &p, "ip_bad_checksum");
}

#[test]
fn bad_tcp_checksum_is_dropped() {
    let mut h = Harness::new();
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p[20 + 16] ^= 0x01;
    assert_dropped(&mut h, &p, "tcp_bad_checksum");
}

#[test]
fn truncated_headers_are_dropped() {
    let mut h = Harness::new();
    assert_dropped(&mut h, &[0x45, 0, 0, 10, 0, 0], "ip_truncated");
    assert_dropped(&mut h, &[], "ip_truncated");
    // A valid IPv4 header whose TCP header is cut to 12 bytes.
    let tcp = Seg::new(flags::SYN, 1, 0).tcp_bytes();
    let p = ip_packet(6, &tcp[..12]);
    assert_dropped(&mut h, &p, "tcp_truncated");
    // The IPv4 total length claims more than the packet holds.
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p.truncate(30);
    assert_dropped(&mut h, &p, "ip_bad_total_len");
}

#[test]
fn data_offset_too_small_or_too_large_is_dropped() {
    let mut h = Harness::new();
    for off in [0u8, 4] {
        let mut s = Seg::new(flags::SYN, 1, 0);
        s.data_offset = Some(off);
        assert_dropped(&mut h, &s.packet(), "tcp_bad_data_offset");
    }
    let mut s = Seg::new(flags::SYN, 1, 0);
    s.data_offset = Some(15); // 60 bytes of header in a 20-byte segment
    assert_dropped(&mut h, &s.packet(), "tcp_bad_data_offset");
}

#[test]
fn syn_fin_and_syn_rst_are_dropped() {
    let mut h = Harness::new();
    let p = Seg::new(flags::SYN | flags::FIN, 1, 0).packet();
    assert_dropped(&mut h, &p, "tcp_bad_flags");
    let p = Seg::new(flags::SYN | flags::RST, 1, 0).packet();
    assert_dropped(&mut h, &p, "tcp_bad_flags");
    assert_eq!(h.stack.connection_count(), 0);
}

#[test]
fn malformed_options_are_dropped() {
    let mut h = Harness::new();
    // Zero-length option (an unknown kind with length 0).
    let p = Seg::new(flags::SYN, 1, 0).opts(&[30, 0, 0, 0]).packet();
    assert_dropped(&mut h, &p, "tcp_bad_options");
    // Length 1 (below the minimum of 2).
    let p = Seg::new(flags::SYN, 1, 0).opts(&[2, 1, 0, 0]).packet();
    assert_dropped(&mut h, &p, "tcp_bad_options");
    // An option whose length runs off the end of the header.
    let p = Seg::new(flags::SYN, 1, 0).opts(&[1, 1, 8, 10]).packet();
    assert_dropped(&mut h, &p, "tcp_bad_options");
    // MSS with the wrong length.
    let p = Seg::new(flags::SYN, 1, 0).opts(&[2, 3, 5, 0]).packet();
    assert_dropped(&mut h, &p, "tcp_bad_options");
    assert_eq!(h.stack.connection_count(), 0);
}

#[test]
fn fragments_wrong_destination_and_other_protocols_are_dropped() {
    let mut h = Harness::new();
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p[6] = 0x20; // more fragments
    fix_ip_checksum(&mut p);
    assert_dropped(&mut h, &p, "ip_fragments");
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p[6] = 0;
    p[7] = 8; // offset 64
    fix_ip_checksum(&mut p);
    assert_dropped(&mut h, &p, "ip_fragments");
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p[16..20].copy_from_slice(&[10, 9, 0, 3]);
    fix_ip_checksum(&mut p);
    assert_dropped(&mut h, &p, "ip_wrong_destination");
    let p = ip_packet(17, &[0, 53, 0, 53, 0, 8, 0, 0]);
    assert_dropped(&mut h, &p, "ip_unknown_protocol");
    let mut p = Seg::new(flags::SYN, 1, 0).packet();
    p[0] = 0x65;
    assert_dropped(&mut h, &p, "ip_bad_version");
}

#[test]
fn closed_port_gets_a_reset() {
    let mut h = Harness::new();
    // Without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    let mut s = Seg::new(flags::SYN, 5000, 0);
    s.dst_port = 81;
    h.send(&s);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].flags, r[0].seq, r[0].ack),
        (flags::RST | flags::ACK, 0, 5001)
    );
    // With ACK: <SEQ=SEG.ACK><CTL=RST>.
    let mut s = Seg::new(flags::ACK, 5000, 777).data(b"abc");
    s.dst_port = 81;
    h.send(&s);
    let r = h.replies();
    assert_eq!((r[0].flags, r[0].seq), (flags::RST, 777));
    // A RST is never answered.
    let mut s = Seg::new(flags::RST, 5000, 0);
    s.dst_port = 81;
    h.send(&s);
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().tcp_no_socket, 3);
    assert_eq!(h.counters().rst_sent, 2);
    let c = h.counters();
    assert_eq!((c.ip_tx_packets, c.tcp_tx_segments), (2, 2));
}

#[test]
fn out_of_window_rst_is_ignored() {
    let mut h = Harness::new();
    h.establish();
    let before = h.counters();
    h.send(&Seg::new(flags::RST, h.rcv_nxt().wrapping_add(1 << 30), 0));
    assert!(h.replies().is_empty());
    assert_only(
        &before,
        &h.counters(),
        &["rst_received", "rst_out_of_window"],
    );
    assert_eq!(h.state(), TcpState::Established);
}

#[test]
fn blind_in_window_rst_gets_a_challenge_ack() {
    let mut h = Harness::new();
    h.establish();
    let before = h.counters();
    h.send(&Seg::new(flags::RST, h.rcv_nxt().wrapping_add(100), 0));
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].flags, r[0].seq, r[0].ack),
        (flags::ACK, h.snd_nxt(), h.rcv_nxt())
    );
    assert_only(&before, &h.counters(), &["rst_received", "challenge_acks"]);
    assert_eq!(h.state(), TcpState::Established);
    // The exact sequence number resets.
    h.send(&Seg::new(flags::RST, h.rcv_nxt(), 0));
    let c = h.conn.unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| h.stack.poll_event()).collect();
    assert_eq!(events, [Event::Readable(c), Event::Reset(c)]);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(
        h.stack.recv(c, &mut [0; 8]),
        Err(tcpstack::Error::Connection(ConnError::Reset))
    );
}

/// One challenge ACK per connection per interval, and no budget that connections
/// share: spending one would tell an off-path attacker whether a guessed connection
/// exists (CVE-2016-5696).
#[test]
fn challenge_acks_are_limited_per_connection() {
    let mut h = Harness::new();
    h.establish();
    for i in 0..10 {
        h.send(&Seg::new(flags::RST, h.rcv_nxt().wrapping_add(10 + i), 0));
    }
    assert_eq!(h.replies().len(), 1);
    let c = h.counters();
    assert_eq!((c.challenge_acks, c.challenge_acks_suppressed), (1, 9));
    // Another connection's challenge ACK is not held back by them.
    let isn = h.handshake_from(4000, true);
    let mut rst = Seg::new(flags::RST, 111, 0);
    rst.src_port = 4000;
    h.send(&rst);
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].flags, r[0].seq, r[0].ack),
        (flags::ACK, isn.wrapping_add(1), 101)
    );
    assert_eq!(h.counters().challenge_acks, 2);
    // Half a second later, the first connection challenges again.
    h.now += Duration::from_millis(500);
    h.send(&Seg::new(flags::RST, h.rcv_nxt().wrapping_add(5), 0));
    assert_eq!(h.counters().challenge_acks, 3);
}

/// A stack-wide limit, if set, allows a budget each second drawn from the stack's
/// secret between half and one and a half times the limit, so that spending it tells
/// an attacker little.
#[test]
fn a_stack_wide_challenge_limit_draws_its_budget_each_second() {
    let mut h = Harness::with(|c| {
        c.tcp.challenge_ack_limit = 4;
        c.tcp.challenge_ack_interval = Duration::ZERO;
    });
    h.establish();
    let mut budgets = std::collections::BTreeSet::new();
    for second in 0..20 {
        let before = h.counters().challenge_acks;
        for i in 0..20 {
            h.send(&Seg::new(flags::RST, h.rcv_nxt().wrapping_add(10 + i), 0));
        }
        h.replies();
        let sent = h.counters().challenge_acks - before;
        assert!((2..=5).contains(&sent), "second {second}: {sent}");
        budgets.insert(sent);
        h.now += Duration::from_secs(1);
    }
    assert!(budgets.len() > 1, "one budget every second: {budgets:?}");
}

#[test]
fn old_duplicate_syn_on_an_established_connection_gets_a_challenge_ack() {
    let mut h = Harness::new();
    h.establish();
    let before = h.counters();
    h.send(&Seg::new(flags::SYN, h.peer_isn, 0));
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].flags, r[0].seq, r[0].ack),
        (flags::ACK, h.snd_nxt(), h.rcv_nxt())
    );
    assert_only(&before, &h.counters(), &["challenge_acks"]);
    // An in-window SYN too (RFC 5961 section 4.2), and the connection survives.
    h.now += Duration::from_millis(500);
    h.send(&Seg::new(flags::SYN, h.rcv_nxt().wrapping_add(10), 0));
    assert_eq!(h.replies().len(), 1);
    assert_eq!(h.counters().challenge_acks, before.challenge_acks + 2);
    assert_eq!(h.state(), TcpState::Established);
}

#[test]
fn ack_of_unsent_data_is_dropped_with_an_ack() {
    let mut h = Harness::new();
    h.establish();
    let before = h.counters();
    let s = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt().wrapping_add(5000)).data(b"evil");
    h.send(&s);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].flags, r[0].seq, r[0].ack),
        (flags::ACK, h.snd_nxt(), h.rcv_nxt())
    );
    assert_only(&before, &h.counters(), &["ack_unsent", "challenge_acks"]);
    assert_eq!(
        h.stack.recv_available(h.conn.unwrap()).unwrap(),
        0,
        "data discarded"
    );
}

#[test]
fn window_scale_over_14_is_clamped() {
    let mut h = Harness::new();
    let before = h.counters();
    // MSS 1460, window scale 15.
    let synack = h.establish_with(1000, &[2, 4, 5, 180, 1, 3, 3, 15]);
    assert_eq!(
        h.counters().tcp_wscale_clamped,
        before.tcp_wscale_clamped + 1
    );
    assert!(synack.options.windows(3).any(|w| w[0] == 3 && w[1] == 3));
    let info = h.stack.conn_info(h.conn.unwrap()).unwrap();
    assert_eq!(info.window_scale.map(|w| w.0), Some(14));
    // 14 itself is allowed, not clamped.
    let mut h14 = Harness::new();
    h14.establish_with(1000, &[2, 4, 5, 180, 1, 3, 3, 14]);
    assert_eq!(h14.counters().tcp_wscale_clamped, 0);
    // The peer's window of 1 unit means 16 KiB.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).opts(&[]));
    let mut s = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt());
    s.window = 1;
    h.send(&s);
    assert_eq!(
        h.stack.conn_info(h.conn.unwrap()).unwrap().send_window,
        1 << 14
    );
}

#[test]
fn huge_mss_is_clamped_to_our_own() {
    let mut h = Harness::new();
    h.establish_with(1000, &[2, 4, 0xff, 0xff]);
    let c = h.conn.unwrap();
    assert_eq!(h.stack.conn_info(c).unwrap().mss, 1460);
    let data = vec![7u8; 5000];
    h.stack.set_nodelay(c, true).unwrap();
    h.stack.send(h.now, c, &data).unwrap();
    let r = h.replies();
    assert!(r.iter().all(|r| r.payload_len <= 1460));
    assert_eq!(r.iter().map(|r| r.payload_len).sum::<usize>(), 5000);
    // A zero MSS does not make segments empty either.
    let mut h = Harness::new();
    h.establish_with(1000, &[2, 4, 0, 0]);
    let c = h.conn.unwrap();
    assert!(h.stack.conn_info(c).unwrap().mss >= 64);
}

#[test]
fn sequence_numbers_wrap_around_2_pow_32() {
    let mut h = Harness::new();
    let isn = u32::MAX - 10;
    h.establish_with(isn, &[2, 4, 5, 180]);
    let c = h.conn.unwrap();
    let data: Vec<u8> = (0..40u8).collect();
    // 40 bytes starting 11 below 2^32 cross the wrap.
    h.send(&Seg::new(flags::ACK | flags::PSH, h.rcv_nxt(), h.snd_nxt()).data(&data[..20]));
    h.send(
        &Seg::new(
            flags::ACK | flags::PSH,
            h.rcv_nxt().wrapping_add(20),
            h.snd_nxt(),
        )
        .data(&data[20..]),
    );
    let r = h.replies();
    assert_eq!(r.last().unwrap().ack, isn.wrapping_add(41));
    let mut buf = [0u8; 64];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 40);
    assert_eq!(&buf[..40], &data[..]);
    // A forged segment half the sequence space away is outside the window: a
    // duplicate ACK, and the data is not delivered.
    let before = h.counters();
    let forged = isn.wrapping_add(41).wrapping_add(1 << 31);
    h.send(&Seg::new(flags::ACK, forged, h.snd_nxt()).data(b"forged"));
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ack, isn.wrapping_add(41));
    assert_only(&before, &h.counters(), &["out_of_window"]);
    assert!(h.stack.recv(c, &mut buf).is_err());
}

#[test]
fn icmp_echo_is_answered() {
    let mut h = Harness::new();
    let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 7];
    icmp.extend_from_slice(b"ping payload");
    let c = !checksum::sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    h.inject(&ip_packet(1, &icmp));
    let mut buf = [0u8; 256];
    let n = h
        .stack
        .poll_transmit(h.now, &mut buf)
        .map(|t| t.len)
        .unwrap();
    let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst_addr(), PEER);
    let reply = ip.payload();
    assert_eq!(reply[0], 0, "echo reply");
    assert_eq!(&reply[4..], &icmp[4..]);
    assert_eq!(checksum::sum(reply), 0xffff);
    let c = h.counters();
    assert_eq!(
        (c.ip_tx_packets, c.tcp_tx_segments),
        (1, 0),
        "an IP packet, not TCP"
    );
    assert_eq!(c.icmp_echo_requests, 1);
    // A corrupted echo request is dropped.
    let mut bad = icmp.clone();
    bad[9] ^= 1;
    assert_dropped(&mut h, &ip_packet(1, &bad), "icmp_bad_checksum");
    assert_dropped(&mut h, &ip_packet(1, &[8, 0, 0]), "icmp_truncated");
}

#[test]
fn an_echo_reply_longer_than_the_transmit_buffer_is_dropped_and_counted() {
    let mut h = Harness::new();
    let mut icmp = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 7];
    icmp.extend_from_slice(&[7; 200]);
    let c = !checksum::sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    // MIN_TRANSMIT_BUF holds the longest headers: with that much (or more), a reply
    // that does not fit is judged too long, not kept for a larger buffer.
    for len in [tcpstack::MIN_TRANSMIT_BUF, 128] {
        h.inject(&ip_packet(1, &icmp));
        let before = h.counters();
        let mut buf = vec![0u8; len];
        assert!(h.stack.poll_transmit(h.now, &mut buf).is_none());
        assert_only(&before, &h.counters(), &["icmp_reply_too_long"]);
        // Gone, not waiting for a larger buffer.
        let mut big = [0u8; 1500];
        assert!(h.stack.poll_transmit(h.now, &mut big).is_none(), "{len}");
    }
    // Handed out in pieces, a reply is held to the packet limit, not only to the
    // header buffer it is written into.
    let mut head = [0u8; 1500];
    for (max_len, fits) in [(128, false), (1500, true)] {
        h.inject(&ip_packet(1, &icmp));
        let before = h.counters();
        let sent = h
            .stack
            .poll_transmit_gathered(h.now, &mut head, max_len, |t, g| {
                (
                    t.len,
                    g.headers.len(),
                    g.payload[0].len() + g.payload[1].len(),
                )
            });
        if fits {
            assert_eq!(sent, Some((20 + icmp.len(), 20 + icmp.len(), 0)));
        } else {
            assert_eq!(sent, None);
            assert_only(&before, &h.counters(), &["icmp_reply_too_long"]);
        }
    }
}

/// A transmit buffer of `MIN_TRANSMIT_BUF` bytes holds any headers, so a connection
/// that answers it with nothing has nothing to send: the stack moves on to the next
/// one instead of returning empty-handed while that one waits.
#[test]
fn a_minimal_transmit_buffer_gets_the_next_connections_segment() {
    let mut h = Harness::new();
    h.establish();
    let a = h.conn.unwrap();
    // The peer of `a` closes its window: data queued there cannot go out.
    let mut shut = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt());
    shut.window = 0;
    h.send(&shut);
    h.replies();
    // A second connection, from another port.
    let mut syn = Seg::new(flags::SYN, 5000, 0).opts(&[2, 4, 5, 180]);
    syn.src_port = PEER_PORT + 1;
    h.send(&syn);
    let synack = h.replies();
    let mut ack = Seg::new(flags::ACK, 5001, synack[0].seq.wrapping_add(1));
    ack.src_port = PEER_PORT + 1;
    h.send(&ack);
    let b = match h.stack.poll_event() {
        Some(Event::Incoming(l)) => h.stack.accept(l).unwrap(),
        other => panic!("expected Incoming, got {other:?}"),
    };
    h.stack.send(h.now, a, &[1; 100]).unwrap();
    h.stack.send(h.now, b, &[2; 100]).unwrap();
    let mut buf = vec![0u8; tcpstack::MIN_TRANSMIT_BUF];
    let t = h.stack.poll_transmit(h.now, &mut buf).expect("b's segment");
    let ip = Ipv4Packet::new_checked(&buf[..t.len]).unwrap();
    let dst_port = u16::from_be_bytes([ip.payload()[2], ip.payload()[3]]);
    assert_eq!(dst_port, PEER_PORT + 1);
}

#[test]
fn bogus_ack_to_a_listener_gets_a_reset_not_a_connection() {
    let mut h = Harness::new();
    let before = h.counters();
    h.send(&Seg::new(flags::ACK, 1234, 987_654));
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].flags, r[0].seq), (flags::RST, 987_654));
    assert_only(
        &before,
        &h.counters(),
        &["syn_cookies_rejected", "rst_sent"],
    );
    assert_eq!(h.stack.connection_count(), 0);
}

#[test]
fn syn_flood_is_bounded_and_answered_with_cookies() {
    let mut h = Harness::with(|c| c.max_half_open = 16);
    for i in 0..2000u32 {
        let mut s = Seg::new(flags::SYN, i * 7919, 0).opts(&[2, 4, 5, 180]);
        s.src_port = 1024 + (i % 60000) as u16;
        h.send(&s);
        h.replies();
    }
    assert_eq!(h.stack.connection_count(), 16);
    assert_eq!(h.counters().syn_cookies_sent, 2000 - 16);
    // A legitimate client still gets through on a cookie.
    let mut s = Seg::new(flags::SYN, 5, 0).opts(&[2, 4, 5, 180]);
    s.src_port = 65000;
    h.send(&s);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    let mut ack = Seg::new(flags::ACK, 6, r[0].seq.wrapping_add(1));
    ack.src_port = 65000;
    h.send(&ack);
    assert_eq!(h.counters().syn_cookies_accepted, 1);
    assert_eq!(h.stack.connection_count(), 17);
}

/// SYN options as Linux sends them: MSS 1460, SACK permitted, timestamps (TSval
/// `tsval`), window scale 7.
fn linux_syn_options(tsval: u32) -> Vec<u8> {
    let mut o = vec![2, 4, 5, 180, 4, 2, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&0u32.to_be_bytes());
    o.extend_from_slice(&[1, 3, 3, 7]);
    o
}

/// SACK option (with NOP padding) carrying `blocks` as `(left, right)` edges.
fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut o = vec![1, 1, 5, 2 + 8 * blocks.len() as u8];
    for &(l, r) in blocks {
        o.extend_from_slice(&l.to_be_bytes());
        o.extend_from_slice(&r.to_be_bytes());
    }
    o
}

/// Timestamp option (with NOP padding) carrying `tsval` and echoing `tsecr`.
fn ts_option(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&tsecr.to_be_bytes());
    o
}

/// The TSval and TSecr of a reply's timestamp option.
fn reply_timestamp(r: &Reply) -> (u32, u32) {
    let mut o = &r.options[..];
    while let [kind, rest @ ..] = o {
        match *kind {
            0 => break,
            1 => o = rest,
            8 => {
                let word = |i: usize| u32::from_be_bytes(rest[i..i + 4].try_into().unwrap());
                return (word(1), word(5));
            }
            _ => o = &o[usize::from(rest[0])..],
        }
    }
    panic!("no timestamp option in {r:?}")
}

/// The TSval of a reply's timestamp option.
fn reply_tsval(r: &Reply) -> u32 {
    reply_timestamp(r).0
}

/// Whether a reply's options include kind `kind`.
fn has_option(r: &Reply, kind: u8) -> bool {
    let mut o = &r.options[..];
    while let [k, rest @ ..] = o {
        match *k {
            0 => return false,
            1 => o = rest,
            k if k == kind => return true,
            _ => o = &o[usize::from(rest[0])..],
        }
    }
    false
}

/// The SACK blocks of a reply's options, as `(left, right)`.
fn reply_sack_blocks(r: &Reply) -> Vec<(u32, u32)> {
    let mut o = &r.options[..];
    while let [kind, rest @ ..] = o {
        match *kind {
            0 => break,
            1 => o = rest,
            5 => {
                let len = usize::from(rest[0]);
                return rest[1..len - 1]
                    .chunks_exact(8)
                    .map(|b| {
                        let edge = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
                        (edge(0), edge(4))
                    })
                    .collect();
            }
            _ => o = &o[usize::from(rest[0])..],
        }
    }
    Vec::new()
}

impl Harness {
    /// Fills the listener's half-open queue (the stack runs with `max_half_open` 16)
    /// with SYNs that are never completed, so that the next SYN gets a cookie.
    fn flood_half_open(&mut self) {
        for i in 0..16u32 {
            let mut s = Seg::new(flags::SYN, i * 7919, 0).opts(&[2, 4, 5, 180]);
            s.src_port = 2000 + i as u16;
            self.send(&s);
            self.replies();
        }
        assert_eq!(self.stack.connection_count(), 16);
    }

    /// Sends a SYN with Linux's options from the test's peer port and returns the
    /// cookie SYN-ACK (asserting it is one).
    fn cookie_syn(&mut self, isn: u32, tsval: u32) -> Reply {
        let before = self.counters().syn_cookies_sent;
        self.send(&Seg::new(flags::SYN, isn, 0).opts(&linux_syn_options(tsval)));
        let r = self.replies();
        assert_eq!(r.len(), 1, "one SYN-ACK: {r:?}");
        assert_eq!(r[0].flags, flags::SYN | flags::ACK);
        assert_eq!(
            self.counters().syn_cookies_sent,
            before + 1,
            "answered by cookie"
        );
        self.peer_isn = isn;
        self.stack_isn = r[0].seq;
        r[0].clone()
    }

    /// A SYN (ISN 100) from the peer's `port`, completed by its ACK if `complete`;
    /// returns the stack's ISN. The connection is left unaccepted.
    fn handshake_from(&mut self, port: u16, complete: bool) -> u32 {
        let mut syn = Seg::new(flags::SYN, 100, 0).opts(&[2, 4, 5, 180]);
        syn.src_port = port;
        self.send(&syn);
        let isn = self.replies()[0].seq;
        if complete {
            let mut ack = Seg::new(flags::ACK, 101, isn.wrapping_add(1));
            ack.src_port = port;
            self.send(&ack);
        }
        isn
    }

    /// After a plain handshake: 500 bytes sent and acknowledged with the window shut,
    /// and 500 more waiting for it. Returns the connection and that window-shutting
    /// ACK (to answer probes with).
    fn shut_window_with_data_waiting(&mut self) -> (ConnId, Seg) {
        self.establish();
        let c = self.conn.unwrap();
        self.stack.send(self.now, c, &[4; 500]).unwrap();
        assert_eq!(data_segments(&self.replies()).len(), 1);
        let mut shut = Seg::new(flags::ACK, self.rcv_nxt(), self.snd_nxt().wrapping_add(500));
        shut.window = 0;
        self.send(&shut);
        self.stack.send(self.now, c, &[5; 500]).unwrap();
        assert!(self.replies().is_empty(), "nothing goes into a zero window");
        (c, shut)
    }

    /// Accepts the connection a completed handshake queued on the listener.
    fn accept_incoming(&mut self) -> ConnId {
        let l = match self.stack.poll_event() {
            Some(Event::Incoming(l)) => l,
            other => panic!("expected Incoming, got {other:?}"),
        };
        let c = self.stack.accept(l).unwrap();
        self.conn = Some(c);
        c
    }
}

/// The counters that must never move on a clean cookie handshake and first request.
const WINDOW_DROPS: [&str; 4] = [
    "rcv_window_trimmed",
    "ooo_dropped",
    "duplicate_bytes",
    "unexpected_segments",
];

fn assert_no_window_drops(before: &Counters, after: &Counters) {
    for ((name, b), (_, a)) in before.iter().zip(after.iter()) {
        if WINDOW_DROPS.contains(&name) {
            assert_eq!(a, b, "counter {name} moved");
        }
    }
}

#[test]
fn cookie_connection_takes_data_on_the_completing_ack_at_once() {
    let mut h = Harness::with(|c| c.max_half_open = 16);
    h.flood_half_open();
    let synack = h.cookie_syn(1_000_000, 500);
    // The cookie SYN-ACK offers the same window as a stateful one.
    assert_eq!(synack.window, 65535);
    let before = h.counters();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let ack = Seg::new(flags::ACK | flags::PSH, h.rcv_nxt(), h.snd_nxt())
        .opts(&ts_option(501, reply_tsval(&synack)))
        .data(request);
    h.send(&ack);
    assert_eq!(
        h.counters().syn_cookies_accepted,
        before.syn_cookies_accepted + 1
    );
    let c = h.accept_incoming();
    // Delivered at once, not after a retransmission.
    assert_eq!(h.stack.recv_available(c).unwrap(), request.len());
    let mut buf = [0u8; 64];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), request.len());
    assert_eq!(&buf[..request.len()], request);
    assert_no_window_drops(&before, &h.counters());
    // Whatever the stack answers acknowledges the request.
    for r in h.replies() {
        assert_eq!(
            r.ack,
            h.rcv_nxt().wrapping_add(request.len() as u32),
            "{r:?}"
        );
    }
    // A cookie connection was never half-open: the queue is as full as before, and
    // the next SYN is answered with a cookie too.
    let mut s = Seg::new(flags::SYN, 9, 0).opts(&[2, 4, 5, 180]);
    s.src_port = PEER_PORT + 1;
    let sent = h.counters().syn_cookies_sent;
    h.send(&s);
    assert_eq!(h.replies().len(), 1);
    assert_eq!(h.counters().syn_cookies_sent, sent + 1);
    assert_eq!(h.stack.connection_count(), 17);
}

#[test]
fn cookie_connection_takes_a_full_window_after_the_completing_ack() {
    let mut h = Harness::with(|c| c.max_half_open = 16);
    h.flood_half_open();
    let synack = h.cookie_syn(77, 900);
    let ecr = reply_tsval(&synack);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).opts(&ts_option(901, ecr)));
    assert!(h.replies().is_empty(), "a pure ACK needs no answer");
    let c = h.accept_incoming();
    let before = h.counters();
    // The first flight fills the window the SYN-ACK offered: 65535 bytes in MSS-sized
    // segments (1448 bytes of payload beside the timestamp option).
    let data: Vec<u8> = (0..65535u32).map(|i| (i % 251) as u8).collect();
    let mut seq = h.rcv_nxt();
    for chunk in data.chunks(1448) {
        h.send(
            &Seg::new(flags::ACK, seq, h.snd_nxt())
                .opts(&ts_option(902, ecr))
                .data(chunk),
        );
        seq = seq.wrapping_add(chunk.len() as u32);
    }
    assert_eq!(h.stack.recv_available(c).unwrap(), data.len());
    assert_no_window_drops(&before, &h.counters());
    let last = h.replies().pop().expect("the flight is acknowledged");
    assert_eq!(last.ack, seq);
    let mut got = vec![0u8; data.len()];
    assert_eq!(h.stack.recv(c, &mut got).unwrap(), data.len());
    assert_eq!(got, data);
}

#[test]
fn cookie_connection_takes_data_and_fin_on_the_completing_ack() {
    let mut h = Harness::with(|c| c.max_half_open = 16);
    h.flood_half_open();
    let synack = h.cookie_syn(4242, 10);
    let before = h.counters();
    h.send(
        &Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), h.snd_nxt())
            .opts(&ts_option(11, reply_tsval(&synack)))
            .data(b"bye"),
    );
    let c = h.accept_incoming();
    assert_eq!(h.state(), TcpState::CloseWait);
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"bye");
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 0, "end of stream");
    let r = h.replies();
    assert_eq!(r.last().map(|r| r.ack), Some(h.rcv_nxt().wrapping_add(4)));
    assert_no_window_drops(&before, &h.counters());
}

#[test]
fn a_segment_overtaking_the_cookie_completing_one_is_dropped_not_reset() {
    let mut h = Harness::with(|c| c.max_half_open = 16);
    h.flood_half_open();
    let synack = h.cookie_syn(5000, 20);
    let ecr = reply_tsval(&synack);
    let first = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt())
        .opts(&ts_option(21, ecr))
        .data(&[1; 100]);
    let second = Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(100), h.snd_nxt())
        .opts(&ts_option(21, ecr))
        .data(&[2; 100]);
    // The second segment arrives first: its SEQ does not match the cookie.
    let before = h.counters();
    h.send(&second);
    assert!(
        h.replies().is_empty(),
        "no reset for the client's own segment"
    );
    assert_only(&before, &h.counters(), &["syn_cookies_rejected"]);
    assert_eq!(h.stack.connection_count(), 16);
    // Then the first completes the handshake, and the second is taken when resent.
    h.send(&first);
    let c = h.accept_incoming();
    h.send(&second);
    assert_eq!(h.stack.recv_available(c).unwrap(), 200);
    // Without recently sent cookies, a stray ACK is reset as usual (covered by
    // `bogus_ack_to_a_listener_gets_a_reset_not_a_connection`); once the cookies have
    // expired, it is reset again.
    h.now += Duration::from_secs(129);
    let mut stray = Seg::new(flags::ACK, 1, 2);
    stray.src_port = PEER_PORT + 7;
    h.send(&stray);
    let r = h.replies();
    assert_eq!(
        r.iter().filter(|r| r.flags == flags::RST).count(),
        1,
        "{r:?}"
    );
}

#[test]
fn cookie_syn_ack_offers_sack_only_to_a_peer_that_permits_it() {
    let mut h = Harness::with(|c| c.max_half_open = 16);
    h.flood_half_open();
    let permits = h.cookie_syn(1, 1);
    assert!(
        has_option(&permits, 4),
        "SACK permitted echoed: {permits:?}"
    );
    // Timestamps and window scaling, but no SACK-permitted option.
    let mut opts = vec![2, 4, 5, 180, 1, 1, 8, 10];
    opts.extend_from_slice(&5u32.to_be_bytes());
    opts.extend_from_slice(&0u32.to_be_bytes());
    opts.extend_from_slice(&[1, 3, 3, 7]);
    let mut s = Seg::new(flags::SYN, 9, 0).opts(&opts);
    s.src_port = PEER_PORT + 1;
    h.send(&s);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert!(has_option(&r[0], 8), "timestamps kept: {r:?}");
    assert!(
        !has_option(&r[0], 4),
        "SACK offered to a peer without it: {r:?}"
    );
}

#[test]
fn syn_ack_retransmissions_to_a_silent_peer_are_bounded_and_counted() {
    let mut h = Harness::new();
    h.send(&Seg::new(flags::SYN, 1000, 0).opts(&[2, 4, 5, 180]));
    assert_eq!(h.replies().len(), 1);
    let mut resent = 0;
    for _ in 0..100 {
        let Some(due) = h.stack.poll_timeout() else {
            break;
        };
        h.now = due;
        h.stack.handle_timeout(h.now);
        resent += h.replies().len();
    }
    // Linux's tcp_synack_retries: 5 retransmissions, then the half-open connection
    // is dropped and its slot freed.
    assert_eq!(resent, 5);
    assert_eq!(h.counters().synack_retransmits, 5);
    assert_eq!(h.counters().syn_retransmits, 0);
    assert_eq!(h.stack.connection_count(), 0);
    assert_eq!(h.stack.poll_timeout(), None);
}

/// RFC 7323 section 3.2: our SYN-ACK echoes the SYN's TSval, and so does each
/// retransmission of it.
#[test]
fn a_syn_ack_and_its_retransmissions_echo_the_syn_timestamp() {
    let mut h = Harness::new();
    // MSS, then the timestamp option with TSval 12345.
    let mut opts = vec![2, 4, 5, 180];
    opts.extend(ts_option(12_345, 0));
    h.send(&Seg::new(flags::SYN, 1000, 0).opts(&opts));
    for attempt in 0..3 {
        let r = h.replies();
        assert_eq!(r.len(), 1, "attempt {attempt}: {r:?}");
        assert_eq!(r[0].flags, flags::SYN | flags::ACK);
        assert_eq!(reply_timestamp(&r[0]).1, 12_345, "attempt {attempt}");
        h.run_next_timer("the SYN-ACK is retransmitted");
    }
    assert!(h.counters().synack_retransmits >= 2);
}

#[test]
fn paws_rejects_old_timestamps() {
    let mut h = Harness::new();
    // MSS, SACK permitted, timestamps (TSval 1000).
    h.establish_with(1000, &[2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 3, 232, 0, 0, 0, 0]);
    let c = h.conn.unwrap();
    let ts = |val: u32| {
        let mut o = vec![1, 1, 8, 10];
        o.extend_from_slice(&val.to_be_bytes());
        o.extend_from_slice(&0u32.to_be_bytes());
        o
    };
    h.send(
        &Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt())
            .opts(&ts(2000))
            .data(b"new"),
    );
    h.replies();
    assert_eq!(h.stack.recv_available(c).unwrap(), 3);
    let before = h.counters();
    let s = Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(3), h.snd_nxt())
        .opts(&ts(1500))
        .data(b"old");
    h.send(&s);
    assert_eq!(h.replies().len(), 1, "a duplicate ACK answers");
    assert_only(&before, &h.counters(), &["paws_rejected"]);
    assert_eq!(h.stack.recv_available(c).unwrap(), 3);
}

/// Like Linux (`TCP_PAWS_WINDOW`), PAWS forgives a TSval one tick behind TS.Recent:
/// a peer's clock that ticks between two segments reordered on the way makes the
/// later-sent one look a tick newer, and dropping the other would discard new data.
/// Such a segment does not move TS.Recent back; two ticks behind is still rejected.
#[test]
fn paws_forgives_a_timestamp_one_tick_behind() {
    let mut h = Harness::new();
    // MSS, SACK permitted, timestamps (TSval 1000).
    h.establish_with(1000, &[2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 3, 232, 0, 0, 0, 0]);
    let c = h.conn.unwrap();
    // Three bytes at `offset` into the peer's stream.
    let data = |h: &Harness, offset: u32, tsval: u32| {
        Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(offset), h.snd_nxt())
            .opts(&ts_option(tsval, 0))
            .data(b"abc")
    };
    // Acknowledged (after the delayed-ACK timer), so TS.Recent may be updated by the
    // next segment: it starts at the left edge of the window.
    let flush_acks = |h: &mut Harness| {
        h.now += Duration::from_millis(500);
        h.stack.handle_timeout(h.now);
        h.replies()
    };
    h.send(&data(&h, 0, 2000));
    flush_acks(&mut h);
    let before = h.counters();
    h.send(&data(&h, 3, 1999));
    assert_eq!(
        h.stack.recv_available(c).unwrap(),
        6,
        "one tick behind: accepted"
    );
    assert_eq!(h.counters().paws_rejected, before.paws_rejected);
    // Its ACK still echoes the newest timestamp.
    let acks = flush_acks(&mut h);
    assert_eq!(reply_timestamp(acks.last().expect("an ACK")).1, 2000);
    h.send(&data(&h, 6, 1998));
    h.replies();
    assert_eq!(
        h.stack.recv_available(c).unwrap(),
        6,
        "two ticks behind: rejected"
    );
    assert_eq!(h.counters().paws_rejected, before.paws_rejected + 1);
}

#[test]
fn random_garbage_never_panics() {
    let mut h = Harness::new();
    h.establish();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let template = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt())
        .data(b"0123456789")
        .packet();
    for _ in 0..20_000 {
        let mut p = template.clone();
        let flips = next() % 6;
        for _ in 0..=flips {
            let i = (next() as usize) % p.len();
            p[i] = next() as u8;
        }
        p.truncate((next() as usize) % (p.len() + 1));
        if next() % 2 == 0 {
            fix_ip_checksum_if_possible(&mut p);
        }
        h.inject(&p);
        h.replies();
        h.now += Duration::from_millis(1);
        h.stack.handle_timeout(h.now);
        while h.stack.poll_event().is_some() {}
    }
    let c = h.counters();
    assert!(c.ip_bad_checksum + c.ip_truncated + c.tcp_bad_checksum > 0);
}

fn fix_ip_checksum_if_possible(p: &mut [u8]) {
    if p.len() >= 20 {
        fix_ip_checksum(p);
    }
}

#[test]
fn segments_meaning_nothing_to_a_listener_are_dropped_and_counted() {
    let mut h = Harness::new();
    // No SYN, ACK or RST: a "null" segment and a bare FIN.
    let p = Seg::new(0, 1, 0).packet();
    assert_dropped(&mut h, &p, "unexpected_segments");
    let p = Seg::new(flags::FIN, 1, 0).packet();
    assert_dropped(&mut h, &p, "unexpected_segments");
    // A RST to a listener is never answered.
    let p = Seg::new(flags::RST, 1, 0).packet();
    assert_dropped(&mut h, &p, "rst_received");
    assert_eq!(h.stack.connection_count(), 0);
}

/// A peer that shuts its window on data already in flight (a receiver under memory
/// pressure may shrink its window, RFC 9293 section 3.8.6) and keeps answering: each
/// retransmission timeout resends the segment at SND.UNA whatever the window, which is
/// also the window probe, and the connection outlives the retry limit for as long as
/// the peer answers. Once the peer goes silent, the retry limit aborts it.
#[test]
fn a_window_shut_on_data_in_flight_is_probed_not_timed_out() {
    let mut h = Harness::with(|c| c.tcp.max_retries = 3);
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[7u8; 1000]).unwrap();
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].seq, r[0].payload_len), (h.snd_nxt(), 1000));
    let shut = Seg {
        window: 0,
        ..Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt())
    };
    h.send(&shut);
    assert!(h.replies().is_empty());
    let timeout = |h: &mut Harness| {
        h.run_next_timer("the retransmission timer runs");
        h.replies()
    };
    for i in 0..10 {
        let r = timeout(&mut h);
        assert_eq!(r.len(), 1, "probe {i}: {r:?}");
        assert_eq!(
            (r[0].seq, r[0].payload_len),
            (h.snd_nxt(), 1000),
            "probe {i}"
        );
        h.send(&shut);
        assert_eq!(h.state(), TcpState::Established, "probe {i}");
    }
    assert_eq!(h.stack.conn_info(c).unwrap().retries, 0);
    assert!(h.counters().window_probes >= 10);
    // Silence: the probe answered last, then `max_retries` unanswered ones, then the
    // limit.
    for i in 0..4 {
        assert_eq!(timeout(&mut h).len(), 1, "retransmission {i}");
    }
    timeout(&mut h);
    let events: Vec<Event> = std::iter::from_fn(|| h.stack.poll_event()).collect();
    assert!(
        events.contains(&Event::Error(c, ConnError::TimedOut { retries: 3 })),
        "{events:?}"
    );
}

/// The data segments (sequence number, length) among `replies`.
fn data_segments(replies: &[Reply]) -> Vec<(u32, usize)> {
    replies
        .iter()
        .filter(|r| r.payload_len > 0)
        .map(|r| (r.seq, r.payload_len))
        .collect()
}

/// With the congestion window full, each of the first two duplicate ACKs lets one new
/// segment out (RFC 3042 limited transmit); the third starts fast retransmit.
#[test]
fn limited_transmit_then_fast_retransmit_on_duplicate_acks() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let mss = 1460;
    h.stack.send(h.now, c, &vec![1u8; 20 * mss]).unwrap();
    let first = data_segments(&h.replies());
    assert_eq!(first.len(), 10, "initial window: {first:?}");
    let una = h.snd_nxt();
    let dup = Seg::new(flags::ACK, h.rcv_nxt(), una);
    for i in 0..2u32 {
        h.send(&dup);
        let out = data_segments(&h.replies());
        let next = una.wrapping_add((10 + i) * mss as u32);
        assert_eq!(out, vec![(next, mss)], "duplicate ACK {i}");
    }
    assert_eq!(h.counters().limited_transmits, 2);
    h.send(&dup);
    let out = data_segments(&h.replies());
    assert_eq!(out.first(), Some(&(una, mss)), "fast retransmit: {out:?}");
    assert_eq!(h.counters().fast_retransmits, 1);
    assert_eq!(h.counters().rto_expirations, 0);
}

/// Three segments in flight and nothing more to send: only two duplicate ACKs can
/// come, and RFC 5827 early retransmit acts on them.
#[test]
fn early_retransmit_with_three_segments_in_flight() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let mss = 1460;
    h.stack.send(h.now, c, &vec![2u8; 3 * mss]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 3);
    let una = h.snd_nxt();
    let dup = Seg::new(flags::ACK, h.rcv_nxt(), una);
    h.send(&dup);
    assert!(data_segments(&h.replies()).is_empty());
    h.send(&dup);
    assert_eq!(data_segments(&h.replies()), vec![(una, mss)]);
    let c = h.counters();
    assert_eq!((c.early_retransmits, c.fast_retransmits), (1, 1));
    assert_eq!(c.rto_expirations, 0);
}

/// Without SACK, the peer can only count duplicate ACKs: out-of-order segments that
/// arrive in one batch (before the stack transmits) still get one ACK each.
#[test]
fn each_out_of_order_segment_gets_its_duplicate_ack() {
    let mut h = Harness::new();
    h.establish();
    let base = h.rcv_nxt();
    for i in 1..=4u32 {
        h.send(&Seg::new(flags::ACK, base.wrapping_add(i * 100), h.snd_nxt()).data(&[3; 100]));
    }
    let acks: Vec<u32> = h.replies().iter().map(|r| r.ack).collect();
    // One per segment, at most DupThresh owed beyond the first.
    assert_eq!(acks, vec![base; 4]);
    assert_eq!(h.counters().out_of_order, 4);
}

/// Four segments in flight, the first lost and only the second SACKed: too few SACKs
/// for DupThresh. RACK's reordering timer (RFC 8985 section 6.3) declares the hole
/// lost once it is `RACK.rtt` plus the reordering window (a quarter of the minimum
/// RTT) old. The recovery it starts has no ACK to follow it, yet the loss probe is
/// armed again: when the one ACK for all four is lost, a probe (not a retransmission
/// timeout) brings the next.
#[test]
fn a_hole_below_sacked_data_is_lost_after_the_reordering_window() {
    let mut h = Harness::new();
    // MSS 1460, SACK permitted; a 20 ms RTT.
    let rtt = Duration::from_millis(20);
    let (_, mss) = h.sack_flight(rtt, 4, 4);
    h.now += rtt;
    let una = h.snd_nxt();
    // One SACK block: the second segment.
    let block = sack(&[(una.wrapping_add(mss), una.wrapping_add(2 * mss))]);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&block));
    assert!(
        data_segments(&h.replies()).is_empty(),
        "one SACK is not a loss"
    );
    let due = h.stack.poll_timeout().expect("the reordering timer runs");
    assert!(
        due <= h.now + Duration::from_millis(5),
        "{due:?} vs {:?}",
        h.now
    );
    h.now = due;
    h.stack.handle_timeout(h.now);
    assert_eq!(
        data_segments(&h.replies()).first(),
        Some(&(una, mss as usize))
    );
    let c = h.counters();
    assert_eq!((c.reordering_timeouts, c.rto_expirations), (1, 0));
    // The ACK of all four is lost: the probe comes within two RTTs and a bit.
    let due = h.stack.poll_timeout().expect("a timer");
    assert!(
        due <= h.now + 2 * rtt + Duration::from_millis(2),
        "{:?}",
        due - h.now
    );
    h.now = due;
    h.stack.handle_timeout(h.now);
    assert_eq!(data_segments(&h.replies()).len(), 1);
    let c = h.counters();
    assert_eq!((c.tail_loss_probes, c.rto_expirations), (1, 0));
}

/// Segments sent while we SACK the peer's data carry fewer bytes: the SACK option
/// takes room within the peer's MSS (RFC 6691). When one of them is lost after the peer's hole has filled, its
/// retransmission carries exactly its bytes: a full MSS would reach into the next
/// segment, make the peer report a duplicate (a D-SACK, counted as a spurious
/// retransmission), and stamp that segment with the retransmission's send time.
#[test]
fn a_retransmission_carries_its_segment_and_no_more() {
    let mut h = Harness::new();
    // The peer's first 100 bytes are missing: we SACK what follows them.
    let (hole, short, sent) = h.short_flight(4);
    // The hole fills; then the peer SACKs all but our first segment.
    let una = h.snd_nxt();
    h.send(&Seg::new(flags::ACK, hole, una).data(&[7; 100]));
    let after = hole.wrapping_add(200);
    let end = sent.last().map(|&(s, l)| s.wrapping_add(l as u32)).unwrap();
    let block = sack(&[(sent[1].0, end)]);
    h.send(&Seg::new(flags::ACK, after, una).opts(&block));
    let out = data_segments(&h.replies());
    assert_eq!(
        out.first(),
        Some(&(una, short)),
        "the retransmission: {out:?}"
    );
    assert_eq!(h.counters().fast_retransmits, 1);
}

/// A lost segment shorter than the MSS (it was cut while a SACK option took room)
/// that is not at SND.UNA goes again once RACK finds it lost, whole, before any
/// timeout: being shorter than today's MSS does not make it empty.
#[test]
fn a_short_lost_segment_above_snd_una_goes_again_whole() {
    let mut h = Harness::new();
    // Our segments carry SACK blocks and are cut to make room for them.
    let (hole, short, sent) = h.short_flight(6);
    // The hole fills, so the MSS is whole again. The peer acknowledges our first
    // segment and SACKs the third, fifth and sixth: the second and fourth are lost.
    h.send(&Seg::new(flags::ACK, hole, h.snd_nxt()).data(&[7; 100]));
    h.replies();
    let ack = sent[1].0;
    let end = sent[5].0.wrapping_add(short as u32);
    let block = sack(&[(sent[4].0, end), (sent[2].0, sent[3].0)]);
    let after = hole.wrapping_add(200);
    h.send(&Seg::new(flags::ACK, after, ack).opts(&block));
    let mut out = data_segments(&h.replies());
    // Whatever RACK still waits for (its reordering window), short of a timeout.
    while out.len() < 2 {
        let Some(due) = h.stack.poll_timeout() else {
            break;
        };
        h.now = due;
        h.stack.handle_timeout(h.now);
        out.extend(data_segments(&h.replies()));
        if h.counters().rto_expirations > 0 {
            break;
        }
    }
    assert_eq!(out, vec![sent[1], sent[3]], "{:?}", h.counters());
    assert_eq!(h.counters().rto_expirations, 0);
}

/// A loss found by an ACK that also acknowledges data (a stretch ACK, common when the
/// peer acknowledges a batch at once) is judged against what was in flight as the ACK
/// arrived: NewReno's ssthresh is half of ten segments, not of the six left after it.
#[test]
fn a_stretch_ack_that_reveals_a_loss_halves_the_flight_it_found() {
    let mut h = Harness::with(|c| c.tcp.congestion.algorithm = tcpstack::CcAlgorithm::NewReno);
    let rtt = Duration::from_millis(20);
    let (c, mss) = h.sack_flight(rtt, 10, 5);
    h.now += rtt;
    let una = h.snd_nxt();
    // Four segments acknowledged at once, the fifth lost, the other five SACKed.
    let ack = una.wrapping_add(4 * mss);
    let block = sack(&[(ack.wrapping_add(mss), una.wrapping_add(10 * mss))]);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), ack).opts(&block));
    assert_eq!(
        data_segments(&h.replies()).first(),
        Some(&(ack, mss as usize))
    );
    assert_eq!(h.counters().fast_retransmits, 1);
    let info = h.stack.conn_info(c).unwrap();
    assert_eq!(info.ssthresh, 5 * mss, "{info:?}");
}

/// A segment marked lost whose original arrives (reordered) before the retransmission
/// could go: nothing is sent again, not even the segment at SND.UNA, which is in
/// flight; and the recovery, which ends without a retransmission, was reordering, so
/// its congestion response is undone.
#[test]
fn a_loss_the_acks_cover_before_it_is_resent_costs_nothing() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    let (c, mss) = h.sack_flight(rtt, 10, 6);
    let cwnd = h.stack.conn_info(c).unwrap().cwnd;
    h.now += rtt;
    let una = h.snd_nxt();
    let seg = |n: u32| una.wrapping_add(n * mss);
    // The second segment is missing below three SACKed ones: lost at once.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), seg(1)).opts(&sack(&[(seg(2), seg(5))])));
    assert_eq!(h.counters().fast_retransmits, 1);
    // Before anything goes out, its original arrives after all.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), seg(5)));
    assert_eq!(data_segments(&h.replies()), [], "nothing is lost now");
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), seg(10)));
    let c2 = h.counters();
    assert_eq!((c2.retransmits, c2.recoveries_undone), (0, 1));
    assert!(
        h.stack.conn_info(c).unwrap().cwnd >= cwnd,
        "the window is back"
    );
}

/// Timestamps tick in milliseconds, our own clock in microseconds: while a segment is
/// timed, an ACK's echo is no sample (its rounding would swamp a short RTT), and an
/// echo of the current tick counts as one tick, not zero (a sample of zero made the
/// minimum RTT, and RACK's reordering window, zero).
#[test]
fn millisecond_echoes_do_not_round_the_rtt() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    h.establish_after(1000, &linux_syn_options(1000), rtt);
    let c = h.conn.unwrap();
    let mss = 1448u32;
    let srtt = |h: &Harness| h.stack.conn_info(c).unwrap().srtt;
    assert_eq!(srtt(&h), Some(rtt));
    h.stack
        .send(h.now, c, &vec![1u8; 3 * mss as usize])
        .unwrap();
    let sent = h.replies();
    assert_eq!(data_segments(&sent).len(), 3);
    let tsval = reply_tsval(&sent[0]);
    let una = h.snd_nxt();
    // Half the timed first segment, echoing a tick 30 ms old: no sample.
    h.now += rtt;
    let old = tsval.wrapping_sub(10);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + mss / 2).opts(&ts_option(2000, old)));
    assert_eq!(srtt(&h), Some(rtt));
    // The timed segment: a sample of its own 20 ms.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + mss).opts(&ts_option(2001, tsval)));
    assert_eq!(srtt(&h), Some(rtt));
    // Nothing timed now; an echo of this very tick is a sample of one tick.
    let this_tick = tsval.wrapping_add(20);
    let ack = una.wrapping_add(3 * mss);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), ack).opts(&ts_option(2002, this_tick)));
    assert_eq!(
        srtt(&h),
        Some(Duration::from_micros((7 * 20_000 + 1_000) / 8))
    );
}

/// Data that arrives again below RCV.NXT is reported once, as the first block of the
/// next ACK (a D-SACK, RFC 2883), so that the sender learns its retransmission was
/// needless; later ACKs report only what is held out of order.
#[test]
fn a_duplicate_is_reported_once_as_a_dsack() {
    let mut h = Harness::new();
    h.establish_with(1000, &[2, 4, 5, 180, 4, 2]);
    let first = h.rcv_nxt();
    let una = h.snd_nxt();
    h.send(&Seg::new(flags::ACK, first, una).data(&[1; 100]));
    h.replies();
    h.send(&Seg::new(flags::ACK, first, una).data(&[1; 100]));
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].ack, first.wrapping_add(100));
    assert_eq!(reply_sack_blocks(&r[0]), [(first, first.wrapping_add(100))]);
    assert_eq!(h.counters().duplicate_bytes, 100);
    // Out-of-order data next: its block alone, the duplicate already reported.
    let ahead = first.wrapping_add(200);
    h.send(&Seg::new(flags::ACK, ahead, una).data(&[2; 50]));
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(reply_sack_blocks(&r[0]), [(ahead, ahead.wrapping_add(50))]);
}

/// RFC 7323 section 5.5: a timestamp older than the last one is rejected, unless the
/// connection has been idle for more than 24 days (the peer's clock may have wrapped).
#[test]
fn paws_forgives_an_old_timestamp_after_24_idle_days() {
    let mut h = Harness::new();
    h.establish_with(1000, &linux_syn_options(1000));
    let c = h.conn.unwrap();
    h.send(
        &Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt())
            .opts(&ts_option(2000, 0))
            .data(b"new"),
    );
    h.replies();
    let day = Duration::from_secs(24 * 3600);
    let old = Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(3), h.snd_nxt())
        .opts(&ts_option(1500, 0))
        .data(b"old");
    h.now += day * 23;
    h.send(&old);
    h.replies();
    assert_eq!(
        h.counters().paws_rejected,
        1,
        "23 days idle: still rejected"
    );
    h.now += day * 2;
    h.send(&old);
    h.replies();
    assert_eq!(h.counters().paws_rejected, 1, "25 days idle: accepted");
    assert_eq!(h.stack.recv_available(c).unwrap(), 6);
}

/// Options our configuration turns off stay off whatever the peer offers, on a normal
/// handshake and on one completed from a SYN cookie.
#[test]
fn options_we_disable_stay_off_whatever_the_peer_offers() {
    let tweak = |c: &mut StackConfig| {
        c.max_half_open = 16;
        c.tcp.sack = false;
        c.tcp.timestamps = false;
        c.tcp.window_scaling = false;
    };
    let assert_off = |h: &Harness, c: ConnId| {
        let info = h.stack.conn_info(c).unwrap();
        assert!(!info.sack && !info.timestamps, "{info:?}");
        assert_eq!(info.window_scale, None, "{info:?}");
    };
    let mut h = Harness::with(tweak);
    let synack = h.establish_with(1000, &linux_syn_options(5));
    for kind in [3, 4, 8] {
        assert!(!has_option(&synack, kind), "option {kind} in {synack:?}");
    }
    assert_off(&h, h.conn.unwrap());

    let mut h = Harness::with(tweak);
    h.flood_half_open();
    let synack = h.cookie_syn(77, 5);
    for kind in [3, 4, 8] {
        assert!(!has_option(&synack, kind), "option {kind} in {synack:?}");
    }
    h.send(&Seg::new(flags::ACK, 78, synack.seq.wrapping_add(1)).opts(&ts_option(6, 0)));
    h.replies();
    let c = h.accept_incoming();
    assert_off(&h, c);
}

/// Puts the harness's connection into TIME-WAIT (the stack closes first) and returns
/// the peer's sequence number after its FIN.
fn into_time_wait(h: &mut Harness, ts: Option<u32>) -> u32 {
    let c = h.conn.unwrap();
    h.stack.close(h.now, c).unwrap();
    let fin = h.replies();
    assert_eq!(fin.len(), 1);
    assert_ne!(fin[0].flags & flags::FIN, 0);
    let mut s = Seg::new(
        flags::ACK | flags::FIN,
        h.rcv_nxt(),
        h.snd_nxt().wrapping_add(1),
    );
    if let Some(tsval) = ts {
        s = s.opts(&ts_option(tsval, reply_tsval(&fin[0])));
    }
    h.send(&s);
    h.replies();
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::TimeWait]
    );
    h.rcv_nxt().wrapping_add(1)
}

/// RFC 6191 / RFC 9293 section 3.6.1: a new SYN reopens a 4-tuple in TIME-WAIT only if
/// it cannot be mistaken for the old incarnation: its sequence number lies beyond the
/// old one's, or with timestamps its TSval is newer.
#[test]
fn a_syn_reopens_time_wait_only_when_newer() {
    let syn_ack_to = |h: &mut Harness, seq: u32, ts: Option<u32>| {
        let mut s = Seg::new(flags::SYN, seq, 0);
        s = match ts {
            Some(t) => s.opts(&linux_syn_options(t)),
            None => s.opts(&[2, 4, 5, 180]),
        };
        h.send(&s);
        h.replies()
            .iter()
            .any(|r| r.flags == flags::SYN | flags::ACK)
    };
    // Without timestamps: the sequence number decides.
    let mut h = Harness::new();
    h.establish();
    let next = into_time_wait(&mut h, None);
    assert!(!syn_ack_to(&mut h, next.wrapping_sub(1), None), "older SEQ");
    let mut h = Harness::new();
    h.establish();
    let next = into_time_wait(&mut h, None);
    assert!(
        syn_ack_to(&mut h, next.wrapping_add(100_000), None),
        "newer SEQ"
    );
    // With timestamps: the TSval decides, whatever the sequence number.
    let mut h = Harness::new();
    h.establish_with(1000, &linux_syn_options(100));
    let next = into_time_wait(&mut h, Some(200));
    assert!(
        !syn_ack_to(&mut h, next.wrapping_add(100_000), Some(200)),
        "same TSval"
    );
    let mut h = Harness::new();
    h.establish_with(1000, &linux_syn_options(100));
    let next = into_time_wait(&mut h, Some(200));
    assert!(
        syn_ack_to(&mut h, next.wrapping_sub(5), Some(201)),
        "newer TSval"
    );
}

/// A fast retransmit that D-SACKs prove needless (the "lost" segment was only late)
/// has its congestion response undone (RFC 3708).
#[test]
fn a_recovery_proved_spurious_by_dsack_is_undone() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    let (c, mss) = h.sack_flight(rtt, 4, 7);
    let cwnd = h.stack.conn_info(c).unwrap().cwnd;
    h.now += rtt;
    let una = h.snd_nxt();
    // Segments 2-4 SACKed: segment 1 is lost at once and sent again.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(una + mss, una + 4 * mss)])));
    assert_eq!(data_segments(&h.replies()), vec![(una, mss as usize)]);
    assert_eq!(h.counters().fast_retransmits, 1);
    assert!(h.stack.conn_info(c).unwrap().cwnd < cwnd);
    // The original arrives after all, then the retransmission, reported as a
    // duplicate (a D-SACK block below the cumulative ACK). A D-SACK of data outside
    // the episode first: it proves nothing about it.
    h.now += Duration::from_millis(1);
    let end = una + 4 * mss;
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end));
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end).opts(&sack(&[(una - 1, una)])));
    // And one above it (a first block inside the second, RFC 2883 section 4.2).
    h.send(
        &Seg::new(flags::ACK, h.rcv_nxt(), end)
            .opts(&sack(&[(end + 10, end + 20), (end, end + 30)])),
    );
    h.replies();
    assert_eq!(h.counters().recoveries_undone, 0);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end).opts(&sack(&[(una, una + mss)])));
    h.replies();
    let cn = h.counters();
    assert_eq!((cn.dsacks_received, cn.recoveries_undone), (3, 1), "{cn:?}");
    assert!(
        h.stack.conn_info(c).unwrap().cwnd >= cwnd,
        "window restored"
    );
}

/// A peer that SACKs one byte here and there cannot make the sender keep more transmit
/// records than its send buffer justifies (2 per 536 bytes, plus 16): the records stop
/// splitting at the bound, and loss recovery goes on.
#[test]
fn transmit_records_stay_bounded_under_a_flood_of_tiny_sack_blocks() {
    let mut h = Harness::with(|c| c.tcp.send_buffer = 16_384);
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    assert_eq!(h.stack.send(h.now, c, &[9u8; 16_384]).unwrap(), 16_384);
    // The initial window: ten segments.
    let sent = data_segments(&h.replies())
        .iter()
        .map(|s| s.1 as u32)
        .sum::<u32>();
    assert_eq!(sent, 14_600);
    let una = h.snd_nxt();
    let limit = 16_384 / 536 * 2 + 16;
    let mut end = sent;
    for i in 0..250u32 {
        let l = una.wrapping_add(1 + i * 53);
        h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(l, l.wrapping_add(1))])));
        for (seq, len) in data_segments(&h.replies()) {
            end = end.max(seq.wrapping_sub(una) + len as u32);
        }
        let n = h.stack.conn_info(c).unwrap().tx_records;
        assert!(n <= limit, "{n} records after {i} blocks");
    }
    assert_eq!(
        h.stack.conn_info(c).unwrap().tx_records,
        limit,
        "the bound is reached"
    );
    // Everything acknowledged (what the ACKs let out, too): no record is left.
    loop {
        h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una.wrapping_add(end)));
        let more = data_segments(&h.replies());
        if more.is_empty() {
            break;
        }
        for (seq, len) in more {
            end = end.max(seq.wrapping_sub(una) + len as u32);
        }
    }
    assert_eq!(end, 16_384);
    assert_eq!(h.stack.conn_info(c).unwrap().tx_records, 0);
}

/// A FIN that arrives when the window is exactly full is taken (it needs no window),
/// and the ACK for it advertises a zero window, not a window wrapped past the FIN.
#[test]
fn a_fin_into_a_full_window_is_acknowledged_with_a_zero_window() {
    let mut h = Harness::with(|c| c.tcp.recv_buffer = 4096);
    h.establish();
    let before = h.counters();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(&[5; 4096]));
    h.replies();
    h.send(&Seg::new(
        flags::ACK | flags::FIN,
        h.rcv_nxt().wrapping_add(4096),
        h.snd_nxt(),
    ));
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].ack, h.rcv_nxt().wrapping_add(4097), "the FIN is taken");
    assert_eq!(r[0].window, 0, "{r:?}");
    let after = h.counters();
    assert_eq!(
        (
            after.ip_tx_packets - before.ip_tx_packets,
            after.tcp_tx_segments - before.tcp_tx_segments
        ),
        (2, 2)
    );
}

/// An active open from the stack to the test's peer: returns the connection and the
/// SYN it sent.
fn active_open(h: &mut Harness, local_port: u16) -> (ConnId, Reply) {
    let c = h
        .stack
        .connect(
            h.now,
            std::net::SocketAddrV4::new(PEER, PEER_PORT),
            local_port,
        )
        .unwrap();
    let syn = h.replies();
    assert_eq!(syn.len(), 1);
    assert_eq!(syn[0].flags, flags::SYN);
    (c, syn[0].clone())
}

/// The SYN is timed like data (RFC 6298 allows its RTT, Karn's rule aside): an active
/// open knows its RTT once the SYN-ACK arrives, without timestamps too. The SYN goes
/// out before the peer has offered any window, and was once taken for a window probe,
/// whose ACK says nothing about the RTT.
#[test]
fn an_active_open_times_its_syn() {
    let mut h = Harness::new();
    let (c, syn) = active_open(&mut h, 5556);
    h.now += Duration::from_millis(30);
    let mut syn_ack =
        Seg::new(flags::SYN | flags::ACK, 9000, syn.seq.wrapping_add(1)).opts(&[2, 4, 5, 180]);
    syn_ack.dst_port = 5556;
    h.send(&syn_ack);
    assert_eq!(h.stack.state(c).unwrap(), TcpState::Established);
    assert_eq!(
        h.stack.conn_info(c).unwrap().srtt,
        Some(Duration::from_millis(30))
    );
}

/// RFC 9293 section 3.10.7.3: in SYN-SENT, a SYN-ACK whose ACK does not cover our
/// SYN exactly is answered with `<SEQ=SEG.ACK><CTL=RST>` and otherwise ignored; a RST
/// with an acceptable ACK refuses the connection.
#[test]
fn syn_sent_resets_an_unacceptable_syn_ack_and_takes_an_acceptable_rst() {
    let mut h = Harness::new();
    let (c, syn) = active_open(&mut h, 5555);
    let mut bad = Seg::new(flags::SYN | flags::ACK, 9000, syn.seq.wrapping_add(7));
    bad.dst_port = 5555;
    h.send(&bad);
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].flags, r[0].seq),
        (flags::RST, syn.seq.wrapping_add(7))
    );
    let cn = h.counters();
    assert_eq!((cn.rst_sent, cn.ack_unsent), (1, 1));
    assert_eq!(
        h.stack.state(c).unwrap(),
        TcpState::SynSent,
        "still waiting"
    );
    let mut rst = Seg::new(flags::RST | flags::ACK, 0, syn.seq.wrapping_add(1));
    rst.dst_port = 5555;
    h.send(&rst);
    assert!(h.replies().is_empty());
    let cn = h.counters();
    assert_eq!(
        (cn.rst_received, cn.rst_accepted, cn.connect_refused),
        (1, 1, 1)
    );
    assert_eq!(h.stack.state(c).unwrap(), TcpState::Closed);
}

/// A segment just below the window (a keep-alive probe's `SEQ = RCV.NXT - 1`) is
/// unacceptable: answered with an ACK, and its ACK field acknowledges nothing.
#[test]
fn a_segment_below_the_window_acknowledges_nothing() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, b"data in flight").unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 1);
    let before = h.counters();
    h.send(&Seg::new(
        flags::ACK,
        h.rcv_nxt().wrapping_sub(1),
        h.snd_nxt().wrapping_add(14),
    ));
    assert_eq!(h.replies().len(), 1, "an ACK answers");
    assert_only(
        &before,
        &h.counters(),
        &[
            "out_of_window",
            "tcp_rx_segments",
            "ip_rx_packets",
            "tcp_tx_segments",
            "ip_tx_packets",
        ],
    );
    assert_eq!(h.stack.conn_info(c).unwrap().bytes_in_flight, 14);
}

/// A SYN cookie carries the peer's window scale and SACK permission in the low bits of
/// our timestamp (the only place they survive): a connection made from it scales the
/// window as the peer asked, and the encoded timestamp never runs ahead of the
/// connection's clock (the peer's PAWS would drop the next segments).
#[test]
fn cookie_connections_keep_window_scaling_and_timestamps_in_order() {
    for ms in 0..64u64 {
        let mut h = Harness::with(|c| c.max_half_open = 16);
        h.now = Instant::from_millis(20_000 + ms);
        h.flood_half_open();
        let synack = h.cookie_syn(1_000_000, 500);
        assert!(has_option(&synack, 3), "window scale offered: {synack:?}");
        let ts = reply_tsval(&synack);
        let mut ack = Seg::new(flags::ACK, 1_000_001, synack.seq.wrapping_add(1));
        ack = ack.opts(&ts_option(501, ts));
        let before = h.counters();
        h.send(&ack);
        h.replies();
        let after = h.counters();
        for (name, (b, a)) in [
            (
                "syn_cookies_accepted",
                (before.syn_cookies_accepted, after.syn_cookies_accepted),
            ),
            ("passive_opens", (before.passive_opens, after.passive_opens)),
            ("established", (before.established, after.established)),
        ] {
            assert_eq!(a, b + 1, "{name}");
        }
        let c = h.accept_incoming();
        let info = h.stack.conn_info(c).unwrap();
        assert_eq!(info.window_scale.map(|w| w.0), Some(7), "{info:?}");
        assert!(info.sack && info.timestamps, "{info:?}");
        h.stack.send(h.now, c, b"x").unwrap();
        let r = h.replies();
        assert!(
            !super_ts_before(reply_tsval(&r[0]), ts),
            "at {ms} ms the cookie's TSval {ts} runs ahead of the clock {}",
            reply_tsval(&r[0])
        );
    }
    // With timestamps but our window scaling off, no scale is offered or used.
    let mut h = Harness::with(|c| {
        c.max_half_open = 16;
        c.tcp.window_scaling = false;
    });
    h.flood_half_open();
    let synack = h.cookie_syn(7, 9);
    assert!(!has_option(&synack, 3), "{synack:?}");
}

/// Whether timestamp `a` is before `b` on the wrapping clock.
fn super_ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Overlapping data is taken once: the part already received is counted as duplicate,
/// the part beyond the advertised window is trimmed and counted, byte for byte.
#[test]
fn duplicate_and_out_of_window_bytes_are_counted_exactly() {
    let mut h = Harness::with(|c| c.tcp.recv_buffer = 4096);
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(&[1; 100]));
    h.replies();
    // Bytes 50..150: 50 already held.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(50), h.snd_nxt()).data(&[1; 100]));
    h.replies();
    assert_eq!(h.counters().duplicate_bytes, 50);
    assert_eq!(h.stack.recv_available(c).unwrap(), 150);
    // 4096 more bytes from 150: the window (4096 - 150 unread) ends 150 bytes short.
    let window = h.stack.conn_info(c).unwrap().recv_window as usize;
    h.send(&Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(150), h.snd_nxt()).data(&[2; 4096]));
    h.replies();
    assert_eq!(h.counters().rcv_window_trimmed, (4096 - window) as u64);
    assert_eq!(h.stack.recv_available(c).unwrap(), 150 + window);
}

/// RFC 9293 section 3.10.7.4: in SYN-RECEIVED, an ACK that does not acknowledge our
/// SYN-ACK is answered with `<SEQ=SEG.ACK><CTL=RST>` and the half-open connection
/// stays.
#[test]
fn syn_received_resets_an_unacceptable_ack() {
    let mut h = Harness::new();
    h.send(&Seg::new(flags::SYN, 1000, 0).opts(&[2, 4, 5, 180]));
    let synack = h.replies();
    assert_eq!(synack.len(), 1);
    let bad = synack[0].seq.wrapping_add(5);
    h.send(&Seg::new(flags::ACK, 1001, bad));
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].flags, r[0].seq), (flags::RST, bad));
    assert_eq!(h.counters().rst_sent, 1);
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::SynReceived]
    );
    // The right ACK still completes the handshake.
    h.send(&Seg::new(flags::ACK, 1001, synack[0].seq.wrapping_add(1)));
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::Established]
    );
}

/// In-order data that leaves a hole above it still open is acknowledged at once (the
/// peer is in recovery and needs the news), not after the delayed-ACK timer.
#[test]
fn in_order_data_below_a_remaining_hole_is_acknowledged_at_once() {
    let mut h = Harness::new();
    h.establish_with(1000, &[2, 4, 5, 180, 4, 2, 1, 1]);
    let base = h.rcv_nxt();
    // Segment 3 arrives first (a hole at 1 and 2), then segment 1.
    h.send(&Seg::new(flags::ACK, base.wrapping_add(200), h.snd_nxt()).data(&[3; 100]));
    assert_eq!(h.replies().len(), 1, "out of order: a duplicate ACK");
    h.send(&Seg::new(flags::ACK, base, h.snd_nxt()).data(&[1; 100]));
    let r = h.replies();
    assert_eq!(r.len(), 1, "acknowledged at once: {r:?}");
    assert_eq!(r[0].ack, base.wrapping_add(100));
    // Segment 2 fills the last hole: everything is acknowledged at once too.
    h.send(&Seg::new(flags::ACK, base.wrapping_add(100), h.snd_nxt()).data(&[2; 100]));
    let r = h.replies();
    assert_eq!(r.len(), 1, "acknowledged at once: {r:?}");
    assert_eq!(r[0].ack, base.wrapping_add(300));
}

/// A segment without ACK in a synchronized state is dropped and counted (RFC 9293
/// section 3.10.7.4, fifth check).
#[test]
fn a_segment_without_ack_is_dropped_and_counted() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let before = h.counters();
    h.send(&Seg::new(0, h.rcv_nxt(), 0).data(b"no ack"));
    assert!(h.replies().is_empty());
    assert_only(
        &before,
        &h.counters(),
        &["no_ack", "tcp_rx_segments", "ip_rx_packets"],
    );
    assert_eq!(h.stack.recv_available(c).unwrap(), 0);
}

/// Both ends close at once: our FIN is in flight when the peer's arrives without
/// acknowledging it, so the connection goes through CLOSING (counted).
#[test]
fn a_simultaneous_close_goes_through_closing() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.close(h.now, c).unwrap();
    assert_ne!(h.replies()[0].flags & flags::FIN, 0);
    h.send(&Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), h.snd_nxt()));
    h.replies();
    assert_eq!(h.counters().simultaneous_closes, 1);
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::Closing]
    );
}

/// With SACK, a batch of out-of-order segments gets one ACK carrying the blocks; the
/// extra duplicate ACKs owed per segment are for peers without SACK, which count them.
#[test]
fn a_batch_of_out_of_order_segments_gets_one_sack() {
    let mut h = Harness::new();
    h.establish_with(1000, &[2, 4, 5, 180, 4, 2, 1, 1]);
    let base = h.rcv_nxt();
    for i in 1..=4u32 {
        h.send(&Seg::new(flags::ACK, base.wrapping_add(i * 200), h.snd_nxt()).data(&[3; 100]));
    }
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(has_option(&r[0], 5), "SACK blocks: {r:?}");
}

/// RFC 9293 section 3.8.6.1: zero-window probes back off exponentially while the
/// peer keeps its window shut.
#[test]
fn zero_window_probes_back_off() {
    let mut h = Harness::new();
    let (_, shut) = h.shut_window_with_data_waiting();
    let mut sent_at = Vec::new();
    for _ in 0..5 {
        h.run_next_timer("the persist timer runs");
        assert_eq!(h.replies().len(), 1, "one probe");
        sent_at.push(h.now);
        h.send(&shut);
        h.replies();
    }
    for w in sent_at.windows(3) {
        let (a, b) = (w[1] - w[0], w[2] - w[1]);
        assert!(b >= a + a / 2, "probe intervals {a:?} then {b:?}");
    }
    assert_eq!(h.counters().window_probes, 5);
}

/// A connection the application has closed, whose peer keeps its window shut and
/// answers every probe, is given up with a reset after `max_orphan_retries` probes;
/// one still open keeps probing a peer that answers.
#[test]
fn an_orphan_is_not_held_for_a_peer_that_keeps_its_window_shut() {
    let mut h = Harness::with(|c| c.tcp.max_orphan_retries = 3);
    let (c, shut) = h.shut_window_with_data_waiting();
    for i in 0..6 {
        h.run_next_timer("the persist timer runs");
        assert_eq!(h.replies().len(), 1, "probe {i}");
        h.send(&shut);
        h.replies();
    }
    assert_eq!(h.state(), TcpState::Established, "an open connection stays");
    let before = h.counters();
    h.stack.close(h.now, c).unwrap();
    h.replies();
    for i in 0..3 {
        h.run_next_timer("the persist timer runs");
        assert_eq!(h.replies().len(), 1, "orphan probe {i}");
        h.send(&shut);
        h.replies();
    }
    h.run_next_timer("the persist timer runs");
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].flags & flags::RST, flags::RST, "{r:?}");
    assert_eq!(h.counters().orphans_dropped, before.orphans_dropped + 1);
    assert_eq!(h.stack.connection_count(), 0, "nothing is held");
}

/// A connection the application has closed retransmits to a silent peer only
/// `max_orphan_retries` times (Linux's `tcp_orphan_retries`), not `max_retries`.
#[test]
fn an_orphan_gives_up_on_a_silent_peer_after_its_own_retries() {
    let mut h = Harness::with(|c| c.tcp.max_orphan_retries = 3);
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[4; 500]).unwrap();
    h.stack.close(h.now, c).unwrap();
    assert!(!h.replies().is_empty());
    for i in 0..3 {
        h.run_next_timer("the retransmission timer runs");
        assert!(!h.replies().is_empty(), "retransmission {i}");
    }
    let before = h.counters().timeouts;
    h.run_next_timer("the retransmission timer runs");
    assert_eq!(h.counters().timeouts, before + 1);
    assert_eq!(h.stack.connection_count(), 0, "nothing is held");
}

/// A peer that shuts its window and then goes silent is timed out: every window probe
/// it leaves unanswered counts as an unanswered retransmission.
#[test]
fn a_silent_peer_behind_a_shut_window_is_timed_out() {
    let mut h = Harness::with(|c| c.tcp.max_retries = 3);
    let (c, _) = h.shut_window_with_data_waiting();
    // The first probe answers the ACK that shut the window; three go unanswered.
    for i in 0..4 {
        h.run_next_timer("the persist timer runs");
        assert_eq!(h.replies().len(), 1, "probe {i}");
    }
    let before = h.counters().timeouts;
    h.run_next_timer("the persist timer runs");
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().timeouts, before + 1);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(
        h.stack.recv(c, &mut [0; 8]),
        Err(tcpstack::Error::Connection(ConnError::TimedOut {
            retries: 3
        }))
    );
}

/// Probes a silent peer left unanswered do not count against the retransmissions of
/// the data that goes once it opens its window again.
#[test]
fn unanswered_window_probes_do_not_shorten_the_retransmissions_after() {
    let mut h = Harness::with(|c| c.tcp.max_retries = 5);
    let (_, shut) = h.shut_window_with_data_waiting();
    for _ in 0..5 {
        h.run_next_timer("the persist timer runs");
        h.replies();
    }
    let mut open = shut.clone();
    open.window = 10_000;
    h.send(&open);
    assert_eq!(data_segments(&h.replies()).len(), 1, "the data goes");
    for i in 0..5 {
        h.run_next_timer("the retransmission timer runs");
        assert_eq!(data_segments(&h.replies()).len(), 1, "retransmission {i}");
    }
    assert_eq!(h.state(), TcpState::Established);
    h.run_next_timer("the retransmission timer runs");
    assert_eq!(h.state(), TcpState::Closed, "timed out after max_retries");
}

/// A FIN seen out of order whose place data then passes was stale (or forged): it is
/// forgotten, and the real FIN after the data ends the stream.
#[test]
fn a_stale_out_of_order_fin_does_not_swallow_the_real_one() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let start = h.rcv_nxt();
    h.send(&Seg::new(
        flags::FIN | flags::ACK,
        start.wrapping_add(10),
        h.snd_nxt(),
    ));
    h.replies();
    h.send(&Seg::new(flags::ACK, start, h.snd_nxt()).data(&[7; 42]));
    h.replies();
    assert_eq!(h.counters().fin_discarded, 1);
    h.send(&Seg::new(
        flags::FIN | flags::ACK,
        start.wrapping_add(42),
        h.snd_nxt(),
    ));
    let r = h.replies();
    assert_eq!(
        r.last().map(|r| r.ack),
        Some(start.wrapping_add(43)),
        "{r:?}"
    );
    assert_eq!(h.state(), TcpState::CloseWait);
    let mut buf = [0; 64];
    assert_eq!(h.stack.recv(c, &mut buf), Ok(42));
    assert_eq!(h.stack.recv(c, &mut buf), Ok(0));

    // A FIN beyond the real end of the stream: the real one, in order, holds.
    let mut h = Harness::new();
    h.establish();
    let start = h.rcv_nxt();
    h.send(&Seg::new(
        flags::FIN | flags::ACK,
        start.wrapping_add(100),
        h.snd_nxt(),
    ));
    h.replies();
    h.send(&Seg::new(flags::FIN | flags::ACK, start, h.snd_nxt()).data(&[7; 42]));
    let r = h.replies();
    assert_eq!(
        r.last().map(|r| r.ack),
        Some(start.wrapping_add(43)),
        "{r:?}"
    );
    assert_eq!(h.state(), TcpState::CloseWait);
    assert_eq!(h.counters().fin_discarded, 1);
}

/// An ICMP "fragmentation needed" (type 3 code 4) from the path, quoting the segment
/// of ours at `seq` with the next hop's `mtu` (RFC 1191 section 4).
fn frag_needed(mtu: u16, seq: u32) -> Vec<u8> {
    let mut quoted = vec![0u8; 28];
    quoted[0] = 0x45;
    quoted[2..4].copy_from_slice(&1500u16.to_be_bytes());
    quoted[6] = 0x40;
    quoted[8] = 64;
    quoted[9] = 6;
    quoted[12..16].copy_from_slice(&US.octets());
    quoted[16..20].copy_from_slice(&PEER.octets());
    quoted[20..22].copy_from_slice(&PORT.to_be_bytes());
    quoted[22..24].copy_from_slice(&PEER_PORT.to_be_bytes());
    quoted[24..28].copy_from_slice(&seq.to_be_bytes());
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&quoted);
    let c = !checksum::sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ip_packet(1, &icmp)
}

/// RFC 1191: a "fragmentation needed" quoting a segment in flight shrinks the
/// connection's segments to the path's MTU (never below 552), and what went out at
/// the old size goes again at the new one, with SACK and without; one quoting
/// nothing in flight is ignored.
#[test]
fn fragmentation_needed_shrinks_segments_to_the_path_mtu() {
    for syn_opts in [&[2, 4, 5, 180][..], &[2, 4, 5, 180, 4, 2, 1, 1]] {
        let mut h = Harness::new();
        h.establish_with(1000, syn_opts);
        let c = h.conn.unwrap();
        h.stack.send(h.now, c, &[7; 4000]).unwrap();
        let flight = data_segments(&h.replies());
        assert!(flight.iter().all(|&(_, len)| len == 1460), "{flight:?}");
        let before = h.counters();
        h.inject(&frag_needed(1000, h.snd_nxt().wrapping_add(100_000)));
        assert!(h.replies().is_empty());
        assert_eq!(h.counters().icmp_ignored, before.icmp_ignored + 1);
        h.inject(&frag_needed(1000, h.snd_nxt()));
        assert_eq!(h.counters().icmp_frag_needed, before.icmp_frag_needed + 1);
        let again = data_segments(&h.replies());
        assert_eq!(
            again.first(),
            Some(&(h.snd_nxt(), 960)),
            "{syn_opts:?}: {again:?}"
        );
        assert!(again.iter().all(|&(_, len)| len <= 960), "{again:?}");
        // The peer gets it all, at the new size.
        assert_eq!(flight[0].0, h.snd_nxt());
        let end = Some(h.snd_nxt().wrapping_add(4000));
        let mut acked = h.snd_nxt();
        let mut pending = again;
        loop {
            pending.sort();
            for &(seq, len) in &pending {
                if seq == acked {
                    acked = seq.wrapping_add(len as u32);
                }
            }
            if Some(acked) == end {
                break;
            }
            pending = data_segments(&h.ack_data(acked.wrapping_sub(h.snd_nxt())));
            assert!(!pending.is_empty(), "{syn_opts:?}: stalled at {acked}");
            assert!(pending.iter().all(|&(_, len)| len <= 960), "{pending:?}");
        }
        assert_eq!(Some(acked), end, "{syn_opts:?}");
        // An MTU below 552 counts as 552.
        h.stack.send(h.now, c, &[8; 2000]).unwrap();
        let flight = data_segments(&h.replies());
        h.inject(&frag_needed(100, flight[0].0));
        let again = data_segments(&h.replies());
        assert_eq!(again.first().map(|&(_, len)| len), Some(512), "{again:?}");
    }
}

/// RFC 5681 section 2: a duplicate ACK carries no data, no FIN and no window change,
/// acknowledges `SND.UNA` and arrives while data is outstanding. Data segments, window
/// updates and a FIN at `SND.UNA` are not duplicates and start no fast retransmit;
/// three real ones do (a peer without SACK).
#[test]
fn only_true_duplicate_acks_count() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[6; 4 * 1460]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 4);
    let una = h.snd_nxt();
    let mut seq = h.rcv_nxt();
    for _ in 0..3 {
        h.send(&Seg::new(flags::ACK, seq, una).data(&[1; 10]));
        seq = seq.wrapping_add(10);
    }
    for w in [1000u16, 2000, 3000] {
        let mut s = Seg::new(flags::ACK, seq, una);
        s.window = w;
        h.send(&s);
    }
    h.send(&Seg::new(flags::ACK | flags::FIN, seq, una));
    seq = seq.wrapping_add(1);
    h.replies();
    let cn = h.counters();
    assert_eq!(
        (cn.dup_acks, cn.fast_retransmits, cn.retransmits),
        (0, 0, 0),
        "{cn:?}"
    );
    for _ in 0..3 {
        // The window the FIN left (the default of these segments).
        h.send(&Seg::new(flags::ACK, seq, una));
    }
    let r = h.replies();
    assert_eq!(data_segments(&r).first().map(|s| s.0), Some(una), "{r:?}");
    let cn = h.counters();
    assert_eq!((cn.dup_acks, cn.fast_retransmits), (3, 1), "{cn:?}");
}

/// A valid cookie ACK to a listener whose accept queue is full makes no connection
/// and is counted as an overflow.
#[test]
fn a_cookie_ack_to_a_full_accept_queue_is_counted_and_dropped() {
    let mut h = Harness::with(|c| c.max_half_open = 1);
    // Seven completed, unaccepted connections (the backlog is 8), and one half-open
    // that fills the half-open queue: the next SYN gets a cookie.
    for i in 0..7u16 {
        h.handshake_from(3000 + i, true);
    }
    let last = h.handshake_from(3100, false);
    let synack = h.cookie_syn(7000, 1);
    // The half-open one completes: the accept queue is full when the cookie returns.
    let mut ack = Seg::new(flags::ACK, 101, last.wrapping_add(1));
    ack.src_port = 3100;
    h.send(&ack);
    h.replies();
    let before = h.counters();
    h.send(
        &Seg::new(flags::ACK, 7001, synack.seq.wrapping_add(1))
            .opts(&ts_option(2, reply_tsval(&synack))),
    );
    h.replies();
    let after = h.counters();
    assert_eq!(after.listen_overflow, before.listen_overflow + 1);
    assert_eq!(after.syn_cookies_accepted, before.syn_cookies_accepted);
    assert_eq!(h.stack.connection_count(), 8);
}

/// The events the stack has queued.
fn events(h: &mut Harness) -> Vec<Event> {
    std::iter::from_fn(|| h.stack.poll_event()).collect()
}

/// A device that verified the TCP checksum hands packets in trusted: a wrong
/// checksum is not looked at again.
#[test]
fn trusted_packets_skip_the_tcp_checksum() {
    let mut h = Harness::new();
    let mut p = Seg::new(flags::SYN, 1000, 0).opts(&[2, 4, 5, 180]).packet();
    p[20 + 16] ^= 0xff;
    h.inject(&p);
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().tcp_bad_checksum, 1);
    h.stack.handle_packet_trusted(h.now, &p);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].flags, flags::SYN | flags::ACK);
}

/// ICMP other than an echo request, and echo requests when answering them is off, are
/// ignored and counted.
#[test]
fn other_icmp_is_ignored_and_counted() {
    let icmp = |kind: u8| {
        let mut m = vec![kind, 0, 0, 0, 0, 1, 0, 1];
        let c = !checksum::sum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        ip_packet(1, &m)
    };
    let mut h = Harness::new();
    h.inject(&icmp(3));
    assert_eq!(h.counters().icmp_ignored, 1);
    let mut h = Harness::with(|c| c.icmp_echo = false);
    h.inject(&icmp(8));
    assert!(h.replies().is_empty());
    let c = h.counters();
    assert_eq!((c.icmp_ignored, c.icmp_echo_requests), (1, 0));
}

/// With the connection table full a SYN is answered from a cookie (which needs no
/// entry); the ACK completing it still finds no room, and is dropped and counted.
#[test]
fn a_connection_that_finds_the_table_full_is_dropped_and_counted() {
    let mut h = Harness::with(|c| c.max_connections = 1);
    h.establish();
    let mut s = Seg::new(flags::SYN, 77, 0).opts(&[2, 4, 5, 180]);
    s.src_port = PEER_PORT + 9;
    h.send(&s);
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(h.counters().syn_cookies_sent, 1);
    let mut ack = Seg::new(flags::ACK, 78, r[0].seq.wrapping_add(1));
    ack.src_port = PEER_PORT + 9;
    h.send(&ack);
    assert_eq!(h.counters().conn_table_full, 1);
    assert_eq!(h.stack.connection_count(), 1);
}

/// READABLE is raised when data first arrives and not again until the application
/// has drained what is there; end of stream raises it too.
#[test]
fn readable_is_raised_once_until_drained() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    events(&mut h);
    let mut seq = h.rcv_nxt();
    let mut data = |h: &mut Harness, n: usize| {
        h.send(&Seg::new(flags::ACK, seq, h.snd_nxt()).data(&vec![1; n]));
        seq = seq.wrapping_add(n as u32);
        h.replies();
    };
    data(&mut h, 100);
    assert_eq!(events(&mut h), [Event::Readable(c)]);
    data(&mut h, 100);
    assert_eq!(events(&mut h), [], "not drained yet");
    let mut buf = [0u8; 50];
    h.stack.recv(c, &mut buf).unwrap();
    data(&mut h, 100);
    assert_eq!(events(&mut h), [], "still not drained");
    let mut buf = [0u8; 1000];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 250);
    data(&mut h, 100);
    assert_eq!(events(&mut h), [Event::Readable(c)]);
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 100);
    h.send(&Seg::new(flags::ACK | flags::FIN, seq, h.snd_nxt()));
    h.replies();
    let ev = events(&mut h);
    assert!(
        ev.contains(&Event::Readable(c)) && ev.contains(&Event::PeerClosed(c)),
        "{ev:?}"
    );
}

/// WRITABLE is raised when an ACK frees space in a send buffer that refused data,
/// and only then.
#[test]
fn writable_follows_a_full_send_buffer() {
    let mut h = Harness::with(|c| c.tcp.send_buffer = 4096);
    h.establish();
    let c = h.conn.unwrap();
    events(&mut h);
    assert_eq!(h.stack.send(h.now, c, &[1; 1000]).unwrap(), 1000);
    h.replies();
    h.ack_data(1000);
    assert!(
        !events(&mut h).contains(&Event::Writable(c)),
        "never refused: no WRITABLE"
    );
    assert_eq!(h.stack.send(h.now, c, &[2; 8192]).unwrap(), 4096);
    h.replies();
    h.ack_data(1000 + 1460);
    assert_eq!(events(&mut h), [Event::Writable(c)]);
}

/// `send_with` queues what its filler writes in place, and raises WRITABLE exactly
/// as `send` does: only after it offered less room than asked for.
#[test]
fn send_with_queues_what_is_written_in_place_and_raises_writable_like_send() {
    let mut h = Harness::with(|c| c.tcp.send_buffer = 4096);
    h.establish();
    let c = h.conn.unwrap();
    events(&mut h);
    let fill = |a: &mut [u8], b: &mut [u8], n: usize| {
        let (a_len, b_len) = (a.len(), b.len());
        assert!(a_len + b_len >= n);
        (n, (a_len, b_len))
    };
    // Offered all it asked for; wrote part of it: only that part is queued.
    let r = h.stack.send_with(h.now, c, 1000, |a, b| fill(a, b, 600));
    assert_eq!(r.unwrap(), (600, (1000, 0)));
    let sent: usize = h.replies().iter().map(|r| r.payload_len).sum();
    assert_eq!(sent, 600);
    h.ack_data(600);
    assert!(
        !events(&mut h).contains(&Event::Writable(c)),
        "never refused: no WRITABLE"
    );
    // Asked for more than the buffer holds: offered the whole buffer.
    let r = h.stack.send_with(h.now, c, 8192, |a, b| {
        let n = a.len() + b.len();
        fill(a, b, n)
    });
    assert_eq!(r.unwrap().0, 4096);
    let r = h.stack.send_with(h.now, c, 10, |_, _| -> (usize, ()) {
        panic!("called on a full buffer")
    });
    assert_eq!(r, Err(Error::WouldBlock));
    h.replies();
    h.ack_data(600 + 1460);
    assert_eq!(events(&mut h), [Event::Writable(c)]);
}

/// RST in SYN-RECEIVED of an active open (a simultaneous open) refuses the
/// connection; RST in LAST-ACK just closes it, as the close was under way.
#[test]
fn a_reset_refuses_a_simultaneous_open_and_closes_last_ack() {
    let mut h = Harness::new();
    let (c, syn) = active_open(&mut h, 6000);
    let mut peer_syn = Seg::new(flags::SYN, 4000, 0).opts(&[2, 4, 5, 180]);
    peer_syn.dst_port = 6000;
    h.send(&peer_syn);
    let r = h.replies();
    assert_eq!(r[0].flags, flags::SYN | flags::ACK, "{r:?}");
    let mut rst = Seg::new(flags::RST, 4001, 0);
    rst.dst_port = 6000;
    h.send(&rst);
    assert!(events(&mut h).contains(&Event::Error(c, ConnError::Refused)));
    let _ = syn;

    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), h.snd_nxt()));
    h.replies();
    h.stack.shutdown(h.now, c).unwrap();
    h.replies();
    assert_eq!(h.state(), TcpState::LastAck);
    events(&mut h);
    h.send(&Seg::new(flags::RST, h.rcv_nxt().wrapping_add(1), 0));
    let ev = events(&mut h);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.counters().rst_accepted, 1);
    assert!(!ev.iter().any(|e| matches!(e, Event::Reset(_))), "{ev:?}");
}

/// RFC 7323 section 5.3: PAWS does not apply to a RST (an old timestamp on a RST is
/// not a reason to ignore it).
#[test]
fn paws_does_not_reject_a_reset() {
    let mut h = Harness::new();
    h.establish_with(1000, &linux_syn_options(1000));
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).opts(&ts_option(2000, 0)));
    h.replies();
    h.send(&Seg::new(flags::RST, h.rcv_nxt(), 0).opts(&ts_option(1500, 0)));
    assert_eq!(h.counters().paws_rejected, 0);
    assert!(events(&mut h).contains(&Event::Reset(c)));
}

/// With SYN cookies off, an ACK to a listener is reset without a cookie check, and a
/// SYN beyond the half-open limit or the table's room is dropped and counted.
#[test]
fn without_syn_cookies_the_limits_drop_and_count() {
    let off = |c: &mut StackConfig| {
        c.syn_cookies = false;
        c.max_half_open = 1;
    };
    let mut h = Harness::with(off);
    h.send(&Seg::new(flags::ACK, 5, 77));
    let r = h.replies();
    assert_eq!((r.len(), r[0].flags), (1, flags::RST));
    assert_eq!(h.counters().syn_cookies_rejected, 0);
    h.send(&Seg::new(flags::SYN, 100, 0).opts(&[2, 4, 5, 180]));
    assert_eq!(h.replies().len(), 1);
    let mut s = Seg::new(flags::SYN, 200, 0).opts(&[2, 4, 5, 180]);
    s.src_port = PEER_PORT + 1;
    h.send(&s);
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().listen_overflow, 1);
    let mut h = Harness::with(|c| {
        c.syn_cookies = false;
        c.max_connections = 1;
    });
    h.establish();
    let mut s = Seg::new(flags::SYN, 200, 0).opts(&[2, 4, 5, 180]);
    s.src_port = PEER_PORT + 1;
    h.send(&s);
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().conn_table_full, 1);
}

/// A SYN to a listener whose accept queue is full is dropped and counted.
#[test]
fn a_syn_to_a_full_accept_queue_is_dropped_and_counted() {
    let mut h = Harness::new();
    for i in 0..8u16 {
        h.handshake_from(3000 + i, true);
    }
    let mut syn = Seg::new(flags::SYN, 100, 0).opts(&[2, 4, 5, 180]);
    syn.src_port = 4000;
    h.send(&syn);
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().listen_overflow, 1);
}

/// RFC 5827: early retransmit applies only when no new data can go out; while it can,
/// the duplicate ACKs let new segments out (limited transmit) instead.
#[test]
fn no_early_retransmit_while_new_data_can_go() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let mss = 1460;
    h.stack.send(h.now, c, &vec![2u8; 3 * mss]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 3);
    h.stack.send(h.now, c, &vec![3u8; 2 * mss]).unwrap();
    let una = h.snd_nxt();
    let dup = Seg::new(flags::ACK, h.rcv_nxt(), una);
    h.send(&dup);
    h.send(&dup);
    let r = data_segments(&h.replies());
    assert!(r.iter().all(|s| s.0 != una), "no retransmission yet: {r:?}");
    assert_eq!(h.counters().early_retransmits, 0);
}

/// NewReno (RFC 6582): a partial ACK in recovery retransmits the next hole at once.
#[test]
fn a_partial_ack_retransmits_the_next_hole_without_sack() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let mss = 1460u32;
    h.stack
        .send(h.now, c, &vec![4u8; 6 * mss as usize])
        .unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 6);
    let una = h.snd_nxt();
    // Segments 1 and 3 lost: three duplicates for segment 1.
    for _ in 0..3 {
        h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una));
    }
    assert_eq!(
        data_segments(&h.replies()).first(),
        Some(&(una, mss as usize))
    );
    // The retransmission arrives: the ACK stops at segment 3.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + 2 * mss));
    let r = data_segments(&h.replies());
    assert_eq!(r.first(), Some(&(una + 2 * mss, mss as usize)), "{r:?}");
    assert_eq!(h.counters().fast_retransmits, 1);
}

/// In SYN-RECEIVED, the peer's SYN again (its SYN-ACK was lost) brings the SYN-ACK
/// again; a different SYN gets a challenge ACK (RFC 5961 section 4).
#[test]
fn a_retransmitted_syn_in_syn_received_gets_the_syn_ack_again() {
    let mut h = Harness::new();
    h.send(
        &Seg::new(flags::SYN, 1000, 0)
            .opts(&[2, 4, 5, 180])
            .data(b"early"),
    );
    let first = h.replies();
    assert_eq!(first.len(), 1);
    // Retransmitted with its data, the SYN reaches into the window.
    h.send(
        &Seg::new(flags::SYN, 1000, 0)
            .opts(&[2, 4, 5, 180])
            .data(b"early"),
    );
    let again = h.replies();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].flags, again[0].seq),
        (flags::SYN | flags::ACK, first[0].seq)
    );
    assert_eq!(h.counters().challenge_acks, 0);
    // (In SYN-RECEIVED the only acknowledgment there is to send is the SYN-ACK.)
    h.send(&Seg::new(flags::SYN, 1001, 0).opts(&[2, 4, 5, 180]));
    assert_eq!(h.replies().len(), 1);
    assert_eq!(h.counters().challenge_acks, 1);
}

/// A segment that ends exactly at `RCV.NXT` holds nothing new: it is unacceptable
/// (RFC 9293 section 3.10.7.4) and answered with an ACK; its bytes count as received
/// twice.
#[test]
fn an_old_segment_ending_at_rcv_nxt_is_out_of_window() {
    let mut h = Harness::new();
    h.establish();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(&[1; 100]));
    h.replies();
    let before = h.counters();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(&[1; 100]));
    assert_eq!(h.replies().len(), 1);
    let after = h.counters();
    assert_eq!(after.out_of_window, before.out_of_window + 1);
    assert_eq!(after.duplicate_bytes, before.duplicate_bytes + 100);
}

/// Data counts as received twice (and is reported as a D-SACK) only below `RCV.NXT`,
/// and only from at most a receive buffer below it. New data refused by a zero window
/// is not a duplicate, though the head of a segment that straddles `RCV.NXT` is; data
/// one byte further back than a buffer is no retransmission of ours.
#[test]
fn only_old_data_within_a_buffer_counts_as_received_twice() {
    let buffer = 2048usize;
    let mut h = Harness::with(|c| c.tcp.recv_buffer = buffer);
    h.establish();
    let c = h.conn.unwrap();
    let (start, ack) = (h.rcv_nxt(), h.snd_nxt());
    let seg = |offset: usize, len: usize| {
        Seg::new(flags::ACK, start.wrapping_add(offset as u32), ack).data(&vec![9; len])
    };
    // Fill the buffer, read it out, and fill it again: RCV.NXT is 2 buffers in and
    // the window is zero.
    h.send(&seg(0, buffer));
    let mut out = vec![0u8; buffer];
    assert_eq!(h.stack.recv(c, &mut out).unwrap(), buffer);
    h.replies(); // the window update
    h.send(&seg(buffer, buffer));
    h.replies();
    assert_eq!(h.stack.recv_available(c).unwrap(), buffer);
    let rcv_nxt = 2 * buffer;
    let dup = |h: &Harness| h.counters().duplicate_bytes;
    // New data at and just beyond RCV.NXT, in the zero window: refused, no duplicate.
    for offset in [rcv_nxt, rcv_nxt + 50] {
        h.send(&seg(offset, 100));
        h.replies();
    }
    assert_eq!(dup(&h), 0, "new data refused by a zero window");
    // Straddling RCV.NXT: refused, and its 30 old bytes are duplicates.
    h.send(&seg(rcv_nxt - 30, 100));
    h.replies();
    assert_eq!(dup(&h), 30, "the head of a segment across RCV.NXT");
    // Exactly a buffer below RCV.NXT: a retransmission of ours.
    h.send(&seg(rcv_nxt - buffer, 100));
    h.replies();
    assert_eq!(dup(&h), 130, "a buffer below RCV.NXT");
    // One byte further back: not ours to report.
    h.send(&seg(rcv_nxt - buffer - 1, 100));
    h.replies();
    assert_eq!(dup(&h), 130, "beyond a buffer below RCV.NXT");
}

/// RFC 8985 section 7.4: a loss probe that retransmitted the last segment, answered
/// by an ACK beyond it (new data sent since is acknowledged too), repaired a loss: it
/// gets the congestion response recovery would have given.
#[test]
fn a_loss_probe_that_repairs_a_loss_reduces_the_window() {
    let mut h = Harness::new();
    let (c, mss) = h.sack_flight(Duration::from_millis(20), 2, 5u8);
    let una = h.snd_nxt();
    // Segment 1 is acknowledged; segment 2 is lost.
    h.now += Duration::from_millis(20);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + mss));
    h.replies();
    let cwnd = h.stack.conn_info(c).unwrap().cwnd;
    // Timers may fire early and re-arm (the index is lazy): run them until the probe.
    let mut probe = Vec::new();
    for _ in 0..8 {
        h.run_next_timer("a timer is armed");
        probe = data_segments(&h.replies());
        if !probe.is_empty() {
            break;
        }
    }
    assert_eq!(probe, vec![(una + mss, mss as usize)], "the probe");
    assert_eq!(h.counters().tail_loss_probes, 1);
    // New data goes out; then one ACK covers the probe and the new data.
    h.stack.send(h.now, c, &vec![6u8; mss as usize]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 1);
    h.now += Duration::from_millis(20);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + 3 * mss));
    h.replies();
    assert_eq!(
        h.counters().tail_loss_probe_recoveries,
        1,
        "{:?}",
        h.counters()
    );
    assert!(h.stack.conn_info(c).unwrap().cwnd < cwnd);
}

/// A handshake counts one passive open and one established connection. A connection
/// that was reset leaves the 4-tuple at once (its handle may live on): what still
/// arrives for it finds no connection and is answered with a reset.
#[test]
fn a_reset_connection_leaves_its_tuple_at_once() {
    let mut h = Harness::new();
    h.establish();
    let c = h.counters();
    assert_eq!((c.passive_opens, c.established), (1, 1));
    h.send(&Seg::new(flags::RST, h.rcv_nxt(), 0));
    assert_eq!(h.state(), TcpState::Closed);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(b"late"));
    let r = h.replies();
    assert_eq!((r.len(), r[0].flags), (1, flags::RST), "{r:?}");
    assert_eq!(h.stack.recv_available(h.conn.unwrap()).unwrap(), 0);
}

/// A retransmitted FIN in TIME-WAIT (our last ACK was lost) is acknowledged again and
/// restarts the 2 MSL wait (RFC 9293 section 3.10.7.4).
#[test]
fn a_retransmitted_fin_restarts_time_wait() {
    let mut h = Harness::new();
    h.establish();
    into_time_wait(&mut h, None);
    let wait = Duration::from_secs(60);
    // An old ACK (no FIN) is answered but restarts nothing.
    h.now += Duration::from_secs(5);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()));
    h.replies();
    h.now += wait - Duration::from_secs(15);
    h.send(&Seg::new(
        flags::ACK | flags::FIN,
        h.rcv_nxt(),
        h.snd_nxt().wrapping_add(1),
    ));
    assert_eq!(h.replies().len(), 1, "acknowledged again");
    h.now += Duration::from_secs(20);
    h.stack.handle_timeout(h.now);
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::TimeWait],
        "restarted: not over at the first deadline"
    );
    h.now += wait;
    h.stack.handle_timeout(h.now);
    assert_eq!(h.counters().time_wait_expired, 1);
}

/// Every ACK of new data restarts the loss probe's wait from now: a probe never goes
/// out while ACKs keep coming.
#[test]
fn acknowledgments_push_the_loss_probe_back() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    let (_, mss) = h.sack_flight(rtt, 3, 7);
    let start = h.now;
    let una = h.snd_nxt();
    // At 30 ms (before the 42 ms PTO) the first segment is acknowledged.
    h.now = start + Duration::from_millis(30);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + mss));
    h.replies();
    // At 50 ms, past the first PTO but not the one restarted at 30 ms: no probe.
    h.now = start + Duration::from_millis(50);
    h.stack.handle_timeout(h.now);
    assert!(data_segments(&h.replies()).is_empty());
    assert_eq!(h.counters().tail_loss_probes, 0);
}

/// RFC 9293 section 3.10.7.4: the send window is taken only from a segment newer than
/// the one that last set it; an ACK overtaken by a newer one does not shrink it.
#[test]
fn an_older_ack_does_not_set_the_window() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[1; 1000]).unwrap();
    h.replies();
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    let mut newer = Seg::new(flags::ACK, seq, una.wrapping_add(1000));
    newer.window = 5000;
    h.send(&newer);
    let mut older = Seg::new(flags::ACK, seq, una.wrapping_add(500));
    older.window = 100;
    h.send(&older);
    h.replies();
    assert_eq!(h.stack.conn_info(c).unwrap().send_window, 5000);
}

/// After the peer's FIN, new data from it can only be a duplicate: acknowledged and
/// counted, never delivered.
#[test]
fn data_after_the_peers_fin_is_a_counted_duplicate() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), h.snd_nxt()).data(b"abc"));
    h.replies();
    assert_eq!(h.state(), TcpState::CloseWait);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(4), h.snd_nxt()).data(&[9; 10]));
    assert_eq!(h.replies().len(), 1, "acknowledged");
    assert_eq!(h.counters().duplicate_bytes, 10);
    assert_eq!(h.stack.recv_available(c).unwrap(), 3);
}

/// The first FIN fixes where the peer's stream ends; a later FIN claiming another
/// end is ignored.
#[test]
fn the_first_fin_fixes_the_end_of_the_stream() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let base = h.rcv_nxt();
    // Bytes 50..100 and the FIN at 100, ahead of a hole.
    h.send(&Seg::new(flags::ACK | flags::FIN, base.wrapping_add(50), h.snd_nxt()).data(&[2; 50]));
    // A FIN claiming the stream ends at 50.
    h.send(&Seg::new(
        flags::ACK | flags::FIN,
        base.wrapping_add(50),
        h.snd_nxt(),
    ));
    h.send(&Seg::new(flags::ACK, base, h.snd_nxt()).data(&[1; 50]));
    h.replies();
    assert_eq!(h.stack.recv_available(c).unwrap(), 100);
    assert_eq!(h.state(), TcpState::CloseWait);
}

/// In SYN-SENT a segment with neither SYN, ACK nor RST means nothing: dropped and
/// counted.
#[test]
fn syn_sent_drops_a_segment_meaning_nothing() {
    let mut h = Harness::new();
    let (c, _syn) = active_open(&mut h, 5556);
    let mut s = Seg::new(0, 9000, 0).data(b"??");
    s.dst_port = 5556;
    h.send(&s);
    assert!(h.replies().is_empty());
    assert_eq!(h.counters().unexpected_segments, 1);
    assert_eq!(h.stack.state(c).unwrap(), TcpState::SynSent);
}

/// RFC 5961 section 5.2: an ACK older than `SND.UNA - MAX.SND.WND` is dropped with a
/// challenge ACK and counted.
#[test]
fn an_ack_too_old_gets_a_challenge_ack() {
    let mut h = Harness::new();
    h.establish();
    let before = h.counters();
    h.send(&Seg::new(
        flags::ACK,
        h.rcv_nxt(),
        h.snd_nxt().wrapping_sub(1_000_000),
    ));
    assert_eq!(h.replies().len(), 1);
    let after = h.counters();
    assert_eq!(after.ack_too_old, before.ack_too_old + 1);
    assert_eq!(after.challenge_acks, before.challenge_acks + 1);
}

/// At most four loss probes go out while the peer brings no news; ACKs that
/// acknowledge or SACK nothing new do not buy more, and the retransmission timeout
/// follows.
#[test]
fn loss_probes_stop_at_four_without_news() {
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &vec![8u8; 2 * 1460]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 2);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    for _ in 0..12 {
        h.run_next_timer("a timer is armed");
        h.replies();
        // A window update: no news about the data.
        let mut s = Seg::new(flags::ACK, seq, una);
        s.window = 1000 + h.counters().tail_loss_probes as u16;
        h.send(&s);
        h.replies();
        if h.counters().rto_expirations > 0 {
            break;
        }
    }
    let cn = h.counters();
    assert_eq!((cn.tail_loss_probes, cn.rto_expirations), (4, 1), "{cn:?}");
}

/// A SYN-ACK is not a new connection request: it does not reopen a 4-tuple in
/// TIME-WAIT, however new its sequence number.
#[test]
fn a_syn_ack_does_not_reopen_time_wait() {
    let mut h = Harness::new();
    h.establish();
    let next = into_time_wait(&mut h, None);
    h.send(&Seg::new(flags::SYN | flags::ACK, next.wrapping_add(100_000), 5).opts(&[2, 4, 5, 180]));
    let r = h.replies();
    assert!(
        r.iter().all(|x| x.flags != flags::SYN | flags::ACK),
        "{r:?}"
    );
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::TimeWait]
    );
}

/// Out-of-order data is held in at most 32 ranges; a segment that would open another
/// is dropped, counted and acknowledged.
#[test]
fn out_of_order_ranges_are_bounded_and_the_overflow_counted() {
    let mut h = Harness::new();
    h.establish();
    let base = h.rcv_nxt();
    for i in 1..=34u32 {
        h.send(&Seg::new(flags::ACK, base.wrapping_add(i * 20), h.snd_nxt()).data(&[1; 10]));
    }
    h.replies();
    let c = h.counters();
    assert_eq!((c.out_of_order, c.ooo_dropped), (32, 2), "{c:?}");
    assert_eq!((c.ip_rx_packets, c.tcp_rx_segments), (2 + 34, 2 + 34));
}

/// RFC 7323 section 4.3: the timestamp to echo is taken only from a segment that
/// reaches the left edge of the window, not from one that arrives out of order.
#[test]
fn an_out_of_order_segment_does_not_set_the_echoed_timestamp() {
    let mut h = Harness::new();
    h.establish_with(1000, &linux_syn_options(100));
    let base = h.rcv_nxt();
    h.send(
        &Seg::new(flags::ACK, base, h.snd_nxt())
            .opts(&ts_option(4000, 0))
            .data(&[1; 10]),
    );
    h.replies();
    h.send(
        &Seg::new(flags::ACK, base.wrapping_add(100), h.snd_nxt())
            .opts(&ts_option(5000, 0))
            .data(&[2; 10]),
    );
    let r = h.replies();
    assert_eq!(r.len(), 1);
    let at = r[0].options.windows(2).position(|w| w == [8, 10]).unwrap();
    let echo = u32::from_be_bytes(r[0].options[at + 6..at + 10].try_into().unwrap());
    assert_eq!(echo, 4000, "the in-order segment's TSval");
}

/// News from the peer (acknowledged data) makes loss probes available again.
#[test]
fn news_from_the_peer_makes_probes_available_again() {
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &vec![8u8; 3 * 1460]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 3);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    let probe = |h: &mut Harness| {
        let before = h.counters().tail_loss_probes;
        for _ in 0..8 {
            h.run_next_timer("a timer is armed");
            h.replies();
            if h.counters().tail_loss_probes > before {
                return;
            }
        }
        panic!("no probe");
    };
    probe(&mut h);
    probe(&mut h);
    // The first segment is acknowledged: news.
    h.send(&Seg::new(flags::ACK, seq, una.wrapping_add(1460)));
    h.replies();
    probe(&mut h);
    let cn = h.counters();
    assert_eq!((cn.tail_loss_probes, cn.rto_expirations), (3, 0), "{cn:?}");
}

/// What a cookie cannot carry stays off: without SACK permission from the peer, or
/// without timestamps on our side (the only place a cookie keeps window scale and
/// SACK), the connection runs without them, whatever the completing ACK claims.
#[test]
fn a_cookie_connection_has_only_what_its_cookie_carried() {
    // The peer offers timestamps and window scaling but not SACK.
    let mut h = Harness::with(|c| c.max_half_open = 16);
    h.flood_half_open();
    let mut opts = vec![2, 4, 5, 180, 1, 1, 8, 10];
    opts.extend_from_slice(&5u32.to_be_bytes());
    opts.extend_from_slice(&0u32.to_be_bytes());
    opts.extend_from_slice(&[1, 3, 3, 7]);
    h.send(&Seg::new(flags::SYN, 9, 0).opts(&opts));
    let synack = h.replies()[0].clone();
    let ts = reply_tsval(&synack);
    h.send(&Seg::new(flags::ACK, 10, synack.seq.wrapping_add(1)).opts(&ts_option(6, ts)));
    let c = h.accept_incoming();
    let info = h.stack.conn_info(c).unwrap();
    assert!(!info.sack && info.timestamps, "{info:?}");
    // Our timestamps off: the ACK's echo is not a cookie's, whatever its bits say.
    let mut h = Harness::with(|c| {
        c.max_half_open = 16;
        c.tcp.timestamps = false;
    });
    h.flood_half_open();
    let synack = h.cookie_syn(77, 5);
    h.send(&Seg::new(flags::ACK, 78, synack.seq.wrapping_add(1)).opts(&ts_option(6, 0x17)));
    let c = h.accept_incoming();
    let info = h.stack.conn_info(c).unwrap();
    assert!(!info.sack && info.window_scale.is_none(), "{info:?}");
}

/// In TIME-WAIT only a retransmitted FIN restarts the wait; any other segment is
/// answered and leaves the deadline where it was.
#[test]
fn only_a_fin_restarts_time_wait() {
    let mut h = Harness::new();
    h.establish();
    into_time_wait(&mut h, None);
    h.now += Duration::from_secs(55);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()));
    assert_eq!(h.replies().len(), 1, "answered");
    h.now += Duration::from_secs(6);
    h.stack.handle_timeout(h.now);
    assert_eq!(h.counters().time_wait_expired, 1, "expired on time");
}

/// With a zero receive window, a pure ACK at exactly `RCV.NXT` is still acceptable
/// (RFC 9293 section 3.10.7.4): its acknowledgment counts.
#[test]
fn a_pure_ack_into_a_zero_window_still_acknowledges() {
    let mut h = Harness::with(|c| c.tcp.recv_buffer = 4096);
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(&[1; 4096]));
    h.replies();
    assert_eq!(h.stack.conn_info(c).unwrap().recv_window, 0);
    h.stack.send(h.now, c, b"reply").unwrap();
    h.replies();
    let seq = h.rcv_nxt().wrapping_add(4096);
    h.send(&Seg::new(flags::ACK, seq, h.snd_nxt().wrapping_add(5)));
    h.replies();
    assert_eq!(h.stack.conn_info(c).unwrap().bytes_in_flight, 0);
}

/// A recovery is undone only when every one of its retransmissions is reported as a
/// duplicate: one D-SACK of two is not enough.
#[test]
fn undo_waits_for_every_retransmission_to_come_back_duplicated() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    let (_, mss) = h.sack_flight(rtt, 5, 7);
    h.now += rtt;
    let una = h.snd_nxt();
    // Segments 3-5 SACKed: 1 and 2 are lost and both sent again.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(una + 2 * mss, una + 5 * mss)])));
    let rtx = data_segments(&h.replies());
    assert_eq!(rtx.len(), 2, "{rtx:?}");
    let end = una + 5 * mss;
    h.now += Duration::from_millis(1);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end));
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end).opts(&sack(&[(una, una + mss)])));
    h.replies();
    assert_eq!(h.counters().recoveries_undone, 0, "one of two");
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end).opts(&sack(&[(una + mss, una + 2 * mss)])));
    h.replies();
    assert_eq!(h.counters().recoveries_undone, 1);
}

/// RACK finds a lost retransmission by time: data sent after it is SACKed while it is
/// still missing, so it is sent a third time, without waiting for the RTO.
#[test]
fn a_lost_retransmission_is_found_and_sent_again() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    let (c, mss) = h.sack_flight(rtt, 4, 7);
    let una = h.snd_nxt();
    h.now += rtt;
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(una + mss, una + 4 * mss)])));
    assert_eq!(
        data_segments(&h.replies()),
        vec![(una, mss as usize)],
        "fast retransmit"
    );
    // More data goes out after the retransmission...
    h.now += Duration::from_millis(1);
    h.stack.send(h.now, c, &vec![8u8; mss as usize]).unwrap();
    assert_eq!(
        data_segments(&h.replies()),
        vec![(una + 4 * mss, mss as usize)]
    );
    // ...and is SACKed an RTT later, the retransmission still missing.
    h.now += rtt;
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(una + mss, una + 5 * mss)])));
    let again = data_segments(&h.replies());
    assert_eq!(
        again,
        vec![(una, mss as usize)],
        "sent again: {:?}",
        h.counters()
    );
    let cn = h.counters();
    assert_eq!((cn.lost_retransmits, cn.rto_expirations), (1, 0), "{cn:?}");
}

/// RFC 5827: when the peer's window leaves no room for new data, two duplicate ACKs
/// with three segments in flight are enough for an early retransmit.
#[test]
fn early_retransmit_when_the_window_is_full() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let mss = 1460u32;
    let una = h.snd_nxt();
    let mut small = Seg::new(flags::ACK, h.rcv_nxt(), una);
    small.window = (3 * mss) as u16;
    h.send(&small);
    h.stack
        .send(h.now, c, &vec![2u8; 5 * mss as usize])
        .unwrap();
    assert_eq!(
        data_segments(&h.replies()).len(),
        3,
        "the window holds three"
    );
    h.send(&small);
    h.send(&small);
    assert_eq!(data_segments(&h.replies()), vec![(una, mss as usize)]);
    assert_eq!(h.counters().early_retransmits, 1);
}

/// With SACK, an ACK that SACKs new data counts as a duplicate ACK even when it is
/// not a pure one (RFC 6675 section 2): here one carries data, another a window
/// update.
#[test]
fn a_sack_with_news_counts_as_a_duplicate_even_with_data_or_a_new_window() {
    let mut h = Harness::new();
    let (_, mss) = h.sack_flight(Duration::from_millis(20), 4, 3u8);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    h.send(
        &Seg::new(flags::ACK, seq, una)
            .opts(&sack(&[(una + mss, una + 2 * mss)]))
            .data(&[1; 10]),
    );
    let mut wider =
        Seg::new(flags::ACK, seq.wrapping_add(10), una).opts(&sack(&[(una + mss, una + 3 * mss)]));
    wider.window = 60_000;
    h.send(&wider);
    h.replies();
    assert_eq!(h.counters().dup_acks, 2, "{:?}", h.counters());
}

/// Once the peer reopens its window, the persist timer's backoff starts over: when
/// the window shuts again the first probe waits one RTO, not the backed-off interval.
#[test]
fn a_reopened_window_resets_the_persist_backoff() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let shut_after = |h: &mut Harness, acked: u32| {
        let mut s = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt().wrapping_add(acked));
        s.window = 0;
        h.send(&s);
        h.replies();
    };
    h.stack.send(h.now, c, &[4; 500]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 1);
    shut_after(&mut h, 500);
    h.stack.send(h.now, c, &[5; 500]).unwrap();
    assert!(h.replies().is_empty());
    // Timers may fire early and re-arm (the stack's index is lazy): run them until the
    // probe, and time it.
    let probe_after = |h: &mut Harness| {
        let (start, before) = (h.now, h.counters().window_probes);
        for _ in 0..8 {
            h.run_next_timer("the persist timer runs");
            let r = h.replies();
            if h.counters().window_probes > before {
                assert_eq!(r.len(), 1, "one probe");
                return h.now - start;
            }
        }
        panic!("no probe");
    };
    let rto = h.stack.conn_info(c).unwrap().rto;
    let mut intervals = Vec::new();
    for _ in 0..3 {
        intervals.push(probe_after(&mut h));
        shut_after(&mut h, 500);
    }
    assert_eq!(intervals, [rto, 2 * rto, 4 * rto]);
    // The window opens: the waiting data goes and is acknowledged into a shut window
    // again, with more data waiting.
    let open = Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt().wrapping_add(500));
    h.send(&open);
    assert_eq!(data_segments(&h.replies()).len(), 1);
    shut_after(&mut h, 1000);
    h.stack.send(h.now, c, &[6; 500]).unwrap();
    assert!(h.replies().is_empty());
    let rto = h.stack.conn_info(c).unwrap().rto;
    assert_eq!(probe_after(&mut h), rto, "the backoff starts over");
    assert_eq!(h.counters().window_probes, 4);
}

/// RFC 8985 section 7.3: a loss probe sends new data when there is some and the peer's
/// window allows, and our FIN rides on it only if the probe carries the last byte
/// before it; a FIN anywhere else would end the stream early.
#[test]
fn a_loss_probe_of_new_data_carries_the_fin_only_with_the_last_byte() {
    // Queues `queued` bytes and a FIN on a fresh connection; returns what went out at
    // once and the loss probe, as (seq, len, FIN set).
    let probe_after = |queued: usize| {
        let mut h = Harness::new();
        // SACK permitted, and an RTT sample from the handshake: loss probes need both.
        h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
        let c = h.conn.unwrap();
        h.stack.send(h.now, c, &vec![5u8; queued]).unwrap();
        h.stack.shutdown(h.now, c).unwrap();
        let first = data_segments(&h.replies());
        let out = sent_at_probe_or_timeout(&mut h);
        let cn = h.counters();
        assert_eq!((cn.tail_loss_probes, cn.rto_expirations), (1, 0));
        assert_eq!(out.len(), 1, "{out:?}");
        let fin = out[0].flags & flags::FIN != 0;
        (first, (out[0].seq, out[0].payload_len, fin))
    };
    let mss = 1460;
    // Far more than the initial window: the probe is the next segment, not the last.
    let (first, probe) = probe_after(40 * mss);
    let sent: usize = first.iter().map(|&(_, len)| len).sum();
    let snd_nxt = first[0].0.wrapping_add(sent as u32);
    assert!(sent < 39 * mss, "the initial window sent {sent} bytes");
    assert_eq!(probe, (snd_nxt, mss, false), "new data, no FIN");
    // One segment more than the initial window: the probe carries it and the FIN.
    let (first, probe) = probe_after(sent + mss);
    assert_eq!(first.iter().map(|&(_, len)| len).sum::<usize>(), sent);
    assert_eq!(probe, (snd_nxt, mss, true), "the last segment and the FIN");
}

/// Runs timers until a loss probe or a retransmission timeout happens; returns
/// `(loss probes, timeouts)` by then.
fn run_until_probe_or_timeout(h: &mut Harness) -> (u64, u64) {
    sent_at_probe_or_timeout(h);
    let cn = h.counters();
    (cn.tail_loss_probes, cn.rto_expirations)
}

/// Runs timers until a loss probe or a retransmission timeout happens; returns what
/// the stack sent when it did.
fn sent_at_probe_or_timeout(h: &mut Harness) -> Vec<Reply> {
    let before = h.counters();
    for _ in 0..16 {
        h.run_next_timer("a timer runs");
        let out = h.replies();
        let cn = h.counters();
        if cn.tail_loss_probes > before.tail_loss_probes
            || cn.rto_expirations > before.rto_expirations
        {
            return out;
        }
    }
    panic!("neither a probe nor a timeout: {:?}", h.counters());
}

/// A SACK of new data is news from the peer as much as a cumulative ACK: after two
/// probes without news, a SACK makes probes available again, so the recovery it starts
/// is watched by a probe before the retransmission timeout.
#[test]
fn a_sack_of_new_data_makes_probes_available_again() {
    let mut h = Harness::new();
    let (_, mss) = h.sack_flight(Duration::from_millis(20), 3, 8u8);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    assert_eq!(run_until_probe_or_timeout(&mut h), (1, 0));
    assert_eq!(run_until_probe_or_timeout(&mut h), (2, 0));
    // An RTT after the second probe, its segment is SACKed: news, and the first two
    // are lost.
    h.now += Duration::from_millis(20);
    h.send(&Seg::new(flags::ACK, seq, una).opts(&sack(&[(una + 2 * mss, una + 3 * mss)])));
    h.replies();
    assert_eq!(h.counters().fast_retransmits, 1);
    // The count started over: four more probes before the timeout, not two.
    for probes in 3..=6 {
        assert_eq!(run_until_probe_or_timeout(&mut h), (probes, 0));
    }
    assert_eq!(run_until_probe_or_timeout(&mut h), (6, 1));
}

/// A pure duplicate ACK, or a D-SACK (as Linux sends), at the end of a loss probe that
/// retransmitted data means both copies arrived: there was no loss, and an ACK beyond
/// the probe later counts none (RFC 8985 section 7.4) and leaves the congestion window
/// alone.
#[test]
fn a_duplicate_ack_for_a_loss_probe_means_no_loss() {
    for dsack in [false, true] {
        duplicate_ack_for_a_loss_probe(dsack);
    }
}

fn duplicate_ack_for_a_loss_probe(dsack: bool) {
    let mut h = Harness::new();
    let (c, mss) = h.sack_flight(Duration::from_millis(20), 2, 5u8);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    h.now += Duration::from_millis(20);
    h.send(&Seg::new(flags::ACK, seq, una + mss));
    h.replies();
    assert_eq!(run_until_probe_or_timeout(&mut h), (1, 0));
    let cwnd = h.stack.conn_info(c).unwrap().cwnd;
    // The original second segment was only late; the probe's copy is acknowledged
    // again by a duplicate, pure or with a D-SACK.
    h.send(&Seg::new(flags::ACK, seq, una + 2 * mss));
    let mut dup = Seg::new(flags::ACK, seq, una + 2 * mss);
    if dsack {
        dup = dup.opts(&sack(&[(una + mss, una + 2 * mss)]));
    }
    h.send(&dup);
    h.replies();
    h.stack.send(h.now, c, &vec![6u8; mss as usize]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 1);
    h.now += Duration::from_millis(20);
    h.send(&Seg::new(flags::ACK, seq, una + 3 * mss));
    h.replies();
    let cn = h.counters();
    assert_eq!(cn.tail_loss_probe_recoveries, 0, "D-SACK {dsack}: {cn:?}");
    assert!(h.stack.conn_info(c).unwrap().cwnd >= cwnd, "D-SACK {dsack}");
}

/// An ACK that acknowledges only our SYN frees no send buffer: data the application
/// could not queue before the handshake completed gets no WRITABLE until some of it
/// is acknowledged.
#[test]
fn the_ack_of_our_syn_alone_does_not_raise_writable() {
    let mut h = Harness::with(|c| c.tcp.send_buffer = 4096);
    let (c, syn) = active_open(&mut h, 5557);
    assert_eq!(h.stack.send(h.now, c, &[1; 8192]).unwrap(), 4096);
    let mut synack =
        Seg::new(flags::SYN | flags::ACK, 9000, syn.seq.wrapping_add(1)).opts(&[2, 4, 5, 180]);
    synack.dst_port = 5557;
    h.send(&synack);
    assert_eq!(data_segments(&h.replies()).len(), 2);
    assert_eq!(events(&mut h), [Event::Connected(c)]);
    let mut ack = Seg::new(flags::ACK, 9001, syn.seq.wrapping_add(1 + 1460));
    ack.dst_port = 5557;
    h.send(&ack);
    h.replies();
    assert_eq!(events(&mut h), [Event::Writable(c)]);
}

/// The ACK of a segment that was not timed takes its RTT from the timestamp echo
/// only when the echo is plausible; without timestamps, or with an echo from the
/// future, it leaves the estimate alone.
#[test]
fn an_untimed_ack_samples_the_rtt_only_from_a_plausible_echo() {
    let mss = 1460;
    let rtt = Duration::from_millis(20);
    // No timestamps: the first segment is timed, the second is not.
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180], rtt);
    let c = h.conn.unwrap();
    assert_eq!(h.stack.conn_info(c).unwrap().srtt, Some(rtt));
    h.stack
        .send(h.now, c, &vec![1u8; 2 * mss as usize])
        .unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 2);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    h.now += rtt;
    h.send(&Seg::new(flags::ACK, seq, una + mss));
    h.send(&Seg::new(flags::ACK, seq, una + 2 * mss));
    h.replies();
    assert_eq!(h.stack.conn_info(c).unwrap().srtt, Some(rtt));
    // Timestamps: an echo from the future is bogus.
    let mut h = Harness::new();
    h.establish_after(1000, &linux_syn_options(100), rtt);
    let c = h.conn.unwrap();
    let info = h.stack.conn_info(c).unwrap();
    assert!(info.srtt.is_some());
    // The timestamp option takes 12 bytes of each segment.
    let mss = u32::from(info.mss);
    assert_eq!(mss, 1448);
    h.stack
        .send(h.now, c, &vec![1u8; 2 * mss as usize])
        .unwrap();
    let sent = h.replies();
    assert_eq!(data_segments(&sent).len(), 2);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    let ts = reply_tsval(&sent[0]);
    h.now += rtt;
    h.send(&Seg::new(flags::ACK, seq, una + mss).opts(&ts_option(200, ts)));
    assert_eq!(h.stack.conn_info(c).unwrap().srtt, Some(rtt));
    h.send(&Seg::new(flags::ACK, seq, una + 2 * mss).opts(&ts_option(201, ts.wrapping_add(1000))));
    h.replies();
    assert_eq!(h.stack.conn_info(c).unwrap().srtt, Some(rtt));
}

/// Undo restores the whole controller, not just a larger window: at the smallest
/// window, where the response could only lower the slow-start threshold, a spurious
/// recovery gives the threshold back.
#[test]
fn undo_at_the_smallest_window_gives_the_threshold_back() {
    let mss = 1460u32;
    // Two segments (the window is set in segments of the default MSS, 536).
    let mut h = Harness::with(|c| c.tcp.congestion.initial_window = Some(2 * 536));
    let rtt = Duration::from_millis(20);
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], rtt);
    let c = h.conn.unwrap();
    let before = h.stack.conn_info(c).unwrap();
    assert_eq!(before.cwnd, 2 * mss);
    h.stack
        .send(h.now, c, &vec![7u8; 2 * mss as usize])
        .unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 2);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    h.now += rtt;
    h.send(&Seg::new(flags::ACK, seq, una).opts(&sack(&[(una + mss, una + 2 * mss)])));
    h.replies();
    // The reordering timer declares the first segment lost.
    let mut rtx = Vec::new();
    for _ in 0..4 {
        h.run_next_timer("a timer is armed");
        rtx = data_segments(&h.replies());
        if !rtx.is_empty() {
            break;
        }
    }
    assert_eq!(rtx, vec![(una, mss as usize)]);
    let info = h.stack.conn_info(c).unwrap();
    assert_eq!((info.cwnd, info.ssthresh), (2 * mss, 2 * mss));
    let end = una + 2 * mss;
    h.send(&Seg::new(flags::ACK, seq, end));
    h.send(&Seg::new(flags::ACK, seq, end).opts(&sack(&[(una, una + mss)])));
    h.replies();
    assert_eq!(h.counters().recoveries_undone, 1);
    let after = h.stack.conn_info(c).unwrap();
    assert_eq!((after.cwnd, after.ssthresh), (before.cwnd, before.ssthresh));
}

/// After `shutdown` the send side is closed: `send` says so, and a `shutdown` of a
/// connection the peer reset reports the reset.
#[test]
fn send_after_shutdown_and_shutdown_after_a_reset_are_refused() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.shutdown(h.now, c).unwrap();
    assert_eq!(h.state(), TcpState::FinWait1);
    assert_eq!(h.stack.send(h.now, c, b"late"), Err(Error::SendShutdown));
    h.replies();
    // Before the handshake completes, too.
    let (c, _syn) = active_open(&mut h, 5558);
    h.stack.shutdown(h.now, c).unwrap();
    assert_eq!(h.stack.send(h.now, c, b"late"), Err(Error::SendShutdown));
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::RST, h.rcv_nxt(), 0));
    assert_eq!(
        h.stack.shutdown(h.now, c),
        Err(Error::Connection(ConnError::Reset))
    );
}

/// Reading announces a larger window only when it is worth it (RFC 9293 section
/// 3.8.6.2.2, at least doubling it): a read that frees less sends nothing; one that
/// empties the buffer sends a window update at once.
#[test]
fn a_read_sends_a_window_update_only_when_the_window_at_least_doubles() {
    let mut h = Harness::with(|c| c.tcp.recv_buffer = 16_384);
    h.establish();
    let c = h.conn.unwrap();
    let mut seq = h.rcv_nxt();
    for _ in 0..10 {
        h.send(&Seg::new(flags::ACK, seq, h.snd_nxt()).data(&[1; 1000]));
        seq = seq.wrapping_add(1000);
    }
    let r = h.replies();
    assert_eq!(r.last().map(|r| (r.ack, r.window)), Some((seq, 6384)));
    // 2000 bytes read: 8384 free, more than an MSS more but not double the 6384 offered.
    let mut buf = vec![0u8; 2000];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 2000);
    assert!(h.replies().is_empty(), "no update");
    let mut buf = vec![0u8; 16_384];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 8000);
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].flags, r[0].ack, r[0].window, r[0].payload_len),
        (flags::ACK, seq, 16_384, 0)
    );
}

/// After the peer's FIN nothing more can arrive: reading announces no window.
#[test]
fn a_read_after_the_peers_fin_sends_no_window_update() {
    let mut h = Harness::with(|c| c.tcp.recv_buffer = 4096);
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), h.snd_nxt()).data(&[1; 4000]));
    assert_eq!(h.replies().len(), 1);
    let mut buf = vec![0u8; 4096];
    assert_eq!(h.stack.recv(c, &mut buf).unwrap(), 4000);
    assert!(h.replies().is_empty());
}

/// Closing in SYN-SENT gives the connection up at once: nothing more is sent, and a
/// SYN-ACK arriving later finds no connection and is reset.
#[test]
fn closing_in_syn_sent_drops_the_connection_at_once() {
    let mut h = Harness::new();
    let (c, syn) = active_open(&mut h, 5559);
    h.stack.close(h.now, c).unwrap();
    assert_eq!(h.stack.connection_count(), 0);
    let mut synack =
        Seg::new(flags::SYN | flags::ACK, 9000, syn.seq.wrapping_add(1)).opts(&[2, 4, 5, 180]);
    synack.dst_port = 5559;
    h.send(&synack);
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].flags, r[0].seq),
        (flags::RST, syn.seq.wrapping_add(1))
    );
}

/// Closing with received data left unread resets the connection (RFC 2525 section
/// 2.17) rather than pretending a graceful close, and counts one abort.
#[test]
fn closing_with_unread_data_resets_and_counts_an_abort() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), h.snd_nxt()).data(b"unread"));
    h.replies();
    h.stack.close(h.now, c).unwrap();
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].flags & (flags::RST | flags::FIN), flags::RST);
    assert_eq!(h.counters().aborts, 1);
    assert_eq!(h.stack.connection_count(), 0);
}

/// A connection closed by the application in FIN-WAIT-2 waits `fin_wait2_timeout`
/// for the peer's FIN, then goes.
#[test]
fn an_orphaned_fin_wait_2_lasts_its_timeout() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.shutdown(h.now, c).unwrap();
    assert_eq!(h.replies().len(), 1, "the FIN");
    h.send(&Seg::new(
        flags::ACK,
        h.rcv_nxt(),
        h.snd_nxt().wrapping_add(1),
    ));
    assert_eq!(h.state(), TcpState::FinWait2);
    h.stack.close(h.now, c).unwrap();
    let start = h.now;
    h.now = start + Duration::from_secs(60) - Duration::from_millis(1);
    h.stack.handle_timeout(h.now);
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::FinWait2]
    );
    h.now = start + Duration::from_secs(60);
    h.stack.handle_timeout(h.now);
    assert_eq!(h.stack.connection_count(), 0);
}

/// A reset ends the connection before anything still due goes out: in LAST-ACK,
/// with data and FIN in flight and the retransmission timeout just expired (the
/// retransmission not yet sent), a RST leaves nothing to send.
#[test]
fn a_reset_in_last_ack_stops_a_retransmission_already_due() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.send(&Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), h.snd_nxt()));
    h.replies();
    let seq = h.rcv_nxt().wrapping_add(1);
    h.stack.send(h.now, c, &[3; 1000]).unwrap();
    h.stack.shutdown(h.now, c).unwrap();
    assert_eq!(h.state(), TcpState::LastAck);
    let r = h.replies();
    assert_eq!(
        r.iter()
            .map(|r| (r.payload_len, r.flags & flags::FIN))
            .collect::<Vec<_>>(),
        [(1000, flags::FIN)]
    );
    h.run_next_timer("a timer is armed");
    assert_eq!(h.counters().rto_expirations, 1);
    h.send(&Seg::new(flags::RST, seq, 0));
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.replies(), []);
}

/// In TIME-WAIT only ACKs go out: a keep-alive probe still pending from ESTABLISHED
/// (its timer fired just before the close) is dropped, and the peer's FIN gets a plain
/// ACK at `SND.NXT`.
#[test]
fn time_wait_sends_only_the_ack_not_a_pending_keepalive() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let ka = tcpstack::KeepAlive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    h.stack.set_keepalive(h.now, c, Some(ka)).unwrap();
    h.now += Duration::from_secs(10);
    h.stack.handle_timeout(h.now);
    assert_eq!(h.counters().keepalive_probes, 1);
    // Before the probe goes, the application closes, and only the FIN is sent...
    h.stack.close(h.now, c).unwrap();
    let mut buf = vec![0u8; 2048];
    let n = h.stack.poll_transmit(h.now, &mut buf).unwrap().len;
    assert_eq!(buf[20 + 13] & flags::FIN, flags::FIN, "{:?}", &buf[..n]);
    // ...which the peer's FIN acknowledges.
    let fin_end = h.snd_nxt().wrapping_add(1);
    h.send(&Seg::new(flags::ACK | flags::FIN, h.rcv_nxt(), fin_end));
    assert_eq!(
        h.stack.connection_states().collect::<Vec<_>>(),
        [TcpState::TimeWait]
    );
    let r = h.replies();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].flags, r[0].seq, r[0].ack),
        (flags::ACK, fin_end, h.rcv_nxt().wrapping_add(1))
    );
}

/// A loss probe that comes due just before an ACK of everything in flight sends
/// nothing: new data waiting behind a small window keeps to sender SWS avoidance.
#[test]
fn a_loss_probe_due_when_everything_is_acknowledged_sends_nothing() {
    let mut h = Harness::new();
    let (c, mss) = h.sack_flight(Duration::from_millis(20), 2, 5u8);
    let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
    // Timers until the probe is due (not sent: nothing is transmitted meanwhile).
    for _ in 0..8 {
        h.run_next_timer("a timer is armed");
        if h.counters().tail_loss_probes > 0 {
            break;
        }
    }
    assert_eq!(h.counters().tail_loss_probes, 1);
    // Everything is acknowledged with a window of 1000 bytes, and 3000 more wait.
    let mut ack = Seg::new(flags::ACK, seq, una + 2 * mss);
    ack.window = 1000;
    h.send(&ack);
    assert_eq!(h.stack.send(h.now, c, &[6u8; 3000]).unwrap(), 3000);
    assert_eq!(data_segments(&h.replies()), []);
}

/// Runs timers until a loss probe goes out; returns the data segments sent then.
fn loss_probe(h: &mut Harness) -> Vec<(u32, usize)> {
    let before = h.counters().tail_loss_probes;
    for _ in 0..8 {
        h.run_next_timer("a timer is armed");
        let sent = data_segments(&h.replies());
        if h.counters().tail_loss_probes > before {
            return sent;
        }
    }
    panic!("no loss probe: {:?}", h.counters());
}

/// RFC 8985 section 7.3: a loss probe carries new data when there is some and the
/// peer's window has room for it (the congestion window does not apply), else it
/// sends the last segment again.
#[test]
fn a_loss_probe_sends_new_data_if_the_peers_window_allows() {
    let mss = 1460u32;
    // The congestion window (ten segments) holds back two.
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    h.stack
        .send(h.now, c, &vec![5u8; 12 * mss as usize])
        .unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 10);
    let una = h.snd_nxt();
    assert_eq!(loss_probe(&mut h), [(una + 10 * mss, mss as usize)]);
    // The peer's window (two segments) holds back two.
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    let una = h.snd_nxt();
    let mut small = Seg::new(flags::ACK, h.rcv_nxt(), una);
    small.window = (2 * mss) as u16;
    h.send(&small);
    h.stack
        .send(h.now, c, &vec![5u8; 4 * mss as usize])
        .unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 2);
    assert_eq!(loss_probe(&mut h), [(una + mss, mss as usize)]);
}

/// A retransmission that ends where our FIN is carries the FIN again: data and FIN
/// lost together come back in one segment.
#[test]
fn a_retransmission_ending_at_the_fin_carries_it() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[4; 1000]).unwrap();
    h.stack.shutdown(h.now, c).unwrap();
    let first = h.replies();
    assert_eq!(first.len(), 1);
    h.run_next_timer("a timer is armed");
    let again = h.replies();
    assert_eq!(
        again
            .iter()
            .map(|r| (r.seq, r.payload_len, r.flags & flags::FIN))
            .collect::<Vec<_>>(),
        [(h.snd_nxt(), 1000, flags::FIN)]
    );
}

/// With SACK, what RACK marked lost goes out while the congestion window has room for
/// a whole segment (RFC 8985 section 6): seven segments lost at once, a window of seven
/// after the reduction, and all seven are sent again at once, the last filling the
/// window exactly.
#[test]
fn lost_segments_fill_the_reduced_window_exactly() {
    let mut h = Harness::new();
    let (c, mss) = h.sack_flight(Duration::from_millis(20), 10, 5u8);
    let una = h.snd_nxt();
    h.now += Duration::from_millis(20);
    // The last three arrive: the first seven are lost.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(una + 7 * mss, una + 10 * mss)])));
    let rtx = data_segments(&h.replies());
    assert_eq!(h.stack.conn_info(c).unwrap().cwnd, 7 * mss);
    assert_eq!(
        rtx,
        (0..7)
            .map(|i| (una + i * mss, mss as usize))
            .collect::<Vec<_>>()
    );
}

impl Harness {
    /// A harness whose stack hands super-segments of up to 64 KiB to the device.
    fn offloaded() -> Self {
        Harness::with(|c| {
            c.tx_offload = tcpstack::TxOffload {
                checksum: true,
                segmentation: 65535,
            }
        })
    }

    /// [`Harness::establish_after`] for an offloaded stack (whose checksums the
    /// device completes, so [`Harness::replies`] cannot check them).
    fn establish_offloaded(&mut self, syn_opts: &[u8], rtt: Duration) -> ConnId {
        let mut buf = vec![0u8; 2048];
        self.send(&Seg::new(flags::SYN, 1000, 0).opts(syn_opts));
        self.stack.poll_transmit(self.now, &mut buf).unwrap();
        self.peer_isn = 1000;
        self.stack_isn = u32::from_be_bytes(buf[24..28].try_into().unwrap());
        self.now += rtt;
        self.send(&Seg::new(flags::ACK, self.rcv_nxt(), self.snd_nxt()));
        self.accept_incoming()
    }

    /// What an offloaded stack sends now: (sequence offset from `una`, payload bytes)
    /// of each packet.
    fn offloaded_sent(&mut self, una: u32) -> Vec<(u32, usize)> {
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        while let Some(t) = self.stack.poll_transmit(self.now, &mut buf) {
            let seq = u32::from_be_bytes(buf[24..28].try_into().unwrap());
            out.push((seq.wrapping_sub(una), t.len - usize::from(t.header_len)));
        }
        out
    }
}

/// With segmentation offload, lost data goes out again in super-segments of whole
/// segments (the device cuts them in MSS): the first retransmission carries the short
/// first segment and no more (not a full MSS reaching into the next), then the lost
/// run behind it, five segments, goes as one super-segment.
#[test]
fn lost_data_goes_again_in_super_segments_of_whole_segments() {
    let mut h = Harness::offloaded();
    let c = h.establish_offloaded(&[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let mss = 1460u32;
    let una = h.snd_nxt();
    // A short segment first (nothing in flight), then eight whole ones.
    h.stack.send(h.now, c, &[1u8; 1000]).unwrap();
    assert_eq!(h.offloaded_sent(una), [(0, 1000)]);
    h.stack
        .send(h.now, c, &vec![2u8; 8 * mss as usize])
        .unwrap();
    assert_eq!(h.offloaded_sent(una), [(1000, 8 * mss as usize)]);
    // The last three segments arrive: the first six (8300 bytes) are lost.
    h.now += Duration::from_millis(20);
    let end = una + 1000 + 8 * mss;
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(end - 3 * mss, end)])));
    assert_eq!(h.offloaded_sent(una), [(0, 1000), (1000, 5 * mss as usize)]);
}

/// RFC 8985 section 7.3: a loss probe sends the last segment again. After a
/// super-segment that is its last MSS, not the start of the super-segment.
#[test]
fn a_loss_probe_after_a_super_segment_resends_its_last_segment() {
    let mut h = Harness::offloaded();
    let c = h.establish_offloaded(&[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let mss = 1460u32;
    let una = h.snd_nxt();
    h.stack
        .send(h.now, c, &vec![4u8; 4 * mss as usize])
        .unwrap();
    assert_eq!(h.offloaded_sent(una), [(0, 4 * mss as usize)]);
    for _ in 0..8 {
        h.run_next_timer("a timer runs");
        let sent = h.offloaded_sent(una);
        if !sent.is_empty() {
            assert_eq!(h.counters().tail_loss_probes, 1);
            assert_eq!(sent, [(3 * mss, mss as usize)]);
            return;
        }
    }
    panic!("no loss probe: {:?}", h.counters());
}

/// With segmentation offload, new data that the peer's window cuts short goes in a
/// super-segment of whole segments; the rest of the window waits (a part-segment would
/// be cut out of the middle of the stream).
#[test]
fn new_data_goes_in_super_segments_of_whole_segments() {
    let mut h = Harness::offloaded();
    let c = h.establish_offloaded(&[2, 4, 5, 180], Duration::ZERO);
    let una = h.snd_nxt();
    let mut window = Seg::new(flags::ACK, h.rcv_nxt(), una);
    window.window = 5000;
    h.send(&window);
    h.stack.send(h.now, c, &[3u8; 20_000]).unwrap();
    assert_eq!(h.offloaded_sent(una), [(0, 3 * 1460)]);
}

/// RFC 5681 section 4.1: after an idle period longer than the RTO the congestion
/// window restarts from at most the initial window; after one of exactly the RTO it
/// is kept.
#[test]
fn an_idle_connection_restarts_from_the_initial_window() {
    let mss = 1460u32;
    // Segments sent at once after an idle time of the RTO plus `extra`, counted from
    // the last segment sent, with a window grown to fourteen segments.
    let burst_after = |extra: Duration| {
        let mut h = Harness::new();
        h.establish_after(1000, &[2, 4, 5, 180], Duration::from_millis(20));
        let c = h.conn.unwrap();
        let una = h.snd_nxt();
        h.stack
            .send(h.now, c, &vec![1u8; 10 * mss as usize])
            .unwrap();
        assert_eq!(data_segments(&h.replies()).len(), 10);
        let sent = h.now;
        h.now += Duration::from_millis(20);
        for i in 1..=10 {
            h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + i * mss));
        }
        h.replies();
        let info = h.stack.conn_info(c).unwrap();
        assert_eq!(info.cwnd, 14 * mss);
        h.now = sent + info.rto + extra;
        h.stack
            .send(h.now, c, &vec![2u8; 30 * mss as usize])
            .unwrap();
        data_segments(&h.replies()).len()
    };
    assert_eq!(burst_after(Duration::ZERO), 14, "idle for exactly the RTO");
    assert_eq!(burst_after(Duration::from_millis(1)), 10, "idle for longer");
}

/// Without SACK the ACKs carry no SACK blocks, however much data is out of order.
#[test]
fn without_sack_no_ack_carries_sack_blocks() {
    let mut h = Harness::new();
    h.establish();
    h.send(&Seg::new(flags::ACK, h.rcv_nxt().wrapping_add(100), h.snd_nxt()).data(&[1; 10]));
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert!(!has_option(&r[0], 5), "{r:?}");
}

/// A transmit buffer too small for the headers gets nothing; one with room for the
/// headers only gets a bare ACK; one with room for part of the data gets that part,
/// without the FIN that follows the rest; one that holds data and FIN exactly gets
/// both.
#[test]
fn a_small_transmit_buffer_makes_segments_smaller() {
    let queued = || {
        let mut h = Harness::new();
        h.establish();
        let c = h.conn.unwrap();
        h.stack.set_nodelay(c, true).unwrap();
        h.stack.send(h.now, c, &[9; 300]).unwrap();
        h.stack.shutdown(h.now, c).unwrap();
        h
    };
    // IPv4 and TCP headers without options: 40 bytes.
    let poll = |h: &mut Harness, size: usize| {
        let mut buf = vec![0u8; size];
        let t = h.stack.poll_transmit(h.now, &mut buf)?;
        let tcp = TcpPacket::new_checked(&buf[20..t.len]).unwrap();
        Some((
            tcp.seq_number().0 as u32,
            tcp.payload().len(),
            buf[33] & flags::FIN,
        ))
    };
    assert_eq!(poll(&mut queued(), 39), None);
    let mut h = queued();
    let isn = h.snd_nxt();
    assert_eq!(poll(&mut h, 40), Some((isn, 0, 0)), "headers only");
    assert_eq!(poll(&mut h, 140), Some((isn, 100, 0)));
    assert_eq!(
        poll(&mut h, 240),
        Some((isn + 100, 200, flags::FIN)),
        "the rest and the FIN, exactly"
    );
    assert_eq!(poll(&mut h, 2048), None);
}

/// Data segments carry PSH; a segment of one MSS is not a super-segment (the device
/// has nothing to cut), with or without segmentation offload.
#[test]
fn data_carries_psh_and_one_mss_is_not_a_super_segment() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[1; 1460]).unwrap();
    let r = h.replies();
    assert_eq!(
        r.iter()
            .map(|r| (r.flags, r.payload_len))
            .collect::<Vec<_>>(),
        [(flags::ACK | flags::PSH, 1460)]
    );
    let mut h = Harness::offloaded();
    let c = h.establish_offloaded(&[2, 4, 5, 180], Duration::ZERO);
    h.stack.send(h.now, c, &[1; 1460]).unwrap();
    let mut buf = vec![0u8; 65536];
    let t = h.stack.poll_transmit(h.now, &mut buf).unwrap();
    assert_eq!(
        (t.len - usize::from(t.header_len), t.segment_size),
        (1460, None)
    );
    assert_eq!(h.counters().tx_super_segments, 0);
}

/// Keep-alive probes only an idle connection: while data is in flight the
/// retransmission timer watches the peer, and the keep-alive timer waits.
#[test]
fn keepalive_waits_while_data_is_in_flight() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let ka = tcpstack::KeepAlive {
        idle: Duration::from_millis(500),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    h.stack.set_keepalive(h.now, c, Some(ka)).unwrap();
    h.stack.send(h.now, c, &[1; 100]).unwrap();
    h.replies();
    let end = h.now + Duration::from_secs(3);
    while let Some(t) = h.stack.poll_timeout().filter(|&t| t <= end) {
        h.now = t;
        h.stack.handle_timeout(h.now);
        h.replies();
    }
    let cn = h.counters();
    assert_eq!(cn.keepalive_probes, 0, "{cn:?}");
    assert!(cn.rto_expirations > 0, "{cn:?}");
}

/// A peer that answers no keep-alive probe is given up after the configured number of
/// probes: one keep-alive timeout counted, and the connection fails with it (readable,
/// so that a reader sees the error).
#[test]
fn keepalive_gives_up_on_a_silent_peer_after_its_probes() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let ka = tcpstack::KeepAlive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    h.stack.set_keepalive(h.now, c, Some(ka)).unwrap();
    events(&mut h);
    let (start, mut first) = (h.now, None);
    for _ in 0..8 {
        let Some(t) = h.stack.poll_timeout() else {
            break;
        };
        h.now = t;
        h.stack.handle_timeout(h.now);
        h.replies();
        if h.counters().keepalive_probes == 1 {
            first.get_or_insert(h.now - start);
        }
    }
    assert_eq!(first, Some(ka.idle), "the first probe after the idle time");
    let cn = h.counters();
    assert_eq!(
        (cn.keepalive_probes, cn.keepalive_timeouts),
        (3, 1),
        "{cn:?}"
    );
    assert_eq!(
        events(&mut h),
        [
            Event::Readable(c),
            Event::Error(c, ConnError::KeepAliveTimedOut)
        ]
    );
}

/// A retransmission counts once, with its bytes, on the stack and on the connection.
#[test]
fn a_retransmission_is_counted_once_with_its_bytes() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[4; 1000]).unwrap();
    h.replies();
    h.run_next_timer("a timer is armed");
    assert_eq!(data_segments(&h.replies()), [(h.snd_nxt(), 1000)]);
    let cn = h.counters();
    assert_eq!((cn.retransmits, cn.retransmitted_bytes), (1, 1000));
    assert_eq!(h.stack.conn_info(c).unwrap().retransmits, 1);
}

/// A segment sent beyond a shut window (here a lone FIN, which needs no window) is
/// not timed: its ACK may wait for the window to open, which says nothing about the
/// round-trip time.
#[test]
fn a_segment_beyond_a_shut_window_is_not_timed() {
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180], Duration::from_millis(20));
    let c = h.conn.unwrap();
    let una = h.snd_nxt();
    let mut shut = Seg::new(flags::ACK, h.rcv_nxt(), una);
    shut.window = 0;
    h.send(&shut);
    let srtt = h.stack.conn_info(c).unwrap().srtt;
    assert_eq!(srtt, Some(Duration::from_millis(20)));
    h.stack.shutdown(h.now, c).unwrap();
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].seq, r[0].flags & flags::FIN), (una, flags::FIN));
    h.now += Duration::from_secs(5);
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una + 1));
    assert_eq!(h.state(), TcpState::FinWait2);
    assert_eq!(h.stack.conn_info(c).unwrap().srtt, srtt);
}

/// Undo waits only for the retransmissions of the episode's own data: a loss probe
/// that resends data sent after recovery began does not hold it back.
#[test]
fn undo_counts_only_the_episodes_own_retransmissions() {
    let mut h = Harness::new();
    let rtt = Duration::from_millis(20);
    let (c, mss) = h.sack_flight(rtt, 4, 7);
    h.now += rtt;
    let una = h.snd_nxt();
    // Segments 2-4 SACKed: segment 1 is sent again.
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), una).opts(&sack(&[(una + mss, una + 4 * mss)])));
    assert_eq!(data_segments(&h.replies()), [(una, mss as usize)]);
    // A fifth segment after the recovery began, resent by a loss probe.
    h.stack.send(h.now, c, &vec![8u8; mss as usize]).unwrap();
    assert_eq!(data_segments(&h.replies()), [(una + 4 * mss, mss as usize)]);
    assert_eq!(loss_probe(&mut h), [(una + 4 * mss, mss as usize)]);
    // Everything arrives; segment 1 twice.
    let end = una + 5 * mss;
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end));
    h.send(&Seg::new(flags::ACK, h.rcv_nxt(), end).opts(&sack(&[(una, una + mss)])));
    h.replies();
    assert_eq!(h.counters().recoveries_undone, 1);
}

/// `connect` refuses a remote port 0, an unspecified and a broadcast address, and
/// counts one active open per connection.
#[test]
fn connect_checks_the_remote_and_counts_active_opens() {
    let mut h = Harness::new();
    let bad = [
        std::net::SocketAddrV4::new(PEER, 0),
        std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80),
        std::net::SocketAddrV4::new(Ipv4Addr::BROADCAST, 80),
    ];
    for remote in bad {
        assert!(
            matches!(
                h.stack.connect(h.now, remote, 0),
                Err(Error::InvalidArgument(_))
            ),
            "{remote}"
        );
    }
    active_open(&mut h, 5560);
    assert_eq!(h.counters().active_opens, 1);
}

/// Ephemeral ports come from the configured range, skip ports in use (by a listener
/// too), and run out with a typed error.
#[test]
fn ephemeral_ports_stay_in_range_and_run_out() {
    let mut h = Harness::with(|c| c.ephemeral_ports = (40_000, 40_002));
    h.stack.listen(40_001, 1).unwrap();
    let remote = std::net::SocketAddrV4::new(PEER, PEER_PORT);
    let mut ports = Vec::new();
    for _ in 0..2 {
        let c = h.stack.connect(h.now, remote, 0).unwrap();
        ports.push(h.stack.endpoints(c).unwrap().0.port());
    }
    ports.sort_unstable();
    assert_eq!(ports, [40_000, 40_002]);
    assert_eq!(h.stack.connect(h.now, remote, 0), Err(Error::NoFreePorts));
}

/// An unanswered SYN is sent again at the retransmission timeout, same sequence
/// number, and counted as a SYN retransmission.
#[test]
fn an_unanswered_syn_is_retransmitted_and_counted() {
    let mut h = Harness::new();
    let (_c, syn) = active_open(&mut h, 5561);
    h.run_next_timer("a timer is armed");
    let r = h.replies();
    assert_eq!(
        r.iter().map(|r| (r.flags, r.seq)).collect::<Vec<_>>(),
        [(flags::SYN, syn.seq)]
    );
    assert_eq!(h.counters().syn_retransmits, 1);
}

/// A connection attempt gives up after `max_syn_retries` SYN retransmissions, not
/// the data limit `max_retries`.
#[test]
fn connect_gives_up_after_the_syn_retries() {
    let mut h = Harness::with(|c| {
        c.tcp.max_syn_retries = 2;
        c.tcp.max_retries = 6;
    });
    let (c, _syn) = active_open(&mut h, 5562);
    for _ in 0..3 {
        h.run_next_timer("a timer is armed");
        h.replies();
    }
    assert_eq!(h.counters().syn_retransmits, 2);
    assert_eq!(
        events(&mut h),
        [
            Event::Readable(c),
            Event::Error(c, ConnError::TimedOut { retries: 2 })
        ]
    );
}

/// Keep-alive runs only in ESTABLISHED and CLOSE-WAIT: in FIN-WAIT-2 (our side
/// closed, the peer's still open) nothing probes the peer.
#[test]
fn keepalive_does_not_probe_in_fin_wait_2() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    let ka = tcpstack::KeepAlive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    h.stack.set_keepalive(h.now, c, Some(ka)).unwrap();
    h.stack.shutdown(h.now, c).unwrap();
    h.replies();
    h.send(&Seg::new(
        flags::ACK,
        h.rcv_nxt(),
        h.snd_nxt().wrapping_add(1),
    ));
    assert_eq!(h.state(), TcpState::FinWait2);
    h.now += Duration::from_secs(30);
    h.stack.handle_timeout(h.now);
    assert_eq!(h.replies(), []);
    assert_eq!(h.counters().keepalive_probes, 0);
}

/// Once everything sent is acknowledged and nothing waits, no timer sends anything: no
/// window probe, no loss probe, no retransmission.
#[test]
fn an_acknowledged_exchange_leaves_no_timer_to_send() {
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[1; 100]).unwrap();
    h.replies();
    h.now += Duration::from_millis(20);
    h.send(&Seg::new(
        flags::ACK,
        h.rcv_nxt(),
        h.snd_nxt().wrapping_add(100),
    ));
    let end = h.now + Duration::from_secs(10);
    while let Some(t) = h.stack.poll_timeout().filter(|&t| t <= end) {
        h.now = t;
        h.stack.handle_timeout(h.now);
        assert_eq!(h.replies(), []);
    }
    let cn = h.counters();
    assert_eq!(
        (cn.window_probes, cn.tail_loss_probes, cn.rto_expirations),
        (0, 0, 0),
        "{cn:?}"
    );
}

/// Loss probes need SACK (RFC 8985 section 7): without it a lost tail waits for the
/// retransmission timeout. With it, a tail followed by our FIN (FIN-WAIT-1) is probed
/// like any other, as Linux does.
#[test]
fn a_loss_probe_needs_sack_and_also_runs_after_our_fin() {
    for (opts, probes) in [
        (&[2u8, 4, 5, 180][..], (0, 1)),
        (&[2, 4, 5, 180, 4, 2, 1, 1][..], (1, 0)),
    ] {
        let mut h = Harness::new();
        h.establish_after(1000, opts, Duration::from_millis(20));
        let c = h.conn.unwrap();
        h.stack.send(h.now, c, &[1; 2000]).unwrap();
        h.stack.shutdown(h.now, c).unwrap();
        h.replies();
        assert_eq!(run_until_probe_or_timeout(&mut h), probes, "{opts:?}");
    }
}

/// With a single segment in flight the loss probe also waits for the peer's delayed
/// ACK (RFC 8985 section 7.2): `PTO = 2 * SRTT + 200 ms`, here capped by the RTO
/// (220 ms), not the 42 ms of several segments in flight.
#[test]
fn a_single_segment_probe_waits_for_a_delayed_ack() {
    let mut h = Harness::new();
    h.establish_after(1000, &[2, 4, 5, 180, 4, 2, 1, 1], Duration::from_millis(20));
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[1; 1000]).unwrap();
    h.replies();
    let start = h.now;
    assert_eq!(
        h.stack.conn_info(c).unwrap().rto,
        Duration::from_millis(220)
    );
    h.now = start + Duration::from_millis(219);
    h.stack.handle_timeout(h.now);
    assert_eq!(h.counters().tail_loss_probes, 0);
    h.now = start + Duration::from_millis(220);
    h.stack.handle_timeout(h.now);
    assert_eq!(h.counters().tail_loss_probes, 1);
}

/// The persist timer runs only with nothing in flight: data held back by Nagle behind
/// an unacknowledged segment is the retransmission timer's business, not a window
/// probe's.
#[test]
fn no_window_probe_while_data_is_in_flight() {
    let mut h = Harness::new();
    h.establish();
    let c = h.conn.unwrap();
    h.stack.send(h.now, c, &[1; 1000]).unwrap();
    assert_eq!(data_segments(&h.replies()).len(), 1);
    h.stack.send(h.now, c, &[2; 100]).unwrap();
    assert_eq!(h.replies(), [], "held back by Nagle");
    h.run_next_timer("a timer is armed");
    h.replies();
    let cn = h.counters();
    assert_eq!((cn.rto_expirations, cn.window_probes), (1, 0), "{cn:?}");
}

/// Unlistening resets the listener's pending connections and only those: an active
/// connection made before is untouched.
#[test]
fn unlisten_resets_only_the_listeners_connections() {
    let mut h = Harness::new();
    let (c, _syn) = active_open(&mut h, 5563);
    let l = h.stack.listen(81, 4).unwrap();
    let mut syn = Seg::new(flags::SYN, 100, 0).opts(&[2, 4, 5, 180]);
    syn.dst_port = 81;
    h.send(&syn);
    let isn = h.replies()[0].seq;
    let mut ack = Seg::new(flags::ACK, 101, isn.wrapping_add(1));
    ack.dst_port = 81;
    h.send(&ack);
    assert_eq!(h.stack.connection_count(), 2);
    h.stack.unlisten(l).unwrap();
    let r = h.replies();
    assert_eq!(
        r.iter()
            .map(|r| (r.flags & flags::RST, r.seq))
            .collect::<Vec<_>>(),
        [(flags::RST, isn.wrapping_add(1))]
    );
    assert_eq!(h.stack.connection_count(), 1);
    assert_eq!(h.stack.state(c).unwrap(), TcpState::SynSent);
}

/// RFC 8985 section 6.3 and RFC 2018 section 8: after one timeout what the peer SACKed
/// stays delivered (a later ACK that no longer SACKs it does not make it lost); after
/// a second in a row the peer may have reneged, and it is sent again too.
#[test]
fn sacked_data_is_resent_only_after_a_second_timeout() {
    let resent_after = |timeouts: usize| {
        let mut h = Harness::new();
        let (_, mss) = h.sack_flight(Duration::from_millis(20), 3, 3u8);
        let (seq, una) = (h.rcv_nxt(), h.snd_nxt());
        let third = sack(&[(una + 2 * mss, una + 3 * mss)]);
        h.send(&Seg::new(flags::ACK, seq, una).opts(&third));
        h.replies();
        for _ in 0..timeouts {
            let before = h.counters().rto_expirations;
            while h.counters().rto_expirations == before {
                h.run_next_timer("a timer is armed");
                h.replies();
            }
        }
        // The first segment arrives at last; the peer SACKs nothing any more.
        h.send(&Seg::new(flags::ACK, seq, una + mss));
        data_segments(&h.replies())
            .iter()
            .map(|s| (s.0 - una) / mss)
            .collect::<Vec<_>>()
    };
    assert_eq!(resent_after(1), [1]);
    assert_eq!(resent_after(2), [1, 2]);
}
