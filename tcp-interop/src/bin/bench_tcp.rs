//! `make bench-tcp`: a kernel TCP client against our stack over TUN, smoltcp over the
//! same kind of TUN, and a kernel server on loopback. Prints a table of medians and
//! ratios and writes `target/bench/tcp.json` (see docs/ARCHITECTURE.md for the record format).
//!
//! Needs root (it creates network namespaces and TUN devices). Every measurement runs in
//! a fresh namespace; runs of the three targets alternate so drift hits all alike.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use benchkit::{median, Better, Spec};
use clap::Parser;
use serde_json::json;
use tcp_interop::service::{Service, ECHO_PORT, SINK_PORT};
use tcp_interop::{ours, smoltcp_server, workload};
use testnet::{TestNet, STACK_ADDR};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "TCP benchmark: our stack vs smoltcp over TUN vs kernel loopback")]
struct Args {
    /// Write the JSON records here.
    #[arg(long, default_value = "target/bench/tcp.json")]
    json: PathBuf,
    /// Runs per target and benchmark (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Bytes per bulk transfer.
    #[arg(long, default_value_t = 1 << 30)]
    bulk_bytes: u64,
    /// Measured seconds per ping-pong run (after a quarter-second warm-up).
    #[arg(long, default_value_t = 2.0)]
    pingpong_secs: f64,
    /// Run only the benchmarks whose name contains this.
    #[arg(long, default_value = "")]
    filter: String,
    /// Targets to measure (comma-separated: tcpstack, smoltcp, kernel). The table and
    /// JSON need all three.
    #[arg(long, value_delimiter = ',', default_value = "tcpstack,smoltcp,kernel")]
    targets: Vec<String>,
    /// Per-connection socket buffer bytes for both user-space stacks.
    #[arg(long, default_value_t = 1 << 20)]
    buffer: usize,
    /// Open our stack's TUN queue without checksum and segmentation offload (smoltcp
    /// has no offload support and always runs without).
    #[arg(long)]
    no_offload: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ours,
    Smoltcp,
    Kernel,
}

impl Target {
    const ALL: [Target; 3] = [Target::Ours, Target::Smoltcp, Target::Kernel];

    /// The name `--targets` uses.
    fn name(self) -> &'static str {
        match self {
            Target::Ours => "tcpstack",
            Target::Smoltcp => "smoltcp",
            Target::Kernel => "kernel",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Ours => "tcpstack",
            Target::Smoltcp => "smoltcp",
            Target::Kernel => "kernel loopback",
        }
    }
}

/// A server under test, running on its own thread until dropped.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    addr: SocketAddr,
}

impl Running {
    fn finish(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(
    target: Target,
    net: &TestNet,
    service: Service,
    conns: usize,
    buffer: usize,
    offload: bool,
) -> Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let port = match service {
        Service::Sink => SINK_PORT,
        Service::Echo => ECHO_PORT,
    };
    let flag = Arc::clone(&stop);
    let (thread, addr) = match target {
        Target::Kernel => {
            // Loopback inside the namespace, with the same MTU as the TUN device.
            ip(&[
                "-n",
                net.ns(),
                "link",
                "set",
                "lo",
                "mtu",
                &net.mtu().to_string(),
            ])?;
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = net.spawn("kernel-server", move || -> Result<()> {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
                tx.send(()).ok();
                match service {
                    Service::Sink => workload::kernel_sink_server(listener, &flag)?,
                    Service::Echo => workload::kernel_echo_server(listener, &flag)?,
                }
                Ok(())
            });
            rx.recv_timeout(Duration::from_secs(5))
                .context("kernel server did not start")?;
            (thread, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        }
        Target::Smoltcp => {
            let tun = net.open_tun()?;
            let config = smoltcp_server::SmoltcpServerConfig {
                port,
                service,
                sockets: conns,
                buffer,
            };
            let thread = std::thread::spawn(move || -> Result<()> {
                smoltcp_server::run(tun, config, &flag)?;
                Ok(())
            });
            (thread, SocketAddr::V4(SocketAddrV4::new(STACK_ADDR, port)))
        }
        Target::Ours => {
            let tun = net.open_tun_with(offload)?;
            let config = ours::ServerConfig {
                port,
                service,
                buffer,
            };
            let thread = std::thread::spawn(move || -> Result<()> {
                ours::run_server(tun, config, &flag)?;
                Ok(())
            });
            (thread, SocketAddr::V4(SocketAddrV4::new(STACK_ADDR, port)))
        }
    };
    Ok(Running {
        stop,
        thread: Some(thread),
        addr,
    })
}

fn ip(args: &[&str]) -> Result<()> {
    let status = Command::new("ip").args(args).status()?;
    if !status.success() {
        bail!("ip {args:?} failed");
    }
    Ok(())
}

/// One bulk transfer; Gbit/s.
fn bulk_once(target: Target, mtu: u32, args: &Args) -> Result<f64> {
    let net = TestNet::create("bench", mtu)?;
    let server = start(
        target,
        &net,
        Service::Sink,
        1,
        args.buffer,
        !args.no_offload,
    )?;
    let (addr, bytes) = (server.addr, args.bulk_bytes);
    let elapsed = net
        .spawn("bulk-client", move || workload::bulk_send(addr, bytes))
        .join()
        .map_err(|_| anyhow::anyhow!("bulk client panicked"))?
        .with_context(|| format!("bulk transfer to {}", target.label()))?;
    server.finish()?;
    Ok(bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9)
}

/// One ping-pong run; (round trips/s, p99 in µs).
fn pingpong_once(target: Target, conns: usize, args: &Args) -> Result<(f64, f64)> {
    let net = TestNet::create("bench", 1500)?;
    let server = start(
        target,
        &net,
        Service::Echo,
        conns,
        64 * 1024,
        !args.no_offload,
    )?;
    let addr = server.addr;
    let measure = Duration::from_secs_f64(args.pingpong_secs);
    let pp = net
        .spawn("pingpong-client", move || {
            workload::pingpong(addr, conns, Duration::from_millis(250), measure)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("ping-pong client panicked"))?
        .with_context(|| format!("ping-pong against {}", target.label()))?;
    server.finish()?;
    Ok((pp.rate(), pp.latency_us.value_at_quantile(0.99) as f64))
}

/// Attempts per measurement before the benchmark gives up.
const ATTEMPTS: u32 = 3;

/// Runs `measure` until it succeeds, at most [`ATTEMPTS`] times, counting failures in
/// `failed` (smoltcp 0.12.0 can panic mid-transfer: smoltcp-rs/smoltcp#1048).
fn attempt<T>(what: &str, failed: &mut u32, mut measure: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        match measure() {
            Ok(v) => return Ok(v),
            Err(e) => {
                *failed += 1;
                tries += 1;
                eprintln!("{what}: attempt {tries} failed: {e:#}");
                if tries == ATTEMPTS {
                    return Err(e.context(format!("{what}: {ATTEMPTS} attempts failed")));
                }
            }
        }
    }
}

/// `{"target": failures}` for the targets that had any.
fn failures(f: &[(Target, u32)]) -> serde_json::Value {
    f.iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| (t.label().to_owned(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Medians per target of one figure.
struct Figure {
    spec: Spec,
    values: Vec<(Target, f64)>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !testnet::privileged("bench_tcp") {
        bail!("bench_tcp needs root, /dev/net/tun and iproute2");
    }
    let targets: Vec<Target> = Target::ALL
        .into_iter()
        .filter(|t| args.targets.iter().any(|n| n == t.name()))
        .collect();
    let mut figures = Vec::new();

    for (bench, mtu) in [("bulk_mtu1500", 1500u32), ("bulk_mtu65535", 65535)] {
        if !bench.contains(&args.filter) {
            continue;
        }
        let mut runs: Vec<(Target, Vec<f64>)> = targets.iter().map(|&t| (t, vec![])).collect();
        let mut failed: Vec<(Target, u32)> = targets.iter().map(|&t| (t, 0)).collect();
        for run in 0..args.runs {
            for ((t, v), (_, f)) in runs.iter_mut().zip(&mut failed) {
                let what = format!("{bench} {}", t.label());
                let g = attempt(&what, f, || bulk_once(*t, mtu, &args))?;
                eprintln!("{bench} run {run} {:>16}: {g:.3} Gbit/s", t.label());
                v.push(g);
            }
        }
        figures.push(Figure {
            spec: Spec {
                bench,
                metric: "gbit_per_s",
                better: Better::Higher,
                params: json!({"bytes": args.bulk_bytes, "mtu": mtu, "buffer": args.buffer,
                               "tcpstack_tun_offload": !args.no_offload,
                               "failed_attempts": failures(&failed)}),
            },
            values: runs.into_iter().map(|(t, v)| (t, median(&v))).collect(),
        });
    }

    for (bench, conns) in [("pingpong_1conn", 1usize), ("pingpong_64conn", 64)] {
        if !bench.contains(&args.filter) {
            continue;
        }
        let mut rates: Vec<(Target, Vec<f64>)> = targets.iter().map(|&t| (t, vec![])).collect();
        let mut p99s: Vec<(Target, Vec<f64>)> = targets.iter().map(|&t| (t, vec![])).collect();
        let mut failed: Vec<(Target, u32)> = targets.iter().map(|&t| (t, 0)).collect();
        for run in 0..args.runs {
            for (((t, r), (_, p)), (_, f)) in rates.iter_mut().zip(&mut p99s).zip(&mut failed) {
                let what = format!("{bench} {}", t.label());
                let (rate, p99) = attempt(&what, f, || pingpong_once(*t, conns, &args))?;
                eprintln!(
                    "{bench} run {run} {:>16}: {rate:.0} round trips/s, p99 {p99:.0} us",
                    t.label()
                );
                r.push(rate);
                p.push(p99);
            }
        }
        let params = json!({"connections": conns, "message_bytes": workload::PINGPONG_MSG,
                            "seconds": args.pingpong_secs, "mtu": 1500,
                            "tcpstack_tun_offload": !args.no_offload,
                            "failed_attempts": failures(&failed)});
        figures.push(Figure {
            spec: Spec {
                bench,
                metric: "round_trips_per_s",
                better: Better::Higher,
                params: params.clone(),
            },
            values: rates.into_iter().map(|(t, v)| (t, median(&v))).collect(),
        });
        figures.push(Figure {
            spec: Spec {
                bench,
                metric: "p99_us",
                better: Better::Lower,
                params,
            },
            values: p99s.into_iter().map(|(t, v)| (t, median(&v))).collect(),
        });
    }

    let mut records = Vec::new();
    println!(
        "\n{:<16} {:<18} {:>12} {:>12} {:>7} {:>16} {:>7}",
        "bench", "metric", "tcpstack", "smoltcp", "ratio", "kernel loopback", "ratio"
    );
    for f in &figures {
        let value = |t| f.values.iter().find(|(x, _)| *x == t).map(|&(_, v)| v);
        let ours = value(Target::Ours);
        let cell = |v: Option<f64>, width: usize| match v {
            Some(v) => format!(" {v:>width$.3}"),
            None => format!(" {:>width$}", "-"),
        };
        let mut line = format!(
            "{:<16} {:<18}{}",
            f.spec.bench,
            f.spec.metric,
            cell(ours, 12)
        );
        for (anchor, width) in [(Target::Smoltcp, 12), (Target::Kernel, 16)] {
            let a = value(anchor);
            let ratio = ours.zip(a).map(|(o, a)| o / a);
            line += &(cell(a, width) + &cell(ratio, 7));
            let (Some(ours), Some(a)) = (ours, a) else {
                continue;
            };
            records.push(f.spec.record(ours, anchor.label(), a, args.runs));
        }
        println!("{line}");
    }
    benchkit::write(&args.json, &records)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("\nwrote {}", args.json.display());
    Ok(())
}
