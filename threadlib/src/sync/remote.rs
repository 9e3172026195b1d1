//! Cross-core (and cross-OS-thread) primitives: a one-shot and a bounded channel whose
//! ends are `Send`. Waiting uses wakers, so they also work from foreign executors; a
//! threadlib thread waiting on them is parked by its scheduler until woken. Every wait
//! is a cancellation point, as a system call is: a cancelled thread gets
//! [`Error::Cancelled`] and has taken or sent nothing.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

struct OneshotState<T> {
    value: Option<T>,
    closed: bool,
    waker: Option<Waker>,
}

/// Sends one value to a [`OneshotReceiver`], possibly on another core.
pub struct OneshotSender<T> {
    s: Arc<Mutex<OneshotState<T>>>,
}

/// Receives the value of a [`OneshotSender`].
pub struct OneshotReceiver<T> {
    s: Arc<Mutex<OneshotState<T>>>,
}

/// A one-shot channel whose ends may live on different cores.
pub fn oneshot<T: Send>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let s = Arc::new(Mutex::new(OneshotState {
        value: None,
        closed: false,
        waker: None,
    }));
    (OneshotSender { s: s.clone() }, OneshotReceiver { s })
}

impl<T> OneshotSender<T> {
    /// Sends the value; gives it back if the receiver is gone.
    pub fn send(self, v: T) -> std::result::Result<(), T> {
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return Err(v);
        }
        st.value = Some(v);
        let w = st.waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
        Ok(())
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        st.closed = true;
        let w = st.waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> Drop for OneshotReceiver<T> {
    fn drop(&mut self) {
        self.s.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
    }
}

impl<T> OneshotReceiver<T> {
    /// Waits for the value; [`Error::Closed`] if the sender was dropped without sending.
    pub async fn recv(self) -> Result<T> {
        RecvOne { s: &self.s }.await
    }
}

struct RecvOne<'a, T> {
    s: &'a Arc<Mutex<OneshotState<T>>>,
}

impl<T> Future for RecvOne<'_, T> {
    type Output = Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if crate::is_cancelled() {
            return Poll::Ready(Err(Error::Cancelled));
        }
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = st.value.take() {
            return Poll::Ready(Ok(v));
        }
        if st.closed {
            return Poll::Ready(Err(Error::Closed));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

struct ChanState<T> {
    queue: VecDeque<T>,
    cap: usize,
    senders: usize,
    receiver_alive: bool,
    recv_waker: Option<Waker>,
    send_wakers: VecDeque<Waker>,
}

/// The sending end of a cross-core bounded channel. Clone it for more senders.
pub struct Sender<T> {
    s: Arc<Mutex<ChanState<T>>>,
}

/// The receiving end of a cross-core bounded channel.
pub struct Receiver<T> {
    s: Arc<Mutex<ChanState<T>>>,
}

/// A bounded multi-producer, single-consumer channel usable across cores and OS
/// threads. `cap` is at least 1.
pub fn channel<T: Send>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Mutex::new(ChanState {
        queue: VecDeque::new(),
        cap: cap.max(1),
        senders: 1,
        receiver_alive: true,
        recv_waker: None,
        send_wakers: VecDeque::new(),
    }));
    (Sender { s: s.clone() }, Receiver { s })
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.s.lock().unwrap_or_else(|p| p.into_inner()).senders += 1;
        Sender { s: self.s.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        st.senders -= 1;
        let w = if st.senders == 0 {
            st.recv_waker.take()
        } else {
            None
        };
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        st.receiver_alive = false;
        st.queue.clear();
        let ws: Vec<_> = st.send_wakers.drain(..).collect();
        drop(st);
        ws.into_iter().for_each(Waker::wake);
    }
}

impl<T> Sender<T> {
    /// Sends `v`, waiting while the channel is full. [`Error::Closed`] if the receiver
    /// is gone.
    pub async fn send(&self, v: T) -> Result<()> {
        SendOne {
            s: &self.s,
            v: Some(v),
            queued: None,
        }
        .await
    }

    /// Sends without waiting; gives the value back if the channel is full or closed.
    pub fn try_send(&self, v: T) -> std::result::Result<(), T> {
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        if !st.receiver_alive || st.queue.len() >= st.cap {
            return Err(v);
        }
        st.queue.push_back(v);
        let w = st.recv_waker.take();
        drop(st);
        if let Some(w) = w {
            w.wake();
        }
        Ok(())
    }
}

/// The future of [`Sender::send`]. While the channel is full it queues its waker; a
/// receive that frees a slot wakes the first queued one. Given up (cancelled or
/// dropped) while queued, it takes its waker out, and if a slot was already freed
/// for it, passes the wake-up on to the next sender, so no sender waits for a slot
/// that went to nobody.
struct SendOne<'a, T> {
    s: &'a Arc<Mutex<ChanState<T>>>,
    v: Option<T>,
    /// The waker this future queued, while it may still be queued or woken.
    queued: Option<Waker>,
}

impl<T> SendOne<'_, T> {
    /// Withdraws from the queue of waiting senders (see [`SendOne`]).
    fn withdraw(&mut self, st: &mut ChanState<T>) -> Option<Waker> {
        let mine = self.queued.take()?;
        match st.send_wakers.iter().position(|w| w.will_wake(&mine)) {
            Some(at) => {
                st.send_wakers.remove(at);
                None
            }
            // Woken for a free slot it will not use: the next sender's turn.
            None if st.queue.len() < st.cap => st.send_wakers.pop_front(),
            None => None,
        }
    }
}

impl<T> Unpin for SendOne<'_, T> {}

impl<T> Future for SendOne<'_, T> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        let mut st = this.s.lock().unwrap_or_else(|p| p.into_inner());
        let (result, wake) = if crate::is_cancelled() {
            (Err(Error::Cancelled), this.withdraw(&mut st))
        } else if !st.receiver_alive {
            (Err(Error::Closed), this.withdraw(&mut st))
        } else if st.queue.len() < st.cap {
            // Our slot: leave the queue of waiting senders if we are still in it.
            if let Some(mine) = this.queued.take() {
                st.send_wakers.retain(|w| !w.will_wake(&mine));
            }
            st.queue
                .push_back(this.v.take().expect("value present until sent"));
            (Ok(()), st.recv_waker.take())
        } else {
            let queued = this
                .queued
                .as_ref()
                .is_some_and(|mine| st.send_wakers.iter().any(|w| w.will_wake(mine)));
            if !queued {
                // One clone, queued and kept: a thread's waker cloned twice gives two
                // wakers that `will_wake` cannot tell are the same.
                let w = cx.waker().clone();
                st.send_wakers.push_back(w.clone());
                this.queued = Some(w);
            }
            return Poll::Pending;
        };
        drop(st);
        if let Some(w) = wake {
            w.wake();
        }
        Poll::Ready(result)
    }
}

impl<T> Drop for SendOne<'_, T> {
    fn drop(&mut self) {
        if self.queued.is_none() {
            return;
        }
        let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
        let wake = self.withdraw(&mut st);
        drop(st);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting while the channel is empty. [`Error::Closed`]
    /// once every sender is gone and the queue is drained.
    pub async fn recv(&self) -> Result<T> {
        std::future::poll_fn(|cx| {
            if crate::is_cancelled() {
                return Poll::Ready(Err(Error::Cancelled));
            }
            let mut st = self.s.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = st.queue.pop_front() {
                let w = st.send_wakers.pop_front();
                drop(st);
                if let Some(w) = w {
                    w.wake();
                }
                return Poll::Ready(Ok(v));
            }
            if st.senders == 0 {
                return Poll::Ready(Err(Error::Closed));
            }
            st.recv_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
