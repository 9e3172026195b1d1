//! `webserver`: serve a directory over HTTP/1.1 on threadlib.
//!
//! ```text
//! webserver [--root DIR] [--listen ADDR:PORT]... [--cores N] [--net kernel|user] ...
//! ```
//!
//! `webserver --help` lists every option; `webserver/README.md` documents them.

mod server;

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use threadlib::fs::Dir;
use threadlib::net::KernelNet;
use threadlib::Runtime;
use usernet::tun_setup::OpenedTun;
use webserver::config::Role;
use webserver::{Config, ContentOptions, LogTarget};

use server::{CoreParts, Plan, Sink};

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = config.validate() {
        usage_error(e);
    }
    let content = config.content().unwrap_or_else(|e| usage_error(e));
    let root = document_root(&config).unwrap_or_else(|e| usage_error(e));
    // The user-space stack's device first: a missing setup is a usage error (exit 2)
    // that names its fix.
    let tun = match config
        .user_net
        .open(config.net, Role::Server, config.cores())
    {
        Ok(tun) => tun,
        Err(e) => {
            eprintln!("webserver: --net user: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&config, root, content, tun) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exits with clap's usage message for a bad value, `e`, and status 2.
fn usage_error(e: impl std::fmt::Display) -> ! {
    Config::command()
        .error(clap::error::ErrorKind::ValueValidation, e)
        .exit()
}

/// The document root, made absolute, or what is wrong with it (a usage error).
fn document_root(config: &Config) -> Result<PathBuf, String> {
    let root = config.root();
    let what = match &config.root {
        Some(_) => format!("--root {}", root.display()),
        None => format!(
            "the bundled sample site (looked for at {}; pass --root DIR)",
            root.display()
        ),
    };
    match root.canonicalize() {
        Ok(dir) if dir.is_dir() => Ok(dir),
        Ok(_) => Err(format!("{what}: not a directory")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn run(
    config: &Config,
    root: PathBuf,
    content: ContentOptions,
    tun: Option<OpenedTun>,
) -> anyhow::Result<()> {
    // Every connection holds a descriptor, and the default soft limit (often 1024) is
    // far below what the server can hold: raise it to the hard limit, or run with what
    // there is.
    let _ = iolib::limits::raise_open_files(u64::MAX);
    // Before any other thread exists, so that every thread inherits the mask and the
    // signals arrive only through the signalfd the server waits on.
    threadlib::signal::block(&server::SIGNALS).context("blocking signals")?;

    let cores = config.cores();
    let log_file = match &config.access_log {
        Some(LogTarget::File(path)) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening access log {}", path.display()))?,
        ),
        _ => None,
    };
    let parts = (0..cores)
        .map(|_| {
            let dir = Dir::open_root(&root)
                .with_context(|| format!("opening document root {}", root.display()))?;
            let log = match (&config.access_log, &log_file) {
                (None, _) => None,
                (Some(_), Some(file)) => Some(Sink::File(
                    file.try_clone().context("duplicating the access log")?,
                )),
                (Some(_), None) => Some(Sink::Stdout),
            };
            Ok(CoreParts { dir, log })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = Plan {
        listen: config.listen_addrs(),
        stats_every: config.stats,
        root,
        settings: config.settings(),
        content,
        max_connections_per_core: config.max_connections.div_ceil(cores),
        shutdown_timeout: config.shutdown_timeout,
        cores: parts,
    };

    let mut builder = Runtime::builder()
        .cores(cores)
        .pin_cores(config.pin_cores())
        .blocking_threads(1);
    if let Some(path) = &config.trace {
        builder = builder.trace_file(path);
    }
    let report = match tun {
        None => {
            let runtime = builder.build().context("building the runtime")?;
            runtime.block_on(server::serve(KernelNet, plan))
        }
        Some(tun) => {
            let (builder, net) = config.user_net.install(Role::Server, builder, tun);
            let runtime = builder.build().context("building the runtime")?;
            runtime.block_on(server::serve(net, plan))
        }
    }
    .context("runtime")??;
    webserver::throttle::report_unreported_out_of_descriptors();
    println!("Totals:\n{}", report.totals);
    if report.connections_per_core.len() > 1 {
        let counts: Vec<String> = report
            .connections_per_core
            .iter()
            .map(u64::to_string)
            .collect();
        println!("connections per core: {}", counts.join(", "));
    }
    if let Some(net) = &report.net {
        println!("User-space network:\n{net}");
    }
    if report.cancelled > 0 {
        println!(
            "cancelled {} connections still busy at the shutdown deadline",
            report.cancelled
        );
    }
    Ok(())
}
