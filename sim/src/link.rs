//! The simulated link between the two stacks, and each stack's packet device on it.
//!
//! Both devices share one [`Wire`]: a packet a device transmits is finished as a real
//! device would (partial checksums completed, super-segments cut, in software), then
//! each wire packet meets the faults its direction draws: a partition, loss,
//! corruption (one bit flipped, which the receiver's checksum must catch), a
//! bottleneck with a tail-drop queue, delay and jitter, reordering, duplication. It is
//! delivered to the other device at its arrival time; that device's network loop is
//! polled then (the device has no wake fd: it [wakes at its
//! deadlines](threadlib::EventLoop::wakes_at_deadlines)). Every decision comes from the
//! seed, and every packet feeds the run's event hash.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand_pcg::Pcg64Mcg;
use tcpstack::{Transmit, TxOffload};
use usernet::{Device, DeviceCaps, DeviceStats, Received};

use crate::hash::EventHash;
use crate::params::{Cut, LinkParams, Params};

/// Side 0 is the client, side 1 the server; direction `d` carries side `d`'s packets.
pub const CLIENT: usize = 0;
/// The server's side.
pub const SERVER: usize = 1;

/// What the link did to one direction's packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Wire packets offered.
    pub sent: u64,
    /// Delivered (duplicates included).
    pub delivered: u64,
    /// Lost to random loss.
    pub lost: u64,
    /// Lost to a partition.
    pub partitioned: u64,
    /// Tail-dropped at the bottleneck.
    pub queue_drops: u64,
    /// Corrupted.
    pub corrupted: u64,
    /// Duplicated.
    pub duplicated: u64,
    /// Held back to arrive after later packets.
    pub reordered: u64,
}

/// A packet on its way: ordered by arrival time, then by the order it was sent.
type InFlight = Reverse<(Instant, u64, Vec<u8>)>;

#[derive(Debug)]
struct Direction {
    params: LinkParams,
    queue: BinaryHeap<InFlight>,
    /// When the bottleneck finishes serializing what it holds.
    busy_until: Option<Instant>,
    stats: LinkStats,
}

/// The state both devices share.
#[derive(Debug)]
pub struct Wire {
    dirs: [Direction; 2],
    partitions: Vec<crate::params::Partition>,
    heal: Duration,
    rng: Pcg64Mcg,
    seq: u64,
    hash: EventHash,
    /// Event log lines, when verbose.
    log: Option<Vec<String>>,
}

impl Wire {
    /// The link `params` describes; it keeps an event log if `verbose`.
    pub fn new(params: &Params, verbose: bool) -> Arc<Mutex<Wire>> {
        let dir = |p: &LinkParams| Direction {
            params: p.clone(),
            queue: BinaryHeap::new(),
            busy_until: None,
            stats: LinkStats::default(),
        };
        Arc::new(Mutex::new(Wire {
            dirs: [dir(&params.links[0]), dir(&params.links[1])],
            partitions: params.partitions.clone(),
            heal: params.heal,
            rng: crate::params::rng(params.seed, crate::params::stream::LINK_PACKETS),
            seq: 0,
            hash: EventHash::default(),
            log: verbose.then(Vec::new),
        }))
    }

    /// What the link did so far, client to server and server to client.
    pub fn stats(&self) -> [LinkStats; 2] {
        [self.dirs[0].stats, self.dirs[1].stats]
    }

    /// Packets still on their way.
    pub fn in_flight(&self) -> usize {
        self.dirs.iter().map(|d| d.queue.len()).sum()
    }

    /// The hash of every packet event so far.
    pub fn hash(&self) -> u64 {
        self.hash.value()
    }

    /// Takes the event log recorded so far (verbose runs).
    pub fn take_log(&mut self) -> Vec<String> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Records an event of the run in the hash and the log.
    pub fn note(&mut self, text: &str) {
        let t = threadlib::time::elapsed();
        self.hash.add(&[t.as_nanos() as u64]);
        self.hash.add_bytes(text.as_bytes());
        threadlib::trace::event("sim", "event", || text.to_owned());
        if let Some(log) = &mut self.log {
            log.push(format!("{:>12.6} {text}", t.as_secs_f64()));
        }
    }

    /// Adds `words` to the event hash.
    pub fn hash_words(&mut self, words: &[u64]) {
        self.hash.add(words);
    }

    /// Puts one wire packet from `side` on the link at `now` (the virtual time since
    /// the run's start is the core clock's elapsed time).
    fn send(&mut self, side: usize, now: Instant, packet: &[u8]) {
        let t = threadlib::time::elapsed();
        let clean = t >= self.heal;
        let cut = !clean
            && self.partitions.iter().any(|p| {
                t >= p.start
                    && t < p.end
                    && matches!(
                        (p.cut, side),
                        (Cut::Both, _) | (Cut::ToServer, CLIENT) | (Cut::ToClient, SERVER)
                    )
            });
        let Wire { dirs, rng, .. } = self;
        let d = &mut dirs[side];
        let p = &d.params;
        d.stats.sent += 1;
        let fate = if cut {
            d.stats.partitioned += 1;
            Fate::Partitioned
        } else if !clean && rng.random_bool(p.loss) {
            d.stats.lost += 1;
            Fate::Lost
        } else {
            Fate::Sent
        };
        let mut bytes = packet.to_vec();
        let mut arrivals = Vec::new();
        let mut fate = fate;
        if fate == Fate::Sent {
            if !clean && rng.random_bool(p.corrupt) && !bytes.is_empty() {
                let bit = rng.random_range(0..bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                d.stats.corrupted += 1;
                fate = Fate::Corrupted;
            }
            // The bottleneck: serialized at its rate behind what it holds; what does
            // not fit its queue is dropped.
            let depart = match p.bandwidth {
                Some(rate) => {
                    let busy = d.busy_until.unwrap_or(now);
                    let backlog = busy.saturating_duration_since(now);
                    let queued = (backlog.as_secs_f64() * rate as f64) as usize;
                    if queued + bytes.len() > p.queue_bytes {
                        d.stats.queue_drops += 1;
                        fate = Fate::QueueDrop;
                        None
                    } else {
                        let tx = Duration::from_secs_f64(bytes.len() as f64 / rate as f64);
                        let done = busy.max(now) + tx;
                        d.busy_until = Some(done);
                        Some(done)
                    }
                }
                None => Some(now),
            };
            if let Some(depart) = depart {
                let copies = if !clean && rng.random_bool(p.duplicate) {
                    d.stats.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let mut at = depart + p.delay;
                    if !p.jitter.is_zero() {
                        at += p.jitter.mul_f64(rng.random::<f64>());
                    }
                    if !clean && rng.random_bool(p.reorder) {
                        d.stats.reordered += 1;
                        at += (p.delay * 2 + Duration::from_millis(1)).mul_f64(rng.random::<f64>());
                    }
                    arrivals.push(at);
                }
            }
        }
        for at in &arrivals {
            self.seq += 1;
            self.dirs[side]
                .queue
                .push(Reverse((*at, self.seq, bytes.clone())));
        }
        self.hash
            .add(&[side as u64, t.as_nanos() as u64, fate as u64]);
        self.hash.add_bytes(&bytes);
        let name = ["client", "server"][side];
        let describe = || {
            format!(
                "{name} sends {} {fate:?}{}",
                tcpstack::wire::describe(&bytes),
                arrivals
                    .iter()
                    .map(|a| format!(" arrives {:?}", a.saturating_duration_since(now)))
                    .collect::<String>()
            )
        };
        threadlib::trace::event("link", "packet", describe);
        if let Some(log) = &mut self.log {
            log.push(format!("{:>12.6} {}", t.as_secs_f64(), describe()));
        }
    }

    /// The next packet for `side` due at `now`, if any.
    fn take(&mut self, side: usize, now: Instant) -> Option<Vec<u8>> {
        let d = &mut self.dirs[1 - side];
        let due = d.queue.peek().is_some_and(|Reverse((at, _, _))| *at <= now);
        if !due {
            return None;
        }
        let Reverse((_, _, bytes)) = d.queue.pop()?;
        d.stats.delivered += 1;
        Some(bytes)
    }

    /// When the next packet for `side` arrives.
    fn next_arrival(&self, side: usize) -> Option<Instant> {
        self.dirs[1 - side]
            .queue
            .peek()
            .map(|Reverse((at, _, _))| *at)
    }
}

/// What happened to a packet on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Fate {
    Sent,
    Lost,
    Partitioned,
    Corrupted,
    QueueDrop,
}

/// One stack's device on the [`Wire`].
#[derive(Debug)]
pub struct SimDevice {
    wire: Arc<Mutex<Wire>>,
    side: usize,
    caps: DeviceCaps,
    rx: Vec<u8>,
    tx: Vec<u8>,
    scratch: Vec<u8>,
    stats: DeviceStats,
}

impl SimDevice {
    /// `side`'s device, with an MTU of `mtu` and transmit offload if `offload`.
    pub fn new(wire: Arc<Mutex<Wire>>, side: usize, mtu: usize, offload: bool) -> SimDevice {
        let tx_offload = if offload {
            TxOffload {
                checksum: true,
                segmentation: 65_535,
            }
        } else {
            TxOffload::default()
        };
        SimDevice {
            wire,
            side,
            caps: DeviceCaps { mtu, tx_offload },
            rx: Vec::new(),
            tx: vec![0; tx_offload.segmentation.max(mtu)],
            scratch: Vec::new(),
            stats: DeviceStats::default(),
        }
    }

    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Device for SimDevice {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn receive(&mut self, now: Instant) -> io::Result<Option<Received<'_>>> {
        let Some(packet) = self.wire().take(self.side, now) else {
            return Ok(None);
        };
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += packet.len() as u64;
        self.rx = packet;
        Ok(Some(Received {
            packet: &self.rx,
            checksum_trusted: false,
        }))
    }

    fn transmit_buffer(&mut self) -> &mut [u8] {
        &mut self.tx
    }

    fn transmit(&mut self, t: Transmit, now: Instant) -> io::Result<()> {
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += t.len as u64;
        let mut wire = self.wire.lock().unwrap_or_else(|p| p.into_inner());
        let side = self.side;
        tcpstack::wire::finish_offload(&self.tx, t, &mut self.scratch, |p| wire.send(side, now, p))
            .map_err(io::Error::other)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.wire().next_arrival(self.side)
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }
}
