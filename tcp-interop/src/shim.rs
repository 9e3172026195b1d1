//! A seeded loss-and-reorder shim for the stack's side of the link.
//!
//! Every packet passing through [`LossShim::pass`] is dropped with probability
//! `drop_percent`, or held back with probability `reorder_percent` and released after a
//! few later packets (or a short time) have overtaken it. Same seed, same decisions. The
//! number of held packets is bounded, so memory is too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most packets held back at once; beyond this, packets pass straight through.
const MAX_HELD: usize = 64;
/// How many later packets overtake a held one before it is released.
const OVERTAKE: u32 = 3;
/// Longest a packet is held when no later packet comes to overtake it.
const MAX_HOLD: Duration = Duration::from_millis(2);

/// SplitMix64: tiny, fast, and fully determined by its seed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: f64) -> bool {
        // 53 random bits as a float in [0, 1).
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) * 100.0 < percent
    }
}

/// What the shim did, for test reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShimStats {
    /// Packets offered.
    pub seen: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Packets delivered after later ones.
    pub reordered: u64,
}

#[derive(Debug)]
struct Held {
    packet: Vec<u8>,
    overtaken: u32,
    since: Instant,
}

/// Drops and reorders packets under a seed. Use one per direction.
#[derive(Debug)]
pub struct LossShim {
    rng: SplitMix64,
    drop_percent: f64,
    reorder_percent: f64,
    held: VecDeque<Held>,
    stats: ShimStats,
}

impl LossShim {
    /// A shim dropping `drop_percent` % and reordering `reorder_percent` % of packets.
    pub fn new(seed: u64, drop_percent: f64, reorder_percent: f64) -> LossShim {
        LossShim {
            rng: SplitMix64(seed),
            drop_percent,
            reorder_percent,
            held: VecDeque::new(),
            stats: ShimStats::default(),
        }
    }

    /// Offers `packet`; `deliver` is called for it (unless dropped or held) and for every
    /// held packet that it overtook enough times.
    pub fn pass(&mut self, packet: &[u8], now: Instant, mut deliver: impl FnMut(&[u8])) {
        self.stats.seen += 1;
        if self.rng.chance(self.drop_percent) {
            self.stats.dropped += 1;
        } else if self.held.len() < MAX_HELD && self.rng.chance(self.reorder_percent) {
            self.held.push_back(Held {
                packet: packet.to_vec(),
                overtaken: 0,
                since: now,
            });
            return;
        } else {
            deliver(packet);
        }
        for h in &mut self.held {
            h.overtaken += 1;
        }
        self.release(now, &mut deliver);
    }

    /// Releases held packets that waited long enough; call on every loop turn.
    pub fn poll(&mut self, now: Instant, mut deliver: impl FnMut(&[u8])) {
        self.release(now, &mut deliver);
    }

    /// When the oldest held packet must be released at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.front().map(|h| h.since + MAX_HOLD)
    }

    /// Counts so far.
    pub fn stats(&self) -> ShimStats {
        self.stats
    }

    fn release(&mut self, now: Instant, deliver: &mut impl FnMut(&[u8])) {
        // Held packets are in arrival order, so the front is always the first due.
        while let Some(h) = self.held.front() {
            if h.overtaken < OVERTAKE && now < h.since + MAX_HOLD {
                break;
            }
            let h = self.held.pop_front().expect("front exists");
            self.stats.reordered += 1;
            deliver(&h.packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> (Vec<u8>, ShimStats) {
        let mut shim = LossShim::new(seed, 10.0, 10.0);
        let mut out = Vec::new();
        let t0 = Instant::now();
        for i in 0..=255u8 {
            shim.pass(&[i], t0, |p| out.push(p[0]));
        }
        shim.poll(t0 + MAX_HOLD, |p| out.push(p[0]));
        (out, shim.stats())
    }

    #[test]
    fn same_seed_same_decisions() {
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).0, run(8).0);
    }

    #[test]
    fn drops_and_reorders_but_never_duplicates() {
        let (out, stats) = run(42);
        assert_eq!(stats.seen, 256);
        assert!(stats.dropped > 0 && stats.reordered > 0, "{stats:?}");
        assert_eq!(out.len() as u64, stats.seen - stats.dropped);
        let mut sorted = out.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), out.len(), "a packet was duplicated");
        assert!(out.windows(2).any(|w| w[0] > w[1]), "nothing was reordered");
    }

    #[test]
    fn zero_rates_pass_everything_in_order() {
        let mut shim = LossShim::new(1, 0.0, 0.0);
        let mut out = Vec::new();
        let t0 = Instant::now();
        for i in 0..100u8 {
            shim.pass(&[i], t0, |p| out.push(p[0]));
        }
        assert_eq!(out, (0..100).collect::<Vec<u8>>());
        assert_eq!(shim.deadline(), None);
    }

    #[test]
    fn held_packets_are_released_by_time() {
        let mut shim = LossShim::new(3, 0.0, 100.0);
        let t0 = Instant::now();
        let mut out = Vec::new();
        shim.pass(b"x", t0, |p| out.push(p.to_vec()));
        assert!(out.is_empty());
        assert_eq!(shim.deadline(), Some(t0 + MAX_HOLD));
        shim.poll(t0 + MAX_HOLD, |p| out.push(p.to_vec()));
        assert_eq!(out, vec![b"x".to_vec()]);
    }
}
