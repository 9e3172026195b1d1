//! Scopes, cancellation, panics, time, cores, foreign futures and tracing.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

mod support;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use support::{watchdog, within};

use threadlib::{protect, Error, Runtime};

#[test]
fn scope_propagates_first_error_and_runs_release_hooks_in_reverse() {
    watchdog(|| {
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let l = log.clone();
        let r = threadlib::run(async move {
            threadlib::scope(|s| {
                let l = l.clone();
                async move {
                    let (l1, l2) = (l.clone(), l.clone());
                    s.on_release(move || l1.borrow_mut().push("release 1".into()));
                    s.on_release(move || l2.borrow_mut().push("release 2".into()));
                    let l3 = l.clone();
                    s.spawn(async move {
                        let r = threadlib::sleep(Duration::from_secs(60)).await;
                        l3.borrow_mut().push(format!("sleeper: {r:?}"));
                        r
                    });
                    s.spawn(async { Err::<(), _>(Error::other("first")) });
                    s.spawn(async {
                        threadlib::yield_now().await?;
                        Err::<(), _>(Error::other("second"))
                    });
                    Ok(())
                }
            })
            .await
        })
        .unwrap();
        assert_eq!(r.unwrap_err().to_string(), "first");
        assert_eq!(
            *log.borrow(),
            ["sleeper: Err(Cancelled)", "release 2", "release 1"]
        );
    });
}

#[test]
fn body_error_cancels_children_and_is_returned() {
    watchdog(|| {
        let r = threadlib::run(async {
            threadlib::scope(|s| async move {
                s.spawn(async { threadlib::park().await });
                threadlib::yield_now().await?;
                Err::<(), _>(Error::other("body failed"))
            })
            .await
        })
        .unwrap();
        assert_eq!(r.unwrap_err().to_string(), "body failed");
    });
}

#[test]
fn nested_scopes_are_cancelled_with_their_parent() {
    watchdog(|| {
        let r = threadlib::run(async {
            threadlib::scope(|s| async move {
                s.spawn(async {
                    threadlib::scope(|inner| async move {
                        inner.spawn(async { threadlib::sleep(Duration::from_secs(3600)).await });
                        threadlib::park().await
                    })
                    .await
                });
                threadlib::sleep(Duration::from_millis(5)).await?;
                Err::<(), _>(Error::other("outer"))
            })
            .await
        })
        .unwrap();
        assert_eq!(r.unwrap_err().to_string(), "outer");
    });
}

#[test]
fn panic_becomes_scope_error_and_scheduler_survives() {
    watchdog(|| {
        let out = threadlib::run(async {
            let r = threadlib::scope(|s| async move {
                s.spawn(async {
                    threadlib::yield_now().await?;
                    panic!("kaboom");
                    #[allow(unreachable_code)]
                    Ok(())
                });
                s.spawn(async { threadlib::park().await });
                Ok(())
            })
            .await;
            let plain = threadlib::spawn(async { panic!("plain") }).await;
            // The scheduler still runs threads afterwards.
            let after = threadlib::spawn(async { 7 }).await.unwrap();
            (r, plain, after)
        })
        .unwrap();
        assert!(
            matches!(out.0, Err(Error::Panicked(ref m)) if m == "kaboom"),
            "{:?}",
            out.0
        );
        assert!(matches!(out.1, Err(Error::Panicked(ref m)) if m == "plain"));
        assert_eq!(out.2, 7);
    });
}

#[test]
fn protect_defers_cancellation() {
    watchdog(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let r = threadlib::run(async move {
            threadlib::scope(|s| async move {
                let l2 = l.clone();
                s.spawn(async move {
                    let r = threadlib::protect(threadlib::sleep(Duration::from_millis(20))).await;
                    l2.borrow_mut().push(format!("protected sleep: {r:?}"));
                    let r = threadlib::yield_now().await;
                    l2.borrow_mut().push(format!("after: {r:?}"));
                    r
                });
                threadlib::yield_now().await?;
                s.cancel();
                Ok(())
            })
            .await
        })
        .unwrap();
        assert!(matches!(r, Err(Error::Cancelled)));
        assert_eq!(
            *log.borrow(),
            ["protected sleep: Ok(())", "after: Err(Cancelled)"]
        );
    });
}

#[test]
fn mock_clock_runs_long_timeouts_instantly() {
    watchdog(|| {
        let rt = Runtime::builder().mock_clock(true).build().unwrap();
        let wall = std::time::Instant::now();
        rt.block_on(async {
            let t0 = threadlib::time::now();
            // A ten-minute timeout that fires.
            let r = threadlib::with_timeout(Duration::from_secs(600), threadlib::park()).await;
            assert!(matches!(r, Err(Error::TimedOut)));
            assert_eq!(threadlib::time::now() - t0, Duration::from_secs(600));
            // A timeout that does not fire leaves the value alone.
            let r = threadlib::with_timeout(Duration::from_secs(600), async {
                threadlib::sleep(Duration::from_secs(1)).await?;
                Ok(5)
            })
            .await;
            assert_eq!(r.unwrap(), 5);
            assert_eq!(threadlib::time::now() - t0, Duration::from_secs(601));
            // Manual advance.
            threadlib::time::advance(Duration::from_secs(10)).unwrap();
            assert_eq!(threadlib::time::now() - t0, Duration::from_secs(611));
        })
        .unwrap();
        assert!(wall.elapsed() < Duration::from_secs(2));
        // advance() on the real clock is an error, not a panic.
        threadlib::run(async {
            assert!(threadlib::time::advance(Duration::from_secs(1)).is_err())
        })
        .unwrap();
    });
}

#[test]
fn combinators_first_any_all() {
    watchdog(|| {
        threadlib::run(async {
            let r = threadlib::race(
                async {
                    threadlib::sleep(Duration::from_millis(50)).await?;
                    Ok("slow")
                },
                async {
                    threadlib::sleep(Duration::from_millis(1)).await?;
                    Ok("fast")
                },
            )
            .await;
            assert_eq!(r.unwrap(), "fast");
            let futs: Vec<
                std::pin::Pin<Box<dyn std::future::Future<Output = threadlib::Result<u32>>>>,
            > = vec![
                Box::pin(async { Err(Error::other("no")) }),
                Box::pin(async {
                    threadlib::yield_now().await?;
                    Ok(2)
                }),
            ];
            assert_eq!(threadlib::any(futs).await.unwrap(), 2);
            let v = threadlib::all((0..5u32).map(|i| async move {
                threadlib::yield_now().await?;
                Ok(i * i)
            }))
            .await
            .unwrap();
            assert_eq!(v, [0, 1, 4, 9, 16]);
            let e = threadlib::all((0..3u32).map(|i| async move {
                if i == 1 {
                    return Err(Error::other("one failed"));
                }
                threadlib::park().await?;
                Ok(i)
            }))
            .await;
            assert_eq!(e.unwrap_err().to_string(), "one failed");
        })
        .unwrap();
    });
}

#[test]
fn cross_core_spawn_and_messages() {
    watchdog(|| {
        let rt = Runtime::builder().cores(3).build().unwrap();
        rt.block_on(async {
            assert_eq!(threadlib::cores(), 3);
            let (tx, rx) = threadlib::sync::remote::channel::<(usize, u32)>(4);
            let mut hs = Vec::new();
            for core in 0..3 {
                let tx = tx.clone();
                hs.push(
                    threadlib::spawn_on(core, move || async move {
                        // Core-local state may be Rc.
                        let local = Rc::new(RefCell::new(0u32));
                        for i in 0..100 {
                            *local.borrow_mut() += i;
                            tx.send((threadlib::core_index().unwrap(), i))
                                .await
                                .unwrap();
                        }
                        let v = *local.borrow();
                        v
                    })
                    .unwrap(),
                );
            }
            drop(tx);
            let mut per_core = [0u32; 3];
            while let Ok((core, _)) = rx.recv().await {
                per_core[core] += 1;
            }
            assert_eq!(per_core, [100, 100, 100]);
            for h in hs {
                assert_eq!(h.join().await.unwrap(), 4950);
            }
            // Bad use: a core that does not exist.
            let e = threadlib::spawn_on(7, || async {}).err().unwrap();
            assert!(matches!(e, Error::NoSuchCore { core: 7, cores: 3 }), "{e}");
            // Bad use: a closed channel.
            let (tx, rx) = threadlib::sync::remote::channel::<u8>(1);
            drop(rx);
            assert!(matches!(tx.send(1).await, Err(Error::Closed)));
        })
        .unwrap();
    });
}

/// Waiting on a cross-core one-shot or channel is a cancellation point, as a system
/// call is: a timeout or a cancelled scope ends the wait with nothing taken or sent,
/// and the value still reaches a receiver that waits again.
#[test]
fn cross_core_waits_are_cancellation_points() {
    use threadlib::sync::remote::{channel, oneshot};
    watchdog(|| {
        let rt = Runtime::builder().cores(2).build().unwrap();
        rt.block_on(async {
            let short = Duration::from_millis(20);
            let (tx, rx) = oneshot::<u32>();
            let waited = threadlib::with_timeout(short, rx.recv()).await;
            assert!(matches!(waited, Err(Error::TimedOut)), "{waited:?}");
            assert!(
                tx.send(1).is_err(),
                "the cancelled receive dropped the receiver"
            );

            let (tx, rx) = channel::<u32>(1);
            let waited = threadlib::with_timeout(short, rx.recv()).await;
            assert!(matches!(waited, Err(Error::TimedOut)), "{waited:?}");
            tx.send(1).await.unwrap();
            // Full: a send waits, and is cancelled with its value not queued.
            let waited = threadlib::with_timeout(short, tx.send(2)).await;
            assert!(matches!(waited, Err(Error::TimedOut)), "{waited:?}");
            assert_eq!(rx.recv().await.unwrap(), 1);
            drop(tx);
            assert!(
                matches!(rx.recv().await, Err(Error::Closed)),
                "2 was queued"
            );

            // A sender that gave up leaves no stale turn: the slot the next receive
            // frees goes to a sender that still waits, on another core.
            let (tx, rx) = channel::<u32>(1);
            tx.send(1).await.unwrap();
            let waited = threadlib::with_timeout(short, tx.send(2)).await;
            assert!(matches!(waited, Err(Error::TimedOut)), "{waited:?}");
            let other = tx.clone();
            let b = threadlib::spawn_on(1, move || async move { other.send(3).await }).unwrap();
            threadlib::sleep(short).await.unwrap();
            assert_eq!(rx.recv().await.unwrap(), 1);
            let got = threadlib::with_timeout(Duration::from_secs(5), rx.recv()).await;
            assert_eq!(got.unwrap(), 3);
            b.join().await.unwrap().unwrap();

            // Waiting for another core's thread is cancelled like any wait, and says so.
            let slow = threadlib::spawn_on(1, || async {
                threadlib::sleep(Duration::from_secs(1)).await
            })
            .unwrap();
            let waited = threadlib::with_timeout(short, slow.join()).await;
            assert!(matches!(waited, Err(Error::TimedOut)), "{waited:?}");

            // A scope's cancellation reaches a thread waiting for another core.
            let (_tx, rx) = oneshot::<u32>();
            let r = threadlib::scope(|s| async move {
                s.spawn(async move { rx.recv().await.map(drop) });
                threadlib::sleep(short).await?;
                s.cancel();
                Ok(())
            })
            .await;
            assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        })
        .unwrap();
    });
}

#[test]
fn foreign_futures_run_inside_threads() {
    watchdog(|| {
        use futures::channel::{mpsc, oneshot};
        use futures::{SinkExt, StreamExt};
        threadlib::run(async {
            // Woken from another OS thread.
            let (tx, rx) = oneshot::channel::<u32>();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                tx.send(99).unwrap();
            });
            assert_eq!(rx.await.unwrap(), 99);
            // Woken by another thread of the same core.
            let (mut tx, mut rx) = mpsc::channel::<u32>(1);
            let h = threadlib::spawn(async move {
                let mut sum = 0;
                while let Some(v) = rx.next().await {
                    sum += v;
                }
                sum
            });
            for i in 1..=100 {
                tx.send(i).await.unwrap();
            }
            drop(tx);
            assert_eq!(h.await.unwrap(), 5050);
        })
        .unwrap();
    });
}

#[test]
fn outside_a_runtime_calls_fail_cleanly() {
    watchdog(|| {
        assert!(matches!(
            threadlib::try_spawn(async {}),
            Err(Error::NoRuntime)
        ));
        let r = futures::executor::block_on(threadlib::sleep(Duration::from_millis(1)));
        assert!(matches!(r, Err(Error::NoRuntime)));
        assert!(threadlib::spawn_on(0, || async {}).is_err());
    });
}

#[test]
fn trace_is_valid_chrome_json_with_expected_events() {
    watchdog(|| {
        let path =
            std::env::temp_dir().join(format!("threadlib-trace-{}.json", std::process::id()));
        let rt = Runtime::builder().trace_file(&path).build().unwrap();
        rt.block_on(async {
            let h = threadlib::spawn(async { threadlib::sleep(Duration::from_millis(1)).await });
            threadlib::yield_now().await.unwrap();
            h.await.unwrap().unwrap();
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let events = v["traceEvents"].as_array().unwrap();
        let has =
            |cat: &str, name: &str| events.iter().any(|e| e["cat"] == cat && e["name"] == name);
        assert!(has("spawn", "spawn"));
        assert!(has("run", "run"));
        assert!(has("suspend", "sleep"));
        assert!(has("suspend", "yield"));
        assert!(has("suspend", "park"));
        assert!(has("resume", "resume"));
        assert!(has("exit", "exit"));
        let begins = events.iter().filter(|e| e["ph"] == "B").count();
        let ends = events.iter().filter(|e| e["ph"] == "E").count();
        assert_eq!(begins, ends);
        assert!(events.iter().all(|e| e["ph"] == "M" || e["ts"].is_number()));
    });
}

/// A foreign future that wakes its own waker while it is being polled, then returns
/// `Pending`, is polled again: the wake-up of a running thread is not lost.
#[test]
fn a_future_waking_itself_while_polled_runs_again() {
    let r = watchdog(|| {
        threadlib::run(async {
            let mut woken = false;
            std::future::poll_fn(|cx| {
                if woken {
                    return Poll::Ready(());
                }
                woken = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            woken
        })
    });
    assert!(matches!(r, Ok(true)), "{r:?}");
}

/// A call's result that its future never reads (the future is dropped after the call
/// completed) is dropped with the future, releasing what it holds at once rather than
/// at the thread's next call.
#[test]
fn an_unread_result_is_dropped_with_its_call_future() {
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let r = watchdog(|| {
        threadlib::run(async {
            let dropped = Arc::new(AtomicBool::new(false));
            let d = dropped.clone();
            let mut call = Some(Box::pin(threadlib::blocking::run(move || Flag(d))));
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                if polls == 1 {
                    assert!(call.as_mut().unwrap().as_mut().poll(cx).is_pending());
                    return Poll::Pending;
                }
                // The job's result woke the thread: drop the call unread.
                drop(call.take());
                Poll::Ready(dropped.load(Ordering::SeqCst))
            })
            .await
        })
    });
    assert!(matches!(r, Ok(true)), "{r:?}");
}

/// Cancelling a scope interrupts the blocked threads of every scope nested in it,
/// however many sibling scopes were opened under it since.
#[test]
fn cancelling_a_scope_reaches_every_nested_scope() {
    let r = watchdog(|| {
        threadlib::run(async {
            threadlib::scope(|s| async move {
                for _ in 0..3 {
                    s.spawn(async {
                        // The body ends at once: its thread then waits for the
                        // parked one, protected, so only the scope tree reaches it.
                        threadlib::scope(|inner| async move {
                            inner.spawn(async { threadlib::park().await });
                            Ok(())
                        })
                        .await
                    });
                    threadlib::yield_now().await?;
                }
                s.cancel();
                Ok(())
            })
            .await
        })
    });
    assert!(matches!(r, Ok(Err(Error::Cancelled))), "{r:?}");
}

/// A `protect` dropped before it finished gives the thread its own cancellation
/// context back: the thread's next call sees its scope's cancellation.
#[test]
fn a_protect_dropped_early_restores_the_threads_cancellation() {
    let r = watchdog(|| {
        threadlib::run(async {
            threadlib::scope(|s| async move {
                {
                    let f = protect(threadlib::park());
                    futures::pin_mut!(f);
                    assert!(futures::poll!(f.as_mut()).is_pending());
                }
                s.cancel();
                let slept = threadlib::sleep(Duration::from_millis(10)).await;
                assert!(matches!(slept, Err(Error::Cancelled)), "{slept:?}");
                Ok(())
            })
            .await
        })
    });
    assert!(matches!(r, Ok(Err(Error::Cancelled))), "{r:?}");
}

/// A call future dropped after another future of the same thread made its call in the
/// same poll withdraws only its own call: the other one (a park, here) still goes to
/// the scheduler and completes.
#[test]
fn dropping_a_call_future_leaves_another_futures_call_in_place() {
    watchdog(|| {
        let r = threadlib::run(async {
            let me = threadlib::current().unwrap();
            let _unparker = threadlib::spawn(async move {
                threadlib::sleep(Duration::from_millis(10)).await.unwrap();
                threadlib::unpark(me)
            });
            let mut first = Some(Box::pin(threadlib::sleep(Duration::from_millis(1))));
            let mut parked = Box::pin(threadlib::park());
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                match polls {
                    // The sleep makes its call.
                    1 => assert!(first.as_mut().unwrap().as_mut().poll(cx).is_pending()),
                    // Its completion runs the thread again: the park makes its call,
                    // then the sleep is dropped unread.
                    2 => {
                        assert!(parked.as_mut().poll(cx).is_pending());
                        drop(first.take());
                    }
                    _ => return parked.as_mut().poll(cx),
                }
                Poll::Pending
            })
            .await
        });
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
    });
}

#[test]
fn a_call_future_dropped_after_one_poll_leaves_no_trace() {
    watchdog(|| {
        use futures::FutureExt;
        // Dropped before dispatch (polled once, then dropped in the same poll).
        let r = threadlib::run(async {
            {
                let f = threadlib::park();
                futures::pin_mut!(f);
                assert!(futures::poll!(f.as_mut()).is_pending());
            }
            assert!(threadlib::sleep(Duration::from_millis(1))
                .now_or_never()
                .is_none());
            threadlib::yield_now().await
        });
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
        // ...then waiting on a foreign waker must not dispatch the stale call.
        let r = threadlib::run(async {
            let (tx, rx) = futures::channel::oneshot::channel::<u8>();
            let _h = threadlib::spawn(async move {
                threadlib::sleep(Duration::from_millis(10)).await.unwrap();
                let _ = tx.send(5);
            });
            {
                let f = threadlib::park();
                futures::pin_mut!(f);
                assert!(futures::poll!(f.as_mut()).is_pending());
            }
            rx.await.map_err(Error::other)
        });
        assert!(matches!(r, Ok(Ok(5))), "{r:?}");
    });
}

/// A runtime on a mock clock that jumps to the next deadline when nothing else is due.
fn mock_runtime() -> Runtime {
    Runtime::builder().mock_clock(true).build().unwrap()
}

/// A timeout around a scope (or a combinator, which is one) cancels the scope's threads
/// when it fires, also once the body has returned and the scope only waits for them; so
/// does a cancellation that reaches a scope made inside another scope's body.
#[test]
fn a_timeout_reaches_the_threads_of_a_scope_inside_it() {
    watchdog(|| {
        mock_runtime()
            .block_on(async {
                let t0 = threadlib::time::now();
                let sleeper = threadlib::scope(|s| async move {
                    s.spawn(threadlib::sleep(Duration::from_secs(3600)));
                    Ok(())
                });
                let r = threadlib::with_timeout(Duration::from_secs(1), sleeper).await;
                assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
                assert_eq!(threadlib::time::now() - t0, Duration::from_secs(1));

                let slow = |secs| async move {
                    threadlib::sleep(Duration::from_secs(secs)).await?;
                    Ok(secs)
                };
                let r = threadlib::with_timeout(
                    Duration::from_secs(1),
                    threadlib::race(slow(3600), slow(7200)),
                )
                .await;
                assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
                assert_eq!(threadlib::time::now() - t0, Duration::from_secs(2));

                let mut d = threadlib::deadline::Deadline::new();
                let r = d
                    .within(
                        Duration::from_secs(1),
                        threadlib::scope(|s| async move {
                            s.spawn(threadlib::sleep(Duration::from_secs(3600)));
                            Ok(())
                        }),
                    )
                    .await;
                assert!(
                    matches!(r, Err(threadlib::deadline::TransportError::TimedOut)),
                    "{r:?}"
                );
                assert_eq!(threadlib::time::now() - t0, Duration::from_secs(3));

                // The outer scope fails after 1 s; the inner scope, made by the outer
                // body and waiting for its sleeper, is cancelled with it.
                let r = threadlib::scope(|outer| async move {
                    outer.spawn(async {
                        threadlib::sleep(Duration::from_secs(1)).await?;
                        Err::<(), _>(Error::other("failed"))
                    });
                    threadlib::scope(|inner| async move {
                        inner.spawn(threadlib::sleep(Duration::from_secs(3600)));
                        Ok(())
                    })
                    .await
                })
                .await;
                assert_eq!(r.unwrap_err().to_string(), "failed");
                assert_eq!(threadlib::time::now() - t0, Duration::from_secs(4));
                assert_eq!(threadlib::live_threads(), 1, "only main is left");
                assert_eq!(threadlib::time::pending_timers(), 0);
            })
            .unwrap();
    });
}

/// A scope whose future is dropped unfinished (the body panicked, or the future was
/// polled once and let go) cancels its threads at once; the last to exit runs the
/// release hooks.
#[test]
fn a_dropped_scope_cancels_its_threads_and_releases_after_them() {
    use futures::FutureExt;
    watchdog(|| {
        mock_runtime()
            .block_on(async {
                let log = Rc::new(RefCell::new(Vec::<String>::new()));
                let child = |log: Rc<RefCell<Vec<String>>>| async move {
                    let r = threadlib::sleep(Duration::from_secs(10)).await;
                    log.borrow_mut().push(format!("child: {r:?}"));
                    r
                };
                let (l, l2) = (log.clone(), log.clone());
                let h = threadlib::spawn(threadlib::scope(move |s| async move {
                    s.on_release(move || l2.borrow_mut().push("released".into()));
                    s.spawn(child(l));
                    threadlib::yield_now().await?;
                    panic!("the body panics");
                }));
                let r: threadlib::Result<threadlib::Result<()>> = h.await;
                assert!(matches!(r, Err(Error::Panicked(_))), "{r:?}");
                threadlib::yield_now().await.unwrap();
                assert_eq!(*log.borrow(), ["child: Err(Cancelled)", "released"]);

                log.borrow_mut().clear();
                let (l, l2) = (log.clone(), log.clone());
                let mut dropped = Box::pin(threadlib::scope(move |s| async move {
                    s.on_release(move || l2.borrow_mut().push("released".into()));
                    s.spawn(child(l));
                    Ok(())
                }));
                assert!((&mut dropped).now_or_never().is_none());
                drop(dropped);
                let t0 = threadlib::time::now();
                threadlib::sleep(Duration::from_secs(20)).await.unwrap();
                assert_eq!(threadlib::time::now() - t0, Duration::from_secs(20));
                assert_eq!(*log.borrow(), ["child: Err(Cancelled)", "released"]);
                assert_eq!(threadlib::live_threads(), 1);
            })
            .unwrap();
    });
}

/// The release hooks of a dropped scope run from the scheduler, where nobody awaits
/// the scope: a hook that panics is contained (the scheduler and the other hooks go
/// on), also when the scope was dropped by a panic's unwinding.
#[test]
fn a_panicking_release_hook_of_a_dropped_scope_is_contained() {
    watchdog(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let out = mock_runtime()
            .block_on(async move {
                // Dropped with a thread still running: the last to exit runs them.
                let h = threadlib::spawn(threadlib::scope(move |s| async move {
                    s.on_release(move || r.store(true, Ordering::SeqCst));
                    s.on_release(|| panic!("a hook panics"));
                    s.spawn(threadlib::sleep(Duration::from_secs(1)));
                    threadlib::yield_now().await?;
                    panic!("the body panics");
                }));
                let first: threadlib::Result<threadlib::Result<()>> = h.await;
                // Dropped with no thread left, while the body's panic unwinds.
                let h = threadlib::spawn(threadlib::scope(|s| async move {
                    s.on_release(|| panic!("a hook panics"));
                    threadlib::yield_now().await?;
                    panic!("the body panics");
                }));
                let second: threadlib::Result<threadlib::Result<()>> = h.await;
                threadlib::sleep(Duration::from_secs(5)).await.unwrap();
                (first, second)
            })
            .unwrap();
        assert!(matches!(out.0, Err(Error::Panicked(_))), "{:?}", out.0);
        assert!(matches!(out.1, Err(Error::Panicked(_))), "{:?}", out.1);
        assert!(
            ran.load(Ordering::SeqCst),
            "the hook after the panicking one ran"
        );
    });
}

/// Cancelling a scope of many threads, and making many scopes side by side, take time
/// in proportion to their number (each exiting thread does not walk the rest again;
/// a new scope does not walk its siblings). The bounds are far above what linear work
/// takes and far below the quadratic cost.
#[test]
fn many_threads_in_a_scope_and_many_scopes_cost_linear_time() {
    within(Duration::from_secs(60), || {
        const N: usize = 20_000;
        threadlib::run(async {
            let started = std::time::Instant::now();
            let r = threadlib::scope(|s| async move {
                for _ in 0..N {
                    s.spawn(threadlib::sleep(Duration::from_secs(3600)));
                }
                threadlib::yield_now().await?;
                s.cancel();
                Ok(())
            })
            .await;
            assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(5), "{N} threads: {took:?}");

            let started = std::time::Instant::now();
            let gate = Rc::new(threadlib::sync::Condition::new());
            let handles: Vec<_> = (0..N)
                .map(|_| {
                    let gate = gate.clone();
                    threadlib::spawn(threadlib::scope(
                        |_| async move { gate.wait_no_mutex().await },
                    ))
                })
                .collect();
            threadlib::yield_now().await.unwrap();
            gate.notify_all();
            for h in handles {
                h.await.unwrap().unwrap();
            }
            let took = started.elapsed();
            assert!(took < Duration::from_secs(5), "{N} scopes: {took:?}");
        })
        .unwrap();
    });
}

/// A join given up (its timeout fired, its handle dropped) leaves no trace: the thread's
/// exit later does not wake the former joiner in an unrelated wait.
#[test]
fn an_abandoned_join_does_not_wake_the_former_joiner() {
    watchdog(|| {
        mock_runtime()
            .block_on(async {
                let mut h = threadlib::spawn(threadlib::sleep(Duration::from_secs(5)));
                let r = threadlib::with_timeout(Duration::from_secs(1), &mut h).await;
                assert!(matches!(r, Err(Error::TimedOut)));
                drop(h);
                let t0 = threadlib::time::now();
                let r = threadlib::with_timeout(Duration::from_secs(100), threadlib::park()).await;
                assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
                assert_eq!(threadlib::time::now() - t0, Duration::from_secs(100));
            })
            .unwrap();
    });
}

/// `fork` from a cancelled thread fails and makes no thread.
#[test]
fn fork_from_a_cancelled_thread_makes_no_thread() {
    watchdog(|| {
        threadlib::run(async {
            let ran = Rc::new(std::cell::Cell::new(false));
            let r2 = ran.clone();
            let r = threadlib::scope(|s| async move {
                s.cancel();
                let forked = threadlib::fork(async move { r2.set(true) }).await;
                assert!(matches!(forked, Err(Error::Cancelled)));
                Ok(())
            })
            .await;
            assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
            threadlib::yield_now().await.unwrap();
            assert!(!ran.get(), "the fork failed, yet its thread ran");
        })
        .unwrap();
    });
}

/// A real error is never hidden behind `Cancelled`, even one that comes after the
/// scope was cancelled.
#[test]
fn a_real_error_after_a_cancel_is_reported() {
    watchdog(|| {
        let r = threadlib::run(async {
            threadlib::scope(|s| async move {
                s.spawn(async {
                    protect(threadlib::yield_now()).await?;
                    Err::<(), _>(Error::other("cleanup failed"))
                });
                s.cancel();
                Ok(())
            })
            .await
        })
        .unwrap();
        assert_eq!(r.unwrap_err().to_string(), "cleanup failed");
    });
}

/// A thread still waiting in a foreign future (no cancellation point) when the runtime
/// stops is dropped, as Rust cancels a future, so that the runtime stops.
#[test]
fn a_thread_in_a_foreign_future_does_not_keep_the_runtime_from_stopping() {
    watchdog(|| {
        let (keep, rx) = futures::channel::oneshot::channel::<()>();
        let dropped = Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        threadlib::run(async move {
            threadlib::spawn(async move {
                let _guard = OnDrop(d);
                let _ = rx.await;
            });
            threadlib::yield_now().await.unwrap();
        })
        .unwrap();
        assert!(dropped.load(Ordering::SeqCst));
        drop(keep);
    });
}
