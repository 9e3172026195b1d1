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
    /// Bytes received from the server, counted as they arrive: the heads and bodies
    /// of every response, complete or not (wrk's "read").
    pub bytes: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// One entry per second of the run (index: whole seconds since its start), up to
    /// the last second in which something was recorded.
    pub seconds: Vec<Second>,
    /// Whether the connections could still reach the target when they stopped.
    pub reach: Reach,
}

/// What one second of the run measured.
#[derive(Debug, Clone)]
pub struct Second {
    /// Complete responses that arrived in this second.
    pub requests: u64,
    /// Errors of every kind counted in this second (error statuses included).
    pub errors: u64,
    /// Those responses' latencies in microseconds (2 significant digits; the
    /// histogram grows to the largest value recorded).
    pub latency: Histogram<u32>,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            requests: 0,
            errors: 0,
            // 2 significant digits is a valid precision, so this cannot fail.
            latency: Histogram::new(2)
                .unwrap_or_else(|_| unreachable!("2 significant digits are valid")),
        }
    }
}

impl Second {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Second) {
        self.requests += other.requests;
        self.errors += other.errors;
        // An auto-resizing histogram takes any other's values.
        let _ = self.latency.add(&other.latency);
    }
}

/// How one connection slot (a `-c` connection and its reconnections) last found the
/// target when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotEnd {
    /// Its last connection attempt succeeded; it stopped `at` (since the start).
    Reached {
        /// When the slot stopped.
        at: Duration,
    },
    /// Every connection attempt it made from `since` (since the start) failed.
    Unreachable {
        /// When its final run of failed attempts began.
        since: Duration,
    },
}

/// Whether the target was reachable at the end of the run, merged over connection
/// slots: it is unreachable since `T` when from `T` to the end no connection was open
/// and every connection attempt failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// The latest time a slot stopped with its last connection attempt successful.
    pub reached_at: Option<Duration>,
    /// The latest start of a slot's final run of failed connection attempts.
    pub failing_since: Option<Duration>,
}

impl Reach {
    /// Records how one slot ended.
    pub fn record(&mut self, end: SlotEnd) {
        let (slot, t) = match end {
            SlotEnd::Reached { at } => (&mut self.reached_at, at),
            SlotEnd::Unreachable { since } => (&mut self.failing_since, since),
        };
        *slot = (*slot).max(Some(t));
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Reach) {
        self.reached_at = self.reached_at.max(other.reached_at);
        self.failing_since = self.failing_since.max(other.failing_since);
    }

    /// Since when (from the start of the run) the target has been unreachable: every
    /// slot that stopped after that time had been failing to connect since then or
    /// earlier. `None` when a slot could reach it at the end (or none tried).
    pub fn unreachable_since(&self) -> Option<Duration> {
        let since = self.failing_since?;
        match self.reached_at {
            Some(at) if at >= since => None,
            _ => Some(since),
        }
    }
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
            seconds: Vec::new(),
            reach: Reach::default(),
        }
    }

    /// The entry of the second `at` (since the start) falls in.
    fn second(&mut self, at: Duration) -> &mut Second {
        let index = usize::try_from(at.as_secs()).unwrap_or(usize::MAX);
        if index >= self.seconds.len() {
            self.seconds.resize_with(index + 1, Second::default);
        }
        &mut self.seconds[index]
    }

    /// Records a complete response that arrived `at` (since the start of the run).
    pub fn record_response(&mut self, at: Duration, latency: Duration, status: u16) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_LATENCY_US);
        self.latency.saturating_record(us);
        self.requests += 1;
        let second = self.second(at);
        second.requests += 1;
        // The histogram grows to take any value up to `MAX_LATENCY_US` and its
        // counts cannot overflow within one second, so recording cannot fail.
        let _ = second.latency.record(us);
        if !(200..400).contains(&status) {
            self.record_error(at, ErrorKind::Status);
        }
    }

    /// Records `n` bytes received from the server.
    pub fn record_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    /// Records an error that happened `at` (since the start of the run).
    pub fn record_error(&mut self, at: Duration, kind: ErrorKind) {
        self.errors.add(kind);
        self.second(at).errors += 1;
    }

    /// Records how a connection slot ended.
    pub fn record_slot_end(&mut self, end: SlotEnd) {
        self.reach.record(end);
    }

    /// Complete responses with a 2xx or 3xx status.
    pub fn successes(&self) -> u64 {
        self.requests.saturating_sub(self.errors.status)
    }

    /// The share of attempts that failed: (socket errors + error statuses) /
    /// (complete responses + socket errors); 0 when nothing was attempted. A
    /// non-2xx/3xx response is one attempt that failed; a failed connect, read or
    /// write, a timeout and a malformed response each one more.
    pub fn error_rate(&self) -> f64 {
        let socket = self.errors.socket();
        let attempts = self.requests + socket;
        if attempts == 0 {
            0.0
        } else {
            (socket + self.errors.status) as f64 / attempts as f64
        }
    }

    /// Adds `other` into `self` (histograms with equal bounds always merge).
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms were built by `Stats::new` with the same bounds; `add`
        // only fails when the other's values exceed ours, which saturation prevents.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.errors.merge(&other.errors);
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize_with(other.seconds.len(), Second::default);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.merge(theirs);
        }
        self.reach.merge(&other.reach);
    }
}

/// Where a connection records what it measures: [`Stats`] of its own, or statistics
/// shared by the connections of one core through a `RefCell` (borrowed only for each
/// record, so a histogram per core suffices however many connections it runs). Times
/// `at` count from the start of the run.
pub trait Recorder {
    /// Records a complete response.
    fn record_response(&mut self, at: Duration, latency: Duration, status: u16);

    /// Records bytes received from the server, as they arrive.
    fn record_bytes(&mut self, n: u64);

    /// Records an error.
    fn record_error(&mut self, at: Duration, kind: ErrorKind);

    /// Records how a connection slot ended.
    fn record_slot_end(&mut self, end: SlotEnd);
}

impl Recorder for Stats {
    fn record_response(&mut self, at: Duration, latency: Duration, status: u16) {
        Stats::record_response(self, at, latency, status);
    }

    fn record_bytes(&mut self, n: u64) {
        Stats::record_bytes(self, n);
    }

    fn record_error(&mut self, at: Duration, kind: ErrorKind) {
        Stats::record_error(self, at, kind);
    }

    fn record_slot_end(&mut self, end: SlotEnd) {
        Stats::record_slot_end(self, end);
    }
}

impl Recorder for &RefCell<Stats> {
    fn record_response(&mut self, at: Duration, latency: Duration, status: u16) {
        self.borrow_mut().record_response(at, latency, status);
    }

    fn record_bytes(&mut self, n: u64) {
        self.borrow_mut().record_bytes(n);
    }

    fn record_error(&mut self, at: Duration, kind: ErrorKind) {
        self.borrow_mut().record_error(at, kind);
    }

    fn record_slot_end(&mut self, end: SlotEnd) {
        self.borrow_mut().record_slot_end(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::ZERO;

    #[test]
    fn records_and_merges() {
        let mut a = Stats::new();
        a.record_response(T0, Duration::from_micros(100), 200);
        a.record_response(T0, Duration::from_micros(300), 404);
        a.record_response(T0, Duration::from_secs(7200), 301);
        a.record_response(T0, Duration::ZERO, 200);
        a.record_bytes(30);
        a.record_error(T0, ErrorKind::Timeout);
        let mut b = Stats::new();
        b.record_response(T0, Duration::from_millis(2), 500);
        b.record_bytes(5);
        b.record_error(T0, ErrorKind::Connect);
        b.record_error(T0, ErrorKind::Malformed);
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
        assert_eq!(a.successes(), 3);
        // 3 socket errors and 2 error statuses of 5 responses + 3 socket errors.
        assert_eq!(a.error_rate(), 5.0 / 8.0);
        assert_eq!(Stats::new().error_rate(), 0.0);
    }

    #[test]
    fn seconds_are_recorded_and_merged() {
        let mut a = Stats::new();
        a.record_response(Duration::from_millis(300), Duration::from_millis(1), 200);
        a.record_response(Duration::from_millis(2500), Duration::from_millis(9), 503);
        let mut b = Stats::new();
        b.record_response(Duration::from_millis(999), Duration::from_millis(3), 200);
        b.record_error(Duration::from_millis(3100), ErrorKind::Read);
        a.merge(&b);
        let requests: Vec<u64> = a.seconds.iter().map(|s| s.requests).collect();
        let errors: Vec<u64> = a.seconds.iter().map(|s| s.errors).collect();
        assert_eq!(requests, [2, 0, 1, 0]);
        assert_eq!(errors, [0, 0, 1, 1]);
        assert_eq!(a.seconds[0].latency.len(), 2);
        let p100 = a.seconds[0].latency.value_at_quantile(1.0);
        assert!((3000..3100).contains(&p100), "{p100}");
        assert!(a.seconds[1].latency.is_empty());
    }

    #[test]
    fn reach_merges_slots() {
        let s = Duration::from_secs;
        let mut r = Reach::default();
        assert_eq!(r.unreachable_since(), None, "no slot tried");
        r.record(SlotEnd::Unreachable { since: s(1) });
        r.record(SlotEnd::Unreachable { since: s(3) });
        assert_eq!(
            r.unreachable_since(),
            Some(s(3)),
            "the last slot to lose it"
        );
        let mut done_early = Reach::default();
        done_early.record(SlotEnd::Reached { at: s(2) });
        r.merge(&done_early);
        assert_eq!(r.unreachable_since(), Some(s(3)));
        let mut connected = Reach::default();
        connected.record(SlotEnd::Reached { at: s(10) });
        r.merge(&connected);
        assert_eq!(r.unreachable_since(), None, "a slot reached it at the end");
    }

    #[test]
    fn shared_recorders_record_into_one_stats() {
        let shared = RefCell::new(Stats::new());
        let (mut first, mut second) = (&shared, &shared);
        Recorder::record_response(&mut first, T0, Duration::from_micros(5), 200);
        Recorder::record_bytes(&mut first, 7);
        Recorder::record_error(&mut second, T0, ErrorKind::Write);
        Recorder::record_response(&mut second, T0, Duration::from_micros(9), 502);
        Recorder::record_bytes(&mut second, 3);
        Recorder::record_slot_end(&mut second, SlotEnd::Unreachable { since: T0 });
        let s = shared.into_inner();
        assert_eq!((s.requests, s.bytes, s.latency.len()), (2, 10, 2));
        assert_eq!((s.errors.write, s.errors.status), (1, 1));
        assert_eq!(s.reach.unreachable_since(), Some(T0));
    }
}
