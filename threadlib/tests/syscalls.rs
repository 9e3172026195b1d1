//! Every system call kind completes, and every kind can be cancelled exactly.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

mod support;

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};
use support::watchdog;

use threadlib::{blocking, readiness, uring_io, Error, Readiness, Runtime};

fn rt() -> Runtime {
    Runtime::builder().build().unwrap()
}

/// Runs `body` in a scope that cancels it after the scheduler has had time to block
/// it in its call; asserts the body saw `Cancelled` and returns how long it took.
async fn cancel_while_blocked<F>(body: F) -> Duration
where
    F: std::future::Future<Output = threadlib::Result<()>> + 'static,
{
    let seen = Rc::new(Cell::new(false));
    let s2 = seen.clone();
    let t0 = Instant::now();
    let r = threadlib::scope(|s| async move {
        s.spawn(async move {
            let r = body.await;
            assert!(
                matches!(r, Err(Error::Cancelled)),
                "expected Cancelled, got {r:?}"
            );
            s2.set(true);
            r
        });
        threadlib::yield_now().await?;
        threadlib::yield_now().await?;
        s.cancel();
        Ok(())
    })
    .await;
    assert!(matches!(r, Err(Error::Cancelled)), "scope result {r:?}");
    assert!(seen.get(), "the blocked thread did not resume");
    t0.elapsed()
}

#[test]
fn yield_and_fork_order() {
    watchdog(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        rt().block_on(async move {
            let l2 = l.clone();
            l.borrow_mut().push("parent before fork");
            let h = threadlib::fork(async move { l2.borrow_mut().push("child") })
                .await
                .unwrap();
            l.borrow_mut().push("parent after fork");
            h.await.unwrap();
        })
        .unwrap();
        assert_eq!(
            *log.borrow(),
            ["parent before fork", "child", "parent after fork"]
        );
    });
}

#[test]
fn park_unpark_and_cancel() {
    watchdog(|| {
        rt().block_on(async {
            let me = threadlib::current().unwrap();
            let h = threadlib::spawn(async move {
                assert!(threadlib::unpark(me));
            });
            threadlib::park().await.unwrap();
            h.await.unwrap();
            assert!(cancel_while_blocked(threadlib::park()).await < Duration::from_secs(5));
        })
        .unwrap();
    });
}

#[test]
fn sleep_completes_and_cancels() {
    watchdog(|| {
        rt().block_on(async {
            let t0 = Instant::now();
            threadlib::sleep(Duration::from_millis(20)).await.unwrap();
            assert!(t0.elapsed() >= Duration::from_millis(20));
            let took =
                cancel_while_blocked(async { threadlib::sleep(Duration::from_secs(3600)).await })
                    .await;
            assert!(took < Duration::from_secs(5));
        })
        .unwrap();
    });
}

/// Long waits for events end by a timer the core arms at the next deadline, and arms
/// again only for an earlier one: each sleep below must still end at its own time,
/// whether the next deadline moved earlier (a shorter sleep began during a longer
/// one), later (the earlier sleep ended or was withdrawn), or below the length a
/// timer is armed for at all.
#[test]
fn sleeps_end_at_their_deadlines_as_the_next_deadline_moves() {
    watchdog(|| {
        rt().block_on(async {
            let t0 = Instant::now();
            let woke = move |at: Duration| {
                let took = t0.elapsed();
                assert!(took >= at, "woke at {took:?}, before {at:?}");
                assert!(
                    took < at + Duration::from_millis(150),
                    "woke at {took:?}, not {at:?}"
                );
                Ok(())
            };
            threadlib::scope(|s| async move {
                // Due at 400 ms, then joined by sleeps due earlier and later.
                s.spawn(async move {
                    threadlib::sleep(Duration::from_millis(400)).await?;
                    woke(Duration::from_millis(400))
                });
                // The core waits with only that deadline ahead (this thread waits on
                // the blocking pool), then a shorter sleep begins.
                blocking::run(|| std::thread::sleep(Duration::from_millis(10))).await?;
                threadlib::sleep(Duration::from_millis(10)).await?;
                woke(Duration::from_millis(20))?;
                // A deadline withdrawn before it came due: nothing wakes at 100 ms.
                let r = threadlib::with_timeout(
                    Duration::from_millis(80),
                    threadlib::sleep(Duration::from_millis(5)),
                )
                .await;
                assert!(r.is_ok(), "{r:?}");
                woke(Duration::from_millis(25))?;
                // Sub-millisecond sleeps, each waited for with a timeout.
                for i in 1..=5 {
                    threadlib::sleep(Duration::from_micros(300)).await?;
                    woke(Duration::from_millis(25) + Duration::from_micros(300 * i))?;
                }
                threadlib::sleep_until(t0.checked_add(Duration::from_millis(250)).unwrap()).await?;
                woke(Duration::from_millis(250))
            })
            .await
            .unwrap();
            woke(Duration::from_millis(400)).unwrap();
        })
        .unwrap();
    });
}

#[test]
fn fd_wait_completes_and_cancels() {
    watchdog(|| {
        rt().block_on(async {
            let (r, w) = iolib::fd::pipe().unwrap();
            iolib::fd::set_nonblocking(r.as_raw_fd(), true).unwrap();
            let rfd = r.as_raw_fd();
            let wfd = w.as_raw_fd();
            let h = threadlib::spawn(async move {
                let mut buf = [0u8; 16];
                loop {
                    match iolib::fd::read(rfd, &mut buf) {
                        Ok(n) => return buf[..n].to_vec(),
                        Err(e) if e.is_would_block() => {
                            readiness::wait(rfd, Readiness::Read).await.unwrap()
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            threadlib::sleep(Duration::from_millis(5)).await.unwrap();
            iolib::fd::write(wfd, b"ping").unwrap();
            assert_eq!(h.await.unwrap(), b"ping");
            // Cancel a thread waiting for readability on a quiet pipe.
            cancel_while_blocked(async move { readiness::wait(rfd, Readiness::Read).await }).await;
            // The fd is usable again afterwards.
            iolib::fd::write(wfd, b"x").unwrap();
            readiness::wait(rfd, Readiness::Read).await.unwrap();
            // Forgetting the fd wakes a thread still waiting on it, with EBADF.
            let mut byte = [0u8; 1];
            iolib::fd::read(rfd, &mut byte).unwrap();
            let waiter =
                threadlib::spawn(async move { readiness::wait(rfd, Readiness::Read).await });
            threadlib::yield_now().await.unwrap();
            readiness::forget(rfd);
            let woke = threadlib::with_timeout(Duration::from_secs(5), waiter).await;
            let outcome = woke.expect("forget wakes the waiter");
            assert!(
                matches!(&outcome, Err(Error::Io(e)) if e.raw_os_error() == Some(libc::EBADF)),
                "{outcome:?}"
            );
            drop((r, w));
        })
        .unwrap();
    });
}

#[test]
fn uring_reads_and_writes_files_and_cancels() {
    watchdog(|| {
        let dir = std::env::temp_dir().join(format!("threadlib-uring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data");
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let d2 = data.clone();
        let p2 = path.clone();
        let written = dir.join("written");
        rt().block_on(async move {
            // A write at an offset returns the count and the buffer, and lands there.
            let w = std::fs::File::create(&written).unwrap();
            let (n, back) = uring_io::write(w.as_raw_fd(), b"world".to_vec(), Some(6))
                .await
                .unwrap();
            assert_eq!((n, back.as_slice()), (5, &b"world"[..]));
            let (n, _) = uring_io::write(w.as_raw_fd(), b"hello ".to_vec(), Some(0))
                .await
                .unwrap();
            assert_eq!(n, 6);
            assert_eq!(std::fs::read(&written).unwrap(), b"hello world");

            let f = std::fs::File::open(&p2).unwrap();
            let mut got = Vec::new();
            loop {
                let chunk = uring_io::read(f.as_raw_fd(), 65536, Some(got.len() as u64))
                    .await
                    .unwrap();
                if chunk.is_empty() {
                    break;
                }
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, d2);
            let st = uring_io::statx(libc::AT_FDCWD, p2.to_str().unwrap(), 0, libc::STATX_SIZE)
                .await
                .unwrap();
            assert_eq!(st.stx_size, d2.len() as u64);
            // A read on an empty pipe blocks in the kernel until cancelled in the ring.
            let (r, _w) = iolib::fd::pipe().unwrap();
            let rfd = r.as_raw_fd();
            cancel_while_blocked(async move { uring_io::read(rfd, 64, None).await.map(|_| ()) })
                .await;
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn blocking_pool_completes_and_cancels() {
    watchdog(|| {
        rt().block_on(async {
            let v = blocking::run(|| (1..=10u64).product::<u64>())
                .await
                .unwrap();
            assert_eq!(v, 3_628_800);
            let r = blocking::run(|| -> u32 { panic!("in the pool") }).await;
            assert!(
                matches!(r, Err(Error::Panicked(ref m)) if m == "in the pool"),
                "{r:?}"
            );
            let took = cancel_while_blocked(async {
                blocking::run(|| std::thread::sleep(Duration::from_millis(300))).await
            })
            .await;
            assert!(
                took < Duration::from_millis(250),
                "cancel waited for the job: {took:?}"
            );
        })
        .unwrap();
    });
}

/// A blocking job cancelled while it waits for a free worker is withdrawn: it never
/// runs, and the job queued behind it still does.
#[test]
fn a_queued_blocking_job_cancelled_never_runs() {
    let ran = watchdog(|| {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        Runtime::builder()
            .blocking_threads(1)
            .build()
            .unwrap()
            .block_on(async move {
                let busy = threadlib::spawn(blocking::run(|| {
                    std::thread::sleep(Duration::from_millis(100))
                }));
                threadlib::yield_now().await.unwrap();
                // Queued behind the next one, which is withdrawn.
                let behind = threadlib::spawn(async {
                    threadlib::sleep(Duration::from_millis(1)).await?;
                    blocking::run(|| 7).await
                });
                // The only worker is busy: this job waits in the queue until cancelled.
                let queued = threadlib::with_timeout(
                    Duration::from_millis(20),
                    blocking::run(move || r.store(true, std::sync::atomic::Ordering::SeqCst)),
                )
                .await;
                assert!(matches!(queued, Err(Error::TimedOut)), "{queued:?}");
                busy.await.unwrap().unwrap();
                assert_eq!(behind.await.unwrap().unwrap(), 7);
                // Time for the worker to take a job left behind.
                threadlib::sleep(Duration::from_millis(50)).await.unwrap();
            })
            .unwrap();
        ran.load(std::sync::atomic::Ordering::SeqCst)
    });
    assert!(!ran, "the withdrawn job ran");
}

#[test]
fn missing_event_loop_is_a_clear_error() {
    watchdog(|| {
        let rt = Runtime::builder()
            .uring(None)
            .blocking_threads(0)
            .build()
            .unwrap();
        rt.block_on(async {
            let r = uring_io::read(0, 1, None).await;
            assert!(matches!(r, Err(Error::NoEventLoop("io_uring"))), "{r:?}");
            let r = blocking::run(|| 1).await;
            assert!(matches!(r, Err(Error::NoEventLoop(_))), "{r:?}");
        })
        .unwrap();
    });
}

#[test]
fn readiness_arriving_between_eagain_and_wait_is_not_lost() {
    watchdog(|| {
        rt().block_on(async {
            let (r, w) = iolib::fd::pipe().unwrap();
            iolib::fd::set_nonblocking(r.as_raw_fd(), true).unwrap();
            let rfd = r.as_raw_fd();
            // Register the fd with a first wait.
            iolib::fd::write(w.as_raw_fd(), b"a").unwrap();
            readiness::wait(rfd, Readiness::Read).await.unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(iolib::fd::read(rfd, &mut buf).unwrap(), 1);
            assert!(iolib::fd::read(rfd, &mut buf).unwrap_err().is_would_block());
            // Data arrives while the thread is busy with another call.
            let wfd = w.as_raw_fd();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                iolib::fd::write(wfd, b"b").unwrap();
            });
            threadlib::sleep(Duration::from_millis(50)).await.unwrap();
            let r2 = threadlib::with_timeout(
                Duration::from_secs(2),
                readiness::wait(rfd, Readiness::Read),
            )
            .await;
            assert!(r2.is_ok(), "{r2:?}");
            assert_eq!(iolib::fd::read(rfd, &mut buf).unwrap(), 1);
            writer.join().unwrap();
            readiness::forget(rfd);
            drop((r, w));
        })
        .unwrap();
    });
}
