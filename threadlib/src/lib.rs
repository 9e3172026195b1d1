//! # threadlib: threads for the programmer, events for the scheduler
//!
//! Lightweight threads written in direct style (`async`/`await`) whose every
//! suspension hands the scheduler an explicit [`Syscall`]: yield, fork, park, sleep,
//! wait for a file descriptor, an io_uring operation, a blocking closure, or a call of
//! your own. Schedulers are ordinary event loops (epoll, io_uring, timers, a blocking
//! pool) that you can assemble, swap or extend with your own [`EventLoop`].
//!
//! One deterministic, single-threaded scheduler runs per core; threads on a core may
//! hold `Rc` and `RefCell`. Work crosses cores only through [`spawn_on`] and the
//! channels of [`sync::remote`]. Concurrency is structured: a [`scope`](fn@scope) owns its
//! threads, and cancellation is exact because the scheduler sees every suspension.
//!
//! ```
//! let out = threadlib::run(async {
//!     let a = threadlib::spawn(async { 20 });
//!     threadlib::yield_now().await.unwrap();
//!     a.await.unwrap() + 22
//! }).unwrap();
//! assert_eq!(out, 42);
//! ```

mod cancel;
mod combinators;
mod core;
pub mod deadline;
mod error;
pub mod fs;
mod inbox;
pub mod loops;
pub mod net;
mod runtime;
mod scope;
pub mod signal;
pub mod sync;
pub mod syscall;
mod thread;
pub mod time;
pub mod trace;
mod waker;

/// The scheduler tests' watchdog, shared with the unit tests.
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

pub use crate::cancel::{is_cancelled, protect};
pub use crate::combinators::{all, any, both, first, race};
pub use crate::core::{Completion, ThreadId};
pub use crate::error::{Error, Result};
pub use crate::loops::{
    blocking, readiness, uring_io, with_loop, EventLoop, LoopCx, LoopId, Request,
};
pub use crate::runtime::{
    cores, cpu_yields, run, spawn_on, spawn_round_robin, Builder, RemoteJoinHandle, Runtime,
};
pub use crate::scope::{scope, Scope};
pub use crate::syscall::{Readiness, Syscall};
pub use crate::thread::{
    core_index, current, fork, live_threads, park, spawn, try_spawn, unpark, yield_now, JoinHandle,
};
pub use crate::time::{sleep, sleep_until, with_deadline, with_timeout, Clock};
