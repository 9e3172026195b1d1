//! `loadgen`: drives an HTTP server with keep-alive connections spread over cores and
//! prints a wrk-style report (see the crate README for every flag).
//!
//! The connection logic lives in the I/O-free library; this binary runs it on
//! threadlib: [`backend`] adapts a threadlib network to the library's traits and
//! [`drive`] spreads the connections over one scheduler per core.

mod backend;
mod drive;
mod limits;

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{CommandFactory, Parser};
use loadgen::progress::{Goal, Progress};
use loadgen::{report, Config, NetBackend};

fn main() -> ExitCode {
    // Bad flags: clap prints the usage and exits with status 2.
    let config = Config::parse();
    let plan = match config.plan() {
        Ok(plan) => plan,
        Err(e) => Config::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit(),
    };
    if config.net == NetBackend::User {
        eprintln!("loadgen: user-space TCP backend not yet wired (use --net kernel)");
        return ExitCode::from(2);
    }
    match run(&config, &plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the load test on kernel TCP and prints (and writes) the report.
fn run(config: &Config, plan: &loadgen::Plan) -> anyhow::Result<()> {
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
    let outcome = drive::run(threadlib::net::KernelNet, plan, addr, &progress)?;
    let summary = report::Summary {
        stats: &outcome.stats,
        elapsed: outcome.elapsed,
        threads: plan.threads,
        connections: plan.connections,
        pipeline: plan.pipeline,
        rate: plan.rate,
        urls: &urls,
    };
    println!("{}", report::human(&summary));
    if let Some(path) = &config.json {
        report::JsonReport::new(&summary)
            .write_to(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
