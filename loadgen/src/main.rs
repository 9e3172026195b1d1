//! `loadgen`: drives an HTTP server with keep-alive connections spread over cores and
//! prints a wrk-style report (see the crate README for every flag).
//!
//! The connection logic lives in the library (`loadgen::ThreadNet` adapts a threadlib
//! network to its traits); this binary runs it on threadlib: [`drive`] spreads the
//! connections over one scheduler per core.

mod drive;
mod limits;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{CommandFactory, Parser};
use loadgen::cli::{exit, Role};
use loadgen::progress::{Goal, Progress};
use loadgen::report::RunFailure;
use loadgen::{plot, report, Config};
use usernet::tun_setup::OpenedTun;

fn main() -> ExitCode {
    // Bad flags: clap prints the usage and exits with status 2 (`exit::USAGE`).
    let config = Config::parse();
    let plan = match config.plan() {
        Ok(plan) => plan,
        Err(e) => Config::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit(),
    };
    // The report files next: a path that cannot be written is a usage error now,
    // not a run lost at its end.
    let outputs = match Outputs::create(&config) {
        Ok(outputs) => outputs,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // The user-space stack's device: a missing setup is a usage error (exit 2)
    // that names its fix.
    let tun = match config.user_net.open(config.net, Role::Client, plan.threads) {
        Ok(tun) => tun,
        Err(e) => {
            eprintln!("loadgen: --net user: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&config, &plan, tun, outputs) {
        Ok(Ok(())) => ExitCode::from(exit::PASSED),
        Ok(Err(failure)) => {
            eprintln!("loadgen: {failure}");
            ExitCode::from(exit::RUN_FAILED)
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(exit::CANNOT_RUN)
        }
    }
}

/// The files `--json` and `--plot` name, opened before the run.
struct Outputs {
    json: Option<ReportFile>,
    plot: Option<ReportFile>,
}

impl Outputs {
    fn create(config: &Config) -> anyhow::Result<Outputs> {
        let open = |flag, path: &Option<PathBuf>| {
            path.as_deref()
                .map(|p| ReportFile::open(flag, p))
                .transpose()
        };
        Ok(Outputs {
            json: open("--json", &config.json)?,
            plot: open("--plot", &config.plot)?,
        })
    }
}

/// A report file, opened for writing before the run (created if missing) so that a
/// path that cannot be written is known at once, and emptied only when the report is
/// written: a run that fails first leaves an earlier report as it was, and removes a
/// file it created.
struct ReportFile {
    file: File,
    path: PathBuf,
    created: bool,
    written: bool,
}

impl ReportFile {
    fn open(flag: &str, path: &Path) -> anyhow::Result<ReportFile> {
        let created = fs::symlink_metadata(path).is_err();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("{flag} {}", path.display()))?;
        Ok(ReportFile {
            file,
            path: path.to_owned(),
            created,
            written: false,
        })
    }

    /// Replaces the file's content with `report` (a pipe or a terminal, such as
    /// `--json /dev/stdout`, has nothing to empty first).
    fn write(mut self, report: &[u8]) -> anyhow::Result<()> {
        self.written = true;
        let replaced = match self.file.metadata() {
            Ok(m) if m.is_file() => self.file.set_len(0),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        replaced
            .and_then(|()| self.file.write_all(report))
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for ReportFile {
    fn drop(&mut self) {
        if self.created && !self.written {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Runs the load test, prints (and writes) the report, and judges the run.
fn run(
    config: &Config,
    plan: &loadgen::Plan,
    tun: Option<OpenedTun>,
    outputs: Outputs,
) -> anyhow::Result<Result<(), RunFailure>> {
    let target = &plan.targets[0];
    let addr = *target
        .resolve()
        .with_context(|| format!("resolving {}", target.authority()))?
        .first()
        .with_context(|| format!("{} has no address", target.authority()))?;
    let limit =
        limits::ensure_open_files(plan.connections).context("raising the open-file limit")?;
    if limit < plan.connections as u64 {
        bail!(
            "{} connections need more file descriptors than the limit of {limit} \
             (raise it with ulimit -n)",
            plan.connections
        );
    }
    // Latency runs from when a request was due: a connection waiting for its next send
    // must wake when it is due, not up to the kernel's default 50 µs timer slack later.
    // The cores inherit the slack from this thread.
    iolib::sched::set_timer_slack(1).context("setting the timer slack")?;
    // Delivered through the runtime, which stops the run on the first (see `drive`).
    threadlib::signal::block(&drive::STOP_SIGNALS).context("blocking signals")?;
    let urls = plan.urls();
    println!(
        "{}",
        report::banner(
            plan.duration,
            plan.total_requests,
            &urls,
            plan.threads,
            plan.connections
        )
    );
    let goal = match (plan.total_requests, plan.duration) {
        (Some(n), _) => Goal::Requests(n),
        (None, Some(d)) => Goal::Duration(d),
        (None, None) => Goal::Duration(loadgen::cli::DEFAULT_DURATION),
    };
    let progress = Progress::new(goal);
    let builder = drive::builder(plan);
    let outcome = match tun {
        None => drive::run(builder, threadlib::net::KernelNet, plan, addr, &progress)?,
        Some(tun) => {
            let (builder, net) = config.user_net.install(Role::Client, builder, tun);
            drive::run(builder, net, plan, addr, &progress)?
        }
    };
    if let Some(signal) = outcome.interrupted {
        eprintln!(
            "loadgen: stopped by {} after {:.2}s; reporting what was measured",
            threadlib::signal::name(signal),
            outcome.elapsed.as_secs_f64()
        );
    }
    let summary = report::Summary {
        stats: &outcome.stats,
        elapsed: outcome.elapsed,
        threads: plan.threads,
        connections: plan.connections,
        pipeline: plan.pipeline,
        rate: plan.rate,
        urls: &urls,
    };
    println!("{}", report::human(&summary, config.latency));
    if let Some(net) = &outcome.net {
        println!("User-space network:\n{net}");
    }
    if let Some(file) = outputs.json {
        let mut json = Vec::new();
        report::JsonReport::new(&summary).write_to(&mut json)?;
        file.write(&json)?;
    }
    if let Some(file) = outputs.plot {
        file.write(plot::svg(&summary).as_bytes())?;
    }
    Ok(report::verdict(&outcome.stats, config.max_error_rate))
}
