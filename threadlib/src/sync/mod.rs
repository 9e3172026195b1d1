//! Synchronisation for threads.
//!
//! The primitives at the top level are **core-local**: they coordinate the threads of
//! one core, which run one at a time, so they are built from `Rc` and `Cell` with no
//! atomics, are not `Send`, and cost about as much as the bookkeeping they do. Cross-core
//! (and cross-OS-thread) variants are in [`remote`].
//!
//! | primitive | what it does |
//! | --- | --- |
//! | [`Mutex`] | async lock held across system calls, FIFO hand-off |
//! | [`Semaphore`] | `acquire(n)` / release of counted permits, FIFO |
//! | [`Condition`] | wait for a notification, releasing a [`Mutex`] meanwhile (Eio's `Condition`) |
//! | [`Promise`] / [`Resolver`] | one-shot value for any number of readers |
//! | [`channel`](fn@channel) / [`unbounded_channel`] | multi-producer multi-consumer queue with backpressure |
//!
//! All of them share three rules:
//!
//! - **Fairness.** Waiting threads are served in arrival order. What a woken thread was
//!   woken *for* (the lock, permits, a buffered value, a free slot) is reserved for it,
//!   so a thread arriving later cannot take it first.
//! - **Exact cancellation.** A thread cancelled while waiting (its scope failed, a
//!   [`with_timeout`](crate::with_timeout) expired, the runtime shut down) resumes with
//!   [`Error::Cancelled`](crate::Error::Cancelled), leaves the wait queue, and passes on
//!   anything already reserved for it, so it never steals a wake-up meant for another
//!   thread. The same happens when a waiting future is dropped.
//! - **No runtime, no panic.** A call that would have to wait outside a threadlib thread
//!   fails with [`Error::NoRuntime`](crate::Error::NoRuntime); calls that need not wait
//!   (an uncontended lock, `try_*`) work anywhere.
//!
//! Waiting is a [`park`](crate::park) system call; waking is an [`unpark`](crate::unpark).
//! Apart from creating a primitive, no operation allocates, except when a wait queue or
//! a channel buffer grows to a new high-water mark.

mod channel;
mod condition;
mod mutex;
mod promise;
pub mod remote;
mod semaphore;
mod wait_queue;

pub use channel::{channel, unbounded_channel, Receiver, SendError, Sender, TrySendError};
pub use condition::Condition;
pub use mutex::{Mutex, MutexGuard};
pub use promise::{Promise, Resolver};
pub use semaphore::{Semaphore, SemaphorePermit};
