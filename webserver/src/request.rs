//! Incremental request-head parsing with limits.
//!
//! [`parse`] is called on the unconsumed bytes of the connection's read buffer each
//! time more arrive; it returns `Ok(None)` until a whole head is there. It never
//! allocates: the [`Request`] borrows the buffer and the caller's header array.
//!
//! Request bodies: a static file server needs none, but a client may send one. A
//! `Content-Length` body up to [`Limits::max_body_bytes`] is read and discarded by the
//! connection (larger: 413). `Transfer-Encoding: chunked` request bodies are not
//! decoded: the server answers 411 Length Required and closes, since without decoding
//! it cannot find where the next request begins. Any other transfer coding is 501;
//! `Transfer-Encoding` together with `Content-Length` is 400 (a request-smuggling
//! vector, RFC 9112 section 6.3).

use std::mem::MaybeUninit;

use crate::response::Status;

/// Most header lines accepted in one request; more is 431.
pub const MAX_HEADERS: usize = 64;

/// Slack allowed on top of [`Limits::max_uri_bytes`] for the method and version on
/// the request line before an unterminated line counts as an over-long URI.
const REQUEST_LINE_SLACK: usize = 32;

/// Size limits on requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and headers) in bytes; more is 431.
    pub max_header_bytes: usize,
    /// Longest request-target in bytes; more is 414. Kept below `max_header_bytes`.
    pub max_uri_bytes: usize,
    /// Largest request body read and discarded; more is 413.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 8 * 1024,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Request methods, as far as the server distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: served.
    Get,
    /// `HEAD`: served without body.
    Head,
    /// A method defined by HTTP that a static server does not allow: 405.
    NotAllowed,
    /// Anything else: 501.
    Unknown,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "TRACE" | "CONNECT" => {
                Method::NotAllowed
            }
            _ => Method::Unknown,
        }
    }
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: keep-alive only when asked for.
    Http10,
    /// HTTP/1.1: keep-alive unless `Connection: close`.
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A parsed request head, borrowing the read buffer.
#[derive(Debug, Clone)]
pub struct Request<'b> {
    /// The method class.
    pub method: Method,
    /// The method token as sent (for logs).
    pub method_token: &'b str,
    /// The request-target as sent (not decoded).
    pub target: &'b str,
    /// The version.
    pub version: Version,
    /// Whether the client wants the connection kept open after this response.
    pub keep_alive: bool,
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
    /// `Content-Length` of the body to discard (0 if none).
    pub body_len: u64,
    /// `If-None-Match` (the last line if several were sent; the server evaluates all
    /// of them through [`Request::header_values`]).
    pub if_none_match: Option<&'b [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'b [u8]>,
    /// `If-Match`.
    pub if_match: Option<&'b [u8]>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'b [u8]>,
    /// `Range`.
    pub range: Option<&'b [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'b [u8]>,
    /// All header lines, for anything not extracted above.
    pub headers: &'b [httparse::Header<'b>],
}

impl<'b> Request<'b> {
    /// Every value of the header `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// Why a request head was refused; each maps to a status, and the connection closes
/// after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Syntax error, missing or duplicate `Host` in HTTP/1.1, bad `Content-Length`,
    /// `Transfer-Encoding` with `Content-Length`: 400.
    #[error("malformed request")]
    Malformed,
    /// Head larger than the limit or too many header lines: 431.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// Request-target longer than the limit: 414.
    #[error("URI too long")]
    UriTooLong,
    /// `Content-Length` above the body limit: 413.
    #[error("request body too large")]
    BodyTooLarge,
    /// Chunked request body, which the server does not decode: 411.
    #[error("chunked request bodies are not accepted")]
    LengthRequired,
    /// A transfer coding other than chunked: 501.
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1: 505.
    #[error("HTTP version not supported")]
    VersionNotSupported,
}

impl RequestError {
    /// The status the server answers with.
    pub fn status(self) -> Status {
        match self {
            RequestError::Malformed => Status::BadRequest,
            RequestError::HeadersTooLarge => Status::HeadersTooLarge,
            RequestError::UriTooLong => Status::UriTooLong,
            RequestError::BodyTooLarge => Status::ContentTooLarge,
            RequestError::LengthRequired => Status::LengthRequired,
            RequestError::UnsupportedTransferCoding => Status::NotImplemented,
            RequestError::VersionNotSupported => Status::VersionNotSupported,
        }
    }
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` if more bytes are needed (and the limits still allow them),
/// `Ok(Some(request))` when a whole head is present (its body, if any, follows at
/// `request.head_len`), or the error to answer.
///
/// `headers` is scratch space for the header lines; it need not be initialised
/// (`[const { MaybeUninit::uninit() }; MAX_HEADERS]`), which saves clearing it for
/// every request.
pub fn parse<'b>(
    buf: &'b [u8],
    headers: &'b mut [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS],
    limits: &Limits,
) -> Result<Option<Request<'b>>, RequestError> {
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, headers) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(malformed_or_long_uri(buf, limits)),
    };
    if req.path.is_some_and(|p| p.len() > limits.max_uri_bytes) {
        return Err(RequestError::UriTooLong);
    }
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if req.path.is_none() && unterminated_line_too_long(buf, limits) {
                return Err(RequestError::UriTooLong);
            }
            if buf.len() >= limits.max_header_bytes {
                return Err(RequestError::HeadersTooLarge);
            }
            return Ok(None);
        }
    };
    if head_len > limits.max_header_bytes {
        return Err(RequestError::HeadersTooLarge);
    }
    let (Some(method_token), Some(target), Some(minor)) = (req.method, req.path, req.version)
    else {
        return Err(RequestError::Malformed);
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let headers: &'b [httparse::Header<'b>] = req.headers;
    let mut out = Request {
        method: Method::from_token(method_token),
        method_token,
        target,
        version,
        keep_alive: false,
        head_len,
        body_len: 0,
        if_none_match: None,
        if_modified_since: None,
        if_match: None,
        if_unmodified_since: None,
        range: None,
        if_range: None,
        headers,
    };
    let mut hosts = 0u32;
    // `close` wins over `keep-alive`, in whatever order they come.
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    for h in headers {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_asked = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Repeated lines or a list of identical values are allowed (RFC 9110 8.6).
            for item in value.split(|&b| b == b',').map(trim_ows) {
                let n = parse_content_length(item)?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(RequestError::Malformed);
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            if let Some(last) = value.split(|&b| b == b',').map(trim_ows).next_back() {
                chunked_last = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            out.if_none_match = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            out.if_modified_since = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-match") {
            out.if_match = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-unmodified-since") {
            out.if_unmodified_since = Some(value);
        } else if name.eq_ignore_ascii_case(b"range") {
            out.range = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-range") {
            out.if_range = Some(value);
        }
    }
    out.keep_alive = !close && (version == Version::Http11 || keep_alive_asked);
    if hosts > 1 || (hosts == 0 && version == Version::Http11) {
        return Err(RequestError::Malformed);
    }
    if transfer_encoding {
        if content_length.is_some() {
            return Err(RequestError::Malformed);
        }
        return Err(if chunked_last {
            RequestError::LengthRequired
        } else {
            RequestError::UnsupportedTransferCoding
        });
    }
    out.body_len = content_length.unwrap_or(0);
    if out.body_len > limits.max_body_bytes {
        return Err(RequestError::BodyTooLarge);
    }
    Ok(Some(out))
}

/// `Content-Length` digits; values beyond `u64` saturate (and then exceed any limit).
fn parse_content_length(digits: &[u8]) -> Result<u64, RequestError> {
    saturating_decimal(digits).ok_or(RequestError::Malformed)
}

/// The value of a non-empty run of ASCII digits, saturating at `u64::MAX`; `None` for
/// anything else.
pub(crate) fn saturating_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `s` without the optional whitespace (spaces and tabs, RFC 9110 section 5.6.3) at
/// either end.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// httparse reports any bad version token as `Version`; only a well-formed
/// `HTTP/d.d` other than 1.0/1.1 deserves 505, the rest is a syntax error.
fn version_error(buf: &[u8]) -> RequestError {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let token = line.rsplit(|&b| b == b' ').next().unwrap_or(b"");
    match token {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            RequestError::VersionNotSupported
        }
        _ => RequestError::Malformed,
    }
}

/// A syntax error is reported as 414 when it is really an over-long request line that
/// httparse gave up on; otherwise 400.
fn malformed_or_long_uri(buf: &[u8], limits: &Limits) -> RequestError {
    if unterminated_line_too_long(buf, limits) {
        RequestError::UriTooLong
    } else {
        RequestError::Malformed
    }
}

fn unterminated_line_too_long(buf: &[u8], limits: &Limits) -> bool {
    let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    line_len > limits.max_uri_bytes + REQUEST_LINE_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &[u8]) -> Result<Option<Request<'static>>, RequestError> {
        run_with(buf, &Limits::default())
    }

    fn run_with(buf: &[u8], limits: &Limits) -> Result<Option<Request<'static>>, RequestError> {
        let buf: &'static [u8] = Box::leak(buf.to_vec().into_boxed_slice());
        let headers = Box::leak(Box::new([const { MaybeUninit::uninit() }; MAX_HEADERS]));
        parse(buf, headers, limits)
    }

    #[test]
    fn simple_get() {
        let r = run(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/a");
        assert_eq!(r.version, Version::Http11);
        assert!(r.keep_alive);
        assert_eq!(r.head_len, 28);
        assert_eq!(r.body_len, 0);
        assert_eq!(r.header_values("HOST").collect::<Vec<_>>(), vec![&b"x"[..]]);
    }

    #[test]
    fn partial_heads_need_more() {
        let full = b"GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n";
        for cut in 0..full.len() {
            assert!(run(&full[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let r = run(full).unwrap().unwrap();
        assert_eq!(r.range, Some(&b"bytes=1-2"[..]));
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let buf = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let r = run(buf).unwrap().unwrap();
        assert_eq!(r.target, "/a");
        let r2 = run(&buf[r.head_len..]).unwrap().unwrap();
        assert_eq!((r2.method, r2.target), (Method::Head, "/b"));
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |s: &[u8]| run(s).unwrap().unwrap().keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n"
        ));
    }

    #[test]
    fn methods() {
        let m = |s: &[u8]| run(s).unwrap().unwrap().method;
        assert_eq!(m(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::Head);
        assert_eq!(m(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::NotAllowed);
        assert_eq!(
            m(b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Method::NotAllowed
        );
        assert_eq!(m(b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::Unknown);
        assert_eq!(m(b"get / HTTP/1.1\r\nHost: x\r\n\r\n"), Method::Unknown);
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            run(b"GET / HTTP/1.1\r\n\r\n").unwrap_err(),
            RequestError::Malformed
        );
        assert_eq!(
            run(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap_err(),
            RequestError::Malformed
        );
        assert!(run(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn malformed_heads() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTXP/1.1\r\nHost: x\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x00\x01\x02\x03\r\n\r\n",
        ] {
            assert_eq!(run(bad).unwrap_err(), RequestError::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn unsupported_versions() {
        assert_eq!(
            run(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").unwrap_err(),
            RequestError::VersionNotSupported
        );
        assert_eq!(
            run(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n").unwrap_err(),
            RequestError::VersionNotSupported
        );
    }

    #[test]
    fn header_limits() {
        let limits = Limits {
            max_header_bytes: 256,
            max_uri_bytes: 64,
            max_body_bytes: 10,
        };
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 300));
        // Incomplete and already over the limit.
        assert_eq!(
            run_with(&big, &limits).unwrap_err(),
            RequestError::HeadersTooLarge
        );
        // Complete but over the limit.
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            run_with(&big, &limits).unwrap_err(),
            RequestError::HeadersTooLarge
        );
        // Too many header lines.
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(run(&many).unwrap_err(), RequestError::HeadersTooLarge);
    }

    #[test]
    fn uri_limits() {
        let limits = Limits {
            max_header_bytes: 1024,
            max_uri_bytes: 64,
            max_body_bytes: 10,
        };
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
        assert_eq!(
            run_with(long.as_bytes(), &limits).unwrap_err(),
            RequestError::UriTooLong
        );
        // Request line not finished yet but already too long.
        let partial = format!("GET /{}", "a".repeat(200));
        assert_eq!(
            run_with(partial.as_bytes(), &limits).unwrap_err(),
            RequestError::UriTooLong
        );
        // Within the limit.
        let ok = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(63));
        assert!(run_with(ok.as_bytes(), &limits).unwrap().is_some());
    }

    #[test]
    fn bodies() {
        let limits = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        let r = run_with(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
            &limits,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body_len, 10);
        let r = run(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.body_len, 5);
        let cases: [(&[u8], RequestError); 7] = [
            (b"Content-Length: 11\r\n", RequestError::BodyTooLarge),
            (
                b"Content-Length: 99999999999999999999999\r\n",
                RequestError::BodyTooLarge,
            ),
            (
                b"Content-Length: 5\r\nContent-Length: 6\r\n",
                RequestError::Malformed,
            ),
            (b"Content-Length: -1\r\n", RequestError::Malformed),
            (
                b"Transfer-Encoding: chunked\r\n",
                RequestError::LengthRequired,
            ),
            (
                b"Transfer-Encoding: gzip\r\n",
                RequestError::UnsupportedTransferCoding,
            ),
            (
                b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                RequestError::Malformed,
            ),
        ];
        for (extra, want) in cases {
            let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
            req.extend_from_slice(extra);
            req.extend_from_slice(b"\r\n");
            assert_eq!(run_with(&req, &limits).unwrap_err(), want, "{extra:?}");
        }
    }

    #[test]
    fn conditional_headers_are_extracted() {
        let r = run(
            b"GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\nif-none-match: \"b\"\r\n\
If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-Match: *\r\n\
If-Unmodified-Since: x\r\nIf-Range: \"e\"\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.if_none_match, Some(&b"\"b\""[..]));
        assert_eq!(r.header_values("if-none-match").count(), 2);
        assert_eq!(
            r.if_modified_since,
            Some(&b"Sun, 06 Nov 1994 08:49:37 GMT"[..])
        );
        assert_eq!(r.if_match, Some(&b"*"[..]));
        assert_eq!(r.if_unmodified_since, Some(&b"x"[..]));
        assert_eq!(r.if_range, Some(&b"\"e\""[..]));
    }

    #[test]
    fn statuses_of_errors() {
        assert_eq!(RequestError::Malformed.status().code(), 400);
        assert_eq!(RequestError::HeadersTooLarge.status().code(), 431);
        assert_eq!(RequestError::UriTooLong.status().code(), 414);
        assert_eq!(RequestError::BodyTooLarge.status().code(), 413);
        assert_eq!(RequestError::LengthRequired.status().code(), 411);
        assert_eq!(RequestError::UnsupportedTransferCoding.status().code(), 501);
        assert_eq!(RequestError::VersionNotSupported.status().code(), 505);
    }
}
