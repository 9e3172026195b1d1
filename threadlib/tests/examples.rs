//! Runs the examples as real processes and checks what they do.
//!
//! The examples are built once per test run with `cargo build --examples` (a no-op
//! when `cargo test` has already built them) for the profile this test was built
//! with, then started from `target/<profile>/examples/`.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

/// `target/<profile>`, the directory holding this test binary's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The path of example `name`, built (once for all tests) if needed.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "threadlib", "--examples"]);
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
            None => panic!("unexpected target layout: {}", dir.display()),
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
    let path = dir.join("examples").join(name);
    assert!(path.exists(), "example binary missing: {}", path.display());
    path
}

/// How long an example may run before the test kills it and fails: they finish in well
/// under a second, so a scheduler that hangs fails the test instead of stalling the run.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs an example to completion with no input and returns its output.
fn run(name: &str) -> Output {
    let child = Command::new(example(name))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start example");
    let out = wait_with_deadline(child, DEADLINE);
    assert!(
        out.status.success(),
        "{name} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hello_greets() {
    let out = lines(&run("hello"));
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("Hello, world!"), "{out:?}");
}

#[test]
fn fibers_interleave_deterministically() {
    assert_eq!(
        lines(&run("fibers")),
        ["x = 1", "y = 1", "x = 2", "y = 2", "x = 3", "y = 3"]
    );
}

#[test]
fn scope_failure_cancels_the_sleeper_then_releases() {
    let out = lines(&run("scope_failure"));
    assert_eq!(
        out,
        [
            "scope body: forked both threads",
            "sleeper: going to sleep for an hour",
            "worker: failing",
            "sleeper: sleep returned `cancelled`",
            "sleeper: a further call returns Err(Cancelled), unwinding",
            "sleeper: cleaned up",
            "release hook: the scope is finished, closing its resources",
            "scope returned the first error: worker gave up",
        ]
    );
}

#[test]
fn custom_loop_delivers_a_signal_and_withdraws_a_timed_out_wait() {
    let out = lines(&run("custom_loop"));
    let pos = |needle: &str| {
        out.iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with {needle:?} in {out:?}"))
    };
    let got = pos("waiter: got signal 10 (SIGUSR1)");
    assert!(out[got].ends_with("(ourselves)"), "{}", out[got]);
    assert!(pos("sender: kill(getpid(), SIGUSR1)") < got);
    assert!(pos("impatient: timed out; the loop withdrew the wait") > got);
    assert_eq!(out.last().map(String::as_str), Some("done"));
}

// ----- copy ------------------------------------------------------------------------

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "threadlib-examples-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes, so a lost or moved byte shows.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    SplitMix64::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

/// FNV-1a, to compare large outputs without printing them.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn assert_same(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("first difference at byte {i}");
    }
    assert_eq!(fnv(got), fnv(want));
}

const MIB: usize = 1 << 20;

/// Runs `copy` with the given stdin and stdout; feeds `feed` (on a thread) when stdin
/// is piped; returns what it wrote to a piped stdout (empty otherwise).
fn copy(stdin: Stdio, stdout: Stdio, feed: Option<Vec<u8>>) -> Vec<u8> {
    // Uneven writes, so the copy sees partial pipes and EAGAIN.
    copy_with_slow_reader(stdin, stdout, feed, 100_003, Duration::ZERO)
}

/// Like [`copy`], feeding in writes of `chunk` bytes and starting to read a piped
/// stdout only after `delay`.
fn copy_with_slow_reader(
    stdin: Stdio,
    stdout: Stdio,
    feed: Option<Vec<u8>>,
    chunk: usize,
    delay: Duration,
) -> Vec<u8> {
    let mut child = Command::new(example("copy"))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start copy");
    let feeder = child.stdin.take().map(|mut w| {
        let bytes = feed.expect("piped stdin needs data");
        std::thread::spawn(move || {
            for chunk in bytes.chunks(chunk) {
                w.write_all(chunk).expect("feed copy");
            }
        })
    });
    // A hung copy is killed, so the test fails instead of hanging.
    let (done, watchdog_rx) = std::sync::mpsc::channel::<()>();
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        if watchdog_rx.recv_timeout(DEADLINE).is_err() {
            // SAFETY: kill(2) on the pid of our child, which we have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut out = Vec::new();
    std::thread::sleep(delay);
    if let Some(mut r) = child.stdout.take() {
        r.read_to_end(&mut out).expect("read copy output");
    }
    if let Some(f) = feeder {
        f.join().expect("feeder thread");
    }
    let status = child.wait().expect("wait for copy");
    let _ = done.send(());
    watchdog.join().expect("watchdog thread");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    assert!(status.success(), "copy failed: {status:?}: {err}");
    assert!(err.is_empty(), "copy wrote to stderr: {err}");
    out
}

#[test]
fn copy_file_to_pipe_keeps_every_byte() {
    let s = Scratch::new();
    let want = data(5 * MIB + 123, 1);
    let input = File::open(s.file("in", &want)).unwrap();
    assert_same(&copy(input.into(), Stdio::piped(), None), &want);
}

#[test]
fn copy_pipe_to_pipe_keeps_every_byte() {
    let want = data(4 * MIB + 7, 2);
    assert_same(
        &copy(Stdio::piped(), Stdio::piped(), Some(want.clone())),
        &want,
    );
}

#[test]
fn copy_pipe_to_pipe_finishes_when_input_ends_while_output_is_full() {
    // Page-sized writes of exactly what copy's 1 MiB output pipe holds: copy moves it
    // all, so the input is empty at end of file while the output is full, and the next
    // splice says EAGAIN. copy must wait for the output, not for an input that will
    // never become readable again.
    let want = data(MIB, 9);
    let got = copy_with_slow_reader(
        Stdio::piped(),
        Stdio::piped(),
        Some(want.clone()),
        4096,
        Duration::from_millis(500),
    );
    assert_same(&got, &want);
}

#[test]
fn copy_file_to_file_keeps_every_byte() {
    let s = Scratch::new();
    let want = data(3 * MIB + 1, 3);
    let input = File::open(s.file("in", &want)).unwrap();
    let out_path = s.0.join("out");
    copy(input.into(), File::create(&out_path).unwrap().into(), None);
    assert_same(&std::fs::read(out_path).unwrap(), &want);
}

#[test]
fn copy_pipe_to_file_keeps_every_byte() {
    let s = Scratch::new();
    let want = data(4 * MIB + 99, 4);
    let out_path = s.0.join("out");
    let out = File::create(&out_path).unwrap();
    copy(Stdio::piped(), out.into(), Some(want.clone()));
    assert_same(&std::fs::read(out_path).unwrap(), &want);
}

#[test]
fn copy_appends_to_an_append_mode_file() {
    // splice(2) refuses O_APPEND outputs: the read/write path takes over.
    let s = Scratch::new();
    let want = data(2 * MIB + 5, 5);
    let input = File::open(s.file("in", &want)).unwrap();
    let out_path = s.file("out", b"prefix:");
    let out = File::options().append(true).open(&out_path).unwrap();
    copy(input.into(), out.into(), None);
    let got = std::fs::read(out_path).unwrap();
    assert_eq!(&got[..7], b"prefix:");
    assert_same(&got[7..], &want);
}

#[test]
fn copy_from_a_socket_uses_read_write_and_keeps_every_byte() {
    let want = data(3 * MIB + 11, 6);
    let (ours, theirs) = UnixStream::pair().unwrap();
    let feed = want.clone();
    let feeder = std::thread::spawn(move || {
        let mut ours = ours;
        for chunk in feed.chunks(65_537) {
            ours.write_all(chunk).unwrap();
        }
    });
    let got = copy(OwnedFd::from(theirs).into(), Stdio::piped(), None);
    feeder.join().unwrap();
    assert_same(&got, &want);
}

#[test]
fn copy_exits_quietly_when_the_reader_goes_away() {
    let s = Scratch::new();
    let input = File::open(s.file("in", &data(8 * MIB, 7))).unwrap();
    let mut child = Command::new(example("copy"))
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The read end is closed now: copy's next splice fails with EPIPE.
    let out = wait_with_deadline(child, DEADLINE);
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ----- echo ------------------------------------------------------------------------

/// Waits for `child` to exit, killing it (and failing) after `limit`.
fn wait_with_deadline(child: Child, limit: Duration) -> Output {
    testnet::process::wait_within(child, limit).unwrap_or_else(|out| {
        panic!(
            "process did not exit within {limit:?}; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Sends `msg`, half-closes, and returns everything echoed until the server closes.
fn echo_roundtrip(addr: SocketAddr, msg: Vec<u8>) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).expect("connect to echo");
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = c.try_clone().unwrap();
    // Write on a thread while reading here, or a large message would deadlock on the
    // socket buffers.
    let writer = std::thread::spawn(move || {
        w.write_all(&msg).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("read echo");
    writer.join().unwrap();
    got
}

#[test]
fn echo_answers_clients_then_stops_after_max_conns() {
    let mut child = Command::new(example("echo"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--max-conns",
            "2",
            "--duration",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echo");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .unwrap();

    let big = data(3 * MIB, 8);
    let small = b"hello, echo".to_vec();
    let (a, b) = (big.clone(), small.clone());
    let t1 = std::thread::spawn(move || echo_roundtrip(addr, a));
    let t2 = std::thread::spawn(move || echo_roundtrip(addr, b));
    assert_same(&t1.join().unwrap(), &big);
    assert_eq!(t2.join().unwrap(), small);

    let out = wait_with_deadline(child, DEADLINE);
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("accepted 2 connections"), "{rest}");
    assert!(
        rest.contains(&format!("closed after {} bytes", big.len())),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("closed after {} bytes", small.len())),
        "{rest}"
    );
}

#[test]
fn echo_stops_after_its_duration() {
    let child = Command::new(example("echo"))
        .args(["--port", "0", "--duration", "0.2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start echo");
    let out = wait_with_deadline(child, DEADLINE);
    assert!(out.status.success(), "{:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("listening on 127.0.0.1:"), "{text}");
    assert!(text.contains("elapsed; stopped"), "{text}");
}

#[test]
fn echo_rejects_bad_arguments() {
    let child = Command::new(example("echo"))
        .args(["--port", "not-a-port"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_deadline(child, DEADLINE);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: echo"));
}
