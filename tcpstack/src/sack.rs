//! SACK blocks (RFC 2018) and the receiver's reporting of them.
//!
//! [`SackReporter`] keeps the blocks to put in the SACK option: the block holding the
//! most recently received out-of-order segment first, then the others most recent
//! first, at most [`MAX_SACK_BLOCKS`], pruned as `RCV.NXT` advances; ahead of them,
//! once, a D-SACK block for data that arrived again below `RCV.NXT` (RFC 2883), so that
//! the sender learns its retransmission was needless. Fixed-size: no
//! allocation, bounded whatever the peer sends. The sender's side of SACK is RACK's
//! transmit records ([`crate::rack`]).

use crate::assembler::Range;
use crate::inline_vec::InlineVec;
use crate::seq::SeqNum;

/// The most SACK blocks a TCP option can carry (4 without timestamps, 3 with).
pub use crate::wire::MAX_SACK_BLOCKS;

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
    blocks: InlineVec<SackBlock, MAX_SACK_BLOCKS>,
    /// Data received again, to report first in the next ACK only.
    duplicate: Option<SackBlock>,
}

impl SackReporter {
    /// No blocks to report.
    pub fn new() -> Self {
        SackReporter {
            blocks: InlineVec::new(),
            duplicate: None,
        }
    }

    /// What the next ACK reports: the D-SACK block, if any, then the SACK blocks.
    /// Send the first `n` that fit (3 with timestamps, 4 without).
    pub fn report(&self) -> impl Iterator<Item = SackBlock> + '_ {
        self.duplicate
            .into_iter()
            .chain(self.blocks.iter().copied())
    }

    /// How many blocks [`SackReporter::report`] yields.
    pub fn report_len(&self) -> usize {
        self.blocks.len() + usize::from(self.duplicate.is_some())
    }

    /// `block`, below `RCV.NXT`, arrived again: the next ACK reports it first (RFC 2883
    /// section 4; a later duplicate before that ACK replaces it).
    pub fn on_duplicate(&mut self, block: SackBlock) {
        if !block.is_empty() {
            self.duplicate = Some(block);
        }
    }

    /// An ACK went out with the report: a D-SACK block is reported only once.
    pub fn on_reported(&mut self) {
        self.duplicate = None;
    }

    /// The SACK blocks, most recent first, without the D-SACK block ([`SackReporter::report`]
    /// is what an ACK carries).
    #[inline]
    pub fn blocks(&self) -> &[SackBlock] {
        &self.blocks
    }

    /// Whether there is nothing to report, D-SACK block included.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.report_len() == 0
    }

    /// An out-of-order segment arrived and is held in `block`: the whole held range
    /// containing it (for example [`crate::assembler::Inserted::ooo_range`] through
    /// [`SackBlock::from_range`]). It becomes the first block; blocks it overlaps or
    /// touches (now part of it) are removed; the oldest falls off beyond the limit.
    pub fn on_out_of_order(&mut self, block: SackBlock) {
        if block.is_empty() {
            return;
        }
        let others = self.blocks.iter().filter(|b| !b.meets(&block));
        let mut report = InlineVec::new();
        for &b in core::iter::once(&block).chain(others) {
            if report.push(b).is_err() {
                break;
            }
        }
        self.blocks = report;
    }

    /// `RCV.NXT` advanced to `rcv_nxt`: drop blocks now below it, trim any it cuts.
    pub fn on_rcv_nxt(&mut self, rcv_nxt: SeqNum) {
        self.blocks.retain_mut(|b| {
            b.left = b.left.max(rcv_nxt);
            b.right.gt(rcv_nxt)
        });
    }

    /// Report nothing.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.duplicate = None;
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
    fn a_duplicate_goes_first_and_once() {
        let mut r = SackReporter::new();
        r.on_out_of_order(blk(300, 400));
        r.on_duplicate(blk(0, 100));
        assert_eq!(r.report_len(), 2);
        assert_eq!(r.report().collect::<Vec<_>>(), [blk(0, 100), blk(300, 400)]);
        r.on_reported();
        assert_eq!(r.report().collect::<Vec<_>>(), [blk(300, 400)]);
        r.on_duplicate(blk(50, 50));
        assert_eq!(r.report_len(), 1, "an empty range is no duplicate");
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
}
