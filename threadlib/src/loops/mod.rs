//! Event loops: the parts of a scheduler that serve system calls.
//!
//! The standard loops are [`readiness`] (the epoll loop: waits for fd readiness),
//! [`uring_io`] (the io_uring loop: I/O operations), [`timer`] (sleeps and timeouts)
//! and [`blocking`] (the pool of OS threads for blocking closures). A user adds a loop
//! of their own by implementing [`EventLoop`], registering it with
//! [`Builder::event_loop`](crate::Builder::event_loop) (which returns its [`LoopId`]),
//! and calling it from threads with [`custom`](crate::syscall::custom) (a boxed request
//! and reply) or [`call_word`](crate::syscall::call_word) (a one-word request and
//! reply, which allocates nothing): the thread's request reaches [`EventLoop::submit`],
//! and the loop completes it later from [`EventLoop::poll`] through [`LoopCx`].
//! Threads and scheduler callbacks on the same core may also act on a loop directly
//! with [`with_loop`] (for example to try an operation before waiting for it). See
//! `examples/custom_loop.rs`.
//!
//! # When a loop is polled
//!
//! The scheduler calls [`EventLoop::poll`]:
//! - when the loop's [`wake_fd`](EventLoop::wake_fd) is readable (the scheduler sleeps
//!   in epoll on it together with everything else; [`LoopCx::fd_ready`] tells);
//! - when its [`next_deadline`](EventLoop::next_deadline) has passed (the scheduler
//!   never sleeps past it, on the real clock or, with auto-advance, the mock one);
//! - after the current batch of ready threads, if the loop asked for it with
//!   [`LoopCx::poll_soon`] (for instance to send, in one batch, what several threads
//!   queued during that batch);
//! - on every pass of the scheduler, if it has no wake fd. While such a loop holds
//!   calls and reports no deadline, the scheduler does not sleep: it keeps polling it
//!   (unless the loop [wakes at its deadlines](EventLoop::wakes_at_deadlines) only).
//!
//! A loop with a wake fd is never polled just because the scheduler made a pass.

use std::any::Any;
use std::os::fd::RawFd;
use std::time::Instant;

use crate::core::{Completion, Core, ThreadId};
use crate::error::{Error, Result};

pub mod blocking;
pub mod readiness;
pub mod timer;
pub mod uring_io;

/// Names a user-supplied event loop of a scheduler (in registration order; the same id
/// on every core of a runtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoopId(pub(crate) u32);

/// What a thread hands a user loop with its call.
pub enum Request {
    /// One word, from [`call_word`](crate::syscall::call_word): no allocation.
    Word(u64),
    /// Any value, from [`custom`](crate::syscall::custom).
    Boxed(Box<dyn Any>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Word(w) => write!(f, "Word({w:#x})"),
            Request::Boxed(_) => f.write_str("Boxed(..)"),
        }
    }
}

/// What a loop may do while the scheduler calls it: read the time, complete calls, and
/// ask to be polled again soon.
pub struct LoopCx<'a> {
    pub(crate) now: Instant,
    pub(crate) done: &'a mut Vec<(ThreadId, Completion)>,
    pub(crate) fd_ready: bool,
    pub(crate) poll_soon: bool,
}

impl LoopCx<'_> {
    /// The core's current time (mock or real).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Whether this poll happens because the loop's wake fd was reported readable.
    pub fn fd_ready(&self) -> bool {
        self.fd_ready
    }

    /// Asks the scheduler to poll this loop once more after the current batch of ready
    /// threads, before it next waits for events.
    pub fn poll_soon(&mut self) {
        self.poll_soon = true;
    }

    /// Completes `tid`'s call with `value`; the thread's `custom::<R>` call returns it
    /// (`value` must be an `R` or a `threadlib::Result<R>`).
    pub fn reply<R: 'static>(&mut self, tid: ThreadId, value: R) {
        let b: Box<dyn Any> = Box::new(value);
        self.done.push((tid, Completion::Boxed(Box::new(b))));
    }

    /// Completes `tid`'s [`call_word`](crate::syscall::call_word) with `value`
    /// (no allocation).
    pub fn complete(&mut self, tid: ThreadId, value: i64) {
        self.done.push((tid, Completion::Value(value)));
    }

    /// Completes `tid`'s call with an error (for `custom::<R>` and `call_word` alike).
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
/// See the [module documentation](self) for when [`EventLoop::poll`] runs.
pub trait EventLoop: Any {
    /// A short name for traces and errors.
    fn name(&self) -> &'static str;

    /// A thread hands this loop a request. Complete it now or later via `cx`.
    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>);

    /// The thread `tid` was cancelled: drop its request and complete it with
    /// [`LoopCx::cancelled`] (now, or later if the loop must wait for something first).
    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>);

    /// Completes whatever requests are ready. Must not block.
    fn poll(&mut self, cx: &mut LoopCx<'_>);

    /// A descriptor that is readable whenever [`EventLoop::poll`] has something to do.
    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    /// The earliest time (on the core's clock) at which [`EventLoop::poll`] must run
    /// even if nothing else happens, such as a protocol timer.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// For a loop without a wake fd: whether everything it waits for comes at a
    /// [`next_deadline`](Self::next_deadline) it reports (or with a thread's call), as
    /// for a simulated device whose deliveries are all scheduled. The scheduler then
    /// sleeps until that deadline like any timer, instead of polling the loop
    /// continuously while it holds calls. Default `false`.
    fn wakes_at_deadlines(&self) -> bool {
        false
    }
}

/// Runs `f` on the current core's event loop `id`, which must be an `L`, from a thread
/// or from code the scheduler runs (a cross-core message). Completions `f` makes
/// through its [`LoopCx`] take effect at once, and [`LoopCx::poll_soon`] asks for a
/// poll after the current batch of threads.
///
/// Fails with [`Error::NoRuntime`] outside a runtime and [`Error::NoEventLoop`] if the
/// core has no such loop, it is not an `L`, or it is busy (a call from inside its own
/// `poll`, `submit` or `cancel`).
pub fn with_loop<L: EventLoop, R>(
    id: LoopId,
    f: impl FnOnce(&mut L, &mut LoopCx<'_>) -> R,
) -> Result<R> {
    Core::with_current(|core| {
        core.with_custom(id.0, false, |l, cx| {
            let any: &mut dyn Any = l;
            any.downcast_mut::<L>().map(|l| f(l, cx))
        })
        .flatten()
    })
    .ok_or_else(|| Error::NoRuntime)?
    .ok_or_else(|| Error::NoEventLoop("custom (unknown LoopId, wrong type or busy)"))
}
