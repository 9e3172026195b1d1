//! Constant-rate scheduling (`-R`), wrk2 style.
//!
//! With `rate` requests per second spread over `connections` connections, connection
//! `k` intends to send its request `i` at
//! `start + (i * connections + k) / rate` seconds: each connection runs at
//! `rate / connections`, and the connections' sends interleave evenly. Latency is
//! measured from this *intended* time, not from when the request was actually written,
//! so a server stall that delays sends shows up in the latency of every request it
//! delayed (the coordinated-omission correction of wrk2).

use std::time::{Duration, Instant};

/// The intended send times of one connection's requests.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSchedule {
    start: Instant,
    /// Seconds between two requests of the whole run: `1 / rate`.
    spacing: f64,
    connections: u64,
    index: u64,
    next: u64,
}

impl RateSchedule {
    /// The schedule of connection `index` of `connections` (`index < connections`)
    /// at a total of `rate` requests per second (`rate > 0`).
    pub fn new(start: Instant, rate: f64, connections: u64, index: u64) -> Self {
        RateSchedule {
            start,
            spacing: 1.0 / rate,
            connections: connections.max(1),
            index,
            next: 0,
        }
    }

    /// The intended send time of this connection's request number `i`.
    pub fn intended(&self, i: u64) -> Instant {
        let slot = i as f64 * self.connections as f64 + self.index as f64;
        self.start + Duration::from_secs_f64((slot * self.spacing).min(1e12))
    }

    /// The intended time of the next request not yet taken.
    pub fn next_due(&self) -> Instant {
        self.intended(self.next)
    }

    /// Takes the next request: returns its intended time and moves on.
    pub fn take(&mut self) -> Instant {
        let due = self.next_due();
        self.next += 1;
        due
    }

    /// How many requests have been taken.
    pub fn taken(&self) -> u64 {
        self.next
    }
}

// Tests of plans on the real clock; no simulation reaches them.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_at_ten_per_second() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 10.0, 1, 0);
        assert_eq!(s.take(), start);
        assert_eq!(s.take(), start + Duration::from_millis(100));
        assert_eq!(s.next_due(), start + Duration::from_millis(200));
        assert_eq!(s.taken(), 2);
        assert_eq!(s.intended(100), start + Duration::from_secs(10));
    }

    #[test]
    fn connections_interleave_evenly_at_the_total_rate() {
        let start = Instant::now();
        let conns = 4;
        let rate = 1000.0;
        let mut all: Vec<Instant> = (0..conns)
            .flat_map(|k| {
                let s = RateSchedule::new(start, rate, conns, k);
                (0..250).map(move |i| s.intended(i))
            })
            .collect();
        all.sort();
        // 1000 sends in one second, one every millisecond (to rounding).
        assert_eq!(all.len(), 1000);
        for (n, t) in all.iter().enumerate() {
            let want = Duration::from_millis(n as u64);
            let got = t.duration_since(start);
            let diff = got.abs_diff(want);
            assert!(diff < Duration::from_micros(1), "send {n} at {got:?}");
        }
        // Each connection runs at rate / conns.
        let s = RateSchedule::new(start, rate, conns, 2);
        assert_eq!(s.intended(1) - s.intended(0), Duration::from_millis(4));
        assert_eq!(s.intended(0) - start, Duration::from_millis(2));
    }

    #[test]
    fn fractional_rates_and_far_futures() {
        let start = Instant::now();
        let s = RateSchedule::new(start, 0.5, 1, 0);
        assert_eq!(s.intended(3), start + Duration::from_secs(6));
        let fast = RateSchedule::new(start, 1e6, 1, 0);
        assert_eq!(fast.intended(1_000_000), start + Duration::from_secs(1));
        // Huge indices do not overflow.
        let _ = s.intended(u64::MAX);
    }
}
