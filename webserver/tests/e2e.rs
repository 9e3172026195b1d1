//! End-to-end tests of the `webserver` binary: started on a free loopback port with a
//! temporary root, driven by `curl` and raw sockets, stopped by pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn start(root: Option<&Path>, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_webserver"));
        cmd.args(["--listen", "127.0.0.1:0", "--cores", "1"]);
        if let Some(root) = root {
            cmd.arg("--root").arg(root);
        }
        cmd.args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start webserver");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_suffix('/')
            .and_then(|l| l.rsplit_once("http://"))
            .map(|(_, a)| a.parse().unwrap())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server {
            child,
            addr,
            stdout,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `request` on a new connection and reads until the server closes.
    fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit; returns its status and the rest of stdout.
    fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status, rest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh root: `a.txt`, `big.bin` (200 KiB), `sub/index.html`, `empty/`,
/// `space name.txt`, and a symlink `escape` to a file outside the root.
fn root(name: &str) -> PathBuf {
    let base = std::env::temp_dir().join(format!("webserver-e2e-{}-{name}", std::process::id()));
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

/// Runs curl; returns (status line + headers, body).
fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-D", "-", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    (head, out.stdout[split + 4..].to_vec())
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

#[test]
fn get_head_and_headers() {
    let root = root("get");
    let s = Server::start(Some(&root), &[]);
    let (head, body) = curl(&[&s.url("/a.txt")]);
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
    let (_, body) = curl(&[&s.url("/big.bin")]);
    assert_eq!(body, big());
    let (head, body) = curl(&[&s.url("/space%20name.txt")]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, b"spaced");
    let (head, _) = curl(&[&s.url("/missing")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn directories_redirects_and_autoindex() {
    let root = root("dirs");
    let s = Server::start(Some(&root), &[]);
    let (head, body) = curl(&[&s.url("/sub/")]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, b"<p>sub</p>");
    let (head, _) = curl(&[&s.url("/sub")]);
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert_eq!(header(&head, "Location"), Some("/sub/"));
    let (head, _) = curl(&[&s.url("/empty/")]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    drop(s);
    let s = Server::start(Some(&root), &["--autoindex"]);
    let (head, body) = curl(&[&s.url("/")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("a.txt") && body.contains("sub/"), "{body}");
}

#[test]
fn nothing_escapes_the_root() {
    let root = root("escape");
    let s = Server::start(Some(&root), &[]);
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

#[test]
fn keep_alive_close_http10_and_pipelining() {
    let root = root("keepalive");
    let s = Server::start(Some(&root), &[]);
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

#[test]
fn methods_conditionals_and_ranges() {
    let root = root("cond");
    let s = Server::start(Some(&root), &[]);
    let r =
        s.raw(b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 405);
    assert!(String::from_utf8_lossy(&r).contains("Allow: GET, HEAD"));
    let r = s.raw(b"BREW /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status(&r), 501);

    let (head, _) = curl(&[&s.url("/a.txt")]);
    let etag = header(&head, "ETag").unwrap().to_string();
    let modified = header(&head, "Last-Modified").unwrap().to_string();
    let (head, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert!(body.is_empty());
    let (head, _) = curl(&[
        "-H",
        &format!("If-Modified-Since: {modified}"),
        &s.url("/a.txt"),
    ]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");

    let (head, body) = curl(&["-r", "0-4", &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes 0-4/12"));
    assert_eq!(body, b"hello");
    let (head, body) = curl(&["-r", "-3", &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 206"));
    assert_eq!(body, b"ld\n");
    let (head, body) = curl(&["-r", "100000-", &s.url("/big.bin")]);
    assert!(head.starts_with("HTTP/1.1 206"));
    assert_eq!(body, &big()[100000..]);
    let (head, _) = curl(&["-r", "50-", &s.url("/a.txt")]);
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes */12"));
}

#[test]
fn protections() {
    let root = root("limits");
    let s = Server::start(Some(&root), &["--header-timeout", "300ms"]);
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

#[test]
fn idle_keep_alive_connections_close() {
    let root = root("idle");
    let s = Server::start(Some(&root), &["--keepalive-timeout", "300ms"]);
    let mut c = s.connect();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    assert_eq!(status(&out), 200);
    assert!(out.ends_with(b"hello world\n"));
}

#[test]
fn connection_cap_pauses_accepting() {
    let root = root("cap");
    let s = Server::start(Some(&root), &["--max-connections", "1"]);
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

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let root = root("shutdown");
    let s = Server::start(Some(&root), &[]);
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

#[test]
fn default_root_access_log_and_cli_errors() {
    let log = std::env::temp_dir().join(format!("webserver-e2e-{}-access.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let s = Server::start(None, &["--access-log", log.to_str().unwrap()]);
    let (head, body) = curl(&[&s.url("/files/1k.txt")]);
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
    assert!(String::from_utf8_lossy(&help.stdout).contains("--max-connections"));
    let bad = Command::new(exe).arg("--bogus").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Usage"));
    let user = Command::new(exe)
        .args(["--net", "user", "--netns", "no-such-namespace"])
        .output()
        .unwrap();
    assert_eq!(user.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&user.stderr).contains("make setup"));
    let missing = Command::new(exe)
        .args(["--root", "/nonexistent/dir", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("document root"));
}
