//! System calls: the explicit values a thread hands its scheduler when it suspends.
//!
//! Every suspension of a thread is one [`Syscall`]. The scheduler routes it to the event
//! loop responsible for it; when that loop completes the call, the thread becomes ready
//! and resumes with the result. Because the scheduler sees every suspension, it can
//! trace it and cancel it exactly.

use std::any::Any;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::core::{Completion, Core, ThreadId};
use crate::error::{Error, Result};
use crate::loops::LoopId;
use crate::thread::completion_value;

/// Which readiness a thread waits for on a file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Wait until a read would not block.
    Read,
    /// Wait until a write would not block.
    Write,
}

/// A job for the blocking pool: runs on a pool OS thread, returns a boxed value.
pub type BlockingJob = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

/// A system call: what a suspended thread asks of its scheduler.
pub enum Syscall {
    /// Go to the back of the run queue.
    Yield,
    /// The new thread `child` (already created) runs first, then the caller.
    Fork(ThreadId),
    /// Sleep until woken by [`unpark`](crate::unpark) (or cancelled).
    Park,
    /// Sleep until the core's clock reaches the deadline (nanoseconds on the core clock).
    Sleep(u64),
    /// Wait until `fd` is ready for `Readiness` (epoll loop).
    WaitFd(RawFd, Readiness),
    /// Run an io_uring operation (io_uring loop).
    Uring(Box<iolib::uring::Op>),
    /// Run a closure on the blocking pool.
    Blocking(BlockingJob),
    /// A user-defined call for a user-supplied event loop.
    Custom(LoopId, Box<dyn Any>),
    /// A one-word user-defined call for a user-supplied event loop (no allocation).
    LoopWord(LoopId, u64),
}

impl Syscall {
    /// A short name, as shown in traces (which name a call to a user loop by the
    /// loop's [`name`](crate::EventLoop::name) instead).
    pub fn name(&self) -> &'static str {
        match self {
            Syscall::Yield => "yield",
            Syscall::Fork(_) => "fork",
            Syscall::Park => "park",
            Syscall::Sleep(_) => "sleep",
            Syscall::WaitFd(_, Readiness::Read) => "wait_readable",
            Syscall::WaitFd(_, Readiness::Write) => "wait_writable",
            Syscall::Uring(_) => "uring",
            Syscall::Blocking(_) => "blocking",
            Syscall::Custom(..) | Syscall::LoopWord(..) => "custom",
        }
    }
}

impl std::fmt::Debug for Syscall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The sequence number of a call handed to the scheduler whose result the future has
/// not consumed yet (0: none). Dropping it withdraws the call or discards its unread
/// completion (see `Core::abandon_call`), so a call future dropped early (by `select!`
/// or `now_or_never`) leaves no trace.
struct Outstanding(u32);

impl Drop for Outstanding {
    fn drop(&mut self) {
        if self.0 != 0 {
            let seq = self.0;
            Core::with_current(|core| core.abandon_call(seq));
        }
    }
}

/// The future that performs one system call: the first poll hands the call to the
/// scheduler and suspends; the poll after completion returns the result.
#[must_use = "a system call does nothing unless awaited"]
pub(crate) struct Call {
    call: Option<Syscall>,
    pending: Outstanding,
}

impl Call {
    pub(crate) fn new(call: Syscall) -> Self {
        Call {
            call: Some(call),
            pending: Outstanding(0),
        }
    }
}

impl Unpin for Call {}

impl Future for Call {
    type Output = Result<Completion>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Core::with_current(|core| this.poll_on(core))
            .unwrap_or_else(|| Poll::Ready(Err(Error::NoRuntime)))
    }
}

impl Call {
    fn poll_on(&mut self, core: &Core) -> Poll<Result<Completion>> {
        let r = match self.call.take() {
            Some(call) => {
                let r = core.leave_call(call);
                if r.is_pending() {
                    self.pending.0 = core.last_call_seq();
                }
                return r;
            }
            None => core.take_completion(),
        };
        if r.is_ready() {
            self.pending.0 = 0;
        }
        r
    }
}

/// Which value-less call a [`SimpleCall`] makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SimpleKind {
    Yield,
    Park,
    /// `arg` is a duration in ns, turned into a deadline at the first poll.
    SleepFor,
    /// `arg` is a deadline in ns on the core clock.
    SleepUntil,
    /// `arg` is a file descriptor to wait on until it is ready for this.
    WaitFd(Readiness),
}

/// A two-word future for the calls that carry no result (yield, park, sleep, fd
/// readiness): the per-thread memory of a waiting thread is part of our budget, and
/// these calls are on every thread's path.
#[must_use = "a system call does nothing unless awaited"]
pub(crate) struct SimpleCall {
    arg: u64,
    pending: Outstanding,
    kind: SimpleKind,
    started: bool,
}

impl SimpleCall {
    pub(crate) fn new(kind: SimpleKind, arg: u64) -> Self {
        SimpleCall {
            arg,
            pending: Outstanding(0),
            kind,
            started: false,
        }
    }
}

impl Future for SimpleCall {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        Core::with_current(|core| this.poll_on(core))
            .unwrap_or_else(|| Poll::Ready(Err(Error::NoRuntime)))
    }
}

impl SimpleCall {
    fn poll_on(&mut self, core: &Core) -> Poll<Result<()>> {
        let r = if self.started {
            core.take_completion()
        } else {
            self.started = true;
            let call = match self.kind {
                SimpleKind::Yield => Syscall::Yield,
                SimpleKind::Park => Syscall::Park,
                SimpleKind::SleepFor => Syscall::Sleep(core.now_ns().saturating_add(self.arg)),
                SimpleKind::SleepUntil => Syscall::Sleep(self.arg),
                SimpleKind::WaitFd(r) => Syscall::WaitFd(self.arg as RawFd, r),
            };
            let r = core.leave_call(call);
            if r.is_pending() {
                self.pending.0 = core.last_call_seq();
            }
            return r.map(|r| r.map(|_| ()));
        };
        if r.is_ready() {
            self.pending.0 = 0;
        }
        // A readiness loop reports a failed wait (a descriptor it could not watch, or
        // one forgotten while waited on) in the completion.
        r.map(|r| r.and_then(completion_value).map(|_| ()))
    }
}

/// Performs `call` and converts its completion.
pub(crate) fn call(call: Syscall) -> Call {
    Call::new(call)
}

/// Performs a user-defined call served by the custom event loop `id`, returning the
/// value that loop completed it with (see [`EventLoop`](crate::loops::EventLoop)).
///
/// Fails with [`Error::Other`] if the loop replies with a value of a different type.
pub async fn custom<R: 'static>(id: LoopId, request: Box<dyn Any>) -> Result<R> {
    match call(Syscall::Custom(id, request)).await? {
        Completion::Boxed(b) => match (*b).downcast::<Result<R>>() {
            Ok(r) => *r,
            Err(b) => match b.downcast::<R>() {
                Ok(r) => Ok(*r),
                Err(_) => Err(Error::other(
                    "custom event loop replied with an unexpected type",
                )),
            },
        },
        Completion::Value(v) if v < 0 => {
            Err(Error::Io(std::io::Error::from_raw_os_error(-v as i32)))
        }
        _ => Err(Error::other("custom event loop replied without a value")),
    }
}

/// Performs a one-word call served by the custom event loop `id`: its
/// [`EventLoop::submit`](crate::loops::EventLoop::submit) receives
/// [`Request::Word`](crate::loops::Request::Word), and the call returns the value the
/// loop gives [`LoopCx::complete`](crate::loops::LoopCx::complete) (or the error it
/// gives [`LoopCx::fail`](crate::loops::LoopCx::fail)). Nothing is allocated.
pub fn call_word(id: LoopId, word: u64) -> impl Future<Output = Result<i64>> {
    WordCall(Call::new(Syscall::LoopWord(id, word)))
}

/// The future of [`call_word`]: the call's own future, its completion read as a word
/// (no `async fn` layer around it, on the path of every wait on a user loop).
#[must_use = "a system call does nothing unless awaited"]
struct WordCall(Call);

impl Future for WordCall {
    type Output = Result<i64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<i64>> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.and_then(word_value))
    }
}

/// A word call's completion as its result.
fn word_value(c: Completion) -> Result<i64> {
    match c {
        Completion::Value(v) => Ok(v),
        Completion::Boxed(b) => match (*b).downcast::<Result<()>>() {
            Ok(r) => r.map(|()| 0),
            Err(b) => match b.downcast::<Error>() {
                Ok(e) => Err(*e),
                Err(_) => Err(Error::other(
                    "custom event loop replied to a word call with a boxed value",
                )),
            },
        },
        _ => Err(Error::other("custom event loop replied without a value")),
    }
}
