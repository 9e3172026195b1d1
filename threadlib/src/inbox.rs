//! The cross-thread inbox of a core: wake-ups from foreign wakers, work sent from
//! other cores, and shutdown. Senders on other OS threads push
//! a message and bump the core's eventfd when the inbox was empty.

use std::sync::Mutex;

use iolib::eventfd::EventFd;

use crate::core::ThreadId;
use crate::error::Result;

/// A message to a core from another OS thread.
pub(crate) enum InboxMsg {
    Wake(ThreadId),
    Run(Box<dyn FnOnce() + Send>),
    Shutdown,
}

/// A core's inbox: a queue other OS threads push to, and the eventfd that wakes the
/// core when the queue stops being empty.
pub(crate) struct Inbox {
    queue: Mutex<Vec<InboxMsg>>,
    pub(crate) efd: EventFd,
}

impl Inbox {
    pub(crate) fn new() -> Result<Inbox> {
        Ok(Inbox {
            queue: Mutex::new(Vec::new()),
            efd: EventFd::new()?,
        })
    }

    /// Queues `msg`, waking the core if the queue was empty.
    pub(crate) fn send(&self, msg: InboxMsg) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push(msg);
            q.len() == 1
        };
        if was_empty {
            // An eventfd write only fails if the counter would overflow, and then the
            // fd is readable anyway: the wake-up cannot be lost.
            let _ = self.efd.notify();
        }
    }

    /// Takes every queued message.
    pub(crate) fn take(&self) -> Vec<InboxMsg> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
