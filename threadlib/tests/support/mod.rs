//! Helpers shared by the scheduler tests.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How long a scheduler test may run before the watchdog fails it. Every test that
/// uses it finishes in well under a second when the scheduler is right.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `body` on its own OS thread and fails the calling test with a message naming
/// it if `body` has not finished within `limit`, so that a scheduler that hangs makes
/// the test fail in seconds instead of stalling the whole run. A panic in `body`
/// (a failed assertion) is passed on unchanged.
///
/// A body that hangs keeps its OS thread until the test process exits.
pub fn within<R: Send + 'static>(limit: Duration, body: impl FnOnce() -> R + Send + 'static) -> R {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{test} (body)"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(r);
        })
        .expect("spawn the test body");
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(RecvTimeoutError::Timeout) => {
            panic!("watchdog: {test} did not finish within {limit:?} (the scheduler hangs)")
        }
        Err(RecvTimeoutError::Disconnected) => unreachable!("the body thread always reports"),
    }
}

/// [`within`] the default [`DEADLINE`].
pub fn watchdog<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    within(DEADLINE, body)
}
