//! Throw-away network namespaces holding a TUN device, made by `setup-scripts/`.
//!
//! A [`TestNet`] runs `setup-scripts/setup.sh` with names unique to this process and
//! call, and `teardown.sh` when dropped, so a failing test still removes what it made.
//! The kernel side of a test runs on threads that entered the namespace with `setns(2)`
//! ([`TestNet::spawn`]); sockets such a thread creates belong to the namespace.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use iolib::tun::{Tun, TunError};
use nix::sched::CloneFlags;

/// The kernel's address on the TUN device of every [`TestNet`].
pub const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The user-space stack's address behind the TUN device of every [`TestNet`].
pub const STACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Errors building or entering a test network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A setup script could not be started.
    #[error("cannot run {script}: {source}")]
    Spawn {
        /// The script's path.
        script: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A setup script exited with an error.
    #[error("{script} failed ({status}): {stderr}")]
    Script {
        /// The script's path.
        script: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Entering the namespace with `setns(2)` failed.
    #[error("cannot enter network namespace {ns}: {source}")]
    Enter {
        /// The namespace's name.
        ns: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The TUN device could not be opened.
    #[error(transparent)]
    Tun(#[from] TunError),
}

/// Whether this process may create namespaces and TUN devices (root and
/// `/dev/net/tun`). Under `CI=true` a missing capability panics, so that a test relying
/// on it fails instead of skipping; elsewhere it prints why and returns `false`.
pub fn privileged(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let tun = std::path::Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip").arg("-V").output().is_ok();
    if root && tun && ip {
        return true;
    }
    let reason = format!(
        "{what} needs root, /dev/net/tun and iproute2 (root: {root}, tun: {tun}, ip: {ip})"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipping: {reason}");
    false
}

/// A network namespace with a TUN device at [`KERNEL_ADDR`] (kernel side) routing
/// [`STACK_ADDR`] to whoever holds the device; removed on drop.
#[derive(Debug)]
pub struct TestNet {
    ns: String,
    dev: String,
    mtu: u32,
}

impl TestNet {
    /// Creates a namespace and single-queue TUN device with the given MTU, named
    /// uniquely after `label` (at most 6 bytes of it are used in the device name).
    pub fn create(label: &str, mtu: u32) -> Result<TestNet, NetError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let short: String = label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(6)
            .collect();
        let net = TestNet {
            ns: format!("tcpi-{label}-{pid}-{n}"),
            // 15 bytes at most: 6 + up to 7 digits of pid % 10^7 + 'q' + n % 100.
            dev: format!("{short}{}q{}", pid % 10_000_000, n % 100),
            mtu,
        };
        net.run_script("setup.sh", &["--mtu", &mtu.to_string()])?;
        Ok(net)
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The TUN device's name inside the namespace.
    pub fn dev(&self) -> &str {
        &self.dev
    }

    /// The MTU the device was created with.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Opens the namespace's TUN device (from a thread inside the namespace) and waits
    /// until the kernel reports the link up.
    ///
    /// Attaching raises the device's carrier, but the kernel activates its transmit
    /// queue only when the deferred link-watch work runs (up to a second later); until
    /// then packets routed to the device are silently dropped. Waiting here keeps that
    /// start-up loss out of tests and measurements.
    pub fn open_tun(&self) -> Result<Tun, NetError> {
        self.open_tun_with(false)
    }

    /// Opens the TUN device from inside the namespace, with checksum and segmentation
    /// offload if `offload` (see `iolib::tun::Tun::open_offloaded`).
    pub fn open_tun_with(&self, offload: bool) -> Result<Tun, NetError> {
        let dev = self.dev.clone();
        let open = move || {
            if offload {
                Tun::open_offloaded(&dev)
            } else {
                Tun::open(&dev)
            }
        };
        let tun = self
            .spawn("open-tun", move || open().map_err(NetError::from))
            .join()
            .expect("the open-tun thread does not panic")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !self.link_up()? && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(tun)
    }

    /// Whether `ip link` shows the device's operational state as UP.
    fn link_up(&self) -> Result<bool, NetError> {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "-o", "link", "show", "dev", &self.dev])
            .output()
            .map_err(|source| NetError::Spawn {
                script: "ip link show".to_owned(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).contains(" state UP "))
    }

    /// Runs `f` on a new thread that first enters the namespace; sockets it creates live
    /// there. An error entering the namespace is returned as `f`'s result would be.
    pub fn spawn<T, E>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> JoinHandle<Result<T, E>>
    where
        T: Send + 'static,
        E: From<NetError> + Send + 'static,
    {
        let ns = self.ns.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                enter(&ns)?;
                f()
            })
            .expect("spawning a thread")
    }

    fn run_script(&self, script: &str, extra: &[&str]) -> Result<(), NetError> {
        let path = scripts_dir().join(script);
        let script = path.display().to_string();
        let out = Command::new(&path)
            .args(["--ns", &self.ns, "--dev", &self.dev])
            .args(["--kernel-addr", &format!("{KERNEL_ADDR}/24")])
            .args(["--stack-addr", &STACK_ADDR.to_string()])
            .args(extra)
            .output()
            .map_err(|source| NetError::Spawn {
                script: script.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(NetError::Script {
                script,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Err(e) = self.run_script("teardown.sh", &[]) {
            eprintln!("warning: could not remove namespace {}: {e}", self.ns);
        }
    }
}

/// Moves the calling thread into the named namespace (one made by `ip netns add`).
fn enter(ns: &str) -> Result<(), NetError> {
    let err = |source| NetError::Enter {
        ns: ns.to_owned(),
        source,
    };
    let file = File::open(format!("/run/netns/{ns}")).map_err(err)?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))
}

/// `setup-scripts/` of this repository.
fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../setup-scripts")
}

impl From<NetError> for io::Error {
    fn from(e: NetError) -> io::Error {
        match e {
            NetError::Spawn { source, .. } | NetError::Enter { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}
