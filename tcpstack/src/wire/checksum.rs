//! The Internet checksum (RFC 1071), computed eight bytes at a time.
//!
//! The ones'-complement sum is byte-order independent (RFC 1071 section 2(B)), so the
//! data is summed as native-endian 32-bit words into a 64-bit accumulator and the result
//! is swapped to network order once at the end.

use core::net::Ipv4Addr;

/// Ones'-complement sum of `data` (not complemented), in network byte order.
pub fn sum(data: &[u8]) -> u16 {
    fold(partial(data, 0))
}

/// Adds `data` to a running 64-bit accumulator `acc` (native-endian word sum).
pub fn partial(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Split into two 32-bit halves so that the carry never overflows the accumulator.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 2 <= rest.len() {
        acc += u64::from(u16::from_ne_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        // A trailing odd byte is padded with a zero byte on the right (network order).
        acc += u64::from(u16::from_ne_bytes([rest[i], 0]));
    }
    acc
}

/// Folds a native-endian accumulator into a 16-bit sum in network byte order.
pub fn fold(acc: u64) -> u16 {
    u16::from_be(fold_native(acc))
}

/// Folds a native-endian accumulator into a native-endian 16-bit sum.
fn fold_native(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Accumulator value of the IPv4 pseudo-header for a transport segment.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    let s = src.octets();
    let d = dst.octets();
    let l = len.to_be_bytes();
    partial(
        &[
            s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], 0, protocol, l[0], l[1],
        ],
        0,
    )
}

/// The checksum field value for `data` with the pseudo-header accumulator `pseudo`
/// (the complement of the sum).
pub fn finish(pseudo: u64, data: &[u8]) -> u16 {
    !fold(partial(data, pseudo))
}

/// [`finish`] over data held in pieces of any lengths, as if they were one slice.
pub fn finish_parts(pseudo: u64, parts: &[&[u8]]) -> u16 {
    let mut acc = pseudo;
    let mut odd = false;
    for part in parts {
        if odd {
            // A piece that starts at an odd offset pairs its bytes the other way round:
            // its sum, byte-swapped, is what it adds (RFC 1071 section 2(B)).
            acc += u64::from(fold_native(partial(part, 0)).swap_bytes());
        } else {
            acc = partial(part, acc);
        }
        odd ^= part.len() % 2 == 1;
    }
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 taken literally: big-endian 16-bit words, end-around carry.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn matches_the_reference_on_all_lengths_and_alignments() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..data.len() - start {
                let d = &data[start..start + len];
                assert_eq!(sum(d), reference(d), "start {start} len {len}");
            }
        }
        let ones = vec![0xffu8; 4096];
        assert_eq!(sum(&ones), reference(&ones));
    }

    #[test]
    fn a_sum_over_pieces_is_the_sum_over_their_concatenation() {
        let data: Vec<u8> = (0..257u32).map(|i| (i * 31 + 11) as u8).collect();
        let pseudo = pseudo_header(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            6,
            data.len() as u16,
        );
        for len in [0, 1, 2, 3, 9, 64, 255, 257] {
            let d = &data[..len];
            let whole = finish(pseudo, d);
            for i in 0..=len {
                for j in i..=len {
                    let parts = [&d[..i], &d[i..j], &d[j..]];
                    assert_eq!(finish_parts(pseudo, &parts), whole, "len {len} at {i}, {j}");
                }
            }
        }
    }

    #[test]
    fn emitted_tcp_checksums_verify_with_smoltcp() {
        use smoltcp::wire::{Ipv4Packet, TcpPacket};
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(192, 168, 200, 254);
        let seg = crate::wire::SegmentOut {
            src: a,
            dst: b,
            src_port: 1234,
            dst_port: 80,
            seq: crate::SeqNum(u32::MAX - 3),
            ack: crate::SeqNum(77),
            flags: crate::wire::flags::ACK | crate::wire::flags::PSH,
            window: 4096,
            mss: None,
            wscale: None,
            sack_permitted: false,
            timestamp: Some((1, 2)),
            sack_blocks: &[(crate::SeqNum(100), crate::SeqNum(200))],
            ttl: 64,
            partial_checksum: false,
        };
        let mut buf = [0u8; 200];
        let n = seg.emit(&mut buf, 33, |p| p.fill(0xa5));
        let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&a.into(), &b.into()));
        assert_eq!(tcp.payload(), &[0xa5; 33][..]);
    }
}
