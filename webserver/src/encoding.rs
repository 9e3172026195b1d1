//! Precompressed variants and `Accept-Encoding` negotiation (RFC 9110 section 12.5.3).
//!
//! Like nginx's `gzip_static`, extended to brotli and zstd: when `file.zst`,
//! `file.br` or `file.gz` exists beside `file`, it is a representation of `file` in
//! that content coding, and is served instead of `file` when the request's
//! `Accept-Encoding` allows it. Nothing is compressed on the fly.
//!
//! Policy, by [`AcceptEncoding::ranked`]:
//! - a coding with `q=0` is forbidden; the others are tried best q-value first, ties
//!   broken by [`Coding::ALL`]'s order (zstd, br, gzip: smallest output first);
//! - `*` gives its q-value to every coding (and to identity) not listed by name;
//!   `x-gzip` is `gzip`; names and the `q` parameter are case-insensitive; a member
//!   with a malformed q-value is ignored;
//! - identity, when listed (or covered by `*`), competes by its q-value and wins only
//!   when strictly preferred; when not listed it is the fallback, served when no
//!   acceptable coding has a variant;
//! - without `Accept-Encoding` (or with an empty one) identity is served: RFC 9110
//!   lets a server pick any coding then, but clients that send no header rarely decode;
//! - when identity is forbidden (`identity;q=0`, or `*;q=0` without `identity`) and no
//!   acceptable variant exists, identity is served anyway, as RFC 9110 section 12.1
//!   allows (rather than 406).

use crate::request::trim_ows;

/// A content coding the server serves from a precompressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Coding {
    /// Zstandard (`zstd`, RFC 8878), from `file.zst`.
    Zstd,
    /// Brotli (`br`, RFC 7932), from `file.br`.
    Brotli,
    /// Gzip (`gzip`, RFC 1952), from `file.gz`.
    Gzip,
}

impl Coding {
    /// Every coding, in order of preference among equal q-values.
    pub const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    /// The bits of every coding in a set of codings (see [`Coding::bit`]).
    pub const ALL_BITS: u8 = Coding::Zstd.bit() | Coding::Brotli.bit() | Coding::Gzip.bit();

    /// This coding's bit in a set of codings held as a `u8` (as
    /// [`FileSource::known_variants`](crate::FileSource::known_variants) gives one).
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file-name suffix of the precompressed variant (`.zst`, `.br`, `.gz`).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Zstd => ".zst",
            Coding::Brotli => ".br",
            Coding::Gzip => ".gz",
        }
    }

    /// What the variant's entity tag carries after the file's own (`-zst`, `-br`,
    /// `-gz`), so that every representation has a distinct tag.
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Zstd => "-zst",
            Coding::Brotli => "-br",
            Coding::Gzip => "-gz",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_token(token: &[u8]) -> Option<Coding> {
        Coding::ALL
            .into_iter()
            .find(|c| token.eq_ignore_ascii_case(c.token().as_bytes()))
            .or_else(|| {
                token
                    .eq_ignore_ascii_case(b"x-gzip")
                    .then_some(Coding::Gzip)
            })
    }
}

/// A q-value in thousandths (`q=0.5` is 500); 0 means "not acceptable".
type Quality = u16;

const Q_MAX: Quality = 1000;

/// What a request's `Accept-Encoding` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptEncoding {
    /// The q-value of each [`Coding`] (indexed as [`Coding::ALL`]); 0 when forbidden or
    /// not mentioned.
    codings: [Quality; 3],
    /// Identity's q-value when the header gives one (by name or through `*`); `None`:
    /// the fallback.
    identity: Option<Quality>,
}

impl AcceptEncoding {
    /// Parses every `Accept-Encoding` field value of a request (several lines are one
    /// list). No value at all accepts identity only.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut named: [Option<Quality>; 3] = [None; 3];
        let mut identity = None;
        let mut star = None;
        for value in values {
            for member in value.split(|&b| b == b',') {
                let Some((name, q)) = parse_member(member) else {
                    continue;
                };
                let slot = if name == b"*" {
                    &mut star
                } else if name.eq_ignore_ascii_case(b"identity") {
                    &mut identity
                } else if let Some(c) = Coding::from_token(name) {
                    &mut named[c.index()]
                } else {
                    continue;
                };
                // A name listed twice keeps its first q-value.
                slot.get_or_insert(q);
            }
        }
        AcceptEncoding {
            codings: named.map(|q| q.or(star).unwrap_or(0)),
            identity: identity.or(star),
        }
    }

    /// The q-value of `coding` (0: not acceptable).
    pub fn quality(&self, coding: Coding) -> Quality {
        self.codings[coding.index()]
    }

    /// The codings to try, best first: acceptable (q > 0) and at least as wanted as
    /// identity (a coding wins ties with identity). At most three; the caller serves
    /// the first that has a variant, else identity.
    pub fn ranked(&self) -> impl Iterator<Item = Coding> {
        let mut order = Coding::ALL;
        // Stable: equal q-values keep the preference order.
        order.sort_by_key(|&c| std::cmp::Reverse(self.quality(c)));
        let (this, floor) = (*self, self.identity.unwrap_or(0));
        order
            .into_iter()
            .filter(move |&c| this.quality(c) > 0 && this.quality(c) >= floor)
    }
}

/// Splits one list member into (coding name, q-value). `None` for an empty member or
/// a malformed q-value.
fn parse_member(member: &[u8]) -> Option<(&[u8], Quality)> {
    let mut parts = member.split(|&b| b == b';');
    let name = trim_ows(parts.next()?);
    if name.is_empty() {
        return None;
    }
    let mut q = Q_MAX;
    for param in parts {
        let param = trim_ows(param);
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            continue;
        };
        if trim_ows(&param[..eq]).eq_ignore_ascii_case(b"q") {
            q = parse_qvalue(trim_ows(&param[eq + 1..]))?;
        }
    }
    Some((name, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn parse_qvalue(s: &[u8]) -> Option<Quality> {
    let (whole, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Quality = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| Quality::from(d - b'0'));
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(Q_MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Coding::*;
    use super::*;

    fn ranked(values: &[&str]) -> Vec<Coding> {
        AcceptEncoding::parse(values.iter().map(|v| v.as_bytes()))
            .ranked()
            .collect()
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.05"), Some(50));
        assert_eq!(parse_qvalue(b"0.001"), Some(1));
        assert_eq!(parse_qvalue(b"0."), Some(0));
        for bad in ["1.5", "2", "0.0001", "-1", "", ".5", "0.a", "1.001"] {
            assert_eq!(parse_qvalue(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn no_header_or_empty_header_means_identity() {
        assert_eq!(ranked(&[]), []);
        assert_eq!(ranked(&[""]), []);
        assert_eq!(ranked(&["identity"]), []);
    }

    #[test]
    fn ties_follow_the_preference_order() {
        assert_eq!(ranked(&["gzip, deflate, br, zstd"]), [Zstd, Brotli, Gzip]);
        assert_eq!(ranked(&["gzip"]), [Gzip]);
        assert_eq!(ranked(&["GZIP"]), [Gzip]);
        assert_eq!(ranked(&["x-gzip"]), [Gzip]);
        assert_eq!(ranked(&["br", "gzip"]), [Brotli, Gzip]);
    }

    #[test]
    fn q_values_order_and_forbid() {
        assert_eq!(
            ranked(&["zstd;q=0.5, gzip;q=0.9, br;q=0.7"]),
            [Gzip, Brotli, Zstd]
        );
        assert_eq!(ranked(&["zstd;q=0, gzip"]), [Gzip]);
        assert_eq!(ranked(&["gzip ; Q = 0.2 , br;q=0"]), [Gzip]);
        assert_eq!(ranked(&["gzip;q=0"]), []);
        // A malformed q-value drops the member only.
        assert_eq!(ranked(&["br;q=2, gzip"]), [Gzip]);
        // Unknown parameters are ignored.
        assert_eq!(ranked(&["gzip;level=9"]), [Gzip]);
        // The first of two entries for one coding counts.
        assert_eq!(ranked(&["gzip;q=0, gzip"]), []);
    }

    #[test]
    fn star_covers_what_is_not_named() {
        assert_eq!(ranked(&["*"]), [Zstd, Brotli, Gzip]);
        assert_eq!(ranked(&["*;q=0.5, br;q=0"]), [Zstd, Gzip]);
        assert_eq!(ranked(&["gzip, *;q=0"]), [Gzip]);
        assert_eq!(ranked(&["*;q=0"]), []);
        // `*` also gives identity its q-value: identity (0.5) beats nothing named
        // better, so only codings at 0.5 or more remain.
        assert_eq!(ranked(&["*;q=0.5, gzip;q=0.4"]), [Zstd, Brotli]);
    }

    #[test]
    fn identity_competes_when_listed() {
        // Identity preferred over gzip: no coding is tried.
        assert_eq!(ranked(&["gzip;q=0.5, identity"]), []);
        // A tie goes to the coding.
        assert_eq!(ranked(&["gzip;q=0.5, identity;q=0.5"]), [Gzip]);
        assert_eq!(ranked(&["gzip;q=0.6, br;q=0.4, identity;q=0.5"]), [Gzip]);
        // Forbidden identity: every acceptable coding is tried.
        assert_eq!(ranked(&["identity;q=0, br;q=0.1"]), [Brotli]);
        // Not listed: identity is the fallback, a low-q coding is still tried.
        assert_eq!(ranked(&["gzip;q=0.1"]), [Gzip]);
    }

    #[test]
    fn names_and_suffixes() {
        assert_eq!(
            Coding::ALL.map(|c| (c.token(), c.suffix(), c.etag_suffix())),
            [
                ("zstd", ".zst", "-zst"),
                ("br", ".br", "-br"),
                ("gzip", ".gz", "-gz")
            ]
        );
        assert_eq!(Coding::from_token(b"deflate"), None);
        assert_eq!(Coding::from_token(b"compress"), None);
    }
}
