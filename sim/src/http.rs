//! HTTP/1.1 read back from the bytes a connection carried, independently of the
//! server's and loadgen's own parsers: the requests one end sent and the responses the
//! other answered, so the oracles can judge each exchange.

/// A request as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// `GET`, `HEAD`, ... (empty when malformed).
    pub method: String,
    /// The target.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// Whether it carried `If-Modified-Since`.
    pub if_modified_since: bool,
    /// Whether `httparse` rejects it (the server must answer 400).
    pub malformed: bool,
    /// Whether it has more header lines than the server takes (answered 431).
    pub oversized: bool,
    /// Offset just past its last byte in the stream (the stream's end if malformed).
    pub end: usize,
}

/// The requests of a byte stream.
#[derive(Debug, Default)]
pub struct Requests {
    /// Complete requests (a malformed one ends the list).
    pub complete: Vec<SentRequest>,
    /// Bytes of an incomplete request head follow them.
    pub partial: bool,
}

impl SentRequest {
    /// Whether the response has no body.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Splits `bytes` into request heads (our clients send no request bodies).
pub fn requests(bytes: &[u8]) -> Requests {
    let mut out = Requests::default();
    let mut pos = 0;
    while pos < bytes.len() {
        let mut headers = [httparse::EMPTY_HEADER; webserver::request::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&bytes[pos..]) {
            Ok(httparse::Status::Complete(n)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                out.complete.push(SentRequest {
                    method: req.method.unwrap_or_default().to_owned(),
                    path: req.path.unwrap_or_default().to_owned(),
                    range: header("range"),
                    if_modified_since: header("if-modified-since").is_some(),
                    malformed: false,
                    oversized: false,
                    end: pos + n,
                });
                pos += n;
            }
            Ok(httparse::Status::Partial) => {
                out.partial = true;
                break;
            }
            Err(e) => {
                let oversized = e == httparse::Error::TooManyHeaders;
                out.complete.push(SentRequest {
                    method: String::new(),
                    path: String::new(),
                    range: None,
                    if_modified_since: false,
                    malformed: !oversized,
                    oversized,
                    end: bytes.len(),
                });
                break;
            }
        }
    }
    out
}

/// A response as the server sent it (or as far as it got).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentResponse {
    /// The status code.
    pub status: u16,
    /// `Content-Length`.
    pub content_length: Option<u64>,
    /// `Content-Range: bytes a-b/total`.
    pub content_range: Option<(u64, u64, u64)>,
    /// `Connection: close`.
    pub close: bool,
    /// Bytes of the head.
    pub head_len: usize,
    /// The body bytes present (all of them when `complete`).
    pub body: std::ops::Range<usize>,
    /// Whether the whole response is present.
    pub complete: bool,
}

impl SentResponse {
    /// Bytes of the response present in the stream.
    pub fn wire_len(&self) -> usize {
        self.head_len + self.body.len()
    }
}

/// Splits `bytes` into responses, up to one that closes the connection;
/// `head_only(i, at)` tells whether response `i`, starting at byte `at`, answers a
/// HEAD request. A trailing incomplete response is returned with `complete: false`
/// (without a head if even the head is incomplete: then `head_len` is 0 and the status
/// is 0). Fails on bytes that are not a response, or a response whose body length is
/// unknowable.
pub fn responses(
    bytes: &[u8],
    head_only: impl Fn(usize, usize) -> bool,
) -> Result<Vec<SentResponse>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&bytes[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                out.push(SentResponse {
                    status: 0,
                    content_length: None,
                    content_range: None,
                    close: false,
                    head_len: 0,
                    body: pos..pos,
                    complete: false,
                });
                break;
            }
            Err(e) => {
                let end = bytes.len().min(pos + 60);
                return Err(format!(
                    "bytes that are not an HTTP response at {pos} ({e}): {:?}",
                    String::from_utf8_lossy(&bytes[pos..end])
                ));
            }
        };
        let status = resp.code.unwrap_or(0);
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let content_length = match header("content-length") {
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            ),
            None => None,
        };
        let content_range = header("content-range").and_then(|v| parse_content_range(&v));
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let bodiless = head_only(out.len(), pos) || status == 304 || status == 204 || status < 200;
        let body_len = if bodiless {
            0
        } else {
            content_length.ok_or_else(|| format!("{status} response without Content-Length"))?
        };
        let start = pos + head_len;
        let end = start.saturating_add(usize::try_from(body_len).unwrap_or(usize::MAX));
        let complete = end <= bytes.len();
        let end = end.min(bytes.len());
        out.push(SentResponse {
            status,
            content_length,
            content_range,
            close,
            head_len,
            body: start..end,
            complete,
        });
        pos = end;
        if close {
            // Whatever follows a closing response is not read as a response.
            break;
        }
    }
    Ok(out)
}

/// `bytes a-b/total`.
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

/// What a `Range` header asks of a representation of `len` bytes: `Some(Some((a, b)))`
/// for the satisfiable span, `Some(None)` when unsatisfiable, `None` when the header is
/// not a single byte range (the server then ignores it). RFC 9110 section 14.1.2.
pub fn range_span(range: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let spec = range.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(None);
        }
        return Some(Some((len - n.min(len), len - 1)));
    }
    let a: u64 = a.parse().ok()?;
    let b: Option<u64> = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    if b.is_some_and(|b| b < a) {
        return None;
    }
    if a >= len {
        return Some(None);
    }
    Some(Some((a, b.map_or(len - 1, |b| b.min(len - 1)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_split_as_sent() {
        let r = requests(b"GET /f0 HTTP/1.1\r\nHost: a\r\nRange: bytes=1-2\r\n\r\nHEAD /f1 HTTP/1.1\r\nHost: a\r\n\r\nGET /");
        assert_eq!(r.complete.len(), 2);
        assert_eq!(r.complete[0].range.as_deref(), Some("bytes=1-2"));
        assert!(r.complete[1].is_head() && r.partial);
        let bad = requests(b"GET /f0 HTTP/1.1\r\nno colon\r\n\r\n");
        assert!(bad.complete[0].malformed);

        let bytes = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\nContent-Range: bytes 1-2/10\r\n\r\nabHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nxyz";
        let rs = responses(bytes, |i, _| i == 1).unwrap();
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[0].content_range, Some((1, 2, 10)));
        assert_eq!(&bytes[rs[0].body.clone()], b"ab");
        assert!(rs[1].complete && rs[1].body.is_empty());
        assert!(!rs[2].complete && rs[2].close && rs[2].body.len() == 3);
        assert!(responses(b"nonsense\r\n\r\n", |_, _| false).is_err());
    }

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(range_span("bytes=0-4", 10), Some(Some((0, 4))));
        assert_eq!(range_span("bytes=5-100", 10), Some(Some((5, 9))));
        assert_eq!(range_span("bytes=10-12", 10), Some(None));
        assert_eq!(range_span("bytes=-3", 10), Some(Some((7, 9))));
        assert_eq!(range_span("bytes=-30", 10), Some(Some((0, 9))));
        assert_eq!(range_span("bytes=-3", 0), Some(None));
        assert_eq!(range_span("bytes=4-2", 10), None);
    }
}
