//! `make bench-threads`: threadlib against tokio, side by side in one run.
//!
//! Every figure is the median of several runs that alternate between threadlib and its
//! anchors (tokio's current-thread runtime with `spawn_local`, and tokio's multi-thread
//! runtime), so drift of a shared machine hits all sides alike. Results go to
//! `target/bench/threads.json` (the record format of docs/ARCHITECTURE.md, one record per anchor)
//! and a table on standard output; progress goes to standard error.

mod copy;
mod cpu;
mod record;
mod runtimes;
mod sleepers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use benchkit::{median, Better, Record, Spec};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::record::{table, Goal};
use crate::runtimes::Rt;

#[derive(Parser, Debug)]
#[command(
    about = "threadlib vs tokio benchmarks",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Internal: one sleepers measurement in this (fresh) process; prints JSON.
    Sleepers {
        /// Runtime to measure.
        #[arg(long, value_enum)]
        runtime: Rt,
        /// Number of sleeping threads.
        #[arg(long)]
        threads: usize,
    },
    /// Runs one timed workload on one runtime, for profiling (e.g. under perf).
    Once {
        /// The workload.
        #[arg(long, value_enum)]
        bench: Workload,
        /// Runtime to run it on.
        #[arg(long, value_enum)]
        runtime: Rt,
        /// Size (threads, yields or messages).
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// How many times to run it.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
}

/// The timed workloads, for `once`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Workload {
    SpawnJoin,
    YieldPingpong,
    ChannelPingpong,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Runs per side for the timed benchmarks.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Runs per side for sleepers_1m (each in a fresh process).
    #[arg(long, default_value_t = 3)]
    sleeper_runs: usize,
    /// Runs per side for sleepers_10m (each in a fresh process).
    #[arg(long, default_value_t = 1)]
    sleeper_runs_10m: usize,
    /// Where the JSON records go.
    #[arg(long, default_value = "target/bench/threads.json")]
    out: PathBuf,
    /// The release-built `copy` example (default: `examples/copy` next to this binary).
    #[arg(long)]
    copy_bin: Option<PathBuf>,
    /// Runs per side for copy_vs_cat (pipelines are short and noisy: more runs).
    #[arg(long, default_value_t = 7)]
    copy_runs: usize,
    /// Size of the file for copy_vs_cat, bytes.
    #[arg(long, default_value_t = 4 << 30)]
    copy_bytes: u64,
    /// Directory for the copy_vs_cat data file (deleted afterwards).
    #[arg(long, default_value = "target/bench")]
    scratch: PathBuf,
    /// Only these benchmarks (comma-separated names); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Divide every size by this (a quick smoke run; the figures are then not the
    /// benchmarks' own).
    #[arg(long, default_value_t = 1)]
    shrink: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Sleepers { runtime, threads }) => {
            let report = sleepers::measure(runtime, threads)?;
            println!("{}", serde_json::to_string(&report)?);
            // Tearing down millions of threads is not part of the measurement.
            std::process::exit(0);
        }
        Some(Cmd::Once {
            bench,
            runtime,
            n,
            repeat,
        }) => {
            for _ in 0..repeat {
                let d = match bench {
                    Workload::SpawnJoin => cpu::spawn_join(runtime, n)?,
                    Workload::YieldPingpong => cpu::yield_pingpong(runtime, n)?,
                    Workload::ChannelPingpong => cpu::channel_pingpong(runtime, n)?,
                };
                println!("{bench:?} on {}: {:.6} s", runtime.name(), d.as_secs_f64());
            }
            Ok(())
        }
        None => run_all(&cli.run),
    }
}

/// Collects records and their goals.
struct Results {
    rows: Vec<(Record, Goal)>,
}

impl Results {
    fn push(&mut self, r: Record, g: Goal) {
        eprintln!(
            "  {} vs {}: ours {:.6} anchor {:.6} ratio {:.3}",
            r.bench, r.anchor, r.ours, r.anchor_value, r.ratio
        );
        self.rows.push((r, g));
    }
}

fn wanted(args: &RunArgs, bench: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|o| o == bench)
}

/// Times `f` on every runtime, alternating, `runs` rounds; returns the per-runtime
/// medians in seconds (in `Rt::ALL` order).
fn alternate(
    name: &str,
    runs: usize,
    mut f: impl FnMut(Rt) -> Result<Duration>,
) -> Result<[f64; 3]> {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for round in 0..runs {
        for (i, rt) in Rt::ALL.into_iter().enumerate() {
            let d = f(rt).with_context(|| format!("{name} on {}", rt.name()))?;
            samples[i].push(d.as_secs_f64());
        }
        eprintln!(
            "  {name} round {}/{runs}: {}",
            round + 1,
            Rt::ALL
                .iter()
                .zip(&samples)
                .map(|(rt, s)| format!("{} {:.4}s", rt.name(), s[round]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(samples.map(|s| median(&s)))
}

fn timed(
    results: &mut Results,
    spec: Spec,
    runs: usize,
    goal_local: Goal,
    goal_mt: Goal,
    f: impl FnMut(Rt) -> Result<Duration>,
) -> Result<()> {
    eprintln!("{}", spec.bench);
    let [ours, local, mt] = alternate(spec.bench, runs, f)?;
    results.push(
        spec.record(ours, Rt::TokioLocal.name(), local, runs),
        goal_local,
    );
    results.push(spec.record(ours, Rt::TokioMt.name(), mt, runs), goal_mt);
    Ok(())
}

fn sleepers(results: &mut Results, bench: &'static str, n: usize, runs: usize) -> Result<()> {
    eprintln!("{bench}");
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut spawn_secs: [Vec<f64>; 3] = Default::default();
    for round in 0..runs {
        for (i, rt) in Rt::ALL.into_iter().enumerate() {
            let r = sleepers::measure_in_child(rt, n)?;
            eprintln!(
                "  round {}/{runs} {}: {:.1} B/thread ({:.0} MiB over a {:.0} MiB baseline, {:.2} s to spawn)",
                round + 1,
                rt.name(),
                r.bytes_per_thread,
                (r.peak_bytes - r.baseline_bytes) as f64 / (1 << 20) as f64,
                r.baseline_bytes as f64 / (1 << 20) as f64,
                r.spawn_seconds
            );
            samples[i].push(r.bytes_per_thread);
            spawn_secs[i].push(r.spawn_seconds);
        }
    }
    let [ours, local, mt] = samples.map(|s| median(&s));
    let [ours_s, local_s, mt_s] = spawn_secs.map(|s| median(&s));
    let spec = |anchor_secs: f64| Spec {
        bench,
        metric: "bytes",
        better: Better::Lower,
        params: json!({
            "threads": n,
            "sleep_s": 60,
            "measure": "VmHWM delta / threads, fresh process each run",
            "ours_total_bytes": ours * n as f64,
            "ours_spawn_s": ours_s,
            "anchor_spawn_s": anchor_secs,
        }),
    };
    results.push(
        spec(local_s).record(ours, Rt::TokioLocal.name(), local, runs),
        Goal::RatioAtMost(0.5),
    );
    results.push(
        spec(mt_s).record(ours, Rt::TokioMt.name(), mt, runs),
        Goal::RatioAtMost(0.5),
    );
    Ok(())
}

fn copy_vs_cat(results: &mut Results, args: &RunArgs, bytes: u64) -> Result<()> {
    eprintln!("copy_vs_cat_4g");
    let copy_bin = match &args.copy_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("examples/copy"),
    };
    if !copy_bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p threadlib --example copy`",
            copy_bin.display()
        );
    }
    let cat = copy::cat_path()?;
    let path = args.scratch.join("copy-vs-cat.bin");
    let t = Instant::now();
    let file = copy::DataFile::create(&path, bytes)?;
    eprintln!(
        "  wrote {} MiB in {:.1} s",
        bytes >> 20,
        t.elapsed().as_secs_f64()
    );
    // One unmeasured run of each, so both start from the same warm page cache.
    copy::pipeline(&copy_bin, &file)?;
    copy::pipeline(&cat, &file)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let runs = args.copy_runs.max(1);
    for round in 0..runs {
        ours.push(copy::pipeline(&copy_bin, &file)?);
        theirs.push(copy::pipeline(&cat, &file)?);
        eprintln!(
            "  round {}/{runs}: copy {:.2} GB/s, cat {:.2} GB/s",
            round + 1,
            ours[round] / 1e9,
            theirs[round] / 1e9
        );
    }
    drop(file);
    let spec = Spec {
        bench: "copy_vs_cat_4g",
        metric: "bytes_per_s",
        better: Better::Higher,
        params: json!({
            "bytes": bytes,
            "ours": "copy < f | cat > /dev/null",
            "anchor": "cat < f | cat > /dev/null",
        }),
    };
    results.push(
        spec.record(median(&ours), "cat", median(&theirs), runs),
        Goal::RatioAtLeast(1.2),
    );
    Ok(())
}

fn run_all(args: &RunArgs) -> Result<()> {
    let shrink = args.shrink.max(1);
    let runs = args.runs.max(1);
    let mut results = Results { rows: Vec::new() };
    let started = Instant::now();

    if wanted(args, "spawn_join_1m") {
        let n = 1_000_000 / shrink;
        let spec = Spec {
            bench: "spawn_join_1m",
            metric: "seconds",
            better: Better::Lower,
            params: json!({"threads": n}),
        };
        timed(
            &mut results,
            spec,
            runs,
            Goal::RatioAtMost(0.5),
            Goal::None,
            |rt| cpu::spawn_join(rt, n),
        )?;
    }
    if wanted(args, "yield_pingpong_1m") {
        let n = 1_000_000 / shrink;
        let spec = Spec {
            bench: "yield_pingpong_1m",
            metric: "seconds",
            better: Better::Lower,
            params: json!({"threads": 2, "yields_total": n, "yields_per_thread": n / 2}),
        };
        let goal = Goal::RatioAtMost(0.7);
        timed(&mut results, spec, runs, goal, goal, |rt| {
            cpu::yield_pingpong(rt, n)
        })?;
    }
    if wanted(args, "channel_pingpong_1m") {
        let n = 1_000_000 / shrink;
        let spec = Spec {
            bench: "channel_pingpong_1m",
            metric: "seconds",
            better: Better::Lower,
            params: json!({
                "messages": n,
                "round_trips": n / 2,
                "capacity": 1,
                "ours_channel": "threadlib::sync::channel",
                "anchor_channel": "tokio::sync::mpsc::channel",
            }),
        };
        let goal = Goal::RatioAtMost(0.7);
        timed(&mut results, spec, runs, goal, goal, |rt| {
            cpu::channel_pingpong(rt, n)
        })?;
    }
    if wanted(args, "sleepers_1m_bytes_per_thread") {
        let n = 1_000_000 / shrink;
        sleepers(
            &mut results,
            "sleepers_1m_bytes_per_thread",
            n,
            args.sleeper_runs.max(1),
        )?;
    }
    if wanted(args, "sleepers_10m_bytes_per_thread") {
        let n = 10_000_000 / shrink;
        sleepers(
            &mut results,
            "sleepers_10m_bytes_per_thread",
            n,
            args.sleeper_runs_10m.max(1),
        )?;
    }
    if wanted(args, "copy_vs_cat_4g") {
        copy_vs_cat(&mut results, args, args.copy_bytes / shrink as u64)?;
    }

    benchkit::write(&args.out, results.rows.iter().map(|(r, _)| r))
        .with_context(|| format!("write {}", args.out.display()))?;

    println!("{}", table(&results.rows));
    if let Some((r, _)) = results
        .rows
        .iter()
        .find(|(r, _)| r.bench == "sleepers_10m_bytes_per_thread")
    {
        let total = r.params["ours_total_bytes"].as_f64().unwrap_or(f64::NAN);
        let threads = r.params["threads"].as_u64().unwrap_or(0);
        println!(
            "sleepers_10m: {threads} threadlib threads take {:.2} GiB (goal < 2 GiB: {})",
            total / (1u64 << 30) as f64,
            if total < (2u64 << 30) as f64 {
                "yes"
            } else {
                "NO"
            }
        );
    }
    if shrink > 1 {
        println!("(sizes divided by {shrink}: a smoke run, not the benchmark figures)");
    }
    println!(
        "wrote {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
