//! Operations bounded by a deadline or a timeout, for code that speaks of one
//! connection's failures in two kinds: the time ran out ([`TransportError::TimedOut`]),
//! or the operation failed ([`TransportError::Io`]).
//!
//! [`until`] and [`within`] run a thread-library operation under [`with_deadline`] and
//! [`with_timeout`], so a call that runs out of time is cancelled at its suspension
//! point: a network read that timed out has consumed nothing and its stream stays
//! usable.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::time::with_deadline;
use crate::{with_timeout, Error};

/// Why an operation with a deadline failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The deadline passed before the operation could complete.
    #[error("deadline passed")]
    TimedOut,
    /// The operation failed (refused, reset, broken pipe, cancelled thread, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Error> for TransportError {
    /// [`Error::TimedOut`] is [`TransportError::TimedOut`]; every other error is an I/O
    /// error (see `From<Error> for io::Error`).
    fn from(e: Error) -> Self {
        match e {
            Error::TimedOut => TransportError::TimedOut,
            other => TransportError::Io(other.into()),
        }
    }
}

/// Runs `op` until `deadline` on the current core's clock ([`crate::time::now`]); a deadline
/// already passed still starts `op`, with no time to suspend.
pub fn until<T>(
    deadline: Instant,
    op: impl Future<Output = crate::Result<T>>,
) -> impl Future<Output = Result<T, TransportError>> {
    // Not `async fn`s, which would hold `op` twice (see `with_timeout`).
    Transport(with_deadline(deadline, op))
}

/// Runs `op` for at most `timeout`.
pub fn within<T>(
    timeout: Duration,
    op: impl Future<Output = crate::Result<T>>,
) -> impl Future<Output = Result<T, TransportError>> {
    Transport(with_timeout(timeout, op))
}

/// A future whose thread-library error becomes a [`TransportError`].
struct Transport<F>(F);

impl<F, T> Future for Transport<F>
where
    F: Future<Output = crate::Result<T>>,
{
    type Output = Result<T, TransportError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the one field is structurally pinned: it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|t| &mut t.0) };
        inner.poll(cx).map(|r| r.map_err(TransportError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::on_mock_clock;

    #[test]
    fn an_operation_past_its_deadline_times_out_at_the_deadline() {
        let (r, took) = on_mock_clock(async {
            let deadline = crate::time::now() + Duration::from_secs(3);
            let r = until(deadline, crate::sleep(Duration::from_secs(10))).await;
            (r, crate::time::elapsed())
        });
        assert!(matches!(r, Err(TransportError::TimedOut)), "{r:?}");
        assert_eq!(took, Duration::from_secs(3));
    }

    #[test]
    fn an_operation_in_time_returns_its_value_and_errors_become_io_errors() {
        let (ok, failed) = on_mock_clock(async {
            let ok = within(Duration::from_secs(1), async { Ok(7) }).await;
            let failed: Result<(), _> = within(Duration::from_secs(1), async {
                Err(Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)))
            })
            .await;
            (ok, failed)
        });
        assert_eq!(ok.unwrap(), 7);
        match failed {
            Err(TransportError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }
}
