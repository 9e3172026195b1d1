//! Access logging: one record per response, in the Common Log Format.
//!
//! The connection logic hands each [`LogEntry`] to an [`AccessLog`]; the binary's
//! implementation formats it with [`LogEntry::write_clf`] into a buffer and writes the
//! buffer to a file or stdout in batches. Logging is off (no sink) by default.

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::date::unix_secs;
use crate::request::Version;

/// Receives a record of every response sent.
pub trait AccessLog {
    /// Records one response.
    fn record(&self, entry: &LogEntry<'_>);
}

/// One response, as logged.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    /// The client's address, if the transport knows it.
    pub peer: Option<SocketAddr>,
    /// When the response was produced.
    pub time: SystemTime,
    /// The request method token (`-` for requests that could not be parsed).
    pub method: &'a str,
    /// The request-target as sent (`-` if unparsed).
    pub target: &'a str,
    /// The request version, if parsed.
    pub version: Option<Version>,
    /// The status code sent.
    pub status: u16,
    /// Body bytes sent (the CLF "bytes" field; heads are not counted).
    pub body_bytes: u64,
}

impl LogEntry<'_> {
    /// Appends the entry in Common Log Format with a trailing newline:
    /// `127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] "GET / HTTP/1.1" 200 1024`.
    /// Bytes of the request line that could forge log structure (`"`, `\`, control and
    /// non-ASCII bytes) are written as `\xHH`.
    pub fn write_clf(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self.peer {
            Some(peer) => {
                let _ = write!(out, "{}", peer.ip());
            }
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" - - [");
        write_clf_time(unix_secs(self.time), out);
        out.extend_from_slice(b"] \"");
        escape(self.method.as_bytes(), out);
        out.push(b' ');
        escape(self.target.as_bytes(), out);
        if let Some(v) = self.version {
            out.push(b' ');
            out.extend_from_slice(v.as_str().as_bytes());
        }
        let _ = writeln!(out, "\" {} {}", self.status, self.body_bytes);
    }
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
    }
}

/// Appends `dd/Mon/yyyy:hh:mm:ss +0000` for `secs` since the epoch (UTC).
fn write_clf_time(secs: u64, out: &mut Vec<u8>) {
    use std::io::Write;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// Gregorian (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn common_log_format() {
        let entry = LogEntry {
            peer: Some("10.1.2.3:5555".parse().unwrap()),
            time: UNIX_EPOCH + Duration::from_secs(784_111_777),
            method: "GET",
            target: "/a\"b\\c",
            version: Some(Version::Http11),
            status: 200,
            body_bytes: 1024,
        };
        let mut out = Vec::new();
        entry.write_clf(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "10.1.2.3 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\x22b\\x5cc HTTP/1.1\" 200 1024\n"
        );
        let entry = LogEntry {
            peer: None,
            method: "-",
            target: "-",
            version: None,
            status: 400,
            body_bytes: 0,
            ..entry
        };
        let mut out = Vec::new();
        entry.write_clf(&mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("- - - [06/Nov/1994"));
    }

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        let mut out = Vec::new();
        write_clf_time(951_782_400 + 86_399, &mut out);
        assert_eq!(out, b"29/Feb/2000:23:59:59 +0000");
    }
}
