//! System calls: a thread's call future leaves its call with the core
//! ([`Core::leave_call`]); once the thread's poll returns, the core hands the call to
//! the event loop that serves it ([`Core::dispatch`]); the loop's result comes back
//! through the task table and the future takes it ([`Core::take_completion`]).

use std::any::Any;
use std::rc::Rc;
use std::task::Poll;

use super::sources::Builtin;
use super::tasks::{Completion, State, ThreadId, Wait};
use super::Core;
use crate::cancel::CancelCtx;
use crate::error::{Error, Result};
use crate::loops::readiness::FdLoop;
use crate::loops::Request;
use crate::scope::ScopeInner;
use crate::syscall::Syscall;
use crate::trace::TraceKind;

/// `abandon_call` argument for join handles: the pending `Park`, whatever its number.
pub(crate) const ANY_PARK: u32 = 0;

impl Core {
    // ----- the running thread --------------------------------------------------------

    /// Sets the running thread's innermost cancellation context; returns the old one.
    pub(crate) fn swap_ctx(&self, ctx: Rc<CancelCtx>) -> Option<Rc<CancelCtx>> {
        let tid = self.current.get()?;
        self.tasks.borrow_mut().swap_ctx(tid, ctx)
    }

    /// The running thread's innermost cancellation context.
    pub(crate) fn current_ctx(&self) -> Option<Rc<CancelCtx>> {
        let tid = self.current.get()?;
        self.tasks.borrow().ctx(tid)
    }

    /// The scope the running thread belongs to (the core's root scope outside threads).
    pub(crate) fn current_scope(&self) -> Rc<ScopeInner> {
        self.current
            .get()
            .and_then(|tid| self.tasks.borrow().scope(tid))
            .unwrap_or_else(|| self.root.clone())
    }

    // ----- calls leaving a thread ----------------------------------------------------

    /// Called by a system-call future on its first poll.
    pub(crate) fn leave_call(&self, call: Syscall) -> Poll<Result<Completion>> {
        let Some(tid) = self.current.get() else {
            return Poll::Ready(Err(Error::NoRuntime));
        };
        if self.tasks.borrow().is_cancelled(tid) {
            if let Syscall::Fork(child) = call {
                self.tasks.borrow_mut().push_front(child);
            }
            return Poll::Ready(Err(Error::Cancelled));
        }
        let left = self.syscall.take();
        debug_assert!(left.is_none(), "a thread made two system calls in one poll");
        if left.is_some() {
            self.syscall.set(left);
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
        self.syscall.set(Some((call, seq)));
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
        match self.syscall.take() {
            Some((call, s)) if s == seq || (seq == ANY_PARK && matches!(call, Syscall::Park)) => {
                if let Syscall::Fork(child) = call {
                    self.tasks.borrow_mut().push_front(child);
                }
            }
            // Another call's: leave it.
            Some(other) => self.syscall.set(Some(other)),
            None => self.tasks.borrow_mut().discard_completion(tid),
        }
    }

    /// Called by a system-call future when polled again after suspending.
    pub(crate) fn take_completion(&self) -> Poll<Result<Completion>> {
        let Some(tid) = self.current.get() else {
            return Poll::Ready(Err(Error::NoRuntime));
        };
        match self.tasks.borrow_mut().take_completion(tid) {
            Completion::Empty => Poll::Pending,
            Completion::Cancelled => Poll::Ready(Err(Error::Cancelled)),
            c => Poll::Ready(Ok(c)),
        }
    }

    // ----- calls reaching their event loop -------------------------------------------

    /// Hands the call `tid` just left to the loop that serves it; the thread becomes
    /// ready at once (yield, fork, an expired sleep, a failure) or blocks in the loop.
    pub(super) fn dispatch(&self, tid: ThreadId, call: Syscall) {
        if self.tracer.is_some() {
            let name = match &call {
                Syscall::Custom(id, _) | Syscall::LoopWord(id, _) => self.user_loop_name(id.0),
                call => call.name(),
            };
            self.trace(tid, TraceKind::Suspend, name);
        }
        match call {
            Syscall::Yield => self.set_ready(tid, Completion::Value(0)),
            Syscall::Fork(child) => {
                let mut tasks = self.tasks.borrow_mut();
                tasks.set_ready(tid, Completion::Value(0));
                // Child first, then the parent (which set_ready queued at the back).
                tasks.queue_child_first(child);
            }
            Syscall::Park => self.set_state(tid, State::Blocked(Wait::Park)),
            Syscall::Sleep(deadline) => {
                self.dispatch_builtin(tid, Builtin::Timer, Request::Word(deadline))
            }
            Syscall::WaitFd(f, r) => {
                self.dispatch_builtin(tid, Builtin::Fd, Request::Word(FdLoop::request(f, r)))
            }
            Syscall::Uring(op) => self.dispatch_builtin(tid, Builtin::Uring, Request::Boxed(op)),
            Syscall::Blocking(job) => {
                let job: Box<dyn Any> = Box::new(job);
                self.dispatch_builtin(tid, Builtin::Pool, Request::Boxed(job))
            }
            Syscall::Custom(id, req) => self.dispatch_user(tid, id.0, Request::Boxed(req)),
            Syscall::LoopWord(id, word) => self.dispatch_user(tid, id.0, Request::Word(word)),
        }
    }

    pub(super) fn set_state(&self, tid: ThreadId, s: State) {
        self.tasks.borrow_mut().set_state(tid, s);
    }

    pub(super) fn set_ready(&self, tid: ThreadId, c: Completion) {
        self.tasks.borrow_mut().set_ready(tid, c);
    }

    /// Makes `tid` ready with `e` as its call's result.
    pub(super) fn fail_now(&self, tid: ThreadId, e: Error) {
        let b: Box<dyn Any> = Box::new(e);
        self.set_ready(tid, Completion::Boxed(Box::new(b)));
    }
}
