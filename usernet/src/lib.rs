//! The user-space network for threadlib threads.
//!
//! Each core of a threadlib runtime gets one [`NetLoop`]: an event loop, registered
//! through the same [`threadlib::EventLoop`] mechanism any user has, that owns one
//! pure [`tcpstack::Stack`] and one packet [`Device`] and serves TCP system calls for
//! that core's threads, as the original design's TCP socket I/O loop did. Threads see
//! it as a [`threadlib::net::Network`] ([`UserNet`]), so code written against kernel
//! sockets runs unchanged on it.
//!
//! ```text
//!  threads ── with_loop (try) / call_word (wait) ──▶ NetLoop ── Stack (pure TCP)
//!                                                      │
//!                                                   Device ── TUN queue ── Linux
//!                                                            (or a simulated link)
//! ```
//!
//! - [`device`]: the packet-device interface ([`Device`]); [`TunDevice`] (a TUN queue
//!   with checksum and segmentation offload) and [`Impaired`] (loss and reordering
//!   around any device) implement it.
//! - [`steering`]: one TUN queue per core; a steering program in the kernel and the
//!   port picker of active opens agree on which core owns each flow.
//! - [`tun_setup`]: opening the queues of a device `make setup` made, with the errors a
//!   user can act on.
//! - [`NetReport`]: the stack's, device's and loop's counters.
//! - [`cli`]: `--net kernel|user` and where the stack's device is, for the binaries.

pub mod cli;
pub mod device;
mod error;
mod impaired;
mod net;
mod net_loop;
mod report;
mod secret;
pub mod steering;
mod tun_device;
pub mod tun_setup;

pub use device::{Device, DeviceCaps, DeviceStats, Received};
pub use impaired::{Impaired, Impairment, ImpairmentStats};
pub use net::{UserListener, UserNet, UserStream};
pub use net_loop::{LoopStats, NetConfig, NetLoop};
pub use report::NetReport;
pub use secret::{host_secret, random_secret, HOST_SECRET_PATH};
pub use steering::Steering;
pub use tun_device::{TunDevice, TunIo};
