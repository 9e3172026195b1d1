//! Constant-rate scheduling (`-R`), wrk2 style.
//!
//! With `rate` requests per second spread over `connections` connections, connection
//! `k` intends to send its request `i` at
//! `start + (i * connections + k) / rate` seconds: each connection runs at
//! `rate / connections`, and the connections' sends interleave evenly. Latency is
//! measured from this *intended* time, not from when the request was actually written,
//! so a server stall that delays sends shows up in the latency of every request it
//! delayed (the coordinated-omission correction of wrk2). As in wrk2, a connection's
//! schedule starts once it is open ([`RateSchedule::open_at`]): the requests a
//! connection could not send while it was still connecting are not charged with the
//! time the connection took to open.

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

    /// The connection opened at `at`: if it has not taken a request yet and `at` is
    /// past the schedule's start, the schedule starts at `at` instead (every intended
    /// time moves by the same amount, so the connections still interleave evenly when
    /// they open together).
    pub fn open_at(&mut self, at: Instant) {
        if self.next == 0 && at > self.start {
            self.start = at;
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
    fn the_schedule_starts_when_the_connection_opens_before_its_first_request() {
        let start = Instant::now();
        let mut s = RateSchedule::new(start, 10.0, 2, 1);
        // Opened before the start: nothing moves.
        s.open_at(start - Duration::from_millis(5));
        assert_eq!(s.next_due(), start + Duration::from_millis(100));
        // Opened 30 ms late: the whole schedule moves by 30 ms.
        s.open_at(start + Duration::from_millis(30));
        assert_eq!(s.take(), start + Duration::from_millis(130));
        assert_eq!(s.next_due(), start + Duration::from_millis(330));
        // A reconnect after the first request changes nothing.
        s.open_at(start + Duration::from_secs(5));
        assert_eq!(s.next_due(), start + Duration::from_millis(330));
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
