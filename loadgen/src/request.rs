//! Requests rendered to bytes once, before the run.

use crate::url::Target;

/// Why a request could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The method is not an HTTP token.
    #[error("invalid method {0:?}")]
    BadMethod(String),
    /// A `-H` value is not `Name: value`, or holds a line break.
    #[error("invalid header {0:?}: expected \"Name: value\"")]
    BadHeader(String),
}

/// A header given with `-H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: String,
    /// The value (trimmed).
    pub value: String,
}

impl std::str::FromStr for Header {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, RequestError> {
        let bad = || RequestError::BadHeader(s.to_string());
        let (name, value) = s.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if !is_token(name) || value.bytes().any(|b| b < b' ' && b != b'\t' || b == 0x7f) {
            return Err(bad());
        }
        Ok(Header {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// One request, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTemplate {
    /// The bytes on the wire.
    pub bytes: Vec<u8>,
    /// Whether it is a HEAD request (its response has no body).
    pub head: bool,
}

/// Renders `method target.path HTTP/1.1` with `Host` (unless given in `headers`), the
/// extra `headers`, and `Connection: close` when `keep_alive` is off.
pub fn render(
    target: &Target,
    method: &str,
    headers: &[Header],
    keep_alive: bool,
) -> Result<RequestTemplate, RequestError> {
    if !is_token(method) {
        return Err(RequestError::BadMethod(method.to_string()));
    }
    let mut text = format!("{method} {} HTTP/1.1\r\n", target.path);
    if !headers.iter().any(|h| h.name.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {}\r\n", target.authority()));
    }
    for h in headers {
        text.push_str(&format!("{}: {}\r\n", h.name, h.value));
    }
    if !keep_alive
        && !headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("connection"))
    {
        text.push_str("Connection: close\r\n");
    }
    text.push_str("\r\n");
    Ok(RequestTemplate {
        bytes: text.into_bytes(),
        head: method.eq_ignore_ascii_case("HEAD"),
    })
}

/// An RFC 9110 token (method or header name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        "http://127.0.0.1:8080/a?b".parse().unwrap()
    }

    #[test]
    fn renders_get() {
        let r = render(&target(), "GET", &[], true).unwrap();
        assert_eq!(
            r.bytes,
            b"GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
        assert!(!r.head);
    }

    #[test]
    fn renders_headers_and_close() {
        let headers: Vec<Header> = ["X-A: 1", "User-Agent:  loadgen "]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        let r = render(&target(), "HEAD", &headers, false).unwrap();
        assert_eq!(
            String::from_utf8(r.bytes).unwrap(),
            "HEAD /a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\nUser-Agent: loadgen\r\nConnection: close\r\n\r\n"
        );
        assert!(r.head);
    }

    #[test]
    fn user_host_and_connection_override_defaults() {
        let headers: Vec<Header> = ["host: other", "Connection: keep-alive"]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        let r = render(&target(), "GET", &headers, false).unwrap();
        assert_eq!(
            String::from_utf8(r.bytes).unwrap(),
            "GET /a?b HTTP/1.1\r\nhost: other\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(render(&target(), "GE T", &[], true).is_err());
        assert!(render(&target(), "", &[], true).is_err());
        for bad in ["NoColon", ": v", "Bad Name: v", "X: a\r\nY: b", "X: \0"] {
            assert!(bad.parse::<Header>().is_err(), "{bad:?}");
        }
    }
}
