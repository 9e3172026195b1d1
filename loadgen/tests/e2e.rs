//! The `loadgen` binary end to end, against test servers on free loopback ports: a
//! correct keep-alive server (counts, bytes, `--json`, `-n`, `--pipeline`,
//! `--no-keepalive`, `-H`, `--method`, `-R`) and misbehaving ones (error statuses,
//! early closes, garbage, stalls, refused connections), each counted under the right
//! kind, with loadgen exiting on time.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use support::{assert_served, loadgen, Behaviour, Run, Server, SLACK};

fn assert_no_errors(run: &Run) {
    for kind in ["connect", "read", "write", "timeout", "status", "malformed"] {
        assert_eq!(run.error(kind), 0, "{kind} errors:\n{}", run.stdout());
    }
}

#[test]
fn request_count_is_exact_and_matches_the_server() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &["-c", "4", "-t", "2", "-n", "500", &server.url("/a")],
        Some("exact"),
    );
    run.assert_success();
    let seen = server.seen();
    assert_served(&run, &seen, 500);
    assert_eq!(seen.responses, 500);
    assert_eq!(seen.connections, 4, "keep-alive: one connection each");
    assert_no_errors(&run);
    let stdout = run.stdout();
    assert!(stdout.contains("Running 500 requests @ "), "{stdout}");
    assert!(stdout.contains("2 threads and 4 connections"), "{stdout}");
    assert!(stdout.contains("500 requests in "), "{stdout}");
    assert!(stdout.contains("Requests/sec:"), "{stdout}");
    assert!(
        seen.heads[0].starts_with("GET /a HTTP/1.1\r\n"),
        "{:?}",
        seen.heads[0]
    );
}

#[test]
fn json_report_is_complete_and_consistent() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &["-c", "3", "-t", "1", "-d", "1s", &server.url("/")],
        Some("json"),
    );
    run.assert_success();
    let j = run.json();
    let requests = run.requests();
    assert!(requests > 0);
    let duration = j["duration_s"].as_f64().unwrap();
    assert!(
        (0.9..1.0 + SLACK.as_secs_f64()).contains(&duration),
        "{duration}"
    );
    let rps = j["requests_per_sec"].as_f64().unwrap();
    assert!((rps - requests as f64 / duration).abs() < 1e-6 * rps.max(1.0));
    let bps = j["bytes_per_sec"].as_f64().unwrap();
    assert!((bps - run.bytes() as f64 / duration).abs() < 1e-6 * bps.max(1.0));
    let response_len = run.bytes() / requests;
    assert_eq!(run.bytes(), requests * response_len, "equal responses");
    let latency = &j["latency_us"];
    let mut previous = 0;
    for key in ["p50", "p75", "p90", "p99", "p999", "p9999", "max"] {
        let value = latency[key].as_u64().unwrap_or_else(|| panic!("{key}"));
        assert!(value >= previous, "{key} = {value} < {previous}");
        previous = value;
    }
    assert!(latency["max"].as_u64().unwrap() > 0);
    assert_no_errors(&run);
    assert_eq!(j["connections"], 3);
    assert_eq!(j["threads"], 1);
    assert_eq!(j["urls"][0], server.url("/"));
    // The server may have answered requests still in flight when the run ended.
    let seen = server.seen();
    assert!(
        seen.responses >= requests,
        "{} < {requests}",
        seen.responses
    );
    assert!(
        seen.responses <= requests + 3,
        "{} > {requests} + 3",
        seen.responses
    );
    assert_eq!(seen.connections, 3);
}

#[test]
fn duration_runs_end_on_time() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(&["-c", "8", "-t", "2", "-d", "1s", &server.url("/")], None);
    run.assert_success();
    assert!(run.wall >= Duration::from_secs(1), "{:?}", run.wall);
    assert!(run.wall < Duration::from_secs(1) + SLACK, "{:?}", run.wall);
    assert!(run.stdout().contains("Running 1.00s test @ "));
}

#[test]
fn pipelined_requests_arrive_together() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-n",
            "400",
            "--pipeline",
            "8",
            &server.url("/p"),
        ],
        Some("pipeline"),
    );
    run.assert_success();
    let seen = server.seen();
    assert_served(&run, &seen, 400);
    assert!(seen.max_batch > 1, "no read held more than one request");
    assert_eq!(run.json()["pipeline"], 8);
    assert_no_errors(&run);
}

#[test]
fn no_keepalive_opens_a_connection_per_request() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-n",
            "40",
            "--no-keepalive",
            &server.url("/"),
        ],
        Some("close"),
    );
    run.assert_success();
    let seen = server.seen();
    assert_served(&run, &seen, 40);
    assert_eq!(seen.connections, 40);
    assert!(seen
        .heads
        .iter()
        .all(|h| h.contains("\r\nConnection: close\r\n")));
    assert_no_errors(&run);
}

#[test]
fn headers_and_method_reach_the_server() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "1",
            "-n",
            "5",
            "--method",
            "HEAD",
            "-H",
            "X-Load-Test: yes",
            "-H",
            "Accept: text/plain",
            &server.url("/h?q=1"),
        ],
        Some("headers"),
    );
    run.assert_success();
    let seen = server.seen();
    // HEAD responses have no body; both sides still count the same bytes.
    assert_served(&run, &seen, 5);
    for head in &seen.heads {
        assert!(head.starts_with("HEAD /h?q=1 HTTP/1.1\r\n"), "{head:?}");
        assert!(head.contains("\r\nX-Load-Test: yes\r\n"), "{head:?}");
        assert!(head.contains("\r\nAccept: text/plain\r\n"), "{head:?}");
        assert!(
            head.contains(&format!("\r\nHost: {}\r\n", server.addr)),
            "{head:?}"
        );
    }
    assert_no_errors(&run);
}

#[test]
fn several_urls_are_requested_in_rotation() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "1",
            "-n",
            "4",
            &server.url("/one"),
            &server.url("/two"),
        ],
        Some("rotation"),
    );
    run.assert_success();
    let paths: Vec<String> = server
        .seen()
        .heads
        .iter()
        .map(|h| h.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(paths, ["/one", "/two", "/one", "/two"]);
}

#[test]
fn constant_rate_is_approximately_honoured() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "4",
            "-t",
            "2",
            "-d",
            "2s",
            "-R",
            "200",
            &server.url("/"),
        ],
        Some("rate"),
    );
    run.assert_success();
    let requests = run.requests();
    // 400 are due in 2 s; never more, and on any sane machine most of them.
    assert!(
        (200..=404).contains(&requests),
        "{requests} requests at 200/s for 2s"
    );
    assert_eq!(run.json()["rate"], 200.0);
    assert_no_errors(&run);
}

#[test]
fn error_statuses_are_status_errors() {
    let server = Server::start(Behaviour::Status500);
    let run = loadgen(&["-c", "2", "-n", "50", &server.url("/")], Some("500"));
    run.assert_success();
    assert_eq!(
        run.requests(),
        50,
        "error responses still count as requests"
    );
    assert_eq!(run.error("status"), 50);
    for kind in ["connect", "read", "write", "timeout", "malformed"] {
        assert_eq!(run.error(kind), 0, "{kind}");
    }
    assert!(run.stdout().contains("Non-2xx or 3xx responses: 50"));
}

#[test]
fn early_closes_are_read_errors() {
    let server = Server::start(Behaviour::CloseMidResponse);
    let run = loadgen(&["-c", "2", "-n", "20", &server.url("/")], Some("early"));
    run.assert_success();
    assert_eq!(run.requests(), 0);
    assert_eq!(run.error("read") + run.error("malformed"), 20);
    assert!(run.error("read") > 0, "a truncated body is a read error");
    assert_eq!(run.error("timeout"), 0);
    assert!(run.wall < SLACK, "{:?}", run.wall);
}

#[test]
fn garbage_is_malformed() {
    let server = Server::start(Behaviour::Garbage);
    let run = loadgen(&["-c", "2", "-n", "20", &server.url("/")], Some("garbage"));
    run.assert_success();
    assert_eq!(run.requests(), 0);
    assert_eq!(run.error("malformed"), 20);
    assert!(run.stdout().contains("Malformed responses: 20"));
}

#[test]
fn stalls_time_out_and_the_run_ends_on_time() {
    let server = Server::start(Behaviour::Stall);
    let run = loadgen(
        &[
            "-c",
            "4",
            "-t",
            "2",
            "-d",
            "1s",
            "--timeout",
            "300ms",
            &server.url("/"),
        ],
        Some("stall"),
    );
    run.assert_success();
    assert_eq!(run.requests(), 0);
    // Each connection times out about every 300 ms: 3 rounds of 4 in 1 s.
    assert!(run.error("timeout") >= 4, "{}", run.error("timeout"));
    assert_eq!(
        run.error("read") + run.error("connect") + run.error("malformed"),
        0
    );
    assert!(run.wall < Duration::from_secs(1) + SLACK, "{:?}", run.wall);
    assert!(run.stdout().contains("timeout"));
}

#[test]
fn stalls_end_a_request_count_run_too() {
    let server = Server::start(Behaviour::Stall);
    let run = loadgen(
        &["-c", "2", "-n", "4", "--timeout", "200ms", &server.url("/")],
        Some("stall-n"),
    );
    run.assert_success();
    assert_eq!(run.requests(), 0);
    assert_eq!(run.error("timeout"), 4);
    assert!(run.wall < SLACK, "{:?}", run.wall);
    assert_eq!(server.seen().requests, 4);
}

/// A loopback port with nothing listening.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn refused_connections_are_connect_errors() {
    let addr = closed_port();
    let url = format!("http://{addr}/");
    let run = loadgen(&["-c", "2", "-d", "500ms", &url], Some("refused"));
    run.assert_success();
    assert_eq!(run.requests(), 0);
    assert!(run.error("connect") > 0);
    assert!(
        run.wall < Duration::from_millis(500) + SLACK,
        "{:?}",
        run.wall
    );
    assert!(run.stdout().contains("Socket errors: connect "));

    let run = loadgen(&["-c", "2", "-n", "6", &url], Some("refused-n"));
    run.assert_success();
    assert_eq!(
        run.error("connect"),
        6,
        "-n counts failed connection attempts"
    );
}

#[test]
fn bad_command_lines_exit_2_with_usage() {
    for args in [
        &["-c", "0", "http://127.0.0.1:1/"][..],
        &["-d", "1s", "-n", "5", "http://127.0.0.1:1/"],
        &["--bogus", "http://127.0.0.1:1/"],
        &["https://127.0.0.1:1/"],
        &[],
    ] {
        let run = loadgen(args, None);
        assert_eq!(run.output.status.code(), Some(2), "{args:?}");
        let stderr = run.stderr();
        assert!(
            stderr.starts_with("error: ") && stderr.contains("--help"),
            "{args:?}: {stderr}"
        );
    }
    let run = loadgen(
        &[
            "--net",
            "user",
            "--netns",
            "no-such-namespace",
            "http://127.0.0.1:1/",
        ],
        None,
    );
    assert_eq!(run.output.status.code(), Some(2));
    assert!(run.stderr().contains("make setup"), "{}", run.stderr());
    let run = loadgen(&["--help"], None);
    assert!(run.output.status.success());
    assert!(run.stdout().contains("--pipeline"));
}

#[test]
fn an_unwritable_json_path_is_reported() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "1",
            "-n",
            "1",
            "--json",
            "/nonexistent-dir/r.json",
            &server.url("/"),
        ],
        None,
    );
    assert_eq!(run.output.status.code(), Some(1));
    assert!(
        run.stderr().contains("writing /nonexistent-dir/r.json"),
        "{}",
        run.stderr()
    );
}
