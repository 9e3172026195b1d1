//! Cancellation contexts (Eio's `Cancel`): a tree of flags that threads consult at every
//! system call, with protected regions that cancellation cannot cross.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::core::{with_core, Core};

/// A node of the cancellation tree. A thread is cancelled when its current context or
/// any ancestor up to the nearest protected one is cancelled.
#[derive(Debug, Default)]
pub(crate) struct CancelCtx {
    parent: Option<Rc<CancelCtx>>,
    cancelled: Cell<bool>,
    protected: bool,
    /// Set when a `with_timeout` deadline cancelled this context.
    pub(crate) timed_out: Cell<bool>,
    /// When the deadline of the operation running under this context
    /// ([`crate::deadline::Deadline`]) cancels it, in ns on the core clock; [`IDLE`]
    /// while no operation runs. Moving it needs no timer: an entry that comes due
    /// before it moves itself here, and one that comes due while it is `IDLE` lapses.
    pub(crate) expires: Cell<u64>,
    /// The deadline of the context's timer entry, kept by the timer loop; [`IDLE`]
    /// when it has none.
    pub(crate) timer_at: Cell<u64>,
}

/// [`CancelCtx::expires`] of a reusable deadline's context while nothing runs under it,
/// and its [`CancelCtx::timer_at`] while it has no timer entry.
pub(crate) const IDLE: u64 = u64::MAX;

impl CancelCtx {
    pub(crate) fn root() -> Rc<CancelCtx> {
        Rc::new(CancelCtx::default())
    }

    pub(crate) fn child(parent: &Rc<CancelCtx>, protected: bool) -> Rc<CancelCtx> {
        Rc::new(CancelCtx::child_of(parent, protected))
    }

    /// A fresh context under `parent`: not cancelled, no timeout.
    fn child_of(parent: &Rc<CancelCtx>, protected: bool) -> CancelCtx {
        CancelCtx {
            parent: Some(parent.clone()),
            protected,
            ..Default::default()
        }
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.set(true);
    }

    /// Whether this context itself was cancelled (its ancestors are not looked at).
    pub(crate) fn is_marked_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Whether this context can run another operation as a child of `parent`: it has
    /// not been cancelled itself (its ancestors are checked at each system call), and
    /// `parent` is its parent.
    pub(crate) fn reusable_under(&self, parent: &Rc<CancelCtx>) -> bool {
        !self.cancelled.get() && self.parent.as_ref().is_some_and(|p| Rc::ptr_eq(p, parent))
    }

    /// Whether a thread whose innermost context is `self` must see `Cancelled`.
    pub(crate) fn is_cancelled(&self) -> bool {
        let mut c = self;
        loop {
            if c.cancelled.get() {
                return true;
            }
            if c.protected {
                return false;
            }
            match &c.parent {
                Some(p) => c = p,
                None => return false,
            }
        }
    }
}

/// Contexts to reuse: a one-shot timeout makes a context for its operation (a
/// [`crate::deadline::Deadline`] one per connection, and a new one after each
/// timeout), and one that nobody holds any more is reset and handed out again instead
/// of freed.
#[derive(Default)]
pub(crate) struct CtxPool {
    spare: RefCell<Vec<Rc<CancelCtx>>>,
}

impl CtxPool {
    /// Most spare contexts kept.
    const MAX_SPARE: usize = 64;

    /// A fresh child context of `parent` ([`CancelCtx::child`]), reusing a spare one.
    pub(crate) fn child(&self, parent: &Rc<CancelCtx>, protected: bool) -> Rc<CancelCtx> {
        let fresh = CancelCtx::child_of(parent, protected);
        let Some(mut ctx) = self.spare.borrow_mut().pop() else {
            return Rc::new(fresh);
        };
        match Rc::get_mut(&mut ctx) {
            Some(slot) => {
                *slot = fresh;
                ctx
            }
            None => Rc::new(fresh),
        }
    }

    /// The spare contexts, by address.
    #[cfg(test)]
    pub(crate) fn spares(&self) -> Vec<*const CancelCtx> {
        self.spare.borrow().iter().map(Rc::as_ptr).collect()
    }

    /// Takes `ctx` back for reuse if nothing else holds it; releases its parent.
    pub(crate) fn recycle(&self, mut ctx: Rc<CancelCtx>) {
        let Some(slot) = Rc::get_mut(&mut ctx) else {
            return;
        };
        slot.parent = None;
        let mut spare = self.spare.borrow_mut();
        if spare.len() < Self::MAX_SPARE {
            spare.push(ctx);
        }
    }
}

/// Runs `fut` with `ctx` as the current thread's innermost cancellation context,
/// restoring the previous one when `fut` finishes or is dropped.
pub(crate) struct InCtx<F> {
    /// `None` until [`InCtx::set_ctx`] for one made by [`InCtx::later`]; polled
    /// without a context of its own meanwhile.
    ctx: Option<Rc<CancelCtx>>,
    saved: Option<Rc<CancelCtx>>,
    fut: F,
}

impl<F> InCtx<F> {
    pub(crate) fn new(ctx: Rc<CancelCtx>, fut: F) -> Self {
        InCtx {
            ctx: Some(ctx),
            saved: None,
            fut,
        }
    }

    /// `fut`, to run in the context [`InCtx::set_ctx`] gives it before its first poll.
    pub(crate) fn later(fut: F) -> Self {
        InCtx {
            ctx: None,
            saved: None,
            fut,
        }
    }

    /// The context `fut` runs in (`None` for one made by [`InCtx::later`] until
    /// [`InCtx::set_ctx`]).
    pub(crate) fn ctx(&self) -> Option<&Rc<CancelCtx>> {
        self.ctx.as_ref()
    }

    /// Gives a future made by [`InCtx::later`] its context; before its first poll.
    pub(crate) fn set_ctx(self: Pin<&mut Self>, ctx: Rc<CancelCtx>) {
        // SAFETY: only `fut` is structurally pinned, and it is not touched.
        unsafe { self.get_unchecked_mut() }.ctx = Some(ctx);
    }
}

impl<F: Future> Future for InCtx<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: we never move it out of `self`, and
        // the other fields are never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.saved.is_none() {
            if let Some(ctx) = &this.ctx {
                this.saved = with_core(|c| c.swap_ctx(ctx.clone()));
            }
        }
        // SAFETY: see above; `this.fut` stays in place.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        let r = fut.poll(cx);
        if r.is_ready() {
            if let Some(prev) = this.saved.take() {
                with_core(|c| c.swap_ctx(prev));
            }
        }
        r
    }
}

impl<F> Drop for InCtx<F> {
    fn drop(&mut self) {
        if let Some(prev) = self.saved.take() {
            // Only meaningful while the owning thread runs; during teardown there may be
            // no current thread, and then there is nothing to restore.
            let _ = Core::with_current(|c| c.swap_ctx(prev));
        }
    }
}

/// Runs `fut` protected from cancellation (Eio's `Cancel.protect`): system calls made
/// inside it are not interrupted by the cancellation of any enclosing scope or timeout.
/// A cancellation that arrived meanwhile takes effect at the first system call after
/// the protected section.
///
/// The returned future holds `fut` once and little else (an `async fn` would hold it
/// twice: the argument and what it awaits).
pub fn protect<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    Protected {
        inner: InCtx::later(fut),
        started: false,
    }
}

/// [`protect`]'s future: at its first poll, `inner` gets a protected child of the
/// thread's context (none outside a thread).
struct Protected<F> {
    inner: InCtx<F>,
    started: bool,
}

impl<F: Future> Future for Protected<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: never moved out of `self`; `started`
        // is never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.inner` stays in place.
        let mut inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        if !this.started {
            this.started = true;
            if let Some(Some(cur)) = Core::with_current(|c| c.current_ctx()) {
                inner.as_mut().set_ctx(CancelCtx::child(&cur, true));
            }
        }
        inner.poll(cx)
    }
}

/// Whether the calling thread has been cancelled (it will get `Cancelled` from its next
/// system call). Outside a thread: false.
pub fn is_cancelled() -> bool {
    Core::with_current(|c| c.current_ctx().is_some_and(|x| x.is_cancelled())).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_context_comes_back_fresh_and_releases_its_parent() {
        let pool = CtxPool::default();
        let (a, b) = (CancelCtx::root(), CancelCtx::root());
        let first = pool.child(&a, false);
        first.cancel();
        first.timed_out.set(true);
        let addr = Rc::as_ptr(&first);
        assert_eq!(Rc::strong_count(&a), 2);
        pool.recycle(first);
        assert_eq!(pool.spare.borrow().len(), 1, "not taken back");
        assert_eq!(Rc::strong_count(&a), 1, "the spare still holds its parent");

        let second = pool.child(&b, true);
        assert!(pool.spare.borrow().is_empty());
        assert_eq!(Rc::as_ptr(&second), addr, "the spare was not reused");
        assert!(!second.cancelled.get() && !second.timed_out.get() && second.protected);
        assert!(second.parent.as_ref().is_some_and(|p| Rc::ptr_eq(p, &b)));
        b.cancel();
        assert!(!second.is_cancelled(), "protected from its new parent");

        // A context someone still holds is left alone.
        let held = second.clone();
        pool.recycle(second);
        assert!(pool.spare.borrow().is_empty());
        assert!(Rc::ptr_eq(held.parent.as_ref().unwrap(), &b));
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound() {
        let pool = CtxPool::default();
        let root = CancelCtx::root();
        let many: Vec<_> = (0..CtxPool::MAX_SPARE + 1)
            .map(|_| CancelCtx::child(&root, false))
            .collect();
        for ctx in many {
            pool.recycle(ctx);
        }
        assert_eq!(pool.spare.borrow().len(), CtxPool::MAX_SPARE);
    }
}
