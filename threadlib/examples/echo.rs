//! An echo server over raw non-blocking sockets and the epoll loop.
//!
//! Each accepted connection gets its own thread in one scope. Sockets are
//! non-blocking: a thread tries `accept`/`read`/`write` and, on `WouldBlock`, hands the
//! scheduler a `WaitFd` system call (`threadlib::readiness::wait`) and retries once the epoll
//! loop reports readiness. Before a socket is closed its epoll registration is dropped
//! with `threadlib::readiness::forget`.
//!
//! ```text
//! echo [--addr IP:PORT | --port PORT] [--max-conns N] [--duration SECS]
//! ```
//!
//! Defaults: `127.0.0.1:7878`, unlimited connections and time. With `--max-conns N`
//! the server stops accepting after N connections and exits when they have all closed;
//! with `--duration` it stops (closing every connection) after that many seconds. The
//! first line printed is `listening on ADDR`, with the real port when `--port 0`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use iolib::socket::{self, ListenOptions};
use threadlib::{Readiness, Scope};

/// Command-line settings.
struct Config {
    addr: SocketAddr,
    max_conns: Option<u64>,
    duration: Option<Duration>,
}

const USAGE: &str = "usage: echo [--addr IP:PORT | --port PORT] [--max-conns N] [--duration SECS]";

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 7878)),
        max_conns: None,
        duration: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}\n{USAGE}");
        match flag.as_str() {
            "--addr" => cfg.addr = value.parse().map_err(|e| bad(&e))?,
            "--port" => cfg.addr.set_port(value.parse().map_err(|e| bad(&e))?),
            "--max-conns" => cfg.max_conns = Some(value.parse().map_err(|e| bad(&e))?),
            "--duration" => {
                let secs: f64 = value.parse().map_err(|e| bad(&e))?;
                cfg.duration = Some(Duration::try_from_secs_f64(secs).map_err(|e| bad(&e))?);
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

/// A non-blocking TCP stream whose waits go to the epoll loop. Dropping it forgets the
/// descriptor's registration before the socket closes.
struct Conn {
    stream: TcpStream,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> threadlib::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    threadlib::readiness::wait(self.stream.as_raw_fd(), Readiness::Read).await?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return Ok(r?),
            }
        }
    }

    async fn write_all(&mut self, mut data: &[u8]) -> threadlib::Result<()> {
        while !data.is_empty() {
            match self.stream.write(data) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    threadlib::readiness::wait(self.stream.as_raw_fd(), Readiness::Write).await?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        threadlib::readiness::forget(self.stream.as_raw_fd());
    }
}

/// Echoes until the peer closes. Connection errors end only this connection: they are
/// reported, not returned, so they do not cancel the server's scope.
async fn serve(mut conn: Conn, peer: SocketAddr) -> threadlib::Result<()> {
    let mut buf = vec![0u8; 16 << 10];
    let result = async {
        let mut echoed = 0u64;
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok(echoed);
            }
            conn.write_all(&buf[..n]).await?;
            echoed += n as u64;
        }
    }
    .await;
    match result {
        Ok(n) => println!("{peer}: closed after {n} bytes"),
        // The server is stopping: unwind (the scope expects this error).
        Err(threadlib::Error::Cancelled) => return Err(threadlib::Error::Cancelled),
        Err(e) => println!("{peer}: {e}"),
    }
    Ok(())
}

/// Accepts connections (at most `max` of them) and serves each in a thread of `s`.
async fn accept_loop(s: &Scope, listener: &TcpListener, max: Option<u64>) -> threadlib::Result<()> {
    let mut accepted = 0u64;
    while max.is_none_or(|m| accepted < m) {
        match socket::accept(listener) {
            Ok(stream) => {
                accepted += 1;
                let peer = stream.peer_addr()?;
                s.spawn(serve(Conn { stream }, peer));
            }
            Err(e) if e.is_would_block() => {
                threadlib::readiness::wait(listener.as_raw_fd(), Readiness::Read).await?
            }
            // The peer gave up before we accepted; or we ran out of descriptors, in
            // which case waiting for connections to close would be wiser in production.
            Err(e) if e.errno() == Some(libc::ECONNABORTED) || e.errno() == Some(libc::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!("accepted {accepted} connections; no longer accepting");
    Ok(())
}

async fn server(cfg: Config) -> threadlib::Result<()> {
    let listener = socket::listen(cfg.addr, ListenOptions::default())?;
    println!("listening on {}", listener.local_addr()?);
    // Flush now: a test (or a user piping us) waits for this line.
    io::stdout().flush()?;
    let run = threadlib::scope(|s| async move {
        let r = accept_loop(&s, &listener, cfg.max_conns).await;
        threadlib::readiness::forget(listener.as_raw_fd());
        r
    });
    match cfg.duration {
        None => run.await,
        Some(d) => match threadlib::with_timeout(d, run).await {
            Err(threadlib::Error::TimedOut) => {
                println!("{} s elapsed; stopped", d.as_secs_f64());
                Ok(())
            }
            r => r,
        },
    }
}

fn main() -> std::process::ExitCode {
    let cfg = match parse_args() {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("{msg}");
            return std::process::ExitCode::from(2);
        }
    };
    match threadlib::run(server(cfg)).and_then(|r| r) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
