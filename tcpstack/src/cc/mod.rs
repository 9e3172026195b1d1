//! Congestion control: NewReno (RFC 5681/6582) and CUBIC (RFC 9438).
//!
//! [`CongestionControl`] is one value per connection, an enum over the algorithms
//! (static dispatch, no allocation), selected by [`CcAlgorithm`] in a [`CcConfig`]. The
//! connection reports events and reads [`cwnd`](CongestionControl::cwnd) and
//! [`ssthresh`](CongestionControl::ssthresh), both in bytes:
//!
//! | event | when |
//! |---|---|
//! | [`on_ack`](CongestionControl::on_ack) | an ACK advanced `SND.UNA` outside loss recovery |
//! | [`on_congestion_event`](CongestionControl::on_congestion_event) | loss detected: entering fast retransmit / recovery |
//! | [`on_recovery_exit`](CongestionControl::on_recovery_exit) | an ACK covered the recovery point |
//! | [`on_rto`](CongestionControl::on_rto) | the retransmission timer expired |
//! | [`on_dup_ack_in_recovery`](CongestionControl::on_dup_ack_in_recovery), [`on_partial_ack`](CongestionControl::on_partial_ack) | NewReno window inflation/deflation, only when the peer does not do SACK |
//! | [`on_idle_restart`](CongestionControl::on_idle_restart) | sending resumes after more than an RTO idle (RFC 5681 section 4.1) |
//!
//! With SACK, recovery follows RFC 6675: `cwnd` is set to `ssthresh` on entry and the
//! amount in flight is governed by `pipe` (see [`crate::rack::Rack::pipe`]), so
//! the inflation/deflation events are not used.
//!
//! Both algorithms grow the window only while it is actually used (the sender is
//! cwnd-limited: at least half the window was in flight when the ACK arrived; RFC 7661's
//! concern), so an application-limited connection does not build up an unvalidated
//! window.

mod cubic;
mod newreno;

use core::time::Duration;

pub use cubic::Cubic;
pub use newreno::NewReno;

use crate::time::Instant;

/// The congestion control algorithms available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcAlgorithm {
    /// RFC 5681 slow start and congestion avoidance with RFC 6582 recovery.
    NewReno,
    /// RFC 9438 CUBIC (the Linux default).
    #[default]
    Cubic,
}

impl CcAlgorithm {
    /// The algorithm's name: `newreno` or `cubic`.
    pub fn name(self) -> &'static str {
        match self {
            CcAlgorithm::NewReno => "newreno",
            CcAlgorithm::Cubic => "cubic",
        }
    }
}

/// Congestion control settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CcConfig {
    /// Which algorithm.
    pub algorithm: CcAlgorithm,
    /// Initial window in bytes; `None` for RFC 6928's
    /// `min(10 * MSS, max(2 * MSS, 14600))`.
    pub initial_window: Option<u32>,
    /// CUBIC fast convergence (RFC 9438 section 4.7).
    pub fast_convergence: bool,
}

impl Default for CcConfig {
    fn default() -> Self {
        CcConfig {
            algorithm: CcAlgorithm::default(),
            initial_window: None,
            fast_convergence: true,
        }
    }
}

/// The largest congestion window, in bytes (keeps all arithmetic far from overflow).
pub const MAX_CWND: u32 = 1 << 30;

/// RFC 6928's initial window for a given MSS: `min(10 * MSS, max(2 * MSS, 14600))`.
pub fn rfc6928_initial_window(mss: u32) -> u32 {
    (10 * mss).min((2 * mss).max(14_600))
}

/// State shared by the algorithms: the windows and the slow-start logic.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    pub(crate) mss: u32,
    pub(crate) initial: u32,
    /// Whether `initial` was configured (so MSS changes keep it).
    pub(crate) initial_fixed: bool,
}

impl Window {
    fn new(config: &CcConfig, mss: u32) -> Self {
        let mss = mss.max(1);
        let initial = config
            .initial_window
            .unwrap_or_else(|| rfc6928_initial_window(mss))
            .clamp(mss, MAX_CWND);
        Window {
            cwnd: initial,
            ssthresh: MAX_CWND,
            mss,
            initial,
            initial_fixed: config.initial_window.is_some(),
        }
    }

    #[inline]
    pub(crate) fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// Whether the window was used enough for an ACK to justify growing it.
    #[inline]
    pub(crate) fn cwnd_limited(&self, in_flight: u32) -> bool {
        in_flight.saturating_mul(2) >= self.cwnd
    }

    /// Slow start with appropriate byte counting (RFC 3465, L = 2 SMSS); returns bytes
    /// of the ACK left over once `ssthresh` is reached (for congestion avoidance).
    pub(crate) fn slow_start(&mut self, bytes_acked: u32) -> u32 {
        let room = self.ssthresh - self.cwnd;
        let inc = bytes_acked.min(2 * self.mss).min(room);
        self.cwnd = (self.cwnd + inc).min(MAX_CWND);
        if self.cwnd >= self.ssthresh {
            bytes_acked - inc
        } else {
            0
        }
    }

    /// The multiplicative-decrease floor: two segments.
    #[inline]
    pub(crate) fn min_ssthresh(&self) -> u32 {
        2 * self.mss
    }

    pub(crate) fn set_mss(&mut self, mss: u32) {
        let mss = mss.max(1);
        if mss == self.mss {
            return;
        }
        let segments = (self.cwnd / self.mss).max(1);
        self.mss = mss;
        if !self.initial_fixed {
            self.initial = rfc6928_initial_window(mss);
        }
        self.cwnd = segments.saturating_mul(mss).clamp(mss, MAX_CWND);
        self.ssthresh = self.ssthresh.max(self.min_ssthresh());
    }
}

/// A connection's congestion controller.
#[derive(Debug, Clone)]
pub enum CongestionControl {
    /// NewReno.
    NewReno(NewReno),
    /// CUBIC.
    Cubic(Cubic),
}

macro_rules! dispatch {
    ($self:ident, $cc:ident => $e:expr) => {
        match $self {
            CongestionControl::NewReno($cc) => $e,
            CongestionControl::Cubic($cc) => $e,
        }
    };
}

impl CongestionControl {
    /// A controller for a connection whose sender maximum segment size is `mss`.
    pub fn new(config: &CcConfig, mss: u32) -> Self {
        let w = Window::new(config, mss);
        match config.algorithm {
            CcAlgorithm::NewReno => CongestionControl::NewReno(NewReno::new(w)),
            CcAlgorithm::Cubic => CongestionControl::Cubic(Cubic::new(w, config.fast_convergence)),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> CcAlgorithm {
        match self {
            CongestionControl::NewReno(_) => CcAlgorithm::NewReno,
            CongestionControl::Cubic(_) => CcAlgorithm::Cubic,
        }
    }

    fn window(&self) -> &Window {
        dispatch!(self, c => &c.w)
    }

    /// The congestion window in bytes.
    #[inline]
    pub fn cwnd(&self) -> u32 {
        self.window().cwnd
    }

    /// The slow-start threshold in bytes (`MAX_CWND` until the first congestion event).
    #[inline]
    pub fn ssthresh(&self) -> u32 {
        self.window().ssthresh
    }

    /// The sender maximum segment size in use.
    #[inline]
    pub fn mss(&self) -> u32 {
        self.window().mss
    }

    /// Whether in slow start (`cwnd < ssthresh`).
    #[inline]
    pub fn in_slow_start(&self) -> bool {
        self.window().in_slow_start()
    }

    /// The sender MSS changed (e.g. once the peer's MSS option is known): the window
    /// keeps its size in segments, and an unconfigured initial window is recomputed.
    pub fn set_mss(&mut self, mss: u32) {
        match self {
            CongestionControl::NewReno(c) => c.w.set_mss(mss),
            CongestionControl::Cubic(c) => c.set_mss(mss),
        }
    }

    /// An ACK acknowledged `bytes_acked` new bytes outside loss recovery, at `now`.
    /// `rtt` is the current smoothed RTT if known; `in_flight` the bytes outstanding
    /// when the ACK arrived (before removing the acknowledged ones).
    pub fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: u32,
        rtt: Option<Duration>,
        in_flight: u32,
    ) {
        if bytes_acked == 0 {
            return;
        }
        dispatch!(self, c => c.on_ack(now, bytes_acked, rtt, in_flight))
    }

    /// Loss detected (three duplicate ACKs or SACK `IsLost`): multiplicative decrease;
    /// `cwnd` becomes `ssthresh` (RFC 6675 / RFC 5681 step 2, without inflation).
    pub fn on_congestion_event(&mut self, now: Instant, in_flight: u32) {
        dispatch!(self, c => c.on_congestion_event(now, in_flight))
    }

    /// Recovery ended (an ACK covered the recovery point): `cwnd = ssthresh`.
    pub fn on_recovery_exit(&mut self, now: Instant) {
        dispatch!(self, c => c.on_recovery_exit(now))
    }

    /// The retransmission timer expired: decrease as on a congestion event, then
    /// `cwnd` = one segment (RFC 5681 loss window). Call once per timeout episode
    /// (RFC 5681 equation (4) applies to the first timeout; later backed-off ones may
    /// call it again harmlessly).
    pub fn on_rto(&mut self, now: Instant, in_flight: u32) {
        dispatch!(self, c => c.on_rto(now, in_flight))
    }

    /// Non-SACK NewReno (RFC 6582 / RFC 5681 steps 2-4): a duplicate ACK during
    /// recovery inflates `cwnd` by one segment. Call it three times on entry (the
    /// duplicates that triggered it), then once per further duplicate.
    pub fn on_dup_ack_in_recovery(&mut self) {
        let w = dispatch!(self, c => &mut c.w);
        w.cwnd = (w.cwnd + w.mss).min(MAX_CWND);
    }

    /// Non-SACK NewReno (RFC 6582 section 3.2 step 5): a partial ACK of `bytes_acked`
    /// deflates `cwnd` by that amount and adds back one segment if at least one was
    /// acknowledged.
    pub fn on_partial_ack(&mut self, bytes_acked: u32) {
        let w = dispatch!(self, c => &mut c.w);
        let back = if bytes_acked >= w.mss { w.mss } else { 0 };
        w.cwnd = (w.cwnd.saturating_sub(bytes_acked) + back).max(w.mss);
    }

    /// Sending restarts after an idle period longer than the RTO (RFC 5681 section
    /// 4.1): `cwnd = min(cwnd, initial window)`.
    pub fn on_idle_restart(&mut self, now: Instant) {
        dispatch!(self, c => c.on_idle_restart(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_per_rfc6928() {
        assert_eq!(rfc6928_initial_window(1460), 14_600);
        assert_eq!(rfc6928_initial_window(536), 5360);
        assert_eq!(rfc6928_initial_window(9000), 18_000);
        assert_eq!(rfc6928_initial_window(65_495), 130_990);
        let cc = CongestionControl::new(&CcConfig::default(), 1460);
        assert_eq!(cc.cwnd(), 14_600);
        assert_eq!(cc.algorithm(), CcAlgorithm::Cubic);
        let cfg = CcConfig {
            initial_window: Some(4000),
            algorithm: CcAlgorithm::NewReno,
            ..CcConfig::default()
        };
        let mut cc = CongestionControl::new(&cfg, 1000);
        assert_eq!(cc.cwnd(), 4000);
        cc.set_mss(500);
        assert_eq!((cc.cwnd(), cc.mss()), (2000, 500));
    }

    #[test]
    fn mss_change_recomputes_default_initial_window() {
        let mut cc = CongestionControl::new(&CcConfig::default(), 536);
        cc.set_mss(1460);
        assert_eq!(cc.cwnd(), 10 * 1460);
        cc.on_idle_restart(Instant::ZERO);
        assert_eq!(cc.cwnd(), 14_600);
    }

    #[test]
    fn non_sack_inflation_and_deflation() {
        let cfg = CcConfig {
            algorithm: CcAlgorithm::NewReno,
            ..CcConfig::default()
        };
        let mut cc = CongestionControl::new(&cfg, 1000);
        let now = Instant::ZERO;
        cc.on_congestion_event(now, 20_000);
        assert_eq!((cc.cwnd(), cc.ssthresh()), (10_000, 10_000));
        for _ in 0..3 {
            cc.on_dup_ack_in_recovery();
        }
        assert_eq!(cc.cwnd(), 13_000);
        cc.on_partial_ack(4000);
        assert_eq!(cc.cwnd(), 10_000);
        cc.on_partial_ack(500);
        assert_eq!(cc.cwnd(), 9500);
        cc.on_recovery_exit(now);
        assert_eq!(cc.cwnd(), 10_000);
    }

    #[test]
    fn zero_byte_ack_is_ignored() {
        let mut cc = CongestionControl::new(&CcConfig::default(), 1000);
        let before = cc.cwnd();
        cc.on_ack(Instant::ZERO, 0, None, 100_000);
        assert_eq!(cc.cwnd(), before);
    }
}
