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
    pub(crate) children: RefCell<Vec<Weak<ScopeInner>>>,
    closed: Cell<bool>,
}

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
            closed: Cell::new(false),
        })
    }

    /// Keeps the first real error; `Cancelled` is kept only if nothing better comes.
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
    /// `Err(Cancelled)` unless a thread failed with another error first.
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
    {
        let mut ch = parent.children.borrow_mut();
        ch.retain(|w| w.strong_count() > 0);
        ch.push(Rc::downgrade(&inner));
    }
    let s = Scope {
        inner: inner.clone(),
    };
    let ctx = inner.ctx.clone();
    let result = InCtx::new(ctx.clone(), body(s)).await;
    let body_failed_first = result.is_err() && inner.error.borrow().is_none();
    if result.is_err() {
        Core::with_current(|core| core.cancel_scope(&inner));
    }
    // Wait for the threads, protected: they are being cancelled (or finishing) anyway.
    let wait_ctx = CancelCtx::child(&ctx, true);
    InCtx::new(wait_ctx, async {
        while inner.live.get() > 0 {
            inner
                .waiter
                .set(Core::with_current(|c| c.current_thread()).flatten());
            let _ = park().await;
        }
        inner.waiter.set(None);
    })
    .await;
    inner.closed.set(true);
    inner.owner.set(None);
    let hooks = std::mem::take(&mut *inner.hooks.borrow_mut());
    for h in hooks.into_iter().rev() {
        h();
    }
    let err = inner.error.borrow_mut().take();
    match err {
        Some(e) if !body_failed_first => Err(e),
        _ => result,
    }
}
