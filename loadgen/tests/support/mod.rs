//! Shared by loadgen's end-to-end tests: test HTTP servers that behave well or badly
//! and count what they saw, and a runner for the `loadgen` binary that reads its JSON
//! report.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Body of the correct server's responses.
pub const BODY: &[u8] = &[b'x'; 100];

/// The longest an `EndlessChunked` response is sent for.
pub const ENDLESS_FOR: Duration = Duration::from_secs(20);

/// Slack allowed on top of a run's expected length before "exits on time" fails (the
/// process start and report included; generous for loaded CI machines).
pub const SLACK: Duration = Duration::from_secs(3);

/// How a test server answers each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with a 100-byte body, keep-alive unless the request says close.
    Correct,
    /// 500 with a short body.
    Status500,
    /// As `Correct`, but every fourth response of the server is a 500.
    EveryFourth500,
    /// A chunked 200 whose body never ends: 64 KiB chunks until the client goes away
    /// (or, as a safety net, for at most [`ENDLESS_FOR`]).
    EndlessChunked,
    /// A head promising 100 bytes, 10 of them, then close.
    CloseMidResponse,
    /// Bytes that are not HTTP.
    Garbage,
    /// Reads requests and never answers.
    Stall,
    /// Answers with interim `100 Continue` heads as fast as the client takes them, and
    /// never with a final response (for at most [`ENDLESS_FOR`]).
    EndlessInterim,
    /// A 200 whose body ends with the connection (no length, `Connection: close`).
    CloseDelimited,
}

/// What a test server saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests read.
    pub requests: u64,
    /// Complete responses written.
    pub responses: u64,
    /// Response bytes written (complete responses only).
    pub response_bytes: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Most requests found in one read (pipelining shows as > 1).
    pub max_batch: usize,
    /// The first request heads, verbatim.
    pub heads: Vec<String>,
}

/// A test server on a free loopback port; stops accepting when dropped.
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    /// Connects to the server once, to wake its acceptor when it stops.
    wake: Box<dyn Fn() + Send>,
}

impl Server {
    pub fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        Server::on(listener, behaviour, move || {
            let _ = TcpStream::connect(addr);
        })
    }

    /// A server answering on `listener` (bound anywhere, e.g. inside a namespace);
    /// `wake` connects to it from where it is reachable.
    pub fn on(
        listener: TcpListener,
        behaviour: Behaviour,
        wake: impl Fn() + Send + 'static,
    ) -> Server {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = std::thread::spawn({
            let (seen, stop) = (seen.clone(), stop.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    seen.lock().unwrap().connections += 1;
                    let (seen, stop) = (seen.clone(), stop.clone());
                    std::thread::spawn(move || serve(stream, behaviour, &seen, &stop));
                }
            }
        });
        Server {
            addr,
            seen,
            stop,
            acceptor: Some(acceptor),
            wake: Box::new(wake),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

/// Dropped, the server goes away as a crashed one does: the listener closes (connects
/// are refused) and each open connection is closed at its next request, unanswered.
impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        (self.wake)();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Serves one connection until the client closes it, the behaviour closes it, or
/// `stop` is set (then the next request is left unanswered and the connection closed).
pub fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: &Mutex<Seen>, stop: &AtomicBool) {
    // A safety net: no test connection lives this long.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stop.load(Ordering::Acquire) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut batch = 0;
        while let Some(at) = find(&buf, b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..at + 4).collect();
            let head = String::from_utf8_lossy(&head).into_owned();
            batch += 1;
            {
                let mut s = seen.lock().unwrap();
                s.requests += 1;
                s.max_batch = s.max_batch.max(batch);
                if s.heads.len() < 16 {
                    s.heads.push(head.clone());
                }
            }
            if !respond(&mut stream, behaviour, &head, seen) {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Answers one request; `false` when the connection is to be closed.
pub fn respond(
    stream: &mut TcpStream,
    behaviour: Behaviour,
    head: &str,
    seen: &Mutex<Seen>,
) -> bool {
    let close = head.to_ascii_lowercase().contains("\r\nconnection: close");
    let head_only = head.starts_with("HEAD ");
    let response = match behaviour {
        Behaviour::Correct => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
                BODY.len(),
                if close { "Connection: close\r\n" } else { "" }
            )
            .into_bytes();
            if !head_only {
                r.extend_from_slice(BODY);
            }
            r
        }
        Behaviour::Status500 => {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".to_vec()
        }
        Behaviour::EveryFourth500 => {
            if seen.lock().unwrap().responses % 4 == 3 {
                return respond(stream, Behaviour::Status500, head, seen);
            }
            return respond(stream, Behaviour::Correct, head, seen);
        }
        Behaviour::EndlessChunked => {
            let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let mut chunk = b"10000\r\n".to_vec();
            chunk.resize(chunk.len() + 0x10000, b'z');
            chunk.extend_from_slice(b"\r\n");
            let started = Instant::now();
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            if stream.write_all(head).is_ok() {
                while started.elapsed() < ENDLESS_FOR && stream.write_all(&chunk).is_ok() {}
            }
            return false;
        }
        Behaviour::CloseMidResponse => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
            return false;
        }
        Behaviour::Garbage => b"this is not HTTP at all\r\n\r\n".to_vec(),
        Behaviour::Stall => return true,
        Behaviour::EndlessInterim => {
            let heads = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(256);
            let started = Instant::now();
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            while started.elapsed() < ENDLESS_FOR && stream.write_all(&heads).is_ok() {}
            return false;
        }
        Behaviour::CloseDelimited => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello");
            return false;
        }
    };
    // Counted before the write: the client may have the response, finish and let the
    // test read the counts before this thread would get the lock after the write.
    {
        let mut s = seen.lock().unwrap();
        s.responses += 1;
        s.response_bytes += response.len() as u64;
    }
    if stream.write_all(&response).is_err() {
        let mut s = seen.lock().unwrap();
        s.responses -= 1;
        s.response_bytes -= response.len() as u64;
        return false;
    }
    !close
}

/// A finished loadgen run.
pub struct Run {
    pub output: Output,
    pub wall: Duration,
    pub json: Option<Value>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn json(&self) -> &Value {
        self.json.as_ref().expect("run with --json")
    }

    pub fn requests(&self) -> u64 {
        self.json()["requests"].as_u64().unwrap()
    }

    pub fn bytes(&self) -> u64 {
        self.json()["bytes"].as_u64().unwrap()
    }

    pub fn error(&self, kind: &str) -> u64 {
        self.json()["errors"][kind].as_u64().unwrap()
    }

    pub fn assert_success(&self) {
        self.assert_exit(0);
    }

    /// The run happened but failed (exit status 3), saying why on stderr.
    pub fn assert_run_failed(&self, why: &str) {
        self.assert_exit(3);
        assert!(self.stderr().contains(why), "{}", self.stderr());
    }

    pub fn assert_exit(&self, code: i32) {
        assert_eq!(
            self.output.status.code(),
            Some(code),
            "loadgen exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
    }
}

/// A JSON path unique to this test process and `name`.
pub fn json_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loadgen-e2e-{}-{name}.json", std::process::id()))
}

/// Runs loadgen with `args`, plus `--json` to a fresh file when `name` is given.
pub fn loadgen(args: &[&str], name: Option<&str>) -> Run {
    loadgen_with(Command::new(env!("CARGO_BIN_EXE_loadgen")), args, name)
}

/// Runs `cmd` (loadgen, possibly under a wrapper such as `ip netns exec`) with `args`,
/// plus `--json` to a fresh file when `name` is given.
pub fn loadgen_with(mut cmd: Command, args: &[&str], name: Option<&str>) -> Run {
    let path = command(&mut cmd, args, name);
    let started = Instant::now();
    let output = cmd.output().expect("run loadgen");
    finish(output, started.elapsed(), path)
}

/// Runs loadgen with `args` (and `--json` as [`loadgen`] does), sends it `signal`
/// after `after`, and waits for it to end: at most [`SLACK`] more.
pub fn loadgen_signalled(args: &[&str], name: Option<&str>, after: Duration, signal: i32) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    let path = command(&mut cmd, args, name);
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadgen");
    std::thread::sleep(after);
    // SAFETY: kill has no memory effects; the pid is our child's, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let output = testnet::process::wait_within(child, SLACK)
        .unwrap_or_else(|_| panic!("loadgen still ran {SLACK:?} after the signal"));
    finish(output, started.elapsed(), path)
}

/// Adds `args` to `cmd`, and `--json` to a fresh file (returned) when `name` is given.
fn command(cmd: &mut Command, args: &[&str], name: Option<&str>) -> Option<PathBuf> {
    cmd.args(args);
    let path = name.map(json_path);
    if let Some(path) = &path {
        let _ = std::fs::remove_file(path);
        cmd.arg("--json").arg(path);
    }
    path
}

/// The run of a finished loadgen, with its JSON report from `path` if it wrote one.
fn finish(output: Output, wall: Duration, path: Option<PathBuf>) -> Run {
    let json = path.map(|path| {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}); stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        let _ = std::fs::remove_file(&path);
        serde_json::from_str(&text).expect("valid JSON report")
    });
    Run { output, wall, json }
}

/// The run made exactly `n` requests, the server saw exactly those, and both count
/// the same response bytes.
pub fn assert_served(run: &Run, seen: &Seen, n: u64) {
    assert_eq!(run.requests(), n);
    assert_eq!(seen.requests, n);
    assert_eq!(run.bytes(), seen.response_bytes);
}

/// The rows of the percentile spectrum `--latency` prints: (value in ms, percentile,
/// total count), and the `#[...]` lines after them.
pub fn spectrum(stdout: &str) -> (Vec<(f64, f64, u64)>, Vec<&str>) {
    let mut lines = stdout
        .lines()
        .skip_while(|l| *l != "  Detailed Percentile spectrum:")
        .skip(1);
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    let mut rows = Vec::new();
    let mut footer = Vec::new();
    for line in lines {
        if line.starts_with("#[") {
            footer.push(line);
            continue;
        }
        if !footer.is_empty() {
            break;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 4, "{line:?}");
        let percentile: f64 = cols[1].parse().unwrap();
        let inverse: f64 = cols[3].parse().unwrap();
        if percentile < 1.0 {
            // The percentile is printed rounded to 6 decimals.
            let expected = 1.0 / (1.0 - percentile);
            let slack = 0.005 + expected * expected * 5e-7;
            assert!((inverse - expected).abs() <= slack, "{line}");
        } else {
            assert_eq!(cols[3], "inf");
        }
        rows.push((
            cols[0].parse().unwrap(),
            percentile,
            cols[2].parse().unwrap(),
        ));
    }
    (rows, footer)
}
