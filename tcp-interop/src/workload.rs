//! Kernel-side traffic: seeded data streams with digests, a bulk sender, a ping-pong
//! client, and the kernel servers of the loopback anchor. All of it uses plain
//! `std::net` sockets, so it runs wherever its thread's network namespace is.

use std::convert::Infallible;
use std::hash::Hasher;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// Size of the bench's ping-pong messages.
pub const PINGPONG_MSG: usize = 64;

/// A deterministic pseudo-random byte stream: the same seed always yields the same bytes,
/// different seeds different ones.
#[derive(Debug, Clone)]
pub struct Pattern {
    rng: SplitMix64,
    /// Bytes of the current word not yet handed out.
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            rng: SplitMix64::seed_from_u64(seed),
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.rng.next_u64().to_le_bytes()
    }

    /// Fills `buf` with the next `buf.len()` bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() && self.used < 8 {
            buf[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let mut words = buf[i..].chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_word());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            self.word = self.next_word();
            rest.copy_from_slice(&self.word[..rest.len()]);
            self.used = rest.len();
        }
    }
}

/// Length and hash of a byte stream, fed in pieces of any size.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    len: u64,
    hasher: std::hash::DefaultHasher,
}

impl Digest {
    /// Adds the next piece of the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.hasher.write(bytes);
    }

    /// `(length, hash)` of everything fed so far.
    pub fn finish(&self) -> (u64, u64) {
        (self.len, self.hasher.finish())
    }
}

/// `(length, hash)` of the first `len` bytes of `Pattern::new(seed)`.
pub fn pattern_digest(seed: u64, len: u64) -> (u64, u64) {
    let Ok(digest) = each_pattern_chunk::<Infallible>(seed, len, |_| Ok(()));
    digest
}

/// Hands the first `len` bytes of `Pattern::new(seed)` to `f` in chunks of at most
/// 64 KiB, stopping at its first error; returns their `(length, hash)`.
fn each_pattern_chunk<E>(
    seed: u64,
    len: u64,
    mut f: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(u64, u64), E> {
    let mut p = Pattern::new(seed);
    let mut d = Digest::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        p.fill(&mut buf[..n]);
        f(&buf[..n])?;
        d.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(d.finish())
}

/// `(length, hash)` of each direction of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    /// What was written.
    pub sent: (u64, u64),
    /// What was read, up to end of stream.
    pub received: (u64, u64),
    /// How long after the exchange started end of stream was read: the time the peer's
    /// direction took (when measured).
    pub eof_after: Option<Duration>,
}

/// Sends `len` bytes of `Pattern::new(seed)` on `stream` and shuts down its write side,
/// while reading everything the peer sends until end of stream.
pub fn exchange(stream: TcpStream, seed: u64, len: u64) -> io::Result<Exchanged> {
    let start = Instant::now();
    let writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || send_pattern(&writer, seed, len));
    let received = read_to_end_digest(&stream);
    let eof_after = start.elapsed();
    let sent = sender.join().expect("sender thread does not panic")?;
    Ok(Exchanged {
        sent,
        received: received?,
        eof_after: Some(eof_after),
    })
}

/// Writes `len` bytes of `Pattern::new(seed)` and shuts down the write side; returns the
/// `(length, hash)` written.
pub fn send_pattern(mut stream: &TcpStream, seed: u64, len: u64) -> io::Result<(u64, u64)> {
    let sent = each_pattern_chunk(seed, len, |chunk| stream.write_all(chunk))?;
    stream.shutdown(Shutdown::Write)?;
    Ok(sent)
}

/// Reads `stream` to end of stream, returning `(length, hash)` of what arrived.
pub fn read_to_end_digest(mut stream: &TcpStream) -> io::Result<(u64, u64)> {
    let mut d = Digest::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(d.finish()),
            Ok(n) => d.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Bench client: sends `len` bytes to a bulk sink at `addr`, half-closes, and waits for
/// the sink's 8-byte count. Returns the time from connect to that answer.
pub fn bulk_send(addr: SocketAddr, len: u64) -> io::Result<Duration> {
    let buf = vec![0x5au8; 256 * 1024];
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    // A server that dies mid-transfer must not hang the client.
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.write_all(&buf[..n])?;
        left -= n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let mut count = [0u8; 8];
    stream.read_exact(&mut count)?;
    let elapsed = start.elapsed();
    let got = u64::from_be_bytes(count);
    if got != len {
        return Err(io::Error::other(format!(
            "sink counted {got} bytes, {len} were sent"
        )));
    }
    Ok(elapsed)
}

/// Result of a ping-pong run.
#[derive(Debug)]
pub struct PingPong {
    /// Round trips completed in the measured interval.
    pub round_trips: u64,
    /// Length of the measured interval.
    pub elapsed: Duration,
    /// Round-trip latencies in microseconds.
    pub latency_us: Histogram<u64>,
}

impl PingPong {
    /// Round trips per second.
    pub fn rate(&self) -> f64 {
        self.round_trips as f64 / self.elapsed.as_secs_f64()
    }
}

struct PingConn {
    stream: TcpStream,
    sent_at: Instant,
    /// Bytes of the current reply read so far.
    got: usize,
}

/// Bench client: `conns` connections to an echo server at `addr`, each with one
/// `PINGPONG_MSG`-byte message in flight, for `warmup` then `measure`.
pub fn pingpong(
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    measure: Duration,
) -> io::Result<PingPong> {
    let msg = [0xa5u8; PINGPONG_MSG];
    let mut pc = Vec::with_capacity(conns);
    for _ in 0..conns {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        pc.push(PingConn {
            stream,
            sent_at: Instant::now(),
            got: 0,
        });
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(io::Error::other)?;
    for c in &mut pc {
        c.sent_at = Instant::now();
        (&c.stream).write_all(&msg)?;
    }
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut round_trips = 0u64;
    let mut buf = [0u8; PINGPONG_MSG];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut fds: Vec<PollFd> = pc
            .iter()
            .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout = PollTimeout::try_from(end - now).unwrap_or(PollTimeout::MAX);
        nix::poll::poll(&mut fds, timeout).map_err(io::Error::from)?;
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for (c, ready) in pc.iter_mut().zip(ready) {
            if !ready {
                continue;
            }
            loop {
                match (&c.stream).read(&mut buf[..PINGPONG_MSG - c.got]) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "echo server closed",
                        ))
                    }
                    Ok(n) => c.got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
                if c.got == PINGPONG_MSG {
                    let now = Instant::now();
                    if now >= measure_from {
                        round_trips += 1;
                        let us = (now - c.sent_at).as_micros().max(1) as u64;
                        hist.saturating_record(us);
                    }
                    c.got = 0;
                    c.sent_at = now;
                    (&c.stream).write_all(&msg)?;
                }
            }
        }
    }
    Ok(PingPong {
        round_trips,
        elapsed: end - measure_from,
        latency_us: hist,
    })
}

/// Kernel bulk sink for the loopback anchor: accepts connections one at a time, reads
/// each to end of stream, answers with the byte count (8 bytes, big-endian) and closes.
/// Returns when `stop` is set (checked between connections and every 100 ms).
pub fn kernel_sink_server(listener: TcpListener, stop: &AtomicBool) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(false)?;
        let mut count = 0u64;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => count += n as u64,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        stream.write_all(&count.to_be_bytes())?;
    }
    Ok(())
}

/// Kernel echo server for the loopback anchor: one thread, `poll(2)` over every
/// connection, echoing whatever arrives. Returns when `stop` is set.
pub fn kernel_echo_server(listener: TcpListener, stop: &AtomicBool) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            conns
                .iter()
                .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
        );
        nix::poll::poll(&mut fds, PollTimeout::from(100u8)).map_err(io::Error::from)?;
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut closed = Vec::new();
        for (i, c) in conns.iter().enumerate() {
            if !ready[i + 1] {
                continue;
            }
            match echo_available(c, &mut buf) {
                Ok(true) => {}
                Ok(false) | Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            conns.swap_remove(i);
        }
        if ready[0] {
            loop {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(true)?;
                        s.set_nodelay(true)?;
                        conns.push(s);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Echoes what is readable on `c` now; `Ok(false)` at end of stream.
fn echo_available(mut c: &TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    loop {
        match c.read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                // Replies are tiny next to the socket buffer, so a blocking-style
                // write_all on the non-blocking socket only loops on WouldBlock.
                let mut off = 0;
                while off < n {
                    match c.write(&buf[off..n]) {
                        Ok(m) => off += m,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_independent_of_chunking() {
        let mut whole = vec![0u8; 1000];
        Pattern::new(9).fill(&mut whole);
        let mut pieces = vec![0u8; 1000];
        let mut p = Pattern::new(9);
        for chunk in pieces.chunks_mut(7) {
            p.fill(chunk);
        }
        assert_eq!(whole, pieces);
        let mut other = vec![0u8; 1000];
        Pattern::new(10).fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn digest_is_independent_of_chunking() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut a = Digest::default();
        a.update(&data);
        let mut b = Digest::default();
        for chunk in data.chunks(13) {
            b.update(chunk);
        }
        assert_eq!(a.finish(), b.finish());
        let mut c = Digest::default();
        c.update(&data[1..]);
        assert_ne!(a.finish(), c.finish());
    }

    #[test]
    fn kernel_servers_answer_the_bench_clients() {
        let stop = AtomicBool::new(false);
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let (sink_addr, echo_addr) = (sink.local_addr().unwrap(), echo.local_addr().unwrap());
        std::thread::scope(|s| {
            let a = s.spawn(|| kernel_sink_server(sink, &stop));
            let b = s.spawn(|| kernel_echo_server(echo, &stop));
            bulk_send(sink_addr, 3 << 20).expect("bulk");
            let pp = pingpong(echo_addr, 4, Duration::ZERO, Duration::from_millis(50))
                .expect("pingpong");
            assert!(pp.round_trips > 0);
            assert_eq!(pp.latency_us.len(), pp.round_trips);
            stop.store(true, Ordering::Relaxed);
            a.join().unwrap().unwrap();
            b.join().unwrap().unwrap();
        });
    }

    #[test]
    fn exchange_carries_both_directions() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            exchange(s, 2, 300_000).unwrap()
        });
        let client = TcpStream::connect(addr).unwrap();
        let client = exchange(client, 1, 200_000).unwrap();
        let server = server.join().unwrap();
        assert_eq!(client.sent, pattern_digest(1, 200_000));
        assert_eq!(server.sent, pattern_digest(2, 300_000));
        assert_eq!(client.received, server.sent);
        assert_eq!(server.received, client.sent);
    }
}
