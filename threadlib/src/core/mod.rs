//! The per-core scheduler: a run queue of threads, the system-call dispatcher, and the
//! event sources it routes calls to. One `Core` runs on one OS thread and is
//! deterministic: the same inputs give the same interleaving.
//!
//! # Reading order
//!
//! - [`Core`] (this file): what one core owns, and how it is built.
//! - [`context`]: how code running on a core finds it ([`Core::with_current`]), and
//!   why the reference it hands out is sound.
//! - [`run_queue`]: the scheduler loop ([`Core::run`]): run a batch of ready threads,
//!   poll the event sources, sleep until the next event or deadline.
//! - [`cpu_share`]: when a core that never blocks gives its CPU up to other OS
//!   threads.
//! - [`dispatch`]: how a thread's system call leaves its future and reaches an event
//!   loop, and how the result comes back.
//! - [`tasks`]: the task table (every thread's slot and state) and the run queue's data.
//! - [`sources`]: the event sources: the event loops (the built-in timer, epoll,
//!   io_uring and blocking-pool loops and the user loops, all behind the one
//!   [`EventLoop`] trait, in one table of loop slots) and the cross-core inbox, and how
//!   their events complete calls.
//! - [`shutdown`]: cancellation of blocked threads, and the end of a core.
//!
//! Ownership: a core's state is reached only from its own OS thread, through `&Core`;
//! each part the scheduler mutates sits in its own cell, borrowed for one operation at
//! a time. The only borrows held across a call into a thread or a loop are of
//! cells that code cannot reach (the shuffled batch, the epoll event list) or that
//! guard against re-entry (a loop's own slot, which then reads as busy). What
//! other OS threads may touch is the [`Inbox`] (and the runtime's `Shared`), behind
//! `Arc`s.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::SplitMix64;

use crate::cancel::{CancelCtx, CtxPool};
use crate::error::Result;
use crate::inbox::Inbox;
use crate::loops::blocking::BlockingPool;
use crate::loops::EventLoop;
use crate::runtime::Shared;
use crate::scope::ScopeInner;
use crate::syscall::Syscall;
use crate::time::ClockKind;
use crate::trace::{TraceKind, Tracer};

mod context;
mod cpu_share;
mod dispatch;
mod run_queue;
mod shutdown;
mod sources;
mod tasks;

pub(crate) use context::with_core;
pub(crate) use dispatch::ANY_PARK;
pub use tasks::{Completion, ThreadId};

use cpu_share::CpuShare;
use sources::Sources;
use tasks::Tasks;

/// Static configuration of one core's scheduler.
pub(crate) struct CoreConfig {
    pub id: usize,
    pub fd_loop: bool,
    pub uring_entries: Option<u32>,
    pub clock: ClockKind,
    pub trace: bool,
    pub custom: Vec<Box<dyn EventLoop>>,
    /// Seed of the order ready threads run in within a batch (`None`: FIFO).
    pub shuffle: Option<u64>,
    /// [`crate::Builder::cpu_slice`] in ns.
    pub cpu_slice_ns: Option<u64>,
}

/// One core's scheduler.
pub(crate) struct Core {
    pub(crate) id: usize,
    /// The threads and the run queue.
    tasks: RefCell<Tasks>,
    /// The thread being polled.
    current: Cell<Option<ThreadId>>,
    /// The call the running thread left, with its sequence number.
    syscall: Cell<Option<(Syscall, u32)>>,
    call_seq: Cell<u32>,
    /// Batches run since the last non-blocking poll of the event sources.
    tick: Cell<u32>,
    /// State of the seeded order of ready threads ([`Builder::shuffle_ready`]).
    ///
    /// [`Builder::shuffle_ready`]: crate::Builder::shuffle_ready
    shuffle: Option<RefCell<SplitMix64>>,
    /// Reused buffer of one shuffled batch.
    batch: RefCell<Vec<ThreadId>>,
    /// The event loops and what waits on them.
    sources: Sources,
    pub(crate) clock: ClockKind,
    /// Messages from other OS threads (shared with them).
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) shared: Option<Arc<Shared>>,
    /// The scope of threads spawned outside any scope.
    pub(crate) root: Rc<ScopeInner>,
    /// Scopes dropped unfinished during a panic's unwinding, whose release hooks wait
    /// for the next thread exit (a hook that panicked then would abort the process).
    pub(crate) deferred_hooks: RefCell<Vec<Rc<ScopeInner>>>,
    shutting_down: Cell<bool>,
    tracer: Option<RefCell<Tracer>>,
    /// How long the core has kept its CPU.
    pub(crate) cpu: CpuShare,
    /// Cancellation contexts to reuse.
    pub(crate) ctx_pool: CtxPool,
}

impl Core {
    pub(crate) fn new(
        mut cfg: CoreConfig,
        inbox: Arc<Inbox>,
        pool: Option<BlockingPool>,
        shared: Option<Arc<Shared>>,
    ) -> Result<Core> {
        let sources = Sources::new(&mut cfg, &inbox, pool)?;
        Ok(Core {
            id: cfg.id,
            tasks: RefCell::new(Tasks::default()),
            current: Cell::new(None),
            syscall: Cell::new(None),
            call_seq: Cell::new(0),
            tick: Cell::new(0),
            shuffle: cfg
                .shuffle
                .map(|seed| RefCell::new(SplitMix64::seed_from_u64(seed ^ cfg.id as u64))),
            batch: RefCell::new(Vec::new()),
            sources,
            clock: cfg.clock,
            inbox,
            shared,
            root: ScopeInner::new(CancelCtx::root(), None),
            deferred_hooks: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            tracer: cfg.trace.then(|| RefCell::new(Tracer::new(cfg.id))),
            cpu: CpuShare::new(cfg.cpu_slice_ns),
            ctx_pool: CtxPool::default(),
        })
    }

    /// The running thread's id.
    pub(crate) fn current_thread(&self) -> Option<ThreadId> {
        self.current.get()
    }

    pub(crate) fn live_threads(&self) -> usize {
        self.tasks.borrow().live()
    }

    // ----- tracing -------------------------------------------------------------------

    #[inline]
    pub(crate) fn trace(&self, tid: ThreadId, kind: TraceKind, name: &'static str) {
        if let Some(t) = &self.tracer {
            self.record(t, tid, kind, name);
        }
    }

    #[cold]
    fn record(&self, t: &RefCell<Tracer>, tid: ThreadId, kind: TraceKind, name: &'static str) {
        let ns = self.trace_ns();
        t.borrow_mut().record(ns, tid, kind, name);
    }

    /// A trace event that is not about one thread (`threadlib::trace::event`).
    pub(crate) fn trace_event(
        &self,
        track: &'static str,
        name: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        if let Some(t) = &self.tracer {
            let ns = self.trace_ns();
            t.borrow_mut().record_event(ns, track, name, detail());
        }
    }

    /// Whether this core records a trace.
    pub(crate) fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    /// Timestamps of trace events: the mock clock's time under a mock clock (so a
    /// trace of a simulation shows virtual time, the same at every replay), real time
    /// otherwise.
    fn trace_ns(&self) -> u64 {
        if self.clock.is_mock() {
            self.now_ns()
        } else {
            self.clock.real_elapsed_ns()
        }
    }

    pub(crate) fn take_trace(&self) -> Option<Tracer> {
        self.tracer
            .as_ref()
            .map(|t| std::mem::replace(&mut *t.borrow_mut(), Tracer::new(self.id)))
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.tasks.get_mut().forget_if_empty();
    }
}

#[cfg(test)]
mod size_tests {
    /// Per-thread and per-call sizes are part of the memory budget (bytes per sleeping
    /// thread); keep them from growing by accident.
    #[test]
    fn hot_types_stay_small() {
        assert!(super::tasks::task_size() <= 80);
        assert!(std::mem::size_of::<super::Completion>() <= 16);
        assert!(std::mem::size_of::<crate::syscall::Syscall>() <= 24);
        assert!(std::mem::size_of::<crate::thread::JoinHandle<u32>>() <= 24);
    }
}
