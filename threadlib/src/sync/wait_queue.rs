//! The FIFO of parked threads behind every core-local primitive.
//!
//! Each waiter gets a ticket, increasing in arrival order. Waiters leave the queue in
//! two ways only: from the front, when the primitive grants them something (the lock, a
//! permit, a notification, a reserved item or slot), or by removing themselves when
//! they give up (cancellation). The queue therefore stays sorted by ticket, which makes
//! "was I granted?" an O(1) question for a woken waiter (`!is_queued(ticket)`) and lets
//! a waiter that gives up find itself by binary search. A waiter that is still queued
//! after waking was woken spuriously (or by a close) and re-checks its condition.

use std::collections::VecDeque;

use crate::core::ThreadId;
use crate::error::{Error, Result};

/// Identifies one waiter of one queue.
pub(crate) type Ticket = u64;

struct Waiter<P> {
    ticket: Ticket,
    tid: ThreadId,
    data: P,
}

/// Parked threads in arrival order, each with a small payload `P` (e.g. the number of
/// permits it asks for).
pub(crate) struct WaitQueue<P = ()> {
    q: VecDeque<Waiter<P>>,
    next: Ticket,
}

impl<P> Default for WaitQueue<P> {
    fn default() -> Self {
        WaitQueue {
            q: VecDeque::new(),
            next: 0,
        }
    }
}

impl<P> WaitQueue<P> {
    /// Queues the calling thread; fails with [`Error::NoRuntime`] outside a thread.
    pub(crate) fn push_current(&mut self, data: P) -> Result<Ticket> {
        let tid = crate::thread::current().ok_or(Error::NoRuntime)?;
        let ticket = self.next;
        self.next += 1;
        self.q.push_back(Waiter { ticket, tid, data });
        Ok(ticket)
    }

    /// The ticket the next waiter will get: every ticket below it has been issued.
    pub(crate) fn next_ticket(&self) -> Ticket {
        self.next
    }

    /// Whether the waiter holding `ticket` is still queued (not yet granted). Only
    /// meaningful for a ticket that has not removed itself.
    pub(crate) fn is_queued(&self, ticket: Ticket) -> bool {
        self.q.front().is_some_and(|w| w.ticket <= ticket)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// The payload of the first waiter.
    pub(crate) fn front(&self) -> Option<&P> {
        self.q.front().map(|w| &w.data)
    }

    /// Removes the waiter holding `ticket` (it gives up); returns whether it was queued.
    pub(crate) fn remove(&mut self, ticket: Ticket) -> bool {
        match self.q.binary_search_by_key(&ticket, |w| w.ticket) {
            Ok(i) => {
                self.q.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Grants the first waiter: dequeues and unparks it, returning its payload.
    pub(crate) fn wake_one(&mut self) -> Option<P> {
        let w = self.q.pop_front()?;
        // Unparking never re-enters this queue: it only makes the thread ready. If the
        // thread is not parked (already woken, or cancelled and about to resume), it
        // still finds itself dequeued and takes or passes on the grant.
        crate::thread::unpark(w.tid);
        Some(w.data)
    }

    /// Grants every waiter; returns how many there were.
    pub(crate) fn wake_all(&mut self) -> usize {
        let n = self.q.len();
        for w in self.q.drain(..) {
            crate::thread::unpark(w.tid);
        }
        n
    }

    /// Wakes every waiter without granting anything (they stay queued and re-check
    /// their condition, e.g. that the primitive was closed).
    pub(crate) fn unpark_all(&self) {
        for w in &self.q {
            crate::thread::unpark(w.tid);
        }
    }
}

/// Runs its closure on drop unless disarmed: the wait futures' clean-up when a waiter
/// gives up (cancelled, or its future dropped), so that it leaves the queue or passes on
/// a grant it will not use.
pub(crate) struct OnAbandon<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnAbandon<F> {
    pub(crate) fn new(f: F) -> Self {
        OnAbandon(Some(f))
    }

    /// The waiter got what it waited for: nothing to clean up.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnAbandon<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Parks until `granted()` holds, re-checking after every wake-up (spurious ones
/// included). Fails with the park's error, i.e. `Cancelled`.
pub(crate) async fn park_until(mut granted: impl FnMut() -> bool) -> Result<()> {
    loop {
        crate::thread::park().await?;
        if granted() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_track_membership() {
        crate::run(async {
            let mut q: WaitQueue<u8> = WaitQueue::default();
            let a = q.push_current(1).unwrap();
            let b = q.push_current(2).unwrap();
            let c = q.push_current(3).unwrap();
            assert!(q.is_queued(a) && q.is_queued(b) && q.is_queued(c));
            assert!(q.remove(b));
            assert!(!q.remove(b));
            assert_eq!(q.wake_one(), Some(1));
            assert!(!q.is_queued(a));
            assert!(q.is_queued(c));
            assert_eq!(q.front(), Some(&3));
            assert_eq!(q.len(), 1);
            assert_eq!(q.wake_all(), 1);
            assert!(!q.is_queued(c) && q.is_empty());
            assert_eq!(q.next_ticket(), 3);
        })
        .unwrap();
    }

    #[test]
    fn push_outside_runtime_fails() {
        let mut q: WaitQueue = WaitQueue::default();
        assert!(matches!(q.push_current(()), Err(Error::NoRuntime)));
    }
}
