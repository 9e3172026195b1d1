//! Status codes and response-head writing into a reusable buffer.
//!
//! Heads are written straight into the connection's output `Vec<u8>`: no per-response
//! allocation once the buffer has grown to its working size. Numbers go through `itoa`,
//! the date through the per-second [`DateCache`](crate::DateCache).

use crate::media_types::MediaTypes;

/// The value of the `Server` header.
pub const SERVER: &str = concat!("webserver/", env!("CARGO_PKG_VERSION"));

/// The statuses the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200
    Ok,
    /// 206
    PartialContent,
    /// 301
    MovedPermanently,
    /// 304
    NotModified,
    /// 400
    BadRequest,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408
    RequestTimeout,
    /// 411
    LengthRequired,
    /// 412
    PreconditionFailed,
    /// 413
    ContentTooLarge,
    /// 414
    UriTooLong,
    /// 416
    RangeNotSatisfiable,
    /// 431
    HeadersTooLarge,
    /// 500
    InternalServerError,
    /// 501
    NotImplemented,
    /// 503
    ServiceUnavailable,
    /// 505
    VersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::LengthRequired => 411,
            Status::PreconditionFailed => 412,
            Status::ContentTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeadersTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::PartialContent => "Partial Content",
            Status::MovedPermanently => "Moved Permanently",
            Status::NotModified => "Not Modified",
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::LengthRequired => "Length Required",
            Status::PreconditionFailed => "Precondition Failed",
            Status::ContentTooLarge => "Content Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::HeadersTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// Writes a response head into `out`: [`Head::start`], any headers, [`Head::finish`].
pub struct Head<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Head<'a> {
    /// Appends the status line (always `HTTP/1.1`, the highest version we speak, as RFC
    /// 9110 section 6.2 asks), `Server` and `Date`.
    pub fn start(out: &'a mut Vec<u8>, status: Status, date: &[u8]) -> Self {
        out.extend_from_slice(b"HTTP/1.1 ");
        let mut code = itoa::Buffer::new();
        out.extend_from_slice(code.format(status.code()).as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.reason().as_bytes());
        out.extend_from_slice(b"\r\nServer: ");
        out.extend_from_slice(SERVER.as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
        Head { out }
    }

    /// Appends `name: value`.
    pub fn header(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        self.out.extend_from_slice(value);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends `name: <decimal n>`.
    pub fn header_u64(&mut self, name: &str, n: u64) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        self.header(name, digits.format(n).as_bytes())
    }

    /// Appends `Content-Range: bytes first-last/len`.
    pub fn content_range(&mut self, first: u64, last: u64, len: u64) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        self.out.extend_from_slice(b"Content-Range: bytes ");
        self.out.extend_from_slice(digits.format(first).as_bytes());
        self.out.push(b'-');
        self.out.extend_from_slice(digits.format(last).as_bytes());
        self.out.push(b'/');
        self.out.extend_from_slice(digits.format(len).as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends `Content-Type` for a file named `name`, as `types` says (with
    /// `charset=utf-8` for text).
    pub fn content_type_for(&mut self, name: &[u8], types: &MediaTypes) -> &mut Self {
        let (mime, charset) = types.content_type(name);
        self.out.extend_from_slice(b"Content-Type: ");
        self.out.extend_from_slice(mime.as_bytes());
        if charset {
            self.out.extend_from_slice(b"; charset=utf-8");
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends the `Connection` header the response needs and the blank line ending the
    /// head: `close` when the connection will close, `keep-alive` for an HTTP/1.0
    /// client that asked for it, nothing for HTTP/1.1 keep-alive.
    pub fn finish(self, keep_alive: bool, http10: bool) {
        if !keep_alive {
            self.out.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            self.out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Whether `value` may be sent as a header field value: visible ASCII, spaces and tabs
/// inside, not empty, no leading or trailing whitespace (RFC 9110 section 5.5, without
/// the obsolete non-ASCII text).
pub fn is_field_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value
            .iter()
            .all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        && !matches!(value.first(), Some(b' ' | b'\t'))
        && !matches!(value.last(), Some(b' ' | b'\t'))
}

/// Appends the small HTML page sent with an error status.
pub fn error_page(status: Status, out: &mut Vec<u8>) {
    let mut code = itoa::Buffer::new();
    let code = code.format(status.code()).as_bytes();
    let reason = status.reason().as_bytes();
    out.extend_from_slice(b"<!DOCTYPE html>\n<html><head><title>");
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"</title></head>\n<body><h1>");
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"</h1><hr><p>");
    out.extend_from_slice(SERVER.as_bytes());
    out.extend_from_slice(b"</p></body></html>\n");
}

/// The length of [`error_page`] for `status`, without writing it.
pub fn error_page_len(status: Status) -> usize {
    const FIXED: usize = "<!DOCTYPE html>\n<html><head><title>".len()
        + " ".len()
        + "</title></head>\n<body><h1>".len()
        + " ".len()
        + "</h1><hr><p>".len()
        + SERVER.len()
        + "</p></body></html>\n".len();
    FIXED + 2 * (3 + status.reason().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_layout() {
        let mut out = Vec::new();
        let mut head = Head::start(
            &mut out,
            Status::PartialContent,
            b"Sun, 06 Nov 1994 08:49:37 GMT",
        );
        head.header_u64("Content-Length", 10)
            .content_range(0, 9, 100)
            .content_type_for(b"a.txt", &MediaTypes::default())
            .header("ETag", b"\"x\"");
        head.finish(true, false);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 206 Partial Content\r\nServer: {SERVER}\r\n\
                 Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 10\r\n\
                 Content-Range: bytes 0-9/100\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 ETag: \"x\"\r\n\r\n"
            )
        );
    }

    #[test]
    fn connection_header() {
        let finish = |ka, h10| {
            let mut out = Vec::new();
            Head::start(&mut out, Status::Ok, b"d").finish(ka, h10);
            String::from_utf8(out).unwrap()
        };
        assert!(finish(false, false).ends_with("Connection: close\r\n\r\n"));
        assert!(finish(false, true).ends_with("Connection: close\r\n\r\n"));
        assert!(finish(true, true).ends_with("Connection: keep-alive\r\n\r\n"));
        assert!(!finish(true, false).contains("Connection"));
    }

    #[test]
    fn field_values() {
        assert!(is_field_value(b"public, max-age=3600"));
        assert!(is_field_value(b"no-store"));
        for bad in [
            &b""[..],
            b" x",
            b"x ",
            b"a\r\nSet-Cookie: x",
            b"a\nb",
            b"\xc3\xa9",
            b"a\0",
        ] {
            assert!(!is_field_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn error_pages_have_the_announced_length() {
        for status in [
            Status::NotFound,
            Status::HeadersTooLarge,
            Status::VersionNotSupported,
        ] {
            let mut out = Vec::new();
            error_page(status, &mut out);
            assert_eq!(out.len(), error_page_len(status));
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains(&format!("<h1>{} {}</h1>", status.code(), status.reason())));
        }
    }
}
