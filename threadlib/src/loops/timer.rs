//! The timer loop: a binary heap of deadlines for sleeping threads and for timeouts
//! (cancellation contexts that expire). Cancelled entries are left in the heap and
//! skipped when they surface; the heap is compacted when they outnumber live ones.
//! Armed timeouts sit in a slab: arming and disarming one, as every operation that
//! suspends under a timeout does, costs a heap push and two slot writes. A reusable
//! deadline ([`crate::deadline::Deadline`]) arms its timeout once and then moves it by
//! writing its context's expiry: an entry that comes due before that expiry moves
//! itself there, and one that comes due while no operation runs lapses.
//!
//! It is an [`EventLoop`] like any other: a sleep is a call whose request is its
//! deadline (ns on the core clock) and whose key is that deadline, so an entry left by
//! a cancelled sleep never wakes a later one; the heap's earliest entry is the loop's
//! [`next_deadline`](EventLoop::next_deadline); an expired timeout interrupts its owner
//! through [`LoopCx::interrupt`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

use std::time::{Duration, Instant};

use crate::cancel::{CancelCtx, IDLE};
use crate::core::{Completion, ThreadId};
use crate::loops::{EventLoop, LoopCx, Request};

/// Set in the heap key of a timeout; a sleeping thread's key is its packed id.
const CTX_BIT: u64 = 1 << 63;
/// A timeout's heap key: `CTX_BIT`, the slot's generation (31 bits), the slot index.
const GEN_MASK: u32 = (1 << 31) - 1;

/// A slot of the timeout slab. The generation changes each time the slot is freed, and
/// a heap entry fires the slot's timeout only at that timeout's own deadline, so an
/// entry left by a disarmed timeout never fires a later one early or late (not even
/// once the 31-bit generation wraps).
#[derive(Default)]
struct CtxSlot {
    generation: u32,
    deadline: u64,
    armed: Option<(Rc<CancelCtx>, ThreadId)>,
}

fn ctx_key(index: u32, generation: u32) -> u64 {
    CTX_BIT | (u64::from(generation) << 32) | u64::from(index)
}

/// The slot index and generation of a timeout's heap key.
fn ctx_slot(key: u64) -> (usize, u32) {
    ((key as u32) as usize, ((key >> 32) as u32) & GEN_MASK)
}

/// A timer that fired.
pub(crate) enum Fired {
    Thread(ThreadId, u64),
    Ctx(Rc<CancelCtx>, ThreadId),
}

pub(crate) struct TimerLoop {
    /// The core clock's base: deadlines are ns after it.
    base: Instant,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    /// Timeouts by slot, armed or free.
    ctx: Vec<CtxSlot>,
    /// Free slots of `ctx`.
    free: Vec<u32>,
    stale: usize,
}

impl TimerLoop {
    pub(crate) fn new(base: Instant) -> Self {
        TimerLoop {
            base,
            heap: BinaryHeap::new(),
            ctx: Vec::new(),
            free: Vec::new(),
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
        let index = self.free.pop().unwrap_or_else(|| {
            self.ctx.push(CtxSlot::default());
            (self.ctx.len() - 1) as u32
        });
        let slot = &mut self.ctx[index as usize];
        ctx.timer_at.set(deadline);
        slot.armed = Some((ctx, owner));
        slot.deadline = deadline;
        let key = ctx_key(index, slot.generation);
        self.heap.push(Reverse((deadline, key)));
        key
    }

    pub(crate) fn remove_ctx(&mut self, key: u64) {
        if self.take_ctx(key, None).is_some() {
            self.note_stale();
        }
    }

    /// Disarms the timeout `key` names, if it is still armed (and due at `deadline`,
    /// if given), and frees its slot.
    fn take_ctx(&mut self, key: u64, deadline: Option<u64>) -> Option<(Rc<CancelCtx>, ThreadId)> {
        let (index, generation) = ctx_slot(key);
        let slot = self.ctx.get_mut(index)?;
        if slot.generation != generation || deadline.is_some_and(|d| d != slot.deadline) {
            return None;
        }
        let armed = slot.armed.take()?;
        armed.0.timer_at.set(IDLE);
        slot.generation = slot.generation.wrapping_add(1) & GEN_MASK;
        self.free.push(index as u32);
        Some(armed)
    }

    /// The context of the timeout whose heap entry is (`deadline`, `key`), if that
    /// entry is still its timeout's and armed.
    fn armed_ctx(&self, key: u64, deadline: u64) -> Option<&Rc<CancelCtx>> {
        let (index, generation) = ctx_slot(key);
        let s = self.ctx.get(index)?;
        if s.generation != generation || s.deadline != deadline {
            return None;
        }
        s.armed.as_ref().map(|(ctx, _)| ctx)
    }

    /// The timeout `key` names, due at `deadline`, came due: fires it, or, when its
    /// context says it expires later ([`CancelCtx::expires`]), moves its entry there,
    /// or lets it lapse while nothing runs under it.
    fn ctx_due(&mut self, key: u64, deadline: u64) -> Option<Fired> {
        let Some(expires) = self.armed_ctx(key, deadline).map(|c| c.expires.get()) else {
            self.stale = self.stale.saturating_sub(1);
            return None;
        };
        if expires == IDLE {
            self.take_ctx(key, Some(deadline));
            return None;
        }
        if expires > deadline {
            let (index, _) = ctx_slot(key);
            let slot = &mut self.ctx[index];
            slot.deadline = expires;
            if let Some((ctx, _)) = &slot.armed {
                ctx.timer_at.set(expires);
            }
            self.heap.push(Reverse((expires, key)));
            return None;
        }
        let (ctx, owner) = self.take_ctx(key, Some(deadline))?;
        Some(Fired::Ctx(ctx, owner))
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
                if let Some(fired) = self.ctx_due(key, d) {
                    return Some(fired);
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
        let entries: Vec<_> = std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .filter(|Reverse((d, key))| {
                if key & CTX_BIT != 0 {
                    self.armed_ctx(*key, *d).is_some()
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

#[cfg(test)]
// Any base will do: the tests name deadlines in ns after it and no time passes.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn fired_ctx(t: &mut TimerLoop, now: u64) -> Vec<Rc<CancelCtx>> {
        let mut out = Vec::new();
        while let Some(f) = t.pop_due(now, |_, _| false) {
            match f {
                Fired::Ctx(ctx, _) => out.push(ctx),
                Fired::Thread(..) => panic!("no thread sleeps here"),
            }
        }
        out
    }

    #[test]
    fn a_disarmed_timeout_never_fires_the_next_one_in_its_slot() {
        let mut t = TimerLoop::new(Instant::now());
        let owner = ThreadId::unpack(0);
        let (a, b) = (CancelCtx::root(), CancelCtx::root());
        let ka = t.add_ctx(100, a.clone(), owner);
        t.remove_ctx(ka);
        // `b` reuses `a`'s slot, with a later deadline.
        let kb = t.add_ctx(300, b.clone(), owner);
        assert_eq!(ka as u32, kb as u32, "the slot is reused");
        assert_ne!(ka, kb);
        assert_eq!(t.live(), 1);
        assert!(fired_ctx(&mut t, 200).is_empty(), "a's entry fired b early");
        // Disarming with a's stale key leaves b armed.
        t.remove_ctx(ka);
        let fired = fired_ctx(&mut t, 300);
        assert_eq!(fired.len(), 1);
        assert!(Rc::ptr_eq(&fired[0], &b));
        assert!(t.is_empty());
    }

    #[test]
    fn compaction_keeps_armed_timeouts_and_drops_disarmed_ones() {
        let mut t = TimerLoop::new(Instant::now());
        let owner = ThreadId::unpack(0);
        let keep = CancelCtx::root();
        let kept = t.add_ctx(10_000, keep.clone(), owner);
        for i in 0..3000 {
            let k = t.add_ctx(20_000 + i, CancelCtx::root(), owner);
            t.remove_ctx(k);
        }
        // Nothing is due yet, but the pass compacts the heap of its stale entries.
        assert!(fired_ctx(&mut t, 0).is_empty());
        assert_eq!(t.heap.len(), 1);
        assert_eq!(t.live(), 1);
        let fired = fired_ctx(&mut t, 10_000);
        assert!(fired.len() == 1 && Rc::ptr_eq(&fired[0], &keep));
        t.remove_ctx(kept);
        assert!(t.is_empty());
    }
}
