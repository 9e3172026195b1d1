//! Feeds arbitrary bytes, as packets, to a stack that has a listener, established
//! connections (passive and active), a half-open active connection, and data in
//! flight; interleaved with the passage of time and application calls.
//!
//! The input is a sequence of operations. Raw packets go in untouched; "crafted"
//! packets take their TCP header fields, options and payload from the input but get
//! valid addresses, checksums and sequence numbers near the connection's real ones, so
//! the fuzzer reaches the state machine instead of stopping at the checksum. Every
//! packet the stack emits must itself be a well-formed IPv4 packet with correct
//! checksums.

#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, TcpPacket};
use tcpstack::{ConnId, Event, Instant, Stack, StackConfig, TcpConfig};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const LISTEN_PORT: u16 = 80;
/// Peer ports of the established connections (set up by a real handshake).
const PEER_PORTS: [u16; 3] = [40_000, 40_001, 40_002];

/// What the stack under test last said on a connection (from its emitted packets).
#[derive(Clone, Copy, Default)]
struct Seen {
    /// Our (the peer's) next sequence number: the stack's last ACK number.
    rcv: u32,
    /// The stack's next sequence number.
    snd: u32,
}

/// A cursor over the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        let mut it = c.chunks_exact(2);
        for w in &mut it {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [b] = it.remainder() {
            sum += u32::from(*b) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet from `src` to the stack carrying `l4` with protocol `proto`; the
/// TCP checksum (at offset 16 of `l4`) is filled in when `proto` is 6.
fn ipv4(src: Ipv4Addr, proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    if proto == 6 && l4.len() >= 20 {
        l4[16] = 0;
        l4[17] = 0;
        let len = (l4.len() as u16).to_be_bytes();
        let pseudo = [&src.octets()[..], &US.octets(), &[0, 6], &len];
        let c = checksum(&[&pseudo.concat(), &l4]);
        l4[16..18].copy_from_slice(&c.to_be_bytes());
    }
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&US.octets());
    let c = checksum(&[&p]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

/// Check an emitted packet and return (dst port, seq, ack, segment length incl. SYN/FIN).
fn inspect(packet: &[u8]) -> Option<(u16, u32, u32, u32)> {
    let ip = Ipv4Packet::new_checked(packet).expect("stack emitted a malformed IPv4 packet");
    assert!(ip.verify_checksum(), "stack emitted a bad IPv4 checksum");
    assert_eq!(ip.src_addr(), US, "wrong source address");
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).expect("stack emitted a malformed TCP header");
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    assert!(
        tcp.verify_checksum(&src, &dst),
        "stack emitted a bad TCP checksum"
    );
    let len = tcp.payload().len() as u32 + u32::from(tcp.syn()) + u32::from(tcp.fin());
    Some((
        tcp.dst_port(),
        tcp.seq_number().0 as u32,
        tcp.ack_number().0 as u32,
        len,
    ))
}

struct World {
    stack: Stack,
    now: Instant,
    conns: Vec<ConnId>,
    seen: [Seen; 4],
    buf: Vec<u8>,
}

impl World {
    /// Drain the stack's packets (recording sequence numbers) and events (accepting).
    fn drain(&mut self, mut deliver: Option<&mut Stack>) {
        while let Some(n) = self.stack.poll_transmit(self.now, &mut self.buf).map(|t| t.len) {
            let p = &self.buf[..n];
            if let Some((dport, seq, ack, len)) = inspect(p) {
                if let Some(i) = port_slot(dport) {
                    self.seen[i] = Seen {
                        rcv: ack,
                        snd: seq.wrapping_add(len),
                    };
                }
            }
            if let Some(peer) = deliver.as_deref_mut() {
                peer.handle_packet(self.now, p);
            }
        }
        while let Some(ev) = self.stack.poll_event() {
            if let Event::Incoming(l) = ev {
                while let Ok(c) = self.stack.accept(l) {
                    if self.conns.len() < 16 {
                        self.conns.push(c);
                    }
                }
            }
        }
    }
}

/// Seen-slot of a peer port: the three passive connections and the active one (port 9).
fn port_slot(port: u16) -> Option<usize> {
    match port {
        9 => Some(3),
        p => PEER_PORTS.iter().position(|&q| q == p),
    }
}

fn config(addr: Ipv4Addr) -> StackConfig {
    let mut c = StackConfig::new(addr, [7; 16]);
    c.tcp = TcpConfig {
        send_buffer: 8192,
        recv_buffer: 8192,
        ..TcpConfig::default()
    };
    c.max_connections = 64;
    c.max_half_open = 4;
    c
}

/// The stack under test with three established passive connections (handshakes with
/// a real peer stack, some data exchanged) and one active open in SYN-SENT.
fn setup() -> World {
    let mut stack = Stack::new(config(US)).expect("config");
    let mut peer = Stack::new(config(PEER)).expect("config");
    stack.listen(LISTEN_PORT, 8).expect("listen");
    let mut w = World {
        stack,
        now: Instant::from_millis(1),
        conns: Vec::new(),
        seen: [Seen::default(); 4],
        buf: vec![0; 65536],
    };
    let mut peer_conns = Vec::new();
    for port in PEER_PORTS {
        let c = peer
            .connect(w.now, SocketAddrV4::new(US, LISTEN_PORT), port)
            .expect("connect");
        peer_conns.push(c);
    }
    for round in 0..20 {
        while let Some(n) = peer.poll_transmit(w.now, &mut w.buf).map(|t| t.len) {
            w.stack.handle_packet(w.now, &w.buf[..n]);
        }
        while peer.poll_event().is_some() {}
        if round == 5 {
            for &c in &peer_conns {
                let _ = peer.send(w.now, c, b"hello from the peer");
            }
            for &c in &w.conns {
                let _ = w.stack.send(w.now, c, &[0xab; 3000]);
            }
        }
        w.drain(Some(&mut peer));
        w.now += Duration::from_millis(1);
    }
    assert_eq!(w.conns.len(), 3, "setup: the handshakes did not complete");
    assert!(
        w.seen[..3].iter().all(|s| s.snd != 0),
        "setup: no data seen"
    );
    // An active open towards a port nobody answers: stays in SYN-SENT.
    if let Ok(c) = w.stack.connect(w.now, SocketAddrV4::new(PEER, 9), 5555) {
        w.conns.push(c);
    }
    w.drain(None);
    w
}

fuzz_target!(|data: &[u8]| {
    let mut w = setup();
    let mut input = Input(data);
    let mut steps = 0;
    while let Some(op) = input.u8() {
        steps += 1;
        if steps > 256 {
            break;
        }
        match op % 6 {
            // A raw packet, exactly as given; now and then as if from an offloaded
            // device that vouches for its TCP checksum (so garbage reaches the TCP
            // parser and state machine unchecked).
            0 => {
                let word = input.u16().unwrap_or(0);
                let p = input.bytes(usize::from(word % 2048)).to_vec();
                if word & 0x8000 != 0 {
                    w.stack.handle_packet_trusted(w.now, &p);
                } else {
                    w.stack.handle_packet(w.now, &p);
                }
            }
            // A crafted TCP segment on a known connection (or a new one).
            1 | 2 => {
                let Some(sel) = input.u8() else { break };
                let slot = usize::from(sel % 5);
                let (sport, dport, seen) = match slot {
                    0..=2 => (PEER_PORTS[slot], LISTEN_PORT, w.seen[slot]),
                    3 => (9, 5555, w.seen[3]),
                    _ => (input.u16().unwrap_or(1), LISTEN_PORT, Seen::default()),
                };
                let flags = input.u8().unwrap_or(0x10);
                let dseq = input.u16().unwrap_or(0) as i16 as i32;
                let dack = input.u16().unwrap_or(0) as i16 as i32;
                let window = input.u16().unwrap_or(65535);
                let opt_len = usize::from(input.u8().unwrap_or(0) % 41);
                let opts = input.bytes(opt_len).to_vec();
                let pay_len = usize::from(input.u8().unwrap_or(0)) * 8;
                let payload = input.bytes(pay_len).to_vec();
                // Far-off sequence numbers now and then (forged, near 2^32 wrap).
                let (seq, ack) = if op % 6 == 2 {
                    (
                        seen.rcv.wrapping_add(dseq as u32),
                        seen.snd.wrapping_add(dack as u32),
                    )
                } else {
                    (dseq as u32 ^ 0x8000_0000, dack as u32 ^ 0xffff_0000)
                };
                let mut opts = opts;
                while opts.len() % 4 != 0 {
                    opts.push(0);
                }
                let doff = ((20 + opts.len()) / 4) as u8;
                let mut tcp = Vec::with_capacity(20 + opts.len() + payload.len());
                tcp.extend_from_slice(&sport.to_be_bytes());
                tcp.extend_from_slice(&dport.to_be_bytes());
                tcp.extend_from_slice(&seq.to_be_bytes());
                tcp.extend_from_slice(&ack.to_be_bytes());
                tcp.push(doff << 4);
                tcp.push(flags);
                tcp.extend_from_slice(&window.to_be_bytes());
                tcp.extend_from_slice(&[0, 0, 0, 0]);
                tcp.extend_from_slice(&opts);
                tcp.extend_from_slice(&payload);
                let p = ipv4(PEER, 6, tcp);
                w.stack.handle_packet(w.now, &p);
            }
            // An ICMP message with a valid IP header.
            3 => {
                let len = usize::from(input.u8().unwrap_or(0));
                let mut icmp = input.bytes(len).to_vec();
                if icmp.len() >= 4 {
                    icmp[2] = 0;
                    icmp[3] = 0;
                    let c = checksum(&[&icmp]);
                    icmp[2..4].copy_from_slice(&c.to_be_bytes());
                }
                let p = ipv4(PEER, 1, icmp);
                w.stack.handle_packet(w.now, &p);
            }
            // Time passes.
            4 => {
                let ms = u64::from(input.u16().unwrap_or(0));
                w.now += Duration::from_millis(ms);
                if w.stack.poll_timeout().is_some_and(|t| t <= w.now) {
                    w.stack.handle_timeout(w.now);
                }
            }
            // An application call.
            _ => {
                let Some(sel) = input.u8() else { break };
                if w.conns.is_empty() {
                    continue;
                }
                let c = w.conns[usize::from(sel) % w.conns.len()];
                let mut buf = [0u8; 1024];
                let _ = match input.u8().unwrap_or(0) % 7 {
                    0 | 1 => w.stack.send(w.now, c, &[0x5a; 1500]).map(drop),
                    2 | 3 => w.stack.recv(c, &mut buf).map(drop),
                    4 => w.stack.shutdown(w.now, c),
                    5 => w.stack.close(w.now, c),
                    _ => w.stack.abort(c),
                };
                let _ = w.stack.conn_info(c);
            }
        }
        w.drain(None);
        if let Some(t) = w.stack.poll_timeout() {
            assert!(t >= Instant::ZERO);
        }
    }
    // Let every timer run out: the stack must wind down without panicking.
    for _ in 0..64 {
        let Some(t) = w.stack.poll_timeout() else {
            break;
        };
        w.now = w.now.max(t);
        w.stack.handle_timeout(w.now);
        w.drain(None);
    }
    let _ = w.stack.counters();
});
