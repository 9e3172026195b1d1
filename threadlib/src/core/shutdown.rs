//! Cancellation and shutdown: interrupting the blocked threads of a cancelled scope,
//! and the end of a core (every thread cancelled, then the rest dropped).

use super::tasks::{Wait, NONE};
use super::{Core, ThreadId};
use crate::scope::ScopeInner;

impl Core {
    /// Cancels `scope`: marks it and interrupts every blocked thread under it.
    pub(crate) fn cancel_scope(&self, scope: &ScopeInner) {
        scope.ctx.cancel();
        self.interrupt_scope(scope);
    }

    fn interrupt_scope(&self, scope: &ScopeInner) {
        let mut i = scope.head.get();
        while i != NONE {
            let (tid, next) = self.tasks.borrow().member(i);
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
        let wait = self.tasks.borrow().cancelled_wait(tid);
        if let Some(wait) = wait {
            self.cancel_wait(tid, wait);
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

    /// Drops every remaining thread (after shutdown gave them the chance to finish).
    pub(crate) fn destroy_all(&self) {
        if self.live_threads() == 0 {
            return;
        }
        let n = self.tasks.borrow().slot_count();
        for i in 0..n {
            let Some((tid, wait)) = self.tasks.borrow().occupant(i) else {
                continue;
            };
            match wait {
                Some(Wait::Loop { idx, .. }) if !self.cancels_at_teardown(idx) => {}
                Some(w) => self.cancel_wait(tid, w),
                None => {}
            }
            // A thread still in a call its loop does not withdraw (an io_uring op) is
            // dropped too: the loop keeps the call's resources (the ring keeps the op's
            // buffers until the kernel is done, or leaks them on drop), and the future
            // itself holds none of them. The future is dropped once the table is free.
            let runnable = self.tasks.borrow_mut().destroy(i);
            drop(runnable);
        }
    }
}
