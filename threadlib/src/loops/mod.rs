//! Event loops: the parts of a scheduler that serve system calls.
//!
//! Every loop, built-in or not, is an [`EventLoop`] in one of its core's loop slots,
//! and the scheduler drives them all the same way. The built-in loops are [`timer`]
//! (sleeps and timeouts), [`readiness`] (the epoll loop: waits for fd readiness),
//! [`uring_io`] (the io_uring loop: I/O operations) and [`blocking`] (the pool of OS
//! threads for blocking closures); what they use of the trait and of [`LoopCx`] is
//! exactly what a user loop can use. A user adds a loop of their own by implementing
//! [`EventLoop`], registering it with
//! [`Builder::event_loop`](crate::Builder::event_loop) (which returns its [`LoopId`]),
//! and calling it from threads with [`custom`](crate::syscall::custom) (a boxed request
//! and reply) or [`call_word`](crate::syscall::call_word) (a one-word request and
//! reply, which allocates nothing): the thread's request reaches [`EventLoop::submit`],
//! and the loop completes it then or later (from [`EventLoop::poll`] or
//! [`EventLoop::fd_event`]) through [`LoopCx`]. Threads and scheduler callbacks on the
//! same core may also act on a loop directly with [`with_loop`] (for example to try an
//! operation before waiting for it). See `examples/custom_loop.rs`.
//!
//! # Calls, keys and cancellation
//!
//! A thread blocked in a call is blocked in one loop, under the key the loop gave the
//! call ([`LoopCx::set_key`], 0 by default). A completion made with a key
//! ([`LoopCx::complete_keyed`], [`LoopCx::reply_keyed`]) reaches the thread only while
//! it is still in that very call; one without a key reaches whatever call the thread
//! has in the loop. When a thread is cancelled, the scheduler calls the loop's
//! [`EventLoop::cancel`] with the call's key ([`LoopCx::key`]); the thread resumes when
//! the loop completes the call, as cancelled or, if it finished first, with its result
//! (the io_uring loop waits for the kernel's word that way). A loop that expires
//! timeouts interrupts their owners with [`LoopCx::interrupt`].
//!
//! # When a loop is polled
//!
//! The scheduler calls [`EventLoop::poll`]:
//! - when the loop's [`wake_fd`](EventLoop::wake_fd) is readable (the scheduler sleeps
//!   in epoll on it together with everything else; [`LoopCx::fd_ready`] tells);
//! - when its [`next_deadline`](EventLoop::next_deadline) has passed (the scheduler
//!   never sleeps past it, on the real clock or, with auto-advance, the mock one). A
//!   user loop's deadline is checked after every batch of ready threads; a built-in
//!   loop's, whose deadline moves only while the scheduler calls it, when the
//!   scheduler looks for events (after it waited, and every few batches);
//! - after the current batch of ready threads, if the loop asked for it with
//!   [`LoopCx::poll_soon`] (for instance to send, in one batch, what several threads
//!   queued during that batch: the io_uring loop submits that way);
//! - on every pass of the scheduler, if it is [polled every
//!   pass](EventLoop::polled_every_pass) (by default: if it has no wake fd). While such
//!   a loop holds calls and reports no deadline, the scheduler does not sleep: it keeps
//!   polling it (unless the loop [wakes at its deadlines](EventLoop::wakes_at_deadlines)
//!   only).
//!
//! A descriptor a loop registered with the scheduler's own epoll instance
//! ([`LoopCx::register_fd`]) reaches [`EventLoop::fd_event`] instead (the epoll loop
//! works that way). A loop with a wake fd is never polled just because the scheduler
//! made a pass.

use std::any::Any;
use std::cell::Cell;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use iolib::epoll::{Interest, Readiness as EpollReadiness};

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

impl Request {
    /// The value of a [`custom`](crate::syscall::custom) call, if it is a `T`; `None`
    /// for a one-word call or a value of another type.
    pub fn downcast<T: Any>(self) -> Option<Box<T>> {
        match self {
            Request::Boxed(b) => b.downcast().ok(),
            Request::Word(_) => None,
        }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Word(w) => write!(f, "Word({w:#x})"),
            Request::Boxed(_) => f.write_str("Boxed(..)"),
        }
    }
}

/// What a loop hands back to the scheduler during one call to it, delivered once it
/// returns, in order: an interrupt, and whatever follows it.
pub(crate) enum Out {
    /// Complete `tid`'s call (only if its key is `key`, or any call to this loop if
    /// `None`) with the completion.
    Complete(ThreadId, Option<u64>, Completion),
    /// Withdraw `tid`'s call if its cancellation context is cancelled.
    Interrupt(ThreadId),
}

/// What a loop may do while the scheduler calls it: read the time, complete calls,
/// key them, register descriptors with the scheduler's epoll instance, interrupt
/// threads, and ask to be polled again soon.
///
/// Completions make their threads ready in the order they were made; an
/// [interrupt](LoopCx::interrupt) takes effect when the call to the loop returns, so a
/// loop never runs re-entrantly because of what it does through its `LoopCx`.
pub struct LoopCx<'a> {
    pub(crate) core: &'a Core,
    /// The loop's slot on its core.
    pub(crate) idx: u32,
    /// The core clock's time in ns, read on first use (`u64::MAX`: not yet read).
    pub(crate) now_ns: Cell<u64>,
    pub(crate) out: &'a mut Vec<Out>,
    pub(crate) fd_ready: bool,
    pub(crate) poll_soon: bool,
    /// The key of the call this invocation is about (see [`LoopCx::set_key`]).
    pub(crate) key: u64,
    /// In `submit`: the submitting thread, until its call completes.
    pub(crate) submitting: Option<ThreadId>,
}

impl LoopCx<'_> {
    /// The core's current time (mock or real).
    pub fn now(&self) -> Instant {
        self.core.clock.base() + Duration::from_nanos(self.now_ns())
    }

    /// The core's current time in ns since its clock's base (read once per call).
    pub(crate) fn now_ns(&self) -> u64 {
        match self.now_ns.get() {
            u64::MAX => {
                let n = self.core.now_ns();
                self.now_ns.set(n);
                n
            }
            n => n,
        }
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

    /// In [`EventLoop::submit`]: names the submitted call `key` (default 0). The
    /// scheduler then accepts a completion keyed with
    /// [`complete_keyed`](Self::complete_keyed) or [`reply_keyed`](Self::reply_keyed) for this thread
    /// only while it is still blocked in this very call, so a late completion of a call
    /// the thread has left (cancelled, say) never reaches a later call of the same
    /// thread.
    ///
    /// In [`EventLoop::cancel`]: the key of the call being cancelled.
    pub fn set_key(&mut self, key: u64) {
        self.key = key;
    }

    /// The key of the call this invocation is about: in [`EventLoop::cancel`], the key
    /// the loop gave the cancelled call at [`submit`](EventLoop::submit) time.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Completes `tid`'s call with `value`; the thread's `custom::<R>` call returns it
    /// (`value` must be an `R` or a `threadlib::Result<R>`).
    pub fn reply<R: 'static>(&mut self, tid: ThreadId, value: R) {
        self.finish(tid, None, boxed(value));
    }

    /// Like [`reply`](Self::reply), for the call keyed `key` only (see
    /// [`set_key`](Self::set_key)); ignored if `tid` has left that call.
    pub fn reply_keyed<R: 'static>(&mut self, tid: ThreadId, key: u64, value: R) {
        self.finish(tid, Some(key), boxed(value));
    }

    /// Completes `tid`'s [`call_word`](crate::syscall::call_word) with `value`
    /// (no allocation).
    pub fn complete(&mut self, tid: ThreadId, value: i64) {
        self.finish(tid, None, Completion::Value(value));
    }

    /// Like [`complete`](Self::complete), for the call keyed `key` only (see
    /// [`set_key`](Self::set_key)); ignored if `tid` has left that call.
    pub fn complete_keyed(&mut self, tid: ThreadId, key: u64, value: i64) {
        self.finish(tid, Some(key), Completion::Value(value));
    }

    /// Completes `tid`'s call with an error (for `custom::<R>` and `call_word` alike).
    pub fn fail<R: 'static>(&mut self, tid: ThreadId, e: Error) {
        let r: crate::Result<R> = Err(e);
        self.reply(tid, r);
    }

    /// Completes `tid`'s call as cancelled (from [`EventLoop::cancel`]).
    pub fn cancelled(&mut self, tid: ThreadId) {
        self.finish(tid, None, Completion::Cancelled);
    }

    /// Completes `tid`'s call with `c` (keyed `key`, or any call to this loop).
    /// Delivered at once (that only queues the thread), unless an interrupt waits to be
    /// delivered when the loop returns: then after it, to keep the order.
    #[inline(always)]
    pub(crate) fn finish(&mut self, tid: ThreadId, key: Option<u64>, c: Completion) {
        if !self.out.is_empty() {
            self.out.push(Out::Complete(tid, key, c));
        } else if self.submitting == Some(tid) {
            // The call being submitted, completed at once: the thread is still running.
            if key.is_none_or(|k| k == self.key) {
                self.submitting = None;
                self.core.deliver_at_once(self.idx, tid, c);
            }
        } else {
            self.core.deliver(self.idx, tid, key, c);
        }
    }

    /// Completes `tid`'s call with the error `e` itself (what the built-in calls
    /// expect), keyed `key`.
    pub(crate) fn fail_keyed(&mut self, tid: ThreadId, key: Option<u64>, e: Error) {
        self.finish(tid, key, boxed(e));
    }

    /// Whether `tid` is blocked in this loop's call keyed `key` (a loop that keeps
    /// entries of calls since cancelled uses it to tell them apart).
    pub fn is_waiting(&self, tid: ThreadId, key: u64) -> bool {
        self.core.is_waiting_in(tid, self.idx, key)
    }

    /// Once this call to the loop returns: if `tid` is blocked in a call (to any loop)
    /// and its cancellation context has been cancelled, that call is withdrawn as for
    /// any cancelled thread (its loop's [`EventLoop::cancel`] runs). A loop that
    /// expires timeouts uses it to interrupt their owners.
    pub fn interrupt(&mut self, tid: ThreadId) {
        self.out.push(Out::Interrupt(tid));
    }

    /// Registers `fd` with the scheduler's own epoll instance for `interest`: from now
    /// on, every readiness event epoll reports for it reaches this loop's
    /// [`EventLoop::fd_event`] (no epoll instance of the loop's own, no extra
    /// `epoll_wait` per wake-up). Deregister it with
    /// [`deregister_fd`](Self::deregister_fd) before closing it.
    pub fn register_fd(&mut self, fd: RawFd, interest: Interest) -> Result<()> {
        self.core.register_loop_fd(self.idx, fd, interest)
    }

    /// Removes `fd` from the scheduler's epoll instance (see
    /// [`register_fd`](Self::register_fd)); no more events for it reach the loop.
    pub fn deregister_fd(&mut self, fd: RawFd) -> Result<()> {
        self.core.deregister_loop_fd(fd)
    }
}

fn boxed<R: 'static>(value: R) -> Completion {
    let b: Box<dyn Any> = Box::new(value);
    Completion::Boxed(Box::new(b))
}

/// An event loop serving system calls: the built-in loops (timers, fd readiness,
/// io_uring, the blocking pool) and user loops alike.
///
/// A loop is driven by its core's scheduler on one OS thread; it must never block.
/// See the [module documentation](self) for when [`EventLoop::poll`] runs.
pub trait EventLoop: Any {
    /// A short name for traces and errors.
    fn name(&self) -> &'static str;

    /// A thread hands this loop a request. Complete it now or later via `cx`; name it
    /// with [`LoopCx::set_key`] to reject late completions.
    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>);

    /// The thread `tid` was cancelled: drop its request and complete it with
    /// [`LoopCx::cancelled`] (now, or later if the loop must wait for something first;
    /// the thread stays blocked until then). [`LoopCx::key`] is the call's key. It may
    /// run again for the same call if the thread is interrupted again meanwhile.
    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>);

    /// Completes whatever requests are ready. Must not block.
    fn poll(&mut self, cx: &mut LoopCx<'_>);

    /// A descriptor that is readable whenever [`EventLoop::poll`] has something to do.
    fn wake_fd(&self) -> Option<RawFd> {
        None
    }

    /// Readiness `readiness` was reported for `fd`, which this loop registered with
    /// [`LoopCx::register_fd`]. Default: nothing.
    fn fd_event(&mut self, fd: RawFd, readiness: EpollReadiness, cx: &mut LoopCx<'_>) {
        let _ = (fd, readiness, cx);
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

    /// Whether the scheduler polls this loop on every pass (after every batch of ready
    /// threads). Default: when it has no [`wake_fd`](Self::wake_fd). A loop that learns
    /// of all its work through its wake fd, the descriptors it registered, its
    /// deadlines or the calls made to it answers `false`, and then costs nothing on a
    /// pass that does not concern it.
    fn polled_every_pass(&self) -> bool {
        self.wake_fd().is_none()
    }

    /// Whether the loop holds work that will make a thread ready, or interrupt one, by
    /// itself, beyond the calls threads are blocked in (which the scheduler counts): an
    /// armed timeout, say. While it does, the core is not idle, so a shutting-down
    /// runtime waits for it. Default `false`.
    fn holds_work(&self) -> bool {
        false
    }

    /// Whether, when a core is torn down at the end of shutdown, the calls this loop
    /// still holds are withdrawn through [`cancel`](Self::cancel) before their threads
    /// are dropped. A loop answers `false` if a call's resources must outlive its
    /// thread until something outside the process is done with them (an io_uring
    /// operation's buffers, which the kernel may still write): the loop then keeps
    /// them itself until it is dropped. Default `true`.
    fn cancel_at_teardown(&self) -> bool {
        true
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
        core.with_user_loop(id.0, |l, cx| {
            let any: &mut dyn Any = l;
            any.downcast_mut::<L>().map(|l| f(l, cx))
        })
        .flatten()
    })
    .ok_or_else(|| Error::NoRuntime)?
    .ok_or_else(|| Error::NoEventLoop("custom (unknown LoopId, wrong type or busy)"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use iolib::epoll::{Interest, Readiness as EpollReadiness};

    use super::{EventLoop, LoopCx, Request};
    use crate::core::ThreadId;
    use std::time::Duration;

    use crate::syscall::{call_word, custom};
    use crate::{with_timeout, Runtime};

    /// Keys each call with its request word (a boxed request carries it as a `u64`),
    /// and completes it first under a wrong key (which must not reach the thread), then
    /// under its own: a word call when the loop is next polled, a boxed call at once,
    /// inside `submit`.
    struct Keyed {
        waiting: Option<(ThreadId, u64)>,
    }

    impl EventLoop for Keyed {
        fn name(&self) -> &'static str {
            "keyed"
        }
        fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
            match request {
                Request::Word(w) => {
                    cx.set_key(w);
                    self.waiting = Some((tid, w));
                    cx.poll_soon();
                }
                boxed => {
                    let w = *boxed.downcast::<u64>().expect("a u64");
                    cx.set_key(w);
                    cx.reply_keyed(tid, w + 1, format!("wrong key {}", w + 1));
                    cx.reply_keyed(tid, w, format!("call {w}"));
                }
            }
        }
        fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
            cx.cancelled(tid);
        }
        fn poll(&mut self, cx: &mut LoopCx<'_>) {
            if let Some((tid, key)) = self.waiting.take() {
                cx.complete_keyed(tid, key - 1, -1);
                cx.complete_keyed(tid, key, key as i64 * 10);
            }
        }
    }

    #[test]
    fn a_keyed_completion_reaches_only_the_call_it_names() {
        crate::test_support::watchdog(|| {
            let (b, id) = Runtime::builder()
                .uring(None)
                .blocking_threads(0)
                .event_loop(|_| Box::new(Keyed { waiting: None }));
            // A completion that never arrives fails the test instead of hanging it.
            let limit = Duration::from_secs(5);
            let got = b
                .build()
                .unwrap()
                .block_on(async move {
                    let words = (
                        with_timeout(limit, call_word(id, 7)).await,
                        with_timeout(limit, call_word(id, 8)).await,
                    );
                    let boxed = with_timeout(limit, custom::<String>(id, Box::new(5u64))).await;
                    (words, boxed)
                })
                .unwrap();
            let ((a, b), boxed) = got;
            assert_eq!((a.unwrap(), b.unwrap()), (70, 80));
            assert_eq!(boxed.unwrap(), "call 5");
        });
    }

    /// Completes a wait when the pipe it registered with the scheduler's epoll
    /// instance becomes readable.
    struct PipeLoop {
        rx: OwnedFd,
        waiter: Option<ThreadId>,
        polls: Arc<AtomicU32>,
        events: Arc<AtomicU32>,
    }

    impl EventLoop for PipeLoop {
        fn name(&self) -> &'static str {
            "pipe"
        }
        fn submit(&mut self, tid: ThreadId, _: Request, cx: &mut LoopCx<'_>) {
            cx.register_fd(self.rx.as_raw_fd(), Interest::READABLE)
                .unwrap();
            self.waiter = Some(tid);
        }
        fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
            cx.cancelled(tid);
        }
        fn poll(&mut self, _: &mut LoopCx<'_>) {
            self.polls.fetch_add(1, Ordering::Relaxed);
        }
        fn fd_event(&mut self, fd: RawFd, r: EpollReadiness, cx: &mut LoopCx<'_>) {
            self.events.fetch_add(1, Ordering::Relaxed);
            assert_eq!(fd, self.rx.as_raw_fd());
            assert!(r.is_readable());
            cx.deregister_fd(fd).unwrap();
            if let Some(tid) = self.waiter.take() {
                cx.complete(tid, fd as i64);
            }
        }
        fn polled_every_pass(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_registered_fd_reaches_its_loop_without_polls_until_deregistered() {
        crate::test_support::watchdog(|| {
            let (rx, tx) = iolib::fd::pipe().unwrap();
            let rx_fd = rx.as_raw_fd();
            let rx = Mutex::new(Some(rx));
            let polls = Arc::new(AtomicU32::new(0));
            let events = Arc::new(AtomicU32::new(0));
            let (p, e) = (polls.clone(), events.clone());
            let (b, id) = Runtime::builder()
                .uring(None)
                .blocking_threads(0)
                .event_loop(move |_| {
                    Box::new(PipeLoop {
                        rx: rx.lock().unwrap().take().expect("one core"),
                        waiter: None,
                        polls: p.clone(),
                        events: e.clone(),
                    })
                });
            let got = b
                .build()
                .unwrap()
                .block_on(async move {
                    let writer = crate::spawn(async move {
                        crate::yield_now().await?;
                        std::fs::File::from(tx).write_all(b"x")?;
                        crate::Result::Ok(())
                    });
                    let r = call_word(id, 0).await;
                    writer.await.unwrap().unwrap();
                    // The byte stays unread: a registration left behind would keep
                    // reporting it.
                    crate::sleep(Duration::from_millis(20)).await.unwrap();
                    r
                })
                .unwrap();
            assert_eq!(got.unwrap(), rx_fd as i64);
            assert_eq!(
                polls.load(Ordering::Relaxed),
                0,
                "an fd event is not a poll"
            );
            assert_eq!(
                events.load(Ordering::Relaxed),
                1,
                "a deregistered fd reports nothing more"
            );
        });
    }
}
