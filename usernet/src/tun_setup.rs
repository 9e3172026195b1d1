//! Opening the TUN device that `make setup` prepared: one queue per core, with
//! offload, the steering program attached, and every way this can fail reported as
//! something a user can act on.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use iolib::tun::{Tun, TunError};

use crate::steering::Steering;
use crate::tun_device::TunDevice;

/// Where the user-space stack's device is, and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunSetup {
    /// The network namespace holding the device (`ip netns` name).
    pub netns: String,
    /// The TUN device's name in that namespace.
    pub device: String,
    /// The stack's address: the namespace must route it to the device.
    pub addr: Ipv4Addr,
    /// Queues to open, one per core.
    pub queues: usize,
    /// Attach with checksum and segmentation offload (virtio-net headers).
    pub offload: bool,
    /// How packets cross between the queues and the kernel.
    pub io: crate::TunIo,
}

/// Why the device could not be opened. Every variant but [`SetupError::Open`] and
/// [`SetupError::Steering`] names its fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Not running as root.
    #[error("the user-space network opens a TUN device, which needs root (CAP_NET_ADMIN): run it with sudo")]
    NotRoot,
    /// The namespace does not exist.
    #[error("network namespace {0:?} does not exist: run `make setup` first")]
    NamespaceMissing(String),
    /// The device does not exist in the namespace.
    #[error(
        "TUN device {dev:?} does not exist in network namespace {ns:?}: run `make setup` first"
    )]
    DeviceMissing {
        /// The namespace.
        ns: String,
        /// The device.
        dev: String,
    },
    /// Another process holds the device.
    #[error("TUN device {dev:?} in network namespace {ns:?} is in use by another process: stop it, or run `make setup` with another device name")]
    DeviceBusy {
        /// The namespace.
        ns: String,
        /// The device.
        dev: String,
    },
    /// The device cannot give one queue per core.
    #[error("TUN device {dev:?} has {have} queue(s) for {want} cores: run `make setup` again (it makes a multi-queue device) or use fewer cores")]
    TooFewQueues {
        /// The device.
        dev: String,
        /// Queues it can give.
        have: usize,
        /// Queues asked for.
        want: usize,
    },
    /// The namespace does not route the stack's address to the device.
    #[error("{addr} is not routed to {dev} in network namespace {ns:?} (the stack answers only for the address the kernel sends to the device): run `make setup`, or pass the address `make setup` gave the stack")]
    AddressNotOnDevice {
        /// The stack's address.
        addr: Ipv4Addr,
        /// The namespace.
        ns: String,
        /// The device.
        dev: String,
    },
    /// Opening failed for another reason.
    #[error("opening TUN device {dev:?} in network namespace {ns:?}: {source}")]
    Open {
        /// The namespace.
        ns: String,
        /// The device.
        dev: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The steering program could not be loaded or attached.
    #[error("attaching the queue-steering program to {dev:?}: {source}")]
    Steering {
        /// The device.
        dev: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// The opened queues, and what keeps them ours.
#[derive(Debug)]
pub struct OpenedTun {
    /// One device per core; each holds the exclusive lock on the device, released
    /// when the last one is dropped.
    pub devices: Vec<TunDevice>,
    /// The rule the kernel steers flows by, when there is more than one queue.
    pub steering: Option<Steering>,
}

/// The largest number of queues a TUN device may have (the kernel's
/// `MAX_TAP_QUEUES`).
const MAX_QUEUES: usize = 256;

/// Opens `setup.queues` queues of the device, checking everything a user can get
/// wrong first: root, the namespace, the device, the route to the stack's address,
/// and that no other process uses it. With several queues it attaches the steering
/// program, then waits (up to 3 s) for the kernel to bring the link up.
pub fn open(setup: &TunSetup) -> Result<OpenedTun, SetupError> {
    let ns = setup.netns.clone();
    let dev = setup.device.clone();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SetupError::NotRoot);
    }
    if !iolib::netns::exists(&ns) {
        return Err(SetupError::NamespaceMissing(ns));
    }
    if setup.queues > MAX_QUEUES {
        return Err(SetupError::TooFewQueues {
            dev,
            have: MAX_QUEUES,
            want: setup.queues,
        });
    }
    let lock = lock(&ns, &dev)?;
    let s = setup.clone();
    let opened =
        iolib::netns::run_in(&ns, move || open_inside(&s)).map_err(|e| SetupError::Open {
            ns: ns.clone(),
            dev: dev.clone(),
            source: e.into(),
        })??;
    let (mut devices, steering) = opened;
    let lock = std::sync::Arc::new(lock);
    for d in &mut devices {
        d.hold(lock.clone());
    }
    Ok(OpenedTun { devices, steering })
}

type Inside = (Vec<TunDevice>, Option<Steering>);

/// The part of [`open`] that runs on a thread inside the namespace.
fn open_inside(s: &TunSetup) -> Result<Inside, SetupError> {
    let (ns, dev) = (s.netns.clone(), s.device.clone());
    let open_err = |source: io::Error| SetupError::Open {
        ns: ns.clone(),
        dev: dev.clone(),
        source,
    };
    let control = iolib::netif::Interfaces::new().map_err(|e| open_err(e.into()))?;
    if control.flags(&dev).is_err() {
        return Err(SetupError::DeviceMissing { ns, dev });
    }
    if !routes_to(s.addr, &dev).map_err(open_err)? {
        return Err(SetupError::AddressNotOnDevice {
            addr: s.addr,
            ns,
            dev,
        });
    }
    // A busy device names the fix; anything else is an open error.
    let attach_err = |e: TunError| match e {
        TunError::Attach { ref source, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
            SetupError::DeviceBusy {
                ns: ns.clone(),
                dev: dev.clone(),
            }
        }
        e => open_err(io::Error::other(e)),
    };
    let attach = || match Tun::open_queues_with(&dev, s.queues, s.offload) {
        Err(TunError::Attach { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            // A single-queue device refuses a multi-queue attach.
            if s.queues > 1 {
                return Err(SetupError::TooFewQueues {
                    dev: dev.clone(),
                    have: 1,
                    want: s.queues,
                });
            }
            let one = if s.offload {
                Tun::open_offloaded(&dev)
            } else {
                Tun::open(&dev)
            };
            one.map(|t| vec![t]).map_err(attach_err)
        }
        r => r.map_err(attach_err),
    };
    // The previous holder's queues detach only when the kernel releases its last
    // reference to them, which an exiting process's io_uring teardown can defer
    // briefly after the lock (taken above) is already free: retry a busy device for a
    // moment before reporting it.
    // Waiting for the kernel, outside any runtime: real time.
    #[allow(clippy::disallowed_methods)]
    let busy_until = Instant::now() + Duration::from_millis(500);
    let queues = loop {
        match attach() {
            #[allow(clippy::disallowed_methods)]
            Err(SetupError::DeviceBusy { .. }) if Instant::now() < busy_until => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => break r?,
        }
    };
    let steering = (queues.len() > 1).then(|| Steering::new(queues.len()));
    if let Some(st) = &steering {
        let steer_err = |source: io::Error| SetupError::Steering {
            dev: dev.clone(),
            source,
        };
        let program = st.load().map_err(|e| steer_err(e.into()))?;
        queues[0]
            .set_steering_program(&program)
            .map_err(|e| steer_err(io::Error::other(e)))?;
    }
    // The kernel activates the device's queue only when its deferred link-watch work
    // runs; until then packets routed to it are dropped.
    // Waiting for the kernel, outside any runtime: real time.
    #[allow(clippy::disallowed_methods)]
    let deadline = Instant::now() + Duration::from_secs(3);
    #[allow(clippy::disallowed_methods)]
    while Instant::now() < deadline {
        match control.flags(&dev) {
            Ok(f) if f & libc::IFF_RUNNING != 0 => break,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let devices = queues
        .into_iter()
        .map(|q| TunDevice::with_io(q, s.io))
        .collect::<io::Result<Vec<_>>>()
        .map_err(open_err)?;
    Ok((devices, steering))
}

/// Whether the namespace of the calling thread routes `addr` to `dev` (longest prefix
/// in its main routing table).
fn routes_to(addr: Ipv4Addr, dev: &str) -> io::Result<bool> {
    let table = std::fs::read_to_string("/proc/thread-self/net/route")?;
    Ok(route_device(&table, addr).as_deref() == Some(dev))
}

/// The interface `table` (the text of `/proc/net/route`) routes `addr` through.
fn route_device(table: &str, addr: Ipv4Addr) -> Option<String> {
    // Addresses appear as the hex of the network-order word read in host order.
    let a = u32::from_ne_bytes(addr.octets());
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            (a & mask == dest).then(|| (mask.count_ones(), f[0].to_owned()))
        })
        .max_by_key(|(bits, _)| *bits)
        .map(|(_, iface)| iface)
}

/// Takes an exclusive lock naming the device, so a second server on the same device
/// fails instead of stealing half its flows.
fn lock(ns: &str, dev: &str) -> Result<File, SetupError> {
    let dir = std::path::Path::new("/run/usernet");
    let path = dir.join(format!("{ns}.{dev}.lock"));
    let err = |source: io::Error| SetupError::Open {
        ns: ns.to_owned(),
        dev: dev.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    // SAFETY: flock on an fd we own; it touches no memory.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Err(SetupError::DeviceBusy {
                ns: ns.to_owned(),
                dev: dev.to_owned(),
            });
        }
        return Err(err(e));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
tun0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
tun0\t02004D0A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
tun1\t00014D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
veth\t00000000\t01004E0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";

    #[test]
    fn the_longest_matching_prefix_names_the_device() {
        let dev = |a: [u8; 4]| route_device(TABLE, Ipv4Addr::from(a));
        assert_eq!(dev([10, 77, 0, 2]).as_deref(), Some("tun0"));
        assert_eq!(dev([10, 77, 0, 9]).as_deref(), Some("tun0"));
        assert_eq!(dev([10, 77, 1, 2]).as_deref(), Some("tun1"));
        assert_eq!(dev([192, 168, 1, 1]).as_deref(), Some("veth"));
        assert_eq!(route_device("header only\n", Ipv4Addr::LOCALHOST), None);
    }
}
