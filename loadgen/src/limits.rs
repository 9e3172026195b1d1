//! Process limits: enough file descriptors for the connections.

use std::io;

/// Descriptors needed besides the connections (stdio, epoll, eventfds, the JSON file).
const SPARE_FDS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` towards the hard limit so that `connections`
/// sockets fit; returns the soft limit in effect. Never lowers it.
pub fn ensure_open_files(connections: usize) -> io::Result<u64> {
    let want = (connections as u64).saturating_add(SPARE_FDS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur >= want {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = want.min(limit.rlim_max);
    // SAFETY: `limit` is a valid rlimit whose soft value does not exceed the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}
