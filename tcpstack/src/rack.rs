//! RACK loss detection (RFC 8985 section 6) over per-segment transmit records.
//!
//! The sender keeps one [`TxRecord`] per segment in flight (per super-segment when
//! segmentation offload sends several at once; records split where SACK blocks or
//! retransmissions cut them): when it was last sent, whether it was retransmitted,
//! SACKed or found lost. An ACK delivers records (cumulatively or by SACK); the most
//! recently *sent* delivered record sets `RACK.xmit_ts` and `RACK.rtt`, and any record
//! sent before it that is still undelivered one `RACK.rtt` plus the reordering window
//! later is lost. Because the rule is about send times, it finds lost retransmissions
//! as well as lost originals, however many there are, without waiting for the
//! retransmission timeout.
//!
//! The reordering window is zero until reordering is seen (so DupThresh-like speed for
//! in-order paths), then `min_rtt / 4` scaled by a multiplier that grows with each
//! round trip that brings a D-SACK (a spurious retransmission) and decays after 16
//! recoveries without one, never above SRTT (section 6.2).
//!
//! Memory: records cover `SND.UNA..SND.MAX` exactly and are split only at SACK block
//! edges and retransmission boundaries, so there are at most as many as segments in
//! flight plus twice the SACK blocks seen per ACK; the total is capped at
//! [`Rack::new`]'s `limit`: beyond it, blocks that would split a record are ignored
//! and new data joins the last record (precision is lost, never safety: such data is
//! found lost late rather than early). A connection holds at most `limit` records of
//! 24 bytes, whatever the peer or the application does.

use std::collections::VecDeque;
use std::time::Duration;

use crate::sack::SackBlock;
use crate::{Instant, SeqNum};

/// One transmission of the sequence range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRecord {
    /// First sequence number.
    pub start: SeqNum,
    /// One past the last (a FIN counts as one).
    pub end: SeqNum,
    /// When the range was last (re)transmitted.
    pub sent: Instant,
    /// Sent more than once.
    pub retransmitted: bool,
    /// The peer reported it held (SACK).
    pub sacked: bool,
    /// Deemed lost and not yet sent again.
    pub lost: bool,
}

impl TxRecord {
    fn len(&self) -> u32 {
        self.end - self.start
    }
}

/// What one ACK did to the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Bytes newly SACKed.
    pub newly_sacked: u32,
    /// The ACK's D-SACK block (RFC 2883): what the peer got twice.
    pub dsack: Option<SackBlock>,
}

/// What [`Rack::detect_loss`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Bytes newly marked lost.
    pub bytes: u32,
    /// Of the records newly marked, those that were retransmissions.
    pub retransmissions: u32,
    /// When records not yet old enough will be, for the reordering timer.
    pub timer: Option<Instant>,
}

/// Whether a transmission at `t1` ending at `e1` happened after one at `t2` ending at
/// `e2` (RFC 8985 `RACK_sent_after`: equal times are ordered by sequence).
fn sent_after(t1: Instant, e1: SeqNum, t2: Instant, e2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && e1.gt(e2))
}

/// The records and RACK's state for one connection.
#[derive(Debug, Clone)]
pub struct Rack {
    /// In sequence order, contiguous, covering `SND.UNA..SND.MAX`.
    records: VecDeque<TxRecord>,
    limit: usize,
    sacked: u32,
    lost: u32,
    /// `RACK.xmit_ts` and `RACK.end_seq`: the most recently sent delivered record.
    latest: Option<(Instant, SeqNum)>,
    /// `RACK.rtt`: the RTT of that record's delivery.
    rtt: Duration,
    /// `RACK.fack`: the highest end of any delivered record.
    fack: Option<SeqNum>,
    reordering_seen: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// `RACK.dsack_round`: the window of data after which the next D-SACK counts.
    dsack_round: Option<SeqNum>,
    /// The end of the highest record ever retransmitted while outstanding: above it,
    /// records are originals, in send order.
    high_rtx: Option<SeqNum>,
}

impl Rack {
    /// No records; at most `limit` will be kept (at least 8).
    pub fn new(limit: usize) -> Self {
        Rack {
            records: VecDeque::new(),
            limit: limit.max(8),
            sacked: 0,
            lost: 0,
            latest: None,
            rtt: Duration::ZERO,
            fack: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
            high_rtx: None,
        }
    }

    /// The records, in sequence order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &TxRecord> {
        self.records.iter()
    }

    /// Bytes SACKed and not yet cumulatively acknowledged.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// Bytes deemed lost and not yet sent again.
    pub fn lost_bytes(&self) -> u32 {
        self.lost
    }

    /// Whether any outstanding data is SACKed.
    pub fn has_sacked(&self) -> bool {
        self.sacked > 0
    }

    /// Whether reordering was observed on this connection.
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    /// Bytes in flight (RFC 6675 `pipe` as RACK counts it): of `outstanding` bytes
    /// (`SND.MAX - SND.UNA`), those neither SACKed nor lost.
    pub fn pipe(&self, outstanding: u32) -> u32 {
        outstanding.saturating_sub(self.sacked + self.lost)
    }

    /// Forgets everything (the connection ended).
    pub fn clear(&mut self) {
        *self = Rack::new(self.limit);
    }

    /// `[start, end)` went out at `now`: new data is appended; a range already
    /// recorded is marked retransmitted (and no longer lost), SACKed parts excepted.
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        if !end.gt(start) {
            return;
        }
        let top = self.records.back().map(|r| r.end);
        let old_end = match top {
            Some(top) if start.lt(top) => end.min(top),
            _ => start,
        };
        if old_end.gt(start) {
            self.retransmitted(start, old_end, now);
        }
        if end.gt(old_end) {
            let from = match top {
                Some(top) if top.gt(old_end) => top,
                _ => old_end,
            };
            if self.records.len() >= self.limit {
                if let Some(last) = self.records.back_mut() {
                    // At the limit new data joins the last record, which then counts
                    // as sent now, in flight and not SACKed: a loss in it is found
                    // later (or a SACKed part sent again), never too early.
                    if last.sacked {
                        self.sacked -= last.len();
                    }
                    if last.lost {
                        self.lost -= last.len();
                    }
                    last.end = end;
                    last.sent = now;
                    last.sacked = false;
                    last.lost = false;
                    return;
                }
            }
            self.records.push_back(TxRecord {
                start: from,
                end,
                sent: now,
                retransmitted: false,
                sacked: false,
                lost: false,
            });
        }
    }

    fn retransmitted(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        self.split_at(start);
        self.split_at(end);
        let mut high = self.high_rtx;
        for r in self.records.iter_mut() {
            if !r.end.gt(start) {
                continue;
            }
            if !r.start.lt(end) {
                break;
            }
            if r.sacked {
                continue;
            }
            if r.lost {
                r.lost = false;
                self.lost -= r.len();
            }
            r.retransmitted = true;
            r.sent = now;
            high = Some(high.map_or(r.end, |h| h.max(r.end)));
        }
        self.high_rtx = high;
    }

    /// Splits the record holding `at` so that one starts there, if the limit allows.
    /// Returns whether a record now starts at `at` (or `at` is outside the records).
    fn split_at(&mut self, at: SeqNum) -> bool {
        let Some(i) = self.index_of(at) else {
            return true;
        };
        let r = self.records[i];
        if r.start == at {
            return true;
        }
        if self.records.len() >= self.limit {
            return false;
        }
        self.records[i].end = at;
        self.records.insert(i + 1, TxRecord { start: at, ..r });
        true
    }

    /// The index of the record holding `seq`.
    fn index_of(&self, seq: SeqNum) -> Option<usize> {
        let first = self.records.front()?;
        if seq.lt(first.start) || !seq.lt(self.records.back()?.end) {
            return None;
        }
        // Records are in sequence order: binary search on their starts.
        let i = self
            .records
            .partition_point(|r| r.start.le(seq))
            .saturating_sub(1);
        Some(i)
    }

    /// Processes an acceptable ACK: `una` is the cumulative acknowledgment (at or past
    /// the previous one) and `blocks` its SACK blocks, as received. `ts_ecr_before`
    /// tells whether the ACK's timestamp echo predates a given send time (it then
    /// acknowledges an earlier copy), `min_rtt` is the connection's minimum RTT.
    pub fn on_ack(
        &mut self,
        una: SeqNum,
        blocks: &[SackBlock],
        now: Instant,
        min_rtt: Duration,
        ts_ecr_before: impl Fn(Instant) -> bool,
    ) -> Delivery {
        let mut out = Delivery::default();
        let mut blocks = blocks;
        // RFC 2883: a first block below the cumulative ACK, or inside the second
        // block, reports a duplicate.
        if let Some(first) = blocks.first() {
            let inside_second = blocks
                .get(1)
                .is_some_and(|b| b.left.le(first.left) && first.right.le(b.right));
            if first.left.lt(una) || inside_second {
                out.dsack = Some(*first);
                blocks = &blocks[1..];
            }
        }
        if out.dsack.is_some() {
            self.on_dsack();
        }
        // Cumulatively acknowledged records.
        while let Some(&r) = self.records.front() {
            if !r.start.lt(una) {
                break;
            }
            if r.end.le(una) {
                self.records.pop_front();
                if r.sacked {
                    self.sacked -= r.len();
                } else {
                    if r.lost {
                        self.lost -= r.len();
                    }
                    self.delivered(&r, true, now, min_rtt, &ts_ecr_before);
                }
            } else {
                // Acknowledged up to the middle: the rest stays, the front delivered.
                let cut = una - r.start;
                let front = self.records.front_mut().expect("checked");
                front.start = una;
                if r.sacked {
                    self.sacked -= cut;
                } else {
                    if r.lost {
                        self.lost -= cut;
                    }
                    self.delivered(
                        &TxRecord { end: una, ..r },
                        true,
                        now,
                        min_rtt,
                        &ts_ecr_before,
                    );
                }
                break;
            }
        }
        if self.high_rtx.is_some_and(|h| h.le(una)) {
            self.high_rtx = None;
        }
        if self.records.is_empty() && self.records.capacity() > 64 {
            // An idle connection gives its record storage back.
            self.records = VecDeque::new();
        }
        // Selectively acknowledged records.
        for b in blocks {
            let left = b.left.max(una);
            if !b.right.gt(left) {
                continue;
            }
            // Only whole records are marked: a block edge inside a record splits it
            // (unless the limit forbids, and then the cut part waits).
            let l_ok = self.split_at(left);
            self.split_at(b.right);
            let Some(mut i) = self.index_of(left) else {
                continue;
            };
            if !l_ok {
                i += 1;
            }
            while i < self.records.len() {
                let r = self.records[i];
                if !r.end.le(b.right) {
                    break;
                }
                if !r.sacked {
                    self.records[i].sacked = true;
                    self.sacked += r.len();
                    out.newly_sacked += r.len();
                    if r.lost {
                        self.records[i].lost = false;
                        self.lost -= r.len();
                    }
                    self.delivered(&r, false, now, min_rtt, &ts_ecr_before);
                }
                i += 1;
            }
        }
        out
    }

    /// RFC 8985 section 6.2 steps 2 and 3 for one newly delivered record, delivered
    /// by the cumulative ACK (`cumulative`) or by a SACK block.
    fn delivered(
        &mut self,
        r: &TxRecord,
        cumulative: bool,
        now: Instant,
        min_rtt: Duration,
        ts_ecr_before: &impl Fn(Instant) -> bool,
    ) {
        match self.fack {
            Some(f) if r.end.lt(f) => {
                // Delivered below data delivered before it: reordered, if the copy that
                // arrived was sent before that data. A never-retransmitted record's
                // was; so was a retransmitted one's whose cumulative ACK echoes a
                // timestamp older than the retransmission, for then the original
                // filled the hole (as Linux's `tcp_packet_delayed` reasons). Without
                // this, a retransmission that always wins the race against the
                // reordered original keeps the window at zero. A SACK echoes the
                // in-order data's timestamp, so it says nothing here.
                if !r.retransmitted || (cumulative && ts_ecr_before(r.sent)) {
                    self.reordering_seen = true;
                }
            }
            _ => self.fack = Some(r.end),
        }
        let rtt = now - r.sent;
        // A retransmitted record delivered sooner than an RTT, or acknowledged by an
        // ACK that echoes an older timestamp, was delivered by its earlier copy: its
        // send time says nothing.
        if r.retransmitted && (rtt < min_rtt || ts_ecr_before(r.sent)) {
            return;
        }
        if self
            .latest
            .is_none_or(|(t, e)| sent_after(r.sent, r.end, t, e))
        {
            self.latest = Some((r.sent, r.end));
            self.rtt = rtt;
        }
    }

    /// A D-SACK arrived: once per round trip, widen the reordering window (section
    /// 6.2 step 4).
    fn on_dsack(&mut self) {
        if self.dsack_round.is_none() {
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = 16;
            self.dsack_round = self.records.back().map(|r| r.end);
        }
    }

    /// A recovery episode ended: after 16 without a D-SACK the window's multiplier
    /// resets.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// The reordering window (section 6.2 step 4): zero while no reordering was seen
    /// and either in recovery or with at least DupThresh segments' worth SACKed;
    /// else `min_rtt / 4` times the D-SACK multiplier, at most `srtt`.
    pub fn reo_wnd(
        &mut self,
        una: SeqNum,
        in_recovery: bool,
        smss: u32,
        min_rtt: Duration,
        srtt: Duration,
    ) -> Duration {
        if self.dsack_round.is_some_and(|r| r.le(una)) {
            self.dsack_round = None;
        }
        if !self.reordering_seen
            && (in_recovery || self.sacked >= crate::recovery::DUP_THRESH.saturating_mul(smss))
        {
            return Duration::ZERO;
        }
        (min_rtt / 4).saturating_mul(self.reo_wnd_mult).min(srtt)
    }

    /// RFC 8985 `RACK_detect_loss`: marks lost every undelivered record sent before
    /// the most recently sent delivered one and outstanding for longer than
    /// `RACK.rtt + reo_wnd`; records that will pass that age later set the timer.
    pub fn detect_loss(&mut self, now: Instant, reo_wnd: Duration) -> Lost {
        let mut out = Lost::default();
        let Some((xmit_ts, end_seq)) = self.latest else {
            return out;
        };
        let wait = self.rtt + reo_wnd;
        for r in self.records.iter_mut() {
            let original_zone = self.high_rtx.is_none_or(|h| r.start.ge(h));
            if !sent_after(xmit_ts, end_seq, r.sent, r.end) {
                if original_zone {
                    // Originals above every retransmission are in send order: all
                    // later ones were sent after RACK's record too.
                    break;
                }
                continue;
            }
            if r.sacked || r.lost {
                continue;
            }
            let due = r.sent + wait;
            if due <= now {
                r.lost = true;
                self.lost += r.len();
                out.bytes += r.len();
                out.retransmissions += u32::from(r.retransmitted);
            } else {
                out.timer = Some(out.timer.map_or(due, |t| t.max(due)));
            }
        }
        out
    }

    /// A retransmission timeout (section 6.3, `RACK_mark_losses_on_RTO`): the first
    /// outstanding record is lost, and so is every undelivered one outstanding for
    /// longer than `RACK.rtt + reo_wnd`. `forget_sacks` first clears every SACK mark
    /// (the peer may have reneged, RFC 2018 section 8). Returns the bytes newly lost.
    pub fn on_timeout(&mut self, now: Instant, reo_wnd: Duration, forget_sacks: bool) -> u32 {
        if forget_sacks {
            for r in self.records.iter_mut() {
                r.sacked = false;
            }
            self.sacked = 0;
        }
        let wait = self.rtt + reo_wnd;
        let mut newly = 0;
        for (i, r) in self.records.iter_mut().enumerate() {
            if r.sacked || r.lost {
                continue;
            }
            if i == 0 || r.sent + wait <= now {
                r.lost = true;
                self.lost += r.len();
                newly += r.len();
            }
        }
        newly
    }

    /// The path's MTU fell (RFC 1191) so that segments now carry at most `mss`
    /// bytes: every outstanding record, neither SACKed nor lost already, that may have
    /// been too big for it is lost (Linux's `tcp_simple_retransmit`): one longer than
    /// `mss` less the largest SACK option it may have carried with its data.
    pub fn on_mss_shrunk(&mut self, mss: u32) {
        /// Four SACK blocks: the most option room a segment's data gave way to.
        const LARGEST_SACK_OPTION: u32 = 36;
        let fits = mss.saturating_sub(LARGEST_SACK_OPTION);
        for r in self.records.iter_mut() {
            if !r.sacked && !r.lost && r.len() > fits {
                r.lost = true;
                self.lost += r.len();
            }
        }
    }

    /// How many bytes from `seq`, at most `max`, a retransmission there may cover
    /// without reaching into the next record: the rest of the record holding `seq`,
    /// or `max` outside the records. A retransmission that spills into the next
    /// record would stamp that record's head with the new send time, and its SACK
    /// would then pass for a delivery of the retransmission.
    pub fn room_in_record(&self, seq: SeqNum, max: u32) -> u32 {
        self.index_of(seq)
            .map_or(max, |i| (self.records[i].end - seq).min(max))
    }

    /// Whether a record holds `seq`.
    pub fn holds(&self, seq: SeqNum) -> bool {
        self.index_of(seq).is_some()
    }

    /// The last record's start: where a tail loss probe resends the last segment.
    pub fn last_start(&self) -> Option<SeqNum> {
        self.records.back().map(|r| r.start)
    }

    /// The first lost range to send again, as `(seq, len)` with `len <= max` (the
    /// record is split there when sent).
    pub fn next_lost(&self, max: u32) -> Option<(SeqNum, u32)> {
        if self.lost == 0 {
            return None;
        }
        let r = self.records.iter().find(|r| r.lost && !r.sacked)?;
        Some((r.start, r.len().min(max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u32 = u32::MAX - 5000;
    const MSS: u32 = 1000;

    fn s(off: u32) -> SeqNum {
        SeqNum(BASE) + off
    }

    fn ms(m: u64) -> Instant {
        Instant::from_millis(m)
    }

    fn blk(a: u32, b: u32) -> SackBlock {
        SackBlock {
            left: s(a),
            right: s(b),
        }
    }

    /// Ten segments sent 1 ms apart from t = 0.
    fn ten() -> Rack {
        let mut r = Rack::new(64);
        for i in 0..10 {
            r.on_send(s(i * MSS), s((i + 1) * MSS), ms(u64::from(i)));
        }
        r
    }

    fn ack(r: &mut Rack, una: u32, blocks: &[SackBlock], now: u64) -> Delivery {
        r.on_ack(s(una), blocks, ms(now), Duration::from_millis(5), |_| false)
    }

    #[test]
    fn a_hole_below_later_delivered_data_is_lost_at_once_without_reordering() {
        let mut r = ten();
        let d = ack(&mut r, 0, &[blk(1000, 4000)], 14);
        assert_eq!(d.newly_sacked, 3000);
        assert_eq!(r.pipe(10 * MSS), 7000);
        // Three segments SACKed, no reordering seen: the window is zero.
        let wnd = r.reo_wnd(
            s(0),
            false,
            MSS,
            Duration::from_millis(10),
            Duration::from_millis(10),
        );
        assert_eq!(wnd, Duration::ZERO);
        let lost = r.detect_loss(ms(14), wnd);
        assert_eq!(
            lost.bytes, 1000,
            "only the segment sent before the delivered ones"
        );
        assert_eq!(lost.timer, None);
        assert_eq!(r.next_lost(MSS), Some((s(0), 1000)));
        assert_eq!(r.pipe(10 * MSS), 6000);
    }

    #[test]
    fn a_lost_retransmission_is_found_by_later_deliveries() {
        let mut r = ten();
        ack(&mut r, 0, &[blk(1000, 4000)], 14);
        r.detect_loss(ms(14), Duration::ZERO);
        // Retransmit the hole at t = 15; it is lost again. Segments 4.. are SACKed
        // later, but were sent before the retransmission: they say nothing about it.
        r.on_send(s(0), s(1000), ms(15));
        assert_eq!(r.lost_bytes(), 0);
        ack(&mut r, 0, &[blk(1000, 10_000)], 16);
        assert_eq!(r.detect_loss(ms(16), Duration::ZERO).bytes, 0);
        // New data sent after the retransmission and delivered reveals it.
        r.on_send(s(10_000), s(11_000), ms(17));
        ack(&mut r, 0, &[blk(1000, 11_000)], 31);
        let lost = r.detect_loss(ms(31), Duration::ZERO);
        assert_eq!((lost.bytes, lost.retransmissions), (1000, 1));
        assert_eq!(r.next_lost(MSS), Some((s(0), 1000)));
    }

    #[test]
    fn reordering_widens_the_window_and_the_timer_decides() {
        let mut r = ten();
        // Segment 3 delivered before 1 and 2: reordering once they arrive.
        ack(&mut r, 1000, &[blk(3000, 4000)], 14);
        ack(&mut r, 3000, &[blk(3000, 4000)], 14);
        assert!(r.reordering_seen());
        let wnd = r.reo_wnd(
            s(3000),
            false,
            MSS,
            Duration::from_millis(8),
            Duration::from_millis(10),
        );
        assert_eq!(wnd, Duration::from_millis(2));
        // SACK of 5 with 4 missing: 4 was sent at 4 ms, RACK.rtt is 10 ms (for 5),
        // so 4 is lost at 4 + 10 + 2 = 16 ms.
        ack(&mut r, 4000, &[blk(5000, 6000)], 15);
        let lost = r.detect_loss(ms(15), wnd);
        assert_eq!(lost.bytes, 0);
        assert_eq!(lost.timer, Some(ms(16)));
        assert_eq!(r.detect_loss(ms(16), wnd).bytes, 1000);
    }

    #[test]
    fn an_original_that_fills_its_hole_after_its_retransmission_is_reordering() {
        // Segment 0 is marked lost by the SACK of 1-3 and retransmitted at 15 ms; the
        // cumulative ACK that covers it echoes a timestamp older than that, so the
        // original arrived: reordering.
        let retransmit = |r: &mut Rack| {
            ack(r, 0, &[blk(1000, 4000)], 14);
            assert_eq!(r.detect_loss(ms(14), Duration::ZERO).bytes, 1000);
            r.on_send(s(0), s(1000), ms(15));
        };
        let older_echo = |sent: Instant| sent >= ms(15);
        let mut r = ten();
        retransmit(&mut r);
        r.on_ack(s(4000), &[], ms(16), Duration::from_millis(5), older_echo);
        assert!(r.reordering_seen());
        // The retransmission filled the hole (its own timestamp echoed): no news.
        let mut r = ten();
        retransmit(&mut r);
        ack(&mut r, 4000, &[], 16);
        assert!(!r.reordering_seen());
        // A SACK of the retransmission echoes the in-order data's older timestamp
        // whichever copy arrived: no news either.
        let mut r = ten();
        ack(&mut r, 0, &[blk(2000, 4000)], 14);
        assert_eq!(r.detect_loss(ms(14), Duration::ZERO).bytes, 2000);
        r.on_send(s(1000), s(2000), ms(15));
        r.on_ack(
            s(0),
            &[blk(1000, 4000)],
            ms(16),
            Duration::from_millis(5),
            older_echo,
        );
        assert!(!r.reordering_seen());
    }

    #[test]
    fn dsack_grows_the_window_once_per_round() {
        let mut r = ten();
        ack(&mut r, 2000, &[blk(3000, 4000)], 14);
        ack(&mut r, 3000, &[], 14);
        assert!(r.reordering_seen());
        let d = ack(&mut r, 4000, &[blk(500, 1000)], 15);
        assert_eq!(d.dsack, Some(blk(500, 1000)));
        ack(&mut r, 4000, &[blk(600, 1000)], 15);
        let wnd = r.reo_wnd(
            s(4000),
            false,
            MSS,
            Duration::from_millis(8),
            Duration::from_millis(100),
        );
        assert_eq!(
            wnd,
            Duration::from_millis(4),
            "multiplier 2 after one round"
        );
        for _ in 0..16 {
            r.on_recovery_exit();
        }
        let wnd = r.reo_wnd(
            s(10_000),
            false,
            MSS,
            Duration::from_millis(8),
            Duration::from_millis(100),
        );
        assert_eq!(wnd, Duration::from_millis(2), "reset after 16 recoveries");
    }

    #[test]
    fn records_split_at_block_edges_and_stay_bounded() {
        let mut r = Rack::new(8);
        r.on_send(s(0), s(64_000), ms(0));
        ack(&mut r, 0, &[blk(1000, 2000)], 5);
        assert_eq!(r.records().count(), 3);
        assert_eq!(r.sacked_bytes(), 1000);
        // One-byte blocks everywhere cannot grow the records past the limit.
        for i in 0..100 {
            ack(&mut r, 0, &[blk(3000 + i * 10, 3001 + i * 10)], 6);
        }
        assert!(r.records().count() <= 8);
        let total: u32 = r.records().map(TxRecord::len).sum();
        assert_eq!(total, 64_000, "records still cover everything outstanding");
        // A cumulative ACK into the middle of a record trims it.
        ack(&mut r, 1500, &[], 7);
        assert_eq!(r.records().next().map(|x| x.start), Some(s(1500)));
        assert_eq!(
            r.sacked_bytes() as usize,
            r.records()
                .filter(|x| x.sacked)
                .map(|x| x.len() as usize)
                .sum::<usize>()
        );
    }

    #[test]
    fn timeout_marks_the_head_and_the_old_records() {
        let mut r = ten();
        ack(&mut r, 0, &[blk(5000, 6000)], 20);
        let lost = r.on_timeout(ms(200), Duration::ZERO, false);
        assert_eq!(lost, 9000, "everything not SACKed");
        let mut r = ten();
        r.on_send(s(10_000), s(11_000), ms(199));
        let lost = r.on_timeout(ms(200), Duration::ZERO, false);
        assert_eq!(
            lost, 11_000,
            "without a delivery RACK.rtt is 0: all that was sent before now"
        );
        let mut r = ten();
        ack(&mut r, 0, &[blk(5000, 6000)], 20);
        assert_eq!(
            r.on_timeout(ms(200), Duration::ZERO, true),
            10_000,
            "reneging"
        );
        assert_eq!(r.sacked_bytes(), 0);
    }

    #[test]
    fn retransmitting_part_of_a_lost_record_keeps_the_rest_lost() {
        let mut r = Rack::new(64);
        r.on_send(s(0), s(4000), ms(0));
        r.on_timeout(ms(100), Duration::ZERO, false);
        assert_eq!(r.lost_bytes(), 4000);
        r.on_send(s(0), s(1000), ms(101));
        assert_eq!(r.lost_bytes(), 3000);
        assert_eq!(r.next_lost(MSS), Some((s(1000), 1000)));
        assert_eq!(r.pipe(4000), 1000);
    }
}
