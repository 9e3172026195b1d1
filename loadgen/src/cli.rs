//! Command line of the `loadgen` binary and the run plan derived from it.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
pub use usernet::cli::{NetBackend, Role, UserNetArgs};

use crate::connection::ConnectionPlan;
use crate::request::{render, Header, RequestError, RequestTemplate};
use crate::schedule::RateSchedule;
use crate::url::{Target, UrlError};

/// The exit statuses of the `loadgen` binary.
pub mod exit {
    /// The run happened and passed: some response succeeded and the error rate is
    /// within `--max-error-rate`.
    pub const PASSED: u8 = 0;
    /// The run could not happen (unresolvable host, runtime failure).
    pub const CANNOT_RUN: u8 = 1;
    /// A bad command line, a `--json` or `--plot` file that cannot be created, or a
    /// user-space network setup the user must fix.
    pub const USAGE: u8 = 2;
    /// The run happened but failed: no response succeeded (none arrived, or all were
    /// error statuses), or the error rate exceeded `--max-error-rate`.
    pub const RUN_FAILED: u8 = 3;
}

/// The exit statuses, as `--help` lists them.
const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  the run passed: at least one 2xx/3xx response, error rate within --max-error-rate
  1  the run could not happen (unresolvable host, runtime failure)
  2  bad command line (usage on stderr), an output file that cannot be created, or a
     --net user setup to fix
  3  the run failed: no 2xx/3xx response at all, or the error rate exceeded
     --max-error-rate (the report is printed and written all the same)
Ctrl-C (SIGINT) or SIGTERM stops the run and reports what was measured; a second one
exits at once (130 or 143).";

/// An HTTP load generator: keep-alive connections spread over cores, optional
/// pipelining, wrk2's constant-rate mode, HdrHistogram latencies.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    version,
    about,
    long_about = None,
    allow_negative_numbers = true,
    after_help = EXIT_STATUS_HELP,
    mut_arg("tun", |a| a.help(Role::Client.tun_help())),
    mut_arg("stack_addr", |a| a.help(Role::Client.stack_addr_help()))
)]
pub struct Config {
    /// Connections to keep open (in total, spread over the threads)
    #[arg(short = 'c', long, value_name = "CONNS", default_value_t = NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN), value_parser = parse_at_least_one)]
    pub connections: NonZeroUsize,

    /// Threads, one per core [default: all cores]
    #[arg(short = 't', long, value_name = "CORES", value_parser = parse_at_least_one)]
    pub threads: Option<NonZeroUsize>,

    /// Run for this long (e.g. 10s, 500ms, 2m) [default: 10s unless -n is given]
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "requests", allow_hyphen_values = true)]
    pub duration: Option<Duration>,

    /// Send this many requests in total, then stop
    #[arg(short = 'n', long, value_name = "REQUESTS")]
    pub requests: Option<u64>,

    /// Constant rate in requests per second over all connections; latency is measured
    /// from each request's intended send time (coordinated-omission correction)
    #[arg(short = 'R', long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Extra request header, "Name: value" (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<Header>,

    /// Request method
    #[arg(long, value_name = "M", default_value = "GET")]
    pub method: String,

    /// Requests in flight per connection (HTTP pipelining)
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::MIN, value_parser = parse_at_least_one)]
    pub pipeline: NonZeroUsize,

    /// Open a new connection for every request (sends Connection: close)
    #[arg(long)]
    pub no_keepalive: bool,

    /// Time allowed for each response (and each connect)
    #[arg(long, value_name = "T", default_value = "2s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// Write every figure of the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also print the full latency percentile spectrum (HdrHistogram's text format,
    /// milliseconds, as wrk2 --latency)
    #[arg(long)]
    pub latency: bool,

    /// Write an SVG picture of the run to FILE: latency by percentile, and requests/s
    /// and p99 latency for each second
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Exit with status 3 when more than this share of attempts failed: a fraction
    /// (0.05) or a percentage (5%); failures are socket errors and non-2xx/3xx
    /// responses, attempts are responses and socket errors
    #[arg(long, value_name = "RATE", value_parser = parse_error_rate)]
    pub max_error_rate: Option<f64>,

    /// Network: kernel TCP, or connections opened from loadgen's own user-space TCP
    /// stack over a TUN device (after `make setup`)
    #[arg(long, value_enum, default_value_t = NetBackend::Kernel)]
    pub net: NetBackend,

    /// Where the user-space stack's device is
    #[command(flatten)]
    pub user_net: UserNetArgs,

    /// URLs to request, in rotation (all on the same host and port)
    #[arg(value_name = "URL", required = true)]
    pub urls: Vec<String>,
}

/// Why the command line does not describe a run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A URL is invalid.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A method or header is invalid.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The URLs name different servers.
    #[error("all URLs must share one host and port ({0} differs from {1})")]
    MixedHosts(String, String),
    /// `-n 0` or `-d 0`.
    #[error("nothing to do: the request count or duration is zero")]
    Empty,
    /// Flags of the user-space network on kernel TCP.
    #[error("{}", usernet::cli::user_net_only(.0))]
    UserNetOnly(Vec<&'static str>),
}

/// The default duration when neither `-d` nor `-n` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// A validated run: what every thread and connection needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The parsed URLs.
    pub targets: Vec<Target>,
    /// The requests, pre-rendered, one per URL.
    pub requests: Arc<[RequestTemplate]>,
    /// Total connections.
    pub connections: usize,
    /// Threads (never more than connections).
    pub threads: usize,
    /// Run length (`None` with `-n` alone: until the requests are done).
    pub duration: Option<Duration>,
    /// Total requests (`-n`).
    pub total_requests: Option<u64>,
    /// Constant rate (`-R`).
    pub rate: Option<f64>,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Whether connections are reused.
    pub keep_alive: bool,
    /// Response timeout.
    pub timeout: Duration,
}

impl Config {
    /// Validates the options into a [`Plan`].
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        let targets = self
            .urls
            .iter()
            .map(|u| u.parse::<Target>())
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(first) = targets.first() {
            if let Some(other) = targets
                .iter()
                .find(|t| (&t.host, t.port) != (&first.host, first.port))
            {
                return Err(ConfigError::MixedHosts(
                    other.authority(),
                    first.authority(),
                ));
            }
        }
        let keep_alive = !self.no_keepalive;
        let requests = targets
            .iter()
            .map(|t| render(t, &self.method, &self.headers, keep_alive))
            .collect::<Result<Vec<_>, _>>()?;
        if self.requests == Some(0) || self.duration.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Empty);
        }
        let user_only = self.user_net.given();
        if self.net == NetBackend::Kernel && !user_only.is_empty() {
            return Err(ConfigError::UserNetOnly(user_only));
        }
        let duration = match (self.duration, self.requests) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_DURATION),
        };
        let connections = self.connections.get();
        let threads = self
            .threads
            .map(NonZeroUsize::get)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
            .min(connections);
        Ok(Plan {
            targets,
            requests: requests.into(),
            connections,
            threads,
            duration,
            total_requests: self.requests,
            rate: self.rate,
            pipeline: self.pipeline.get(),
            keep_alive,
            timeout: self.timeout,
        })
    }
}

impl Plan {
    /// The URLs as given, normalised.
    pub fn urls(&self) -> Vec<String> {
        self.targets.iter().map(ToString::to_string).collect()
    }

    /// The indices of the connections run by thread `thread` (contiguous, sizes
    /// differing by at most one).
    pub fn connections_of(&self, thread: usize) -> Range<usize> {
        share_range(self.connections, self.threads, thread)
    }

    /// The plan of connection `index` for a run that started at `start` against
    /// `addr`.
    pub fn connection(&self, index: usize, addr: SocketAddr, start: Instant) -> ConnectionPlan {
        let end = start
            + self
                .duration
                .unwrap_or(Duration::from_secs(100 * 365 * 86_400));
        let max_requests = self.total_requests.map(|n| {
            let r = share_range(n as usize, self.connections, index);
            (r.end - r.start) as u64
        });
        ConnectionPlan {
            addr,
            requests: self.requests.clone(),
            first_request: index % self.requests.len().max(1),
            pipeline: self.pipeline,
            keep_alive: self.keep_alive,
            timeout: self.timeout,
            start,
            end,
            max_requests,
            schedule: self
                .rate
                .map(|rate| RateSchedule::new(start, rate, self.connections as u64, index as u64)),
        }
    }
}

/// Part `index` of `total` items split into `parts` contiguous shares whose sizes
/// differ by at most one.
pub fn share_range(total: usize, parts: usize, index: usize) -> Range<usize> {
    let parts = parts.max(1);
    let base = total / parts;
    let extra = total % parts;
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    start.min(total)..(start + len).min(total)
}

pub use threadlib::time::parse_duration;

/// `--timeout`: a duration as [`parse_duration`] reads it, greater than zero (a zero
/// timeout would fail every request).
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        )),
        d => Ok(d),
    }
}

/// `--max-error-rate`: a fraction in [0, 1] (`0.05`), or a percentage in [0, 100]
/// with a `%` sign (`5%`); returned as a fraction.
pub fn parse_error_rate(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent, 100.0),
        None => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(r) if (0.0..=scale).contains(&r) => Ok(r / scale),
        _ => Err(format!(
            "invalid error rate {text:?}: expected a fraction from 0 to 1 (0.05) or a \
             percentage from 0% to 100% (5%)"
        )),
    }
}

/// `-c`, `-t` and `--pipeline`: a whole number, at least 1 (clap's own message for a
/// zero speaks of types, not of the flag).
fn parse_at_least_one(text: &str) -> Result<NonZeroUsize, String> {
    text.parse()
        .map_err(|_| format!("invalid number {text:?}: expected a whole number, at least 1"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "invalid rate {text:?}: expected requests per second > 0"
        )),
    }
}

// Tests of plans on the real clock; no simulation reaches them.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let plan = parse(&["http://127.0.0.1:8080/"]).unwrap().plan().unwrap();
        assert_eq!(plan.connections, 64);
        assert_eq!(plan.duration, Some(DEFAULT_DURATION));
        assert_eq!(plan.total_requests, None);
        assert_eq!(plan.pipeline, 1);
        assert!(plan.keep_alive);
        assert_eq!(plan.timeout, Duration::from_secs(2));
        assert!(plan.threads >= 1);
        assert_eq!(
            &plan.requests[0].bytes[..],
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
    }

    #[test]
    fn every_flag() {
        let c = parse(&[
            "-c",
            "10",
            "-t",
            "3",
            "-n",
            "1000",
            "-R",
            "500.5",
            "-H",
            "X-A: 1",
            "-H",
            "X-B: 2",
            "--method",
            "HEAD",
            "--pipeline",
            "4",
            "--no-keepalive",
            "--timeout",
            "500ms",
            "--json",
            "out.json",
            "--latency",
            "--plot",
            "out.svg",
            "--max-error-rate",
            "2.5%",
            "--net",
            "user",
            "http://h:81/a",
            "http://h:81/b",
        ])
        .unwrap();
        assert_eq!(c.json, Some(PathBuf::from("out.json")));
        assert!(c.latency);
        assert_eq!(c.plot, Some(PathBuf::from("out.svg")));
        assert_eq!(c.max_error_rate, Some(0.025));
        assert_eq!(c.net, NetBackend::User);
        let plan = c.plan().unwrap();
        assert_eq!((plan.connections, plan.threads), (10, 3));
        assert_eq!(plan.duration, None);
        assert_eq!(plan.total_requests, Some(1000));
        assert_eq!(plan.rate, Some(500.5));
        assert_eq!(plan.pipeline, 4);
        assert!(!plan.keep_alive);
        assert_eq!(plan.timeout, Duration::from_millis(500));
        assert_eq!(plan.requests.len(), 2);
        let text = String::from_utf8(plan.requests[1].bytes.clone()).unwrap();
        assert_eq!(
            text,
            "HEAD /b HTTP/1.1\r\nHost: h:81\r\nX-A: 1\r\nX-B: 2\r\nConnection: close\r\n\r\n"
        );
        assert!(plan.requests[1].head);
        assert_eq!(plan.urls(), vec!["http://h:81/a", "http://h:81/b"]);
    }

    #[test]
    fn invalid_command_lines() {
        assert!(parse(&[]).is_err(), "a URL is required");
        assert!(
            parse(&["-d", "1s", "-n", "5", "http://h/"]).is_err(),
            "-d and -n conflict"
        );
        assert!(parse(&["-c", "0", "http://h/"]).is_err());
        assert!(parse(&["--pipeline", "0", "http://h/"]).is_err());
        assert!(parse(&["-R", "0", "http://h/"]).is_err());
        assert!(parse(&["-R", "nan", "http://h/"]).is_err());
        assert!(parse(&["-d", "ten", "http://h/"]).is_err());
        assert!(parse(&["-H", "nocolon", "http://h/"]).is_err());
        for bad in ["5", "-0.1", "101%", "x", "%", "", "nan", "inf%"] {
            assert!(
                parse(&["--max-error-rate", bad, "http://h/"]).is_err(),
                "{bad}"
            );
        }
        let plan = |args: &[&str]| parse(args).unwrap().plan();
        assert!(matches!(plan(&["https://h/"]), Err(ConfigError::Url(_))));
        assert!(matches!(
            plan(&["--method", "G T", "http://h/"]),
            Err(ConfigError::Request(_))
        ));
        assert!(matches!(
            plan(&["http://a/", "http://b/"]),
            Err(ConfigError::MixedHosts(..))
        ));
        assert!(matches!(
            plan(&["-n", "0", "http://h/"]),
            Err(ConfigError::Empty)
        ));
        assert!(matches!(
            plan(&["-d", "0s", "http://h/"]),
            Err(ConfigError::Empty)
        ));
    }

    #[test]
    fn threads_never_exceed_connections() {
        let plan = parse(&["-c", "2", "-t", "8", "http://h/"])
            .unwrap()
            .plan()
            .unwrap();
        assert_eq!(plan.threads, 2);
    }

    #[test]
    fn shares_split_evenly() {
        let split = |total, parts| -> Vec<usize> {
            (0..parts)
                .map(|i| share_range(total, parts, i).len())
                .collect()
        };
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(share_range(10, 3, 2), 7..10);
        assert_eq!(share_range(5, 0, 0), 0..5);
        let plan = parse(&[
            "-c",
            "5",
            "-t",
            "2",
            "-n",
            "12",
            "-R",
            "100",
            "http://h/a",
            "http://h/b",
        ])
        .unwrap()
        .plan()
        .unwrap();
        assert_eq!(plan.connections_of(0), 0..3);
        assert_eq!(plan.connections_of(1), 3..5);
        let start = Instant::now();
        let addr = "127.0.0.1:80".parse().unwrap();
        let budgets: Vec<u64> = (0..5)
            .map(|i| plan.connection(i, addr, start).max_requests.unwrap())
            .collect();
        assert_eq!(budgets, vec![3, 3, 2, 2, 2]);
        assert_eq!(budgets.iter().sum::<u64>(), 12);
        let c3 = plan.connection(3, addr, start);
        assert_eq!(c3.first_request, 1);
        assert_eq!(
            c3.schedule.unwrap().next_due(),
            start + Duration::from_millis(30)
        );
        assert!(c3.end > start + Duration::from_secs(86_400));
    }

    #[test]
    fn error_rates() {
        assert_eq!(parse_error_rate("0.05"), Ok(0.05));
        assert_eq!(parse_error_rate("5%"), Ok(0.05));
        assert_eq!(parse_error_rate("0"), Ok(0.0));
        assert_eq!(parse_error_rate("1"), Ok(1.0));
        assert_eq!(parse_error_rate("100%"), Ok(1.0));
        assert_eq!(parse_error_rate("0.5%"), Ok(0.005));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "ms", "1x", "-1s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
        for zero in ["0", "0s", "0.0ms"] {
            assert!(parse_positive_duration(zero).is_err(), "{zero}");
        }
    }
}
