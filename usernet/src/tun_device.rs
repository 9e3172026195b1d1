//! A TUN queue as a [`Device`]: the virtio-net framing of an offloaded queue, which
//! received checksums to trust, what to ask of the kernel on transmit, and how packets
//! cross into the kernel.
//!
//! Received packets are read one `read(2)` each, in the order the kernel queued them.
//! (Reads kept posted on an io_uring were tried: several posted reads on one queue
//! complete in an order of their own, which reorders a flow's packets, handshakes
//! included.) Transmitted packets are, by default, queued on an io_uring and sent in
//! one `io_uring_enter` per flush; the writes are linked, so they enter the kernel in
//! the order the stack sent them even when the kernel completes one of them
//! asynchronously. A packet with a large payload (bulk data, in super-segments of up
//! to 64 KiB) is instead written at once with `writev`, straight from the stack's
//! send buffer: copying it into a batch would cost more than the system call it
//! saves.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use iolib::tun::{Tun, VnetHeader, OFFLOAD_MAX_PACKET, VNET_HDR_LEN};
use iolib::uring::{Op, Ring};
use tcpstack::{Gathered, Transmit, TxOffload};

use crate::device::{copy_gathered, Device, DeviceCaps, DeviceStats, Received};

/// Largest IPv4 packet (a TCP super-segment) handed to an offloaded queue.
const MAX_SUPER_SEGMENT: usize = 65_535;

/// With [`TunIo::Batched`], a packet whose payload is at least this long is written
/// at once from where the stack keeps it rather than copied into the batch.
const WRITE_IN_PLACE_MIN: usize = 16 * 1024;

/// How sent packets cross into the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunIo {
    /// One `writev(2)` per packet, from where the stack keeps its pieces.
    Direct,
    /// Writes queued on an io_uring, submitted together: one `io_uring_enter` per
    /// flush of the network loop, or per `depth` packets if a flush sends more. Packets
    /// leave in the order they were sent: a batch starts only once the previous one
    /// was written (one more enter, to wait, if it was not yet). A packet carrying 16
    /// KiB or more of payload is not copied into the batch: once the writes before it
    /// are done, one `writev(2)` sends it from the stack's send buffer.
    Batched {
        /// Writes queued before a submission is forced.
        depth: usize,
    },
}

impl Default for TunIo {
    fn default() -> Self {
        TunIo::Batched { depth: 64 }
    }
}

/// One queue of a TUN device.
///
/// On a queue opened with offload ([`Tun::open_offloaded`],
/// [`Tun::open_queues_with`]) every packet carries a [`VnetHeader`]: received TCP
/// super-segments and partial checksums from the local kernel are trusted, and
/// transmitted packets ask the kernel to finish TCP checksums and to cut
/// super-segments of up to 64 KiB into MSS-sized segments (the stack is configured to
/// produce them, see [`DeviceCaps::tx_offload`]). A plain queue carries bare, complete
/// packets both ways.
#[derive(Debug)]
pub struct TunDevice {
    tun: Tun,
    caps: DeviceCaps,
    rx: Vec<u8>,
    tx: Tx,
    /// Bytes in front of every packet (the virtio-net header on an offloaded queue).
    headroom: usize,
    stats: DeviceStats,
    /// The exclusive lock on the device, released with the last queue.
    held: Option<std::sync::Arc<std::fs::File>>,
}

/// The transmit side of each way of [`TunIo`].
#[derive(Debug)]
enum Tx {
    Direct(Vec<u8>),
    Batched(Box<TxRing>),
}

/// Writes queued on an io_uring.
///
/// Transmit buffers are full-length vectors the stack writes into; a queued write
/// sends their first bytes, and the buffer comes back with its completion to be
/// written into again.
#[derive(Debug)]
struct TxRing {
    ring: Ring,
    depth: usize,
    /// Full length of every transmit buffer.
    len: usize,
    /// The buffer the stack writes the next packet into.
    next: Vec<u8>,
    spare: Vec<Vec<u8>>,
    queued: usize,
}

impl TxRing {
    /// Submits the queued writes (one `io_uring_enter`) and takes back the buffers of
    /// those that completed.
    fn submit(&mut self, stats: &mut DeviceStats) -> io::Result<()> {
        if self.queued > 0 {
            self.ring.submit().map_err(io::Error::from)?;
            stats.syscalls += 1;
            self.queued = 0;
        }
        self.reap(stats);
        Ok(())
    }

    /// Before the first write of a new batch: waits until the writes submitted before
    /// it completed. The kernel hands writes to a TUN queue to its worker threads, and
    /// a batch's writes are linked, so they run in order; but the batches themselves
    /// would run side by side on several workers and their packets interleave (a
    /// peer's TCP then sees reordering, and its sender retransmits spuriously). The
    /// stack builds the new batch while the previous one is written.
    fn settle(&mut self, stats: &mut DeviceStats) -> io::Result<()> {
        if self.queued > 0 {
            return Ok(());
        }
        self.drain(stats)
    }

    /// Submits the queued writes and waits until no write is in flight: one
    /// `io_uring_enter` when that is all it takes, more if the kernel took only some of
    /// them or returned early.
    fn drain(&mut self, stats: &mut DeviceStats) -> io::Result<()> {
        self.queued = 0;
        // Completions already posted need no system call to wait for.
        self.reap(stats);
        while self.ring.inflight() > 0 {
            let inflight = self.ring.inflight();
            self.ring
                .submit_and_wait(inflight)
                .map_err(io::Error::from)?;
            stats.syscalls += 1;
            self.reap(stats);
        }
        Ok(())
    }

    /// Takes back the buffers of the writes that completed, counting them.
    fn reap(&mut self, stats: &mut DeviceStats) {
        let (spare, len) = (&mut self.spare, self.len);
        self.ring.complete(|c| {
            if c.res < 0 {
                stats.tx_errors += 1;
            } else {
                stats.tx_packets += 1;
                stats.tx_bytes += c.res as u64;
            }
            if let Some(mut buf) = c.into_data() {
                if buf.capacity() >= len {
                    // SAFETY: transmit buffers are allocated zeroed at their full
                    // length and only ever shortened before a write, which reads them;
                    // every byte up to the full length therefore stays initialised.
                    unsafe { buf.set_len(len) };
                    spare.push(buf);
                }
            }
        });
    }
}

impl TunDevice {
    /// Wraps `tun`, reading its MTU, with the default I/O ([`TunIo::Batched`]).
    pub fn new(tun: Tun) -> io::Result<TunDevice> {
        TunDevice::with_io(tun, TunIo::default())
    }

    /// Wraps `tun`, reading its MTU, sending as `io` says.
    pub fn with_io(tun: Tun, io: TunIo) -> io::Result<TunDevice> {
        let mtu = tun.mtu().map_err(io::Error::other)? as usize;
        let offloaded = tun.is_offloaded();
        let tx_offload = if offloaded {
            TxOffload {
                checksum: true,
                segmentation: MAX_SUPER_SEGMENT.max(mtu),
            }
        } else {
            TxOffload::default()
        };
        let rx_len = if offloaded {
            OFFLOAD_MAX_PACKET
        } else {
            mtu.max(1500)
        };
        let headroom = if offloaded { VNET_HDR_LEN } else { 0 };
        let tx_len = headroom + tx_offload.segmentation.max(mtu);
        let tx = match io {
            TunIo::Direct => Tx::Direct(vec![0; tx_len]),
            TunIo::Batched { depth } => {
                let depth = depth.max(1);
                Tx::Batched(Box::new(TxRing {
                    ring: Ring::new(depth as u32).map_err(io::Error::from)?,
                    depth,
                    len: tx_len,
                    next: vec![0; tx_len],
                    spare: Vec::new(),
                    queued: 0,
                }))
            }
        };
        Ok(TunDevice {
            tun,
            caps: DeviceCaps { mtu, tx_offload },
            rx: vec![0; rx_len],
            tx,
            headroom,
            stats: DeviceStats::default(),
            held: None,
        })
    }

    /// The queue.
    pub fn tun(&self) -> &Tun {
        &self.tun
    }

    /// Keeps `guard` (a lock file) open as long as this device.
    pub fn hold(&mut self, guard: std::sync::Arc<std::fs::File>) {
        self.held = Some(guard);
    }
}

/// Writes one packet, given in pieces, to `tun` now, counting it.
fn write_now(tun: &Tun, packet: &[io::IoSlice<'_>], stats: &mut DeviceStats) -> io::Result<()> {
    stats.syscalls += 1;
    match tun.send_vectored(packet) {
        Ok(n) => {
            stats.tx_packets += 1;
            stats.tx_bytes += n as u64;
            Ok(())
        }
        Err(e) => {
            stats.tx_errors += 1;
            Err(e)
        }
    }
}

/// The virtio-net header asking the kernel to finish what `t` leaves undone.
fn vnet_header(t: &Transmit) -> VnetHeader {
    let mut h = VnetHeader::default();
    if t.partial_checksum {
        h.flags = VnetHeader::NEEDS_CSUM;
        // The stack sends no IPv4 options: TCP starts at 20, its checksum 16 further.
        h.csum_start = 20;
        h.csum_offset = 16;
    }
    if let Some(mss) = t.segment_size {
        h.gso_type = VnetHeader::GSO_TCPV4;
        h.gso_size = mss;
        h.hdr_len = t.header_len;
    }
    h
}

impl Device for TunDevice {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn receive(&mut self, _now: Instant) -> io::Result<Option<Received<'_>>> {
        self.stats.syscalls += 1;
        let n = match self.tun.recv(&mut self.rx) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => {
                self.stats.rx_errors += 1;
                return Err(e);
            }
        };
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += n as u64;
        let frame = &self.rx[..n];
        if self.headroom == 0 {
            return Ok(Some(Received {
                packet: frame,
                checksum_trusted: false,
            }));
        }
        // Packets from the local kernel: a partial checksum is vouched for.
        let trusted = VnetHeader::parse(frame).is_some_and(|h| h.checksum_trusted());
        Ok(Some(Received {
            packet: frame.get(VNET_HDR_LEN..).unwrap_or(&[]),
            checksum_trusted: trusted,
        }))
    }

    fn transmit_buffer(&mut self) -> &mut [u8] {
        let h = self.headroom;
        match &mut self.tx {
            Tx::Direct(tx) => &mut tx[h..],
            Tx::Batched(r) => &mut r.next[h..],
        }
    }

    fn transmit(&mut self, t: Transmit, _now: Instant) -> io::Result<()> {
        let h = self.headroom;
        match &mut self.tx {
            Tx::Direct(tx) => {
                if h > 0 {
                    vnet_header(&t).write(&mut tx[..h]);
                }
                let packet = [io::IoSlice::new(&tx[..h + t.len])];
                write_now(&self.tun, &packet, &mut self.stats)
            }
            Tx::Batched(r) => {
                if h > 0 {
                    vnet_header(&t).write(&mut r.next[..h]);
                }
                if r.spare.is_empty() && r.queued >= r.depth {
                    // A full batch: send it, and get its buffers back.
                    r.submit(&mut self.stats)?;
                }
                r.settle(&mut self.stats)?;
                let next = r.spare.pop().unwrap_or_else(|| vec![0; r.len]);
                let mut buf = std::mem::replace(&mut r.next, next);
                buf.truncate(h + t.len);
                let fd = self.tun.as_raw_fd();
                // Linked, so the writes enter the kernel in order even if one of
                // them is handed to a kernel worker.
                r.ring
                    .push_linked(
                        Op::Write {
                            fd,
                            buf,
                            offset: None,
                        },
                        0,
                    )
                    .map_err(io::Error::from)?;
                r.queued += 1;
                Ok(())
            }
        }
    }

    /// [`TunIo::Direct`] writes every packet with `writev(2)` from where its pieces
    /// are; [`TunIo::Batched`] does so for a large payload, after the writes queued
    /// before it, and copies the others into the batch.
    fn transmit_gathered(&mut self, t: Transmit, g: Gathered<'_>, now: Instant) -> io::Result<()> {
        let payload = g.payload[0].len() + g.payload[1].len();
        if let Tx::Batched(r) = &mut self.tx {
            if payload < WRITE_IN_PLACE_MIN {
                // Into the batch, as the default does.
                copy_gathered(self.transmit_buffer(), g)?;
                return self.transmit(t, now);
            }
            // Packets leave in order: the queued writes and those in flight first.
            r.drain(&mut self.stats)?;
        }
        let mut vnet = [0u8; VNET_HDR_LEN];
        let vnet = &mut vnet[..self.headroom];
        if !vnet.is_empty() {
            vnet_header(&t).write(vnet);
        }
        let packet = [
            io::IoSlice::new(vnet),
            io::IoSlice::new(g.headers),
            io::IoSlice::new(g.payload[0]),
            io::IoSlice::new(g.payload[1]),
        ];
        write_now(&self.tun, &packet, &mut self.stats)
    }

    fn flush(&mut self, _now: Instant) -> io::Result<()> {
        match &mut self.tx {
            Tx::Direct(_) => Ok(()),
            Tx::Batched(r) => r.submit(&mut self.stats),
        }
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.tun.as_raw_fd())
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_asks_for_exactly_what_the_stack_left_undone() {
        let plain = Transmit {
            len: 60,
            segment_size: None,
            header_len: 60,
            partial_checksum: false,
        };
        assert_eq!(vnet_header(&plain), VnetHeader::default());
        let partial = Transmit {
            partial_checksum: true,
            ..plain
        };
        let h = vnet_header(&partial);
        assert_eq!(
            (h.flags, h.csum_start, h.csum_offset, h.gso_type),
            (VnetHeader::NEEDS_CSUM, 20, 16, 0)
        );
        let gso = Transmit {
            len: 40_052,
            segment_size: Some(1448),
            header_len: 52,
            partial_checksum: true,
        };
        let h = vnet_header(&gso);
        assert_eq!(
            (h.gso_type, h.gso_size, h.hdr_len),
            (VnetHeader::GSO_TCPV4, 1448, 52)
        );
    }
}
