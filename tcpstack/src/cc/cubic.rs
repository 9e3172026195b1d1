//! CUBIC (RFC 9438): the cubic window function around the last maximum `W_max`, the
//! Reno-friendly region, fast convergence, and beta 0.7. Slow start is RFC 5681's with
//! appropriate byte counting (HyStart is not implemented).
//!
//! Internally the window growth is computed in `f64` bytes, which is deterministic for
//! a given platform and input sequence.

use core::time::Duration;

use super::{Window, MAX_CWND};
use crate::time::Instant;

/// RFC 9438 `C`.
const C: f64 = 0.4;
/// RFC 9438 `beta_cubic`.
const BETA: f64 = 0.7;
/// RFC 9438 `alpha_cubic` for the Reno-friendly region: `3 (1 - beta) / (1 + beta)`.
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC congestion control state.
#[derive(Debug, Clone)]
pub struct Cubic {
    pub(crate) w: Window,
    fast_convergence: bool,
    /// The window just before the last reduction, in bytes (0 before any).
    w_max: f64,
    /// Start of the current congestion avoidance epoch.
    epoch_start: Option<Instant>,
    /// Time (seconds) the cubic function takes to reach `origin` from the epoch start.
    k: f64,
    /// The plateau of the cubic function for this epoch, in bytes.
    origin: f64,
    /// The Reno-friendly estimate `W_est`, in bytes.
    w_est: f64,
    /// The window in bytes with its fractional part (`w.cwnd` is its integer part).
    cwnd_f: f64,
    /// The last RTT reported.
    rtt: Duration,
}

impl Cubic {
    pub(crate) fn new(w: Window, fast_convergence: bool) -> Self {
        Cubic {
            cwnd_f: w.cwnd as f64,
            w,
            fast_convergence,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            origin: 0.0,
            w_est: 0.0,
            rtt: Duration::ZERO,
        }
    }

    /// `W_cubic(t)` in bytes, `t` in seconds since the epoch start.
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d * self.w.mss as f64 + self.origin
    }

    fn start_epoch(&mut self, now: Instant) {
        let cwnd = self.w.cwnd as f64;
        let mss = self.w.mss as f64;
        self.epoch_start = Some(now);
        if cwnd < self.w_max {
            self.k = ((self.w_max - cwnd) / mss / C).cbrt();
            self.origin = self.w_max;
        } else {
            self.k = 0.0;
            self.origin = cwnd;
        }
        self.w_est = cwnd;
        self.cwnd_f = cwnd;
    }

    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: u32,
        rtt: Option<Duration>,
        in_flight: u32,
    ) {
        if let Some(rtt) = rtt {
            self.rtt = rtt;
        }
        if !self.w.cwnd_limited(in_flight) {
            return;
        }
        let mut left = bytes_acked;
        if self.w.in_slow_start() {
            left = self.w.slow_start(bytes_acked);
            self.cwnd_f = self.w.cwnd as f64;
            if left == 0 {
                return;
            }
        }
        let epoch = match self.epoch_start {
            Some(t) => t,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let mss = self.w.mss as f64;
        let cwnd = self.cwnd_f;
        let acked = left as f64;
        // Reno-friendly estimate (RFC 9438 section 4.3); alpha becomes 1 once W_est
        // passes the previous maximum.
        let alpha = if self.w_est >= self.w_max { 1.0 } else { ALPHA };
        self.w_est += alpha * mss * acked / cwnd;
        let t = (now - epoch).as_secs_f64();
        let new = if self.w_cubic(t) < self.w_est {
            // Reno-friendly region (section 4.3).
            self.w_est
        } else {
            // Concave or convex region (sections 4.4, 4.5): move toward
            // W_cubic(t + RTT), at most 1.5x per RTT.
            let target = self
                .w_cubic(t + self.rtt.as_secs_f64())
                .clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) * acked / cwnd
        };
        self.cwnd_f = new.clamp(mss, MAX_CWND as f64);
        self.w.cwnd = self.cwnd_f as u32;
    }

    /// Multiplicative decrease with fast convergence (sections 4.6, 4.7).
    fn decrease(&mut self) {
        let cwnd = self.w.cwnd as f64;
        self.w_max = if self.fast_convergence && cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.w.ssthresh = ((cwnd * BETA) as u32).max(self.w.min_ssthresh());
        self.epoch_start = None;
    }

    pub(crate) fn on_congestion_event(&mut self, _now: Instant, _in_flight: u32) {
        self.decrease();
        self.w.cwnd = self.w.ssthresh;
        self.cwnd_f = self.w.cwnd as f64;
    }

    pub(crate) fn on_rto(&mut self, _now: Instant, _in_flight: u32) {
        self.decrease();
        // Section 4.8: after a timeout the next epoch starts with K = 0 and W_max at
        // the window of that moment.
        self.w_max = 0.0;
        self.w.cwnd = self.w.mss;
        self.cwnd_f = self.w.cwnd as f64;
    }

    pub(crate) fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.cwnd = self.w.ssthresh;
        self.cwnd_f = self.w.cwnd as f64;
        self.epoch_start = None;
    }

    pub(crate) fn set_mss(&mut self, mss: u32) {
        self.w.set_mss(mss);
        self.cwnd_f = self.w.cwnd as f64;
        self.epoch_start = None;
    }

    pub(crate) fn on_idle_restart(&mut self, _now: Instant) {
        self.w.cwnd = self.w.cwnd.min(self.w.initial);
        self.cwnd_f = self.w.cwnd as f64;
        self.epoch_start = None;
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use crate::cc::{CcConfig, CongestionControl};
    use crate::time::Instant;

    const MSS: u32 = 1000;

    fn cubic() -> CongestionControl {
        CongestionControl::new(&CcConfig::default(), MSS)
    }

    /// Drive one RTT's worth of ACKs (one per segment in the window).
    fn round(cc: &mut CongestionControl, now: Instant, rtt: Duration) {
        let segs = cc.cwnd() / MSS;
        let flight = cc.cwnd();
        for _ in 0..segs {
            cc.on_ack(now, MSS, Some(rtt), flight);
        }
    }

    #[test]
    fn decrease_is_beta_0_7() {
        let mut cc = cubic();
        let now = Instant::ZERO;
        for _ in 0..4 {
            round(&mut cc, now, Duration::from_millis(10));
        }
        let before = cc.cwnd();
        cc.on_congestion_event(now, before);
        assert_eq!(cc.ssthresh(), (before as f64 * 0.7) as u32);
        assert_eq!(cc.cwnd(), cc.ssthresh());
    }

    #[test]
    fn concave_growth_returns_to_w_max_near_k() {
        let mut cc = cubic();
        let rtt = Duration::from_millis(100);
        let mut now = Instant::ZERO;
        // Grow to 100 segments, then lose.
        while cc.cwnd() < 100 * MSS {
            round(&mut cc, now, rtt);
            now += rtt;
        }
        let w_max = cc.cwnd();
        cc.on_congestion_event(now, w_max);
        cc.on_recovery_exit(now);
        // K = cbrt(W_max * (1 - beta) / C) seconds (window in segments).
        let k = ((w_max / MSS) as f64 * 0.3 / 0.4).cbrt();
        let start = now;
        while now - start < Duration::from_secs_f64(k) - rtt {
            round(&mut cc, now, rtt);
            now += rtt;
            assert!(cc.cwnd() <= w_max + MSS, "concave region overshoots W_max");
        }
        assert!(cc.cwnd() as f64 >= w_max as f64 * 0.9, "cwnd {}", cc.cwnd());
        // Past K the convex region grows beyond W_max.
        for _ in 0..20 {
            round(&mut cc, now, rtt);
            now += rtt;
        }
        assert!(cc.cwnd() > w_max + 2 * MSS);
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // With a tiny RTT the cubic function barely moves within many RTTs; the
        // Reno-friendly estimate must still grow the window.
        let mut cc = cubic();
        let now = Instant::ZERO;
        for _ in 0..3 {
            round(&mut cc, now, Duration::from_micros(100));
        }
        cc.on_congestion_event(now, cc.cwnd());
        cc.on_recovery_exit(now);
        let after = cc.cwnd();
        let mut t = now;
        for _ in 0..50 {
            round(&mut cc, t, Duration::from_micros(100));
            t += Duration::from_micros(100);
        }
        assert!(cc.cwnd() > after + 10 * MSS, "{} vs {}", cc.cwnd(), after);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut cc = cubic();
        let now = Instant::ZERO;
        for _ in 0..4 {
            round(&mut cc, now, Duration::from_millis(10));
        }
        let first = cc.cwnd();
        cc.on_congestion_event(now, first);
        // A second loss before regaining W_max: ssthresh is again 0.7 of cwnd.
        let second = cc.cwnd();
        cc.on_congestion_event(now, second);
        assert_eq!(cc.ssthresh(), (second as f64 * 0.7) as u32);
        if let CongestionControl::Cubic(c) = &cc {
            assert!((c.w_max - second as f64 * 0.85).abs() < 1.0);
        } else {
            unreachable!()
        }
    }

    #[test]
    fn rto_collapses_to_one_segment() {
        let mut cc = cubic();
        cc.on_rto(Instant::ZERO, 0);
        assert_eq!(cc.cwnd(), MSS);
        assert_eq!(cc.ssthresh(), 7000);
        cc.on_ack(Instant::ZERO, MSS, None, MSS);
        assert_eq!(cc.cwnd(), 2 * MSS);
    }
}
