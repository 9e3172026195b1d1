//! The scheduler loop and the run queue: which thread runs when, and when the core
//! looks for events or sleeps.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use rand_xoshiro::rand_core::RngCore;
use rand_xoshiro::SplitMix64;

use super::tasks::{Completion, Released, ThreadId, Wait};
use super::Core;
use crate::error::Result;
use crate::scope::ScopeInner;
use crate::thread::{Exit, Runnable};
use crate::trace::TraceKind;
use crate::waker;

/// Batches of ready threads between two non-blocking polls of the event sources.
const EVENT_INTERVAL: u32 = 61;

/// A wait for events at least this long (ns) ends by the core's wake timer instead of
/// a timeout ([`Core::wake_by`]).
const LONG_WAIT_NS: u64 = 1_000_000;

impl Core {
    /// Runs threads until `done()` holds (checked after every batch).
    pub(crate) fn run(&self, mut done: impl FnMut(&Core) -> bool) -> Result<()> {
        loop {
            let n = self.tasks.borrow().ready_len();
            match &self.shuffle {
                None => {
                    for _ in 0..n {
                        let next = self.tasks.borrow_mut().pop_ready();
                        match next {
                            Some(tid) => self.run_thread(tid),
                            None => break,
                        }
                    }
                }
                Some(state) => self.run_shuffled(n, state),
            }
            // Loops that asked for a pass after this batch (io_uring submitting what
            // the batch queued, say), and those polled on every pass, run before
            // anything waits.
            self.poll_loops();
            if done(self) {
                return Ok(());
            }
            if self.tasks.borrow().ready_len() > 0 {
                let t = self.tick.get().wrapping_add(1);
                self.tick.set(t);
                if t.is_multiple_of(EVENT_INTERVAL) {
                    self.share_cpu();
                    self.poll_events(Some(Duration::ZERO))?;
                    self.poll_due(None);
                    self.poll_loops();
                }
                continue;
            }
            // One clock reading before the wait and one after serve everything that
            // needs the time there: the CPU share and, on the real clock, the wait's
            // timeout and the timers due after it.
            let before = self.share_cpu();
            self.wait_for_work(self.as_core_ns(before))?;
            let after = before.map(|before| {
                let after = self.clock.real_elapsed_ns();
                self.cpu.waited(before, after);
                after
            });
            self.poll_due(self.as_core_ns(after));
            self.poll_loops();
        }
    }

    /// A reading of the real clock (`real_elapsed_ns`) as the core's time, which it
    /// is on the real clock (on a mock clock the core's time is virtual).
    fn as_core_ns(&self, real_ns: Option<u64>) -> Option<u64> {
        real_ns.filter(|_| !self.clock.is_mock())
    }

    /// Before the core looks at its event sources: gives the CPU up if the core has kept
    /// it for its slice. Checked there, and not after every batch, so that the clock is
    /// read once per look (an `epoll_wait` already) or once per `EVENT_INTERVAL` batches.
    /// Returns the time (real ns), if the core shares its CPU at all: the reading it
    /// took, or one taken after the yield if it gave the CPU up (which may have lasted,
    /// and a wait's timeout counts from the time it returns).
    fn share_cpu(&self) -> Option<u64> {
        if !self.cpu.enabled() {
            return None;
        }
        let now = self.clock.real_elapsed_ns();
        let yields = self.cpu.yields();
        self.cpu.pass_ended(
            now,
            || iolib::sched::context_switches().ok(),
            iolib::sched::yield_cpu,
        );
        if self.cpu.yields() != yields {
            return Some(self.clock.real_elapsed_ns());
        }
        Some(now)
    }

    /// No thread is ready: wait for the next event, timer or loop deadline. `now`: the
    /// core's time if the caller has just read it.
    fn wait_for_work(&self, now: Option<u64>) -> Result<()> {
        let due = self.next_due(now);
        let timeout = due.map(|(due, now)| due.saturating_sub(now));
        if !self.clock.is_mock() {
            // A long wait ends by the wake timer rather than a timeout: a wait without
            // one reads no clock and starts no timer in the kernel, which a timed
            // `epoll_wait` does every time, and the wake timer is armed only when the
            // next deadline moves earlier. A short wait (a paced sleep, say) takes a
            // timeout, which costs less than arming the timer for each.
            let timeout = match due {
                Some((due, _)) if timeout >= Some(LONG_WAIT_NS) && self.wake_by(due) => None,
                _ => timeout.map(Duration::from_nanos),
            };
            return self.poll_events(timeout);
        }
        // Mock time never passes by itself: look for real events without blocking,
        // then jump the clock to the next deadline if nothing else is due.
        self.poll_events(Some(Duration::ZERO))?;
        if self.tasks.borrow().ready_len() > 0 {
            return Ok(());
        }
        match timeout {
            Some(t) if self.clock.auto_advance() => {
                self.clock.advance(Duration::from_nanos(t));
                Ok(())
            }
            // A thread moved the clock past a deadline: serve it below instead of
            // waiting for an event that may never come.
            Some(0) => Ok(()),
            // Nothing is due, or the clock only moves when a thread moves it: wait for
            // an event. Whatever else could make a thread ready reaches the epoll set
            // (the inbox, wake fds, registered fds), and a loop polled on every pass
            // that holds calls is due at once (`next_due`).
            _ => self.poll_events(None),
        }
    }

    /// Runs the `n` threads at the front of the run queue in an order drawn from
    /// `rng` (a Fisher-Yates shuffle), so that a seeded run explores interleavings the
    /// FIFO order never produces, and replays the same one for the same seed.
    fn run_shuffled(&self, n: usize, rng: &RefCell<SplitMix64>) {
        // Held throughout: nothing a thread does reaches the batch or the generator.
        let mut batch = self.batch.borrow_mut();
        let mut rng = rng.borrow_mut();
        self.tasks.borrow_mut().drain_ready(n, &mut batch);
        for i in (1..batch.len()).rev() {
            let z = rng.next_u64();
            batch.swap(i, (z % (i as u64 + 1)) as usize);
        }
        drop(rng);
        for &tid in batch.iter() {
            self.run_thread(tid);
        }
        batch.clear();
    }

    /// Polls `tid` once if it is ready, then hands its system call to the dispatcher
    /// or retires it.
    fn run_thread(&self, tid: ThreadId) {
        let Some(runnable) = self.tasks.borrow_mut().start(tid) else {
            return;
        };
        self.current.set(Some(tid));
        self.trace(tid, TraceKind::RunBegin, "run");
        let waker = waker::borrowed(self);
        let mut cx = Context::from_waker(&waker);
        let mut poll = runnable.as_ref().poll_thread(&mut cx);
        self.current.set(None);
        self.trace(tid, TraceKind::RunEnd, "run");
        let call = match poll {
            Poll::Ready(_) => None,
            Poll::Pending => self.syscall.take(),
        };
        if poll.is_pending()
            && call.is_none()
            && self.is_shutting_down()
            && self.tasks.borrow().is_cancelled(tid)
        {
            // The runtime stops and the thread, cancelled, still waits on a foreign
            // future, which no cancellation reaches: it is dropped (as Rust cancels a
            // future) instead of waited for forever.
            self.current.set(Some(tid));
            poll = Poll::Ready(runnable.as_ref().abort());
            self.current.set(None);
            self.trace(tid, TraceKind::Suspend, "aborted");
        }
        drop(runnable);
        match (poll, call) {
            (Poll::Ready(exit), _) => self.exit_thread(tid, exit),
            (Poll::Pending, Some((call, _))) => self.dispatch(tid, call),
            (Poll::Pending, None) => {
                // A foreign future is waiting on our waker.
                let blocked = self.tasks.borrow_mut().block_on_waker(tid);
                if blocked {
                    self.trace(tid, TraceKind::Suspend, "waker");
                }
            }
        }
    }

    /// Retires a finished thread: frees its slot, tells its scope and its joiner.
    fn exit_thread(&self, tid: ThreadId, exit: Exit) {
        let Released {
            runnable,
            scope,
            next,
        } = self.tasks.borrow_mut().release(tid);
        self.trace(tid, TraceKind::Exit, "exit");
        if let Some(scope) = scope {
            if scope.head.get() == tid.index {
                scope.head.set(next);
            }
            if let Exit::Failed(e) = exit {
                scope.record_error(e);
                // Once cancelled, the scope's threads have all been interrupted: the
                // rest of them, exiting one by one, need not walk them again.
                if !scope.ctx.is_marked_cancelled() {
                    self.cancel_scope(&scope);
                }
            }
            scope.live.set(scope.live.get() - 1);
            if scope.live.get() == 0 {
                if let Some(w) = scope.waiter.get() {
                    self.unpark(w);
                }
                if scope.abandoned.get() {
                    scope.run_abandoned_hooks();
                }
            }
        }
        if let Some(r) = &runnable {
            r.as_ref().notify_joiner(self);
        }
        let deferred = std::mem::take(&mut *self.deferred_hooks.borrow_mut());
        for scope in deferred {
            scope.run_abandoned_hooks();
        }
    }

    /// Creates a thread for `runnable` in `scope` and queues it (unless `queue` is false,
    /// for `Fork`, which queues it itself).
    pub(crate) fn spawn_runnable(
        &self,
        runnable: Pin<Rc<dyn Runnable>>,
        scope: &Rc<ScopeInner>,
        queue: bool,
    ) -> ThreadId {
        let tid = self.tasks.borrow_mut().insert(runnable, scope, queue);
        self.trace(tid, TraceKind::Spawn, "spawn");
        tid
    }

    /// Delivers `c` to `tid` if it is blocked in `expect` (or any call if `None`), and
    /// makes it ready. Returns whether it was delivered.
    pub(crate) fn complete(&self, tid: ThreadId, expect: Option<Wait>, c: Completion) -> bool {
        let delivered = self.tasks.borrow_mut().complete(tid, expect, c);
        if delivered {
            self.trace(tid, TraceKind::Resume, "resume");
        }
        delivered
    }

    /// Wakes a parked thread; a no-op if it is not parked.
    pub(crate) fn unpark(&self, tid: ThreadId) -> bool {
        self.complete(tid, Some(Wait::Park), Completion::Value(0))
    }

    /// Wakes a thread that waits on a foreign waker.
    pub(crate) fn wake(&self, tid: ThreadId) {
        self.tasks.borrow_mut().wake(tid);
    }

    /// Whether anything could still make a thread ready without outside help.
    fn has_pending_work(&self) -> bool {
        self.tasks.borrow().ready_len() > 0 || self.calls_pending() || self.loops_hold_work()
    }

    /// Whether this core has nothing left to do: no thread is alive and nothing could
    /// make one ready (no queued thread, armed timer or pending call to an event
    /// source, or work a loop holds of its own such as an armed timeout). `false` while
    /// any thread lives.
    pub(crate) fn idle(&self) -> bool {
        self.live_threads() == 0 && !self.has_pending_work()
    }
}
