//! The runtime: one deterministic scheduler per core (each on its own OS thread), a
//! shared blocking pool, cross-core spawning and messages, and clean shutdown.

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::{Core, CoreConfig};
use crate::error::{Error, Result};
use crate::inbox::{Inbox, InboxMsg};
use crate::loops::blocking::BlockingPool;
use crate::loops::{EventLoop, LoopId};
use crate::thread::{spawn, JoinHandle};
use crate::time::ClockKind;
use crate::trace::{chrome_json, Tracer};

type LoopFactory = Arc<dyn Fn(usize) -> Box<dyn EventLoop> + Send + Sync>;

/// State shared by all cores of a running runtime.
pub(crate) struct Shared {
    inboxes: Vec<Arc<Inbox>>,
    rr: AtomicUsize,
}

/// [`Builder::cpu_slice`]'s default.
const DEFAULT_CPU_SLICE: Duration = Duration::from_micros(100);

/// Configures a [`Runtime`]: how many cores, which event loops each scheduler has, the
/// clock, sharing the CPU, and tracing.
#[derive(Clone)]
pub struct Builder {
    cores: usize,
    fd_loop: bool,
    uring_entries: Option<u32>,
    blocking_threads: usize,
    mock_clock: Option<bool>,
    trace_path: Option<PathBuf>,
    trace: bool,
    loops: Vec<LoopFactory>,
    shuffle: Option<u64>,
    cpu_slice: Option<Duration>,
    pin_cores: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("cores", &self.cores)
            .field("fd_loop", &self.fd_loop)
            .field("uring_entries", &self.uring_entries)
            .field("blocking_threads", &self.blocking_threads)
            .field("mock_clock", &self.mock_clock)
            .field("cpu_slice", &self.cpu_slice)
            .field("pin_cores", &self.pin_cores)
            .field("custom_loops", &self.loops.len())
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            cores: 1,
            fd_loop: true,
            uring_entries: Some(256),
            blocking_threads: 4,
            mock_clock: None,
            trace_path: None,
            trace: false,
            loops: Vec::new(),
            shuffle: None,
            cpu_slice: Some(DEFAULT_CPU_SLICE),
            pin_cores: false,
        }
    }
}

impl Builder {
    /// Number of cores (schedulers, each on its own OS thread; core 0 is the thread
    /// calling `block_on`). Default 1. Zero means all available CPUs.
    pub fn cores(mut self, n: usize) -> Self {
        self.cores = if n == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            n
        };
        self
    }

    /// Include the epoll loop (fd readiness). Default on.
    pub fn fd_loop(mut self, on: bool) -> Self {
        self.fd_loop = on;
        self
    }

    /// io_uring submission-queue size per core, or `None` for no io_uring loop.
    /// Default 256.
    pub fn uring(mut self, entries: Option<u32>) -> Self {
        self.uring_entries = entries;
        self
    }

    /// OS threads in the shared blocking pool (0: no pool). Default 4.
    pub fn blocking_threads(mut self, n: usize) -> Self {
        self.blocking_threads = n;
        self
    }

    /// Use a mock clock that starts at zero and moves only by
    /// [`advance`](crate::time::advance) or, with `auto_advance`, by jumping to the next
    /// timer whenever no thread is ready.
    pub fn mock_clock(mut self, auto_advance: bool) -> Self {
        self.mock_clock = Some(auto_advance);
        self
    }

    /// Run the threads that are ready together in an order drawn from `seed` instead
    /// of first come, first served (which includes the child-first order of
    /// [`fork`](crate::fork)). A run stays deterministic, the same for the same seed,
    /// while different seeds explore different interleavings: for simulation testing.
    pub fn shuffle_ready(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed);
        self
    }

    /// How long a core that always has work may keep its CPU before it gives the CPU
    /// up to other runnable OS threads (`sched_yield`, when it next looks at its event
    /// sources). A core that blocks in its wait for events, or that the kernel switches
    /// out, within the slice never yields; nor does any core with `None`. Default
    /// 100 µs.
    ///
    /// Without it, a core under full load runs out the kernel's time slices
    /// (milliseconds) while a thread sharing its CPU waits: a client on the same
    /// machine, whose responses then sit unread for that long.
    pub fn cpu_slice(mut self, slice: Option<Duration>) -> Self {
        self.cpu_slice = slice;
        self
    }

    /// Pin each core's OS thread to one CPU: core `i` runs only on the `i`-th of the
    /// CPUs the thread calling [`Runtime::block_on`] may use (wrapping around when
    /// there are more cores than CPUs). That thread gets its own CPU set back when
    /// `block_on` returns; the blocking pool's threads are not pinned. Default off.
    ///
    /// Unpinned, the kernel may put two busy cores on one CPU while others run
    /// elsewhere (with a client on the same machine, say); each core's connections
    /// then wait out the other's time slices.
    pub fn pin_cores(mut self, on: bool) -> Self {
        self.pin_cores = on;
        self
    }

    /// Record a trace of every core and write it to `path` (Chrome trace-event JSON)
    /// when `block_on` returns.
    pub fn trace_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trace_path = Some(path.into());
        self.trace = true;
        self
    }

    /// Adds a user event loop to every core's scheduler: `make(core)` builds core
    /// `core`'s loop, on that core's OS thread. Returns the builder and the loop's id
    /// (the same on every core) for [`custom`](crate::syscall::custom),
    /// [`call_word`](crate::syscall::call_word) and
    /// [`with_loop`](crate::loops::with_loop).
    pub fn event_loop(
        mut self,
        make: impl Fn(usize) -> Box<dyn EventLoop> + Send + Sync + 'static,
    ) -> (Self, LoopId) {
        self.loops.push(Arc::new(make));
        let id = LoopId((self.loops.len() - 1) as u32);
        (self, id)
    }

    /// Builds the runtime (nothing runs until [`Runtime::block_on`]).
    pub fn build(self) -> Result<Runtime> {
        if self.cores == 0 {
            return Err(Error::other("a runtime needs at least one core"));
        }
        Ok(Runtime { cfg: self })
    }
}

/// A runtime configuration ready to run threads.
#[derive(Debug, Clone)]
pub struct Runtime {
    cfg: Builder,
}

impl Runtime {
    /// A builder with defaults: 1 core, epoll, io_uring, 4 blocking threads, real clock.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn core_config(&self, id: usize) -> CoreConfig {
        CoreConfig {
            id,
            fd_loop: self.cfg.fd_loop,
            uring_entries: self.cfg.uring_entries,
            clock: match self.cfg.mock_clock {
                Some(auto) => ClockKind::mock(auto),
                None => ClockKind::real(),
            },
            trace: self.cfg.trace,
            custom: self.cfg.loops.iter().map(|f| f(id)).collect(),
            shuffle: self.cfg.shuffle,
            cpu_slice_ns: self.cfg.cpu_slice.map(crate::time::duration_ns),
        }
    }

    /// Runs `main` as the first thread on core 0 (this OS thread), with the other cores
    /// on their own OS threads. When `main` returns, every remaining thread on every
    /// core is cancelled and awaited, and the runtime stops; a thread that then waits
    /// on a foreign future (one that knows only wakers, which no cancellation reaches)
    /// is dropped instead, as Rust cancels a future. Returns `main`'s output, or its
    /// panic as [`Error::Panicked`].
    pub fn block_on<F>(&self, main: F) -> Result<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let n = self.cfg.cores;
        let inboxes: Vec<Arc<Inbox>> = (0..n)
            .map(|_| Inbox::new().map(Arc::new))
            .collect::<Result<_>>()?;
        let shared = Arc::new(Shared {
            inboxes: inboxes.clone(),
            rr: AtomicUsize::new(0),
        });
        let (pool, pool_threads) = if self.cfg.blocking_threads > 0 {
            let (p, t) = BlockingPool::start(self.cfg.blocking_threads)?;
            (Some(p), Some(t))
        } else {
            (None, None)
        };
        let traces: Arc<Mutex<Vec<Tracer>>> = Arc::new(Mutex::new(Vec::new()));
        let cpus = if self.cfg.pin_cores {
            Some(iolib::sched::allowed_cpus()?)
        } else {
            None
        };
        let cpu_of = |id: usize| cpus.as_ref().map(|c| c[id % c.len()]);
        // Core 0 (this thread) first: if it cannot be pinned, nothing has started.
        let _pinned = match &cpus {
            Some(all) => Some(Pinned::to(all[0], all.clone())?),
            None => None,
        };
        let mut threads = Vec::new();
        for (id, inbox) in inboxes.iter().enumerate().skip(1) {
            let cpu = cpu_of(id);
            let cfg = self.clone();
            let inbox = inbox.clone();
            let pool = pool.as_ref().map(|p| p.for_core(id));
            let shared = shared.clone();
            let traces = traces.clone();
            let h = std::thread::Builder::new()
                .name(format!("threadlib-core-{id}"))
                .spawn(move || -> Result<()> {
                    let core = Core::new(cfg.core_config(id), inbox, pool, Some(shared))?;
                    let _enter = core.enter();
                    // A CPU of the caller's set that has gone offline since: the core
                    // runs unpinned rather than not at all (and its trace says so).
                    if let Some(Err(e)) = cpu.map(|c| iolib::sched::set_allowed_cpus(&[c])) {
                        crate::trace::event("runtime", "pinning a core failed", || e.to_string());
                    }
                    let r = core.run(|c| c.is_shutting_down() && c.idle());
                    core.destroy_all();
                    if let Some(t) = core.take_trace() {
                        traces.lock().unwrap_or_else(|p| p.into_inner()).push(t);
                    }
                    r
                })
                .map_err(Error::Io)?;
            threads.push(h);
        }
        let core = Core::new(
            self.core_config(0),
            inboxes[0].clone(),
            pool.clone(),
            Some(shared.clone()),
        )?;
        let result = {
            let _enter = core.enter();
            let handle: JoinHandle<F::Output> = spawn(main);
            let out: Rc<RefCell<Option<Result<F::Output>>>> = Rc::new(RefCell::new(None));
            let run = core.run(|_| {
                if out.borrow().is_none() {
                    if let Some(r) = handle.try_take() {
                        *out.borrow_mut() = Some(r);
                    }
                }
                out.borrow().is_some()
            });
            for inbox in &inboxes[1..] {
                inbox.send(InboxMsg::Shutdown);
            }
            core.begin_shutdown();
            let drained = core.run(|c| c.idle());
            core.destroy_all();
            drop(handle);
            run.and(drained)
                .and_then(|_| out.borrow_mut().take().unwrap_or(Err(Error::Shutdown)))
        };
        let mut first_err = None;
        for h in threads {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(p) => {
                    first_err =
                        first_err.or(Some(Error::Panicked(crate::thread::panic_message(&*p))))
                }
            }
        }
        drop(pool_threads);
        if let Some(path) = &self.cfg.trace_path {
            let mut all = traces
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
                .collect::<Vec<_>>();
            if let Some(t) = core.take_trace() {
                all.insert(0, t);
            }
            std::fs::write(path, chrome_json(&all)).map_err(Error::Io)?;
        }
        match first_err {
            Some(e) => Err(e),
            None => result,
        }
    }
}

/// The calling thread restricted to one CPU until dropped, when it gets its former CPU
/// set back.
struct Pinned {
    before: Vec<usize>,
}

impl Pinned {
    fn to(cpu: usize, before: Vec<usize>) -> Result<Self> {
        iolib::sched::set_allowed_cpus(&[cpu])?;
        Ok(Pinned { before })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Err(e) = iolib::sched::set_allowed_cpus(&self.before) {
            crate::trace::event("runtime", "restoring the CPU set failed", || e.to_string());
        }
    }
}

/// Times the current core has given its CPU up to other OS threads
/// ([`Builder::cpu_slice`]); zero outside a runtime.
pub fn cpu_yields() -> u64 {
    Core::with_current(|c| c.cpu.yields()).unwrap_or(0)
}

/// Number of cores of the running runtime (1 outside a runtime).
pub fn cores() -> usize {
    Core::with_current(|c| c.shared.as_ref().map_or(1, |s| s.inboxes.len())).unwrap_or(1)
}

/// A handle to a thread spawned on another core.
#[must_use = "dropping a RemoteJoinHandle detaches the thread"]
pub struct RemoteJoinHandle<T> {
    rx: crate::sync::remote::OneshotReceiver<Result<T>>,
}

impl<T: Send + 'static> RemoteJoinHandle<T> {
    /// Waits for the thread's result. [`Error::Cancelled`] if the waiting thread is
    /// cancelled (the other thread runs on); [`Error::Shutdown`] if the thread ended
    /// without a result (its runtime shut down).
    pub async fn join(self) -> Result<T> {
        match self.rx.recv().await {
            Ok(r) => r,
            Err(Error::Cancelled) => Err(Error::Cancelled),
            Err(_) => Err(Error::Shutdown),
        }
    }
}

/// Spawns a thread on core `core`: `make` runs there and builds the thread's future,
/// which may use `Rc` and other non-`Send` state. Fails with [`Error::NoSuchCore`] for
/// a core the runtime does not have.
pub fn spawn_on<M, F>(core: usize, make: M) -> Result<RemoteJoinHandle<F::Output>>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let shared = Core::with_current(|c| c.shared.clone())
        .flatten()
        .ok_or(Error::NoRuntime)?;
    let cores = shared.inboxes.len();
    let inbox = shared
        .inboxes
        .get(core)
        .ok_or(Error::NoSuchCore { core, cores })?;
    let (tx, rx) = crate::sync::remote::oneshot();
    inbox.send(InboxMsg::Run(Box::new(move || {
        let fut = make();
        let h = spawn(fut);
        drop(spawn(async move {
            let r = h.await;
            let _ = tx.send(r);
        }));
    })));
    Ok(RemoteJoinHandle { rx })
}

/// Spawns on the next core in round-robin order.
pub fn spawn_round_robin<M, F>(make: M) -> Result<RemoteJoinHandle<F::Output>>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let shared = Core::with_current(|c| c.shared.clone())
        .flatten()
        .ok_or(Error::NoRuntime)?;
    let core = shared.rr.fetch_add(1, Ordering::Relaxed) % shared.inboxes.len();
    spawn_on(core, make)
}

/// Runs `main` on a single-core runtime with default settings.
pub fn run<F>(main: F) -> Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Runtime::builder().build()?.block_on(main)
}

/// Runs `main` on a one-core runtime with an auto-advancing mock clock (for the unit
/// tests of timed operations).
#[cfg(test)]
pub(crate) fn on_mock_clock<T: 'static>(main: impl Future<Output = T> + 'static) -> T {
    Runtime::builder()
        .mock_clock(true)
        .build()
        .expect("a mock-clock runtime")
        .block_on(main)
        .expect("the runtime ran to the end")
}
