//! The per-core scheduler: a run queue of threads, the system-call dispatcher, and the
//! event loops it routes calls to. One `Core` runs on one OS thread and is
//! deterministic: the same inputs give the same interleaving.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use iolib::epoll::{Epoll, Events, Interest};

use crate::cancel::CancelCtx;
use crate::error::{Error, Result};
use crate::loops::fd::FdLoop;
use crate::loops::pool::BlockingPool;
use crate::loops::timer::TimerLoop;
use crate::loops::uring::UringLoop;
use crate::loops::{EventLoop, LoopCx, Request};
use crate::remote::{Remote, RemoteMsg};
use crate::runtime::Shared;
use crate::scope::ScopeInner;
use crate::syscall::Syscall;
use crate::thread::{Exit, Runnable};
use crate::time::ClockKind;
use crate::trace::{TraceKind, Tracer};
use crate::waker;

const NONE: u32 = u32::MAX;
/// epoll tokens above any fd number.
pub(crate) const TOKEN_REMOTE: u64 = 1 << 40;
pub(crate) const TOKEN_URING: u64 = 1 << 41;
pub(crate) const TOKEN_CUSTOM: u64 = 1 << 42;
/// Batches of ready threads between two non-blocking polls of the event sources.
const EVENT_INTERVAL: u32 = 61;

/// Identifies a thread on its core. Ids are reused only with a new generation, so a
/// stale id never reaches a newer thread.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl ThreadId {
    /// Packs into 63 bits (used as io_uring and timer tokens).
    pub(crate) fn pack(self) -> u64 {
        ((self.gen as u64 & 0x7fff_ffff) << 32) | self.index as u64
    }
    pub(crate) fn unpack(v: u64) -> ThreadId {
        ThreadId {
            index: v as u32,
            gen: ((v >> 32) & 0x7fff_ffff) as u32,
        }
    }
    /// The slot number (stable while the thread lives; used as the trace `tid`).
    pub fn index(self) -> u32 {
        self.index
    }
}

impl std::fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}.{}", self.index, self.gen)
    }
}

/// The result an event loop delivers to a thread blocked in a call.
#[derive(Default)]
pub enum Completion {
    /// Nothing yet.
    #[default]
    Empty,
    /// A plain value; negative values are `-errno`.
    Value(i64),
    /// The call was cancelled.
    Cancelled,
    /// An arbitrary value (io_uring completions, blocking results, custom replies),
    /// boxed twice so that a completion stays two words.
    Boxed(Box<Box<dyn Any>>),
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Completion::Empty => f.write_str("Empty"),
            Completion::Value(v) => write!(f, "Value({v})"),
            Completion::Cancelled => f.write_str("Cancelled"),
            Completion::Boxed(_) => f.write_str("Boxed(..)"),
        }
    }
}

/// What a blocked thread waits for (which loop holds it, and its key there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Park,
    Waker,
    Timer(u64),
    Fd(RawFd),
    Uring(iolib::uring::OpId),
    UringCancelling(iolib::uring::OpId),
    Pool(u64),
    Custom(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Ready,
    Running,
    Blocked(Wait),
}

struct Task {
    gen: u32,
    state: State,
    /// Set when a waker fired while the thread ran or was queued.
    notified: bool,
    runnable: Option<Pin<Rc<dyn Runnable>>>,
    completion: Completion,
    ctx: Option<Rc<CancelCtx>>,
    scope: Option<Rc<ScopeInner>>,
    prev: u32,
    next: u32,
}

/// `abandon_call` argument for join handles: the pending `Park`, whatever its number.
pub(crate) const ANY_PARK: u32 = 0;

/// log2 of the number of task slots per chunk.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// The task table: fixed-size chunks that never move, so growing it never copies
/// (or re-faults) the slots already in use.
#[derive(Default)]
struct TaskTable {
    chunks: Vec<Vec<Task>>,
    len: usize,
}

impl TaskTable {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, t: Task) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk exists").push(t);
        self.len += 1;
    }

    fn get(&self, i: usize) -> Option<&Task> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Task> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    /// Releases the table without running the slots' destructors.
    ///
    /// # Safety
    /// Every slot must be free and own nothing (no runnable, context, scope or
    /// completion), so that skipping their destructors leaks nothing.
    unsafe fn forget_free_slots(&mut self) {
        for c in &mut self.chunks {
            // SAFETY: guaranteed by the caller; shrinking only skips destructors.
            unsafe { c.set_len(0) };
        }
        self.len = 0;
    }
}

impl std::ops::Index<usize> for TaskTable {
    type Output = Task;
    fn index(&self, i: usize) -> &Task {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl std::ops::IndexMut<usize> for TaskTable {
    fn index_mut(&mut self, i: usize) -> &mut Task {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
}

/// A user event loop and the scheduler's bookkeeping for it.
struct LoopSlot {
    /// Borrowed while the loop runs (`poll`, `submit`, `cancel`, `with_loop`), so a
    /// re-entrant call finds it busy instead of aliasing it.
    lp: RefCell<Box<dyn EventLoop>>,
    has_fd: bool,
    /// Threads blocked in a call to this loop.
    pending: Cell<usize>,
    /// The loop asked to be polled after the current batch ([`LoopCx::poll_soon`]).
    dirty: Cell<bool>,
}

/// Static configuration of one core's scheduler.
pub(crate) struct CoreConfig {
    pub id: usize,
    pub fd_loop: bool,
    pub uring_entries: Option<u32>,
    pub clock: ClockKind,
    pub trace: bool,
    pub custom: Vec<Box<dyn EventLoop>>,
    /// Seed of the order ready threads run in within a batch (`None`: FIFO).
    pub shuffle: Option<u64>,
}

/// One core's scheduler.
pub(crate) struct Core {
    pub(crate) id: usize,
    tasks: RefCell<TaskTable>,
    free: RefCell<Vec<u32>>,
    live: Cell<usize>,
    ready: RefCell<VecDeque<ThreadId>>,
    current: Cell<Option<ThreadId>>,
    /// The call the running thread left, with its sequence number.
    syscall: RefCell<Option<(Syscall, u32)>>,
    call_seq: Cell<u32>,
    timers: RefCell<TimerLoop>,
    fds: Option<RefCell<FdLoop>>,
    uring: Option<RefCell<UringLoop>>,
    pub(crate) pool: Option<BlockingPool>,
    custom: Box<[LoopSlot]>,
    custom_pending: Cell<usize>,
    /// Some loop in `custom` is dirty.
    any_dirty: Cell<bool>,
    /// Reused buffer for the completions one loop call makes.
    loop_done: RefCell<Vec<(ThreadId, Completion)>>,
    poller: Epoll,
    events: RefCell<Events>,
    pub(crate) clock: ClockKind,
    pub(crate) remote: Arc<Remote>,
    pub(crate) shared: Option<Arc<Shared>>,
    tracer: Option<RefCell<Tracer>>,
    pub(crate) root: Rc<ScopeInner>,
    tick: Cell<u32>,
    pool_pending: Cell<usize>,
    next_job: Cell<u64>,
    /// Reused buffer for io_uring completions reaped in one pass.
    uring_done: RefCell<Vec<(ThreadId, iolib::uring::Completion)>>,
    shutting_down: Cell<bool>,
    /// State of the seeded order of ready threads ([`Builder::shuffle_ready`]).
    ///
    /// [`Builder::shuffle_ready`]: crate::Builder::shuffle_ready
    shuffle: Option<Cell<u64>>,
    /// Reused buffer of one shuffled batch.
    batch: RefCell<Vec<ThreadId>>,
}

impl Core {
    pub(crate) fn new(
        cfg: CoreConfig,
        remote: Arc<Remote>,
        pool: Option<BlockingPool>,
        shared: Option<Arc<Shared>>,
    ) -> Result<Core> {
        let poller = Epoll::new()?;
        poller.add(remote.efd.as_raw_fd(), Interest::READABLE, TOKEN_REMOTE)?;
        let uring = match cfg.uring_entries {
            Some(n) => {
                let u = UringLoop::new(n)?;
                poller.add(u.fd(), Interest::READABLE, TOKEN_URING)?;
                Some(RefCell::new(u))
            }
            None => None,
        };
        let mut custom = Vec::with_capacity(cfg.custom.len());
        for (i, l) in cfg.custom.into_iter().enumerate() {
            let fd = l.wake_fd();
            if let Some(fd) = fd {
                poller.add(fd, Interest::READABLE, TOKEN_CUSTOM + i as u64)?;
            }
            custom.push(LoopSlot {
                lp: RefCell::new(l),
                has_fd: fd.is_some(),
                pending: Cell::new(0),
                dirty: Cell::new(false),
            });
        }
        let root = ScopeInner::new(CancelCtx::root(), None);
        Ok(Core {
            id: cfg.id,
            tasks: RefCell::new(TaskTable::default()),
            free: RefCell::new(Vec::new()),
            live: Cell::new(0),
            ready: RefCell::new(VecDeque::new()),
            current: Cell::new(None),
            syscall: RefCell::new(None),
            call_seq: Cell::new(0),
            timers: RefCell::new(TimerLoop::new()),
            fds: cfg.fd_loop.then(|| RefCell::new(FdLoop::new())),
            uring,
            pool,
            custom: custom.into_boxed_slice(),
            custom_pending: Cell::new(0),
            any_dirty: Cell::new(false),
            loop_done: RefCell::new(Vec::new()),
            poller,
            events: RefCell::new(Events::with_capacity(256)),
            clock: cfg.clock,
            remote,
            shared,
            tracer: cfg.trace.then(|| RefCell::new(Tracer::new(cfg.id))),
            root,
            tick: Cell::new(0),
            pool_pending: Cell::new(0),
            next_job: Cell::new(0),
            uring_done: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            shuffle: cfg.shuffle.map(|seed| Cell::new(seed ^ cfg.id as u64)),
            batch: RefCell::new(Vec::new()),
        })
    }

    // ----- access from threads -------------------------------------------------------

    /// The core running on this OS thread, if any.
    pub(crate) fn current() -> Option<&'static Core> {
        let p = CURRENT.with(|c| c.get());
        // SAFETY: CURRENT is set only by `enter` to a Core that outlives the guard it
        // returns, and reset when the guard drops; the 'static here never escapes a
        // call made while the scheduler runs (threads only run inside `run`).
        unsafe { p.as_ref() }
    }

    /// Runs `f` on the current core, if there is one.
    pub(crate) fn try_with<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
        Core::current().map(f)
    }

    /// Installs `self` as this OS thread's core until the guard drops.
    pub(crate) fn enter(&self) -> EnterGuard {
        let prev = CURRENT.with(|c| c.replace(self as *const Core));
        EnterGuard { prev }
    }

    /// The running thread's id.
    pub(crate) fn current_thread(&self) -> Option<ThreadId> {
        self.current.get()
    }

    pub(crate) fn fds_loop(&self) -> Option<&RefCell<FdLoop>> {
        self.fds.as_ref()
    }

    pub(crate) fn poller(&self) -> &Epoll {
        &self.poller
    }

    pub(crate) fn live_threads(&self) -> usize {
        self.live.get()
    }

    // ----- threads -------------------------------------------------------------------

    /// Creates a thread for `runnable` in `scope` and queues it (unless `queue` is false,
    /// for `Fork`, which queues it itself).
    pub(crate) fn spawn_runnable(
        &self,
        runnable: Pin<Rc<dyn Runnable>>,
        scope: &Rc<ScopeInner>,
        queue: bool,
    ) -> ThreadId {
        let index = {
            let mut tasks = self.tasks.borrow_mut();
            let index = match self.free.borrow_mut().pop() {
                Some(i) => i,
                None => {
                    tasks.push(Task {
                        gen: 0,
                        state: State::Free,
                        notified: false,
                        runnable: None,
                        completion: Completion::Empty,
                        ctx: None,
                        scope: None,
                        prev: NONE,
                        next: NONE,
                    });
                    (tasks.len() - 1) as u32
                }
            };
            let head = scope.head.get();
            let t = &mut tasks[index as usize];
            t.state = State::Ready;
            t.notified = false;
            t.runnable = Some(runnable);
            t.ctx = Some(scope.ctx.clone());
            t.scope = Some(scope.clone());
            t.prev = NONE;
            t.next = head;
            if head != NONE {
                tasks[head as usize].prev = index;
            }
            index
        };
        scope.head.set(index);
        scope.live.set(scope.live.get() + 1);
        self.live.set(self.live.get() + 1);
        let gen = self.tasks.borrow()[index as usize].gen;
        let tid = ThreadId { index, gen };
        if queue {
            self.ready.borrow_mut().push_back(tid);
        }
        self.trace(tid, TraceKind::Spawn, "spawn");
        tid
    }

    fn task_state(&self, tid: ThreadId) -> Option<State> {
        let tasks = self.tasks.borrow();
        let t = tasks.get(tid.index as usize)?;
        (t.gen == tid.gen && t.state != State::Free).then_some(t.state)
    }

    /// Delivers `c` to `tid` if it is blocked in `expect` (or any call if `None`), and
    /// makes it ready. Returns whether it was delivered.
    pub(crate) fn complete(&self, tid: ThreadId, expect: Option<Wait>, c: Completion) -> bool {
        {
            let mut tasks = self.tasks.borrow_mut();
            let Some(t) = tasks.get_mut(tid.index as usize) else {
                return false;
            };
            if t.gen != tid.gen {
                return false;
            }
            match (t.state, expect) {
                (State::Blocked(w), Some(e)) if w == e => {}
                (State::Blocked(_), None) => {}
                _ => return false,
            }
            t.state = State::Ready;
            t.completion = c;
        }
        self.ready.borrow_mut().push_back(tid);
        self.trace(tid, TraceKind::Resume, "resume");
        true
    }

    /// Wakes a parked thread; a no-op if it is not parked.
    pub(crate) fn unpark(&self, tid: ThreadId) -> bool {
        self.complete(tid, Some(Wait::Park), Completion::Value(0))
    }

    /// Wakes a thread that waits on a foreign waker.
    pub(crate) fn wake(&self, tid: ThreadId) {
        let mut tasks = self.tasks.borrow_mut();
        let Some(t) = tasks.get_mut(tid.index as usize) else {
            return;
        };
        if t.gen != tid.gen {
            return;
        }
        match t.state {
            State::Blocked(Wait::Waker) => {
                t.state = State::Ready;
                drop(tasks);
                self.ready.borrow_mut().push_back(tid);
            }
            State::Running | State::Ready => t.notified = true,
            _ => {}
        }
    }

    /// Sets the running thread's innermost cancellation context; returns the old one.
    pub(crate) fn swap_ctx(&self, ctx: Rc<CancelCtx>) -> Option<Rc<CancelCtx>> {
        let tid = self.current.get()?;
        let mut tasks = self.tasks.borrow_mut();
        let t = tasks.get_mut(tid.index as usize)?;
        t.ctx.replace(ctx)
    }

    /// The running thread's innermost cancellation context.
    pub(crate) fn current_ctx(&self) -> Option<Rc<CancelCtx>> {
        let tid = self.current.get()?;
        self.tasks.borrow().get(tid.index as usize)?.ctx.clone()
    }

    /// The scope the running thread belongs to (the core's root scope outside threads).
    pub(crate) fn current_scope(&self) -> Rc<ScopeInner> {
        self.current
            .get()
            .and_then(|tid| self.tasks.borrow().get(tid.index as usize)?.scope.clone())
            .unwrap_or_else(|| self.root.clone())
    }

    /// Called by a system-call future on its first poll.
    pub(crate) fn leave_call(&self, call: Syscall) -> Poll<Result<Completion>> {
        let Some(tid) = self.current.get() else {
            return Poll::Ready(Err(Error::NoRuntime));
        };
        let cancelled = {
            let tasks = self.tasks.borrow();
            tasks[tid.index as usize]
                .ctx
                .as_ref()
                .is_some_and(|c| c.is_cancelled())
        };
        if cancelled {
            if let Syscall::Fork(child) = call {
                self.ready.borrow_mut().push_front(child);
            }
            return Poll::Ready(Err(Error::Cancelled));
        }
        let mut slot = self.syscall.borrow_mut();
        debug_assert!(slot.is_none(), "a thread made two system calls in one poll");
        if slot.is_some() {
            drop(slot);
            return Poll::Ready(Err(Error::other(
                "a thread polled two threadlib calls at once; use spawn/both/race for concurrency",
            )));
        }
        // Sequence numbers skip 0, which call futures use for "nothing outstanding".
        let seq = match self.call_seq.get().wrapping_add(1) {
            0 => 1,
            s => s,
        };
        self.call_seq.set(seq);
        *slot = Some((call, seq));
        Poll::Pending
    }

    /// The sequence number of the call most recently left by `leave_call`.
    pub(crate) fn last_call_seq(&self) -> u32 {
        self.call_seq.get()
    }

    /// A call future is dropped before it consumed its result (e.g. by `select!` or
    /// `now_or_never`). If its call was not dispatched yet, withdraw it; if it was
    /// dispatched and completed (the thread runs again because of it), discard the
    /// unread completion so the thread's next call does not receive it.
    ///
    /// `seq` is the call's sequence number, or [`ANY_PARK`] for "the `Park` call in the
    /// slot, if that is what it holds" (join handles, which keep no sequence number).
    pub(crate) fn abandon_call(&self, seq: u32) {
        let Some(tid) = self.current.get() else {
            return;
        };
        let mut slot = self.syscall.borrow_mut();
        if let Some((call, s)) = &*slot {
            if *s == seq || (seq == ANY_PARK && matches!(call, Syscall::Park)) {
                let (call, _) = slot.take().expect("checked above");
                drop(slot);
                if let Syscall::Fork(child) = call {
                    self.ready.borrow_mut().push_front(child);
                }
                return;
            }
            return;
        }
        drop(slot);
        if let Some(t) = self.tasks.borrow_mut().get_mut(tid.index as usize) {
            if t.gen == tid.gen && t.state == State::Running {
                t.completion = Completion::Empty;
            }
        }
    }

    /// Called by a system-call future when polled again after suspending.
    pub(crate) fn take_completion(&self) -> Poll<Result<Completion>> {
        let Some(tid) = self.current.get() else {
            return Poll::Ready(Err(Error::NoRuntime));
        };
        let c = std::mem::take(&mut self.tasks.borrow_mut()[tid.index as usize].completion);
        match c {
            Completion::Empty => Poll::Pending,
            Completion::Cancelled => Poll::Ready(Err(Error::Cancelled)),
            c => Poll::Ready(Ok(c)),
        }
    }

    fn run_thread(&self, tid: ThreadId) {
        let runnable = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(t) = tasks.get_mut(tid.index as usize) else {
                return;
            };
            if t.gen != tid.gen || t.state != State::Ready {
                return;
            }
            t.state = State::Running;
            t.notified = false;
            match &t.runnable {
                Some(r) => r.clone(),
                None => return,
            }
        };
        self.current.set(Some(tid));
        self.trace(tid, TraceKind::RunBegin, "run");
        let waker = waker::borrowed(self);
        let mut cx = Context::from_waker(&waker);
        let poll = runnable.as_ref().poll_thread(&mut cx);
        self.current.set(None);
        self.trace(tid, TraceKind::RunEnd, "run");
        drop(runnable);
        match poll {
            Poll::Ready(exit) => self.exit_thread(tid, exit),
            Poll::Pending => {
                let call = self.syscall.borrow_mut().take();
                match call {
                    Some((call, _)) => self.dispatch(tid, call),
                    None => {
                        // A foreign future is waiting on our waker.
                        let mut tasks = self.tasks.borrow_mut();
                        let t = &mut tasks[tid.index as usize];
                        if t.notified {
                            t.notified = false;
                            t.state = State::Ready;
                            drop(tasks);
                            self.ready.borrow_mut().push_back(tid);
                        } else {
                            t.state = State::Blocked(Wait::Waker);
                            drop(tasks);
                            self.trace(tid, TraceKind::Suspend, "waker");
                        }
                    }
                }
            }
        }
    }

    fn exit_thread(&self, tid: ThreadId, exit: Exit) {
        let (runnable, scope, next) = {
            let mut tasks = self.tasks.borrow_mut();
            let t = &mut tasks[tid.index as usize];
            t.state = State::Free;
            t.gen = t.gen.wrapping_add(1) & 0x7fff_ffff;
            t.completion = Completion::Empty;
            let ctx = t.ctx.take();
            let (runnable, scope, prev, next) = (t.runnable.take(), t.scope.take(), t.prev, t.next);
            if prev != NONE {
                tasks[prev as usize].next = next;
            }
            if next != NONE {
                tasks[next as usize].prev = prev;
            }
            drop(tasks);
            drop(ctx);
            (runnable, scope, next)
        };
        self.free.borrow_mut().push(tid.index);
        self.live.set(self.live.get() - 1);
        self.trace(tid, TraceKind::Exit, "exit");
        if let Some(scope) = scope {
            if scope.head.get() == tid.index {
                scope.head.set(next);
            }
            if let Exit::Failed(e) = exit {
                scope.record_error(e);
                self.cancel_scope(&scope);
            }
            scope.live.set(scope.live.get() - 1);
            if scope.live.get() == 0 {
                if let Some(w) = scope.waiter.get() {
                    self.unpark(w);
                }
            }
        }
        if let Some(r) = &runnable {
            r.as_ref().notify_joiner(self);
        }
        drop(runnable);
    }

    fn dispatch(&self, tid: ThreadId, call: Syscall) {
        if self.tracer.is_some() {
            self.trace(tid, TraceKind::Suspend, call.name());
        }
        let wait = match call {
            Syscall::Yield => {
                self.set_ready(tid, Completion::Value(0));
                return;
            }
            Syscall::Fork(child) => {
                self.set_ready(tid, Completion::Value(0));
                let mut q = self.ready.borrow_mut();
                // Child first, then the parent (which set_ready queued at the back).
                let parent = q.pop_back();
                q.push_back(child);
                if let Some(p) = parent {
                    q.push_back(p);
                }
                return;
            }
            Syscall::Park => Wait::Park,
            Syscall::Sleep(deadline) => {
                if deadline <= self.now_ns() {
                    self.set_ready(tid, Completion::Value(0));
                    return;
                }
                self.timers.borrow_mut().add_thread(deadline, tid);
                Wait::Timer(deadline)
            }
            Syscall::WaitFd(fd, readiness) => match &self.fds {
                None => return self.fail_now(tid, Error::NoEventLoop("epoll")),
                Some(fds) => match fds.borrow_mut().wait(&self.poller, fd, readiness, tid) {
                    Ok(true) => {
                        self.set_ready(tid, Completion::Value(0));
                        return;
                    }
                    Ok(false) => Wait::Fd(fd),
                    Err(e) => return self.fail_now(tid, e),
                },
            },
            Syscall::Uring(op) => match &self.uring {
                None => return self.fail_now(tid, Error::NoEventLoop("io_uring")),
                Some(u) => match u.borrow_mut().push(*op, tid) {
                    Ok(id) => Wait::Uring(id),
                    Err(e) => return self.fail_now(tid, e),
                },
            },
            Syscall::Blocking(job) => match &self.pool {
                None => return self.fail_now(tid, Error::NoEventLoop("blocking pool")),
                Some(pool) => {
                    let id = self.next_job.get();
                    self.next_job.set(id + 1);
                    pool.submit(id, tid, job, self.remote.clone());
                    self.pool_pending.set(self.pool_pending.get() + 1);
                    Wait::Pool(id)
                }
            },
            Syscall::Custom(id, req) => {
                return self.dispatch_custom(tid, id.0, Request::Boxed(req))
            }
            Syscall::LoopWord(id, word) => {
                return self.dispatch_custom(tid, id.0, Request::Word(word))
            }
        };
        self.set_state(tid, State::Blocked(wait));
    }

    /// Hands `tid`'s call to user loop `idx`.
    fn dispatch_custom(&self, tid: ThreadId, idx: u32, req: Request) {
        let Some(slot) = self.custom.get(idx as usize) else {
            return self.fail_now(tid, Error::NoEventLoop("custom (unknown LoopId)"));
        };
        self.set_state(tid, State::Blocked(Wait::Custom(idx)));
        slot.pending.set(slot.pending.get() + 1);
        self.custom_pending.set(self.custom_pending.get() + 1);
        let submitted = self.with_custom(idx, false, |l, cx| l.submit(tid, req, cx));
        if submitted.is_none() {
            // The loop is busy: only a call made from inside that loop gets here.
            self.set_state(tid, State::Running);
            self.fail_now(
                tid,
                Error::NoEventLoop("custom (called from inside itself)"),
            );
            slot.pending.set(slot.pending.get() - 1);
            self.custom_pending.set(self.custom_pending.get() - 1);
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
        let slot = self.custom.get(idx as usize)?;
        let mut l = slot.lp.try_borrow_mut().ok()?;
        let mut done = std::mem::take(&mut *self.loop_done.borrow_mut());
        let mut cx = LoopCx {
            now: self.now_instant(),
            done: &mut done,
            fd_ready,
            poll_soon: false,
        };
        let r = f(&mut **l, &mut cx);
        let poll_soon = cx.poll_soon;
        drop(l);
        if poll_soon {
            slot.dirty.set(true);
            self.any_dirty.set(true);
        }
        for (tid, c) in done.drain(..) {
            if self.complete(tid, Some(Wait::Custom(idx)), c) {
                slot.pending.set(slot.pending.get().saturating_sub(1));
                self.custom_pending
                    .set(self.custom_pending.get().saturating_sub(1));
            }
        }
        *self.loop_done.borrow_mut() = done;
        Some(r)
    }

    fn set_state(&self, tid: ThreadId, s: State) {
        self.tasks.borrow_mut()[tid.index as usize].state = s;
    }

    fn set_ready(&self, tid: ThreadId, c: Completion) {
        {
            let mut tasks = self.tasks.borrow_mut();
            let t = &mut tasks[tid.index as usize];
            t.state = State::Ready;
            t.completion = c;
        }
        self.ready.borrow_mut().push_back(tid);
    }

    fn fail_now(&self, tid: ThreadId, e: Error) {
        let b: Box<dyn Any> = Box::new(e);
        self.set_ready(tid, Completion::Boxed(Box::new(b)));
    }

    // ----- cancellation ---------------------------------------------------------------

    /// Cancels `scope`: marks it and interrupts every blocked thread under it.
    pub(crate) fn cancel_scope(&self, scope: &ScopeInner) {
        scope.ctx.cancel();
        self.interrupt_scope(scope);
    }

    fn interrupt_scope(&self, scope: &ScopeInner) {
        let mut i = scope.head.get();
        while i != NONE {
            let (tid, next) = {
                let tasks = self.tasks.borrow();
                let t = &tasks[i as usize];
                (
                    ThreadId {
                        index: i,
                        gen: t.gen,
                    },
                    t.next,
                )
            };
            self.interrupt(tid);
            i = next;
        }
        if let Some(owner) = scope.owner.get() {
            self.interrupt(owner);
        }
        let children: Vec<_> = scope
            .children
            .borrow()
            .iter()
            .filter_map(|w| w.upgrade())
            .collect();
        for child in children {
            self.interrupt_scope(&child);
        }
    }

    /// If `tid` is blocked and its context is cancelled, withdraws its call.
    pub(crate) fn interrupt(&self, tid: ThreadId) {
        let wait = {
            let tasks = self.tasks.borrow();
            let Some(t) = tasks.get(tid.index as usize) else {
                return;
            };
            if t.gen != tid.gen {
                return;
            }
            let State::Blocked(w) = t.state else { return };
            if !t.ctx.as_ref().is_some_and(|c| c.is_cancelled()) {
                return;
            }
            w
        };
        self.cancel_wait(tid, wait);
    }

    /// Withdraws `tid`'s pending call from its event loop.
    fn cancel_wait(&self, tid: ThreadId, wait: Wait) {
        match wait {
            Wait::Waker => {
                // A foreign future cannot be interrupted: poll it again; the thread
                // sees `Cancelled` at its next system call.
                self.complete(tid, Some(wait), Completion::Empty);
            }
            Wait::Park | Wait::Timer(_) => {
                // Timer entries go stale: the heap checks the thread still waits on them.
                if let Wait::Timer(_) = wait {
                    self.timers.borrow_mut().note_stale();
                }
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Fd(fd) => {
                if let Some(fds) = &self.fds {
                    fds.borrow_mut().remove_waiter(fd, tid);
                }
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Uring(id) => {
                // The thread resumes only when the kernel posts the op's completion, so
                // the op's buffer is never released while the kernel may write to it.
                if let Some(u) = &self.uring {
                    let _ = u.borrow_mut().cancel(id);
                }
                self.set_state(tid, State::Blocked(Wait::UringCancelling(id)));
            }
            Wait::UringCancelling(_) => {}
            Wait::Pool(job) => {
                if let Some(pool) = &self.pool {
                    pool.withdraw(job);
                }
                self.pool_pending
                    .set(self.pool_pending.get().saturating_sub(1));
                self.complete(tid, Some(wait), Completion::Cancelled);
            }
            Wait::Custom(idx) => {
                self.with_custom(idx, false, |l, cx| l.cancel(tid, cx));
            }
        }
    }

    // ----- timers and clock ----------------------------------------------------------

    /// Nanoseconds on this core's clock.
    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub(crate) fn now_instant(&self) -> std::time::Instant {
        self.clock.base() + Duration::from_nanos(self.now_ns())
    }

    pub(crate) fn pending_timers(&self) -> usize {
        self.timers.borrow().live()
    }

    pub(crate) fn add_ctx_timer(&self, deadline: u64, ctx: Rc<CancelCtx>, owner: ThreadId) -> u64 {
        self.timers.borrow_mut().add_ctx(deadline, ctx, owner)
    }

    pub(crate) fn remove_ctx_timer(&self, key: u64) {
        self.timers.borrow_mut().remove_ctx(key);
    }

    fn fire_timers(&self) {
        let now = self.now_ns();
        loop {
            let fired = {
                let mut timers = self.timers.borrow_mut();
                let tasks = self.tasks.borrow();
                timers.pop_due(now, |tid, d| {
                    tasks.get(tid.index as usize).is_some_and(|t| {
                        t.gen == tid.gen && t.state == State::Blocked(Wait::Timer(d))
                    })
                })
            };
            match fired {
                None => break,
                Some(crate::loops::timer::Fired::Thread(tid, d)) => {
                    self.complete(tid, Some(Wait::Timer(d)), Completion::Value(0));
                }
                Some(crate::loops::timer::Fired::Ctx(ctx, owner)) => {
                    ctx.timed_out.set(true);
                    ctx.cancel();
                    self.interrupt(owner);
                }
            }
        }
    }

    // ----- the loop ------------------------------------------------------------------

    /// Whether anything could still make a thread ready without outside help.
    fn has_pending_work(&self) -> bool {
        !self.ready.borrow().is_empty() || !self.timers.borrow().is_empty() || self.io_pending()
    }

    /// Whether a thread waits on an event source other than the clock.
    fn io_pending(&self) -> bool {
        self.fds.as_ref().is_some_and(|f| f.borrow().waiters() > 0)
            || self
                .uring
                .as_ref()
                .is_some_and(|u| u.borrow().inflight() > 0)
            || self.pool_pending.get() > 0
            || self.custom_pending.get() > 0
    }

    /// Runs threads until `done()` holds (checked after every batch).
    pub(crate) fn run(&self, mut done: impl FnMut(&Core) -> bool) -> Result<()> {
        loop {
            let n = self.ready.borrow().len();
            match &self.shuffle {
                None => {
                    for _ in 0..n {
                        let next = self.ready.borrow_mut().pop_front();
                        match next {
                            Some(tid) => self.run_thread(tid),
                            None => break,
                        }
                    }
                }
                Some(state) => self.run_shuffled(n, state),
            }
            // User loops that asked for a pass after this batch, and those without a
            // wake fd, run before anything waits.
            self.poll_loops();
            if done(self) {
                return Ok(());
            }
            let has_ready = !self.ready.borrow().is_empty();
            if has_ready {
                let t = self.tick.get().wrapping_add(1);
                self.tick.set(t);
                if t.is_multiple_of(EVENT_INTERVAL) {
                    self.poll_events(Some(Duration::ZERO))?;
                    self.fire_timers();
                    self.poll_loops();
                } else if let Some(u) = &self.uring {
                    u.borrow_mut().submit()?;
                }
                continue;
            }
            // Idle: wait for the next event, timer or loop deadline.
            let now = self.now_ns();
            let due = match (self.timers.borrow().next_deadline(), self.loops_due_ns(now)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = due.map(|d| d.saturating_sub(now));
            if self.clock.is_mock() {
                // Mock time never passes by itself: look for real events without
                // blocking, then jump the clock to the next deadline if nothing else
                // is due.
                let other_work = self.io_pending();
                self.poll_events(Some(Duration::ZERO))?;
                if self.ready.borrow().is_empty() {
                    match timeout {
                        Some(t) if self.clock.auto_advance() => {
                            self.clock.advance(Duration::from_nanos(t));
                        }
                        // A thread moved the clock past a timer: fire it below instead
                        // of waiting for an event that may never come.
                        _ if self
                            .timers
                            .borrow()
                            .next_deadline()
                            .is_some_and(|d| d <= now) => {}
                        _ => {
                            let wait = if other_work {
                                Some(Duration::from_millis(1))
                            } else {
                                None
                            };
                            self.poll_events(wait)?;
                        }
                    }
                }
            } else {
                self.poll_events(timeout.map(Duration::from_nanos))?;
            }
            self.fire_timers();
            self.poll_loops();
        }
    }

    /// Runs the `n` threads at the front of the run queue in an order drawn from
    /// `state` (SplitMix64), so that a seeded run explores interleavings the FIFO order
    /// never produces, and replays the same one for the same seed.
    fn run_shuffled(&self, n: usize, state: &Cell<u64>) {
        let mut batch = std::mem::take(&mut *self.batch.borrow_mut());
        batch.extend(self.ready.borrow_mut().drain(..n));
        for i in (1..batch.len()).rev() {
            let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            batch.swap(i, (z % (i as u64 + 1)) as usize);
        }
        for &tid in &batch {
            self.run_thread(tid);
        }
        batch.clear();
        *self.batch.borrow_mut() = batch;
    }

    fn poll_events(&self, timeout: Option<Duration>) -> Result<()> {
        if let Some(u) = &self.uring {
            u.borrow_mut().submit()?;
        }
        let mut events = self.events.borrow_mut();
        self.poller.wait(&mut events, timeout)?;
        let mut uring_ready = false;
        for (token, readiness) in events.iter() {
            if token < TOKEN_REMOTE {
                if let Some(fds) = &self.fds {
                    let woke = fds.borrow_mut().on_event(token as RawFd, readiness);
                    for tid in woke.into_iter().flatten() {
                        self.complete(tid, Some(Wait::Fd(token as RawFd)), Completion::Value(0));
                    }
                }
            } else if token == TOKEN_REMOTE {
                self.remote.efd.drain()?;
                self.drain_remote();
            } else if token == TOKEN_URING {
                uring_ready = true;
            } else if token >= TOKEN_CUSTOM {
                self.with_custom((token - TOKEN_CUSTOM) as u32, true, |l, cx| l.poll(cx));
            }
        }
        drop(events);
        if uring_ready
            || self
                .uring
                .as_ref()
                .is_some_and(|u| u.borrow().inflight() > 0)
        {
            self.reap_uring();
        }
        Ok(())
    }

    /// Polls the user loops that are due without an event: those that asked for it
    /// ([`LoopCx::poll_soon`]), those without a wake fd (every pass), and those whose
    /// deadline has passed.
    fn poll_loops(&self) {
        if self.custom.is_empty() {
            return;
        }
        let dirty = self.any_dirty.replace(false);
        let now = self.now_instant();
        for (idx, slot) in self.custom.iter().enumerate() {
            let due = !slot.has_fd
                || (dirty && slot.dirty.replace(false))
                || slot
                    .lp
                    .try_borrow()
                    .is_ok_and(|l| l.next_deadline().is_some_and(|d| d <= now));
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
        for slot in self.custom.iter() {
            let Ok(l) = slot.lp.try_borrow() else {
                continue;
            };
            let d = match l.next_deadline() {
                Some(d) => d.saturating_duration_since(base).as_nanos() as u64,
                None if !slot.has_fd && slot.pending.get() > 0 && !l.wakes_at_deadlines() => now,
                None => continue,
            };
            due = Some(due.map_or(d, |x| x.min(d)));
        }
        due
    }

    fn reap_uring(&self) {
        let Some(u) = &self.uring else { return };
        let mut done = std::mem::take(&mut *self.uring_done.borrow_mut());
        u.borrow_mut().reap(&mut done);
        for (tid, c) in done.drain(..) {
            let id = c.id;
            let wait = match self.task_state(tid) {
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
        *self.uring_done.borrow_mut() = done;
    }

    fn drain_remote(&self) {
        let msgs = self.remote.take();
        for m in msgs {
            match m {
                RemoteMsg::Wake(tid) => self.wake(tid),
                RemoteMsg::PoolDone { tid, job, result } => {
                    if self.task_state(tid) == Some(State::Blocked(Wait::Pool(job))) {
                        self.pool_pending
                            .set(self.pool_pending.get().saturating_sub(1));
                        let c: Box<dyn Any> = Box::new(result);
                        self.complete(tid, Some(Wait::Pool(job)), Completion::Boxed(Box::new(c)));
                    }
                }
                RemoteMsg::Run(f) => f(),
                RemoteMsg::Shutdown => self.begin_shutdown(),
            }
        }
    }

    /// Cancels every thread on this core (the root scope and all under it).
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        let root = self.root.clone();
        self.cancel_scope(&root);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Whether a thread is still alive and could run again.
    pub(crate) fn idle(&self) -> bool {
        self.live.get() == 0 && !self.has_pending_work()
    }

    /// Drops every remaining thread (after shutdown gave them the chance to finish).
    pub(crate) fn destroy_all(&self) {
        if self.live.get() == 0 {
            return;
        }
        let n = self.tasks.borrow().len();
        for i in 0..n {
            let (tid, wait) = {
                let tasks = self.tasks.borrow();
                let t = &tasks[i];
                match t.state {
                    State::Free => continue,
                    State::Blocked(w) => (
                        ThreadId {
                            index: i as u32,
                            gen: t.gen,
                        },
                        Some(w),
                    ),
                    _ => (
                        ThreadId {
                            index: i as u32,
                            gen: t.gen,
                        },
                        None,
                    ),
                }
            };
            if let Some(w) = wait {
                if !matches!(w, Wait::Uring(_) | Wait::UringCancelling(_)) {
                    self.cancel_wait(tid, w);
                }
            }
            let r = {
                let mut tasks = self.tasks.borrow_mut();
                let t = &mut tasks[i];
                // A thread still in an io_uring op is dropped too: the ring keeps the
                // op's buffers until the kernel is done (or leaks them on drop), and the
                // future itself holds none of them.
                t.state = State::Free;
                t.gen = t.gen.wrapping_add(1) & 0x7fff_ffff;
                t.scope = None;
                t.ctx = None;
                t.completion = Completion::Empty;
                t.runnable.take()
            };
            drop(r);
        }
    }

    // ----- tracing -------------------------------------------------------------------

    pub(crate) fn trace(&self, tid: ThreadId, kind: TraceKind, name: &'static str) {
        if let Some(t) = &self.tracer {
            let ns = self.trace_ns();
            t.borrow_mut().record(ns, tid, kind, name);
        }
    }

    /// A trace event that is not about one thread (`threadlib::trace::event`).
    pub(crate) fn trace_event(
        &self,
        track: &'static str,
        name: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        if let Some(t) = &self.tracer {
            let ns = self.trace_ns();
            t.borrow_mut().record_event(ns, track, name, detail());
        }
    }

    /// Whether this core records a trace.
    pub(crate) fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    /// Timestamps of trace events: the mock clock's time under a mock clock (so a
    /// trace of a simulation shows virtual time, the same at every replay), real time
    /// otherwise.
    fn trace_ns(&self) -> u64 {
        if self.clock.is_mock() {
            self.now_ns()
        } else {
            self.clock.real_elapsed_ns()
        }
    }

    pub(crate) fn take_trace(&self) -> Option<Tracer> {
        self.tracer
            .as_ref()
            .map(|t| std::mem::replace(&mut *t.borrow_mut(), Tracer::new(self.id)))
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if self.live.get() == 0 {
            // Every slot is free and holds no resources (exit_thread and destroy_all
            // clear them), so the table can be released without visiting each entry.
            // SAFETY: shrinking the length to 0 only skips destructors, and none of
            // the free slots owns anything that needs one.
            unsafe { self.tasks.get_mut().forget_free_slots() };
        }
    }
}

/// Restores the previous current core on drop.
pub(crate) struct EnterGuard {
    prev: *const Core,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// Runs `f` with the current core; panics with a clear message outside a runtime.
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> R {
    match Core::current() {
        Some(c) => f(c),
        None => panic!("threadlib: this call must be made from a thread of a threadlib runtime"),
    }
}

#[cfg(test)]
mod size_tests {
    /// Per-thread and per-call sizes are part of the memory budget (bytes per sleeping
    /// thread); keep them from growing by accident.
    #[test]
    fn hot_types_stay_small() {
        assert!(std::mem::size_of::<super::Task>() <= 80);
        assert!(std::mem::size_of::<super::Completion>() <= 16);
        assert!(std::mem::size_of::<crate::syscall::Syscall>() <= 24);
        assert!(std::mem::size_of::<crate::thread::JoinHandle<u32>>() <= 24);
    }
}
