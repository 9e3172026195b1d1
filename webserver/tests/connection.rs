//! `serve_connection` over in-memory transports and files: every status, header,
//! keep-alive rule, pipelining, limits, timeouts and ranges.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::*;
use webserver::response::SERVER;
use webserver::{AccessLog, ConnectionEnd, ContentOptions, Limits, LogEntry, Settings};

const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

fn one(request: &str) -> Resp {
    let (resps, _) = exchange(request);
    assert_eq!(resps.len(), 1, "{resps:?}");
    resps.into_iter().next().unwrap()
}

#[test]
fn get_index_with_every_header() {
    let r = one(&get("/", ""));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>home</h1>\n");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("Content-Length"), Some("14"));
    assert_eq!(r.header("Server"), Some(SERVER));
    assert_eq!(r.header("Date"), Some(DATE));
    assert_eq!(r.header("Last-Modified"), Some(LM));
    assert_eq!(r.header("ETag"), Some("\"2ebc98a1.0-e\""));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert!(!r.has("Connection"));
}

#[test]
fn content_types_by_extension() {
    assert_eq!(
        one(&get("/style.css", "")).header("Content-Type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        one(&get("/ten.txt", "")).header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        one(&get("/big.bin", "")).header("Content-Type"),
        Some("application/octet-stream")
    );
}

#[test]
fn percent_decoded_paths() {
    let r = one(&get("/hello%20world.txt", ""));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"spaced"[..]));
    let r = one(&get("/docs/../ten.txt?x=1", ""));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"0123456789"[..]));
}

#[test]
fn head_sends_headers_only() {
    let (resps, _) = exchange_with(
        "HEAD /ten.txt HTTP/1.1\r\nHost: t\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n",
        Settings::default(),
        &[true, true],
    );
    assert_eq!(resps[0].status, 200);
    assert_eq!(resps[0].header("Content-Length"), Some("10"));
    assert!(resps[0].body.is_empty());
    assert_eq!(resps[1].status, 404);
    assert!(resps[1].body.is_empty());
}

#[test]
fn not_found_forbidden_and_special_files() {
    let r = one(&get("/missing.txt", ""));
    assert_eq!(r.status, 404);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8(r.body).unwrap().contains("404 Not Found"));
    assert_eq!(one(&get("/secret.txt", "")).status, 403);
    assert_eq!(one(&get("/fifo", "")).status, 403);
    // A file named as a directory.
    assert_eq!(one(&get("/ten.txt/", "")).status, 404);
}

#[test]
fn directories() {
    let r = one(&get("/docs", ""));
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/docs/"));
    // The query goes along, as nginx and Apache keep it.
    let r = one(&get("/docs?q=1&r=%20", ""));
    assert_eq!(r.header("Location"), Some("/docs/?q=1&r=%20"));
    let r = one(&get("/docs/", ""));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"docs index"[..]));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    // No index.html and no autoindex: 403.
    assert_eq!(one(&get("/pub/", "")).status, 403);
    // index.html that is a directory: 403.
    assert_eq!(one(&get("/weird/", "")).status, 403);
    // `//host`-looking paths never redirect off-site.
    let r = one(&get("//docs", ""));
    assert_eq!(r.header("Location"), Some("/docs/"));
}

#[test]
fn autoindex_lists_directories() {
    let settings = Settings {
        autoindex: true,
        ..Settings::default()
    };
    let (resps, _) = exchange_with(&get("/pub/", ""), settings, &[]);
    let r = &resps[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert!(html.contains("Index of /pub/"));
    assert!(html.contains("<a href=\"./a%26b.txt\">a&amp;b.txt</a>"));
    assert!(html.contains("<a href=\"./sub/\">sub/</a>"));
    // A directory with an index.html still serves it.
    let (resps, _) = exchange_with(&get("/docs/", ""), settings, &[]);
    assert_eq!(resps[0].body, b"docs index");
}

#[test]
fn methods() {
    let (resps, end) = exchange("POST /ten.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcDELETE / HTTP/1.1\r\nHost: t\r\n\r\nBREW /pot HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(resps.len(), 3);
    assert_eq!(resps[0].status, 405);
    assert_eq!(resps[0].header("Allow"), Some("GET, HEAD"));
    assert_eq!(resps[1].status, 405);
    assert_eq!(resps[2].status, 501);
    assert!(!resps[2].has("Allow"));
    assert!(matches!(end, ConnectionEnd::PeerClosed));
}

#[test]
fn traversal_and_bad_paths_are_400_and_keep_the_connection() {
    for path in [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/docs/../../x",
        "/a%2fb",
        "/a%00",
        "/%zz",
    ] {
        let (resps, end) = exchange(&format!("{}{}", get(path, ""), get("/ten.txt", "")));
        assert_eq!(resps[0].status, 400, "{path}");
        assert_eq!(resps[1].status, 200, "{path}: connection kept");
        assert!(matches!(end, ConnectionEnd::PeerClosed));
    }
}

#[test]
fn keep_alive_and_close() {
    // HTTP/1.1 keeps the connection; Connection: close ends it after the response.
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let mut io = MockTransport::sending(
        format!(
            "{}{}{}",
            get("/ten.txt", ""),
            get("/ten.txt", "Connection: close\r\n"),
            get("/ten.txt", "")
        )
        .as_bytes(),
    );
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::Closed), "{end:?}");
    let resps = parse_responses(&io.written, &[]);
    assert_eq!(resps.len(), 2, "nothing answered after close");
    assert!(!resps[0].has("Connection"));
    assert_eq!(resps[1].header("Connection"), Some("close"));

    // HTTP/1.0 closes by default...
    let (resps, end) = exchange("GET /ten.txt HTTP/1.0\r\n\r\nGET /ten.txt HTTP/1.0\r\n\r\n");
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].header("Connection"), Some("close"));
    assert!(matches!(end, ConnectionEnd::Closed));
    // ...and keeps alive only when asked.
    let (resps, end) = exchange(
        "GET /ten.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /ten.txt HTTP/1.0\r\n\r\n",
    );
    assert_eq!(resps.len(), 2);
    assert_eq!(resps[0].header("Connection"), Some("keep-alive"));
    assert_eq!(resps[1].header("Connection"), Some("close"));
    assert!(matches!(end, ConnectionEnd::Closed));
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_write() {
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let request = format!(
        "{}{}{}{}",
        get("/ten.txt", ""),
        "HEAD /style.css HTTP/1.1\r\nHost: t\r\n\r\n",
        get("/missing", ""),
        get("/index.html", "")
    );
    let mut io = MockTransport::sending(request.as_bytes());
    serve(&mut io, &files, &ctx);
    assert_eq!(io.writes, 1);
    let resps = parse_responses(&io.written, &[false, true]);
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404, 200]);
    assert_eq!(resps[0].body, b"0123456789");
    assert_eq!(
        resps[1].header("Content-Type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(resps[3].body, b"<h1>home</h1>\n");
}

#[test]
fn requests_arriving_byte_by_byte() {
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let request = format!(
        "{}{}",
        get("/ten.txt", "X-Padding: aaaaaaaaaaaaaaaa\r\n"),
        get("/style.css", "")
    );
    let mut io = MockTransport::sending(request.as_bytes());
    io.chunk = 1;
    serve(&mut io, &files, &ctx);
    let resps = parse_responses(&io.written, &[]);
    assert_eq!(resps.len(), 2);
    assert_eq!(resps[0].body, b"0123456789");
    assert_eq!(resps[1].body, b"body{}\n");
}

#[test]
fn a_head_filling_the_initial_buffer_grows_it() {
    let padding = "a".repeat(6000);
    let r = one(&get("/ten.txt", &format!("X-Pad: {padding}\r\n")));
    assert_eq!(r.status, 200);
}

#[test]
fn protocol_errors_answer_and_close() {
    let big_header = format!("X-Big: {}\r\n", "a".repeat(9000));
    let long_uri = format!("/{}", "a".repeat(5000));
    let cases: Vec<(String, u16)> = vec![
        (get("/", &big_header), 431),
        (get(&long_uri, ""), 414),
        ("GET / HTTP/1.1\r\nHost t\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        (get("/", "Content-Length: 100000\r\n"), 413),
        (get("/", "Transfer-Encoding: chunked\r\n"), 411),
        (get("/", "Transfer-Encoding: gzip\r\n"), 501),
        ("GET / HTTP/2.0\r\nHost: t\r\n\r\n".into(), 505),
        ("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03".into(), 400),
    ];
    for (request, status) in cases {
        let (resps, end) = exchange(&format!("{request}{}", get("/ten.txt", "")));
        assert_eq!(resps.len(), 1, "{status}: nothing after the error");
        assert_eq!(resps[0].status, status);
        assert_eq!(resps[0].header("Connection"), Some("close"));
        assert!(matches!(end, ConnectionEnd::Closed), "{status}: {end:?}");
    }
}

#[test]
fn an_endless_header_is_cut_at_the_limit() {
    let files = MockFiles::site();
    let limits = Limits {
        max_header_bytes: 1024,
        max_uri_bytes: 512,
        ..Limits::default()
    };
    let ctx = context(Settings {
        limits,
        ..Settings::default()
    });
    let mut events = vec![Event::Data(b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec())];
    events.extend(std::iter::repeat_n(Event::Data(vec![b'a'; 100]), 1000));
    let mut io = MockTransport::new(events);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::Closed));
    assert_eq!(parse_responses(&io.written, &[])[0].status, 431);
}

#[test]
fn request_bodies_are_discarded() {
    // Body in the same buffer, then the next request.
    let (resps, _) = exchange(&format!(
        "{}hello{}",
        get("/ten.txt", "Content-Length: 5\r\n"),
        get("/style.css", "")
    ));
    assert_eq!(resps.len(), 2);
    assert_eq!(resps[1].body, b"body{}\n");
    // Body arriving later, in pieces, larger than the read buffer.
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let body = vec![b'z'; 50_000];
    let mut io = MockTransport::new(vec![
        Event::Data(get("/ten.txt", "Content-Length: 50000\r\n").into_bytes()),
        Event::Wait(Duration::from_secs(1)),
        Event::Data(body[..20_000].to_vec()),
        Event::Data(body[20_000..].to_vec()),
        Event::Data(get("/style.css", "").into_bytes()),
    ]);
    io.chunk = 3000;
    serve(&mut io, &files, &ctx);
    let resps = parse_responses(&io.written, &[]);
    assert_eq!(resps.len(), 2);
    assert_eq!(resps[0].body, b"0123456789");
    assert_eq!(resps[1].body, b"body{}\n");
    // The client vanishes mid-body: the answer was still sent.
    let (resps, end) = exchange(&format!("{}abc", get("/ten.txt", "Content-Length: 10\r\n")));
    assert_eq!(resps.len(), 1);
    assert!(matches!(end, ConnectionEnd::PeerClosed));
}

#[test]
fn conditional_requests() {
    let etag = "\"2ebc98a1.0-a\"";
    let r = one(&get("/ten.txt", &format!("If-None-Match: {etag}\r\n")));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("ETag"), Some(etag));
    assert_eq!(r.header("Last-Modified"), Some(LM));
    assert!(!r.has("Content-Length"));
    assert_eq!(
        one(&get(
            "/ten.txt",
            "If-None-Match: \"x\", W/\"2ebc98a1.0-a\"\r\n"
        ))
        .status,
        304
    );
    assert_eq!(one(&get("/ten.txt", "If-None-Match: *\r\n")).status, 304);
    assert_eq!(
        one(&get("/ten.txt", "If-None-Match: \"x\"\r\n")).status,
        200
    );
    assert_eq!(
        one(&get("/ten.txt", &format!("If-Modified-Since: {LM}\r\n"))).status,
        304
    );
    assert_eq!(
        one(&get(
            "/ten.txt",
            "If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
        ))
        .status,
        200
    );
    assert_eq!(
        one(&get("/ten.txt", "If-Modified-Since: garbage\r\n")).status,
        200
    );
    // If-None-Match takes precedence over If-Modified-Since.
    assert_eq!(
        one(&get(
            "/ten.txt",
            &format!("If-None-Match: \"x\"\r\nIf-Modified-Since: {LM}\r\n")
        ))
        .status,
        200
    );
    // HEAD gets 304 too.
    let (resps, _) = exchange_with(
        &format!("HEAD /ten.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"),
        Settings::default(),
        &[true],
    );
    assert_eq!(resps[0].status, 304);
    // If-Match / If-Unmodified-Since.
    assert_eq!(one(&get("/ten.txt", "If-Match: \"x\"\r\n")).status, 412);
    assert_eq!(
        one(&get("/ten.txt", &format!("If-Match: {etag}\r\n"))).status,
        200
    );
    assert_eq!(
        one(&get(
            "/ten.txt",
            "If-Unmodified-Since: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
        ))
        .status,
        412
    );
}

#[test]
fn single_ranges() {
    let r = one(&get("/ten.txt", "Range: bytes=2-5\r\n"));
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"2345");
    assert_eq!(r.header("Content-Range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("Content-Length"), Some("4"));
    let r = one(&get("/ten.txt", "Range: bytes=7-\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (206, &b"789"[..]));
    let r = one(&get("/ten.txt", "Range: bytes=-3\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (206, &b"789"[..]));
    assert_eq!(r.header("Content-Range"), Some("bytes 7-9/10"));
    let r = one(&get("/ten.txt", "Range: bytes=-100\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (206, &b"0123456789"[..]));
    let r = one(&get("/ten.txt", "Range: bytes=5-1000\r\n"));
    assert_eq!(r.header("Content-Range"), Some("bytes 5-9/10"));
    let r = one(&get("/ten.txt", "Range: bytes=9-9\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (206, &b"9"[..]));
}

#[test]
fn unsatisfiable_invalid_and_multiple_ranges() {
    for range in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
        let (resps, end) = exchange(&format!(
            "{}{}",
            get("/ten.txt", &format!("Range: {range}\r\n")),
            get("/ten.txt", "")
        ));
        assert_eq!(resps[0].status, 416, "{range}");
        assert_eq!(resps[0].header("Content-Range"), Some("bytes */10"));
        assert_eq!(resps[1].status, 200, "connection kept");
        assert!(matches!(end, ConnectionEnd::PeerClosed));
    }
    assert_eq!(one(&get("/empty.txt", "Range: bytes=0-\r\n")).status, 416);
    for range in ["bytes=0-1,4-5", "bytes=5-2", "lines=1-2", "bytes=x-"] {
        let r = one(&get("/ten.txt", &format!("Range: {range}\r\n")));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"0123456789"[..]),
            "{range}"
        );
        assert!(!r.has("Content-Range"));
    }
}

#[test]
fn if_range_and_head_with_range() {
    let etag = "\"2ebc98a1.0-a\"";
    assert_eq!(
        one(&get(
            "/ten.txt",
            &format!("Range: bytes=0-1\r\nIf-Range: {etag}\r\n")
        ))
        .status,
        206
    );
    assert_eq!(
        one(&get(
            "/ten.txt",
            &format!("Range: bytes=0-1\r\nIf-Range: {LM}\r\n")
        ))
        .status,
        206
    );
    assert_eq!(
        one(&get(
            "/ten.txt",
            "Range: bytes=0-1\r\nIf-Range: \"old\"\r\n"
        ))
        .status,
        200
    );
    assert_eq!(
        one(&get(
            "/ten.txt",
            &format!("Range: bytes=0-1\r\nIf-Range: W/{etag}\r\n")
        ))
        .status,
        200
    );
    assert_eq!(
        one(&get(
            "/ten.txt",
            "Range: bytes=0-1\r\nIf-Range: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
        ))
        .status,
        200
    );
    let (resps, _) = exchange_with(
        "HEAD /ten.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\n\r\n",
        Settings::default(),
        &[true],
    );
    assert_eq!(resps[0].status, 200);
    assert_eq!(resps[0].header("Content-Length"), Some("10"));
}

#[test]
fn large_files_are_streamed() {
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let request = format!(
        "{}{}{}",
        get("/big.bin", ""),
        get("/big.bin", "Range: bytes=1000-80999\r\n"),
        get("/ten.txt", "")
    );
    let mut io = MockTransport::sending(request.as_bytes());
    serve(&mut io, &files, &ctx);
    let resps = parse_responses(&io.written, &[]);
    let big = pattern(100_000);
    assert_eq!(resps[0].body, big);
    assert_eq!(resps[1].status, 206);
    assert_eq!(resps[1].body, &big[1000..81_000]);
    assert_eq!(resps[2].body, b"0123456789");
    assert_eq!(files.open_handles.get(), 0);
    let totals = ctx.counters.snapshot();
    assert_eq!(totals.bytes_out, io.written.len() as u64);
    assert_eq!(totals.requests, 3);
}

#[test]
fn a_streamed_body_has_its_head_written_to_leave_with_it() {
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let request = format!(
        "{}{}{}{}",
        get("/big.bin", ""),
        get("/ten.txt", ""),
        get("/big.bin", "Range: bytes=1000-80999\r\n"),
        "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let mut io = MockTransport::sending(request.as_bytes());
    serve(&mut io, &files, &ctx);
    let resps = parse_responses(&io.written, &[false, false, false, true]);
    assert_eq!(resps.len(), 4);
    let after_head = |from: usize| {
        let at = io.written[from..].windows(4).position(|w| w == b"\r\n\r\n");
        from + at.unwrap() + 4
    };
    // The first head alone; then the small response still pending with the second
    // head. Bodies, and the head of a HEAD answer, go out as plain writes.
    let first = 0..after_head(0);
    let second_start = first.end + 100_000;
    let second = second_start..after_head(after_head(second_start) + 10);
    assert_eq!(io.written_more, [first, second]);
    assert_eq!(resps[2].body.len(), 80_000);
}

#[test]
fn a_file_that_shrank_is_a_500_or_a_cut_connection() {
    // Small: detected before the head is sent, answered 500.
    let (resps, end) = exchange(&format!(
        "{}{}",
        get("/shrunk.txt", ""),
        get("/ten.txt", "")
    ));
    assert_eq!(resps.len(), 1);
    assert_eq!(resps[0].status, 500);
    assert_eq!(resps[0].header("Connection"), Some("close"));
    assert!(matches!(end, ConnectionEnd::Closed));
    // Large: the head is already out; the connection is cut.
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let mut io = MockTransport::sending(get("/shrunk-big.bin", "").as_bytes());
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::Failed(_)), "{end:?}");
    assert_eq!(files.open_handles.get(), 0);
}

#[test]
fn slowloris_gets_408() {
    let settings = Settings::default();
    // Part of a head, then silence.
    let files = MockFiles::site();
    let ctx = context(settings);
    let mut io = MockTransport::new(vec![
        Event::Data(b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec()),
        Event::Wait(Duration::from_secs(3600)),
    ]);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::HeaderTimeout), "{end:?}");
    let resps = parse_responses(&io.written, &[]);
    assert_eq!(resps[0].status, 408);
    assert_eq!(resps[0].header("Connection"), Some("close"));
    assert_eq!(io.elapsed(), settings.header_timeout);
    assert_eq!(ctx.counters.snapshot().header_timeouts, 1);

    // A byte every 3 s keeps each read short but the whole head late.
    let ctx = context(settings);
    let mut events = Vec::new();
    for b in b"GET / HTTP/1.1\r\nHost: t\r\n" {
        events.push(Event::Wait(Duration::from_secs(3)));
        events.push(Event::Data(vec![*b]));
    }
    let mut io = MockTransport::new(events);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::HeaderTimeout), "{end:?}");
    assert_eq!(io.elapsed(), settings.header_timeout);

    // A connection that never sends anything.
    let ctx = context(settings);
    let mut io = MockTransport::new(vec![Event::Wait(Duration::from_secs(3600))]);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::HeaderTimeout), "{end:?}");
}

#[test]
fn idle_keep_alive_connections_close_silently() {
    let settings = Settings {
        keepalive_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let files = MockFiles::site();
    let ctx = context(settings);
    let mut io = MockTransport::new(vec![
        Event::Data(get("/ten.txt", "").into_bytes()),
        Event::Wait(Duration::from_secs(4)),
        Event::Data(get("/ten.txt", "").into_bytes()),
        Event::Wait(Duration::from_secs(60)),
    ]);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::IdleTimeout), "{end:?}");
    let resps = parse_responses(&io.written, &[]);
    assert_eq!(resps.len(), 2);
    assert_eq!(io.elapsed(), Duration::from_secs(9));
    assert_eq!(ctx.counters.snapshot().idle_timeouts, 1);
}

#[test]
fn shutdown_closes_between_requests() {
    let files = MockFiles::site();
    let ctx = Rc::new(context(Settings::default()));
    let shutdown = {
        let ctx = ctx.clone();
        Rc::new(move || ctx.begin_shutdown()) as Rc<dyn Fn()>
    };
    // A request in flight when shutdown begins is answered, with Connection: close.
    let mut io = MockTransport::new(vec![
        Event::Data(get("/ten.txt", "").into_bytes()),
        Event::Run(shutdown),
        Event::Data(get("/ten.txt", "").into_bytes()),
        Event::Data(get("/ten.txt", "").into_bytes()),
    ]);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::Closed), "{end:?}");
    let resps = parse_responses(&io.written, &[]);
    assert_eq!(resps.len(), 2);
    assert!(!resps[0].has("Connection"));
    assert_eq!(resps[1].header("Connection"), Some("close"));
    // Idle at shutdown: return without waiting.
    let mut io = MockTransport::new(vec![Event::Wait(Duration::from_secs(1))]);
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::Shutdown), "{end:?}");
    assert!(io.written.is_empty());
}

#[test]
fn transport_failures_end_the_connection() {
    let files = MockFiles::site();
    let ctx = context(Settings::default());
    let mut io = MockTransport::new(vec![Event::Fail]);
    assert!(matches!(
        serve(&mut io, &files, &ctx),
        ConnectionEnd::Failed(_)
    ));
    let mut io = MockTransport::sending(get("/ten.txt", "").as_bytes());
    io.fail_writes = true;
    assert!(matches!(
        serve(&mut io, &files, &ctx),
        ConnectionEnd::Failed(_)
    ));
    // Peer closes mid-head.
    let mut io = MockTransport::sending(b"GET / HT");
    assert!(matches!(
        serve(&mut io, &files, &ctx),
        ConnectionEnd::PeerClosed
    ));
    assert!(io.written.is_empty());
    let t = ctx.counters.snapshot();
    assert_eq!((t.connections, t.active), (3, 0));
}

#[derive(Default, Clone)]
struct Recorder(Rc<RefCell<Vec<u8>>>);

impl AccessLog for Recorder {
    fn record(&self, entry: &LogEntry<'_>) {
        entry.write_clf(&mut self.0.borrow_mut());
    }
}

#[test]
fn counters_and_access_log() {
    let files = MockFiles::site();
    let log = Recorder::default();
    let ctx = context(Settings::default()).with_access_log(Box::new(log.clone()));
    let request = format!(
        "{}{}GET / HTTP/9.9\r\n\r\n",
        get("/ten.txt", ""),
        get("/nope", "")
    );
    let mut io = MockTransport::sending(request.as_bytes());
    futures::executor::block_on(webserver::serve_connection(
        &mut io,
        &files,
        &ctx,
        Some("192.0.2.7:4000".parse().unwrap()),
    ));
    let t = ctx.counters.snapshot();
    assert_eq!(t.requests, 3);
    assert_eq!(t.status, [0, 1, 0, 1, 1]);
    assert_eq!(t.bytes_in, request.len() as u64);
    assert_eq!(t.bytes_out, io.written.len() as u64);
    let text = String::from_utf8(log.0.borrow().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        "192.0.2.7 - - [14/Nov/2023:22:13:20 +0000] \"GET /ten.txt HTTP/1.1\" 200 10"
    );
    assert!(lines[1].ends_with("\"GET /nope HTTP/1.1\" 404 ") || lines[1].contains("\" 404 "));
    assert!(lines[2].ends_with("\"- -\" 505 ") || lines[2].contains("\" 505 "));
}

/// A streamed file body is logged once its sending has ended, with the body bytes the
/// connection took: all of them, or none when the connection failed before the body.
#[test]
fn a_streamed_body_is_logged_with_what_was_sent() {
    let logged = |io: &mut MockTransport| {
        let files = MockFiles::site();
        let log = Recorder::default();
        let ctx = context(Settings::default()).with_access_log(Box::new(log.clone()));
        serve(io, &files, &ctx);
        assert_eq!(files.open_handles.get(), 0, "a file left open");
        let text = String::from_utf8(log.0.borrow().clone()).unwrap();
        text.lines()
            .map(|l| l.rsplit_once("\" ").unwrap().1.to_string())
            .collect::<Vec<_>>()
    };
    // Sent whole.
    let mut io = MockTransport::sending(get("/big.bin", "").as_bytes());
    assert_eq!(logged(&mut io), ["200 100000"]);
    // Every write fails: the head never left, nor any of the body.
    let mut io = MockTransport::sending(get("/big.bin", "").as_bytes());
    io.fail_writes = true;
    assert_eq!(logged(&mut io), ["200 0"]);
    // The client goes away in the middle of its request body: the answer's body is
    // never sent.
    let mut io = MockTransport::new(vec![
        Event::Data(get("/big.bin", "Content-Length: 50000\r\n").into_bytes()),
        Event::Data(vec![b'x'; 20_000]),
    ]);
    assert_eq!(logged(&mut io), ["200 0"]);
    let mut io = MockTransport::new(vec![
        Event::Data(get("/big.bin", "Content-Length: 50000\r\n").into_bytes()),
        Event::Fail,
    ]);
    assert_eq!(logged(&mut io), ["200 0"]);
    // The head, sent before the request body is read, cannot be written.
    let mut io = MockTransport::sending(get("/big.bin", "Content-Length: 5\r\n").as_bytes());
    io.fail_writes = true;
    assert_eq!(logged(&mut io), ["200 0"]);
}

/// Garbage, truncations and mutations of valid requests never panic, never leak a
/// handle, and the server's output always starts with a status line.
#[test]
fn hostile_input_never_panics() {
    let seeds: Vec<Vec<u8>> = vec![
        get("/ten.txt", "Range: bytes=1-2\r\nIf-None-Match: W/\"x\"\r\n").into_bytes(),
        b"HEAD /docs HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec(),
        get("/%2e%2e/%2f", "Content-Length: 3\r\n").into_bytes(),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let files = MockFiles::site();
    let ctx = context(Settings {
        autoindex: true,
        ..Settings::default()
    });
    for round in 0..3000 {
        let mut input = seeds[round % seeds.len()].clone();
        for _ in 0..(next() % 8) {
            let pos = (next() as usize) % (input.len() + 1);
            match next() % 4 {
                0 if pos < input.len() => input[pos] = next() as u8,
                1 if pos < input.len() => {
                    input.remove(pos);
                }
                2 => input.insert(pos, b"\r\n :/%.\0-="[(next() % 10) as usize]),
                _ => input.truncate(pos),
            }
        }
        input.extend_from_slice(&seeds[0]);
        let mut io = MockTransport::sending(&input);
        io.chunk = 1 + (next() % 64) as usize;
        serve(&mut io, &files, &ctx);
        assert_eq!(files.open_handles.get(), 0);
        // Whatever was written starts with a status line.
        assert!(io.written.is_empty() || io.written.starts_with(b"HTTP/1.1 "));
    }
    assert_eq!(ctx.counters.snapshot().active, 0);
}

/// Serves `request` from the standard site plus `extra` nodes with precompressed
/// variants on; checks that no handle leaked.
fn with_variants(extra: &[(&str, Node)], request: &str) -> Vec<Resp> {
    let mut files = MockFiles::site();
    for (path, node) in extra {
        files = files.with(path, node.clone());
    }
    let ctx = context(Settings::default()).with_content(ContentOptions {
        precompressed: true,
        ..ContentOptions::default()
    });
    let mut io = MockTransport::sending(request.as_bytes());
    serve(&mut io, &files, &ctx);
    assert_eq!(files.open_handles.get(), 0, "file handles leaked");
    parse_responses(&io.written, &[])
}

#[test]
fn precompressed_variants_over_every_path() {
    let br = Node::File(b"BROTLI".to_vec());
    let gz = Node::File(b"GZIP".to_vec());
    let variants = [
        ("ten.txt.br", br.clone()),
        ("ten.txt.gz", gz.clone()),
        ("docs/index.html.gz", gz.clone()),
        ("style.css.gz", Node::Dir),
        ("empty.txt.br", Node::Forbidden),
    ];
    let one = |req: &str| {
        let resps = with_variants(&variants, req);
        assert_eq!(resps.len(), 1, "{resps:?}");
        resps.into_iter().next().unwrap()
    };
    let r = one(&get("/ten.txt", "Accept-Encoding: gzip, br\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"BROTLI"[..]));
    assert_eq!(r.header("Content-Encoding"), Some("br"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("ETag"), Some("\"2ebc98a1.0-6-br\""));
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    let r = one(&get("/ten.txt", ""));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"0123456789"[..]));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("ETag"), Some("\"2ebc98a1.0-a\""));
    // A directory index has variants too.
    let r = one(&get("/docs/", "Accept-Encoding: gzip\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"GZIP"[..]));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    // A "variant" that is not a regular file is none.
    let r = one(&get("/style.css", "Accept-Encoding: gzip\r\n"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}\n"[..]));
    assert!(!r.has("Vary") && !r.has("Content-Encoding"));
    // One that cannot be opened is not served, but the response varies.
    let r = one(&get("/empty.txt", "Accept-Encoding: br\r\n"));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty() && !r.has("Content-Encoding"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // 412 and 416 of a file with variants vary too.
    let r = one(&get(
        "/ten.txt",
        "Accept-Encoding: gzip\r\nIf-Match: \"x\"\r\n",
    ));
    assert_eq!(r.status, 412);
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    let r = one(&get(
        "/ten.txt",
        "Accept-Encoding: gzip\r\nRange: bytes=4-\r\n",
    ));
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */4"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // Pipelined: each request gets its own representation.
    let resps = with_variants(
        &variants,
        &format!(
            "{}{}{}",
            get("/ten.txt", "Accept-Encoding: gzip\r\n"),
            get("/ten.txt", "Accept-Encoding: identity\r\n"),
            get("/ten.txt", "Accept-Encoding: br;q=0.5, gzip;q=0.4\r\n"),
        ),
    );
    let bodies: Vec<&[u8]> = resps.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies, [&b"GZIP"[..], b"0123456789", b"BROTLI"]);
}

/// The standard site plus `extra` nodes, remembering which variants a file has.
fn remembering(extra: &[(&str, Node)]) -> MockFiles {
    let mut files = MockFiles {
        remembers_variants: true,
        ..MockFiles::site()
    };
    for (path, node) in extra {
        files = files.with(path, node.clone());
    }
    files
}

/// GET `/ten.txt` with `accept` (header lines) from `files`, precompressed variants
/// on: the response and how many opens it took; checks that no handle leaked.
fn ask_ten(files: &MockFiles, accept: &str) -> (Resp, u64) {
    let ctx = context(Settings::default()).with_content(ContentOptions {
        precompressed: true,
        ..ContentOptions::default()
    });
    let before = files.opens.get();
    let mut io = MockTransport::sending(get("/ten.txt", accept).as_bytes());
    serve(&mut io, files, &ctx);
    assert_eq!(files.open_handles.get(), 0, "file handles leaked");
    let r = parse_responses(&io.written, &[]).remove(0);
    (r, files.opens.get() - before)
}

/// With a file source that remembers which variants a file has: a request that looks
/// all three up hands the answer over, and later requests open only the file and the
/// variant they are served. What is remembered steers the choice (a remembered variant
/// that has gone is skipped, and still makes responses vary); a lookup that failed for
/// another reason than absence is not remembered.
#[test]
fn remembered_variants_spare_the_lookups_and_steer_the_choice() {
    let files = remembering(&[("ten.txt.gz", Node::File(b"GZIP".to_vec()))]);
    let ask = |accept: &str| ask_ten(&files, accept);
    let gzip_bit = webserver::encoding::Coding::Gzip.bit();
    let brotli_bit = webserver::encoding::Coding::Brotli.bit();

    // The first acceptable variant exists: served at once, nothing learnt of the rest.
    let (r, opens) = ask("Accept-Encoding: gzip\r\n");
    assert_eq!((r.body.as_slice(), opens), (&b"GZIP"[..], 2));
    assert_eq!(files.variants.get(), None);
    // No coding acceptable: all three looked up (for `Vary`), and remembered.
    let (r, opens) = ask("");
    assert_eq!((r.body.as_slice(), opens), (&b"0123456789"[..], 4));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(files.variants.get(), Some(gzip_bit));
    // Then: the file and the variant served (the missing `br` not tried); or the
    // file alone.
    let (r, opens) = ask("Accept-Encoding: br, gzip\r\n");
    assert_eq!((r.body.as_slice(), opens), (&b"GZIP"[..], 2));
    let (r, opens) = ask("");
    assert_eq!((r.body.as_slice(), opens), (&b"0123456789"[..], 1));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // A remembered variant that is gone: the file is served, and still varies.
    files.variants.set(Some(brotli_bit));
    let (r, opens) = ask("Accept-Encoding: br, gzip\r\n");
    assert_eq!((r.body.as_slice(), opens), (&b"0123456789"[..], 2));
    assert!(!r.has("Content-Encoding"));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));

    // A variant that cannot be opened counts as present but is not remembered.
    let files = remembering(&[("ten.txt.br", Node::Forbidden)]);
    let (r, _) = ask_ten(&files, "Accept-Encoding: br\r\n");
    assert_eq!(r.body, b"0123456789");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(files.variants.get(), None);
}

/// What a remembering file source is given: nothing unless all three variants were
/// looked up without error, and then exactly which exist.
#[test]
fn variants_are_remembered_only_when_all_were_looked_up() {
    let zstd = Node::File(b"ZSTD".to_vec());
    let gzip = Node::File(b"GZIP".to_vec());

    // No variant: all looked up once (the acceptable one not twice), none remembered
    // as existing, and the next request opens the file alone, without `Vary`.
    let files = remembering(&[]);
    let (r, opens) = ask_ten(&files, "Accept-Encoding: br\r\n");
    assert_eq!((r.body.as_slice(), opens), (&b"0123456789"[..], 4));
    assert!(!r.has("Vary"));
    assert_eq!(files.variants.get(), Some(0));
    let (r, opens) = ask_ten(&files, "");
    assert_eq!(opens, 1);
    assert!(!r.has("Vary"));

    // The first variant looked up for `Vary` exists: the rest are not looked up, so
    // nothing is remembered (`.gz` exists too and must stay servable).
    let files = remembering(&[("ten.txt.zst", zstd), ("ten.txt.gz", gzip)]);
    let (r, opens) = ask_ten(&files, "");
    assert_eq!((r.body.as_slice(), opens), (&b"0123456789"[..], 2));
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(files.variants.get(), None);
    let (r, _) = ask_ten(&files, "Accept-Encoding: gzip\r\n");
    assert_eq!(r.body, b"GZIP");

    // A variant that fails to open while looked up for `Vary`: the response varies,
    // nothing is remembered.
    let files = remembering(&[("ten.txt.br", Node::Forbidden)]);
    let (r, _) = ask_ten(&files, "");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    assert_eq!(files.variants.get(), None);
}

#[test]
fn without_precompressed_variants_no_variant_is_opened() {
    let files = MockFiles::site().with("ten.txt.gz", Node::File(b"GZIP".to_vec()));
    let ctx = context(Settings::default());
    let mut io = MockTransport::sending(get("/ten.txt", "Accept-Encoding: gzip\r\n").as_bytes());
    serve(&mut io, &files, &ctx);
    let r = &parse_responses(&io.written, &[])[0];
    assert_eq!(r.body, b"0123456789");
    assert!(!r.has("Vary") && !r.has("Content-Encoding"));
    assert_eq!(files.opens.get(), 1);
}

#[test]
fn out_of_descriptors_is_503_with_retry_after_and_the_connection_stays() {
    let files = MockFiles::site().with("busy.txt", Node::NoDescriptors);
    let ctx = context(Settings::default());
    let mut io = MockTransport::sending(
        format!(
            "{}{}{}",
            get("/busy.txt", ""),
            "HEAD /busy.txt HTTP/1.1\r\nHost: t\r\n\r\n",
            get("/ten.txt", "")
        )
        .as_bytes(),
    );
    let end = serve(&mut io, &files, &ctx);
    assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
    let resps = parse_responses(&io.written, &[false, true]);
    assert_eq!(resps.len(), 3);
    for r in &resps[..2] {
        assert_eq!(r.status, 503);
        assert_eq!(r.header("Retry-After"), Some("1"));
        assert!(!r.has("Connection"));
    }
    assert!(resps[1].body.is_empty());
    assert_eq!(resps[2].body, b"0123456789");
    assert_eq!(ctx.counters.snapshot().status[4], 2);

    // A variant that cannot be opened for that reason: the file itself, varying.
    let resps = with_variants(
        &[("ten.txt.gz", Node::NoDescriptors)],
        &get("/ten.txt", "Accept-Encoding: gzip\r\n"),
    );
    assert_eq!(resps[0].status, 200);
    assert_eq!(resps[0].body, b"0123456789");
    assert_eq!(resps[0].header("Vary"), Some("Accept-Encoding"));
}
