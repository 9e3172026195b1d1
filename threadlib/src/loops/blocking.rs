//! The blocking pool: OS threads that run closures which would block a scheduler
//! (DNS lookups, blocking file APIs, CPU-heavy work). Results return to the submitting
//! core through its inbox.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};

use crate::core::{Completion, ThreadId};
use crate::error::{Error, Result};
use crate::inbox::{Inbox, InboxMsg};
use crate::syscall::{call, BlockingJob, Syscall};

struct Job {
    id: u64,
    core: usize,
    tid: ThreadId,
    f: BlockingJob,
    inbox: Arc<Inbox>,
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

    pub(crate) fn submit(&self, id: u64, tid: ThreadId, f: BlockingJob, inbox: Arc<Inbox>) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0.push_back(Job {
            id,
            core: self.core,
            tid,
            f,
            inbox,
        });
        drop(q);
        self.inner.cv.notify_one();
    }

    /// Removes a job that has not started; one already running finishes and its result
    /// is discarded by the core.
    pub(crate) fn withdraw(&self, id: u64) {
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
        job.inbox.send(InboxMsg::PoolDone {
            tid: job.tid,
            job: job.id,
            result,
        });
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
