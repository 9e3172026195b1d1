//! End-to-end tests of the `webserver` binary on both networks: kernel TCP (a free
//! loopback port) and the user-space stack (`--net user`, on a TUN device in a private
//! namespace, with the clients inside it). Each test starts the server with a
//! temporary root, drives it with `curl` and raw sockets, and stops it by pid; every
//! status, header and body assertion runs on both networks.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use server::{exchange, Server};
use webserver::NetBackend;

mod server;

/// Runs each named test function on both networks, as `<name>::kernel` and
/// `<name>::user` (the latter needs root, and fails without it under `CI=true`).
macro_rules! on_both_networks {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn kernel() {
                    super::$name(super::NetBackend::Kernel);
                }

                #[test]
                fn user() {
                    if testnet::privileged(concat!(stringify!($name), " on the user-space stack")) {
                        super::$name(super::NetBackend::User);
                    }
                }
            }
        )*
    };
}

on_both_networks!(
    get_head_and_headers,
    directories_redirects_and_autoindex,
    nothing_escapes_the_root,
    keep_alive_close_http10_and_pipelining,
    methods_conditionals_and_ranges,
    protections,
    idle_keep_alive_connections_close,
    connection_cap_pauses_accepting,
    graceful_shutdown_finishes_in_flight_requests,
    every_file_arrives_intact,
    an_aborted_file_stream_counts_what_was_sent,
);

/// A fresh root for a test on `on`: `a.txt`, `big.bin` (200 KiB), `sub/index.html`, `empty/`,
/// `space name.txt`, and a symlink `escape` to a file outside the root.
fn root(on: NetBackend, name: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!(
        "webserver-e2e-{}-{name}-{on:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("a.txt"), b"hello world\n").unwrap();
    std::fs::write(root.join("big.bin"), big()).unwrap();
    std::fs::write(root.join("sub/index.html"), b"<p>sub</p>").unwrap();
    std::fs::write(root.join("space name.txt"), b"spaced").unwrap();
    std::fs::write(base.join("secret.txt"), b"TOP SECRET").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape")).unwrap();
    root
}

fn big() -> Vec<u8> {
    (0..200 * 1024u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn status(response: &[u8]) -> u16 {
    std::str::from_utf8(&response[9..12])
        .unwrap()
        .parse()
        .unwrap()
}

fn get_head_and_headers(on: NetBackend) {
    let root = root(on, "get");
    let s = Server::start(on, Some(&root), &[]);
    let (head, body) = s.curl(&[&s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"hello world\n");
    assert_eq!(header(&head, "Content-Length"), Some("12"));
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(header(&head, "ETag").is_some() && header(&head, "Last-Modified").is_some());
    assert!(header(&head, "Date").is_some());
    let r = s.raw(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8(r).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert_eq!(header(&text, "Content-Length"), Some("12"));
    assert!(text.ends_with("\r\n\r\n"), "HEAD sent a body: {text}");
    // A file larger than the inline limit goes through sendfile.
    let (_, body) = s.curl(&[&s.url("/big.bin")]);
    assert_eq!(body, big());
    let (head, body) = s.curl(&[&s.url("/space%20name.txt")]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, b"spaced");
    let (head, _) = s.curl(&[&s.url("/missing")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

fn directories_redirects_and_autoindex(on: NetBackend) {
    let root = root(on, "dirs");
    let s = Server::start(on, Some(&root), &[]);
    let (head, body) = s.curl(&[&s.url("/sub/")]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, b"<p>sub</p>");
    let (head, _) = s.curl(&[&s.url("/sub")]);
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert_eq!(header(&head, "Location"), Some("/sub/"));
    let (head, _) = s.curl(&[&s.url("/empty/")]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    drop(s);
    let s = Server::start(on, Some(&root), &["--autoindex"]);
    let (head, body) = s.curl(&[&s.url("/")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("a.txt") && body.contains("sub/"), "{body}");
}

fn nothing_escapes_the_root(on: NetBackend) {
    let root = root(on, "escape");
    let s = Server::start(on, Some(&root), &[]);
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/escape",
    ] {
        let r = s.raw(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let text = String::from_utf8_lossy(&r);
        assert!(!text.contains("TOP SECRET"), "{target}: {text}");
        assert!(matches!(status(&r), 400 | 403 | 404), "{target}: {text}");
    }
    let r = s.raw(b"GET /escape HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 403);
}

fn keep_alive_close_http10_and_pipelining(on: NetBackend) {
    let root = root(on, "keepalive");
    let s = Server::start(on, Some(&root), &[]);
    let mut c = s.connect();
    let req = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut pipelined = Vec::new();
    for _ in 0..3 {
        pipelined.extend_from_slice(req);
    }
    pipelined.extend_from_slice(b"GET /sub/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(&pipelined).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "{text}");
    assert_eq!(text.matches("hello world\n").count(), 3);
    assert!(text.ends_with("<p>sub</p>"));
    assert!(text.contains("Connection: close"));
    // HTTP/1.0 without keep-alive: closed after one response.
    let r = s.raw(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&r);
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
        "{text}"
    );
    assert!(text.ends_with("hello world\n"));
}

fn methods_conditionals_and_ranges(on: NetBackend) {
    let root = root(on, "cond");
    let s = Server::start(on, Some(&root), &[]);
    let r =
        s.raw(b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 405);
    assert!(String::from_utf8_lossy(&r).contains("Allow: GET, HEAD"));
    let r = s.raw(b"BREW /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 501);

    let (head, _) = s.curl(&[&s.url("/a.txt")]);
    let etag = header(&head, "ETag").unwrap().to_string();
    let modified = header(&head, "Last-Modified").unwrap().to_string();
    let (head, body) = s.curl(&["-H", &format!("If-None-Match: {etag}"), &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert!(body.is_empty());
    let (head, _) = s.curl(&[
        "-H",
        &format!("If-Modified-Since: {modified}"),
        &s.url("/a.txt"),
    ]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");

    let (head, body) = s.curl(&["-r", "0-4", &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes 0-4/12"));
    assert_eq!(body, b"hello");
    let (head, body) = s.curl(&["-r", "-3", &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 206"));
    assert_eq!(body, b"ld\n");
    let (head, body) = s.curl(&["-r", "100000-", &s.url("/big.bin")]);
    assert!(head.starts_with("HTTP/1.1 206"));
    assert_eq!(body, &big()[100000..]);
    let (head, _) = s.curl(&["-r", "50-", &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes */12"));
}

fn protections(on: NetBackend) {
    let root = root(on, "limits");
    let s = Server::start(on, Some(&root), &["--header-timeout", "300ms"]);
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(status(&s.raw(long_header.as_bytes())), 431);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
    assert_eq!(status(&s.raw(long_uri.as_bytes())), 414);
    assert_eq!(status(&s.raw(b"GARBAGE\r\n\r\n")), 400);
    let r = s.raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n");
    assert_eq!(status(&r), 413);
    // Slowloris: a head that never completes gets 408, then the connection closes.
    let mut c = s.connect();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert_eq!(status(&out), 408);
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn idle_keep_alive_connections_close(on: NetBackend) {
    let root = root(on, "idle");
    let s = Server::start(on, Some(&root), &["--keepalive-timeout", "300ms"]);
    let mut c = s.connect();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert_eq!(status(&out), 200);
    assert!(out.ends_with(b"hello world\n"));
}

fn connection_cap_pauses_accepting(on: NetBackend) {
    let root = root(on, "cap");
    let s = Server::start(on, Some(&root), &["--max-connections", "1"]);
    let mut first = s.connect();
    first
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(first.read(&mut buf).unwrap() > 0);
    // The second connection waits in the kernel's queue while the first is open.
    let mut second = s.connect();
    second
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(second.read(&mut buf).is_err(), "answered above the cap");
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    second.read_to_end(&mut out).unwrap();
    assert_eq!(status(&out), 200);
}

fn graceful_shutdown_finishes_in_flight_requests(on: NetBackend) {
    let root = root(on, "shutdown");
    let s = Server::start(on, Some(&root), &[]);
    // An idle keep-alive connection, and one in the middle of a request head.
    let mut idle = s.connect();
    idle.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).unwrap() > 0);
    let mut busy = s.connect();
    busy.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    busy.write_all(b"\r\n").unwrap();
    let mut out = Vec::new();
    busy.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Connection: close") && text.ends_with("hello world\n"));
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let (status, stdout) = s.wait();
    assert!(status.success(), "{status:?}");
    assert!(stdout.contains("Received SIGTERM"), "{stdout}");
    assert!(stdout.contains("requests: 2 (1xx 0, 2xx 2"), "{stdout}");
}

/// A second signal during a shutdown that waits for a slow client ends the server at
/// once, with the shell's status for the signal.
#[test]
fn a_second_signal_ends_the_shutdown_at_once() {
    let on = NetBackend::Kernel;
    let root = root(on, "second-signal");
    std::fs::write(root.join("huge.bin"), vec![7u8; 64 << 20]).unwrap();
    let s = Server::start(on, Some(&root), &["--shutdown-timeout", "60s"]);
    // A client that asks for 64 MiB and reads none of it: the response stays in flight.
    let mut slow = s.connect();
    slow.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    // SIGUSR1 asks for counters, not for an end.
    s.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(300));
    let mut s = s;
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "SIGUSR1 ended the shutdown"
    );
    let started = Instant::now();
    s.signal(libc::SIGINT);
    let (status, stdout) = s.wait();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("Received SIGINT again: exiting now"),
        "{stdout}"
    );
    drop(slow);
}

/// With several cores, the report says how many connections each core's listener got
/// (the kernel spreads them over `SO_REUSEPORT` listeners by hash), and they add up.
#[test]
fn the_report_counts_connections_per_core() {
    let on = NetBackend::Kernel;
    let root = root(on, "per-core");
    let s = Server::start(on, Some(&root), &["--cores", "2"]);
    for _ in 0..8 {
        let out = s.raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(status(&out), 200);
    }
    s.signal(libc::SIGTERM);
    let (status, stdout) = s.wait();
    assert!(status.success(), "{status:?}");
    assert!(stdout.contains("connections: 8 "), "{stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("connections per core: "))
        .unwrap_or_else(|| panic!("no per-core line: {stdout}"));
    let counts: Vec<u64> = line.split(", ").map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.len(), 2, "{line}");
    assert_eq!(counts.iter().sum::<u64>(), 8, "{line}");
}

/// A second server on a port the first serves on all its cores does not join it (the
/// kernel would spread the connections over both): it says the address is in use and
/// fails, and the first serves on.
#[test]
fn a_port_in_use_is_not_shared_with_another_server() {
    let on = NetBackend::Kernel;
    let root = root(on, "port-in-use");
    let s = Server::start(on, Some(&root), &["--cores", "2"]);
    let addr = s.addr.to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_webserver"))
        .args(["--cores", "2", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = testnet::process::wait_within(child, Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the second server serves on {addr} too"));
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains(&format!("listening on {addr}")), "{said}");
    assert!(said.contains("in use"), "{said}");
    let out = s.raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&out), 200);
    s.signal(libc::SIGTERM);
    assert!(s.wait().0.success());

    // One server's own listeners on one port share it: 0.0.0.0:P and 127.0.0.1:P.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (any, lo) = (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}"));
    let s = Server::start(on, Some(&root), &["--listen", &any, "--listen", &lo]);
    assert_eq!(s.addrs.len(), 3, "{:?}", s.addrs);
    let lo: SocketAddr = lo.parse().unwrap();
    let out = exchange(
        lo,
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&out), 200);
    s.signal(libc::SIGTERM);
    assert!(s.wait().0.success());
}

/// `--pin-cores on` puts each core's thread on a CPU of its own, in order, wrapping
/// on a machine with fewer CPUs; `off` leaves them free. Read from the kernel's view
/// of the running process.
#[test]
fn cores_are_pinned_to_cpus_of_their_own() {
    let on = NetBackend::Kernel;
    let root = root(on, "pinned");
    let cpus = iolib::sched::allowed_cpus().unwrap();
    for pin in ["on", "off"] {
        let s = Server::start(on, Some(&root), &["--cores", "2", "--pin-cores", pin]);
        let out = s.raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(status(&out), 200);
        let pid = s.child.id();
        let allowed = |task: &str| cpus_allowed(&format!("/proc/{pid}/task/{task}/status"));
        let core1 = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|t| t.unwrap().file_name().into_string().unwrap())
            .find(|t| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm"));
                comm.unwrap().trim() == "threadlib-core-"
            })
            .expect("core 1's thread");
        let (core0, core1) = (allowed(&pid.to_string()), allowed(&core1));
        if pin == "on" {
            assert_eq!(core0, cpus[0].to_string());
            assert_eq!(core1, cpus[1 % cpus.len()].to_string());
        } else {
            assert_eq!(core0, cpus_allowed("/proc/self/status"));
            assert_eq!(core1, core0);
        }
        s.signal(libc::SIGTERM);
        assert!(s.wait().0.success());
    }
}

/// The `Cpus_allowed_list` of a `/proc/.../status` file.
fn cpus_allowed(status_file: &str) -> String {
    let status = std::fs::read_to_string(status_file).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"));
    line.unwrap().trim().to_string()
}

#[test]
fn default_root_access_log_and_cli_errors() {
    let log = std::env::temp_dir().join(format!("webserver-e2e-{}-access.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = Server::start(
        NetBackend::Kernel,
        None,
        &["--access-log", log.to_str().unwrap()],
    );
    let (head, body) = s.curl(&[&s.url("/files/1k.txt")]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body.len(), 1024);
    s.signal(libc::SIGINT);
    let (status, _) = s.wait();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("\"GET /files/1k.txt HTTP/1.1\" 200 1024"),
        "{text}"
    );

    let exe = env!("CARGO_BIN_EXE_webserver");
    let help = Command::new(exe).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for text in [
        "--max-connections",
        "Exit status:",
        "TUN device [default: tun0,",
        "IPv4 address [default: 10.77.0.2]",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
    let bad = Command::new(exe).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Usage"));
    let user = Command::new(exe)
        .args(["--net", "user", "--netns", "no-such-namespace"])
        .output()
        .unwrap();
    assert_eq!(user.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&user.stderr).contains("make setup"));
    // Without root the user-space network cannot open its device, and says so.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let unprivileged = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", exe])
            .args(["--net", "user"])
            .output()
            .expect("setpriv (util-linux) is installed");
        assert_eq!(unprivileged.status.code(), Some(2), "{unprivileged:?}");
        assert!(String::from_utf8_lossy(&unprivileged.stderr).contains("needs root"));
    }
    // Bad values: exit 2, and a message naming what is wrong.
    for (bad, says) in [
        (
            &["--root", "/nonexistent/dir", "--listen", "127.0.0.1:0"][..],
            &["--root /nonexistent/dir", "Usage"][..],
        ),
        (
            &["--root", "/etc/hostname", "--listen", "127.0.0.1:0"],
            &["not a directory"],
        ),
        (&["--listen", "nonsense"], &["--listen"]),
        (&["--listen", "127.0.0.1"], &["--listen"]),
        (&["--cores", "0"], &["--cores must be at least 1"]),
        (&["--cores", "20000"], &["--cores 20000: at most 1024"]),
        (&["--cores", "-1"], &["invalid value '-1' for '--cores"]),
        (&["--send-timeout", "-1s"], &["invalid duration \"-1s\""]),
        (&["--tun", "tun5"], &["--tun applies only with --net user"]),
        (
            &["--max-uri-bytes", "0"],
            &["--max-uri-bytes must be at least 1"],
        ),
    ] {
        let out = Command::new(exe).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        for text in says {
            assert!(said.contains(text), "{bad:?}: {said}");
        }
    }
}

/// A client that goes away in the middle of a large file: the totals and the access log
/// count the body bytes the client's side took, not the whole file, and agree with each
/// other to the byte.
fn an_aborted_file_stream_counts_what_was_sent(on: NetBackend) {
    let root = root(on, "aborted");
    let size = 64u64 << 20;
    let file = std::fs::File::create(root.join("huge.bin")).unwrap();
    file.set_len(size).unwrap();
    let log = root.parent().unwrap().join("access.log");
    let s = Server::start(on, Some(&root), &["--access-log", log.to_str().unwrap()]);
    let mut c = s.connect();
    c.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = vec![0u8; 256 * 1024];
    let mut have = 0;
    while have < got.len() {
        let n = c.read(&mut got[have..]).unwrap();
        assert!(n > 0, "the server closed after {have} bytes");
        have += n;
    }
    let head_len = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    // Closing with unread data resets the connection: the server's next write fails.
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    s.signal(libc::SIGTERM);
    let (status, stdout) = s.wait();
    assert!(status.success(), "{status:?}");
    let out: u64 = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("bytes: ")?
                .split(", ")
                .nth(1)?
                .strip_suffix(" out")
        })
        .unwrap_or_else(|| panic!("no byte totals in {stdout}"))
        .parse()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let logged: u64 = text
        .lines()
        .find(|l| l.contains("\"GET /huge.bin HTTP/1.1\" 200 "))
        .unwrap_or_else(|| panic!("no log line for the file in {text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        logged >= (have - head_len) as u64 && logged < size,
        "logged {logged} of {size} body bytes; the client read {have}"
    );
    assert_eq!(out, head_len as u64 + logged, "totals {out}, log {logged}");
}

/// Every file of the bundled site, and a generated 100 MiB file, arrive byte for byte.
fn every_file_arrives_intact(on: NetBackend) {
    let root = root(on, "bytes");
    let huge: Vec<u8> = (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("huge.bin"), &huge).unwrap();
    let www = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www");
    for entry in walk(&www) {
        let rel = entry.strip_prefix(&www).unwrap();
        let dst = root.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dst).unwrap();
    }
    let s = Server::start(on, Some(&root), &[]);
    for entry in walk(&www) {
        let rel = entry.strip_prefix(&www).unwrap().to_str().unwrap();
        let (head, body) = s.curl(&[&s.url(&format!("/{rel}"))]);
        assert!(head.starts_with("HTTP/1.1 200"), "{rel}: {head}");
        assert!(body == std::fs::read(&entry).unwrap(), "{rel} differs");
    }
    let (head, body) = s.curl(&[&s.url("/huge.bin")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), huge.len());
    assert!(body == huge, "the 100 MiB file differs");
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The text every precompressed-variant test serves, compressible and over the inline
/// limit (so the variants' bodies go through the streaming path too, uncompressed).
fn page() -> Vec<u8> {
    let mut text = String::from("<!DOCTYPE html>\n<title>variants</title>\n");
    for i in 0..2000 {
        text.push_str(&format!("<p>line {i}: the quick brown fox</p>\n"));
    }
    text.into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::{write::GzEncoder, Compression};
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        w.write_all(data).unwrap();
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A root with `page.html` and its three variants, `only-gz.css` with a gzip variant,
/// and `plain.txt` without any.
fn variants_root(name: &str) -> PathBuf {
    let root = root(NetBackend::Kernel, name);
    let page = page();
    std::fs::write(root.join("page.html"), &page).unwrap();
    std::fs::write(root.join("page.html.gz"), gzip(&page)).unwrap();
    std::fs::write(root.join("page.html.br"), brotli(&page)).unwrap();
    std::fs::write(root.join("page.html.zst"), zstd(&page)).unwrap();
    std::fs::write(root.join("only-gz.css"), b"body { color: red }\n").unwrap();
    std::fs::write(root.join("only-gz.css.gz"), gzip(b"body { color: red }\n")).unwrap();
    std::fs::write(root.join("plain.txt"), b"no variants\n").unwrap();
    root
}

/// One request on a fresh connection (closed by the server after the answer); returns
/// the head and the body.
fn request(s: &Server, method: &str, path: &str, headers: &[&str]) -> (String, Vec<u8>) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let r = s.raw(req.as_bytes());
    let split = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8(r[..split + 2].to_vec()).unwrap(),
        r[split + 4..].to_vec(),
    )
}

/// How long the server trusts what it found of a path (`REVALIDATE` in the binary's
/// `server/dir_files.rs`).
const REVALIDATE: Duration = Duration::from_secs(1);

/// Asks for `path` (with `headers`) until `seen` holds for the response, for at most
/// three revalidation periods; returns how long it took.
fn until_seen(
    s: &Server,
    path: &str,
    headers: &[&str],
    seen: impl Fn(&str, &[u8]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let (head, body) = request(s, "GET", path, headers);
        if seen(&head, &body) {
            return start.elapsed();
        }
        assert!(start.elapsed() < 3 * REVALIDATE, "{path}: still {head}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server's file cache remembers open files and missing paths for one
/// revalidation period: a file that appears, a variant that appears and a file that
/// goes away are all seen within it.
#[test]
fn files_that_appear_change_or_vanish_are_seen_within_a_revalidation() {
    let root = variants_root("revalidation");
    let s = Server::start(NetBackend::Kernel, Some(&root), &[]);
    let ok = |head: &str, _: &[u8]| head.starts_with("HTTP/1.1 200");
    let missing = |head: &str, _: &[u8]| head.starts_with("HTTP/1.1 404");
    let within = 2 * REVALIDATE;

    assert!(missing(&request(&s, "GET", "/late.txt", &[]).0, &[]));
    std::fs::write(root.join("late.txt"), b"here now\n").unwrap();
    let took = until_seen(&s, "/late.txt", &[], |h, b| ok(h, b) && b == b"here now\n");
    assert!(took < within, "a new file took {took:?}");

    let gzip_only = |h: &str, _: &[u8]| header(h, "Content-Encoding") == Some("gzip");
    let (head, _) = request(&s, "GET", "/plain.txt", &["Accept-Encoding: gzip"]);
    assert!(ok(&head, &[]) && !gzip_only(&head, &[]), "{head}");
    std::fs::write(root.join("plain.txt.gz"), gzip(b"no variants\n")).unwrap();
    let took = until_seen(&s, "/plain.txt", &["Accept-Encoding: gzip"], gzip_only);
    assert!(took < within, "a new variant took {took:?}");
    let (head, _) = request(&s, "GET", "/plain.txt", &[]);
    assert_eq!(header(&head, "Vary"), Some("Accept-Encoding"), "{head}");

    std::fs::remove_file(root.join("late.txt")).unwrap();
    let took = until_seen(&s, "/late.txt", &[], missing);
    assert!(took < within, "a removed file took {took:?}");
}

#[test]
fn precompressed_variants() {
    let root = variants_root("variants");
    let page = page();
    let (gz, br, zst) = (gzip(&page), brotli(&page), zstd(&page));
    let s = Server::start(NetBackend::Kernel, Some(&root), &[]);

    // curl decodes each coding back to the original.
    for (accept, coding) in [
        (None, "zstd"),
        (Some("gzip"), "gzip"),
        (Some("br"), "br"),
        (Some("zstd"), "zstd"),
    ] {
        let ae = accept.map(|a| format!("Accept-Encoding: {a}"));
        let mut args = vec!["--compressed"];
        if let Some(h) = &ae {
            args.extend(["-H", h]);
        }
        let url = s.url("/page.html");
        args.push(&url);
        let (head, body) = s.curl(&args);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(header(&head, "Content-Encoding"), Some(coding), "{head}");
        assert!(body == page, "{coding} did not decode to the original");
    }

    // Raw requests: which representation each Accept-Encoding gets.
    let (head, body) = request(&s, "GET", "/page.html", &[]);
    let identity_tag = header(&head, "ETag").unwrap().to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "Content-Encoding"), None, "{head}");
    assert_eq!(header(&head, "Vary"), Some("Accept-Encoding"), "{head}");
    assert!(body == page);
    for (accept, expect, bytes) in [
        ("gzip", Some("gzip"), &gz),
        ("GZip;Q=1, br;q=0.5", Some("gzip"), &gz),
        ("gzip, deflate, br, zstd", Some("zstd"), &zst),
        ("gzip;q=0.8, br;q=0.9, zstd;q=0.1", Some("br"), &br),
        ("br;q=0, zstd;q=0, gzip;q=0", None, &page),
        ("*", Some("zstd"), &zst),
        ("*;q=0, br", Some("br"), &br),
        ("zstd;q=0, *", Some("br"), &br),
        ("identity;q=0, gzip;q=0.1", Some("gzip"), &gz),
        ("gzip;q=0.5, identity", None, &page),
        ("deflate", None, &page),
        ("", None, &page),
    ] {
        let ae = format!("Accept-Encoding: {accept}");
        let (head, body) = request(&s, "GET", "/page.html", &[&ae]);
        assert!(head.starts_with("HTTP/1.1 200"), "{accept}: {head}");
        assert_eq!(
            header(&head, "Content-Encoding"),
            expect,
            "{accept}: {head}"
        );
        assert_eq!(header(&head, "Vary"), Some("Accept-Encoding"), "{accept}");
        assert_eq!(
            header(&head, "Content-Type"),
            Some("text/html; charset=utf-8"),
            "{accept}"
        );
        assert_eq!(
            header(&head, "Content-Length"),
            Some(bytes.len().to_string().as_str()),
            "{accept}"
        );
        assert!(body == *bytes, "{accept}: wrong body");
        let tag = header(&head, "ETag").unwrap();
        match expect {
            None => assert_eq!(tag, identity_tag, "{accept}"),
            Some(coding) => {
                let suffix = match coding {
                    "gzip" => "-gz\"",
                    "br" => "-br\"",
                    _ => "-zst\"",
                };
                assert!(tag.ends_with(suffix), "{accept}: {tag}");
            }
        }
    }

    // A file with only a gzip variant varies even when the identity is served; a
    // file without variants does not vary.
    let (head, body) = request(&s, "GET", "/only-gz.css", &["Accept-Encoding: br, zstd"]);
    assert_eq!(header(&head, "Content-Encoding"), None, "{head}");
    assert_eq!(header(&head, "Vary"), Some("Accept-Encoding"), "{head}");
    assert_eq!(body, b"body { color: red }\n");
    let (head, body) = request(&s, "GET", "/only-gz.css", &["Accept-Encoding: gzip"]);
    assert_eq!(header(&head, "Content-Encoding"), Some("gzip"), "{head}");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(body, gzip(b"body { color: red }\n"));
    let (head, _) = request(&s, "GET", "/plain.txt", &["Accept-Encoding: gzip"]);
    assert_eq!(header(&head, "Content-Encoding"), None, "{head}");
    assert_eq!(header(&head, "Vary"), None, "{head}");

    // The variant itself, asked for by name, is an ordinary file.
    let (head, body) = request(&s, "GET", "/page.html.gz", &["Accept-Encoding: gzip"]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "Content-Type"), Some("application/gzip"));
    assert_eq!(header(&head, "Content-Encoding"), None, "{head}");
    assert!(body == gz);

    // HEAD announces the variant's length.
    let (head, body) = request(&s, "HEAD", "/page.html", &["Accept-Encoding: gzip"]);
    assert_eq!(
        header(&head, "Content-Length"),
        Some(gz.len().to_string().as_str())
    );
    assert!(body.is_empty());

    // Ranges apply to the compressed bytes.
    let ae = "Accept-Encoding: gzip";
    let (head, body) = request(&s, "GET", "/page.html", &[ae, "Range: bytes=10-29"]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(header(&head, "Content-Encoding"), Some("gzip"));
    assert_eq!(
        header(&head, "Content-Range"),
        Some(format!("bytes 10-29/{}", gz.len()).as_str())
    );
    assert_eq!(header(&head, "Content-Length"), Some("20"));
    assert_eq!(body, &gz[10..30]);
    let (head, body) = request(&s, "GET", "/page.html", &[ae, "Range: bytes=-5"]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(body, &gz[gz.len() - 5..]);
    let beyond = format!("Range: bytes={}-", gz.len());
    let (head, _) = request(&s, "GET", "/page.html", &[ae, &beyond]);
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert_eq!(
        header(&head, "Content-Range"),
        Some(format!("bytes */{}", gz.len()).as_str())
    );

    // Validators are the variant's: If-None-Match, If-Modified-Since and If-Range.
    let (head, _) = request(&s, "GET", "/page.html", &[ae]);
    let gz_tag = header(&head, "ETag").unwrap().to_string();
    let gz_modified = header(&head, "Last-Modified").unwrap().to_string();
    assert_ne!(gz_tag, identity_tag);
    let inm = format!("If-None-Match: {gz_tag}");
    let (head, body) = request(&s, "GET", "/page.html", &[ae, &inm]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert_eq!(header(&head, "ETag"), Some(gz_tag.as_str()));
    assert_eq!(header(&head, "Vary"), Some("Accept-Encoding"));
    assert!(body.is_empty());
    // The gzip tag does not match the identity representation.
    let (head, body) = request(&s, "GET", "/page.html", &[&inm]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == page);
    let ims = format!("If-Modified-Since: {gz_modified}");
    let (head, _) = request(&s, "GET", "/page.html", &[ae, &ims]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    let if_range = format!("If-Range: {gz_tag}");
    let (head, body) = request(
        &s,
        "GET",
        "/page.html",
        &[ae, "Range: bytes=0-9", &if_range],
    );
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(body, &gz[..10]);
    let stale = format!("If-Range: {identity_tag}");
    let (head, body) = request(&s, "GET", "/page.html", &[ae, "Range: bytes=0-9", &stale]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == gz);
    drop(s);

    // Off: the variants are never served in place of the file.
    let s = Server::start(NetBackend::Kernel, Some(&root), &["--no-precompressed"]);
    let (head, body) = request(
        &s,
        "GET",
        "/page.html",
        &["Accept-Encoding: gzip, br, zstd"],
    );
    assert_eq!(header(&head, "Content-Encoding"), None, "{head}");
    assert_eq!(header(&head, "Vary"), None, "{head}");
    assert!(body == page);
}

#[test]
fn cache_control_on_successful_file_responses() {
    let root = root(NetBackend::Kernel, "cache-control");
    let cc = "public, max-age=3600";
    let s = Server::start(NetBackend::Kernel, Some(&root), &["--cache-control", cc]);
    let (head, body) = request(&s, "GET", "/a.txt", &[]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "Cache-Control"), Some(cc), "{head}");
    assert_eq!(body, b"hello world\n");
    let (head, _) = request(&s, "GET", "/a.txt", &["Range: bytes=0-4"]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(header(&head, "Cache-Control"), Some(cc), "{head}");
    let etag = header(&head, "ETag").unwrap().to_string();
    let (head, _) = request(&s, "GET", "/a.txt", &[&format!("If-None-Match: {etag}")]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert_eq!(header(&head, "Cache-Control"), Some(cc), "{head}");
    let (head, _) = request(&s, "HEAD", "/sub/", &[]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "Cache-Control"), Some(cc), "{head}");
    // Not on errors, redirects or anything but a file.
    for (path, extra, code) in [
        ("/missing", "", "404"),
        ("/sub", "", "301"),
        ("/empty/", "", "403"),
        ("/a.txt", "Range: bytes=100-", "416"),
        ("/a.txt", "If-Match: \"other\"", "412"),
    ] {
        let extra: Vec<&str> = [extra].into_iter().filter(|e| !e.is_empty()).collect();
        let (head, _) = request(&s, "GET", path, &extra);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {code}")),
            "{path}: {head}"
        );
        assert_eq!(header(&head, "Cache-Control"), None, "{path}: {head}");
    }
    drop(s);
    // Default: none.
    let s = Server::start(NetBackend::Kernel, Some(&root), &[]);
    let (head, _) = request(&s, "GET", "/a.txt", &[]);
    assert_eq!(header(&head, "Cache-Control"), None, "{head}");
    // A value that cannot be a header is a usage error.
    let bad = Command::new(env!("CARGO_BIN_EXE_webserver"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cache-control",
            "max-age=1\r\nX: y",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--cache-control"));
}

#[test]
fn media_types_from_a_file_and_flags() {
    let root = root(NetBackend::Kernel, "mime");
    std::fs::write(root.join("notes.md"), b"# notes\n").unwrap();
    std::fs::write(root.join("x.thing"), b"thing").unwrap();
    let types = root.parent().unwrap().join("types");
    std::fs::write(
        &types,
        "# type             extensions\n\
         text/markdown      md markdown\n\
         \n\
         application/x-thing\tthing   # a comment\n",
    )
    .unwrap();
    let types_arg = types.to_str().unwrap();
    let s = Server::start(
        NetBackend::Kernel,
        Some(&root),
        &["--mime-types", types_arg, "--mime", "txt=text/x-custom"],
    );
    for (path, expect) in [
        ("/notes.md", "text/markdown; charset=utf-8"),
        ("/x.thing", "application/x-thing"),
        ("/a.txt", "text/x-custom; charset=utf-8"),
        ("/sub/", "text/html; charset=utf-8"),
        ("/big.bin", "application/octet-stream"),
    ] {
        let (head, _) = request(&s, "GET", path, &[]);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert_eq!(header(&head, "Content-Type"), Some(expect), "{path}");
    }
    drop(s);
    // A --mime flag wins over the file; without either, the built-in types.
    let s = Server::start(
        NetBackend::Kernel,
        Some(&root),
        &["--mime-types", types_arg, "--mime", ".MD=text/x-markdown"],
    );
    let (head, _) = request(&s, "GET", "/notes.md", &[]);
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/x-markdown; charset=utf-8")
    );
    drop(s);
    let s = Server::start(NetBackend::Kernel, Some(&root), &[]);
    let (head, _) = request(&s, "GET", "/a.txt", &[]);
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    drop(s);

    // Usage errors (exit 2) that say what is wrong and where.
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_webserver"))
            .args(["--listen", "127.0.0.1:0", "--root"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bad = root.parent().unwrap().join("bad-types");
    std::fs::write(&bad, "text/plain txt\n# fine\nmarkdown md\n").unwrap();
    let err = run(&["--mime-types", bad.to_str().unwrap()]);
    assert!(
        err.contains(bad.to_str().unwrap()) && err.contains("line 3") && err.contains("markdown"),
        "{err}"
    );
    let missing = root.parent().unwrap().join("no-such-types");
    let err = run(&["--mime-types", missing.to_str().unwrap()]);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    let err = run(&["--mime", "md"]);
    assert!(err.contains("--mime") && err.contains("EXT=TYPE"), "{err}");
    let err = run(&["--mime", "md=text/plain\r\nX-Injected: 1"]);
    assert!(err.contains("--mime"), "{err}");
}

/// Whether this machine has the IPv6 loopback address (`::1` on `lo`).
fn has_ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000001"))
    })
}

/// A GET of `/a.txt` on a fresh connection to `addr`, as raw bytes.
fn get_a_txt(addr: SocketAddr) -> Vec<u8> {
    exchange(
        addr,
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
}

#[test]
fn several_listeners_ipv4_and_ipv6() {
    let root = root(NetBackend::Kernel, "listeners");
    let second = if has_ipv6_loopback() {
        "[::1]:0"
    } else {
        eprintln!("no IPv6 loopback (::1 not in /proc/net/if_inet6): two IPv4 listeners instead");
        "127.0.0.1:0"
    };
    // `Server::start` listens on 127.0.0.1:0 first. Every core listens on both.
    let s = Server::start(
        NetBackend::Kernel,
        Some(&root),
        &["--listen", second, "--cores", "2"],
    );
    assert_eq!(s.addrs.len(), 2, "{:?}", s.addrs);
    assert!(s.addrs[0].is_ipv4());
    assert_eq!(s.addrs[1].is_ipv6(), second.starts_with('['));
    assert_ne!(s.addrs[0], s.addrs[1]);
    for &addr in &s.addrs {
        for _ in 0..8 {
            let out = get_a_txt(addr);
            assert_eq!(status(&out), 200, "{addr}");
            assert!(out.ends_with(b"hello world\n"), "{addr}");
        }
    }
    drop(s);

    // One connection at a time over both listeners.
    let s = Server::start(
        NetBackend::Kernel,
        Some(&root),
        &["--listen", second, "--max-connections", "1"],
    );
    // With nothing on the first listener, the second is served: a listener does not
    // hold the only place while it waits.
    for _ in 0..3 {
        assert_eq!(status(&get_a_txt(s.addrs[1])), 200);
        assert_eq!(status(&get_a_txt(s.addrs[0])), 200);
    }
    // While a connection on the first is open, one on the second waits; it is served
    // as soon as the first closes.
    let mut held = TcpStream::connect(s.addrs[0]).unwrap();
    held.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(held.read(&mut buf).unwrap() > 0);
    let mut waiting = TcpStream::connect(s.addrs[1]).unwrap();
    waiting
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(waiting.read(&mut buf).is_err(), "answered above the cap");
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    waiting.read_to_end(&mut out).unwrap();
    assert_eq!(status(&out), 200);
}

#[test]
fn the_user_network_refuses_several_listeners_or_ipv6() {
    for args in [
        &["--listen", "[::1]:8080"][..],
        &["--listen", "10.77.0.2:8080", "--listen", "10.77.0.2:8081"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_webserver"))
            .args(["--net", "user"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("one IPv4 listener"), "{err}");
    }
}

/// CPU time (user + system) the process `pid` has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Open descriptors of the process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Sends one keep-alive GET on `c` and reads its whole response (head and
/// Content-Length body).
fn keep_alive_get(c: &mut TcpStream, path: &str) -> (String, Vec<u8>) {
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 2].to_vec()).unwrap();
            let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
            if buf.len() >= end + 4 + len {
                return (head, buf[end + 4..end + 4 + len].to_vec());
            }
        }
    }
}

/// On kernel TCP a streamed file's head leaves in the same segment as the first bytes
/// of its body, not as a small segment of its own (counted by the client's kernel).
#[test]
fn a_streamed_files_head_leaves_with_its_body() {
    let root = root(NetBackend::Kernel, "one-segment");
    // Above the inline limit (so sent with sendfile), below one loopback segment.
    let file = vec![b'm'; 20 * 1024];
    std::fs::write(root.join("mid.bin"), &file).unwrap();
    let s = Server::start(NetBackend::Kernel, Some(&root), &[]);
    let mut c = s.connect();
    let data_segments_in = |c: &TcpStream| {
        iolib::socket::tcp_info(c.as_raw_fd())
            .unwrap()
            .tcpi_data_segs_in
    };
    for _ in 0..3 {
        let before = data_segments_in(&c);
        let (head, body) = keep_alive_get(&mut c, "/mid.bin");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, file);
        assert_eq!(data_segments_in(&c) - before, 1);
    }
}

/// Out of file descriptors: a request whose file cannot be opened gets 503 with
/// `Retry-After` on a connection that stays usable, accepts back off instead of
/// spinning, the condition is logged once per second (not per request), and the
/// server serves normally once descriptors are free again.
#[test]
fn out_of_file_descriptors_is_503_and_passes() {
    use std::os::unix::process::CommandExt as _;
    use std::sync::{Arc, Mutex};

    const LIMIT: libc::rlim_t = 64;
    let root = root(NetBackend::Kernel, "emfile");
    for i in 0..10 {
        std::fs::write(root.join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webserver"));
    cmd.args(["--cores", "1", "--listen", "127.0.0.1:0", "--root"])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Soft and hard: the server raises its soft limit to the hard one.
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let collected = stderr_text.clone();
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let _child = Kill(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit_once("http://")
        .and_then(|(_, a)| a.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let connect = || {
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    };

    // A keep-alive connection opened while descriptors are free; a.txt gets cached.
    let mut client = connect();
    let (head, body) = keep_alive_get(&mut client, "/a.txt");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello world\n");

    // Idle connections until the server holds every descriptor it may: the rest
    // wait in the listener's queue.
    let mut idle = Vec::new();
    for _ in 0..LIMIT + 16 {
        idle.push(connect());
    }
    let full = Instant::now();
    while open_fds(pid) < LIMIT as usize {
        assert!(full.elapsed() < Duration::from_secs(10), "never ran out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let exhausted = Instant::now();
    let cpu_before = cpu_time(pid);

    // Files that need a descriptor: 503 with Retry-After, the connection kept.
    let mut unavailable = 0;
    for round in 0..3 {
        for i in 0..10 {
            let (head, _) = keep_alive_get(&mut client, &format!("/f{i}.txt"));
            assert!(
                head.starts_with("HTTP/1.1 503 Service Unavailable"),
                "round {round}, f{i}: {head}"
            );
            assert_eq!(header(&head, "Retry-After"), Some("1"), "{head}");
            assert_eq!(header(&head, "Connection"), None, "{head}");
            unavailable += 1;
        }
    }
    // The cached file is still served, also once its entry is due for a check that
    // needs a descriptor.
    let (head, body) = keep_alive_get(&mut client, "/a.txt");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello world\n");
    std::thread::sleep(Duration::from_millis(1200));
    let (head, body) = keep_alive_get(&mut client, "/a.txt");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello world\n");

    // Accepts failing meanwhile back off: the server is close to idle.
    let cpu = cpu_time(pid) - cpu_before;
    let exhausted_for = exhausted.elapsed();
    assert!(
        cpu < exhausted_for / 3,
        "{cpu:?} of CPU in {exhausted_for:?} while out of descriptors"
    );

    // Descriptors come back: the queued connections are accepted (and closed, as
    // their clients are gone), and everything is served again.
    drop(idle);
    let freed = Instant::now();
    loop {
        let (head, body) = keep_alive_get(&mut client, "/f1.txt");
        if head.starts_with("HTTP/1.1 200") {
            assert_eq!(body, b"file 1\n");
            break;
        }
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(freed.elapsed() < Duration::from_secs(10), "never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fresh = connect();
    for i in 0..10 {
        let (head, body) = keep_alive_get(&mut fresh, &format!("/f{i}.txt"));
        assert!(head.starts_with("HTTP/1.1 200"), "f{i}: {head}");
        assert_eq!(body, format!("file {i}\n").as_bytes());
    }
    let logged_for = exhausted.elapsed();

    // Stopped, the server reports what came after its last report.
    // SAFETY: kill has no memory preconditions; `pid` is our child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("Totals:"), "{rest}");
    stderr_reader.join().unwrap();

    // Logged at most once per second, with the count of what was not logged, and
    // every occurrence counted by some line: each 503 was one.
    let text = stderr_text.lock().unwrap().clone();
    let reports: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("out of file descriptors"))
        .collect();
    assert!(!reports.is_empty(), "nothing logged: {text}");
    assert!(
        reports.len() as u64 <= logged_for.as_secs() + 2 && reports.len() < unavailable,
        "{} reports in {logged_for:?} for {unavailable} 503s:\n{text}",
        reports.len()
    );
    assert!(
        reports
            .iter()
            .any(|l| l.contains("more occurrences since the last report")),
        "{text}"
    );
    let counted: u64 = reports
        .iter()
        .map(|l| match l.split_once("; ") {
            // A report: this occurrence, and the ones before it that it carries.
            Some((_, more)) => 1 + more.split(' ').next().unwrap().parse::<u64>().unwrap(),
            None if l.contains("(") => 1,
            // The last line: only what came after the last report.
            None => l
                .rsplit(": ")
                .next()
                .and_then(|n| n.split(' ').next()?.parse().ok())
                .unwrap(),
        })
        .sum();
    assert!(
        counted >= unavailable as u64,
        "{counted} occurrences reported for {unavailable} 503s:\n{text}"
    );
}
