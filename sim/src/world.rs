//! One run of the whole system for one seed: the real web server and the real load
//! generator, each on its own instance of the user-space TCP stack (the very network
//! loop `--net user` runs), joined by the simulated link, on one threadlib core under
//! the mock clock, with the simulated document root.
//!
//! The run: the server starts; loadgen groups and raw clients (malformed requests,
//! slowloris, a slow reader) start together while the link misbehaves as the seed
//! says, the server may crash and restart, and files fail. Once the workload is over
//! and the link has healed, a probe must succeed within a bound; the server then stops
//! gracefully, and the system must become quiet: no connections, timers, packets,
//! open files or threads left. The oracles then judge the recorded traffic.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadgen::{run_connection, Stats, ThreadNet};
use threadlib::net::{ListenOptions, Network, Stream};
use threadlib::sync::Promise;
use threadlib::{sleep, with_timeout, Runtime};
use usernet::{NetConfig, NetReport, UserNet};
use webserver::{serve_listener, ServeLimits, ServerContext, Settings, Totals};

use crate::coverage::Coverage;
use crate::files::SimFiles;
use crate::link::{LinkStats, SimDevice, Wire, CLIENT, SERVER};
use crate::oracle::{self, Evidence, GroupRun};
use crate::params::{Group, Params};
use crate::tap::{Records, TapNet};

/// The client stack's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The server stack's address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// How long a graceful shutdown lets requests finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the monitor samples memory.
const MONITOR_EVERY: Duration = Duration::from_millis(100);
/// How long the system may take to become quiet after the server stopped.
const QUIESCE_LIMIT: Duration = Duration::from_secs(900);
/// Time a raw client allows for its whole exchange.
const RAW_PATIENCE: Duration = Duration::from_secs(120);

/// What to record besides the verdict.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Keep the event log.
    pub verbose: bool,
    /// Write a Perfetto (Chrome trace-event JSON) trace here.
    pub trace: Option<PathBuf>,
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the seed drew.
    pub params: Params,
    /// Hash of every event of the run.
    pub hash: u64,
    /// Every oracle violation, one line each (none: the seed passed).
    pub violations: Vec<String>,
    /// The interesting paths the run took.
    pub coverage: Coverage,
    /// The event log (verbose runs).
    pub log: Vec<String>,
    /// Virtual time the run took.
    pub virtual_time: Duration,
    /// What the link did, client to server and back.
    pub link: [LinkStats; 2],
    /// Complete responses clients received.
    pub responses: u64,
}

impl Outcome {
    /// Whether every oracle held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Shared state of a run.
struct World {
    p: Params,
    client: UserNet,
    server: UserNet,
    wire: Arc<Mutex<Wire>>,
    records: Records,
    files: SimFiles,
    violations: RefCell<Vec<String>>,
    /// The server's counters, one entry per incarnation.
    totals: RefCell<Vec<Totals>>,
    /// The server stack's counters from before a restart.
    crashed_stack: RefCell<NetReport>,
    restarted_with_connections: Cell<bool>,
}

impl World {
    fn note(&self, text: &str) {
        self.wire().note(text);
    }

    fn fail(&self, text: String) {
        self.note(&format!("VIOLATION {text}"));
        self.violations.borrow_mut().push(text);
    }

    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn server_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(SERVER_ADDR, self.p.server_port))
    }

    fn max_rto(&self) -> Duration {
        self.p.tcp[0].max_rto.max(self.p.tcp[1].max_rto)
    }
}

/// The server's wall clock: a fixed date plus virtual time (the real clock is never
/// read in a simulation).
fn sim_wall_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000) + threadlib::time::elapsed()
}

/// Runs seed `seed`.
pub fn run(seed: u64, opts: &RunOptions) -> Outcome {
    run_params(Params::draw(seed), opts)
}

/// Runs the world `params` describe.
pub fn run_params(params: Params, opts: &RunOptions) -> Outcome {
    let wire = Wire::new(&params, opts.verbose);
    let mut b = Runtime::builder()
        .cores(1)
        .fd_loop(false)
        .uring(None)
        .blocking_threads(0)
        .mock_clock(true)
        .shuffle_ready(params.schedule_seed);
    if let Some(path) = &opts.trace {
        b = b.trace_file(path);
    }
    let config = |side: usize| NetConfig {
        addr: [CLIENT_ADDR, SERVER_ADDR][side],
        tcp: params.tcp[side].clone(),
        max_connections: 4096,
        max_half_open: params.max_half_open,
        ephemeral_ports: params.client_ports,
        isn_secret: Some(params.secrets[side]),
        steering: None,
    };
    let device = |side: usize| {
        SimDevice::new(
            wire.clone(),
            side,
            params.tcp[side].mtu,
            params.offload[side],
        )
    };
    let (b, client) = UserNet::install_devices(b, config(CLIENT), vec![device(CLIENT)]);
    let (b, server) = UserNet::install_devices(b, config(SERVER), vec![device(SERVER)]);
    let world = Rc::new(World {
        files: SimFiles::new(&params),
        p: params.clone(),
        client,
        server,
        wire: wire.clone(),
        records: Records::default(),
        violations: RefCell::new(Vec::new()),
        totals: RefCell::new(Vec::new()),
        crashed_stack: RefCell::new(NetReport::default()),
        restarted_with_connections: Cell::new(false),
    });
    let ran = b.build().and_then(|rt| {
        let w = world.clone();
        rt.block_on(async move {
            let result = main(w.clone()).await;
            (result, threadlib::time::elapsed())
        })
    });
    let mut violations = world.violations.take();
    let (mut coverage, virtual_time, responses) = match ran {
        Ok((Ok(found), t)) => (found.coverage, t, found.responses),
        Ok((Err(e), t)) => {
            violations.push(e);
            (Coverage::default(), t, 0)
        }
        Err(e) => {
            violations.push(format!("the run failed: {e}"));
            (Coverage::default(), Duration::ZERO, 0)
        }
    };
    coverage.seeds = 1;
    let mut w = wire.lock().unwrap_or_else(|p| p.into_inner());
    Outcome {
        params,
        hash: w.hash(),
        violations,
        coverage,
        log: w.take_log(),
        virtual_time,
        link: w.stats(),
        responses,
    }
}

/// What the main thread found.
struct Found {
    coverage: Coverage,
    responses: u64,
}

/// The run's main thread.
async fn main(w: Rc<World>) -> Result<Found, String> {
    let (stopped, stop) = Promise::<()>::new();
    let server = threadlib::spawn(server_main(w.clone(), stopped));
    let monitoring = Rc::new(Cell::new(true));
    let monitor = threadlib::spawn(monitor(w.clone(), monitoring.clone()));

    let mut groups = workload(&w).await?;
    groups.push(probe(&w).await?);

    w.note("server stops");
    stop.resolve(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => w.fail(format!("server: {e}")),
        Err(e) => w.fail(format!("server thread: {e}")),
    }
    monitoring.set(false);
    let _ = monitor.await;
    quiesce(&w).await;

    let records = w.records.borrow();
    let totals = w.totals.borrow();
    let (found, seen) = oracle::check(&Evidence {
        records: &records,
        files: &w.files,
        server_totals: &totals,
        groups: &groups,
    });
    for v in found {
        w.fail(v);
    }
    // Fold the traffic's shape into the event hash.
    for r in records.iter() {
        let words = [
            r.local_port.into(),
            r.peer_port.into(),
            r.sent.len() as u64,
            r.received.len() as u64,
        ];
        w.wire().hash_words(&words);
    }
    for g in &groups {
        w.wire()
            .hash_words(&[g.stats.requests, g.stats.bytes, g.stats.errors.socket()]);
    }
    let mut stacks = w.crashed_stack.borrow().clone();
    stacks += &w.client.report().map_err(|e| e.to_string())?;
    stacks += &w.server.report().map_err(|e| e.to_string())?;
    let coverage = Coverage::of(&stacks, &seen, w.restarted_with_connections.get());
    Ok(Found {
        coverage,
        responses: seen.responses,
    })
}

/// The server: listens, serves until told to stop; crashes and restarts once if the
/// seed says so (the stack loses every connection, the process its threads).
async fn server_main(w: Rc<World>, stopped: Promise<()>) -> threadlib::Result<()> {
    let tap = TapNet::new(w.server.clone(), "server", w.records.clone());
    let settings = Settings {
        header_timeout: w.p.header_timeout,
        keepalive_timeout: w.p.keepalive_timeout,
        send_timeout: w.p.send_timeout,
        ..Settings::default()
    };
    let limits = ServeLimits {
        max_connections: w.p.max_connections,
        shutdown_timeout: SHUTDOWN_TIMEOUT,
    };
    let files = Rc::new(w.files.clone());
    let mut crash_at = w.p.restart;
    loop {
        let opts = ListenOptions {
            backlog: i32::try_from(w.p.backlog).unwrap_or(i32::MAX),
            ..ListenOptions::default()
        };
        let listener = tap.listen(w.server_addr(), opts).await?;
        let ctx = Rc::new(ServerContext::with_clock(settings, sim_wall_clock));
        let stop = {
            let stopped = stopped.clone();
            async move {
                let _ = stopped.wait().await;
            }
        };
        let serve = {
            let (files, ctx) = (files.clone(), ctx.clone());
            async move {
                serve_listener(listener, files, ctx, limits, stop)
                    .await
                    .map(|_| false)
            }
        };
        let crashed = match crash_at.take() {
            Some(at) => {
                let w2 = w.clone();
                let crash = async move {
                    sleep_until_elapsed(at).await?;
                    // The stack goes first, so the cancelled threads' connections
                    // send nothing: a crash, not a close.
                    let report = w2.server.report()?;
                    w2.restarted_with_connections.set(report.connections > 0);
                    *w2.crashed_stack.borrow_mut() += &report;
                    w2.server.restart()?;
                    w2.note("server crashes (all TCP state lost) and restarts");
                    Ok(true)
                };
                threadlib::race(serve, crash).await?
            }
            None => serve.await?,
        };
        w.totals.borrow_mut().push(ctx.counters.snapshot());
        if !crashed {
            return Ok(());
        }
    }
}

/// Sleeps until virtual time `at` since the run's start.
async fn sleep_until_elapsed(at: Duration) -> threadlib::Result<()> {
    let left = at.saturating_sub(threadlib::time::elapsed());
    sleep(left).await
}

/// Samples both stacks' memory while the workload runs: buffers stay within what
/// their connections may hold, the pools within their bound.
async fn monitor(w: Rc<World>, on: Rc<Cell<bool>>) {
    let mut peak = [0u64; 2];
    while on.get() {
        for (side, net) in [(CLIENT, &w.client), (SERVER, &w.server)] {
            let Ok(r) = net.report() else { continue };
            let tcp = &w.p.tcp[side];
            let per_conn =
                (tcp.send_buffer.next_power_of_two() + tcp.recv_buffer.next_power_of_two()) as u64;
            if r.buffer_bytes > r.connections * per_conn {
                w.fail(format!(
                    "{} stack holds {} buffer bytes for {} connections (at most {per_conn} each)",
                    ["client", "server"][side],
                    r.buffer_bytes,
                    r.connections
                ));
                return;
            }
            if r.pooled_bytes
                > tcpstack::StackConfig::new(SERVER_ADDR, [0; 16]).buffer_pool_bytes as u64
            {
                w.fail(format!(
                    "{} stack pools {} bytes",
                    ["client", "server"][side],
                    r.pooled_bytes
                ));
                return;
            }
            peak[side] = peak[side].max(r.buffer_bytes + r.pooled_bytes);
        }
        if sleep(MONITOR_EVERY).await.is_err() {
            return;
        }
    }
    w.wire().hash_words(&peak);
}

/// Runs every loadgen group and raw client of the seed together; checks that each
/// group finished within its bound.
async fn workload(w: &Rc<World>) -> Result<Vec<GroupRun>, String> {
    let runs: Rc<RefCell<Vec<(usize, GroupRun, Duration)>>> = Rc::default();
    let p = &w.p;
    let mut threads: Vec<
        std::pin::Pin<Box<dyn std::future::Future<Output = threadlib::Result<()>>>>,
    > = Vec::new();
    for (i, g) in p.groups.iter().enumerate() {
        let (w, g, runs) = (w.clone(), g.clone(), runs.clone());
        threads.push(Box::pin(async move {
            let label: Rc<str> = format!("loadgen{i}").into();
            match run_group(&w, label, &g).await {
                Ok(run) => runs.borrow_mut().push((i, run, threadlib::time::elapsed())),
                Err(e) => w.fail(e),
            }
            Ok(())
        }));
    }
    for i in 0..p.bad_requests {
        let w = w.clone();
        threads.push(Box::pin(async move {
            sleep(Duration::from_millis(100 + 700 * i as u64)).await?;
            bad_request(&w, i).await;
            Ok(())
        }));
    }
    for i in 0..p.slowloris {
        let w = w.clone();
        threads.push(Box::pin(async move {
            sleep(Duration::from_millis(300 + 900 * i as u64)).await?;
            slowloris(&w, i).await;
            Ok(())
        }));
    }
    if p.slow_reader {
        let w = w.clone();
        threads.push(Box::pin(async move {
            sleep(Duration::from_millis(200)).await?;
            slow_reader(&w).await;
            Ok(())
        }));
    }
    threadlib::all(threads)
        .await
        .map_err(|e| format!("workload: {e}"))?;
    let mut runs = runs.take();
    runs.sort_by_key(|r| r.0);
    for (i, run, finished) in &runs {
        let g = &p.groups[*i];
        let timeout = loadgen_timeout(g);
        let bound = p.heal + self_bound(run.requests, timeout) + w.max_rto();
        if *finished > bound {
            w.fail(format!(
                "{} finished at {finished:?}, after its bound {bound:?} (link clean from {:?})",
                run.label, p.heal
            ));
        }
    }
    Ok(runs.into_iter().map(|r| r.1).collect())
}

/// The longest a loadgen group of `requests` attempts can take when every attempt
/// fails by its timeout.
fn self_bound(requests: u64, timeout: Duration) -> Duration {
    (timeout + loadgen::connection::CONNECT_BACKOFF)
        * u32::try_from(requests + 1).unwrap_or(u32::MAX)
}

/// The `--timeout` of a group.
fn loadgen_timeout(g: &Group) -> Duration {
    g.args
        .iter()
        .position(|a| a == "--timeout")
        .and_then(|i| g.args.get(i + 1))
        .and_then(|t| threadlib::time::parse_duration(t).ok())
        .unwrap_or(Duration::from_secs(2))
}

/// Runs one loadgen command line's connections, as the loadgen binary runs its
/// threads' (on this core).
async fn run_group(w: &Rc<World>, label: Rc<str>, g: &Group) -> Result<GroupRun, String> {
    let addr = w.server_addr();
    let urls = g.paths.iter().map(|p| format!("http://{addr}{p}"));
    let argv: Vec<String> = std::iter::once("loadgen".to_owned())
        .chain(g.args.iter().cloned())
        .chain(urls)
        .collect();
    use clap::Parser;
    let config = loadgen::Config::try_parse_from(&argv).map_err(|e| format!("{label}: {e}"))?;
    let plan = config.plan().map_err(|e| format!("{label}: {e}"))?;
    w.note(&format!("{label} starts: {}", argv.join(" ")));
    let net = ThreadNet::new(TapNet::new(
        w.client.clone(),
        label.clone(),
        w.records.clone(),
    ));
    let start = threadlib::time::now();
    let stats = Rc::new(RefCell::new(Stats::new()));
    let conns = (0..plan.connections).map(|i| {
        let (net, stats) = (net.clone(), stats.clone());
        let cp = plan.connection(i, addr, start);
        async move {
            let mut rec: &RefCell<Stats> = &stats;
            run_connection(&net, cp, &mut rec, None).await;
            Ok(())
        }
    });
    threadlib::all(conns)
        .await
        .map_err(|e| format!("{label}: {e}"))?;
    let stats = stats.take();
    w.note(&format!(
        "{label} done: {} responses, {} bytes, errors {:?}",
        stats.requests, stats.bytes, stats.errors
    ));
    Ok(GroupRun {
        label,
        requests: plan.total_requests.unwrap_or(0),
        depth: if plan.keep_alive { plan.pipeline } else { 1 },
        stats,
    })
}

/// After the workload and the heal, new requests must succeed: a probe of every file
/// is retried until one run is flawless, within a bound covering what may still hold
/// the server's connection slots (idle keep-alive connections of vanished clients,
/// slow heads, stalled sends) and the retransmission backoff.
async fn probe(w: &Rc<World>) -> Result<GroupRun, String> {
    sleep_until_elapsed(w.p.heal)
        .await
        .map_err(|e| e.to_string())?;
    let p = &w.p;
    let rto = w.max_rto();
    let hold = p
        .keepalive_timeout
        .max(p.header_timeout)
        .max(p.send_timeout);
    let time_wait = p.tcp[CLIENT].time_wait;
    let paths: Vec<String> = (0..p.files.len()).map(|i| format!("/f{i}")).collect();
    let requests = paths.len() * 2;
    let transfer = transfer_bound(p, p.files.iter().copied().max().unwrap_or(0));
    let timeout = rto * 2 + Duration::from_secs(10) + transfer * 2;
    // Each of the two connections makes requests/2 attempts.
    let attempt_time = timeout * u32::try_from(requests / 2 + 1).unwrap_or(u32::MAX);
    let limit = threadlib::time::elapsed()
        + hold
        + time_wait
        + rto * 4
        + Duration::from_secs(30)
        + attempt_time * 2;
    let mut attempt = 0;
    loop {
        let g = Group {
            args: vec![
                "-c".into(),
                "2".into(),
                "-t".into(),
                "1".into(),
                "-n".into(),
                requests.to_string(),
                "--timeout".into(),
                format!("{}ms", timeout.as_millis()),
                // Fresh connections: a reused one may meet the server's idle close.
                "--no-keepalive".into(),
            ],
            paths: paths.clone(),
        };
        let run = run_group(w, format!("probe{attempt}").into(), &g).await?;
        let s = &run.stats;
        if s.requests == requests as u64 && s.errors.socket() == 0 && s.errors.status == 0 {
            return Ok(run);
        }
        if threadlib::time::elapsed() > limit {
            return Err(format!(
                "liveness: no flawless probe by {limit:?} (link clean since {:?}); the last got {} of {requests} responses, errors {:?}",
                p.heal, s.requests, s.errors
            ));
        }
        attempt += 1;
        sleep(Duration::from_millis(500))
            .await
            .map_err(|e| e.to_string())?;
    }
}

/// How long moving `len` bytes from the server to the client can take on the healed
/// link: a window's worth of whole segments per round trip (at least one segment),
/// and the bottleneck's rate.
fn transfer_bound(p: &Params, len: usize) -> Duration {
    let [up, down] = &p.links;
    let delack = p
        .tcp
        .iter()
        .filter_map(|t| t.delayed_ack)
        .max()
        .unwrap_or_default();
    let rtt = up.delay + up.jitter + down.delay + down.jitter + delack;
    let mss = p
        .tcp
        .iter()
        .map(|t| t.mtu)
        .min()
        .unwrap_or(576)
        .saturating_sub(40)
        .max(1);
    let window = p.tcp[CLIENT].recv_buffer.min(p.tcp[SERVER].send_buffer);
    let per_rtt = (window / mss * mss).max(mss);
    let rounds = u32::try_from(len / per_rtt + 1).unwrap_or(u32::MAX);
    let serialize = down.bandwidth.map_or(Duration::ZERO, |b| {
        Duration::from_secs_f64(len as f64 / b as f64)
    });
    rtt * rounds + serialize
}

/// Opens a raw client connection.
async fn raw_connect(w: &World, label: &str) -> Option<<TapNet<UserNet> as Network>::Stream> {
    let net = TapNet::new(w.client.clone(), label, w.records.clone());
    with_timeout(RAW_PATIENCE, net.connect(w.server_addr()))
        .await
        .ok()
}

/// Reads until end of stream, an error or `patience`.
async fn read_to_end(s: &mut impl Stream, patience: Duration) {
    let mut buf = [0u8; 4096];
    let deadline = threadlib::time::now() + patience;
    while let Ok(n) = with_timeout(
        deadline.saturating_duration_since(threadlib::time::now()),
        s.read(&mut buf),
    )
    .await
    {
        if n == 0 {
            return;
        }
    }
}

/// Malformed requests the server must answer with 400.
const BAD_REQUESTS: [&[u8]; 3] = [
    b"GET /f0 HTTP/1.1\r\nHost sim\r\n\r\n",
    b"G\x01T /f0 HTTP/1.1\r\nHost: sim\r\n\r\n",
    b"GET /f0 HTTP/1.1\r\n: no-name\r\nHost: sim\r\n\r\n",
];

/// A client that sends a malformed request and reads the answer.
async fn bad_request(w: &World, i: usize) {
    let Some(mut s) = raw_connect(w, "bad").await else {
        return;
    };
    let req = BAD_REQUESTS[i % BAD_REQUESTS.len()];
    if with_timeout(RAW_PATIENCE, s.write_all(req)).await.is_ok() {
        read_to_end(&mut s, RAW_PATIENCE).await;
    }
}

/// A slowloris client: a request head that grows by one header line at a time and
/// never ends; the server must answer 408 when its header timeout passes.
async fn slowloris(w: &World, i: usize) {
    let Some(mut s) = raw_connect(w, "slowloris").await else {
        return;
    };
    let head = format!("GET /f{} HTTP/1.1\r\nHost: sim\r\n", i % w.p.files.len());
    if with_timeout(RAW_PATIENCE, s.write_all(head.as_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let give_up = threadlib::time::now() + w.p.header_timeout + Duration::from_secs(30);
    let mut buf = [0u8; 1024];
    let mut line = 0;
    while threadlib::time::now() < give_up {
        match with_timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(threadlib::Error::TimedOut) => {
                line += 1;
                let more = format!("X-Slow-{line}: 1\r\n");
                if with_timeout(RAW_PATIENCE, s.write_all(more.as_bytes()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// A client that requests the largest file and reads it slowly, so the server meets a
/// zero window.
async fn slow_reader(w: &World) {
    let Some(mut s) = raw_connect(w, "slowreader").await else {
        return;
    };
    let (largest, _) =
        w.p.files
            .iter()
            .enumerate()
            .max_by_key(|&(i, len)| (len, std::cmp::Reverse(i)))
            .unwrap_or((0, &0));
    let req = format!("GET /f{largest} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n");
    if with_timeout(RAW_PATIENCE, s.write_all(req.as_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let deadline = threadlib::time::now() + RAW_PATIENCE;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(threadlib::time::now());
        match with_timeout(left, s.read(&mut buf)).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        if sleep(Duration::from_millis(20)).await.is_err() {
            return;
        }
    }
}

/// Waits until the system is quiet, then checks that nothing is left: connections in
/// either stack, stack timers, packets on the link, open files, threads, timers.
async fn quiesce(w: &Rc<World>) {
    let deadline = threadlib::time::elapsed() + QUIESCE_LIMIT;
    let count = |net: &UserNet| {
        net.with_loop(|l| l.stack().connection_states().count())
            .unwrap_or(0)
    };
    loop {
        let (c, s, flying) = (count(&w.client), count(&w.server), w.wire().in_flight());
        if c == 0 && s == 0 && flying == 0 {
            break;
        }
        if threadlib::time::elapsed() > deadline {
            let states = |net: &UserNet| {
                net.with_loop(|l| {
                    format!("{:?}", l.stack().connection_states().collect::<Vec<_>>())
                })
                .unwrap_or_default()
            };
            w.fail(format!(
                "not quiet {QUIESCE_LIMIT:?} after the server stopped: client connections {}, server connections {}, {flying} packets in flight",
                states(&w.client),
                states(&w.server)
            ));
            return;
        }
        if sleep(Duration::from_millis(250)).await.is_err() {
            return;
        }
    }
    w.note("quiet");
    for (name, net) in [("client", &w.client), ("server", &w.server)] {
        if let Ok(Some(t)) = net.with_loop(|l| l.stack().poll_timeout()) {
            w.fail(format!(
                "{name} stack still has a timer ({t:?}) with no connections"
            ));
        }
    }
    if w.files.open_files() != 0 {
        w.fail(format!("{} files still open", w.files.open_files()));
    }
    let threads = threadlib::live_threads();
    if threads != 1 {
        w.fail(format!(
            "{} threads alive besides the main thread",
            threads - 1
        ));
    }
    let timers = threadlib::time::pending_timers();
    if timers != 0 {
        w.fail(format!("{timers} timers still armed"));
    }
}
