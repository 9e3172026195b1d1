//! An async mutex for the threads of one core.

use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::wait_queue::{park_until, OnAbandon, Ticket, WaitQueue};
use crate::error::Result;

/// A mutual-exclusion lock for threads of one core, held across system calls.
///
/// [`lock`](Mutex::lock) waits while another thread holds the lock. Waiters acquire it
/// strictly in arrival order: unlocking hands the lock directly to the first waiter, so
/// a thread arriving later cannot barge in ahead of it. A waiter that is cancelled
/// leaves the queue (or, if the lock was already handed to it, passes it on) and gets
/// [`Error::Cancelled`](crate::Error::Cancelled).
///
/// The lock is not re-entrant: a thread locking a mutex it holds waits forever (until
/// cancelled). A panic while the lock is held releases it; there is no poisoning.
///
/// ```
/// use std::rc::Rc;
/// use threadlib::sync::Mutex;
///
/// threadlib::run(async {
///     let m = Rc::new(Mutex::new(0));
///     let m2 = m.clone();
///     let t = threadlib::spawn(async move {
///         let mut g = m2.lock().await?;
///         threadlib::yield_now().await?; // still holding the lock
///         *g += 1;
///         threadlib::Result::Ok(())
///     });
///     threadlib::yield_now().await?;
///     *m.lock().await? += 10; // waits for the other thread to unlock
///     t.await??;
///     assert_eq!(*m.lock().await?, 11);
///     threadlib::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub struct Mutex<T: ?Sized> {
    lock: RawLock,
    data: RefCell<T>,
}

/// The lock state, apart from the data.
#[derive(Default)]
struct RawLock {
    locked: Cell<bool>,
    waiters: RefCell<WaitQueue>,
}

impl RawLock {
    fn try_lock(&self) -> bool {
        // Unlocking with waiters hands the lock over without clearing `locked`, so an
        // unlocked mutex has no waiters and taking it cannot overtake anyone.
        !self.locked.replace(true)
    }

    async fn lock(&self) -> Result<()> {
        if self.try_lock() {
            return Ok(());
        }
        let ticket = self.waiters.borrow_mut().push_current(())?;
        let guard = OnAbandon::new(|| self.abandon(ticket));
        park_until(|| !self.waiters.borrow().is_queued(ticket)).await?;
        guard.disarm();
        Ok(())
    }

    /// Hands the lock to the first waiter, or leaves it unlocked.
    fn unlock(&self) {
        if self.waiters.borrow_mut().wake_one().is_none() {
            self.locked.set(false);
        }
    }

    fn abandon(&self, ticket: Ticket) {
        let queued = self.waiters.borrow_mut().remove(ticket);
        if !queued {
            // The lock was handed to us but we will not take it.
            self.unlock();
        }
    }
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            lock: RawLock::default(),
            data: RefCell::new(value),
        }
    }

    /// Consumes the mutex, returning the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting (in arrival order) while another thread holds it.
    ///
    /// Fails with [`Error::Cancelled`](crate::Error::Cancelled) if the calling thread is
    /// cancelled while waiting, and with [`Error::NoRuntime`](crate::Error::NoRuntime)
    /// if it would have to wait outside a threadlib thread.
    pub async fn lock(&self) -> Result<MutexGuard<'_, T>> {
        self.lock.lock().await?;
        Ok(self.guard())
    }

    /// Locks the mutex if it is free (and nobody waits for it).
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.lock.try_lock().then(|| self.guard())
    }

    /// Whether some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.lock.locked.get()
    }

    /// Mutable access without locking: the exclusive borrow proves nobody holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            // Holding the lock is what makes this borrow unique; a failure here would be
            // a bug in the lock itself.
            data: self.data.borrow_mut(),
            mutex: self,
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.data.try_borrow() {
            Ok(v) if !self.is_locked() => d.field("data", &&*v),
            _ => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Proof of holding a [`Mutex`]: derefs to the data; dropping it unlocks the mutex and
/// hands it to the next waiter.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    data: RefMut<'a, T>,
    mutex: &'a Mutex<T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard holds.
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // The next holder only runs after this thread suspends, by which time the data
        // borrow (a field, dropped right after this) is released.
        self.mutex.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.data, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.data, f)
    }
}
