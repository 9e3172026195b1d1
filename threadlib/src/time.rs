//! Time as a capability: the real monotonic clock, or a mock clock that only moves when
//! told (or, with auto-advance, jumps to the next timer when every thread is idle), so
//! a test of a ten-minute timeout runs in microseconds.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::core::Core;
use crate::deadline::{Bounded, Deadline, Due};
use crate::error::{Error, Result};
use crate::syscall::{SimpleCall, SimpleKind};

/// A core's clock.
pub(crate) enum ClockKind {
    /// The host's monotonic clock. Its time in ns is read as `CLOCK_MONOTONIC` minus
    /// `base_raw` (no `Instant` arithmetic on the scheduler's path), which relies on
    /// `Instant` reading `CLOCK_MONOTONIC`, as std's does on Linux. `base_raw` was
    /// read just after `base`, so that count trails `Instant::now() - base` by the
    /// nanoseconds between those two readings (normally under a microsecond, see
    /// [`ClockKind::real`]): a timer fires that much late, never early, and a thread
    /// it wakes reads an `Instant` at or past its deadline.
    Real { base: Instant, base_raw: u64 },
    Mock {
        base: Instant,
        offset: Cell<u64>,
        auto: bool,
    },
}

impl ClockKind {
    // The real clock is what `real` is for.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn real() -> ClockKind {
        // `base`'s own raw reading lies between `before` and `base_raw`: retried
        // until they are close, so the count trails by less than that gap.
        const CLOSE_NS: u64 = 1_000;
        let mut tries = 0;
        loop {
            let before = iolib::clock::monotonic_ns();
            let base = Instant::now();
            let base_raw = iolib::clock::monotonic_ns();
            tries += 1;
            if base_raw.saturating_sub(before) < CLOSE_NS || tries == 8 {
                return ClockKind::Real { base, base_raw };
            }
        }
    }

    // Only as the opaque origin of virtual time: nothing observes its value.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn mock(auto: bool) -> ClockKind {
        ClockKind::Mock {
            base: Instant::now(),
            offset: Cell::new(0),
            auto,
        }
    }

    pub(crate) fn now_ns(&self) -> u64 {
        match self {
            ClockKind::Real { base_raw, .. } => {
                iolib::clock::monotonic_ns().saturating_sub(*base_raw)
            }
            ClockKind::Mock { offset, .. } => offset.get(),
        }
    }

    /// The clock's time as an `Instant`: `base() + now_ns()` on a mock clock;
    /// `Instant::now()` on the real one, which is ahead of `base() + now_ns()` by the
    /// gap between the base's two readings.
    // The real clock is what this reads.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn now_instant(&self) -> Instant {
        match self {
            ClockKind::Real { .. } => Instant::now(),
            ClockKind::Mock { base, offset, .. } => *base + Duration::from_nanos(offset.get()),
        }
    }

    /// `ns` on this clock as a `CLOCK_MONOTONIC` reading, for a kernel timer; `None`
    /// on a mock clock.
    pub(crate) fn raw_ns(&self, ns: u64) -> Option<u64> {
        match self {
            ClockKind::Real { base_raw, .. } => Some(base_raw.saturating_add(ns)),
            ClockKind::Mock { .. } => None,
        }
    }

    pub(crate) fn base(&self) -> Instant {
        match self {
            ClockKind::Real { base, .. } | ClockKind::Mock { base, .. } => *base,
        }
    }

    pub(crate) fn real_elapsed_ns(&self) -> u64 {
        match self {
            ClockKind::Real { .. } => self.now_ns(),
            ClockKind::Mock { base, .. } => base.elapsed().as_nanos() as u64,
        }
    }

    pub(crate) fn is_mock(&self) -> bool {
        matches!(self, ClockKind::Mock { .. })
    }

    pub(crate) fn auto_advance(&self) -> bool {
        matches!(self, ClockKind::Mock { auto: true, .. })
    }

    pub(crate) fn advance(&self, d: Duration) -> bool {
        match self {
            ClockKind::Mock { offset, .. } => {
                offset.set(offset.get().saturating_add(d.as_nanos() as u64));
                true
            }
            ClockKind::Real { .. } => false,
        }
    }
}

/// `t` in ns on `core`'s clock (0 for a time before its base).
pub(crate) fn to_ns(core: &Core, t: Instant) -> u64 {
    t.saturating_duration_since(core.clock.base()).as_nanos() as u64
}

/// The clock capability of the current core: pass it to code that needs time, and a
/// test can hand it a mock one by building the runtime with
/// [`Builder::mock_clock`](crate::Builder::mock_clock).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    _private: (),
}

impl Clock {
    /// The current core's clock.
    pub fn current() -> Result<Clock> {
        if !Core::is_entered() {
            return Err(Error::NoRuntime);
        }
        Ok(Clock { _private: () })
    }

    /// The current time on this clock.
    pub fn now(&self) -> Instant {
        now()
    }

    /// Whether this is a mock clock.
    pub fn is_mock(&self) -> bool {
        Core::with_current(|c| c.clock.is_mock()).unwrap_or(false)
    }

    /// Moves a mock clock forward by `d`; timers due by then fire at the scheduler's
    /// next pass. Fails on the real clock.
    pub fn advance(&self, d: Duration) -> Result<()> {
        advance(d)
    }

    /// Sleeps for `d` on this clock.
    pub async fn sleep(&self, d: Duration) -> Result<()> {
        sleep(d).await
    }
}

/// The current core's time (real or mock); outside a runtime, the real time.
// Outside a runtime there is no mock clock to read.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Core::with_current(|c| c.now_instant()).unwrap_or_else(Instant::now)
}

/// How long the current core's clock has run: the virtual time under a mock clock
/// (zero at the start), the real time since the core started otherwise; zero outside a
/// runtime. A simulation derives its wall-clock time from it.
pub fn elapsed() -> Duration {
    Core::with_current(|c| Duration::from_nanos(c.now_ns())).unwrap_or_default()
}

/// Timers armed on the current core: sleeping threads and pending timeouts (zero
/// outside a runtime). A quiet system has none beyond what its idle threads hold.
pub fn pending_timers() -> usize {
    Core::with_current(|c| c.pending_timers()).unwrap_or(0)
}

/// Moves the current core's mock clock forward by `d`.
pub fn advance(d: Duration) -> Result<()> {
    if Core::with_current(|c| c.clock.advance(d)).ok_or_else(|| Error::NoRuntime)? {
        Ok(())
    } else {
        Err(Error::other(
            "advance: the runtime uses the real clock (build it with mock_clock)",
        ))
    }
}

/// Suspends the calling thread for `d`.
pub fn sleep(d: Duration) -> impl Future<Output = Result<()>> {
    SimpleCall::new(SimpleKind::SleepFor, duration_ns(d))
}

/// `d` in ns, `u64::MAX` for any longer.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// Suspends the calling thread until `deadline` on the core's clock.
pub fn sleep_until(deadline: Instant) -> impl Future<Output = Result<()>> {
    let ns = Core::with_current(|core| to_ns(core, deadline)).unwrap_or(0);
    SimpleCall::new(SimpleKind::SleepUntil, ns)
}

/// Parses a duration: a number followed by `ms`, `s`, `m` or `h` (`500ms`, `10s`,
/// `2m`); a bare number is seconds. Fractions are allowed (`1.5s`). The error text is
/// ready for a command-line parser (clap's `value_parser`).
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 10s, 500ms, 2m"))?;
    let scale = match unit {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {text:?}: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Runs `fut`, cancelling it if it has not finished after `d` (Eio's
/// `Time.with_timeout`): its pending system call returns `Cancelled`, and if `fut`
/// then fails with `Cancelled` the result is [`Error::TimedOut`]. Works with borrowed
/// futures: no new thread is made, and a `fut` that finishes without suspending arms
/// no timer.
pub fn with_timeout<F, T>(d: Duration, fut: F) -> impl Future<Output = Result<T>>
where
    F: Future<Output = Result<T>>,
{
    Bounded::new(Deadline::new(), Due::Within(d), fut)
}

/// Runs `fut`, cancelling it if it has not finished by `deadline` on the current core's
/// clock: [`with_timeout`] for a deadline instead of a duration, without reading the
/// clock. A deadline already passed still starts `fut`, which times out at its first
/// suspension.
pub fn with_deadline<F, T>(deadline: Instant, fut: F) -> impl Future<Output = Result<T>>
where
    F: Future<Output = Result<T>>,
{
    Bounded::new(Deadline::new(), Due::At(deadline), fut)
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::runtime::on_mock_clock;

    /// The context a timeout ran its operation in is the one the core keeps for the
    /// next timeout.
    #[test]
    fn a_finished_timeout_gives_its_own_context_back_to_the_core() {
        let (used, spare) = on_mock_clock(async {
            let used = with_timeout(Duration::from_secs(1), async {
                crate::yield_now().await?;
                Ok(Core::with_current(|c| c.current_ctx())
                    .flatten()
                    .map(|c| Rc::as_ptr(&c)))
            })
            .await
            .unwrap();
            let spare = Core::with_current(|c| c.ctx_pool.spares());
            (used, spare.unwrap())
        });
        assert!(used.is_some());
        assert_eq!(spare, [used.unwrap()]);
    }

    /// A timeout cancelled by an enclosing one reports `Cancelled`; only the one whose
    /// own deadline passed reports `TimedOut`.
    #[test]
    fn only_the_timeout_that_expired_reports_timed_out() {
        let (inner_cancelled, outer) = on_mock_clock(async {
            let mut inner_cancelled = false;
            let outer = with_timeout(Duration::from_secs(1), async {
                let r = with_timeout(Duration::from_secs(3600), crate::park()).await;
                inner_cancelled = matches!(r, Err(Error::Cancelled));
                r
            })
            .await;
            (inner_cancelled, outer)
        });
        assert!(
            inner_cancelled,
            "the inner timeout did not report Cancelled"
        );
        assert!(matches!(outer, Err(Error::TimedOut)), "{outer:?}");
    }
}
