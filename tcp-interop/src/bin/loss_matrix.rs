//! `make bench-tcp-loss`: loss recovery against Linux. A kernel client and our stack
//! exchange a bulk stream each way through a TUN device whose stack side drops (and
//! optionally reorders) packets; for each loss rate, with and without reordering, it
//! reports both sides' retransmission timeouts, retransmissions, spurious
//! retransmissions and transfer times, and writes `target/bench/tcp_loss.json` (the
//! bench record format of docs/ARCHITECTURE.md: ours is the stack's direction, the
//! anchor Linux's direction of the same exchange; every run is a record).
//!
//! Both directions cross the same impaired link in the same run, so each row compares
//! our sender with Linux's under the same loss. Needs root.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde_json::json;
use tcp_interop::driver::Impairment;
use tcp_interop::rig::{bulk_exchange, exchange_error, BulkExchange, Rig};
use tcpstack::CcAlgorithm;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Loss recovery of our stack against Linux over an impaired TUN link")]
struct Args {
    /// Write the JSON records here.
    #[arg(long, default_value = "target/bench/tcp_loss.json")]
    json: PathBuf,
    /// Loss rates to run, in percent of packets each way.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    loss: Vec<f64>,
    /// Bytes each way per exchange.
    #[arg(long, default_value_t = 100 << 20)]
    bytes: u64,
    /// Runs per configuration (seeds differ; every run is reported, medians in the table).
    #[arg(long, default_value_t = 1)]
    runs: u64,
    /// The stack's floor on the retransmission timeout, in milliseconds (Linux's is
    /// 200, the stack's default).
    #[arg(long, default_value_t = 200)]
    min_rto_ms: u64,
    /// Print both stacks' counters after each exchange.
    #[arg(long)]
    verbose: bool,
    /// Longest one exchange may take (Linux's CUBIC needs 450-650 s for 100 MiB at
    /// 10% loss).
    #[arg(long, default_value_t = 900)]
    limit_secs: u64,
    /// The congestion control of both sides, so that they differ in loss recovery
    /// only: `cubic` (the stack's CUBIC against Linux's `cubic`) or `reno` (the
    /// stack's NewReno against Linux's `reno`), whatever the host's default is (often
    /// BBR, which keeps its window under random loss where CUBIC reduces it).
    #[arg(long, value_enum, default_value_t = Cc::Cubic)]
    cc: Cc,
    /// Linux's side runs this instead (a kernel module name, such as `bbr`).
    #[arg(long)]
    kernel_cc: Option<String>,
}

/// The congestion control algorithms both sides have.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Cc {
    Cubic,
    Reno,
}

impl Cc {
    fn stack(self) -> CcAlgorithm {
        match self {
            Cc::Cubic => CcAlgorithm::Cubic,
            Cc::Reno => CcAlgorithm::NewReno,
        }
    }

    fn linux(self) -> &'static str {
        match self {
            Cc::Cubic => "cubic",
            Cc::Reno => "reno",
        }
    }
}

impl Args {
    fn kernel_cc(&self) -> String {
        self.kernel_cc
            .clone()
            .unwrap_or_else(|| self.cc.linux().to_owned())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !testnet::privileged("loss_matrix") {
        bail!("loss_matrix needs root, /dev/net/tun and iproute2");
    }
    let mut records = Vec::new();
    println!(
        "congestion control: {} on the stack's side, {} on Linux's",
        args.cc.stack().name(),
        args.kernel_cc()
    );
    println!(
        "{:>6} {:>8} | {:>9} {:>9} | {:>11} {:>11} | {:>12} {:>12} | {:>8} {:>8} | ratio",
        "loss%",
        "reorder%",
        "RTO stack",
        "RTO linux",
        "rtx stack",
        "rtx linux",
        "spur stack",
        "dup B linux",
        "s stack",
        "s linux",
    );
    let mut failed = 0;
    for &loss in &args.loss {
        for reorder in [0.0, loss] {
            for run in 0..args.runs {
                let impairment = Impairment {
                    seed: 0x5eed + run,
                    drop_percent: loss,
                    reorder_percent: reorder,
                };
                let min_rto = Duration::from_millis(args.min_rto_ms);
                let algorithm = args.cc.stack();
                let mut rig = Rig::with_config("lossm", Some(impairment), false, |c| {
                    c.tcp.min_rto = min_rto;
                    c.tcp.congestion.algorithm = algorithm;
                })
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("creating the rig")?;
                rig.kernel_cc = Some(args.kernel_cc());
                let exchanged = bulk_exchange(
                    &mut rig,
                    7000,
                    args.bytes,
                    Duration::from_secs(args.limit_secs),
                )
                .map_err(anyhow::Error::from)
                .and_then(|x| check(&x, args.bytes).map(|()| x));
                let x = match exchanged {
                    Ok(x) => x,
                    Err(e) => {
                        // One failed exchange leaves the others' figures standing; the
                        // run still ends in failure.
                        eprintln!("exchange at {loss}% loss, {reorder}% reordering: {e:#}");
                        failed += 1;
                        continue;
                    }
                };
                if args.verbose {
                    eprintln!(
                        "{}\nlinux: {:?}",
                        rig.report(),
                        x.linux.iter().filter(|(_, &v)| v != 0).collect::<Vec<_>>()
                    );
                }
                print_row(loss, reorder, &x);
                records.extend(records_of(loss, reorder, run, &args, &x));
            }
        }
    }
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let doc = serde_json::Value::Array(records);
    std::fs::write(&args.json, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("wrote {}", args.json.display());
    if failed > 0 {
        bail!("{failed} exchange(s) failed; their rows are missing");
    }
    Ok(())
}

/// Both directions arrived whole.
fn check(x: &BulkExchange, bytes: u64) -> Result<()> {
    match exchange_error(&x.app, &x.kernel, bytes) {
        Some(e) => bail!("{e}"),
        None => Ok(()),
    }
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64())
}

fn print_row(loss: f64, reorder: f64, x: &BulkExchange) {
    let (ours, linux) = (secs(x.stack_transfer()), secs(x.linux_transfer()));
    println!(
        "{:>6} {:>8} | {:>9} {:>9} | {:>11} {:>11} | {:>12} {:>12} | {:>8.2} {:>8.2} | {:.2}",
        loss,
        reorder,
        x.stack_rtos(),
        x.linux_rtos(),
        x.stack.retransmits,
        x.linux_counter("RetransSegs"),
        x.stack_spurious(),
        x.linux_duplicate_bytes(),
        ours,
        linux,
        ours / linux,
    );
}

/// The bench records of one exchange: transfer time, timeouts, retransmissions and
/// loss probes, ours (the stack's direction) against Linux's.
fn records_of(
    loss: f64,
    reorder: f64,
    run: u64,
    args: &Args,
    x: &BulkExchange,
) -> Vec<serde_json::Value> {
    let bench = format!("tcp_loss_{loss}pct_reorder_{reorder}pct");
    let params = json!({
        "loss_percent": loss,
        "reorder_percent": reorder,
        "run": run,
        "bytes_each_way": x.kernel.sent.0,
        "stack_spurious_dsacked": x.stack_spurious(),
        "linux_duplicate_bytes_received_by_stack": x.linux_duplicate_bytes(),
        "stack_fast_recoveries": x.stack.fast_retransmits,
        "stack_recoveries_undone": x.stack.recoveries_undone,
        "stack_min_rto_ms": args.min_rto_ms,
        "stack_cc": args.cc.stack().name(),
        "linux_cc": args.kernel_cc(),
    });
    let figures: [(&str, f64, f64); 4] = [
        (
            "transfer_s",
            secs(x.stack_transfer()),
            secs(x.linux_transfer()),
        ),
        ("rtos", x.stack_rtos() as f64, x.linux_rtos() as f64),
        (
            "retransmitted_segments",
            x.stack.retransmits as f64,
            x.linux_counter("RetransSegs") as f64,
        ),
        (
            "loss_probes",
            x.stack.tail_loss_probes as f64,
            x.linux_counter("TCPLossProbes") as f64,
        ),
    ];
    figures
        .into_iter()
        .map(|(metric, ours, linux)| {
            json!({
                "bench": bench,
                "metric": metric,
                "better": "lower",
                "ours": ours,
                "anchor": "linux",
                "anchor_value": linux,
                // No ratio against zero.
                "ratio": (linux > 0.0).then(|| ours / linux),
                "runs": 1,
                "params": params,
            })
        })
        .collect()
}
