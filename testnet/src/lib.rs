//! Throw-away network namespaces holding TUN devices, made by `setup-scripts/`.
//!
//! A [`TestNet`] runs `setup-scripts/setup.sh` with names unique to this process and
//! call, and `teardown.sh` when dropped, so a failing test still removes what it made.
//! Inside the namespace, `kernel_addr()` is the kernel's side of the web server's
//! device and `stack_addr()` the address routed to whoever holds the device; with
//! [`Options::client`], a second device (`client_dev()`) serves a load generator's
//! stack, the kernel forwarding between the two. Kernel-side code runs on threads that
//! entered the namespace ([`TestNet::spawn`], [`TestNet::run`]) or as commands under
//! `ip netns exec` ([`TestNet::command`]). [`process::wait_within`] bounds the wait
//! for a test's child process.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iolib::tun::{Tun, TunError};

pub mod process;

/// The kernel's address on the server device of every [`TestNet`].
pub const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The server stack's address behind the server device of every [`TestNet`].
pub const STACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The kernel's address on the client device.
pub const CLIENT_KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
/// The client stack's address behind the client device.
pub const CLIENT_STACK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

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
    /// Entering the namespace failed.
    #[error("cannot enter network namespace {ns}: {source}")]
    Enter {
        /// The namespace's name.
        ns: String,
        /// The OS error.
        #[source]
        source: iolib::Error,
    },
    /// The TUN device could not be opened.
    #[error(transparent)]
    Tun(#[from] TunError),
}

impl From<NetError> for io::Error {
    fn from(e: NetError) -> io::Error {
        match e {
            NetError::Spawn { source, .. } => source,
            NetError::Enter { source, .. } => source.into(),
            other => io::Error::other(other),
        }
    }
}

/// Whether this process may create namespaces and TUN devices (root and
/// `/dev/net/tun`). Under `CI=true` a missing capability panics, so that a test relying
/// on it fails instead of skipping; elsewhere it prints why and returns `false`.
pub fn privileged(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
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

/// How to build a [`TestNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Device MTU.
    pub mtu: u32,
    /// Multi-queue devices (one queue per core) instead of single-queue ones.
    pub multi_queue: bool,
    /// A second device for a client stack.
    pub client: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mtu: 1500,
            multi_queue: false,
            client: false,
        }
    }
}

/// A network namespace with TUN devices; removed on drop.
#[derive(Debug)]
pub struct TestNet {
    ns: String,
    dev: String,
    client_dev: Option<String>,
    opts: Options,
}

impl TestNet {
    /// Creates a namespace and a single-queue TUN device with the given MTU, named
    /// uniquely after `label` (at most 5 bytes of it are used in device names).
    pub fn create(label: &str, mtu: u32) -> Result<TestNet, NetError> {
        TestNet::with(
            label,
            Options {
                mtu,
                ..Options::default()
            },
        )
    }

    /// Creates a namespace and devices as `opts` says, named uniquely after `label`.
    pub fn with(label: &str, opts: Options) -> Result<TestNet, NetError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let short: String = label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(5)
            .collect();
        // 15 bytes at most: 5 + up to 7 digits of pid % 10^7 + 's'/'c' + n % 100.
        let dev = |kind: char| format!("{short}{}{kind}{}", pid % 10_000_000, n % 100);
        let net = TestNet {
            ns: format!("tn-{label}-{pid}-{n}"),
            dev: dev('s'),
            client_dev: opts.client.then(|| dev('c')),
            opts,
        };
        let mut args = vec![
            "--mtu".to_owned(),
            opts.mtu.to_string(),
            "--no-host-link".to_owned(),
        ];
        if !opts.multi_queue {
            args.push("--single-queue".to_owned());
        }
        match &net.client_dev {
            Some(c) => {
                args.extend(["--client-dev".to_owned(), c.clone()]);
                args.extend([
                    "--client-kernel-addr".to_owned(),
                    format!("{CLIENT_KERNEL_ADDR}/24"),
                ]);
                args.extend([
                    "--client-stack-addr".to_owned(),
                    CLIENT_STACK_ADDR.to_string(),
                ]);
            }
            None => args.push("--no-client".to_owned()),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        net.run_script("setup.sh", &args)?;
        Ok(net)
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The server TUN device's name inside the namespace.
    pub fn dev(&self) -> &str {
        &self.dev
    }

    /// The client TUN device's name, if the network has one.
    pub fn client_dev(&self) -> Option<&str> {
        self.client_dev.as_deref()
    }

    /// The MTU the devices were created with.
    pub fn mtu(&self) -> u32 {
        self.opts.mtu
    }

    /// Opens the server device's only queue (from a thread inside the namespace), with
    /// checksum and segmentation offload if `offload`, and waits until the kernel
    /// reports the link up.
    ///
    /// Attaching raises the device's carrier, but the kernel activates its transmit
    /// queue only when the deferred link-watch work runs (up to a second later); until
    /// then packets routed to it are silently dropped. Waiting here keeps that start-up
    /// loss out of tests and measurements.
    pub fn open_tun_with(&self, offload: bool) -> Result<Tun, NetError> {
        let dev = self.dev.clone();
        let multi = self.opts.multi_queue;
        let tun = self.run(move || {
            let t = if multi {
                Tun::open_queues_with(&dev, 1, offload).map(|mut q| q.remove(0))
            } else if offload {
                Tun::open_offloaded(&dev)
            } else {
                Tun::open(&dev)
            };
            t.map_err(NetError::from)
        })??;
        self.wait_link_up(&self.dev)?;
        Ok(tun)
    }

    /// [`TestNet::open_tun_with`] without offload.
    pub fn open_tun(&self) -> Result<Tun, NetError> {
        self.open_tun_with(false)
    }

    /// Waits (up to 3 s) until the kernel reports `dev` running.
    pub fn wait_link_up(&self, dev: &str) -> Result<(), NetError> {
        let dev = dev.to_owned();
        self.run(move || {
            let i = iolib::netif::Interfaces::new()?;
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if i.flags(&dev).is_ok_and(|f| f & libc::IFF_RUNNING != 0) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok::<(), iolib::Error>(())
        })?
        .map_err(|source| NetError::Enter {
            ns: self.ns.clone(),
            source,
        })
    }

    /// Runs `f` on a thread inside the namespace and returns its result; sockets it
    /// creates live in the namespace (and work from any thread afterwards).
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NetError> {
        iolib::netns::run_in(&self.ns, f).map_err(|source| NetError::Enter {
            ns: self.ns.clone(),
            source,
        })
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
                iolib::netns::enter(&ns).map_err(|source| NetError::Enter { ns, source })?;
                f()
            })
            .expect("spawning a thread")
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
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

/// `setup-scripts/` of this repository.
fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../setup-scripts")
}
