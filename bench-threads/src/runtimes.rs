//! The runtimes compared: threadlib and the two tokio anchors, each built fresh for
//! every run (building and tearing down are not timed).

use std::future::Future;

use anyhow::{Context, Result};

/// A runtime a workload runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rt {
    /// threadlib, one core, default event loops.
    Ours,
    /// tokio's current-thread runtime with a `LocalSet` (`spawn_local`).
    TokioLocal,
    /// tokio's multi-thread runtime (one worker per CPU), work driven from a task.
    TokioMt,
}

impl Rt {
    /// Every runtime, ours first.
    pub const ALL: [Rt; 3] = [Rt::Ours, Rt::TokioLocal, Rt::TokioMt];

    /// The anchor name used in the JSON records.
    pub fn name(self) -> &'static str {
        match self {
            Rt::Ours => "threadlib",
            Rt::TokioLocal => "tokio spawn_local",
            Rt::TokioMt => "tokio multi-thread",
        }
    }

    /// The command-line value (for re-executing ourselves).
    pub fn arg(self) -> &'static str {
        match self {
            Rt::Ours => "ours",
            Rt::TokioLocal => "tokio-local",
            Rt::TokioMt => "tokio-mt",
        }
    }
}

/// Runs `main` as the first thread of a fresh single-core threadlib runtime.
pub fn ours<F, T>(main: F) -> Result<T>
where
    F: Future<Output = threadlib::Result<T>> + 'static,
    T: 'static,
{
    let rt = threadlib::Runtime::builder().build()?;
    Ok(rt.block_on(main)??)
}

/// Runs `main` inside a `LocalSet` on a fresh current-thread tokio runtime.
pub fn tokio_local<F, T>(main: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build tokio current-thread runtime")?;
    tokio::task::LocalSet::new().block_on(&rt, main)
}

/// Runs `main` as a task on a fresh multi-thread tokio runtime (so that it spawns from
/// a worker, tokio's fast path).
pub fn tokio_mt<F, T>(main: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build tokio multi-thread runtime")?;
    rt.block_on(async { tokio::spawn(main).await? })
}
