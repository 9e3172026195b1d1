//! What a user-space network did: the stack's counters, the device's and the loop's,
//! summed over cores and printed for people.

use std::fmt;

use crate::device::DeviceStats;
use crate::net_loop::LoopStats;

/// Counts of one core's network, or of all cores summed with `+=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetReport {
    /// Every counter of the TCP stack, by name (`tcpstack::Counters`).
    pub counters: Vec<(&'static str, u64)>,
    /// The packet device's counts.
    pub device: DeviceStats,
    /// The loop's own counts.
    pub looped: LoopStats,
    /// Connections in the stack's table (any state).
    pub connections: u64,
    /// Bytes of buffer storage connections hold.
    pub buffer_bytes: u64,
    /// Bytes of buffer storage kept for reuse.
    pub pooled_bytes: u64,
}

impl NetReport {
    /// The counter `name` (0 if there is none).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |&(_, v)| v)
    }
}

impl std::ops::AddAssign<&NetReport> for NetReport {
    fn add_assign(&mut self, o: &NetReport) {
        for &(name, v) in &o.counters {
            match self.counters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mine)) => *mine += v,
                None => self.counters.push((name, v)),
            }
        }
        self.device += o.device;
        self.looped.polls += o.looped.polls;
        self.looped.misdirected += o.looped.misdirected;
        self.looped.forwarded_in += o.looped.forwarded_in;
        self.looped.device_errors += o.looped.device_errors;
        self.connections += o.connections;
        self.buffer_bytes += o.buffer_bytes;
        self.pooled_bytes += o.pooled_bytes;
    }
}

impl fmt::Display for NetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.device;
        writeln!(
            f,
            "  stack: {} connections, {} KiB in buffers, {} KiB pooled",
            self.connections,
            self.buffer_bytes / 1024,
            self.pooled_bytes / 1024
        )?;
        writeln!(
            f,
            "  device: rx {} packets ({} bytes), tx {} packets ({} bytes), {} tx errors, {} rx errors, {} I/O system calls",
            d.rx_packets, d.rx_bytes, d.tx_packets, d.tx_bytes, d.tx_errors, d.rx_errors, d.syscalls
        )?;
        writeln!(
            f,
            "  loop: {} polls, {} misdirected packets forwarded, {} received from other cores, {} device errors",
            self.looped.polls, self.looped.misdirected, self.looped.forwarded_in, self.looped.device_errors
        )?;
        write!(f, "  tcp:")?;
        let mut width = 6;
        for &(name, v) in self.counters.iter().filter(|(_, v)| *v != 0) {
            let item = format!(" {name}={v}");
            if width + item.len() > 100 {
                write!(f, "\n      ")?;
                width = 6;
            }
            width += item.len();
            f.write_str(&item)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_add_by_name_and_print_non_zero_counters() {
        let mut a = NetReport {
            counters: vec![("ip_rx_packets", 3), ("rst_sent", 0)],
            connections: 1,
            ..NetReport::default()
        };
        let b = NetReport {
            counters: vec![("ip_rx_packets", 4), ("rst_sent", 2)],
            connections: 2,
            ..NetReport::default()
        };
        a += &b;
        assert_eq!(a.counter("ip_rx_packets"), 7);
        assert_eq!(a.counter("rst_sent"), 2);
        assert_eq!(a.connections, 3);
        let text = a.to_string();
        assert!(
            text.contains("ip_rx_packets=7") && text.contains("rst_sent=2"),
            "{text}"
        );
        let mut empty = NetReport::default();
        empty += &a;
        assert_eq!(empty, a);
    }
}
