//! A simulated one-way link: bandwidth-limited with a bounded FIFO queue (tail drop),
//! propagation delay with jitter, and random loss, duplication, reordering and
//! corruption, all drawn from a seeded [`Rng`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::Duration;

use tcpstack::Instant;

use super::rng::Rng;

/// How a link misbehaves.
#[derive(Debug, Clone)]
pub struct LinkParams {
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability a packet has one bit flipped or is truncated.
    pub corrupt: f64,
    /// Probability a packet is held back (delivered after later ones).
    pub reorder: f64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Uniform extra delay in `0..=jitter` (packets may overtake each other).
    pub jitter: Duration,
    /// Bytes per second of the bottleneck.
    pub bandwidth: u64,
    /// Bottleneck queue size in bytes (tail drop beyond it).
    pub queue_bytes: u64,
}

impl LinkParams {
    /// Random parameters: loss up to 20%, the rest up to a few percent.
    pub fn random(rng: &mut Rng) -> Self {
        let loss = match rng.below(4) {
            0 => 0.0,
            1 => rng.unit() * 0.02,
            2 => rng.unit() * 0.08,
            _ => rng.unit() * 0.20,
        };
        LinkParams {
            loss,
            duplicate: if rng.chance(0.5) {
                rng.unit() * 0.05
            } else {
                0.0
            },
            corrupt: if rng.chance(0.5) {
                rng.unit() * 0.03
            } else {
                0.0
            },
            reorder: if rng.chance(0.5) {
                rng.unit() * 0.10
            } else {
                0.0
            },
            delay: Duration::from_micros(rng.range(100, 40_000)),
            jitter: Duration::from_micros(rng.range(0, 2_000)),
            bandwidth: rng.pick(&[125_000, 1_250_000, 12_500_000, 125_000_000]),
            queue_bytes: rng.range(16_000, 256_000),
        }
    }
}

/// What happened on a link, for the failure report.
#[derive(Debug, Clone, Default)]
pub struct LinkStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub queue_drops: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
    /// Largest number of packets in flight on the link at once.
    pub max_in_flight: usize,
}

/// One direction of the simulated network.
pub struct Link {
    params: LinkParams,
    rng: Rng,
    /// When the bottleneck finishes serialising what is already queued.
    busy_until: Instant,
    /// Packets in flight: (delivery time, tie-breaking sequence, bytes).
    in_flight: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    next_id: u64,
    /// The latest delivery time scheduled so far.
    latest: Instant,
    pub stats: LinkStats,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}", self.params, self.stats)
    }
}

/// The fate of a packet handed to [`Link::send`], for tracing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Lost,
    QueueDrop,
    Delivered,
}

impl Link {
    pub fn new(params: LinkParams, rng: Rng) -> Self {
        Link {
            params,
            rng,
            busy_until: Instant::ZERO,
            in_flight: BinaryHeap::new(),
            next_id: 0,
            latest: Instant::ZERO,
            stats: LinkStats::default(),
        }
    }

    fn push(&mut self, at: Instant, packet: Vec<u8>) {
        self.next_id += 1;
        self.in_flight.push(Reverse((at, self.next_id, packet)));
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight.len());
    }

    /// Hand a packet to the link at `now`.
    pub fn send(&mut self, now: Instant, packet: &[u8]) -> Fate {
        self.stats.sent += 1;
        let p = self.params.clone();
        // Bottleneck queue: tail drop when the backlog exceeds the queue size.
        let start = self.busy_until.max(now);
        let backlog = (start - now).as_secs_f64() * p.bandwidth as f64;
        if backlog > p.queue_bytes as f64 {
            self.stats.queue_drops += 1;
            return Fate::QueueDrop;
        }
        let serialise = Duration::from_secs_f64(packet.len() as f64 / p.bandwidth as f64);
        self.busy_until = start + serialise;
        if self.rng.chance(p.loss) {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        let mut bytes = packet.to_vec();
        if self.rng.chance(p.corrupt) {
            self.stats.corrupted += 1;
            if self.rng.chance(0.2) && bytes.len() > 1 {
                let keep = self.rng.below(bytes.len() as u64) as usize;
                bytes.truncate(keep);
            } else {
                // One flipped bit: always caught by the IPv4 or TCP checksum.
                let bit = self.rng.below(bytes.len() as u64 * 8);
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
        }
        let jitter = self.rng.below(p.jitter.as_micros() as u64 + 1);
        let mut at = self.busy_until + p.delay + Duration::from_micros(jitter);
        if self.rng.chance(p.reorder) {
            at += Duration::from_micros(self.rng.range(1, 2 * p.delay.as_micros() as u64 + 1000));
        }
        // Overtaking a packet sent earlier (held back on purpose, or through jitter).
        if at < self.latest {
            self.stats.reordered += 1;
        }
        self.latest = self.latest.max(at);
        if self.rng.chance(p.duplicate) {
            self.stats.duplicated += 1;
            let later = at + Duration::from_micros(self.rng.range(0, 5_000));
            self.push(later, bytes.clone());
        }
        self.push(at, bytes);
        Fate::Delivered
    }

    /// When the next packet arrives, if any is in flight.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_delivery()? > now {
            return None;
        }
        self.stats.delivered += 1;
        self.in_flight.pop().map(|Reverse((_, _, p))| p)
    }
}
