//! Per-thread statistics: latency histogram, counts and errors, mergeable.

use std::cell::RefCell;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded exactly (one hour, in microseconds); above it values
/// saturate.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The kinds of error a load test counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection could not be established.
    Connect,
    /// Reading failed, or the server closed with requests outstanding.
    Read,
    /// Writing a request failed.
    Write,
    /// No response within the timeout.
    Timeout,
    /// A response whose status is not 2xx or 3xx (the response still counts).
    Status,
    /// A response that is not valid HTTP.
    Malformed,
}

/// Error counts by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Failed connection attempts.
    pub connect: u64,
    /// Read failures and early closes.
    pub read: u64,
    /// Write failures.
    pub write: u64,
    /// Timeouts.
    pub timeout: u64,
    /// Non-2xx/3xx responses.
    pub status: u64,
    /// Malformed responses.
    pub malformed: u64,
}

impl ErrorCounts {
    /// Adds one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        let slot = match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Read => &mut self.read,
            ErrorKind::Write => &mut self.write,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Status => &mut self.status,
            ErrorKind::Malformed => &mut self.malformed,
        };
        *slot += 1;
    }

    /// Socket-level errors (everything but `status`).
    pub fn socket(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.malformed
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.read += other.read;
        self.write += other.write;
        self.timeout += other.timeout;
        self.status += other.status;
        self.malformed += other.malformed;
    }
}

/// What one thread (or the whole run, after merging) measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Response latencies in microseconds (3 significant digits).
    pub latency: Histogram<u64>,
    /// Complete responses (of any status).
    pub requests: u64,
    /// Response bytes received (heads and bodies).
    pub bytes: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Self {
        Stats {
            // The bounds are constants that hdrhistogram accepts (low >= 1, high >=
            // 2 * low, 3 significant digits), so this cannot fail.
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            requests: 0,
            bytes: 0,
            errors: ErrorCounts::default(),
        }
    }

    /// Records a complete response.
    pub fn record_response(&mut self, latency: Duration, status: u16, bytes: u64) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(us);
        self.requests += 1;
        self.bytes += bytes;
        if !(200..400).contains(&status) {
            self.errors.add(ErrorKind::Status);
        }
    }

    /// Records an error.
    pub fn record_error(&mut self, kind: ErrorKind) {
        self.errors.add(kind);
    }

    /// Adds `other` into `self` (histograms with equal bounds always merge).
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms were built by `Stats::new` with the same bounds; `add`
        // only fails when the other's values exceed ours, which saturation prevents.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.errors.merge(&other.errors);
    }
}

/// Where a connection records what it measures: [`Stats`] of its own, or statistics
/// shared by the connections of one core through a `RefCell` (borrowed only for each
/// record, so a histogram per core suffices however many connections it runs).
pub trait Recorder {
    /// Records a complete response.
    fn record_response(&mut self, latency: Duration, status: u16, bytes: u64);

    /// Records an error.
    fn record_error(&mut self, kind: ErrorKind);
}

impl Recorder for Stats {
    fn record_response(&mut self, latency: Duration, status: u16, bytes: u64) {
        Stats::record_response(self, latency, status, bytes);
    }

    fn record_error(&mut self, kind: ErrorKind) {
        Stats::record_error(self, kind);
    }
}

impl Recorder for &RefCell<Stats> {
    fn record_response(&mut self, latency: Duration, status: u16, bytes: u64) {
        self.borrow_mut().record_response(latency, status, bytes);
    }

    fn record_error(&mut self, kind: ErrorKind) {
        self.borrow_mut().record_error(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = Stats::new();
        a.record_response(Duration::from_micros(100), 200, 10);
        a.record_response(Duration::from_micros(300), 404, 20);
        a.record_response(Duration::from_secs(7200), 301, 0);
        a.record_response(Duration::ZERO, 200, 0);
        a.record_error(ErrorKind::Timeout);
        let mut b = Stats::new();
        b.record_response(Duration::from_millis(2), 500, 5);
        b.record_error(ErrorKind::Connect);
        b.record_error(ErrorKind::Malformed);
        a.merge(&b);
        assert_eq!(a.requests, 5);
        assert_eq!(a.bytes, 35);
        assert_eq!(a.latency.len(), 5);
        assert_eq!(a.latency.value_at_quantile(0.5), 300);
        assert!(a.latency.max() >= MAX_LATENCY_US);
        assert_eq!(
            a.errors,
            ErrorCounts {
                connect: 1,
                read: 0,
                write: 0,
                timeout: 1,
                status: 2,
                malformed: 1
            }
        );
        assert_eq!(a.errors.socket(), 3);
    }

    #[test]
    fn shared_recorders_record_into_one_stats() {
        let shared = RefCell::new(Stats::new());
        let (mut first, mut second) = (&shared, &shared);
        Recorder::record_response(&mut first, Duration::from_micros(5), 200, 7);
        Recorder::record_error(&mut second, ErrorKind::Write);
        Recorder::record_response(&mut second, Duration::from_micros(9), 502, 3);
        let s = shared.into_inner();
        assert_eq!((s.requests, s.bytes, s.latency.len()), (2, 10, 2));
        assert_eq!((s.errors.write, s.errors.status), (1, 1));
    }
}
