//! Operations bounded by a deadline or a timeout, for code that speaks of one
//! connection's failures in two kinds: the time ran out ([`TransportError::TimedOut`]),
//! or the operation failed ([`TransportError::Io`]).
//!
//! [`until`] and [`within`] run a thread-library operation under [`with_deadline`] and
//! [`with_timeout`], so a call that runs out of time is cancelled at its suspension
//! point: a network read that timed out has consumed nothing and its stream stays
//! usable. A [`Deadline`] does the same for a sequence of operations, such as one
//! connection's reads and writes, at a fraction of the cost per operation.

use std::borrow::BorrowMut;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cancel::{CancelCtx, InCtx, IDLE};
use crate::core::{Core, ThreadId};
use crate::time::{duration_ns, to_ns, with_deadline};
use crate::{with_timeout, Error};

/// Why an operation with a deadline failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The deadline passed before the operation could complete.
    #[error("deadline passed")]
    TimedOut,
    /// The operation failed (refused, reset, broken pipe, cancelled thread, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Error> for TransportError {
    /// [`Error::TimedOut`] is [`TransportError::TimedOut`]; every other error is an I/O
    /// error (see `From<Error> for io::Error`).
    fn from(e: Error) -> Self {
        match e {
            Error::TimedOut => TransportError::TimedOut,
            other => TransportError::Io(other.into()),
        }
    }
}

/// Runs `op` until `deadline` on the current core's clock ([`crate::time::now`]); a deadline
/// already passed still starts `op`, with no time to suspend.
pub fn until<T>(
    deadline: Instant,
    op: impl Future<Output = crate::Result<T>>,
) -> impl Future<Output = Result<T, TransportError>> {
    // Not `async fn`s, which would hold `op` twice (see `with_timeout`).
    Transport(with_deadline(deadline, op))
}

/// Runs `op` for at most `timeout`.
pub fn within<T>(
    timeout: Duration,
    op: impl Future<Output = crate::Result<T>>,
) -> impl Future<Output = Result<T, TransportError>> {
    Transport(with_timeout(timeout, op))
}

/// A future whose thread-library error becomes a [`TransportError`].
struct Transport<F>(F);

impl<F, T> Future for Transport<F>
where
    F: Future<Output = crate::Result<T>>,
{
    type Output = Result<T, TransportError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the one field is structurally pinned: it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|t| &mut t.0) };
        inner.poll(cx).map(|r| r.map_err(TransportError::from))
    }
}

/// A deadline shared by a sequence of operations, such as one connection's reads and
/// writes (as Go's `SetDeadline` is): [`Deadline::until`] runs each operation as the
/// free function [`until`] does (the same errors; cancelled at its suspension point; a
/// deadline already passed still starts it), but all of them share one cancellation
/// context and one timer entry.
///
/// What an operation costs: one that completes without suspending touches no timer. One
/// that suspends writes its deadline into the shared context; the timer entry is
/// pushed only when it would come due after that deadline (the first suspension, an
/// earlier deadline than before, or after the entry lapsed). An entry that comes due
/// before the deadline now in force moves itself there, and one that comes due while no
/// operation runs lapses. A connection whose deadline moves forward with each request
/// thus pushes about one timer entry per timeout period, where [`until`] pushes and
/// withdraws one per operation.
///
/// The context is made afresh after a timeout, and whenever the deadline serves a
/// different thread or a different enclosing context than the operation before
/// (cancelling an enclosing scope or timeout reaches the operation as it would under
/// [`until`]). Dropping the `Deadline` withdraws its timer entry.
///
/// ```
/// use std::time::Duration;
/// use threadlib::deadline::{Deadline, TransportError};
///
/// threadlib::run(async {
///     let mut d = Deadline::new();
///     // Each operation gets a second from its start; all share one timer entry.
///     for _ in 0..3 {
///         let at = threadlib::time::now() + Duration::from_secs(1);
///         d.until(at, threadlib::sleep(Duration::from_millis(1))).await.unwrap();
///     }
///     // A stall timeout counts from the operation's first wait.
///     let r = d.within(Duration::from_millis(5), threadlib::park()).await;
///     assert!(matches!(r, Err(TransportError::TimedOut)));
/// })
/// .unwrap();
/// ```
#[derive(Debug, Default)]
pub struct Deadline {
    /// The shared context, and the thread it serves.
    ctx: Option<(Rc<CancelCtx>, ThreadId)>,
    /// The key of the context's timer entry, while it has one
    /// ([`CancelCtx::timer_at`] is not [`IDLE`]).
    key: u64,
}

impl Deadline {
    /// A deadline that has run no operation yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `op` until `deadline` on the current core's clock ([`crate::time::now`]), as
    /// [`until`] does.
    pub fn until<'a, T, F: Future<Output = crate::Result<T>>>(
        &'a mut self,
        deadline: Instant,
        op: F,
    ) -> impl Future<Output = Result<T, TransportError>> + use<'a, T, F> {
        Transport(Bounded::new(self, Due::At(deadline), op))
    }

    /// Runs `op` for at most `timeout` from when it first has to wait (a stall
    /// timeout): an operation that completes without waiting reads no clock.
    pub fn within<'a, T, F: Future<Output = crate::Result<T>>>(
        &'a mut self,
        timeout: Duration,
        op: F,
    ) -> impl Future<Output = Result<T, TransportError>> + use<'a, T, F> {
        Transport(Bounded::new(self, Due::Stall(timeout), op))
    }

    /// The context for an operation of the running thread, made afresh unless the one
    /// of the previous operation can serve it.
    fn enter(&mut self, core: &Core) -> Option<Rc<CancelCtx>> {
        let owner = core.current_thread()?;
        let parent = core.current_ctx().unwrap_or_else(|| core.root.ctx.clone());
        if let Some((ctx, served)) = &self.ctx {
            if *served == owner && ctx.reusable_under(&parent) {
                return Some(ctx.clone());
            }
        }
        self.release(core);
        let ctx = core.ctx_pool.child(&parent, false);
        ctx.expires.set(IDLE);
        ctx.timer_at.set(IDLE);
        self.ctx = Some((ctx.clone(), owner));
        Some(ctx)
    }

    /// The running operation suspended: its context expires at `at` (ns on the core
    /// clock). Pushes a timer entry unless the one there comes due first. False if the
    /// timer loop could not take it.
    fn suspended(&mut self, core: &Core, at: u64) -> bool {
        let Some((ctx, owner)) = &self.ctx else {
            return false;
        };
        ctx.expires.set(at);
        let entry = ctx.timer_at.get();
        if entry <= at {
            return true;
        }
        if entry != IDLE {
            core.remove_ctx_timer(self.key);
        }
        match core.add_ctx_timer(at, ctx.clone(), *owner) {
            Some(key) => {
                self.key = key;
                true
            }
            None => false,
        }
    }

    /// No operation runs under the context any more: a timer entry that comes due
    /// meanwhile lapses.
    fn idle(&self) {
        if let Some((ctx, _)) = &self.ctx {
            ctx.expires.set(IDLE);
        }
    }

    /// Withdraws the timer entry and gives the context back to the core.
    fn release(&mut self, core: &Core) {
        if let Some((ctx, _)) = self.ctx.take() {
            if ctx.timer_at.get() != IDLE {
                core.remove_ctx_timer(self.key);
            }
            core.ctx_pool.recycle(ctx);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if self.ctx.is_some() {
            // Outside the core the entry stays, idle, and lapses when it comes due.
            let _ = Core::with_current(|core| self.release(core));
        }
    }
}

/// When an operation under a [`Deadline`] times out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    /// At this time on the core clock.
    At(Instant),
    /// This long after its first poll.
    Within(Duration),
    /// This long after it first has to wait.
    Stall(Duration),
    /// At this many ns on the core clock (a [`Due::Within`] worked out).
    Ns(u64),
}

impl Due {
    /// In ns on `core`'s clock, now.
    fn ns(self, core: &Core) -> u64 {
        match self {
            Due::At(t) => to_ns(core, t),
            Due::Within(d) | Due::Stall(d) => core.now_ns().saturating_add(duration_ns(d)),
            Due::Ns(ns) => ns,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not polled yet.
    Start,
    /// Polled; has not suspended.
    Running,
    /// Suspended at least once: the deadline is in force.
    Suspended,
    /// Finished: the deadline was let go.
    Done,
}

/// The future of an operation under a deadline: of [`Deadline::until`] and
/// [`Deadline::within`] over a borrowed [`Deadline`], and of [`with_timeout`] and
/// [`with_deadline`] over one of its own. Written by hand: an `async fn` taking the
/// operation would hold it twice, as its argument and inside the context that runs
/// it. Fails with [`Error::TimedOut`] when the deadline cancelled the operation.
///
/// Fields drop in order: the operation (restoring the thread's context), then the
/// deadline (one of its own withdraws its timer entry and gives the context back).
pub(crate) struct Bounded<D: BorrowMut<Deadline>, F> {
    inner: InCtx<F>,
    shared: D,
    due: Due,
    stage: Stage,
}

impl<D: BorrowMut<Deadline>, F> Bounded<D, F> {
    /// Runs `op` under `deadline` until `due`.
    pub(crate) fn new(deadline: D, due: Due, op: F) -> Self {
        Bounded {
            inner: InCtx::later(op),
            shared: deadline,
            due,
            stage: Stage::Start,
        }
    }
}

impl<D, F, T> Future for Bounded<D, F>
where
    D: BorrowMut<Deadline>,
    F: Future<Output = crate::Result<T>>,
{
    type Output = crate::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`; the
        // other fields are never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.inner` stays in place.
        let mut inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        if this.stage == Stage::Start {
            let (shared, due) = (this.shared.borrow_mut(), &mut this.due);
            let entered = Core::with_current(|core| {
                if let Due::Within(_) = due {
                    *due = Due::Ns(due.ns(core));
                }
                shared.enter(core)
            });
            let Some(Some(ctx)) = entered else {
                return Poll::Ready(Err(Error::NoRuntime));
            };
            inner.as_mut().set_ctx(ctx);
            this.stage = Stage::Running;
        }
        let Poll::Ready(r) = inner.as_mut().poll(cx) else {
            if this.stage == Stage::Running {
                this.stage = Stage::Suspended;
                let (shared, due) = (this.shared.borrow_mut(), this.due);
                let armed = Core::with_current(|core| shared.suspended(core, due.ns(core)));
                if armed != Some(true) {
                    return Poll::Ready(Err(Error::NoRuntime));
                }
            }
            return Poll::Pending;
        };
        this.stage = Stage::Done;
        this.shared.borrow_mut().idle();
        Poll::Ready(match r {
            Err(Error::Cancelled) if inner.ctx().is_some_and(|c| c.timed_out.get()) => {
                Err(Error::TimedOut)
            }
            other => other,
        })
    }
}

impl<D: BorrowMut<Deadline>, F> Drop for Bounded<D, F> {
    fn drop(&mut self) {
        if self.stage == Stage::Suspended {
            self.shared.borrow_mut().idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::on_mock_clock;

    #[test]
    fn an_operation_past_its_deadline_times_out_at_the_deadline() {
        let (r, took) = on_mock_clock(async {
            let deadline = crate::time::now() + Duration::from_secs(3);
            let r = until(deadline, crate::sleep(Duration::from_secs(10))).await;
            (r, crate::time::elapsed())
        });
        assert!(matches!(r, Err(TransportError::TimedOut)), "{r:?}");
        assert_eq!(took, Duration::from_secs(3));
    }

    #[test]
    fn an_operation_in_time_returns_its_value_and_errors_become_io_errors() {
        let (ok, failed) = on_mock_clock(async {
            let ok = within(Duration::from_secs(1), async { Ok(7) }).await;
            let failed: Result<(), _> = within(Duration::from_secs(1), async {
                Err(Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)))
            })
            .await;
            (ok, failed)
        });
        assert_eq!(ok.unwrap(), 7);
        match failed {
            Err(TransportError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }

    /// Runs `op` under `d` until `secs` from now; `(result, seconds it took)`.
    async fn timed_sleep(d: &mut Deadline, secs: f64, sleep_secs: f64) -> (bool, f64) {
        let start = crate::time::elapsed();
        let at = crate::time::now() + Duration::from_secs_f64(secs);
        let r = d
            .until(at, crate::sleep(Duration::from_secs_f64(sleep_secs)))
            .await;
        let took = (crate::time::elapsed() - start).as_secs_f64();
        match r {
            Ok(()) => (true, took),
            Err(TransportError::TimedOut) => (false, took),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_shared_deadline_times_each_operation_out_at_its_own_deadline() {
        let (runs, left) = on_mock_clock(async {
            let mut d = Deadline::new();
            let runs = vec![
                // Arms the entry at 3 s.
                timed_sleep(&mut d, 3.0, 1.0).await,
                // Later than the entry (at 6 s): the entry moves itself there.
                timed_sleep(&mut d, 5.0, 10.0).await,
                // After a timeout, with a fresh context.
                timed_sleep(&mut d, 1.0, 0.5).await,
                // Earlier than the entry in force (8.5 s): a new one at 6.75 s, in
                // place of that one.
                timed_sleep(&mut d, 0.25, 10.0).await,
            ];
            (runs, crate::time::pending_timers())
        });
        assert_eq!(
            runs,
            [(true, 1.0), (false, 5.0), (true, 0.5), (false, 0.25)]
        );
        assert_eq!(
            left, 0,
            "the entry an earlier deadline replaced is still armed"
        );
    }

    #[test]
    fn operations_that_move_the_deadline_forward_share_one_timer_entry() {
        let (entries, after) = on_mock_clock(async {
            let mut d = Deadline::new();
            let mut entries = Vec::new();
            for _ in 0..100 {
                assert!(timed_sleep(&mut d, 1.0, 0.001).await.0);
                entries.push(crate::time::pending_timers());
            }
            drop(d);
            (entries, crate::time::pending_timers())
        });
        assert!(entries.iter().all(|&n| n == 1), "{entries:?}");
        assert_eq!(after, 0, "dropping the deadline withdraws its entry");
    }

    #[test]
    fn an_entry_that_comes_due_between_operations_lapses_and_cancels_nothing() {
        let (slept, armed, rearmed) = on_mock_clock(async {
            let mut d = Deadline::new();
            assert!(timed_sleep(&mut d, 2.0, 1.0).await.0);
            // A later deadline (11.5 s) is written into the context, not the entry.
            assert!(timed_sleep(&mut d, 10.0, 0.5).await.0);
            // The entry (due at 2 s) lapses during a sleep outside the deadline,
            // rather than moving itself to the deadline of an operation that ended.
            let start = crate::time::elapsed();
            crate::sleep(Duration::from_secs(5)).await.unwrap();
            let slept = crate::time::elapsed() - start;
            let armed = crate::time::pending_timers();
            // The next operation arms a new entry, which fires.
            (slept, armed, timed_sleep(&mut d, 1.0, 3.0).await)
        });
        assert_eq!(slept, Duration::from_secs(5));
        assert_eq!(armed, 0, "the lapsed entry is gone");
        assert_eq!(rearmed, (false, 1.0));
    }

    #[test]
    fn cancelling_an_enclosing_timeout_reaches_the_operation_and_the_deadline_recovers() {
        let (outer, after) = on_mock_clock(async {
            let mut d = Deadline::new();
            let outer = crate::with_timeout(Duration::from_secs(2), async {
                let at = crate::time::now() + Duration::from_secs(10);
                match d.until(at, crate::sleep(Duration::from_secs(5))).await {
                    Err(TransportError::Io(_)) => Err(Error::Cancelled),
                    other => panic!("not cancelled: {other:?}"),
                }
            })
            .await;
            (outer, timed_sleep(&mut d, 1.0, 0.5).await)
        });
        assert!(matches!(outer, Err::<(), _>(Error::TimedOut)), "{outer:?}");
        assert_eq!(after, (true, 0.5));
    }

    #[test]
    fn a_stall_timeout_runs_from_the_first_wait() {
        let (quick, slow, timers) = on_mock_clock(async {
            let mut d = Deadline::new();
            // Completes without waiting: no clock read, no timer.
            let quick = d.within(Duration::from_secs(1), async { Ok(5) }).await;
            let timers = crate::time::pending_timers();
            let start = crate::time::elapsed();
            let slow = d
                .within(Duration::from_secs(2), crate::sleep(Duration::from_secs(9)))
                .await;
            (quick, (slow, crate::time::elapsed() - start), timers)
        });
        assert_eq!(quick.unwrap(), 5);
        assert_eq!(timers, 0);
        assert!(matches!(slow.0, Err(TransportError::TimedOut)), "{slow:?}");
        assert_eq!(slow.1, Duration::from_secs(2));
    }

    #[test]
    fn a_deadline_handed_to_another_thread_interrupts_that_thread() {
        let r = on_mock_clock(async {
            let mut d = Deadline::new();
            assert!(timed_sleep(&mut d, 1.0, 0.1).await.0);
            // The entry (due at 1 s) names this thread; the next operation runs in
            // another, with a later deadline.
            crate::spawn(async move { timed_sleep(&mut d, 3.0, 10.0).await })
                .await
                .unwrap()
        });
        assert_eq!(r, (false, 3.0));
    }
}
