//! The task table: every thread's slot (state, pending completion, cancellation
//! context, scope links), the free list, and the run queue of ready threads.
//!
//! [`Tasks`] is plain data owned by its core behind one `RefCell`: its methods never
//! call back into the scheduler, so a borrow of it never overlaps another, and whatever
//! a freed slot owned is handed back to the caller to drop after the borrow ends.

use std::any::Any;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;

use crate::cancel::CancelCtx;
use crate::scope::ScopeInner;
use crate::thread::Runnable;

/// The end of a scope's intrusive member list.
pub(crate) const NONE: u32 = u32::MAX;

/// Identifies a thread on its core. Ids are reused only with a new generation, so a
/// stale id never reaches a newer thread.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl ThreadId {
    /// Packs into 63 bits (used in timer entries and join handles).
    pub(crate) fn pack(self) -> u64 {
        ((self.gen as u64 & 0x7fff_ffff) << 32) | self.index as u64
    }
    pub(crate) fn unpack(v: u64) -> ThreadId {
        ThreadId {
            index: v as u32,
            gen: ((v >> 32) & 0x7fff_ffff) as u32,
        }
    }
    /// The slot number (stable while the thread lives; used as the trace `tid`).
    pub fn index(self) -> u32 {
        self.index
    }
}

impl std::fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}.{}", self.index, self.gen)
    }
}

/// The result an event loop delivers to a thread blocked in a call.
#[derive(Default)]
pub enum Completion {
    /// Nothing yet.
    #[default]
    Empty,
    /// A plain value; negative values are `-errno`.
    Value(i64),
    /// The call was cancelled.
    Cancelled,
    /// An arbitrary value (io_uring completions, blocking results, custom replies),
    /// boxed twice so that a completion stays two words.
    Boxed(Box<Box<dyn Any>>),
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Completion::Empty => f.write_str("Empty"),
            Completion::Value(v) => write!(f, "Value({v})"),
            Completion::Cancelled => f.write_str("Cancelled"),
            Completion::Boxed(_) => f.write_str("Boxed(..)"),
        }
    }
}

/// What a blocked thread waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `unpark` (the scheduler itself).
    Park,
    /// A foreign future's waker.
    Waker,
    /// A call to the event loop in slot `idx`, which named it `key`.
    Loop { idx: u32, key: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Free,
    Ready,
    Running,
    Blocked(Wait),
}

pub(crate) struct Task {
    gen: u32,
    state: State,
    /// Set when a waker fired while the thread ran or was queued.
    notified: bool,
    runnable: Option<Pin<Rc<dyn Runnable>>>,
    completion: Completion,
    ctx: Option<Rc<CancelCtx>>,
    scope: Option<Rc<ScopeInner>>,
    prev: u32,
    next: u32,
}

/// What a thread's slot owned when it was freed, to be dropped by the caller once the
/// task table is no longer borrowed (destructors may call into the scheduler).
pub(crate) struct Released {
    pub(crate) runnable: Option<Pin<Rc<dyn Runnable>>>,
    pub(crate) scope: Option<Rc<ScopeInner>>,
    /// The next member of the thread's scope list.
    pub(crate) next: u32,
}

/// log2 of the number of task slots per chunk.
const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// The slots: fixed-size chunks that never move, so growing the table never copies (or
/// re-faults) the slots already in use.
#[derive(Default)]
struct Slots {
    chunks: Vec<Vec<Task>>,
    len: usize,
}

impl Slots {
    fn push(&mut self, t: Task) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk exists").push(t);
        self.len += 1;
    }

    fn get(&self, i: usize) -> Option<&Task> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Task> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Task;
    fn index(&self, i: usize) -> &Task {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl std::ops::IndexMut<usize> for Slots {
    fn index_mut(&mut self, i: usize) -> &mut Task {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

/// The threads of one core: their slots, the free slots, and the run queue.
#[derive(Default)]
pub(crate) struct Tasks {
    slots: Slots,
    free: Vec<u32>,
    /// Threads ready to run, in the order they will run.
    ready: VecDeque<ThreadId>,
    live: usize,
}

impl Tasks {
    /// Threads alive (spawned and not yet exited).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The slot of `tid` if its generation matches (it may be free).
    fn slot_mut(&mut self, tid: ThreadId) -> Option<&mut Task> {
        self.slots
            .get_mut(tid.index as usize)
            .filter(|t| t.gen == tid.gen)
    }

    // ----- life cycle ----------------------------------------------------------------

    /// Gives `runnable` a slot in `scope` (linked at the head of its member list),
    /// ready to run; queued at the back of the run queue if `queue`.
    #[inline]
    pub(crate) fn insert(
        &mut self,
        runnable: Pin<Rc<dyn Runnable>>,
        scope: &Rc<ScopeInner>,
        queue: bool,
    ) -> ThreadId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Task {
                    gen: 0,
                    state: State::Free,
                    notified: false,
                    runnable: None,
                    completion: Completion::Empty,
                    ctx: None,
                    scope: None,
                    prev: NONE,
                    next: NONE,
                });
                (self.slots.len - 1) as u32
            }
        };
        let head = scope.head.get();
        let t = &mut self.slots[index as usize];
        t.state = State::Ready;
        t.notified = false;
        t.runnable = Some(runnable);
        t.ctx = Some(scope.ctx.clone());
        t.scope = Some(scope.clone());
        t.prev = NONE;
        t.next = head;
        let tid = ThreadId { index, gen: t.gen };
        if head != NONE {
            self.slots[head as usize].prev = index;
        }
        scope.head.set(index);
        scope.live.set(scope.live.get() + 1);
        self.live += 1;
        if queue {
            self.ready.push_back(tid);
        }
        tid
    }

    /// Frees the slot of the thread `tid`, which has finished: unlinks it from its
    /// scope list, bumps the generation and returns what the slot owned.
    #[inline]
    pub(crate) fn release(&mut self, tid: ThreadId) -> Released {
        let t = &mut self.slots[tid.index as usize];
        t.state = State::Free;
        t.gen = t.gen.wrapping_add(1) & 0x7fff_ffff;
        t.completion = Completion::Empty;
        t.ctx = None;
        let out = Released {
            runnable: t.runnable.take(),
            scope: t.scope.take(),
            next: t.next,
        };
        let prev = t.prev;
        if prev != NONE {
            self.slots[prev as usize].next = out.next;
        }
        if out.next != NONE {
            self.slots[out.next as usize].prev = prev;
        }
        self.free.push(tid.index);
        self.live -= 1;
        out
    }

    /// Number of slots ever made (free or not), for a walk over all of them.
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len
    }

    /// The thread in slot `i` and what it is blocked in, unless the slot is free.
    pub(crate) fn occupant(&self, i: usize) -> Option<(ThreadId, Option<Wait>)> {
        let t = &self.slots[i];
        let tid = ThreadId {
            index: i as u32,
            gen: t.gen,
        };
        match t.state {
            State::Free => None,
            State::Blocked(w) => Some((tid, Some(w))),
            _ => Some((tid, None)),
        }
    }

    /// Frees slot `i` at shutdown without unlinking it or recycling it (the core is
    /// going away); returns the thread's future for the caller to drop.
    pub(crate) fn destroy(&mut self, i: usize) -> Option<Pin<Rc<dyn Runnable>>> {
        let t = &mut self.slots[i];
        t.state = State::Free;
        t.gen = t.gen.wrapping_add(1) & 0x7fff_ffff;
        t.scope = None;
        t.ctx = None;
        t.completion = Completion::Empty;
        t.runnable.take()
    }

    /// Releases the slots without running their destructors if no thread is alive.
    pub(crate) fn forget_if_empty(&mut self) {
        if self.live != 0 {
            return;
        }
        // Every slot is free and owns nothing (`release` clears them), so skipping
        // their destructors leaks nothing and saves visiting each one.
        for c in &mut self.slots.chunks {
            // SAFETY: shrinking the length to 0 only skips destructors, and none of the
            // free slots owns anything that needs one.
            unsafe { c.set_len(0) };
        }
        self.slots.len = 0;
    }

    // ----- states --------------------------------------------------------------------

    /// Sets the state of the thread in `tid`'s slot.
    #[inline]
    pub(crate) fn set_state(&mut self, tid: ThreadId, s: State) {
        self.slots[tid.index as usize].state = s;
    }

    /// Makes `tid` ready with `c` as its call's result and queues it at the back.
    #[inline]
    pub(crate) fn set_ready(&mut self, tid: ThreadId, c: Completion) {
        let t = &mut self.slots[tid.index as usize];
        t.state = State::Ready;
        t.completion = c;
        self.ready.push_back(tid);
    }

    /// Delivers `c` to `tid` if it is blocked in `expect` (or any call if `None`), and
    /// queues it. Returns whether it was delivered.
    #[inline]
    pub(crate) fn complete(&mut self, tid: ThreadId, expect: Option<Wait>, c: Completion) -> bool {
        let Some(t) = self.slot_mut(tid) else {
            return false;
        };
        match (t.state, expect) {
            (State::Blocked(w), Some(e)) if w == e => {}
            (State::Blocked(_), None) => {}
            _ => return false,
        }
        t.state = State::Ready;
        t.completion = c;
        self.ready.push_back(tid);
        true
    }

    /// Delivers `c` to `tid` if it is blocked in a call to loop `idx` keyed `key` (any
    /// key if `None`), and queues it. Returns whether it was delivered.
    #[inline]
    pub(crate) fn complete_loop(
        &mut self,
        tid: ThreadId,
        idx: u32,
        key: Option<u64>,
        c: Completion,
    ) -> bool {
        let Some(t) = self.slot_mut(tid) else {
            return false;
        };
        match t.state {
            State::Blocked(Wait::Loop { idx: i, key: k })
                if i == idx && key.is_none_or(|key| key == k) => {}
            _ => return false,
        }
        t.state = State::Ready;
        t.completion = c;
        self.ready.push_back(tid);
        true
    }

    /// A waker fired for `tid`: queue it if it waits on a waker, or note the wake-up if
    /// it is running or queued.
    pub(crate) fn wake(&mut self, tid: ThreadId) {
        let Some(t) = self.slot_mut(tid) else {
            return;
        };
        match t.state {
            State::Blocked(Wait::Waker) => {
                t.state = State::Ready;
                self.ready.push_back(tid);
            }
            State::Running | State::Ready => t.notified = true,
            _ => {}
        }
    }

    /// Marks the ready thread `tid` running and returns its future; `None` if `tid` is
    /// stale or not ready (an entry left in the run queue by a thread since cancelled
    /// and re-queued, or freed).
    pub(crate) fn start(&mut self, tid: ThreadId) -> Option<Pin<Rc<dyn Runnable>>> {
        let t = self.slot_mut(tid)?;
        if t.state != State::Ready {
            return None;
        }
        t.state = State::Running;
        t.notified = false;
        t.runnable.clone()
    }

    /// The running thread `tid` returned `Pending` without a system call: it waits on
    /// a foreign future's waker. Requeued at once if the waker already fired; returns
    /// whether it blocked.
    pub(crate) fn block_on_waker(&mut self, tid: ThreadId) -> bool {
        let t = &mut self.slots[tid.index as usize];
        if t.notified {
            t.notified = false;
            t.state = State::Ready;
            self.ready.push_back(tid);
            false
        } else {
            t.state = State::Blocked(Wait::Waker);
            true
        }
    }

    /// Whether `tid` is still blocked in `wait` (timer entries use it to skip stale
    /// deadlines).
    #[inline]
    pub(crate) fn is_blocked_in(&self, tid: ThreadId, wait: Wait) -> bool {
        self.slots
            .get(tid.index as usize)
            .is_some_and(|t| t.gen == tid.gen && t.state == State::Blocked(wait))
    }

    // ----- completions ---------------------------------------------------------------

    /// Takes the result delivered to the thread in `tid`'s slot.
    pub(crate) fn take_completion(&mut self, tid: ThreadId) -> Completion {
        std::mem::take(&mut self.slots[tid.index as usize].completion)
    }

    /// Drops a result the running thread `tid` will never read.
    pub(crate) fn discard_completion(&mut self, tid: ThreadId) {
        if let Some(t) = self.slot_mut(tid) {
            if t.state == State::Running {
                t.completion = Completion::Empty;
            }
        }
    }

    // ----- cancellation contexts and scopes ------------------------------------------

    /// The innermost cancellation context of the thread in `tid`'s slot.
    pub(crate) fn ctx(&self, tid: ThreadId) -> Option<Rc<CancelCtx>> {
        self.slots.get(tid.index as usize)?.ctx.clone()
    }

    /// Replaces the innermost cancellation context of `tid`'s slot; returns the old one.
    pub(crate) fn swap_ctx(&mut self, tid: ThreadId, ctx: Rc<CancelCtx>) -> Option<Rc<CancelCtx>> {
        self.slots.get_mut(tid.index as usize)?.ctx.replace(ctx)
    }

    /// Whether the thread in `tid`'s slot runs in a cancelled context.
    pub(crate) fn is_cancelled(&self, tid: ThreadId) -> bool {
        self.slots[tid.index as usize]
            .ctx
            .as_ref()
            .is_some_and(|c| c.is_cancelled())
    }

    /// What `tid` is blocked in, if it is and its context is cancelled.
    pub(crate) fn cancelled_wait(&self, tid: ThreadId) -> Option<Wait> {
        let t = self.slots.get(tid.index as usize)?;
        if t.gen != tid.gen {
            return None;
        }
        let State::Blocked(w) = t.state else {
            return None;
        };
        t.ctx
            .as_ref()
            .is_some_and(|c| c.is_cancelled())
            .then_some(w)
    }

    /// The scope of the thread in `tid`'s slot.
    pub(crate) fn scope(&self, tid: ThreadId) -> Option<Rc<ScopeInner>> {
        self.slots.get(tid.index as usize)?.scope.clone()
    }

    /// The thread in slot `i` of a scope's member list, and the next member.
    pub(crate) fn member(&self, i: u32) -> (ThreadId, u32) {
        let t = &self.slots[i as usize];
        (
            ThreadId {
                index: i,
                gen: t.gen,
            },
            t.next,
        )
    }

    // ----- run queue -----------------------------------------------------------------

    /// Number of queued threads.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// The next thread to run.
    pub(crate) fn pop_ready(&mut self) -> Option<ThreadId> {
        self.ready.pop_front()
    }

    /// Queues `tid` to run next (a withdrawn `Fork` puts its child back in front).
    pub(crate) fn push_front(&mut self, tid: ThreadId) {
        self.ready.push_front(tid);
    }

    /// `Fork`: the parent (just queued at the back) goes behind its child.
    pub(crate) fn queue_child_first(&mut self, child: ThreadId) {
        let parent = self.ready.pop_back();
        self.ready.push_back(child);
        if let Some(p) = parent {
            self.ready.push_back(p);
        }
    }

    /// Moves the first `n` queued threads to `batch`.
    pub(crate) fn drain_ready(&mut self, n: usize, batch: &mut Vec<ThreadId>) {
        batch.extend(self.ready.drain(..n));
    }
}

#[cfg(test)]
pub(crate) fn task_size() -> usize {
    std::mem::size_of::<Task>()
}
