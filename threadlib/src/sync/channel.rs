//! Channels (bounded and unbounded) between the threads of one core.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use super::wait_queue::{OnAbandon, Ticket, WaitQueue};
use crate::error::{Error, Result};

/// Items a fresh channel buffer has room for before it first grows.
const INITIAL_BUFFER: usize = 16;

struct State<T> {
    buf: VecDeque<T>,
    cap: usize,
    senders: usize,
    receivers: usize,
    /// Items at the front of `buf` promised to receivers that were woken but have not
    /// run yet; nobody else may take them.
    items_reserved: usize,
    /// Free slots promised to senders that were woken but have not run yet.
    slots_reserved: usize,
    recv_waiters: WaitQueue,
    send_waiters: WaitQueue,
}

impl<T> State<T> {
    fn has_free_slot(&self) -> bool {
        self.buf.len() + self.slots_reserved < self.cap
    }

    fn has_free_item(&self) -> bool {
        self.buf.len() > self.items_reserved
    }

    /// Hands free items to waiting receivers, first come first served.
    fn grant_receivers(&mut self) {
        while self.has_free_item() && self.recv_waiters.wake_one().is_some() {
            self.items_reserved += 1;
        }
    }

    /// Hands free slots to waiting senders, first come first served.
    fn grant_senders(&mut self) {
        while self.has_free_slot() && self.send_waiters.wake_one().is_some() {
            self.slots_reserved += 1;
        }
    }

    fn push(&mut self, v: T) {
        self.buf.push_back(v);
        self.grant_receivers();
    }

    /// Takes the first value not promised to a woken receiver.
    fn take_free_item(&mut self) -> Option<T> {
        if self.has_free_item() {
            self.pop()
        } else {
            None
        }
    }

    fn pop(&mut self) -> Option<T> {
        let v = self.buf.pop_front()?;
        self.grant_senders();
        Some(v)
    }
}

type Shared<T> = Rc<RefCell<State<T>>>;

fn new_channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let st = Rc::new(RefCell::new(State {
        buf: VecDeque::with_capacity(cap.min(INITIAL_BUFFER)),
        cap,
        senders: 1,
        receivers: 1,
        items_reserved: 0,
        slots_reserved: 0,
        recv_waiters: WaitQueue::default(),
        send_waiters: WaitQueue::default(),
    }));
    (Sender { st: st.clone() }, Receiver { st })
}

/// A channel holding at most `cap` values in flight between threads of one core (a
/// capacity of 0 is taken as 1).
///
/// Both ends can be cloned: values go to whichever receiver asks first, each value to
/// exactly one. [`Sender::send`] waits while the channel is full (backpressure),
/// [`Receiver::recv`] while it is empty; both serve waiting threads in arrival order, a
/// woken thread's value or slot is reserved for it, and a thread cancelled while
/// waiting gets [`Error::Cancelled`] and hands anything reserved for it to the next
/// waiter.
///
/// Closing is by dropping: once every sender is gone, receivers drain what is left and
/// then get [`Error::Closed`]; once every receiver is gone, the buffered values are
/// dropped and sends fail with [`Error::Closed`], giving the value back.
///
/// ```
/// threadlib::run(async {
///     let (tx, rx) = threadlib::sync::channel(2);
///     let producer = threadlib::spawn(async move {
///         for i in 0..5 {
///             tx.send(i).await?; // waits while two values are in flight
///         }
///         threadlib::Result::Ok(())
///     });
///     let mut got = Vec::new();
///     loop {
///         match rx.recv().await {
///             Ok(v) => got.push(v),
///             Err(threadlib::Error::Closed) => break, // producer done, queue drained
///             Err(e) => return Err(e),
///         }
///     }
///     producer.await??;
///     assert_eq!(got, [0, 1, 2, 3, 4]);
///     Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub fn channel<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new_channel(cap.max(1))
}

/// A channel without a capacity limit: [`Sender::send`] never waits. Memory grows with
/// the values in flight, so prefer [`channel`] unless the producer is bounded by other
/// means.
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    new_channel(usize::MAX)
}

/// The sending end of a [`channel`]. Clone it for more senders; the channel closes for
/// receivers when the last one is dropped.
pub struct Sender<T> {
    st: Shared<T>,
}

/// The receiving end of a [`channel`]. Clone it for more receivers; the channel closes
/// for senders when the last one is dropped.
pub struct Receiver<T> {
    st: Shared<T>,
}

/// A failed [`Sender::send`]: why, and the value that was not sent.
pub struct SendError<T> {
    error: Error,
    value: T,
}

impl<T> SendError<T> {
    /// Why the send failed: [`Error::Closed`], [`Error::Cancelled`] or
    /// [`Error::NoRuntime`].
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Both parts.
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.value)
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "send failed: {}", self.error)
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Lets `tx.send(v).await?` work in functions returning [`crate::Result`] (the value
/// is dropped).
impl<T> From<SendError<T>> for Error {
    fn from(e: SendError<T>) -> Error {
        e.error
    }
}

/// A failed [`Sender::try_send`], with the value that was not sent.
pub enum TrySendError<T> {
    /// The channel is full (or senders are waiting for room before this one).
    Full(T),
    /// Every receiver is gone.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }

    /// Whether the channel was full (rather than closed).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("channel full"),
            TrySendError::Closed(_) => f.write_str("channel closed"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> Sender<T> {
    /// Sends `value`, waiting (in arrival order) while the channel is full.
    ///
    /// Fails, giving the value back, with [`Error::Closed`] if every receiver is gone,
    /// with [`Error::Cancelled`] if the caller is cancelled while waiting, and with
    /// [`Error::NoRuntime`] if it would have to wait outside a threadlib thread.
    pub async fn send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        let ticket = {
            let mut st = self.st.borrow_mut();
            if st.receivers == 0 {
                return Err(SendError {
                    error: Error::Closed,
                    value,
                });
            }
            if st.send_waiters.is_empty() && st.has_free_slot() {
                st.push(value);
                return Ok(());
            }
            match st.send_waiters.push_current(()) {
                Ok(t) => t,
                Err(error) => return Err(SendError { error, value }),
            }
        };
        let guard = OnAbandon::new(|| self.abandon(ticket));
        loop {
            if let Err(error) = crate::thread::park().await {
                return Err(SendError { error, value });
            }
            let mut st = self.st.borrow_mut();
            if st.send_waiters.is_queued(ticket) {
                if st.receivers == 0 {
                    // Woken by the close; still queued, so nothing was reserved.
                    st.send_waiters.remove(ticket);
                    drop(st);
                    guard.disarm();
                    return Err(SendError {
                        error: Error::Closed,
                        value,
                    });
                }
                continue; // spurious wake-up
            }
            // Dequeued: a slot was reserved for us.
            st.slots_reserved -= 1;
            guard.disarm();
            if st.receivers == 0 {
                return Err(SendError {
                    error: Error::Closed,
                    value,
                });
            }
            st.push(value);
            return Ok(());
        }
    }

    /// Sends `value` if there is room now (and no sender is waiting before this one).
    pub fn try_send(&self, value: T) -> std::result::Result<(), TrySendError<T>> {
        let mut st = self.st.borrow_mut();
        if st.receivers == 0 {
            Err(TrySendError::Closed(value))
        } else if st.send_waiters.is_empty() && st.has_free_slot() {
            st.push(value);
            Ok(())
        } else {
            Err(TrySendError::Full(value))
        }
    }

    /// Whether every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.st.borrow().receivers == 0
    }

    /// Values buffered in the channel.
    pub fn len(&self) -> usize {
        self.st.borrow().buf.len()
    }

    /// Whether no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel's capacity (`usize::MAX` for an unbounded one).
    pub fn capacity(&self) -> usize {
        self.st.borrow().cap
    }

    fn abandon(&self, ticket: Ticket) {
        let mut st = self.st.borrow_mut();
        if !st.send_waiters.remove(ticket) {
            // A slot was reserved for us: pass it on.
            st.slots_reserved -= 1;
            st.grant_senders();
        }
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting (in arrival order) while the channel is empty.
    ///
    /// Fails with [`Error::Closed`] once every sender is gone and the buffer is
    /// drained, with [`Error::Cancelled`] if the caller is cancelled while waiting, and
    /// with [`Error::NoRuntime`] if it would have to wait outside a threadlib thread.
    pub async fn recv(&self) -> Result<T> {
        let ticket = {
            let mut st = self.st.borrow_mut();
            if let Some(v) = st.take_free_item() {
                return Ok(v);
            }
            if st.senders == 0 {
                return Err(Error::Closed);
            }
            st.recv_waiters.push_current(())?
        };
        let guard = OnAbandon::new(|| self.abandon(ticket));
        loop {
            crate::thread::park().await?;
            let mut st = self.st.borrow_mut();
            if st.recv_waiters.is_queued(ticket) {
                if st.senders == 0 {
                    // Woken by the close; still queued, so nothing was reserved for us,
                    // and while anyone is queued every buffered item is reserved.
                    st.recv_waiters.remove(ticket);
                    drop(st);
                    guard.disarm();
                    return Err(Error::Closed);
                }
                continue; // spurious wake-up
            }
            // Dequeued: the item at the front was reserved for us.
            st.items_reserved -= 1;
            let v = st.pop();
            drop(st);
            guard.disarm();
            return v.ok_or(Error::Closed);
        }
    }

    /// The next value if one is buffered (`None` if the channel is empty), or
    /// [`Error::Closed`] if it is empty and every sender is gone. Values already
    /// promised to woken receivers do not count as buffered.
    pub fn try_recv(&self) -> Result<Option<T>> {
        let mut st = self.st.borrow_mut();
        if let Some(v) = st.take_free_item() {
            Ok(Some(v))
        } else if st.senders == 0 {
            Err(Error::Closed)
        } else {
            Ok(None)
        }
    }

    /// Whether every sender is gone (values may still be buffered).
    pub fn is_closed(&self) -> bool {
        self.st.borrow().senders == 0
    }

    /// Values buffered in the channel.
    pub fn len(&self) -> usize {
        self.st.borrow().buf.len()
    }

    /// Whether no value is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The channel's capacity (`usize::MAX` for an unbounded one).
    pub fn capacity(&self) -> usize {
        self.st.borrow().cap
    }

    fn abandon(&self, ticket: Ticket) {
        let mut st = self.st.borrow_mut();
        if !st.recv_waiters.remove(ticket) {
            // An item was reserved for us: pass it on.
            st.items_reserved -= 1;
            st.grant_receivers();
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.st.borrow_mut().senders += 1;
        Sender {
            st: self.st.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.st.borrow_mut().receivers += 1;
        Receiver {
            st: self.st.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.st.borrow_mut();
        st.senders -= 1;
        if st.senders == 0 {
            // Waiting receivers re-check, see the close and leave.
            st.recv_waiters.unpark_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.st.borrow_mut();
        st.receivers -= 1;
        if st.receivers == 0 {
            st.send_waiters.unpark_all();
            st.items_reserved = 0;
            let dropped = std::mem::take(&mut st.buf);
            // Values' destructors may use this very channel: run them unborrowed.
            drop(st);
            drop(dropped);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}
