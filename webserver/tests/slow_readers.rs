//! Clients that read slowly must cost the server little and delay no one: while a
//! thousand clients with tiny receive windows ramp up, each fetching a 1 MiB file, a
//! probe fetching a small file keeps getting its answer within 100 ms, and the kernel
//! holds only a bounded amount of unsent data for each slow reader (without a bound,
//! one `sendfile` queues the whole file, as hundreds of small buffers, per reader).
//!
//! Kernel TCP only: the user-space stack bounds each connection by its own send
//! buffer. This test has its binary to itself, so no other test competes for the CPU
//! while it measures latency.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use server::{exchange, Server};
use socket2::{Domain, Socket, Type};
use webserver::NetBackend;

mod server;

/// Slow readers, and how fast they arrive.
const READERS: usize = 1000;
const READERS_PER_SECOND: usize = 500;
/// Each slow reader's receive buffer: the window it offers stays tiny.
const READER_RCVBUF: usize = 4096;
/// What a slow reader takes per turn (every [`TURN`]).
const READ_PER_TURN: usize = 256;
const TURN: Duration = Duration::from_millis(100);
/// The slowest answer the probe may get.
const PROBE_LIMIT: Duration = Duration::from_millis(100);
/// The most unsent bytes the server's kernel may hold for one slow reader: the
/// server's limit (32 KiB) plus what one send may overshoot it by.
const UNSENT_BOUND: u64 = 64 * 1024;

fn root() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("webserver-slow-readers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), vec![b'x'; 1 << 20]).unwrap();
    std::fs::write(dir.join("small.txt"), b"small\n").unwrap();
    dir
}

/// Raises this process's descriptor limit (the readers need more than the usual 1024).
fn raise_fd_limit() {
    let want = 2 * READERS as u64 + 100;
    let got = iolib::limits::raise_open_files(want).unwrap();
    assert!(
        got >= want,
        "the hard descriptor limit ({got}) is too low for {READERS} readers"
    );
}

/// A client with a tiny receive window that asked for the big file.
fn slow_reader(addr: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(READER_RCVBUF).unwrap();
    s.connect(&addr.into()).unwrap();
    let mut s: TcpStream = s.into();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

/// Takes a little of what each reader has been sent.
fn read_a_little(readers: &mut [TcpStream]) {
    let mut buf = [0u8; READ_PER_TURN];
    for r in readers {
        match r.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("a slow reader lost its connection: {e}"),
        }
    }
}

/// One probe: a new connection, a small file, the whole answer. Returns how long it
/// took.
fn probe(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let answer = exchange(
        addr,
        b"GET /small.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with(b"HTTP/1.1 200 "), "{answer:?}");
    assert!(answer.ends_with(b"small\n"));
    start.elapsed()
}

/// The unsent bytes the kernel holds on each of the server's established connections
/// on `port` (`ss` prints `notsent:N` when N is not zero).
fn unsent_per_connection(port: u16) -> Vec<u64> {
    let out = Command::new("ss")
        .args(["-tnHi", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .expect("ss (iproute2) is installed");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // Each connection is an address line followed by an indented info line.
    text.lines()
        .filter(|l| l.starts_with(char::is_whitespace))
        .map(|info| {
            info.split_whitespace()
                .find_map(|f| f.strip_prefix("notsent:"))
                .map_or(0, |n| n.parse().unwrap())
        })
        .collect()
}

#[test]
fn slow_readers_ramping_up_delay_no_one_and_hold_little_unsent_data() {
    raise_fd_limit();
    let root = root();
    let server = Server::start(NetBackend::Kernel, Some(&root), &[]);
    let addr = server.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let probes = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                times.push(probe(addr));
                thread::sleep(Duration::from_millis(20));
            }
            times
        })
    };

    let batch = READERS_PER_SECOND * TURN.as_millis() as usize / 1000;
    let mut readers = Vec::with_capacity(READERS);
    let mut next_turn = Instant::now();
    while readers.len() < READERS {
        for _ in 0..batch.min(READERS - readers.len()) {
            readers.push(slow_reader(addr));
        }
        read_a_little(&mut readers);
        next_turn += TURN;
        thread::sleep(next_turn.saturating_duration_since(Instant::now()));
    }
    // Every reader has been sent what its window takes; the server has queued what it
    // will hold for each.
    for _ in 0..5 {
        read_a_little(&mut readers);
        thread::sleep(TURN);
    }
    let unsent = unsent_per_connection(addr.port());
    stop.store(true, Ordering::Relaxed);
    let times = probes.join().unwrap();

    let slowest = times.iter().copied().max().unwrap_or_default();
    let most_unsent = unsent.iter().copied().max().unwrap_or_default();
    eprintln!(
        "{} probes, the slowest {slowest:?}; at most {most_unsent} bytes unsent for one reader",
        times.len()
    );
    assert!(
        unsent.len() >= READERS,
        "{} of {READERS} readers connected",
        unsent.len()
    );
    assert!(
        most_unsent <= UNSENT_BOUND,
        "the kernel holds up to {most_unsent} unsent bytes for one slow reader"
    );
    assert!(times.len() >= 50, "only {} probes ran", times.len());
    assert!(
        slowest <= PROBE_LIMIT,
        "while slow readers ramped up, a probe took {slowest:?} (of {} probes)",
        times.len()
    );
    drop(readers);
    drop(server);
    let _ = std::fs::remove_dir_all(root);
}
