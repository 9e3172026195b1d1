//! Two stacks joined back to back in one process: a bulk transfer, printing the rate.
//! Measures the stack's own cost per byte (no device, no kernel), for profiling.
//!
//! `cargo run --release -p tcpstack --example bulk_loopback -- [MiB] [MTU]`

// A benchmark of real elapsed time; no simulation reaches it.
#![allow(clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddrV4};

use tcpstack::{Error, Event, Instant, Stack, StackConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let mtu: usize = args.next().map_or(65535, |a| a.parse().expect("MTU"));
    let config = |addr: Ipv4Addr| {
        let mut c = StackConfig::new(addr, [addr.octets()[3]; 16]);
        c.tcp.mtu = mtu;
        c.tcp.send_buffer = 4 << 20;
        c.tcp.recv_buffer = 4 << 20;
        c
    };
    let (a_addr, b_addr) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut a = Stack::new(config(a_addr)).expect("config");
    let mut b = Stack::new(config(b_addr)).expect("config");
    b.listen(80, 1).expect("listen");
    let mut now = Instant::ZERO;
    let client = a
        .connect(now, SocketAddrV4::new(b_addr, 80), 0)
        .expect("connect");
    let mut server = None;
    let chunk = vec![0x5au8; 256 * 1024];
    let mut rbuf = vec![0u8; 256 * 1024];
    let mut pkt = vec![0u8; mtu];
    let total = mib << 20;
    let (mut sent, mut received) = (0usize, 0usize);
    let start = std::time::Instant::now();
    while received < total {
        // The clock advances with real time so RTT and timers stay plausible.
        now = Instant::from_micros(start.elapsed().as_micros() as u64);
        if sent < total {
            match a.send(now, client, &chunk[..chunk.len().min(total - sent)]) {
                Ok(n) => sent += n,
                Err(Error::WouldBlock) => {}
                Err(e) => panic!("send: {e}"),
            }
        }
        while let Some(n) = a.poll_transmit(now, &mut pkt).map(|t| t.len) {
            b.handle_packet(now, &pkt[..n]);
        }
        while let Some(e) = b.poll_event() {
            if let Event::Incoming(l) = e {
                server = b.accept(l).ok();
            }
        }
        if let Some(s) = server {
            loop {
                match b.recv(s, &mut rbuf) {
                    Ok(0) | Err(Error::WouldBlock) => break,
                    Ok(n) => received += n,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        while let Some(n) = b.poll_transmit(now, &mut pkt).map(|t| t.len) {
            a.handle_packet(now, &pkt[..n]);
        }
        while a.poll_event().is_some() {}
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
        if b.poll_timeout().is_some_and(|t| t <= now) {
            b.handle_timeout(now);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let c = a.counters();
    println!(
        "{mib} MiB at MTU {mtu}: {:.2} s, {:.2} Gbit/s; {} segments out, {} retransmits",
        secs,
        (total as f64 * 8.0) / secs / 1e9,
        c.tcp_tx_segments,
        c.retransmits
    );
}
