//! The packet-device interface the network loop drives: receive raw IPv4 packets,
//! transmit them (with whatever offload the device performs), and tell the scheduler
//! how to wait for the next one.
//!
//! Implemented by a TUN queue ([`TunDevice`](crate::TunDevice)) and by in-memory links;
//! wrappers such as [`Impaired`](crate::Impaired) add behaviour (loss, reordering)
//! without the loop knowing, as smoltcp's `phy` middleware does.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use tcpstack::{Gathered, Transmit, TxOffload};

/// What a device is and does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCaps {
    /// The largest IPv4 packet the link carries whole (its MTU).
    pub mtu: usize,
    /// What the device finishes on transmit; the stack is configured to match.
    pub tx_offload: TxOffload,
}

/// One received packet, borrowed from the device until the next call.
#[derive(Debug)]
pub struct Received<'a> {
    /// The IPv4 packet (possibly a TCP super-segment larger than the MTU, when the
    /// device receives with segmentation offload).
    pub packet: &'a [u8],
    /// The device verified, or vouches for, the transport checksum.
    pub checksum_trusted: bool,
}

/// Packet counts of a device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent (a super-segment counts once).
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the device refused or failed to send; TCP recovers them.
    pub tx_errors: u64,
    /// Receive failures other than "nothing waiting".
    pub rx_errors: u64,
    /// System calls made for I/O (reads, writes and batch submissions).
    pub syscalls: u64,
}

impl std::ops::AddAssign for DeviceStats {
    fn add_assign(&mut self, o: DeviceStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.rx_errors += o.rx_errors;
        self.syscalls += o.syscalls;
    }
}

/// A source and sink of raw IPv4 packets. Never blocks.
///
/// Times are instants on the clock of the core that drives the device (mock or real).
pub trait Device {
    /// What the device is and does; constant over its life.
    fn caps(&self) -> DeviceCaps;

    /// The next received packet, if one is waiting now.
    fn receive(&mut self, now: Instant) -> io::Result<Option<Received<'_>>>;

    /// Room for the next outgoing packet, written at the front (by the default
    /// [`Device::transmit_gathered`], or by a caller of
    /// [`Stack::poll_transmit`](tcpstack::Stack::poll_transmit)), then sent by
    /// [`Device::transmit`]. At least [`DeviceCaps::mtu`] bytes, or
    /// [`TxOffload::segmentation`] with segmentation offload; the network loop sends no
    /// packet longer than this buffer.
    fn transmit_buffer(&mut self) -> &mut [u8];

    /// Sends (or queues until [`Device::flush`]) the packet just written to the front
    /// of the transmit buffer, finishing what `t` says is left to the device.
    fn transmit(&mut self, t: Transmit, now: Instant) -> io::Result<()>;

    /// Sends (or queues) a packet given in pieces (from
    /// [`Stack::poll_transmit_gathered`](tcpstack::Stack::poll_transmit_gathered)), as
    /// [`Device::transmit`] sends one written into the transmit buffer. The pieces are
    /// borrowed only for the call. The default copies them into the transmit buffer
    /// and transmits that; a device that can send them where they are overrides it.
    fn transmit_gathered(&mut self, t: Transmit, g: Gathered<'_>, now: Instant) -> io::Result<()> {
        copy_gathered(self.transmit_buffer(), g)?;
        self.transmit(t, now)
    }

    /// Sends whatever [`Device::transmit`] and [`Device::transmit_gathered`] queued.
    fn flush(&mut self, _now: Instant) -> io::Result<()> {
        Ok(())
    }

    /// A descriptor that is readable while a packet waits; `None` for a device the
    /// loop must poll (an in-memory link, whose deliveries are timed by
    /// [`Device::next_deadline`]).
    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    /// When the device next has something to deliver or to do without being asked.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Counts so far.
    fn stats(&self) -> DeviceStats;
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn caps(&self) -> DeviceCaps {
        (**self).caps()
    }
    fn receive(&mut self, now: Instant) -> io::Result<Option<Received<'_>>> {
        (**self).receive(now)
    }
    fn transmit_buffer(&mut self) -> &mut [u8] {
        (**self).transmit_buffer()
    }
    fn transmit(&mut self, t: Transmit, now: Instant) -> io::Result<()> {
        (**self).transmit(t, now)
    }
    fn transmit_gathered(&mut self, t: Transmit, g: Gathered<'_>, now: Instant) -> io::Result<()> {
        (**self).transmit_gathered(t, g, now)
    }
    fn flush(&mut self, now: Instant) -> io::Result<()> {
        (**self).flush(now)
    }
    fn wake_fd(&self) -> Option<RawFd> {
        (**self).wake_fd()
    }
    fn next_deadline(&self) -> Option<Instant> {
        (**self).next_deadline()
    }
    fn stats(&self) -> DeviceStats {
        (**self).stats()
    }
}

/// Puts the pieces of `g` together at the front of `buf`; fails, copying nothing, when
/// they do not fit.
pub(crate) fn copy_gathered(buf: &mut [u8], g: Gathered<'_>) -> io::Result<()> {
    let pieces = [g.headers, g.payload[0], g.payload[1]];
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    if len > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {len}-byte packet does not fit a {}-byte transmit buffer",
                buf.len()
            ),
        ));
    }
    let mut at = 0;
    for piece in pieces {
        buf[at..at + piece.len()].copy_from_slice(piece);
        at += piece.len();
    }
    Ok(())
}
