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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::Arc;

    use crate::core::{Core, CoreConfig};
    use crate::inbox::Inbox;
    use crate::syscall::call_word;
    use crate::time::ClockKind;
    use crate::{EventLoop, LoopCx, LoopId, Request, ThreadId};

    /// Holds every call until it is cancelled, and counts the cancellations.
    struct Hold {
        withdraw_at_teardown: bool,
        cancels: Rc<Cell<usize>>,
    }

    impl EventLoop for Hold {
        fn name(&self) -> &'static str {
            "hold"
        }
        fn submit(&mut self, _: ThreadId, _: Request, _: &mut LoopCx<'_>) {}
        fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
            self.cancels.set(self.cancels.get() + 1);
            cx.cancelled(tid);
        }
        fn poll(&mut self, _: &mut LoopCx<'_>) {}
        fn polled_every_pass(&self) -> bool {
            false
        }
        fn cancel_at_teardown(&self) -> bool {
            self.withdraw_at_teardown
        }
    }

    /// A core torn down with threads still blocked (its drain could not finish) drops
    /// them all, after withdrawing their calls from the loops that ask for it, and only
    /// from those: a loop that keeps a call's resources past teardown (io_uring) never
    /// hears `cancel` for it.
    #[test]
    fn teardown_withdraws_calls_only_from_loops_that_ask_for_it() {
        crate::test_support::watchdog(|| {
            for withdraw in [true, false] {
                let cancels = Rc::new(Cell::new(0));
                let cfg = CoreConfig {
                    id: 0,
                    fd_loop: false,
                    uring_entries: None,
                    clock: ClockKind::mock(false),
                    trace: false,
                    custom: vec![Box::new(Hold {
                        withdraw_at_teardown: withdraw,
                        cancels: cancels.clone(),
                    })],
                    shuffle: None,
                    cpu_slice_ns: None,
                };
                let core = Core::new(cfg, Arc::new(Inbox::new().unwrap()), None, None).unwrap();
                let _enter = core.enter();
                for word in 0..3 {
                    drop(crate::spawn(call_word(LoopId(0), word)));
                }
                core.run(|c| c.calls_pending() && c.tasks.borrow().ready_len() == 0)
                    .unwrap();
                assert_eq!(core.live_threads(), 3);
                core.destroy_all();
                let tasks = core.tasks.borrow();
                let left = (0..tasks.slot_count()).filter(|&i| tasks.occupant(i).is_some());
                assert_eq!(left.count(), 0, "withdraw: {withdraw}");
                let expected = if withdraw { 3 } else { 0 };
                assert_eq!(cancels.get(), expected, "withdraw: {withdraw}");
            }
        });
    }
}
