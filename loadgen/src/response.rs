//! Incremental HTTP/1.x response validation with bounded memory.
//!
//! The connection keeps one read buffer; [`ResponseParser::feed`] looks at its
//! unconsumed bytes and says how many it consumed. A response head must fit in the
//! buffer (it is parsed in place with `httparse`); body bytes are counted and dropped,
//! never stored. Bodies are delimited by `Content-Length`, by chunked coding (sizes,
//! extensions and trailers validated), or by the end of the connection; responses to
//! HEAD and 1xx/204/304 responses have none. Interim 1xx responses are skipped.
//!
//! A server answering the same request sends the same head again and again (until
//! its `Date` changes), so the parser remembers the last final head it parsed and what
//! it said: a head that repeats it byte for byte is recognised by one comparison, not
//! parsed again. What a head says depends on its bytes alone, so the outcome is the
//! same.

use std::mem::MaybeUninit;

/// Most header lines in a response head.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// Longest head remembered for recognising its repeats.
const MAX_REMEMBERED_HEAD: usize = 512;

/// Why a response is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status line or a header is not valid HTTP/1.x.
    #[error("malformed response head: {0}")]
    Head(&'static str),
    /// The head does not fit in the read buffer.
    #[error("response head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// `Content-Length` is not a number, or two differ.
    #[error("invalid Content-Length")]
    ContentLength,
    /// A chunk-size line is invalid or too long.
    #[error("invalid chunk size line")]
    ChunkSize,
    /// Chunk data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// Trailers are too large or malformed.
    #[error("invalid trailer section")]
    Trailers,
    /// `101 Switching Protocols`, which a load test never asks for.
    #[error("unexpected 101 Switching Protocols")]
    SwitchingProtocols,
    /// The connection ended inside a response.
    #[error("connection closed in the middle of a response")]
    Truncated,
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The final status code.
    pub status: u16,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// Bytes on the wire, heads (including interim 1xx heads) and body.
    pub bytes: u64,
}

/// What a call to [`ResponseParser::feed`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes consumed from the front of the input.
    pub consumed: usize,
    /// The response completed by these bytes, if any; the parser is then ready for the
    /// next one.
    pub complete: Option<ResponseMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Waiting for (the rest of) a head.
    Head,
    /// `remaining` bytes of a Content-Length body.
    Length(u64),
    /// Chunked: in a size line (bytes of it seen so far, whether the size was ended
    /// by an extension or whitespace, the size so far, digits seen).
    ChunkSize {
        line: usize,
        ended: bool,
        size: u64,
        digits: u32,
    },
    /// Chunked: `remaining` bytes of chunk data.
    ChunkData(u64),
    /// Chunked: expecting the CRLF after chunk data (`cr` if CR was seen).
    ChunkCrlf { cr: bool },
    /// Chunked: in the trailer section (bytes so far, bytes of the current line).
    Trailers { total: usize, line: usize },
    /// Until the connection closes.
    UntilClose,
}

/// What a final response's head says about the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadFields {
    status: u16,
    /// HTTP/1.1 or `Connection: keep-alive`, and no `Connection: close`.
    keep_alive: bool,
    /// The `Content-Length`, if any.
    length: Option<u64>,
    /// Whether a `Transfer-Encoding` is present, and whether its last coding is
    /// `chunked`.
    transfer_coding: bool,
    chunked: bool,
}

/// Parses a stream of responses to requests sent on one connection.
#[derive(Debug, Clone)]
pub struct ResponseParser {
    body: Body,
    head_request: bool,
    status: u16,
    keep_alive: bool,
    bytes: u64,
    max_head: usize,
    /// The last final head parsed (if at most [`MAX_REMEMBERED_HEAD`] bytes) and what
    /// it says.
    last_head: Vec<u8>,
    last_fields: Option<HeadFields>,
}

impl ResponseParser {
    /// A parser whose heads may be up to `max_head` bytes (the read buffer's size).
    pub fn new(max_head: usize) -> Self {
        ResponseParser {
            body: Body::Head,
            head_request: false,
            status: 0,
            keep_alive: false,
            bytes: 0,
            max_head,
            last_head: Vec::new(),
            last_fields: None,
        }
    }

    /// Tells the parser whether the next response answers a HEAD request. Call before
    /// feeding the bytes of each response (the caller knows its requests' order).
    pub fn expect(&mut self, head_request: bool) {
        self.head_request = head_request;
    }

    /// Whether some bytes of a response have been consumed and it is not complete.
    pub fn in_progress(&self) -> bool {
        self.body != Body::Head || self.bytes > 0
    }

    /// Consumes bytes from the front of `input`. Call again with the unconsumed rest
    /// (plus newly read bytes) until it consumes nothing.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, ResponseError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.body {
                Body::Head => {
                    let n = match self.parse_head(rest)? {
                        Some(n) => n,
                        None => {
                            return Ok(Progress {
                                consumed: used,
                                complete: None,
                            })
                        }
                    };
                    used += n;
                    if self.body == Body::Head && self.status != 0 {
                        // A complete response without body.
                        return Ok(self.finish(used));
                    }
                }
                Body::Length(remaining) => {
                    let take = remaining.min(rest.len() as u64);
                    used += take as usize;
                    self.bytes += take;
                    if take == remaining {
                        return Ok(self.finish(used));
                    }
                    self.body = Body::Length(remaining - take);
                    return Ok(Progress {
                        consumed: used,
                        complete: None,
                    });
                }
                Body::UntilClose => {
                    used += rest.len();
                    self.bytes += rest.len() as u64;
                    return Ok(Progress {
                        consumed: used,
                        complete: None,
                    });
                }
                _ => {
                    let (n, done) = self.chunked(rest)?;
                    used += n;
                    self.bytes += n as u64;
                    if done {
                        return Ok(self.finish(used));
                    }
                    return Ok(Progress {
                        consumed: used,
                        complete: None,
                    });
                }
            }
        }
    }

    /// How many of the bytes that come next are body bytes the parser only counts (of
    /// a Content-Length body or a chunk; `u64::MAX` for a body that runs until the
    /// connection closes): the caller may [`skip`](Self::skip) up to that many
    /// unread. `None` while it needs to see the bytes (heads, chunk sizes).
    pub fn body_left(&self) -> Option<u64> {
        match self.body {
            Body::Length(n) | Body::ChunkData(n) => Some(n),
            Body::UntilClose => Some(u64::MAX),
            _ => None,
        }
    }

    /// Takes `n` body bytes (at most [`body_left`](Self::body_left)) that the caller
    /// consumed without reading: the response they complete, if any.
    pub fn skip(&mut self, n: u64) -> Option<ResponseMeta> {
        let left = self.body_left()?;
        let n = n.min(left);
        self.bytes += n;
        match self.body {
            Body::Length(_) if n == left => return self.finish(0).complete,
            Body::Length(_) => self.body = Body::Length(left - n),
            Body::ChunkData(_) if n == left => self.body = Body::ChunkCrlf { cr: false },
            Body::ChunkData(_) => self.body = Body::ChunkData(left - n),
            _ => {}
        }
        None
    }

    /// The connection ended with `unconsumed` bytes left in the caller's buffer (the
    /// start of a head): completes a body delimited by the close, fails if a response
    /// was cut short, and returns `None` if no response was in progress.
    pub fn eof(&mut self, unconsumed: usize) -> Result<Option<ResponseMeta>, ResponseError> {
        match self.body {
            Body::UntilClose => Ok(self.finish(0).complete),
            Body::Head if self.bytes == 0 && unconsumed == 0 => Ok(None),
            _ => Err(ResponseError::Truncated),
        }
    }

    fn finish(&mut self, consumed: usize) -> Progress {
        let meta = ResponseMeta {
            status: self.status,
            keep_alive: self.keep_alive && self.body != Body::UntilClose,
            bytes: self.bytes,
        };
        self.body = Body::Head;
        self.status = 0;
        self.bytes = 0;
        Progress {
            consumed,
            complete: Some(meta),
        }
    }

    /// Parses a head at the start of `input`; `None` if incomplete. Sets the body
    /// state; for a bodiless response leaves `Body::Head` with `status` set.
    fn parse_head(&mut self, input: &[u8]) -> Result<Option<usize>, ResponseError> {
        if let Some(fields) = self.last_fields {
            let n = self.last_head.len();
            if input.get(..n) == Some(&self.last_head[..]) {
                self.bytes += n as u64;
                self.start_body(fields);
                return Ok(Some(n));
            }
        }
        // Uninitialised scratch: no clearing of 100 header slots per response.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            input,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if input.len() >= self.max_head {
                    return Err(ResponseError::HeadTooLarge(self.max_head));
                }
                return Ok(None);
            }
            Err(e) => return Err(ResponseError::Head(head_error(e))),
        };
        let (Some(status), Some(minor)) = (resp.code, resp.version) else {
            return Err(ResponseError::Head("incomplete status line"));
        };
        // RFC 9110 section 15: a status code is three digits from 100 to 599.
        if !(100..600).contains(&status) {
            return Err(ResponseError::Head("status code outside 100-599"));
        }
        self.bytes += n as u64;
        if status == 101 {
            return Err(ResponseError::SwitchingProtocols);
        }
        if (100..200).contains(&status) {
            // Interim response: skip it, the final one follows.
            self.status = 0;
            self.body = Body::Head;
            return Ok(Some(n));
        }
        // `close` wins over `keep-alive`, in whatever order they come.
        let mut close = false;
        let mut keep_alive_asked = false;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut transfer_coding = false;
        // httparse admits no ASCII whitespace in a header value but spaces and tabs, so
        // `trim_ascii` trims exactly the optional whitespace around list members.
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive_asked = true;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                for item in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    let n = parse_decimal(item).ok_or(ResponseError::ContentLength)?;
                    if length.is_some_and(|m| m != n) {
                        return Err(ResponseError::ContentLength);
                    }
                    length = Some(n);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_coding = true;
                chunked = h
                    .value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .next_back()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            }
        }
        let fields = HeadFields {
            status,
            keep_alive: !close && (minor == 1 || keep_alive_asked),
            length,
            transfer_coding,
            chunked,
        };
        if n <= MAX_REMEMBERED_HEAD {
            self.last_head.clear();
            self.last_head.extend_from_slice(&input[..n]);
            self.last_fields = Some(fields);
        }
        self.start_body(fields);
        Ok(Some(n))
    }

    /// Takes in what a final response's head said: sets the status and the body state.
    fn start_body(&mut self, fields: HeadFields) {
        let HeadFields {
            status,
            keep_alive,
            length,
            transfer_coding,
            chunked,
        } = fields;
        self.status = status;
        self.keep_alive = keep_alive;
        self.body = if self.head_request || status == 204 || status == 304 {
            Body::Head
        } else if transfer_coding {
            // Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3).
            if chunked {
                Body::ChunkSize {
                    line: 0,
                    ended: false,
                    size: 0,
                    digits: 0,
                }
            } else {
                Body::UntilClose
            }
        } else {
            match length {
                Some(0) => Body::Head,
                Some(n) => Body::Length(n),
                None => Body::UntilClose,
            }
        };
    }

    /// Runs the chunked-body state machine over `input`: (bytes consumed, body done).
    fn chunked(&mut self, input: &[u8]) -> Result<(usize, bool), ResponseError> {
        let mut i = 0;
        while i < input.len() {
            match &mut self.body {
                Body::ChunkSize {
                    line,
                    ended,
                    size,
                    digits,
                } => {
                    let b = input[i];
                    i += 1;
                    *line += 1;
                    if *line > MAX_CHUNK_LINE {
                        return Err(ResponseError::ChunkSize);
                    }
                    match b {
                        b'\n' => {
                            if *digits == 0 {
                                return Err(ResponseError::ChunkSize);
                            }
                            self.body = if *size == 0 {
                                Body::Trailers { total: 0, line: 0 }
                            } else {
                                Body::ChunkData(*size)
                            };
                        }
                        b'\r' => *ended = true,
                        _ if *ended => {
                            if b < b' ' && b != b'\t' {
                                return Err(ResponseError::ChunkSize);
                            }
                        }
                        b';' | b' ' | b'\t' => *ended = true,
                        _ => {
                            let d = hex_digit(b).ok_or(ResponseError::ChunkSize)?;
                            *digits += 1;
                            if *digits > 16 {
                                return Err(ResponseError::ChunkSize);
                            }
                            *size = (*size << 4) | u64::from(d);
                        }
                    }
                }
                Body::ChunkData(remaining) => {
                    let take = (*remaining).min((input.len() - i) as u64);
                    i += take as usize;
                    *remaining -= take;
                    if *remaining == 0 {
                        self.body = Body::ChunkCrlf { cr: false };
                    }
                }
                Body::ChunkCrlf { cr } => {
                    let b = input[i];
                    i += 1;
                    match (b, *cr) {
                        (b'\r', false) => *cr = true,
                        (b'\n', _) => {
                            self.body = Body::ChunkSize {
                                line: 0,
                                ended: false,
                                size: 0,
                                digits: 0,
                            }
                        }
                        _ => return Err(ResponseError::ChunkEnd),
                    }
                }
                Body::Trailers { total, line } => {
                    let b = input[i];
                    i += 1;
                    *total += 1;
                    if *total > MAX_TRAILERS {
                        return Err(ResponseError::Trailers);
                    }
                    match b {
                        b'\r' => {}
                        b'\n' if *line == 0 => return Ok((i, true)),
                        b'\n' => *line = 0,
                        _ => {
                            if b < b' ' && b != b'\t' {
                                return Err(ResponseError::Trailers);
                            }
                            *line += 1;
                        }
                    }
                }
                Body::Head | Body::Length(_) | Body::UntilClose => break,
            }
        }
        Ok((i, false))
    }
}

fn head_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes through a buffer, as a connection does;
    /// returns the completed responses, then the end-of-stream result.
    fn run(input: &[u8], step: usize, head: &[bool]) -> Result<Vec<ResponseMeta>, ResponseError> {
        let mut p = ResponseParser::new(4096);
        let mut done = Vec::new();
        p.expect(head.first().copied().unwrap_or(false));
        let mut buf: Vec<u8> = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let progress = p.feed(&buf)?;
                buf.drain(..progress.consumed);
                match progress.complete {
                    Some(meta) => {
                        done.push(meta);
                        p.expect(head.get(done.len()).copied().unwrap_or(false));
                    }
                    None => break,
                }
            }
        }
        if let Some(meta) = p.eof(buf.len())? {
            done.push(meta);
        }
        Ok(done)
    }

    /// [`run`], but body bytes the parser only counts are skipped unread whenever
    /// nothing is buffered, up to `step` at a time, as a connection discards them.
    fn run_skipping(input: &[u8], step: usize) -> Result<Vec<ResponseMeta>, ResponseError> {
        let mut p = ResponseParser::new(4096);
        let (mut done, mut buf, mut pos) = (Vec::new(), Vec::new(), 0);
        while pos < input.len() {
            let available = (input.len() - pos).min(step.max(1));
            match p.body_left() {
                Some(left) if buf.is_empty() && left > 0 => {
                    let n = left.min(available as u64);
                    pos += n as usize;
                    done.extend(p.skip(n));
                    continue;
                }
                _ => {}
            }
            buf.extend_from_slice(&input[pos..pos + available]);
            pos += available;
            loop {
                let progress = p.feed(&buf)?;
                buf.drain(..progress.consumed);
                match progress.complete {
                    Some(meta) => done.push(meta),
                    None => break,
                }
            }
        }
        if let Some(meta) = p.eof(buf.len())? {
            done.push(meta);
        }
        Ok(done)
    }

    fn all_steps(input: &[u8], head: &[bool]) -> Result<Vec<ResponseMeta>, ResponseError> {
        let whole = run(input, input.len(), head);
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(run(input, step, head), whole, "step {step}");
            if head.is_empty() {
                assert_eq!(run_skipping(input, step), whole, "skipping, step {step}");
            }
        }
        whole
    }

    #[test]
    fn skipped_body_bytes_count_as_read_ones() {
        let mut p = ResponseParser::new(4096);
        assert_eq!(p.body_left(), None, "a head comes first");
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(p.feed(head).unwrap().consumed, head.len());
        assert_eq!(p.body_left(), Some(10));
        assert_eq!(p.skip(4), None);
        assert_eq!(p.body_left(), Some(6));
        // Never past the body: the next response's bytes are not taken.
        assert_eq!(p.skip(100), Some(meta(200, true, head.len() + 10)));
        assert_eq!(p.body_left(), None);
        let until_close = b"HTTP/1.0 200 OK\r\n\r\n";
        p.feed(until_close).unwrap();
        assert_eq!(p.body_left(), Some(u64::MAX));
        assert_eq!(p.skip(1 << 20), None);
        assert_eq!(
            p.eof(0).unwrap(),
            Some(meta(200, false, until_close.len() + (1 << 20)))
        );
    }

    fn meta(status: u16, keep_alive: bool, bytes: usize) -> ResponseMeta {
        ResponseMeta {
            status,
            keep_alive,
            bytes: bytes as u64,
        }
    }

    #[test]
    fn content_length_bodies() {
        let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let r2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let input = [&r1[..], r2].concat();
        assert_eq!(
            all_steps(&input, &[]).unwrap(),
            vec![meta(200, true, r1.len()), meta(404, true, r2.len())]
        );
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
5;name=value\r\nhello\r\nA \r\n0123456789\r\n0\r\nX-Trailer: yes\r\nY: z\r\n\r\n";
        let tail = b"HTTP/1.1 204 No Content\r\n\r\n";
        let input = [&r[..], tail].concat();
        assert_eq!(
            all_steps(&input, &[]).unwrap(),
            vec![meta(200, true, r.len()), meta(204, true, tail.len())]
        );
        // Bare LF line endings are tolerated.
        let lf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n";
        assert_eq!(all_steps(lf, &[]).unwrap(), vec![meta(200, true, lf.len())]);
    }

    #[test]
    fn bodiless_responses() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        let not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n";
        let input = [&head[..], not_modified].concat();
        assert_eq!(
            all_steps(&input, &[true, false]).unwrap(),
            vec![
                meta(200, true, head.len()),
                meta(304, true, not_modified.len())
            ]
        );
    }

    #[test]
    fn interim_responses_are_skipped() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(
            all_steps(input, &[]).unwrap(),
            vec![meta(200, true, input.len())]
        );
    }

    #[test]
    fn keep_alive_rules() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(!all_steps(close, &[]).unwrap()[0].keep_alive);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!all_steps(old, &[]).unwrap()[0].keep_alive);
        let old_ka = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert!(all_steps(old_ka, &[]).unwrap()[0].keep_alive);
        let both = b"HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert!(!all_steps(both, &[]).unwrap()[0].keep_alive);
    }

    #[test]
    fn bodies_until_close() {
        let r = b"HTTP/1.1 200 OK\r\n\r\nsome bytes until the end";
        assert_eq!(all_steps(r, &[]).unwrap(), vec![meta(200, false, r.len())]);
        let te = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(
            all_steps(te, &[]).unwrap(),
            vec![meta(200, false, te.len())]
        );
    }

    #[test]
    fn truncation_is_an_error() {
        for cut in [
            &b"HTTP/1.1 200 OK\r\nContent-Le"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        ] {
            assert_eq!(run(cut, 3, &[]), Err(ResponseError::Truncated), "{cut:?}");
        }
        assert_eq!(run(b"", 1, &[]), Ok(vec![]));
    }

    #[test]
    fn malformed_responses_are_typed_errors() {
        let cases: [(&[u8], ResponseError); 13] = [
            (
                b"HTTP/1.1 abc OK\r\n\r\n",
                ResponseError::Head("invalid status"),
            ),
            (
                b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
                ResponseError::Head("status code outside 100-599"),
            ),
            (
                b"HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n",
                ResponseError::Head("status code outside 100-599"),
            ),
            (
                b"HTTP/2 200 OK\r\n\r\n",
                ResponseError::Head("invalid HTTP version"),
            ),
            (
                b"garbage\r\n\r\n",
                ResponseError::Head("invalid HTTP version"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
                ResponseError::Head("invalid header name"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                ResponseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ResponseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                ResponseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
                ResponseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
                ResponseError::ChunkEnd,
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                ResponseError::SwitchingProtocols,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(run(input, input.len(), &[]), Err(want), "{input:?}");
        }
        let empty_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n";
        assert_eq!(run(empty_size, 100, &[]), Err(ResponseError::ChunkSize));
    }

    /// Responses whose heads repeat, or nearly repeat, the one before: each means what
    /// it means parsed alone (a HEAD response's head included), and an exact repeat is
    /// taken from the remembered head.
    #[test]
    fn a_repeated_head_is_recognised_and_means_what_it_meant() {
        let get = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..];
        let head_only = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..];
        let shorter = &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..];
        let longer = &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello"[..];
        let chunked =
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"[..];
        let close = &b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz"[..];
        let sequence: [(&[u8], bool); 10] = [
            (get, false),
            (get, false),
            (head_only, true),
            (get, false),
            (shorter, false),
            (longer, false),
            (longer, false),
            (chunked, false),
            (chunked, false),
            (close, false),
        ];
        let input: Vec<u8> = sequence
            .iter()
            .flat_map(|(r, _)| r.iter().copied())
            .collect();
        let heads: Vec<bool> = sequence.iter().map(|&(_, head)| head).collect();
        let alone: Vec<ResponseMeta> = sequence
            .iter()
            .map(|&(r, head)| run(r, r.len(), &[head]).unwrap()[0])
            .collect();
        assert_eq!(all_steps(&input, &heads), Ok(alone));

        // The second copy of a head is taken from memory, not parsed again.
        let mut p = ResponseParser::new(4096);
        assert_eq!(
            p.feed(get).unwrap().complete,
            Some(meta(200, true, get.len()))
        );
        p.last_fields = p.last_fields.map(|f| HeadFields { status: 299, ..f });
        assert_eq!(
            p.feed(get).unwrap().complete,
            Some(meta(299, true, get.len()))
        );
        // A head too long to remember is parsed each time.
        let mut p = ResponseParser::new(4096);
        let long = [
            &b"HTTP/1.1 204 No Content\r\nX: "[..],
            &[b'a'; MAX_REMEMBERED_HEAD],
            b"\r\n\r\n",
        ]
        .concat();
        assert_eq!(p.feed(&long).unwrap().complete.map(|m| m.status), Some(204));
        assert!(p.last_fields.is_none() && p.last_head.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let mut p = ResponseParser::new(64);
        let big_head = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 100]].concat();
        assert_eq!(p.feed(&big_head), Err(ResponseError::HeadTooLarge(64)));
        // A long chunk-size line.
        let mut p = ResponseParser::new(4096);
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;";
        let n = p.feed(head).unwrap().consumed;
        assert_eq!(n, head.len());
        assert_eq!(
            p.feed(&[b'x'; MAX_CHUNK_LINE]),
            Err(ResponseError::ChunkSize)
        );
        // Endless trailers.
        let mut p = ResponseParser::new(4096);
        p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
            .unwrap();
        let line = b"X: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n";
        let mut result = Ok(());
        for _ in 0..1000 {
            if let Err(e) = p.feed(line) {
                result = Err(e);
                break;
            }
        }
        assert_eq!(result, Err(ResponseError::Trailers));
        // A large Content-Length body is counted, not stored.
        let mut p = ResponseParser::new(4096);
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        let chunk = [0u8; 10_000];
        let mut complete = None;
        for _ in 0..100 {
            let progress = p.feed(&chunk).unwrap();
            assert_eq!(progress.consumed, chunk.len());
            complete = complete.or(progress.complete);
        }
        assert_eq!(complete.map(|m| m.status), Some(200));
        assert!(!p.in_progress());
    }
}
