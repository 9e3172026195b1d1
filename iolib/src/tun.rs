//! Linux TUN devices: whole IP packets in and out of a non-blocking fd.
//!
//! A [`Tun`] is one queue of a layer-3 TUN device opened with `IFF_TUN | IFF_NO_PI`:
//! every successful [`Tun::recv`] returns exactly one IP packet the kernel routed to the
//! device, and every [`Tun::send`] injects exactly one IP packet into the kernel, as if
//! it had arrived on that interface. There is no packet-information header. The fd is
//! non-blocking and close-on-exec; wait for readability with epoll or `poll(2)`.
//!
//! # Why direct `ioctl`s
//!
//! The design card names the `tun-tap` crate, but it is only passively maintained and
//! cannot open the queues of an `IFF_MULTI_QUEUE` device. `tun-rs` can, but brings a
//! large, async-runtime-oriented surface (address and route configuration, offload
//! plumbing, several platforms) of which we would use one call. Opening a TUN queue is
//! one `open(2)` and one `TUNSETIFF` `ioctl(2)`, so we do that directly through `libc`
//! and `nix`: multi-queue comes for free, there is no extra dependency, and the unsafe
//! surface is three small, commented blocks.
//!
//! # Offloads
//!
//! [`Tun::open_offloaded`] attaches with `IFF_VNET_HDR` and enables checksum and TCPv4
//! segmentation offload (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4`), as virtio-net
//! does for a VM. Every packet then carries a [`VnetHeader`] ([`VNET_HDR_LEN`] bytes)
//! in front of the IP packet, both ways. The kernel may hand over TCP packets of up to
//! 64 KiB with `gso_type` TCPv4 (one "super-segment" of many MSS-sized ones, never
//! split into wire-sized packets) and with the TCP checksum left partial
//! (`NEEDS_CSUM`): it trusts the reader, as it trusts a NIC, to treat such a checksum
//! as verified. This removes the per-1500-byte-packet cost of the kernel side.
//!
//! # Network namespaces
//!
//! `TUNSETIFF` looks the device name up in the network namespace of the thread that
//! calls [`Tun::open`]. Open the device from a thread that has entered the namespace
//! holding it (`setns(2)`, or run the process under `ip netns exec`); afterwards the fd
//! can be used from any thread. The control socket used by [`Tun::mtu`] is created at
//! the same moment, so it too refers to the device's namespace.
//!
//! If the named device does not exist, the kernel creates a transient one that vanishes
//! when its last queue is closed; a device created beforehand with
//! `ip tuntap add ... mode tun` persists. A persistent device must be opened with the
//! same queueing mode it was created with: [`Tun::open`] for a plain device,
//! [`Tun::open_queues`] for one created with `multi_queue`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::netif::Interfaces;

/// The clone device through which TUN queues are opened.
const CLONE_DEVICE: &CStr = c"/dev/net/tun";

/// Errors opening or configuring a TUN device.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// The interface name is empty, too long (at most 15 bytes), or contains a byte
    /// the kernel rejects in interface names (`/`, `:`, NUL or whitespace).
    #[error("invalid TUN interface name {0:?}")]
    InvalidName(String),
    /// A multi-queue open asked for zero queues.
    #[error("a multi-queue TUN device needs at least one queue")]
    NoQueues,
    /// `/dev/net/tun` could not be opened (missing module, or no permission).
    #[error("cannot open /dev/net/tun: {0}")]
    OpenCloneDevice(#[source] io::Error),
    /// `TUNSETIFF` failed: typically `EPERM` without `CAP_NET_ADMIN`, `EBUSY` when a
    /// single-queue device is already attached, or `EINVAL` when the requested queueing
    /// mode differs from the one the persistent device was created with.
    #[error("cannot attach to TUN device {name:?}: {source}")]
    Attach {
        /// The interface name that was requested.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Creating the control socket or querying the interface failed.
    #[error("cannot query TUN device {name:?}: {source}")]
    Query {
        /// The interface name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Length of the virtio-net header in front of every packet of an offloaded queue
/// (`struct virtio_net_hdr`, the `TUNSETVNETHDRSZ` default).
pub const VNET_HDR_LEN: usize = 10;

/// The largest packet (header included) an offloaded queue reads: a 64 KiB IP packet.
pub const OFFLOAD_MAX_PACKET: usize = VNET_HDR_LEN + 65_535;

/// `struct virtio_net_hdr` of an offloaded queue, in the host's byte order (the
/// kernel's default for TUN on little-endian hosts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHeader {
    /// `VIRTIO_NET_HDR_F_*` bits: [`VnetHeader::NEEDS_CSUM`], [`VnetHeader::DATA_VALID`].
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`: 0 none, [`VnetHeader::GSO_TCPV4`], ...
    pub gso_type: u8,
    /// Bytes of headers (IP + TCP) before the payload, for GSO.
    pub hdr_len: u16,
    /// Payload bytes per segment when the kernel (or NIC) splits a GSO packet.
    pub gso_size: u16,
    /// Where checksumming starts, for `NEEDS_CSUM`.
    pub csum_start: u16,
    /// Where the checksum goes, relative to `csum_start`, for `NEEDS_CSUM`.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// The transport checksum is partial (pseudo-header only): the packet came from
    /// the local kernel, which trusts the reader to treat it as valid.
    pub const NEEDS_CSUM: u8 = 1;
    /// The kernel already verified the transport checksum.
    pub const DATA_VALID: u8 = 2;
    /// `gso_type` of a TCP over IPv4 super-segment.
    pub const GSO_TCPV4: u8 = 1;

    /// Decodes the header at the front of `buf` (`None` if `buf` is too short).
    pub fn parse(buf: &[u8]) -> Option<VnetHeader> {
        let b = buf.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// Encodes the header into the front of `buf`, which must hold [`VNET_HDR_LEN`]
    /// bytes.
    pub fn write(&self, buf: &mut [u8]) {
        buf[0] = self.flags;
        buf[1] = self.gso_type;
        buf[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        buf[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        buf[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        buf[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// Whether the transport checksum needs no verification.
    pub fn checksum_trusted(&self) -> bool {
        self.flags & (Self::NEEDS_CSUM | Self::DATA_VALID) != 0
    }
}

/// One queue of a TUN device carrying raw IP packets (`IFF_TUN | IFF_NO_PI`).
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    /// Every packet carries a [`VnetHeader`] ([`Tun::open_offloaded`]).
    offloaded: bool,
    /// Interface queries in the device's namespace (made when the queue was opened).
    control: Interfaces,
    name: String,
}

impl Tun {
    /// Opens (or creates, if it does not exist) the single-queue TUN device `name` in the
    /// calling thread's network namespace.
    pub fn open(name: &str) -> Result<Tun, TunError> {
        let ifr = ifreq_for(name)?;
        let tun = Tun::attach(name, ifr, 0)?;
        tun.set_offload(0)?;
        Ok(tun)
    }

    /// Opens the single-queue TUN device `name` with checksum and TCPv4 segmentation
    /// offload (see the module documentation): every packet read or written starts
    /// with a [`VnetHeader`], and reads may return up to [`OFFLOAD_MAX_PACKET`] bytes.
    pub fn open_offloaded(name: &str) -> Result<Tun, TunError> {
        let ifr = ifreq_for(name)?;
        let mut tun = Tun::attach(name, ifr, libc::IFF_VNET_HDR)?;
        tun.enable_offload()?;
        Ok(tun)
    }

    /// Turns on the virtio-net header and checksum and TCPv4 segmentation offload on
    /// a queue attached with `IFF_VNET_HDR`.
    fn enable_offload(&mut self) -> Result<(), TunError> {
        let tun = self;
        tun.offloaded = true;
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: `fd` is an attached TUN fd; TUNSETVNETHDRSZ reads one c_int from the
        // pointer, which points to a live local.
        let rc = unsafe { libc::ioctl(tun.fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) };
        if rc < 0 {
            return Err(tun.query_error(io::Error::last_os_error()));
        }
        tun.set_offload(libc::TUN_F_CSUM | libc::TUN_F_TSO4)
    }

    /// Tells the kernel which offloads this queue's reader finishes (`TUNSETOFFLOAD`):
    /// the device's checksum and segmentation features follow, for every queue. A
    /// plain queue asks for none, so that the kernel completes what an offloaded open
    /// of the same (persistent) device left it free not to: a partial checksum
    /// reaching a reader without a virtio-net header would look corrupt.
    fn set_offload(&self, features: libc::c_uint) -> Result<(), TunError> {
        // SAFETY: `fd` is an attached TUN fd; TUNSETOFFLOAD takes the feature bits as
        // the integer argument itself.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(features),
            )
        };
        if rc < 0 {
            return Err(self.query_error(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Whether every packet carries a [`VnetHeader`] ([`Tun::open_offloaded`]).
    pub fn is_offloaded(&self) -> bool {
        self.offloaded
    }

    fn query_error(&self, source: io::Error) -> TunError {
        TunError::Query {
            name: self.name.clone(),
            source,
        }
    }

    /// Opens `queues` queues of the multi-queue TUN device `name` (creating it if it
    /// does not exist). The kernel spreads received flows over the queues by hash, so
    /// each queue can be served by its own core; any queue may be used to send.
    pub fn open_queues(name: &str, queues: usize) -> Result<Vec<Tun>, TunError> {
        Tun::open_queues_with(name, queues, false)
    }

    /// [`Tun::open_queues`], each queue with checksum and segmentation offload if
    /// `offload` (see [`Tun::open_offloaded`]).
    pub fn open_queues_with(
        name: &str,
        queues: usize,
        offload: bool,
    ) -> Result<Vec<Tun>, TunError> {
        if queues == 0 {
            return Err(TunError::NoQueues);
        }
        let ifr = ifreq_for(name)?;
        let extra = if offload { libc::IFF_VNET_HDR } else { 0 };
        (0..queues)
            .map(|_| {
                let mut q = Tun::attach(name, ifr, libc::IFF_MULTI_QUEUE | extra)?;
                if offload {
                    q.enable_offload()?;
                } else {
                    q.set_offload(0)?;
                }
                Ok(q)
            })
            .collect()
    }

    /// Attaches `program` as the device's steering program (`TUNSETSTEERINGEBPF`): for
    /// every packet the kernel sends to the device, the queue is the program's return
    /// value modulo the number of attached queues. The setting belongs to the device,
    /// so any one of its queues may set it; it stays until the device goes away or
    /// another program replaces it. Attach every queue first: a change in the number
    /// of queues changes where each flow goes.
    pub fn set_steering_program(&self, program: &crate::bpf::SocketFilter) -> Result<(), TunError> {
        let fd: libc::c_int = program.as_raw_fd();
        // SAFETY: `self.fd` is an attached TUN fd; TUNSETSTEERINGEBPF reads one c_int
        // (the program's fd) from the pointer, which points to a live local.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNSETSTEERINGEBPF, &fd) };
        if rc < 0 {
            return Err(self.query_error(io::Error::last_os_error()));
        }
        Ok(())
    }

    fn attach(name: &str, mut ifr: libc::ifreq, extra_flags: libc::c_int) -> Result<Tun, TunError> {
        // SAFETY: `CLONE_DEVICE` is a valid NUL-terminated path and the flags are plain
        // open(2) flags; the returned value is checked before it is used as an fd.
        let raw = unsafe {
            libc::open(
                CLONE_DEVICE.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(TunError::OpenCloneDevice(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a freshly opened, valid fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // The flags are a c_short in the kernel ABI; every TUN flag fits in 16 bits.
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | extra_flags) as libc::c_short;
        // SAFETY: `fd` is an open /dev/net/tun fd and `ifr` is a fully initialised
        // `ifreq` that outlives the call; TUNSETIFF reads and writes only that struct.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if rc < 0 {
            return Err(TunError::Attach {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        // The kernel writes back the final name (it differs when `name` held a `%d`).
        let name = name_of(&ifr);

        let control = Interfaces::new().map_err(|e| TunError::Query {
            name: name.clone(),
            source: e.source,
        })?;
        Ok(Tun {
            fd,
            offloaded: false,
            control,
            name,
        })
    }

    /// The interface name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's current MTU: the largest IP packet [`Tun::send`] accepts and
    /// [`Tun::recv`] can return.
    pub fn mtu(&self) -> Result<u32, TunError> {
        self.control
            .mtu(&self.name)
            .map_err(|e| self.query_error(e.source))
    }

    /// Reads one IP packet into `buf` and returns its length.
    ///
    /// Fails with [`io::ErrorKind::WouldBlock`] when no packet is queued. A packet larger
    /// than `buf` is truncated to `buf.len()` (the rest is lost), so size `buf` to at
    /// least the MTU.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), buf) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes one whole IP packet to the kernel.
    ///
    /// Fails with [`io::ErrorKind::WouldBlock`] when the device's queue is full, and with
    /// `EINVAL` or `EMSGSIZE` when the packet is malformed or larger than the MTU allows.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.send_vectored(&[io::IoSlice::new(packet)])
    }

    /// Writes one whole IP packet held in pieces (`writev`): the kernel reads them in
    /// order as one packet, which saves putting them together first. Fails as
    /// [`Tun::send`] does.
    pub fn send_vectored(&self, pieces: &[io::IoSlice<'_>]) -> io::Result<usize> {
        loop {
            match nix::sys::uio::writev(&self.fd, pieces) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A zeroed `ifreq` whose name field holds `name`, after checking the name the way the
/// kernel's `dev_valid_name` does.
fn ifreq_for(name: &str) -> Result<libc::ifreq, TunError> {
    crate::netif::ifreq(name).ok_or_else(|| TunError::InvalidName(name.to_owned()))
}

/// The NUL-terminated interface name the kernel wrote into `ifr`.
fn name_of(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, UdpSocket};
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "a/b",
            "a:b",
            "a b",
            "x\0y",
            ".",
            "..",
            "sixteen-bytes-xx",
        ] {
            assert!(
                matches!(Tun::open(bad), Err(TunError::InvalidName(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(matches!(Tun::open_queues("ok", 0), Err(TunError::NoQueues)));
    }

    #[test]
    fn accepts_longest_name() {
        let ifr = ifreq_for("fifteen-bytes-x").expect("15 bytes is the limit");
        assert_eq!(name_of(&ifr), "fifteen-bytes-x");
    }

    /// Whether this process can create TUN devices and network namespaces. Under
    /// `CI=true` a missing capability is a failure, elsewhere the test is skipped.
    fn privileged(test: &str) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let tun = std::path::Path::new("/dev/net/tun").exists();
        if root && tun {
            return true;
        }
        let reason = format!("{test} needs root and /dev/net/tun (root: {root}, tun: {tun})");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
        eprintln!("skipping: {reason}");
        false
    }

    /// A device name unique to this process and call.
    fn unique_name(prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        format!(
            "{prefix}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Runs `f` on a thread that has moved into a fresh network namespace, which
    /// disappears with the thread and the fds created inside it.
    fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) affects only the calling thread's namespace
            // membership; it touches no memory of ours.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?} failed");
    }

    /// Waits up to two seconds for a packet on `tun` that satisfies `want`.
    fn recv_matching(tun: &Tun, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = vec![0u8; 65536];
        loop {
            match tun.recv(&mut buf) {
                Ok(n) if want(&buf[..n]) => return buf[..n].to_vec(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no matching packet in time");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    fn checksum(data: &[u8]) -> u16 {
        let mut sum: u32 = data
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// An IPv4 ICMP echo request from `src` to `dst`.
    fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64; // TTL
        p[9] = 1; // ICMP
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20] = 8; // echo request
        p[24..26].copy_from_slice(&ident.to_be_bytes());
        p[26..28].copy_from_slice(&1u16.to_be_bytes());
        p[28..].copy_from_slice(payload);
        let c = checksum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn opens_transient_device_with_mtu_and_empty_queue() {
        if !privileged("opens_transient_device_with_mtu_and_empty_queue") {
            return;
        }
        in_fresh_netns(|| {
            let name = unique_name("tt");
            let tun = Tun::open(&name).expect("open");
            assert_eq!(tun.name(), name);
            assert_eq!(tun.mtu().expect("mtu"), 1500);
            ip(&["link", "set", "dev", &name, "mtu", "9000"]);
            assert_eq!(tun.mtu().expect("mtu"), 9000);
            let err = tun.recv(&mut [0u8; 64]).expect_err("nothing queued");
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            // A second single-queue attach to a device in use is refused.
            assert!(matches!(Tun::open(&name), Err(TunError::Attach { .. })));
        });
    }

    #[test]
    fn carries_packets_both_ways() {
        if !privileged("carries_packets_both_ways") {
            return;
        }
        in_fresh_netns(|| {
            let name = unique_name("tp");
            let tun = Tun::open(&name).expect("open");
            ip(&["addr", "add", "10.99.0.1/24", "dev", &name]);
            ip(&["link", "set", "dev", &name, "up"]);
            let kernel = Ipv4Addr::new(10, 99, 0, 1);
            let far = Ipv4Addr::new(10, 99, 0, 2);

            // Kernel -> device: a UDP datagram routed to the far address.
            let sock = UdpSocket::bind((kernel, 0)).expect("bind");
            sock.send_to(b"hello tun", (far, 9)).expect("send_to");
            let pkt = recv_matching(&tun, |p| p.len() > 28 && p[9] == 17);
            assert_eq!(&pkt[12..16], &kernel.octets());
            assert_eq!(&pkt[16..20], &far.octets());
            assert_eq!(&pkt[28..], b"hello tun");

            // Device -> kernel: an echo request the kernel must answer through the device.
            let req = echo_request(far, kernel, 0x4242, b"ping payload");
            assert_eq!(tun.send(&req).expect("send"), req.len());
            let reply = recv_matching(&tun, |p| p.len() >= 28 && p[9] == 1 && p[20] == 0);
            assert_eq!(&reply[16..20], &far.octets());
            assert_eq!(&reply[24..26], &0x4242u16.to_be_bytes());
            assert_eq!(&reply[28..], b"ping payload");
        });
    }

    #[test]
    fn opens_every_queue_of_a_multi_queue_device() {
        if !privileged("opens_every_queue_of_a_multi_queue_device") {
            return;
        }
        in_fresh_netns(|| {
            let name = unique_name("tq");
            let queues = Tun::open_queues(&name, 3).expect("open queues");
            assert_eq!(queues.len(), 3);
            let fds: std::collections::HashSet<RawFd> =
                queues.iter().map(AsRawFd::as_raw_fd).collect();
            assert_eq!(fds.len(), 3);
            assert!(queues.iter().all(|q| q.name() == name));
            // A single-queue attach to a multi-queue device is refused.
            assert!(matches!(Tun::open(&name), Err(TunError::Attach { .. })));
        });
    }

    #[test]
    fn vnet_header_round_trips() {
        let h = VnetHeader {
            flags: VnetHeader::NEEDS_CSUM,
            gso_type: VnetHeader::GSO_TCPV4,
            hdr_len: 52,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut buf = [0u8; VNET_HDR_LEN];
        h.write(&mut buf);
        assert_eq!(VnetHeader::parse(&buf), Some(h));
        assert!(h.checksum_trusted());
        assert!(!VnetHeader::default().checksum_trusted());
        assert_eq!(VnetHeader::parse(&buf[..9]), None);
    }

    /// A plain queue of a persistent device that an offloaded open left with checksum
    /// offload on gets complete checksums: the kernel's UDP datagram arrives with a
    /// checksum that verifies.
    #[test]
    fn a_plain_queue_after_an_offloaded_one_gets_complete_checksums() {
        if !privileged("a_plain_queue_after_an_offloaded_one_gets_complete_checksums") {
            return;
        }
        in_fresh_netns(|| {
            let name = unique_name("tc");
            ip(&["tuntap", "add", "dev", &name, "mode", "tun"]);
            drop(Tun::open_offloaded(&name).expect("open offloaded"));
            let tun = Tun::open(&name).expect("open plain");
            assert!(!tun.is_offloaded());
            ip(&["addr", "add", "10.97.0.1/24", "dev", &name]);
            ip(&["link", "set", "dev", &name, "up"]);
            let (kernel, far) = (Ipv4Addr::new(10, 97, 0, 1), Ipv4Addr::new(10, 97, 0, 2));
            let sock = UdpSocket::bind((kernel, 0)).expect("bind");
            sock.send_to(b"odd-length datagram", (far, 9))
                .expect("send_to");
            let pkt = recv_matching(&tun, |p| p.len() > 28 && p[9] == 17);
            let udp = &pkt[20..];
            let mut pseudo = Vec::from(&pkt[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(udp);
            assert_eq!(
                checksum(&pseudo),
                0,
                "partial UDP checksum: {:02x?}",
                &udp[6..8]
            );
            drop(tun);
            ip(&["tuntap", "del", "dev", &name, "mode", "tun"]);
        });
    }

    /// An offloaded queue puts a virtio-net header before every packet both ways; the
    /// kernel leaves the UDP checksum of its datagram partial and says so.
    #[test]
    fn offloaded_queue_carries_virtio_net_headers() {
        if !privileged("offloaded_queue_carries_virtio_net_headers") {
            return;
        }
        in_fresh_netns(|| {
            let name = unique_name("to");
            let tun = Tun::open_offloaded(&name).expect("open offloaded");
            assert!(tun.is_offloaded());
            ip(&["addr", "add", "10.98.0.1/24", "dev", &name]);
            ip(&["link", "set", "dev", &name, "up"]);
            let kernel = Ipv4Addr::new(10, 98, 0, 1);
            let far = Ipv4Addr::new(10, 98, 0, 2);

            let sock = UdpSocket::bind((kernel, 0)).expect("bind");
            sock.send_to(b"hello vnet", (far, 9)).expect("send_to");
            let pkt = recv_matching(&tun, |p| {
                p.len() > VNET_HDR_LEN + 28 && p[VNET_HDR_LEN + 9] == 17
            });
            let hdr = VnetHeader::parse(&pkt).expect("header");
            assert!(hdr.checksum_trusted(), "{hdr:?}");
            let ip_pkt = &pkt[VNET_HDR_LEN..];
            assert_eq!(&ip_pkt[16..20], &far.octets());
            assert_eq!(&ip_pkt[28..], b"hello vnet");

            // Device -> kernel: a zero header (no offload) before an echo request.
            let mut out = vec![0u8; VNET_HDR_LEN];
            VnetHeader::default().write(&mut out);
            out.extend_from_slice(&echo_request(far, kernel, 0x4343, b"vnet ping"));
            assert_eq!(tun.send(&out).expect("send"), out.len());
            let reply = recv_matching(&tun, |p| {
                p.len() >= VNET_HDR_LEN + 28
                    && p[VNET_HDR_LEN + 9] == 1
                    && p[VNET_HDR_LEN + 20] == 0
            });
            assert_eq!(&reply[VNET_HDR_LEN + 28..], b"vnet ping");
        });
    }
}
