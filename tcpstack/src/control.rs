//! Stateless outgoing packets: RSTs, ICMP echo replies and SYN-cookie SYN-ACKs.

use core::net::Ipv4Addr;

use crate::isn::FourTuple;
use crate::wire::{self, flags, SegmentOut};
use crate::SeqNum;

/// A queued control packet, emitted by `poll_transmit` before connection data.
#[derive(Debug, Clone)]
pub(crate) enum Control {
    /// A reset: `<SEQ=seq><CTL=RST>` or, with `ack`, `<SEQ=seq><ACK=ack><CTL=RST,ACK>`.
    Rst {
        tuple: FourTuple,
        seq: SeqNum,
        ack: Option<SeqNum>,
    },
    /// An ICMP echo reply carrying the request's identifier, sequence and data.
    EchoReply { dst: Ipv4Addr, request: Box<[u8]> },
    /// A SYN-ACK whose ISN is a SYN cookie.
    CookieSynAck {
        tuple: FourTuple,
        iss: SeqNum,
        ack: SeqNum,
        window: u16,
        mss: u16,
        wscale: Option<u8>,
        sack: bool,
        timestamp: Option<(u32, u32)>,
    },
}

impl Control {
    /// Emits into `buf`; `None` when `buf` is too small (the packet is then dropped).
    /// `local` is the stack's address (the source of echo replies).
    pub fn emit(&self, buf: &mut [u8], local: Ipv4Addr, ttl: u8) -> Option<usize> {
        match self {
            Control::Rst { tuple, seq, ack } => {
                let out = SegmentOut {
                    src: *tuple.local.ip(),
                    dst: *tuple.remote.ip(),
                    src_port: tuple.local.port(),
                    dst_port: tuple.remote.port(),
                    seq: *seq,
                    ack: ack.unwrap_or_default(),
                    flags: flags::RST | if ack.is_some() { flags::ACK } else { 0 },
                    window: 0,
                    mss: None,
                    wscale: None,
                    sack_permitted: false,
                    timestamp: None,
                    sack_blocks: &[],
                    ttl,
                    partial_checksum: false,
                };
                (buf.len() >= out.headers_len()).then(|| out.emit(buf, 0, |_| {}))
            }
            Control::EchoReply { dst, request } => {
                wire::emit_echo_reply(buf, local, *dst, request, ttl)
            }
            Control::CookieSynAck {
                tuple,
                iss,
                ack,
                window,
                mss,
                wscale,
                sack,
                timestamp,
            } => {
                let out = SegmentOut {
                    src: *tuple.local.ip(),
                    dst: *tuple.remote.ip(),
                    src_port: tuple.local.port(),
                    dst_port: tuple.remote.port(),
                    seq: *iss,
                    ack: *ack,
                    flags: flags::SYN | flags::ACK,
                    window: *window,
                    mss: Some(*mss),
                    wscale: *wscale,
                    sack_permitted: *sack,
                    timestamp: *timestamp,
                    sack_blocks: &[],
                    ttl,
                    partial_checksum: false,
                };
                (buf.len() >= out.headers_len()).then(|| out.emit(buf, 0, |_| {}))
            }
        }
    }
}
