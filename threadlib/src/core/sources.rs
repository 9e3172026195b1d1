//! The event sources of a core: its event loops, all behind the one [`EventLoop`]
//! trait (the built-in timer, epoll, io_uring and blocking-pool loops, then the user
//! loops), and the cross-core inbox. Everything wakes the scheduler through one epoll
//! instance: the inbox's eventfd, each loop's wake fd, and the descriptors loops
//! register with it. Loop events complete the calls threads are blocked in.
//!
//! There is one path for every loop: a call reaches [`EventLoop::submit`] through
//! [`Core::dispatch_loop`], a cancellation reaches [`EventLoop::cancel`] through
//! [`Core::cancel_wait`], and polls, fd events and deadlines reach the loops through
//! [`Core::with_slot`], which delivers what the loop did once it returns.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use iolib::epoll::{Epoll, Events, Interest};
use iolib::timerfd::TimerFd;

use super::tasks::{Completion, State, ThreadId, Wait};
use super::{Core, CoreConfig};
use crate::cancel::CancelCtx;
use crate::error::{Error, Result};
use crate::inbox::{Inbox, InboxMsg};
use crate::loops::blocking::{BlockingPool, PoolLoop};
use crate::loops::readiness::FdLoop;
use crate::loops::timer::TimerLoop;
use crate::loops::uring_io::UringLoop;
use crate::loops::{EventLoop, LoopCx, Out, Request};
use crate::trace::TraceKind;

/// The epoll token of the inbox's eventfd. Every other token but the wake timer's is a
/// loop's: its slot in the high half, and in the low half the registered fd, or
/// [`WAKE`] for its wake fd.
const TOKEN_INBOX: u64 = u64::MAX;
/// The token of the core's wake timer (no loop has index `u32::MAX`).
const TOKEN_WAKE_TIMER: u64 = u64::MAX - 1;
/// The low half of the token of a loop's wake fd.
const WAKE: u32 = u32::MAX;

fn token(idx: u32, low: u32) -> u64 {
    ((idx as u64) << 32) | low as u64
}

/// The slot of a built-in loop the core was built without.
const ABSENT: u32 = u32::MAX;

/// An event loop and the buffer of what one call to it does.
struct LoopState {
    lp: Box<dyn EventLoop>,
    out: Vec<Out>,
}

/// An event loop and the scheduler's bookkeeping for it.
struct LoopSlot {
    /// Borrowed while the loop runs (`submit`, `cancel`, `poll`, `fd_event`,
    /// `with_loop`), so a re-entrant call finds it busy instead of aliasing it.
    state: RefCell<LoopState>,
    /// Polled on every pass ([`EventLoop::polled_every_pass`], asked once).
    every_pass: bool,
    /// Threads blocked in a call to this loop.
    pending: Cell<usize>,
    /// The loop asked to be polled after the current batch ([`LoopCx::poll_soon`]).
    dirty: Cell<bool>,
    /// The loop's deadline in ns on the core clock, as last asked.
    deadline: Cell<Option<u64>>,
    /// Whether `deadline` must be asked again: set by every call into the loop, and
    /// always for a user loop.
    deadline_stale: Cell<bool>,
    /// A built-in loop, whose deadline moves only while the scheduler calls it: its
    /// deadline is cached between calls, and checked when the scheduler looks at the
    /// clock anyway (after waiting, and every few batches). A user loop's deadline may
    /// move through state it shares with threads: it is asked after every batch.
    cache_deadline: bool,
}

/// A built-in loop.
#[derive(Clone, Copy)]
pub(super) enum Builtin {
    Timer,
    Fd,
    Uring,
    Pool,
}

/// The slots of the built-in loops ([`ABSENT`] for those the core was built without).
struct Builtins {
    timer: u32,
    fd: u32,
    uring: u32,
    pool: u32,
}

/// The event loops of one core and what waits on them.
pub(super) struct Sources {
    poller: Epoll,
    events: RefCell<Events>,
    /// Every loop: the built-in ones first, then the user loops in registration order.
    loops: Box<[LoopSlot]>,
    builtin: Builtins,
    /// The slot of user loop 0.
    user_base: u32,
    /// Some loop is dirty.
    any_dirty: Cell<bool>,
    /// The core has user loops: the only ones polled on every pass or whose deadline
    /// is asked after every batch (built-in loops learn of their work through their
    /// fds, the calls made to them and deadlines the scheduler caches).
    any_user: bool,
    /// On the real clock, the timer that ends a long wait for events at the next
    /// deadline (see [`Core::wake_by`]), registered edge-triggered and never read.
    wake_timer: Option<TimerFd>,
    /// When the wake timer is armed to expire (core ns), until its expiry is seen.
    wake_timer_at: Cell<Option<u64>>,
}

impl Sources {
    /// Builds the loops `cfg` asks for (taking its user loops) and registers the wake
    /// fds of the inbox and of the loops with one epoll instance.
    pub(super) fn new(
        cfg: &mut CoreConfig,
        inbox: &Inbox,
        pool: Option<BlockingPool>,
    ) -> Result<Sources> {
        let poller = Epoll::new()?;
        poller.add(inbox.efd.as_raw_fd(), Interest::READABLE, TOKEN_INBOX)?;
        // Without one (no descriptor left, say) the core still keeps every deadline:
        // long waits then take a timeout, as short ones do.
        let wake_timer = match cfg.clock.is_mock() {
            true => None,
            false => TimerFd::new()
                .and_then(|timer| {
                    poller.add(
                        timer.as_raw_fd(),
                        Interest::READABLE.edge(),
                        TOKEN_WAKE_TIMER,
                    )?;
                    Ok(timer)
                })
                .ok(),
        };
        let mut all: Vec<Box<dyn EventLoop>> = Vec::new();
        let mut add = |l: Box<dyn EventLoop>| {
            all.push(l);
            (all.len() - 1) as u32
        };
        let timer = add(Box::new(TimerLoop::new(cfg.clock.base())));
        let fd = match cfg.fd_loop {
            true => add(Box::new(FdLoop::new())),
            false => ABSENT,
        };
        let uring = match cfg.uring_entries {
            Some(n) => add(Box::new(UringLoop::new(n)?)),
            None => ABSENT,
        };
        let pool = match pool {
            Some(p) => add(Box::new(PoolLoop::new(p)?)),
            None => ABSENT,
        };
        let user_base = all.len() as u32;
        all.extend(std::mem::take(&mut cfg.custom));
        let mut loops = Vec::with_capacity(all.len());
        for (i, lp) in all.into_iter().enumerate() {
            debug_assert!(
                i as u32 >= user_base || !lp.polled_every_pass(),
                "built-in loop {} is polled on every pass",
                lp.name()
            );
            if let Some(fd) = lp.wake_fd() {
                poller.add(fd, Interest::READABLE, token(i as u32, WAKE))?;
            }
            loops.push(LoopSlot {
                every_pass: lp.polled_every_pass(),
                state: RefCell::new(LoopState {
                    lp,
                    out: Vec::new(),
                }),
                pending: Cell::new(0),
                dirty: Cell::new(false),
                deadline: Cell::new(None),
                deadline_stale: Cell::new(true),
                cache_deadline: (i as u32) < user_base,
            });
        }
        Ok(Sources {
            poller,
            events: RefCell::new(Events::with_capacity(256)),
            any_user: loops.len() > user_base as usize,
            loops: loops.into_boxed_slice(),
            builtin: Builtins {
                timer,
                fd,
                uring,
                pool,
            },
            user_base,
            any_dirty: Cell::new(false),
            wake_timer,
            wake_timer_at: Cell::new(None),
        })
    }
}

impl Core {
    // ----- clock and timers ----------------------------------------------------------

    /// Nanoseconds on this core's clock.
    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub(crate) fn now_instant(&self) -> std::time::Instant {
        self.clock.now_instant()
    }

    /// Runs `f` on the built-in loop in slot `idx`, which is an `L`.
    fn with_builtin<L: EventLoop, R>(
        &self,
        idx: u32,
        f: impl FnOnce(&mut L, &mut LoopCx<'_>) -> R,
    ) -> Option<R> {
        self.with_slot(idx, false, None, 0, |l, cx| {
            let any: &mut dyn std::any::Any = l;
            any.downcast_mut::<L>().map(|l| f(l, cx))
        })
        .flatten()
    }

    /// Sleeps and timeouts armed on this core.
    pub(crate) fn pending_timers(&self) -> usize {
        self.with_builtin(self.sources.builtin.timer, |t: &mut TimerLoop, _| t.live())
            .unwrap_or(0)
    }

    /// Arms a timeout: at `deadline`, `ctx` is cancelled and `owner` interrupted.
    /// Returns the key that disarms it; `None` if the timer loop is busy.
    pub(crate) fn add_ctx_timer(
        &self,
        deadline: u64,
        ctx: Rc<CancelCtx>,
        owner: ThreadId,
    ) -> Option<u64> {
        self.with_builtin(self.sources.builtin.timer, |t: &mut TimerLoop, _| {
            t.add_ctx(deadline, ctx, owner)
        })
    }

    pub(crate) fn remove_ctx_timer(&self, key: u64) {
        self.with_builtin(self.sources.builtin.timer, |t: &mut TimerLoop, _| {
            t.remove_ctx(key)
        });
    }

    /// The deadline of loop `slot` in ns on the core clock.
    fn slot_deadline_ns(&self, slot: &LoopSlot) -> Option<u64> {
        if !slot.deadline_stale.get() {
            return slot.deadline.get();
        }
        let Ok(st) = slot.state.try_borrow() else {
            // Running (a poll from inside it): ask again next time.
            return slot.deadline.get();
        };
        let base = self.clock.base();
        let d = st
            .lp
            .next_deadline()
            .map(|d| d.saturating_duration_since(base).as_nanos() as u64);
        slot.deadline.set(d);
        slot.deadline_stale.set(!slot.cache_deadline);
        d
    }

    /// Polls the built-in loops whose deadline has passed (after the scheduler
    /// waited, and every few batches while threads are ready; the user loops' deadlines
    /// are checked after every batch, by [`Core::poll_loops`], which always follows).
    /// `now`: the core's time if the caller has just read it.
    pub(super) fn poll_due(&self, mut now: Option<u64>) {
        for (idx, slot) in self.sources.loops.iter().enumerate() {
            if !slot.cache_deadline {
                continue;
            }
            let Some(d) = self.slot_deadline_ns(slot) else {
                continue;
            };
            if d <= *now.get_or_insert_with(|| self.now_ns()) {
                self.with_slot(idx as u32, false, None, 0, |l, cx| l.poll(cx));
            }
        }
    }

    /// When anything is next due and the time now, both in ns on the core clock: the
    /// loops' deadlines, or now if a loop polled on every pass holds calls but reports
    /// no deadline (it is polled continuously). `None`: nothing is due. `now`: the
    /// core's time if the caller has just read it.
    pub(super) fn next_due(&self, mut now: Option<u64>) -> Option<(u64, u64)> {
        let mut due: Option<u64> = None;
        for slot in self.sources.loops.iter() {
            let d = match self.slot_deadline_ns(slot) {
                Some(d) => d,
                None if slot.every_pass
                    && slot.pending.get() > 0
                    && slot
                        .state
                        .try_borrow()
                        .is_ok_and(|st| !st.lp.wakes_at_deadlines()) =>
                {
                    *now.get_or_insert_with(|| self.now_ns())
                }
                None => continue,
            };
            due = Some(due.map_or(d, |x| x.min(d)));
        }
        let due = due?;
        Some((due, now.unwrap_or_else(|| self.now_ns())))
    }

    /// Makes the core's wake timer end its next wait for events by `due` (ns on the
    /// core clock), so that the wait needs no timeout: the timer is armed again only
    /// for a time earlier than the one it holds (a later one lets it fire early, and
    /// the core waits again). False if there is no wake timer (a mock clock) or it
    /// could not be armed: the wait then takes a timeout.
    pub(super) fn wake_by(&self, due: u64) -> bool {
        let s = &self.sources;
        let (Some(timer), Some(raw)) = (&s.wake_timer, self.clock.raw_ns(due)) else {
            return false;
        };
        if s.wake_timer_at.get().is_some_and(|at| at <= due) {
            return true;
        }
        if timer.arm_at(raw).is_err() {
            return false;
        }
        s.wake_timer_at.set(Some(due));
        true
    }

    // ----- the built-in loops' own operations ----------------------------------------

    /// Drops the epoll registration of `fd`; threads waiting on it resume with `EBADF`.
    pub(crate) fn forget_fd(&self, fd: RawFd) {
        self.with_builtin(self.sources.builtin.fd, |l: &mut FdLoop, cx| {
            l.forget(fd, cx)
        });
    }

    /// Registers `fd` with the core's epoll instance for loop `idx` (`LoopCx`).
    pub(crate) fn register_loop_fd(&self, idx: u32, fd: RawFd, interest: Interest) -> Result<()> {
        if fd < 0 {
            return Err(Error::Io(std::io::Error::from_raw_os_error(libc::EBADF)));
        }
        self.sources
            .poller
            .add(fd, interest, token(idx, fd as u32))?;
        Ok(())
    }

    /// Removes `fd` from the core's epoll instance (`LoopCx`).
    pub(crate) fn deregister_loop_fd(&self, fd: RawFd) -> Result<()> {
        self.sources.poller.delete(fd)?;
        Ok(())
    }

    /// Whether `tid` is blocked in loop `idx`'s call keyed `key`.
    pub(crate) fn is_waiting_in(&self, tid: ThreadId, idx: u32, key: u64) -> bool {
        self.tasks
            .borrow()
            .is_blocked_in(tid, Wait::Loop { idx, key })
    }

    // ----- calls ---------------------------------------------------------------------

    /// Hands `tid`'s call to the built-in loop `which` (an error if the core has none).
    #[inline(always)]
    pub(super) fn dispatch_builtin(&self, tid: ThreadId, which: Builtin, req: Request) {
        let b = &self.sources.builtin;
        let (idx, name) = match which {
            Builtin::Timer => (b.timer, "timer"),
            Builtin::Fd => (b.fd, "epoll"),
            Builtin::Uring => (b.uring, "io_uring"),
            Builtin::Pool => (b.pool, "blocking pool"),
        };
        if idx == ABSENT {
            return self.fail_now(tid, Error::NoEventLoop(name));
        }
        self.dispatch_loop(tid, idx, req);
    }

    /// The name of user loop `id` ([`EventLoop::name`]), as traces show its calls;
    /// `custom` if there is no such loop or it is running.
    pub(super) fn user_loop_name(&self, id: u32) -> &'static str {
        self.sources
            .user_base
            .checked_add(id)
            .and_then(|idx| self.sources.loops.get(idx as usize))
            .and_then(|slot| slot.state.try_borrow().ok().map(|st| st.lp.name()))
            .unwrap_or("custom")
    }

    /// Hands `tid`'s call to user loop `id`.
    pub(super) fn dispatch_user(&self, tid: ThreadId, id: u32, req: Request) {
        match self.sources.user_base.checked_add(id) {
            Some(idx) if (idx as usize) < self.sources.loops.len() => {
                self.dispatch_loop(tid, idx, req)
            }
            _ => self.fail_now(tid, Error::NoEventLoop("custom (unknown LoopId)")),
        }
    }

    /// Hands `tid`'s call to the loop in slot `idx`: the thread blocks in it, keyed as
    /// the loop says (unless the loop completed it at once).
    #[inline(always)]
    fn dispatch_loop(&self, tid: ThreadId, idx: u32, req: Request) {
        let slot = &self.sources.loops[idx as usize];
        slot.pending.set(slot.pending.get() + 1);
        let submitted = self.with_slot(idx, false, Some(tid), 0, |l, cx| l.submit(tid, req, cx));
        if submitted.is_none() {
            // The loop is busy: only a call made from inside that loop gets here.
            slot.pending.set(slot.pending.get() - 1);
            self.fail_now(
                tid,
                Error::NoEventLoop("custom (called from inside itself)"),
            );
        }
    }

    /// Withdraws `tid`'s pending call from the loop that holds it.
    pub(super) fn cancel_wait(&self, tid: ThreadId, wait: Wait) {
        match wait {
            Wait::Waker => {
                // A foreign future cannot be interrupted: poll it again; the thread
                // sees `Cancelled` at its next system call.
                self.complete(tid, Some(wait), Completion::Empty);
            }
            Wait::Park => {
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Loop { idx, key } => {
                self.with_slot(idx, false, None, key, |l, cx| l.cancel(tid, cx));
            }
        }
    }

    /// Whether the loop in slot `idx` has its calls withdrawn when the core is torn
    /// down ([`EventLoop::cancel_at_teardown`]).
    pub(super) fn cancels_at_teardown(&self, idx: u32) -> bool {
        self.sources.loops[idx as usize]
            .state
            .try_borrow()
            .map_or(true, |st| st.lp.cancel_at_teardown())
    }

    /// Whether a thread waits in a call to a loop.
    pub(super) fn calls_pending(&self) -> bool {
        self.sources.loops.iter().any(|s| s.pending.get() > 0)
    }

    /// Whether a loop holds work of its own ([`EventLoop::holds_work`]).
    pub(super) fn loops_hold_work(&self) -> bool {
        self.sources
            .loops
            .iter()
            .any(|s| s.state.try_borrow().is_ok_and(|st| st.lp.holds_work()))
    }

    // ----- running a loop ------------------------------------------------------------

    /// Runs `f` on user loop `id` (`with_loop`).
    pub(crate) fn with_user_loop<R>(
        &self,
        id: u32,
        f: impl FnOnce(&mut dyn EventLoop, &mut LoopCx<'_>) -> R,
    ) -> Option<R> {
        let idx = self.sources.user_base.checked_add(id)?;
        self.with_slot(idx, false, None, 0, f)
    }

    /// Runs `f` on the loop in slot `idx` with a fresh [`LoopCx`] (whose key is `key`;
    /// completions take effect at once), then notes a [`LoopCx::poll_soon`] request,
    /// blocks `submitting` (the thread whose call `f` submits, unless the loop
    /// completed it at once) in the call keyed as the loop said, and delivers the
    /// interrupts the loop made (and what it did after them), in order. `None` if there is no such
    /// loop or it is already running (a re-entrant call).
    #[inline(always)]
    pub(super) fn with_slot<R>(
        &self,
        idx: u32,
        fd_ready: bool,
        submitting: Option<ThreadId>,
        key: u64,
        f: impl FnOnce(&mut dyn EventLoop, &mut LoopCx<'_>) -> R,
    ) -> Option<R> {
        let s = &self.sources;
        let slot = s.loops.get(idx as usize)?;
        let mut state = slot.state.try_borrow_mut().ok()?;
        let LoopState { lp, out } = &mut *state;
        let mut cx = LoopCx {
            core: self,
            idx,
            now_ns: Cell::new(u64::MAX),
            out,
            fd_ready,
            poll_soon: false,
            key,
            submitting,
        };
        let r = f(&mut **lp, &mut cx);
        slot.deadline_stale.set(true);
        let (poll_soon, key, submitting) = (cx.poll_soon, cx.key, cx.submitting);
        if poll_soon {
            slot.dirty.set(true);
            s.any_dirty.set(true);
        }
        if let Some(tid) = submitting {
            self.set_state(tid, State::Blocked(Wait::Loop { idx, key }));
        }
        if out.is_empty() {
            return Some(r);
        }
        // An interrupt, and what the loop did after it: delivered with the loop
        // released, since withdrawing a call may call into this loop again.
        let todo = std::mem::take(out);
        drop(state);
        for o in todo {
            match o {
                Out::Complete(tid, key, c) => self.deliver(idx, tid, key, c),
                Out::Interrupt(tid) => self.interrupt(tid),
            }
        }
        Some(r)
    }

    /// Completes the call `tid` is submitting to loop `idx` at once, with `c`.
    pub(crate) fn deliver_at_once(&self, idx: u32, tid: ThreadId, c: Completion) {
        self.set_ready(tid, c);
        self.trace(tid, TraceKind::Resume, "resume");
        let slot = &self.sources.loops[idx as usize];
        slot.pending.set(slot.pending.get() - 1);
    }

    /// Delivers `c` to `tid` if it is blocked in loop `idx`'s call keyed `key` (any if
    /// `None`).
    #[inline(always)]
    pub(crate) fn deliver(&self, idx: u32, tid: ThreadId, key: Option<u64>, c: Completion) {
        if self.tasks.borrow_mut().complete_loop(tid, idx, key, c) {
            self.trace(tid, TraceKind::Resume, "resume");
            let slot = &self.sources.loops[idx as usize];
            slot.pending.set(slot.pending.get() - 1);
        }
    }

    // ----- events --------------------------------------------------------------------

    /// Waits up to `timeout` for events (`None`: forever), and hands them to the loops
    /// and the inbox.
    pub(super) fn poll_events(&self, timeout: Option<Duration>) -> Result<()> {
        let s = &self.sources;
        // Held throughout: no loop reaches the event list.
        let mut events = s.events.borrow_mut();
        s.poller.wait(&mut events, timeout)?;
        // Every event is handled before an error is returned: an event skipped here is
        // not raised again (edge-triggered fds, the wake timer).
        let mut failed = None;
        for (token, readiness) in events.iter() {
            if token == TOKEN_INBOX {
                match self.inbox.efd.drain() {
                    Ok(_) => self.drain_inbox(),
                    Err(e) => failed = failed.or(Some(e)),
                }
                continue;
            }
            if token == TOKEN_WAKE_TIMER {
                // Expired: the next long wait arms it again (what was due is served
                // after this poll, by `poll_due`).
                s.wake_timer_at.set(None);
                continue;
            }
            let (idx, low) = ((token >> 32) as u32, token as u32);
            if low == WAKE {
                self.with_slot(idx, true, None, 0, |l, cx| l.poll(cx));
            } else {
                self.with_slot(idx, false, None, 0, |l, cx| {
                    l.fd_event(low as RawFd, readiness, cx)
                });
            }
        }
        failed.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Handles the messages other OS threads sent this core.
    fn drain_inbox(&self) {
        for m in self.inbox.take() {
            match m {
                InboxMsg::Wake(tid) => self.wake(tid),
                InboxMsg::Run(f) => f(),
                InboxMsg::Shutdown => self.begin_shutdown(),
            }
        }
    }

    /// Polls the loops due after a batch of threads, in slot order: those that asked
    /// for it ([`LoopCx::poll_soon`]), those polled on every pass, and user loops whose
    /// deadline has passed.
    pub(super) fn poll_loops(&self) {
        let s = &self.sources;
        if !s.any_dirty.get() && !s.any_user {
            return;
        }
        let dirty = s.any_dirty.replace(false);
        let mut now = None;
        for (idx, slot) in s.loops.iter().enumerate() {
            let due = slot.every_pass
                || (dirty && slot.dirty.replace(false))
                || (!slot.cache_deadline
                    && self
                        .slot_deadline_ns(slot)
                        .is_some_and(|d| d <= *now.get_or_insert_with(|| self.now_ns())));
            if due {
                self.with_slot(idx as u32, false, None, 0, |l, cx| l.poll(cx));
            }
        }
    }
}
