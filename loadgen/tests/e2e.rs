//! The `loadgen` binary end to end, against test servers on free loopback ports: a
//! correct keep-alive server (counts, bytes, `--json`, `-n`, `--pipeline`,
//! `--no-keepalive`, `-H`, `--method`, `-R`, `--latency`) and misbehaving ones (error
//! statuses, early closes, garbage, stalls, refused connections, endless bodies), each
//! counted under the right kind, with loadgen exiting on time and with the exit status
//! the run deserves.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::{assert_served, loadgen, spectrum, Behaviour, Run, Server, SLACK};

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
    run.assert_run_failed("no request succeeded: 50 responses (50 with error statuses)");
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
    run.assert_run_failed("no request succeeded");
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
    run.assert_run_failed("no request succeeded");
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
    run.assert_run_failed("no request succeeded");
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
    run.assert_run_failed("no request succeeded");
    assert_eq!(run.requests(), 0);
    assert_eq!(run.error("timeout"), 4);
    assert!(run.wall < SLACK, "{:?}", run.wall);
    assert_eq!(server.seen().requests, 4);
}

/// A server that keeps sending without ever completing a response (interim heads
/// without end) is timed out as one that goes quiet is: a read that finds bytes
/// waiting does not hold the request's timeout off.
#[test]
fn a_server_that_sends_without_answering_times_out() {
    let server = Server::start(Behaviour::EndlessInterim);
    let run = loadgen(
        &[
            "-c",
            "1",
            "-t",
            "1",
            "-d",
            "2s",
            "--timeout",
            "200ms",
            &server.url("/"),
        ],
        Some("interim"),
    );
    run.assert_run_failed("no request succeeded");
    assert_eq!(run.requests(), 0);
    // About one every 200 ms.
    assert!(run.error("timeout") >= 5, "{}", run.error("timeout"));
    assert!(run.wall < Duration::from_secs(2) + SLACK, "{:?}", run.wall);
}

/// A response whose body ends with the connection closes it as `Connection: close`
/// does: the pipelined requests behind it are dropped, not counted as errors.
#[test]
fn a_close_delimited_response_ends_a_pipeline_without_errors() {
    let server = Server::start(Behaviour::CloseDelimited);
    let run = loadgen(
        &["-c", "1", "-n", "40", "--pipeline", "4", &server.url("/")],
        Some("close-delimited"),
    );
    assert_eq!(
        run.requests(),
        10,
        "one response per connection of four requests"
    );
    assert_no_errors(&run);
    let response = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello";
    assert_eq!(run.bytes(), 10 * response.len() as u64);
}

/// A loopback port with nothing listening, held (bound, never listening) so that no
/// other test's server gets it while the socket lives: connections are refused.
struct ClosedPort {
    addr: SocketAddr,
    _held: Socket,
}

fn closed_port() -> ClosedPort {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    ClosedPort {
        addr,
        _held: socket,
    }
}

#[test]
fn refused_connections_are_connect_errors() {
    let closed = closed_port();
    let url = format!("http://{}/", closed.addr);
    let run = loadgen(&["-c", "2", "-d", "500ms", &url], Some("refused"));
    run.assert_run_failed("no request succeeded");
    assert_eq!(run.requests(), 0);
    assert!(run.error("connect") > 0);
    assert!(
        run.wall < Duration::from_millis(500) + SLACK,
        "{:?}",
        run.wall
    );
    assert!(run.stdout().contains("Socket errors: connect "));

    let run = loadgen(&["-c", "2", "-n", "6", &url], Some("refused-n"));
    run.assert_run_failed("no request succeeded");
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
        &["--max-error-rate", "5", "http://127.0.0.1:1/"],
        &["--max-error-rate", "150%", "http://127.0.0.1:1/"],
        &["--max-error-rate", "-0.1", "http://127.0.0.1:1/"],
        &["--max-error-rate", "lots", "http://127.0.0.1:1/"],
        &["--timeout", "0", "http://127.0.0.1:1/"],
        &["-d", "0s", "http://127.0.0.1:1/"],
        &["-n", "0", "http://127.0.0.1:1/"],
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
    // Each names what is wrong with the value (negative numbers included: not taken
    // for flags).
    for (args, says) in [
        (
            &["-c", "0"][..],
            "invalid number \"0\": expected a whole number, at least 1",
        ),
        (&["-c", "-3"], "invalid number \"-3\""),
        (&["-R", "-5"], "expected requests per second > 0"),
        (&["-d", "-1s"], "invalid duration \"-1s\""),
        (&["--timeout", "-2s"], "invalid duration \"-2s\""),
        (&["--tun", "tun9"], "--tun applies only with --net user"),
        (
            &["--stack-addr", "10.0.0.1", "--no-offload"],
            "--stack-addr, --no-offload apply only with --net user",
        ),
    ] {
        let run = loadgen(&[args, &["http://127.0.0.1:1/"]].concat(), None);
        assert_eq!(run.output.status.code(), Some(2), "{args:?}");
        assert!(run.stderr().contains(says), "{args:?}: {}", run.stderr());
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
    let help = run.stdout();
    for text in [
        "--pipeline",
        "--max-error-rate",
        "--latency",
        "--plot",
        "Exit status:",
        "TUN device [default: tun1,",
        "IPv4 address [default: 10.77.1.2]",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
    assert!(help.contains("\n  3  the run failed: "), "{help}");
}

/// A report file that cannot be written is a usage error before the run, not a run
/// lost at its end.
#[test]
fn an_unwritable_report_path_is_a_usage_error_before_the_run() {
    let server = Server::start(Behaviour::Correct);
    for flag in ["--json", "--plot"] {
        let run = loadgen(
            &[
                "-c",
                "1",
                "-d",
                "5s",
                flag,
                "/nonexistent-dir/r.out",
                &server.url("/"),
            ],
            None,
        );
        run.assert_exit(2);
        let said = run.stderr();
        assert!(
            said.contains(&format!("{flag} /nonexistent-dir/r.out")),
            "{said}"
        );
        assert!(run.wall < Duration::from_secs(2), "{:?}", run.wall);
    }
    assert_eq!(server.seen().requests, 0);

    // An earlier report stays as it was when a run fails before it measured, and is
    // replaced whole by the next report.
    let path = support::json_path("kept");
    let earlier = vec![b'x'; 100_000];
    std::fs::write(&path, &earlier).unwrap();
    let json = path.to_str().unwrap();
    let failed = loadgen(
        &["-n", "1", "--json", json, "http://no-such-host.invalid/"],
        None,
    );
    failed.assert_exit(1);
    assert_eq!(std::fs::read(&path).unwrap(), earlier);
    let run = loadgen(&["-n", "1", "--json", json, &server.url("/")], None);
    run.assert_success();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("one whole report");
    assert_eq!(report["requests"], 1);
    let _ = std::fs::remove_file(&path);

    // A run that fails before it measured removes a report file it created.
    let fresh = support::json_path("fresh");
    let _ = std::fs::remove_file(&fresh);
    let json = fresh.to_str().unwrap();
    let failed = loadgen(
        &["-n", "1", "--json", json, "http://no-such-host.invalid/"],
        None,
    );
    failed.assert_exit(1);
    assert!(!fresh.exists(), "an empty report was left behind");

    // A report to a pipe: nothing to empty first.
    let run = loadgen(
        &["-n", "1", "--json", "/dev/stdout", &server.url("/")],
        None,
    );
    run.assert_success();
    assert!(
        run.stdout().contains("\"requests\": 1,"),
        "{}",
        run.stdout()
    );
}

/// An interrupted run stops at once and reports what it measured, as wrk does: the
/// report, the JSON file, and the exit status of what was measured. Requests the
/// interrupt cut short count as no error.
#[test]
fn an_interrupted_run_reports_what_it_measured() {
    let after = Duration::from_millis(800);
    let server = Server::start(Behaviour::Correct);
    let url = server.url("/");
    let args = ["-c", "4", "-t", "2", "-d", "60s", &url];
    let run = support::loadgen_signalled(&args, Some("sigint"), after, libc::SIGINT);
    run.assert_success();
    assert!(
        run.stderr().contains("stopped by SIGINT"),
        "{}",
        run.stderr()
    );
    assert!(run.requests() > 0);
    assert_no_errors(&run);
    let secs = run.json()["duration_s"].as_f64().unwrap();
    // The run starts after the process does: somewhat less than `after`.
    assert!(secs > after.as_secs_f64() / 2.0 && secs < 2.0, "{secs}");
    assert!(run.stdout().contains(" requests in "), "{}", run.stdout());

    // At a constant rate a connection waits for its next send between requests: one
    // interrupted in that wait sends nothing more (the server saw only what was
    // reported).
    let paced = Server::start(Behaviour::Correct);
    let url = paced.url("/");
    let args = ["-c", "1", "-R", "1", "-d", "60s", &url];
    let run = support::loadgen_signalled(&args, Some("sigint-rate"), after, libc::SIGINT);
    run.assert_success();
    assert_no_errors(&run);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(paced.seen().requests, run.requests());

    // Every connection waits on a server that never answers: stopped by SIGTERM, no
    // request succeeded (exit 3), and none of the waits counts as a timeout or a
    // read error.
    let stalled = Server::start(Behaviour::Stall);
    let url = stalled.url("/");
    let args = ["-c", "4", "-d", "60s", "--timeout", "30s", &url];
    let run = support::loadgen_signalled(&args, Some("sigterm"), after, libc::SIGTERM);
    run.assert_run_failed("no request succeeded");
    assert!(
        run.stderr().contains("stopped by SIGTERM"),
        "{}",
        run.stderr()
    );
    assert_no_errors(&run);
}

#[test]
fn max_error_rate_decides_the_exit_status() {
    // One response in four is a 500: an error rate of exactly 25%.
    let server = Server::start(Behaviour::EveryFourth500);
    let url = server.url("/");
    let run = loadgen(&["-c", "1", "-n", "40", &url], Some("rate-none"));
    run.assert_success();
    assert_eq!((run.requests(), run.error("status")), (40, 10));
    for limit in ["25%", "0.25", "1"] {
        let args = ["-c", "1", "-n", "40", "--max-error-rate", limit, &url];
        loadgen(&args, None).assert_success();
    }
    for limit in ["24.9%", "0.2", "0"] {
        let args = ["-c", "1", "-n", "40", "--max-error-rate", limit, &url];
        let run = loadgen(&args, Some("rate-over"));
        run.assert_run_failed("error rate 25.00% exceeds --max-error-rate");
        // The report is printed and written all the same.
        assert_eq!(run.requests(), 40);
        assert!(run.stdout().contains("Requests/sec:"));
    }
}

/// `run`'s connections backed off (their connect errors within `connects`), and its
/// report says, in the JSON and on stdout, that the target has been unreachable since
/// a time within `since` (seconds into the run).
fn assert_backed_off_and_unreachable(
    run: &Run,
    connects: std::ops::RangeInclusive<u64>,
    since: std::ops::Range<f64>,
) {
    let made = run.error("connect");
    assert!(connects.contains(&made), "{made} connect errors");
    let at = run.json()["unreachable_since_s"].as_f64().unwrap();
    assert!(since.contains(&at), "{at}");
    let stdout = run.stdout();
    let line = format!("Target unreachable since {at:.2}s: ");
    assert!(stdout.contains(&line), "{stdout}");
}

#[test]
fn an_unreachable_target_is_retried_with_backoff_and_reported() {
    let closed = closed_port();
    let url = format!("http://{}/", closed.addr);
    let run = loadgen(
        &["-c", "4", "-t", "2", "-d", "2s", &url],
        Some("unreachable"),
    );
    run.assert_run_failed("no request succeeded: 0 responses (0 with error statuses)");
    // Pauses doubling from 10 ms: 8 attempts in 2 s per connection (a fixed 10 ms
    // pause made 200).
    assert_backed_off_and_unreachable(&run, 4..=4 * 10, 0.0..0.5);
    assert!(run.wall < Duration::from_secs(2) + SLACK, "{:?}", run.wall);

    // A target that goes away during the run: the connections back off instead of
    // flooding the counts, and the report says since when it has been unreachable.
    let server = Server::start(Behaviour::Correct);
    let url = server.url("/");
    let away = std::thread::spawn(move || {
        // 1 s after the first request, so at least 1 s into the run.
        while server.seen().requests == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_secs(1));
        drop(server);
    });
    let run = loadgen(&["-c", "4", "-t", "1", "-d", "4s", &url], Some("goes-away"));
    away.join().unwrap();
    // Responses arrived before it went: the run itself passed.
    run.assert_success();
    assert!(run.requests() > 0);
    // At most 3 s of failing connects.
    assert_backed_off_and_unreachable(&run, 4..=4 * 12, 1.0..3.0);

    // A reachable target has no such line, and null in the JSON.
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(&["-c", "1", "-n", "5", &server.url("/")], Some("reachable"));
    run.assert_success();
    assert!(run.json()["unreachable_since_s"].is_null());
    assert!(!run.stdout().contains("unreachable"));
}

#[test]
fn bytes_of_an_endless_body_are_counted_as_they_arrive() {
    let server = Server::start(Behaviour::EndlessChunked);
    let run = loadgen(
        &[
            "-c",
            "1",
            "-t",
            "1",
            "-d",
            "1s",
            "--timeout",
            "5s",
            &server.url("/"),
        ],
        Some("endless"),
    );
    // The response never completed: no request succeeded, and none failed.
    run.assert_run_failed("no request succeeded: 0 responses");
    assert_eq!(run.requests(), 0);
    assert_no_errors(&run);
    let bytes = run.bytes();
    assert!(bytes > 4 << 20, "only {bytes} bytes read in 1 s");
    let stdout = run.stdout();
    assert!(!stdout.contains("0.00B read"), "{stdout}");
    assert!(stdout.contains("0 requests in 1."), "{stdout}");
    let bytes_per_sec = run.json()["bytes_per_sec"].as_f64().unwrap();
    assert!(bytes_per_sec > 2_000_000.0, "{bytes_per_sec}");
    assert!(run.wall < Duration::from_secs(1) + SLACK, "{:?}", run.wall);
}

#[test]
fn latency_prints_the_full_percentile_spectrum() {
    let server = Server::start(Behaviour::Correct);
    let run = loadgen(
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-n",
            "3000",
            "--latency",
            &server.url("/"),
        ],
        Some("latency"),
    );
    run.assert_success();
    let stdout = run.stdout();
    let (rows, footer) = spectrum(&stdout);
    assert!(rows.len() > 20, "{} rows", rows.len());
    assert_eq!(rows[0].1, 0.0);
    for w in rows.windows(2) {
        assert!(w[0].1 < w[1].1, "percentiles increase: {w:?}");
        assert!(w[0].0 <= w[1].0, "values do not decrease: {w:?}");
        assert!(w[0].2 <= w[1].2, "counts do not decrease: {w:?}");
    }
    let last = rows.last().unwrap();
    assert_eq!((last.1, last.2), (1.0, 3000));
    let max_ms = run.json()["latency_us"]["max"].as_u64().unwrap() as f64 / 1000.0;
    assert_eq!(format!("{:.3}", last.0), format!("{max_ms:.3}"));
    assert_eq!(footer.len(), 3, "{footer:?}");
    assert!(footer[0].starts_with("#[Mean    = "), "{}", footer[0]);
    let max_line = format!("#[Max     = {max_ms:12.3}, Total count    = {:12}]", 3000);
    assert_eq!(footer[1], max_line);
    assert!(footer[2].starts_with("#[Buckets = "), "{}", footer[2]);
    // wrk2's layout: the spectrum follows the distribution, then a rule, then totals.
    let at = |text: &str| stdout.find(text).unwrap_or_else(|| panic!("{text}"));
    assert!(at("100.000%") < at("Detailed Percentile spectrum"));
    assert!(at(&"-".repeat(58)) < at("3000 requests in"));
    // Without the flag, no spectrum.
    let run = loadgen(&["-c", "1", "-n", "10", &server.url("/")], None);
    assert!(!run.stdout().contains("Detailed Percentile spectrum"));
}
