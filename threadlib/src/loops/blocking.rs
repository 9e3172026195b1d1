//! The blocking pool: OS threads that run closures which would block a scheduler
//! (DNS lookups, blocking file APIs, CPU-heavy work).
//!
//! Each core reaches the pool through its `PoolLoop`, an [`EventLoop`] like any
//! other: a job is a call keyed by its job number; results come back through the
//! loop's own queue, whose eventfd is the loop's [wake fd](EventLoop::wake_fd).

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use std::os::fd::{AsRawFd, RawFd};

use iolib::eventfd::EventFd;

use crate::core::{Completion, ThreadId};
use crate::error::{Error, Result};
use crate::loops::{EventLoop, LoopCx, Request};
use crate::syscall::{call, BlockingJob, Syscall};

/// What a job returns: its value, or its panic's message.
type JobResult = std::result::Result<Box<dyn Any + Send>, String>;

struct Job {
    id: u64,
    core: usize,
    tid: ThreadId,
    f: BlockingJob,
    returns: Arc<Returns>,
}

/// Where one core's finished jobs go: a queue the pool threads push to, and the
/// eventfd that wakes the core when it stops being empty.
struct Returns {
    queue: Mutex<Vec<(ThreadId, u64, JobResult)>>,
    efd: EventFd,
}

struct Inner {
    queue: Mutex<(VecDeque<Job>, bool)>,
    cv: Condvar,
}

/// A fixed set of OS threads running blocking jobs. Shared by all cores of a runtime.
#[derive(Clone)]
pub struct BlockingPool {
    inner: Arc<Inner>,
    core: usize,
}

/// Owns the pool's OS threads; stops and joins them on drop.
pub(crate) struct PoolThreads {
    inner: Arc<Inner>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BlockingPool {
    pub(crate) fn start(threads: usize) -> Result<(BlockingPool, PoolThreads)> {
        let inner = Arc::new(Inner {
            queue: Mutex::new((VecDeque::new(), false)),
            cv: Condvar::new(),
        });
        let mut hs = Vec::new();
        for i in 0..threads.max(1) {
            let inner = inner.clone();
            let h = std::thread::Builder::new()
                .name(format!("threadlib-blocking-{i}"))
                .spawn(move || worker(&inner))
                .map_err(Error::Io)?;
            hs.push(h);
        }
        Ok((
            BlockingPool {
                inner: inner.clone(),
                core: 0,
            },
            PoolThreads { inner, threads: hs },
        ))
    }

    /// The same pool, as seen from core `core`.
    pub(crate) fn for_core(&self, core: usize) -> BlockingPool {
        BlockingPool {
            inner: self.inner.clone(),
            core,
        }
    }

    fn submit(&self, id: u64, tid: ThreadId, f: BlockingJob, returns: Arc<Returns>) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0.push_back(Job {
            id,
            core: self.core,
            tid,
            f,
            returns,
        });
        drop(q);
        self.inner.cv.notify_one();
    }

    /// Removes a job that has not started; one already running finishes and its result
    /// is discarded by the core.
    fn withdraw(&self, id: u64) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0.retain(|j| !(j.id == id && j.core == self.core));
    }
}

fn worker(inner: &Inner) {
    loop {
        let job = {
            let mut q = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(j) = q.0.pop_front() {
                    break j;
                }
                if q.1 {
                    return;
                }
                q = inner.cv.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result =
            catch_unwind(AssertUnwindSafe(job.f)).map_err(|p| crate::thread::panic_message(&*p));
        job.returns.send(job.tid, job.id, result);
    }
}

impl Returns {
    fn send(&self, tid: ThreadId, job: u64, result: JobResult) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push((tid, job, result));
            q.len() == 1
        };
        if was_empty {
            // An eventfd write only fails if the counter would overflow, and then the
            // fd is readable anyway: the wake-up cannot be lost.
            let _ = self.efd.notify();
        }
    }
}

/// One core's access to the blocking pool, as an event loop: `Request::Boxed` of a
/// [`BlockingJob`] runs it on the pool; the call completes with the job's
/// `Result<Box<dyn Any + Send>, String>` (`Err`: the job panicked).
pub(crate) struct PoolLoop {
    pool: BlockingPool,
    returns: Arc<Returns>,
    next_job: u64,
    /// Results taken from the queue, reused between polls.
    batch: Vec<(ThreadId, u64, JobResult)>,
}

impl PoolLoop {
    pub(crate) fn new(pool: BlockingPool) -> Result<PoolLoop> {
        Ok(PoolLoop {
            pool,
            returns: Arc::new(Returns {
                queue: Mutex::new(Vec::new()),
                efd: EventFd::new()?,
            }),
            next_job: 0,
            batch: Vec::new(),
        })
    }
}

impl EventLoop for PoolLoop {
    fn name(&self) -> &'static str {
        "blocking pool"
    }

    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        let Some(job) = request.downcast::<BlockingJob>() else {
            return cx.fail_keyed(tid, None, Error::other("blocking pool: not a job"));
        };
        let id = self.next_job;
        self.next_job += 1;
        self.pool.submit(id, tid, *job, self.returns.clone());
        cx.set_key(id);
    }

    /// A job not yet started is withdrawn; a running one finishes and its result is
    /// dropped (the thread has left the call by then).
    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.pool.withdraw(cx.key());
        cx.cancelled(tid);
    }

    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        let _ = self.returns.efd.drain();
        std::mem::swap(
            &mut self.batch,
            &mut *self.returns.queue.lock().unwrap_or_else(|p| p.into_inner()),
        );
        for (tid, job, result) in self.batch.drain(..) {
            let c: Box<dyn Any> = Box::new(result);
            cx.finish(tid, Some(job), Completion::Boxed(Box::new(c)));
        }
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.returns.efd.as_raw_fd())
    }
}

impl Drop for PoolThreads {
    fn drop(&mut self) {
        {
            let mut q = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.1 = true;
            q.0.clear();
        }
        self.inner.cv.notify_all();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Runs `f` on the blocking pool and returns its result; the calling thread suspends
/// meanwhile, the core keeps running others. If the caller is cancelled, a job not yet
/// started is withdrawn; a running one finishes and its result is dropped.
pub async fn run<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let job: BlockingJob = Box::new(move || Box::new(f()) as Box<dyn Any + Send>);
    match call(Syscall::Blocking(job)).await? {
        Completion::Boxed(b) => {
            let b = match (*b).downcast::<std::result::Result<Box<dyn Any + Send>, String>>() {
                Ok(r) => r,
                Err(b) => {
                    return match b.downcast::<Error>() {
                        Ok(e) => Err(*e),
                        Err(_) => Err(Error::other("blocking pool returned an unexpected value")),
                    }
                }
            };
            match *b {
                Ok(v) => v
                    .downcast::<R>()
                    .map(|r| *r)
                    .map_err(|_| Error::other("blocking job returned an unexpected type")),
                Err(msg) => Err(Error::Panicked(msg)),
            }
        }
        _ => Err(Error::other("blocking pool returned no value")),
    }
}
