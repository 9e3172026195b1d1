//! Property tests: the ring buffer against a `VecDeque` model, the assembler against a
//! bitmap model, and whole-stream reassembly from random segment sets (reordered,
//! duplicated, overlapping) through a small window with a reading application.

use std::collections::VecDeque;

use proptest::prelude::*;
use tcpstack::assembler::{Assembler, Reassembler, TooManyRanges};
use tcpstack::buffer::RingBuffer;

#[derive(Debug, Clone)]
enum BufOp {
    Enqueue(Vec<u8>),
    Dequeue(usize),
    Peek(usize, usize),
    WriteCommit(usize, Vec<u8>),
    Unfilled(u8, usize),
    /// Ask for up to `.0` bytes of free space as two slices; fill `.1` of them.
    UnfilledPair(usize, usize, u8),
}

fn buf_op() -> impl Strategy<Value = BufOp> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40).prop_map(BufOp::Enqueue),
        (0usize..50).prop_map(BufOp::Dequeue),
        (0usize..50, 0usize..50).prop_map(|(o, n)| BufOp::Peek(o, n)),
        (0usize..10, prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(o, d)| BufOp::WriteCommit(o, d)),
        (any::<u8>(), 0usize..30).prop_map(|(b, n)| BufOp::Unfilled(b, n)),
        (0usize..70, 0usize..70, any::<u8>()).prop_map(|(m, n, b)| BufOp::UnfilledPair(m, n, b)),
    ]
}

proptest! {
    #[test]
    fn ring_buffer_matches_model(cap in 0usize..64, ops in prop::collection::vec(buf_op(), 0..100)) {
        let mut rb = RingBuffer::new(cap);
        let mut model: VecDeque<u8> = VecDeque::new();
        for op in ops {
            match op {
                BufOp::Enqueue(d) => {
                    let n = rb.enqueue(&d);
                    prop_assert_eq!(n, d.len().min(cap - model.len()));
                    model.extend(&d[..n]);
                }
                BufOp::Dequeue(n) => {
                    let mut out = vec![0; n];
                    let got = rb.dequeue(&mut out);
                    let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                }
                BufOp::Peek(off, n) => {
                    let (a, b) = rb.slices_at(off, n);
                    let got: Vec<u8> = a.iter().chain(b).copied().collect();
                    let want: Vec<u8> = model.iter().skip(off).take(n).copied().collect();
                    prop_assert_eq!(got, want);
                }
                BufOp::WriteCommit(off, d) => {
                    // Fill the gap first so that committing makes sense.
                    let gap = vec![0xAA; off];
                    let n1 = rb.write_at(off, &d);
                    let n0 = rb.write_at(0, &gap);
                    let free = cap - model.len();
                    prop_assert_eq!(n0, off.min(free));
                    prop_assert_eq!(n1, if off >= free { 0 } else { d.len().min(free - off) });
                    let committed = rb.commit(n0 + n1);
                    prop_assert_eq!(committed, n0 + n1);
                    model.extend(&gap[..n0]);
                    model.extend(&d[..n1]);
                }
                BufOp::Unfilled(byte, n) => {
                    let w = rb.unfilled_mut();
                    let n = n.min(w.len());
                    w[..n].fill(byte);
                    rb.commit(n);
                    model.extend(std::iter::repeat_n(byte, n));
                }
                BufOp::UnfilledPair(max, n, byte) => {
                    let free = cap - model.len();
                    let (a, b) = rb.unfilled_pair_mut(max);
                    prop_assert_eq!(a.len() + b.len(), max.min(free));
                    prop_assert!(b.is_empty() || !a.is_empty());
                    // Distinct bytes in order, so a slice written out of place shows.
                    let n = n.min(a.len() + b.len());
                    let fill: Vec<u8> = (0..n).map(|i| byte.wrapping_add(i as u8)).collect();
                    let k = n.min(a.len());
                    a[..k].copy_from_slice(&fill[..k]);
                    b[..n - k].copy_from_slice(&fill[k..]);
                    prop_assert_eq!(rb.commit(n), n);
                    model.extend(fill);
                }
            }
            prop_assert_eq!(rb.len(), model.len());
            prop_assert_eq!(rb.free(), cap - model.len());
            let (a, b) = rb.as_slices();
            prop_assert!(a.iter().chain(b).eq(model.iter()));
        }
    }

    #[test]
    fn assembler_matches_bitmap(segs in prop::collection::vec((0u32..200, 1u32..30), 0..60)) {
        let mut asm = Assembler::<6>::new();
        let mut bits = vec![false; 256];
        for (off, len) in segs {
            let before = asm.ranges().to_vec();
            match asm.add(off, len) {
                Ok(r) => {
                    for b in &mut bits[off as usize..(off + len) as usize] {
                        *b = true;
                    }
                    prop_assert!(r.start <= off && off + len <= r.end);
                    prop_assert!(asm.ranges().contains(&r));
                }
                Err(TooManyRanges) => {
                    prop_assert_eq!(asm.ranges(), &before[..]);
                    prop_assert_eq!(before.len(), 6);
                }
            }
            // Ranges sorted, disjoint, non-touching, non-empty, and exactly the bitmap.
            let rs = asm.ranges();
            for w in rs.windows(2) {
                prop_assert!(w[0].end < w[1].start);
            }
            let mut model = vec![false; 256];
            for r in rs {
                prop_assert!(r.start < r.end);
                for b in &mut model[r.start as usize..r.end as usize] {
                    *b = true;
                }
            }
            prop_assert_eq!(&model, &bits);
            // Draining the front keeps offsets consistent with the bitmap.
            let n = asm.remove_front() as usize;
            prop_assert!(bits[..n].iter().all(|&b| b));
            prop_assert!(n == 0 || !bits[n]);
            bits.drain(..n);
            bits.resize(256, false);
        }
    }

    #[test]
    fn reassembly_yields_the_original_stream(
        data in prop::collection::vec(any::<u8>(), 1..3000),
        cuts in prop::collection::vec((0usize..3000, 1usize..400), 1..80),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
        window in 64usize..1500,
        read_chunk in 1usize..700,
    ) {
        // Segments: random (possibly overlapping) pieces plus a tiling that covers all.
        let mut segs: Vec<(usize, usize)> = cuts
            .iter()
            .map(|&(o, l)| (o % data.len(), l))
            .map(|(o, l)| (o, l.min(data.len() - o)))
            .collect();
        let mut o = 0;
        while o < data.len() {
            let l = (data.len() - o).min(1 + (o * 7919 % 300));
            segs.push((o, l));
            o += l;
        }
        let mut q = Reassembler::<4>::new(window);
        let mut out = Vec::with_capacity(data.len());
        let mut rcv_nxt = 0usize; // stream offset of RCV.NXT
        // Deliver in a random order; anything not fully taken is "retransmitted"
        // (re-queued) until the whole stream is through.
        let mut pending: VecDeque<(usize, usize)> = segs.into_iter().collect();
        let mut picks = order.into_iter();
        let mut rounds = 0;
        while out.len() < data.len() {
            rounds += 1;
            prop_assert!(rounds < 100_000, "no progress");
            let i = picks.next().map_or(0, |ix| ix.index(pending.len()));
            let (so, sl) = pending.remove(i).unwrap();
            let end = so + sl;
            if end > rcv_nxt {
                // Trim the part already received, as the connection does.
                let start = so.max(rcv_nxt);
                let off = (start - rcv_nxt) as u32;
                let ins = q.insert(off, &data[start..end]);
                let fully = match ins {
                    Ok(ins) => {
                        rcv_nxt += ins.readable;
                        ins.accepted == end - start
                    }
                    Err(TooManyRanges) => false,
                };
                if !fully {
                    pending.push_back((so, sl));
                }
            }
            // The application reads some.
            let mut buf = vec![0; read_chunk];
            let n = q.buffer_mut().dequeue(&mut buf);
            out.extend_from_slice(&buf[..n]);
            prop_assert!(q.buffer().len() + q.window() == window);
            if pending.is_empty() && out.len() < data.len() {
                // Everything delivered once; drain the rest and re-send from RCV.NXT.
                pending.push_back((rcv_nxt, data.len() - rcv_nxt));
            }
        }
        prop_assert_eq!(out, data);
        prop_assert!(q.assembler().is_empty());
    }
}
