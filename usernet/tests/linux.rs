//! The user-space network under threadlib threads, against the Linux kernel through
//! TUN devices in private namespaces: echo and bulk both ways, active opens,
//! cancellation of every blocking call, several cores with steered queues, a vanished
//! peer, and the memory of idle connections. Needs root (fails under `CI=true` without).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use tcpstack::TcpConfig;
use testnet::{privileged, Options, TestNet, KERNEL_ADDR, STACK_ADDR};
use threadlib::net::{ListenOptions, Listener, Network, Stream};
use threadlib::{with_timeout, Error, Runtime};
use usernet::tun_setup::{self, TunSetup};
use usernet::{NetConfig, NetReport, UserListener, UserNet};

const PORT: u16 = 7000;
const SOCKET_TIMEOUT: Duration = Duration::from_secs(20);

/// A namespace, and a runtime whose cores each drive a stack on one queue of its
/// device.
struct Rig {
    net: TestNet,
    runtime: Runtime,
    user: UserNet,
}

fn rig(label: &str, cores: usize) -> Option<Rig> {
    rig_with(label, cores, |_| {})
}

fn rig_with(label: &str, cores: usize, tweak: impl FnOnce(&mut NetConfig)) -> Option<Rig> {
    rig_full(label, cores, usernet::TunIo::default(), tweak)
}

fn rig_full(
    label: &str,
    cores: usize,
    io: usernet::TunIo,
    tweak: impl FnOnce(&mut NetConfig),
) -> Option<Rig> {
    if !privileged(label) {
        return None;
    }
    let net = TestNet::with(
        label,
        Options {
            multi_queue: cores > 1,
            ..Options::default()
        },
    )
    .expect("create namespace and TUN device");
    let (runtime, user) = stack_on(&net, cores, io, tweak);
    Some(Rig { net, runtime, user })
}

/// A runtime whose cores each drive a stack on one queue of `net`'s device.
fn stack_on(
    net: &TestNet,
    cores: usize,
    io: usernet::TunIo,
    tweak: impl FnOnce(&mut NetConfig),
) -> (Runtime, UserNet) {
    let opened = tun_setup::open(&TunSetup {
        netns: net.ns().to_owned(),
        device: net.dev().to_owned(),
        addr: STACK_ADDR,
        queues: cores,
        offload: true,
        io,
    })
    .expect("open the device's queues");
    let mut config = NetConfig::new(STACK_ADDR);
    config.steering = opened.steering;
    tweak(&mut config);
    let builder = Runtime::builder().cores(cores).blocking_threads(4);
    let (builder, user) = UserNet::install_devices(builder, config, opened.devices);
    (builder.build().expect("runtime"), user)
}

/// Listens on the stack's address at [`PORT`].
async fn listen(user: &UserNet) -> threadlib::Result<UserListener> {
    user.listen(
        SocketAddr::from((STACK_ADDR, PORT)),
        ListenOptions::default(),
    )
    .await
}

/// Runs `f` on an OS thread inside the namespace (the kernel's side), from a threadlib
/// thread, without blocking its core.
async fn kernel<T: Send + 'static>(ns: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    threadlib::blocking::run(move || iolib::netns::run_in(&ns, f).expect("enter the namespace"))
        .await
        .expect("the blocking pool ran it")
}

fn connect_kernel(addr: SocketAddrV4) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr.into(), SOCKET_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(SOCKET_TIMEOUT)).unwrap();
    s
}

/// Deterministic test bytes.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Echoes every connection of `listener` until cancelled, one thread each.
async fn echo_forever<L: Listener + 'static>(listener: L) -> threadlib::Result<()>
where
    L::Stream: 'static,
{
    threadlib::scope(|s| async move {
        loop {
            let (mut c, _) = listener.accept().await?;
            s.spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = c.read(&mut buf).await?;
                    if n == 0 {
                        c.shutdown(Shutdown::Write).await?;
                        return Ok(());
                    }
                    c.write_all(&buf[..n]).await?;
                }
            });
        }
    })
    .await
}

#[test]
fn kernel_clients_get_their_bytes_echoed_by_user_stack_threads() {
    let Some(rig) = rig("echo", 1) else { return };
    let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
    rig.runtime
        .block_on(async move {
            let listener = listen(&user).await.unwrap();
            assert_eq!(
                listener.local_addr().unwrap(),
                SocketAddr::from((STACK_ADDR, PORT))
            );
            let server = threadlib::spawn(echo_forever(listener));
            let clients = kernel(ns.clone(), || {
                let threads: Vec<_> = (0..16u8)
                    .map(|i| {
                        std::thread::spawn(move || {
                            let data = pattern(i, 256 * 1024 + usize::from(i));
                            let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                            let reader = {
                                let mut s = s.try_clone().unwrap();
                                std::thread::spawn(move || {
                                    let mut back = Vec::new();
                                    s.read_to_end(&mut back).map(|_| back)
                                })
                            };
                            s.write_all(&data).unwrap();
                            s.shutdown(Shutdown::Write).unwrap();
                            let back = reader.join().unwrap().unwrap();
                            back == data
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().unwrap())
                    .collect::<Vec<bool>>()
            })
            .await;
            assert_eq!(clients, vec![true; 16], "every echo came back intact");
            drop(server);
            let r = user.report().unwrap();
            assert_eq!(r.counter("passive_opens"), 16);
            assert_eq!(r.looped.misdirected, 0);
            assert!(
                r.counter("tx_super_segments") > 0,
                "segmentation offload in use"
            );
        })
        .unwrap();
}

/// The kernel's count of segments its TCP received out of order, in the namespace
/// the calling thread is in (`/proc/self` would show the main thread's).
fn out_of_order_segments() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").expect("read netstat");
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPOFOQueue")
        .map(|(_, v)| v.parse().unwrap())
        .expect("TCPOFOQueue counted")
}

/// Packets with bulk payload leave in writes of their own, from where the stack keeps
/// them, and the rest in batches (or, with direct I/O, every packet in a `writev` of
/// its own): kernel clients fetching small and large answers on several connections
/// at once get every byte, and their TCP never sees a segment out of order.
#[test]
fn small_and_bulk_packets_reach_the_kernel_whole_and_in_order() {
    const SIZES: [usize; 6] = [1, 70_001, 3, 600_000, 1_000, 17];
    for (label, io) in [
        ("order-batch", usernet::TunIo::default()),
        ("order-direct", usernet::TunIo::Direct),
    ] {
        let Some(rig) = rig_full(label, 1, io, |_| {}) else {
            return;
        };
        let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
        rig.runtime
            .block_on(async move {
                let listener = listen(&user).await.unwrap();
                // Answers each 8-byte size with that many bytes of `pattern`.
                let server = threadlib::spawn(async move {
                    threadlib::scope(|s| async move {
                        loop {
                            let (mut c, _) = listener.accept().await?;
                            s.spawn(async move {
                                let (mut size, mut have) = ([0u8; 8], 0);
                                loop {
                                    match c.read(&mut size[have..]).await? {
                                        0 => return Ok(()),
                                        n => have += n,
                                    }
                                    if have == size.len() {
                                        // A few bytes first, on their own, so that a
                                        // small packet of the connection comes right
                                        // before its bulk ones.
                                        let n = u64::from_le_bytes(size) as usize;
                                        let answer = pattern(n as u8, n);
                                        let (head, rest) = answer.split_at(n.min(5));
                                        c.write_all(head).await?;
                                        threadlib::yield_now().await?;
                                        c.write_all(rest).await?;
                                        have = 0;
                                    }
                                }
                            });
                        }
                    })
                    .await as threadlib::Result<()>
                });
                let (clients, reordered) = kernel(ns.clone(), || {
                    let before = out_of_order_segments();
                    let threads: Vec<_> = (0..4)
                        .map(|_| {
                            std::thread::spawn(|| {
                                let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                                SIZES.iter().cycle().take(3 * SIZES.len()).all(|&n| {
                                    s.write_all(&(n as u64).to_le_bytes()).unwrap();
                                    let mut got = vec![0u8; n];
                                    s.read_exact(&mut got).unwrap();
                                    got == pattern(n as u8, n)
                                })
                            })
                        })
                        .collect();
                    let ok: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
                    (ok, out_of_order_segments() - before)
                })
                .await;
                drop(server);
                assert_eq!(clients, vec![true; 4], "{label}: every answer intact");
                assert_eq!(reordered, 0, "{label}: segments arrived out of order");
                let r = user.report().unwrap();
                assert!(
                    r.counter("tx_super_segments") > 0,
                    "{label}: no bulk packets"
                );
                assert_eq!(r.device.tx_errors, 0, "{label}");
            })
            .unwrap();
    }
}

/// `send_file` on a user-space stream: the kernel reads a file from the page cache
/// straight into the send buffer, and a file out of the page cache is read
/// asynchronously instead; either way a kernel client gets every byte.
#[test]
fn files_are_sent_from_the_page_cache_and_from_the_disk() {
    let Some(rig) = rig("sendfile", 1) else {
        return;
    };
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("usernet-sendfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = pattern(7, 3 * 1024 * 1024 + 5);
    std::fs::write(dir.join("file"), &data).unwrap();
    let (ns, user, path) = (rig.net.ns().to_owned(), rig.user.clone(), dir.join("file"));
    let root = dir.clone();
    rig.runtime
        .block_on(async move {
            let listener = listen(&user).await.unwrap();
            let root = threadlib::fs::Dir::open_root(&root).unwrap();
            for evict in [false, true] {
                let file = root.open("file").await.unwrap();
                if evict {
                    let f = std::fs::File::open(&path).unwrap();
                    f.sync_all().unwrap();
                    // SAFETY: a valid descriptor; advice only.
                    let r = unsafe {
                        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
                    };
                    assert_eq!(r, 0);
                    let (mut a, mut b) = ([0u8; 16], [0u8; 0]);
                    let cached = iolib::fd::pread_cached(f.as_raw_fd(), &mut a, &mut b, 0);
                    assert!(
                        cached.as_ref().is_err_and(iolib::fd::is_retry),
                        "still cached: {cached:?}"
                    );
                }
                let len = data.len() as u64;
                let client = threadlib::spawn(kernel(ns.clone(), move || {
                    let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).map(|_| got)
                }));
                let (mut c, _) = listener.accept().await.unwrap();
                let mut off = 0;
                while off < len {
                    let n = c.send_file(&file, off, len - off).await.unwrap();
                    assert!(n > 0, "the file ended at {off} of {len}");
                    off += n;
                }
                assert_eq!(c.send_file(&file, len, 1).await.unwrap(), 0, "end of file");
                c.shutdown(Shutdown::Write).await.unwrap();
                let got = client.await.unwrap().unwrap();
                assert!(got == data, "evicted {evict}: {} of {len} bytes", got.len());
            }
        })
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn user_stack_threads_connect_to_kernel_listeners_and_are_refused_by_closed_ports() {
    let Some(rig) = rig("active", 1) else { return };
    let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
    rig.runtime
        .block_on(async move {
            // A kernel server that sends 8 MiB and then reads until end of stream.
            let data = pattern(9, 8 << 20);
            let expect = data.clone();
            let (port_tx, port_rx) = std::sync::mpsc::channel();
            let server = threadlib::spawn(kernel(ns.clone(), move || {
                let l = TcpListener::bind((KERNEL_ADDR, 0)).unwrap();
                port_tx.send(l.local_addr().unwrap().port()).unwrap();
                let (mut s, _) = l.accept().unwrap();
                s.write_all(&data).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                rest
            }));
            let port = threadlib::blocking::run(move || port_rx.recv().unwrap())
                .await
                .unwrap();
            let mut c = user
                .connect(SocketAddr::from((KERNEL_ADDR, port)))
                .await
                .unwrap();
            let local = c.local_addr().unwrap();
            assert_eq!(local.ip(), std::net::IpAddr::V4(STACK_ADDR));
            assert_eq!(
                c.peer_addr().unwrap(),
                SocketAddr::from((KERNEL_ADDR, port))
            );
            let mut got = Vec::new();
            let mut buf = vec![0u8; 100_000];
            loop {
                let n = c.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got == expect,
                "received {} of {} bytes",
                got.len(),
                expect.len()
            );
            c.write_all(b"thanks").await.unwrap();
            c.shutdown(Shutdown::Write).await.unwrap();
            assert_eq!(server.await.unwrap(), b"thanks");

            let refused = user.connect(SocketAddr::from((KERNEL_ADDR, 1))).await;
            match refused {
                Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
                other => panic!("expected a refusal, got {other:?}"),
            }
        })
        .unwrap();
}

/// Every blocking call is a cancellation point: a timed-out accept, read, write or
/// connect leaves nothing behind, consumes nothing, and the next call works.
#[test]
fn cancelled_calls_consume_nothing_and_leave_no_state() {
    let Some(rig) = rig_with("cancel", 1, |c| {
        // A small send buffer, so that a write blocks soon.
        c.tcp.send_buffer = 64 * 1024;
    }) else {
        return;
    };
    let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
    rig.runtime
        .block_on(async move {
            let listener = listen(&user).await.unwrap();
            // Accept: times out, then works.
            let r = with_timeout(Duration::from_millis(50), listener.accept()).await;
            assert!(matches!(r, Err(Error::TimedOut)), "{:?}", r.map(|_| ()));
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<usize>();
            let client = threadlib::spawn(kernel(ns.clone(), move || {
                let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                // Send only when told, read only when told.
                go_rx.recv().unwrap();
                s.write_all(b"hello").unwrap();
                go_rx.recv().unwrap();
                let mut total = 0;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                done_tx.send(total).unwrap();
            }));
            let (mut c, _) = listener.accept().await.unwrap();
            // Read: times out with nothing there, then gets every byte.
            let mut buf = [0u8; 16];
            let r = with_timeout(Duration::from_millis(50), c.read(&mut buf)).await;
            assert!(matches!(r, Err(Error::TimedOut)));
            go_tx.send(()).unwrap();
            let n = c.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"hello");
            // Write: the peer does not read; writes block once both the kernel's
            // receive queue and our send buffer are full, and the blocked one times out
            // having queued exactly what it reported.
            let chunk = vec![7u8; 16 * 1024];
            let mut queued = 0usize;
            loop {
                match with_timeout(Duration::from_millis(200), c.write(&chunk)).await {
                    Ok(n) => queued += n,
                    Err(Error::TimedOut) => break,
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            assert!(queued >= 64 * 1024, "only {queued} bytes before blocking");
            go_tx.send(()).unwrap();
            c.shutdown(Shutdown::Write).await.unwrap();
            let total = threadlib::blocking::run(move || done_rx.recv().unwrap())
                .await
                .unwrap();
            assert_eq!(
                total, queued,
                "the kernel received exactly what writes reported"
            );
            client.await.unwrap();
            // Connect to an address nobody answers: the timed-out connect leaves no
            // half-open connection in the stack.
            drop(c);
            threadlib::sleep(Duration::from_millis(100)).await.unwrap();
            let before = user.report().unwrap().connections;
            let silent = SocketAddr::from(([10, 77, 0, 99], 80));
            let r = with_timeout(Duration::from_millis(100), user.connect(silent)).await;
            assert!(matches!(r, Err(Error::TimedOut)), "{:?}", r.map(|_| ()));
            assert_eq!(
                user.report().unwrap().connections,
                before,
                "a half-open connection stayed"
            );
            // The listener still works after all that.
            let again = threadlib::spawn(kernel(ns.clone(), || {
                let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                s.write_all(b"again").unwrap();
                s
            }));
            let (mut c, _) = listener.accept().await.unwrap();
            let _client = again.await.unwrap();
            let n = c.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"again");
        })
        .unwrap();
}

/// The counts of every core, summed.
async fn all_cores_report(user: &UserNet, cores: usize) -> NetReport {
    let mut sum = user.report().unwrap();
    for core in 1..cores {
        let u = user.clone();
        let r = threadlib::spawn_on(core, move || async move { u.report().unwrap() })
            .unwrap()
            .join()
            .await
            .unwrap();
        sum += &r;
    }
    sum
}

/// The kernel's TCP sockets of namespace `ns` in TIME-WAIT.
fn kernel_time_waits(ns: &str) -> usize {
    iolib::netns::run_in(ns, || {
        let table = std::fs::read_to_string("/proc/thread-self/net/tcp").expect("read");
        // `sl local rem st ...`: state 06 is TIME-WAIT.
        table
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(3) == Some("06"))
            .count()
    })
    .expect("enter the namespace")
}

/// A second stack, opened after a first one closed its connections, reuses their local
/// ports (two cores pick ports from the same start every time) while the kernel still
/// holds each of them in TIME-WAIT, and every connection opens at once: both stacks
/// key their timestamps with the host's secret on the host's monotonic clock, so the
/// kernel finds each SYN newer than the connection it remembers and takes it (RFC
/// 6191). With a secret of each stack's own, half the SYNs carry older timestamps;
/// the kernel answers them with an ACK, the stack resets it, and the SYN is sent
/// again a second later.
#[test]
fn a_later_stack_reuses_ports_the_kernel_holds_in_time_wait_at_once() {
    const CONNS: usize = 12;
    let Some(rig) = rig("reuse", 2) else { return };
    let Rig { net, runtime, user } = rig;
    let ns = net.ns().to_owned();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        iolib::netns::run_in(&ns, move || {
            let l = TcpListener::bind((KERNEL_ADDR, 0)).unwrap();
            port_tx.send(l.local_addr().unwrap().port()).unwrap();
            // Each connection gets a word and the kernel's FIN at once: the kernel
            // closes first and keeps the connection in TIME-WAIT.
            for _ in 0..2 * CONNS {
                let (mut s, _) = l.accept().unwrap();
                s.write_all(b"bye").unwrap();
            }
        })
        .expect("enter the namespace")
    });
    let server_addr = SocketAddr::from((KERNEL_ADDR, port_rx.recv().unwrap()));
    // Opens CONNS connections one after another and reads each to its end; returns
    // the local ports, the longest open, and the SYNs sent again.
    let round = |runtime: Runtime, user: UserNet| {
        runtime
            .block_on(async move {
                let (mut ports, mut slowest) = (Vec::new(), Duration::ZERO);
                for _ in 0..CONNS {
                    let start = threadlib::time::now();
                    let mut c = user.connect(server_addr).await.unwrap();
                    slowest = slowest.max(threadlib::time::now() - start);
                    ports.push(c.local_addr().unwrap().port());
                    let mut got = Vec::new();
                    let mut buf = [0u8; 16];
                    loop {
                        match c.read(&mut buf).await.unwrap() {
                            0 => break,
                            n => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    assert_eq!(got, b"bye");
                    c.shutdown(Shutdown::Write).await.unwrap();
                }
                // Closed once the kernel has our FIN: its side is then in TIME-WAIT.
                let deadline = threadlib::time::now() + SOCKET_TIMEOUT;
                while all_cores_report(&user, 2).await.connections > 0 {
                    assert!(
                        threadlib::time::now() < deadline,
                        "connections did not close"
                    );
                    threadlib::sleep(Duration::from_millis(5)).await.unwrap();
                }
                let resent = all_cores_report(&user, 2).await.counter("syn_retransmits");
                (ports, slowest, resent)
            })
            .unwrap()
    };
    let (first, _, _) = round(runtime, user);
    assert_eq!(kernel_time_waits(net.ns()), CONNS);
    let (runtime, user) = stack_on(&net, 2, usernet::TunIo::default(), |_| {});
    let (second, slowest, resent) = round(runtime, user);
    assert_eq!(
        first, second,
        "the second stack reused the first one's ports"
    );
    assert_eq!(resent, 0, "SYNs sent again");
    assert!(
        slowest < Duration::from_millis(500),
        "slowest open {slowest:?}"
    );
    server.join().unwrap();
}

/// Two cores, two queues: the kernel's connections spread over both cores, each core
/// serves the ones whose SYN reached its queue, and no packet lands on the wrong core.
#[test]
fn two_cores_accept_and_serve_with_no_misdirected_packet() {
    let Some(rig) = rig("twocore", 2) else { return };
    let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
    rig.runtime
        .block_on(async move {
            let mut servers = Vec::new();
            for core in 0..2 {
                let u = user.clone();
                let h = threadlib::spawn_on(core, move || async move {
                    let l = listen(&u).await?;
                    let _ = echo_forever(l).await;
                    Ok::<_, Error>(())
                })
                .unwrap();
                servers.push(h);
            }
            threadlib::sleep(Duration::from_millis(50)).await.unwrap();
            let ok = kernel(ns.clone(), || {
                (0..64u8).all(|i| {
                    let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                    let data = pattern(i, 4096);
                    s.write_all(&data).unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                    let mut back = Vec::new();
                    s.read_to_end(&mut back).unwrap();
                    back == data
                })
            })
            .await;
            assert!(ok, "every connection echoed");
            let per_core: Vec<u64> = {
                let mut v = Vec::new();
                for core in 0..2 {
                    let u = user.clone();
                    let r = threadlib::spawn_on(core, move || async move { u.report().unwrap() })
                        .unwrap()
                        .join()
                        .await
                        .unwrap();
                    v.push(r.counter("passive_opens"));
                    assert_eq!(r.looped.misdirected, 0, "core {core}: {r}");
                }
                v
            };
            assert_eq!(per_core.iter().sum::<u64>(), 64);
            assert!(
                per_core.iter().all(|&n| n > 0),
                "both cores served: {per_core:?}"
            );
        })
        .unwrap();
}

/// Active opens on two cores pick local ports whose replies the kernel steers back
/// to the opening core: 10,000 connection-per-request exchanges, not one packet on
/// the wrong queue.
#[test]
fn active_opens_are_steered_back_to_the_opening_core() {
    let Some(rig) = rig("steer", 2) else { return };
    let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
    rig.runtime
        .block_on(async move {
            // A kernel server answering every connection with 3 bytes, then closing.
            let (port_tx, port_rx) = std::sync::mpsc::channel();
            let _server = std::thread::spawn(move || {
                iolib::netns::run_in(&ns, move || {
                    let l = TcpListener::bind((KERNEL_ADDR, 0)).unwrap();
                    port_tx.send(l.local_addr().unwrap().port()).unwrap();
                    for s in l.incoming().take(10_000) {
                        let mut s = s.unwrap();
                        let mut req = [0u8; 4];
                        let _ = s.read_exact(&mut req);
                        let _ = s.write_all(b"ok\n");
                    }
                })
            });
            let port = threadlib::blocking::run(move || port_rx.recv().unwrap())
                .await
                .unwrap();
            let target = SocketAddr::from((KERNEL_ADDR, port));
            let mut jobs = Vec::new();
            for core in 0..2 {
                let u = user.clone();
                jobs.push(
                    threadlib::spawn_on(core, move || async move {
                        let u = Rc::new(u);
                        threadlib::scope(|s| async move {
                            for _ in 0..25 {
                                let u = u.clone();
                                s.spawn(async move {
                                    for _ in 0..200 {
                                        let mut c = u.connect(target).await?;
                                        c.write_all(b"req\n").await?;
                                        let mut buf = [0u8; 8];
                                        let mut got = 0;
                                        while got < 3 {
                                            let n = c.read(&mut buf[got..]).await?;
                                            assert!(n > 0, "early end of stream");
                                            got += n;
                                        }
                                        assert_eq!(&buf[..3], b"ok\n");
                                    }
                                    Ok(())
                                });
                            }
                            Ok(())
                        })
                        .await
                    })
                    .unwrap(),
                );
            }
            for j in jobs {
                j.join().await.unwrap().unwrap();
            }
            let r = all_cores_report(&user, 2).await;
            assert_eq!(r.counter("active_opens"), 10_000, "{r}");
            assert_eq!(r.looped.misdirected, 0, "{r}");
        })
        .unwrap();
}

#[test]
fn ping_is_answered_and_closed_ports_reset() {
    let Some(rig) = rig("ping", 1) else { return };
    let net = &rig.net;
    let user = rig.user.clone();
    // The runtime must run for the stack to answer: serve from a background thread.
    let ns = net.ns().to_owned();
    let out = rig
        .runtime
        .block_on(async move {
            let ping = kernel(ns.clone(), || {
                std::process::Command::new("ping")
                    .args(["-c", "2", "-W", "2", &STACK_ADDR.to_string()])
                    .output()
                    .expect("ping is installed")
            })
            .await;
            let refused = kernel(ns.clone(), || {
                TcpStream::connect_timeout(&SocketAddr::from((STACK_ADDR, 1)), SOCKET_TIMEOUT)
                    .map(|_| ())
                    .map_err(|e| e.kind())
            })
            .await;
            (ping, refused, user.report().unwrap())
        })
        .unwrap();
    let (ping, refused, report) = out;
    assert!(ping.status.success(), "{ping:?}");
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(report.counter("icmp_echo_requests"), 2);
    assert!(report.counter("rst_sent") >= 1);
}

/// When the kernel side vanishes (the device goes down), connections with data in
/// flight time out after the stack's retransmission limit, and their buffers are
/// freed once the application closes them.
#[test]
fn connections_time_out_and_free_their_memory_when_the_peer_vanishes() {
    let Some(rig) = rig_with("vanish", 1, |c| {
        c.tcp = TcpConfig {
            max_retries: 3,
            min_rto: Duration::from_millis(20),
            initial_rto: Duration::from_millis(50),
            max_rto: Duration::from_millis(200),
            ..c.tcp.clone()
        };
    }) else {
        return;
    };
    let (ns, dev, user) = (
        rig.net.ns().to_owned(),
        rig.net.dev().to_owned(),
        rig.user.clone(),
    );
    rig.runtime
        .block_on(async move {
            let listener = listen(&user).await.unwrap();
            // Eight kernel clients connect and never read.
            let clients = threadlib::spawn(kernel(ns.clone(), || {
                (0..8)
                    .map(|_| connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT)))
                    .collect::<Vec<_>>()
            }));
            let mut conns = Vec::new();
            for _ in 0..8 {
                conns.push(listener.accept().await.unwrap().0);
            }
            let _keep = clients.await.unwrap();
            // The device goes down under them; every write fails eventually.
            let down = std::process::Command::new("ip")
                .args(["-n", &ns, "link", "set", "dev", &dev, "down"])
                .status()
                .unwrap();
            assert!(down.success());
            let data = Rc::new(vec![1u8; 4 << 20]);
            threadlib::scope(|s| async move {
                for mut c in conns {
                    let data = data.clone();
                    s.spawn(async move {
                        let r = with_timeout(Duration::from_secs(20), c.write_all(&data)).await;
                        match r {
                            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
                            other => panic!("expected a connection timeout, got {other:?}"),
                        }
                        Ok(())
                    });
                }
                Ok(())
            })
            .await
            .unwrap();
            let r = user.report().unwrap();
            assert_eq!(r.counter("timeouts"), 8, "{r}");
            assert_eq!(r.buffer_bytes, 0, "closed connections hold no buffers: {r}");
        })
        .unwrap();
}

/// An idle keep-alive connection holds no buffer memory on the user stack.
#[test]
fn idle_connections_hold_no_buffers() {
    let Some(rig) = rig("idle", 1) else { return };
    let (ns, user) = (rig.net.ns().to_owned(), rig.user.clone());
    rig.runtime
        .block_on(async move {
            let listener = listen(&user).await.unwrap();
            let server = threadlib::spawn(echo_forever(listener));
            let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
            let clients = threadlib::spawn(kernel(ns.clone(), move || {
                let conns: Vec<TcpStream> = (0..200)
                    .map(|_| {
                        let mut s = connect_kernel(SocketAddrV4::new(STACK_ADDR, PORT));
                        s.write_all(&[5; 1000]).unwrap();
                        let mut back = [0u8; 1000];
                        s.read_exact(&mut back).unwrap();
                        s
                    })
                    .collect();
                ready_tx.send(()).unwrap();
                hold_rx.recv().unwrap();
                drop(conns);
            }));
            threadlib::blocking::run(move || ready_rx.recv().unwrap())
                .await
                .unwrap();
            threadlib::sleep(Duration::from_millis(200)).await.unwrap();
            let r = user.report().unwrap();
            assert!(r.connections >= 200, "{r}");
            assert_eq!(r.buffer_bytes, 0, "idle connections hold buffers: {r}");
            hold_tx.send(()).unwrap();
            clients.await.unwrap();
            drop(server);
        })
        .unwrap();
}

/// Every way opening the device can fail names its fix.
#[test]
fn setup_errors_name_their_fix() {
    if !privileged("setup_errors_name_their_fix") {
        return;
    }
    let net = TestNet::create("seterr", 1500).expect("namespace and device");
    let setup = |device: &str, addr: std::net::Ipv4Addr, queues: usize| TunSetup {
        netns: net.ns().to_owned(),
        device: device.to_owned(),
        addr,
        queues,
        offload: true,
        io: usernet::TunIo::default(),
    };
    let text = |r: Result<tun_setup::OpenedTun, tun_setup::SetupError>| match r {
        Ok(_) => panic!("opened"),
        Err(e) => e.to_string(),
    };
    let missing_ns = TunSetup {
        netns: "no-such-namespace".into(),
        ..setup(net.dev(), STACK_ADDR, 1)
    };
    assert!(text(tun_setup::open(&missing_ns)).contains("make setup"));
    let e = text(tun_setup::open(&setup("nodev0", STACK_ADDR, 1)));
    assert!(
        e.contains("does not exist") && e.contains("make setup"),
        "{e}"
    );
    let e = text(tun_setup::open(&setup(net.dev(), [10, 99, 0, 2].into(), 1)));
    assert!(e.contains("not routed to"), "{e}");
    // The test device is single-queue: two queues cannot be had.
    let e = text(tun_setup::open(&setup(net.dev(), STACK_ADDR, 2)));
    assert!(
        e.contains("1 queue(s) for 2 cores") && e.contains("make setup"),
        "{e}"
    );
    // Held by one opener, the device is busy for the next.
    let held = tun_setup::open(&setup(net.dev(), STACK_ADDR, 1)).expect("first open");
    let e = text(tun_setup::open(&setup(net.dev(), STACK_ADDR, 1)));
    assert!(e.contains("in use by another process"), "{e}");
    drop(held);
    tun_setup::open(&setup(net.dev(), STACK_ADDR, 1)).expect("free again");
    // Removing the namespace removes the device locks taken in it.
    let lock = format!("/run/usernet/{}.{}.lock", net.ns(), net.dev());
    assert!(std::path::Path::new(&lock).exists(), "{lock}");
    drop(net);
    assert!(!std::path::Path::new(&lock).exists(), "{lock} left behind");
}

/// An idle network loop costs nothing: with a listener waiting and no traffic, the
/// core sleeps (no busy polling, no fixed-interval wake-ups).
#[test]
fn an_idle_network_uses_no_cpu() {
    let Some(rig) = rig("idlecpu", 1) else { return };
    let user = rig.user.clone();
    rig.runtime
        .block_on(async move {
            let listener = listen(&user).await.unwrap();
            let waiting = threadlib::spawn(async move { listener.accept().await.map(|_| ()) });
            threadlib::sleep(Duration::from_millis(50)).await.unwrap();
            let polls = user.report().unwrap().looped.polls;
            let cpu = thread_cpu_time();
            threadlib::sleep(Duration::from_secs(1)).await.unwrap();
            let used = thread_cpu_time() - cpu;
            assert!(
                used < Duration::from_millis(20),
                "{used:?} of CPU in an idle second"
            );
            assert_eq!(
                user.report().unwrap().looped.polls,
                polls,
                "the idle loop was polled"
            );
            drop(waiting);
        })
        .unwrap();
}

/// CPU time of the calling OS thread (the core's).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
