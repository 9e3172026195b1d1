//! Time as a capability: the real monotonic clock, or a mock clock that only moves when
//! told (or, with auto-advance, jumps to the next timer when every thread is idle), so
//! a test of a ten-minute timeout runs in microseconds.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cancel::InCtx;
use crate::core::{Core, ThreadId};
use crate::error::{Error, Result};
use crate::syscall::{SimpleCall, SimpleKind};

/// A core's clock.
pub(crate) enum ClockKind {
    Real {
        base: Instant,
    },
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
        ClockKind::Real {
            base: Instant::now(),
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
            ClockKind::Real { base } => base.elapsed().as_nanos() as u64,
            ClockKind::Mock { offset, .. } => offset.get(),
        }
    }

    /// The clock's time as an `Instant`: `base() + now_ns()`, which the real clock
    /// reads without the round trip through ns.
    // The real clock is what this reads.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn now_instant(&self) -> Instant {
        match self {
            ClockKind::Real { .. } => Instant::now(),
            ClockKind::Mock { base, offset, .. } => *base + Duration::from_nanos(offset.get()),
        }
    }

    pub(crate) fn base(&self) -> Instant {
        match self {
            ClockKind::Real { base } | ClockKind::Mock { base, .. } => *base,
        }
    }

    pub(crate) fn real_elapsed_ns(&self) -> u64 {
        self.base().elapsed().as_nanos() as u64
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

struct TimerGuard {
    key: u64,
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        let _ = Core::with_current(|c| c.remove_ctx_timer(self.key));
    }
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
    let d = duration_ns(d);
    timed(move |core| core.now_ns().saturating_add(d), fut)
}

/// Runs `fut`, cancelling it if it has not finished by `deadline` on the current core's
/// clock: [`with_timeout`] for a deadline instead of a duration, without reading the
/// clock. A deadline already passed still starts `fut`, which times out at its first
/// suspension.
pub fn with_deadline<F, T>(deadline: Instant, fut: F) -> impl Future<Output = Result<T>>
where
    F: Future<Output = Result<T>>,
{
    timed(move |core| to_ns(core, deadline), fut)
}

/// Runs `fut` in a child cancellation context that a timer cancels at `deadline(core)`
/// (ns on the core clock), worked out when first polled.
fn timed<D, F, T>(deadline: D, fut: F) -> Timed<D, F>
where
    D: FnOnce(&Core) -> u64,
    F: Future<Output = Result<T>>,
{
    Timed {
        inner: InCtx::later(fut),
        guard: None,
        deadline: Some(deadline),
        unarmed: None,
    }
}

/// The future of [`with_timeout`] and [`with_deadline`]. Written by hand: an `async fn`
/// taking `fut` would hold it twice, as its argument and inside the context that runs
/// it. Fields drop in order: the wrapped future (restoring the thread's context and
/// releasing the timeout's), then the timer.
///
/// The timer is armed only once `fut` first suspends: a timer fires only while its
/// thread is suspended, so a `fut` that finishes in its first poll (a write the socket
/// takes at once, say) never needs one, and costs no timer.
struct Timed<D, F> {
    /// `fut` in the timeout's context (set at the first poll).
    inner: InCtx<F>,
    /// The armed timer; disarmed when `fut` finishes or this is dropped.
    guard: Option<TimerGuard>,
    /// The deadline, until the first poll works it out.
    deadline: Option<D>,
    /// The deadline (ns on the core clock) and the owning thread, from the first poll
    /// until `fut` first suspends and the timer is armed.
    unarmed: Option<(u64, ThreadId)>,
}

impl<D, F, T> Future for Timed<D, F>
where
    D: FnOnce(&Core) -> u64,
    F: Future<Output = Result<T>>,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`. The
        // other fields are never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above; `this.inner` stays in place.
        let mut inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        if let Some(deadline) = this.deadline.take() {
            let started = Core::with_current(|core| {
                let owner = core.current_thread()?;
                let parent = core.current_ctx().unwrap_or_else(|| core.root.ctx.clone());
                Some((core.ctx_pool.child(&parent, false), deadline(core), owner))
            })
            .flatten();
            let Some((ctx, at, owner)) = started else {
                return Poll::Ready(Err(Error::NoRuntime));
            };
            this.unarmed = Some((at, owner));
            inner.as_mut().set_ctx(ctx);
        }
        if inner.ctx().is_none() {
            // Polled again after it failed to start.
            return Poll::Ready(Err(Error::NoRuntime));
        }
        let Poll::Ready(r) = inner.as_mut().poll(cx) else {
            if let Some((at, owner)) = this.unarmed.take() {
                let ctx = inner.ctx().cloned();
                let armed = ctx.and_then(|ctx| {
                    Core::with_current(|core| core.add_ctx_timer(at, ctx, owner)).flatten()
                });
                let Some(key) = armed else {
                    // As a timeout that cannot be armed: the operation is dropped with this.
                    return Poll::Ready(Err(Error::NoRuntime));
                };
                this.guard = Some(TimerGuard { key });
            }
            return Poll::Pending;
        };
        let r = match r {
            Err(Error::Cancelled) if inner.ctx().is_some_and(|c| c.timed_out.get()) => {
                Err(Error::TimedOut)
            }
            other => other,
        };
        // Finished: the timer must not fire into whatever the thread does next.
        this.guard = None;
        if let Some(ctx) = inner.take_ctx() {
            let _ = Core::with_current(|core| core.ctx_pool.recycle(ctx));
        }
        Poll::Ready(r)
    }
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
