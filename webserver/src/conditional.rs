//! Validators (`ETag`, `Last-Modified`) and conditional requests (RFC 9110 section 13).
//!
//! The entity tag is **strong**, built from the modification time (seconds and
//! nanoseconds) and the size: `"<secs hex>.<nanos hex>-<size hex>"`. A static file with
//! the same size and nanosecond mtime is treated as byte-identical; being strong, the
//! tag also validates `If-Range` and `If-Match`. A precompressed variant's tag is
//! built from the variant file and carries its coding (`"<...>-gz"`, see
//! [`Coding::etag_suffix`]), so every representation has its own.
//!
//! Evaluation order follows RFC 9110 section 13.2.2: `If-Match`, else
//! `If-Unmodified-Since` (412 on failure); then `If-None-Match`, else
//! `If-Modified-Since` (304 for GET/HEAD). `If-None-Match` therefore takes precedence
//! over `If-Modified-Since`.

use std::time::UNIX_EPOCH;

use crate::date::{parse_http_date, unix_secs};
use crate::encoding::Coding;
use crate::files::FileMeta;
use crate::request::{trim_ows, Request};

/// Longest entity tag we produce: quotes, 16 + 8 + 16 hex digits, `.` and `-`, and a
/// coding suffix of up to 4 bytes.
const ETAG_CAP: usize = 48;

/// The validators of a file: its strong entity tag and modification second.
#[derive(Clone, Copy)]
pub struct Validators {
    etag: [u8; ETAG_CAP],
    etag_len: usize,
    /// Modification time in whole seconds since the epoch (the `Last-Modified` value).
    pub last_modified: u64,
}

impl Validators {
    /// The validators of `meta`.
    pub fn of(meta: &FileMeta) -> Self {
        Self::of_variant(meta, None)
    }

    /// The validators of a file `meta` served in `coding` (a precompressed variant, its
    /// own metadata), or as is (`None`).
    pub fn of_variant(meta: &FileMeta, coding: Option<Coding>) -> Self {
        let since = meta.modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut etag = [0u8; ETAG_CAP];
        let mut len = 0;
        let mut push = |b: u8| {
            etag[len] = b;
            len += 1;
        };
        push(b'"');
        push_hex(since.as_secs(), &mut push);
        push(b'.');
        push_hex(u64::from(since.subsec_nanos()), &mut push);
        push(b'-');
        push_hex(meta.len, &mut push);
        for &b in coding.map_or("", Coding::etag_suffix).as_bytes() {
            push(b);
        }
        push(b'"');
        Validators {
            etag,
            etag_len: len,
            last_modified: unix_secs(meta.modified),
        }
    }

    /// The entity tag, with its quotes.
    pub fn etag(&self) -> &[u8] {
        &self.etag[..self.etag_len]
    }
}

fn push_hex(n: u64, push: &mut impl FnMut(u8)) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let nibbles = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..nibbles).rev() {
        push(DIGITS[((n >> (i * 4)) & 0xf) as usize]);
    }
}

/// The outcome of evaluating the preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the request normally.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the conditional headers of a GET or HEAD `req` against `v`.
pub fn evaluate(req: &Request<'_>, v: &Validators) -> Precondition {
    if req.if_match.is_some() {
        let matched = req
            .header_values("if-match")
            .any(|value| list_matches(value, v.etag(), Comparison::Strong));
        if !matched {
            return Precondition::Failed;
        }
    } else if let Some(date) = req.if_unmodified_since.and_then(parse_http_date) {
        if v.last_modified > date {
            return Precondition::Failed;
        }
    }
    if req.if_none_match.is_some() {
        let matched = req
            .header_values("if-none-match")
            .any(|value| list_matches(value, v.etag(), Comparison::Weak));
        if matched {
            return Precondition::NotModified;
        }
    } else if let Some(date) = req.if_modified_since.and_then(parse_http_date) {
        if v.last_modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether an `If-Range` value lets a `Range` apply: an entity tag must match strongly,
/// a date must equal `Last-Modified` exactly (RFC 9110 section 13.1.5).
pub fn if_range_matches(value: &[u8], v: &Validators) -> bool {
    let value = trim_ows(value);
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        match parse_entity_tag(value) {
            Some((tag, false, rest)) if trim_ows(rest).is_empty() => tag == v.etag(),
            _ => false,
        }
    } else {
        parse_http_date(value) == Some(v.last_modified)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// Whether a list of entity tags (or `*`) matches `etag` (our tag, strong, quoted).
/// A malformed member ends the list: what was matched so far counts.
fn list_matches(value: &[u8], etag: &[u8], cmp: Comparison) -> bool {
    let mut rest = trim_ows(value);
    if rest == b"*" {
        return true;
    }
    while !rest.is_empty() {
        let Some((tag, weak, after)) = parse_entity_tag(rest) else {
            return false;
        };
        if tag == etag && (cmp == Comparison::Weak || !weak) {
            return true;
        }
        rest = trim_ows(after);
        match rest.first() {
            Some(b',') => rest = trim_ows(&rest[1..]),
            Some(_) => return false,
            None => {}
        }
        // Tolerate empty list elements (`"a", , "b"`).
        while let Some(stripped) = rest.strip_prefix(b",") {
            rest = trim_ows(stripped);
        }
    }
    false
}

/// Splits `W/"opaque"` or `"opaque"` off the front of `s`: (tag with quotes, weak?,
/// rest).
fn parse_entity_tag(s: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if s.first() != Some(&b'"') {
        return None;
    }
    let close = s[1..].iter().position(|&b| b == b'"')? + 1;
    Some((&s[..=close], weak, &s[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::FileKind;
    use crate::request::{parse, Limits, MAX_HEADERS};
    use std::time::Duration;

    fn meta() -> FileMeta {
        FileMeta {
            len: 1024,
            modified: UNIX_EPOCH + Duration::new(784_111_777, 5),
            kind: FileKind::File,
        }
    }

    const TAG: &str = "\"2ebc98a1.5-400\"";
    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn eval(extra: &str) -> Precondition {
        let text = format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        let buf: &'static [u8] = Box::leak(text.into_bytes().into_boxed_slice());
        let headers = Box::leak(Box::new(
            [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS],
        ));
        let req = parse(buf, headers, &Limits::default()).unwrap().unwrap();
        evaluate(&req, &Validators::of(&meta()))
    }

    #[test]
    fn etag_format() {
        let v = Validators::of(&meta());
        assert_eq!(v.etag(), TAG.as_bytes());
        assert_eq!(v.last_modified, 784_111_777);
        let max = FileMeta {
            len: u64::MAX,
            modified: UNIX_EPOCH + Duration::new(u64::MAX / 2, 999_999_999),
            kind: FileKind::File,
        };
        let v = Validators::of(&max);
        assert_eq!(v.etag(), b"\"7fffffffffffffff.3b9ac9ff-ffffffffffffffff\"");
        let zero = FileMeta {
            len: 0,
            modified: UNIX_EPOCH,
            kind: FileKind::File,
        };
        assert_eq!(Validators::of(&zero).etag(), b"\"0.0-0\"");
        let v = Validators::of_variant(&max, Some(Coding::Zstd));
        assert_eq!(
            v.etag(),
            b"\"7fffffffffffffff.3b9ac9ff-ffffffffffffffff-zst\""
        );
        let v = Validators::of_variant(&meta(), Some(Coding::Gzip));
        assert_eq!(v.etag(), b"\"2ebc98a1.5-400-gz\"");
    }

    #[test]
    fn if_none_match() {
        use Precondition::*;
        assert_eq!(eval(&format!("If-None-Match: {TAG}\r\n")), NotModified);
        assert_eq!(eval(&format!("If-None-Match: W/{TAG}\r\n")), NotModified);
        assert_eq!(
            eval(&format!("If-None-Match: \"a\", {TAG}\r\n")),
            NotModified
        );
        assert_eq!(
            eval(&format!("If-None-Match: \"a\" ,, W/{TAG} \r\n")),
            NotModified
        );
        assert_eq!(eval("If-None-Match: *\r\n"), NotModified);
        assert_eq!(eval("If-None-Match: \"a\", \"b\"\r\n"), Proceed);
        assert_eq!(
            eval(&format!("If-None-Match: \"a\"\r\nIf-None-Match: {TAG}\r\n")),
            NotModified
        );
        assert_eq!(eval("If-None-Match: garbage\r\n"), Proceed);
        assert_eq!(eval("If-None-Match: \"unterminated\r\n"), Proceed);
    }

    #[test]
    fn if_modified_since() {
        use Precondition::*;
        assert_eq!(eval(&format!("If-Modified-Since: {LM}\r\n")), NotModified);
        assert_eq!(
            eval("If-Modified-Since: Mon, 07 Nov 1994 08:49:37 GMT\r\n"),
            NotModified
        );
        assert_eq!(
            eval("If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT\r\n"),
            Proceed
        );
        assert_eq!(eval("If-Modified-Since: not a date\r\n"), Proceed);
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        use Precondition::*;
        // The tag does not match, so the (matching) date is not consulted.
        assert_eq!(
            eval(&format!(
                "If-None-Match: \"other\"\r\nIf-Modified-Since: {LM}\r\n"
            )),
            Proceed
        );
        // The tag matches though the date alone would not.
        assert_eq!(
            eval(&format!(
                "If-None-Match: {TAG}\r\nIf-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
            )),
            NotModified
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        use Precondition::*;
        assert_eq!(eval(&format!("If-Match: {TAG}\r\n")), Proceed);
        assert_eq!(eval("If-Match: *\r\n"), Proceed);
        assert_eq!(eval(&format!("If-Match: W/{TAG}\r\n")), Failed);
        assert_eq!(eval("If-Match: \"a\"\r\n"), Failed);
        assert_eq!(eval(&format!("If-Unmodified-Since: {LM}\r\n")), Proceed);
        assert_eq!(
            eval("If-Unmodified-Since: Sat, 05 Nov 1994 08:49:37 GMT\r\n"),
            Failed
        );
        // If-Match takes precedence over If-Unmodified-Since.
        assert_eq!(
            eval(&format!(
                "If-Match: {TAG}\r\nIf-Unmodified-Since: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
            )),
            Proceed
        );
    }

    #[test]
    fn if_range() {
        let v = Validators::of(&meta());
        assert!(if_range_matches(TAG.as_bytes(), &v));
        assert!(if_range_matches(format!(" {TAG} ").as_bytes(), &v));
        assert!(!if_range_matches(format!("W/{TAG}").as_bytes(), &v));
        assert!(!if_range_matches(b"\"other\"", &v));
        assert!(if_range_matches(LM.as_bytes(), &v));
        assert!(!if_range_matches(b"Mon, 07 Nov 1994 08:49:37 GMT", &v));
        assert!(!if_range_matches(b"junk", &v));
    }
}
