//! Core-local synchronisation primitives: mutual exclusion, fairness, notification,
//! permits, promises, channels, closing, and exact cancellation of waiters.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use support::watchdog;

use threadlib::sync::{
    channel, unbounded_channel, Condition, Mutex, Promise, Semaphore, Sender, TrySendError,
};
use threadlib::{Error, Result, Runtime};

/// Runs `f` on a one-core runtime whose mock clock jumps to the next timer when idle.
fn run_mock<F, T>(f: F) -> T
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    Runtime::builder()
        .mock_clock(true)
        .build()
        .unwrap()
        .block_on(f)
        .unwrap()
        .unwrap()
}

fn run<F, T>(f: F) -> T
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    threadlib::run(f).unwrap().unwrap()
}

/// Lets every ready thread run a few times, so spawned threads reach their waits.
async fn settle() -> Result<()> {
    for _ in 0..4 {
        threadlib::yield_now().await?;
    }
    Ok(())
}

// ----- Mutex ---------------------------------------------------------------------------

#[test]
fn mutex_excludes_across_suspensions() {
    watchdog(|| {
        let (total, max_inside) = run(async {
            let m = Rc::new(Mutex::new(0u32));
            let inside = Rc::new(Cell::new(0u32));
            let max_inside = Rc::new(Cell::new(0u32));
            let mut hs = Vec::new();
            for t in 0..8u32 {
                let (m, inside, max_inside) = (m.clone(), inside.clone(), max_inside.clone());
                hs.push(threadlib::spawn(async move {
                    for i in 0..50u32 {
                        let mut g = m.lock().await?;
                        inside.set(inside.get() + 1);
                        max_inside.set(max_inside.get().max(inside.get()));
                        let v = *g;
                        // Suspend while holding the lock, a varying number of times.
                        for _ in 0..(t + i) % 3 {
                            threadlib::yield_now().await?;
                        }
                        *g = v + 1;
                        inside.set(inside.get() - 1);
                    }
                    Result::Ok(())
                }));
            }
            for h in hs {
                h.await??;
            }
            let total = *m.lock().await?;
            Ok((total, max_inside.get()))
        });
        assert_eq!(total, 400);
        assert_eq!(max_inside, 1);
    });
}

#[test]
fn mutex_is_fifo_and_hands_off_without_barging() {
    watchdog(|| {
        let (order, barged) = run(async {
            let m = Rc::new(Mutex::new(Vec::new()));
            let g = m.lock().await?;
            let mut hs = Vec::new();
            for id in 0..5 {
                let m = m.clone();
                hs.push(threadlib::spawn(async move {
                    m.lock().await?.push(id);
                    Result::Ok(())
                }));
                threadlib::yield_now().await?; // each queues before the next is spawned
            }
            drop(g);
            // The lock went straight to the first waiter: a newcomer cannot take it.
            let barged = m.try_lock().is_some();
            for h in hs {
                h.await??;
            }
            let order = m.lock().await?.clone();
            Ok((order, barged))
        });
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert!(!barged);
    });
}

#[test]
fn mutex_try_lock_and_accessors() {
    watchdog(|| {
        let mut m = Mutex::new(5);
        {
            let g = m.try_lock().expect("free");
            assert!(m.is_locked());
            assert!(m.try_lock().is_none());
            assert_eq!(*g, 5);
            assert_eq!(format!("{m:?}"), "Mutex { data: <locked> }");
        }
        assert!(!m.is_locked());
        *m.get_mut() += 1;
        assert_eq!(format!("{m:?}"), "Mutex { data: 6 }");
        assert_eq!(m.into_inner(), 6);
    });
}

#[test]
fn mutex_waiter_timing_out_leaves_the_queue() {
    watchdog(|| {
        let (first, later) = run_mock(async {
            let m = Rc::new(Mutex::new(()));
            let g = m.lock().await?;
            let m1 = m.clone();
            let w1 = threadlib::spawn(async move {
                threadlib::with_timeout(Duration::from_secs(10), async {
                    m1.lock().await.map(drop)
                })
                .await
            });
            settle().await?;
            let m2 = m.clone();
            let w2 = threadlib::spawn(async move { m2.lock().await.map(drop) });
            settle().await?;
            threadlib::sleep(Duration::from_secs(20)).await?; // w1 times out meanwhile
            drop(g);
            let first = w1.await?;
            let later = w2.await?;
            Ok((first, later))
        });
        assert!(matches!(first, Err(Error::TimedOut)), "{first:?}");
        assert!(later.is_ok(), "{later:?}");
    });
}

#[test]
fn mutex_cancelled_after_hand_off_passes_the_lock_on() {
    watchdog(|| {
        let (w1, w2, locked) = run(async {
            let m = Rc::new(Mutex::new(Vec::<&str>::new()));
            let g = m.lock().await?;
            let (m1, m2) = (m.clone(), m.clone());
            let w1 = Rc::new(RefCell::new(None));
            let w1c = w1.clone();
            let scoped = threadlib::scope(|s| async move {
                s.spawn(async move {
                    let r = m1.lock().await.map(|mut g| g.push("w1"));
                    *w1c.borrow_mut() = Some(r);
                    Ok(())
                });
                settle().await?;
                drop(threadlib::spawn(async move {
                    m2.lock().await?.push("w2");
                    Result::Ok(())
                }));
                settle().await?;
                // w1 is cancelled while queued, then the lock is handed to it before it
                // can run: it must pass the lock on to w2 rather than swallow it.
                s.cancel();
                drop(g);
                Ok(())
            })
            .await;
            assert!(matches!(scoped, Err(Error::Cancelled)));
            // w2 is detached: wait for its effect.
            for _ in 0..10 {
                if !m.lock().await?.is_empty() {
                    break;
                }
                threadlib::yield_now().await?;
            }
            let w1 = w1.borrow_mut().take();
            let pushed = m.lock().await?.clone();
            Ok((w1, pushed, m.is_locked()))
        });
        assert!(matches!(w1, Some(Err(Error::Cancelled))), "{w1:?}");
        assert_eq!(w2, ["w2"]);
        assert!(!locked);
    });
}

// ----- Condition -----------------------------------------------------------------------

#[test]
fn condition_wait_releases_and_relocks() {
    watchdog(|| {
        let got = run(async {
            let shared = Rc::new((Mutex::new(VecDeque::new()), Condition::new()));
            let s2 = shared.clone();
            let consumer = threadlib::spawn(async move {
                let (m, c) = &*s2;
                let mut got = Vec::new();
                while got.len() < 5 {
                    let mut q = m.lock().await?;
                    while q.is_empty() {
                        q = c.wait(q).await?;
                        assert!(m.is_locked(), "wait returns holding the lock");
                    }
                    got.extend(q.drain(..));
                }
                Result::Ok(got)
            });
            for i in 0..5 {
                settle().await?;
                // Locking succeeds only because the waiter released the mutex.
                shared.0.lock().await?.push_back(i);
                shared.1.notify_one();
            }
            consumer.await?
        });
        assert_eq!(got, [0, 1, 2, 3, 4]);
    });
}

#[test]
fn condition_notify_one_wakes_in_order_and_notify_all_wakes_everyone() {
    watchdog(|| {
        let (after_one, after_all, order) = run(async {
            let c = Rc::new(Condition::new());
            let woken = Rc::new(RefCell::new(Vec::new()));
            let mut hs = Vec::new();
            for id in 0..4 {
                let (c, woken) = (c.clone(), woken.clone());
                hs.push(threadlib::spawn(async move {
                    c.wait_no_mutex().await?;
                    woken.borrow_mut().push(id);
                    Result::Ok(())
                }));
                threadlib::yield_now().await?;
            }
            assert_eq!(c.waiters(), 4);
            assert!(c.notify_one());
            settle().await?;
            let after_one = woken.borrow().clone();
            assert_eq!(c.notify_all(), 3);
            for h in hs {
                h.await??;
            }
            let after_all = woken.borrow().len();
            assert!(!c.notify_one());
            let order = woken.borrow().clone();
            Ok((after_one, after_all, order))
        });
        assert_eq!(after_one, [0]);
        assert_eq!(after_all, 4);
        assert_eq!(order, [0, 1, 2, 3]);
    });
}

#[test]
fn condition_cancelled_waiter_passes_notification_on() {
    watchdog(|| {
        let (w1, w2) = run(async {
            let c = Rc::new(Condition::new());
            let w1 = Rc::new(RefCell::new(None));
            let (c1, c2, w1c) = (c.clone(), c.clone(), w1.clone());
            let w2 = threadlib::spawn(async move {
                settle().await?; // queue behind w1
                c2.wait_no_mutex().await
            });
            let _ = threadlib::scope(|s| async move {
                s.spawn(async move {
                    *w1c.borrow_mut() = Some(c1.wait_no_mutex().await);
                    Ok(())
                });
                settle().await?;
                settle().await?;
                s.cancel();
                c.notify_one(); // goes to w1, which is cancelled: must reach w2
                Ok(())
            })
            .await;
            let w2 = threadlib::with_timeout(Duration::from_secs(5), w2).await;
            let w1 = w1.borrow_mut().take();
            Ok((w1, w2))
        });
        assert!(matches!(w1, Some(Err(Error::Cancelled))), "{w1:?}");
        assert!(matches!(w2, Ok(Ok(()))), "{w2:?}");
    });
}

#[test]
fn condition_broadcast_to_cancelled_waiter_is_not_passed_to_newcomers() {
    watchdog(|| {
        let late = run_mock(async {
            let c = Rc::new(Condition::new());
            let c1 = c.clone();
            let c2 = c.clone();
            let _ = threadlib::scope(|s| async move {
                s.spawn(async move { c1.wait_no_mutex().await });
                settle().await?;
                s.cancel();
                c2.notify_all();
                Ok(())
            })
            .await;
            // Waiting after the broadcast: nothing should wake us.
            let late = threadlib::with_timeout(Duration::from_secs(1), c.wait_no_mutex()).await;
            Ok(late)
        });
        assert!(matches!(late, Err(Error::TimedOut)), "{late:?}");
    });
}

#[test]
fn condition_wait_cancelled_leaves_mutex_unlocked() {
    watchdog(|| {
        let (r, locked) = run_mock(async {
            let m = Mutex::new(());
            let c = Condition::new();
            let r = threadlib::with_timeout(Duration::from_secs(1), async {
                let g = m.lock().await?;
                c.wait(g).await.map(drop)
            })
            .await;
            Ok((r, m.is_locked()))
        });
        assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
        assert!(!locked);
    });
}

// ----- Semaphore -----------------------------------------------------------------------

#[test]
fn semaphore_limits_concurrency() {
    watchdog(|| {
        let (max, left) = run(async {
            let sem = Rc::new(Semaphore::new(3));
            let inside = Rc::new(Cell::new(0));
            let max = Rc::new(Cell::new(0));
            let mut hs = Vec::new();
            for t in 0..10 {
                let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
                hs.push(threadlib::spawn(async move {
                    for _ in 0..5 {
                        let _p = sem.acquire(1).await?;
                        inside.set(inside.get() + 1);
                        max.set(max.get().max(inside.get()));
                        for _ in 0..(t % 3 + 1) {
                            threadlib::yield_now().await?;
                        }
                        inside.set(inside.get() - 1);
                    }
                    Result::Ok(())
                }));
            }
            for h in hs {
                h.await??;
            }
            Ok((max.get(), sem.available_permits()))
        });
        assert_eq!(max, 3);
        assert_eq!(left, 3);
    });
}

#[test]
fn semaphore_serves_in_order_and_large_requests_are_not_starved() {
    watchdog(|| {
        let log = run(async {
            let sem = Rc::new(Semaphore::new(0));
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut hs = Vec::new();
            for (id, n) in [("big", 3), ("small", 1)] {
                let (sem, log) = (sem.clone(), log.clone());
                hs.push(threadlib::spawn(async move {
                    let p = sem.acquire(n).await?;
                    log.borrow_mut().push(id);
                    p.forget(); // keep them: makes the accounting visible
                    Result::Ok(())
                }));
                threadlib::yield_now().await?;
            }
            assert_eq!(sem.waiters(), 2);
            sem.release(1);
            settle().await?;
            // One permit is free, but "small" waits behind "big".
            assert!(log.borrow().is_empty());
            assert!(sem.try_acquire(1).is_none());
            sem.release(2);
            settle().await?;
            assert_eq!(*log.borrow(), ["big"]);
            sem.release(1);
            for h in hs {
                h.await??;
            }
            assert_eq!(sem.available_permits(), 0);
            let log = log.borrow().clone();
            Ok(log)
        });
        assert_eq!(log, ["big", "small"]);
    });
}

#[test]
fn semaphore_cancelled_head_unblocks_the_next_waiter() {
    watchdog(|| {
        let (big, small_done_while_held) = run_mock(async {
            let sem = Rc::new(Semaphore::new(2));
            let held = sem.acquire(1).await?;
            let s1 = sem.clone();
            let big = threadlib::spawn(async move {
                threadlib::with_timeout(Duration::from_secs(1), async {
                    s1.acquire(2).await.map(drop)
                })
                .await
            });
            settle().await?;
            let s2 = sem.clone();
            let small = threadlib::spawn(async move { s2.acquire(1).await.map(|p| p.permits()) });
            settle().await?;
            threadlib::sleep(Duration::from_secs(2)).await?;
            let done = small.await??;
            drop(held);
            Ok((big.await?, done))
        });
        assert!(matches!(big, Err(Error::TimedOut)), "{big:?}");
        assert_eq!(small_done_while_held, 1);
    });
}

#[test]
fn semaphore_permits_granted_to_a_cancelled_waiter_return() {
    watchdog(|| {
        let (r, avail) = run(async {
            let sem = Rc::new(Semaphore::new(0));
            let s1 = sem.clone();
            let out = Rc::new(RefCell::new(None));
            let o = out.clone();
            let s = sem.clone();
            let _ = threadlib::scope(|sc| async move {
                sc.spawn(async move {
                    *o.borrow_mut() = Some(s1.acquire(2).await.map(drop));
                    Ok(())
                });
                settle().await?;
                sc.cancel();
                s.release(2); // granted to the cancelled waiter, which must give them back
                Ok(())
            })
            .await;
            let r = out.borrow_mut().take();
            Ok((r, sem.available_permits()))
        });
        assert!(matches!(r, Some(Err(Error::Cancelled))), "{r:?}");
        assert_eq!(avail, 2);
    });
}

// ----- Promise -------------------------------------------------------------------------

#[test]
fn promise_resolves_every_waiter() {
    watchdog(|| {
        let got = run(async {
            let (p, r) = Promise::new();
            assert!(p.try_get()?.is_none());
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let p = p.clone();
                    threadlib::spawn(async move { p.wait().await })
                })
                .collect();
            settle().await?;
            r.resolve(String::from("v"));
            let mut got = Vec::new();
            for h in hs {
                got.push(h.await??);
            }
            assert!(p.is_resolved());
            got.push(p.wait().await?); // after resolution: immediate
            Ok(got)
        });
        assert_eq!(got, ["v", "v", "v", "v"]);
    });
}

#[test]
fn promise_closed_when_resolver_dropped() {
    watchdog(|| {
        let (waiter, later, peek) = run(async {
            let (p, r) = Promise::<u8>::new();
            let p2 = p.clone();
            let h = threadlib::spawn(async move { p2.wait().await });
            settle().await?;
            drop(r);
            let waiter = h.await?;
            Ok((waiter, p.wait().await, p.try_get()))
        });
        assert!(matches!(waiter, Err(Error::Closed)), "{waiter:?}");
        assert!(matches!(later, Err(Error::Closed)));
        assert!(matches!(peek, Err(Error::Closed)));
    });
}

#[test]
fn promise_waiter_can_time_out_and_others_still_resolve() {
    watchdog(|| {
        let (timed, ok) = run_mock(async {
            let (p, r) = Promise::new();
            let p1 = p.clone();
            let timed = threadlib::with_timeout(Duration::from_secs(3), p1.wait()).await;
            let h = threadlib::spawn(async move { p.wait().await });
            settle().await?;
            r.resolve(7);
            Ok((timed, h.await??))
        });
        assert!(matches!(timed, Err(Error::TimedOut)));
        assert_eq!(ok, 7);
    });
}

// ----- Channels ------------------------------------------------------------------------

#[test]
fn channel_keeps_order_and_ping_pongs() {
    watchdog(|| {
        let n = run(async {
            let (tx_a, rx_a) = channel::<u32>(1);
            let (tx_b, rx_b) = channel::<u32>(1);
            let echo = threadlib::spawn(async move {
                while let Ok(v) = rx_a.recv().await {
                    tx_b.send(v + 1).await?;
                }
                Result::Ok(())
            });
            for i in 0..10_000 {
                tx_a.send(i).await?;
                assert_eq!(rx_b.recv().await?, i + 1);
            }
            drop(tx_a);
            echo.await??;
            Ok(10_000)
        });
        assert_eq!(n, 10_000);
    });
}

#[test]
fn channel_applies_backpressure() {
    watchdog(|| {
        let (progress_when_full, got) = run(async {
            let (tx, rx) = channel(2);
            let sent = Rc::new(Cell::new(0));
            let s = sent.clone();
            let producer = threadlib::spawn(async move {
                for i in 0..6 {
                    tx.send(i).await?;
                    s.set(s.get() + 1);
                }
                Result::Ok(())
            });
            settle().await?;
            let progress_when_full = (sent.get(), rx.len());
            let mut got = Vec::new();
            while let Ok(v) = rx.recv().await {
                got.push(v);
                // The producer never gets more than two values ahead.
                assert!(sent.get() - got.len() <= 2);
            }
            producer.await??;
            Ok((progress_when_full, got))
        });
        assert_eq!(progress_when_full, (2, 2));
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    });
}

#[test]
fn channel_waiting_senders_are_served_in_order() {
    watchdog(|| {
        let got = run(async {
            let (tx, rx) = channel(1);
            tx.send(0).await?;
            let mut hs = Vec::new();
            for id in 1..=4 {
                let tx = tx.clone();
                hs.push(threadlib::spawn(async move {
                    tx.send(id).await.map_err(Error::from)
                }));
                threadlib::yield_now().await?;
            }
            // A newcomer cannot slip in before the waiting senders.
            assert!(matches!(tx.try_send(99), Err(TrySendError::Full(99))));
            drop(tx);
            let mut got = Vec::new();
            while let Ok(v) = rx.recv().await {
                got.push(v);
            }
            for h in hs {
                h.await??;
            }
            Ok(got)
        });
        assert_eq!(got, [0, 1, 2, 3, 4]);
    });
}

#[test]
fn channel_receivers_are_served_in_order() {
    watchdog(|| {
        let got = run(async {
            let (tx, rx) = channel(4);
            let log = Rc::new(RefCell::new(Vec::new()));
            let mut hs = Vec::new();
            for id in 0..3 {
                let (rx, log) = (rx.clone(), log.clone());
                hs.push(threadlib::spawn(async move {
                    let v = rx.recv().await?;
                    log.borrow_mut().push((id, v));
                    Result::Ok(())
                }));
                threadlib::yield_now().await?;
            }
            for v in ["a", "b", "c"] {
                tx.send(v).await?;
            }
            // All three values are promised to the waiting receivers.
            assert_eq!(rx.try_recv()?, None);
            for h in hs {
                h.await??;
            }
            let got = log.borrow().clone();
            Ok(got)
        });
        assert_eq!(got, [(0, "a"), (1, "b"), (2, "c")]);
    });
}

#[test]
fn channel_closes_for_receivers_after_draining() {
    watchdog(|| {
        let (drained, waiting, again, peek) = run(async {
            let (tx, rx) = channel(4);
            let tx2 = tx.clone();
            tx.send(1).await?;
            tx2.send(2).await?;
            drop(tx);
            assert!(!rx.is_closed(), "one sender left");
            drop(tx2);
            assert!(rx.is_closed());
            let drained = vec![rx.recv().await?, rx.recv().await?];
            // A receiver waiting when the last sender goes is woken with Closed.
            let (tx, rx2) = channel::<u8>(1);
            let h = threadlib::spawn(async move { rx2.recv().await });
            settle().await?;
            drop(tx);
            let waiting = h.await?;
            Ok((drained, waiting, rx.recv().await, rx.try_recv()))
        });
        assert_eq!(drained, [1, 2]);
        assert!(matches!(waiting, Err(Error::Closed)), "{waiting:?}");
        assert!(matches!(again, Err(Error::Closed)));
        assert!(matches!(peek, Err(Error::Closed)));
    });
}

#[test]
fn channel_closes_for_senders_and_gives_values_back() {
    watchdog(|| {
        let (direct, waiting, tried) = run(async {
            let (tx, rx) = channel(1);
            tx.send(String::from("buffered")).await?;
            let tx2 = tx.clone();
            assert!(!tx.is_closed());
            let h = threadlib::spawn(async move {
                tx2.send(String::from("blocked"))
                    .await
                    .map_err(|e| e.into_parts())
            });
            settle().await?;
            drop(rx);
            let waiting = h.await?;
            assert!(tx.is_closed());
            assert!(
                tx.is_empty(),
                "buffered values are dropped with the last receiver"
            );
            let direct = tx
                .send(String::from("late"))
                .await
                .map_err(|e| e.into_parts());
            let tried = tx.try_send(String::from("try"));
            Ok((direct, waiting, tried))
        });
        assert!(
            matches!(direct, Err((Error::Closed, ref v)) if v == "late"),
            "{direct:?}"
        );
        assert!(
            matches!(waiting, Err((Error::Closed, ref v)) if v == "blocked"),
            "{waiting:?}"
        );
        assert!(matches!(tried, Err(TrySendError::Closed(ref v)) if v == "try"));
        assert_eq!(tried.unwrap_err().to_string(), "channel closed");
    });
}

#[test]
fn channel_try_ops() {
    watchdog(|| {
        run(async {
            let (tx, rx) = channel(1);
            assert_eq!(rx.try_recv()?, None);
            tx.try_send(1).unwrap();
            let full = tx.try_send(2).unwrap_err();
            assert!(full.is_full());
            assert_eq!(full.to_string(), "channel full");
            assert_eq!(full.into_inner(), 2);
            assert_eq!((tx.len(), tx.capacity()), (1, 1));
            assert!(!tx.is_empty(), "a buffered value");
            assert_eq!(rx.try_recv()?, Some(1));
            assert!(tx.is_empty());
            drop(tx);
            assert!(matches!(rx.try_recv(), Err(Error::Closed)));
            let (tx, _rx) = channel::<()>(0);
            assert_eq!(tx.capacity(), 1, "capacity 0 is taken as 1");
            let (tx, rx) = channel::<()>(3);
            assert_eq!((tx.capacity(), rx.capacity()), (3, 3));
            Ok(())
        });
    });
}

#[test]
fn unbounded_channel_never_waits() {
    watchdog(|| {
        let n = run(async {
            let (tx, rx) = unbounded_channel();
            for i in 0..100_000u32 {
                tx.send(i).await?;
            }
            assert_eq!(rx.capacity(), usize::MAX);
            drop(tx);
            let mut n = 0u32;
            while let Ok(v) = rx.recv().await {
                assert_eq!(v, n);
                n += 1;
            }
            Ok(n)
        });
        assert_eq!(n, 100_000);
    });
}

#[test]
fn recv_timeout_then_send_reaches_next_receiver() {
    watchdog(|| {
        let (timed, second) = run_mock(async {
            let (tx, rx) = channel::<u32>(4);
            let rx2 = rx.clone();
            // First in line, but gives up after a second.
            let first = threadlib::spawn(async move {
                threadlib::with_timeout(Duration::from_secs(1), rx.recv()).await
            });
            settle().await?;
            let second = threadlib::spawn(async move { rx2.recv().await });
            settle().await?;
            threadlib::sleep(Duration::from_secs(5)).await?;
            tx.send(42).await?;
            Ok((first.await?, second.await?))
        });
        assert!(matches!(timed, Err(Error::TimedOut)), "{timed:?}");
        assert_eq!(second.unwrap(), 42);
    });
}

#[test]
fn receiver_cancelled_after_value_reserved_passes_it_on() {
    watchdog(|| {
        let (r1, r2) = run(async {
            let (tx, rx) = channel::<u32>(4);
            let rx2 = rx.clone();
            let out1 = Rc::new(RefCell::new(None));
            let o1 = out1.clone();
            let second = threadlib::spawn(async move {
                settle().await?;
                rx2.recv().await
            });
            let _ = threadlib::scope(|s| async move {
                s.spawn(async move {
                    *o1.borrow_mut() = Some(rx.recv().await);
                    Ok(())
                });
                settle().await?;
                settle().await?;
                s.cancel();
                // Reserved for the first receiver, which is cancelled: must reach the second.
                let _ = tx.try_send(7);
                Ok(())
            })
            .await;
            let r2 = threadlib::with_timeout(Duration::from_secs(5), second).await;
            let r1 = out1.borrow_mut().take();
            Ok((r1, r2))
        });
        assert!(matches!(r1, Some(Err(Error::Cancelled))), "{r1:?}");
        assert!(matches!(r2, Ok(Ok(7))), "{r2:?}");
    });
}

#[test]
fn sender_cancelled_gets_value_back_and_frees_its_turn() {
    watchdog(|| {
        let (cancelled, got) = run_mock(async {
            let (tx, rx) = channel(1);
            tx.send("first").await?;
            let tx1 = tx.clone();
            let out = Rc::new(RefCell::new(None));
            let o = out.clone();
            let _ = threadlib::scope(|s| async move {
                s.spawn(async move {
                    *o.borrow_mut() = Some(tx1.send("cancelled").await.map_err(|e| e.into_parts()));
                    Ok(())
                });
                settle().await?;
                s.cancel();
                Ok(())
            })
            .await;
            let tx2 = tx.clone();
            let later =
                threadlib::spawn(async move { tx2.send("later").await.map_err(Error::from) });
            settle().await?;
            drop(tx);
            let mut got = Vec::new();
            while let Ok(v) = rx.recv().await {
                got.push(v);
            }
            later.await??;
            let cancelled = out.borrow_mut().take();
            Ok((cancelled, got))
        });
        assert!(
            matches!(cancelled, Some(Err((Error::Cancelled, "cancelled")))),
            "{cancelled:?}"
        );
        assert_eq!(got, ["first", "later"]);
    });
}

#[test]
fn send_timeout_on_full_channel() {
    watchdog(|| {
        let r = run_mock(async {
            let (tx, _rx) = channel(1);
            tx.send(1).await?;
            Ok(
                threadlib::with_timeout(Duration::from_secs(600), async { Ok(tx.send(2).await?) })
                    .await,
            )
        });
        assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    });
}

/// A value that holds a sender of the channel it travels in.
struct Loop(#[allow(dead_code)] Sender<Loop>);

#[test]
fn dropping_buffered_values_that_hold_the_channel_is_safe() {
    watchdog(|| {
        run(async {
            let (tx, rx) = channel(2);
            tx.send(Loop(tx.clone())).await?;
            drop(rx); // drops the buffered Loop, whose Sender touches the channel
            assert!(tx.is_closed());
            Ok(())
        });
    });
}

/// Producers and consumers with random suspensions and random timeouts: every value
/// whose send succeeded is received exactly once, and every failed send returns its
/// value.
#[test]
fn channel_stress_with_timeouts_loses_nothing() {
    watchdog(|| {
        let (sent, received, returned) = run_mock(async {
            let (tx, rx) = channel::<u32>(2);
            let received = Rc::new(RefCell::new(Vec::new()));
            let sent = Rc::new(RefCell::new(Vec::new()));
            let returned = Rc::new(RefCell::new(Vec::new()));
            let rand = rng(0x2545_f491_4f6c_dd1d);
            let mut producers = Vec::new();
            for p in 0..4u32 {
                let (tx, sent, returned, rand) =
                    (tx.clone(), sent.clone(), returned.clone(), rand.clone());
                producers.push(threadlib::spawn(async move {
                    for i in 0..200u32 {
                        let v = p * 1000 + i;
                        let wait = Duration::from_millis(rand(5));
                        let r = threadlib::with_timeout(wait, async {
                            Ok(tx.send(v).await.map_err(|e| e.into_inner()))
                        })
                        .await;
                        match r {
                            Ok(Ok(())) => sent.borrow_mut().push(v),
                            Ok(Err(v)) => returned.borrow_mut().push(v),
                            Err(_) => returned.borrow_mut().push(v), // timed out
                        }
                        if rand(3) == 0 {
                            threadlib::yield_now().await?;
                        }
                    }
                    Result::Ok(())
                }));
            }
            drop(tx);
            let mut consumers = Vec::new();
            for _ in 0..3 {
                let (rx, received, rand) = (rx.clone(), received.clone(), rand.clone());
                consumers.push(threadlib::spawn(async move {
                    loop {
                        let wait = Duration::from_millis(rand(4) + 1);
                        match threadlib::with_timeout(wait, rx.recv()).await {
                            Ok(v) => received.borrow_mut().push(v),
                            Err(Error::TimedOut) => {}
                            Err(Error::Closed) => return Result::Ok(()),
                            Err(e) => return Err(e),
                        }
                        if rand(2) == 0 {
                            threadlib::sleep(Duration::from_millis(rand(6))).await?;
                        }
                    }
                }));
            }
            drop(rx);
            for h in producers.into_iter().chain(consumers) {
                h.await??;
            }
            let (mut s, mut r) = (sent.borrow().clone(), received.borrow().clone());
            s.sort_unstable();
            r.sort_unstable();
            let returned = returned.borrow().len();
            Ok((s, r, returned))
        });
        assert_eq!(sent, received);
        assert_eq!(sent.len() + returned, 800);
        assert!(!sent.is_empty() && returned > 0, "both outcomes exercised");
    });
}

// ----- Spurious wake-ups and random cancellation -----------------------------------

#[test]
fn spurious_wakeups_are_rechecked() {
    watchdog(|| {
        let (early, got) = run(async {
            let m = Rc::new(Mutex::new(()));
            let (tx, rx) = channel::<u8>(1);
            let (p, r) = Promise::<u8>::new();
            let c = Rc::new(Condition::new());
            let held = m.lock().await?;
            let done = Rc::new(Cell::new(0));
            let mut hs = Vec::new();
            {
                let (m, d) = (m.clone(), done.clone());
                hs.push(threadlib::spawn(async move {
                    drop(m.lock().await?);
                    d.set(d.get() + 1);
                    Result::Ok(0)
                }));
            }
            {
                let d = done.clone();
                hs.push(threadlib::spawn(async move {
                    let v = rx.recv().await?;
                    d.set(d.get() + 1);
                    Result::Ok(v)
                }));
            }
            {
                let d = done.clone();
                hs.push(threadlib::spawn(async move {
                    let v = p.wait().await?;
                    d.set(d.get() + 1);
                    Result::Ok(v)
                }));
            }
            {
                let (c, d) = (c.clone(), done.clone());
                hs.push(threadlib::spawn(async move {
                    c.wait_no_mutex().await?;
                    d.set(d.get() + 1);
                    Result::Ok(4)
                }));
            }
            settle().await?;
            for _ in 0..3 {
                for h in &hs {
                    threadlib::unpark(h.id());
                }
                settle().await?;
            }
            let early = done.get();
            drop(held);
            tx.send(2).await?;
            r.resolve(3);
            c.notify_one();
            let mut got = Vec::new();
            for h in hs {
                got.push(h.await??);
            }
            Ok((early, got))
        });
        assert_eq!(early, 0, "nobody proceeds on a spurious wake-up");
        assert_eq!(got, [0, 2, 3, 4]);
    });
}

/// Tiny deterministic generator for the stress tests.
fn rng(seed: u64) -> Rc<dyn Fn(u64) -> u64> {
    let state = Cell::new(seed);
    Rc::new(move |n| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x % n
    })
}

#[test]
fn mutex_and_semaphore_stress_with_timeouts() {
    watchdog(|| {
        const PERMITS: usize = 5;
        let (max_in_lock, max_permits_out, locked, avail, acquired, timed_out) = run_mock(async {
            let m = Rc::new(Mutex::new(()));
            let sem = Rc::new(Semaphore::new(PERMITS));
            let in_lock = Rc::new(Cell::new(0));
            let max_in_lock = Rc::new(Cell::new(0));
            let out = Rc::new(Cell::new(0usize));
            let max_out = Rc::new(Cell::new(0usize));
            let acquired = Rc::new(Cell::new(0));
            let timed_out = Rc::new(Cell::new(0));
            let rand = rng(0x9e37_79b9_7f4a_7c15);
            let mut hs = Vec::new();
            for _ in 0..12 {
                let (m, sem, rand) = (m.clone(), sem.clone(), rand.clone());
                let (in_lock, max_in_lock) = (in_lock.clone(), max_in_lock.clone());
                let (out, max_out) = (out.clone(), max_out.clone());
                let (acquired, timed_out) = (acquired.clone(), timed_out.clone());
                hs.push(threadlib::spawn(async move {
                    for _ in 0..60 {
                        let patience = Duration::from_millis(rand(8));
                        let hold = Duration::from_millis(rand(3));
                        if rand(2) == 0 {
                            let r = threadlib::with_timeout(patience, async {
                                let _g = m.lock().await?;
                                in_lock.set(in_lock.get() + 1);
                                max_in_lock.set(max_in_lock.get().max(in_lock.get()));
                                let r = threadlib::protect(threadlib::sleep(hold)).await;
                                in_lock.set(in_lock.get() - 1);
                                r
                            })
                            .await;
                            match r {
                                Ok(()) => acquired.set(acquired.get() + 1),
                                Err(Error::TimedOut) => timed_out.set(timed_out.get() + 1),
                                Err(e) => return Err(e),
                            }
                        } else {
                            let n = rand(3) as usize + 1;
                            let r = threadlib::with_timeout(patience, async {
                                let _p = sem.acquire(n).await?;
                                out.set(out.get() + n);
                                max_out.set(max_out.get().max(out.get()));
                                let r = threadlib::protect(threadlib::sleep(hold)).await;
                                out.set(out.get() - n);
                                r
                            })
                            .await;
                            match r {
                                Ok(()) => acquired.set(acquired.get() + 1),
                                Err(Error::TimedOut) => timed_out.set(timed_out.get() + 1),
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Result::Ok(())
                }));
            }
            for h in hs {
                h.await??;
            }
            Ok((
                max_in_lock.get(),
                max_out.get(),
                m.is_locked(),
                sem.available_permits(),
                acquired.get(),
                timed_out.get(),
            ))
        });
        assert_eq!(max_in_lock, 1);
        assert!(max_permits_out <= PERMITS);
        assert!(!locked);
        assert_eq!(avail, PERMITS);
        assert_eq!(acquired + timed_out, 12 * 60);
        assert!(acquired > 0 && timed_out > 0, "both outcomes exercised");
    });
}

/// A bounded buffer built from a mutex and two conditions, with consumers that give
/// up at random: no item is lost or duplicated and nobody is left waiting.
#[test]
fn condition_bounded_buffer_stress_with_timeouts() {
    watchdog(|| {
        const CAP: usize = 2;
        let (mut got, expected) = run_mock(async {
            let st = Rc::new((
                Mutex::new(VecDeque::<u32>::new()),
                Condition::new(), // not empty
                Condition::new(), // not full
            ));
            let got = Rc::new(RefCell::new(Vec::new()));
            let producing = Rc::new(Cell::new(3usize));
            let rand = rng(0xdead_beef_cafe_f00d);
            let mut hs = Vec::new();
            for p in 0..3u32 {
                let (st, producing, rand) = (st.clone(), producing.clone(), rand.clone());
                hs.push(threadlib::spawn(async move {
                    let (m, not_empty, not_full) = &*st;
                    for i in 0..100 {
                        let mut q = m.lock().await?;
                        while q.len() >= CAP {
                            q = not_full.wait(q).await?;
                        }
                        q.push_back(p * 1000 + i);
                        not_empty.notify_one();
                        drop(q);
                        if rand(3) == 0 {
                            threadlib::sleep(Duration::from_millis(rand(4))).await?;
                        }
                    }
                    producing.set(producing.get() - 1);
                    not_empty.notify_all();
                    Result::Ok(())
                }));
            }
            for _ in 0..3 {
                let (st, got, producing, rand) =
                    (st.clone(), got.clone(), producing.clone(), rand.clone());
                hs.push(threadlib::spawn(async move {
                    let (m, not_empty, not_full) = &*st;
                    loop {
                        let patience = Duration::from_millis(rand(3));
                        let r = threadlib::with_timeout(patience, async {
                            let mut q = m.lock().await?;
                            loop {
                                if let Some(v) = q.pop_front() {
                                    not_full.notify_one();
                                    return Ok(Some(v));
                                }
                                if producing.get() == 0 {
                                    return Ok(None);
                                }
                                q = not_empty.wait(q).await?;
                            }
                        })
                        .await;
                        match r {
                            Ok(Some(v)) => got.borrow_mut().push(v),
                            Ok(None) => return Result::Ok(()),
                            Err(Error::TimedOut) => {
                                threadlib::sleep(Duration::from_millis(rand(2))).await?
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }));
            }
            for h in hs {
                h.await??;
            }
            let expected: Vec<u32> = (0..3)
                .flat_map(|p| (0..100).map(move |i| p * 1000 + i))
                .collect();
            let got = got.borrow().clone();
            Ok((got, expected))
        });
        got.sort_unstable();
        assert_eq!(got, expected);
    });
}

#[test]
fn runtime_shutdown_cancels_waiters_cleanly() {
    watchdog(|| {
        let out = Rc::new(RefCell::new(Vec::new()));
        let o = out.clone();
        let r = threadlib::run(async move {
            let m = Rc::new(Mutex::new(()));
            let (tx, rx) = channel::<u8>(1);
            let held = m.lock().await?;
            let (m2, o1, o2) = (m.clone(), o.clone(), o.clone());
            drop(threadlib::spawn(async move {
                let r = m2.lock().await.map(drop);
                o1.borrow_mut().push(r);
            }));
            drop(threadlib::spawn(async move {
                let r = rx.recv().await.map(drop);
                o2.borrow_mut().push(r);
                drop(tx);
            }));
            settle().await?;
            // Return with both threads still waiting, and the lock never released.
            std::mem::forget(held);
            Result::Ok(())
        });
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
        let out = out.borrow();
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|r| matches!(r, Err(Error::Cancelled))),
            "{out:?}"
        );
    });
}

// ----- Outside a runtime ---------------------------------------------------------------

#[test]
fn waiting_outside_a_runtime_is_an_error_not_a_panic() {
    watchdog(|| {
        use futures::executor::block_on;

        let m = Mutex::new(1);
        {
            // Uncontended: fine anywhere.
            let g = block_on(m.lock()).unwrap();
            assert!(matches!(block_on(m.lock()), Err(Error::NoRuntime)));
            drop(g);
        }
        let sem = Semaphore::new(0);
        assert!(matches!(block_on(sem.acquire(1)), Err(Error::NoRuntime)));
        let c = Condition::new();
        let g = m.try_lock().unwrap();
        assert!(matches!(block_on(c.wait(g)), Err(Error::NoRuntime)));
        assert!(!m.is_locked(), "the guard was released");
        let (p, _r) = Promise::<u8>::new();
        assert!(matches!(block_on(p.wait()), Err(Error::NoRuntime)));
        let (tx, rx) = channel(1);
        assert!(matches!(block_on(rx.recv()), Err(Error::NoRuntime)));
        block_on(tx.send(1)).unwrap();
        let e = block_on(tx.send(2)).unwrap_err();
        assert!(matches!(e.error(), Error::NoRuntime));
        assert_eq!(e.into_inner(), 2);
        assert_eq!(block_on(rx.recv()).unwrap(), 1);
    });
}
