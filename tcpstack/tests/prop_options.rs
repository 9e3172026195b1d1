//! Property tests: TCP option parsing against an independent encoder, arbitrary bytes
//! never panic, and the Internet checksum against RFC 1071 taken literally.

use proptest::prelude::*;
use tcpstack::wire::{checksum, parse_options, TcpOptions, MAX_SACK_BLOCKS};
use tcpstack::SeqNum;

#[derive(Debug, Clone)]
enum Opt {
    Nop,
    Mss(u16),
    Wscale(u8),
    SackPermitted,
    Timestamp(u32, u32),
    Sack(Vec<(u32, u32)>),
    /// An unknown kind with a body.
    Unknown(u8, Vec<u8>),
}

fn opt() -> impl Strategy<Value = Opt> {
    prop_oneof![
        Just(Opt::Nop),
        any::<u16>().prop_map(Opt::Mss),
        any::<u8>().prop_map(Opt::Wscale),
        Just(Opt::SackPermitted),
        (any::<u32>(), any::<u32>()).prop_map(|(v, e)| Opt::Timestamp(v, e)),
        prop::collection::vec((any::<u32>(), any::<u32>()), 1..=MAX_SACK_BLOCKS)
            .prop_map(Opt::Sack),
        (
            (9u8..=254).prop_filter("known kind", |k| ![0, 1, 2, 3, 4, 5, 8].contains(k)),
            prop::collection::vec(any::<u8>(), 0..6)
        )
            .prop_map(|(k, b)| Opt::Unknown(k, b)),
    ]
}

fn encode(opts: &[Opt]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in opts {
        match o {
            Opt::Nop => out.push(1),
            Opt::Mss(m) => {
                out.extend_from_slice(&[2, 4]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            Opt::Wscale(s) => out.extend_from_slice(&[3, 3, *s]),
            Opt::SackPermitted => out.extend_from_slice(&[4, 2]),
            Opt::Timestamp(v, e) => {
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&v.to_be_bytes());
                out.extend_from_slice(&e.to_be_bytes());
            }
            Opt::Sack(blocks) => {
                out.extend_from_slice(&[5, (2 + 8 * blocks.len()) as u8]);
                for (l, r) in blocks {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            Opt::Unknown(k, body) => {
                out.extend_from_slice(&[*k, (2 + body.len()) as u8]);
                out.extend_from_slice(body);
            }
        }
    }
    out
}

/// What the parser should report: the last value of each option wins.
fn model(opts: &[Opt]) -> TcpOptions {
    let mut m = TcpOptions::default();
    for o in opts {
        match o {
            Opt::Mss(v) => m.mss = Some(*v),
            Opt::Wscale(s) => m.wscale = Some(*s),
            Opt::SackPermitted => m.sack_permitted = true,
            Opt::Timestamp(v, e) => m.timestamp = Some((*v, *e)),
            Opt::Sack(blocks) => {
                m.sack_blocks.clear();
                for &(l, r) in blocks {
                    m.sack_blocks.push((SeqNum(l), SeqNum(r))).unwrap();
                }
            }
            Opt::Nop | Opt::Unknown(..) => {}
        }
    }
    m
}

/// RFC 1071 taken literally: big-endian 16-bit words, end-around carry.
fn reference_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

proptest! {
    #[test]
    fn well_formed_options_parse_to_the_model(
        opts in prop::collection::vec(opt(), 0..8),
        trailer in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = encode(&opts);
        prop_assume!(bytes.len() <= 40);
        let parsed = parse_options(&bytes).unwrap();
        prop_assert_eq!(parsed, model(&opts));
        // After End of Option List anything may follow and is ignored.
        bytes.push(0);
        bytes.extend_from_slice(&trailer);
        prop_assert_eq!(parse_options(&bytes).unwrap(), model(&opts));
    }

    #[test]
    fn truncated_options_are_rejected_or_a_prefix(
        opts in prop::collection::vec(opt(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode(&opts);
        let cut = cut.index(bytes.len());
        // Cutting inside an option must not be silently accepted as something else:
        // either an error, or exactly the options that fit completely.
        let mut complete = Vec::new();
        let mut len = 0;
        for o in &opts {
            let n = encode(std::slice::from_ref(o)).len();
            if len + n > cut {
                break;
            }
            len += n;
            complete.push(o.clone());
        }
        match parse_options(&bytes[..cut]) {
            Ok(p) => {
                prop_assert_eq!(len, cut, "cut inside an option accepted");
                prop_assert_eq!(p, model(&complete));
            }
            Err(_) => prop_assert!(len < cut, "a clean cut was rejected"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..60)) {
        if let Ok(o) = parse_options(&bytes) {
            prop_assert!(o.sack_blocks.len() <= MAX_SACK_BLOCKS);
        }
    }

    #[test]
    fn checksum_matches_rfc1071(data in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(checksum::sum(&data), reference_sum(&data));
    }

    #[test]
    fn checksum_verifies_and_catches_single_bit_errors(
        mut data in prop::collection::vec(any::<u8>(), 2..200),
        bit in any::<prop::sample::Index>(),
    ) {
        // Reserve the first two bytes as the checksum field.
        data[0] = 0;
        data[1] = 0;
        let c = !checksum::sum(&data);
        data[..2].copy_from_slice(&c.to_be_bytes());
        prop_assert_eq!(checksum::sum(&data), 0xffff);
        let b = bit.index(data.len() * 8);
        data[b / 8] ^= 1 << (b % 8);
        prop_assert_ne!(checksum::sum(&data), 0xffff);
    }
}
