//! The cross-thread inbox of a core: wake-ups from foreign wakers, blocking-pool
//! results, work sent from other cores, and shutdown. Senders on other OS threads push
//! a message and bump the core's eventfd when the inbox was empty.

use std::any::Any;
use std::sync::Mutex;

use iolib::eventfd::EventFd;

use crate::core::ThreadId;
use crate::error::Result;

pub(crate) enum RemoteMsg {
    Wake(ThreadId),
    PoolDone {
        tid: ThreadId,
        job: u64,
        result: std::result::Result<Box<dyn Any + Send>, String>,
    },
    Run(Box<dyn FnOnce() + Send>),
    Shutdown,
}

pub(crate) struct Remote {
    queue: Mutex<Vec<RemoteMsg>>,
    pub(crate) efd: EventFd,
}

impl Remote {
    pub(crate) fn new(core: usize) -> Result<Remote> {
        let _ = core;
        Ok(Remote {
            queue: Mutex::new(Vec::new()),
            efd: EventFd::new()?,
        })
    }

    pub(crate) fn send(&self, msg: RemoteMsg) {
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

    pub(crate) fn take(&self) -> Vec<RemoteMsg> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
