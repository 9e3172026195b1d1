//! loadgen's connection loop against the webserver library over real loopback
//! sockets (blocking thread-per-connection adapters stand in for threadlib): the
//! request and byte counts loadgen measures equal the server's own totals.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use loadgen::{run_connection, Config, Network, Stats};
use webserver::{
    serve_connection, DirListing, FileKind, FileMeta, FileSource, OpenError, Opened, RelPath,
    ServerContext, Settings, Totals,
};

/// A blocking socket usable as both crates' transport.
struct Blocking(TcpStream);

fn read_blocking(
    s: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<Option<usize>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(None);
    }
    s.set_read_timeout(Some(left))?;
    match s.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl webserver::Transport for Blocking {
    async fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, webserver::TransportError> {
        read_blocking(&mut self.0, buf, deadline)?.ok_or(webserver::TransportError::TimedOut)
    }

    async fn write(
        &mut self,
        buf: &[u8],
        _stall: std::time::Duration,
    ) -> Result<usize, webserver::TransportError> {
        Ok(std::io::Write::write(&mut self.0, buf)?)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl loadgen::Transport for Blocking {
    async fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<usize, loadgen::TransportError> {
        read_blocking(&mut self.0, buf, deadline)?.ok_or(loadgen::TransportError::TimedOut)
    }

    async fn write_all(
        &mut self,
        buf: &[u8],
        _deadline: Instant,
    ) -> Result<(), loadgen::TransportError> {
        Ok(self.0.write_all(buf)?)
    }
}

struct BlockingNet;

impl Network for BlockingNet {
    type Conn = Blocking;

    async fn connect(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<Blocking, loadgen::TransportError> {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_nodelay(true)?;
        Ok(Blocking(s))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
}

struct StdFiles(PathBuf);

impl FileSource for StdFiles {
    type File = File;

    async fn open(&self, path: RelPath<'_>) -> Result<Opened<File>, OpenError> {
        let file = File::open(self.0.join(path.as_path())).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => OpenError::NotFound,
            _ => OpenError::Io(e),
        })?;
        let meta = file.metadata()?;
        let kind = if meta.is_dir() {
            FileKind::Directory
        } else {
            FileKind::File
        };
        Ok(Opened {
            handle: file,
            meta: FileMeta {
                len: meta.len(),
                modified: meta.modified()?,
                kind,
            },
        })
    }

    async fn read_at(&self, file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    async fn list_dir(&self, _path: RelPath<'_>, _max: usize) -> Result<DirListing, OpenError> {
        Err(OpenError::Forbidden)
    }
}

/// Serves `connections` connections of the bundled site, one thread each; returns the
/// summed counters once all have closed.
fn server(connections: usize) -> (SocketAddr, std::thread::JoinHandle<Totals>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let threads: Vec<_> = (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                std::thread::spawn(move || {
                    let ctx = ServerContext::new(Settings::default());
                    let files = StdFiles(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www"));
                    futures::executor::block_on(serve_connection(
                        &mut Blocking(stream),
                        &files,
                        &ctx,
                        None,
                    ));
                    ctx.counters.snapshot()
                })
            })
            .collect();
        let mut totals = Totals::default();
        for t in threads {
            totals += t.join().unwrap();
        }
        totals
    });
    (addr, handle)
}

fn drive(args: &[&str], addr: SocketAddr) -> Stats {
    let mut argv = vec!["loadgen"];
    argv.extend_from_slice(args);
    let url = format!("http://{addr}/files/1k.txt");
    let url2 = format!("http://{addr}/files/64k.txt");
    let url3 = format!("http://{addr}/missing");
    argv.extend([url.as_str(), url2.as_str(), url3.as_str()]);
    let plan = <Config as clap::Parser>::try_parse_from(argv)
        .unwrap()
        .plan()
        .unwrap();
    let start = Instant::now();
    let threads: Vec<_> = (0..plan.connections)
        .map(|i| {
            let conn = plan.connection(i, addr, start);
            std::thread::spawn(move || {
                let mut stats = Stats::new();
                futures::executor::block_on(run_connection(&BlockingNet, conn, &mut stats, None));
                stats
            })
        })
        .collect();
    let mut total = Stats::new();
    for t in threads {
        total.merge(&t.join().unwrap());
    }
    total
}

#[test]
fn loadgen_counts_match_the_servers_totals() {
    let (addr, server) = server(4);
    let stats = drive(&["-c", "4", "-n", "600", "--pipeline", "3"], addr);
    let totals = server.join().unwrap();
    assert_eq!(stats.requests, 600);
    assert_eq!(stats.errors.socket(), 0);
    assert_eq!(stats.errors.status, 200, "one URL in three is a 404");
    assert_eq!(totals.requests, stats.requests);
    assert_eq!(totals.bytes_out, stats.bytes);
    assert_eq!(totals.status[3], 200);
    assert_eq!(stats.latency.len(), 600);
}

#[test]
fn no_keepalive_counts_match_too() {
    let (addr, server) = server(30);
    let stats = drive(&["-c", "3", "-n", "30", "--no-keepalive"], addr);
    let totals = server.join().unwrap();
    assert_eq!(stats.requests, 30);
    assert_eq!(stats.errors.socket(), 0);
    assert_eq!(totals.connections, 30);
    assert_eq!(totals.bytes_out, stats.bytes);
}
