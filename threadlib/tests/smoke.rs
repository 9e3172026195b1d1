use std::cell::RefCell;
mod support;

use std::rc::Rc;
use std::time::Duration;
use support::watchdog;

use threadlib::{Error, Runtime};

#[test]
fn interleaving_is_deterministic() {
    watchdog(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        threadlib::run(async move {
            let (a, b) = (l.clone(), l.clone());
            threadlib::both(
                async move {
                    for x in 1..=3 {
                        a.borrow_mut().push(format!("x = {x}"));
                        threadlib::yield_now().await?;
                    }
                    Ok(())
                },
                async move {
                    for y in 1..=3 {
                        b.borrow_mut().push(format!("y = {y}"));
                        threadlib::yield_now().await?;
                    }
                    Ok(())
                },
            )
            .await
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            *log.borrow(),
            ["x = 1", "y = 1", "x = 2", "y = 2", "x = 3", "y = 3"]
        );
    });
}

#[test]
fn scope_failure_cancels_sibling() {
    watchdog(|| {
        let r = threadlib::run(async {
            threadlib::scope(|s| async move {
                s.spawn(async {
                    let r = threadlib::sleep(Duration::from_secs(3600)).await;
                    assert!(matches!(r, Err(Error::Cancelled)));
                    r
                });
                s.spawn(async { Err::<(), _>(Error::other("boom")) });
                Ok(())
            })
            .await
        })
        .unwrap();
        assert_eq!(r.unwrap_err().to_string(), "boom");
    });
}

#[test]
fn mock_clock_timeout() {
    watchdog(|| {
        let rt = Runtime::builder().mock_clock(true).build().unwrap();
        let r = rt
            .block_on(async {
                let t0 = threadlib::time::now();
                let r = threadlib::with_timeout(Duration::from_secs(600), async {
                    threadlib::park().await
                })
                .await;
                (r, threadlib::time::now() - t0)
            })
            .unwrap();
        assert!(matches!(r.0, Err(Error::TimedOut)), "{:?}", r.0);
        assert_eq!(r.1, Duration::from_secs(600));
    });
}
