//! The thread-local context: which core runs on this OS thread, and scoped access to
//! it.
//!
//! # Why handing out `&Core` is sound
//!
//! [`Core::enter`] stores a pointer to the core in a thread-local and returns a guard
//! that borrows the core, so the core outlives the guard; dropping the guard restores
//! the previous pointer (entries nest, as a runtime started inside another does).
//! `enter` is crate-private and its only callers hold the guard in a local until their
//! scheduler loop returns; none forgets it. The pointer is only ever dereferenced
//! inside [`Core::with_current`], whose closure gets a reference that cannot escape it (the reference's lifetime is that of the call, not
//! `'static`). During the call the guard that set the pointer is still alive: it lives
//! in a stack frame of the runtime below the caller, and nothing the closure can reach
//! owns it. Hence every reference handed out points to a live core, used on the OS
//! thread that owns it (the core is not `Sync`; the pointer never leaves its thread).
//!
//! Futures therefore never keep a core across an `await`: they look it up again at
//! each poll. A future polled after its runtime has stopped (kept alive in a
//! thread-local, say) finds no core and fails with `NoRuntime` (or panics, as any call
//! that needs a runtime does outside one) instead of touching freed memory.

use std::cell::Cell;
use std::marker::PhantomData;

use super::Core;

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
}

impl Core {
    /// Installs `self` as this OS thread's core until the guard drops.
    pub(crate) fn enter(&self) -> EnterGuard<'_> {
        let prev = CURRENT.with(|c| c.replace(self as *const Core));
        EnterGuard {
            prev,
            _core: PhantomData,
        }
    }

    /// Runs `f` on the core running on this OS thread; `None` outside a runtime.
    pub(crate) fn with_current<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
        let p = CURRENT.with(|c| c.get());
        // SAFETY: a non-null CURRENT was set by `enter` from a live `&Core` whose
        // guard is still alive (see the module documentation): the guard borrows the
        // core, so the core outlives it, and the guard restores the previous pointer
        // when it drops. The reference given to `f` cannot outlive this call.
        let core = unsafe { p.as_ref() }?;
        Some(f(core))
    }

    /// Whether this OS thread runs a core.
    pub(crate) fn is_entered() -> bool {
        CURRENT.with(|c| !c.get().is_null())
    }
}

/// Restores the previous current core on drop; borrows the core it installed.
pub(crate) struct EnterGuard<'a> {
    prev: *const Core,
    _core: PhantomData<&'a Core>,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// Runs `f` with the current core; panics with a clear message outside a runtime.
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> R {
    match Core::with_current(f) {
        Some(r) => r,
        None => panic!("threadlib: this call must be made from a thread of a threadlib runtime"),
    }
}

#[cfg(test)]
mod tests {
    use super::Core;

    fn current_addr() -> Option<usize> {
        Core::with_current(|c| c as *const Core as usize)
    }

    #[test]
    fn a_core_is_current_only_while_its_runtime_runs_and_entries_nest() {
        assert_eq!(current_addr(), None);
        let (outer, inner, after) = crate::run(async {
            let outer = current_addr();
            let inner = crate::Runtime::builder()
                .uring(None)
                .blocking_threads(0)
                .build()
                .unwrap()
                .block_on(async { current_addr() })
                .unwrap();
            (outer, inner, current_addr())
        })
        .unwrap();
        assert!(outer.is_some() && inner.is_some());
        assert_ne!(outer, inner, "the nested runtime runs its own core");
        assert_eq!(
            outer, after,
            "leaving the nested runtime restores the outer core"
        );
        assert_eq!(current_addr(), None);
    }
}
