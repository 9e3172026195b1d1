//! Per-core traffic counters and their cross-core totals.

use std::cell::Cell;
use std::fmt;
use std::ops::AddAssign;

/// Counters of one core's connections. Plain `Cell`s: each core owns its own, so
/// counting costs no atomic operation; [`Counters::snapshot`] gives a [`Totals`] that
/// can be sent across cores and summed.
#[derive(Debug, Default)]
pub struct Counters {
    connections: Cell<u64>,
    active: Cell<u64>,
    requests: Cell<u64>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    status: [Cell<u64>; 5],
    header_timeouts: Cell<u64>,
    idle_timeouts: Cell<u64>,
}

impl Counters {
    /// A connection started.
    pub(crate) fn connection_opened(&self) {
        bump(&self.connections, 1);
        bump(&self.active, 1);
    }

    /// A connection ended.
    pub(crate) fn connection_closed(&self) {
        self.active.set(self.active.get().saturating_sub(1));
    }

    /// A response with `code` was produced.
    pub(crate) fn response(&self, code: u16) {
        bump(&self.requests, 1);
        let class = usize::from(code / 100).clamp(1, 5) - 1;
        bump(&self.status[class], 1);
    }

    pub(crate) fn read(&self, n: usize) {
        bump(&self.bytes_in, n as u64);
    }

    pub(crate) fn wrote(&self, n: u64) {
        bump(&self.bytes_out, n);
    }

    pub(crate) fn header_timeout(&self) {
        bump(&self.header_timeouts, 1);
    }

    pub(crate) fn idle_timeout(&self) {
        bump(&self.idle_timeouts, 1);
    }

    /// Connections being served right now on this core (for a connection cap).
    pub fn active_connections(&self) -> u64 {
        self.active.get()
    }

    /// The current values.
    pub fn snapshot(&self) -> Totals {
        Totals {
            connections: self.connections.get(),
            active: self.active.get(),
            requests: self.requests.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            status: self.status.each_ref().map(Cell::get),
            header_timeouts: self.header_timeouts.get(),
            idle_timeouts: self.idle_timeouts.get(),
        }
    }
}

fn bump(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

/// A snapshot of [`Counters`], summable across cores with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections open at the time of the snapshot.
    pub active: u64,
    /// Responses sent (one per request, including error responses).
    pub requests: u64,
    /// Bytes read from clients (counted by the transport as they arrive).
    pub bytes_in: u64,
    /// Bytes written to clients, heads and bodies (counted by the transport as the
    /// network accepts them, so a response cut short counts what went out).
    pub bytes_out: u64,
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: [u64; 5],
    /// Connections closed because a request head did not arrive in time (408).
    pub header_timeouts: u64,
    /// Keep-alive connections closed for idleness.
    pub idle_timeouts: u64,
}

impl AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.connections += o.connections;
        self.active += o.active;
        self.requests += o.requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a += b;
        }
        self.header_timeouts += o.header_timeouts;
        self.idle_timeouts += o.idle_timeouts;
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [s1, s2, s3, s4, s5] = self.status;
        writeln!(
            f,
            "connections: {} ({} still open)",
            self.connections, self.active
        )?;
        writeln!(
            f,
            "requests: {} (1xx {s1}, 2xx {s2}, 3xx {s3}, 4xx {s4}, 5xx {s5})",
            self.requests
        )?;
        writeln!(f, "bytes: {} in, {} out", self.bytes_in, self.bytes_out)?;
        write!(
            f,
            "timeouts: {} header (408), {} idle keep-alive",
            self.header_timeouts, self.idle_timeouts
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sums() {
        let c = Counters::default();
        c.connection_opened();
        c.connection_opened();
        c.connection_closed();
        c.response(200);
        c.response(304);
        c.response(404);
        c.response(505);
        c.response(99);
        c.read(10);
        c.wrote(20);
        c.header_timeout();
        c.idle_timeout();
        let t = c.snapshot();
        assert_eq!(t.connections, 2);
        assert_eq!(t.active, 1);
        assert_eq!(c.active_connections(), 1);
        assert_eq!(t.requests, 5);
        assert_eq!(t.status, [1, 1, 1, 1, 1]);
        assert_eq!((t.bytes_in, t.bytes_out), (10, 20));
        let mut sum = t;
        sum += t;
        assert_eq!(sum.requests, 10);
        assert_eq!(sum.status, [2, 2, 2, 2, 2]);
        assert_eq!(sum.header_timeouts, 2);
        let text = sum.to_string();
        assert!(text.contains("requests: 10 (1xx 2, 2xx 2, 3xx 2, 4xx 2, 5xx 2)"));
        assert!(text.contains("bytes: 20 in, 40 out"));
    }
}
