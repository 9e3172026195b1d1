//! Seeded loss and reordering around any [`Device`], both ways, for tests against a
//! real peer: the loop that drives the device never knows it is there.
//!
//! Every packet is dropped with probability `drop_percent`, or held back with
//! probability `reorder_percent` and released after a few later packets (or a short
//! time) have overtaken it. Same seed, same decisions. The number of held packets is
//! bounded, so memory is too.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;
use tcpstack::Transmit;

use crate::device::{Device, DeviceCaps, DeviceStats, Received};

/// Most packets held back at once per direction; beyond this, packets pass through.
const MAX_HELD: usize = 64;
/// How many later packets overtake a held one before it is released.
const OVERTAKE: u32 = 3;
/// Longest a packet is held when no later packet comes to overtake it.
const MAX_HOLD: Duration = Duration::from_millis(2);

/// Loss and reorder rates, each direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Seed of both directions' decisions.
    pub seed: u64,
    /// Percent of packets dropped.
    pub drop_percent: f64,
    /// Percent of packets reordered.
    pub reorder_percent: f64,
}

/// What one direction of an [`Impaired`] device did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairmentStats {
    /// Packets offered.
    pub seen: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Packets delivered after later ones.
    pub reordered: u64,
}

/// True with probability `percent` / 100, drawn from `rng`.
fn chance(rng: &mut SplitMix64, percent: f64) -> bool {
    ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) * 100.0 < percent
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    Drop,
    Hold,
}

#[derive(Debug)]
struct Held<M> {
    packet: Vec<u8>,
    meta: M,
    overtaken: u32,
    since: Instant,
}

/// One direction's decisions and held packets.
#[derive(Debug)]
struct Shim<M> {
    rng: SplitMix64,
    drop_percent: f64,
    reorder_percent: f64,
    held: VecDeque<Held<M>>,
    stats: ImpairmentStats,
}

impl<M> Shim<M> {
    fn new(seed: u64, drop_percent: f64, reorder_percent: f64) -> Self {
        Shim {
            rng: SplitMix64::seed_from_u64(seed),
            drop_percent,
            reorder_percent,
            held: VecDeque::new(),
            stats: ImpairmentStats::default(),
        }
    }

    /// Decides the fate of the next packet; a held one must be given to `hold`.
    fn decide(&mut self) -> Fate {
        self.stats.seen += 1;
        if chance(&mut self.rng, self.drop_percent) {
            self.stats.dropped += 1;
            Fate::Drop
        } else if self.held.len() < MAX_HELD && chance(&mut self.rng, self.reorder_percent) {
            Fate::Hold
        } else {
            Fate::Pass
        }
    }

    fn hold(&mut self, packet: &[u8], meta: M, now: Instant) {
        self.held.push_back(Held {
            packet: packet.to_vec(),
            meta,
            overtaken: 0,
            since: now,
        });
    }

    /// A packet passed (or was dropped): every held one was overtaken once more.
    fn overtaken(&mut self) {
        for h in &mut self.held {
            h.overtaken += 1;
        }
    }

    /// The next held packet that waited long enough.
    fn release(&mut self, now: Instant) -> Option<Held<M>> {
        // Held packets are in arrival order, so the front is always the first due.
        let h = self.held.front()?;
        if h.overtaken < OVERTAKE && now < h.since + MAX_HOLD {
            return None;
        }
        self.stats.reordered += 1;
        self.held.pop_front()
    }

    fn deadline(&self) -> Option<Instant> {
        self.held.front().map(|h| h.since + MAX_HOLD)
    }
}

/// A device whose packets are dropped and reordered under a seed, both ways.
#[derive(Debug)]
pub struct Impaired<D> {
    inner: D,
    inbound: Shim<bool>,
    outbound: Shim<Transmit>,
    /// Received packets ready to hand out, in order, and the one handed out last.
    ready: VecDeque<(Vec<u8>, bool)>,
    current: Vec<u8>,
}

impl<D: Device> Impaired<D> {
    /// Wraps `inner`, impairing both directions as `how` says (the two directions draw
    /// from different streams of the seed).
    pub fn new(inner: D, how: Impairment) -> Self {
        Impaired {
            inner,
            inbound: Shim::new(how.seed, how.drop_percent, how.reorder_percent),
            outbound: Shim::new(!how.seed, how.drop_percent, how.reorder_percent),
            ready: VecDeque::new(),
            current: Vec::new(),
        }
    }

    /// What the shims did, as `(inbound, outbound)`.
    pub fn impairment_stats(&self) -> (ImpairmentStats, ImpairmentStats) {
        (self.inbound.stats, self.outbound.stats)
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn release_inbound(&mut self, now: Instant) {
        while let Some(h) = self.inbound.release(now) {
            self.ready.push_back((h.packet, h.meta));
        }
    }

    fn release_outbound(&mut self, now: Instant) -> io::Result<()> {
        while let Some(h) = self.outbound.release(now) {
            let buf = self.inner.transmit_buffer();
            buf[..h.packet.len()].copy_from_slice(&h.packet);
            self.inner.transmit(h.meta, now)?;
        }
        Ok(())
    }
}

impl<D: Device> Device for Impaired<D> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn receive(&mut self, now: Instant) -> io::Result<Option<Received<'_>>> {
        self.release_inbound(now);
        while self.ready.is_empty() {
            let Some(rx) = self.inner.receive(now)? else {
                break;
            };
            match self.inbound.decide() {
                Fate::Drop => {}
                Fate::Hold => {
                    let trusted = rx.checksum_trusted;
                    let p = rx.packet.to_vec();
                    self.inbound.hold(&p, trusted, now);
                    continue;
                }
                Fate::Pass => {
                    let item = (rx.packet.to_vec(), rx.checksum_trusted);
                    self.ready.push_back(item);
                }
            }
            self.inbound.overtaken();
            self.release_inbound(now);
        }
        let Some((packet, trusted)) = self.ready.pop_front() else {
            return Ok(None);
        };
        self.current = packet;
        Ok(Some(Received {
            packet: &self.current,
            checksum_trusted: trusted,
        }))
    }

    fn transmit_buffer(&mut self) -> &mut [u8] {
        self.inner.transmit_buffer()
    }

    fn transmit(&mut self, t: Transmit, now: Instant) -> io::Result<()> {
        match self.outbound.decide() {
            Fate::Drop => {}
            Fate::Hold => {
                let packet = self.inner.transmit_buffer()[..t.len].to_vec();
                self.outbound.hold(&packet, t, now);
                return Ok(());
            }
            Fate::Pass => self.inner.transmit(t, now)?,
        }
        self.outbound.overtaken();
        self.release_outbound(now)
    }

    fn flush(&mut self, now: Instant) -> io::Result<()> {
        self.release_outbound(now)?;
        self.inner.flush(now)
    }

    fn wake_fd(&self) -> Option<RawFd> {
        self.inner.wake_fd()
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.inner.next_deadline(),
            self.inbound.deadline(),
            self.outbound.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn stats(&self) -> DeviceStats {
        self.inner.stats()
    }
}

// Tests on the real clock; no simulation reaches them.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A device that receives the bytes 0..=255 and records what it sends.
    #[derive(Default)]
    struct Counting {
        next: u16,
        buf: Vec<u8>,
        sent: Vec<u8>,
    }

    impl Device for Counting {
        fn caps(&self) -> DeviceCaps {
            DeviceCaps {
                mtu: 1500,
                tx_offload: tcpstack::TxOffload::default(),
            }
        }
        fn receive(&mut self, _: Instant) -> io::Result<Option<Received<'_>>> {
            if self.next > 255 {
                return Ok(None);
            }
            self.buf = vec![self.next as u8];
            self.next += 1;
            Ok(Some(Received {
                packet: &self.buf,
                checksum_trusted: false,
            }))
        }
        fn transmit_buffer(&mut self) -> &mut [u8] {
            self.buf.resize(1500, 0);
            &mut self.buf
        }
        fn transmit(&mut self, t: Transmit, _: Instant) -> io::Result<()> {
            self.sent.push(self.buf[t.len - 1]);
            Ok(())
        }
        fn stats(&self) -> DeviceStats {
            DeviceStats::default()
        }
    }

    fn one_byte() -> Transmit {
        Transmit {
            len: 1,
            segment_size: None,
            header_len: 0,
            partial_checksum: false,
        }
    }

    fn receive_all(seed: u64, drop: f64, reorder: f64) -> (Vec<u8>, ImpairmentStats) {
        let mut d = Impaired::new(
            Counting::default(),
            Impairment {
                seed,
                drop_percent: drop,
                reorder_percent: reorder,
            },
        );
        let t0 = Instant::now();
        let mut out = Vec::new();
        while let Some(rx) = d.receive(t0).unwrap() {
            out.push(rx.packet[0]);
        }
        while let Some(rx) = d.receive(t0 + MAX_HOLD).unwrap() {
            out.push(rx.packet[0]);
        }
        (out, d.impairment_stats().0)
    }

    #[test]
    fn same_seed_same_decisions() {
        assert_eq!(receive_all(7, 10.0, 10.0), receive_all(7, 10.0, 10.0));
        assert_ne!(receive_all(7, 10.0, 10.0).0, receive_all(8, 10.0, 10.0).0);
    }

    #[test]
    fn drops_and_reorders_but_never_duplicates() {
        let (out, stats) = receive_all(42, 10.0, 10.0);
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
        let (out, _) = receive_all(1, 0.0, 0.0);
        assert_eq!(out, (0..=255).collect::<Vec<u8>>());
    }

    #[test]
    fn held_outgoing_packets_leave_by_time() {
        let mut d = Impaired::new(
            Counting::default(),
            Impairment {
                seed: 3,
                drop_percent: 0.0,
                reorder_percent: 100.0,
            },
        );
        let t0 = Instant::now();
        d.transmit_buffer()[0] = b'x';
        d.transmit(one_byte(), t0).unwrap();
        assert!(d.inner().sent.is_empty());
        assert_eq!(d.next_deadline(), Some(t0 + MAX_HOLD));
        d.flush(t0 + MAX_HOLD).unwrap();
        assert_eq!(d.inner().sent, b"x");
        assert_eq!(d.impairment_stats().1.reordered, 1);
    }
}
