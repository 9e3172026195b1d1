//! Command-line configuration of the `webserver` binary (parse only; `main.rs` wires
//! it onto threadlib).

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
pub use usernet::cli::{NetBackend, Role, UserNetArgs};

use crate::connection::{ContentOptions, Settings};
use crate::media_types::{self, MediaTypes, MediaTypesError};
use crate::request::Limits;
use crate::response::is_field_value;

/// The port the server listens on unless `--listen` says otherwise.
pub const DEFAULT_PORT: u16 = 8080;

/// Where access-log records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (`-`).
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

impl std::str::FromStr for LogTarget {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "-" {
            LogTarget::Stdout
        } else {
            LogTarget::File(PathBuf::from(s))
        })
    }
}

/// Whether each core's thread is pinned to a CPU of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PinCores {
    /// Pin when there is one core for each CPU the server may use (as with the default
    /// `--cores`); leave the kernel free to place fewer cores.
    Auto,
    /// Always pin: core i on the i-th CPU the server may use.
    On,
    /// Never pin.
    Off,
}

/// The exit statuses, as `--help` lists them.
const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  stopped by SIGINT or SIGTERM (a second one during the shutdown ends it at once,
     with 128 + the signal: 130 or 143)
  1  could not serve (the address is in use, the runtime failed)
  2  bad command line (usage on stderr), an unusable --root, or a --net user setup to fix";

/// The most cores the server runs on: each holds descriptors and an OS thread.
pub const MAX_CORES: usize = 1024;

/// A static-file HTTP/1.1 server on threadlib: one scheduler per core, each with an
/// SO_REUSEPORT listener for every address served.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "webserver",
    version,
    about,
    long_about = None,
    allow_negative_numbers = true,
    after_help = EXIT_STATUS_HELP,
    mut_arg("tun", |a| a.help(Role::Server.tun_help())),
    mut_arg("stack_addr", |a| a.help(Role::Server.stack_addr_help()))
)]
pub struct Config {
    /// Document root [default: the sample site www/ of the repository the binary was
    /// built in]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Address and port to listen on, IPv4 or IPv6 ([::1]:8080); repeatable, every
    /// address is served (kernel TCP only) [default: 127.0.0.1:8080 on kernel TCP, the
    /// stack's address port 8080 with --net user]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,

    /// Number of cores (schedulers, listeners) [default: all]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// Pin each core to a CPU of its own (the CPUs the server may use, e.g. under
    /// taskset, in order); unpinned, the kernel may put two busy cores on one CPU
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = PinCores::Auto)]
    pub pin_cores: PinCores,

    /// Network: kernel TCP, or the user-space TCP stack over a TUN device (after
    /// `make setup`)
    #[arg(long, value_enum, default_value_t = NetBackend::Kernel)]
    pub net: NetBackend,

    /// Where the user-space stack's device is
    #[command(flatten)]
    pub user_net: UserNetArgs,

    /// With --net user: print the stack's counters every INTERVAL (they are printed at
    /// shutdown and on SIGUSR1 in any case)
    #[arg(long, value_name = "INTERVAL", value_parser = parse_duration, allow_hyphen_values = true)]
    pub stats: Option<Duration>,

    /// Serve an HTML listing for directories without index.html (else 403)
    #[arg(long)]
    pub autoindex: bool,

    /// Never serve precompressed variants (FILE.zst, FILE.br, FILE.gz beside FILE) in
    /// place of FILE, whatever the request's Accept-Encoding
    #[arg(long)]
    pub no_precompressed: bool,

    /// Cache-Control value for successful file responses (200, 206, 304), e.g.
    /// "public, max-age=3600" [default: none]
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,

    /// Media types by extension from FILE, in the format of /etc/mime.types (a type,
    /// then its extensions, per line; # comments), before the built-in ones
    #[arg(long, value_name = "FILE")]
    pub mime_types: Option<PathBuf>,

    /// Files ending in .EXT have media type TYPE (repeatable; before --mime-types
    /// and the built-in types)
    #[arg(long = "mime", value_name = "EXT=TYPE", value_parser = parse_mime)]
    pub mime: Vec<(String, String)>,

    /// Write an access log (Common Log Format) to FILE, or to stdout with `-` or no value
    #[arg(long, value_name = "FILE|-", num_args = 0..=1, default_missing_value = "-")]
    pub access_log: Option<LogTarget>,

    /// Record a Chrome trace-event JSON of the schedulers to FILE
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Most connections open at once; beyond it the server stops accepting until one
    /// closes
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Time allowed to receive a whole request head (then 408)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub header_timeout: Duration,

    /// Time an idle keep-alive connection stays open
    #[arg(long, value_name = "DURATION", default_value = "75s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub keepalive_timeout: Duration,

    /// Time a client may take no byte of a response before it is dropped
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub send_timeout: Duration,

    /// Largest request head in bytes (then 431)
    #[arg(long, value_name = "BYTES", default_value_t = 8192)]
    pub max_header_bytes: usize,

    /// Longest request-target in bytes (then 414)
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    pub max_uri_bytes: usize,

    /// Largest request body accepted and discarded (then 413)
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    pub max_body_bytes: u64,

    /// On SIGINT/SIGTERM, time allowed for in-flight requests before exiting
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub shutdown_timeout: Duration,
}

/// A configuration value that is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The header limit is too small to hold any useful request.
    #[error("--max-header-bytes must be at least 256")]
    HeaderLimitTooSmall,
    /// The URI limit must leave room for the rest of the head.
    #[error("--max-uri-bytes must be below --max-header-bytes")]
    UriLimitTooLarge,
    /// A zero URI limit would refuse every request.
    #[error("--max-uri-bytes must be at least 1")]
    UriLimitZero,
    /// A zero timeout would close every connection at once.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// At least one connection must be allowed.
    #[error("--max-connections must be at least 1")]
    NoConnections,
    /// The server runs on at least one core.
    #[error("--cores must be at least 1")]
    NoCores,
    /// More cores than the server can hold descriptors and threads for.
    #[error("--cores {0}: at most {MAX_CORES}")]
    TooManyCores(usize),
    /// Flags of the user-space network on kernel TCP.
    #[error("{}", usernet::cli::user_net_only(.0))]
    UserNetOnly(Vec<&'static str>),
    /// The user-space stack serves one IPv4 listener.
    #[error("--listen {}: with --net user the server has one IPv4 listener (the user-space stack is IPv4-only and has one address); give --listen once, with an IPv4 address, or use --net kernel", list(.0))]
    UserNetListeners(Vec<SocketAddr>),
    /// The same address twice.
    #[error("--listen {0} is given twice")]
    DuplicateListen(SocketAddr),
    /// The user-space stack can only listen on its own address.
    #[error("--listen {listen}: the user-space stack listens only on its own address {stack} (or 0.0.0.0); pass --stack-addr to change it")]
    NotStackAddress {
        /// What was asked.
        listen: SocketAddr,
        /// The stack's address.
        stack: Ipv4Addr,
    },
    /// A zero interval would print without pause.
    #[error("--stats must be greater than zero")]
    ZeroStatsInterval,
    /// The value cannot be sent as a header field.
    #[error(
        "--cache-control {0:?}: not a valid header value (visible ASCII and inner spaces only)"
    )]
    BadCacheControl(String),
}

impl Config {
    /// Checks the values clap cannot check on its own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_header_bytes < 256 {
            return Err(ConfigError::HeaderLimitTooSmall);
        }
        if self.max_uri_bytes >= self.max_header_bytes {
            return Err(ConfigError::UriLimitTooLarge);
        }
        if self.max_uri_bytes == 0 {
            return Err(ConfigError::UriLimitZero);
        }
        for (name, d) in [
            ("--header-timeout", self.header_timeout),
            ("--keepalive-timeout", self.keepalive_timeout),
            ("--send-timeout", self.send_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        match self.cores {
            Some(0) => return Err(ConfigError::NoCores),
            Some(n) if n > MAX_CORES => return Err(ConfigError::TooManyCores(n)),
            _ => {}
        }
        if self.net == NetBackend::Kernel {
            let mut given = self.user_net.given();
            if self.stats.is_some() {
                given.push("--stats");
            }
            if !given.is_empty() {
                return Err(ConfigError::UserNetOnly(given));
            }
        }
        if self.stats.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroStatsInterval);
        }
        if let Some(cc) = &self.cache_control {
            if !is_field_value(cc.as_bytes()) {
                return Err(ConfigError::BadCacheControl(cc.clone()));
            }
        }
        for (i, a) in self.listen.iter().enumerate() {
            if a.port() != 0 && self.listen[..i].contains(a) {
                return Err(ConfigError::DuplicateListen(*a));
            }
        }
        if self.net == NetBackend::User {
            let listen = match self.listen_addrs()[..] {
                [a @ SocketAddr::V4(_)] => a,
                _ => return Err(ConfigError::UserNetListeners(self.listen.clone())),
            };
            let stack = self.user_net.addr(Role::Server);
            let ok = match listen {
                SocketAddr::V4(a) => a.ip().is_unspecified() || *a.ip() == stack,
                SocketAddr::V6(_) => false,
            };
            if !ok {
                return Err(ConfigError::NotStackAddress { listen, stack });
            }
        }
        Ok(())
    }

    /// The addresses to listen on: every `--listen`, else port 8080 on 127.0.0.1
    /// (kernel TCP) or on the stack's address (`--net user`).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        vec![match self.net {
            NetBackend::Kernel => SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            NetBackend::User => SocketAddr::from((self.user_net.addr(Role::Server), DEFAULT_PORT)),
        }]
    }

    /// The connection settings these options describe.
    pub fn settings(&self) -> Settings {
        Settings {
            limits: Limits {
                max_header_bytes: self.max_header_bytes,
                max_uri_bytes: self.max_uri_bytes,
                max_body_bytes: self.max_body_bytes,
            },
            autoindex: self.autoindex,
            header_timeout: self.header_timeout,
            keepalive_timeout: self.keepalive_timeout,
            send_timeout: self.send_timeout,
        }
    }

    /// How files are represented in responses, as these options say; reads
    /// `--mime-types`.
    pub fn content(&self) -> Result<ContentOptions, MediaTypesError> {
        let mut media_types = MediaTypes::default();
        if let Some(path) = &self.mime_types {
            media_types.read_file(path)?;
        }
        for (ext, media_type) in &self.mime {
            media_types
                .insert(ext, media_type)
                .map_err(MediaTypesError::Flag)?;
        }
        Ok(ContentOptions {
            precompressed: !self.no_precompressed,
            cache_control: self.cache_control.as_deref().map(Arc::from),
            media_types: Arc::new(media_types),
        })
    }

    /// The number of cores to run on: `--cores`, else all available.
    pub fn cores(&self) -> usize {
        self.cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    }

    /// Whether to pin each core to a CPU (`--pin-cores`): `auto` pins when the cores
    /// number exactly the CPUs this process may use.
    pub fn pin_cores(&self) -> bool {
        match self.pin_cores {
            PinCores::On => true,
            PinCores::Off => false,
            PinCores::Auto => {
                iolib::sched::allowed_cpus().is_ok_and(|cpus| cpus.len() == self.cores())
            }
        }
    }

    /// The document root: `--root`, else [`default_root`].
    pub fn root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(default_root)
    }
}

/// The bundled sample site. Looked up in this order:
/// 1. `<exe>/../../www`: the binary in `<repo>/target/{debug,release}/`;
/// 2. `<repo>/www` as seen when the crate was compiled (`CARGO_MANIFEST_DIR/../www`),
///    for binaries moved elsewhere on the build machine;
/// 3. `./www` relative to the working directory (returned even if missing, so the
///    error names it).
pub fn default_root() -> PathBuf {
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("www")));
    let from_build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    from_exe
        .into_iter()
        .chain([from_build])
        .find(|p| p.join("index.html").is_file())
        .unwrap_or_else(|| PathBuf::from("www"))
}

pub use threadlib::time::parse_duration;

/// `a, b, c`.
fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a `--mime` value, `EXT=TYPE`.
fn parse_mime(value: &str) -> Result<(String, String), String> {
    media_types::parse_pair(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("webserver").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen_addrs(), ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(c.net, NetBackend::Kernel);
        assert!(!c.autoindex);
        assert_eq!(c.access_log, None);
        assert_eq!(c.settings(), Settings::default());
        assert!(c.content().unwrap().precompressed);
        assert_eq!(c.content().unwrap().cache_control, None);
        assert!(c.cores() >= 1);
        assert_eq!(c.pin_cores, PinCores::Auto);
        let cpus = iolib::sched::allowed_cpus().unwrap().len();
        assert_eq!(c.pin_cores(), c.cores() == cpus);
        c.validate().unwrap();
        assert!(c.root().join("index.html").is_file(), "{:?}", c.root());
    }

    #[test]
    fn cores_are_pinned_by_default_only_when_there_is_one_per_cpu() {
        let cpus = iolib::sched::allowed_cpus().unwrap().len().to_string();
        let more = (cpus.parse::<usize>().unwrap() + 1).to_string();
        assert!(parse(&["--cores", &cpus]).unwrap().pin_cores());
        assert!(!parse(&["--cores", &more]).unwrap().pin_cores());
        assert!(parse(&["--cores", &more, "--pin-cores", "on"])
            .unwrap()
            .pin_cores());
        assert!(!parse(&["--cores", &cpus, "--pin-cores", "off"])
            .unwrap()
            .pin_cores());
        assert!(parse(&["--pin-cores", "sometimes"]).is_err());
    }

    #[test]
    fn every_flag() {
        let c = parse(&[
            "--root",
            "/srv",
            "--listen",
            "0.0.0.0:80",
            "--cores",
            "3",
            "--net",
            "user",
            "--autoindex",
            "--no-precompressed",
            "--cache-control",
            "public, max-age=60",
            "--mime",
            "md=text/markdown",
            "--mime",
            ".TXT=text/x-text",
            "--access-log",
            "/tmp/log",
            "--trace",
            "t.json",
            "--max-connections",
            "5",
            "--header-timeout",
            "500ms",
            "--keepalive-timeout",
            "2m",
            "--send-timeout",
            "1.5s",
            "--max-header-bytes",
            "1024",
            "--max-uri-bytes",
            "512",
            "--max-body-bytes",
            "0",
            "--shutdown-timeout",
            "3",
        ])
        .unwrap();
        assert_eq!(c.root(), PathBuf::from("/srv"));
        assert_eq!(c.cores(), 3);
        assert_eq!(c.net, NetBackend::User);
        assert_eq!(c.access_log, Some(LogTarget::File("/tmp/log".into())));
        assert_eq!(c.trace, Some("t.json".into()));
        assert_eq!(c.max_connections, 5);
        let s = c.settings();
        assert!(s.autoindex);
        assert_eq!(s.header_timeout, Duration::from_millis(500));
        assert_eq!(s.keepalive_timeout, Duration::from_secs(120));
        assert_eq!(s.send_timeout, Duration::from_millis(1500));
        assert_eq!(s.limits.max_header_bytes, 1024);
        assert_eq!(s.limits.max_uri_bytes, 512);
        assert_eq!(s.limits.max_body_bytes, 0);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(3));
        assert!(!c.content().unwrap().precompressed);
        assert_eq!(
            c.content().unwrap().cache_control.as_deref(),
            Some("public, max-age=60")
        );
        let types = c.content().unwrap().media_types;
        assert_eq!(types.content_type(b"a.md"), ("text/markdown", true));
        assert_eq!(types.content_type(b"a.txt"), ("text/x-text", true));
        c.validate().unwrap();
    }

    #[test]
    fn access_log_value_is_optional() {
        assert_eq!(
            parse(&["--access-log"]).unwrap().access_log,
            Some(LogTarget::Stdout)
        );
        assert_eq!(
            parse(&["--access-log", "-"]).unwrap().access_log,
            Some(LogTarget::Stdout)
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--listen", "nowhere"]).is_err());
        let c = parse(&["--cores", "0"]).unwrap();
        assert_eq!(c.validate(), Err(ConfigError::NoCores));
        assert!(parse(&["--net", "carrier-pigeon"]).is_err());
        assert!(parse(&["--mime", "md"]).is_err());
        assert!(parse(&["--mime", "md=markdown"]).is_err());
        assert!(parse(&["--mime", "a/b=text/plain"]).is_err());
        assert!(parse(&["--header-timeout", "10 parsecs"]).is_err());
        let c = parse(&["--max-header-bytes", "100"]).unwrap();
        assert_eq!(c.validate(), Err(ConfigError::HeaderLimitTooSmall));
        let c = parse(&["--max-uri-bytes", "9000"]).unwrap();
        assert_eq!(c.validate(), Err(ConfigError::UriLimitTooLarge));
        let c = parse(&["--max-uri-bytes", "0"]).unwrap();
        assert_eq!(c.validate(), Err(ConfigError::UriLimitZero));
        let c = parse(&["--keepalive-timeout", "0s"]).unwrap();
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroTimeout("--keepalive-timeout"))
        );
        let c = parse(&["--max-connections", "0"]).unwrap();
        assert_eq!(c.validate(), Err(ConfigError::NoConnections));
        let c = parse(&["--net", "user", "--listen", "127.0.0.1:80"]).unwrap();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::NotStackAddress { .. })
        ));
        let c = parse(&["--listen", "127.0.0.1:80", "--listen", "127.0.0.1:80"]).unwrap();
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateListen(
                "127.0.0.1:80".parse().unwrap()
            ))
        );
        assert_eq!(
            parse(&["--net", "user", "--stats", "0s"])
                .unwrap()
                .validate(),
            Err(ConfigError::ZeroStatsInterval)
        );
        assert_eq!(
            parse(&["--cores", "1025"]).unwrap().validate(),
            Err(ConfigError::TooManyCores(1025))
        );
        let c = parse(&["--tun", "tun5", "--stats", "1s", "--netns", "x"]).unwrap();
        assert_eq!(
            c.validate(),
            Err(ConfigError::UserNetOnly(vec![
                "--netns", "--tun", "--stats"
            ]))
        );
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--netns, --tun, --stats apply only with --net user"
        );
        // The default namespace, named, is no error.
        parse(&["--netns", "tcpst"]).unwrap().validate().unwrap();
        assert!(matches!(
            parse(&["--cache-control", "a\r\nSet-Cookie: x"])
                .unwrap()
                .validate(),
            Err(ConfigError::BadCacheControl(_))
        ));
        assert!(matches!(
            parse(&["--cache-control", ""]).unwrap().validate(),
            Err(ConfigError::BadCacheControl(_))
        ));
    }

    #[test]
    fn the_user_network_listens_on_the_stack_address() {
        let c = parse(&["--net", "user"]).unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen_addrs(), ["10.77.0.2:8080".parse().unwrap()]);
        let c = parse(&[
            "--net",
            "user",
            "--stack-addr",
            "10.9.9.9",
            "--listen",
            "0.0.0.0:81",
        ])
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen_addrs(), ["0.0.0.0:81".parse().unwrap()]);
        let s = c.user_net.setup(Role::Server, 2);
        assert_eq!((s.device.as_str(), s.queues), ("tun0", 2));
    }

    #[test]
    fn several_listeners_and_ipv6_on_kernel_tcp_only() {
        let c = parse(&["--listen", "127.0.0.1:80", "--listen", "[::1]:81"]).unwrap();
        c.validate().unwrap();
        let want: Vec<SocketAddr> =
            vec!["127.0.0.1:80".parse().unwrap(), "[::1]:81".parse().unwrap()];
        assert_eq!(c.listen_addrs(), want);
        // Port 0 twice: two free ports.
        parse(&["--listen", "[::1]:0", "--listen", "[::1]:0"])
            .unwrap()
            .validate()
            .unwrap();
        for args in [
            &["--net", "user", "--listen", "[::]:80"][..],
            &[
                "--net",
                "user",
                "--listen",
                "10.77.0.2:80",
                "--listen",
                "10.77.0.2:81",
            ],
        ] {
            let e = parse(args).unwrap().validate().unwrap_err();
            assert!(matches!(e, ConfigError::UserNetListeners(_)), "{args:?}");
            assert!(e.to_string().contains("one IPv4 listener"), "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0.25s"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "s",
            "10x",
            "-1s",
            "1e3s",
            "1..2s",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
