//! # sim: the whole system in one seeded, deterministic simulation
//!
//! The real web server connection code and the real loadgen connection code talk over
//! two instances of our TCP stack, each driven by the same network loop that serves
//! `--net user`, with the TUN queue replaced by a [`SimDevice`](link::SimDevice) on a
//! simulated link that loses, duplicates, reorders, delays, corrupts and partitions
//! packets. One threadlib core runs it all under the mock clock, which jumps to the
//! next deadline whenever every thread waits; the document root is simulated too. One
//! seed decides everything ([`Params::draw`]), so any failure replays exactly.
//!
//! ```no_run
//! let outcome = sim::run(42, &sim::RunOptions::default());
//! assert!(outcome.passed(), "{:?}", outcome.violations);
//! println!("event hash: {:016x}", outcome.hash);
//! ```

pub mod batch;
pub mod coverage;
pub mod files;
pub mod hash;
pub mod http;
pub mod link;
pub mod oracle;
pub mod params;
pub mod tap;
pub mod world;

pub use coverage::Coverage;
pub use params::Params;
pub use world::{run, run_params, Outcome, RunOptions};
