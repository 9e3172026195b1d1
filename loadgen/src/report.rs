//! The final report: a human one in wrk's layout, and JSON for scripts.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{ErrorCounts, Stats};

/// Everything the report describes.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    /// The merged statistics of all threads.
    pub stats: &'a Stats,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Threads (cores) used.
    pub threads: usize,
    /// Connections used.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Target rate (`-R`), if constant-rate.
    pub rate: Option<f64>,
    /// The URLs driven.
    pub urls: &'a [String],
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Median.
    pub p50: u64,
    /// 75th percentile.
    pub p75: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of `stats` (all zero without responses).
    pub fn of(stats: &Stats) -> Self {
        let h = &stats.latency;
        if h.is_empty() {
            return Latency {
                min: 0,
                mean: 0.0,
                stdev: 0.0,
                p50: 0,
                p75: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                p9999: 0,
                max: 0,
            };
        }
        Latency {
            min: h.min(),
            mean: h.mean(),
            stdev: h.stdev(),
            p50: h.value_at_quantile(0.50),
            p75: h.value_at_quantile(0.75),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

/// The `--json` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonReport {
    /// Complete responses.
    pub requests: u64,
    /// Run time in seconds.
    pub duration_s: f64,
    /// Responses per second.
    pub requests_per_sec: f64,
    /// Response bytes received.
    pub bytes: u64,
    /// Response bytes per second.
    pub bytes_per_sec: f64,
    /// Latency in microseconds.
    pub latency_us: Latency,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Connections.
    pub connections: usize,
    /// Threads.
    pub threads: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Target rate, if constant-rate.
    pub rate: Option<f64>,
    /// URLs.
    pub urls: Vec<String>,
}

impl JsonReport {
    /// The report of `s`.
    pub fn new(s: &Summary<'_>) -> Self {
        let secs = s.elapsed.as_secs_f64();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        JsonReport {
            requests: s.stats.requests,
            duration_s: secs,
            requests_per_sec: per_sec(s.stats.requests),
            bytes: s.stats.bytes,
            bytes_per_sec: per_sec(s.stats.bytes),
            latency_us: Latency::of(s.stats),
            errors: s.stats.errors,
            connections: s.connections,
            threads: s.threads,
            pipeline: s.pipeline,
            rate: s.rate,
            urls: s.urls.to_vec(),
        }
    }

    /// Writes the report as pretty JSON to `path`.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

/// The line printed when the run starts, as wrk does.
pub fn banner(
    duration: Option<Duration>,
    requests: Option<u64>,
    urls: &[String],
    threads: usize,
    connections: usize,
) -> String {
    let what = match (duration, requests) {
        (_, Some(n)) => format!("{n} requests"),
        (Some(d), None) => format!("{} test", format_duration(d)),
        (None, None) => "test".to_string(),
    };
    format!(
        "Running {what} @ {}\n  {threads} threads and {connections} connections",
        urls.join(", ")
    )
}

/// The final human report, in wrk's layout.
pub fn human(s: &Summary<'_>) -> String {
    let j = JsonReport::new(s);
    let l = j.latency_us;
    let mut out = String::new();
    let _ = writeln!(out, "  Thread Stats   Avg      Stdev     Max");
    let _ = writeln!(
        out,
        "    Latency   {:>8} {:>8} {:>8}",
        format_us(l.mean),
        format_us(l.stdev),
        format_us(l.max as f64)
    );
    let _ = writeln!(out, "  Latency Distribution");
    for (label, value) in [
        ("50.000%", l.p50),
        ("75.000%", l.p75),
        ("90.000%", l.p90),
        ("99.000%", l.p99),
        ("99.900%", l.p999),
        ("99.990%", l.p9999),
        ("100.000%", l.max),
    ] {
        let _ = writeln!(out, "  {label:>9}  {:>8}", format_us(value as f64));
    }
    let _ = writeln!(
        out,
        "  {} requests in {}, {} read",
        j.requests,
        format_duration(s.elapsed),
        format_bytes(j.bytes as f64)
    );
    let e = j.errors;
    if e.socket() > 0 {
        let _ = writeln!(
            out,
            "  Socket errors: connect {}, read {}, write {}, timeout {}",
            e.connect, e.read, e.write, e.timeout
        );
    }
    if e.malformed > 0 {
        let _ = writeln!(out, "  Malformed responses: {}", e.malformed);
    }
    if e.status > 0 {
        let _ = writeln!(out, "  Non-2xx or 3xx responses: {}", e.status);
    }
    let _ = writeln!(out, "Requests/sec: {:>10.2}", j.requests_per_sec);
    let _ = write!(out, "Transfer/sec: {:>10}", format_bytes(j.bytes_per_sec));
    out
}

/// `1.23ms`-style latency from microseconds.
pub fn format_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.2}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// `12.34MB`-style sizes (binary units, as wrk).
pub fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", UNITS[unit])
}

/// `10.00s`-style durations.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{:.2}ms", secs * 1000.0)
    } else if secs < 120.0 {
        format!("{secs:.2}s")
    } else {
        format!("{:.2}m", secs / 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ErrorKind;

    fn sample() -> Stats {
        let mut s = Stats::new();
        for us in 1..=1000u64 {
            s.record_response(Duration::from_micros(us * 10), 200, 1000);
        }
        s.record_response(Duration::from_millis(50), 503, 100);
        s.record_error(ErrorKind::Timeout);
        s.record_error(ErrorKind::Malformed);
        s
    }

    #[test]
    fn json_has_every_field() {
        let stats = sample();
        let urls = vec!["http://127.0.0.1:8080/".to_string()];
        let summary = Summary {
            stats: &stats,
            elapsed: Duration::from_secs(2),
            threads: 2,
            connections: 8,
            pipeline: 1,
            rate: None,
            urls: &urls,
        };
        let j = JsonReport::new(&summary);
        assert_eq!(j.requests, 1001);
        assert_eq!(j.requests_per_sec, 500.5);
        assert_eq!(j.bytes_per_sec, 500_050.0);
        let value = serde_json::to_value(&j).unwrap();
        for key in [
            "requests",
            "duration_s",
            "requests_per_sec",
            "bytes_per_sec",
        ] {
            assert!(value[key].is_number(), "{key}");
        }
        for key in ["p50", "p75", "p90", "p99", "p999", "p9999", "max"] {
            assert!(value["latency_us"][key].is_u64(), "{key}");
        }
        for key in ["connect", "read", "write", "timeout", "status", "malformed"] {
            assert!(value["errors"][key].is_u64(), "{key}");
        }
        assert_eq!(value["errors"]["status"], 1);
        assert_eq!(value["errors"]["timeout"], 1);
        let p50 = value["latency_us"]["p50"].as_u64().unwrap();
        assert!((4990..=5020).contains(&p50), "{p50}");
        assert!(value["latency_us"]["max"].as_u64().unwrap() >= 50_000);

        let dir = std::env::temp_dir().join(format!("loadgen-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        j.write_to(&path).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, value);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn human_report_layout() {
        let stats = sample();
        let urls = vec!["http://h/".to_string()];
        let summary = Summary {
            stats: &stats,
            elapsed: Duration::from_secs(10),
            threads: 2,
            connections: 8,
            pipeline: 1,
            rate: None,
            urls: &urls,
        };
        let text = human(&summary);
        assert!(text.contains("Latency Distribution"));
        assert!(text.contains("99.990%"));
        assert!(text.contains("1001 requests in 10.00s, 976.66KB read"));
        assert!(text.contains("Socket errors: connect 0, read 0, write 0, timeout 1"));
        assert!(text.contains("Malformed responses: 1"));
        assert!(text.contains("Non-2xx or 3xx responses: 1"));
        assert!(text.contains("Requests/sec:     100.10"));
        assert_eq!(
            banner(Some(Duration::from_secs(10)), None, &urls, 2, 8),
            "Running 10.00s test @ http://h/\n  2 threads and 8 connections"
        );
        assert!(banner(None, Some(5), &urls, 1, 1).starts_with("Running 5 requests"));
    }

    #[test]
    fn empty_run_reports_zeros() {
        let stats = Stats::new();
        let summary = Summary {
            stats: &stats,
            elapsed: Duration::ZERO,
            threads: 1,
            connections: 1,
            pipeline: 1,
            rate: Some(10.0),
            urls: &[],
        };
        let j = JsonReport::new(&summary);
        assert_eq!(
            (j.requests, j.requests_per_sec, j.latency_us.max),
            (0, 0.0, 0)
        );
        assert!(human(&summary).contains("0 requests"));
    }

    #[test]
    fn units() {
        assert_eq!(format_us(12.345), "12.35us");
        assert_eq!(format_us(1500.0), "1.50ms");
        assert_eq!(format_us(2_500_000.0), "2.50s");
        assert_eq!(format_bytes(512.0), "512.00B");
        assert_eq!(format_bytes(1536.0), "1.50KB");
        assert_eq!(format_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00GB");
        assert_eq!(format_duration(Duration::from_millis(250)), "250.00ms");
        assert_eq!(format_duration(Duration::from_secs(300)), "5.00m");
    }
}
