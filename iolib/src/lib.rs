//! Thin, safe wrappers over the Linux I/O the project needs: epoll, eventfd, io_uring,
//! non-blocking sockets and TUN devices. No scheduling and no policy live here.

pub mod tun;
