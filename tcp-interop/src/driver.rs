//! The loop that connects a [`Stack`] to a TUN device.
//!
//! Each turn: read every queued packet from the TUN fd (through the optional loss shim)
//! into [`Stack::handle_packet`], fire due timers, hand every application event to the
//! [`App`], write everything [`Stack::poll_transmit`] produces (again through the shim),
//! then wait on the TUN fd until the stack's next deadline. The wall clock is read here
//! and passed in; the stack itself never sees it.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use iolib::tun::{Tun, VnetHeader, OFFLOAD_MAX_PACKET, VNET_HDR_LEN};
use tcpstack::{Event, Instant, Stack, StackConfig};

use crate::shim::{LossShim, ShimStats};

/// Packets read per turn before the stack gets to transmit (keeps ACKs flowing under
/// a flood of input).
const RX_BUDGET: usize = 256;
/// Longest wait per turn, so `done` predicates are re-checked regularly.
const MAX_WAIT: Duration = Duration::from_millis(20);

/// The application side of a driven stack.
pub trait App {
    /// Called for every event the stack reports; may call any application request
    /// (`send`, `recv`, `accept`, `shutdown`, `close`, ...) on `stack`.
    fn on_event(&mut self, stack: &mut Stack, now: Instant, event: Event);
}

/// Errors of the driver loop.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Reading from, writing to or waiting on the TUN device failed.
    #[error("TUN I/O failed: {0}")]
    Io(#[from] io::Error),
    /// The TUN device could not be queried.
    #[error(transparent)]
    Tun(#[from] iolib::tun::TunError),
    /// The stack rejected its configuration.
    #[error(transparent)]
    Config(#[from] tcpstack::ConfigError),
    /// An application request was refused.
    #[error(transparent)]
    Stack(#[from] tcpstack::Error),
    /// [`Driver::run`] reached its time limit before the application was done.
    #[error("not done after {0:?}")]
    TimedOut(Duration),
}

/// Packet counts of the driver (the stack keeps its own, finer counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Packets read from the TUN device.
    pub rx_packets: u64,
    /// Packets written to the TUN device.
    pub tx_packets: u64,
    /// Packets the device refused (queue full or error); TCP recovers them.
    pub tx_errors: u64,
}

/// Loss and reorder rates for the stack's side of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Seed of both directions' decisions.
    pub seed: u64,
    /// Percent of packets dropped, each direction.
    pub drop_percent: f64,
    /// Percent of packets reordered, each direction.
    pub reorder_percent: f64,
}

/// A stack, the TUN queue it talks through, and the wall clock that drives it.
#[derive(Debug)]
pub struct Driver {
    stack: Stack,
    tun: Tun,
    epoch: std::time::Instant,
    rx_buf: Vec<u8>,
    /// Outgoing packets are written past a zero virtio-net header on an offloaded
    /// queue (see `headroom`).
    tx_buf: Vec<u8>,
    /// Shims on the way in (device to stack) and out (stack to device).
    shims: Option<(LossShim, LossShim)>,
    stats: DriverStats,
}

impl Driver {
    /// A stack configured by `config` (its MTU is set to the device's), talking through
    /// `tun`, with packets impaired in both directions if `impairment` is given.
    pub fn new(
        tun: Tun,
        mut config: StackConfig,
        impairment: Option<Impairment>,
    ) -> Result<Driver, DriverError> {
        let mtu = tun.mtu()? as usize;
        config.tcp.mtu = mtu;
        let stack = Stack::new(config)?;
        let shims = impairment.map(|i| {
            (
                LossShim::new(i.seed, i.drop_percent, i.reorder_percent),
                LossShim::new(!i.seed, i.drop_percent, i.reorder_percent),
            )
        });
        let headroom = headroom(&tun);
        let rx_len = if tun.is_offloaded() {
            OFFLOAD_MAX_PACKET
        } else {
            mtu.max(1500)
        };
        Ok(Driver {
            stack,
            tun,
            epoch: std::time::Instant::now(),
            rx_buf: vec![0; rx_len],
            tx_buf: vec![0; headroom + mtu.max(1500)],
            shims,
            stats: DriverStats::default(),
        })
    }

    /// The stack, for application requests outside event handling (listen, connect).
    pub fn stack(&mut self) -> &mut Stack {
        &mut self.stack
    }

    /// The current time on the stack's timeline.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    /// The driver's packet counts.
    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// What the shims did as `(inbound, outbound)`, if the link is impaired.
    pub fn shim_stats(&self) -> Option<(ShimStats, ShimStats)> {
        self.shims.as_ref().map(|(i, o)| (i.stats(), o.stats()))
    }

    /// Runs turns until `done` returns true (checked after every turn) or `limit`
    /// passes.
    pub fn run<A: App>(
        &mut self,
        app: &mut A,
        mut done: impl FnMut(&A, &Stack) -> bool,
        limit: Duration,
    ) -> Result<(), DriverError> {
        let start = std::time::Instant::now();
        loop {
            self.turn(app)?;
            if done(app, &self.stack) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(DriverError::TimedOut(limit));
            }
        }
    }

    /// One turn of the loop: input, timers, events, output, then a wait for the next
    /// packet or deadline (skipped when input is still pending).
    pub fn turn<A: App>(&mut self, app: &mut A) -> Result<(), DriverError> {
        let wall = std::time::Instant::now();
        let now = self.now();
        let busy = self.receive(now, wall)?;
        if self.stack.poll_timeout().is_some_and(|t| t <= now) {
            self.stack.handle_timeout(now);
        }
        // Sending can free buffer space or finish a close, which queues more events.
        while self.dispatch(app, now) {
            self.transmit(now, wall)?;
        }
        self.transmit(now, wall)?;
        if busy {
            return Ok(());
        }
        let mut wait = MAX_WAIT;
        if let Some(t) = self.stack.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(self.now()));
        }
        if let Some((i, o)) = &self.shims {
            for d in [i.deadline(), o.deadline()].into_iter().flatten() {
                wait = wait.min(d.saturating_duration_since(std::time::Instant::now()));
            }
        }
        if !wait.is_zero() {
            crate::service::wait_readable(self.tun.as_fd(), wait)?;
        }
        Ok(())
    }

    /// Feeds queued packets to the stack; true when the budget ran out first.
    fn receive(&mut self, now: Instant, wall: std::time::Instant) -> Result<bool, DriverError> {
        let Driver {
            stack,
            tun,
            rx_buf,
            shims,
            stats,
            ..
        } = self;
        let offloaded = tun.is_offloaded();
        for _ in 0..RX_BUDGET {
            let n = match tun.recv(rx_buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some((inbound, _)) = shims {
                        inbound.poll(wall, |p| deliver(stack, now, p, offloaded));
                    }
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            };
            stats.rx_packets += 1;
            let (packet, trusted) = if offloaded {
                // Packets from the local kernel: a partial checksum is vouched for.
                let trusted = VnetHeader::parse(&rx_buf[..n]).is_some_and(|h| h.checksum_trusted());
                (rx_buf.get(VNET_HDR_LEN..n).unwrap_or(&[]), trusted)
            } else {
                (&rx_buf[..n], false)
            };
            match shims {
                // Delayed packets lose their header; on an offloaded queue every packet
                // comes from the local kernel.
                Some((inbound, _)) => {
                    inbound.pass(packet, wall, |p| deliver(stack, now, p, offloaded))
                }
                None => deliver(stack, now, packet, trusted),
            }
        }
        Ok(true)
    }

    /// Hands every pending event to `app`; false when there was none.
    fn dispatch<A: App>(&mut self, app: &mut A, now: Instant) -> bool {
        let mut any = false;
        while let Some(ev) = self.stack.poll_event() {
            any = true;
            app.on_event(&mut self.stack, now, ev);
        }
        any
    }

    /// Writes everything the stack wants to send.
    fn transmit(&mut self, now: Instant, wall: std::time::Instant) -> Result<(), DriverError> {
        let Driver {
            stack,
            tun,
            tx_buf,
            shims,
            stats,
            ..
        } = self;
        let headroom = headroom(tun);
        let mut write = |p: &[u8]| match tun.send(p) {
            Ok(_) => stats.tx_packets += 1,
            Err(_) => stats.tx_errors += 1,
        };
        if let Some((_, outbound)) = shims {
            outbound.poll(wall, &mut write);
        }
        // On an offloaded queue the front `headroom` bytes stay a zero virtio-net
        // header (no offload asked for), written with each packet.
        while let Some(n) = stack
            .poll_transmit(now, &mut tx_buf[headroom..])
            .map(|t| t.len)
        {
            let packet = &tx_buf[..headroom + n];
            match shims {
                Some((_, outbound)) => outbound.pass(packet, wall, &mut write),
                None => write(packet),
            }
        }
        Ok(())
    }
}

/// Bytes in front of every packet on `tun`: the virtio-net header when offloaded.
fn headroom(tun: &Tun) -> usize {
    if tun.is_offloaded() {
        VNET_HDR_LEN
    } else {
        0
    }
}

/// Hands `packet` to `stack`, without the TCP checksum check if the device vouched
/// for it (`trusted`).
fn deliver(stack: &mut Stack, now: Instant, packet: &[u8], trusted: bool) {
    if trusted {
        stack.handle_packet_trusted(now, packet);
    } else {
        stack.handle_packet(now, packet);
    }
}

/// Sixteen bytes from the kernel's CSPRNG, for [`StackConfig::isn_secret`].
pub fn random_secret() -> io::Result<[u8; 16]> {
    use std::io::Read;
    let mut secret = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}
