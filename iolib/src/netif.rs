//! Network interfaces of the calling thread's network namespace, queried by name
//! through a control socket (`SIOCGIF*` ioctls).
//!
//! The namespace is fixed when the [`Interfaces`] handle is made: a handle created on
//! a thread inside a namespace keeps answering for that namespace from any thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// A control socket for interface queries in one network namespace.
#[derive(Debug)]
pub struct Interfaces {
    control: OwnedFd,
}

impl Interfaces {
    /// A handle for the calling thread's network namespace.
    pub fn new() -> Result<Interfaces> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::last("socket"));
        }
        // SAFETY: `raw` is a freshly created, valid socket fd that nothing else owns.
        let control = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Interfaces { control })
    }

    /// The interface's flags (`IFF_UP`, `IFF_RUNNING`, ...); fails with `ENODEV` if
    /// there is no such interface.
    pub fn flags(&self, name: &str) -> Result<libc::c_int> {
        let mut ifr = ifreq(name).ok_or_else(|| Error::from_errno("SIOCGIFFLAGS", libc::EINVAL))?;
        // SAFETY: `control` is an open AF_INET socket and `ifr` a fully initialised
        // `ifreq` naming the interface; SIOCGIFFLAGS writes only `ifr_ifru.ifru_flags`.
        let rc = unsafe { libc::ioctl(self.control.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) };
        if rc < 0 {
            return Err(Error::last("SIOCGIFFLAGS"));
        }
        // SAFETY: SIOCGIFFLAGS succeeded, so the kernel initialised `ifru_flags`.
        Ok(libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags }) & 0xffff)
    }

    /// The interface's MTU.
    pub fn mtu(&self, name: &str) -> Result<u32> {
        let mut ifr = ifreq(name).ok_or_else(|| Error::from_errno("SIOCGIFMTU", libc::EINVAL))?;
        // SAFETY: `control` is an open AF_INET socket and `ifr` a fully initialised
        // `ifreq` naming the interface; SIOCGIFMTU writes only `ifr_ifru.ifru_mtu`.
        let rc = unsafe { libc::ioctl(self.control.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
        if rc < 0 {
            return Err(Error::last("SIOCGIFMTU"));
        }
        // SAFETY: SIOCGIFMTU succeeded, so the kernel initialised the `ifru_mtu` member.
        let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
        u32::try_from(mtu).map_err(|_| Error::new("SIOCGIFMTU", io::ErrorKind::InvalidData.into()))
    }
}

/// Whether `name` is a name the kernel accepts for an interface (its `dev_valid_name`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// A zeroed `ifreq` whose name field holds `name`, or `None` for an invalid name.
pub(crate) fn ifreq(name: &str) -> Option<libc::ifreq> {
    if !valid_name(name) {
        return None;
    }
    // SAFETY: `ifreq` is a plain C struct (arrays, integers, a union of those and a raw
    // pointer) for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Some(ifr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_and_missing_interfaces_are_enodev() {
        let i = Interfaces::new().unwrap();
        assert!(i.flags("lo").unwrap() & libc::IFF_LOOPBACK != 0);
        assert!(i.mtu("lo").unwrap() >= 1500);
        let e = i.flags("no-such-if0").unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert!(i.flags("a/b").is_err());
        assert!(!valid_name("sixteen-bytes-xx"));
    }
}
