//! Segment transmission: handshake, new data with Nagle and SWS avoidance, loss
//! recovery (what RACK marked lost first, within `cwnd - pipe`; NewReno without
//! SACK), probes and acknowledgments.

use super::{ts_clock, Ctx, Tcb, Timer};
use crate::buffer::window;
use crate::config::TxOffload;
use crate::event::TcpState;
use crate::inline_vec::InlineVec;
use crate::sack::MAX_SACK_BLOCKS;
use crate::sink::PacketSink;
use crate::wire::{flags, SegmentOut};
use crate::{Instant, SeqNum, Transmit};

/// What one emitted segment carries.
#[derive(Debug, Clone, Copy)]
struct Out {
    seq: SeqNum,
    /// Payload bytes, taken from the send buffer at `seq`.
    len: u32,
    syn: bool,
    fin: bool,
}

impl Out {
    /// A segment carrying `len` bytes from `seq` (and a FIN after them if `fin`).
    fn data(seq: SeqNum, len: u32, fin: bool) -> Out {
        Out {
            seq,
            len,
            syn: false,
            fin,
        }
    }

    /// The SYN (or SYN-ACK) at our ISS.
    fn syn(iss: SeqNum) -> Out {
        Out {
            syn: true,
            ..Out::data(iss, 0, false)
        }
    }
}

impl Tcb {
    /// Whether `poll_transmit` may produce something now.
    pub fn wants_transmit(&self) -> bool {
        if self.state == TcpState::Closed {
            return false;
        }
        self.ack_now
            || self.syn_pending
            || self.rtx_pending
            || self.timers.any_pending()
            || (self.state.is_synchronized() && self.has_unsent())
            || self.rack.lost_bytes() > 0
    }

    /// Unsent data or an unsent FIN.
    fn has_unsent(&self) -> bool {
        self.unsent_bytes() > 0 || (self.fin_queued && self.snd_nxt == self.fin_seq_out())
    }

    /// Bytes in the send buffer at or after `snd_nxt`.
    pub(super) fn unsent_bytes(&self) -> u32 {
        let sent = self.snd_nxt - self.data_start();
        if sent > (1 << 31) {
            // snd_nxt still at the SYN.
            return self.send_buf.len() as u32;
        }
        (self.send_buf.len() as u32).saturating_sub(sent)
    }

    /// Room the peer's window leaves past everything sent
    /// (`SND.UNA + SND.WND - SND.MAX`, or 0).
    pub(super) fn window_room(&self) -> u32 {
        self.snd_wnd.saturating_sub(self.snd_max - self.snd_una)
    }

    /// Puts the next segment into `sink`, finished as far as `offload` leaves it to
    /// the stack.
    pub(crate) fn poll_transmit<S: PacketSink>(
        &mut self,
        now: Instant,
        sink: &mut S,
        ttl: u8,
        offload: TxOffload,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Transmit, S::Sent)> {
        let mss = self.mss_now();
        let out = self.next_segment(now, mss, Self::burst_limit(offload, mss), ctx)?;
        self.emit(now, sink, ttl, offload.checksum, out, ctx)
    }

    /// How many SACK blocks the next segment reports: as many as the option space
    /// holds beside the timestamps (RFC 2018), once synchronized.
    fn sack_blocks_to_report(&self) -> usize {
        if !(self.sack_enabled && self.state.is_synchronized()) {
            return 0;
        }
        let max = if self.ts_enabled { 3 } else { 4 };
        self.sack_reporter.report_len().min(max)
    }

    /// The most data one segment carries now (Linux's `tcp_current_mss`): the sender
    /// MSS less the room the SACK blocks it reports take, so that data and options
    /// together stay within the peer's MSS (RFC 6691; `smss` already allows for the
    /// timestamps).
    fn mss_now(&self) -> u32 {
        self.mss_with_blocks(self.sack_blocks_to_report())
    }

    /// The most data a segment carrying `blocks` SACK blocks holds.
    fn mss_with_blocks(&self, blocks: usize) -> u32 {
        let sack_option = if blocks == 0 {
            0
        } else {
            4 + 8 * blocks as u32
        };
        self.smss.saturating_sub(sack_option).max(1)
    }

    /// The most new data one segment carries: one `mss`, or with segmentation offload
    /// as many whole `mss`-sized segments as one super-segment holds (headers counted
    /// at their largest: 20 bytes of IPv4, 60 of TCP).
    fn burst_limit(offload: TxOffload, mss: u32) -> u32 {
        if offload.segmentation == 0 {
            return mss;
        }
        let room = u32::try_from(offload.segmentation.saturating_sub(80)).unwrap_or(0);
        (room / mss).max(1) * mss
    }

    /// Decides what to send next, if anything, in segments of `mss` bytes; new data goes
    /// out in super-segments of up to `burst` bytes.
    fn next_segment(
        &mut self,
        now: Instant,
        mss: u32,
        burst: u32,
        ctx: &mut Ctx<'_>,
    ) -> Option<Out> {
        match self.state {
            TcpState::Closed => return None,
            TcpState::SynSent => return self.syn_pending.then_some(Out::syn(self.iss)),
            TcpState::SynReceived => {
                return (self.syn_pending || self.ack_now).then_some(Out::syn(self.iss))
            }
            TcpState::TimeWait => return self.ack_now.then(|| self.pure_ack()),
            _ => {}
        }
        if self.rtx_pending {
            // One retransmission outside the congestion window: the first segment
            // RACK marked lost, else the one at SND.UNA; either way no further than
            // its record (the next one may be SACKed or in flight). With SACK, RACK's
            // marks decide while it holds SND.UNA's record (a timeout marks that one):
            // when ACKs since the loss was found covered what was lost, nothing is,
            // and SND.UNA's segment is in flight.
            self.rtx_pending = false;
            let rtx = self.rack.next_lost(mss).or_else(|| {
                let marks_decide = self.sack_enabled && self.rack.holds(self.snd_una);
                let room = self.rack.room_in_record(self.snd_una, mss);
                (!marks_decide).then_some((self.snd_una, room))
            });
            if let Some(o) = rtx.and_then(|(at, len)| self.segment_at(at, len)) {
                return Some(o);
            }
        }
        if self.sack_enabled {
            if let Some(o) = self.lost_segment(mss, burst) {
                return Some(o);
            }
        }
        if let Some(o) = self.new_segment(now, false, mss, burst, ctx) {
            return Some(o);
        }
        if self.timers.take_pending(Timer::LossProbe) {
            if let Some(o) = self.tail_loss_probe(mss) {
                return Some(o);
            }
        }
        if self.timers.take_pending(Timer::Persist) {
            if let Some(o) = self.new_segment(now, true, mss, mss, ctx) {
                return Some(o);
            }
            return Some(self.probe());
        }
        if self.timers.take_pending(Timer::KeepAlive) {
            return Some(self.probe());
        }
        self.ack_now.then(|| self.pure_ack())
    }

    /// RFC 8985 section 7.3: new data if the peer's window allows (cwnd does not
    /// apply), else the last segment sent again. Records the probe episode.
    fn tail_loss_probe(&mut self, mss: u32) -> Option<Out> {
        if self.snd_una == self.snd_max || self.snd_nxt != self.snd_max {
            return None;
        }
        let unsent = self.unsent_bytes();
        let wnd_room = self.window_room();
        let out = if unsent > 0 && wnd_room > 0 {
            let len = unsent.min(wnd_room).min(mss);
            self.tlp_rtx = false;
            Out::data(self.snd_nxt, len, self.fin_queued && len == unsent)
        } else {
            // The last segment sent: its record, if that is at most an MSS, else the
            // last MSS of data outstanding.
            let back = (self.snd_max - self.snd_una).min(mss);
            let at = self
                .rack
                .last_start()
                .filter(|s| s.ge(self.snd_una) && self.snd_max - *s <= back)
                .unwrap_or(self.snd_max - back);
            self.tlp_rtx = true;
            self.segment_at(at, mss)?
        };
        self.tlp_high = Some(self.snd_max);
        Some(out)
    }

    /// A bare ACK. It carries `SND.MAX`, not a rewound `SND.NXT`: after a timeout the
    /// latter lies below what the peer has seen, which would make the ACK unacceptable
    /// to it (two such peers would exchange unacceptable ACKs forever).
    fn pure_ack(&self) -> Out {
        Out::data(self.snd_max, 0, false)
    }

    /// A zero-window or keep-alive probe: `<SEQ=SND.UNA-1>`, no data, elicits an ACK.
    fn probe(&self) -> Out {
        Out::data(self.snd_una - 1u32, 0, false)
    }

    /// A (re)transmission of up to `max` bytes already sent, starting at `seq`.
    fn segment_at(&self, seq: SeqNum, max: u32) -> Option<Out> {
        if !seq.lt(self.snd_max) {
            return None;
        }
        let off = seq - self.data_start();
        let buffered = (self.send_buf.len() as u32).saturating_sub(off);
        let len = buffered.min(max).min(self.snd_max - seq);
        let fin = self.fin_queued && seq + len == self.fin_seq_out() && self.fin_sent();
        (len > 0 || fin).then_some(Out::data(seq, len, fin))
    }

    /// What RACK marked lost, lowest first, while `cwnd - pipe` leaves room (RFC 8985
    /// section 6: lost segments go before new data), in segments of `mss`, at most
    /// `burst` bytes.
    fn lost_segment(&mut self, mss: u32, burst: u32) -> Option<Out> {
        let pipe = self.rack.pipe(self.snd_max - self.snd_una);
        let room = self.cc.cwnd().saturating_sub(pipe);
        if room < mss {
            return None;
        }
        let (seq, len) = self.rack.next_lost(burst.max(mss).min(room))?;
        // A super-segment ends on a segment boundary (the device cuts it in `mss`).
        let len = if len > mss { len - len % mss } else { len };
        self.segment_at(seq, len)
    }

    /// New data (or a rewound retransmission after a timeout) at `snd_nxt`, within the
    /// windows and subject to Nagle and sender SWS avoidance, at most `burst` bytes
    /// (whole segments of `mss` when more data waits). `force` (a persist timer
    /// expiry) overrides Nagle and SWS avoidance.
    fn new_segment(
        &mut self,
        now: Instant,
        force: bool,
        mss: u32,
        burst: u32,
        ctx: &mut Ctx<'_>,
    ) -> Option<Out> {
        let unsent = self.unsent_bytes();
        let fin_unsent = self.fin_queued && self.snd_nxt.le(self.fin_seq_out());
        if unsent == 0 && !(fin_unsent && self.snd_nxt == self.fin_seq_out()) {
            return None;
        }
        let mut cwnd = self.cc.cwnd();
        let mut limited = false;
        if self.sack_enabled {
            // With SACK the window limits what is in flight (`pipe`), not what is
            // outstanding: SACKed and lost bytes have left the network.
            let outstanding = self.snd_max - self.snd_una;
            cwnd = cwnd.saturating_add(outstanding - self.rack.pipe(outstanding));
        } else if self.recovery.is_active() {
            // NewReno: the inflated window already counts the segments that left.
            cwnd = cwnd.max(self.smss);
        } else if !self.recovery.is_active() && self.dup_acks > 0 {
            // RFC 3042 limited transmit: each of the first two duplicate ACKs lets one
            // new segment out beyond cwnd, to keep the ACK clock running.
            let extra = self.dup_acks.min(2).saturating_mul(self.smss);
            limited = window::usable(self.snd_una, self.snd_nxt, self.snd_wnd, cwnd) == 0;
            cwnd = cwnd.saturating_add(extra);
        }
        let usable = window::usable(self.snd_una, self.snd_nxt, self.snd_wnd, cwnd);
        let mut len = unsent.min(usable).min(burst.max(mss));
        if len > mss && len < unsent {
            // A super-segment ends on a segment boundary unless it carries the last
            // bytes: the device must not cut a small segment out of its middle.
            len -= len % mss;
        }
        let rewound = self.snd_nxt.lt(self.snd_max);
        if len > 0 {
            let idle = self.snd_una == self.snd_max;
            let ok = force
                || rewound
                || window::sender_may_send(
                    len,
                    unsent,
                    mss,
                    self.max_snd_wnd,
                    idle,
                    self.nodelay,
                    true,
                );
            if !ok {
                self.arm_persist_if_needed(now);
                return None;
            }
            if idle && !rewound && now - self.last_send > self.rtt.rto() {
                self.cc.on_idle_restart(now);
            }
            if limited && !rewound {
                ctx.counters.limited_transmits += 1;
            }
            return Some(Out::data(self.snd_nxt, len, fin_unsent && len == unsent));
        }
        if unsent == 0 && fin_unsent {
            // A lone FIN needs no window.
            return Some(Out::data(self.snd_nxt, 0, true));
        }
        self.arm_persist_if_needed(now);
        None
    }

    /// The window to advertise now (bytes), with receiver SWS avoidance: the right
    /// edge never moves left and only moves right by a worthwhile amount.
    fn advertise(&self) -> u32 {
        let free = self.recv.window() as u32;
        let cur = self.recv_window();
        let target = if window::receiver_may_open(cur, free, self.params.recv_buffer, self.smss) {
            free
        } else {
            cur.min(free)
        };
        window::advertised(target, cur, self.rcv_shift)
    }

    fn emit<S: PacketSink>(
        &mut self,
        now: Instant,
        sink: &mut S,
        ttl: u8,
        partial_checksum: bool,
        mut out: Out,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Transmit, S::Sent)> {
        let syn = out.syn;
        let syn_ack = syn && self.state != TcpState::SynSent;
        let timestamp = self.ts_enabled.then(|| {
            (
                ts_clock(now, self.ts_offset),
                if syn && !syn_ack { 0 } else { self.ts_recent },
            )
        });
        let mut sacks = InlineVec::<(SeqNum, SeqNum), MAX_SACK_BLOCKS>::new();
        if !syn {
            let n = self.sack_blocks_to_report();
            for b in self.sack_reporter.report().take(n) {
                // At most `n` blocks, which `sacks` holds.
                let _ = sacks.push((b.left, b.right));
            }
        }
        let (wnd_field, adv) = if syn {
            let w = window::syn_window(self.recv.window());
            (w, u32::from(w))
        } else {
            let adv = self.advertise();
            (window::encode(adv, self.rcv_shift), adv)
        };
        let mut header = SegmentOut {
            src: *self.tuple.local.ip(),
            dst: *self.tuple.remote.ip(),
            src_port: self.tuple.local.port(),
            dst_port: self.tuple.remote.port(),
            seq: out.seq,
            ack: self.rcv_nxt,
            flags: 0,
            window: wnd_field,
            mss: syn.then_some(self.params.mss),
            wscale: (syn && self.ws_enabled).then_some(self.rcv_shift),
            sack_permitted: syn && self.sack_enabled,
            timestamp,
            sack_blocks: &sacks,
            ttl,
            partial_checksum,
        };
        let hl = header.headers_len();
        if sink.head_room().len() < hl {
            return None;
        }
        let room = u32::try_from(sink.max_len() - hl).unwrap_or(u32::MAX);
        if out.len > room {
            out.len = room;
            out.fin = false;
        }
        let mut fl = 0;
        if syn {
            fl |= flags::SYN;
        }
        if !syn || syn_ack {
            fl |= flags::ACK;
        }
        if out.fin {
            fl |= flags::FIN;
        }
        if out.len > 0 {
            fl |= flags::PSH;
        }
        header.flags = fl;
        let off = if out.len > 0 {
            (out.seq - self.data_start()) as usize
        } else {
            0
        };
        let payload = <[&[u8]; 2]>::from(self.send_buf.slices_at(off, out.len as usize));
        header.emit_headers(sink.head_room(), payload);
        let mss = self.mss_with_blocks(sacks.len());
        let segment_size = (out.len > mss).then(|| {
            ctx.counters.tx_super_segments += 1;
            mss as u16
        });
        let transmit = Transmit {
            len: hl + out.len as usize,
            segment_size,
            header_len: hl as u16,
            partial_checksum,
        };
        let sent = sink.send(transmit, payload);

        // Bookkeeping.
        self.last_send = now;
        if fl & flags::ACK != 0 {
            if !sacks.is_empty() {
                self.sack_reporter.on_reported();
            }
            self.ack_now = self.dup_acks_owed > 0 && out.len == 0 && !out.fin && !syn;
            self.dup_acks_owed = self.dup_acks_owed.saturating_sub(u8::from(self.ack_now));
            self.timers.stop(Timer::DelayedAck);
            self.unacked_segments = 0;
            self.last_ack_sent = self.rcv_nxt;
            self.rcv_adv = self.rcv_nxt + adv;
        }
        if syn {
            self.syn_pending = false;
        }
        let seq_len = out.len + u32::from(syn) + u32::from(out.fin);
        let mut arm_tlp = false;
        if seq_len > 0 {
            let end = out.seq + seq_len;
            let is_rtx = out.seq.lt(self.snd_max);
            if is_rtx {
                self.rtx_tsval = Some(ts_clock(now, self.ts_offset));
                self.sampler.on_retransmit();
                // A SYN-ACK answering a SYN in SYN-SENT (simultaneous open) repeats our
                // SYN's sequence number but repairs no loss: only a timeout's resend
                // counts.
                if !(syn && self.retries == 0) {
                    ctx.counters.retransmits += 1;
                    self.retransmits += 1;
                    ctx.counters.retransmitted_bytes += u64::from(out.len);
                }
                if let Some(undo) = &mut self.undo {
                    if undo.from.le(out.seq) && out.seq.lt(undo.to) {
                        undo.retransmits += 1;
                    }
                }
            }
            if self.sack_enabled && !syn {
                self.rack.on_send(out.seq, end, now);
            }
            if end.gt(self.snd_max) {
                // A window probe carrying data lies beyond the peer's window: its ACK
                // waits for the window to open, which says nothing about the RTT. (A
                // SYN precedes any window and is timed.)
                let probe = !syn && end.gt(self.snd_una + self.snd_wnd);
                if !is_rtx && !probe {
                    self.sampler.on_send(end, now);
                }
                self.snd_max = end;
                // Data in flight brings ACKs, and the retransmission timer probes a
                // window shut on it: the persist timer runs only with nothing in flight.
                self.timers.stop(Timer::Persist);
                arm_tlp = true;
            }
            // Retransmissions from NextSeg or at SND.UNA leave SND.NXT alone.
            if out.seq == self.snd_nxt {
                self.snd_nxt = end;
            }
            if !self.timers.is_armed(Timer::Retransmit) {
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            if arm_tlp {
                self.arm_tlp(now);
            }
        }
        Some((transmit, sent))
    }
}
