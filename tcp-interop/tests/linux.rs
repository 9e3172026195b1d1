//! Linux interop: our stack and the Linux kernel talk through a TUN device, each test in
//! its own network namespace (made by `setup-scripts/`, removed by a drop guard even when
//! the test fails). The kernel side runs on threads that entered the namespace; the
//! stack runs on the test thread through `tcp_interop::driver::Driver`.
//!
//! Needs root and /dev/net/tun: under `CI=true` a missing capability fails the tests,
//! elsewhere they are skipped with a printed reason.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use tcp_interop::apps::{Exchange, ExchangePlan, Open};
use tcp_interop::driver::{App, Impairment};
use tcp_interop::rig::{bulk_exchange, connect_kernel, exchange_error, Rig, SOCKET_TIMEOUT};
use tcp_interop::workload::{self, Exchanged};
use tcpstack::{ConnError, Event, Instant, Stack};
use testnet::{privileged, KERNEL_ADDR, STACK_ADDR};

/// Bytes each way in the bulk exchanges, with and without loss.
const BULK: u64 = 100 << 20;
/// Bytes each way in the half-close tests.
const SMALL: u64 = 1 << 20;
/// Longest any one test may drive the stack.
const LIMIT: Duration = Duration::from_secs(120);
const PORT: u16 = 7000;

/// 5% of packets dropped and 5% reordered, each direction, on the stack's side.
const LOSSY: Impairment = Impairment {
    seed: 0x5eed,
    drop_percent: 5.0,
    reorder_percent: 5.0,
};

/// A rig for `label`, or `None` (the test is skipped) without the privileges.
fn rig(label: &str, impairment: Option<Impairment>) -> Option<Rig> {
    rig_with(label, impairment, false)
}

/// [`rig`], with the TUN queue opened with checksum and segmentation offload if
/// `offload` (the kernel then hands over TCP super-segments of up to 64 KiB).
fn rig_with(label: &str, impairment: Option<Impairment>, offload: bool) -> Option<Rig> {
    if !privileged(label) {
        return None;
    }
    Some(Rig::new(label, impairment, offload).expect("create the rig"))
}

/// [`Rig::drive`] with the tests' time limit, panicking on failure.
fn drive<A: App, T: Send + 'static>(
    rig: &mut Rig,
    app: &mut A,
    app_done: impl Fn(&A) -> bool,
    kernel: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> T {
    rig.drive(app, app_done, LIMIT, kernel)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn plan(seed: u64, len: u64) -> ExchangePlan {
    ExchangePlan {
        seed,
        len,
        send_after_eof: false,
        abort_after: None,
    }
}

fn assert_exchanged(app: &Exchange, kernel: Exchanged, len: u64, rig: &mut Rig) {
    if let Some(e) = exchange_error(app, &kernel, len) {
        panic!("{e}\n{}", rig.report());
    }
}

/// A kernel client connects to the stack's listener; both send `len` bytes at once.
/// Prints both sides' timeouts, retransmissions and transfer times. On a clean link
/// the kernel must receive every segment of the stack's in order: the device keeps
/// the order the stack sent them in.
fn passive_exchange(label: &str, impairment: Option<Impairment>, offload: bool, len: u64) {
    let Some(mut rig) = rig_with(label, impairment, offload) else {
        return;
    };
    let clean = impairment.is_none();
    let run = bulk_exchange(&mut rig, PORT, len, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let out_of_order = run.linux_counter("TCPOFOQueue");
    let summary = run.summary();
    assert_exchanged(&run.app, run.kernel, len, &mut rig);
    println!("{label}: {summary}\n{}", rig.report());
    if clean {
        assert_eq!(out_of_order, 0, "segments reordered on a clean link");
    }
}

/// The stack connects to a kernel listener; both send `len` bytes at once.
fn active_exchange(label: &str, impairment: Option<Impairment>, offload: bool, len: u64) {
    let Some(mut rig) = rig_with(label, impairment, offload) else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let listen = rig
        .net
        .spawn("kernel-listener", move || -> io::Result<TcpListener> {
            let l = TcpListener::bind((KERNEL_ADDR, 0))?;
            tx.send(l.local_addr()?.port()).ok();
            Ok(l)
        });
    let port = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("kernel listener bound");
    let listener = listen.join().expect("listener thread").expect("bind");
    let now = rig.driver.now();
    let conn = rig
        .driver
        .stack()
        .connect(now, SocketAddrV4::new(KERNEL_ADDR, port), 0)
        .expect("connect");
    let mut app = Exchange::new(Open::Connect(conn), plan(3, len));
    let kernel = drive(&mut rig, &mut app, Exchange::finished, move || {
        let (s, _) = listener.accept()?;
        s.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        workload::exchange(s, 4, len)
    });
    assert!(
        app.events.contains(&Event::Connected(conn)),
        "{:?}",
        app.events
    );
    assert_exchanged(&app, kernel, len, &mut rig);
    println!("{label}: {}", rig.report());
}

#[test]
fn kernel_client_exchanges_100mib_with_stack_listener() {
    passive_exchange("pasv", None, false, BULK);
}

#[test]
fn stack_client_exchanges_100mib_with_kernel_listener() {
    active_exchange("actv", None, false, BULK);
}

#[test]
fn kernel_client_exchange_survives_5pct_loss_and_reorder() {
    passive_exchange("pasvloss", Some(LOSSY), false, BULK);
}

/// At 1% loss and no reordering every retransmission of ours but a loss probe repairs a
/// real loss: Linux reports none of the others as a duplicate (a D-SACK). A
/// retransmission that reached into the next segment, or went to SND.UNA for a loss
/// already repaired, would be reported.
#[test]
fn at_1pct_loss_only_loss_probes_may_arrive_twice() {
    let loss = Impairment {
        seed: 0x5eed,
        drop_percent: 1.0,
        reorder_percent: 0.0,
    };
    let Some(mut rig) = rig("loss1", Some(loss)) else {
        return;
    };
    let run = bulk_exchange(&mut rig, PORT, BULK, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    let (spurious, probes) = (run.stack_spurious(), run.stack.tail_loss_probes);
    let summary = run.summary();
    assert_exchanged(&run.app, run.kernel, BULK, &mut rig);
    println!("loss1: {summary}\n{}", rig.report());
    assert!(
        spurious <= probes,
        "{spurious} of our retransmissions arrived twice, with {probes} loss probes"
    );
}

#[test]
fn stack_client_exchange_survives_5pct_loss_and_reorder() {
    active_exchange("actvloss", Some(LOSSY), false, BULK);
}

/// With checksum and segmentation offload the kernel sends TCP super-segments of up
/// to 64 KiB with partial checksums; the stack takes each as one segment.
#[test]
fn offloaded_tun_exchanges_100mib_both_ways() {
    passive_exchange("pasvoff", None, true, BULK);
    active_exchange("actvoff", None, true, BULK);
}

/// Loss on an offloaded queue drops whole super-segments (up to 44 wire packets).
#[test]
fn offloaded_tun_exchange_survives_5pct_loss_and_reorder() {
    passive_exchange("pasvoffloss", Some(LOSSY), true, BULK);
}

#[test]
fn kernel_half_closes_first_and_stack_keeps_sending() {
    let Some(mut rig) = rig("hckern", None) else {
        return;
    };
    let listener = rig.driver.stack().listen(PORT, 8).expect("listen");
    let mut app = Exchange::new(
        Open::Accept(listener),
        ExchangePlan {
            send_after_eof: true,
            ..plan(5, SMALL)
        },
    );
    let kernel = drive(&mut rig, &mut app, Exchange::finished, || {
        let s = connect_kernel(PORT)?;
        let sent = workload::send_pattern(&s, 6, SMALL)?;
        // Only after our FIN does the stack start sending: this all crosses a
        // half-closed connection.
        let received = workload::read_to_end_digest(&s)?;
        Ok(Exchanged {
            sent,
            received,
            eof_after: None,
        })
    });
    assert!(
        app.events.contains(&Event::PeerClosed(conn_of(&app))),
        "{:?}",
        app.events
    );
    assert_exchanged(&app, kernel, SMALL, &mut rig);
}

#[test]
fn stack_half_closes_first_and_kernel_keeps_sending() {
    let Some(mut rig) = rig("hcstack", None) else {
        return;
    };
    let listener = rig.driver.stack().listen(PORT, 8).expect("listen");
    let mut app = Exchange::new(Open::Accept(listener), plan(7, SMALL));
    let kernel = drive(&mut rig, &mut app, Exchange::finished, || {
        let s = connect_kernel(PORT)?;
        // Read the stack's whole stream (ended by its FIN) before sending anything.
        let received = workload::read_to_end_digest(&s)?;
        let sent = workload::send_pattern(&s, 8, SMALL)?;
        Ok(Exchanged {
            sent,
            received,
            eof_after: None,
        })
    });
    assert_exchanged(&app, kernel, SMALL, &mut rig);
}

/// The connection an accepting exchange got (from its recorded PeerClosed event).
fn conn_of(app: &Exchange) -> tcpstack::ConnId {
    app.events
        .iter()
        .find_map(|e| match e {
            Event::PeerClosed(id) => Some(*id),
            _ => None,
        })
        .expect("the peer closed")
}

#[test]
fn kernel_reset_is_reported_to_the_stack() {
    let Some(mut rig) = rig("rstkern", None) else {
        return;
    };
    let listener = rig.driver.stack().listen(PORT, 8).expect("listen");
    // The stack only reads; it would send after end of stream, which never comes.
    let mut app = Exchange::new(
        Open::Accept(listener),
        ExchangePlan {
            send_after_eof: true,
            ..plan(9, 0)
        },
    );
    drive(&mut rig, &mut app, Exchange::finished, || {
        let s = connect_kernel(PORT)?;
        (&s).write_all(b"about to reset")?;
        // Wait for the data to be acknowledged (it is read by the stack), then close
        // with SO_LINGER 0, which makes the kernel send RST instead of FIN.
        std::thread::sleep(Duration::from_millis(100));
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &linger)?;
        drop(s);
        Ok(())
    });
    assert!(
        app.events.iter().any(|e| matches!(e, Event::Reset(_))),
        "no Reset event: {:?}\n{}",
        app.events,
        rig.report()
    );
    assert_eq!(app.received().0, 14, "the data before the reset arrived");
}

#[test]
fn stack_abort_resets_the_kernel_connection() {
    let Some(mut rig) = rig("rststack", None) else {
        return;
    };
    let listener = rig.driver.stack().listen(PORT, 8).expect("listen");
    let mut app = Exchange::new(
        Open::Accept(listener),
        ExchangePlan {
            abort_after: Some(1),
            send_after_eof: true,
            ..plan(10, 0)
        },
    );
    let err = drive(&mut rig, &mut app, Exchange::finished, || {
        let mut s = connect_kernel(PORT)?;
        s.write_all(b"x")?;
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Err(e) => Ok(e.kind()),
            Ok(n) => Err(io::Error::other(format!(
                "read {n} bytes instead of a reset"
            ))),
        }
    });
    assert_eq!(err, ErrorKind::ConnectionReset);
    assert!(app.error.is_none(), "{:?}", app.error);
}

#[test]
fn closed_ports_refuse_in_both_directions() {
    let Some(mut rig) = rig("refuse", None) else {
        return;
    };
    // Kernel -> stack: nothing listens, the stack answers the SYN with RST.
    let mut idle = Idle::default();
    let err = drive(
        &mut rig,
        &mut idle,
        |_| true,
        || match TcpStream::connect_timeout(
            &SocketAddrV4::new(STACK_ADDR, PORT).into(),
            SOCKET_TIMEOUT,
        ) {
            Err(e) => Ok(e.kind()),
            Ok(_) => Err(io::Error::other("connected to a closed port")),
        },
    );
    assert_eq!(err, ErrorKind::ConnectionRefused);
    // Stack -> kernel: the kernel answers with RST, the stack reports Refused.
    let now = rig.driver.now();
    let conn = rig
        .driver
        .stack()
        .connect(now, SocketAddrV4::new(KERNEL_ADDR, 9), 0)
        .expect("connect");
    let mut app = Exchange::new(Open::Connect(conn), plan(11, 0));
    drive(&mut rig, &mut app, Exchange::finished, || Ok(()));
    assert!(
        app.events.contains(&Event::Error(conn, ConnError::Refused)),
        "{:?}",
        app.events
    );
}

/// An application that ignores every event.
#[derive(Debug, Default)]
struct Idle {
    events: usize,
}

impl App for Idle {
    fn on_event(&mut self, _: &mut Stack, _: Instant, _: Event) {
        self.events += 1;
    }
}

#[test]
fn ping_is_answered() {
    let Some(mut rig) = rig("ping", None) else {
        return;
    };
    let mut idle = Idle::default();
    let replies = drive(
        &mut rig,
        &mut idle,
        |_| true,
        || (0..3u16).map(ping_once).collect::<io::Result<Vec<_>>>(),
    );
    assert_eq!(replies.len(), 3);
    assert_eq!(rig.driver.stack().counters().icmp_echo_requests, 3);
}

/// Sends one ICMP echo request to the stack from a raw socket and waits for the reply;
/// returns the reply's payload.
fn ping_once(seq: u16) -> io::Result<Vec<u8>> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn};
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    )?;
    let ident = 0x7c9d_u16;
    let payload = format!("tcpstack ping {seq}").into_bytes();
    let mut icmp = vec![8u8, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(&payload);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let dst = SockaddrIn::from(SocketAddrV4::new(STACK_ADDR, 0));
    nix::sys::socket::sendto(
        fd.as_raw_fd(),
        &icmp,
        &dst,
        nix::sys::socket::MsgFlags::empty(),
    )?;

    // A raw socket sees every ICMP packet of the namespace, with its IP header.
    let timeout = nix::sys::time::TimeVal::new(5, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        )?;
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let reply = &buf[ihl.min(n)..n];
        if reply.len() >= 8
            && reply[0] == 0
            && reply[4..6] == ident.to_be_bytes()
            && reply[6..8] == seq.to_be_bytes()
        {
            if checksum(reply) != 0 {
                return Err(io::Error::other("echo reply with a bad checksum"));
            }
            if reply[8..] != payload[..] {
                return Err(io::Error::other("echo reply payload differs"));
            }
            return Ok(reply[8..].to_vec());
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
