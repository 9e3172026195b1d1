//! Memory per sleeping thread: N threads each blocked on a timer at once.
//!
//! Every measurement runs in a fresh child process (this binary re-executed with the
//! `sleepers` subcommand), so the peak RSS it reports belongs to that measurement
//! alone. The child reads `VmHWM` (peak resident set) from `/proc/self/status` once the
//! runtime is up, spawns N threads that each sleep for a minute, waits until every one
//! of them has started (so all N timers are armed), reads `VmHWM` again and reports the
//! difference divided by N. It exits right away instead of tearing N threads down.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::runtimes::{ours, tokio_local, tokio_mt, Rt};

/// How long each thread sleeps: far beyond the measurement.
const SLEEP: Duration = Duration::from_secs(60);

/// Threads that have started and are about to sleep.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// What a child reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Threads sleeping at the measurement.
    pub threads: usize,
    /// `VmHWM` before spawning, bytes.
    pub baseline_bytes: u64,
    /// `VmHWM` with every thread asleep, bytes.
    pub peak_bytes: u64,
    /// `(peak - baseline) / threads`.
    pub bytes_per_thread: f64,
    /// Time to spawn them all and let each arm its timer.
    pub spawn_seconds: f64,
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
pub fn vm_hwm() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    parse_vm_hwm(&status).context("no VmHWM line in /proc/self/status")
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn report(threads: usize, baseline: u64, start: Instant) -> Result<Report> {
    let started = STARTED.load(Ordering::Relaxed);
    ensure!(
        started == threads,
        "only {started} of {threads} threads started"
    );
    let peak = vm_hwm()?;
    Ok(Report {
        threads,
        baseline_bytes: baseline,
        peak_bytes: peak,
        bytes_per_thread: peak.saturating_sub(baseline) as f64 / threads as f64,
        spawn_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The child's side: spawns `n` sleepers on `rt` and measures.
pub fn measure(rt: Rt, n: usize) -> Result<Report> {
    match rt {
        Rt::Ours => ours(async move {
            let baseline = vm_hwm().map_err(threadlib::Error::other)?;
            let start = Instant::now();
            for _ in 0..n {
                // Detached: the handle is dropped, the thread lives on.
                drop(threadlib::spawn(async {
                    STARTED.fetch_add(1, Ordering::Relaxed);
                    threadlib::sleep(SLEEP).await
                }));
            }
            // A yield puts us behind every new thread: when we run again, each has
            // run once and is blocked in its Sleep call.
            while STARTED.load(Ordering::Relaxed) < n {
                threadlib::yield_now().await?;
            }
            report(n, baseline, start).map_err(threadlib::Error::other)
        }),
        Rt::TokioLocal => tokio_local(async move {
            let baseline = vm_hwm()?;
            let start = Instant::now();
            for _ in 0..n {
                drop(tokio::task::spawn_local(async {
                    STARTED.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(SLEEP).await
                }));
            }
            while STARTED.load(Ordering::Relaxed) < n {
                tokio::task::yield_now().await;
            }
            report(n, baseline, start)
        }),
        Rt::TokioMt => tokio_mt(async move {
            let baseline = vm_hwm()?;
            let start = Instant::now();
            for _ in 0..n {
                drop(tokio::spawn(async {
                    STARTED.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(SLEEP).await
                }));
            }
            while STARTED.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            report(n, baseline, start)
        }),
    }
}

/// The parent's side: runs one measurement in a fresh child process.
pub fn measure_in_child(rt: Rt, n: usize) -> Result<Report> {
    let exe = std::env::current_exe().context("locate the bench binary")?;
    let out = Command::new(exe)
        .args([
            "sleepers",
            "--runtime",
            rt.arg(),
            "--threads",
            &n.to_string(),
        ])
        .output()
        .context("start the sleepers child")?;
    if !out.status.success() {
        bail!(
            "sleepers child ({}, {n}) failed: {:?}: {}",
            rt.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parse the sleepers child's report")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS: 1 kB"), None);
        assert!(vm_hwm().unwrap() > 0);
    }
}
