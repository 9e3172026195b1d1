//! Property tests: the SACK scoreboard's invariants and its RFC 6675 answers against a
//! per-byte model, and the receiver's SACK block list.

use proptest::prelude::*;
use tcpstack::sack::{
    NextSeg, Recovery, SackBlock, SackReporter, Scoreboard, DUP_THRESH, MAX_SACK_BLOCKS,
    MAX_SCOREBOARD_RANGES,
};
use tcpstack::SeqNum;

/// Size of the modelled send window in bytes.
const SPAN: u32 = 4000;
const SMSS: u32 = 100;

#[derive(Debug, Clone)]
struct Ack {
    advance: u32,
    blocks: Vec<(i64, i64)>,
}

fn ack() -> impl Strategy<Value = Ack> {
    (
        prop_oneof![Just(0u32), 0u32..300],
        prop::collection::vec((-200i64..(SPAN as i64 + 100), 1i64..400), 0..4),
    )
        .prop_map(|(advance, bl)| Ack {
            advance,
            blocks: bl.into_iter().map(|(l, n)| (l, l + n)).collect(),
        })
}

/// Per-byte model: `sacked[i]` for the byte at `base + i`.
struct Model {
    sacked: Vec<bool>,
}

impl Model {
    /// `IsLost` for every byte, from one backward pass: byte `i` is lost when at least
    /// DupThresh discontiguous SACKed runs lie entirely above it, or more than
    /// `(DupThresh - 1) * SMSS` SACKed bytes do.
    fn lost(&self) -> Vec<bool> {
        let n = self.sacked.len();
        let mut out = vec![false; n];
        let (mut runs, mut bytes) = (0u32, 0u32);
        for i in (0..n).rev() {
            // Counts describe bytes strictly above i.
            out[i] = runs >= DUP_THRESH || bytes > (DUP_THRESH - 1) * SMSS;
            if self.sacked[i] {
                bytes += 1;
                if i == 0 || !self.sacked[i - 1] {
                    runs += 1;
                }
            }
        }
        out
    }
}

proptest! {
    #[test]
    fn scoreboard_invariants(
        base in prop_oneof![any::<u32>(), (u32::MAX - 5000)..=u32::MAX],
        acks in prop::collection::vec(ack(), 1..40),
        high_rxt_off in 0u32..SPAN,
    ) {
        let base = SeqNum(base);
        let nxt = base + SPAN;
        let mut una_off = 0u32;
        let mut sb = Scoreboard::new();
        let mut model = Model { sacked: vec![false; SPAN as usize] };
        let mut evicted = false;
        for a in acks {
            una_off = (una_off + a.advance).min(SPAN);
            let una = base + una_off;
            for b in &mut model.sacked[..una_off as usize] {
                *b = false;
            }
            let blocks: Vec<SackBlock> = a
                .blocks
                .iter()
                .map(|&(l, r)| SackBlock {
                    left: SeqNum((base.0 as i64 + l) as u32),
                    right: SeqNum((base.0 as i64 + r) as u32),
                })
                .collect();
            let up = sb.update(una, nxt, &blocks);
            prop_assert_eq!(up.valid_blocks as usize + up.invalid_blocks as usize, blocks.len());
            for &(l, r) in &a.blocks {
                let valid = r > una_off as i64 && r <= SPAN as i64 && l < r;
                if valid {
                    for b in &mut model.sacked[l.max(una_off as i64) as usize..r as usize] {
                        *b = true;
                    }
                }
            }
            if sb.ranges().len() == MAX_SCOREBOARD_RANGES {
                evicted = true;
            }
            // Structure: sorted, disjoint, non-touching, within [una, nxt].
            let rs = sb.ranges();
            prop_assert!(rs.len() <= MAX_SCOREBOARD_RANGES);
            for r in rs {
                prop_assert!(r.left.ge(una) && r.right.le(nxt) && r.left.lt(r.right));
            }
            for w in rs.windows(2) {
                prop_assert!(w[0].right.lt(w[1].left));
            }
            let total: u32 = rs.iter().map(|r| r.len()).sum();
            prop_assert_eq!(total, sb.sacked_bytes());
            prop_assert!(up.newly_sacked <= sb.sacked_bytes());
            // Safety: never claims an unSACKed byte; exact unless ranges were evicted.
            for i in 0..SPAN as usize {
                let s = sb.is_sacked(base + i as u32);
                prop_assert!(!s || model.sacked[i], "byte {} claimed SACKed", i);
                if !evicted {
                    prop_assert_eq!(s, model.sacked[i]);
                }
            }
            if evicted {
                continue;
            }
            // IsLost and SetPipe against the per-byte model.
            let lost = model.lost();
            for i in (una_off as usize..SPAN as usize).step_by(7) {
                prop_assert_eq!(sb.is_lost(base + i as u32, SMSS), lost[i], "IsLost({})", i);
            }
            let hr = high_rxt_off.max(una_off);
            let mut pipe = 0u32;
            let outstanding = model.sacked.iter().zip(&lost).enumerate().skip(una_off as usize);
            for (i, (&sacked, &lost)) in outstanding {
                if sacked {
                    continue;
                }
                if !lost {
                    pipe += 1;
                }
                if (i as u32) < hr {
                    pipe += 1;
                }
            }
            prop_assert_eq!(sb.pipe(una, nxt, base + hr, SMSS), pipe);
            // NextSeg: a retransmission starts at or above HighRxt, covers only
            // unSACKed bytes, is at most one SMSS, and rule 1 means lost.
            let is_lost = &lost;
            let high = model.sacked.iter().rposition(|&s| s).map_or(0, |i| i + 1);
            match sb.next_seg(una, base + hr, SMSS, false) {
                NextSeg::Retransmit { seq, len, lost } => {
                    let off = (seq - base) as usize;
                    prop_assert!(off as u32 >= hr && (1..=SMSS).contains(&len));
                    prop_assert!(model.sacked[off..off + len as usize].iter().all(|&s| !s));
                    prop_assert_eq!(lost, is_lost[off]);
                    // It is the lowest candidate.
                    let first = (hr as usize..high).find(|&i| !model.sacked[i]);
                    if lost {
                        let first_lost = (hr as usize..SPAN as usize)
                            .find(|&i| !model.sacked[i] && is_lost[i]);
                        prop_assert_eq!(Some(off), first_lost);
                    } else {
                        prop_assert_eq!(Some(off), first);
                    }
                }
                NextSeg::Nothing => {
                    let any_hole = (hr as usize..high).any(|i| !model.sacked[i]);
                    prop_assert!(!any_hole);
                }
                NextSeg::NewData => prop_assert!(false, "new data not allowed"),
            }
            // Rule 4, the rescue: ends at the highest unSACKed byte, covers only
            // unSACKed bytes, at most one SMSS, once per episode.
            let mut rec = Recovery::new();
            rec.enter(una, nxt);
            let highest = (una_off as usize..SPAN as usize).rev().find(|&i| !model.sacked[i]);
            match (rec.rescue(&sb, una, nxt, SMSS), highest) {
                (Some((seq, len)), Some(h)) => {
                    let off = (seq - base) as usize;
                    prop_assert_eq!(off + len as usize, h + 1);
                    prop_assert!((1..=SMSS).contains(&len));
                    prop_assert!(off >= una_off as usize);
                    prop_assert!(model.sacked[off..=h].iter().all(|&s| !s));
                    prop_assert_eq!(rec.rescue(&sb, una, nxt, SMSS), None);
                }
                (None, None) => {}
                (r, h) => prop_assert!(false, "rescue {:?} but highest unSACKed {:?}", r, h),
            }
        }
    }

    #[test]
    fn reporter_invariants(
        segs in prop::collection::vec((0u32..2000, 1u32..200), 1..50),
        advances in prop::collection::vec(0u32..100, 1..50),
    ) {
        use tcpstack::assembler::Assembler;
        let base = SeqNum(u32::MAX - 1000);
        let mut rcv_nxt = base;
        let mut asm = Assembler::<8>::new();
        let mut rep = SackReporter::new();
        for (i, &(off, len)) in segs.iter().enumerate() {
            let off = off + 1; // keep out of order
            if let Ok(range) = asm.add(off, len) {
                let block = SackBlock::from_range(rcv_nxt, range);
                rep.on_out_of_order(block);
                prop_assert_eq!(rep.blocks()[0], block);
            }
            // Occasionally RCV.NXT advances (in-order data through the front).
            let adv = advances[i % advances.len()];
            asm.advance(adv);
            rcv_nxt += adv;
            // Held data now adjacent to RCV.NXT becomes readable.
            rcv_nxt += asm.remove_front();
            rep.on_rcv_nxt(rcv_nxt);
            let bl = rep.blocks();
            prop_assert!(bl.len() <= MAX_SACK_BLOCKS);
            for (j, b) in bl.iter().enumerate() {
                prop_assert!(b.left.lt(b.right) && b.left.ge(rcv_nxt));
                // Every reported block is held data.
                let (s, e) = (b.left - rcv_nxt, b.right - rcv_nxt);
                prop_assert!(asm.contains(s, e - s), "block {:?} not held", b);
                for c in &bl[j + 1..] {
                    prop_assert!(b.right.lt(c.left) || c.right.lt(b.left), "overlap");
                }
            }
        }
    }
}
