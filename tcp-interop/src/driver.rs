//! A plain blocking loop that connects a [`Stack`] to a TUN device, for the Linux
//! interop tests and the benchmark (the threads of `usernet` are not involved, so a
//! test sees the stack and the kernel alone).
//!
//! The packet side is `usernet`'s [`Device`]: a [`TunDevice`] (the virtio-net framing
//! of an offloaded queue, which checksums to trust, transmit offload), optionally
//! inside an [`Impaired`] device that drops and reorders packets under a seed. Each
//! turn: read every queued packet into the stack, fire due timers, hand every
//! application event to the [`App`], write everything the stack transmits, then wait
//! on the device until the next deadline. The wall clock is read here and passed in;
//! the stack itself never sees it.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use iolib::tun::Tun;
use tcpstack::{Event, Instant, Stack, StackConfig};
use usernet::{Device, DeviceStats, Impaired, ImpairmentStats, TunDevice};

pub use usernet::{random_secret, Impairment};

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

/// The device under the stack: the TUN queue, impaired or not.
#[derive(Debug)]
enum Link {
    Plain(TunDevice),
    Impaired(Box<Impaired<TunDevice>>),
}

impl Link {
    fn device(&mut self) -> &mut dyn Device {
        match self {
            Link::Plain(d) => d,
            Link::Impaired(d) => &mut **d,
        }
    }

    fn tun(&self) -> &TunDevice {
        match self {
            Link::Plain(d) => d,
            Link::Impaired(d) => d.inner(),
        }
    }
}

/// A stack, the TUN queue it talks through, and the wall clock that drives it.
#[derive(Debug)]
pub struct Driver {
    stack: Stack,
    link: Link,
    epoch: std::time::Instant,
}

impl Driver {
    /// A stack configured by `config` (its MTU and transmit offload are set to the
    /// device's), talking through `tun`, with packets impaired in both directions if
    /// `impairment` is given.
    pub fn new(
        tun: Tun,
        mut config: StackConfig,
        impairment: Option<Impairment>,
    ) -> Result<Driver, DriverError> {
        let device = TunDevice::new(tun)?;
        let caps = device.caps();
        config.tcp.mtu = caps.mtu;
        config.tx_offload = caps.tx_offload;
        let stack = Stack::new(config)?;
        let link = match impairment {
            Some(how) => Link::Impaired(Box::new(Impaired::new(device, how))),
            None => Link::Plain(device),
        };
        Ok(Driver {
            stack,
            link,
            epoch: std::time::Instant::now(),
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

    /// The device's packet counts.
    pub fn stats(&self) -> DeviceStats {
        self.link.tun().stats()
    }

    /// What the impairment did as `(inbound, outbound)`, if the link is impaired.
    pub fn shim_stats(&self) -> Option<(ImpairmentStats, ImpairmentStats)> {
        match &self.link {
            Link::Impaired(d) => Some(d.impairment_stats()),
            Link::Plain(_) => None,
        }
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
        let device = self.link.device();
        if let Some(d) = device.next_deadline() {
            wait = wait.min(d.saturating_duration_since(std::time::Instant::now()));
        }
        if let Some(fd) = device.wake_fd() {
            if !wait.is_zero() {
                // SAFETY: the fd belongs to the device, which outlives this call.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                crate::service::wait_readable(fd, wait)?;
            }
        }
        Ok(())
    }

    /// Feeds queued packets to the stack; true when the budget ran out first.
    fn receive(&mut self, now: Instant, wall: std::time::Instant) -> Result<bool, DriverError> {
        let Driver { stack, link, .. } = self;
        let device = link.device();
        for _ in 0..RX_BUDGET {
            let Some(rx) = device.receive(wall)? else {
                return Ok(false);
            };
            if rx.checksum_trusted {
                stack.handle_packet_trusted(now, rx.packet);
            } else {
                stack.handle_packet(now, rx.packet);
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

    /// Writes everything the stack wants to send. A packet the device refuses is
    /// counted there; TCP recovers it.
    fn transmit(&mut self, now: Instant, wall: std::time::Instant) -> Result<(), DriverError> {
        let Driver { stack, link, .. } = self;
        let device = link.device();
        while let Some(t) = stack.poll_transmit(now, device.transmit_buffer()) {
            let _ = device.transmit(t, wall);
        }
        device.flush(wall)?;
        Ok(())
    }
}
