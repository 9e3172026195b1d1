//! Condition variables (Eio's `Condition`) for the threads of one core.

use std::cell::{Cell, RefCell};
use std::fmt;

use super::mutex::MutexGuard;
use super::wait_queue::{park_until, OnAbandon, Ticket, WaitQueue};
use crate::error::Result;

/// Lets threads wait until another thread says that something changed.
///
/// [`wait`](Condition::wait) atomically unlocks a [`Mutex`](super::Mutex) and parks
/// the caller; once notified, it locks the mutex again before returning the guard.
/// Because threads of a core run one at a time, "atomically" is free: no other thread
/// can run between the unlock and the park, so a notification is never lost. For the
/// same reason, state that is only touched without suspending needs no mutex at all:
/// [`wait_no_mutex`](Condition::wait_no_mutex) covers that case.
///
/// Waiters are notified in arrival order. As with every condition variable, a waiter
/// must re-check its predicate in a loop: another thread may have changed the state
/// again before the woken one runs.
///
/// A waiter cancelled while waiting gets [`Error::Cancelled`](crate::Error::Cancelled)
/// *without* the mutex re-locked (its guard is gone); if it had already been notified
/// by [`notify_one`](Condition::notify_one), the notification passes to the next
/// waiter, so cancellation never swallows a wake-up meant for someone else.
///
/// ```
/// use std::rc::Rc;
/// use threadlib::sync::{Condition, Mutex};
///
/// threadlib::run(async {
///     let state = Rc::new((Mutex::new(false), Condition::new()));
///     let s2 = state.clone();
///     let waiter = threadlib::spawn(async move {
///         let (m, c) = &*s2;
///         let mut ready = m.lock().await?;
///         while !*ready {
///             ready = c.wait(ready).await?;
///         }
///         threadlib::Result::Ok("saw it")
///     });
///     threadlib::yield_now().await?;
///     *state.0.lock().await? = true;
///     state.1.notify_all();
///     assert_eq!(waiter.await??, "saw it");
///     threadlib::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
#[derive(Default)]
pub struct Condition {
    waiters: RefCell<WaitQueue>,
    /// Every waiter with a ticket below this was woken by `notify_all`.
    broadcast_below: Cell<Ticket>,
}

impl Condition {
    /// A condition with no waiters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unlocks the guard's mutex, waits for a notification, then locks the mutex again
    /// and returns the new guard.
    ///
    /// Fails with [`Error::Cancelled`](crate::Error::Cancelled) if the caller is
    /// cancelled while waiting for the notification or for the lock, and with
    /// [`Error::NoRuntime`](crate::Error::NoRuntime) outside a threadlib thread; in
    /// both cases the mutex is left unlocked.
    pub async fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> Result<MutexGuard<'a, T>> {
        let mutex = MutexGuard::mutex(&guard);
        let ticket = self.waiters.borrow_mut().push_current(())?;
        drop(guard);
        self.await_ticket(ticket).await?;
        mutex.lock().await
    }

    /// Waits for a notification, for state that threads only change without
    /// suspending (so no mutex is needed on a single core).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use threadlib::sync::Condition;
    ///
    /// threadlib::run(async {
    ///     let s = Rc::new((Cell::new(0), Condition::new()));
    ///     let s2 = s.clone();
    ///     let t = threadlib::spawn(async move {
    ///         while s2.0.get() < 3 {
    ///             s2.1.wait_no_mutex().await?;
    ///         }
    ///         threadlib::Result::Ok(())
    ///     });
    ///     for _ in 0..3 {
    ///         threadlib::yield_now().await?;
    ///         s.0.set(s.0.get() + 1);
    ///         s.1.notify_all();
    ///     }
    ///     t.await?
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub async fn wait_no_mutex(&self) -> Result<()> {
        let ticket = self.waiters.borrow_mut().push_current(())?;
        self.await_ticket(ticket).await
    }

    async fn await_ticket(&self, ticket: Ticket) -> Result<()> {
        let guard = OnAbandon::new(|| self.abandon(ticket));
        park_until(|| !self.waiters.borrow().is_queued(ticket)).await?;
        guard.disarm();
        Ok(())
    }

    /// Wakes the longest-waiting thread; returns whether there was one.
    pub fn notify_one(&self) -> bool {
        self.waiters.borrow_mut().wake_one().is_some()
    }

    /// Wakes every waiting thread; returns how many there were.
    pub fn notify_all(&self) -> usize {
        let mut w = self.waiters.borrow_mut();
        self.broadcast_below.set(w.next_ticket());
        w.wake_all()
    }

    /// Number of threads waiting.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }

    fn abandon(&self, ticket: Ticket) {
        let mut w = self.waiters.borrow_mut();
        // Notified singly and not covered by a later broadcast: hand the notification
        // to the next waiter, as if this one had never been there.
        if !w.remove(ticket) && ticket >= self.broadcast_below.get() {
            w.wake_one();
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("waiters", &self.waiters())
            .finish()
    }
}
