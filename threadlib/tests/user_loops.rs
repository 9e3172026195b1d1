//! User event loops: when the scheduler polls them (wake fd, deadline, `poll_soon`,
//! every pass without a wake fd), one-word calls, direct access with `with_loop`, and
//! exact cancellation of calls they hold, under the real and the mock clock.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

mod support;

use std::cell::Cell;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::watchdog;

use iolib::eventfd::EventFd;
use threadlib::syscall::call_word;
use threadlib::{with_loop, Error, EventLoop, LoopCx, LoopId, Request, Runtime, ThreadId};

/// A loop that answers each one-word call with the word plus one: at once if
/// `immediate`, else at its next poll. It records how it was polled.
#[derive(Default)]
struct Echo {
    immediate: bool,
    wake: Option<Arc<EventFd>>,
    deadline: Option<Instant>,
    waiting: Vec<(ThreadId, u64)>,
    polls: usize,
    fd_polls: usize,
    cancels: usize,
}

impl EventLoop for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn submit(&mut self, tid: ThreadId, request: Request, cx: &mut LoopCx<'_>) {
        match request {
            Request::Word(w) if self.immediate => cx.complete(tid, w as i64 + 1),
            Request::Word(w) => self.waiting.push((tid, w)),
            Request::Boxed(_) => cx.fail::<()>(tid, Error::other("echo takes words")),
        }
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.cancels += 1;
        self.waiting.retain(|&(t, _)| t != tid);
        cx.cancelled(tid);
    }

    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        self.polls += 1;
        if cx.fd_ready() {
            self.fd_polls += 1;
            if let Some(w) = &self.wake {
                let _ = w.drain();
            }
        }
        if self.deadline.is_some_and(|d| d > cx.now()) {
            return;
        }
        self.deadline = None;
        for (tid, w) in self.waiting.drain(..) {
            cx.complete(tid, w as i64 + 1);
        }
    }

    fn wake_fd(&self) -> Option<RawFd> {
        self.wake.as_ref().map(|w| w.as_raw_fd())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadline.filter(|_| !self.waiting.is_empty())
    }
}

fn runtime(mock: bool, make: impl Fn() -> Echo + Send + Sync + 'static) -> (Runtime, LoopId) {
    let mut b = Runtime::builder();
    if mock {
        b = b.mock_clock(true);
    }
    let (b, id) = b.event_loop(move |_| Box::new(make()));
    (b.build().unwrap(), id)
}

/// A thread waiting on a loop without a wake fd and without a deadline completes: the
/// scheduler keeps polling such a loop instead of sleeping in epoll for ever.
#[test]
fn a_loop_without_wake_fd_is_polled_while_it_holds_calls() {
    watchdog(|| {
        for mock in [false, true] {
            let (rt, id) = runtime(mock, Echo::default);
            let r = rt.block_on(async move { call_word(id, 41).await }).unwrap();
            assert_eq!(r.unwrap(), 42, "mock clock: {mock}");
        }
    });
}

/// A loop's deadline wakes a sleeping core on the real clock, and is jumped to at once
/// on an auto-advancing mock clock.
#[test]
fn a_loop_deadline_wakes_the_core() {
    watchdog(|| {
        for mock in [false, true] {
            let (rt, id) = runtime(mock, || Echo {
                wake: Some(Arc::new(EventFd::new().unwrap())),
                ..Echo::default()
            });
            let t0 = Instant::now();
            let (r, on_clock) = rt
                .block_on(async move {
                    let start = threadlib::time::now();
                    with_loop(id, |l: &mut Echo, _| {
                        l.deadline = Some(start + Duration::from_millis(200))
                    })
                    .unwrap();
                    let r = call_word(id, 1).await;
                    (r, threadlib::time::now() - start)
                })
                .unwrap();
            assert_eq!(r.unwrap(), 2);
            assert!(on_clock >= Duration::from_millis(200), "{on_clock:?}");
            if mock {
                assert!(
                    t0.elapsed() < Duration::from_millis(150),
                    "mock time took wall time"
                );
            } else {
                assert!(t0.elapsed() >= Duration::from_millis(200));
            }
        }
    });
}

/// A loop with a wake fd is polled when the fd is readable, and after a batch of
/// threads when it asked for it, but not on every pass of the scheduler.
#[test]
fn a_loop_with_wake_fd_is_polled_on_readiness_and_on_request_only() {
    watchdog(|| {
        let waker = Arc::new(EventFd::new().unwrap());
        let w = waker.clone();
        let (rt, id) = runtime(false, move || Echo {
            wake: Some(w.clone()),
            ..Echo::default()
        });
        rt.block_on(async move {
            // Many passes of the scheduler with nothing for the loop.
            for _ in 0..1000 {
                threadlib::yield_now().await.unwrap();
            }
            assert_eq!(with_loop(id, |l: &mut Echo, _| l.polls).unwrap(), 0);

            // A waiter, woken through the wake fd from another OS thread.
            let signal = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                waker.notify().unwrap();
            });
            assert_eq!(call_word(id, 9).await.unwrap(), 10);
            signal.join().unwrap();
            assert_eq!(with_loop(id, |l: &mut Echo, _| l.fd_polls).unwrap(), 1);

            // A request for a poll from a thread: served after this batch.
            let before = with_loop(id, |l: &mut Echo, _| l.polls).unwrap();
            with_loop(id, |_: &mut Echo, cx| cx.poll_soon()).unwrap();
            threadlib::yield_now().await.unwrap();
            let after = with_loop(id, |l: &mut Echo, _| (l.polls, l.fd_polls)).unwrap();
            assert_eq!(after, (before + 1, 1));
        })
        .unwrap();
    });
}

/// A call a loop holds is cancelled exactly: the loop hears of it, the thread resumes
/// with `Cancelled` (or `TimedOut` under `with_timeout`), and the loop holds nothing.
#[test]
fn calls_held_by_a_loop_are_cancelled_exactly() {
    watchdog(|| {
        for mock in [false, true] {
            let (rt, id) = runtime(mock, || Echo {
                wake: Some(Arc::new(EventFd::new().unwrap())),
                ..Echo::default()
            });
            rt.block_on(async move {
                let r = threadlib::with_timeout(Duration::from_millis(30), call_word(id, 5)).await;
                assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
                let (cancels, held) =
                    with_loop(id, |l: &mut Echo, _| (l.cancels, l.waiting.len())).unwrap();
                assert_eq!((cancels, held), (1, 0));
            })
            .unwrap();
        }
    });
}

/// `with_loop` checks the loop's type, and a loop cannot be entered from inside itself.
#[test]
fn with_loop_rejects_wrong_types_and_reentry() {
    watchdog(|| {
        struct Reenter {
            id: Rc<Cell<Option<LoopId>>>,
            result: Rc<Cell<Option<bool>>>,
        }
        impl EventLoop for Reenter {
            fn name(&self) -> &'static str {
                "reenter"
            }
            fn submit(&mut self, tid: ThreadId, _: Request, cx: &mut LoopCx<'_>) {
                let id = self.id.get().unwrap();
                let r = with_loop(id, |_: &mut Reenter, _| ());
                self.result
                    .set(Some(matches!(r, Err(Error::NoEventLoop(_)))));
                cx.complete(tid, 0);
            }
            fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
                cx.cancelled(tid);
            }
            fn poll(&mut self, _: &mut LoopCx<'_>) {}
        }
        /// The loop's own id (known only after registration) and what its re-entry saw.
        type Cells = (Rc<Cell<Option<LoopId>>>, Rc<Cell<Option<bool>>>);
        thread_local! {
            static CELLS: Cells = Default::default();
        }
        let (b, id) = Runtime::builder().event_loop(|_| {
            let (id, result) = CELLS.with(|c| c.clone());
            Box::new(Reenter { id, result })
        });
        let rt = b.build().unwrap();
        rt.block_on(async move {
            CELLS.with(|c| c.0.set(Some(id)));
            let wrong = with_loop(id, |_: &mut Echo, _| ());
            assert!(matches!(wrong, Err(Error::NoEventLoop(_))), "{wrong:?}");
            assert_eq!(call_word(id, 0).await.unwrap(), 0);
            assert_eq!(
                CELLS.with(|c| c.1.get()),
                Some(true),
                "re-entry was allowed"
            );
        })
        .unwrap();
        let outside = with_loop(id, |_: &mut Echo, _| ());
        assert!(matches!(outside, Err(Error::NoRuntime)), "{outside:?}");
    });
}

/// Completes its calls once the time in `at` has come; threads set `at` directly, not
/// through the loop. Its wake fd never fires, so only its deadline gets it polled.
struct Alarm {
    at: Arc<Mutex<Option<Instant>>>,
    waiting: Vec<ThreadId>,
    wake: EventFd,
}

impl EventLoop for Alarm {
    fn name(&self) -> &'static str {
        "alarm"
    }

    fn submit(&mut self, tid: ThreadId, _: Request, _: &mut LoopCx<'_>) {
        self.waiting.push(tid);
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.waiting.retain(|&t| t != tid);
        cx.cancelled(tid);
    }

    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        if self.next_deadline().is_some_and(|at| at <= cx.now()) {
            for tid in self.waiting.drain(..) {
                cx.complete(tid, 0);
            }
        }
    }

    fn wake_fd(&self) -> Option<RawFd> {
        Some(self.wake.as_raw_fd())
    }

    fn next_deadline(&self) -> Option<Instant> {
        *self.at.lock().unwrap()
    }
}

/// A user loop's deadline may move through state it shares with threads, without any
/// call into the loop: the scheduler asks for it again after every batch.
#[test]
fn a_user_loop_deadline_set_from_outside_the_loop_is_seen() {
    watchdog(|| {
        let at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let shared = at.clone();
        let (b, id) = Runtime::builder().event_loop(move |_| {
            Box::new(Alarm {
                at: shared.clone(),
                waiting: Vec::new(),
                wake: EventFd::new().unwrap(),
            })
        });
        let waited = b
            .build()
            .unwrap()
            .block_on(async move {
                let start = threadlib::time::now();
                let waiter = threadlib::spawn(call_word(id, 0));
                // The call is in the loop, which has no deadline yet, and the
                // scheduler has seen that.
                threadlib::sleep(Duration::from_millis(5)).await.unwrap();
                *at.lock().unwrap() = Some(start + Duration::from_millis(20));
                waiter.await.unwrap().unwrap();
                threadlib::time::now() - start
            })
            .unwrap();
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
    });
}

/// A trace names a call to a user loop by the loop's name.
#[test]
fn a_trace_names_user_loop_calls_by_their_loop() {
    watchdog(|| {
        let path =
            std::env::temp_dir().join(format!("threadlib-loop-trace-{}.json", std::process::id()));
        let (b, id) = Runtime::builder()
            .trace_file(&path)
            .event_loop(|_| Box::new(Echo::default()));
        let r = b
            .build()
            .unwrap()
            .block_on(async move { call_word(id, 1).await })
            .unwrap();
        assert_eq!(r.unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let trace: serde_json::Value = serde_json::from_str(&text).unwrap();
        let suspends: Vec<&str> = trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cat"] == "suspend")
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(suspends.contains(&"echo"), "{suspends:?}");
    });
}
