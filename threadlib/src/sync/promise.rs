//! One-shot promises (Eio's `Promise`) for the threads of one core.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::wait_queue::{OnAbandon, WaitQueue};
use crate::error::{Error, Result};

enum Outcome<T> {
    Pending,
    Resolved(T),
    /// The resolver was dropped without resolving.
    Abandoned,
}

struct State<T> {
    outcome: Outcome<T>,
    waiters: WaitQueue,
}

/// A value that will be available later, shared by any number of readers.
///
/// Made together with its [`Resolver`] by [`Promise::new`]. Every
/// [`wait`](Promise::wait) of every clone of the promise gets its own clone of the value
/// (wrap a value that is expensive or impossible to clone in an `Rc`). If the resolver
/// is dropped without resolving, waiters fail with [`Error::Closed`].
///
/// ```
/// use threadlib::sync::Promise;
///
/// threadlib::run(async {
///     let (p, r) = Promise::new();
///     let readers: Vec<_> = (0..3)
///         .map(|_| {
///             let p = p.clone();
///             threadlib::spawn(async move { p.wait().await })
///         })
///         .collect();
///     threadlib::yield_now().await?;
///     r.resolve("ready");
///     for h in readers {
///         assert_eq!(h.await??, "ready");
///     }
///     threadlib::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub struct Promise<T> {
    st: Rc<RefCell<State<T>>>,
}

/// Resolves its [`Promise`] once. Dropping it unresolved makes the promise fail with
/// [`Error::Closed`].
pub struct Resolver<T> {
    st: Rc<RefCell<State<T>>>,
}

impl<T> Promise<T> {
    /// A pending promise and the resolver that settles it.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Promise<T>, Resolver<T>) {
        let st = Rc::new(RefCell::new(State {
            outcome: Outcome::Pending,
            waiters: WaitQueue::default(),
        }));
        (Promise { st: st.clone() }, Resolver { st })
    }

    /// Whether the promise has been resolved (with a value).
    pub fn is_resolved(&self) -> bool {
        matches!(self.st.borrow().outcome, Outcome::Resolved(_))
    }
}

impl<T: Clone> Promise<T> {
    /// Waits for the value and returns a clone of it.
    ///
    /// Fails with [`Error::Closed`] if the resolver was dropped unresolved, with
    /// [`Error::Cancelled`] if the caller is cancelled while waiting, and with
    /// [`Error::NoRuntime`] if it would have to wait outside a threadlib thread.
    pub async fn wait(&self) -> Result<T> {
        let ticket = match self.try_get()? {
            Some(v) => return Ok(v),
            None => self.st.borrow_mut().waiters.push_current(())?,
        };
        let guard = OnAbandon::new(|| {
            self.st.borrow_mut().waiters.remove(ticket);
        });
        loop {
            crate::thread::park().await?;
            // Resolution and abandonment wake every waiter; anything else is spurious.
            if let Some(v) = self.try_get()? {
                guard.disarm();
                return Ok(v);
            }
        }
    }

    /// The value if resolved, `None` while pending, [`Error::Closed`] if the resolver
    /// was dropped unresolved.
    pub fn try_get(&self) -> Result<Option<T>> {
        match &self.st.borrow().outcome {
            Outcome::Pending => Ok(None),
            Outcome::Resolved(v) => Ok(Some(v.clone())),
            Outcome::Abandoned => Err(Error::Closed),
        }
    }
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Promise {
            st: self.st.clone(),
        }
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.st.borrow().outcome {
            Outcome::Pending => "pending",
            Outcome::Resolved(_) => "resolved",
            Outcome::Abandoned => "closed",
        };
        f.debug_struct("Promise").field("state", &state).finish()
    }
}

impl<T> Resolver<T> {
    /// Resolves the promise with `value` and wakes every waiter.
    pub fn resolve(self, value: T) {
        self.settle(Outcome::Resolved(value));
    }

    fn settle(&self, outcome: Outcome<T>) {
        let mut st = self.st.borrow_mut();
        if matches!(st.outcome, Outcome::Pending) {
            st.outcome = outcome;
            st.waiters.wake_all();
        }
    }
}

impl<T> Drop for Resolver<T> {
    fn drop(&mut self) {
        // A no-op after `resolve`.
        self.settle(Outcome::Abandoned);
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}
