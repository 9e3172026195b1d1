//! Application requests on one connection: send, recv, shutdown, close, abort, options.

use super::{Ctx, Tcb, Timer};
use crate::buffer::{window, BufferPool, RingBuffer};
use crate::config::KeepAlive;
use crate::error::{ConnError, Error};
use crate::event::TcpState;
use crate::Instant;

impl Tcb {
    pub fn send(
        &mut self,
        now: Instant,
        data: &[u8],
        pool: &mut BufferPool,
    ) -> Result<usize, Error> {
        let (n, ()) = self.send_with(now, data.len(), pool, |first, second| {
            let (a, rest) = data.split_at(first.len());
            first.copy_from_slice(a);
            second.copy_from_slice(&rest[..second.len()]);
            (first.len() + second.len(), ())
        })?;
        Ok(n)
    }

    /// Queues up to `max` bytes that `fill` writes in place into the send buffer's free
    /// space (two slices, in order; their total is at most `max`). `fill` returns how
    /// many bytes it wrote from the start of the first slice on, and a value passed
    /// back. `fill` is not called when the connection cannot send or the buffer is
    /// full ([`Error::WouldBlock`]).
    pub fn send_with<R>(
        &mut self,
        now: Instant,
        max: usize,
        pool: &mut BufferPool,
        fill: impl FnOnce(&mut [u8], &mut [u8]) -> (usize, R),
    ) -> Result<(usize, R), Error> {
        match self.state {
            TcpState::Closed => {
                return Err(self.error.map_or(Error::NotConnected, Error::Connection))
            }
            _ if self.fin_queued => return Err(Error::SendShutdown),
            TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::Established
            | TcpState::CloseWait => {}
            _ => return Err(Error::NotConnected),
        }
        if max == 0 {
            return Ok((0, fill(&mut [], &mut []).1));
        }
        pool.provide(&mut self.send_buf);
        if self.send_buf.is_full() {
            self.write_blocked = true;
            return Err(Error::WouldBlock);
        }
        let (first, second) = self.send_buf.unfilled_pair_mut(max);
        let room = first.len() + second.len();
        let (wrote, r) = fill(first, second);
        let n = self.send_buf.commit(wrote.min(room));
        // Offered less than asked for: tell the application when there is room again.
        if room < max {
            self.write_blocked = true;
        }
        self.arm_persist_if_needed(now);
        Ok((n, r))
    }

    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = buf.len();
        self.take_received(len, |b| b.dequeue(buf))
    }

    /// Consumes up to `max` received bytes without copying them.
    pub fn discard(&mut self, max: usize) -> Result<usize, Error> {
        self.take_received(max, |b| b.consume(max))
    }

    /// Takes received bytes out of the buffer with `take` (at most `max` of them), as
    /// the application reads: a read that frees much space announces the window.
    fn take_received(
        &mut self,
        max: usize,
        take: impl FnOnce(&mut RingBuffer) -> usize,
    ) -> Result<usize, Error> {
        let before = self.recv_window();
        let n = take(self.recv.buffer_mut());
        if n > 0 {
            if self.recv.buffer().is_empty() {
                self.read_notified = false;
            }
            self.maybe_window_update(before);
            return Ok(n);
        }
        self.read_notified = false;
        if max == 0 {
            return Ok(0);
        }
        if self.fin_received {
            return Ok(0);
        }
        match (self.state, self.error) {
            (_, Some(e)) => Err(Error::Connection(e)),
            (TcpState::Closed, None) => Ok(0),
            _ => Err(Error::WouldBlock),
        }
    }

    /// After the application freed receive space: announce a much larger window
    /// (RFC 9293 section 3.8.6.2.2, with Linux's "at least double" heuristic).
    fn maybe_window_update(&mut self, current: u32) {
        if !self.state.is_synchronized() || self.fin_received {
            return;
        }
        let free = self.recv.window() as u32;
        let cap = self.params.recv_buffer;
        if current <= cap / 2
            && free >= current.saturating_mul(2)
            && window::receiver_may_open(current, free, cap, self.smss)
        {
            self.ack_now = true;
        }
    }

    pub fn shutdown(&mut self, now: Instant) -> Result<(), Error> {
        match self.state {
            TcpState::Closed => Err(self.error.map_or(Error::NotConnected, Error::Connection)),
            TcpState::SynSent | TcpState::SynReceived => {
                // The FIN follows the handshake (FIN-WAIT-1 once established).
                self.queue_fin();
                Ok(())
            }
            _ if self.fin_queued => Ok(()),
            TcpState::Established => {
                self.queue_fin();
                self.set_state(TcpState::FinWait1);
                self.arm_persist_if_needed(now);
                Ok(())
            }
            TcpState::CloseWait => {
                self.queue_fin();
                self.set_state(TcpState::LastAck);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn close(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        self.orphaned = true;
        match self.state {
            TcpState::Closed => {}
            TcpState::SynSent => self.set_state(TcpState::Closed),
            _ if !self.recv.buffer().is_empty() => {
                // Unread data: reset rather than pretend a graceful close (RFC 2525 2.17).
                self.abort(ctx);
            }
            _ => {
                let _ = self.shutdown(now);
                if self.state == TcpState::FinWait2 {
                    self.timers
                        .set(Timer::Close, now + self.params.fin_wait2_timeout);
                }
            }
        }
    }

    pub fn abort(&mut self, ctx: &mut Ctx<'_>) {
        if self.state == TcpState::Closed {
            return;
        }
        if !matches!(self.state, TcpState::SynSent | TcpState::TimeWait) {
            self.send_rst(ctx);
        }
        ctx.counters.aborts += 1;
        self.fail(ConnError::Aborted);
    }

    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.nodelay = nodelay;
    }

    pub fn set_keepalive(&mut self, now: Instant, keepalive: Option<KeepAlive>) {
        self.keepalive = keepalive;
        self.keepalive_sent = 0;
        self.timers.stop(Timer::KeepAlive);
        self.arm_keepalive(now);
    }
}
