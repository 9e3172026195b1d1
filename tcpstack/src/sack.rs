//! SACK: receiver-side block reporting (RFC 2018) and the sender scoreboard (RFC 6675).
//!
//! - [`SackReporter`] (receiver) keeps the blocks to put in the SACK option: the block
//!   holding the most recently received out-of-order segment first, then the others
//!   most recent first, at most [`MAX_SACK_BLOCKS`], pruned as `RCV.NXT` advances.
//! - [`Scoreboard`] (sender) records which bytes in `SND.UNA..SND.NXT` the peer has
//!   SACKed, in at most [`MAX_SCOREBOARD_RANGES`] ranges, and answers RFC 6675's
//!   `IsLost`, `SetPipe` and `NextSeg`.
//! - [`Recovery`] tracks RFC 6675's `RecoveryPoint` and `HighRxt` across a loss
//!   recovery episode; `HighACK` is `SND.UNA` and `HighData` is `SND.NXT`.
//!
//! Everything is fixed-size: no allocation, bounded whatever the peer sends.

use crate::assembler::Range;
use crate::seq::SeqNum;
use crate::Instant;

/// The most SACK blocks a TCP option can carry (4 without timestamps, 3 with).
pub const MAX_SACK_BLOCKS: usize = 4;

/// The most disjoint SACKed ranges the sender's scoreboard keeps.
pub const MAX_SCOREBOARD_RANGES: usize = 32;

/// RFC 6675's DupThresh.
pub const DUP_THRESH: u32 = 3;

/// A SACK block: the half-open sequence range `[left, right)` held by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackBlock {
    /// First sequence number of the block.
    pub left: SeqNum,
    /// One past the last sequence number of the block.
    pub right: SeqNum,
}

impl SackBlock {
    /// The block for an assembler range (offsets relative to `rcv_nxt`).
    #[inline]
    pub fn from_range(rcv_nxt: SeqNum, range: Range) -> Self {
        SackBlock {
            left: rcv_nxt + range.start,
            right: rcv_nxt + range.end,
        }
    }

    /// Bytes covered.
    #[inline]
    pub fn len(&self) -> u32 {
        self.right - self.left
    }

    /// Whether the block covers nothing (or is inverted).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.right.le(self.left)
    }

    /// Whether the blocks overlap or touch.
    #[inline]
    fn meets(&self, other: &SackBlock) -> bool {
        self.left.le(other.right) && other.left.le(self.right)
    }
}

/// Receiver side: the SACK blocks to report (RFC 2018 section 4).
#[derive(Debug, Clone, Default)]
pub struct SackReporter {
    blocks: [SackBlock; MAX_SACK_BLOCKS],
    len: usize,
}

impl SackReporter {
    /// No blocks to report.
    pub const fn new() -> Self {
        SackReporter {
            blocks: [SackBlock {
                left: SeqNum(0),
                right: SeqNum(0),
            }; MAX_SACK_BLOCKS],
            len: 0,
        }
    }

    /// The blocks to report, most recent first. Send the first `n` that fit (3 with
    /// timestamps, 4 without).
    #[inline]
    pub fn blocks(&self) -> &[SackBlock] {
        &self.blocks[..self.len]
    }

    /// Whether there is nothing to report.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An out-of-order segment arrived and is held in `block`: the whole held range
    /// containing it (for example [`crate::assembler::Inserted::ooo_range`] through
    /// [`SackBlock::from_range`]). It becomes the first block; blocks it overlaps or
    /// touches (now part of it) are removed; the oldest falls off beyond the limit.
    pub fn on_out_of_order(&mut self, block: SackBlock) {
        if block.is_empty() {
            return;
        }
        let mut out = [block; MAX_SACK_BLOCKS];
        let mut n = 1;
        for b in &self.blocks[..self.len] {
            if n == MAX_SACK_BLOCKS {
                break;
            }
            if !b.meets(&block) {
                out[n] = *b;
                n += 1;
            }
        }
        self.blocks = out;
        self.len = n;
    }

    /// `RCV.NXT` advanced to `rcv_nxt`: drop blocks now below it, trim any it cuts.
    pub fn on_rcv_nxt(&mut self, rcv_nxt: SeqNum) {
        let mut n = 0;
        for i in 0..self.len {
            let mut b = self.blocks[i];
            if b.right.gt(rcv_nxt) {
                b.left = b.left.max(rcv_nxt);
                self.blocks[n] = b;
                n += 1;
            }
        }
        self.len = n;
    }

    /// Report nothing.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// What a [`Scoreboard::update`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SackUpdate {
    /// Bytes newly marked SACKed by this ACK's blocks.
    pub newly_sacked: u32,
    /// Blocks accepted.
    pub valid_blocks: u8,
    /// Blocks ignored: empty, inverted, at or below `SND.UNA` (e.g. D-SACK), or
    /// reaching beyond `SND.NXT`.
    pub invalid_blocks: u8,
}

/// What [`Scoreboard::next_seg`] says to send next (RFC 6675 section 4, `NextSeg()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextSeg {
    /// Retransmit `[seq, seq + len)`. `lost` is true under rule 1 (the bytes are
    /// deemed lost), false under rule 3 (not yet deemed lost, but nothing else to send).
    Retransmit {
        /// First sequence number to retransmit.
        seq: SeqNum,
        /// Length, at most one SMSS, never crossing into SACKed bytes.
        len: u32,
        /// Rule 1 (lost) or rule 3 (not known lost).
        lost: bool,
    },
    /// Rule 2: send up to one SMSS of new data.
    NewData,
    /// Nothing under rules 1-3. Rule 4 (one rescue retransmission per recovery
    /// episode) is [`Recovery::rescue`]; if that gives nothing too, rule 5: nothing
    /// may be sent.
    Nothing,
}

/// Sender side: the RFC 6675 scoreboard of SACKed sequence ranges above `SND.UNA`.
///
/// Holds at most [`MAX_SCOREBOARD_RANGES`] disjoint ranges; when a new disjoint block
/// arrives at the limit, the highest range is forgotten (if the new block is lower) or
/// the block is ignored. Forgetting SACK information is always safe: those bytes are
/// merely treated as not SACKed.
#[derive(Debug, Clone)]
pub struct Scoreboard {
    /// Sorted, disjoint, non-touching ranges, all within `[SND.UNA, SND.NXT]`.
    ranges: [SackBlock; MAX_SCOREBOARD_RANGES],
    len: usize,
    sacked: u32,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Scoreboard {
    /// An empty scoreboard.
    pub const fn new() -> Self {
        Scoreboard {
            ranges: [SackBlock {
                left: SeqNum(0),
                right: SeqNum(0),
            }; MAX_SCOREBOARD_RANGES],
            len: 0,
            sacked: 0,
        }
    }

    /// The SACKed ranges, ascending.
    #[inline]
    pub fn ranges(&self) -> &[SackBlock] {
        &self.ranges[..self.len]
    }

    /// Whether nothing is SACKed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total SACKed bytes above `SND.UNA`.
    #[inline]
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// One past the highest SACKed sequence number, if any.
    #[inline]
    pub fn high_sacked(&self) -> Option<SeqNum> {
        self.ranges().last().map(|r| r.right)
    }

    /// Forget everything (e.g. after a retransmission timeout, RFC 2018 section 8 /
    /// RFC 6675 section 5.1: the receiver may have reneged).
    pub fn clear(&mut self) {
        self.len = 0;
        self.sacked = 0;
    }

    /// Process an ACK: `snd_una` is the (already advanced) cumulative ACK, `snd_nxt` the
    /// highest sequence number sent, `blocks` the SACK option's blocks.
    ///
    /// Ranges at or below `snd_una` are dropped. A block is used only if it lies within
    /// `snd_una..snd_nxt` (a block starting below `snd_una` but ending above it is
    /// trimmed); the rest are ignored and counted in the result.
    pub fn update(&mut self, snd_una: SeqNum, snd_nxt: SeqNum, blocks: &[SackBlock]) -> SackUpdate {
        self.advance(snd_una);
        let mut out = SackUpdate::default();
        for b in blocks {
            let valid = !b.is_empty() && b.right.gt(snd_una) && b.right.le(snd_nxt);
            if !valid {
                out.invalid_blocks = out.invalid_blocks.saturating_add(1);
                continue;
            }
            out.valid_blocks = out.valid_blocks.saturating_add(1);
            out.newly_sacked += self.insert(
                snd_una,
                SackBlock {
                    left: b.left.max(snd_una),
                    right: b.right,
                },
            );
        }
        out
    }

    /// Drop SACK information at or below the new cumulative ACK `snd_una`.
    pub fn advance(&mut self, snd_una: SeqNum) {
        let mut n = 0;
        let mut sacked = self.sacked;
        for i in 0..self.len {
            let mut r = self.ranges[i];
            if r.right.le(snd_una) {
                sacked -= r.len();
                continue;
            }
            if r.left.lt(snd_una) {
                sacked -= snd_una - r.left;
                r.left = snd_una;
            }
            self.ranges[n] = r;
            n += 1;
        }
        self.len = n;
        self.sacked = sacked;
    }

    /// Merge a valid block (within `[snd_una, snd_nxt]`) into the ranges; returns the
    /// number of bytes it newly marks SACKed.
    fn insert(&mut self, snd_una: SeqNum, new: SackBlock) -> u32 {
        let key = |s: SeqNum| s - snd_una;
        let (ns, ne) = (key(new.left), key(new.right));
        let first = self.ranges().partition_point(|r| key(r.right) < ns);
        let last = self.ranges().partition_point(|r| key(r.left) <= ne);
        if first == last {
            if self.len == MAX_SCOREBOARD_RANGES {
                if first == self.len {
                    return 0; // Higher than everything held: ignore.
                }
                // Forget the highest range to make room.
                self.len -= 1;
                self.sacked -= self.ranges[self.len].len();
            }
            self.ranges.copy_within(first..self.len, first + 1);
            self.ranges[first] = new;
            self.len += 1;
            self.sacked += new.len();
            return new.len();
        }
        let removed: u32 = self.ranges[first..last].iter().map(|r| r.len()).sum();
        let merged = SackBlock {
            left: new.left.min(self.ranges[first].left),
            right: new.right.max(self.ranges[last - 1].right),
        };
        self.ranges[first] = merged;
        self.ranges.copy_within(last..self.len, first + 1);
        self.len -= last - first - 1;
        self.sacked = self.sacked - removed + merged.len();
        merged.len() - removed
    }

    /// Whether `seq` has been SACKed.
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        self.ranges()
            .iter()
            .any(|r| seq.ge(r.left) && seq.lt(r.right))
    }

    /// RFC 6675 `IsLost(seq)`: at least [`DUP_THRESH`] discontiguous SACKed ranges lie
    /// above `seq`, or more than `(DUP_THRESH - 1) * smss` bytes above it are SACKed.
    pub fn is_lost(&self, seq: SeqNum, smss: u32) -> bool {
        let mut count = 0u32;
        let mut bytes = 0u32;
        for r in self.ranges().iter().rev() {
            if r.right.le(seq + 1u32) {
                break;
            }
            bytes += r.right - r.left.max(seq + 1u32);
            if r.left.gt(seq) {
                count += 1;
            }
        }
        Self::lost_rule(count, bytes, smss)
    }

    #[inline]
    fn lost_rule(count: u32, bytes: u32, smss: u32) -> bool {
        count >= DUP_THRESH || bytes > (DUP_THRESH - 1).saturating_mul(smss)
    }

    /// The end of the region in which every un-SACKed byte is lost (`IsLost` is true):
    /// the left edge of the highest range that has enough SACKed data at or above it.
    /// `None` if no byte is lost.
    pub fn lost_end(&self, smss: u32) -> Option<SeqNum> {
        let mut bytes = 0u32;
        for (i, r) in self.ranges().iter().enumerate().rev() {
            bytes += r.len();
            if Self::lost_rule((self.len - i) as u32, bytes, smss) {
                return Some(r.left);
            }
        }
        None
    }

    /// SACKed bytes within `[from, to)` (both within `SND.UNA..=SND.NXT`, `from <= to`).
    fn sacked_in(&self, from: SeqNum, to: SeqNum) -> u32 {
        let mut n = 0;
        for r in self.ranges() {
            if r.left.ge(to) {
                break;
            }
            let (a, b) = (r.left.max(from), r.right.min(to));
            if b.gt(a) {
                n += b - a;
            }
        }
        n
    }

    /// RFC 6675 `SetPipe`, in bytes: every un-SACKed byte in `snd_una..snd_nxt` counts
    /// once if not lost, and once more if it was retransmitted (below `high_rxt`, the
    /// end of the highest retransmitted range; pass `snd_una` if none).
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, high_rxt: SeqNum, smss: u32) -> u32 {
        let unsacked = |a: SeqNum, b: SeqNum| (b - a) - self.sacked_in(a, b);
        let lost_end = self
            .lost_end(smss)
            .unwrap_or(snd_una)
            .max(snd_una)
            .min(snd_nxt);
        let rxt_end = high_rxt.max(snd_una).min(snd_nxt);
        unsacked(lost_end, snd_nxt) + unsacked(snd_una, rxt_end)
    }

    /// The lowest un-SACKed hole at or above `from` and below the highest SACKed byte:
    /// `(start, end)` where `end` is the next SACKed range's left edge.
    fn hole_from(&self, from: SeqNum) -> Option<(SeqNum, SeqNum)> {
        let mut cur = from;
        for r in self.ranges() {
            if r.right.le(cur) {
                continue;
            }
            if r.left.gt(cur) {
                return Some((cur, r.left));
            }
            cur = r.right;
        }
        None
    }

    /// RFC 6675 `NextSeg()`: what to send next during loss recovery.
    ///
    /// `high_rxt` is the end of the highest retransmitted range (`snd_una` if none);
    /// `new_data_ok` says whether unsent data exists and the peer's window allows
    /// sending it (rule 2).
    pub fn next_seg(
        &self,
        snd_una: SeqNum,
        high_rxt: SeqNum,
        smss: u32,
        new_data_ok: bool,
    ) -> NextSeg {
        let from = high_rxt.max(snd_una);
        let hole = self.hole_from(from);
        let segment = |(start, end): (SeqNum, SeqNum), lost| NextSeg::Retransmit {
            seq: start,
            len: (end - start).min(smss),
            lost,
        };
        // Rule 1: the lowest lost, un-SACKed, un-retransmitted hole.
        if let (Some(h), Some(lost_end)) = (hole, self.lost_end(smss)) {
            if h.0.lt(lost_end) {
                return segment(h, true);
            }
        }
        // Rule 2: new data.
        if new_data_ok {
            return NextSeg::NewData;
        }
        // Rule 3: an un-SACKed hole below the highest SACKed byte, not yet lost.
        if let Some(h) = hole {
            return segment(h, false);
        }
        NextSeg::Nothing
    }
}

/// How an ACK relates to an ongoing recovery (see [`Recovery::on_ack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAck {
    /// Not in recovery.
    Idle,
    /// In recovery; the ACK did not advance `SND.UNA` past `RecoveryPoint`. `advanced`
    /// tells whether it advanced at all (a partial ACK, RFC 6582).
    Partial {
        /// Whether `SND.UNA` moved.
        advanced: bool,
    },
    /// The ACK covers `RecoveryPoint`: recovery is over.
    Exited,
}

/// Retransmissions of one episode remembered for lost-retransmission detection.
pub const MAX_RETRANSMIT_RECORDS: usize = 16;

/// One retransmission: the range `[start, end)`, sent at `sent_at` when `HighData` was
/// `high_data`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RetransmitRecord {
    start: SeqNum,
    end: SeqNum,
    high_data: SeqNum,
    sent_at: Instant,
}

/// Loss-recovery episode state (RFC 6675 section 5 / RFC 6582): `RecoveryPoint` and
/// `HighRxt`, plus lost-retransmission detection.
///
/// RFC 6675 retransmits each hole once per episode (`HighRxt` only moves up), so a lost
/// retransmission costs a retransmission timeout. As Linux's `tcp_mark_lost_retrans`
/// did before RACK, the episode remembers the `HighData` at each retransmission: once
/// the peer SACKs more than `(DupThresh - 1) * SMSS` bytes of data sent *after* that
/// retransmission while its range is still un-SACKed, it was lost too, and it is
/// queued to be sent again. When nothing sent later can be SACKed (a small window all
/// spent on retransmissions), time decides instead, as RACK does (RFC 8985): a
/// retransmission not delivered one RTT plus a reordering allowance after it was sent
/// is lost ([`Recovery::mark_overdue`]). Memory is bounded: at most
/// [`MAX_RETRANSMIT_RECORDS`] retransmissions are watched (the oldest is forgotten, and
/// then only the timeout recovers it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovery {
    active: bool,
    /// Set while active, and after a timeout until `SND.UNA` passes it.
    recovery_point: Option<SeqNum>,
    /// `HighData` at the last entry (for reporting after exit).
    last_point: SeqNum,
    high_rxt: SeqNum,
    last_una: SeqNum,
    /// RFC 6675 `RescueRxt`: set once the episode's rescue retransmission was sent.
    rescue_rxt: Option<SeqNum>,
    /// Watched retransmissions, oldest first; `records[..nrecords]` is meaningful.
    records: [RetransmitRecord; MAX_RETRANSMIT_RECORDS],
    nrecords: usize,
    /// Ranges whose retransmission was found lost, to send again (oldest first).
    relost: [(SeqNum, SeqNum); MAX_RETRANSMIT_RECORDS],
    nrelost: usize,
}

impl Recovery {
    /// Not in recovery.
    pub const fn new() -> Self {
        Recovery {
            active: false,
            recovery_point: None,
            last_point: SeqNum(0),
            high_rxt: SeqNum(0),
            last_una: SeqNum(0),
            rescue_rxt: None,
            records: [RetransmitRecord {
                start: SeqNum(0),
                end: SeqNum(0),
                high_data: SeqNum(0),
                sent_at: Instant::ZERO,
            }; MAX_RETRANSMIT_RECORDS],
            nrecords: 0,
            relost: [(SeqNum(0), SeqNum(0)); MAX_RETRANSMIT_RECORDS],
            nrelost: 0,
        }
    }

    /// Whether a recovery episode is in progress.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// `RecoveryPoint` (= `HighData` at the latest entry or timeout).
    #[inline]
    pub fn recovery_point(&self) -> SeqNum {
        self.recovery_point.unwrap_or(self.last_point)
    }

    /// `HighRxt`: the end of the highest retransmitted range (`SND.UNA` at entry).
    #[inline]
    pub fn high_rxt(&self) -> SeqNum {
        self.high_rxt
    }

    /// Whether a new recovery may start: RFC 6675 section 5 forbids one while an ACK
    /// has not passed the previous `RecoveryPoint` (the sender only enters when
    /// `snd_una` is beyond it, preventing a second reduction for one loss window).
    pub fn may_enter(&self, snd_una: SeqNum) -> bool {
        !self.active && !matches!(self.recovery_point, Some(p) if snd_una.lt(p))
    }

    /// Enter recovery: `RecoveryPoint = snd_nxt`, `HighRxt = snd_una`.
    pub fn enter(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        self.active = true;
        self.recovery_point = Some(snd_nxt);
        self.last_point = snd_nxt;
        self.high_rxt = snd_una;
        self.last_una = snd_una;
        self.rescue_rxt = None;
        self.nrecords = 0;
        self.nrelost = 0;
    }

    /// Record a retransmission of `[start, end)` sent at `now` while `HighData` was
    /// `high_data`.
    pub fn on_retransmit(&mut self, start: SeqNum, end: SeqNum, high_data: SeqNum, now: Instant) {
        self.high_rxt = self.high_rxt.max(end);
        self.watch(start, end, high_data, now);
    }

    /// Watch `[start, end)`, sent at `now` during this episode (new data, or the
    /// rescue retransmission), for time-based loss detection only: `HighRxt` stays.
    pub fn watch(&mut self, start: SeqNum, end: SeqNum, high_data: SeqNum, now: Instant) {
        if !self.active {
            return;
        }
        // What was just sent again is no longer waiting to be.
        let mut kept = 0;
        for i in 0..self.nrelost {
            let (mut a, b) = self.relost[i];
            if start.le(a) && a.lt(end) {
                a = end;
            }
            if b.gt(a) {
                self.relost[kept] = (a, b);
                kept += 1;
            }
        }
        self.nrelost = kept;
        if self.nrecords == MAX_RETRANSMIT_RECORDS {
            self.records.copy_within(1.., 0);
            self.nrecords -= 1;
        }
        self.records[self.nrecords] = RetransmitRecord {
            start,
            end,
            high_data,
            sent_at: now,
        };
        self.nrecords += 1;
    }

    /// Lost-retransmission detection after `scoreboard` took an ACK (see the type's
    /// documentation); returns how many retransmissions were found lost.
    pub fn detect_lost_retransmits(
        &mut self,
        scoreboard: &Scoreboard,
        snd_una: SeqNum,
        smss: u32,
    ) -> u32 {
        let threshold = (DUP_THRESH - 1).saturating_mul(smss);
        self.sweep(scoreboard, snd_una, |r| {
            scoreboard.high_sacked().is_some_and(|h| {
                h.gt(r.high_data) && scoreboard.sacked_in(r.high_data, h) > threshold
            })
        })
    }

    /// When the oldest watched retransmission becomes overdue: sent at `t`, it is
    /// deemed lost at `t + wait` (one RTT plus the reordering allowance) if still not
    /// delivered. `None` outside recovery or with nothing watched.
    pub fn overdue_at(&self, wait: core::time::Duration) -> Option<Instant> {
        if !self.active {
            return None;
        }
        self.records[..self.nrecords]
            .iter()
            .map(|r| r.sent_at + wait)
            .min()
    }

    /// Time-based lost-retransmission detection (RACK's rule, RFC 8985 section 6.2,
    /// for retransmissions): every watched retransmission sent `wait` or more before
    /// `now` and still neither acknowledged nor SACKed is lost and queued to be sent
    /// again. Returns how many were found.
    pub fn mark_overdue(
        &mut self,
        scoreboard: &Scoreboard,
        snd_una: SeqNum,
        now: Instant,
        wait: core::time::Duration,
    ) -> u32 {
        self.sweep(scoreboard, snd_una, |r| r.sent_at + wait <= now)
    }

    /// Walks the watched records in recovery: those acknowledged or wholly SACKed are
    /// forgotten; those `lost` says are lost are queued to be sent again and forgotten
    /// (with the queue full, only the retransmission timeout will resend them, but
    /// they go all the same, so deadlines move on). Returns how many were queued.
    fn sweep(
        &mut self,
        scoreboard: &Scoreboard,
        snd_una: SeqNum,
        lost: impl Fn(&RetransmitRecord) -> bool,
    ) -> u32 {
        if !self.active {
            return 0;
        }
        let mut found = 0;
        let mut i = 0;
        while i < self.nrecords {
            let r = self.records[i];
            let from = r.start.max(snd_una);
            let delivered = r.end.le(snd_una) || scoreboard.sacked_in(from, r.end) == r.end - from;
            if delivered || lost(&r) {
                if !delivered && self.nrelost < MAX_RETRANSMIT_RECORDS {
                    self.relost[self.nrelost] = (from, r.end);
                    self.nrelost += 1;
                    found += 1;
                }
                self.records.copy_within(i + 1..self.nrecords, i);
                self.nrecords -= 1;
            } else {
                i += 1;
            }
        }
        found
    }

    /// Un-SACKed bytes queued to be sent again: they are lost, not in flight, so
    /// `SetPipe` (which counts every retransmitted byte) must not count them.
    pub fn relost_bytes(&self, scoreboard: &Scoreboard, snd_una: SeqNum) -> u32 {
        self.relost[..self.nrelost]
            .iter()
            .map(|&(a, b)| {
                let a = a.max(snd_una);
                if b.gt(a) {
                    (b - a) - scoreboard.sacked_in(a, b)
                } else {
                    0
                }
            })
            .sum()
    }

    /// The oldest range whose retransmission was lost and is still un-SACKed, to send
    /// again now, as `(seq, len)` with `len <= smss`; what is handed out leaves the
    /// queue (the caller sends it). Ranges acknowledged or SACKed meanwhile are
    /// dropped.
    pub fn next_relost(
        &mut self,
        scoreboard: &Scoreboard,
        snd_una: SeqNum,
        smss: u32,
    ) -> Option<(SeqNum, u32)> {
        while self.nrelost > 0 {
            let (a, b) = self.relost[0];
            let start = a.max(snd_una);
            if b.gt(start) {
                let hole = match scoreboard.hole_from(start).filter(|h| h.0.lt(b)) {
                    Some((h0, h1)) => Some((h0, (h1.min(b) - h0).min(smss))),
                    // Nothing SACKed above: the whole range is an un-SACKed tail.
                    None if scoreboard.high_sacked().is_none_or(|h| h.le(start)) => {
                        Some((start, (b - start).min(smss)))
                    }
                    None => None,
                };
                if let Some((seq, len)) = hole.filter(|&(_, len)| len > 0) {
                    let rest = seq + len;
                    if rest.lt(b) {
                        self.relost[0].0 = rest;
                    } else {
                        self.relost.copy_within(1..self.nrelost, 0);
                        self.nrelost -= 1;
                    }
                    return Some((seq, len));
                }
            }
            self.relost.copy_within(1..self.nrelost, 0);
            self.nrelost -= 1;
        }
        None
    }

    /// Process the cumulative ACK `snd_una`.
    pub fn on_ack(&mut self, snd_una: SeqNum) -> RecoveryAck {
        let point = self.recovery_point.unwrap_or(snd_una);
        if !self.active {
            if snd_una.ge(point) {
                // Past the point of an abandoned episode: forget it, so it cannot
                // look like a future point once sequence numbers wrap.
                self.recovery_point = None;
            }
            return RecoveryAck::Idle;
        }
        let advanced = snd_una.gt(self.last_una);
        self.last_una = self.last_una.max(snd_una);
        self.high_rxt = self.high_rxt.max(snd_una);
        if snd_una.ge(point) {
            self.active = false;
            self.recovery_point = None;
            RecoveryAck::Exited
        } else {
            RecoveryAck::Partial { advanced }
        }
    }

    /// RFC 6675 `NextSeg()` rule 4, the rescue retransmission: when rules 1-3 give
    /// nothing ([`NextSeg::Nothing`]) but un-SACKed data is outstanding, once per
    /// recovery episode, the segment of up to `smss` bytes ending at the highest
    /// un-SACKed byte below `snd_nxt`. Returns `(seq, len)` and records `RescueRxt`
    /// (= `RecoveryPoint`); `HighRxt` is not changed. `None` outside recovery, if the
    /// rescue was already used, or if nothing un-SACKed is outstanding.
    pub fn rescue(
        &mut self,
        scoreboard: &Scoreboard,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        smss: u32,
    ) -> Option<(SeqNum, u32)> {
        if !self.active || smss == 0 {
            return None;
        }
        if matches!(self.rescue_rxt, Some(r) if snd_una.le(r)) {
            return None;
        }
        // The highest un-SACKed byte is just below `end`; `floor` is where the hole
        // holding it starts (the right edge of the SACKed range below it, or SND.UNA).
        let ranges = scoreboard.ranges();
        let mut end = snd_nxt;
        let mut i = ranges.len();
        while i > 0 && ranges[i - 1].right.ge(end) {
            end = end.min(ranges[i - 1].left);
            i -= 1;
        }
        if !end.gt(snd_una) {
            return None;
        }
        let floor = if i > 0 {
            ranges[i - 1].right.max(snd_una)
        } else {
            snd_una
        };
        let len = (end - floor).min(smss);
        self.rescue_rxt = Some(self.recovery_point());
        Some((end - len, len))
    }

    /// Abandon recovery (e.g. on a retransmission timeout), keeping `RecoveryPoint` so
    /// a new episode does not start before it is passed. `snd_nxt` is the current
    /// `HighData`, which becomes the new `RecoveryPoint` (RFC 6582 section 4).
    pub fn on_timeout(&mut self, snd_nxt: SeqNum) {
        self.active = false;
        self.nrecords = 0;
        self.nrelost = 0;
        self.recovery_point = Some(snd_nxt);
        self.last_point = snd_nxt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u32 = u32::MAX - 5000;

    fn s(off: u32) -> SeqNum {
        SeqNum(BASE) + off
    }

    fn blk(a: u32, b: u32) -> SackBlock {
        SackBlock {
            left: s(a),
            right: s(b),
        }
    }

    #[test]
    fn reporter_most_recent_first_and_merge() {
        let mut r = SackReporter::new();
        r.on_out_of_order(blk(100, 200));
        r.on_out_of_order(blk(300, 400));
        r.on_out_of_order(blk(500, 600));
        assert_eq!(r.blocks(), &[blk(500, 600), blk(300, 400), blk(100, 200)]);
        // A segment joining 300..400 and 500..600 into one held range.
        r.on_out_of_order(blk(300, 600));
        assert_eq!(r.blocks(), &[blk(300, 600), blk(100, 200)]);
        r.on_out_of_order(blk(700, 800));
        r.on_out_of_order(blk(900, 1000));
        r.on_out_of_order(blk(1100, 1200));
        assert_eq!(
            r.blocks(),
            &[
                blk(1100, 1200),
                blk(900, 1000),
                blk(700, 800),
                blk(300, 600)
            ]
        );
        r.on_rcv_nxt(s(850));
        assert_eq!(r.blocks(), &[blk(1100, 1200), blk(900, 1000)]);
        r.on_rcv_nxt(s(950));
        assert_eq!(r.blocks(), &[blk(1100, 1200), blk(950, 1000)]);
        r.on_out_of_order(blk(0, 0));
        assert_eq!(r.blocks().len(), 2);
        r.clear();
        assert!(r.is_empty());
    }

    #[test]
    fn scoreboard_validates_and_merges() {
        let mut sb = Scoreboard::new();
        let (una, nxt) = (s(0), s(10_000));
        let up = sb.update(
            una,
            nxt,
            &[
                blk(1000, 2000),
                blk(3000, 4000),
                blk(9000, 10_001), // beyond SND.NXT
                blk(500, 400),     // inverted
                SackBlock {
                    left: s(0) - 100u32,
                    right: s(0),
                }, // D-SACK below SND.UNA
            ],
        );
        assert_eq!(
            up,
            SackUpdate {
                newly_sacked: 2000,
                valid_blocks: 2,
                invalid_blocks: 3
            }
        );
        let up = sb.update(una, nxt, &[blk(1500, 3500)]);
        assert_eq!(up.newly_sacked, 1000);
        assert_eq!(sb.ranges(), &[blk(1000, 4000)]);
        assert_eq!(sb.high_sacked(), Some(s(4000)));
        // Cumulative ACK into the range trims it.
        sb.update(s(2000), nxt, &[]);
        assert_eq!(sb.ranges(), &[blk(2000, 4000)]);
        assert_eq!(sb.sacked_bytes(), 2000);
        // Straddling block trimmed to SND.UNA.
        let up = sb.update(s(2000), nxt, &[blk(1000, 2500)]);
        assert_eq!(up.newly_sacked, 0);
        assert!(sb.is_sacked(s(2000)) && !sb.is_sacked(s(4000)));
        sb.update(s(5000), nxt, &[]);
        assert!(sb.is_empty());
        assert_eq!(sb.sacked_bytes(), 0);
    }

    #[test]
    fn scoreboard_bounded() {
        let mut sb = Scoreboard::new();
        let (una, nxt) = (s(0), s(1_000_000));
        for i in 0..MAX_SCOREBOARD_RANGES as u32 {
            sb.update(una, nxt, &[blk(100 + i * 100, 150 + i * 100)]);
        }
        assert_eq!(sb.ranges().len(), MAX_SCOREBOARD_RANGES);
        let high = sb.high_sacked().unwrap();
        // A block above everything is ignored.
        sb.update(una, nxt, &[blk(900_000, 900_010)]);
        assert_eq!(sb.high_sacked(), Some(high));
        // A lower one evicts the highest range.
        sb.update(una, nxt, &[blk(10, 20)]);
        assert_eq!(sb.ranges()[0], blk(10, 20));
        assert_eq!(sb.ranges().len(), MAX_SCOREBOARD_RANGES);
        assert!(sb.high_sacked().unwrap().lt(high));
        let total: u32 = sb.ranges().iter().map(|r| r.len()).sum();
        assert_eq!(total, sb.sacked_bytes());
    }

    #[test]
    fn is_lost_by_bytes_and_by_count() {
        let smss = 1000;
        let mut sb = Scoreboard::new();
        let nxt = s(100_000);
        // Two full segments SACKed above 0: not lost (needs > 2 * SMSS).
        sb.update(s(0), nxt, &[blk(1000, 3000)]);
        assert!(!sb.is_lost(s(0), smss));
        assert_eq!(sb.lost_end(smss), None);
        // A third: lost.
        sb.update(s(0), nxt, &[blk(3000, 4000)]);
        assert!(sb.is_lost(s(0), smss));
        assert_eq!(sb.lost_end(smss), Some(s(1000)));
        // Three small discontiguous ranges also make it lost.
        let mut sb = Scoreboard::new();
        sb.update(s(0), nxt, &[blk(100, 110), blk(200, 210), blk(300, 310)]);
        assert!(sb.is_lost(s(0), smss));
        assert!(!sb.is_lost(s(150), smss));
        assert_eq!(sb.lost_end(smss), Some(s(100)));
    }

    #[test]
    fn pipe_counts_per_rfc6675() {
        let smss = 1000;
        let mut sb = Scoreboard::new();
        let (una, nxt) = (s(0), s(10_000));
        // Ten segments sent; segments 1-3 and 5 SACKed. Segment 0 is lost (4000 bytes
        // SACKed above it); segment 4 is not (only 1000 bytes, one range above it).
        sb.update(una, nxt, &[blk(1000, 4000), blk(5000, 6000)]);
        assert_eq!(sb.lost_end(smss), Some(s(1000)));
        // Not lost and unsacked: 4000..5000 and 6000..10000 = 5000 bytes.
        assert_eq!(sb.pipe(una, nxt, una, smss), 5000);
        // Retransmitting segment 0 adds it back once.
        assert_eq!(sb.pipe(una, nxt, s(1000), smss), 6000);
    }

    #[test]
    fn next_seg_rules() {
        let smss = 1000;
        let mut sb = Scoreboard::new();
        let (una, nxt) = (s(0), s(10_000));
        sb.update(una, nxt, &[blk(1500, 4000), blk(5000, 6000)]);
        // Rule 1: the lost hole 0..1500, one SMSS at a time.
        assert_eq!(
            sb.next_seg(una, una, smss, true),
            NextSeg::Retransmit {
                seq: s(0),
                len: 1000,
                lost: true
            }
        );
        assert_eq!(
            sb.next_seg(una, s(1000), smss, true),
            NextSeg::Retransmit {
                seq: s(1000),
                len: 500,
                lost: true
            }
        );
        // Hole 4000..5000 is not lost: rule 2 first, then rule 3.
        assert_eq!(sb.next_seg(una, s(1500), smss, true), NextSeg::NewData);
        assert_eq!(
            sb.next_seg(una, s(1500), smss, false),
            NextSeg::Retransmit {
                seq: s(4000),
                len: 1000,
                lost: false
            }
        );
        assert_eq!(sb.next_seg(una, s(5000), smss, false), NextSeg::Nothing);
    }

    #[test]
    fn rescue_retransmission_once_per_episode() {
        let smss = 1000;
        let mut sb = Scoreboard::new();
        let (una, nxt) = (s(0), s(10_000));
        // Only 0..500 and 9000..10000 unSACKed; nothing is lost (one range above).
        sb.update(una, nxt, &[blk(500, 9000)]);
        let mut rec = Recovery::new();
        assert_eq!(rec.rescue(&sb, una, nxt, smss), None, "not in recovery");
        rec.enter(una, nxt);
        assert_eq!(sb.next_seg(una, s(500), smss, false), NextSeg::Nothing);
        // The highest unSACKed byte is 9999: the rescue is its last SMSS.
        assert_eq!(rec.rescue(&sb, una, nxt, smss), Some((s(9000), 1000)));
        assert_eq!(rec.high_rxt(), una, "HighRxt unchanged");
        assert_eq!(rec.rescue(&sb, una, nxt, smss), None, "once per episode");
        assert_eq!(rec.rescue(&sb, s(200), nxt, smss), None);
        // Next episode: the tail is SACKed, the highest hole is 0..500.
        rec.on_ack(nxt);
        sb.update(s(0), s(12_000), &[blk(500, 12_000)]);
        rec.enter(s(0), s(12_000));
        assert_eq!(rec.rescue(&sb, s(0), s(12_000), smss), Some((s(0), 500)));
        // Everything SACKed: nothing to rescue.
        let mut sb = Scoreboard::new();
        sb.update(s(0), s(100), &[blk(0, 100)]);
        rec.enter(s(0), s(100));
        assert_eq!(rec.rescue(&sb, s(0), s(100), smss), None);
    }

    #[test]
    fn recovery_episode() {
        let mut rec = Recovery::new();
        assert_eq!(rec.on_ack(s(0)), RecoveryAck::Idle);
        assert!(rec.may_enter(s(0)));
        rec.enter(s(0), s(10_000));
        assert!(rec.is_active() && !rec.may_enter(s(0)));
        assert_eq!(rec.high_rxt(), s(0));
        rec.on_retransmit(s(0), s(1000), s(10_000), Instant::ZERO);
        assert_eq!(rec.high_rxt(), s(1000));
        assert_eq!(rec.on_ack(s(0)), RecoveryAck::Partial { advanced: false });
        assert_eq!(rec.on_ack(s(2000)), RecoveryAck::Partial { advanced: true });
        assert_eq!(rec.high_rxt(), s(2000));
        assert_eq!(rec.on_ack(s(10_000)), RecoveryAck::Exited);
        assert!(!rec.is_active());
        assert_eq!(rec.recovery_point(), s(10_000));
        rec.enter(s(10_000), s(20_000));
        rec.on_timeout(s(25_000));
        assert!(!rec.is_active() && !rec.may_enter(s(20_000)) && rec.may_enter(s(25_000)));
    }

    #[test]
    fn a_lost_retransmission_is_found_and_sent_again() {
        let smss = 1000;
        let mut sb = Scoreboard::new();
        let mut rec = Recovery::new();
        // 0..10_000 in flight, 0..1000 lost, the rest SACKed: recovery.
        sb.update(s(0), s(10_000), &[blk(1000, 10_000)]);
        rec.enter(s(0), s(10_000));
        rec.on_retransmit(s(0), s(1000), s(10_000), Instant::ZERO);
        // New data 10_000..12_000 goes out and is SACKed: not yet beyond the
        // reordering allowance of (DupThresh - 1) * SMSS.
        sb.update(s(0), s(12_000), &[blk(1000, 12_000)]);
        assert_eq!(rec.detect_lost_retransmits(&sb, s(0), smss), 0);
        assert_eq!(rec.next_relost(&sb, s(0), smss), None);
        // A third segment sent after the retransmission is SACKed: it was lost.
        sb.update(s(0), s(13_000), &[blk(1000, 13_000)]);
        assert_eq!(rec.detect_lost_retransmits(&sb, s(0), smss), 1);
        assert_eq!(rec.next_relost(&sb, s(0), smss), Some((s(0), 1000)));
        // Sending it again clears it, and watches the new copy.
        rec.on_retransmit(s(0), s(1000), s(13_000), Instant::ZERO);
        assert_eq!(rec.next_relost(&sb, s(0), smss), None);
        sb.update(s(0), s(14_000), &[blk(1000, 14_000)]);
        assert_eq!(rec.detect_lost_retransmits(&sb, s(0), smss), 0);
        // The cumulative ACK covers it: forgotten.
        sb.advance(s(14_000));
        assert_eq!(rec.detect_lost_retransmits(&sb, s(14_000), smss), 0);
        assert_eq!(rec.nrecords, 0);
    }

    #[test]
    fn a_delivered_retransmission_is_not_lost() {
        let smss = 1000;
        let mut sb = Scoreboard::new();
        let mut rec = Recovery::new();
        sb.update(s(0), s(10_000), &[blk(2000, 10_000)]);
        rec.enter(s(0), s(10_000));
        rec.on_retransmit(s(1000), s(2000), s(10_000), Instant::ZERO);
        // The retransmission of 1000..2000 is SACKed, later data too.
        sb.update(s(0), s(20_000), &[blk(1000, 20_000)]);
        assert_eq!(rec.detect_lost_retransmits(&sb, s(0), smss), 0);
        assert_eq!(rec.next_relost(&sb, s(0), smss), None);
    }

    #[test]
    fn an_unanswered_retransmission_becomes_overdue() {
        use core::time::Duration;
        let t0 = Instant::from_millis(100);
        let wait = Duration::from_millis(3);
        let mut sb = Scoreboard::new();
        let mut rec = Recovery::new();
        sb.update(s(0), s(4000), &[blk(1000, 4000)]);
        rec.enter(s(0), s(4000));
        rec.on_retransmit(s(0), s(1000), s(4000), t0);
        assert_eq!(rec.overdue_at(wait), Some(t0 + wait));
        // Not yet overdue.
        assert_eq!(
            rec.mark_overdue(&sb, s(0), t0 + Duration::from_millis(2), wait),
            0
        );
        assert_eq!(rec.relost_bytes(&sb, s(0)), 0);
        // Overdue: lost, queued again, and no longer counted in flight.
        assert_eq!(rec.mark_overdue(&sb, s(0), t0 + wait, wait), 1);
        assert_eq!(rec.relost_bytes(&sb, s(0)), 1000);
        assert_eq!(rec.next_relost(&sb, s(0), 1000), Some((s(0), 1000)));
        assert_eq!(rec.overdue_at(wait), None);
    }
}
