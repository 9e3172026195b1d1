//! Reports of conditions that can repeat on every request or accept, such as running
//! out of file descriptors: at most one line per interval, with the number of
//! occurrences left unreported since the previous line.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one report through per interval and counts the rest. Shared across cores.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// At most one report per `every`.
    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Counts one occurrence at `now`. `Some(n)` when it is to be reported, `n` being
    /// the occurrences suppressed since the last report; `None` when it is suppressed.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            st.suppressed += 1;
            return None;
        }
        st.last = Some(now);
        Some(std::mem::take(&mut st.suppressed))
    }

    /// Takes the count of occurrences suppressed since the last report, which no report
    /// has carried yet (for a last line when the program stops).
    pub fn take_suppressed(&self) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut st.suppressed)
    }
}

/// How often running out of file descriptors is reported, for the whole process.
pub const FD_REPORT_EVERY: Duration = Duration::from_secs(1);

static OUT_OF_DESCRIPTORS: Throttle = Throttle::new(FD_REPORT_EVERY);

/// Reports on stderr that `during` (`accept`, `open`) failed for lack of file
/// descriptors, unless it was reported less than [`FD_REPORT_EVERY`] ago (on any
/// core); then it is only counted, and the count goes with the next report.
pub fn report_out_of_descriptors(now: Instant, during: &str, e: &io::Error) {
    if let Some(suppressed) = OUT_OF_DESCRIPTORS.admit(now) {
        eprintln!("webserver: {}", fd_report(during, e, suppressed));
    }
}

/// Reports on stderr the occurrences of running out of file descriptors that came
/// after the last report and so were never reported (nothing if there were none):
/// called when the server stops, so that every occurrence is accounted for.
pub fn report_unreported_out_of_descriptors() {
    let suppressed = OUT_OF_DESCRIPTORS.take_suppressed();
    if suppressed > 0 {
        eprintln!(
            "webserver: out of file descriptors: {suppressed} more occurrences since the \
             last report"
        );
    }
}

fn fd_report(during: &str, e: &io::Error, suppressed: u64) -> String {
    let mut line = format!(
        "out of file descriptors ({during}: {e}): requests that need a file get 503, \
         accepts are retried"
    );
    if suppressed > 0 {
        line.push_str(&format!(
            "; {suppressed} more occurrences since the last report"
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Any instant does as a start; the clock is not read again.
    #[allow(clippy::disallowed_methods)]
    fn one_report_per_interval_with_the_count_of_the_rest() {
        let t = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(t.admit(at(0)), Some(0));
        assert_eq!(t.admit(at(10)), None);
        assert_eq!(t.admit(at(999)), None);
        assert_eq!(t.admit(at(1000)), Some(2));
        assert_eq!(t.admit(at(1500)), None);
        assert_eq!(t.admit(at(5000)), Some(1));
        assert_eq!(t.admit(at(6000)), Some(0));
        assert_eq!(t.admit(at(6001)), None);
        assert_eq!(t.admit(at(6002)), None);
        assert_eq!(t.take_suppressed(), 2, "the rest after the last report");
        assert_eq!(t.take_suppressed(), 0);
        assert_eq!(t.admit(at(6003)), None, "still within the interval");
    }

    #[test]
    fn the_report_says_what_failed_and_how_often() {
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        let line = fd_report("open", &e, 0);
        assert!(
            line.starts_with("out of file descriptors (open: "),
            "{line}"
        );
        assert!(!line.contains("more"), "{line}");
        let line = fd_report("accept", &e, 41);
        assert!(
            line.ends_with("; 41 more occurrences since the last report"),
            "{line}"
        );
    }
}
