//! The `Date` header value, formatted once per second.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time (the real one is [`SystemTime::now`]; tests pass a
/// fixed one).
pub type WallClock = fn() -> SystemTime;

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// Caches the formatted `Date` value and reformats it only when the second changes.
/// One per core (it is not `Sync`).
#[derive(Debug)]
pub struct DateCache {
    clock: WallClock,
    secs: Cell<u64>,
    text: Cell<[u8; HTTP_DATE_LEN]>,
    /// The last value formatted by [`DateCache::format_secs`].
    memo: Cell<(u64, [u8; HTTP_DATE_LEN])>,
}

impl DateCache {
    /// A cache over `clock`.
    pub fn new(clock: WallClock) -> Self {
        DateCache {
            clock,
            secs: Cell::new(u64::MAX),
            text: Cell::new([b' '; HTTP_DATE_LEN]),
            memo: Cell::new((u64::MAX, [b' '; HTTP_DATE_LEN])),
        }
    }

    /// A cache over the system clock.
    // The real server's clock; a simulation passes its own to `new`.
    #[allow(clippy::disallowed_methods)]
    pub fn system() -> Self {
        DateCache::new(SystemTime::now)
    }

    /// The current time of the underlying clock.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// The current time as an HTTP date.
    pub fn http_date(&self) -> [u8; HTTP_DATE_LEN] {
        let now = self.now();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs.get() {
            self.text.set(format_http_date(now));
            self.secs.set(secs);
        }
        self.text.get()
    }
}

impl DateCache {
    /// `secs` since the epoch as an HTTP date, remembering the last value formatted
    /// (a server mostly sends the same few `Last-Modified` values).
    pub fn format_secs(&self, secs: u64) -> [u8; HTTP_DATE_LEN] {
        let (memo_secs, memo_text) = self.memo.get();
        if memo_secs == secs {
            return memo_text;
        }
        let text = http_date_bytes(secs);
        self.memo.set((secs, text));
        text
    }
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache::system()
    }
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime form) to whole seconds since
/// the epoch; `None` if invalid.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Whole seconds since the epoch (0 for times before it).
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `secs` since the epoch as an HTTP date.
pub fn http_date_bytes(secs: u64) -> [u8; HTTP_DATE_LEN] {
    format_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn format_http_date(time: SystemTime) -> [u8; HTTP_DATE_LEN] {
    let mut text = [b' '; HTTP_DATE_LEN];
    let mut cursor = &mut text[..];
    // An IMF-fixdate is exactly 29 bytes for years 1000..=9999 (all httpdate
    // formats); a clock outside that range leaves the tail blank rather than failing.
    let _ = write!(cursor, "{}", httpdate::HttpDate::from(time));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixed() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn formats_imf_fixdate() {
        let cache = DateCache::new(fixed);
        assert_eq!(&cache.http_date(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&cache.http_date(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn system_clock_gives_a_well_formed_date() {
        let date = DateCache::system().http_date();
        let text = std::str::from_utf8(&date).unwrap();
        assert!(text.ends_with(" GMT"));
        assert!(parse_http_date(&date).is_some());
    }

    #[test]
    fn parses_all_three_forms() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_http_date(form.as_bytes()),
                Some(784_111_777),
                "{form}"
            );
        }
        assert_eq!(parse_http_date(b"yesterday"), None);
        assert_eq!(parse_http_date(b"\xff"), None);
    }

    #[test]
    fn writes_dates() {
        assert_eq!(
            &http_date_bytes(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(unix_secs(fixed() + Duration::from_millis(999)), 784_111_777);
    }
}
