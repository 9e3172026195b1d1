//! `sim`: runs seeds of the whole-system simulation.
//!
//! ```text
//! sim                      # a batch of 2000 seeds from seed 0
//! sim --seeds 5000..6000   # a range; exits 1 if any seed fails
//! sim --seed 42 --verbose  # one seed, with its event log
//! sim --seed 42 --trace t.json
//! ```

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sim::{Coverage, Outcome, RunOptions};

/// Runs seeds of the deterministic whole-system simulation: the web server and loadgen
/// on two user-space TCP stacks over a hostile simulated link, with mock time and
/// simulated files.
#[derive(Debug, Parser)]
#[command(name = "sim", version, about)]
struct Cli {
    /// Run this one seed (ends with its event hash)
    #[arg(long, conflicts_with_all = ["seeds", "count"])]
    seed: Option<u64>,

    /// Run this range of seeds, A..B (B excluded)
    #[arg(long, value_parser = parse_range, conflicts_with = "count")]
    seeds: Option<Range<u64>>,

    /// Run this many seeds from 0
    #[arg(long, default_value_t = 2000)]
    count: u64,

    /// With --seed: print the event log (every packet and event)
    #[arg(long, requires = "seed")]
    verbose: bool,

    /// With --seed: write a Perfetto trace (threads, system calls, packets) to FILE
    #[arg(long, value_name = "FILE", requires = "seed")]
    trace: Option<PathBuf>,

    /// Worker threads for a batch [default: all cores]
    #[arg(long, short = 'j')]
    jobs: Option<usize>,

    /// Do not fail a batch for a path no seed reached
    #[arg(long)]
    no_coverage_check: bool,
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{s:?} is not a range A..B"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a >= b {
        return Err(format!("{s:?} is empty"));
    }
    Ok(a..b)
}

/// Batches smaller than this do not judge coverage (too few seeds to reach every path).
const COVERAGE_MIN_SEEDS: u64 = 500;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.seed {
        Some(seed) => one(seed, &cli),
        None => {
            let range = cli.seeds.clone().unwrap_or(0..cli.count);
            batch(range, &cli)
        }
    }
}

/// Prints a failed seed's report; its first line is the command that replays it.
fn report_failure(o: &Outcome, out: &mut impl Write) {
    let _ = writeln!(out, "make sim SEED={}", o.params.seed);
    let _ = writeln!(
        out,
        "  seed {} FAILED ({} violations):",
        o.params.seed,
        o.violations.len()
    );
    for v in o.violations.iter().take(20) {
        let _ = writeln!(out, "    {v}");
    }
    let _ = writeln!(out, "  drawn parameters:\n{}", o.params);
    let _ = writeln!(out, "  event hash: {:016x}", o.hash);
}

fn one(seed: u64, cli: &Cli) -> ExitCode {
    let opts = RunOptions {
        verbose: cli.verbose,
        trace: cli.trace.clone(),
    };
    // The runner's own speed, reported to people; no seed sees it.
    #[allow(clippy::disallowed_methods)]
    let wall = Instant::now();
    let o = sim::run(seed, &opts);
    let mut out = std::io::stdout().lock();
    for line in &o.log {
        let _ = writeln!(out, "{line}");
    }
    if o.passed() {
        let _ = writeln!(out, "seed {seed} passed\n  drawn parameters:\n{}", o.params);
    } else {
        report_failure(&o, &mut out);
    }
    let [c2s, s2c] = o.link;
    let _ = writeln!(
        out,
        "  {} responses; {:.3} s virtual in {:.3} s; packets client->server {} (lost {}, corrupted {}), server->client {} (lost {}, corrupted {})",
        o.responses,
        o.virtual_time.as_secs_f64(),
        wall.elapsed().as_secs_f64(),
        c2s.sent,
        c2s.lost + c2s.partitioned + c2s.queue_drops,
        c2s.corrupted,
        s2c.sent,
        s2c.lost + s2c.partitioned + s2c.queue_drops,
        s2c.corrupted
    );
    let paths: Vec<&str> = o
        .coverage
        .paths()
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(name, _)| name)
        .collect();
    let _ = writeln!(out, "  paths taken: {}", paths.join(" "));
    if let Some(t) = &cli.trace {
        let _ = writeln!(
            out,
            "  trace written to {} (open in https://ui.perfetto.dev)",
            t.display()
        );
    }
    let _ = writeln!(out, "event hash: {:016x}", o.hash);
    if o.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn batch(range: Range<u64>, cli: &Cli) -> ExitCode {
    let total = range.end - range.start;
    let jobs = cli
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicU64::new(range.start);
    let coverage = Mutex::new(Coverage::default());
    let failures: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let virtual_time = Mutex::new(Duration::ZERO);
    #[allow(clippy::disallowed_methods)]
    let wall = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= range.end {
                    return;
                }
                let o = sim::run(seed, &RunOptions::default());
                *coverage.lock().unwrap_or_else(|p| p.into_inner()) += &o.coverage;
                *virtual_time.lock().unwrap_or_else(|p| p.into_inner()) += o.virtual_time;
                if !o.passed() {
                    bar.suspend(|| report_failure(&o, &mut std::io::stdout().lock()));
                    let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                    f.push(o);
                    bar.set_message(format!("{} FAILED", f.len()));
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let secs = wall.elapsed().as_secs_f64();
    let coverage = coverage.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|o| o.params.seed);
    let virtual_time = virtual_time.into_inner().unwrap_or_else(|p| p.into_inner());
    println!(
        "{} seeds ({}..{}) in {secs:.1} s: {:.1} seeds/s, {:.0} s of virtual time; {} failed",
        total,
        range.start,
        range.end,
        total as f64 / secs,
        virtual_time.as_secs_f64(),
        failures.len()
    );
    println!("paths taken (seeds):\n{coverage}");
    let mut ok = failures.is_empty();
    if !failures.is_empty() {
        let seeds: Vec<String> = failures.iter().map(|o| o.params.seed.to_string()).collect();
        println!("failed seeds: {}", seeds.join(" "));
    }
    let missing = coverage.missing();
    if total >= COVERAGE_MIN_SEEDS && !missing.is_empty() && !cli.no_coverage_check {
        println!("coverage: no seed reached {}", missing.join(", "));
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
