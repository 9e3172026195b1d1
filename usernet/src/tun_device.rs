//! A TUN queue as a [`Device`]: the virtio-net framing of an offloaded queue, which
//! received checksums to trust, and what to ask of the kernel on transmit.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use iolib::tun::{Tun, VnetHeader, OFFLOAD_MAX_PACKET, VNET_HDR_LEN};
use tcpstack::{Transmit, TxOffload};

use crate::device::{Device, DeviceCaps, DeviceStats, Received};

/// Largest IPv4 packet (a TCP super-segment) handed to an offloaded queue.
const MAX_SUPER_SEGMENT: usize = 65_535;

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
    tx: Vec<u8>,
    stats: DeviceStats,
    /// The exclusive lock on the device, released with the last queue.
    held: Option<std::sync::Arc<std::fs::File>>,
}

impl TunDevice {
    /// Wraps `tun`, reading its MTU.
    pub fn new(tun: Tun) -> io::Result<TunDevice> {
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
        let tx_len = headroom(&tun) + tx_offload.segmentation.max(mtu);
        Ok(TunDevice {
            tun,
            caps: DeviceCaps { mtu, tx_offload },
            rx: vec![0; rx_len],
            tx: vec![0; tx_len],
            stats: DeviceStats::default(),
            held: None,
        })
    }

    /// Keeps `guard` (a lock file) open as long as this device.
    pub fn hold(&mut self, guard: std::sync::Arc<std::fs::File>) {
        self.held = Some(guard);
    }

    /// The queue.
    pub fn tun(&self) -> &Tun {
        &self.tun
    }
}

/// Bytes in front of every packet on `tun`: the virtio-net header when offloaded.
fn headroom(tun: &Tun) -> usize {
    if tun.is_offloaded() {
        VNET_HDR_LEN
    } else {
        0
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
        if !self.tun.is_offloaded() {
            return Ok(Some(Received {
                packet: &self.rx[..n],
                checksum_trusted: false,
            }));
        }
        // Packets from the local kernel: a partial checksum is vouched for.
        let trusted = VnetHeader::parse(&self.rx[..n]).is_some_and(|h| h.checksum_trusted());
        Ok(Some(Received {
            packet: self.rx.get(VNET_HDR_LEN..n).unwrap_or(&[]),
            checksum_trusted: trusted,
        }))
    }

    fn transmit_buffer(&mut self) -> &mut [u8] {
        let h = headroom(&self.tun);
        &mut self.tx[h..]
    }

    fn transmit(&mut self, t: Transmit, _now: Instant) -> io::Result<()> {
        let h = headroom(&self.tun);
        if h > 0 {
            vnet_header(&t).write(&mut self.tx[..h]);
        }
        self.stats.syscalls += 1;
        match self.tun.send(&self.tx[..h + t.len]) {
            Ok(_) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += t.len as u64;
                Ok(())
            }
            Err(e) => {
                self.stats.tx_errors += 1;
                Err(e)
            }
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
