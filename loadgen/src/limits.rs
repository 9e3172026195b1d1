//! Process limits: enough file descriptors for the connections.

use std::io;

/// Descriptors needed besides the connections (stdio, epoll, eventfds, the JSON file).
const SPARE_FDS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` towards the hard limit so that `connections`
/// sockets fit; returns the soft limit in effect. Never lowers it.
pub fn ensure_open_files(connections: usize) -> io::Result<u64> {
    iolib::limits::raise_open_files((connections as u64).saturating_add(SPARE_FDS))
        .map_err(|e| e.source)
}
