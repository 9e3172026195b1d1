//! Kernel TCP and directory capabilities for threads.

mod support;

use std::io::{IoSlice, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;
use support::watchdog;

use threadlib::fs::Dir;
use threadlib::net::{KernelListener, KernelNet, ListenOptions, Listener, Network, Stream};
use threadlib::Error;

/// A kernel TCP listener on a free loopback port, and its address.
async fn loopback_listener() -> (KernelListener, SocketAddr) {
    let l = KernelNet
        .listen("127.0.0.1:0".parse().unwrap(), ListenOptions::default())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

#[test]
fn kernel_tcp_roundtrip_vectored_shutdown_and_timeouts() {
    watchdog(|| {
        threadlib::run(async {
            let net = KernelNet;
            let (l, addr) = loopback_listener().await;
            let server = threadlib::spawn(async move {
                let (mut s, peer) = l.accept().await.unwrap();
                assert!(peer.ip().is_loopback());
                s.set_nodelay(true).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(&got).await.unwrap();
                s.shutdown(Shutdown::Write).await.unwrap();
                got.len()
            });
            let mut c = net.connect(addr).await.unwrap();
            assert_eq!(c.peer_addr().unwrap(), addr);
            let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
            c.write_all_vectored(&[b"head ", &big, b" tail"])
                .await
                .unwrap();
            let n = c.write_vectored(&[IoSlice::new(b"!")]).await.unwrap();
            assert_eq!(n, 1);
            c.shutdown(Shutdown::Write).await.unwrap();
            let mut echoed = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = c.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                echoed.extend_from_slice(&buf[..n]);
            }
            assert_eq!(server.await.unwrap(), big.len() + 11);
            assert_eq!(&echoed[..5], b"head ");
            assert_eq!(&echoed[5..5 + big.len()], &big[..]);
            assert_eq!(&echoed[5 + big.len()..], b" tail!");

            // A read that never gets data times out, and the socket stays usable.
            let (l2, a2) = loopback_listener().await;
            let mut c2 = net.connect(a2).await.unwrap();
            let (mut s2, _) = l2.accept().await.unwrap();
            let r = threadlib::with_timeout(Duration::from_millis(30), c2.read(&mut buf)).await;
            assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
            s2.write_all(b"late").await.unwrap();
            let n = threadlib::with_timeout(Duration::from_secs(5), c2.read(&mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"late");
            // Connecting to a closed port is an error, not a hang.
            drop(l2);
            let r = net.connect(a2).await;
            assert!(r.is_err());
        })
        .unwrap();
    });
}

#[test]
fn dir_capability_confines_opens_and_reads_files() {
    watchdog(|| {
        let base = std::env::temp_dir().join(format!("threadlib-dir-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"outside").unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::File::create(root.join("sub/data.bin"))
            .unwrap()
            .write_all(&data)
            .unwrap();
        std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("sub/data.bin", root.join("inside")).unwrap();
        let r2 = root.clone();
        threadlib::run(async move {
            let dir = Dir::open_root(&r2).unwrap();
            let f = dir.open("sub/data.bin").await.unwrap();
            let md = f.metadata().await.unwrap();
            assert!(md.is_file && !md.is_dir);
            assert_eq!(md.size, data.len() as u64);
            assert_eq!(f.read_to_end(1 << 30).await.unwrap(), data);
            assert_eq!(
                f.read_at(Vec::new(), 10, 1000).await.unwrap(),
                &data[1000..1010]
            );
            f.close().await.unwrap();
            assert_eq!(
                dir.open("inside")
                    .await
                    .unwrap()
                    .read_to_end(10)
                    .await
                    .unwrap(),
                &data[..10]
            );
            let d = dir.open("sub").await.unwrap();
            assert!(d.metadata().await.unwrap().is_dir);
            for bad in ["../secret", "/etc/passwd", "escape", "sub/../../secret"] {
                let e = dir
                    .open(bad)
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{bad} escaped the root"));
                assert!(
                    matches!(e, Error::Io(ref io) if io.raw_os_error() == Some(libc::EXDEV)),
                    "{bad}: {e}"
                );
            }
            assert!(dir.open("nul\0byte").await.is_err());
            assert_eq!(dir.read_dir("sub").await.unwrap(), ["data.bin"]);
        })
        .unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    });
}

#[test]
fn send_file_transfers_exact_ranges() {
    watchdog(|| {
        let path = std::env::temp_dir().join(format!("threadlib-sendfile-{}", std::process::id()));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 256) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let p2 = path.clone();
        threadlib::run(async move {
            let dir = Dir::open_root(p2.parent().unwrap()).unwrap();
            let f = dir
                .open(p2.file_name().unwrap().to_str().unwrap())
                .await
                .unwrap();
            let net = KernelNet;
            let (l, addr) = loopback_listener().await;
            let mut c = net.connect(addr).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            let reader = threadlib::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = c.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return got;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            });
            let mut sent = 0;
            while sent < 2_000_000 {
                let n = s
                    .send_file(&f, 12345 + sent, 2_000_000 - sent)
                    .await
                    .unwrap();
                assert!(n > 0, "the file is long enough");
                sent += n;
            }
            assert_eq!(
                s.send_file(&f, data.len() as u64, 10).await.unwrap(),
                0,
                "at the end"
            );
            drop(s);
            let got = reader.await.unwrap();
            assert_eq!(got, &data[12345..12345 + 2_000_000]);
        })
        .unwrap();
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn signals_arrive_as_thread_wakeups() {
    watchdog(|| {
        // Block SIGUSR2 in this test's OS thread before the runtime starts.
        threadlib::signal::block(&[libc::SIGUSR2]).unwrap();
        threadlib::run(async {
            let sigs = threadlib::signal::Signals::new(&[libc::SIGUSR2]).unwrap();
            let waiter = threadlib::spawn(async move { sigs.wait().await });
            threadlib::sleep(Duration::from_millis(5)).await.unwrap();
            // SAFETY: sending a blocked signal to our own OS thread.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            assert_eq!(waiter.await.unwrap().unwrap(), libc::SIGUSR2);
        })
        .unwrap();
    });
}

/// After a read that took everything the socket held, the next read waits for the
/// peer instead of trying again at once; whatever ended the stream before that wait
/// (a FIN or a reset that came with the data) still ends it, and data sent later
/// still arrives.
#[test]
fn reads_after_a_short_read_see_later_data_a_fin_that_came_with_the_data_and_resets() {
    watchdog(|| {
        threadlib::run(async {
            let net = KernelNet;
            let (l, addr) = loopback_listener().await;
            let mut buf = [0u8; 64];
            let within = |d| Duration::from_secs(d);

            // Data, then more data a little later.
            let mut c = net.connect(addr).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"first").await.unwrap();
            threadlib::sleep(Duration::from_millis(20)).await.unwrap();
            assert_eq!(c.read(&mut buf).await.unwrap(), 5);
            let later = threadlib::spawn(async move {
                threadlib::sleep(Duration::from_millis(20)).await.unwrap();
                s.write_all(b"second").await.unwrap();
                s
            });
            let n = threadlib::with_timeout(within(5), c.read(&mut buf)).await;
            assert_eq!(n.unwrap(), 6, "the data sent after a short read arrives");
            assert_eq!(&buf[..6], b"second");
            let s = later.await.unwrap();

            // Data and FIN together: the short read returns the data, the next one the end.
            let mut s = s;
            s.write_all(b"last").await.unwrap();
            s.shutdown(Shutdown::Write).await.unwrap();
            threadlib::sleep(Duration::from_millis(20)).await.unwrap();
            assert_eq!(c.read(&mut buf).await.unwrap(), 4);
            let end = threadlib::with_timeout(within(5), c.read(&mut buf)).await;
            assert_eq!(
                end.unwrap(),
                0,
                "a FIN that came with the data ends the stream"
            );

            // Data and a reset together: the reset is reported, not waited for.
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = net.connect(std_l.local_addr().unwrap()).await.unwrap();
            let (std_s, _) = std_l.accept().unwrap();
            (&std_s).write_all(b"bye").unwrap();
            close_with_reset(std_s);
            threadlib::sleep(Duration::from_millis(20)).await.unwrap();
            let first = threadlib::with_timeout(within(5), c.read(&mut buf)).await;
            let second = threadlib::with_timeout(within(5), c.read(&mut buf)).await;
            assert!(
                !matches!(first, Err(Error::TimedOut)) && !matches!(second, Err(Error::TimedOut)),
                "a reset after the data is not waited for: {first:?} then {second:?}"
            );
        })
        .unwrap();
    });
}

/// `discard` on kernel TCP drops bytes where they arrived: never more than asked, the
/// bytes after them read intact, it waits for data as `read` does (after a short
/// discard as after a short read), and it returns 0 at the end of the stream.
#[test]
fn discarded_bytes_are_dropped_in_order_and_the_rest_reads_intact() {
    watchdog(|| {
        threadlib::run(async {
            let (l, addr) = loopback_listener().await;
            let mut c = KernelNet.connect(addr).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let writer = threadlib::spawn(async move {
                s.write_all(&data[..200_000]).await.unwrap();
                // Sent a little later: the discard that drained the socket waits for it.
                threadlib::sleep(Duration::from_millis(20)).await.unwrap();
                s.write_all(&data[200_000..]).await.unwrap();
                s.shutdown(Shutdown::Write).await.unwrap();
                data
            });
            let mut skipped = 0;
            while skipped < 250_000 {
                let n = c.discard(250_000 - skipped).await.unwrap();
                assert!(n > 0 && skipped + n <= 250_000, "{n} after {skipped}");
                skipped += n;
            }
            let mut rest = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match c.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => rest.extend_from_slice(&buf[..n]),
                }
            }
            let data = writer.await.unwrap();
            assert!(
                rest == data[250_000..],
                "read {} bytes after the skip",
                rest.len()
            );
            assert_eq!(c.discard(10).await.unwrap(), 0, "end of stream");
        })
        .unwrap();
    });
}

/// Closes `s` with a reset (`SO_LINGER` of zero).
fn close_with_reset(s: std::net::TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
}

/// `try_write` takes what the socket takes without waiting, says `None` once the
/// socket is full (and the bytes it took arrive in order), takes bytes again after the
/// peer read, and reports a reset connection as an error instead of `None`.
#[test]
fn try_write_takes_what_fits_without_waiting_and_reports_a_reset() {
    watchdog(|| {
        threadlib::run(async {
            let net = KernelNet;
            let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = net.connect(std_l.local_addr().unwrap()).await.unwrap();
            let (std_s, _) = std_l.accept().unwrap();

            assert_eq!(c.try_write(b"hello").unwrap().unwrap(), 5);
            let chunk = [7u8; 64 * 1024];
            let mut taken = 5usize;
            let full = loop {
                match c.try_write(&chunk) {
                    Some(n) => taken += n.unwrap(),
                    None => break true,
                }
                if taken > 64 << 20 {
                    break false;
                }
            };
            assert!(full, "a peer that reads nothing fills the socket");

            // The peer reads everything taken, in order; then there is room again.
            let mut got = vec![0u8; taken];
            std::io::Read::read_exact(&mut &std_s, &mut got).unwrap();
            assert_eq!(&got[..5], b"hello");
            assert!(got[5..].iter().all(|&b| b == 7));
            threadlib::sleep(Duration::from_millis(20)).await.unwrap();
            assert!(matches!(c.try_write(b"more"), Some(Ok(4))));

            close_with_reset(std_s);
            threadlib::sleep(Duration::from_millis(20)).await.unwrap();
            let after = c.try_write(b"x");
            assert!(
                matches!(after, Some(Err(_))),
                "a reset connection is an error, not a full socket: {after:?}"
            );
        })
        .unwrap();
    });
}
