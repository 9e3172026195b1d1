//! Two stacks joined by a link whose every decision (drop, duplicate, delay/reorder,
//! corrupt, deliver) comes from the fuzz input, moving data both ways with half-closes
//! and closes. Coverage guidance steers the loss patterns toward untested recovery
//! paths, where the seeded simulation (`tests/sim.rs`) samples them at random.
//!
//! Checked: bytes received are always a prefix of the bytes sent (never a wrong, lost
//! or duplicated byte); unless a connection reports an error (the fuzzer may drop a
//! segment until the retry limit), everything arrives, both sides see end of stream
//! and both stacks end with no connections; and that within bounded virtual time.

#![no_main]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tcpstack::{
    CcAlgorithm, CcConfig, ConnId, Error, Event, Instant, Stack, StackConfig, TcpConfig,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 80;
const DELAY: Duration = Duration::from_millis(10);

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
}

fn config(addr: Ipv4Addr, knobs: u8) -> StackConfig {
    let mut c = StackConfig::new(addr, [addr.octets()[3]; 16]);
    c.tcp = TcpConfig {
        mtu: if knobs & 1 != 0 { 576 } else { 1500 },
        send_buffer: if knobs & 2 != 0 { 2048 } else { 16_384 },
        recv_buffer: if knobs & 4 != 0 { 2048 } else { 16_384 },
        sack: knobs & 8 == 0,
        timestamps: knobs & 16 == 0,
        window_scaling: knobs & 32 == 0,
        congestion: CcConfig {
            algorithm: if knobs & 64 != 0 {
                CcAlgorithm::NewReno
            } else {
                CcAlgorithm::Cubic
            },
            ..CcConfig::default()
        },
        delayed_ack: (knobs & 128 == 0).then_some(Duration::from_millis(40)),
        time_wait: Duration::from_secs(120),
        ..TcpConfig::default()
    };
    c
}

/// One side's application.
#[derive(Default)]
struct App {
    conn: Option<ConnId>,
    data: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    eof: bool,
    shut: bool,
    released: bool,
    failed: bool,
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let knobs = [input.u8().unwrap_or(0), input.u8().unwrap_or(0)];
    let up = usize::from(input.u8().unwrap_or(0)) * 97;
    let down = usize::from(input.u8().unwrap_or(0)) * 97;
    let mut stacks = [
        Stack::new(config(A, knobs[0])).expect("config"),
        Stack::new(config(B, knobs[1])).expect("config"),
    ];
    let listener = stacks[1].listen(PORT, 4).expect("listen");
    let mut now = Instant::from_millis(1);
    let mut apps = [App::default(), App::default()];
    apps[0].data = pattern(up, 0x11);
    apps[1].data = pattern(down, 0x77);
    apps[0].conn = Some(
        stacks[0]
            .connect(now, SocketAddrV4::new(B, PORT), 40_000)
            .expect("connect"),
    );
    // Packets in flight per direction, keyed by (delivery time, sequence).
    let mut links: [BTreeMap<(Instant, u64), Vec<u8>>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut next_id = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut read_buf = [0u8; 4096];
    let start = now;
    loop {
        assert!(
            now - start < Duration::from_secs(4 * 3600),
            "no completion after 4 hours of virtual time"
        );
        for h in 0..2 {
            let stack = &mut stacks[h];
            let app = &mut apps[h];
            while let Some(ev) = stack.poll_event() {
                match ev {
                    Event::Incoming(l) => {
                        assert_eq!(l, listener);
                        while let Ok(c) = stack.accept(l) {
                            assert!(app.conn.is_none(), "second connection accepted");
                            app.conn = Some(c);
                        }
                    }
                    Event::Reset(_) | Event::Error(..) => app.failed = true,
                    _ => {}
                }
            }
            let Some(c) = app.conn.filter(|_| !app.released && !app.failed) else {
                continue;
            };
            while app.sent < app.data.len() {
                match stack.send(now, c, &app.data[app.sent..]) {
                    Ok(n) => app.sent += n,
                    Err(Error::WouldBlock | Error::NotConnected) => break,
                    Err(_) => {
                        app.failed = true;
                        break;
                    }
                }
            }
            if app.sent == app.data.len() && !app.shut && stack.shutdown(now, c).is_ok() {
                app.shut = true;
            }
            while !app.eof {
                match stack.recv(c, &mut read_buf) {
                    Ok(0) => app.eof = true,
                    Ok(n) => app.received.extend_from_slice(&read_buf[..n]),
                    Err(_) => break,
                }
            }
            if app.shut && app.eof && stack.close(now, c).is_ok() {
                app.released = true;
            }
        }
        // Integrity, always: what arrived is exactly a prefix of what was sent.
        for h in 0..2 {
            let (got, sent) = (&apps[h].received, &apps[1 - h].data);
            assert!(
                got.len() <= sent.len() && got[..] == sent[..got.len()],
                "side {h} received bytes that were not sent at that position"
            );
        }
        // Transmit, letting the input decide each packet's fate.
        for h in 0..2 {
            while let Some(n) = stacks[h].poll_transmit(now, &mut buf).map(|t| t.len) {
                let mut p = buf[..n].to_vec();
                let fate = input.u8();
                let mut at = now + DELAY;
                match fate.map(|f| (f & 7, f >> 3)) {
                    Some((0, _)) => continue, // lost
                    Some((1, extra)) => {
                        next_id += 1;
                        let later = at + Duration::from_millis(u64::from(extra));
                        links[h].insert((later, next_id), p.clone());
                    }
                    Some((2, extra)) => at += Duration::from_millis(u64::from(extra) * 4),
                    Some((3, bit)) => {
                        let bit = usize::from(bit) * 8 % (p.len() * 8);
                        p[bit / 8] ^= 1 << (bit % 8);
                    }
                    _ => {}
                }
                next_id += 1;
                links[h].insert((at, next_id), p);
            }
        }
        // A connection that gave up after its application released the handle reports
        // no event; the peer may then wait in FIN-WAIT-2 forever (as on Linux), so a
        // timeout anywhere ends the check.
        let gave_up = stacks.iter().any(|s| s.counters().timeouts > 0);
        let failed = gave_up || apps.iter().any(|a| a.failed);
        let done = apps.iter().all(|a| a.released)
            && stacks.iter().all(|s| s.connection_count() == 0)
            && links.iter().all(BTreeMap::is_empty);
        if done || failed {
            break;
        }
        let next = links
            .iter()
            .filter_map(|l| l.keys().next().map(|k| k.0))
            .chain(stacks.iter().filter_map(Stack::poll_timeout))
            .min()
            .expect("stuck: nothing in flight and no timer, applications unfinished");
        now = now.max(next);
        for h in 0..2 {
            while let Some(entry) = links[h].first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let p = entry.remove();
                stacks[1 - h].handle_packet(now, &p);
            }
        }
        for s in &mut stacks {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
    }
    if !apps.iter().any(|a| a.failed) && stacks.iter().all(|s| s.counters().timeouts == 0) {
        for h in 0..2 {
            assert_eq!(
                apps[h].received.len(),
                apps[1 - h].data.len(),
                "side {h}: data missing"
            );
            assert!(apps[h].eof, "side {h}: no end of stream");
        }
    }
});
