//! A test rig: a throw-away namespace with a TUN device, our stack driving it, and
//! the kernel's side run on threads inside the namespace; plus the bulk exchange under
//! loss that the interop tests assert on and `loss_matrix` measures.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tcpstack::{Counters, StackConfig};
use testnet::{TestNet, STACK_ADDR};

use crate::apps::{Exchange, ExchangePlan, Open};
use crate::driver::{random_secret, App, Driver, DriverError, Impairment};
use crate::workload::{self, Exchanged};

/// Kernel sockets give up after this long without progress: longer than Linux's
/// longest retransmission timeout (`TCP_RTO_MAX`, 120 s), so that under heavy loss a
/// side waiting out its own backed-off timer is not taken for a hang.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(150);

/// A namespace with a TUN device and a stack driving it.
pub struct Rig {
    /// The namespace (the kernel's side runs inside it).
    pub net: TestNet,
    /// The loop between the TUN device and the stack.
    pub driver: Driver,
    /// The congestion control of the kernel's socket in [`bulk_exchange`] (a Linux
    /// module name such as `cubic`, `reno` or `bbr`), or `None` for the host's
    /// default.
    pub kernel_cc: Option<String>,
}

impl Rig {
    /// A rig labelled `label` (part of the namespace's name); the TUN queue is opened
    /// with checksum and segmentation offload if `offload` (the kernel then hands over
    /// TCP super-segments of up to 64 KiB), and the stack's side of the link drops and
    /// reorders packets as `impairment` says.
    pub fn new(
        label: &str,
        impairment: Option<Impairment>,
        offload: bool,
    ) -> Result<Rig, Box<dyn std::error::Error + Send + Sync>> {
        // The stack's defaults, as Linux's: a 200 ms floor on the retransmission
        // timeout, which also stays above the kernel's 40 ms delayed ACK.
        Rig::with_config(label, impairment, offload, |_| {})
    }

    /// [`Rig::new`] with the stack's configuration adjusted by `tweak`.
    pub fn with_config(
        label: &str,
        impairment: Option<Impairment>,
        offload: bool,
        tweak: impl FnOnce(&mut StackConfig),
    ) -> Result<Rig, Box<dyn std::error::Error + Send + Sync>> {
        let net = TestNet::create(label, 1500)?;
        let tun = net.open_tun_with(offload)?;
        let mut config = StackConfig::new(STACK_ADDR, random_secret()?);
        tweak(&mut config);
        let driver = Driver::new(tun, config, impairment)?;
        Ok(Rig {
            net,
            driver,
            kernel_cc: None,
        })
    }

    /// Runs `kernel` on a thread inside the namespace while driving the stack, until
    /// the kernel side returned and `app_done` holds or `limit` passed; returns the
    /// kernel side's result.
    pub fn drive<A: App, T: Send + 'static>(
        &mut self,
        app: &mut A,
        app_done: impl Fn(&A) -> bool,
        limit: Duration,
        kernel: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T, RigError> {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let handle = self.net.spawn("kernel", move || {
            let r = kernel();
            flag.store(true, Ordering::Release);
            r
        });
        let driven = self.driver.run(
            app,
            |app, _| finished.load(Ordering::Acquire) && app_done(app),
            limit,
        );
        let kernel_result = handle.join().expect("kernel side panicked");
        if let Err(e) = driven {
            return Err(RigError::Driver {
                source: e,
                kernel: kernel_result.err().map(|e| e.to_string()),
                report: self.report(),
            });
        }
        kernel_result.map_err(|source| RigError::Kernel {
            source,
            report: self.report(),
        })
    }

    /// The stack's non-zero counters and the device's and loss shim's figures, for
    /// failure messages.
    pub fn report(&mut self) -> String {
        let counters: Vec<String> = self
            .driver
            .stack()
            .counters()
            .iter()
            .filter(|&(_, v)| v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "driver: {:?}\nshim: {:?}\nstack: {}",
            self.driver.stats(),
            self.driver.shim_stats(),
            counters.join(" ")
        )
    }

    /// The kernel's TCP counters in the namespace (`/proc/net/netstat`'s `TcpExt` and
    /// `/proc/net/snmp`'s `Tcp`), by name: the namespace is the rig's own, so they
    /// count its connections only.
    pub fn kernel_counters(&self) -> io::Result<BTreeMap<String, u64>> {
        self.net
            .run(|| -> io::Result<BTreeMap<String, u64>> {
                let mut all = BTreeMap::new();
                for file in ["netstat", "snmp"] {
                    let text = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))?;
                    all.extend(parse_proc_counters(&text));
                }
                Ok(all)
            })
            .map_err(io::Error::other)?
    }
}

/// Parses `/proc/net/netstat`-style text (pairs of lines: `Group: names...` then
/// `Group: values...`) into `name -> value` for the `TcpExt` and `Tcp` groups.
fn parse_proc_counters(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((group, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if group != "TcpExt" && group != "Tcp" {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                out.insert(n.to_owned(), v.max(0) as u64);
            }
        }
    }
    out
}

/// Why a rig run failed.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// Driving the stack failed (or reached its time limit).
    #[error("driving the stack failed: {source}\nkernel side: {kernel:?}\n{report}")]
    Driver {
        /// The driver's error.
        source: DriverError,
        /// The kernel side's error, if it failed too.
        kernel: Option<String>,
        /// [`Rig::report`] at the failure.
        report: String,
    },
    /// The kernel side failed.
    #[error("kernel side failed: {source}\n{report}")]
    Kernel {
        /// Its error.
        source: io::Error,
        /// [`Rig::report`] at the failure.
        report: String,
    },
}

/// Connects a kernel socket (inside the rig's namespace) to the stack's `port`, with
/// the host's default congestion control.
pub fn connect_kernel(port: u16) -> io::Result<TcpStream> {
    connect_kernel_with(port, None)
}

/// [`connect_kernel`] with the congestion control named `cc` (a Linux module name;
/// root may pick any the kernel has, not only the host's allowed ones).
pub fn connect_kernel_with(port: u16, cc: Option<&str>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(cc) = cc {
        socket
            .set_tcp_congestion(cc.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("congestion control {cc}: {e}")))?;
    }
    socket.connect_timeout(&SocketAddrV4::new(STACK_ADDR, port).into(), SOCKET_TIMEOUT)?;
    let s = TcpStream::from(socket);
    s.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    Ok(s)
}

/// What is wrong with an exchange of `len` bytes each way, if anything: a stack error,
/// a side that did not send everything, or a direction whose bytes (length and hash)
/// differ from what was sent.
pub fn exchange_error(app: &Exchange, kernel: &Exchanged, len: u64) -> Option<String> {
    if let Some(e) = &app.error {
        return Some(format!("stack error {e:?}"));
    }
    if kernel.sent.0 != len {
        return Some(format!("kernel sent {} of {len} bytes", kernel.sent.0));
    }
    if app.sent().0 != len {
        return Some(format!("stack sent {} of {len} bytes", app.sent().0));
    }
    if app.received() != kernel.sent {
        return Some(format!(
            "kernel -> stack bytes: {:?} received, {:?} sent",
            app.received(),
            kernel.sent
        ));
    }
    if kernel.received != app.sent() {
        return Some(format!(
            "stack -> kernel bytes: {:?} received, {:?} sent",
            kernel.received,
            app.sent()
        ));
    }
    None
}

/// What a bulk exchange between a kernel client and the stack's listener did: both
/// sides' data, how long each direction took and how often each side timed out.
#[derive(Debug)]
pub struct BulkExchange {
    /// The stack's side.
    pub app: Exchange,
    /// The kernel's side.
    pub kernel: Exchanged,
    /// The stack's counters after the exchange.
    pub stack: Counters,
    /// The kernel's TCP counters after the exchange (see [`Rig::kernel_counters`]).
    pub linux: BTreeMap<String, u64>,
}

impl BulkExchange {
    /// Retransmission timeouts on the stack's side.
    pub fn stack_rtos(&self) -> u64 {
        self.stack.rto_expirations
    }

    /// Retransmission timeouts on the kernel's side.
    pub fn linux_rtos(&self) -> u64 {
        self.linux_counter("TCPTimeouts")
    }

    /// Time the stack's direction took (the kernel read its end of stream).
    pub fn stack_transfer(&self) -> Option<Duration> {
        self.kernel.eof_after
    }

    /// Time the kernel's direction took (the stack read its end of stream).
    pub fn linux_transfer(&self) -> Option<Duration> {
        self.app.eof_after()
    }

    /// The stack's spurious retransmissions as the kernel saw them: duplicate data it
    /// reported with D-SACK (RFC 2883).
    pub fn stack_spurious(&self) -> u64 {
        self.linux_counter("TCPDSACKOldSent") + self.linux_counter("TCPDSACKOfoSent")
    }

    /// Duplicate payload bytes the stack received: the kernel's spurious
    /// retransmissions (the stack also reports each to the kernel with a D-SACK).
    pub fn linux_duplicate_bytes(&self) -> u64 {
        self.stack.duplicate_bytes
    }

    /// A kernel counter by name (0 if the kernel has no such counter).
    pub fn linux_counter(&self, name: &str) -> u64 {
        self.linux.get(name).copied().unwrap_or(0)
    }

    /// One line with both sides' timeouts, spurious retransmissions and times.
    pub fn summary(&self) -> String {
        let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
        format!(
            "RTOs: stack {} linux {}; retransmitted segments: stack {} linux {}; \
             spurious: stack {} D-SACKs, linux {} duplicate bytes; \
             transfer: stack {:.2} s linux {:.2} s; loss probes: stack {} linux {}",
            self.stack_rtos(),
            self.linux_rtos(),
            self.stack.retransmits,
            self.linux_counter("RetransSegs"),
            self.stack_spurious(),
            self.linux_duplicate_bytes(),
            secs(self.stack_transfer()),
            secs(self.linux_transfer()),
            self.stack.tail_loss_probes,
            self.linux_counter("TCPLossProbes"),
        )
    }
}

/// A kernel client connects to the stack's listener on `port` and both send `len`
/// bytes at once (seeded patterns, checked by digest by the caller).
pub fn bulk_exchange(
    rig: &mut Rig,
    port: u16,
    len: u64,
    limit: Duration,
) -> Result<BulkExchange, RigError> {
    let listener = rig
        .driver
        .stack()
        .listen(port, 8)
        .map_err(|e| RigError::Driver {
            source: e.into(),
            kernel: None,
            report: String::new(),
        })?;
    let plan = ExchangePlan {
        seed: 1,
        len,
        send_after_eof: false,
        abort_after: None,
    };
    let mut app = Exchange::new(Open::Accept(listener), plan);
    let cc = rig.kernel_cc.clone();
    let kernel = rig.drive(&mut app, Exchange::finished, limit, move || {
        workload::exchange(connect_kernel_with(port, cc.as_deref())?, 2, len)
    })?;
    let linux = rig.kernel_counters().map_err(|source| RigError::Kernel {
        source,
        report: String::new(),
    })?;
    let stack = rig.driver.stack().counters().clone();
    Ok(BulkExchange {
        app,
        kernel,
        stack,
        linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_counters_are_read_by_name() {
        let text = "TcpExt: SyncookiesSent TCPTimeouts\nTcpExt: 0 7\n\
                    IpExt: InNoRoutes\nIpExt: 3\nTcp: RtoAlgorithm RetransSegs\nTcp: 1 42\n";
        let c = parse_proc_counters(text);
        assert_eq!(c.get("TCPTimeouts"), Some(&7));
        assert_eq!(c.get("RetransSegs"), Some(&42));
        assert_eq!(c.get("InNoRoutes"), None);
    }
}
