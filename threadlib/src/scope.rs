//! Structured concurrency (Eio's switches): a scope owns the threads forked in it,
//! waits for all of them, cancels the rest when one fails, reports the first error and
//! runs its release hooks.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};

use crate::cancel::{CancelCtx, InCtx};
use crate::core::{Core, ThreadId};
use crate::error::{Error, Result};
use crate::thread::{park, spawn_in, JoinHandle};

pub(crate) struct ScopeInner {
    pub(crate) ctx: Rc<CancelCtx>,
    /// Head of the intrusive list of member threads (task slab indices).
    pub(crate) head: Cell<u32>,
    pub(crate) live: Cell<usize>,
    error: RefCell<Option<Error>>,
    pub(crate) waiter: Cell<Option<ThreadId>>,
    pub(crate) owner: Cell<Option<ThreadId>>,
    hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Scopes made by this scope's threads; entries of finished ones are swept out
    /// when the list has doubled since the last sweep.
    pub(crate) children: RefCell<Vec<Weak<ScopeInner>>>,
    /// `children.len()` at which finished entries are swept next.
    sweep_at: Cell<usize>,
    closed: Cell<bool>,
    /// The scope's future was dropped before it finished (its thread panicked, or a
    /// foreign combinator let it go): its threads were cancelled and nothing waits for
    /// them; the last one to exit runs the release hooks.
    pub(crate) abandoned: Cell<bool>,
}

/// The fewest entries of a children list that are swept.
const MIN_SWEEP: usize = 16;

impl ScopeInner {
    pub(crate) fn new(ctx: Rc<CancelCtx>, owner: Option<ThreadId>) -> Rc<ScopeInner> {
        Rc::new(ScopeInner {
            ctx,
            head: Cell::new(u32::MAX),
            live: Cell::new(0),
            error: RefCell::new(None),
            waiter: Cell::new(None),
            owner: Cell::new(owner),
            hooks: RefCell::new(Vec::new()),
            children: RefCell::new(Vec::new()),
            sweep_at: Cell::new(MIN_SWEEP),
            closed: Cell::new(false),
            abandoned: Cell::new(false),
        })
    }

    /// Records `child`, a scope made by one of this scope's threads. Finished
    /// children are swept out only when the list has doubled since the last sweep, so
    /// that making a scope costs the same however many its siblings are.
    fn add_child(&self, child: &Rc<ScopeInner>) {
        let mut children = self.children.borrow_mut();
        if children.len() >= self.sweep_at.get() {
            children.retain(|w| w.strong_count() > 0);
            self.sweep_at.set((children.len() * 2).max(MIN_SWEEP));
        }
        children.push(Rc::downgrade(child));
    }

    /// Runs the release hooks, last registered first.
    pub(crate) fn run_hooks(&self) {
        let hooks = std::mem::take(&mut *self.hooks.borrow_mut());
        for h in hooks.into_iter().rev() {
            h();
        }
    }

    /// Runs the release hooks of a scope whose future was dropped, from the
    /// scheduler: nobody awaits the scope to hear of a panic, so a hook that panics is
    /// caught (the panic hook has reported it) and the rest still run.
    pub(crate) fn run_abandoned_hooks(&self) {
        let hooks = std::mem::take(&mut *self.hooks.borrow_mut());
        for h in hooks.into_iter().rev() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(h));
        }
    }

    /// Keeps the first real error; `Cancelled` is kept only until a real error comes.
    pub(crate) fn record_error(&self, e: Error) {
        let mut slot = self.error.borrow_mut();
        match &*slot {
            None => *slot = Some(e),
            Some(Error::Cancelled) if !e.is_cancelled() => *slot = Some(e),
            _ => {}
        }
    }
}

/// A handle on a running scope, for forking threads into it.
#[derive(Clone)]
pub struct Scope {
    inner: Rc<ScopeInner>,
}

impl Scope {
    /// Forks a thread owned by this scope. If it returns `Err` (or panics), the scope
    /// fails: its other threads are cancelled and [`scope`] returns that error. The
    /// handle's own result is then [`Error::ScopeFailed`].
    ///
    /// Forking into a scope that has finished fails with [`Error::Closed`]; forking into
    /// a cancelled scope starts a thread that sees `Cancelled` at its first call.
    pub fn spawn<F, T>(&self, fut: F) -> JoinHandle<T>
    where
        F: Future<Output = Result<T>> + 'static,
        T: 'static,
    {
        self.try_spawn(fut)
            .expect("Scope::spawn: scope closed or no runtime")
    }

    /// Like [`Scope::spawn`], reporting a closed scope or missing runtime as an error.
    pub fn try_spawn<F, T>(&self, fut: F) -> Result<JoinHandle<T>>
    where
        F: Future<Output = Result<T>> + 'static,
        T: 'static,
    {
        if self.inner.closed.get() {
            return Err(Error::Closed);
        }
        Core::with_current(|core| spawn_in(core, &self.inner, fut, true, true))
            .ok_or_else(|| Error::NoRuntime)
    }

    /// Cancels every thread of the scope (and the scope body); [`scope`] then returns
    /// `Err(Cancelled)`, unless a thread fails with another error (before or after the
    /// cancellation: a real error is never hidden behind `Cancelled`).
    pub fn cancel(&self) {
        self.inner.record_error(Error::Cancelled);
        if Core::with_current(|core| core.cancel_scope(&self.inner)).is_none() {
            self.inner.ctx.cancel();
        }
    }

    /// Fails the scope with `e`, as if one of its threads had returned it.
    pub fn fail(&self, e: Error) {
        self.inner.record_error(e);
        Core::with_current(|core| core.cancel_scope(&self.inner));
    }

    /// Registers a release hook, run (last registered first) when the scope finishes,
    /// after all its threads have exited, whether it succeeded or failed.
    pub fn on_release(&self, hook: impl FnOnce() + 'static) {
        self.inner.hooks.borrow_mut().push(Box::new(hook));
    }

    /// Number of this scope's threads still running.
    pub fn live(&self) -> usize {
        self.inner.live.get()
    }

    /// Whether the scope has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.ctx.is_cancelled()
    }
}

/// Runs `body` with a new scope, waits for every thread forked into it, runs its release
/// hooks, and returns the body's value or the scope's first error.
///
/// A cancellation that reaches the scope from outside (an enclosing timeout or scope),
/// also while the body has returned and the scope waits for its threads, cancels the
/// threads; the scope then waits for them to end. If the scope's future is dropped
/// before it finishes (the thread running it panicked, or a foreign combinator let it
/// go), its threads are cancelled at once and end at their next system call, but
/// nothing waits for them; the last to exit runs the release hooks.
///
/// ```
/// # threadlib::run(async {
/// let r = threadlib::scope(|s| async move {
///     s.spawn(async { threadlib::yield_now().await });
///     s.spawn(async { Err::<(), _>(threadlib::Error::other("boom")) });
///     Ok(1)
/// }).await;
/// assert_eq!(r.unwrap_err().to_string(), "boom");
/// # }).unwrap();
/// ```
pub async fn scope<T, F, Fut>(body: F) -> Result<T>
where
    F: FnOnce(Scope) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    // The core is looked up at each step, never held across an `await`.
    let inner = Core::with_current(|core| {
        let parent = core.current_scope();
        let parent_ctx = core.current_ctx().unwrap_or_else(|| parent.ctx.clone());
        let inner = ScopeInner::new(CancelCtx::child(&parent_ctx, false), core.current_thread());
        (parent, inner)
    });
    let Some((parent, inner)) = inner else {
        return Err(Error::NoRuntime);
    };
    parent.add_child(&inner);
    let s = Scope {
        inner: inner.clone(),
    };
    let ctx = inner.ctx.clone();
    let mut unfinished = Unfinished(Some(&inner));
    let result = InCtx::new(ctx.clone(), body(s)).await;
    let body_failed_first = result.is_err() && inner.error.borrow().is_none();
    if result.is_err() {
        Core::with_current(|core| core.cancel_scope(&inner));
    }
    // Wait for the threads. A cancellation from outside ends the first wait: it
    // cancels them, and the rest of the wait is protected (they are being cancelled or
    // are finishing anyway).
    let waited = InCtx::new(ctx.clone(), wait_for_threads(&inner, true)).await;
    if waited.is_err() {
        if !inner.ctx.is_marked_cancelled() {
            Core::with_current(|core| core.cancel_scope(&inner));
        }
        let wait_ctx = CancelCtx::child(&ctx, true);
        let _ = InCtx::new(wait_ctx, wait_for_threads(&inner, false)).await;
    }
    unfinished.0 = None;
    inner.closed.set(true);
    inner.owner.set(None);
    inner.run_hooks();
    let err = inner.error.borrow_mut().take();
    match err {
        Some(e) if !body_failed_first => Err(e),
        _ => result,
    }
}

/// Waits until every thread of `scope` has exited; with `cancellable`, a cancellation
/// of the caller ends the wait with its error. Other failures are ignored.
async fn wait_for_threads(scope: &ScopeInner, cancellable: bool) -> Result<()> {
    while scope.live.get() > 0 {
        scope
            .waiter
            .set(Core::with_current(|c| c.current_thread()).flatten());
        let parked = park().await;
        match parked {
            Err(e) if cancellable && e.is_cancelled() => {
                scope.waiter.set(None);
                return Err(e);
            }
            _ => {}
        }
    }
    scope.waiter.set(None);
    Ok(())
}

/// Held by [`scope`] until its threads have ended: dropped before that (the scope's
/// future was dropped), it cancels them and leaves the release hooks to the last one,
/// or, if none is left, runs them (after the unwinding, if a panic dropped it).
struct Unfinished<'a>(Option<&'a Rc<ScopeInner>>);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let Some(inner) = self.0.take() else {
            return;
        };
        inner.closed.set(true);
        inner.owner.set(None);
        inner.waiter.set(None);
        inner.abandoned.set(true);
        if inner.live.get() > 0 {
            if Core::with_current(|core| core.cancel_scope(inner)).is_none() {
                inner.ctx.cancel();
            }
        } else if !std::thread::panicking() {
            inner.run_abandoned_hooks();
        } else {
            // Not while a panic unwinds, where a hook that panicked would abort the
            // process: the next thread exit runs them (without a core they are
            // dropped unrun).
            let _ = Core::with_current(|core| core.deferred_hooks.borrow_mut().push(inner.clone()));
        }
    }
}
