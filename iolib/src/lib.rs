//! Thin, safe wrappers over the Linux I/O the project needs: epoll, eventfd, timerfd,
//! io_uring, non-blocking sockets, pipes/splice/sendfile, signalfd, TUN devices, network
//! namespaces, eBPF socket-filter programs, the open-file limit, the host's monotonic
//! clock and the CPU scheduler's view of the calling thread. No scheduling and no
//! policy live here: every call does one OS operation and reports its result or a
//! typed [`Error`].

pub mod bpf;
pub mod clock;
pub mod epoll;
pub mod error;
pub mod eventfd;
pub mod fd;
pub mod limits;
pub mod netif;
pub mod netns;
pub mod sched;
pub mod signal;
pub mod socket;
pub mod timerfd;
pub mod tun;
pub mod uring;

pub use error::{Error, Result};
