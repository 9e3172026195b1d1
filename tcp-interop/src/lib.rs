//! Drives the pure `tcpstack` over a Linux TUN device, for the Linux interop tests and
//! the `bench_tcp` benchmark.
//!
//! - [`driver`]: the loop between a TUN queue (`usernet`'s packet device) and a
//!   [`tcpstack::Stack`], optionally through loss and reordering on the stack's side;
//! - [`apps`]: applications on a driven stack (bench services, the tests' exchange);
//! - [`workload`]: kernel-side traffic (seeded streams with digests, bulk and ping-pong
//!   clients, kernel servers for the loopback anchor);
//! - [`rig`]: a namespace, a TUN device and a driven stack, with the kernel's side on
//!   threads inside; the bulk exchange the interop tests and `loss_matrix` run;
//! - [`service`]: what the bench servers do with each connection;
//! - [`ours`] and [`smoltcp_server`]: the bench servers on our stack and on smoltcp.

pub mod apps;
pub mod driver;
pub mod ours;
pub mod rig;
pub mod service;
pub mod smoltcp_server;
pub mod workload;
