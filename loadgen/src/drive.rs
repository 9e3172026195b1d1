//! Runs a [`Plan`] on a threadlib runtime: one scheduler per core, each running its
//! share of the connections as threads of one scope and returning its merged
//! [`Stats`] to the main thread, which merges the cores' and draws the progress line.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use loadgen::progress::Progress;
use loadgen::{run_connection, Plan, Stats};
use threadlib::net::Network as ThreadNetwork;
use threadlib::signal::Signals;
use threadlib::sync::remote::{oneshot, OneshotReceiver, OneshotSender};
use threadlib::{Builder, RemoteJoinHandle, Runtime};
use usernet::cli::NetStats;
use usernet::NetReport;

use loadgen::ThreadNet;

/// Longest wait for closed connections to finish closing on a network that lives in
/// this process.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the progress line is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(250);

/// The signals that stop a run early: the first stops every connection and the run is
/// reported as far as it went; a second ends the process at once.
pub const STOP_SIGNALS: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// All cores' statistics, merged.
    pub stats: Stats,
    /// From the start to the moment the last connection stopped.
    pub elapsed: Duration,
    /// The network's counters summed over the cores, if it keeps any.
    pub net: Option<NetReport>,
    /// The signal that stopped the run early, if one did.
    pub interrupted: Option<i32>,
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
/// [`builder`]), drawing `progress` if it is visible. The calling thread must have
/// blocked [`STOP_SIGNALS`] before the runtime's threads were made (see
/// [`threadlib::signal::block`]): they stop the run.
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
    let (stats, last, net_report, interrupted) = runtime
        .block_on({
            let shared = shared.clone();
            async move {
                let signals = Signals::new(&STOP_SIGNALS).context("signalfd")?;
                let start = threadlib::time::now();
                let mut handles = Vec::with_capacity(plan.threads);
                let mut stops = Vec::with_capacity(plan.threads);
                for core in 0..plan.threads {
                    let (net, plan, shared) = (net.clone(), plan.clone(), shared.clone());
                    let (stop_tx, stop_rx) = oneshot();
                    let handle = threadlib::spawn_on(core, move || {
                        run_core(net, plan, core, addr, start, shared, live, stop_rx)
                    })
                    .with_context(|| format!("starting core {core}"))?;
                    handles.push(handle);
                    stops.push(stop_tx);
                }
                let interrupted = Rc::new(Cell::new(None));
                let watch = stop_on_signal(signals, stops, interrupted.clone());
                let (stats, last, net_report) = threadlib::race(
                    async move { Ok(collect(handles, shared, start, live, line).await) },
                    watch,
                )
                .await
                .context("waiting for the cores")??;
                anyhow::Ok((stats, last, net_report, interrupted.get()))
            }
        })
        .context("running the thread runtime")??;
    progress.finish();
    Ok(Outcome {
        stats,
        elapsed: last,
        net: net_report,
        interrupted,
    })
}

/// Waits for the first of [`STOP_SIGNALS`] and tells every core to stop (recording
/// which signal it was), then for a second one, which ends the process at once with
/// the shell's status for it (128 + the signal). Returns only when cancelled, or with
/// the error of a failed signalfd read.
async fn stop_on_signal<T>(
    signals: Signals,
    stops: Vec<OneshotSender<()>>,
    interrupted: Rc<Cell<Option<i32>>>,
) -> threadlib::Result<T> {
    let first = signals.wait().await?;
    interrupted.set(Some(first));
    for stop in stops {
        let _ = stop.send(());
    }
    let second = signals.wait().await?;
    std::process::exit(128 + second);
}

/// Draws the progress line until every core is done (if `live`), then joins the cores
/// and merges what they measured: the statistics, the time from `start` to the last
/// connection's end, and the network's counters.
async fn collect(
    handles: Vec<RemoteJoinHandle<threadlib::Result<CoreResult>>>,
    shared: Arc<Shared>,
    start: Instant,
    live: bool,
    line: Progress,
) -> anyhow::Result<(Stats, Duration, Option<NetReport>)> {
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
    Ok((total, last.saturating_duration_since(start), net_report))
}

/// What one core measured: its statistics, when its last connection stopped, and its
/// network's counters.
type CoreResult = (Stats, Instant, Option<NetReport>);

/// Runs the connections of `core` as threads of one scope, all recording into one
/// [`Stats`] (one histogram per core, not per connection), until they end or `stop`
/// comes (which cancels them); returns the statistics, when the last connection
/// stopped, and the network's counters once its connections finished closing.
#[allow(clippy::too_many_arguments)]
async fn run_core<N: ThreadNetwork + NetStats>(
    raw_net: N,
    plan: Plan,
    core: usize,
    addr: SocketAddr,
    start: Instant,
    shared: Arc<Shared>,
    live: bool,
    stop: OneshotReceiver<()>,
) -> threadlib::Result<CoreResult> {
    let net = Rc::new(ThreadNet::new(raw_net.clone()));
    let total = Rc::new(RefCell::new(Stats::new()));
    let connections = threadlib::scope({
        let (total, shared) = (total.clone(), shared.clone());
        move |scope| async move {
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
    });
    let stopped = async move {
        if stop.recv().await.is_err() {
            // The sender is gone without a stop: run to the end.
            loop {
                threadlib::park().await?;
            }
        }
        Ok(())
    };
    let result = threadlib::race(connections, stopped).await;
    shared.cores_done.fetch_add(1, Ordering::Release);
    result?;
    let finished = threadlib::time::now();
    let stats = total.take();
    // Closed connections finish closing before the network stops, if it lives here.
    let _ = threadlib::with_timeout(DRAIN_TIMEOUT, raw_net.drain()).await;
    Ok((stats, finished, raw_net.report()))
}
