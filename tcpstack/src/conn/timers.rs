//! Timers: retransmission (RFC 6298), delayed ACK, persist, keep-alive, TIME-WAIT and
//! the orphaned FIN-WAIT-2 limit. A TCB exposes one deadline, the earliest.

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
            self.on_reordering_timeout(now, ctx);
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            if self.snd_una != self.snd_max && !self.recovery.is_active() {
                ctx.counters.tail_loss_probes += 1;
                self.tlp_pending = true;
                // The retransmission timeout now counts from the probe.
                self.rto_at = Some(now + self.rtt.rto());
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
                self.recovery.on_timeout(self.snd_max);
                // The receiver may have reneged (RFC 2018 section 8): go back to SND.UNA.
                self.scoreboard.clear();
                self.dup_acks = 0;
                self.snd_nxt = self.snd_una;
                // The segment at SND.UNA goes out whatever the window: when the peer
                // shut its window on data in flight it is also the window probe.
                self.rtx_pending = true;
            }
        }
        // Re-armed by the retransmission itself; keep a deadline in case it cannot go.
        self.rto_at = Some(now + self.rtt.rto());
    }

    /// Arms (or disarms) the tail loss probe after data went out or new data was
    /// acknowledged (RFC 8985 section 7.2): with SACK, data in flight, no recovery, no
    /// probe outstanding and an RTT estimate, `PTO = 2 * SRTT`, plus the worst-case
    /// delayed ACK when one segment is in flight (else 2 ms of slack), and never later
    /// than the retransmission timeout, which the probe then replaces (as in Linux's
    /// `tcp_schedule_loss_probe`): a probe costs one segment, a timeout the whole
    /// congestion window.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        self.tlp_at = None;
        if !self.sack_enabled
            || !matches!(self.state, TcpState::Established | TcpState::CloseWait)
            || self.recovery.is_active()
            || self.tlp_high.is_some()
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
        let at = now + srtt * 2 + slack;
        self.tlp_at = Some(self.rto_at.map_or(at, |rto| at.min(rto)));
    }

    /// The reordering window: a quarter of the minimum RTT (RFC 8985 section 6.2),
    /// at least 1 ms (the timer resolution drivers can be expected to keep).
    fn reo_wnd(&self) -> core::time::Duration {
        let quarter = self.rtt.min_rtt().unwrap_or_default() / 4;
        quarter.max(core::time::Duration::from_millis(1))
    }

    /// How long a retransmission may go undelivered before it is deemed lost: one
    /// RTT plus the reordering window.
    fn overdue_after(&self) -> core::time::Duration {
        self.rtt.srtt().unwrap_or_else(|| self.rtt.rto()) + self.reo_wnd()
    }

    /// Outside recovery: an un-SACKed `SND.UNA` below SACKed data, for which a
    /// recovery may start.
    fn hole_below_sacked_data(&self) -> bool {
        !self.scoreboard.is_empty()
            && !self.scoreboard.is_sacked(self.snd_una)
            && self.recovery.may_enter(self.snd_una)
    }

    /// (Re)arms the reordering timer after an ACK (`advanced`: it moved `SND.UNA`) or
    /// a retransmission. In recovery it waits for the oldest watched retransmission to
    /// be one RTT plus the reordering window old; outside recovery it runs from the
    /// first ACK that showed SACKed data above an un-SACKed `SND.UNA`.
    pub(super) fn arm_reo(&mut self, now: Instant, advanced: bool) {
        if !self.sack_enabled || self.snd_una == self.snd_max {
            self.reo_at = None;
            return;
        }
        if self.recovery.is_active() {
            self.reo_at = self.recovery.overdue_at(self.overdue_after());
        } else if !self.hole_below_sacked_data() {
            // Nothing to declare lost, or no recovery may start for it yet (the
            // previous episode's point is not passed): the timer would only spin.
            self.reo_at = None;
        } else if self.reo_at.is_none() || advanced {
            self.reo_at = Some(now + self.reo_wnd());
        }
    }

    /// The reordering timer fired: in recovery, overdue retransmissions are lost;
    /// outside it, the hole at `SND.UNA` has outlived the reordering window below
    /// SACKed data (too few SACKs for DupThresh) and is lost, which starts recovery.
    fn on_reordering_timeout(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if !self.state.is_synchronized() || self.snd_una == self.snd_max {
            return;
        }
        if self.recovery.is_active() {
            let wait = self.overdue_after();
            ctx.counters.lost_retransmits +=
                u64::from(
                    self.recovery
                        .mark_overdue(&self.scoreboard, self.snd_una, now, wait),
                );
        } else if self.hole_below_sacked_data() {
            ctx.counters.reordering_timeouts += 1;
            self.enter_recovery(now, ctx);
        }
        // Outside recovery the next ACK re-arms it (a timer that found nothing to do
        // would only fire again and again); in recovery, the next watched
        // retransmission does.
        if self.recovery.is_active() {
            self.arm_reo(now, false);
        }
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
