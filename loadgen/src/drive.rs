//! Runs a [`Plan`] on a threadlib runtime: one scheduler per core, each running its
//! share of the connections as threads of one scope and returning its merged
//! [`Stats`] to the main thread, which merges the cores' and draws the progress line.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use loadgen::progress::Progress;
use loadgen::{run_connection, Plan, Stats};
use threadlib::net::Network as ThreadNetwork;
use threadlib::{Builder, Runtime};
use usernet::cli::NetStats;
use usernet::NetReport;

use loadgen::ThreadNet;

/// Longest wait for closed connections to finish closing on a network that lives in
/// this process.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// All cores' statistics, merged.
    pub stats: Stats,
    /// From the start to the moment the last connection stopped.
    pub elapsed: Duration,
    /// The network's counters summed over the cores, if it keeps any.
    pub net: Option<NetReport>,
}

/// The runtime `plan` runs on: one core per thread, no io_uring, no blocking pool.
pub fn builder(plan: &Plan) -> Builder {
    Runtime::builder()
        .cores(plan.threads)
        .uring(None)
        .blocking_threads(0)
}

/// One core's count of complete responses, on its own cache line so the cores do not
/// contend for it.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counter(AtomicU64);

/// Live counters shared by the cores and the progress line.
#[derive(Debug)]
struct Shared {
    responses: Box<[Counter]>,
    cores_done: AtomicUsize,
}

/// Runs `plan` against `addr` over `net` on a runtime built from `builder` (see
/// [`builder`]), drawing `progress` if it is visible.
pub fn run<N>(
    builder: Builder,
    net: N,
    plan: &Plan,
    addr: SocketAddr,
    progress: &Progress,
) -> anyhow::Result<Outcome>
where
    N: ThreadNetwork + NetStats + Send,
{
    let runtime = builder.build().context("building the thread runtime")?;
    let plan = plan.clone();
    let live = progress.is_visible();
    let line = progress.clone();
    let shared = Arc::new(Shared {
        responses: (0..plan.threads).map(|_| Counter::default()).collect(),
        cores_done: AtomicUsize::new(0),
    });
    let (stats, last, net_report) = runtime
        .block_on({
            let shared = shared.clone();
            async move {
                let start = threadlib::time::now();
                let mut handles = Vec::with_capacity(plan.threads);
                for core in 0..plan.threads {
                    let (net, plan, shared) = (net.clone(), plan.clone(), shared.clone());
                    let handle = threadlib::spawn_on(core, move || {
                        run_core(net, plan, core, addr, start, shared, live)
                    })
                    .with_context(|| format!("starting core {core}"))?;
                    handles.push(handle);
                }
                if live {
                    while shared.cores_done.load(Ordering::Acquire) < handles.len() {
                        let _ = threadlib::sleep(PROGRESS_TICK).await;
                        let done: u64 = shared
                            .responses
                            .iter()
                            .map(|c| c.0.load(Ordering::Relaxed))
                            .sum();
                        line.update(done, start.elapsed());
                    }
                }
                let mut total = Stats::new();
                let mut last = start;
                let mut net_report: Option<NetReport> = None;
                for (core, handle) in handles.into_iter().enumerate() {
                    let (stats, finished, report) = handle
                        .join()
                        .await
                        .and_then(|r| r)
                        .with_context(|| format!("core {core} failed"))?;
                    total.merge(&stats);
                    last = last.max(finished);
                    if let Some(r) = &report {
                        *net_report.get_or_insert_with(NetReport::default) += r;
                    }
                }
                anyhow::Ok((total, last.saturating_duration_since(start), net_report))
            }
        })
        .context("running the thread runtime")??;
    progress.finish();
    Ok(Outcome {
        stats,
        elapsed: last,
        net: net_report,
    })
}

/// Runs the connections of `core` as threads of one scope, all recording into one
/// [`Stats`] (one histogram per core, not per connection); returns it, when the last
/// connection stopped, and the network's counters once its connections finished
/// closing.
async fn run_core<N: ThreadNetwork + NetStats>(
    raw_net: N,
    plan: Plan,
    core: usize,
    addr: SocketAddr,
    start: Instant,
    shared: Arc<Shared>,
    live: bool,
) -> threadlib::Result<(Stats, Instant, Option<NetReport>)> {
    let net = Rc::new(ThreadNet::new(raw_net.clone()));
    let total = Rc::new(RefCell::new(Stats::new()));
    let result = threadlib::scope(|scope| {
        let (total, shared) = (total.clone(), shared.clone());
        async move {
            for index in plan.connections_of(core) {
                let connection = plan.connection(index, addr, start);
                let (net, total, shared) = (net.clone(), total.clone(), shared.clone());
                scope.try_spawn(async move {
                    let counter = live.then_some(&shared.responses[core].0);
                    run_connection(&*net, connection, &mut &*total, counter).await;
                    Ok(())
                })?;
            }
            Ok(())
        }
    })
    .await;
    shared.cores_done.fetch_add(1, Ordering::Release);
    result?;
    let finished = threadlib::time::now();
    let stats = total.take();
    // Closed connections finish closing before the network stops, if it lives here.
    let _ = threadlib::with_timeout(DRAIN_TIMEOUT, raw_net.drain()).await;
    Ok((stats, finished, raw_net.report()))
}
