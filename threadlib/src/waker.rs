//! Wakers for foreign futures.
//!
//! Each poll of a thread gets a *borrowed* waker that costs nothing to make: it points
//! at the core and wakes the running thread. Only if a foreign future clones it (to
//! wake the thread later, maybe from another OS thread) is an owned waker allocated:
//! an `Arc` holding the core's inbox and the thread id.

use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::core::{Core, ThreadId};
use crate::inbox::{Inbox, InboxMsg};

struct ThreadWaker {
    inbox: Arc<Inbox>,
    tid: ThreadId,
}

impl ThreadWaker {
    fn wake(&self) {
        let woke_here = Core::with_current(|core| {
            let here = Arc::ptr_eq(&core.inbox, &self.inbox);
            if here {
                core.wake(self.tid);
            }
            here
        });
        if woke_here != Some(true) {
            self.inbox.send(InboxMsg::Wake(self.tid));
        }
    }
}

static BORROWED: RawWakerVTable = RawWakerVTable::new(clone_borrowed, noop, wake_borrowed, noop);
static OWNED: RawWakerVTable =
    RawWakerVTable::new(clone_owned, wake_owned, wake_by_ref_owned, drop_owned);

fn noop(_: *const ()) {}

fn clone_borrowed(data: *const ()) -> RawWaker {
    // SAFETY: a borrowed waker's data is the `Core` that is polling the thread; the
    // borrowed waker only exists during that poll, so the core is alive.
    let core = unsafe { &*(data as *const Core) };
    let tid = core.current_thread().unwrap_or(ThreadId {
        index: u32::MAX,
        gen: 0,
    });
    let w = Arc::new(ThreadWaker {
        inbox: core.inbox.clone(),
        tid,
    });
    RawWaker::new(Arc::into_raw(w) as *const (), &OWNED)
}

fn wake_borrowed(data: *const ()) {
    // SAFETY: as in `clone_borrowed`.
    let core = unsafe { &*(data as *const Core) };
    if let Some(tid) = core.current_thread() {
        core.wake(tid);
    }
}

fn clone_owned(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `Arc::into_raw` of a live ThreadWaker; we add a count.
    unsafe { Arc::increment_strong_count(data as *const ThreadWaker) };
    RawWaker::new(data, &OWNED)
}

fn wake_owned(data: *const ()) {
    // SAFETY: consumes the count this waker owned.
    let w = unsafe { Arc::from_raw(data as *const ThreadWaker) };
    w.wake();
}

fn wake_by_ref_owned(data: *const ()) {
    // SAFETY: the waker owns a count, so the pointee is alive during this call.
    let w = unsafe { &*(data as *const ThreadWaker) };
    w.wake();
}

fn drop_owned(data: *const ()) {
    // SAFETY: releases the count this waker owned.
    drop(unsafe { Arc::from_raw(data as *const ThreadWaker) });
}

/// The borrowed waker for a poll on `core`.
pub(crate) fn borrowed(core: &Core) -> Waker {
    // SAFETY: the vtable functions uphold the RawWaker contract: clone produces an
    // independent owned waker; wake/drop of the borrowed waker free nothing; the waker
    // is only used while `core` polls a thread (it is created and dropped in run_thread).
    unsafe { Waker::from_raw(RawWaker::new(core as *const Core as *const (), &BORROWED)) }
}
