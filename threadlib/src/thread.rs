//! Threads: spawning, joining, yielding, parking.

use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::core::{with_core, Completion, Core, ThreadId, ANY_PARK};
use crate::error::{Error, Result};
use crate::scope::ScopeInner;
use crate::syscall::{Call, SimpleCall, SimpleKind, Syscall};

/// How a thread ended, as its scope sees it.
pub(crate) enum Exit {
    Ok,
    Failed(Error),
}

/// The scheduler's view of a thread: something to poll.
pub(crate) trait Runnable {
    fn poll_thread(self: Pin<&Self>, cx: &mut Context<'_>) -> Poll<Exit>;
    /// Drops the thread's future unfinished, its result `Cancelled`: how a thread that
    /// cannot be interrupted ends when the runtime stops.
    fn abort(self: Pin<&Self>) -> Exit;
    fn notify_joiner(self: Pin<&Self>, core: &Core);
}

/// A joiner's view of a thread: where its result appears.
trait JoinSlot<T> {
    fn take(&self) -> Option<Result<T>>;
    fn set_joiner(&self, tid: ThreadId);
    /// Forgets the joiner: it no longer waits (its wait was cancelled or dropped).
    fn clear_joiner(&self);
}

enum Stage<F, T> {
    Running(F),
    Done(Result<T>),
    Taken,
}

/// One allocation per thread: the future, then its result, plus who waits for it.
///
/// `SCOPED`: errors of scoped threads go to the scope; plain threads keep them for the
/// joiner. The joiner is a packed [`ThreadId`] (`NO_JOINER` when none), to keep the
/// cell small: it is most of a sleeping thread's memory.
struct ThreadCell<F, T, const SCOPED: bool> {
    stage: UnsafeCell<Stage<F, T>>,
    joiner: Cell<u64>,
}

const NO_JOINER: u64 = u64::MAX;

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl<F, T, const SCOPED: bool> Runnable for ThreadCell<F, T, SCOPED>
where
    F: Future<Output = Result<T>>,
{
    fn poll_thread(self: Pin<&Self>, cx: &mut Context<'_>) -> Poll<Exit> {
        // SAFETY: only the scheduler polls a thread, never re-entrantly, and joiners
        // touch `stage` only through `take`, which runs while this thread is not being
        // polled (single-threaded core); so this is the only live reference.
        let stage = unsafe { &mut *self.stage.get() };
        let Stage::Running(f) = stage else {
            return Poll::Ready(Exit::Ok);
        };
        // SAFETY: the cell lives in a pinned Rc and the future is never moved out of
        // `stage` while running; it is dropped in place when replaced below.
        let f = unsafe { Pin::new_unchecked(f) };
        let out = match catch_unwind(AssertUnwindSafe(|| f.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => v,
            Err(p) => Err(Error::Panicked(panic_message(&*p))),
        };
        Poll::Ready(self.finish(out))
    }

    fn abort(self: Pin<&Self>) -> Exit {
        // SAFETY: as in `poll_thread`: the scheduler calls this instead of polling.
        let stage = unsafe { &*self.stage.get() };
        if !matches!(stage, Stage::Running(_)) {
            return Exit::Ok;
        }
        self.finish(Err(Error::Cancelled))
    }

    fn notify_joiner(self: Pin<&Self>, core: &Core) {
        let j = self.joiner.replace(NO_JOINER);
        if j != NO_JOINER {
            core.unpark(ThreadId::unpack(j));
        }
    }
}

impl<F, T, const SCOPED: bool> ThreadCell<F, T, SCOPED> {
    /// Drops the running future and stores `out` as the thread's result (a scoped
    /// thread's error goes to its scope, its handle sees [`Error::ScopeFailed`]).
    fn finish(self: Pin<&Self>, out: Result<T>) -> Exit {
        // Drop the future first: its destructors may call into the scheduler.
        // SAFETY: only the scheduler calls this, from `poll_thread` or `abort`, while
        // no other reference to `stage` is live (see `poll_thread`).
        unsafe { *self.stage.get() = Stage::Taken };
        let (stored, exit) = match out {
            Err(e) if SCOPED => (Err(Error::ScopeFailed), Exit::Failed(e)),
            other => (other, Exit::Ok),
        };
        // SAFETY: as above.
        unsafe { *self.stage.get() = Stage::Done(stored) };
        exit
    }
}

impl<F, T, const SCOPED: bool> JoinSlot<T> for ThreadCell<F, T, SCOPED> {
    fn take(&self) -> Option<Result<T>> {
        // SAFETY: called by the joiner while the thread is not being polled (one core,
        // one thread running at a time), so no other reference to `stage` is live.
        let stage = unsafe { &mut *self.stage.get() };
        match stage {
            Stage::Done(_) => match std::mem::replace(stage, Stage::Taken) {
                Stage::Done(r) => Some(r),
                _ => unreachable!(),
            },
            Stage::Taken => Some(Err(Error::other("thread result already taken"))),
            Stage::Running(_) => None,
        }
    }

    fn set_joiner(&self, tid: ThreadId) {
        self.joiner.set(tid.pack());
    }

    fn clear_joiner(&self) {
        self.joiner.set(NO_JOINER);
    }
}

/// Awaits a thread's result. Dropping the handle detaches the thread. A join that
/// is cancelled (or dropped) while it waits leaves nothing behind: the thread's exit
/// later wakes nobody.
pub struct JoinHandle<T> {
    slot: Rc<dyn JoinSlot<T>>,
    /// The packed thread id; the top bit is set while the joiner is suspended in a
    /// `Park` call waiting for the thread (kept in one word: handles are stored by the
    /// million).
    bits: u64,
}

const PARKED: u64 = 1 << 63;

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if self.bits & PARKED != 0 {
            self.slot.clear_joiner();
            Core::with_current(|core| core.abandon_call(ANY_PARK));
        }
    }
}

impl<T> JoinHandle<T> {
    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        ThreadId::unpack(self.bits & !PARKED)
    }
}

impl<T> Unpin for JoinHandle<T> {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        Core::with_current(|core| this.poll_on(core))
            .unwrap_or_else(|| Poll::Ready(Err(Error::NoRuntime)))
    }
}

impl<T> JoinHandle<T> {
    fn poll_on(&mut self, core: &Core) -> Poll<Result<T>> {
        if self.bits & PARKED != 0 {
            match core.take_completion() {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    self.bits &= !PARKED;
                    if let Err(e) = r {
                        // The wait was cancelled: the thread's exit must not wake the
                        // caller later, in whatever it waits for then.
                        self.slot.clear_joiner();
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
        if let Some(r) = self.slot.take() {
            return Poll::Ready(r);
        }
        let Some(me) = core.current_thread() else {
            return Poll::Ready(Err(Error::NoRuntime));
        };
        self.slot.set_joiner(me);
        match core.leave_call(Syscall::Park) {
            Poll::Pending => {
                self.bits |= PARKED;
                Poll::Pending
            }
            Poll::Ready(r) => {
                self.slot.clear_joiner();
                Poll::Ready(Err(r.err().unwrap_or(Error::Cancelled)))
            }
        }
    }
}

/// Adapts a plain future into one producing `Result`.
struct Plain<F>(F);

impl<F: Future> Future for Plain<F> {
    type Output = Result<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }
            .poll(cx)
            .map(Ok)
    }
}

pub(crate) fn spawn_in<F, T>(
    core: &Core,
    scope: &Rc<ScopeInner>,
    fut: F,
    scoped: bool,
    queue: bool,
) -> JoinHandle<T>
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    if scoped {
        spawn_cell::<F, T, true>(core, scope, fut, queue)
    } else {
        spawn_cell::<F, T, false>(core, scope, fut, queue)
    }
}

fn spawn_cell<F, T, const SCOPED: bool>(
    core: &Core,
    scope: &Rc<ScopeInner>,
    fut: F,
    queue: bool,
) -> JoinHandle<T>
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    let cell: Rc<ThreadCell<F, T, SCOPED>> = Rc::new(ThreadCell {
        stage: UnsafeCell::new(Stage::Running(fut)),
        joiner: Cell::new(NO_JOINER),
    });
    let slot: Rc<dyn JoinSlot<T>> = cell.clone();
    // SAFETY: the cell is never moved out of its Rc allocation.
    let runnable: Pin<Rc<dyn Runnable>> = unsafe { Pin::new_unchecked(cell) };
    let id = core.spawn_runnable(runnable, scope, queue);
    JoinHandle {
        slot,
        bits: id.pack(),
    }
}

/// Spawns a thread on the current core, outside any scope (it is cancelled only when
/// the runtime shuts down). Returns a handle to await its result.
///
/// # Panics
/// Outside a threadlib runtime; use [`try_spawn`] to get an error instead.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    try_spawn(fut).expect("threadlib::spawn called outside a threadlib runtime")
}

/// Like [`spawn`], but fails with [`Error::NoRuntime`] outside a runtime.
pub fn try_spawn<F>(fut: F) -> Result<JoinHandle<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Core::with_current(|core| spawn_in(core, &core.root.clone(), Plain(fut), false, true))
        .ok_or_else(|| Error::NoRuntime)
}

/// Forks a thread and lets it run before the caller continues (the `Fork` system
/// call): the child goes to the front of the line, the caller right behind it. A
/// cancelled caller gets [`Error::Cancelled`], and no thread is made.
pub async fn fork<F>(fut: F) -> Result<JoinHandle<F::Output>>
where
    F: Future + 'static,
    F::Output: 'static,
{
    // A cancelled caller's call fails: then no thread is made either.
    if crate::cancel::is_cancelled() {
        return Err(Error::Cancelled);
    }
    let h = Core::with_current(|core| {
        core.current_thread()?;
        Some(spawn_in(core, &core.root.clone(), Plain(fut), false, false))
    })
    .flatten()
    .ok_or(Error::NoRuntime)?;
    Call::new(Syscall::Fork(h.id())).await?;
    Ok(h)
}

/// Lets every other ready thread run once before the caller continues.
pub fn yield_now() -> impl Future<Output = Result<()>> {
    SimpleCall::new(SimpleKind::Yield, 0)
}

/// Suspends the caller until [`unpark`] wakes it or it is cancelled.
pub fn park() -> impl Future<Output = Result<()>> {
    SimpleCall::new(SimpleKind::Park, 0)
}

/// Wakes `tid` if it is parked on this core; returns whether it was.
pub fn unpark(tid: ThreadId) -> bool {
    Core::with_current(|c| c.unpark(tid)).unwrap_or(false)
}

/// The calling thread's id (`None` outside a thread).
pub fn current() -> Option<ThreadId> {
    Core::with_current(|c| c.current_thread()).flatten()
}

/// The index of the core the caller runs on (`None` outside a runtime).
pub fn core_index() -> Option<usize> {
    Core::with_current(|c| c.id)
}

/// Number of live threads on the current core.
pub fn live_threads() -> usize {
    with_core(|c| c.live_threads())
}

pub(crate) fn completion_value(c: Completion) -> Result<i64> {
    match c {
        Completion::Value(v) if v < 0 => {
            Err(Error::Io(std::io::Error::from_raw_os_error(-v as i32)))
        }
        Completion::Value(v) => Ok(v),
        Completion::Boxed(b) => match (*b).downcast::<Error>() {
            Ok(e) => Err(*e),
            Err(_) => Ok(0),
        },
        Completion::Cancelled => Err(Error::Cancelled),
        Completion::Empty => Ok(0),
    }
}

impl<T> JoinHandle<T> {
    /// Takes the result if the thread has finished (without waiting).
    pub(crate) fn try_take(&self) -> Option<Result<T>> {
        self.slot.take()
    }
}
