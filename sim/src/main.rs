//! `sim`: runs seeds of the whole-system simulation.
//!
//! ```text
//! sim                      # a batch of 2000 seeds from seed 0
//! sim --seeds 5000..6000   # a range; exits 1 if any seed fails
//! sim --seed 42 --verbose  # one seed, with its event log
//! sim --seed 42 --trace t.json
//! sim --seeds 0..200 --hashes h.txt   # each seed's event hash, to compare two builds
//! ```

use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sim::RunOptions;

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

    /// Run the seeds listed in FILE (one per line with a note: `SEED  what it caught`)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seed", "seeds"])]
    seed_file: Option<PathBuf>,

    /// With --seed: print the event log (every packet and event)
    #[arg(long, requires = "seed")]
    verbose: bool,

    /// With --seed: write a Perfetto trace (threads, system calls, packets) to FILE
    #[arg(long, value_name = "FILE", requires = "seed")]
    trace: Option<PathBuf>,

    /// With a batch: write each seed's event hash (`SEED HASH`, one per line, in seed
    /// order) to FILE. The hash covers every packet's bytes, time and fate and every
    /// event, so two builds that give a seed the same hash sent the same packets.
    #[arg(long, value_name = "FILE", conflicts_with = "seed")]
    hashes: Option<PathBuf>,

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
    if let Some(seed) = cli.seed {
        return one(seed, &cli);
    }
    let (seeds, what) = match (&cli.seed_file, &cli.seeds) {
        (Some(path), _) => {
            let listed = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| sim::batch::regression_seeds(&text));
            match listed {
                Ok(listed) => (
                    listed.into_iter().map(|(s, _)| s).collect::<Vec<_>>(),
                    path.display().to_string(),
                ),
                Err(e) => {
                    eprintln!("sim: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        (None, Some(r)) => (r.clone().collect(), format!("{}..{}", r.start, r.end)),
        (None, None) => ((0..cli.count).collect(), format!("0..{}", cli.count)),
    };
    batch(&seeds, &what, &cli)
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
        let _ = write!(out, "{}", sim::batch::failure_report(&o));
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

fn batch(seeds: &[u64], what: &str, cli: &Cli) -> ExitCode {
    let total = seeds.len() as u64;
    let jobs = cli
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let failed = AtomicU64::new(0);
    let hashes = Mutex::new(Vec::new());
    // The runner's own speed, reported to people; no seed sees it.
    #[allow(clippy::disallowed_methods)]
    let wall = Instant::now();
    let b = sim::batch::run_batch(seeds, jobs, |o| {
        if !o.passed() {
            bar.suspend(|| print!("{}", sim::batch::failure_report(o)));
            let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} FAILED"));
        }
        if cli.hashes.is_some() {
            hashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((o.params.seed, o.hash));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "{total} seeds ({what}) in {secs:.1} s: {:.1} seeds/s, {:.0} s of virtual time; {} failed",
        total as f64 / secs,
        b.virtual_time.as_secs_f64(),
        b.failures.len()
    );
    println!("paths taken (seeds):\n{}", b.coverage);
    let mut ok = b.failures.is_empty();
    if let Some(path) = &cli.hashes {
        let mut hashes = hashes.into_inner().unwrap_or_else(|p| p.into_inner());
        hashes.sort_unstable();
        let text: String = hashes
            .iter()
            .map(|(seed, hash)| format!("{seed} {hash:016x}\n"))
            .collect();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("sim: {}: {e}", path.display());
            ok = false;
        } else {
            println!(
                "event hashes of {} seeds written to {}",
                hashes.len(),
                path.display()
            );
        }
    }
    if !ok {
        let list: Vec<String> = b
            .failures
            .iter()
            .map(|o| o.params.seed.to_string())
            .collect();
        println!("failed seeds: {}", list.join(" "));
    }
    let missing = b.coverage.missing();
    let judged = total >= COVERAGE_MIN_SEEDS && cli.seed_file.is_none();
    if judged && !missing.is_empty() && !cli.no_coverage_check {
        println!("coverage: no seed reached {}", missing.join(", "));
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
