//! Bounded out-of-order segment reassembly.
//!
//! [`Assembler`] records which byte ranges beyond `RCV.NXT` have arrived, as at most `N`
//! disjoint, non-adjacent ranges of offsets relative to `RCV.NXT` (offset 0 is the next
//! byte the application will be given). A segment that overlaps or touches held ranges
//! merges with them; a segment that would need an `N + 1`-th range is refused with
//! [`TooManyRanges`] and leaves the assembler unchanged, so memory is bounded whatever
//! the peer sends. The held ranges are also the input for SACK blocks
//! ([`crate::sack::SackReporter`]).
//!
//! The bytes themselves live in the receive [`RingBuffer`], written in place past its
//! readable end with [`RingBuffer::write_at`]. [`Reassembler`] ties the two together:
//! one call places a segment's payload and makes whatever became contiguous readable.

use crate::buffer::RingBuffer;
use crate::inline_vec::InlineVec;

/// Default number of out-of-order ranges an [`Assembler`] holds.
pub const DEFAULT_MAX_RANGES: usize = 32;

/// A half-open byte range `[start, end)` of offsets relative to `RCV.NXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// First offset in the range.
    pub start: u32,
    /// One past the last offset in the range.
    pub end: u32,
}

impl Range {
    /// Number of bytes in the range.
    #[inline]
    pub fn len(&self) -> u32 {
        self.end - self.start
    }

    /// Whether the range holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A segment would need more disjoint ranges than the assembler holds; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("out-of-order segment refused: all reassembly ranges in use")]
pub struct TooManyRanges;

/// Bookkeeping of the out-of-order byte ranges held beyond `RCV.NXT`, at most `N`
/// (`N` at most 255).
#[derive(Debug, Clone)]
pub struct Assembler<const N: usize = DEFAULT_MAX_RANGES> {
    /// Sorted, disjoint, non-touching ranges.
    ranges: InlineVec<Range, N>,
}

impl<const N: usize> Default for Assembler<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Assembler<N> {
    /// An assembler holding no ranges.
    pub fn new() -> Self {
        Assembler {
            ranges: InlineVec::new(),
        }
    }

    /// Whether no out-of-order bytes are held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The held ranges, ascending.
    #[inline]
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Total bytes held out of order.
    pub fn held_bytes(&self) -> u64 {
        self.ranges().iter().map(|r| u64::from(r.len())).sum()
    }

    /// Forget every range.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Whether every byte of `[offset, offset + len)` is already held.
    pub fn contains(&self, offset: u32, len: u32) -> bool {
        let end = offset.saturating_add(len);
        len == 0
            || self
                .ranges()
                .iter()
                .any(|r| r.start <= offset && end <= r.end)
    }

    /// Record that bytes `[offset, offset + len)` have arrived.
    ///
    /// Returns the held range that now contains them (after merging with overlapping or
    /// adjacent ranges), which is the block to report first in SACK (RFC 2018). An empty
    /// segment changes nothing and returns an empty range at `offset`. Refused, with no
    /// change, if it would need more than `N` disjoint ranges.
    pub fn add(&mut self, offset: u32, len: u32) -> Result<Range, TooManyRanges> {
        let new = Range {
            start: offset,
            end: offset.saturating_add(len),
        };
        if new.is_empty() {
            return Ok(new);
        }
        // First range that ends at or after the new start (touching merges too).
        let first = self.ranges().partition_point(|r| r.end < new.start);
        // One past the last range that starts at or before the new end.
        let last = self.ranges().partition_point(|r| r.start <= new.end);
        if first == last {
            // No overlap: insert a new range at `first`.
            self.ranges.insert(first, new).map_err(|_| TooManyRanges)?;
            return Ok(new);
        }
        let merged = Range {
            start: new.start.min(self.ranges[first].start),
            end: new.end.max(self.ranges[last - 1].end),
        };
        self.ranges[first] = merged;
        self.ranges.remove_range(first + 1..last);
        Ok(merged)
    }

    /// If bytes are held at offset 0, remove that front range, move every offset down by
    /// its length (the caller advances `RCV.NXT` by it) and return it; otherwise 0.
    pub fn remove_front(&mut self) -> u32 {
        let Some(&Range { start: 0, end: n }) = self.ranges.first() else {
            return 0;
        };
        self.ranges.remove_range(0..1);
        self.shift_down(n);
        n
    }

    /// Move every offset down by `n`, as when `RCV.NXT` advances by `n` through bytes
    /// not tracked here; ranges (or parts) that fall below 0 are dropped.
    pub fn advance(&mut self, n: u32) {
        if n == 0 || self.ranges.is_empty() {
            return;
        }
        let gone = self.ranges.partition_point(|r| r.end <= n);
        self.ranges.remove_range(0..gone);
        self.shift_down(n);
    }

    fn shift_down(&mut self, n: u32) {
        for r in self.ranges.iter_mut() {
            r.start = r.start.saturating_sub(n);
            r.end -= n;
        }
    }
}

/// What [`Reassembler::insert`] did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Bytes of the segment accepted (it is trimmed to the free buffer space).
    pub accepted: usize,
    /// Bytes that became readable (`RCV.NXT` advances by this much); may exceed
    /// `accepted` when the segment filled a hole before held data.
    pub readable: usize,
    /// The held out-of-order range containing the segment (offsets relative to the
    /// new `RCV.NXT`), if the segment was not in order: the SACK block to report first.
    pub ooo_range: Option<Range>,
}

/// A receive queue with in-place out-of-order placement: a [`RingBuffer`] plus an
/// [`Assembler`] over the free space past its readable end.
///
/// Offsets passed to [`insert`](Self::insert) are relative to `RCV.NXT`, which is the
/// readable end of the buffer. The receive window is [`window`](Self::window).
#[derive(Debug, Clone)]
pub struct Reassembler<const N: usize = DEFAULT_MAX_RANGES> {
    buffer: RingBuffer,
    assembler: Assembler<N>,
}

impl<const N: usize> Reassembler<N> {
    /// A queue of `capacity` bytes (allocated on first use).
    pub fn new(capacity: usize) -> Self {
        Reassembler {
            buffer: RingBuffer::new(capacity),
            assembler: Assembler::new(),
        }
    }

    /// The readable bytes (read them with [`RingBuffer::dequeue`] or
    /// [`RingBuffer::readable`] + [`RingBuffer::consume`]).
    #[inline]
    pub fn buffer(&self) -> &RingBuffer {
        &self.buffer
    }

    /// Mutable access to the readable bytes, for the application's reads. Do not
    /// enqueue or commit through it: that would bypass the assembler.
    #[inline]
    pub fn buffer_mut(&mut self) -> &mut RingBuffer {
        &mut self.buffer
    }

    /// The out-of-order bookkeeping (for SACK blocks).
    #[inline]
    pub fn assembler(&self) -> &Assembler<N> {
        &self.assembler
    }

    /// Free space past `RCV.NXT`: the receive window in bytes.
    #[inline]
    pub fn window(&self) -> usize {
        self.buffer.free()
    }

    /// Place `data`, which starts `offset` bytes past `RCV.NXT`. Bytes beyond the free
    /// space are dropped. In-order data (`offset == 0`) is always accepted; an
    /// out-of-order segment that would need one range too many is refused with
    /// [`TooManyRanges`] and nothing is stored.
    pub fn insert(&mut self, offset: u32, data: &[u8]) -> Result<Inserted, TooManyRanges> {
        let free = self.buffer.free();
        let off = offset as usize;
        let len = data.len().min(free.saturating_sub(off));
        if len == 0 {
            return Ok(Inserted {
                accepted: 0,
                readable: 0,
                ooo_range: None,
            });
        }
        if off == 0 {
            // In order: always accepted, even when every range is in use. The bytes
            // become readable at once, followed by any held data they reach.
            let n = self.buffer.enqueue(&data[..len]);
            let mut readable = n;
            if !self.assembler.is_empty() {
                self.assembler.advance(n as u32);
                let more = self.assembler.remove_front() as usize;
                self.buffer.commit(more);
                readable += more;
            }
            return Ok(Inserted {
                accepted: n,
                readable,
                ooo_range: None,
            });
        }
        // `len <= free <= capacity`; receive buffers are far below 4 GiB.
        let range = self.assembler.add(offset, len as u32)?;
        self.buffer.write_at(off, &data[..len]);
        let readable = self.assembler.remove_front() as usize;
        self.buffer.commit(readable);
        Ok(Inserted {
            accepted: len,
            readable,
            ooo_range: (range.start != 0).then(|| Range {
                start: range.start - readable as u32,
                end: range.end - readable as u32,
            }),
        })
    }

    /// Drop everything, readable and out of order.
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.assembler.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u32, end: u32) -> Range {
        Range { start, end }
    }

    #[test]
    fn add_merges_overlapping_and_adjacent() {
        let mut a = Assembler::<4>::new();
        assert_eq!(a.add(10, 5), Ok(r(10, 15)));
        assert_eq!(a.add(20, 5), Ok(r(20, 25)));
        assert_eq!(a.add(15, 5), Ok(r(10, 25)));
        assert_eq!(a.ranges(), &[r(10, 25)]);
        assert_eq!(a.add(30, 2), Ok(r(30, 32)));
        assert_eq!(a.add(40, 2), Ok(r(40, 42)));
        assert_eq!(a.add(5, 50), Ok(r(5, 55)));
        assert_eq!(a.ranges(), &[r(5, 55)]);
        assert_eq!(a.add(12, 3), Ok(r(5, 55)));
        assert_eq!(a.add(0, 0), Ok(r(0, 0)));
        assert!(a.contains(5, 50) && !a.contains(4, 2) && a.contains(100, 0));
    }

    #[test]
    fn insert_keeps_order() {
        let mut a = Assembler::<4>::new();
        a.add(30, 1).unwrap();
        a.add(10, 1).unwrap();
        a.add(20, 1).unwrap();
        a.add(40, 1).unwrap();
        assert_eq!(a.ranges(), &[r(10, 11), r(20, 21), r(30, 31), r(40, 41)]);
        assert_eq!(a.held_bytes(), 4);
    }

    #[test]
    fn refuses_beyond_capacity_without_change() {
        let mut a = Assembler::<2>::new();
        a.add(10, 1).unwrap();
        a.add(20, 1).unwrap();
        let before = a.ranges().to_vec();
        assert_eq!(a.add(30, 1), Err(TooManyRanges));
        assert_eq!(a.add(0, 1), Err(TooManyRanges));
        assert_eq!(a.ranges(), &before[..]);
        // Merging still works when full.
        assert_eq!(a.add(11, 9), Ok(r(10, 21)));
        assert_eq!(a.add(30, 1), Ok(r(30, 31)));
    }

    #[test]
    fn remove_front_and_advance() {
        let mut a = Assembler::<4>::new();
        a.add(5, 5).unwrap();
        a.add(20, 5).unwrap();
        assert_eq!(a.remove_front(), 0);
        a.add(0, 5).unwrap();
        assert_eq!(a.remove_front(), 10);
        assert_eq!(a.ranges(), &[r(10, 15)]);
        a.add(20, 2).unwrap();
        a.advance(12);
        assert_eq!(a.ranges(), &[r(0, 3), r(8, 10)]);
        assert_eq!(a.remove_front(), 3);
        a.advance(100);
        assert!(a.is_empty());
    }

    #[test]
    fn reassembler_places_out_of_order() {
        let mut q = Reassembler::<4>::new(16);
        let ins = q.insert(4, b"efgh").unwrap();
        assert_eq!(
            ins,
            Inserted {
                accepted: 4,
                readable: 0,
                ooo_range: Some(r(4, 8))
            }
        );
        let ins = q.insert(10, b"klmnopqrstuv").unwrap();
        assert_eq!(ins.accepted, 6, "trimmed to the window");
        assert_eq!(ins.ooo_range, Some(r(10, 16)));
        let ins = q.insert(0, b"abcd").unwrap();
        assert_eq!(ins.readable, 8);
        assert_eq!(ins.ooo_range, None);
        assert_eq!(q.assembler().ranges(), &[r(2, 8)]);
        let mut out = [0u8; 8];
        q.buffer_mut().dequeue(&mut out);
        assert_eq!(&out, b"abcdefgh");
        // Window reopened; offsets stay relative to RCV.NXT.
        assert_eq!(q.window(), 16);
        let ins = q.insert(0, b"ij").unwrap();
        assert_eq!(ins.readable, 8);
        let mut out = [0u8; 8];
        q.buffer_mut().dequeue(&mut out);
        assert_eq!(&out, b"ijklmnop");
        assert!(q.assembler().is_empty());
        // In-order fast path and outside-window segments.
        assert_eq!(q.insert(0, b"xy").unwrap().readable, 2);
        assert_eq!(q.insert(14, b"z").unwrap().accepted, 0);
    }

    #[test]
    fn reassembler_accepts_in_order_data_when_ranges_are_full() {
        let mut q = Reassembler::<2>::new(64);
        q.insert(10, b"kl").unwrap();
        q.insert(20, b"uv").unwrap();
        assert_eq!(q.insert(30, b"z"), Err(TooManyRanges));
        // In order, not touching any held range: accepted all the same.
        let ins = q.insert(0, b"abcd").unwrap();
        assert_eq!((ins.accepted, ins.readable), (4, 4));
        assert_eq!(q.assembler().ranges(), &[r(6, 8), r(16, 18)]);
        // In order and overlapping a held range: it and the range become readable.
        let ins = q.insert(0, b"efghijk").unwrap();
        assert_eq!((ins.accepted, ins.readable), (7, 8));
        assert_eq!(q.assembler().ranges(), &[r(8, 10)]);
        let mut out = [0u8; 12];
        assert_eq!(q.buffer_mut().dequeue(&mut out), 12);
        assert_eq!(&out, b"abcdefghijkl");
    }

    #[test]
    fn reassembler_ooo_range_relative_to_new_rcv_nxt() {
        let mut q = Reassembler::<4>::new(32);
        q.insert(10, b"0123").unwrap();
        q.insert(20, b"0123").unwrap();
        // Fills [0,4): readable 4, the segment's range is not out of order.
        let ins = q.insert(0, b"abcd").unwrap();
        assert_eq!((ins.readable, ins.ooo_range), (4, None));
        let ins = q.insert(8, b"xy").unwrap();
        assert_eq!(ins.ooo_range, Some(r(6, 10)));
    }
}
