//! What a deterministic simulation needs from the scheduler: seeded interleavings
//! that replay exactly, loops whose work comes at deadlines letting the mock clock
//! jump, virtual time for a simulated wall clock, and trace events on virtual time.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use support::watchdog;

use threadlib::syscall::call_word;
use threadlib::{EventLoop, LoopCx, Request, Runtime, ThreadId};

/// The order in which 20 threads, all ready at once, get to run.
fn order(n: u32, shuffle: Option<u64>) -> Vec<u32> {
    let mut b = Runtime::builder().mock_clock(true);
    if let Some(seed) = shuffle {
        b = b.shuffle_ready(seed);
    }
    b.build()
        .unwrap()
        .block_on(async move {
            let log = Rc::new(RefCell::new(Vec::new()));
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let log = log.clone();
                    threadlib::spawn(async move {
                        threadlib::yield_now().await.unwrap();
                        log.borrow_mut().push(i);
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
            log.take()
        })
        .unwrap()
}

#[test]
fn shuffled_runs_replay_for_a_seed_and_differ_between_seeds() {
    watchdog(|| {
        assert_eq!(
            order(20, None),
            (0..20).collect::<Vec<_>>(),
            "FIFO without a seed"
        );
        let a = order(20, Some(1));
        assert_eq!(a, order(20, Some(1)), "the same seed replays");
        assert_ne!(a, order(20, Some(2)), "another seed, another interleaving");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>(), "every thread ran once");
    });
}

/// Seeded orders include the FIFO one: over a few seeds, two ready threads run in
/// both orders.
#[test]
fn shuffled_runs_include_every_order() {
    let orders = watchdog(|| (0..32).map(|seed| order(2, Some(seed))).collect::<Vec<_>>());
    assert!(orders.contains(&vec![0, 1]), "{orders:?}");
    assert!(orders.contains(&vec![1, 0]), "{orders:?}");
}

/// Completes each call at a deadline 10 s after it arrived; no wake fd.
#[derive(Default)]
struct Later {
    waiting: Vec<(ThreadId, Instant)>,
}

impl EventLoop for Later {
    fn name(&self) -> &'static str {
        "later"
    }
    fn submit(&mut self, tid: ThreadId, _: Request, cx: &mut LoopCx<'_>) {
        self.waiting.push((tid, cx.now() + Duration::from_secs(10)));
    }
    fn cancel(&mut self, tid: ThreadId, cx: &mut LoopCx<'_>) {
        self.waiting.retain(|&(t, _)| t != tid);
        cx.cancelled(tid);
    }
    fn poll(&mut self, cx: &mut LoopCx<'_>) {
        let now = cx.now();
        self.waiting.retain(|&(tid, at)| {
            if at <= now {
                cx.complete(tid, 0);
            }
            at > now
        });
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|&(_, at)| at).min()
    }
    fn wakes_at_deadlines(&self) -> bool {
        true
    }
}

#[test]
fn a_loop_that_wakes_at_its_deadlines_lets_the_mock_clock_jump() {
    watchdog(|| {
        let started = Instant::now();
        let (b, id) = Runtime::builder()
            .mock_clock(true)
            .event_loop(|_| Box::new(Later::default()));
        let virtual_time = b
            .build()
            .unwrap()
            .block_on(async move {
                call_word(id, 0).await.unwrap();
                threadlib::time::elapsed()
            })
            .unwrap();
        assert_eq!(virtual_time, Duration::from_secs(10));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the clock jumped"
        );
    });
}

#[test]
fn trace_events_carry_virtual_time_and_their_detail() {
    watchdog(|| {
        let path =
            std::env::temp_dir().join(format!("threadlib-sim-trace-{}.json", std::process::id()));
        Runtime::builder()
            .mock_clock(true)
            .trace_file(&path)
            .build()
            .unwrap()
            .block_on(async {
                assert!(threadlib::trace::enabled());
                threadlib::sleep(Duration::from_millis(1500)).await.unwrap();
                threadlib::trace::event("link", "packet", || "a -> b len=40".to_owned());
            })
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        let packet = events
            .iter()
            .find(|e| e["name"] == "packet")
            .expect("the custom event");
        assert_eq!(packet["args"]["detail"], "a -> b len=40");
        assert_eq!(
            packet["ts"].as_f64().unwrap(),
            1_500_000.0,
            "virtual microseconds"
        );
        assert!(events
            .iter()
            .any(|e| e["name"] == "thread_name" && e["args"]["name"] == "link"));
    });
}
