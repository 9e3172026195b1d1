//! The host's clocks, as every process on the machine reads them.

use std::time::Duration;

use crate::error::{Error, Result};

/// `CLOCK_MONOTONIC`: the time since boot, not counting suspend. It is the clock
/// `std::time::Instant` reads and the one the kernel's TCP timestamps tick by, and
/// every process reads the same value at one moment, so times taken in different
/// processes compare. Never decreases.
pub fn monotonic() -> Result<Duration> {
    let ts = read_monotonic().ok_or_else(|| Error::last("clock_gettime(CLOCK_MONOTONIC)"))?;
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// [`monotonic`] in nanoseconds, for hot paths: a few instructions after the clock
/// read (no `Duration` arithmetic). `clock_gettime(CLOCK_MONOTONIC)` with a valid
/// pointer does not fail on Linux (`Instant::now` treats a failure as a bug and
/// panics); were it to fail, this reads 0.
pub fn monotonic_ns() -> u64 {
    read_monotonic().map_or(0, |ts| {
        (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64)
    })
}

/// `clock_gettime(CLOCK_MONOTONIC)`; `None` if it failed (errno says why).
fn read_monotonic() -> Option<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0;
    ok.then_some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_time_moves_with_instant() {
        let (a, i) = (monotonic().unwrap(), std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (b, j) = (monotonic().unwrap(), std::time::Instant::now());
        let (ours, std) = (b - a, j - i);
        assert!(ours >= Duration::from_millis(20), "{ours:?}");
        let skew = ours.abs_diff(std);
        // Each pair of readings is a few ns apart, unless the thread is preempted
        // between them on a busy machine.
        assert!(skew < Duration::from_millis(15), "{ours:?} vs {std:?}");
    }

    #[test]
    fn monotonic_ns_is_monotonic_in_nanoseconds() {
        let (a, d, b) = (monotonic_ns(), monotonic().unwrap(), monotonic_ns());
        let d = d.as_nanos() as u64;
        assert!(a <= d && d <= b, "{a} {d} {b}");
    }
}
