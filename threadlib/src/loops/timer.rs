//! The timer loop: a binary heap of deadlines for sleeping threads and for timeouts
//! (cancellation contexts that expire). Cancelled entries are left in the heap and
//! skipped when they surface; the heap is compacted when they outnumber live ones.
//!
//! It is an [`EventLoop`] like any other: a sleep is a call whose request is its
//! deadline (ns on the core clock) and whose key is that deadline, so an entry left by
//! a cancelled sleep never wakes a later one; the heap's earliest entry is the loop's
//! [`next_deadline`](EventLoop::next_deadline); an expired timeout interrupts its owner
//! through [`LoopCx::interrupt`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::rc::Rc;

use std::time::{Duration, Instant};

use crate::cancel::CancelCtx;
use crate::core::{Completion, ThreadId};
use crate::loops::{EventLoop, LoopCx, Request};

const CTX_BIT: u64 = 1 << 63;

/// A timer that fired.
pub(crate) enum Fired {
    Thread(ThreadId, u64),
    Ctx(Rc<CancelCtx>, ThreadId),
}

pub(crate) struct TimerLoop {
    /// The core clock's base: deadlines are ns after it.
    base: Instant,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    ctx: BTreeMap<u64, (Rc<CancelCtx>, ThreadId)>,
    next_ctx: u64,
    stale: usize,
}

impl TimerLoop {
    pub(crate) fn new(base: Instant) -> Self {
        TimerLoop {
            base,
            heap: BinaryHeap::new(),
            ctx: BTreeMap::new(),
            next_ctx: 0,
            stale: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.len() <= self.stale
    }

    pub(crate) fn add_thread(&mut self, deadline: u64, tid: ThreadId) {
        self.heap.push(Reverse((deadline, tid.pack())));
    }

    pub(crate) fn add_ctx(&mut self, deadline: u64, ctx: Rc<CancelCtx>, owner: ThreadId) -> u64 {
        let key = CTX_BIT | self.next_ctx;
        self.next_ctx += 1;
        self.ctx.insert(key, (ctx, owner));
        self.heap.push(Reverse((deadline, key)));
        key
    }

    pub(crate) fn remove_ctx(&mut self, key: u64) {
        if self.ctx.remove(&key).is_some() {
            self.note_stale();
        }
    }

    /// An entry was abandoned (its thread was cancelled or its timeout removed).
    pub(crate) fn note_stale(&mut self) {
        self.stale += 1;
    }

    /// Timers still armed (sleeping threads and timeouts).
    pub(crate) fn live(&self) -> usize {
        self.heap.len().saturating_sub(self.stale)
    }

    pub(crate) fn next_deadline_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Pops the next entry due at `now` that is still live (`live(tid, deadline)` tells
    /// for thread entries); `None` when nothing more is due.
    pub(crate) fn pop_due(
        &mut self,
        now: u64,
        live: impl Fn(ThreadId, u64) -> bool,
    ) -> Option<Fired> {
        while let Some(&Reverse((d, key))) = self.heap.peek() {
            if d > now {
                break;
            }
            self.heap.pop();
            if key & CTX_BIT != 0 {
                match self.ctx.remove(&key) {
                    Some((ctx, owner)) => return Some(Fired::Ctx(ctx, owner)),
                    None => self.stale = self.stale.saturating_sub(1),
                }
            } else {
                let tid = ThreadId::unpack(key);
                if live(tid, d) {
                    return Some(Fired::Thread(tid, d));
                }
                self.stale = self.stale.saturating_sub(1);
            }
        }
        if self.stale > 1024 && self.stale * 2 > self.heap.len() {
            self.compact(&live);
        }
        None
    }

    fn compact(&mut self, live: &impl Fn(ThreadId, u64) -> bool) {
        let ctx = &self.ctx;
        let entries: Vec<_> = std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .filter(|Reverse((d, key))| {
                if key & CTX_BIT != 0 {
                    ctx.contains_key(key)
                } else {
                    live(ThreadId::unpack(*key), *d)
                }
            })
            .collect();
        self.heap = BinaryHeap::from(entries);
        self.stale = 0;
    }
}

impl EventLoop for TimerLoop {
    fn name(&self) -> &'static str {
        "timer"
    }

    /// `Request::Word(deadline)`: sleep until the core clock reaches `deadline` (ns).
    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        let Request::Word(deadline) = request else {
            return cx.fail_keyed(tid, None, crate::Error::other("timer: not a deadline"));
        };
        if deadline <= cx.now_ns() {
            return cx.finish(tid, None, Completion::Value(0));
        }
        self.add_thread(deadline, tid);
        cx.set_key(deadline);
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        // The entry goes stale: `poll` checks the thread still waits on it.
        self.note_stale();
        cx.cancelled(tid);
    }

    /// Wakes the sleepers and expires the timeouts that are due.
    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        let now = cx.now_ns();
        loop {
            let fired = self.pop_due(now, |tid, d| cx.is_waiting(tid, d));
            match fired {
                None => break,
                Some(Fired::Thread(tid, d)) => cx.finish(tid, Some(d), Completion::Value(0)),
                Some(Fired::Ctx(ctx, owner)) => {
                    ctx.timed_out.set(true);
                    ctx.cancel();
                    cx.interrupt(owner);
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_deadline_ns()
            .map(|d| self.base + Duration::from_nanos(d))
    }

    fn wakes_at_deadlines(&self) -> bool {
        true
    }

    fn polled_every_pass(&self) -> bool {
        false
    }

    /// Armed timeouts keep the core busy (sleepers are counted as calls).
    fn holds_work(&self) -> bool {
        !self.is_empty()
    }
}
