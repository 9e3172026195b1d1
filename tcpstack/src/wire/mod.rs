//! Parsing and emitting IPv4, TCP and ICMPv4 packets.
//!
//! Field access and option encoding use smoltcp's `wire` module; validation is strict
//! and every rejection is a [`DropReason`] the stack counts. TCP options are parsed here
//! rather than through `smoltcp::wire::TcpRepr`, which clamps some values silently,
//! keeps at most three SACK blocks and cannot represent flag combinations the stack must
//! see in order to count them (SYN+FIN, SYN+RST).

pub mod checksum;
mod offload;
mod options;

pub use offload::{finish_offload, OffloadError};
pub use options::{parse_options, OptionError, TcpOptions, MAX_SACK_BLOCKS};

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::{
    IpProtocol, Ipv4Packet, TcpOption, TcpPacket, TcpSeqNumber, IPV4_HEADER_LEN, TCP_HEADER_LEN,
};

use crate::counters::DropReason;
use crate::SeqNum;

/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// IP protocol number of ICMP.
const PROTO_ICMP: u8 = 1;

/// TCP header flags, as the low byte of the flags field.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
}

/// A validated IPv4 packet addressed to the stack.
#[derive(Debug)]
pub(crate) enum Ingress<'a> {
    /// A TCP segment.
    Tcp { src: Ipv4Addr, seg: Segment<'a> },
    /// An ICMP echo request to answer.
    EchoRequest {
        src: Ipv4Addr,
        /// The whole ICMP message (type, code, checksum, ident, seq, data).
        icmp: &'a [u8],
    },
    /// ICMP "fragmentation needed" (type 3 code 4, RFC 1191) about a TCP segment the
    /// stack sent: the next hop's MTU, and the segment's connection and sequence
    /// number as quoted.
    FragNeeded {
        mtu: u16,
        local_port: u16,
        remote: SocketAddrV4,
        seq: SeqNum,
    },
    /// Any other valid ICMP message (ignored, counted).
    OtherIcmp,
}

/// A parsed and checksum-verified TCP segment.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNum,
    /// Acknowledgment number (meaningful only with [`flags::ACK`]).
    pub ack: SeqNum,
    /// Flag bits ([`flags`]).
    pub flags: u8,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// Options.
    pub opts: TcpOptions,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Whether every flag in `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }

    /// Length in sequence space: payload plus one each for SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.has(flags::SYN))
            + u32::from(self.has(flags::FIN))
    }
}

/// A one-line summary of a packet for logs and traces, without validating it:
/// `sport->dport [flags] seq=.. ack=.. win=.. len=..` for TCP over IPv4 (flags as
/// tcpdump prints them, `F` `S` `R` `P` `.`; `len` the payload length), and
/// `non-TCP N bytes` for anything shorter or else. Any bytes give a line, never a panic.
pub fn describe(packet: &[u8]) -> String {
    let ihl = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
    let Some(tcp) = packet
        .get(ihl..)
        .filter(|t| t.len() >= TCP_HEADER_LEN && packet.get(9) == Some(&PROTO_TCP))
    else {
        return format!("non-TCP {} bytes", packet.len());
    };
    let tcp = TcpPacket::new_unchecked(tcp);
    let f: String = [
        (flags::FIN, 'F'),
        (flags::SYN, 'S'),
        (flags::RST, 'R'),
        (flags::PSH, 'P'),
        (flags::ACK, '.'),
    ]
    .iter()
    .filter(|(bit, _)| tcp.as_ref()[13] & bit != 0)
    .map(|&(_, c)| c)
    .collect();
    let payload = tcp
        .as_ref()
        .len()
        .saturating_sub(usize::from(tcp.header_len()));
    format!(
        "{}->{} [{f}] seq={} ack={} win={} len={payload}",
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number().0 as u32,
        tcp.ack_number().0 as u32,
        tcp.window_len(),
    )
}

/// Validates an IPv4 packet addressed to `local` and classifies its payload.
#[cfg(test)]
pub(crate) fn parse(packet: &[u8], local: Ipv4Addr) -> Result<Ingress<'_>, DropReason> {
    parse_with(packet, local, true)
}

/// [`parse`], verifying the TCP checksum only if `verify_tcp_checksum` (the device
/// may have verified it, or vouch for a locally generated packet).
pub(crate) fn parse_with(
    packet: &[u8],
    local: Ipv4Addr,
    verify_tcp_checksum: bool,
) -> Result<Ingress<'_>, DropReason> {
    if packet.len() < IPV4_HEADER_LEN {
        return Err(DropReason::IpTruncated);
    }
    let ip = Ipv4Packet::new_unchecked(packet);
    if ip.version() != 4 {
        return Err(DropReason::IpBadVersion);
    }
    let ihl = usize::from(ip.header_len());
    if ihl < IPV4_HEADER_LEN || ihl > packet.len() {
        return Err(DropReason::IpBadHeaderLen);
    }
    let total = usize::from(ip.total_len());
    if total < ihl || total > packet.len() {
        return Err(DropReason::IpBadTotalLen);
    }
    if checksum::sum(&packet[..ihl]) != 0xffff {
        return Err(DropReason::IpBadChecksum);
    }
    if ip.dst_addr() != local {
        return Err(DropReason::IpWrongDestination);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::IpFragment);
    }
    let src = ip.src_addr();
    if martian(src, local) {
        return Err(DropReason::IpBadSource);
    }
    // Trailing bytes beyond the total length (link padding) are ignored.
    let payload = &packet[ihl..total];
    match u8::from(ip.next_header()) {
        PROTO_TCP => {
            parse_tcp(payload, src, local, verify_tcp_checksum).map(|seg| Ingress::Tcp { src, seg })
        }
        PROTO_ICMP => parse_icmp(payload, src, local),
        _ => Err(DropReason::IpUnknownProtocol),
    }
}

fn parse_tcp(
    data: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    verify_checksum: bool,
) -> Result<Segment<'_>, DropReason> {
    if data.len() < TCP_HEADER_LEN {
        return Err(DropReason::TcpTruncated);
    }
    let tcp = TcpPacket::new_unchecked(data);
    let hl = usize::from(tcp.header_len());
    if hl < TCP_HEADER_LEN || hl > data.len() {
        return Err(DropReason::TcpBadDataOffset);
    }
    let Ok(len) = u16::try_from(data.len()) else {
        return Err(DropReason::TcpTruncated);
    };
    if verify_checksum
        && checksum::finish(checksum::pseudo_header(src, dst, PROTO_TCP, len), data) != 0
    {
        return Err(DropReason::TcpBadChecksum);
    }
    let (src_port, dst_port) = (tcp.src_port(), tcp.dst_port());
    if src_port == 0 || dst_port == 0 {
        return Err(DropReason::TcpBadPort);
    }
    let flags = data[13] & 0x3f;
    if flags & flags::SYN != 0 && flags & (flags::FIN | flags::RST) != 0 {
        return Err(DropReason::TcpBadFlags);
    }
    let opts = parse_options(&data[TCP_HEADER_LEN..hl]).map_err(|_| DropReason::TcpBadOptions)?;
    Ok(Segment {
        src_port,
        dst_port,
        seq: SeqNum(tcp.seq_number().0 as u32),
        ack: SeqNum(tcp.ack_number().0 as u32),
        flags,
        window: tcp.window_len(),
        opts,
        payload: &data[hl..],
    })
}

fn parse_icmp(data: &[u8], src: Ipv4Addr, local: Ipv4Addr) -> Result<Ingress<'_>, DropReason> {
    if data.len() < 8 {
        return Err(DropReason::IcmpTruncated);
    }
    if checksum::sum(data) != 0xffff {
        return Err(DropReason::IcmpBadChecksum);
    }
    match (data[0], data[1]) {
        // Echo request.
        (8, 0) => Ok(Ingress::EchoRequest { src, icmp: data }),
        // Destination unreachable, fragmentation needed and DF set.
        (3, 4) => Ok(frag_needed(data, local).unwrap_or(Ingress::OtherIcmp)),
        _ => Ok(Ingress::OtherIcmp),
    }
}

/// The "fragmentation needed" message `icmp` (RFC 1191 section 4: the next-hop MTU in
/// its last two header bytes, then the IP header and at least 8 bytes of the TCP
/// header of the packet that did not fit), if it quotes a TCP segment from `local`
/// and names an MTU.
fn frag_needed(icmp: &[u8], local: Ipv4Addr) -> Option<Ingress<'_>> {
    let mtu = u16::from_be_bytes([icmp[6], icmp[7]]);
    let quoted = &icmp[8..];
    if mtu == 0 || quoted.len() < IPV4_HEADER_LEN {
        return None;
    }
    // Only the quoted headers are there, so the packets are read unchecked, after
    // the lengths their fields are read from are checked here.
    let ip = Ipv4Packet::new_unchecked(quoted);
    let ihl = usize::from(ip.header_len());
    let quoted_tcp = ip.version() == 4
        && ihl >= IPV4_HEADER_LEN
        && quoted.len() >= ihl + 8
        && u8::from(ip.next_header()) == PROTO_TCP;
    if !quoted_tcp || ip.src_addr() != local {
        return None;
    }
    // Ports and sequence number: the first 8 bytes of the TCP header.
    let tcp = TcpPacket::new_unchecked(&quoted[ihl..]);
    Some(Ingress::FragNeeded {
        mtu,
        local_port: tcp.src_port(),
        remote: SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
        seq: SeqNum(tcp.seq_number().0 as u32),
    })
}

/// Whether `src` can be no peer's address for a stack at `local` (RFC 1122 section
/// 3.2.1.3, RFC 1812 section 5.3.7): broadcast, multicast, "this network" (0/8),
/// the reserved 240/4, loopback (unless the stack's own address is), or the stack's
/// own address.
fn martian(src: Ipv4Addr, local: Ipv4Addr) -> bool {
    let first = src.octets()[0];
    src.is_broadcast()
        || src.is_multicast()
        || first == 0
        || first >= 240
        || (src.is_loopback() && !local.is_loopback())
        || src == local
}

/// Writes a 20-byte IPv4 header for a packet of `total_len` bytes (header included).
fn emit_ipv4(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, total_len: u16, ttl: u8) {
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..IPV4_HEADER_LEN]);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN as u8);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_len(total_len);
    // Atomic datagrams (DF set, no fragmentation) may carry any ID (RFC 6864).
    ip.set_ident(0);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_frag_offset(0);
    ip.set_hop_limit(ttl);
    ip.set_next_header(IpProtocol::from(proto));
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.set_checksum(0);
    let c = !checksum::sum(&buf[..IPV4_HEADER_LEN]);
    buf[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An outgoing TCP segment header; the payload is written by the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentOut<'s> {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamp: Option<(u32, u32)>,
    pub sack_blocks: &'s [(SeqNum, SeqNum)],
    pub ttl: u8,
    /// Leave the TCP checksum partial: the pseudo-header sum only, for a device with
    /// checksum offload to finish over the segment.
    pub partial_checksum: bool,
}

impl SegmentOut<'_> {
    /// Bytes of TCP options this header carries, padded to a multiple of four.
    pub fn options_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.wscale.is_some() {
            n += 4; // NOP + 3
        }
        if self.sack_permitted {
            n += 2;
        }
        if self.timestamp.is_some() {
            n += if self.sack_permitted { 10 } else { 12 }; // NOP NOP + 10
        }
        if !self.sack_blocks.is_empty() {
            n += 4 + 8 * self.sack_blocks.len(); // NOP NOP + 2 + 8n
        }
        (n + 3) & !3
    }

    /// Length of the IPv4 and TCP headers together.
    pub fn headers_len(&self) -> usize {
        IPV4_HEADER_LEN + TCP_HEADER_LEN + self.options_len()
    }

    /// Emits the packet into `buf`: headers, then `payload_len` bytes that
    /// `write_payload` copies into the slice it is given. Returns the packet length.
    ///
    /// The caller guarantees `buf.len() >= self.headers_len() + payload_len` and
    /// that the total fits an IPv4 packet.
    pub fn emit(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        write_payload: impl FnOnce(&mut [u8]),
    ) -> usize {
        let (head, rest) = buf.split_at_mut(self.headers_len());
        let payload = &mut rest[..payload_len];
        write_payload(payload);
        self.emit_headers(head, [payload, &[]]) + payload_len
    }

    /// Writes the IPv4 and TCP headers of the segment carrying `payload` (its pieces in
    /// order) into `buf`, which the payload follows on the wire wherever it is kept.
    /// Returns the headers' length.
    ///
    /// The caller guarantees `buf.len() >= self.headers_len()` and that headers and
    /// payload together fit an IPv4 packet.
    pub fn emit_headers(&self, buf: &mut [u8], payload: [&[u8]; 2]) -> usize {
        let hl = self.headers_len();
        let total = hl + payload[0].len() + payload[1].len();
        debug_assert!(buf.len() >= hl && total <= usize::from(u16::MAX));
        let tcp_len = total - IPV4_HEADER_LEN;
        emit_ipv4(buf, self.src, self.dst, PROTO_TCP, total as u16, self.ttl);
        let seg = &mut buf[IPV4_HEADER_LEN..hl];
        {
            let mut tcp = TcpPacket::new_unchecked(&mut *seg);
            tcp.set_src_port(self.src_port);
            tcp.set_dst_port(self.dst_port);
            tcp.set_seq_number(TcpSeqNumber(self.seq.0 as i32));
            tcp.set_ack_number(TcpSeqNumber(self.ack.0 as i32));
            tcp.set_header_len((TCP_HEADER_LEN + self.options_len()) as u8);
            tcp.clear_flags();
            tcp.set_window_len(self.window);
            tcp.set_checksum(0);
            tcp.set_urgent_at(0);
        }
        seg[13] = self.flags;
        self.emit_options(&mut seg[TCP_HEADER_LEN..]);
        let pseudo = checksum::pseudo_header(self.src, self.dst, PROTO_TCP, tcp_len as u16);
        let c = if self.partial_checksum {
            checksum::fold(pseudo)
        } else {
            checksum::finish_parts(pseudo, &[seg, payload[0], payload[1]])
        };
        seg[16..18].copy_from_slice(&c.to_be_bytes());
        hl
    }

    fn emit_options(&self, mut out: &mut [u8]) {
        if let Some(mss) = self.mss {
            out = TcpOption::MaxSegmentSize(mss).emit(out);
        }
        if let Some(ws) = self.wscale {
            out = TcpOption::NoOperation.emit(out);
            out = TcpOption::WindowScale(ws).emit(out);
        }
        if self.sack_permitted {
            out = TcpOption::SackPermitted.emit(out);
        }
        if let Some((tsval, tsecr)) = self.timestamp {
            if !self.sack_permitted {
                out = TcpOption::NoOperation.emit(out);
                out = TcpOption::NoOperation.emit(out);
            }
            out = TcpOption::TimeStamp { tsval, tsecr }.emit(out);
        }
        if !self.sack_blocks.is_empty() {
            out = TcpOption::NoOperation.emit(out);
            out = TcpOption::NoOperation.emit(out);
            out[0] = 5;
            out[1] = (2 + 8 * self.sack_blocks.len()) as u8;
            let mut at = 2;
            for &(l, r) in self.sack_blocks {
                out[at..at + 4].copy_from_slice(&l.0.to_be_bytes());
                out[at + 4..at + 8].copy_from_slice(&r.0.to_be_bytes());
                at += 8;
            }
            out = &mut out[at..];
        }
        if !out.is_empty() {
            TcpOption::EndOfList.emit(out);
        }
    }
}

/// Emits an ICMP echo reply to `request` (a whole ICMP echo request message).
/// Returns the packet length, or `None` if `buf` is too small.
pub(crate) fn emit_echo_reply(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    request: &[u8],
    ttl: u8,
) -> Option<usize> {
    let total = IPV4_HEADER_LEN + request.len();
    if buf.len() < total || total > usize::from(u16::MAX) {
        return None;
    }
    emit_ipv4(buf, src, dst, PROTO_ICMP, total as u16, ttl);
    let icmp = &mut buf[IPV4_HEADER_LEN..total];
    icmp.copy_from_slice(request);
    icmp[0] = 0; // echo reply
    icmp[1] = 0;
    icmp[2] = 0;
    icmp[3] = 0;
    let c = !checksum::sum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

#[cfg(test)]
mod tests;
