//! Request-target to document-root path: percent-decoding and normalisation.
//!
//! Policy (the decisions the server makes about odd paths):
//! - The query (`?...`) and fragment (`#...`) are dropped; an absolute-form target
//!   (`http://host/path`) uses its path.
//! - Each `/`-separated segment is percent-decoded on its own. A `%` not followed by two
//!   hex digits, a decoded NUL, and an encoded slash (`%2F`) are rejected (400): an
//!   encoded slash would make one segment into two, and the server never needs one.
//! - Empty segments (`//`) and `.` are skipped; `..` removes the previous segment
//!   (`/a/../b` is `b`); a `..` that would climb above the root is rejected (400), both
//!   literal and encoded (`%2e%2e`).
//! - The result is a relative path without leading slash, `.` or `..` segments: the
//!   empty path is the root. Non-UTF-8 bytes are kept (Linux names are bytes).
//!
//! This is defence in depth: the file layer opens with `openat2(RESOLVE_BENEATH)`, so
//! the kernel confines the path (and any symlink) beneath the root whatever it holds.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// A normalised path relative to the document root (see the module documentation);
/// the empty path is the root itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelPath<'a>(&'a [u8]);

impl<'a> RelPath<'a> {
    /// The root directory.
    pub const ROOT: RelPath<'static> = RelPath(b"");

    /// Wraps bytes that are already normalised (no leading `/`, no empty, `.` or `..`
    /// segments, no NUL). Returns `None` otherwise.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.is_empty() {
            return Some(RelPath(bytes));
        }
        let ok = !bytes.contains(&0)
            && bytes
                .split(|&b| b == b'/')
                .all(|seg| !seg.is_empty() && seg != b"." && seg != b"..");
        ok.then_some(RelPath(bytes))
    }

    /// Wraps bytes that [`normalize`] produced (or such bytes joined with a further
    /// plain segment), skipping the validation of [`RelPath::new`].
    pub(crate) fn from_normalized(bytes: &'a [u8]) -> Self {
        debug_assert!(RelPath::new(bytes).is_some(), "{bytes:?}");
        RelPath(bytes)
    }

    /// The raw bytes, segments separated by `/`.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The path as a `Path` (for `openat2` and friends).
    pub fn as_path(&self) -> &'a Path {
        Path::new(OsStr::from_bytes(self.0))
    }

    /// Whether this is the root directory.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last segment (the file name), empty for the root.
    pub fn file_name(&self) -> &'a [u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => self.0,
        }
    }
}

impl fmt::Debug for RelPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", String::from_utf8_lossy(self.0))
    }
}

/// Why a request-target was refused. Every variant is answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Neither origin-form (`/...`) nor absolute-form (`http://host/...`).
    #[error("request-target is not a path")]
    NotAPath,
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape")]
    BadEscape,
    /// A decoded NUL byte or an encoded slash.
    #[error("forbidden byte in a path segment")]
    ForbiddenByte,
    /// A `..` segment that would leave the root.
    #[error("path escapes the root")]
    EscapesRoot,
}

/// The result of [`normalize`]: the relative path is in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    /// Whether the target named a directory explicitly: it ended with `/` (or with a
    /// `.`/`..` segment), so a directory is served rather than redirected.
    pub trailing_slash: bool,
}

/// Normalises a request-target into `out` (cleared first) following the module's
/// policy. On success `RelPath::new(out)` holds.
pub fn normalize(target: &[u8], out: &mut Vec<u8>) -> Result<Normalized, PathError> {
    out.clear();
    let path = path_of_target(target)?;
    let mut trailing_slash = false;
    // `path` starts with '/', so the first split element is empty and skipped.
    for raw in path.split(|&b| b == b'/') {
        trailing_slash = raw.is_empty();
        let start = out.len();
        if start > 0 {
            out.push(b'/');
        }
        let seg_begin = out.len();
        decode_segment(raw, out)?;
        match &out[seg_begin..] {
            b"" | b"." => {
                out.truncate(start);
                trailing_slash = true;
            }
            b".." => {
                if start == 0 {
                    out.clear();
                    return Err(PathError::EscapesRoot);
                }
                let parent = out[..start].iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(parent);
                trailing_slash = true;
            }
            _ => {}
        }
    }
    debug_assert!(RelPath::new(out).is_some());
    Ok(Normalized { trailing_slash })
}

/// The path part of a request-target: origin-form as is, absolute-form after the
/// authority; query and fragment removed.
fn path_of_target(target: &[u8]) -> Result<&[u8], PathError> {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let target = &target[..end];
    if target.first() == Some(&b'/') {
        return Ok(target);
    }
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            return Ok(match rest.iter().position(|&b| b == b'/') {
                Some(i) => &rest[i..],
                None => b"/",
            });
        }
    }
    Err(PathError::NotAPath)
}

/// Appends the percent-decoded `raw` to `out`.
fn decode_segment(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let byte = if b == b'%' {
            let hi = raw.get(i + 1).and_then(|&c| hex_value(c));
            let lo = raw.get(i + 2).and_then(|&c| hex_value(c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    i += 3;
                    hi << 4 | lo
                }
                _ => return Err(PathError::BadEscape),
            }
        } else {
            i += 1;
            b
        };
        if byte == 0 || byte == b'/' {
            return Err(PathError::ForbiddenByte);
        }
        out.push(byte);
    }
    Ok(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The bytes percent-encoded in a path segment written by the server (redirects,
/// listings): everything but unreserved characters and a few safe sub-delimiters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Appends `segment` percent-encoded for use inside a URL path.
pub fn encode_segment(segment: &[u8], out: &mut Vec<u8>) {
    for piece in percent_encoding::percent_encode(segment, SEGMENT) {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// Appends `/` followed by `path` with every segment percent-encoded: an absolute path
/// safe for a `Location` header or an `href` (never `//`, so never a network-path
/// reference to another host).
pub fn encode_path(path: RelPath<'_>, out: &mut Vec<u8>) {
    out.push(b'/');
    for (i, seg) in path.as_bytes().split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        encode_segment(seg, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(target: &str) -> Result<(String, bool), PathError> {
        let mut out = Vec::new();
        let n = normalize(target.as_bytes(), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), n.trailing_slash))
    }

    #[test]
    fn plain_paths() {
        assert_eq!(norm("/"), Ok(("".into(), true)));
        assert_eq!(norm("/index.html"), Ok(("index.html".into(), false)));
        assert_eq!(norm("/a/b/c.txt"), Ok(("a/b/c.txt".into(), false)));
        assert_eq!(norm("/a/b/"), Ok(("a/b".into(), true)));
        assert_eq!(norm("/a?x=1/../.."), Ok(("a".into(), false)));
        assert_eq!(norm("/a#frag"), Ok(("a".into(), false)));
    }

    #[test]
    fn dot_segments_and_empty_segments() {
        assert_eq!(norm("//a///b"), Ok(("a/b".into(), false)));
        assert_eq!(norm("/./a/./b/."), Ok(("a/b".into(), true)));
        assert_eq!(norm("/a/../b"), Ok(("b".into(), false)));
        assert_eq!(norm("/a/b/../../c"), Ok(("c".into(), false)));
        assert_eq!(norm("/a/.."), Ok(("".into(), true)));
        assert_eq!(norm("/a/b/.."), Ok(("a".into(), true)));
        assert_eq!(norm("/a/..b"), Ok(("a/..b".into(), false)));
        assert_eq!(norm("/..."), Ok(("...".into(), false)));
    }

    #[test]
    fn traversal_is_rejected() {
        assert_eq!(norm("/.."), Err(PathError::EscapesRoot));
        assert_eq!(norm("/../etc/passwd"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/a/../../etc/passwd"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/%2e%2e/etc/passwd"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/%2E%2e/x"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/.%2e/x"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/a/%2e%2e/%2e%2e/x"), Err(PathError::EscapesRoot));
    }

    #[test]
    fn encoded_slash_nul_and_bad_escapes_are_rejected() {
        assert_eq!(norm("/..%2fetc"), Err(PathError::ForbiddenByte));
        assert_eq!(norm("/a%2Fb"), Err(PathError::ForbiddenByte));
        assert_eq!(norm("/a%00b"), Err(PathError::ForbiddenByte));
        assert_eq!(norm("/a%"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%4"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            norm("/hello%20world.txt"),
            Ok(("hello world.txt".into(), false))
        );
        assert_eq!(norm("/caf%C3%A9"), Ok(("café".into(), false)));
        let mut out = Vec::new();
        normalize(b"/%ff%fe", &mut out).unwrap();
        assert_eq!(out, [0xff, 0xfe]);
    }

    #[test]
    fn target_forms() {
        assert_eq!(norm("http://example.com/a/b"), Ok(("a/b".into(), false)));
        assert_eq!(norm("HTTP://example.com"), Ok(("".into(), true)));
        assert_eq!(norm("*"), Err(PathError::NotAPath));
        assert_eq!(norm("example.com:80"), Err(PathError::NotAPath));
        assert_eq!(norm(""), Err(PathError::NotAPath));
    }

    #[test]
    fn rel_path_validation_and_accessors() {
        assert!(RelPath::new(b"").is_some());
        assert!(RelPath::new(b"a/b.txt").is_some());
        assert!(RelPath::new(b"/a").is_none());
        assert!(RelPath::new(b"a//b").is_none());
        assert!(RelPath::new(b"a/../b").is_none());
        assert!(RelPath::new(b"./a").is_none());
        assert!(RelPath::new(b"a\0").is_none());
        let p = RelPath::new(b"dir/file.css").unwrap();
        assert_eq!(p.file_name(), b"file.css");
        assert_eq!(p.as_path(), Path::new("dir/file.css"));
        assert!(RelPath::ROOT.is_root());
        assert_eq!(RelPath::ROOT.file_name(), b"");
    }

    #[test]
    fn encoding_round_trips_and_never_starts_with_two_slashes() {
        let mut out = Vec::new();
        encode_path(RelPath::new(b"a b/<x>&\"q\"/%/\xff").unwrap(), &mut out);
        assert_eq!(out, b"/a%20b/%3Cx%3E%26%22q%22/%25/%FF");
        let mut back = Vec::new();
        normalize(&out, &mut back).unwrap();
        assert_eq!(back, b"a b/<x>&\"q\"/%/\xff");
        out.clear();
        encode_path(RelPath::ROOT, &mut out);
        assert_eq!(out, b"/");
    }
}
