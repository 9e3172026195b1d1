//! The server on threadlib: one scheduler per core, each with its own listener for
//! every address served (an `SO_REUSEPORT` socket on kernel TCP, the core's own stack
//! on the user-space network), accept loops and connection threads; graceful shutdown on SIGINT/SIGTERM;
//! the network's counters on SIGUSR1.
//!
//! Everything here is generic over [`threadlib::net::Network`], so another network
//! backend plugs in without touching this code.

mod dir_files;
mod log_sink;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;
use threadlib::fs::Dir;
use threadlib::net::{ListenOptions, Listener, Network, ReusePort};
use threadlib::signal::Signals;
use threadlib::sync::remote::{oneshot, OneshotReceiver};
use threadlib::Error;
use usernet::cli::NetStats;
use usernet::NetReport;
use webserver::{serve_listeners, ContentOptions, ServeLimits, ServerContext, Settings, Totals};

pub use log_sink::Sink;

use dir_files::DirFiles;
use log_sink::{LogWriter, SharedLog, FLUSH_EVERY};

/// Pending connections each listener's kernel queue holds.
const BACKLOG: i32 = 4096;
/// Bytes a kernel socket may hold unsent beyond what the peer's window lets out
/// (`TCP_NOTSENT_LOWAT`). Without it, one `sendfile` of a large file to a client that
/// reads slowly queues a whole send buffer (megabytes, as thousands of small buffers)
/// before the core can serve anyone else; with it, each send is short, every
/// connection gets its turn, and a slow reader costs little kernel memory. Fast
/// clients lose nothing: the socket is refilled whenever half of this has gone out.
const UNSENT_LIMIT: u32 = 32 * 1024;
/// Longest wait, on shutdown, for closed connections to finish closing on a network
/// that lives in this process (their FINs acknowledged).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The signals the server handles; block them before starting the runtime.
pub const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1];

/// What one core needs to serve: its own root capability and access-log sink.
pub struct CoreParts {
    /// The document root, opened for this core.
    pub dir: Dir,
    /// The access log, if enabled.
    pub log: Option<Sink>,
}

/// The server as configured on the command line.
pub struct Plan {
    /// Addresses to listen on, each on every core (port 0: any free port, the same on
    /// every core).
    pub listen: Vec<SocketAddr>,
    /// Print the network's counters this often (if it keeps any).
    pub stats_every: Option<Duration>,
    /// The document root, for the startup message.
    pub root: PathBuf,
    /// Connection settings.
    pub settings: Settings,
    /// How files are represented.
    pub content: ContentOptions,
    /// Most connections open at once on each core.
    pub max_connections_per_core: usize,
    /// Time allowed for in-flight requests on shutdown.
    pub shutdown_timeout: Duration,
    /// One entry per core.
    pub cores: Vec<CoreParts>,
}

/// What the server did, summed over its cores.
#[derive(Debug, Default)]
pub struct Report {
    /// The traffic counters.
    pub totals: Totals,
    /// Connections each core accepted, in core order: how evenly the kernel spread
    /// them over the cores' listeners.
    pub connections_per_core: Vec<u64>,
    /// Connections still busy when the shutdown deadline passed, then cancelled.
    pub cancelled: u64,
    /// The network's counters summed over the cores, if it keeps any.
    pub net: Option<NetReport>,
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully. Must run as
/// the main thread of a runtime with `plan.cores.len()` cores, with both signals
/// blocked (see [`threadlib::signal::block`]).
pub async fn serve<N>(net: N, plan: Plan) -> anyhow::Result<Report>
where
    N: Network + NetStats + Send + Sync,
    N::Listener: 'static,
    N::Stream: 'static,
{
    let Plan {
        listen,
        stats_every,
        root,
        settings,
        content,
        max_connections_per_core,
        shutdown_timeout,
        cores,
    } = plan;
    let signals = Signals::new(&SIGNALS).context("signalfd")?;
    let opts = |reuse_port| ListenOptions {
        backlog: BACKLOG,
        reuse_port,
        unsent_limit: Some(UNSENT_LIMIT),
    };
    // Core 0 binds first, so that a port 0 becomes a port the other cores share. Its
    // first listener on a port binds alone, so that a port another server shares is in
    // use rather than shared; its further ones on that port (0.0.0.0 and [::], say)
    // join that group.
    let mut first = Vec::with_capacity(listen.len());
    let mut founded = Vec::new();
    for &addr in &listen {
        let port = addr.port();
        let mode = if port != 0 && founded.contains(&port) {
            ReusePort::Join
        } else {
            ReusePort::First
        };
        let l = net
            .listen(addr, opts(mode))
            .await
            .with_context(|| format!("listening on {addr}"))?;
        founded.push(port);
        first.push(l);
    }
    let addrs = first
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .context("listener address")?;
    let core_cfg = CoreConfig {
        settings,
        content,
        limit: max_connections_per_core,
        shutdown_timeout,
    };

    let ncores = cores.len();
    let mut parts = cores.into_iter();
    let core0 = parts.next().context("no cores")?;
    let mut stops = Vec::new();
    let mut remotes = Vec::new();
    for (core, part) in (1..).zip(parts) {
        let (stop_tx, stop_rx) = oneshot::<()>();
        let (ready_tx, ready_rx) = oneshot::<Result<(), String>>();
        let net = net.clone();
        let core_cfg = core_cfg.clone();
        let addrs = addrs.clone();
        let handle = threadlib::spawn_on(core, move || async move {
            let mut listeners = Vec::with_capacity(addrs.len());
            for addr in addrs {
                match net.listen(addr, opts(ReusePort::Join)).await {
                    Ok(l) => listeners.push(l),
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("listening on {addr}: {e}")));
                        return Ok(CoreReport::default());
                    }
                }
            }
            let _ = ready_tx.send(Ok(()));
            serve_core(core, &net, listeners, part, core_cfg, stop_rx).await
        })
        .with_context(|| format!("starting core {core}"))?;
        match ready_rx.recv().await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => anyhow::bail!("core {core}: {e}"),
            Err(e) => anyhow::bail!("core {core} did not start: {e}"),
        }
        stops.push(stop_tx);
        remotes.push(handle);
    }
    let (stop_tx, stop_rx) = oneshot::<()>();
    stops.push(stop_tx);
    let net0 = net.clone();
    let local =
        threadlib::spawn(
            async move { serve_core(0, &net0, first, core0, core_cfg, stop_rx).await },
        );

    let urls: Vec<String> = addrs.iter().map(|a| format!("http://{a}/")).collect();
    println!("Serving {} at {}", root.display(), urls.join(", "));
    flush_stdout();

    let signal = loop {
        let waited = match stats_every {
            Some(every) => threadlib::with_timeout(every, signals.wait()).await,
            None => signals.wait().await,
        };
        match waited {
            Ok(libc::SIGUSR1) | Err(Error::TimedOut) => {
                if let Some(r) = net_report(&net, ncores).await {
                    println!("User-space network:\n{r}");
                    flush_stdout();
                }
            }
            Ok(signal) => break signal,
            Err(e) => return Err(e).context("waiting for signals"),
        }
    };
    println!(
        "Received {}: no longer accepting; finishing in-flight requests (up to {:?})",
        threadlib::signal::name(signal),
        shutdown_timeout
    );
    flush_stdout();
    for stop in stops {
        let _ = stop.send(());
    }
    // The cores finish their shutdown; a second SIGINT or SIGTERM meanwhile ends the
    // process (SIGUSR1 still prints the counters).
    let again = async move {
        loop {
            match signals.wait().await? {
                libc::SIGUSR1 => {
                    if let Some(r) = net_report(&net, ncores).await {
                        println!("User-space network:\n{r}");
                        flush_stdout();
                    }
                }
                signal => {
                    println!(
                        "Received {} again: exiting now",
                        threadlib::signal::name(signal)
                    );
                    flush_stdout();
                    std::process::exit(128 + signal);
                }
            }
        }
    };
    threadlib::race(async move { Ok(gather(local, remotes).await) }, again)
        .await
        .context("waiting for the cores")?
}

/// Waits for every core's report and sums them.
async fn gather(
    local: threadlib::JoinHandle<anyhow::Result<CoreReport>>,
    remotes: Vec<threadlib::RemoteJoinHandle<anyhow::Result<CoreReport>>>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut add = |r: CoreReport| {
        report.totals += r.totals;
        report.connections_per_core.push(r.totals.connections);
        report.cancelled += r.cancelled;
        if let Some(n) = &r.net {
            *report.net.get_or_insert_with(NetReport::default) += n;
        }
    };
    add(local.await.map_err(anyhow::Error::from).and_then(|r| r)?);
    for (core, h) in (1..).zip(remotes) {
        let r = h.join().await.with_context(|| format!("core {core}"))?;
        add(r?);
    }
    Ok(report)
}

/// The network's counters summed over every core (each core reads its own).
async fn net_report<N: Network + NetStats + Send>(net: &N, cores: usize) -> Option<NetReport> {
    let mut sum = net.report()?;
    for core in 1..cores {
        let n = net.clone();
        let Ok(h) = threadlib::spawn_on(core, move || async move { n.report() }) else {
            continue;
        };
        if let Ok(Some(r)) = h.join().await {
            sum += &r;
        }
    }
    Some(sum)
}

fn flush_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

#[derive(Debug, Clone)]
struct CoreConfig {
    settings: Settings,
    content: ContentOptions,
    limit: usize,
    shutdown_timeout: Duration,
}

#[derive(Debug, Default)]
struct CoreReport {
    totals: Totals,
    cancelled: u64,
    net: Option<NetReport>,
}

/// Serves `listeners` on the current core until `stop` fires (or its sender is gone),
/// then shuts down gracefully ([`webserver::serve_listeners`]), flushes the access log,
/// and waits for the closed connections to finish closing.
async fn serve_core<N, L>(
    core: usize,
    net: &N,
    listeners: Vec<L>,
    parts: CoreParts,
    cfg: CoreConfig,
    stop: OneshotReceiver<()>,
) -> anyhow::Result<CoreReport>
where
    N: Network + NetStats,
    L: Listener + 'static,
    L::Stream: 'static,
{
    let log = parts.log.map(LogWriter::new);
    let mut ctx = ServerContext::new(cfg.settings).with_content(cfg.content);
    if let Some(log) = &log {
        ctx = ctx.with_access_log(Box::new(SharedLog(log.clone())));
        let log = log.clone();
        // Detached: cancelled when the runtime stops.
        drop(threadlib::spawn(async move {
            while threadlib::sleep(FLUSH_EVERY).await.is_ok() {
                log.flush();
            }
        }));
    }
    let ctx = Rc::new(ctx);
    let files = Rc::new(DirFiles::new(parts.dir));
    let limits = ServeLimits {
        max_connections: cfg.limit,
        shutdown_timeout: cfg.shutdown_timeout,
    };
    let stopped = async move {
        let _ = stop.recv().await;
    };
    let cancelled = serve_listeners(listeners, files, ctx.clone(), limits, stopped)
        .await
        .with_context(|| format!("core {core}"))?;
    if let Some(log) = &log {
        log.flush();
    }
    // Closed connections finish closing (their FINs acknowledged) before the network
    // stops, if it lives in this process.
    let _ = threadlib::with_timeout(DRAIN_TIMEOUT, net.drain()).await;
    Ok(CoreReport {
        totals: ctx.counters.snapshot(),
        cancelled,
        net: net.report(),
    })
}
