//! Single byte ranges (RFC 9110 section 14).
//!
//! Policy: one range of `bytes=first-last`, `bytes=first-` or `bytes=-suffix` gives
//! 206; a range starting beyond the end (or an empty suffix, or any range of an empty
//! file) gives 416. A syntactically invalid header, another unit, or a last position
//! before the first is ignored (200 with the whole file, as RFC 9110 allows). Several
//! ranges are also answered with the whole file (200): a static file server gains
//! little from `multipart/byteranges`, and RFC 9110 section 14.2 lets a server ignore
//! `Range`.

use crate::request::{saturating_decimal, trim_ows};

/// What a `Range` header asks of a representation of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Ignore the header: serve the whole representation.
    Full,
    /// Serve bytes `first..=last` (206).
    Partial {
        /// First byte position.
        first: u64,
        /// Last byte position (inclusive), below the length.
        last: u64,
    },
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluates a `Range` header value against a representation of `len` bytes.
pub fn evaluate(value: &[u8], len: u64) -> RangeOutcome {
    let value = trim_ows(value);
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeOutcome::Full;
    };
    if !trim_ows(&value[..eq]).eq_ignore_ascii_case(b"bytes") {
        return RangeOutcome::Full;
    }
    let mut specs = value[eq + 1..]
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeOutcome::Full;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (trim_ows(&spec[..dash]), trim_ows(&spec[dash + 1..]));
    if first.is_empty() {
        let Some(suffix) = saturating_decimal(last) else {
            return RangeOutcome::Full;
        };
        if suffix == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            first: len.saturating_sub(suffix),
            last: len - 1,
        };
    }
    let Some(first) = saturating_decimal(first) else {
        return RangeOutcome::Full;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match saturating_decimal(last) {
            Some(last) if last >= first => last,
            _ => return RangeOutcome::Full,
        }
    };
    if first >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        first,
        last: last.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    fn p(first: u64, last: u64) -> RangeOutcome {
        Partial { first, last }
    }

    #[test]
    fn closed_ranges() {
        assert_eq!(evaluate(b"bytes=0-0", 10), p(0, 0));
        assert_eq!(evaluate(b"bytes=0-9", 10), p(0, 9));
        assert_eq!(evaluate(b"bytes=2-5", 10), p(2, 5));
        assert_eq!(evaluate(b"bytes=5-100", 10), p(5, 9));
        assert_eq!(evaluate(b"bytes=9-9", 10), p(9, 9));
        assert_eq!(evaluate(b"bytes=10-20", 10), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=5-4", 10), Full);
    }

    #[test]
    fn open_ranges() {
        assert_eq!(evaluate(b"bytes=0-", 10), p(0, 9));
        assert_eq!(evaluate(b"bytes=9-", 10), p(9, 9));
        assert_eq!(evaluate(b"bytes=10-", 10), Unsatisfiable);
        assert_eq!(
            evaluate(b"bytes=99999999999999999999999-", 10),
            Unsatisfiable
        );
    }

    #[test]
    fn suffix_ranges() {
        assert_eq!(evaluate(b"bytes=-1", 10), p(9, 9));
        assert_eq!(evaluate(b"bytes=-10", 10), p(0, 9));
        assert_eq!(evaluate(b"bytes=-500", 10), p(0, 9));
        assert_eq!(evaluate(b"bytes=-99999999999999999999999", 10), p(0, 9));
        assert_eq!(evaluate(b"bytes=-0", 10), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=-5", 0), Unsatisfiable);
        assert_eq!(evaluate(b"bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn syntax_and_units() {
        assert_eq!(evaluate(b" Bytes = 1-2 ", 10), p(1, 2));
        assert_eq!(evaluate(b"bytes=1-2,", 10), p(1, 2));
        assert_eq!(evaluate(b"items=1-2", 10), Full);
        assert_eq!(evaluate(b"bytes=", 10), Full);
        assert_eq!(evaluate(b"bytes=-", 10), Full);
        assert_eq!(evaluate(b"bytes=a-b", 10), Full);
        assert_eq!(evaluate(b"bytes=1-b", 10), Full);
        assert_eq!(evaluate(b"bytes=+1-2", 10), Full);
        assert_eq!(evaluate(b"bytes 1-2", 10), Full);
        assert_eq!(evaluate(b"", 10), Full);
    }

    #[test]
    fn multiple_ranges_serve_the_whole_file() {
        assert_eq!(evaluate(b"bytes=0-1,3-4", 10), Full);
        assert_eq!(evaluate(b"bytes=0-1, -2", 10), Full);
    }
}
