//! Round-trip time estimation and retransmission timeout (RFC 6298).
//!
//! [`RttEstimator`] keeps SRTT and RTTVAR and computes the RTO with configurable
//! bounds ([`RtoConfig`]), clock granularity G, and exponential backoff. It takes only
//! valid samples: the caller applies Karn's rule (RFC 6298 section 3), either with
//! [`RttSampler`] (one timed segment at a time, invalidated by retransmission) or, when
//! timestamps are in use (RFC 7323 section 4), by sampling on every ACK that advances
//! the left edge from the echoed timestamp.
//!
//! All arithmetic is in integer microseconds.

use core::time::Duration;

use crate::seq::SeqNum;
use crate::time::Instant;

/// Bounds and defaults for the retransmission timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtoConfig {
    /// RTO before the first sample (RFC 6298 (2.1): 1 s).
    pub initial: Duration,
    /// Lower bound on the variation term: the RTO is at least SRTT plus this. RFC
    /// 6298 (2.4) bounds the whole RTO by 1 s; Linux bounds the term by 200 ms, as here
    /// by default.
    pub min: Duration,
    /// Upper bound, also capping backoff (RFC 6298 (2.5): at least 60 s).
    pub max: Duration,
    /// Clock granularity G (RFC 6298 (2.2)): the RTO is at least SRTT + G.
    pub granularity: Duration,
}

impl Default for RtoConfig {
    fn default() -> Self {
        RtoConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(200),
            max: Duration::from_secs(60),
            granularity: Duration::from_millis(1),
        }
    }
}

/// The largest backoff exponent (the RTO is doubled at most this many times; `max`
/// caps it well before in practice).
const MAX_BACKOFF: u32 = 16;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// SRTT/RTTVAR estimator and RTO with backoff (RFC 6298).
#[derive(Debug, Clone)]
pub struct RttEstimator {
    config: RtoConfig,
    /// Smoothed RTT in microseconds; `None` before the first sample.
    srtt: Option<u64>,
    /// RTT variation in microseconds.
    rttvar: u64,
    /// Latest RTT sample in microseconds (0 before the first).
    latest: u64,
    /// Smallest RTT sample seen, in microseconds (`u64::MAX` before the first).
    min_rtt: u64,
    /// The RTO before backoff, in microseconds, already clamped to the bounds.
    base_rto: u64,
    /// Number of consecutive backoffs.
    backoff: u32,
}

impl RttEstimator {
    /// An estimator with no samples: the RTO is `config.initial` (clamped to the bounds).
    pub fn new(config: RtoConfig) -> Self {
        let base_rto = micros(config.initial).clamp(micros(config.min), micros(config.max));
        RttEstimator {
            config,
            srtt: None,
            rttvar: 0,
            latest: 0,
            min_rtt: u64::MAX,
            base_rto,
            backoff: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RtoConfig {
        &self.config
    }

    /// Feed a valid RTT measurement (RFC 6298 (2.2)/(2.3)). Also clears any backoff:
    /// a valid sample means an ACK for data sent after the timeout arrived.
    pub fn sample(&mut self, rtt: Duration) {
        let r = micros(rtt);
        self.latest = r;
        self.min_rtt = self.min_rtt.min(r);
        let (srtt, rttvar) = match self.srtt {
            None => (r, r / 2),
            Some(srtt) => {
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                let rttvar = (3 * self.rttvar + srtt.abs_diff(r)) / 4;
                let srtt = (7 * srtt + r) / 8;
                (srtt, rttvar)
            }
        };
        self.srtt = Some(srtt);
        self.rttvar = rttvar;
        // As Linux does, the floor bounds the variation term rather than the sum
        // (RTO >= SRTT + min): a peer may hold its ACK for up to 200 ms (delayed
        // ACK), and on a path whose RTT is tens of milliseconds `max(min, SRTT +
        // 4 RTTVAR)` would time out such an ACK spuriously.
        let g = micros(self.config.granularity);
        let var = g.max(rttvar.saturating_mul(4)).max(micros(self.config.min));
        self.base_rto = srtt.saturating_add(var).min(micros(self.config.max));
        self.backoff = 0;
    }

    /// The current retransmission timeout, including backoff, capped at `max`.
    pub fn rto(&self) -> Duration {
        let rto = self
            .base_rto
            .saturating_mul(1u64 << self.backoff)
            .min(micros(self.config.max));
        Duration::from_micros(rto)
    }

    /// Double the RTO after a retransmission timeout (RFC 6298 (5.5)).
    pub fn backoff(&mut self) {
        if self.backoff < MAX_BACKOFF {
            self.backoff += 1;
        }
    }

    /// Clear the backoff without a sample (e.g. when an ACK for new data arrives but
    /// could not be timed under Karn's rule, RFC 6298 (5.7) lets the RTO collapse once
    /// an ACK for new data is received).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// Number of consecutive backoffs so far (for retry limits).
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// The smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// The RTT variation (zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar)
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<Duration> {
        self.srtt.map(|_| Duration::from_micros(self.latest))
    }

    /// The smallest sample seen, if any.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.srtt.map(|_| Duration::from_micros(self.min_rtt))
    }

    /// Forget all samples and backoff (RFC 6298 (5.7) allows re-initialising after
    /// repeated backoffs); the RTO returns to `initial`.
    pub fn reset(&mut self) {
        *self = RttEstimator::new(self.config);
    }
}

/// Karn's-rule RTT timing without timestamps: times one segment at a time and
/// discards the measurement if any retransmission happens while it is outstanding.
#[derive(Debug, Clone, Copy, Default)]
pub struct RttSampler {
    /// The sequence number whose acknowledgment ends the measurement, and send time.
    timed: Option<(SeqNum, Instant)>,
}

impl RttSampler {
    /// A sampler timing nothing.
    pub const fn new() -> Self {
        RttSampler { timed: None }
    }

    /// New data `[.., end)` was sent at `now` for the first time; starts timing it if
    /// nothing is being timed.
    #[inline]
    pub fn on_send(&mut self, end: SeqNum, now: Instant) {
        if self.timed.is_none() {
            self.timed = Some((end, now));
        }
    }

    /// A retransmission happened: the timed segment's ACK could be ambiguous (Karn).
    #[inline]
    pub fn on_retransmit(&mut self) {
        self.timed = None;
    }

    /// An ACK for `ack` arrived at `now`: returns the sample when it covers the timed
    /// segment.
    #[inline]
    pub fn on_ack(&mut self, ack: SeqNum, now: Instant) -> Option<Duration> {
        match self.timed {
            Some((end, sent)) if ack.ge(end) => {
                self.timed = None;
                Some(now - sent)
            }
            _ => None,
        }
    }

    /// Whether a segment is being timed.
    pub fn is_timing(&self) -> bool {
        self.timed.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_and_first_sample() {
        let mut e = RttEstimator::new(RtoConfig::default());
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        // 100 + max(1, 4 * 50) = 300 ms
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn subsequent_samples_follow_rfc6298() {
        let mut e = RttEstimator::new(RtoConfig::default());
        e.sample(ms(100));
        e.sample(ms(200));
        // RTTVAR = 3/4*50 + 1/4*100 = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 250_000));
        assert_eq!(e.min_rtt(), Some(ms(100)));
        assert_eq!(e.latest(), Some(ms(200)));
    }

    #[test]
    fn bounds_and_granularity() {
        let cfg = RtoConfig {
            initial: ms(3000),
            min: ms(200),
            max: ms(2000),
            granularity: ms(10),
        };
        let mut e = RttEstimator::new(cfg);
        assert_eq!(e.rto(), ms(2000), "initial clamped to max");
        // A steady tiny RTT: the variance decays and the min bound holds.
        for _ in 0..100 {
            e.sample(Duration::from_micros(100));
        }
        assert_eq!(e.rto(), ms(200) + Duration::from_micros(100));
        // A steady 66 ms RTT: the RTO stays a full floor above it, so an ACK the peer
        // delays by up to 200 ms does not time out.
        let mut e = RttEstimator::new(cfg);
        for _ in 0..100 {
            e.sample(ms(66));
        }
        assert_eq!(e.rto(), ms(266));
        let cfg = RtoConfig {
            min: Duration::ZERO,
            ..cfg
        };
        let mut e = RttEstimator::new(cfg);
        for _ in 0..100 {
            e.sample(ms(50));
        }
        // RTTVAR ~ 0: RTO = SRTT + G.
        assert_eq!(e.rto(), ms(60));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut e = RttEstimator::new(RtoConfig::default());
        e.sample(ms(100));
        e.backoff();
        assert_eq!(e.rto(), ms(600));
        e.backoff();
        assert_eq!(e.rto(), ms(1200));
        for _ in 0..100 {
            e.backoff();
        }
        assert_eq!(e.rto(), ms(60_000));
        assert_eq!(e.backoff_count(), MAX_BACKOFF);
        e.reset_backoff();
        assert_eq!(e.rto(), ms(300));
        e.backoff();
        e.sample(ms(100));
        assert_eq!(e.backoff_count(), 0);
        e.reset();
        assert_eq!(e.rto(), ms(1000));
        assert_eq!(e.srtt(), None);
    }

    #[test]
    fn sampler_applies_karn() {
        let mut s = RttSampler::new();
        let t0 = Instant::from_millis(10);
        s.on_send(SeqNum(u32::MAX - 5) + 100u32, t0);
        // A second send while timing does not restart the timer.
        s.on_send(SeqNum(500), Instant::from_millis(20));
        assert_eq!(s.on_ack(SeqNum(50), Instant::from_millis(30)), None);
        assert_eq!(s.on_ack(SeqNum(94), Instant::from_millis(40)), Some(ms(30)));
        assert!(!s.is_timing());
        s.on_send(SeqNum(200), t0);
        s.on_retransmit();
        assert_eq!(s.on_ack(SeqNum(300), Instant::from_millis(50)), None);
    }
}
