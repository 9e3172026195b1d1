//! Listening sockets: backlog, accept queue and the half-open count.

use std::collections::VecDeque;

use crate::handle::ConnId;

/// A passive-open endpoint.
#[derive(Debug)]
pub(crate) struct Listener {
    pub port: u16,
    /// Most established connections waiting for `accept`.
    pub backlog: usize,
    /// Established, not yet accepted.
    pub ready: VecDeque<ConnId>,
    /// Connections in SYN-RECEIVED.
    pub half_open: usize,
    /// An `Incoming` event is queued and not yet answered by `accept`.
    pub notified: bool,
}

impl Listener {
    pub fn new(port: u16, backlog: usize) -> Self {
        Self {
            port,
            backlog,
            ready: VecDeque::new(),
            half_open: 0,
            notified: false,
        }
    }

    /// Whether a new SYN could still end up in the accept queue.
    pub fn has_room(&self) -> bool {
        self.ready.len() < self.backlog.max(1)
    }
}
