//! Segment arrival (RFC 9293 section 3.10.7.3 and 3.10.7.4), with the RFC 5961
//! protections and RFC 7323 PAWS.

use super::{Ctx, Notes, Tcb, Timer, PAWS_IDLE, PAWS_WINDOW};
use crate::buffer::window;
use crate::error::ConnError;
use crate::event::TcpState;
use crate::inline_vec::InlineVec;
use crate::recovery::{RecoveryAck, DUP_THRESH};
use crate::sack::{SackBlock, MAX_SACK_BLOCKS};
use crate::wire::{flags, Segment};
use crate::{Instant, SeqNum};

/// The smallest path MTU taken from ICMP (Linux's `min_pmtu`): a smaller one would make
/// segments too small to be worth sending, and is the mark of a forged message.
pub(crate) const MIN_PATH_MTU: u16 = 552;

/// What ran RACK's loss detection.
#[derive(Debug, Clone, Copy)]
pub(super) enum LossCheck {
    /// An ACK, which arrived with `in_flight` bytes outstanding.
    Ack { in_flight: u32 },
    /// The reordering timer.
    Timer,
}

impl Tcb {
    /// Processes a segment of this connection.
    pub fn on_segment(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        match self.state {
            TcpState::Closed => {}
            TcpState::SynSent => self.on_segment_syn_sent(now, seg, ctx),
            _ => self.on_segment_synchronized(now, seg, ctx),
        }
    }

    /// RFC 9293 section 3.10.7.3.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        let has_ack = seg.has(flags::ACK);
        if has_ack && (seg.ack.le(self.iss) || seg.ack.gt(self.snd_max)) {
            if !seg.has(flags::RST) {
                ctx.counters.ack_unsent += 1;
                ctx.control.push(
                    crate::control::Control::Rst {
                        tuple: self.tuple,
                        seq: seg.ack,
                        ack: None,
                    },
                    ctx.counters,
                );
            }
            return;
        }
        if seg.has(flags::RST) {
            ctx.counters.rst_received += 1;
            if has_ack {
                ctx.counters.rst_accepted += 1;
                ctx.counters.connect_refused += 1;
                self.fail(ConnError::Refused);
            }
            return;
        }
        if !seg.has(flags::SYN) {
            ctx.counters.unexpected_segments += 1;
            return;
        }
        self.take_syn_options(now, seg);
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1u32;
        self.rcv_adv = self.rcv_nxt;
        self.syn_pending = false;
        if has_ack {
            self.on_new_ack(now, seg);
            // The window of a SYN-ACK is not scaled.
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.snd_wnd = u32::from(seg.window);
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.establish(now, ctx);
            self.ack_now = true;
            if self.fin_queued {
                self.set_state(TcpState::FinWait1);
            }
        } else {
            // Simultaneous open: answer with SYN-ACK, same ISS.
            self.set_state(TcpState::SynReceived);
            self.snd_nxt = self.iss;
            self.syn_pending = true;
            self.update_window(u32::from(seg.window), seg.seq, seg.ack);
        }
    }

    fn establish(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        self.set_state(TcpState::Established);
        self.notes.insert(Notes::ESTABLISHED);
        ctx.counters.established += 1;
        self.retries = 0;
        self.arm_keepalive(now);
    }

    /// RFC 9293 section 3.10.7.4, for SYN-RECEIVED and every synchronized state.
    fn on_segment_synchronized(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        // Simultaneous open: in SYN-RECEIVED the peer's SYN-ACK crosses ours. Its SYN is
        // the one already taken (SEQ + 1 = RCV.NXT) and its ACK covers our SYN, so it
        // completes the handshake like a plain ACK (RFC 9293 figure 7; Linux does the
        // same). Without this both ends would answer each other's SYN-ACK forever.
        if self.state == TcpState::SynReceived
            && seg.flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN | flags::ACK
            && seg.seq + 1u32 == self.rcv_nxt
            && seg.ack.gt(self.snd_una)
            && seg.ack.le(self.snd_max)
        {
            let mut ack = seg.clone();
            ack.flags &= !flags::SYN;
            ack.seq = self.rcv_nxt;
            return self.on_segment_synchronized(now, &ack, ctx);
        }
        let rst = seg.has(flags::RST);
        // RFC 7323 section 5.3: PAWS, before the sequence check (within PAWS_WINDOW).
        if self.ts_enabled && !rst {
            if let Some((tsval, _)) = seg.opts.timestamp {
                if super::ts_before(tsval.wrapping_add(PAWS_WINDOW), self.ts_recent)
                    && now - self.ts_recent_at < PAWS_IDLE
                {
                    ctx.counters.paws_rejected += 1;
                    self.ack_now = true;
                    return;
                }
            }
        }

        // First: sequence number acceptability.
        if !self.acceptable(seg) {
            if rst {
                ctx.counters.rst_received += 1;
                ctx.counters.rst_out_of_window += 1;
            } else if seg.has(flags::SYN) && self.state != TcpState::SynReceived {
                // RFC 5961 section 4.2: a SYN gets a challenge ACK whatever its sequence.
                self.challenge_ack(now, ctx);
            } else {
                ctx.counters.out_of_window += 1;
                self.ack_now = true;
                self.note_old_data(seg, ctx);
                if self.state == TcpState::TimeWait && seg.has(flags::FIN) {
                    // A retransmitted FIN: the final ACK was lost; restart 2*MSL.
                    self.timers.set(Timer::Close, now + self.params.time_wait);
                }
            }
            return;
        }

        // Second: RST (RFC 5961 section 3.2).
        if rst {
            ctx.counters.rst_received += 1;
            if seg.seq == self.rcv_nxt {
                ctx.counters.rst_accepted += 1;
                match self.state {
                    TcpState::SynReceived => {
                        // Passive: back to LISTEN, which for us means the TCB goes away;
                        // active (simultaneous open): refused.
                        self.fail(ConnError::Refused);
                        return;
                    }
                    TcpState::Closing | TcpState::LastAck | TcpState::TimeWait => {
                        self.set_state(TcpState::Closed);
                        return;
                    }
                    _ => {}
                }
                self.fail(ConnError::Reset);
            } else {
                self.challenge_ack(now, ctx);
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 section 4).
        if seg.has(flags::SYN) {
            if self.state == TcpState::SynReceived && seg.seq == self.irs {
                // A retransmitted SYN: the SYN-ACK was lost.
                self.syn_pending = true;
                return;
            }
            self.challenge_ack(now, ctx);
            return;
        }

        // Fifth: the ACK field.
        if !seg.has(flags::ACK) {
            ctx.counters.no_ack += 1;
            return;
        }
        if self.state == TcpState::SynReceived {
            if seg.ack.le(self.snd_una) || seg.ack.gt(self.snd_max) {
                ctx.control.push(
                    crate::control::Control::Rst {
                        tuple: self.tuple,
                        seq: seg.ack,
                        ack: None,
                    },
                    ctx.counters,
                );
                return;
            }
            self.syn_pending = false;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.snd_wnd = window::decode(seg.window, self.snd_shift);
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.establish(now, ctx);
            if self.fin_queued {
                self.set_state(TcpState::FinWait1);
            }
        }
        // RFC 5961 section 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if seg.ack.gt(self.snd_max) {
            ctx.counters.ack_unsent += 1;
            self.challenge_ack(now, ctx);
            return;
        }
        if seg.ack.lt(self.snd_una - self.max_snd_wnd.max(1)) {
            ctx.counters.ack_too_old += 1;
            self.challenge_ack(now, ctx);
            return;
        }

        // RFC 7323 sections 4.3 and 5.3 (R3): remember the timestamp to echo; never
        // an older one (PAWS_WINDOW lets those through).
        if let Some((tsval, _)) = seg.opts.timestamp {
            if self.ts_enabled
                && seg.seq.le(self.last_ack_sent)
                && !super::ts_before(tsval, self.ts_recent)
            {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }
        self.keepalive_sent = 0;
        self.arm_keepalive(now);

        self.process_ack(now, seg, ctx);
        if self.state == TcpState::Closed {
            return;
        }

        // Seventh: segment text.
        if !seg.payload.is_empty() {
            match self.state {
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 => {
                    if self.orphaned {
                        // Nobody will read it: RFC 9293 section 3.10.4 allows a reset.
                        self.send_rst(ctx);
                        self.fail(ConnError::Aborted);
                        return;
                    }
                    self.receive_data(now, seg, ctx);
                }
                _ => {
                    // Data after the peer's FIN is a duplicate; acknowledge.
                    ctx.counters.duplicate_bytes += seg.payload.len() as u64;
                    self.ack_now = true;
                }
            }
        }

        // Eighth: FIN.
        if seg.has(flags::FIN) {
            let fin = seg.seq + seg.payload.len();
            self.discard_passed_fin(ctx);
            match self.fin_seq {
                None if !self.fin_received => self.fin_seq = Some(fin),
                // The FIN of a segment in order ends the stream here, whatever one
                // seen out of order claimed (as Linux takes an in-order FIN at once);
                // otherwise the first one seen holds until data passes it.
                Some(recorded) if fin == self.rcv_nxt && recorded != fin => {
                    self.fin_seq = Some(fin);
                    ctx.counters.fin_discarded += 1;
                }
                _ => {}
            }
            self.ack_now = true;
        }
        self.maybe_take_fin(now, ctx);
    }

    /// The segment acceptability test of RFC 9293 section 3.10.7.4.
    fn acceptable(&self, seg: &Segment<'_>) -> bool {
        let wnd = self.recv_window();
        let len = seg.seq_len();
        match (len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            // The right edge itself is accepted too, as Linux does: a peer whose
            // window's worth of data was lost in flight sends its pure ACKs from
            // there, and dropping them would throw their acknowledgments away (we
            // would retransmit what the peer already has, until its data arrives).
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd) || seg.seq == self.rcv_nxt + wnd,
            // A zero window still takes the ACK, RST and window of a segment at the
            // exact next sequence (its data is then dropped and acknowledged).
            (_, 0) => seg.seq == self.rcv_nxt,
            _ => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || (seg.seq + (len - 1)).in_window(self.rcv_nxt, wnd)
            }
        }
    }

    /// ICMP "fragmentation needed" (RFC 1191) for the segment this connection sent at
    /// `seq`, with the next hop's `mtu`: segments shrink to fit (never below an MTU
    /// of [`MIN_PATH_MTU`], as Linux's `min_pmtu`), and what is in flight at the old
    /// size goes again at the new one, which is no sign of congestion (Linux's
    /// `tcp_simple_retransmit`). Ignored, returning false, unless `seq` is in flight
    /// (RFC 5927 section 4.1: a blind forger rarely knows it) and segments shrink.
    pub fn on_frag_needed(&mut self, now: Instant, mtu: u16, seq: SeqNum) -> bool {
        let in_flight = seq.ge(self.snd_una) && seq.lt(self.snd_max);
        if !self.state.is_synchronized() || !in_flight {
            return false;
        }
        let mss = crate::config::mss_for_mtu(mtu.max(MIN_PATH_MTU).into());
        let smss = self.data_per_segment(mss);
        if smss >= self.smss {
            return false;
        }
        self.smss = smss;
        self.cc.set_mss(smss);
        if self.sack_enabled {
            self.rack.on_mss_shrunk(smss);
        } else {
            self.snd_nxt = self.snd_una;
        }
        self.rtx_pending = true;
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        true
    }

    /// RFC 5961 section 7: a rate-limited challenge ACK.
    fn challenge_ack(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        if ctx.challenge.allow(now, &mut self.last_challenge) {
            ctx.counters.challenge_acks += 1;
            self.ack_now = true;
        } else {
            ctx.counters.challenge_acks_suppressed += 1;
        }
    }

    fn update_window_from(&mut self, seg: &Segment<'_>) {
        let wnd = window::decode(seg.window, self.snd_shift);
        // RFC 9293 section 3.10.7.4: update only from newer segments. A segment that
        // advances SND.UNA is newer too, whatever its SEQ: a retransmission from the
        // peer can carry an older SEQ than the last pure ACK, and skipping its window
        // would slide the stale SND.WND rightwards with SND.UNA, past the peer's real
        // right edge (as Linux's `tcp_may_update_window` also reasons).
        if seg.ack.gt(self.snd_una)
            || self.snd_wl1.lt(seg.seq)
            || (self.snd_wl1 == seg.seq && self.snd_wl2.le(seg.ack))
        {
            self.update_window(wnd, seg.seq, seg.ack);
        }
    }

    pub(super) fn update_window(&mut self, wnd: u32, seq: SeqNum, ack: SeqNum) {
        self.snd_wnd = wnd;
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.max_snd_wnd = self.max_snd_wnd.max(wnd);
    }

    /// The ACK processing of the fifth step, for an acceptable ACK.
    fn process_ack(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        self.peer_answered = true;
        self.resolve_tlp(now, seg, ctx);
        let old_wnd = self.snd_wnd;
        let old_una = self.snd_una;
        let in_flight = self.snd_max - self.snd_una;
        let mut newly_sacked = 0;
        if self.sack_enabled {
            newly_sacked = self.rack_on_ack(now, seg, ctx);
        }
        if seg.ack.gt(self.snd_una) {
            self.update_window_from(seg);
            let acked = seg.ack - self.snd_una;
            self.on_new_ack(now, seg);
            self.dup_acks = 0;
            match self.recovery.on_ack(self.snd_una) {
                RecoveryAck::Idle => {
                    self.cc.on_ack(now, acked, self.rtt.srtt(), in_flight);
                }
                RecoveryAck::Partial { .. } => {
                    if !self.sack_enabled {
                        // RFC 6582: deflate, and retransmit the next hole at once (with
                        // SACK, RACK finds the holes).
                        self.cc.on_partial_ack(acked);
                        self.rtx_pending = true;
                    }
                }
                RecoveryAck::Exited => {
                    self.rack.on_recovery_exit();
                    // An episode that ends without a retransmission of its data was
                    // reordering: the ACKs covered every segment marked lost before it
                    // could go again (Linux's `tcp_try_undo_recovery`).
                    match self.undo.take_if(|u| u.retransmits == 0) {
                        Some(undo) => self.undo_response(undo, ctx),
                        None => self.cc.on_recovery_exit(now),
                    }
                }
            }
        } else {
            let dup = seg.ack == self.snd_una
                && seg.payload.is_empty()
                && !seg.has(flags::FIN)
                && self.snd_max != self.snd_una;
            self.update_window_from(seg);
            let dup = dup && self.snd_wnd == old_wnd;
            if dup || newly_sacked > 0 {
                ctx.counters.dup_acks += 1;
                self.dup_acks += 1;
                if self.sack_enabled {
                    // RACK decides below.
                } else if self.recovery.is_active() {
                    self.cc.on_dup_ack_in_recovery();
                } else if self.recovery.may_enter(self.snd_una) {
                    if self.dup_acks >= DUP_THRESH {
                        self.enter_recovery(now, in_flight, ctx);
                    } else if self.early_loss_detected() {
                        ctx.counters.early_retransmits += 1;
                        self.enter_recovery(now, in_flight, ctx);
                    }
                }
            }
        }
        if self.sack_enabled {
            self.rack_detect_loss(now, LossCheck::Ack { in_flight }, ctx);
        }
        self.after_ack_state(now);
        if self.snd_wnd > 0 {
            if self.timers.is_armed(Timer::Persist) {
                // The probes' unanswered count is no retransmission's.
                self.retries = 0;
            }
            self.timers.stop(Timer::Persist);
            self.persist_backoff = 0;
            self.orphan_probes = 0;
        }
        self.arm_persist_if_needed(now);
        if seg.ack.gt(old_una) || newly_sacked > 0 {
            // News from the peer: the probes start over.
            self.tlp_sent = 0;
        }
        if seg.ack.gt(old_una) || self.recovery.is_active() {
            self.arm_tlp(now);
        }
    }

    /// RACK's view of an ACK (RFC 8985 section 6.2 steps 1-3): delivers the records it
    /// covers, cumulatively and by SACK, and notes D-SACKs. Returns the bytes newly
    /// SACKed.
    fn rack_on_ack(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) -> u32 {
        let mut blocks = InlineVec::<SackBlock, MAX_SACK_BLOCKS>::new();
        for &(left, right) in seg.opts.sack_blocks.iter() {
            // The option holds no more than `blocks` does.
            let _ = blocks.push(SackBlock { left, right });
        }
        ctx.counters.sack_blocks_received += blocks.len() as u64;
        let una = if seg.ack.gt(self.snd_una) {
            seg.ack
        } else {
            self.snd_una
        };
        let min_rtt = self.rtt.min_rtt().unwrap_or_default();
        let ts_ecr = seg.opts.timestamp.filter(|_| self.ts_enabled).map(|t| t.1);
        let offset = self.ts_offset;
        let delivery = self.rack.on_ack(una, &blocks, now, min_rtt, |sent| {
            ts_ecr.is_some_and(|ecr| super::ts_before(ecr, super::ts_clock(sent, offset)))
        });
        if let Some(dsack) = delivery.dsack {
            ctx.counters.dsacks_received += 1;
            self.on_dsack(dsack, ctx);
        }
        delivery.newly_sacked
    }

    /// A D-SACK reported `block` received twice: if it is the last outstanding
    /// retransmission of the latest recovery, that recovery's congestion response is
    /// undone (RFC 3708 section 3).
    fn on_dsack(&mut self, block: SackBlock, ctx: &mut Ctx<'_>) {
        let Some(undo) = &mut self.undo else {
            return;
        };
        if block.left.lt(undo.from) || block.right.gt(undo.to) || undo.retransmits == 0 {
            return;
        }
        undo.retransmits -= 1;
        if undo.retransmits > 0 {
            return;
        }
        let undo = self.undo.take().expect("checked");
        if self.recovery.is_active() {
            self.recovery.undo();
        }
        self.undo_response(undo, ctx);
    }

    /// Takes back a congestion response that proved needless: the controller goes back
    /// to where it was, unless it has grown past that since.
    fn undo_response(&mut self, undo: super::Undo, ctx: &mut Ctx<'_>) {
        if undo.cc.cwnd() >= self.cc.cwnd() {
            self.cc = undo.cc;
        }
        ctx.counters.recoveries_undone += 1;
    }

    /// RACK's reordering window now (RFC 8985 section 6.2 step 4), from this
    /// connection's RTT estimates (SRTT standing in for the minimum RTT, and the RTO for
    /// both, before any sample).
    pub(super) fn reo_wnd(&mut self) -> core::time::Duration {
        let srtt = self.rtt.srtt().unwrap_or_else(|| self.rtt.rto());
        let min_rtt = self.rtt.min_rtt().unwrap_or(srtt);
        self.rack.reo_wnd(
            self.snd_una,
            self.recovery.is_active(),
            self.smss,
            min_rtt,
            srtt,
        )
    }

    /// RACK's loss detection (RFC 8985 section 6.2 steps 4-5), after an ACK or when the
    /// reordering timer fires: marks what is lost, starts recovery for it, and re-arms
    /// the timer for what may be lost later.
    pub(super) fn rack_detect_loss(&mut self, now: Instant, check: LossCheck, ctx: &mut Ctx<'_>) {
        let reo_wnd = self.reo_wnd();
        let lost = self.rack.detect_loss(now, reo_wnd);
        self.timers.put(Timer::Reorder, lost.timer);
        if lost.bytes == 0 {
            return;
        }
        ctx.counters.lost_retransmits += u64::from(lost.retransmissions);
        if self.recovery.may_enter(self.snd_una) {
            let in_flight = match check {
                LossCheck::Ack { in_flight } => in_flight,
                LossCheck::Timer => {
                    ctx.counters.reordering_timeouts += 1;
                    self.snd_max - self.snd_una
                }
            };
            self.enter_recovery(now, in_flight, ctx);
        }
    }

    /// Ends a tail loss probe episode (RFC 8985 section 7.4, as Linux's
    /// `tcp_process_tlp_ack`): a pure duplicate ACK or a D-SACK at or past the probe
    /// means both copies arrived (no loss); an ACK beyond the probe of a retransmitted
    /// segment means the probe repaired a loss, which gets the congestion response
    /// fast recovery would have given it.
    fn resolve_tlp(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        let Some(high) = self.tlp_high else {
            return;
        };
        if seg.ack.lt(high) {
            return;
        }
        let pure_dup =
            seg.ack == self.snd_una && seg.payload.is_empty() && seg.opts.sack_blocks.is_empty();
        // A D-SACK (a first block below the ACK, RFC 2883) reports the probe's copy
        // received twice: no loss either, as in Linux.
        let dsack = seg
            .opts
            .sack_blocks
            .first()
            .is_some_and(|&(l, _)| l.lt(seg.ack));
        if !self.tlp_rtx || pure_dup || dsack {
            self.tlp_high = None;
        } else if seg.ack.gt(high) {
            self.tlp_high = None;
            if !self.recovery.is_active() {
                ctx.counters.tail_loss_probe_recoveries += 1;
                let in_flight = self.snd_max - self.snd_una;
                self.cc.on_congestion_event(now, in_flight);
            }
        }
    }

    /// RFC 5827 early retransmit: with fewer than four segments outstanding and no new
    /// data that may be sent, `oseg - 1` duplicate ACKs are enough, since DupThresh of
    /// them can never arrive.
    fn early_loss_detected(&self) -> bool {
        let oseg = (self.snd_max - self.snd_una).div_ceil(self.smss.max(1));
        if !(2..4).contains(&oseg) {
            return false;
        }
        let can_send_new = self.unsent_bytes() > 0 && self.window_room() > 0;
        !can_send_new && self.dup_acks >= oseg - 1
    }

    /// Starts loss recovery for a loss found when `in_flight` bytes were outstanding:
    /// as the ACK that revealed it arrived, before it acknowledged anything, so that a
    /// stretch ACK (one for many segments) does not shrink the window the loss is
    /// judged against.
    pub(super) fn enter_recovery(&mut self, now: Instant, in_flight: u32, ctx: &mut Ctx<'_>) {
        ctx.counters.fast_retransmits += 1;
        // Recovery's own congestion response covers whatever a probe found.
        self.timers.stop(Timer::LossProbe);
        self.tlp_high = None;
        self.undo = self.sack_enabled.then(|| super::Undo {
            cc: self.cc.clone(),
            from: self.snd_una,
            to: self.snd_max,
            retransmits: 0,
        });
        self.cc.on_congestion_event(now, in_flight);
        self.recovery.enter(self.snd_una, self.snd_max);
        if !self.sack_enabled {
            for _ in 0..DUP_THRESH {
                self.cc.on_dup_ack_in_recovery();
            }
        }
        // The fast retransmit goes out whatever the window (RFC 5681 section 3.2).
        self.rtx_pending = true;
    }

    /// `SND.UNA` advances to `ack`: release acknowledged data, time the RTT, manage the
    /// retransmission timer.
    pub(super) fn on_new_ack(&mut self, now: Instant, seg: &Segment<'_>) {
        let ack = seg.ack;
        let mut acked = ack - self.snd_una;
        if !self.syn_acked && acked > 0 {
            acked -= 1; // our SYN
            self.syn_acked = true;
        }
        let data = (acked as usize).min(self.send_buf.len());
        self.send_buf.consume(data);
        self.bytes_acked += data as u64;
        self.snd_una = ack;
        if self.snd_nxt.lt(ack) {
            self.snd_nxt = ack;
        }
        // Karn-timed sample, else, when nothing is being timed (after a
        // retransmission), the timestamp echo, which is never ambiguous (RFC 7323
        // section 4) and so also measures across retransmissions. While a segment is
        // timed to the microsecond, the echo's millisecond ticks would only add
        // rounding to the estimate.
        let timing = self.sampler.is_timing();
        match self
            .sampler
            .on_ack(ack, now)
            .or_else(|| (!timing).then(|| self.timestamp_rtt(now, seg)).flatten())
        {
            Some(rtt) => self.rtt.sample(rtt),
            None => self.rtt.reset_backoff(),
        }
        self.retries = 0;
        let rto = (self.snd_una != self.snd_max).then(|| now + self.rtt.rto());
        self.timers.put(Timer::Retransmit, rto);
        if data > 0 && self.write_blocked && !self.fin_queued {
            self.write_blocked = false;
            self.notes.insert(Notes::WRITABLE);
        }
    }

    /// The RTT measured by the echoed timestamp of an ACK of new data (RFC 7323
    /// section 4.1), in the timestamp clock's millisecond resolution.
    fn timestamp_rtt(&self, now: Instant, seg: &Segment<'_>) -> Option<core::time::Duration> {
        let (_, tsecr) = seg.opts.timestamp.filter(|_| self.ts_enabled)?;
        if self
            .rtx_tsval
            .is_some_and(|rtx| super::ts_before(tsecr, rtx))
        {
            return None;
        }
        let elapsed = super::ts_clock(now, self.ts_offset).wrapping_sub(tsecr);
        // An echo of zero is "no echo"; one from the future or minutes old is bogus.
        // One of the current tick says the RTT is at most a tick, and counts as one,
        // as in Linux: a sample of zero would make the minimum RTT, and RACK's
        // reordering window with it, zero.
        (tsecr != 0 && elapsed < 60_000)
            .then(|| core::time::Duration::from_millis(u64::from(elapsed.max(1))))
    }

    /// State changes caused by the acknowledgment of our FIN.
    fn after_ack_state(&mut self, now: Instant) {
        if !self.fin_acked() {
            return;
        }
        match self.state {
            TcpState::FinWait1 => {
                self.set_state(TcpState::FinWait2);
                if self.orphaned {
                    self.timers
                        .set(Timer::Close, now + self.params.fin_wait2_timeout);
                }
            }
            TcpState::Closing => self.enter_time_wait(now),
            TcpState::LastAck => self.set_state(TcpState::Closed),
            _ => {}
        }
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(TcpState::TimeWait);
        for timer in [
            Timer::Retransmit,
            Timer::Persist,
            Timer::KeepAlive,
            Timer::DelayedAck,
        ] {
            self.timers.stop(timer);
        }
        self.timers.set(Timer::Close, now + self.params.time_wait);
    }

    /// A refused segment that starts below `RCV.NXT`, and no further below it than a
    /// receive buffer (a sender's window), carried data we already have up to
    /// `RCV.NXT`: a needless retransmission, counted and reported to the sender as a
    /// D-SACK (RFC 2883). A zero window refuses a segment that straddles `RCV.NXT`;
    /// only its head is old (Linux reports the same). One further off is no
    /// retransmission of ours to report (a forged or stray segment).
    fn note_old_data(&mut self, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        let len = seg.payload.len() as u32;
        let span = self.params.recv_buffer;
        if len == 0
            || !seg.seq.lt(self.rcv_nxt)
            || self.rcv_nxt - seg.seq > span
            || !self.state.is_synchronized()
        {
            return;
        }
        self.received_twice(seg.seq, len.min(self.rcv_nxt - seg.seq), ctx);
    }

    /// `len` bytes from `left`, below `RCV.NXT`, arrived again: counted, and reported
    /// to a SACK peer as a D-SACK.
    fn received_twice(&mut self, left: SeqNum, len: u32, ctx: &mut Ctx<'_>) {
        ctx.counters.duplicate_bytes += u64::from(len);
        if self.sack_enabled {
            self.sack_reporter.on_duplicate(SackBlock {
                left,
                right: left + len,
            });
        }
    }

    /// Places segment text into the receive queue.
    fn receive_data(&mut self, now: Instant, seg: &Segment<'_>, ctx: &mut Ctx<'_>) {
        let mut payload = seg.payload;
        let mut seq = seg.seq;
        if seq.lt(self.rcv_nxt) {
            let dup = (self.rcv_nxt - seq).min(payload.len() as u32);
            self.received_twice(seq, dup, ctx);
            payload = &payload[dup as usize..];
            seq = self.rcv_nxt;
        }
        // Trim to the advertised window (the buffer may hold a little more).
        let wnd = self.recv_window() as usize;
        if payload.len() > wnd {
            ctx.counters.rcv_window_trimmed += (payload.len() - wnd) as u64;
            payload = &payload[..wnd];
        }
        if payload.is_empty() {
            self.ack_now = true;
            return;
        }
        let offset = seq - self.rcv_nxt;
        ctx.pool.provide(self.recv.buffer_mut());
        match self.recv.insert(offset, payload) {
            Ok(ins) => {
                if ins.accepted < payload.len() {
                    ctx.counters.rcv_window_trimmed += (payload.len() - ins.accepted) as u64;
                }
                if ins.readable > 0 {
                    self.dup_acks_owed = 0;
                    self.rcv_nxt += ins.readable;
                    self.bytes_received += ins.readable as u64;
                    self.sack_reporter.on_rcv_nxt(self.rcv_nxt);
                    if !self.read_notified {
                        self.read_notified = true;
                        self.notes.insert(Notes::READABLE);
                    }
                }
                if let Some(range) = ins.ooo_range {
                    ctx.counters.out_of_order += 1;
                    self.sack_reporter
                        .on_out_of_order(SackBlock::from_range(self.rcv_nxt, range));
                    if self.ack_now && !self.sack_enabled {
                        self.dup_acks_owed = (self.dup_acks_owed + 1).min(DUP_THRESH as u8);
                    }
                    self.ack_now = true;
                } else if offset > 0
                    || !self.recv.assembler().is_empty()
                    || ins.readable > ins.accepted
                {
                    // Filled (part of) a hole: acknowledge at once (RFC 5681 section 4.2).
                    self.ack_now = true;
                } else {
                    self.schedule_ack(now, ins.accepted);
                }
            }
            Err(_) => {
                ctx.counters.ooo_dropped += 1;
                self.ack_now = true;
            }
        }
    }

    /// Delayed ACK: at least every second full-sized segment, else within the timeout.
    ///
    /// Every segment counts toward the pair, so full-sized ones are acknowledged at
    /// least every second one and small ones no less often. A super-segment handed
    /// over by segmentation offload counts as the full-sized segments it carries.
    fn schedule_ack(&mut self, now: Instant, len: usize) {
        let segments = (len / usize::from(self.params.mss).max(1)).max(1);
        self.unacked_segments = self
            .unacked_segments
            .saturating_add(u32::try_from(segments).unwrap_or(u32::MAX));
        match self.params.delayed_ack {
            Some(d) if self.unacked_segments < 2 => {
                if !self.timers.is_armed(Timer::DelayedAck) {
                    self.timers.set(Timer::DelayedAck, now + d);
                }
            }
            _ => self.ack_now = true,
        }
    }

    /// Forgets a FIN, seen out of order, whose place data has since passed: it was
    /// stale or forged (Linux drops such a queued FIN the same way), and a later FIN
    /// ends the stream.
    fn discard_passed_fin(&mut self, ctx: &mut Ctx<'_>) {
        if self.fin_seq.is_some_and(|fin| fin.lt(self.rcv_nxt)) {
            self.fin_seq = None;
            ctx.counters.fin_discarded += 1;
        }
    }

    /// Consumes the peer's FIN once everything before it arrived.
    fn maybe_take_fin(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        self.discard_passed_fin(ctx);
        let Some(fin) = self.fin_seq else { return };
        if self.fin_received || fin != self.rcv_nxt {
            return;
        }
        self.fin_received = true;
        self.fin_seq = None;
        self.rcv_nxt += 1u32;
        self.ack_now = true;
        self.notes.insert(Notes::PEER_FIN);
        if !self.read_notified {
            self.read_notified = true;
            self.notes.insert(Notes::READABLE);
        }
        match self.state {
            TcpState::SynReceived | TcpState::Established => self.set_state(TcpState::CloseWait),
            TcpState::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    ctx.counters.simultaneous_closes += 1;
                    self.set_state(TcpState::Closing);
                }
            }
            TcpState::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }
}
