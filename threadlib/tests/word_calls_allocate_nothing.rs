//! A one-word call to a user loop, and the loop's direct access with `with_loop`, make
//! no heap allocation once the core is warm: the hot path of a user-space network
//! backend is built from them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use threadlib::syscall::call_word;
use threadlib::{with_loop, EventLoop, LoopCx, Request, Runtime, ThreadId};

/// Counts allocations made by the current OS thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a
// const-initialised thread-local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|a| a.get())
}

/// Completes every word call at its next poll (the loop has no wake fd, so that is
/// the scheduler's next pass), counting with `with_loop` calls.
#[derive(Default)]
struct Later {
    waiting: Vec<(ThreadId, u64)>,
    touched: u64,
}

impl EventLoop for Later {
    fn name(&self) -> &'static str {
        "later"
    }
    fn submit(&mut self, tid: ThreadId, request: Request, _: &mut LoopCx<'_>) {
        if let Request::Word(w) = request {
            self.waiting.push((tid, w));
        }
    }
    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.waiting.retain(|&(t, _)| t != tid);
        cx.cancelled(tid);
    }
    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        for (tid, w) in self.waiting.drain(..) {
            cx.complete(tid, w as i64);
        }
    }
}

#[test]
fn word_calls_and_with_loop_allocate_nothing() {
    let (b, id) = Runtime::builder()
        .uring(None)
        .blocking_threads(0)
        .event_loop(|_| Box::new(Later::default()));
    let rt = b.build().unwrap();
    let per_call = rt
        .block_on(async move {
            let round = || async move {
                for i in 0..1000u64 {
                    with_loop(id, |l: &mut Later, cx| {
                        l.touched += 1;
                        cx.poll_soon();
                    })
                    .unwrap();
                    assert_eq!(call_word(id, i).await.unwrap(), i as i64);
                }
            };
            round().await; // warm up: queues and buffers reach their size
            let before = allocations();
            round().await;
            allocations() - before
        })
        .unwrap();
    assert_eq!(per_call, 0, "{per_call} allocations in 1000 calls");
}
