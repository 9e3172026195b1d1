//! Application requests: listen, accept, connect, send, recv, shutdown, close, abort,
//! options and queries.

use std::collections::BTreeSet;

use core::net::SocketAddrV4;

use super::Stack;
use crate::config::KeepAlive;
use crate::conn::Tcb;
use crate::error::Error;
use crate::event::{ConnInfo, TcpState};
use crate::handle::{ConnId, ListenerId};
use crate::isn::FourTuple;
use crate::listener::Listener;
use crate::Instant;

impl Stack {
    // ----- application requests -------------------------------------------------------

    /// Listens on `port`, keeping at most `backlog` established connections waiting
    /// for [`accept`](Self::accept) (at least one).
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, Error> {
        if port == 0 {
            return Err(Error::InvalidArgument("port 0"));
        }
        if self.by_port.contains_key(&port) {
            return Err(Error::AddrInUse(port));
        }
        let (i, g) = self.listeners.insert(Listener::new(port, backlog));
        let id = ListenerId::new(i, g);
        self.by_port.insert(port, id);
        Ok(id)
    }

    /// Stops listening. Connections not yet accepted are reset.
    pub fn unlisten(&mut self, listener: ListenerId) -> Result<(), Error> {
        let l = self
            .listeners
            .get(listener.index, listener.generation)
            .ok_or(Error::InvalidListener)?;
        self.by_port.remove(&l.port);
        let orphans: Vec<u32> = self.conns_of(listener).collect();
        for idx in orphans {
            self.call(idx, |tcb, ctx| tcb.abort(ctx));
            self.after(idx);
        }
        self.listeners.remove(listener.index);
        Ok(())
    }

    fn conns_of(&self, listener: ListenerId) -> impl Iterator<Item = u32> + '_ {
        self.by_tuple
            .values()
            .copied()
            .filter(move |&i| {
                self.conns
                    .at(i)
                    .is_some_and(|c| c.listener == Some(listener))
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    /// Takes the next established connection from `listener`'s queue;
    /// [`Error::WouldBlock`] when none is waiting.
    pub fn accept(&mut self, listener: ListenerId) -> Result<ConnId, Error> {
        let l = self
            .listeners
            .get_mut(listener.index, listener.generation)
            .ok_or(Error::InvalidListener)?;
        let Some(id) = l.ready.pop_front() else {
            l.notified = false;
            return Err(Error::WouldBlock);
        };
        if l.ready.is_empty() {
            l.notified = false;
        }
        let conn = self
            .conns
            .get_mut(id.index, id.generation)
            .ok_or(Error::InvalidConnection)?;
        conn.listener = None;
        conn.released = false;
        // Data or FIN may have arrived before the accept: report it now.
        conn.tcb.renotify();
        self.after(id.index);
        Ok(id)
    }

    /// Opens a connection to `remote` (active open). `local_port` 0 picks an
    /// ephemeral port. [`Event::Connected`](crate::Event::Connected) or an error event follows.
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        local_port: u16,
    ) -> Result<ConnId, Error> {
        if remote.port() == 0 || remote.ip().is_unspecified() || remote.ip().is_broadcast() {
            return Err(Error::InvalidArgument("remote address"));
        }
        if !self.table_has_room() {
            return Err(Error::TooManyConnections);
        }
        let tuple = if local_port == 0 {
            self.ephemeral(remote)?
        } else {
            let t = FourTuple {
                local: SocketAddrV4::new(self.cfg.addr, local_port),
                remote,
            };
            if self.by_tuple.contains_key(&t) {
                return Err(Error::AddrInUse(local_port));
            }
            t
        };
        let iss = self.secrets.isn(now, &tuple);
        let ts_offset = self.secrets.ts_offset(&tuple);
        let tcb = Tcb::connect(now, &self.cfg.tcp, tuple, iss, ts_offset);
        self.counters.active_opens += 1;
        let idx = self.insert_conn(tcb, tuple, None, false);
        let id = ConnId::new(idx, self.conns.generation(idx));
        self.after(idx);
        Ok(id)
    }

    /// RFC 6056 algorithm 3: a keyed offset per remote endpoint, then linear search.
    fn ephemeral(&mut self, remote: SocketAddrV4) -> Result<FourTuple, Error> {
        let (lo, hi) = self.cfg.ephemeral_ports;
        let n = u32::from(hi - lo) + 1;
        let probe = FourTuple {
            local: SocketAddrV4::new(self.cfg.addr, 0),
            remote,
        };
        let offset = self.secrets.ts_offset(&probe);
        for i in 0..n {
            let port = lo + (offset.wrapping_add(self.next_port).wrapping_add(i) % n) as u16;
            let t = FourTuple {
                local: SocketAddrV4::new(self.cfg.addr, port),
                remote,
            };
            if !self.by_tuple.contains_key(&t) && !self.by_port.contains_key(&port) {
                self.next_port = self.next_port.wrapping_add(i + 1);
                return Ok(t);
            }
        }
        Err(Error::NoFreePorts)
    }

    /// Queues `data` for sending; returns how many bytes were taken (possibly fewer than
    /// offered). [`Error::WouldBlock`] when the send buffer is full; a
    /// [`Event::Writable`](crate::Event::Writable) follows when space frees up.
    pub fn send(&mut self, now: Instant, conn: ConnId, data: &[u8]) -> Result<usize, Error> {
        self.with_tcb(conn, |tcb, ctx| tcb.send(now, data, ctx.pool))?
    }

    /// Queues up to `max` bytes written in place by `fill`, saving the copy
    /// [`send`](Self::send) makes: `fill` gets the send buffer's free space as two
    /// slices (in order, at most `max` bytes in all), writes from the start of the
    /// first, and returns how many bytes it wrote and a value handed back with the
    /// count queued. Errors and [`Event::Writable`](crate::Event::Writable) as for
    /// `send`; `fill` is not called when one is returned.
    pub fn send_with<R>(
        &mut self,
        now: Instant,
        conn: ConnId,
        max: usize,
        fill: impl FnOnce(&mut [u8], &mut [u8]) -> (usize, R),
    ) -> Result<(usize, R), Error> {
        self.with_tcb(conn, |tcb, ctx| tcb.send_with(now, max, ctx.pool, fill))?
    }

    /// Reads received bytes into `buf`. `Ok(0)` (with a non-empty `buf`) is end of
    /// stream: the peer closed its side and everything was read.
    /// [`Error::WouldBlock`] when nothing is available yet.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, Error> {
        self.with_tcb(conn, |tcb, _| tcb.recv(buf))?
    }

    /// Consumes up to `max` received bytes without copying them: [`recv`](Self::recv)
    /// for an application that only counts what it skips (the same results, windows
    /// and errors).
    pub fn discard(&mut self, conn: ConnId, max: usize) -> Result<usize, Error> {
        self.with_tcb(conn, |tcb, _| tcb.discard(max))?
    }

    /// Closes the send side after the queued data (half-close: sends FIN); reading
    /// continues until the peer closes.
    pub fn shutdown(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, _| tcb.shutdown(now))?
    }

    /// Gives up the handle. The connection closes gracefully in the background (queued
    /// data is still delivered, then FIN); if received data was left unread it is reset
    /// instead (RFC 9293 section 3.10.4 / RFC 2525). The handle is invalid afterwards.
    ///
    /// Every handle must end with `close` or [`abort`](Self::abort), also after
    /// [`Event::Closed`](crate::Event::Closed), [`Event::Reset`](crate::Event::Reset) or
    /// [`Event::Error`](crate::Event::Error): until then the slot stays allocated so
    /// the application can still read buffered data and the error.
    pub fn close(&mut self, now: Instant, conn: ConnId) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, ctx| tcb.close(now, ctx))?;
        let c = self.conn_mut(conn)?;
        c.released = true;
        let closed = c.tcb.state() == TcpState::Closed;
        if closed {
            self.release(conn.index);
        }
        Ok(())
    }

    /// Resets the connection at once (RST to the peer if synchronized) and gives up
    /// the handle.
    pub fn abort(&mut self, conn: ConnId) -> Result<(), Error> {
        self.conn_mut(conn)?.released = true;
        self.call(conn.index, |tcb, ctx| tcb.abort(ctx));
        self.after(conn.index);
        self.release(conn.index);
        Ok(())
    }

    /// Disables (`true`) or enables Nagle's algorithm.
    pub fn set_nodelay(&mut self, conn: ConnId, nodelay: bool) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, _| tcb.set_nodelay(nodelay))
    }

    /// Enables keep-alive with the given parameters, or disables it.
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        conn: ConnId,
        keepalive: Option<KeepAlive>,
    ) -> Result<(), Error> {
        self.with_tcb(conn, |tcb, _| tcb.set_keepalive(now, keepalive))
    }

    /// The connection's state.
    pub fn state(&self, conn: ConnId) -> Result<TcpState, Error> {
        Ok(self.conn(conn)?.tcb.state())
    }

    /// A snapshot of the connection's state, windows and timers.
    pub fn conn_info(&self, conn: ConnId) -> Result<ConnInfo, Error> {
        Ok(self.conn(conn)?.tcb.info())
    }

    /// Local and remote endpoints of the connection.
    pub fn endpoints(&self, conn: ConnId) -> Result<(SocketAddrV4, SocketAddrV4), Error> {
        let c = self.conn(conn)?;
        Ok((c.tuple.local, c.tuple.remote))
    }

    /// Bytes that [`send`](Self::send) would accept now.
    pub fn send_capacity(&self, conn: ConnId) -> Result<usize, Error> {
        Ok(self.conn(conn)?.tcb.send_capacity())
    }

    /// Bytes that [`recv`](Self::recv) would return now.
    pub fn recv_available(&self, conn: ConnId) -> Result<usize, Error> {
        Ok(self.conn(conn)?.tcb.recv_available())
    }
}
