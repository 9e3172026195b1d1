//! Thin, safe wrappers over the Linux I/O the project needs: epoll, eventfd, io_uring,
//! non-blocking sockets, pipes/splice and TUN devices. No scheduling and no policy live
//! here: every call does one OS operation and reports its result or a typed [`Error`].

pub mod epoll;
pub mod error;
pub mod eventfd;
pub mod fd;
pub mod socket;
pub mod tun;
pub mod uring;

pub use error::{Error, Result};
