//! `http://host[:port]/path?query` URLs.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://`.
    #[error("{0:?}: expected a URL like http://127.0.0.1:8080/path")]
    MissingScheme(String),
    /// `https://` or anything but `http://`.
    #[error("{url:?}: scheme {scheme:?} is not supported; loadgen speaks plain http://")]
    UnsupportedScheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// No host after `http://`.
    #[error("{0:?}: missing host")]
    MissingHost(String),
    /// `user:password@` is not supported.
    #[error("{0:?}: credentials in URLs are not supported")]
    UserInfo(String),
    /// The port is not a number in 1..=65535.
    #[error("{0:?}: invalid port")]
    BadPort(String),
    /// A space, control character or other byte that cannot go on a request line.
    #[error("{0:?}: invalid character in URL (percent-encode it)")]
    BadCharacter(String),
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// Path and query, starting with `/` (fragment removed).
    pub path: String,
}

impl Target {
    /// The `Host` header value: the host, bracketed if IPv6, with `:port` unless 80.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves the host (blocking, through the system resolver).
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

impl FromStr for Target {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let owned = || url.to_string();
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError::BadCharacter(owned()));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::MissingScheme(owned()))?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UrlError::UnsupportedScheme {
                url: owned(),
                scheme: scheme.to_string(),
            });
        }
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::UserInfo(owned()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| UrlError::MissingHost(owned()))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| UrlError::BadPort(owned()))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::MissingHost(owned()));
        }
        let port = match port {
            None => 80,
            Some(digits) => match digits.parse::<u16>() {
                Ok(p) if p != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => p,
                _ => return Err(UrlError::BadPort(owned())),
            },
        };
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Target {
            host: host.to_string(),
            port,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        url.parse().unwrap()
    }

    #[test]
    fn parses_http_urls() {
        assert_eq!(
            t("http://127.0.0.1:8080/files/1k.txt"),
            Target {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/files/1k.txt".into()
            }
        );
        let u = t("http://example.com");
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        assert_eq!(u.authority(), "example.com");
        assert_eq!(t("HTTP://h/a?b=c#frag").path, "/a?b=c");
        assert_eq!(t("http://h?x=1").path, "/?x=1");
        let v6 = t("http://[::1]:9000/x");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert_eq!(v6.authority(), "[::1]:9000");
        assert_eq!(t("http://[::1]/").authority(), "[::1]");
        assert_eq!(v6.to_string(), "http://[::1]:9000/x");
    }

    #[test]
    fn rejects_bad_urls() {
        use UrlError::*;
        let e = |u: &str| u.parse::<Target>().unwrap_err();
        assert!(matches!(e("https://h/"), UnsupportedScheme { .. }));
        assert!(e("https://h/").to_string().contains("plain http://"));
        assert!(matches!(e("ftp://h/"), UnsupportedScheme { .. }));
        assert!(matches!(e("127.0.0.1:8080/"), MissingScheme(_)));
        assert!(matches!(e("http:///x"), MissingHost(_)));
        assert!(matches!(e("http://:80/"), MissingHost(_)));
        assert!(matches!(e("http://h:0/"), BadPort(_)));
        assert!(matches!(e("http://h:99999/"), BadPort(_)));
        assert!(matches!(e("http://h:+80/"), BadPort(_)));
        assert!(matches!(e("http://h:/"), BadPort(_)));
        assert!(matches!(e("http://[::1/"), MissingHost(_)));
        assert!(matches!(e("http://[::1]x/"), BadPort(_)));
        assert!(matches!(e("http://u:p@h/"), UserInfo(_)));
        assert!(matches!(e("http://h/a b"), BadCharacter(_)));
        assert!(matches!(e("http://h/\r\nX: y"), BadCharacter(_)));
    }

    #[test]
    fn resolves_literals() {
        let addrs = t("http://127.0.0.1:8080/").resolve().unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
    }
}
