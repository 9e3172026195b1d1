//! `loadgen`: drives an HTTP server with keep-alive connections spread over cores and
//! prints a wrk-style report (see the crate README for every flag).
//!
//! The connection logic lives in the library (`loadgen::ThreadNet` adapts a threadlib
//! network to its traits); this binary runs it on threadlib: [`drive`] spreads the
//! connections over one scheduler per core.

mod drive;
mod limits;

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
    // The user-space stack's device first: a missing setup is a usage error (exit 2)
    // that names its fix.
    let tun = match config.user_net.open(config.net, Role::Client, plan.threads) {
        Ok(tun) => tun,
        Err(e) => {
            eprintln!("loadgen: --net user: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&config, &plan, tun) {
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

/// Runs the load test, prints (and writes) the report, and judges the run.
fn run(
    config: &Config,
    plan: &loadgen::Plan,
    tun: Option<OpenedTun>,
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
    if let Some(path) = &config.json {
        report::JsonReport::new(&summary)
            .write_to(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &config.plot {
        std::fs::write(path, plot::svg(&summary))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report::verdict(&outcome.stats, config.max_error_rate))
}
