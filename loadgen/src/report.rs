//! The final report: a human one in wrk's layout (with wrk2's percentile spectrum on
//! request), JSON for scripts, and the verdict that decides the exit status.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{ErrorCounts, Second, Stats};

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

/// One row of the latency percentile spectrum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectrumRow {
    /// The highest latency of the row's histogram bucket, microseconds.
    pub value_us: u64,
    /// The quantile the iteration reached (0 to 1; the last row is 1).
    pub quantile: f64,
    /// Responses at or below `value_us`.
    pub total_count: u64,
}

impl SpectrumRow {
    /// `1/(1-quantile)`, the spectrum's log-scale abscissa (infinite at 1).
    pub fn inverse(&self) -> f64 {
        1.0 / (1.0 - self.quantile)
    }
}

/// Steps per halving of the distance to 100% in the spectrum (HdrHistogram's and
/// wrk2's usual).
pub const SPECTRUM_TICKS: u32 = 5;

/// The percentile spectrum of `h`: HdrHistogram's quantile iteration with
/// [`SPECTRUM_TICKS`] steps per half distance, ending at quantile 1 with the total
/// count (empty for an empty histogram).
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumRow> {
    let mut total = 0;
    h.iter_quantiles(SPECTRUM_TICKS)
        .map(|v| {
            total += v.count_since_last_iteration();
            SpectrumRow {
                value_us: v.value_iterated_to(),
                quantile: v.quantile_iterated_to(),
                total_count: total,
            }
        })
        .collect()
}

/// The spectrum of `h` in HdrHistogram's classic text format (a `.hgrm` file, as
/// wrk2 `--latency` prints it): values in milliseconds, then the mean, standard
/// deviation, maximum, total count and the histogram's shape.
pub fn spectrum_text(h: &Histogram<u64>) -> String {
    let ms = |us: f64| us / 1000.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>12} {:>12} {:>12}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for row in spectrum(h) {
        let _ = writeln!(
            out,
            "{:12.3} {:12.6} {:12} {:12.2}",
            ms(row.value_us as f64),
            row.quantile,
            row.total_count,
            row.inverse()
        );
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean(), h.stdev(), h.max() as f64)
    };
    // HdrHistogram's sub-bucket count: the power of two that holds 2 * 10^digits.
    let sub_buckets = (2 * 10u32.pow(u32::from(h.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        ms(mean),
        ms(stdev)
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        ms(max),
        h.len()
    );
    let _ = write!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    out
}

/// One second of the run (the last one, when it is shorter than half a second, is
/// folded into the one before).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondFigures {
    /// Start, seconds since the start of the run.
    pub start_s: f64,
    /// Length in seconds: 1, except for the last.
    pub span_s: f64,
    /// Complete responses that arrived in it.
    pub requests: u64,
    /// `requests / span_s`.
    pub requests_per_sec: f64,
    /// Errors of every kind counted in it (error statuses included).
    pub errors: u64,
    /// 99th percentile latency of its responses in microseconds (2 significant
    /// digits); `null` without responses.
    pub p99_us: Option<u64>,
}

/// The per-second figures of `s`: one for each second of the run.
pub fn per_second(s: &Summary<'_>) -> Vec<SecondFigures> {
    let elapsed = s.elapsed.as_secs_f64();
    let count = (elapsed.ceil() as usize).max(s.stats.seconds.len());
    let mut seconds: Vec<(f64, f64, Second)> = (0..count)
        .map(|i| {
            let start = i as f64;
            let span = (elapsed - start).clamp(0.0, 1.0);
            let second = s.stats.seconds.get(i).cloned().unwrap_or_default();
            (start, span, second)
        })
        .collect();
    if seconds.len() >= 2 && seconds[seconds.len() - 1].1 < 0.5 {
        if let Some((_, span, last)) = seconds.pop() {
            if let Some(previous) = seconds.last_mut() {
                previous.1 += span;
                previous.2.merge(&last);
            }
        }
    }
    seconds
        .into_iter()
        .map(|(start_s, span_s, second)| SecondFigures {
            start_s,
            span_s,
            requests: second.requests,
            requests_per_sec: if span_s > 0.0 {
                second.requests as f64 / span_s
            } else {
                0.0
            },
            errors: second.errors,
            p99_us: (!second.latency.is_empty()).then(|| second.latency.value_at_quantile(0.99)),
        })
        .collect()
}

/// Why a run that happened failed (the binary's exit status 3).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunFailure {
    /// No 2xx or 3xx response arrived.
    #[error(
        "no request succeeded: {requests} responses ({status} with error statuses), \
         {socket} socket errors"
    )]
    NoSuccess {
        /// Complete responses.
        requests: u64,
        /// Those with an error status.
        status: u64,
        /// Socket errors.
        socket: u64,
    },
    /// The error rate ([`Stats::error_rate`]) exceeded the limit.
    #[error("error rate {:.2}% exceeds --max-error-rate {:.2}%", .rate * 100.0, .max * 100.0)]
    ErrorRate {
        /// The run's error rate.
        rate: f64,
        /// The limit.
        max: f64,
    },
}

/// Whether the run passed: some response succeeded, and the error rate is at most
/// `max_error_rate` (a fraction) when given.
pub fn verdict(stats: &Stats, max_error_rate: Option<f64>) -> Result<(), RunFailure> {
    if stats.successes() == 0 {
        return Err(RunFailure::NoSuccess {
            requests: stats.requests,
            status: stats.errors.status,
            socket: stats.errors.socket(),
        });
    }
    let rate = stats.error_rate();
    match max_error_rate {
        Some(max) if rate > max => Err(RunFailure::ErrorRate { rate, max }),
        _ => Ok(()),
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
    /// Bytes received, complete responses or not.
    pub bytes: u64,
    /// Bytes received per second.
    pub bytes_per_sec: f64,
    /// Latency in microseconds.
    pub latency_us: Latency,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Seconds into the run from which no connection was open and every connection
    /// attempt failed, to the end; `null` when the target was reachable at the end.
    pub unreachable_since_s: Option<f64>,
    /// Figures for each second of the run.
    pub per_second: Vec<SecondFigures>,
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
            unreachable_since_s: s.stats.reach.unreachable_since().map(|t| t.as_secs_f64()),
            per_second: per_second(s),
            connections: s.connections,
            threads: s.threads,
            pipeline: s.pipeline,
            rate: s.rate,
            urls: s.urls.to_vec(),
        }
    }

    /// Writes the report as pretty JSON to `out`.
    pub fn write_to(&self, mut out: impl io::Write) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        out.write_all((text + "\n").as_bytes())
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

/// The final human report, in wrk's layout; with `spectrum`, the latency distribution
/// is followed by the full percentile spectrum as wrk2 `--latency` prints it.
pub fn human(s: &Summary<'_>, spectrum: bool) -> String {
    let j = JsonReport::new(s);
    let mut out = String::new();
    if s.stats.latency.is_empty() {
        // No percentiles of nothing: a table of zeros would read as instant answers.
        let _ = writeln!(out, "  Latency: no response arrived");
    } else {
        latency_table(&mut out, s, &j.latency_us, spectrum);
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
    if let Some(since) = j.unreachable_since_s {
        let _ = writeln!(
            out,
            "  Target unreachable since {since:.2}s: every connection attempt failed from then on"
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

/// The latency part of [`human`]: wrk's thread stats and distribution, and with
/// `spectrum` the full percentile spectrum.
fn latency_table(out: &mut String, s: &Summary<'_>, l: &Latency, spectrum: bool) {
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
    if spectrum {
        let _ = writeln!(out, "\n  Detailed Percentile spectrum:");
        let _ = writeln!(out, "{}", spectrum_text(&s.stats.latency));
        let _ = writeln!(out, "{}", "-".repeat(58));
    }
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
    use crate::stats::{ErrorKind, SlotEnd};

    /// 1000 responses of 10 us to 10 ms over 1.9 s, a slow 503 and two errors.
    fn sample() -> Stats {
        let mut s = Stats::new();
        for us in 1..=1000u64 {
            let at = Duration::from_micros(us * 1900);
            s.record_response(at, Duration::from_micros(us * 10), 200);
            s.record_bytes(1000);
        }
        let at = Duration::from_millis(1950);
        s.record_response(at, Duration::from_millis(50), 503);
        s.record_bytes(100);
        s.record_error(at, ErrorKind::Timeout);
        s.record_error(at, ErrorKind::Malformed);
        s
    }

    fn summary<'a>(stats: &'a Stats, elapsed: Duration, urls: &'a [String]) -> Summary<'a> {
        Summary {
            stats,
            elapsed,
            threads: 2,
            connections: 8,
            pipeline: 1,
            rate: None,
            urls,
        }
    }

    #[test]
    fn json_has_every_field() {
        let stats = sample();
        let urls = vec!["http://127.0.0.1:8080/".to_string()];
        let j = JsonReport::new(&summary(&stats, Duration::from_secs(2), &urls));
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
        assert!(value["unreachable_since_s"].is_null());
        let seconds = value["per_second"].as_array().unwrap();
        assert_eq!(seconds.len(), 2);
        // Responses at 1.9 ms intervals: 526 of them in the first second.
        assert_eq!(seconds[0]["requests"], 526);
        assert_eq!(seconds[1]["requests"], 475);
        assert_eq!(seconds[1]["errors"], 3);
        assert_eq!(seconds[1]["span_s"], 1.0);

        let mut written = Vec::new();
        j.write_to(&mut written).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn per_second_figures_cover_the_run() {
        let stats = sample();
        let urls = [];
        // A short tail (0.2 s) is folded into the second before it.
        let seconds = per_second(&summary(&stats, Duration::from_millis(2200), &urls));
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[1].span_s, 1.2000000000000002);
        assert_eq!(seconds[1].requests, 475);
        assert!((seconds[1].requests_per_sec - 475.0 / 1.2).abs() < 1e-9);
        // The slowest percent of the last second: its 10 ms responses and the 503.
        let p99 = seconds[1].p99_us.unwrap();
        assert!((9_900..=10_100).contains(&p99), "{p99}");
        let p99 = seconds[0].p99_us.unwrap();
        assert!((5_100..=5_300).contains(&p99), "{p99}");
        // A long tail stays; seconds without responses are zeros.
        let seconds = per_second(&summary(&stats, Duration::from_millis(3600), &urls));
        assert_eq!(seconds.len(), 4);
        assert_eq!((seconds[3].span_s * 10.0).round(), 6.0);
        assert_eq!((seconds[2].requests, seconds[2].p99_us), (0, None));
        let total: u64 = seconds.iter().map(|s| s.requests).sum();
        assert_eq!(total, stats.requests);
    }

    #[test]
    fn spectrum_is_hdrhistogram_text() {
        let stats = sample();
        let rows = spectrum(&stats.latency);
        assert_eq!(rows[0].quantile, 0.0);
        assert!(rows.windows(2).all(|w| w[0].quantile < w[1].quantile));
        assert!(rows.windows(2).all(|w| w[0].value_us <= w[1].value_us));
        let last = rows.last().unwrap();
        assert_eq!((last.quantile, last.total_count), (1.0, 1001));
        assert_eq!(last.value_us, stats.latency.max());
        let text = spectrum_text(&stats.latency);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value   Percentile   TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        assert_eq!(
            lines.next(),
            Some("       0.010     0.000000            1         1.00")
        );
        assert!(text.contains("\n       5.011     0.500000          501         2.00\n"));
        assert!(text.contains("\n      50.015     1.000000         1001          inf\n"));
        assert!(text.contains("#[Mean    =        5.051, StdDeviation   =        3.217]"));
        assert!(text.contains("#[Max     =       50.015, Total count    =         1001]"));
        assert!(text.ends_with("#[Buckets =           22, SubBuckets     =         2048]"));
        let empty = spectrum_text(&Stats::new().latency);
        assert_eq!(empty.lines().count(), 5, "{empty}");
    }

    #[test]
    fn verdicts() {
        let mut stats = Stats::new();
        let none = verdict(&stats, None).unwrap_err();
        assert!(matches!(none, RunFailure::NoSuccess { .. }));
        assert_eq!(
            none.to_string(),
            "no request succeeded: 0 responses (0 with error statuses), 0 socket errors"
        );
        let t = Duration::ZERO;
        stats.record_response(t, Duration::from_millis(1), 500);
        assert!(matches!(
            verdict(&stats, None),
            Err(RunFailure::NoSuccess { .. })
        ));
        for _ in 0..3 {
            stats.record_response(t, Duration::from_millis(1), 200);
        }
        assert_eq!(verdict(&stats, None), Ok(()));
        assert_eq!(verdict(&stats, Some(0.25)), Ok(()));
        let over = verdict(&stats, Some(0.2)).unwrap_err();
        assert_eq!(
            over.to_string(),
            "error rate 25.00% exceeds --max-error-rate 20.00%"
        );
        stats.record_error(t, ErrorKind::Connect);
        // 2 failures (a 500 and a connect error) of 5 attempts.
        assert_eq!(stats.error_rate(), 0.4);
    }

    #[test]
    fn human_report_layout() {
        let mut stats = sample();
        let urls = vec!["http://h/".to_string()];
        let text = human(&summary(&stats, Duration::from_secs(10), &urls), false);
        assert!(text.contains("Latency Distribution"));
        assert!(text.contains("99.990%"));
        assert!(text.contains("1001 requests in 10.00s, 976.66KB read"));
        assert!(text.contains("Socket errors: connect 0, read 0, write 0, timeout 1"));
        assert!(text.contains("Malformed responses: 1"));
        assert!(text.contains("Non-2xx or 3xx responses: 1"));
        assert!(text.contains("Requests/sec:     100.10"));
        assert!(!text.contains("Percentile spectrum"));
        assert!(!text.contains("unreachable"));
        assert_eq!(
            banner(Some(Duration::from_secs(10)), None, &urls, 2, 8),
            "Running 10.00s test @ http://h/\n  2 threads and 8 connections"
        );
        assert!(banner(None, Some(5), &urls, 1, 1).starts_with("Running 5 requests"));

        stats.record_slot_end(SlotEnd::Unreachable {
            since: Duration::from_millis(7250),
        });
        let text = human(&summary(&stats, Duration::from_secs(10), &urls), true);
        assert!(
            text.contains("\n  Target unreachable since 7.25s: "),
            "{text}"
        );
        let spectrum_at = text.find("\n  Detailed Percentile spectrum:\n").unwrap();
        assert!(text[spectrum_at..].contains(&spectrum_text(&stats.latency)));
        assert!(spectrum_at > text.find("100.000%").unwrap());
        assert!(spectrum_at < text.find("1001 requests in").unwrap());

        // No response: no table of zero latencies, with or without the spectrum.
        let mut none = Stats::new();
        none.record_error(Duration::from_millis(5), ErrorKind::Timeout);
        for spectrum in [false, true] {
            let text = human(&summary(&none, Duration::from_secs(1), &urls), spectrum);
            assert!(text.starts_with("  Latency: no response arrived\n  0 requests in 1.00s"));
            assert!(
                !text.contains("Distribution") && !text.contains('%'),
                "{text}"
            );
        }
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
        assert!(j.per_second.is_empty());
        assert!(human(&summary, true).contains("0 requests"));
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
