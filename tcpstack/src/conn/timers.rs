//! A connection's timers, one [`TimerTable`] entry each, in the order
//! [`Tcb::on_timeout`] runs them when several are due at once ([`Timer::VALUES`]):
//!
//! - [`Timer::Close`]: TIME-WAIT's end (RFC 9293 section 3.6.1), or the limit on an
//!   orphaned FIN-WAIT-2; the connection closes.
//! - [`Timer::Reorder`]: RACK's reordering timer (RFC 8985 section 6.3): segments sent
//!   before the latest delivered one have waited RACK's RTT plus the reordering window
//!   and are marked lost.
//! - [`Timer::LossProbe`]: the tail loss probe (RFC 8985 section 7): earlier than the
//!   retransmission timeout, it sends one segment whose ACK (with SACK) lets recovery
//!   repair a loss at the tail of a flight.
//! - [`Timer::Retransmit`]: the retransmission timeout (RFC 6298, RFC 5681 section
//!   3.1): the connection backs off, goes back to what is unacknowledged, and gives up
//!   after its retry limit.
//! - [`Timer::DelayedAck`]: the delayed ACK (RFC 9293 section 3.8.6.3) goes out.
//! - [`Timer::Persist`]: data waits on a window too small to send into with nothing in
//!   flight (RFC 9293 section 3.8.6.1): a window probe goes out.
//! - [`Timer::KeepAlive`]: the connection was idle (RFC 9293 section 3.8.4): a
//!   keep-alive probe goes out, or after too many unanswered ones the connection fails.
//!
//! A TCB exposes one deadline, the earliest in its table. An expiry whose action is a
//! segment (a loss probe, a window probe, a keep-alive probe) is recorded in the table
//! as pending and taken by the next transmit opportunity.

use super::input::LossCheck;
use super::{Ctx, Tcb};
use crate::error::ConnError;
use crate::event::TcpState;
use crate::Instant;

/// One of a connection's timers (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// TIME-WAIT's end, or the orphaned FIN-WAIT-2 limit.
    Close,
    /// RACK's reordering timer.
    Reorder,
    /// The tail loss probe.
    LossProbe,
    /// The retransmission timeout.
    Retransmit,
    /// The delayed ACK.
    DelayedAck,
    /// The persist (window probe) timer.
    Persist,
    /// Keep-alive.
    KeepAlive,
}

impl Timer {
    /// Every timer, in the order expiries due at the same time are handled.
    pub(super) const VALUES: [Timer; 7] = [
        Timer::Close,
        Timer::Reorder,
        Timer::LossProbe,
        Timer::Retransmit,
        Timer::DelayedAck,
        Timer::Persist,
        Timer::KeepAlive,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Each timer's deadline, if armed, and whether its expiry still owes a segment.
#[derive(Debug, Clone, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<Instant>; Timer::VALUES.len()],
    /// Timers (bits by [`Timer::bit`]) that fired and whose segment is yet to be sent.
    pending: u8,
}

impl TimerTable {
    /// `timer`'s deadline, if armed.
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    /// Arms `timer` for `at` (replacing any earlier deadline).
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Arms `timer` for `at`, or disarms it with `None`.
    pub(super) fn put(&mut self, timer: Timer, at: Option<Instant>) {
        self.deadlines[timer as usize] = at;
    }

    /// Disarms `timer` (a pending expiry stays pending).
    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// Whether `timer` is armed.
    pub(super) fn is_armed(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is due at `now`; if so it is disarmed.
    fn take_expired(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.get(timer).is_some_and(|at| at <= now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Records that `timer`'s expiry owes a segment.
    fn set_pending(&mut self, timer: Timer) {
        self.pending |= timer.bit();
    }

    /// Whether `timer`'s expiry owed a segment; it no longer does.
    pub(super) fn take_pending(&mut self, timer: Timer) -> bool {
        let was = self.pending & timer.bit() != 0;
        self.pending &= !timer.bit();
        was
    }

    /// Whether some expiry owes a segment.
    pub(super) fn any_pending(&self) -> bool {
        self.pending != 0
    }

    /// Disarms every timer and forgets every pending expiry.
    pub(super) fn clear(&mut self) {
        *self = TimerTable::default();
    }
}

impl Tcb {
    /// The earliest armed timer.
    pub fn deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now`, in the order of [`Timer::VALUES`].
    pub fn on_timeout(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        for timer in Timer::VALUES {
            if !self.timers.take_expired(timer, now) {
                continue;
            }
            match timer {
                Timer::Close => {
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
                Timer::Reorder => {
                    if self.sack_enabled && self.state.is_synchronized() {
                        self.rack_detect_loss(now, LossCheck::Timer, ctx);
                        // Entering recovery stopped the probe, and no ACK comes to
                        // re-arm it as one would: without it, a lost ACK for all that
                        // is in flight leaves only the retransmission timeout.
                        self.arm_tlp(now);
                    }
                }
                Timer::LossProbe => {
                    if self.snd_una != self.snd_max && self.tlp_sent < super::MAX_LOSS_PROBES {
                        ctx.counters.tail_loss_probes += 1;
                        self.tlp_sent += 1;
                        self.timers.set_pending(Timer::LossProbe);
                        // The retransmission timeout now counts from the probe; the
                        // next probe waits twice as long.
                        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                        self.arm_tlp(now);
                    }
                }
                Timer::Retransmit => {
                    self.on_rto(now, ctx);
                    if self.state == TcpState::Closed {
                        return;
                    }
                }
                Timer::DelayedAck => {
                    if !self.ack_now {
                        ctx.counters.delayed_acks += 1;
                        self.ack_now = true;
                    }
                }
                Timer::Persist => {
                    // A peer that answers keeps the connection (RFC 9293 section
                    // 3.8.6.1); a probe it left unanswered counts as a retransmission
                    // that went unanswered.
                    if core::mem::take(&mut self.peer_answered) {
                        self.retries = 0;
                    } else {
                        self.retries += 1;
                    }
                    if self.out_of_retries(self.retry_limit(), ctx) {
                        return;
                    }
                    if self.window_probe(ctx) {
                        return;
                    }
                    self.timers.set_pending(Timer::Persist);
                    self.persist_backoff = (self.persist_backoff + 1).min(16);
                }
                Timer::KeepAlive => {
                    let Some(ka) = self.keepalive else {
                        continue;
                    };
                    if self.snd_una != self.snd_max {
                        // Data in flight: the retransmission timer watches the peer.
                        self.timers.set(Timer::KeepAlive, now + ka.idle);
                        return;
                    }
                    if self.keepalive_sent >= ka.probes {
                        ctx.counters.keepalive_timeouts += 1;
                        self.fail(ConnError::KeepAliveTimedOut);
                        return;
                    }
                    ctx.counters.keepalive_probes += 1;
                    self.keepalive_sent += 1;
                    self.timers.set_pending(Timer::KeepAlive);
                    self.timers.set(Timer::KeepAlive, now + ka.interval);
                }
            }
        }
    }

    /// Unanswered retransmissions (or window probes) before a synchronized connection
    /// times out: fewer once the application has closed it.
    fn retry_limit(&self) -> u32 {
        if self.orphaned {
            self.params.max_retries.min(self.params.max_orphan_retries)
        } else {
            self.params.max_retries
        }
    }

    /// Times the connection out if its unanswered retransmissions (or probes) are past
    /// `limit`; returns whether it did.
    fn out_of_retries(&mut self, limit: u32, ctx: &mut Ctx<'_>) -> bool {
        if self.retries <= limit {
            return false;
        }
        ctx.counters.timeouts += 1;
        self.fail(ConnError::TimedOut {
            retries: self.retries - 1,
        });
        true
    }

    /// Counts a window probe about to go out. A connection the application has closed
    /// gives up, with a reset, after `max_orphan_retries` of them: returns whether it
    /// did.
    fn window_probe(&mut self, ctx: &mut Ctx<'_>) -> bool {
        ctx.counters.window_probes += 1;
        if !self.orphaned {
            return false;
        }
        self.orphan_probes += 1;
        if self.orphan_probes <= self.params.max_orphan_retries {
            return false;
        }
        ctx.counters.orphans_dropped += 1;
        self.send_rst(ctx);
        self.fail(ConnError::TimedOut {
            retries: self.orphan_probes - 1,
        });
        true
    }

    /// Retransmission timeout (RFC 6298 section 5, RFC 5681 section 3.1).
    fn on_rto(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if self.snd_una == self.snd_max && !self.syn_pending {
            return;
        }
        ctx.counters.rto_expirations += 1;
        self.timers.stop(Timer::LossProbe);
        self.timers.stop(Timer::Reorder);
        self.tlp_high = None;
        // A probe not sent yet is not sent: the timeout's retransmission replaces it.
        self.timers.take_pending(Timer::LossProbe);
        self.tlp_sent = 0;
        let answered = core::mem::take(&mut self.peer_answered);
        if self.snd_wnd == 0 && answered && self.state.is_synchronized() {
            // The peer closed its window on data already sent and still answers: this
            // retransmission is a window probe, and a live peer is never timed out
            // for keeping its window shut (RFC 9293 section 3.8.6.1), unless the
            // application has closed the connection.
            if self.window_probe(ctx) {
                return;
            }
        } else {
            self.retries += 1;
        }
        let limit = match self.state {
            TcpState::SynSent => self.params.max_syn_retries,
            TcpState::SynReceived => self.params.max_synack_retries,
            _ => self.retry_limit(),
        };
        if self.out_of_retries(limit, ctx) {
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
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
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
    /// to [`super::MAX_LOSS_PROBES`] probes go out before the timeout (FreeBSD's RACK
    /// also sends more than one), and probes also run during recovery, where a retransmission
    /// whose ACK was lost would otherwise wait for the timeout. A probe is sent only
    /// when no ACK came for a PTO, so a live ACK clock never sends one.
    ///
    /// Every synchronized state with our data or FIN possibly in flight probes, the
    /// closing ones too (as in Linux): the tail of a response followed by `close` is
    /// where a lost segment has no later segment to reveal it.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        self.timers.stop(Timer::LossProbe);
        if !self.sack_enabled
            || !matches!(
                self.state,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::Closing
                    | TcpState::LastAck
            )
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
        let rto = self.timers.get(Timer::Retransmit);
        self.timers
            .set(Timer::LossProbe, rto.map_or(at, |rto| at.min(rto)));
    }

    /// Arms keep-alive after activity, if enabled and the connection is open.
    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        let at = match self.keepalive {
            Some(ka) if matches!(self.state, TcpState::Established | TcpState::CloseWait) => {
                Some(now + ka.idle)
            }
            _ => None,
        };
        self.timers.put(Timer::KeepAlive, at);
    }

    /// Arms the persist timer when data waits but nothing is in flight to bring an
    /// ACK: a zero window (RFC 9293 section 3.8.6.1) or a window too small for SWS
    /// avoidance to send into (the override timeout of section 3.8.6.2.1).
    pub(super) fn arm_persist_if_needed(&mut self, now: Instant) {
        if self.timers.is_armed(Timer::Persist)
            || !self.state.is_synchronized()
            || self.snd_una != self.snd_max
            || self.unsent_bytes() == 0
        {
            return;
        }
        let rto = self.rtt.rto();
        let backoff = rto.saturating_mul(1 << self.persist_backoff.min(16));
        let cap = core::time::Duration::from_secs(60);
        self.timers
            .set(Timer::Persist, now + backoff.min(cap).max(rto));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn values_list_every_timer_at_its_index() {
        for (i, t) in Timer::VALUES.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
    }

    #[test]
    fn the_next_deadline_is_the_earliest_armed() {
        let mut t = TimerTable::default();
        assert_eq!(t.next_deadline(), None);
        t.set(Timer::KeepAlive, at(900));
        t.set(Timer::Retransmit, at(300));
        t.put(Timer::Reorder, Some(at(500)));
        assert_eq!(t.next_deadline(), Some(at(300)));
        t.stop(Timer::Retransmit);
        assert_eq!(t.next_deadline(), Some(at(500)));
        t.put(Timer::Reorder, None);
        assert!(!t.is_armed(Timer::Reorder));
        assert_eq!(t.next_deadline(), Some(at(900)));
    }

    #[test]
    fn only_due_timers_expire_and_expiry_disarms() {
        let mut t = TimerTable::default();
        t.set(Timer::DelayedAck, at(100));
        t.set(Timer::Persist, at(200));
        let now = at(100);
        assert!(!t.take_expired(Timer::Persist, now));
        assert!(t.take_expired(Timer::DelayedAck, now));
        assert!(!t.is_armed(Timer::DelayedAck));
        assert!(!t.take_expired(Timer::DelayedAck, now));
        assert_eq!(t.get(Timer::Persist), Some(at(200)));
    }

    #[test]
    fn pending_expiries_are_taken_once_and_cleared_with_the_table() {
        let mut t = TimerTable::default();
        assert!(!t.any_pending());
        t.set_pending(Timer::Persist);
        t.set_pending(Timer::KeepAlive);
        assert!(t.any_pending());
        assert!(!t.take_pending(Timer::LossProbe));
        assert!(t.take_pending(Timer::Persist));
        assert!(!t.take_pending(Timer::Persist));
        assert!(t.any_pending());
        t.set(Timer::Close, at(5));
        t.clear();
        assert!(!t.any_pending());
        assert_eq!(t.next_deadline(), None);
    }
}
