//! Applications on top of a driven [`Stack`]: the bench services and the interop
//! tests' stream exchange.

use std::collections::HashMap;

use tcpstack::{ConnId, Error, Event, Instant, ListenerId, Stack};

use crate::driver::App;
use crate::service::Service;
use crate::workload::{Digest, Pattern};

/// Serves a [`Service`] on every connection accepted from one listener.
#[derive(Debug)]
pub struct ServiceApp {
    service: Service,
    listener: ListenerId,
    conns: HashMap<ConnId, ServiceConn>,
    scratch: Vec<u8>,
}

#[derive(Debug, Default)]
struct ServiceConn {
    /// Bytes read so far (sink).
    received: u64,
    /// Read bytes not yet taken by `send` (echo); reading pauses while non-empty.
    backlog: Vec<u8>,
    /// End of stream was read.
    eof: bool,
}

impl ServiceApp {
    /// Serves `service` on connections from `listener`.
    pub fn new(service: Service, listener: ListenerId) -> ServiceApp {
        ServiceApp {
            service,
            listener,
            conns: HashMap::new(),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Connections currently served.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn accept_all(&mut self, stack: &mut Stack, now: Instant) {
        while let Ok(id) = stack.accept(self.listener) {
            if self.service == Service::Echo {
                let _ = stack.set_nodelay(id, true);
            }
            self.conns.insert(id, ServiceConn::default());
            self.progress(stack, now, id);
        }
    }

    /// Moves data on `id` as far as the buffers allow.
    fn progress(&mut self, stack: &mut Stack, now: Instant, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let done = match self.service {
            Service::Sink => sink(stack, now, id, c, &mut self.scratch),
            Service::Echo => echo(stack, now, id, c, &mut self.scratch),
        };
        if done {
            let _ = stack.close(now, id);
            self.conns.remove(&id);
        }
    }
}

/// Reads to end of stream, then answers with the count; true when finished or failed.
fn sink(stack: &mut Stack, now: Instant, id: ConnId, c: &mut ServiceConn, buf: &mut [u8]) -> bool {
    loop {
        match stack.recv(id, buf) {
            Ok(0) => {
                // Nothing was sent before, so the eight bytes fit; `close` then delivers
                // them before the FIN.
                let _ = stack.send(now, id, &c.received.to_be_bytes());
                return true;
            }
            Ok(n) => c.received += n as u64,
            Err(Error::WouldBlock) => return false,
            Err(_) => return true,
        }
    }
}

/// Echoes everything back; true when the peer closed and all was echoed, or on error.
fn echo(stack: &mut Stack, now: Instant, id: ConnId, c: &mut ServiceConn, buf: &mut [u8]) -> bool {
    loop {
        while !c.backlog.is_empty() {
            match stack.send(now, id, &c.backlog) {
                Ok(n) => {
                    c.backlog.drain(..n);
                }
                Err(Error::WouldBlock) => return false,
                Err(_) => return true,
            }
        }
        if c.eof {
            return true;
        }
        match stack.recv(id, buf) {
            Ok(0) => c.eof = true,
            Ok(n) => match stack.send(now, id, &buf[..n]) {
                Ok(m) => c.backlog.extend_from_slice(&buf[m..n]),
                Err(Error::WouldBlock) => c.backlog.extend_from_slice(&buf[..n]),
                Err(_) => return true,
            },
            Err(Error::WouldBlock) => return false,
            Err(_) => return true,
        }
    }
}

impl App for ServiceApp {
    fn on_event(&mut self, stack: &mut Stack, now: Instant, event: Event) {
        match event {
            Event::Incoming(_) => self.accept_all(stack, now),
            Event::Readable(id) | Event::Writable(id) | Event::PeerClosed(id) => {
                self.progress(stack, now, id)
            }
            Event::Closed(id) | Event::Reset(id) | Event::Error(id, _) => {
                let _ = stack.close(now, id);
                self.conns.remove(&id);
            }
            Event::Connected(_) => {}
        }
    }
}

/// How an [`Exchange`] gets its connection.
#[derive(Debug, Clone, Copy)]
pub enum Open {
    /// Accept one connection from this listener.
    Accept(ListenerId),
    /// Use this actively opened connection (from [`Stack::connect`]).
    Connect(ConnId),
}

/// What an [`Exchange`] does, beyond reading everything the peer sends.
#[derive(Debug, Clone, Copy)]
pub struct ExchangePlan {
    /// Seed of the [`Pattern`] to send.
    pub seed: u64,
    /// Bytes to send, followed by a half-close.
    pub len: u64,
    /// Start sending only after the peer's end of stream (the peer half-closes first).
    pub send_after_eof: bool,
    /// Abort (RST) the connection once this many bytes were received.
    pub abort_after: Option<u64>,
}

/// One connection that sends a seeded stream, half-closes, reads everything the peer
/// sends while digesting it, and closes when both directions are done.
#[derive(Debug)]
pub struct Exchange {
    open: Open,
    plan: ExchangePlan,
    conn: Option<ConnId>,
    pattern: Pattern,
    left: u64,
    chunk: Vec<u8>,
    chunk_off: usize,
    shut: bool,
    sent: Digest,
    received: Digest,
    eof: bool,
    /// When the connection was accepted or connected, and when end of stream was read.
    opened_at: Option<Instant>,
    eof_at: Option<Instant>,
    finished: bool,
    /// Connection-level events seen (not Readable/Writable), in order.
    pub events: Vec<Event>,
    /// The first error a request returned, if any.
    pub error: Option<Error>,
}

impl Exchange {
    /// An exchange following `plan` on the connection `open` yields.
    pub fn new(open: Open, plan: ExchangePlan) -> Exchange {
        Exchange {
            open,
            plan,
            conn: match open {
                Open::Connect(id) => Some(id),
                Open::Accept(_) => None,
            },
            pattern: Pattern::new(plan.seed),
            left: plan.len,
            chunk: Vec::new(),
            chunk_off: 0,
            shut: false,
            sent: Digest::default(),
            received: Digest::default(),
            eof: false,
            opened_at: None,
            eof_at: None,
            finished: false,
            events: Vec::new(),
            error: None,
        }
    }

    /// True once the exchange is over: both directions done and the connection closed,
    /// or aborted, reset or failed.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// `(length, hash)` of what the stack accepted for sending so far.
    pub fn sent(&self) -> (u64, u64) {
        self.sent.finish()
    }

    /// `(length, hash)` of what the peer sent so far.
    pub fn received(&self) -> (u64, u64) {
        self.received.finish()
    }

    /// Whether end of stream was read.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// How long after the connection opened end of stream was read: the time the
    /// peer's direction took.
    pub fn eof_after(&self) -> Option<core::time::Duration> {
        Some(self.eof_at? - self.opened_at?)
    }

    fn fail(&mut self, e: Error) {
        self.error.get_or_insert(e);
        self.finished = true;
    }

    fn progress(&mut self, stack: &mut Stack, now: Instant) {
        let Some(id) = self.conn else { return };
        if self.finished {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        while !self.eof {
            match stack.recv(id, &mut buf) {
                Ok(0) => {
                    self.eof = true;
                    self.eof_at = Some(now);
                }
                Ok(n) => {
                    self.received.update(&buf[..n]);
                    if self
                        .plan
                        .abort_after
                        .is_some_and(|a| self.received.finish().0 >= a)
                    {
                        if let Err(e) = stack.abort(id) {
                            self.fail(e);
                        }
                        self.finished = true;
                        return;
                    }
                }
                Err(Error::WouldBlock) => break,
                Err(e) => return self.fail(e),
            }
        }
        if self.eof || !self.plan.send_after_eof {
            if let Err(e) = self.send_more(stack, now, id) {
                return self.fail(e);
            }
        }
        if self.eof && self.shut {
            if let Err(e) = stack.close(now, id) {
                return self.fail(e);
            }
            self.finished = true;
        }
    }

    fn send_more(&mut self, stack: &mut Stack, now: Instant, id: ConnId) -> Result<(), Error> {
        loop {
            if self.chunk_off == self.chunk.len() {
                if self.left == 0 {
                    if !self.shut {
                        stack.shutdown(now, id)?;
                        self.shut = true;
                    }
                    return Ok(());
                }
                let n = self.left.min(64 * 1024) as usize;
                self.chunk.resize(n, 0);
                self.pattern.fill(&mut self.chunk);
                self.chunk_off = 0;
                self.left -= n as u64;
            }
            match stack.send(now, id, &self.chunk[self.chunk_off..]) {
                Ok(n) => {
                    self.sent
                        .update(&self.chunk[self.chunk_off..self.chunk_off + n]);
                    self.chunk_off += n;
                    if self.chunk_off < self.chunk.len() {
                        return Ok(());
                    }
                }
                Err(Error::WouldBlock) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

impl App for Exchange {
    fn on_event(&mut self, stack: &mut Stack, now: Instant, event: Event) {
        match event {
            Event::Incoming(l) => {
                if let (Open::Accept(want), None) = (self.open, self.conn) {
                    if want == l {
                        match stack.accept(l) {
                            Ok(id) => {
                                self.conn = Some(id);
                                self.opened_at = Some(now);
                            }
                            Err(Error::WouldBlock) => return,
                            Err(e) => return self.fail(e),
                        }
                    }
                }
                self.progress(stack, now);
            }
            Event::Readable(_) | Event::Writable(_) => self.progress(stack, now),
            Event::Connected(_) | Event::PeerClosed(_) => {
                if matches!(event, Event::Connected(_)) {
                    self.opened_at.get_or_insert(now);
                }
                self.events.push(event);
                self.progress(stack, now);
            }
            Event::Closed(_) => self.events.push(event),
            Event::Reset(id) | Event::Error(id, _) => {
                self.events.push(event);
                if Some(id) == self.conn {
                    let _ = stack.close(now, id);
                    self.finished = true;
                }
            }
        }
    }
}
