//! Everything a seed decides, drawn up front: the link's faults, the stacks' and the
//! server's knobs, the files and their faults, the workload, and the scheduler's
//! tie-breaks. Swarm testing (Groce et al.): each seed turns each kind of fault on or
//! off and draws its own rates, so that no single mix hides a bug that needs another.
//! Knobs are shrunk the way FoundationDB's BUGGIFY shrinks them, to reach rare paths
//! (tiny buffers, small MSS, short timeouts) in short runs.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// A generator for one stream of decisions of a seed; different streams of one seed
/// are independent, so adding a decision to one stream leaves the others as they were.
pub fn rng(seed: u64, stream: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The streams of a seed.
pub mod stream {
    /// The link's faults.
    pub const LINK: u64 = 1;
    /// The link's per-packet decisions.
    pub const LINK_PACKETS: u64 = 2;
    /// Stack and server knobs, ISN secrets.
    pub const KNOBS: u64 = 3;
    /// Files and their faults.
    pub const FILES: u64 = 4;
    /// The workload.
    pub const WORKLOAD: u64 = 5;
    /// The scheduler's tie-breaks.
    pub const SCHEDULE: u64 = 6;
}

/// One direction of the link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkParams {
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability a packet's bytes are corrupted (one bit flipped).
    pub corrupt: f64,
    /// Probability a packet is held back (delivered after later ones).
    pub reorder: f64,
    /// Propagation delay.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Bottleneck rate in bytes per second (`None`: unlimited).
    pub bandwidth: Option<u64>,
    /// Bytes the bottleneck queue holds; beyond it packets are tail-dropped.
    pub queue_bytes: usize,
}

/// Which way a partition cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Client to server only.
    ToServer,
    /// Server to client only.
    ToClient,
    /// Both ways.
    Both,
}

/// A partition of the link during `[start, end)` (virtual time from the run's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// When it starts.
    pub start: Duration,
    /// When it heals.
    pub end: Duration,
    /// Which way it cuts.
    pub cut: Cut,
}

/// A fault of one file, at a virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFault {
    /// Reads and opens of the file fail with EIO during `[at, at + for)`.
    Eio {
        /// Index of the file.
        file: usize,
        /// When it starts.
        at: Duration,
        /// How long it lasts.
        lasts: Duration,
    },
    /// The file is replaced by new content (a new inode; open handles keep the old).
    Replace {
        /// Index of the file.
        file: usize,
        /// When.
        at: Duration,
    },
    /// The file is truncated in place to `len` bytes (open handles see it).
    Truncate {
        /// Index of the file.
        file: usize,
        /// When.
        at: Duration,
        /// The new length.
        len: usize,
    },
}

/// One group of loadgen connections: a real loadgen command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// loadgen's arguments (without the program name and URLs).
    pub args: Vec<String>,
    /// The paths requested, in rotation.
    pub paths: Vec<String>,
}

/// Everything one seed decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The master seed.
    pub seed: u64,
    /// Client to server, server to client.
    pub links: [LinkParams; 2],
    /// Partitions, all healed before [`Params::heal`].
    pub partitions: Vec<Partition>,
    /// After this time the link is clean: no loss, duplication, corruption or
    /// partition (delay, jitter and the bottleneck stay).
    pub heal: Duration,
    /// Whether each stack's device does transmit offload (client, server).
    pub offload: [bool; 2],
    /// TCP parameters of the client's and the server's stacks.
    pub tcp: [tcpstack::TcpConfig; 2],
    /// ISN secrets of the client's and the server's stacks.
    pub secrets: [[u8; 16]; 2],
    /// The client stack's ephemeral ports.
    pub client_ports: (u16, u16),
    /// The server's port.
    pub server_port: u16,
    /// The server's listen backlog.
    pub backlog: usize,
    /// Half-open connections the server's stack keeps before answering with SYN
    /// cookies.
    pub max_half_open: usize,
    /// The server's header timeout (408).
    pub header_timeout: Duration,
    /// The server's keep-alive timeout.
    pub keepalive_timeout: Duration,
    /// The server's send timeout.
    pub send_timeout: Duration,
    /// The server's connection limit.
    pub max_connections: usize,
    /// File sizes (file `i` is `/f{i}`).
    pub files: Vec<usize>,
    /// Whether reads return at most a few bytes at a time (short reads).
    pub short_reads: bool,
    /// File faults.
    pub file_faults: Vec<FileFault>,
    /// A server crash and restart (all its TCP state lost) at this time.
    pub restart: Option<Duration>,
    /// loadgen groups, started together.
    pub groups: Vec<Group>,
    /// Clients that send a malformed request.
    pub bad_requests: usize,
    /// Slowloris clients: a request head that never completes.
    pub slowloris: usize,
    /// A client that requests a large file and reads it slowly (zero windows).
    pub slow_reader: bool,
    /// Seed of the scheduler's tie-breaks.
    pub schedule_seed: u64,
}

/// Virtual time by which the workload must have ended (it is bounded by requests and
/// timeouts, long before).
pub const RUN_LIMIT: Duration = Duration::from_secs(1800);

impl Params {
    /// What `seed` decides.
    pub fn draw(seed: u64) -> Params {
        let mut l = rng(seed, stream::LINK);
        let links = [draw_link(&mut l), draw_link(&mut l)];
        let mut partitions = Vec::new();
        if l.random_bool(0.3) {
            for _ in 0..l.random_range(1..=2) {
                let start = Duration::from_millis(l.random_range(0..3000));
                let end = start + Duration::from_millis(l.random_range(100..8000));
                let cut = match l.random_range(0..3) {
                    0 => Cut::ToServer,
                    1 => Cut::ToClient,
                    _ => Cut::Both,
                };
                partitions.push(Partition { start, end, cut });
            }
        }
        let heal = partitions
            .iter()
            .map(|p| p.end)
            .max()
            .unwrap_or_default()
            .max(Duration::from_secs(l.random_range(5..30)));

        let mut k = rng(seed, stream::KNOBS);
        let offload = [k.random_bool(0.5), k.random_bool(0.5)];
        let tcp = [draw_tcp(&mut k), draw_tcp(&mut k)];
        let mut secrets = [[0u8; 16]; 2];
        for s in &mut secrets {
            k.fill(&mut s[..]);
        }
        let low = k.random_range(1024..60_000);
        let client_ports = (low, low + k.random_range(100..=5000).min(65_535 - low));
        let server_port = k.random_range(1..1024);
        let shrink = k.random_bool(0.3);
        let backlog = if shrink { k.random_range(1..=4) } else { 128 };
        let max_half_open = if shrink { k.random_range(1..=3) } else { 256 };
        let header_timeout = if shrink {
            Duration::from_millis(k.random_range(200..2000))
        } else {
            Duration::from_secs(10)
        };
        let keepalive_timeout = if k.random_bool(0.3) {
            Duration::from_millis(k.random_range(300..3000))
        } else {
            Duration::from_secs(75)
        };
        let send_timeout = if shrink {
            Duration::from_secs(k.random_range(5..20))
        } else {
            Duration::from_secs(30)
        };
        let max_connections = if shrink { k.random_range(2..=16) } else { 1000 };

        let mut f = rng(seed, stream::FILES);
        let files: Vec<usize> = (0..f.random_range(2..=5))
            .map(|_| match f.random_range(0..4) {
                0 => f.random_range(0..100),
                1 => f.random_range(100..20_000),
                2 => f.random_range(20_000..120_000),
                _ => f.random_range(120_000..400_000),
            })
            .collect();
        let short_reads = f.random_bool(0.2);
        let mut file_faults = Vec::new();
        if f.random_bool(0.3) {
            for _ in 0..f.random_range(1..=2) {
                let file = f.random_range(0..files.len());
                let at = Duration::from_millis(f.random_range(0..5000));
                file_faults.push(match f.random_range(0..3) {
                    0 => FileFault::Eio {
                        file,
                        at,
                        lasts: Duration::from_millis(f.random_range(10..2000)),
                    },
                    1 => FileFault::Replace { file, at },
                    _ => FileFault::Truncate {
                        file,
                        at,
                        len: f.random_range(0..=files[file]),
                    },
                });
            }
        }

        let mut w = rng(seed, stream::WORKLOAD);
        let restart = w
            .random_bool(0.15)
            .then(|| Duration::from_millis(w.random_range(200..5000)));
        let groups = (0..w.random_range(1..=3))
            .map(|_| draw_group(&mut w, &files))
            .collect();
        let bad_requests = if w.random_bool(0.3) {
            w.random_range(1..=3)
        } else {
            0
        };
        let slowloris = if w.random_bool(0.2) {
            w.random_range(1..=2)
        } else {
            0
        };
        let slow_reader = w.random_bool(0.2);
        Params {
            seed,
            links,
            partitions,
            heal,
            offload,
            tcp,
            secrets,
            client_ports,
            server_port,
            backlog,
            max_half_open,
            header_timeout,
            keepalive_timeout,
            send_timeout,
            max_connections,
            files,
            short_reads,
            file_faults,
            restart,
            groups,
            bad_requests,
            slowloris,
            slow_reader,
            schedule_seed: rng(seed, stream::SCHEDULE).random(),
        }
    }
}

fn draw_link(r: &mut Pcg64Mcg) -> LinkParams {
    let on = |r: &mut Pcg64Mcg, p: f64| r.random_bool(p);
    let loss = if on(r, 0.5) {
        r.random_range(0.0..0.30)
    } else {
        0.0
    };
    let duplicate = if on(r, 0.3) {
        r.random_range(0.0..0.05)
    } else {
        0.0
    };
    let corrupt = if on(r, 0.3) {
        r.random_range(0.0..0.02)
    } else {
        0.0
    };
    let reorder = if on(r, 0.4) {
        r.random_range(0.0..0.10)
    } else {
        0.0
    };
    let delay = Duration::from_micros(r.random_range(50..40_000));
    let jitter = if on(r, 0.5) {
        Duration::from_micros(r.random_range(0..5_000))
    } else {
        Duration::ZERO
    };
    let bandwidth = on(r, 0.5).then(|| r.random_range(100_000..50_000_000));
    LinkParams {
        loss,
        duplicate,
        corrupt,
        reorder,
        delay,
        jitter,
        bandwidth,
        // At least two of the largest packets: a queue that cannot hold one is a black hole
        // no TCP without path MTU probing survives.
        queue_bytes: r.random_range(20_000..500_000),
    }
}

fn draw_tcp(r: &mut Pcg64Mcg) -> tcpstack::TcpConfig {
    let shrink = r.random_bool(0.3);
    let buffer = |r: &mut Pcg64Mcg| {
        if shrink {
            r.random_range(1500..16_384)
        } else {
            [65_536, 262_144][r.random_range(0..2)]
        }
    };
    tcpstack::TcpConfig {
        mtu: [576, 1280, 1500, 1500, 9000][r.random_range(0..5)],
        send_buffer: buffer(r),
        recv_buffer: buffer(r),
        window_scaling: r.random_bool(0.9),
        timestamps: r.random_bool(0.8),
        sack: r.random_bool(0.8),
        min_rto: if shrink {
            Duration::from_millis(r.random_range(10..200))
        } else {
            Duration::from_millis(200)
        },
        max_rto: if shrink {
            Duration::from_secs(r.random_range(1..10))
        } else {
            Duration::from_secs(60)
        },
        max_retries: if shrink { r.random_range(3..8) } else { 15 },
        delayed_ack: r
            .random_bool(0.8)
            .then(|| Duration::from_millis(r.random_range(1..200))),
        nodelay: true,
        // Short enough that a run's TIME-WAIT connections are gone at the end.
        time_wait: Duration::from_secs(r.random_range(1..30)),
        fin_wait2_timeout: Duration::from_secs(30),
        ..tcpstack::TcpConfig::default()
    }
}

fn draw_group(r: &mut Pcg64Mcg, files: &[usize]) -> Group {
    let conns = r.random_range(1..=6);
    let requests = r.random_range(conns..=conns * 8);
    let mut args = vec![
        "-c".to_owned(),
        conns.to_string(),
        "-t".to_owned(),
        "1".to_owned(),
        "-n".to_owned(),
        requests.to_string(),
        "--timeout".to_owned(),
        format!("{}ms", r.random_range(500..5000)),
    ];
    match r.random_range(0..8) {
        0 => args.extend(["--pipeline".to_owned(), r.random_range(2..=4).to_string()]),
        1 => args.push("--no-keepalive".to_owned()),
        2 => args.extend(["--method".to_owned(), "HEAD".to_owned()]),
        3 => {
            let a = r.random_range(0..1000);
            let range = if r.random_bool(0.5) {
                format!("bytes={a}-{}", a + r.random_range(0..5000))
            } else {
                format!("bytes=-{}", r.random_range(1..3000))
            };
            args.extend(["-H".to_owned(), format!("Range: {range}")]);
        }
        4 => args.extend([
            "-H".to_owned(),
            "If-Modified-Since: Sat, 01 Jan 2050 00:00:00 GMT".to_owned(),
        ]),
        _ => {}
    }
    let mut paths: Vec<String> = (0..r.random_range(1..=3))
        .map(|_| format!("/f{}", r.random_range(0..files.len())))
        .collect();
    if r.random_bool(0.1) {
        paths.push("/missing".to_owned());
    }
    Group { args, paths }
}

impl fmt::Display for Params {
    /// The drawn parameters, for a failure report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, l) in ["client->server", "server->client"].iter().zip(&self.links) {
            writeln!(
                f,
                "  link {name}: loss {:.1}% dup {:.1}% corrupt {:.2}% reorder {:.1}% delay {:?} jitter {:?} bandwidth {} queue {} B",
                l.loss * 100.0,
                l.duplicate * 100.0,
                l.corrupt * 100.0,
                l.reorder * 100.0,
                l.delay,
                l.jitter,
                l.bandwidth.map_or("unlimited".to_owned(), |b| format!("{b} B/s")),
                l.queue_bytes
            )?;
        }
        writeln!(
            f,
            "  partitions: {:?}; clean from {:?}",
            self.partitions, self.heal
        )?;
        for (name, t) in ["client", "server"].iter().zip(&self.tcp) {
            writeln!(
                f,
                "  {name} tcp: mtu {} buffers {}/{} ws {} ts {} sack {} min_rto {:?} max_rto {:?} retries {} delack {:?} time_wait {:?}",
                t.mtu,
                t.send_buffer,
                t.recv_buffer,
                t.window_scaling,
                t.timestamps,
                t.sack,
                t.min_rto,
                t.max_rto,
                t.max_retries,
                t.delayed_ack,
                t.time_wait
            )?;
        }
        writeln!(
            f,
            "  offload client/server {:?}; client ports {:?}; server port {} backlog {} half-open {} header_timeout {:?} keepalive {:?} send_timeout {:?} max_connections {}",
            self.offload,
            self.client_ports,
            self.server_port,
            self.backlog,
            self.max_half_open,
            self.header_timeout,
            self.keepalive_timeout,
            self.send_timeout,
            self.max_connections
        )?;
        writeln!(
            f,
            "  files {:?} short_reads {} faults {:?}; restart {:?}",
            self.files, self.short_reads, self.file_faults, self.restart
        )?;
        for g in &self.groups {
            writeln!(f, "  loadgen {} {}", g.args.join(" "), g.paths.join(" "))?;
        }
        write!(
            f,
            "  bad requests {} slowloris {} slow reader {}; schedule seed {}",
            self.bad_requests, self.slowloris, self.slow_reader, self.schedule_seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_draws_the_same_and_seeds_differ() {
        assert_eq!(Params::draw(7), Params::draw(7));
        assert_ne!(Params::draw(7), Params::draw(8));
        let p = Params::draw(7);
        assert!(p.partitions.iter().all(|x| x.end <= p.heal));
        assert!(!p.groups.is_empty() && !p.files.is_empty());
        assert!(p.to_string().contains("link client->server"));
    }

    #[test]
    fn the_swarm_turns_every_fault_on_somewhere() {
        let drawn: Vec<Params> = (0..300).map(Params::draw).collect();
        assert!(drawn.iter().any(|p| p.links[0].loss > 0.2));
        assert!(drawn.iter().any(|p| p.links[0].loss == 0.0));
        assert!(drawn.iter().any(|p| p.restart.is_some()));
        assert!(drawn.iter().any(|p| !p.partitions.is_empty()));
        assert!(drawn.iter().any(|p| !p.file_faults.is_empty()));
        assert!(drawn.iter().any(|p| p.slowloris > 0));
        assert!(drawn.iter().any(|p| p
            .groups
            .iter()
            .any(|g| g.args.contains(&"--pipeline".to_owned()))));
    }
}
