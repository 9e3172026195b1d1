//! The command-line choice of network, shared by the binaries that run on either:
//! `--net kernel|user` and, for the user-space stack, where its TUN device is; opening
//! and installing the chosen network; and what either reports of itself ([`NetStats`]).
//!
//! The defaults are what `make setup` creates: namespace `tcpst`, the web server's
//! stack on `tun0` at 10.77.0.2, the load generator's on `tun1` at 10.77.1.2.

use std::net::Ipv4Addr;

use clap::{Args, ValueEnum};
use threadlib::net::KernelNet;
use threadlib::Builder;

use crate::secret::random_secret;
use crate::tun_setup::{self, OpenedTun, SetupError, TunSetup};
use crate::{host_secret, NetConfig, NetReport, TunIo, UserNet, HOST_SECRET_PATH};

/// Which network carries the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetBackend {
    /// Kernel TCP sockets, readiness from epoll.
    Kernel,
    /// The user-space TCP stack over a TUN device (`make setup` first).
    User,
}

/// Which program's stack: they use different devices and addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The web server (passive opens): `tun0`, 10.77.0.2.
    Server,
    /// The load generator (active opens): `tun1`, 10.77.1.2.
    Client,
}

impl Role {
    /// The stack's address `make setup` routes for this program.
    pub fn default_addr(self) -> Ipv4Addr {
        match self {
            Role::Server => Ipv4Addr::new(10, 77, 0, 2),
            Role::Client => Ipv4Addr::new(10, 77, 1, 2),
        }
    }

    /// The TUN device `make setup` makes for this program.
    pub fn default_device(self) -> &'static str {
        match self {
            Role::Server => "tun0",
            Role::Client => "tun1",
        }
    }

    /// `--tun`'s help for this program's command line (the shared text names both
    /// programs' defaults).
    pub fn tun_help(self) -> String {
        format!(
            "With --net user: the stack's TUN device [default: {}, as `make setup` makes it]",
            self.default_device()
        )
    }

    /// `--stack-addr`'s help for this program's command line.
    pub fn stack_addr_help(self) -> String {
        format!(
            "With --net user: the stack's IPv4 address [default: {}]",
            self.default_addr()
        )
    }
}

/// Where the user-space stack's TUN device is (used with `--net user`).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct UserNetArgs {
    /// With --net user: the network namespace holding the stack's TUN device
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NETNS)]
    pub netns: String,

    /// With --net user: the stack's TUN device [default: tun0 for the web server, tun1
    /// for loadgen, as `make setup` makes them]
    #[arg(long, value_name = "DEV")]
    pub tun: Option<String>,

    /// With --net user: the stack's IPv4 address [default: 10.77.0.2 for the web
    /// server, 10.77.1.2 for loadgen]
    #[arg(long, value_name = "ADDR")]
    pub stack_addr: Option<Ipv4Addr>,

    /// With --net user: no checksum or segmentation offload on the TUN device
    #[arg(long)]
    pub no_offload: bool,

    /// With --net user: how sent packets cross into the kernel: `batched` (writes
    /// queued on an io_uring, one system call per batch; a packet with 16 KiB or more
    /// of payload in a write of its own) or `direct` (one write system call per packet)
    #[arg(long, value_enum, value_name = "HOW", default_value_t = TunIoArg::Batched)]
    pub tun_io: TunIoArg,
}

/// The values of `--tun-io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TunIoArg {
    /// Writes batched on an io_uring.
    Batched,
    /// One system call per packet.
    Direct,
}

/// The usage error for flags of the user-space network (such as
/// [`UserNetArgs::given`] lists) on `--net kernel`: "--tun applies only with --net
/// user", "--tun, --stack-addr apply only with --net user".
pub fn user_net_only(flags: &[&str]) -> String {
    let verb = if flags.len() == 1 { "applies" } else { "apply" };
    format!("{} {verb} only with --net user", flags.join(", "))
}

/// The namespace `make setup` makes, `--netns`'s default.
pub const DEFAULT_NETNS: &str = "tcpst";

impl UserNetArgs {
    /// The flags given here with a value other than their default, all of which
    /// only apply with `--net user`: on `--net kernel` they are a usage error, not
    /// silently ignored.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--netns", self.netns != DEFAULT_NETNS),
            ("--tun", self.tun.is_some()),
            ("--stack-addr", self.stack_addr.is_some()),
            ("--no-offload", self.no_offload),
            ("--tun-io", self.tun_io != TunIoArg::Batched),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }

    /// The stack's address for `role`.
    pub fn addr(&self, role: Role) -> Ipv4Addr {
        self.stack_addr.unwrap_or(role.default_addr())
    }

    /// The device to open for `role` with one queue per core.
    pub fn setup(&self, role: Role, cores: usize) -> TunSetup {
        let device = self
            .tun
            .clone()
            .unwrap_or_else(|| role.default_device().to_owned());
        TunSetup {
            netns: self.netns.clone(),
            device,
            addr: self.addr(role),
            queues: cores,
            offload: !self.no_offload,
            io: match self.tun_io {
                TunIoArg::Batched => TunIo::default(),
                TunIoArg::Direct => TunIo::Direct,
            },
        }
    }

    /// Opens what `net` needs before the runtime starts: with [`NetBackend::User`], the
    /// stack's device for `role` with one queue per core ([`UserNetArgs::setup`]); with
    /// [`NetBackend::Kernel`], nothing.
    pub fn open(
        &self,
        net: NetBackend,
        role: Role,
        cores: usize,
    ) -> Result<Option<OpenedTun>, SetupError> {
        match net {
            NetBackend::Kernel => Ok(None),
            NetBackend::User => tun_setup::open(&self.setup(role, cores)).map(Some),
        }
    }

    /// Installs the user-space network on `builder` over the queues [`UserNetArgs::open`]
    /// opened: one stack per core at `role`'s address, its active opens steered as the
    /// kernel steers the device's flows.
    ///
    /// Without the host's secret ([`host_secret`]) the stacks run on one of their own,
    /// and this says so on stderr: a later run's connection may then wait a second for
    /// a port its peer still holds in TIME-WAIT.
    pub fn install(&self, role: Role, builder: Builder, tun: OpenedTun) -> (Builder, UserNet) {
        let mut config = NetConfig::new(self.addr(role));
        config.steering = tun.steering;
        config.isn_secret = match host_secret() {
            Ok(secret) => Some(secret),
            Err(e) => {
                eprintln!(
                    "warning: the host's TCP secret ({HOST_SECRET_PATH}): {e}; this run's \
                     stacks use one of their own"
                );
                // Drawn here: the network would otherwise look the host's up again.
                random_secret().ok()
            }
        };
        UserNet::install_devices(builder, config, tun.devices)
    }
}

/// Counters a network keeps of its own, for a program to print: the user-space
/// network's, none for kernel sockets.
pub trait NetStats {
    /// The current core's counters, if the network keeps any.
    fn report(&self) -> Option<NetReport>;
}

impl NetStats for KernelNet {
    fn report(&self) -> Option<NetReport> {
        None
    }
}

impl NetStats for UserNet {
    fn report(&self) -> Option<NetReport> {
        UserNet::report(self).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        user: UserNetArgs,
    }

    #[test]
    fn defaults_match_make_setup() {
        let c = Cli::try_parse_from(["x"]).unwrap();
        let s = c.user.setup(Role::Server, 2);
        assert_eq!(
            (
                s.netns.as_str(),
                s.device.as_str(),
                s.addr,
                s.queues,
                s.offload
            ),
            ("tcpst", "tun0", Ipv4Addr::new(10, 77, 0, 2), 2, true)
        );
        let s = c.user.setup(Role::Client, 1);
        assert_eq!(
            (s.device.as_str(), s.addr),
            ("tun1", Ipv4Addr::new(10, 77, 1, 2))
        );
        let c = Cli::try_parse_from([
            "x",
            "--netns",
            "n",
            "--tun",
            "t9",
            "--stack-addr",
            "10.1.2.3",
            "--no-offload",
        ])
        .unwrap();
        let s = c.user.setup(Role::Client, 1);
        assert_eq!(
            (s.netns.as_str(), s.device.as_str(), s.addr, s.offload),
            ("n", "t9", Ipv4Addr::new(10, 1, 2, 3), false)
        );
        assert!(Cli::try_parse_from(["x", "--stack-addr", "::1"]).is_err());
    }
}
