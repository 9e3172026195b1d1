//! An HTTP load generator, free of I/O (wrk-like, with wrk2's constant-rate mode).
//!
//! The connection logic, [`run_connection`], is generic over the [`Network`] and
//! [`Transport`] traits, so it runs on kernel sockets, on the user-space TCP stack, and
//! on in-memory mocks in the tests. A run is: parse the command line ([`Config`]) into
//! a [`Plan`]; on each thread, run [`Plan::connection`]s with [`run_connection`], each
//! recording into the thread's [`Stats`]; merge the threads' stats with
//! [`Stats::merge`]; print [`report::human`] and write [`report::JsonReport`].
//!
//! Modules by concern: [`url`] (http URLs), [`request`] (pre-rendered requests),
//! [`response`] (incremental response validation), [`schedule`] (constant rate),
//! [`stats`] (histograms and error counts), [`connection`] (the connection loop),
//! [`report`] (human and JSON output), [`progress`] (live line), [`cli`].

#![warn(missing_docs)]

pub mod cli;
pub mod connection;
pub mod progress;
pub mod report;
pub mod request;
pub mod response;
pub mod schedule;
pub mod stats;
pub mod transport;
pub mod url;

pub use cli::{Config, NetBackend, Plan};
pub use connection::{run_connection, ConnectionPlan};
pub use stats::{ErrorCounts, ErrorKind, Stats};
pub use transport::{Network, Transport, TransportError};
