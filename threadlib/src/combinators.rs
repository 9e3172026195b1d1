//! Combinators over threads (Eio's `Fiber.both`, `all`, `first`, `any`): each runs its
//! futures as threads of a fresh scope, so a failure or a winner cancels the others and
//! nothing outlives the call.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::scope::scope;

/// Runs `a` and `b` concurrently; returns both results, or the first error (the other
/// is cancelled).
pub async fn both<A, B, TA, TB>(a: A, b: B) -> Result<(TA, TB)>
where
    A: Future<Output = Result<TA>> + 'static,
    B: Future<Output = Result<TB>> + 'static,
    TA: 'static,
    TB: 'static,
{
    scope(|s| async move {
        let ha = s.spawn(a);
        let hb = s.spawn(b);
        let ra = ha.await?;
        let rb = hb.await?;
        Ok((ra, rb))
    })
    .await
}

/// Runs every future concurrently; returns all results in order, or the first error.
pub async fn all<F, T>(futs: impl IntoIterator<Item = F>) -> Result<Vec<T>>
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    let futs: Vec<F> = futs.into_iter().collect();
    scope(|s| async move {
        let hs: Vec<_> = futs.into_iter().map(|f| s.spawn(f)).collect();
        let mut out = Vec::with_capacity(hs.len());
        for h in hs {
            out.push(h.await?);
        }
        Ok(out)
    })
    .await
}

/// Runs the futures concurrently; the first to finish (with a value or an error)
/// decides the result and the rest are cancelled. Also known as `race`.
pub async fn first<F, T>(futs: impl IntoIterator<Item = F>) -> Result<T>
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    let winner: Rc<RefCell<Option<Result<T>>>> = Rc::new(RefCell::new(None));
    let futs: Vec<F> = futs.into_iter().collect();
    if futs.is_empty() {
        return Err(Error::other("first: no futures"));
    }
    let w = winner.clone();
    let r = scope(|s| async move {
        for f in futs {
            let w = w.clone();
            let s2 = s.clone();
            s.spawn(async move {
                let r = f.await;
                if w.borrow().is_none() && !matches!(r, Err(Error::Cancelled)) {
                    *w.borrow_mut() = Some(r);
                    s2.cancel();
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await;
    let won = winner.borrow_mut().take();
    match won {
        Some(v) => v,
        None => r.and(Err(Error::Cancelled)),
    }
}

/// [`first`] of two futures.
pub async fn race<A, B, T>(a: A, b: B) -> Result<T>
where
    A: Future<Output = Result<T>> + 'static,
    B: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    let a: std::pin::Pin<Box<dyn Future<Output = Result<T>>>> = Box::pin(a);
    let b: std::pin::Pin<Box<dyn Future<Output = Result<T>>>> = Box::pin(b);
    first([a, b]).await
}

/// Runs the futures concurrently; the first to succeed wins and the rest are
/// cancelled. If all fail, returns the last error.
pub async fn any<F, T>(futs: impl IntoIterator<Item = F>) -> Result<T>
where
    F: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    let futs: Vec<F> = futs.into_iter().collect();
    if futs.is_empty() {
        return Err(Error::other("any: no futures"));
    }
    let winner: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
    let last_err: Rc<RefCell<Option<Error>>> = Rc::new(RefCell::new(None));
    let (w, le) = (winner.clone(), last_err.clone());
    let _ = scope(|s| async move {
        for f in futs {
            let (w, le, s2) = (w.clone(), le.clone(), s.clone());
            s.spawn(async move {
                match f.await {
                    Ok(v) if w.borrow().is_none() => {
                        *w.borrow_mut() = Some(v);
                        s2.cancel();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !e.is_cancelled() || le.borrow().is_none() {
                            *le.borrow_mut() = Some(e);
                        }
                    }
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await;
    let won = winner.borrow_mut().take();
    match won {
        Some(v) => Ok(v),
        None => Err(last_err.borrow_mut().take().unwrap_or(Error::Cancelled)),
    }
}
