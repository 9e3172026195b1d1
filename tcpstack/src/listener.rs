//! Listening sockets: backlog, accept queue and the half-open count.

use std::collections::VecDeque;

use crate::handle::ConnId;
use crate::Instant;

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
    /// Until when cookies this listener sent may still come back (see
    /// [`Listener::cookies_live`]).
    pub cookies_until: Option<Instant>,
}

impl Listener {
    pub fn new(port: u16, backlog: usize) -> Self {
        Self {
            port,
            backlog,
            ready: VecDeque::new(),
            half_open: 0,
            notified: false,
            cookies_until: None,
        }
    }

    /// Whether a SYN cookie this listener sent may still be echoed at `now`. While it
    /// may, an ACK that fails the cookie check is dropped rather than reset: it is most
    /// likely a client's later segment that overtook the one completing its cookie
    /// handshake, and a reset would kill the connection the cookie is about to make.
    pub fn cookies_live(&self, now: Instant) -> bool {
        self.cookies_until.is_some_and(|t| now < t)
    }

    /// Whether a new SYN could still end up in the accept queue.
    pub fn has_room(&self) -> bool {
        self.ready.len() < self.backlog.max(1)
    }
}
