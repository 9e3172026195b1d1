//! Scheduler behaviour that shows only in corner cases: a user loop without a wake fd
//! that completes calls later, cleanups that still have to wait when the runtime shuts
//! down, scope error precedence, and one trace track per thread. Every test runs under
//! the watchdog, so a scheduler that hangs fails the test in seconds.

// Tests run on the real clock (and on the mock one where they say so); no simulation
// reaches them.
#![allow(clippy::disallowed_methods)]

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::watchdog;
use threadlib::syscall::call_word;
use threadlib::{protect, with_loop, Clock, Error, EventLoop, LoopCx, Request, Runtime, ThreadId};

// ----- a user loop without a wake fd ----------------------------------------------------

/// A loop without a wake fd whose calls complete once `ready` is set, by another OS
/// thread: nothing the scheduler could sleep on tells it when, so it must keep polling.
struct Flag {
    ready: Arc<AtomicBool>,
    waiting: Vec<ThreadId>,
    /// Polls so far (shared, so another OS thread can wait for the first one).
    polls: Arc<AtomicUsize>,
}

impl EventLoop for Flag {
    fn name(&self) -> &'static str {
        "flag"
    }

    fn submit(&mut self, tid: ThreadId, _: Request, _: &mut LoopCx<'_>) {
        self.waiting.push(tid);
    }

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.waiting.retain(|&t| t != tid);
        cx.cancelled(tid);
    }

    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        self.polls.fetch_add(1, Ordering::AcqRel);
        if self.ready.load(Ordering::Acquire) {
            for tid in self.waiting.drain(..) {
                cx.complete(tid, 7);
            }
        }
    }
}

/// A thread waiting on a loop without a wake fd completes when the loop's condition
/// comes true long after the call, with no timer pending: the idle scheduler keeps
/// polling the loop instead of sleeping in epoll, on the real clock and on the mock
/// clock (jumping or not).
#[test]
fn a_loop_without_wake_fd_completes_a_call_that_becomes_ready_later() {
    for clock in ["real", "mock, auto-advance", "mock, manual"] {
        let polls = watchdog(move || {
            let ready = Arc::new(AtomicBool::new(false));
            let polls = Arc::new(AtomicUsize::new(0));
            let (r2, p2) = (ready.clone(), polls.clone());
            let mut b = Runtime::builder();
            match clock {
                "real" => {}
                "mock, auto-advance" => b = b.mock_clock(true),
                _ => b = b.mock_clock(false),
            }
            let (b, id) = b.event_loop(move |_| {
                Box::new(Flag {
                    ready: r2.clone(),
                    waiting: Vec::new(),
                    polls: p2.clone(),
                })
            });
            // The call is made, and the loop has seen it not ready, before the flag is
            // set: only polls while the core idles can complete it.
            let p3 = polls.clone();
            let setter = std::thread::spawn(move || {
                while p3.load(Ordering::Acquire) == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_millis(30));
                ready.store(true, Ordering::Release);
            });
            let (r, polls) = b
                .build()
                .unwrap()
                .block_on(async move {
                    let r = call_word(id, 0).await;
                    (
                        r,
                        with_loop(id, |l: &mut Flag, _| l.polls.load(Ordering::Acquire)).unwrap(),
                    )
                })
                .unwrap();
            setter.join().unwrap();
            assert_eq!(r.unwrap(), 7, "{clock} clock");
            polls
        });
        assert!(polls > 1, "{clock} clock: completed after {polls} polls");
    }
}

/// An idle core whose loops hold no calls sleeps until its next timer: a loop without a
/// wake fd is polled on each pass, not continuously, while it holds nothing (nor is a
/// loop with a wake fd a reason to stay awake).
#[test]
fn an_idle_core_sleeps_while_its_loops_hold_no_calls() {
    let polls_while_asleep = watchdog(|| {
        let b = Runtime::builder();
        let (b, flag) = b.event_loop(|_| {
            Box::new(Flag {
                ready: Arc::default(),
                waiting: Vec::new(),
                polls: Arc::default(),
            })
        });
        let (b, _) = b.event_loop(|_| {
            Box::new(Woken {
                wake: iolib::eventfd::EventFd::new().unwrap(),
            })
        });
        b.build()
            .unwrap()
            .block_on(async move {
                let before =
                    with_loop(flag, |l: &mut Flag, _| l.polls.load(Ordering::Acquire)).unwrap();
                threadlib::sleep(Duration::from_millis(100)).await.unwrap();
                with_loop(flag, |l: &mut Flag, _| l.polls.load(Ordering::Acquire)).unwrap() - before
            })
            .unwrap()
    });
    assert!(
        polls_while_asleep <= 5,
        "the idle core spun: {polls_while_asleep} polls in 100 ms"
    );
}

/// A loop with a wake fd that never becomes readable.
struct Woken {
    wake: iolib::eventfd::EventFd,
}

impl EventLoop for Woken {
    fn name(&self) -> &'static str {
        "woken"
    }

    fn submit(&mut self, _: ThreadId, _: Request, _: &mut LoopCx<'_>) {}

    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        cx.cancelled(tid);
    }

    fn poll(&mut self, _: &mut LoopCx<'_>) {}

    fn wake_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.wake.as_raw_fd())
    }
}

// ----- cleanups at shutdown -------------------------------------------------------------

/// Runs `body` as a thread that the runtime's shutdown cancels while it parks, then
/// runs `cleanup` protected; returns what the cleanup returned, or `None` if it never
/// finished (the runtime stopped waiting for it).
fn cleanup_at_shutdown<T: 'static>(
    rt: Runtime,
    cleanup: impl std::future::Future<Output = T> + 'static,
) -> Option<T> {
    let out: Rc<RefCell<Option<T>>> = Rc::default();
    let o = out.clone();
    rt.block_on(async move {
        drop(threadlib::spawn(async move {
            let r = threadlib::park().await;
            assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
            let v = protect(cleanup).await;
            *o.borrow_mut() = Some(v);
        }));
        // Let the thread reach its park, then return: the runtime shuts down.
        threadlib::yield_now().await.unwrap();
    })
    .unwrap();
    let v = out.borrow_mut().take();
    v
}

/// A cleanup that parks until a sibling cleanup (which sleeps first) unparks it still
/// completes at shutdown.
#[test]
fn shutdown_waits_for_a_cleanup_parked_until_a_sibling_unparks_it() {
    let woke = watchdog(|| {
        let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let l = log.clone();
        Runtime::builder()
            .build()
            .unwrap()
            .block_on(async move {
                let parked: Rc<Cell<Option<ThreadId>>> = Rc::default();
                let (p1, p2) = (parked.clone(), parked.clone());
                let (l1, l2) = (l.clone(), l.clone());
                drop(threadlib::spawn(async move {
                    let _ = threadlib::park().await;
                    let r = protect(async move {
                        p1.set(threadlib::current());
                        threadlib::park().await
                    })
                    .await;
                    assert!(r.is_ok(), "the parked cleanup was cancelled: {r:?}");
                    l1.borrow_mut().push("parked cleanup done");
                }));
                drop(threadlib::spawn(async move {
                    let _ = threadlib::park().await;
                    protect(async move {
                        threadlib::sleep(Duration::from_millis(20)).await.unwrap();
                        assert!(threadlib::unpark(p2.get().expect("the cleanup parked")));
                    })
                    .await;
                    l2.borrow_mut().push("waking cleanup done");
                }));
                threadlib::yield_now().await.unwrap();
            })
            .unwrap();
        let v = log.borrow().clone();
        v
    });
    assert_eq!(woke, ["waking cleanup done", "parked cleanup done"]);
}

/// A cleanup that waits on a foreign future, woken from another OS thread through its
/// waker, still completes at shutdown (nothing the scheduler counts as pending work
/// stands for it: only the live thread does).
#[test]
fn shutdown_waits_for_a_cleanup_woken_by_a_foreign_waker() {
    let got = watchdog(|| {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let _ = tx.send(5);
        });
        let got = cleanup_at_shutdown(Runtime::builder().build().unwrap(), rx);
        sender.join().unwrap();
        got
    });
    assert_eq!(got, Some(Ok(5)));
}

/// A cleanup on core 0 that waits for a value a cleanup on core 1 sends (after a
/// sleep) still completes: both cores keep running until their threads are done.
#[test]
fn shutdown_waits_for_a_cleanup_woken_from_another_core() {
    let got = watchdog(|| {
        let (tx, rx) = threadlib::sync::remote::oneshot::<u32>();
        let rt = Runtime::builder().cores(2).build().unwrap();
        let out: Rc<RefCell<Option<threadlib::Result<u32>>>> = Rc::default();
        let o = out.clone();
        rt.block_on(async move {
            let remote = threadlib::spawn_on(1, move || async move {
                let _ = threadlib::park().await;
                protect(async move {
                    threadlib::sleep(Duration::from_millis(30)).await.unwrap();
                    tx.send(9).unwrap();
                })
                .await;
            })
            .unwrap();
            drop(remote);
            drop(threadlib::spawn(async move {
                let _ = threadlib::park().await;
                let v = protect(rx.recv()).await;
                *o.borrow_mut() = Some(v);
            }));
            // Give core 1 time to start its thread, then return: shutdown.
            threadlib::sleep(Duration::from_millis(10)).await.unwrap();
        })
        .unwrap();
        let v = out
            .borrow_mut()
            .take()
            .map(|r| r.map_err(|e| e.to_string()));
        v
    });
    assert_eq!(got, Some(Ok(9)));
}

/// When `block_on` returns, the blocking pool's OS threads have exited (a job leaves a
/// thread-local behind whose destructor runs only when its thread ends).
#[test]
fn the_blocking_pool_stops_with_the_runtime() {
    struct OnExit(Arc<AtomicBool>);
    impl Drop for OnExit {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    thread_local! {
        static MARK: RefCell<Option<OnExit>> = const { RefCell::new(None) };
    }
    let exited = watchdog(|| {
        let exited = Arc::new(AtomicBool::new(false));
        let e = exited.clone();
        Runtime::builder()
            .blocking_threads(1)
            .build()
            .unwrap()
            .block_on(async move {
                threadlib::blocking::run(move || MARK.with(|m| *m.borrow_mut() = Some(OnExit(e))))
                    .await
                    .unwrap();
            })
            .unwrap();
        exited.load(Ordering::Acquire)
    });
    assert!(exited, "a pool thread outlived the runtime");
}

// ----- scope errors ---------------------------------------------------------------------

/// A scope says whether it was cancelled, to its body and to the threads it holds.
#[test]
fn a_scope_reports_its_cancellation() {
    let seen = watchdog(|| {
        threadlib::run(async {
            let seen = Rc::new(Cell::new((true, false)));
            let in_thread = Rc::new(Cell::new(false));
            let (out, out_thread) = (seen.clone(), in_thread.clone());
            let r = threadlib::scope(|s| async move {
                let before = s.is_cancelled();
                let t = s.clone();
                s.spawn(async move {
                    let _ = threadlib::park().await;
                    out_thread.set(t.is_cancelled());
                    Ok(())
                });
                threadlib::yield_now().await?;
                s.cancel();
                out.set((before, s.is_cancelled()));
                Ok(())
            })
            .await;
            let (before, after) = seen.get();
            (r, (before, after, in_thread.get()))
        })
        .unwrap()
    });
    assert!(matches!(seen.0, Err(Error::Cancelled)), "{:?}", seen.0);
    assert_eq!(
        seen.1,
        (false, true, true),
        "(before, after, in the thread)"
    );
}

/// A real error recorded after the scope was cancelled replaces `Cancelled`; a later
/// `Cancelled` or a second real error does not replace the first real one.
#[test]
fn a_real_error_after_cancellation_wins_and_the_first_real_error_stays() {
    let (after_cancel, then_cancel, two, only_cancel) = watchdog(|| {
        threadlib::run(async {
            let after_cancel = threadlib::scope(|s| async move {
                s.cancel();
                s.fail(Error::other("real"));
                Ok(())
            })
            .await;
            let then_cancel = threadlib::scope(|s| async move {
                s.spawn(async { Err::<(), _>(Error::other("first")) });
                threadlib::yield_now().await?;
                s.cancel();
                Ok(())
            })
            .await;
            let two = threadlib::scope(|s| async move {
                let t = s.clone();
                s.spawn(async move {
                    // Cancelled with the scope, this thread fails for real in its
                    // protected cleanup, after the first error was recorded.
                    let _ = threadlib::park().await;
                    protect(threadlib::yield_now()).await?;
                    t.fail(Error::other("second"));
                    Ok(())
                });
                s.spawn(async { Err::<(), _>(Error::other("first")) });
                Ok(())
            })
            .await;
            let only_cancel = threadlib::scope(|s| async move {
                s.spawn(async {
                    threadlib::park().await?;
                    Ok(())
                });
                threadlib::yield_now().await?;
                s.cancel();
                Ok(())
            })
            .await;
            let text = |r: threadlib::Result<()>| r.map_err(|e| e.to_string());
            (
                text(after_cancel),
                text(then_cancel),
                text(two),
                text(only_cancel),
            )
        })
        .unwrap()
    });
    assert_eq!(after_cancel, Err("real".to_owned()));
    assert_eq!(then_cancel, Err("first".to_owned()));
    assert_eq!(two, Err("first".to_owned()));
    assert_eq!(only_cancel, Err(Error::Cancelled.to_string()));
}

/// A thread that fails after its scope was cancelled (in a protected cleanup) makes
/// the scope report its error rather than `Cancelled`.
#[test]
fn a_thread_failing_in_its_cleanup_after_cancellation_reports_its_error() {
    let r = watchdog(|| {
        threadlib::run(async {
            threadlib::scope(|s| async move {
                s.spawn(async {
                    let _ = threadlib::park().await;
                    protect(threadlib::sleep(Duration::from_millis(5))).await?;
                    Err::<(), _>(Error::other("cleanup failed"))
                });
                threadlib::yield_now().await?;
                s.cancel();
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
        })
        .unwrap()
    });
    assert_eq!(r, Err("cleanup failed".to_owned()));
}

// ----- trace tracks ---------------------------------------------------------------------

/// Each thread's events are on its own track (`tid`), the thread's slot: the events of
/// one thread share it and different threads get different ones; each core is its own
/// process (`pid`).
#[test]
fn each_thread_is_its_own_trace_track() {
    let path = std::env::temp_dir().join(format!("threadlib-tracks-{}.json", std::process::id()));
    let p = path.clone();
    let (main, a, b, remote) = watchdog(move || {
        let rt = Runtime::builder().cores(2).trace_file(&p).build().unwrap();
        rt.block_on(async {
            let main = threadlib::current().unwrap().index();
            let a = threadlib::spawn(async { threadlib::sleep(Duration::from_millis(1)).await });
            let b = threadlib::spawn(async { threadlib::yield_now().await });
            let ids = (a.id().index(), b.id().index());
            a.await.unwrap().unwrap();
            b.await.unwrap().unwrap();
            let remote = threadlib::spawn_on(1, || async {
                let _ = threadlib::fork(async {}).await;
                threadlib::current().unwrap().index()
            })
            .unwrap()
            .join()
            .await
            .unwrap();
            (main, ids.0, ids.1, remote)
        })
        .unwrap()
    });
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let events = v["traceEvents"].as_array().unwrap();
    let tids = |pid: u64, name: &str| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e["pid"] == pid && e["name"] == name && e["ph"] != "M")
            .map(|e| e["tid"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(tids(0, "sleep"), [u64::from(a)], "the sleeper's track");
    assert_eq!(tids(0, "yield"), [u64::from(b)], "the yielder's track");
    let mut exits = tids(0, "exit");
    exits.sort_unstable();
    let mut want = vec![u64::from(main), u64::from(a), u64::from(b)];
    want.sort_unstable();
    // Core 0 also ran the thread that awaited core 1's result.
    assert!(exits.len() >= 3, "{exits:?}");
    for t in &want {
        assert!(exits.contains(t), "no exit on track {t}: {exits:?}");
    }
    want.dedup();
    assert_eq!(want.len(), 3, "three threads on one track: {want:?}");
    // On core 1: the forked child and its parent are two tracks.
    let fork = tids(1, "fork");
    assert_eq!(
        fork,
        [u64::from(remote)],
        "the forking thread's track on core 1"
    );
    let mut exits1 = tids(1, "exit");
    exits1.sort_unstable();
    exits1.dedup();
    assert!(
        exits1.len() >= 2,
        "core 1 threads share a track: {exits1:?}"
    );
}

// ----- sharing the CPU ------------------------------------------------------------------

/// Runs `main` on a one-core runtime whose CPU slice is `slice`; returns what the core
/// counted of its yields.
fn yields_with<F: std::future::Future<Output = ()> + 'static>(
    slice: Option<Duration>,
    main: impl FnOnce() -> F + Send + 'static,
) -> u64 {
    watchdog(move || {
        Runtime::builder()
            .cpu_slice(slice)
            .build()
            .unwrap()
            .block_on(async move {
                main().await;
                threadlib::cpu_yields()
            })
            .unwrap()
    })
}

/// Keeps the core busy for `d` without ever blocking.
async fn busy_for(d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        threadlib::yield_now().await.unwrap();
    }
}

#[test]
fn a_core_that_never_blocks_gives_its_cpu_up_once_per_slice() {
    let slice = Duration::from_micros(200);
    let yields = yields_with(Some(slice), || busy_for(Duration::from_millis(100)));
    // 100 ms is 500 slices; a preemption by another process restarts a slice, so a
    // loaded machine sees fewer, but never more.
    assert!((10..=500).contains(&yields), "{yields} yields");
    // Without a slice the core keeps its CPU.
    assert_eq!(yields_with(None, || busy_for(Duration::from_millis(20))), 0);
}

/// Spins for `d` (no system call, no yield).
fn spin(d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// Makes the calling OS thread `SCHED_FIFO` at priority 1; false if not allowed.
fn fifo() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: `p` is valid for the call; pid 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

/// A short sleep right after the core gave its CPU up is timed from when it got the CPU
/// back, not from the clock reading taken before the yield. The core and a competitor
/// share one CPU as `SCHED_FIFO` threads of one priority, so that `sched_yield` hands
/// the CPU over for exactly the competitor's burst, during which the sleep's deadline
/// passes.
#[test]
fn a_short_sleep_is_not_late_by_the_cpu_yield_before_its_wait() {
    const BURST: Duration = Duration::from_millis(1);
    const SLEEP: Duration = Duration::from_micros(300);
    watchdog(|| {
        let cpu = iolib::sched::allowed_cpus().unwrap()[0];
        iolib::sched::set_allowed_cpus(&[cpu]).unwrap();
        if !fifo() {
            eprintln!("skipped: SCHED_FIFO is not allowed here");
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Runs for BURST each time it is woken, then blocks again.
        let competitor = std::thread::spawn(move || {
            assert!(fifo());
            while rx.recv().is_ok() {
                spin(BURST);
            }
        });
        let runs = Runtime::builder()
            .uring(None)
            .blocking_threads(0)
            .cpu_slice(Some(Duration::from_micros(100)))
            .build()
            .unwrap()
            .block_on(async move {
                let mut runs = Vec::new();
                for _ in 0..30 {
                    // A long wait: the next run starts uncounted.
                    threadlib::sleep(Duration::from_millis(2)).await.unwrap();
                    // A pass a slice later, then a wait that returns at once (the
                    // sleep's deadline has passed): it reads the switch count.
                    let short = threadlib::spawn(async {
                        threadlib::sleep(Duration::from_micros(20)).await.unwrap()
                    });
                    threadlib::yield_now().await.unwrap();
                    spin(Duration::from_micros(150));
                    short.await.unwrap();
                    // Another slice unswitched: the pass before the next wait yields,
                    // to the competitor queued behind this thread.
                    spin(Duration::from_micros(150));
                    tx.send(()).unwrap();
                    let before = threadlib::cpu_yields();
                    let start = std::time::Instant::now();
                    threadlib::sleep(SLEEP).await.unwrap();
                    runs.push((threadlib::cpu_yields() > before, start.elapsed()));
                }
                drop(tx);
                runs
            })
            .unwrap();
        competitor.join().unwrap();
        let mut yielded: Vec<Duration> = runs.iter().filter(|r| r.0).map(|r| r.1).collect();
        yielded.sort();
        assert!(yielded.len() >= 5, "too few yields to judge: {runs:?}");
        // The core finds the sleep due as soon as it has its CPU back.
        let median = yielded[yielded.len() / 2];
        assert!(
            median < BURST + Duration::from_micros(150),
            "median {median:?} of {yielded:?}: the core waited ~{SLEEP:?} after the yield"
        );
    });
}

#[test]
fn a_core_that_blocks_between_bursts_never_yields() {
    let yields = yields_with(Some(Duration::from_micros(200)), || async {
        for _ in 0..40 {
            threadlib::sleep(Duration::from_millis(1)).await.unwrap();
            busy_for(Duration::from_micros(100)).await;
        }
    });
    assert_eq!(yields, 0);
}

#[test]
fn pinned_cores_run_each_on_their_own_cpu_and_the_caller_gets_its_cpus_back() {
    let (before, seen, after) = watchdog(|| {
        let before = iolib::sched::allowed_cpus().unwrap();
        let seen = Runtime::builder()
            .cores(3)
            .pin_cores(true)
            .build()
            .unwrap()
            .block_on(async {
                let mut seen = vec![iolib::sched::allowed_cpus().unwrap()];
                for core in 1..3 {
                    let h = threadlib::spawn_on(core, || async {
                        iolib::sched::allowed_cpus().unwrap()
                    })
                    .unwrap();
                    seen.push(h.join().await.unwrap());
                }
                seen
            })
            .unwrap();
        (before, seen, iolib::sched::allowed_cpus().unwrap())
    });
    // Core i on the i-th CPU of the caller's set, wrapping on a machine with fewer.
    let expected: Vec<Vec<usize>> = (0..3).map(|i| vec![before[i % before.len()]]).collect();
    assert_eq!(seen, expected);
    assert_eq!(after, before);
}

// ----- thread ids, timers, the mock clock -----------------------------------------------

/// A thread id names its slot and the slot's generation: a slot freed by an exited
/// thread is reused with the next generation, so the old id no longer reaches it.
#[test]
fn a_reused_slot_gets_a_new_generation() {
    let (main, first, second, unparked_stale) = watchdog(|| {
        threadlib::run(async {
            let main = threadlib::current().unwrap();
            let a = threadlib::spawn(async {});
            let first = a.id();
            a.await.unwrap();
            let b = threadlib::spawn(async { threadlib::park().await });
            let second = b.id();
            threadlib::yield_now().await.unwrap();
            // The first thread's id must not wake the thread now in its slot.
            let unparked_stale = threadlib::unpark(first);
            assert!(threadlib::unpark(second));
            b.await.unwrap().unwrap();
            (
                format!("{main:?}"),
                format!("{first:?}"),
                format!("{second:?}"),
                unparked_stale,
            )
        })
        .unwrap()
    });
    assert_eq!((main.as_str(), first.as_str()), ("t0.0", "t1.0"));
    assert_eq!(second, "t1.1");
    assert!(!unparked_stale, "a stale id woke the slot's new thread");
}

/// A timeout arms its timer only once the operation under it suspends, and one that
/// did not fire leaves no timer behind, also when several are armed at once; one that
/// fires cancels only the call under it, at its own deadline.
#[test]
fn timeouts_leave_no_timer_behind_and_fire_separately() {
    let (nested, left, fired) = watchdog(|| {
        Runtime::builder()
            .mock_clock(true)
            .build()
            .unwrap()
            .block_on(async {
                let hour = Duration::from_secs(3600);
                let nested = threadlib::with_timeout(hour, async {
                    threadlib::with_timeout(2 * hour, async {
                        let before = threadlib::time::pending_timers();
                        threadlib::yield_now().await?;
                        Ok((before, threadlib::time::pending_timers()))
                    })
                    .await
                })
                .await
                .unwrap();
                let left = threadlib::time::pending_timers();
                let text = |r: threadlib::Result<()>| r.map_err(|e| e.to_string());
                let start = threadlib::time::now();
                let fired = threadlib::with_timeout(Duration::from_secs(2), async {
                    let inner =
                        threadlib::with_timeout(Duration::from_secs(1), threadlib::park()).await;
                    let inner_at = threadlib::time::now() - start;
                    let outer = threadlib::park().await;
                    let outer_at = threadlib::time::now() - start;
                    Ok((text(inner), inner_at, text(outer), outer_at))
                })
                .await
                .unwrap();
                (nested, left, fired)
            })
            .unwrap()
    });
    assert_eq!(nested, (0, 2), "armed at the first suspension, not before");
    assert_eq!(left, 0, "a timeout that did not fire left its timer");
    let (inner, inner_at, outer, outer_at) = fired;
    assert_eq!(inner, Err(Error::TimedOut.to_string()));
    assert_eq!(inner_at, Duration::from_secs(1));
    assert_eq!(outer, Err(Error::Cancelled.to_string()));
    assert_eq!(outer_at, Duration::from_secs(2));
}

/// The clock capability is the current core's (mock here), and there is none outside
/// a runtime.
#[test]
fn the_clock_capability_exists_only_inside_a_runtime() {
    assert!(matches!(Clock::current(), Err(Error::NoRuntime)));
    let inside = watchdog(|| {
        Runtime::builder()
            .mock_clock(false)
            .build()
            .unwrap()
            .block_on(async { Clock::current().map(|c| c.is_mock()) })
            .unwrap()
    });
    assert!(inside.unwrap(), "a mock clock, seen from a thread");
}

/// A mock clock without auto-advance stays put while the core idles with a timer
/// armed: a sleeper wakes only when a thread advances the clock to its deadline or
/// past it, even if every thread then waits.
#[test]
fn a_manual_mock_clock_does_not_jump_to_the_next_timer() {
    let (idle_elapsed, slept_before, slept_after) = watchdog(|| {
        Runtime::builder()
            .mock_clock(false)
            .build()
            .unwrap()
            .block_on(async {
                let slept = Rc::new(Cell::new(false));
                let s = slept.clone();
                let sleeper = threadlib::spawn(async move {
                    threadlib::sleep(Duration::from_secs(1)).await.unwrap();
                    s.set(true);
                });
                // Idle until a foreign OS thread wakes us: nothing but the sleeper's
                // timer is armed meanwhile.
                let (tx, rx) = futures::channel::oneshot::channel::<()>();
                let t = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = tx.send(());
                });
                rx.await.unwrap();
                t.join().unwrap();
                let idle_elapsed = threadlib::time::elapsed();
                let slept_before = slept.get();
                // Exactly to the deadline, then past the next one.
                threadlib::time::advance(Duration::from_secs(1)).unwrap();
                sleeper.await.unwrap();
                let second = threadlib::spawn(threadlib::sleep(Duration::from_secs(1)));
                threadlib::yield_now().await.unwrap();
                threadlib::time::advance(Duration::from_millis(1500)).unwrap();
                second.await.unwrap().unwrap();
                (idle_elapsed, slept_before, slept.get())
            })
            .unwrap()
    });
    assert_eq!(
        idle_elapsed,
        Duration::ZERO,
        "the manual mock clock moved by itself"
    );
    assert!(
        !slept_before,
        "the sleeper woke before the clock was advanced"
    );
    assert!(slept_after);
}

/// A thread and a scope say whether they are cancelled and how many threads a scope
/// still runs; outside a thread nothing is cancelled.
#[test]
fn cancellation_and_live_counts_are_reported() {
    assert!(!threadlib::is_cancelled());
    let seen = watchdog(|| {
        threadlib::run(async {
            let out = Rc::new(Cell::new((true, 0, 0, false)));
            let o = out.clone();
            let _ = threadlib::scope(|s| async move {
                let before = threadlib::is_cancelled();
                s.spawn(async { threadlib::park().await });
                s.spawn(async { threadlib::park().await });
                threadlib::yield_now().await?;
                let live = s.live();
                s.cancel();
                let after = threadlib::is_cancelled();
                o.set((before, live, 0, after));
                Ok(())
            })
            .await;
            out.get()
        })
        .unwrap()
    });
    assert_eq!(
        seen,
        (false, 2, 0, true),
        "(cancelled before, live, -, cancelled after)"
    );
}

/// A wait on a descriptor epoll refuses fails at once with the error, instead of
/// blocking.
#[test]
fn waiting_on_a_bad_descriptor_fails() {
    let r = watchdog(|| {
        threadlib::run(async { threadlib::readiness::wait(-1, threadlib::Readiness::Read).await })
            .unwrap()
    });
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
}

/// A call to a loop id this runtime does not have fails with `NoEventLoop`.
#[test]
fn a_call_to_an_unknown_loop_fails() {
    let (_, other) = Runtime::builder()
        .event_loop(|_| {
            Box::new(Woken {
                wake: iolib::eventfd::EventFd::new().unwrap(),
            })
        })
        .0
        .event_loop(|_| {
            Box::new(Woken {
                wake: iolib::eventfd::EventFd::new().unwrap(),
            })
        });
    let r = watchdog(move || threadlib::run(async move { call_word(other, 0).await }).unwrap());
    assert!(matches!(r, Err(Error::NoEventLoop(_))), "{r:?}");
}

#[test]
fn a_sleep_shorter_than_a_millisecond_is_not_rounded_up_to_one() {
    let took = watchdog(|| {
        Runtime::builder()
            .build()
            .unwrap()
            .block_on(async {
                let mut took = Vec::new();
                for _ in 0..10 {
                    let start = std::time::Instant::now();
                    threadlib::sleep(Duration::from_micros(200)).await.unwrap();
                    took.push(start.elapsed());
                }
                took
            })
            .unwrap()
    });
    // Never early; and, though a loaded machine may wake any one of them late, not
    // every one a whole millisecond after it began.
    assert!(
        took.iter().all(|&t| t >= Duration::from_micros(200)),
        "{took:?}"
    );
    assert!(
        took.iter().any(|&t| t < Duration::from_micros(900)),
        "{took:?}"
    );
}

/// A future of about 4 KiB that holds its buffer across a suspension.
async fn big_future() -> threadlib::Result<u8> {
    let buf = [7u8; 4096];
    threadlib::yield_now().await?;
    Ok(buf[4095])
}

#[test]
fn a_timeout_or_protection_holds_the_future_it_wraps_once() {
    let size = std::mem::size_of_val(&big_future());
    assert!(size >= 4096, "{size}");
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let wrapped = [
        std::mem::size_of_val(&threadlib::with_timeout(
            Duration::from_secs(1),
            big_future(),
        )),
        std::mem::size_of_val(&threadlib::with_deadline(deadline, big_future())),
        std::mem::size_of_val(&threadlib::deadline::within(
            Duration::from_secs(1),
            big_future(),
        )),
        std::mem::size_of_val(&threadlib::deadline::until(deadline, big_future())),
        std::mem::size_of_val(&threadlib::protect(big_future())),
    ];
    // The wrapper's own state is a few words; a second copy of the future would be
    // another 4 KiB (a server holds one per connection).
    assert!(
        wrapped.iter().all(|&w| w < size + 256),
        "{size} -> {wrapped:?}"
    );
}
