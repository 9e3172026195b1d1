//! Property tests: RACK's transmit records against a per-byte model of what the peer
//! SACKed, and the receiver's SACK block list.

use std::time::Duration;

use proptest::prelude::*;
use tcpstack::rack::{Rack, TxRecord};
use tcpstack::sack::{SackBlock, SackReporter, MAX_SACK_BLOCKS};
use tcpstack::{Instant, SeqNum};

/// Segment size of the modelled sender.
const SMSS: u32 = 100;

/// One step of a sender's life.
#[derive(Debug, Clone)]
enum Op {
    /// Send `n` new segments (one record).
    Send(u32),
    /// An ACK: the cumulative point moves by `advance` bytes, SACK blocks as offsets
    /// from the old `SND.UNA` (possibly below it, beyond `SND.MAX`, or inverted).
    Ack {
        advance: u32,
        blocks: Vec<(i64, i64)>,
    },
    /// Time passes and RACK looks for losses.
    Detect(u64),
    /// The first lost range is sent again.
    Retransmit,
    /// A retransmission timeout.
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..6).prop_map(Op::Send),
        (
            prop_oneof![Just(0u32), 0u32..300],
            prop::collection::vec((-200i64..2500, -10i64..400), 0..4)
        )
            .prop_map(|(advance, bl)| Op::Ack {
                advance,
                blocks: bl.into_iter().map(|(l, n)| (l, l + n)).collect(),
            }),
        (0u64..20).prop_map(Op::Detect),
        Just(Op::Retransmit),
        Just(Op::Timeout),
    ]
}

/// Per-byte model of the records' flags, indexed from `una`.
#[derive(Default)]
struct Model {
    sacked: Vec<bool>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The records always cover `SND.UNA..SND.MAX` exactly, their SACKed and lost
    /// totals match their flags, a SACKed byte is never lost, every block edge the
    /// limit allows is honoured byte for byte, and the record count stays within the
    /// limit whatever the blocks.
    #[test]
    fn rack_records_invariants(ops in prop::collection::vec(op(), 1..80), limit in 8usize..200) {
        let base = SeqNum(u32::MAX - 1000);
        let mut rack = Rack::new(limit);
        let (mut una, mut nxt) = (base, base);
        let mut now = Instant::from_millis(1);
        let mut model = Model::default();
        let mut exact = true;
        for op in ops {
            now += Duration::from_millis(1);
            match op {
                Op::Send(n) => {
                    if rack.records().count() >= limit {
                        // New data joins the last record, which forgets its SACK.
                        exact = false;
                    }
                    let end = nxt + n * SMSS;
                    rack.on_send(nxt, end, now);
                    model.sacked.extend(std::iter::repeat_n(false, (n * SMSS) as usize));
                    nxt = end;
                }
                Op::Ack { advance, blocks } => {
                    let advance = advance.min(nxt - una);
                    let new_una = una + advance;
                    let bl: Vec<SackBlock> = blocks
                        .iter()
                        .map(|&(l, r)| SackBlock {
                            left: una + l.clamp(-200, i64::from(nxt - una) + 100) as i32 as u32,
                            right: una + r.clamp(-200, i64::from(nxt - una) + 100) as i32 as u32,
                        })
                        .collect();
                    // Only well-formed blocks inside the window are meant to be
                    // honoured; the first may be a D-SACK.
                    let dsack = rack.on_ack(new_una, &bl, now, Duration::from_millis(1), |_| false).dsack.is_some();
                    model.sacked.drain(..advance as usize);
                    una = new_una;
                    for (i, b) in bl.iter().enumerate() {
                        if i == 0 && dsack {
                            continue;
                        }
                        let l = b.left.max(una);
                        let r = b.right.min(nxt);
                        if r.gt(l) {
                            for k in (l - una)..(r - una) {
                                model.sacked[k as usize] = true;
                            }
                        }
                    }
                    if rack.records().count() >= limit {
                        // Splits may have been refused from here on.
                        exact = false;
                    }
                }
                Op::Detect(ms) => {
                    now += Duration::from_millis(ms);
                    rack.detect_loss(now, Duration::ZERO);
                }
                Op::Retransmit => {
                    if let Some((seq, len)) = rack.next_lost(SMSS) {
                        prop_assert!(len > 0 && len <= SMSS);
                        prop_assert!(seq.ge(una) && (seq + len).le(nxt));
                        rack.on_send(seq, seq + len, now);
                    }
                }
                Op::Timeout => {
                    now += Duration::from_millis(200);
                    rack.on_timeout(now, Duration::ZERO, false);
                }
            }
            // Coverage and totals.
            let recs: Vec<TxRecord> = rack.records().copied().collect();
            prop_assert!(recs.len() <= limit.max(8), "{} records", recs.len());
            let mut at = una;
            let (mut sacked, mut lost) = (0u32, 0u32);
            for r in &recs {
                prop_assert_eq!(r.start, at, "records are contiguous from SND.UNA");
                prop_assert!(r.end.gt(r.start));
                prop_assert!(!(r.sacked && r.lost), "a SACKed record is not lost");
                prop_assert!(r.sent <= now);
                if r.sacked {
                    sacked += r.end - r.start;
                }
                if r.lost {
                    lost += r.end - r.start;
                }
                at = r.end;
            }
            if !recs.is_empty() {
                prop_assert_eq!(at, nxt, "records reach SND.MAX");
            } else {
                prop_assert!(una == nxt || una == base, "nothing outstanding without records");
            }
            prop_assert_eq!(sacked, rack.sacked_bytes());
            prop_assert_eq!(lost, rack.lost_bytes());
            prop_assert_eq!(rack.pipe(nxt - una), (nxt - una) - sacked - lost);
            if exact {
                for r in &recs {
                    for k in (r.start - una)..(r.end - una) {
                        prop_assert_eq!(model.sacked[k as usize], r.sacked, "byte {} of {:?}", k, r);
                    }
                }
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
