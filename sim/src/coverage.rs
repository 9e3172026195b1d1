//! "Sometimes" assertions: the interesting paths a run took. Each seed counts 1 for
//! every path it reached; a batch adds its seeds up and fails if any path stayed at
//! zero (the faults and workload no longer reach it, so the oracles no longer test it).

use std::fmt;
use std::ops::AddAssign;

use usernet::NetReport;

use crate::oracle::Seen;

macro_rules! paths {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// For one run, whether each path was taken (0 or 1); for a batch, in how many
        /// of its seeds.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Coverage {
            /// Seeds counted.
            pub seeds: u64,
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Coverage {
            /// Every path as `(name, seeds)`.
            pub fn paths(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name) ),*]
            }
        }

        impl AddAssign<&Coverage> for Coverage {
            fn add_assign(&mut self, o: &Coverage) {
                self.seeds += o.seeds;
                $( self.$name += o.$name; )*
            }
        }
    };
}

paths! {
    /// A retransmission timeout expired.
    rto,
    /// A fast retransmit (three duplicate ACKs or SACK evidence).
    fast_retransmit,
    /// Loss recovery driven by SACK blocks.
    sack_recovery,
    /// A tail loss probe.
    tail_loss_probe,
    /// A zero-window probe.
    zero_window_probe,
    /// Both ends closed at once.
    simultaneous_close,
    /// A client's connection was reset with a response partly received.
    rst_mid_response,
    /// A 408 (slow request head).
    status_408,
    /// A 304 (conditional request).
    status_304,
    /// A 206 (range request).
    status_206,
    /// Pipelined requests answered on one connection.
    pipelining,
    /// The server crashed and restarted with connections open.
    server_restart,
    /// A corrupted packet was caught by a checksum.
    checksum_caught,
    /// SYN cookies were used.
    syn_cookies,
}

impl Coverage {
    /// What one run reached: from both stacks' counters (summed) and what the oracles
    /// saw.
    pub fn of(stacks: &NetReport, seen: &Seen, restarted: bool) -> Coverage {
        let c = |name: &str| u64::from(stacks.counter(name) > 0);
        Coverage {
            seeds: 1,
            rto: c("rto_expirations"),
            fast_retransmit: c("fast_retransmits"),
            sack_recovery: c("fast_retransmits") & c("sack_blocks_received"),
            tail_loss_probe: c("tail_loss_probes"),
            zero_window_probe: c("window_probes"),
            simultaneous_close: c("simultaneous_closes"),
            rst_mid_response: u64::from(seen.rst_mid_response > 0),
            status_408: u64::from(seen.status_408 > 0),
            status_304: u64::from(seen.status_304 > 0),
            status_206: u64::from(seen.status_206 > 0),
            pipelining: u64::from(seen.pipelined > 0),
            server_restart: u64::from(restarted),
            checksum_caught: c("tcp_bad_checksum") | c("ip_bad_checksum"),
            syn_cookies: c("syn_cookies_accepted"),
        }
    }

    /// The paths no seed reached.
    pub fn missing(&self) -> Vec<&'static str> {
        self.paths()
            .into_iter()
            .filter(|&(_, n)| n == 0)
            .map(|(name, _)| name)
            .collect()
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, n)) in self.paths().into_iter().enumerate() {
            if i > 0 {
                f.write_str(if i % 4 == 0 { "\n" } else { "  " })?;
            }
            write!(f, "{name:>18} {n:>6}")?;
        }
        Ok(())
    }
}
