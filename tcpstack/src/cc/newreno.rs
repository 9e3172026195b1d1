//! NewReno: RFC 5681 slow start and congestion avoidance (with RFC 3465 appropriate
//! byte counting) and the RFC 6582 window rules around recovery.

use core::time::Duration;

use super::{Window, MAX_CWND};
use crate::time::Instant;

/// NewReno congestion control state.
#[derive(Debug, Clone)]
pub struct NewReno {
    pub(crate) w: Window,
    /// Bytes acknowledged in congestion avoidance since the last increase.
    acked: u32,
}

impl NewReno {
    pub(crate) fn new(w: Window) -> Self {
        NewReno { w, acked: 0 }
    }

    pub(crate) fn on_ack(
        &mut self,
        _now: Instant,
        bytes_acked: u32,
        _rtt: Option<Duration>,
        in_flight: u32,
    ) {
        if !self.w.cwnd_limited(in_flight) {
            return;
        }
        let mut left = bytes_acked;
        if self.w.in_slow_start() {
            left = self.w.slow_start(bytes_acked);
        }
        if left == 0 {
            return;
        }
        // Congestion avoidance: one SMSS per cwnd of bytes acknowledged (RFC 5681
        // section 3.1, byte counting).
        self.acked = self.acked.saturating_add(left);
        if self.acked >= self.w.cwnd {
            self.acked = (self.acked - self.w.cwnd).min(self.w.cwnd);
            self.w.cwnd = (self.w.cwnd + self.w.mss).min(MAX_CWND);
        }
    }

    /// RFC 5681 equation (4): `ssthresh = max(FlightSize / 2, 2 * SMSS)`.
    fn decrease(&mut self, in_flight: u32) {
        self.w.ssthresh = (in_flight / 2).max(self.w.min_ssthresh());
        self.acked = 0;
    }

    pub(crate) fn on_congestion_event(&mut self, _now: Instant, in_flight: u32) {
        self.decrease(in_flight);
        self.w.cwnd = self.w.ssthresh;
    }

    pub(crate) fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        self.decrease(in_flight);
        self.w.cwnd = self.w.mss;
    }

    pub(crate) fn on_recovery_exit(&mut self, _now: Instant) {
        // RFC 6582 section 3.2 step 3, option (2).
        self.w.cwnd = self.w.ssthresh;
        self.acked = 0;
    }

    pub(crate) fn on_idle_restart(&mut self, _now: Instant) {
        self.w.cwnd = self.w.cwnd.min(self.w.initial);
    }
}

#[cfg(test)]
mod tests {
    use crate::cc::{CcAlgorithm, CcConfig, CongestionControl};
    use crate::time::Instant;

    fn reno(mss: u32) -> CongestionControl {
        let cfg = CcConfig {
            algorithm: CcAlgorithm::NewReno,
            ..CcConfig::default()
        };
        CongestionControl::new(&cfg, mss)
    }

    #[test]
    fn slow_start_with_abc_limit() {
        let mut cc = reno(1000);
        let now = Instant::ZERO;
        assert_eq!(cc.cwnd(), 10_000);
        // A stretch ACK of 5 segments grows cwnd by at most 2 SMSS (L = 2).
        cc.on_ack(now, 5000, None, 10_000);
        assert_eq!(cc.cwnd(), 12_000);
        cc.on_ack(now, 1000, None, 12_000);
        assert_eq!(cc.cwnd(), 13_000);
        assert!(cc.in_slow_start());
    }

    #[test]
    fn not_cwnd_limited_does_not_grow() {
        let mut cc = reno(1000);
        cc.on_ack(Instant::ZERO, 1000, None, 2000);
        assert_eq!(cc.cwnd(), 10_000);
    }

    #[test]
    fn congestion_avoidance_one_mss_per_window() {
        let mut cc = reno(1000);
        let now = Instant::ZERO;
        cc.on_congestion_event(now, 20_000);
        cc.on_recovery_exit(now);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10_000, 10_000));
        assert!(!cc.in_slow_start());
        for _ in 0..9 {
            cc.on_ack(now, 1000, None, 10_000);
        }
        assert_eq!(cc.cwnd(), 10_000);
        cc.on_ack(now, 1000, None, 10_000);
        assert_eq!(cc.cwnd(), 11_000);
        // A full window of ACKs: exactly one more segment.
        for _ in 0..11 {
            cc.on_ack(now, 1000, None, 11_000);
        }
        assert_eq!(cc.cwnd(), 12_000);
    }

    #[test]
    fn slow_start_stops_at_ssthresh() {
        let mut cc = reno(1000);
        let now = Instant::ZERO;
        cc.on_rto(now, 9000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (1000, 4500));
        for _ in 0..10 {
            cc.on_ack(now, 1000, None, cc.cwnd());
        }
        assert!(!cc.in_slow_start());
        assert!(cc.cwnd() >= 4500 && cc.cwnd() <= 5500);
    }

    #[test]
    fn decrease_floor_is_two_segments() {
        let mut cc = reno(1000);
        cc.on_congestion_event(Instant::ZERO, 1000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (2000, 2000));
    }
}
