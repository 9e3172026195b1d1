//! The bench's anchors work end to end: a kernel client in a fresh namespace drives the
//! smoltcp server over TUN, and the kernel servers on the namespace's loopback.
//! Needs root and /dev/net/tun (fails under `CI=true` without them, skips elsewhere).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tcp_interop::service::{Service, ECHO_PORT, SINK_PORT};
use tcp_interop::smoltcp_server::{self, SmoltcpServerConfig};
use tcp_interop::workload;
use testnet::{privileged, TestNet, STACK_ADDR};

fn smoltcp_serves(service: Service, port: u16, client: impl FnOnce(SocketAddr) + Send + 'static) {
    let net = TestNet::create("anchor", 1500).expect("test network");
    let tun = net.open_tun().expect("open TUN");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let config = SmoltcpServerConfig {
        port,
        service,
        sockets: 4,
        buffer: 64 * 1024,
    };
    let server = std::thread::spawn(move || smoltcp_server::run(tun, config, &flag));
    let addr = SocketAddr::from((STACK_ADDR, port));
    net.spawn("client", move || -> std::io::Result<()> {
        client(addr);
        Ok(())
    })
    .join()
    .expect("client passed")
    .expect("client ran in the namespace");
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server thread").expect("server loop");
}

#[test]
fn smoltcp_anchor_sinks_a_bulk_transfer() {
    if !privileged("smoltcp_anchor_sinks_a_bulk_transfer") {
        return;
    }
    smoltcp_serves(Service::Sink, SINK_PORT, |addr| {
        workload::bulk_send(addr, 16 << 20).expect("bulk transfer counted exactly");
    });
}

#[test]
fn smoltcp_anchor_echoes_on_several_connections() {
    if !privileged("smoltcp_anchor_echoes_on_several_connections") {
        return;
    }
    smoltcp_serves(Service::Echo, ECHO_PORT, |addr| {
        let pp = workload::pingpong(addr, 4, Duration::ZERO, Duration::from_millis(200))
            .expect("ping-pong");
        assert!(pp.round_trips > 0);
    });
}

#[test]
fn kernel_anchor_runs_inside_a_namespace() {
    if !privileged("kernel_anchor_runs_inside_a_namespace") {
        return;
    }
    let net = TestNet::create("kanchor", 1500).expect("test network");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let (tx, rx) = std::sync::mpsc::channel();
    let server = net.spawn("sink", move || -> std::io::Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        tx.send(listener.local_addr()?).ok();
        workload::kernel_sink_server(listener, &flag)
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server bound");
    net.spawn("client", move || {
        workload::bulk_send(addr, 4 << 20).map(drop)
    })
    .join()
    .expect("client thread")
    .expect("bulk transfer counted exactly");
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server thread").expect("server loop");
}
