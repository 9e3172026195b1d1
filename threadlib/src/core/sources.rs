//! The event sources of a core: the epoll loop (fd readiness), the io_uring loop, the
//! timer loop, the blocking pool, the user loops, and the cross-core inbox. All wake
//! the scheduler through one epoll instance; their events complete the calls threads
//! are blocked in.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use iolib::epoll::{Epoll, Events, Interest};

use super::tasks::{Completion, State, ThreadId, Wait};
use super::{Core, CoreConfig};
use crate::cancel::CancelCtx;
use crate::error::{Error, Result};
use crate::inbox::{Inbox, InboxMsg};
use crate::loops::blocking::BlockingPool;
use crate::loops::readiness::FdLoop;
use crate::loops::timer::{Fired, TimerLoop};
use crate::loops::uring_io::UringLoop;
use crate::loops::{EventLoop, LoopCx, Request};
use crate::syscall::{BlockingJob, Readiness};

/// epoll tokens above any fd number.
const TOKEN_INBOX: u64 = 1 << 40;
const TOKEN_URING: u64 = 1 << 41;
const TOKEN_CUSTOM: u64 = 1 << 42;

/// A user event loop and the buffer of the completions one call to it makes.
struct LoopState {
    lp: Box<dyn EventLoop>,
    done: Vec<(ThreadId, Completion)>,
}

/// A user event loop and the scheduler's bookkeeping for it.
struct LoopSlot {
    /// Borrowed while the loop runs (`poll`, `submit`, `cancel`, `with_loop`) and its
    /// completions are delivered, so a re-entrant call finds it busy instead of
    /// aliasing it.
    state: RefCell<LoopState>,
    has_fd: bool,
    /// Threads blocked in a call to this loop.
    pending: Cell<usize>,
    /// The loop asked to be polled after the current batch ([`LoopCx::poll_soon`]).
    dirty: Cell<bool>,
}

/// The event loops of one core and what waits on them.
pub(super) struct Sources {
    poller: Epoll,
    events: RefCell<Events>,
    timers: RefCell<TimerLoop>,
    fds: Option<RefCell<FdLoop>>,
    uring: Option<RefCell<UringLoop>>,
    /// Reused buffer for io_uring completions reaped in one pass.
    uring_done: RefCell<Vec<(ThreadId, iolib::uring::Completion)>>,
    pool: Option<BlockingPool>,
    pool_pending: Cell<usize>,
    next_job: Cell<u64>,
    custom: Box<[LoopSlot]>,
    custom_pending: Cell<usize>,
    /// Some loop in `custom` is dirty.
    any_dirty: Cell<bool>,
}

impl Sources {
    /// Builds the loops `cfg` asks for (taking its user loops) and registers the wake
    /// fds of the inbox, the ring and the user loops with one epoll instance.
    pub(super) fn new(
        cfg: &mut CoreConfig,
        inbox: &Inbox,
        pool: Option<BlockingPool>,
    ) -> Result<Sources> {
        let poller = Epoll::new()?;
        poller.add(inbox.efd.as_raw_fd(), Interest::READABLE, TOKEN_INBOX)?;
        let uring = match cfg.uring_entries {
            Some(n) => {
                let u = UringLoop::new(n)?;
                poller.add(u.fd(), Interest::READABLE, TOKEN_URING)?;
                Some(RefCell::new(u))
            }
            None => None,
        };
        let mut custom = Vec::with_capacity(cfg.custom.len());
        for (i, l) in std::mem::take(&mut cfg.custom).into_iter().enumerate() {
            let fd = l.wake_fd();
            if let Some(fd) = fd {
                poller.add(fd, Interest::READABLE, TOKEN_CUSTOM + i as u64)?;
            }
            custom.push(LoopSlot {
                state: RefCell::new(LoopState {
                    lp: l,
                    done: Vec::new(),
                }),
                has_fd: fd.is_some(),
                pending: Cell::new(0),
                dirty: Cell::new(false),
            });
        }
        Ok(Sources {
            poller,
            events: RefCell::new(Events::with_capacity(256)),
            timers: RefCell::new(TimerLoop::new()),
            fds: cfg.fd_loop.then(|| RefCell::new(FdLoop::new())),
            uring,
            uring_done: RefCell::new(Vec::new()),
            pool,
            pool_pending: Cell::new(0),
            next_job: Cell::new(0),
            custom: custom.into_boxed_slice(),
            custom_pending: Cell::new(0),
            any_dirty: Cell::new(false),
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
        self.clock.base() + Duration::from_nanos(self.now_ns())
    }

    pub(crate) fn pending_timers(&self) -> usize {
        self.sources.timers.borrow().live()
    }

    pub(crate) fn add_ctx_timer(&self, deadline: u64, ctx: Rc<CancelCtx>, owner: ThreadId) -> u64 {
        self.sources
            .timers
            .borrow_mut()
            .add_ctx(deadline, ctx, owner)
    }

    pub(crate) fn remove_ctx_timer(&self, key: u64) {
        self.sources.timers.borrow_mut().remove_ctx(key);
    }

    /// Whether a sleep or timeout is armed.
    pub(super) fn timers_armed(&self) -> bool {
        !self.sources.timers.borrow().is_empty()
    }

    /// `tid` sleeps until `deadline`.
    pub(super) fn sleep_until(&self, deadline: u64, tid: ThreadId) -> Wait {
        self.sources.timers.borrow_mut().add_thread(deadline, tid);
        Wait::Timer(deadline)
    }

    /// Wakes the sleepers and expires the timeouts that are due.
    pub(super) fn fire_timers(&self) {
        let now = self.now_ns();
        loop {
            let fired = {
                let mut timers = self.sources.timers.borrow_mut();
                let tasks = self.tasks.borrow();
                timers.pop_due(now, |tid, d| tasks.is_blocked_in(tid, Wait::Timer(d)))
            };
            match fired {
                None => break,
                Some(Fired::Thread(tid, d)) => {
                    self.complete(tid, Some(Wait::Timer(d)), Completion::Value(0));
                }
                Some(Fired::Ctx(ctx, owner)) => {
                    ctx.timed_out.set(true);
                    ctx.cancel();
                    self.interrupt(owner);
                }
            }
        }
    }

    /// The earliest time anything is due, in ns on the core clock: a timer, or a user
    /// loop's deadline (`now` for a loop polled continuously, see `loops_due_ns`).
    pub(super) fn next_due_ns(&self, now: u64) -> Option<u64> {
        let timer = self.sources.timers.borrow().next_deadline();
        match (timer, self.loops_due_ns(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- calls to the built-in loops -----------------------------------------------

    /// `tid` waits for `fd` to be ready for `r`: `None` if it already is.
    pub(super) fn wait_fd(&self, fd: RawFd, r: Readiness, tid: ThreadId) -> Result<Option<Wait>> {
        let fds = self
            .sources
            .fds
            .as_ref()
            .ok_or(Error::NoEventLoop("epoll"))?;
        let ready = fds.borrow_mut().wait(&self.sources.poller, fd, r, tid)?;
        Ok((!ready).then_some(Wait::Fd(fd)))
    }

    /// Drops the epoll registration of `fd`; threads waiting on it resume with `EBADF`.
    pub(crate) fn forget_fd(&self, fd: RawFd) {
        let Some(fds) = &self.sources.fds else { return };
        let woke = fds.borrow_mut().forget(&self.sources.poller, fd);
        for tid in woke.into_iter().flatten() {
            self.complete(
                tid,
                Some(Wait::Fd(fd)),
                Completion::Value(-(libc::EBADF as i64)),
            );
        }
    }

    /// Queues `op` for `tid` in the ring (submitted before the scheduler next waits).
    pub(super) fn push_uring(&self, op: iolib::uring::Op, tid: ThreadId) -> Result<Wait> {
        let u = self
            .sources
            .uring
            .as_ref()
            .ok_or(Error::NoEventLoop("io_uring"))?;
        Ok(Wait::Uring(u.borrow_mut().push(op, tid)?))
    }

    /// Submits the operations queued in the ring.
    pub(super) fn submit_uring(&self) -> Result<()> {
        match &self.sources.uring {
            Some(u) => u.borrow_mut().submit(),
            None => Ok(()),
        }
    }

    /// Hands `job` to the blocking pool on behalf of `tid`.
    pub(super) fn submit_blocking(&self, job: BlockingJob, tid: ThreadId) -> Result<Wait> {
        let s = &self.sources;
        let pool = s.pool.as_ref().ok_or(Error::NoEventLoop("blocking pool"))?;
        let id = s.next_job.get();
        s.next_job.set(id + 1);
        pool.submit(id, tid, job, self.inbox.clone());
        s.pool_pending.set(s.pool_pending.get() + 1);
        Ok(Wait::Pool(id))
    }

    /// Withdraws `tid`'s pending call from its event loop.
    pub(super) fn cancel_wait(&self, tid: ThreadId, wait: Wait) {
        let s = &self.sources;
        match wait {
            Wait::Waker => {
                // A foreign future cannot be interrupted: poll it again; the thread
                // sees `Cancelled` at its next system call.
                self.complete(tid, Some(wait), Completion::Empty);
            }
            Wait::Park | Wait::Timer(_) => {
                // Timer entries go stale: the heap checks the thread still waits on them.
                if let Wait::Timer(_) = wait {
                    s.timers.borrow_mut().note_stale();
                }
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Fd(fd) => {
                if let Some(fds) = &s.fds {
                    fds.borrow_mut().remove_waiter(fd, tid);
                }
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Uring(id) => {
                // The thread resumes only when the kernel posts the op's completion, so
                // the op's buffer is never released while the kernel may write to it.
                if let Some(u) = &s.uring {
                    let _ = u.borrow_mut().cancel(id);
                }
                self.set_state(tid, State::Blocked(Wait::UringCancelling(id)));
            }
            Wait::UringCancelling(_) => {}
            Wait::Pool(job) => {
                if let Some(pool) = &s.pool {
                    pool.withdraw(job);
                }
                s.pool_pending.set(s.pool_pending.get().saturating_sub(1));
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Custom(idx) => {
                self.with_custom(idx, false, |l, cx| l.cancel(tid, cx));
            }
        }
    }

    /// Whether a thread waits on an event source other than the clock.
    pub(super) fn io_pending(&self) -> bool {
        let s = &self.sources;
        s.fds.as_ref().is_some_and(|f| f.borrow().waiters() > 0)
            || s.uring.as_ref().is_some_and(|u| u.borrow().inflight() > 0)
            || s.pool_pending.get() > 0
            || s.custom_pending.get() > 0
    }

    // ----- events --------------------------------------------------------------------

    /// Submits queued io_uring operations, waits up to `timeout` for events (`None`:
    /// forever), and completes the calls they finish.
    pub(super) fn poll_events(&self, timeout: Option<Duration>) -> Result<()> {
        let s = &self.sources;
        self.submit_uring()?;
        let uring_ready = {
            let mut events = s.events.borrow_mut();
            s.poller.wait(&mut events, timeout)?;
            self.handle_events(&events)?
        };
        if uring_ready || s.uring.as_ref().is_some_and(|u| u.borrow().inflight() > 0) {
            self.reap_uring();
        }
        Ok(())
    }

    /// Routes each epoll event to its source; returns whether the ring has
    /// completions to reap.
    fn handle_events(&self, events: &Events) -> Result<bool> {
        let mut uring_ready = false;
        for (token, readiness) in events.iter() {
            if token < TOKEN_INBOX {
                if let Some(fds) = &self.sources.fds {
                    let woke = fds.borrow_mut().on_event(token as RawFd, readiness);
                    for tid in woke.into_iter().flatten() {
                        self.complete(tid, Some(Wait::Fd(token as RawFd)), Completion::Value(0));
                    }
                }
            } else if token == TOKEN_INBOX {
                self.inbox.efd.drain()?;
                self.drain_inbox();
            } else if token == TOKEN_URING {
                uring_ready = true;
            } else if token >= TOKEN_CUSTOM {
                self.with_custom((token - TOKEN_CUSTOM) as u32, true, |l, cx| l.poll(cx));
            }
        }
        Ok(uring_ready)
    }

    fn reap_uring(&self) {
        let Some(u) = &self.sources.uring else { return };
        // Held throughout: completing a call only queues its thread.
        let mut done = self.sources.uring_done.borrow_mut();
        u.borrow_mut().reap(&mut done);
        for (tid, c) in done.drain(..) {
            let id = c.id;
            let wait = match self.tasks.borrow().state(tid) {
                Some(State::Blocked(w @ Wait::UringCancelling(x))) if x == id => w,
                Some(State::Blocked(w @ Wait::Uring(x))) if x == id => w,
                _ => continue,
            };
            let c = if matches!(wait, Wait::UringCancelling(_)) && c.is_cancelled() {
                Completion::Cancelled
            } else {
                Completion::Boxed(Box::new(Box::new(c)))
            };
            self.complete(tid, Some(wait), c);
        }
    }

    /// Handles the messages other OS threads sent this core.
    fn drain_inbox(&self) {
        for m in self.inbox.take() {
            match m {
                InboxMsg::Wake(tid) => self.wake(tid),
                InboxMsg::PoolDone { tid, job, result } => {
                    let wait = Wait::Pool(job);
                    if self.tasks.borrow().state(tid) == Some(State::Blocked(wait)) {
                        let pending = &self.sources.pool_pending;
                        pending.set(pending.get().saturating_sub(1));
                        let c: Box<dyn Any> = Box::new(result);
                        self.complete(tid, Some(wait), Completion::Boxed(Box::new(c)));
                    }
                }
                InboxMsg::Run(f) => f(),
                InboxMsg::Shutdown => self.begin_shutdown(),
            }
        }
    }

    // ----- user loops ----------------------------------------------------------------

    /// Hands `tid`'s call to user loop `idx`.
    pub(super) fn dispatch_custom(&self, tid: ThreadId, idx: u32, req: Request) {
        let s = &self.sources;
        let Some(slot) = s.custom.get(idx as usize) else {
            return self.fail_now(tid, Error::NoEventLoop("custom (unknown LoopId)"));
        };
        self.set_state(tid, State::Blocked(Wait::Custom(idx)));
        slot.pending.set(slot.pending.get() + 1);
        s.custom_pending.set(s.custom_pending.get() + 1);
        let submitted = self.with_custom(idx, false, |l, cx| l.submit(tid, req, cx));
        if submitted.is_none() {
            // The loop is busy: only a call made from inside that loop gets here.
            self.set_state(tid, State::Running);
            self.fail_now(
                tid,
                Error::NoEventLoop("custom (called from inside itself)"),
            );
            slot.pending.set(slot.pending.get() - 1);
            s.custom_pending.set(s.custom_pending.get() - 1);
        }
    }

    /// Runs `f` on user loop `idx` with a fresh [`LoopCx`], then delivers the
    /// completions it made and notes a [`LoopCx::poll_soon`] request. `None` if there
    /// is no such loop or it is already running (a re-entrant call).
    pub(crate) fn with_custom<R>(
        &self,
        idx: u32,
        fd_ready: bool,
        f: impl FnOnce(&mut dyn EventLoop, &mut LoopCx<'_>) -> R,
    ) -> Option<R> {
        let s = &self.sources;
        let slot = s.custom.get(idx as usize)?;
        // Held until the completions are delivered (which only queues threads); `f`
        // may call other loops, each with its own state.
        let mut state = slot.state.try_borrow_mut().ok()?;
        let LoopState { lp, done } = &mut *state;
        let mut cx = LoopCx {
            now: self.now_instant(),
            done,
            fd_ready,
            poll_soon: false,
        };
        let r = f(&mut **lp, &mut cx);
        if cx.poll_soon {
            slot.dirty.set(true);
            s.any_dirty.set(true);
        }
        for (tid, c) in done.drain(..) {
            if self.complete(tid, Some(Wait::Custom(idx)), c) {
                slot.pending.set(slot.pending.get().saturating_sub(1));
                s.custom_pending
                    .set(s.custom_pending.get().saturating_sub(1));
            }
        }
        Some(r)
    }

    /// Polls the user loops that are due without an event: those that asked for it
    /// ([`LoopCx::poll_soon`]), those without a wake fd (every pass), and those whose
    /// deadline has passed.
    pub(super) fn poll_loops(&self) {
        let s = &self.sources;
        if s.custom.is_empty() {
            return;
        }
        let dirty = s.any_dirty.replace(false);
        let now = self.now_instant();
        for (idx, slot) in s.custom.iter().enumerate() {
            let due = !slot.has_fd
                || (dirty && slot.dirty.replace(false))
                || slot
                    .state
                    .try_borrow()
                    .is_ok_and(|st| st.lp.next_deadline().is_some_and(|d| d <= now));
            if due {
                self.with_custom(idx as u32, false, |l, cx| l.poll(cx));
            }
        }
    }

    /// The earliest of the user loops' deadlines in ns on the core clock; `now` if a
    /// loop without a wake fd holds calls but reports no deadline (it is polled
    /// continuously).
    fn loops_due_ns(&self, now: u64) -> Option<u64> {
        let base = self.clock.base();
        let mut due: Option<u64> = None;
        for slot in self.sources.custom.iter() {
            let Ok(st) = slot.state.try_borrow() else {
                continue;
            };
            let l = &st.lp;
            let d = match l.next_deadline() {
                Some(d) => d.saturating_duration_since(base).as_nanos() as u64,
                None if !slot.has_fd && slot.pending.get() > 0 && !l.wakes_at_deadlines() => now,
                None => continue,
            };
            due = Some(due.map_or(d, |x| x.min(d)));
        }
        due
    }
}
