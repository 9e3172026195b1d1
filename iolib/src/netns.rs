//! Network namespaces by name, as `ip netns add NAME` makes them (a bind mount at
//! `/run/netns/NAME`).
//!
//! Namespace membership belongs to an OS thread: [`enter`] moves the calling thread,
//! and sockets or TUN queues it opens afterwards live in that namespace (their fds then
//! work from any thread). [`run_in`] does the same on a fresh thread, so the caller's
//! own namespace never changes.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::CloneFlags;

use crate::error::{Error, Result};

/// Where `ip netns` keeps the namespace `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Whether the namespace `name` exists.
pub fn exists(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && path(name).exists()
}

/// Moves the calling OS thread into the namespace `name`.
pub fn enter(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::from_errno("open(/run/netns/...)", libc::EINVAL));
    }
    let file = File::open(path(name)).map_err(|e| Error::new("open(/run/netns/...)", e))?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::new("setns", e.into()))
}

/// Runs `f` on a new OS thread that first enters the namespace `name`, and returns what
/// `f` returned.
pub fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let name = name.to_owned();
    std::thread::Builder::new()
        .name("netns".to_owned())
        .spawn(move || enter(&name).map(|()| f()))
        .map_err(|e| Error::new("spawn", e))?
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_names_that_are_paths() {
        assert!(!exists(""));
        assert!(!exists("../etc"));
        assert!(enter("a/b").is_err());
        assert!(!exists("no-such-namespace-here"));
        let e = run_in("no-such-namespace-here", || ()).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }
}
