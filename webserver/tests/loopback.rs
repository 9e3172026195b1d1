//! `serve_connection` over real loopback sockets and the bundled `www/` site, with a
//! blocking thread-per-connection adapter (a stand-in for threadlib, test-only): the
//! library speaks correct HTTP to a real TCP peer.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

#[path = "support/blocking.rs"]
mod blocking;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use blocking::{serve_site, www};
use webserver::Settings;

/// Serves `connections` connections, one thread each, then stops.
fn server(settings: Settings, connections: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut threads = Vec::new();
        for _ in 0..connections {
            let (stream, peer) = listener.accept().unwrap();
            threads.push(std::thread::spawn(move || {
                serve_site(stream, Some(peer), settings);
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
    });
    (addr, handle)
}

/// Sends `request`, half-closes, returns everything the server sent.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

fn split_head(response: &[u8]) -> (String, &[u8]) {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8(response[..end].to_vec()).unwrap(),
        &response[end..],
    )
}

#[test]
fn serves_the_sample_site_over_tcp() {
    let (addr, server) = server(Settings::default(), 4);
    let file = std::fs::read(www().join("files/1k.txt")).unwrap();

    let response = exchange(addr, b"GET /files/1k.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = split_head(&response);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 1024\r\n"));
    assert!(head.contains("Content-Type: text/plain; charset=utf-8\r\n"));
    assert_eq!(body, file);

    // Pipelined: a range, a 1 MiB file (streamed), a traversal attempt.
    let big = std::fs::read(www().join("files/1m.txt")).unwrap();
    let response = exchange(
        addr,
        b"GET /files/1k.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n\
GET /files/1m.txt HTTP/1.1\r\nHost: x\r\n\r\n\
GET /../Cargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (head, rest) = split_head(&response);
    assert!(
        head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Range: bytes 1014-1023/1024\r\n"));
    assert_eq!(&rest[..10], &file[1014..]);
    let (head, rest) = split_head(&rest[10..]);
    assert!(head.contains("Content-Length: 1048576\r\n"), "{head}");
    assert_eq!(&rest[..big.len()], &big[..]);
    let (head, _) = split_head(&rest[big.len()..]);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");

    // The index page and the directory without one.
    let response = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
    let (head, body) = split_head(&response);
    assert!(head.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert_eq!(body, std::fs::read(www().join("index.html")).unwrap());
    let response = exchange(addr, b"GET /files HTTP/1.0\r\n\r\n");
    let (head, _) = split_head(&response);
    assert!(head.starts_with("HTTP/1.1 301 "), "{head}");
    assert!(head.contains("Location: /files/\r\n"));

    server.join().unwrap();
}

#[test]
fn slowloris_is_cut_off_over_tcp() {
    let settings = Settings {
        header_timeout: Duration::from_millis(200),
        ..Settings::default()
    };
    let (addr, server) = server(settings, 1);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(out.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"));
    server.join().unwrap();
}
