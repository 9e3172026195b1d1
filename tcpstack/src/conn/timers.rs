//! Timers: retransmission (RFC 6298), loss probe (RFC 8985 section 7), RACK's
//! reordering timer (RFC 8985 section 6.3), delayed ACK, persist, keep-alive, TIME-WAIT
//! and the orphaned FIN-WAIT-2 limit. A TCB exposes one deadline, the earliest.

use super::{Ctx, Tcb};
use crate::error::ConnError;
use crate::event::TcpState;
use crate::Instant;

impl Tcb {
    /// The earliest armed timer.
    pub fn deadline(&self) -> Option<Instant> {
        fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, None) => x,
                (None, y) => y,
            }
        }
        let t = earlier(self.rto_at, self.delack_at);
        let t = earlier(t, self.persist_at);
        let t = earlier(t, self.tlp_at);
        let t = earlier(t, self.reo_at);
        let t = earlier(t, self.keepalive_at);
        earlier(t, self.close_at)
    }

    /// Runs every timer due at `now`.
    pub fn on_timeout(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if self.close_at.is_some_and(|t| t <= now) {
            self.close_at = None;
            match self.state {
                TcpState::TimeWait => {
                    ctx.counters.time_wait_expired += 1;
                    self.set_state(TcpState::Closed);
                }
                TcpState::FinWait2 => self.set_state(TcpState::Closed),
                _ => {}
            }
            if self.state == TcpState::Closed {
                return;
            }
        }
        if self.reo_at.is_some_and(|t| t <= now) {
            self.reo_at = None;
            if self.sack_enabled && self.state.is_synchronized() {
                self.rack_detect_loss(now, true, ctx);
            }
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            if self.snd_una != self.snd_max && self.tlp_sent < super::MAX_LOSS_PROBES {
                ctx.counters.tail_loss_probes += 1;
                self.tlp_sent += 1;
                self.tlp_pending = true;
                // The retransmission timeout now counts from the probe; the next
                // probe waits twice as long.
                self.rto_at = Some(now + self.rtt.rto());
                self.arm_tlp(now);
            }
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.on_rto(now, ctx);
            if self.state == TcpState::Closed {
                return;
            }
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            if !self.ack_now {
                ctx.counters.delayed_acks += 1;
                self.ack_now = true;
            }
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            ctx.counters.window_probes += 1;
            self.probe_pending = true;
            self.persist_backoff = (self.persist_backoff + 1).min(16);
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = None;
            if let Some(ka) = self.keepalive {
                if self.snd_una != self.snd_max {
                    // Data in flight: the retransmission timer watches the peer.
                    self.keepalive_at = Some(now + ka.idle);
                    return;
                }
                if self.keepalive_sent >= ka.probes {
                    ctx.counters.keepalive_timeouts += 1;
                    self.fail(ConnError::KeepAliveTimedOut);
                    return;
                }
                ctx.counters.keepalive_probes += 1;
                self.keepalive_sent += 1;
                self.keepalive_pending = true;
                self.keepalive_at = Some(now + ka.interval);
            }
        }
    }

    /// Retransmission timeout (RFC 6298 section 5, RFC 5681 section 3.1).
    fn on_rto(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if self.snd_una == self.snd_max && !self.syn_pending {
            return;
        }
        ctx.counters.rto_expirations += 1;
        self.tlp_at = None;
        self.reo_at = None;
        self.tlp_high = None;
        self.tlp_pending = false;
        self.tlp_sent = 0;
        let answered = core::mem::take(&mut self.peer_answered);
        if self.snd_wnd == 0 && answered && self.state.is_synchronized() {
            // The peer closed its window on data already sent and still answers: this
            // retransmission is a window probe, and a live peer is never timed out
            // for keeping its window shut (RFC 9293 section 3.8.6.1).
            ctx.counters.window_probes += 1;
        } else {
            self.retries += 1;
        }
        let limit = match self.state {
            TcpState::SynSent => self.params.max_syn_retries,
            TcpState::SynReceived => self.params.max_synack_retries,
            _ => self.params.max_retries,
        };
        if self.retries > limit {
            ctx.counters.timeouts += 1;
            self.fail(ConnError::TimedOut {
                retries: self.retries - 1,
            });
            return;
        }
        self.rtt.backoff();
        self.sampler.on_retransmit();
        match self.state {
            TcpState::SynSent => {
                ctx.counters.syn_retransmits += 1;
                self.syn_pending = true;
            }
            TcpState::SynReceived => {
                ctx.counters.synack_retransmits += 1;
                self.syn_pending = true;
            }
            _ => {
                let in_flight = self.snd_max - self.snd_una;
                self.cc.on_rto(now, in_flight);
                self.undo = None;
                self.recovery.on_timeout(self.snd_max);
                self.dup_acks = 0;
                if self.sack_enabled {
                    // RFC 8985 section 6.3: the first segment and every one older than
                    // RACK's RTT plus the reordering window are lost; they go again
                    // as the window reopens, the rest stays in flight. After a second
                    // timeout in a row the peer may have reneged on what it SACKed
                    // (RFC 2018 section 8): that is sent again too.
                    // (Recovery was abandoned just above: the window is outside one.)
                    let reo_wnd = self.reo_wnd();
                    self.rack.on_timeout(now, reo_wnd, self.retries > 1);
                } else {
                    // Go back to SND.UNA.
                    self.snd_nxt = self.snd_una;
                }
                // The segment at SND.UNA goes out whatever the window: when the peer
                // shut its window on data in flight it is also the window probe.
                self.rtx_pending = true;
            }
        }
        // Re-armed by the retransmission itself; keep a deadline in case it cannot go.
        self.rto_at = Some(now + self.rtt.rto());
    }

    /// Arms (or disarms) the loss probe after data went out, an ACK arrived or a probe
    /// was sent (RFC 8985 section 7.2): with SACK, data in flight and an RTT estimate,
    /// `PTO = 2 * SRTT`, plus the worst-case delayed ACK when one segment is in flight
    /// (else 2 ms of slack), doubled for each probe already sent without news, and
    /// never later than the retransmission timeout, which the probes then replace (as
    /// in Linux's `tcp_schedule_loss_probe`): a probe costs one segment, a timeout the
    /// whole congestion window.
    ///
    /// Two departures from RFC 8985, both for a path that thins or loses ACKs (Linux
    /// acknowledges a burst with one ACK, so losing it silences a small window): up
    /// to [`super::MAX_LOSS_PROBES`] probes go out before the timeout, as FreeBSD's
    /// RACK allows, and probes also run during recovery, where a retransmission
    /// whose ACK was lost would otherwise wait for the timeout. A probe is sent only
    /// when no ACK came for a PTO, so a live ACK clock never sends one.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        self.tlp_at = None;
        if !self.sack_enabled
            || !matches!(self.state, TcpState::Established | TcpState::CloseWait)
            || self.tlp_sent >= super::MAX_LOSS_PROBES
            || self.snd_una == self.snd_max
            || self.snd_nxt != self.snd_max
        {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let slack = if self.snd_max - self.snd_una <= self.smss {
            core::time::Duration::from_millis(200)
        } else {
            core::time::Duration::from_millis(2)
        };
        let pto = (srtt * 2 + slack).saturating_mul(1 << self.tlp_sent);
        let at = now + pto;
        self.tlp_at = Some(self.rto_at.map_or(at, |rto| at.min(rto)));
    }

    /// Arms keep-alive after activity, if enabled and the connection is open.
    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        self.keepalive_at = match self.keepalive {
            Some(ka) if matches!(self.state, TcpState::Established | TcpState::CloseWait) => {
                Some(now + ka.idle)
            }
            _ => None,
        };
    }

    /// Arms the persist timer when data waits but nothing is in flight to bring an
    /// ACK: a zero window (RFC 9293 section 3.8.6.1) or a window too small for SWS
    /// avoidance to send into (the override timeout of section 3.8.6.2.1).
    pub(super) fn arm_persist_if_needed(&mut self, now: Instant) {
        if self.persist_at.is_some()
            || !self.state.is_synchronized()
            || self.snd_una != self.snd_max
            || self.unsent_bytes() == 0
        {
            return;
        }
        let rto = self.rtt.rto();
        let backoff = rto.saturating_mul(1 << self.persist_backoff.min(16));
        let cap = core::time::Duration::from_secs(60);
        self.persist_at = Some(now + backoff.min(cap).max(rto));
    }
}
