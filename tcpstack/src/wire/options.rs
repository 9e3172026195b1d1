//! TCP option parsing (RFC 9293 section 3.1, RFC 7323, RFC 2018).

use crate::inline_vec::InlineVec;
use crate::SeqNum;

/// Most SACK blocks one option can carry (40 option bytes: 2 + 4 * 8 = 34).
pub const MAX_SACK_BLOCKS: usize = 4;

/// The options of one TCP segment that the stack understands. Unknown options are
/// skipped; a repeated option keeps its last value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2), as sent.
    pub mss: Option<u16>,
    /// Window scale shift (kind 3), as sent; values over 14 are clamped by the receiver.
    pub wscale: Option<u8>,
    /// SACK permitted (kind 4).
    pub sack_permitted: bool,
    /// Timestamps (kind 8): `(TSval, TSecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks (kind 5), `[left, right)` pairs, in the order sent.
    pub sack_blocks: InlineVec<(SeqNum, SeqNum), MAX_SACK_BLOCKS>,
}

/// Why an options field was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// An option's length byte is missing.
    #[error("option length byte missing")]
    MissingLength,
    /// An option's length is below 2 (which would loop forever or overlap).
    #[error("option length {0} below 2")]
    LengthTooSmall(u8),
    /// An option's length runs past the end of the options field.
    #[error("option runs past the end of the header")]
    Overrun,
    /// A known option has the wrong length for its kind.
    #[error("option kind {kind} with invalid length {len}")]
    BadLength {
        /// Option kind.
        kind: u8,
        /// Its length byte.
        len: u8,
    },
}

/// Parses the options area of a TCP header (the bytes between the fixed header and the
/// data offset).
pub fn parse_options(mut data: &[u8]) -> Result<TcpOptions, OptionError> {
    let mut o = TcpOptions::default();
    while let Some(&kind) = data.first() {
        match kind {
            0 => break,
            1 => {
                data = &data[1..];
                continue;
            }
            _ => {}
        }
        let len = *data.get(1).ok_or(OptionError::MissingLength)?;
        if len < 2 {
            return Err(OptionError::LengthTooSmall(len));
        }
        let body = data.get(2..usize::from(len)).ok_or(OptionError::Overrun)?;
        let bad = OptionError::BadLength { kind, len };
        match kind {
            2 => {
                let b: [u8; 2] = body.try_into().map_err(|_| bad)?;
                o.mss = Some(u16::from_be_bytes(b));
            }
            3 => {
                let [ws] = body else { return Err(bad) };
                o.wscale = Some(*ws);
            }
            4 => {
                if !body.is_empty() {
                    return Err(bad);
                }
                o.sack_permitted = true;
            }
            5 => {
                if body.is_empty() || body.len() % 8 != 0 || body.len() / 8 > MAX_SACK_BLOCKS {
                    return Err(bad);
                }
                // A repeated option replaces the earlier one entirely.
                o.sack_blocks.clear();
                for b in body.chunks_exact(8) {
                    let l = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                    let r = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                    o.sack_blocks
                        .push((SeqNum(l), SeqNum(r)))
                        .map_err(|_| bad)?;
                }
            }
            8 => {
                if body.len() != 8 {
                    return Err(bad);
                }
                let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                o.timestamp = Some((v, e));
            }
            _ => {}
        }
        data = &data[usize::from(len)..];
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_linux_syn() {
        // MSS 1460, SACK permitted, TS, NOP, WS 7.
        let opts = [
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let o = parse_options(&opts).unwrap();
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamp, Some((1, 0)));
        assert_eq!(o.wscale, Some(7));
    }

    #[test]
    fn parses_four_sack_blocks_and_stops_at_end_of_list() {
        let mut opts = vec![5, 34];
        for i in 0..8u32 {
            opts.extend_from_slice(&(i * 100).to_be_bytes());
        }
        opts.extend_from_slice(&[0, 2, 4, 0xff]); // EOL then garbage, ignored
        let o = parse_options(&opts).unwrap();
        assert_eq!(o.sack_blocks.len(), 4);
        assert_eq!(o.sack_blocks[3], (SeqNum(600), SeqNum(700)));
        assert_eq!(o.mss, None);
    }

    #[test]
    fn rejects_malformed_lengths() {
        assert_eq!(parse_options(&[2]), Err(OptionError::MissingLength));
        assert_eq!(parse_options(&[2, 0]), Err(OptionError::LengthTooSmall(0)));
        assert_eq!(parse_options(&[99, 1]), Err(OptionError::LengthTooSmall(1)));
        assert_eq!(parse_options(&[2, 4, 5]), Err(OptionError::Overrun));
        assert_eq!(parse_options(&[1, 1, 8, 40, 0]), Err(OptionError::Overrun));
        assert_eq!(
            parse_options(&[2, 3, 5]),
            Err(OptionError::BadLength { kind: 2, len: 3 })
        );
        assert_eq!(
            parse_options(&[5, 6, 0, 0, 0, 0]),
            Err(OptionError::BadLength { kind: 5, len: 6 })
        );
        assert_eq!(
            parse_options(&[8, 8, 0, 0, 0, 0, 0, 0]),
            Err(OptionError::BadLength { kind: 8, len: 8 })
        );
    }

    #[test]
    fn skips_unknown_options_and_keeps_raw_window_scale() {
        let o = parse_options(&[30, 4, 9, 9, 3, 3, 15, 1]).unwrap();
        assert_eq!(o.wscale, Some(15));
        assert_eq!(parse_options(&[]).unwrap(), TcpOptions::default());
    }
}
