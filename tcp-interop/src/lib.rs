//! Drives the pure `tcpstack` over a Linux TUN device, for the Linux interop tests and
//! the `bench_tcp` benchmark.
//!
//! - [`netns`]: throw-away network namespaces with a TUN device (via `setup-scripts/`),
//!   and threads that enter them;
//! - [`shim`]: a seeded loss-and-reorder shim for the stack's side of the link;
//! - [`workload`]: kernel-side traffic (seeded streams with digests, bulk and ping-pong
//!   clients, kernel servers for the loopback anchor);
//! - [`service`]: the bench servers' per-connection applications;
//! - [`smoltcp_server`]: the smoltcp anchor over the same kind of TUN device.

pub mod netns;
pub mod service;
pub mod shim;
pub mod smoltcp_server;
pub mod workload;
