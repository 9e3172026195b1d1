//! Event loops: the parts of a scheduler that serve system calls.
//!
//! The standard loops are [`fd`] (epoll readiness), [`uring`] (io_uring operations),
//! [`timer`] (sleeps and timeouts) and [`pool`] (blocking closures). A user adds a loop
//! of their own by implementing [`EventLoop`], registering it with
//! [`Builder::event_loop`](crate::Builder::event_loop) (which returns its [`LoopId`]),
//! and calling it from threads with [`custom`](crate::syscall::custom): the thread's
//! request reaches [`EventLoop::submit`], and the loop completes it later from
//! [`EventLoop::poll`] through [`LoopCx::reply`]. See `examples/custom_loop.rs`.

use std::any::Any;
use std::os::fd::RawFd;

use crate::core::{Completion, ThreadId};
use crate::error::Error;

pub mod fd;
pub mod pool;
pub mod timer;
pub mod uring;

/// Names a user-supplied event loop of a scheduler (in registration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoopId(pub(crate) u32);

/// What a loop may do while the scheduler calls it: read the time and complete calls.
pub struct LoopCx<'a> {
    pub(crate) now: std::time::Instant,
    pub(crate) done: &'a mut Vec<(ThreadId, Completion)>,
}

impl LoopCx<'_> {
    /// The core's current time (mock or real).
    pub fn now(&self) -> std::time::Instant {
        self.now
    }

    /// Completes `tid`'s call with `value`; the thread's `custom::<R>` call returns it
    /// (`value` must be an `R` or a `threadlib::Result<R>`).
    pub fn reply<R: 'static>(&mut self, tid: ThreadId, value: R) {
        let b: Box<dyn Any> = Box::new(value);
        self.done.push((tid, Completion::Boxed(Box::new(b))));
    }

    /// Completes `tid`'s call with an error.
    pub fn fail<R: 'static>(&mut self, tid: ThreadId, e: Error) {
        let r: crate::Result<R> = Err(e);
        self.reply(tid, r);
    }

    /// Completes `tid`'s call as cancelled (from [`EventLoop::cancel`]).
    pub fn cancelled(&mut self, tid: ThreadId) {
        self.done.push((tid, Completion::Cancelled));
    }
}

/// A user-defined event loop serving user-defined system calls.
///
/// A loop is driven by its core's scheduler on one OS thread; it must never block.
/// If it has a file descriptor that becomes readable when it has work, return it from
/// [`EventLoop::wake_fd`] and the scheduler will sleep on it along with everything else;
/// otherwise [`EventLoop::poll`] is called on every pass of the scheduler.
pub trait EventLoop: 'static {
    /// A short name for traces and errors.
    fn name(&self) -> &'static str;

    /// A thread hands this loop a request. Complete it now or later via `cx`.
    fn submit(&mut self, tid: ThreadId, request: Box<dyn Any>, cx: &mut LoopCx<'_>);

    /// The thread `tid` was cancelled: drop its request and complete it with
    /// [`LoopCx::cancelled`] (now, or later if the loop must wait for something first).
    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>);

    /// Completes whatever requests are ready. Must not block.
    fn poll(&mut self, cx: &mut LoopCx<'_>);

    /// A descriptor that is readable whenever [`EventLoop::poll`] has something to do.
    fn wake_fd(&self) -> Option<RawFd> {
        None
    }
}
