//! An HTTP load generator, free of I/O (wrk-like, with wrk2's constant-rate mode).
//!
//! The connection logic, [`run_connection`], is generic over the [`Network`] and
//! [`Transport`] traits, so it runs on kernel sockets, on the user-space TCP stack, and
//! on in-memory mocks in the tests. A run is: parse the command line ([`Config`]) into
//! a [`Plan`]; on each thread, run [`Plan::connection`]s with [`run_connection`], each
//! recording into the thread's [`Stats`]; merge the threads' stats with
//! [`Stats::merge`]; print [`report::human`], write [`report::JsonReport`] and
//! [`plot::svg`], and judge the run with [`report::verdict`].
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use clap::Parser;
//! use loadgen::*;
//!
//! /// A server that answers every request with the same small response.
//! struct Echo { due: usize }
//!
//! impl Transport for Echo {
//!     async fn read(&mut self, buf: &mut [u8], _deadline: Instant) -> Result<usize, TransportError> {
//!         let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
//!         assert!(self.due > 0 && buf.len() >= response.len());
//!         self.due -= 1;
//!         buf[..response.len()].copy_from_slice(response);
//!         Ok(response.len())
//!     }
//!     async fn write_all(&mut self, buf: &[u8], _deadline: Instant) -> Result<(), TransportError> {
//!         self.due += buf.windows(4).filter(|w| *w == b"\r\n\r\n").count();
//!         Ok(())
//!     }
//! }
//!
//! struct Net;
//!
//! impl Network for Net {
//!     type Conn = Echo;
//!     async fn connect(&self, _: SocketAddr, _: Instant) -> Result<Echo, TransportError> {
//!         Ok(Echo { due: 0 })
//!     }
//!     fn now(&self) -> Instant { Instant::now() }
//!     async fn sleep_until(&self, deadline: Instant) {
//!         std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
//!     }
//! }
//!
//! let plan = Config::try_parse_from(["loadgen", "-c", "2", "-t", "1", "-n", "10", "http://127.0.0.1:8080/"])
//!     .unwrap()
//!     .plan()
//!     .unwrap();
//! let addr = plan.targets[0].resolve().unwrap()[0];
//! let start = Instant::now();
//! let mut total = Stats::new();
//! for index in plan.connections_of(0) {
//!     let mut stats = Stats::new();
//!     futures::executor::block_on(run_connection(&Net, plan.connection(index, addr, start), &mut stats, None));
//!     total.merge(&stats);
//! }
//! assert_eq!(total.requests, 10);
//! assert_eq!(total.bytes, 10 * 40);
//! let urls = plan.urls();
//! let summary = report::Summary {
//!     stats: &total, elapsed: start.elapsed(), threads: plan.threads,
//!     connections: plan.connections, pipeline: plan.pipeline, rate: plan.rate, urls: &urls,
//! };
//! assert!(report::human(&summary, false).contains("10 requests in"));
//! assert!(plot::svg(&summary).starts_with("<svg "));
//! assert_eq!(report::verdict(&total, Some(0.01)), Ok(()));
//! ```
//!
//! Modules by concern: [`url`] (http URLs), [`request`] (pre-rendered requests),
//! [`response`] (incremental response validation), [`schedule`] (constant rate),
//! [`stats`] (histograms, error counts, per-second figures, reachability),
//! [`connection`] (the connection loop), [`report`] (human and JSON output, the
//! verdict), [`plot`] (the SVG picture), [`progress`] (live line), [`cli`].

#![warn(missing_docs)]

pub mod cli;
pub mod connection;
pub mod plot;
pub mod progress;
pub mod report;
pub mod request;
pub mod response;
pub mod schedule;
pub mod stats;
pub mod thread_net;
pub mod transport;
pub mod url;

pub use cli::{Config, NetBackend, Plan};
pub use connection::{run_connection, ConnectionPlan};
pub use stats::{ErrorCounts, ErrorKind, Recorder, SlotEnd, Stats};
pub use thread_net::{ThreadConn, ThreadNet};
pub use transport::{Network, Transport, TransportError};
