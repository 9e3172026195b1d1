//! A counting semaphore for the threads of one core.

use std::cell::RefCell;
use std::fmt;

use super::wait_queue::{park_until, OnAbandon, Ticket, WaitQueue};
use crate::error::Result;

struct State {
    permits: usize,
    /// Each waiter's payload is the number of permits it asks for.
    waiters: WaitQueue<usize>,
}

impl State {
    /// Grants permits to waiters in arrival order while the first one can be served.
    fn grant(&mut self) {
        while let Some(&n) = self.waiters.front() {
            if n > self.permits {
                break;
            }
            self.permits -= n;
            self.waiters.wake_one();
        }
    }
}

/// A pool of permits that threads acquire and release, bounding how many do something
/// at once.
///
/// [`acquire(n)`](Semaphore::acquire) waits until `n` permits are free and returns a
/// [`SemaphorePermit`] that gives them back when dropped. Waiters are served strictly in
/// arrival order: a waiter asking for many permits holds back later ones asking for
/// few, so nobody starves. A waiter cancelled while waiting gets
/// [`Error::Cancelled`](crate::Error::Cancelled) and leaves the queue; permits that were
/// already handed to it go back to the pool (and to the next waiters).
///
/// ```
/// use std::rc::Rc;
/// use threadlib::sync::Semaphore;
///
/// threadlib::run(async {
///     let sem = Rc::new(Semaphore::new(2));
///     let a = sem.acquire(1).await?;
///     let b = sem.acquire(1).await?;
///     assert!(sem.try_acquire(1).is_none()); // both permits are out
///     drop(a);
///     assert_eq!(sem.available_permits(), 1);
///     drop(b);
///     let all = sem.acquire(2).await?;
///     assert_eq!(all.permits(), 2);
///     threadlib::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub struct Semaphore {
    st: RefCell<State>,
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub fn new(permits: usize) -> Self {
        Semaphore {
            st: RefCell::new(State {
                permits,
                waiters: WaitQueue::default(),
            }),
        }
    }

    /// Acquires `n` permits, waiting (in arrival order) until they are free.
    ///
    /// Fails with [`Error::Cancelled`](crate::Error::Cancelled) if the caller is
    /// cancelled while waiting, and with [`Error::NoRuntime`](crate::Error::NoRuntime)
    /// if it would have to wait outside a threadlib thread. Asking for more permits
    /// than will ever be released waits until cancelled.
    pub async fn acquire(&self, n: usize) -> Result<SemaphorePermit<'_>> {
        if let Some(p) = self.try_acquire(n) {
            return Ok(p);
        }
        let ticket = self.st.borrow_mut().waiters.push_current(n)?;
        let guard = OnAbandon::new(|| self.abandon(ticket, n));
        park_until(|| !self.st.borrow().waiters.is_queued(ticket)).await?;
        guard.disarm();
        Ok(SemaphorePermit { sem: self, n })
    }

    /// Acquires `n` permits if they are free now and nobody waits before the caller.
    pub fn try_acquire(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        let mut st = self.st.borrow_mut();
        if st.waiters.is_empty() && st.permits >= n {
            st.permits -= n;
            Some(SemaphorePermit { sem: self, n })
        } else {
            None
        }
    }

    /// Adds `n` permits to the pool (waking waiters they satisfy). The count saturates
    /// at `usize::MAX`.
    pub fn release(&self, n: usize) {
        let mut st = self.st.borrow_mut();
        st.permits = st.permits.saturating_add(n);
        st.grant();
    }

    /// Permits free right now.
    pub fn available_permits(&self) -> usize {
        self.st.borrow().permits
    }

    /// Number of threads waiting for permits.
    pub fn waiters(&self) -> usize {
        self.st.borrow().waiters.len()
    }

    fn abandon(&self, ticket: Ticket, n: usize) {
        let mut st = self.st.borrow_mut();
        if st.waiters.remove(ticket) {
            // It may have held back smaller requests behind it.
            st.grant();
        } else {
            // The permits were already ours; give them back.
            st.permits = st.permits.saturating_add(n);
            st.grant();
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.st.borrow();
        f.debug_struct("Semaphore")
            .field("permits", &st.permits)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; dropping it releases them.
#[must_use = "the permits are released as soon as this is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    pub fn permits(&self) -> usize {
        self.n
    }

    /// Keeps the permits out of the pool for good.
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.sem.release(self.n);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}
