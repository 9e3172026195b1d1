//! What a device with transmit offload does to the stack's packets, in software:
//! completing partial TCP checksums and cutting TCP super-segments into MSS-sized
//! segments (generic segmentation offload).
//!
//! A real device (a TUN queue with `IFF_VNET_HDR`, a NIC) does this itself; a device
//! without the offload, or a simulated link that must corrupt and check real wire
//! packets, uses [`finish_offload`].

use smoltcp::wire::{IPV4_HEADER_LEN, TCP_HEADER_LEN};

use super::checksum;
use super::flags;
use crate::Transmit;

/// Why [`finish_offload`] refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The packet is not an IPv4 packet carrying a TCP segment of the declared size.
    #[error("not a well-formed IPv4/TCP packet")]
    Malformed,
    /// `segment_size` is zero.
    #[error("zero segment size")]
    ZeroSegmentSize,
}

/// Hands `emit` the wire packets a device would send for `packet` (the first
/// `t.len` bytes the stack wrote, described by `t`): the packet itself with its TCP
/// checksum completed if it was partial, or, for a super-segment, one packet per
/// `segment_size` bytes of payload, each with its own sequence number, IPv4
/// identification and total length, both checksums complete, and FIN and PSH kept
/// only on the last. `scratch` holds each packet while `emit` looks at it.
pub fn finish_offload(
    packet: &[u8],
    t: Transmit,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    let packet = packet.get(..t.len).ok_or(OffloadError::Malformed)?;
    if !t.partial_checksum && t.segment_size.is_none() {
        emit(packet);
        return Ok(());
    }
    let ihl = usize::from(packet.first().ok_or(OffloadError::Malformed)? & 0x0f) * 4;
    let tcp = packet.get(ihl..).ok_or(OffloadError::Malformed)?;
    if ihl < IPV4_HEADER_LEN || packet[9] != 6 || tcp.len() < TCP_HEADER_LEN {
        return Err(OffloadError::Malformed);
    }
    let thl = usize::from(tcp[12] >> 4) * 4;
    if thl < TCP_HEADER_LEN || thl > tcp.len() {
        return Err(OffloadError::Malformed);
    }
    let headers = ihl + thl;
    let payload = &packet[headers..];
    let mss = match t.segment_size {
        Some(0) => return Err(OffloadError::ZeroSegmentSize),
        Some(n) => usize::from(n),
        None => payload.len().max(1),
    };
    let src = [packet[12], packet[13], packet[14], packet[15]].into();
    let dst = [packet[16], packet[17], packet[18], packet[19]].into();
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let last_flags = tcp[13];
    let chunks = payload.len().div_ceil(mss).max(1);
    for i in 0..chunks {
        let start = (i * mss).min(payload.len());
        let end = (start + mss).min(payload.len());
        let total = headers + end - start;
        scratch.clear();
        scratch.extend_from_slice(&packet[..headers]);
        scratch.extend_from_slice(&payload[start..end]);
        let p = &mut scratch[..];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        p[10] = 0;
        p[11] = 0;
        let c = !checksum::sum(&p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let seg = &mut p[ihl..];
        seg[4..8].copy_from_slice(&seq.wrapping_add(start as u32).to_be_bytes());
        if i + 1 < chunks {
            seg[13] = last_flags & !(flags::FIN | flags::PSH);
        }
        seg[16] = 0;
        seg[17] = 0;
        let pseudo = checksum::pseudo_header(src, dst, 6, (total - ihl) as u16);
        let c = checksum::finish(pseudo, seg);
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        emit(&scratch[..total]);
    }
    Ok(())
}
