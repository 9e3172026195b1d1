//! loadgen's connection loop against the webserver library over real loopback
//! sockets (blocking thread-per-connection adapters stand in for threadlib): the
//! request and byte counts loadgen measures equal the server's own totals. And the
//! `loadgen` binary's `--plot` picture of a run against the same server.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

/// Blocking std stand-ins for threadlib: the web server's, shared with its own tests.
#[path = "../../webserver/tests/support/blocking.rs"]
mod blocking;
mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blocking::{serve_site, Blocking};
use loadgen::{run_connection, Config, Network, Stats};
use webserver::{Settings, Totals};

/// The web server's blocking stand-in serves as loadgen's connection too.
impl loadgen::Transport for Blocking {
    async fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, loadgen::TransportError> {
        self.read_by(buf, deadline)
    }

    async fn write_all(
        &mut self,
        buf: &[u8],
        _deadline: Instant,
    ) -> Result<(), loadgen::TransportError> {
        Ok(self.0.write_all(buf)?)
    }
}

struct BlockingNet;

impl Network for BlockingNet {
    type Conn = Blocking;

    async fn connect(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Blocking, loadgen::TransportError> {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nodelay(true)?;
        Ok(Blocking(s))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Serves `connections` connections of the bundled site, one thread each; returns the
/// summed counters once all have closed.
fn server(connections: usize) -> (SocketAddr, std::thread::JoinHandle<Totals>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let threads: Vec<_> = (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                std::thread::spawn(move || serve_site(stream, None, Settings::default()))
            })
            .collect();
        let mut totals = Totals::default();
        for t in threads {
            totals += t.join().unwrap();
        }
        totals
    });
    (addr, handle)
}

/// Serves every connection of the bundled site, one thread each, until dropped.
struct Serving {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = std::thread::spawn({
            let stop = stop.clone();
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    std::thread::spawn(move || serve_site(stream, None, Settings::default()));
                }
            }
        });
        Serving {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn drive(args: &[&str], addr: SocketAddr) -> Stats {
    let mut argv = vec!["loadgen"];
    argv.extend_from_slice(args);
    let url = format!("http://{addr}/files/1k.txt");
    let url2 = format!("http://{addr}/files/64k.txt");
    let url3 = format!("http://{addr}/missing");
    argv.extend([url.as_str(), url2.as_str(), url3.as_str()]);
    let plan = <Config as clap::Parser>::try_parse_from(argv)
        .unwrap()
        .plan()
        .unwrap();
    let start = Instant::now();
    let threads: Vec<_> = (0..plan.connections)
        .map(|i| {
            let conn = plan.connection(i, addr, start);
            std::thread::spawn(move || {
                let mut stats = Stats::new();
                futures::executor::block_on(run_connection(&BlockingNet, conn, &mut stats, None));
                stats
            })
        })
        .collect();
    let mut total = Stats::new();
    for t in threads {
        total.merge(&t.join().unwrap());
    }
    total
}

#[test]
fn loadgen_counts_match_the_servers_totals() {
    let (addr, server) = server(4);
    let stats = drive(&["-c", "4", "-n", "600", "--pipeline", "3"], addr);
    let totals = server.join().unwrap();
    assert_eq!(stats.requests, 600);
    assert_eq!(stats.errors.socket(), 0);
    assert_eq!(stats.errors.status, 200, "one URL in three is a 404");
    assert_eq!(totals.requests, stats.requests);
    assert_eq!(totals.bytes_out, stats.bytes);
    assert_eq!(totals.status[3], 200);
    assert_eq!(stats.latency.len(), 600);
}

#[test]
fn no_keepalive_counts_match_too() {
    let (addr, server) = server(30);
    let stats = drive(&["-c", "3", "-n", "30", "--no-keepalive"], addr);
    let totals = server.join().unwrap();
    assert_eq!(stats.requests, 30);
    assert_eq!(stats.errors.socket(), 0);
    assert_eq!(totals.connections, 30);
    assert_eq!(totals.bytes_out, stats.bytes);
}

/// The `data-*` attribute `name` of `node`, as a number.
fn number(node: roxmltree::Node<'_, '_>, name: &str) -> f64 {
    node.attribute(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn of_class<'a, 'input>(
    doc: &'a roxmltree::Document<'input>,
    class: &str,
) -> Vec<roxmltree::Node<'a, 'input>> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .collect()
}

#[test]
fn plot_pictures_a_run_against_the_webserver() {
    let server = Serving::start();
    let svg_path = std::env::temp_dir().join(format!("loadgen-plot-{}.svg", std::process::id()));
    let url = format!("http://{}/files/1k.txt", server.addr);
    let run = support::loadgen(
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "2s",
            "--latency",
            "--plot",
            svg_path.to_str().unwrap(),
            &url,
        ],
        Some("plot"),
    );
    run.assert_success();
    let text = std::fs::read_to_string(&svg_path).unwrap();
    std::fs::remove_file(&svg_path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    // Self-contained: no scripts, no embedded documents, no links.
    for node in doc.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        assert!(
            !["script", "image", "foreignObject", "use", "a"].contains(&name),
            "{name}"
        );
        assert!(
            node.attributes().all(|a| a.name() != "href"),
            "{name} links out"
        );
    }
    let json = run.json();
    let stdout = run.stdout();

    // (a) The percentile curve: one point per finite row of the printed spectrum, in
    // order, on the 1/(1-p) axis; the 100% row is the maximum's line.
    let (rows, _) = support::spectrum(&stdout);
    let points = of_class(&doc, "percentile-point");
    assert_eq!(points.len() + 1, rows.len());
    for (point, row) in points.iter().zip(&rows) {
        assert_eq!(number(*point, "data-latency-ms"), row.0);
        assert_eq!(number(*point, "data-percentile"), row.1);
        assert_eq!(number(*point, "data-total-count"), row.2 as f64);
    }
    for w in points.windows(2) {
        assert!(number(w[0], "cx") < number(w[1], "cx"), "x grows with p");
        assert!(
            number(w[0], "cy") >= number(w[1], "cy"),
            "y grows with latency"
        );
    }
    let curve = &of_class(&doc, "percentile-curve")[0];
    assert_eq!(
        curve.attribute("points").unwrap().split(' ').count(),
        points.len()
    );
    let max = &of_class(&doc, "latency-max")[0];
    assert_eq!(number(*max, "data-latency-ms"), rows.last().unwrap().0);
    let labels: Vec<&str> = of_class(&doc, "x-label")
        .iter()
        .filter_map(|n| n.text())
        .collect();
    for label in ["0%", "90%", "99%", "99.9%"] {
        assert!(labels.contains(&label), "{label}: {labels:?}");
    }
    // The x axis is log10(1/(1-p)): the 0%, 90%, 99% and 99.9% ticks stand one decade
    // apart, and every point stands where its percentile falls on that scale (up to
    // 99.9%, where the printed percentile's six decimals place it within a pixel).
    let tick = |label: &str| {
        let node = of_class(&doc, "x-label")
            .into_iter()
            .find(|n| n.text() == Some(label))
            .unwrap();
        number(node, "x")
    };
    let (origin, decade) = (tick("0%"), tick("90%") - tick("0%"));
    assert!(decade > 0.0);
    for (label, decades) in [("99%", 2.0), ("99.9%", 3.0)] {
        let want = origin + decades * decade;
        assert!(
            (tick(label) - want).abs() <= 0.2,
            "{label} at {}, not {want}",
            tick(label)
        );
    }
    for point in points
        .iter()
        .filter(|p| number(**p, "data-percentile") <= 0.999)
    {
        let p = number(*point, "data-percentile");
        let want = origin + decade * (1.0 / (1.0 - p)).log10();
        let x = number(*point, "cx");
        assert!((x - want).abs() <= 1.0, "p {p} at x {x}, not {want}");
    }

    // (b) One point per second of the 2 s run, with the JSON report's figures.
    let per_second = json["per_second"].as_array().unwrap();
    let seconds = of_class(&doc, "second");
    assert_eq!(seconds.len(), 2);
    assert_eq!(seconds.len(), per_second.len());
    let mut requests = 0.0;
    for (point, figures) in seconds.iter().zip(per_second) {
        assert_eq!(
            number(*point, "data-start-s"),
            figures["start_s"].as_f64().unwrap()
        );
        assert_eq!(
            number(*point, "data-requests"),
            figures["requests"].as_f64().unwrap()
        );
        let rps = figures["requests_per_sec"].as_f64().unwrap();
        assert_eq!(
            point.attribute("data-requests-per-sec"),
            Some(&*format!("{rps:.2}"))
        );
        assert!(rps > 0.0);
        requests += number(*point, "data-requests");
    }
    assert_eq!(requests, json["requests"].as_f64().unwrap());
    let p99s = of_class(&doc, "second-p99");
    assert_eq!(p99s.len(), 2);
    for (point, figures) in p99s.iter().zip(per_second) {
        let us = figures["p99_us"].as_u64().unwrap();
        assert_eq!(number(*point, "data-p99-ms"), us as f64 / 1000.0);
    }
    let run_p99 = &of_class(&doc, "run-p99")[0];
    let p99_us = json["latency_us"]["p99"].as_u64().unwrap();
    assert_eq!(number(*run_p99, "data-latency-ms"), p99_us as f64 / 1000.0);

    // The figures printed in the picture are the report's.
    let summary: Vec<&str> = of_class(&doc, "summary")
        .iter()
        .filter_map(|n| n.text())
        .collect();
    let totals = stdout
        .lines()
        .find(|l| l.contains(" requests in "))
        .unwrap()
        .trim();
    assert!(
        summary[0].starts_with(&format!("{totals}; ")),
        "{summary:?} vs {totals}"
    );
    let rps_line = stdout
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .unwrap();
    let rps = rps_line.split_whitespace().nth(1).unwrap();
    assert!(
        summary[0].contains(&format!("; Requests/sec: {rps};")),
        "{}",
        summary[0]
    );
    let percentile = |label: &str| -> &str {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap();
        line.split_whitespace().nth(1).unwrap()
    };
    let latency = format!(
        "Latency p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        percentile("50.000%"),
        percentile("90.000%"),
        percentile("99.000%"),
        percentile("99.900%"),
        percentile("100.000%")
    );
    assert_eq!(summary[1], latency);
    assert_eq!(
        summary[2],
        "Errors: connect 0, read 0, write 0, timeout 0, status 0, malformed 0"
    );
}
