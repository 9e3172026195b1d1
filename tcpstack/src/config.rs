//! Stack and connection configuration.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::cc::CcConfig;
use crate::error::ConfigError;

/// Keep-alive parameters (RFC 9293 section 3.8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes after which the connection is aborted.
    pub probes: u32,
}

impl Default for KeepAlive {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// Per-connection TCP parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Largest IPv4 packet the link carries; the advertised MSS is `mtu - 40`.
    pub mtu: usize,
    /// Send buffer bytes per connection (data queued but not yet acknowledged).
    pub send_buffer: usize,
    /// Receive buffer bytes per connection; bounds the advertised window and the
    /// memory of out-of-order reassembly, which is placed inside this buffer.
    pub recv_buffer: usize,
    /// Offer and accept window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Offer and accept timestamps (RFC 7323), with PAWS.
    pub timestamps: bool,
    /// Offer and accept selective acknowledgments (RFC 2018, RFC 6675).
    pub sack: bool,
    /// Congestion control: algorithm (NewReno or CUBIC) and initial window.
    pub congestion: CcConfig,
    /// RTO before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Lower bound of the RTO (RFC 6298 suggests 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Upper bound of the RTO after backoff.
    pub max_rto: Duration,
    /// Retransmissions of data (or FIN) before the connection is aborted.
    pub max_retries: u32,
    /// Retransmissions of a SYN before an active open fails.
    pub max_syn_retries: u32,
    /// Retransmissions of a SYN-ACK before a half-open passive connection is dropped
    /// (Linux's `tcp_synack_retries`). Bounds what a flood of spoofed SYNs makes the
    /// stack send.
    pub max_synack_retries: u32,
    /// Delayed-ACK timeout; `None` acknowledges every segment at once.
    pub delayed_ack: Option<Duration>,
    /// Disable Nagle's algorithm by default on new connections.
    pub nodelay: bool,
    /// Keep-alive for new connections; `None` disables it.
    pub keepalive: Option<KeepAlive>,
    /// TIME-WAIT duration (2*MSL; RFC 9293 suggests 2 minutes, Linux uses 60 s).
    pub time_wait: Duration,
    /// How long a connection the application has closed may stay in FIN-WAIT-2
    /// waiting for the peer's FIN.
    pub fin_wait2_timeout: Duration,
    /// Least time between two challenge ACKs of one connection (RFC 5961 section 7;
    /// Linux's `tcp_invalid_ratelimit`).
    pub challenge_ack_interval: Duration,
    /// Challenge ACKs allowed per second for the whole stack, on top of
    /// `challenge_ack_interval`; `u32::MAX` (the default, as Linux's since 6.0) sets
    /// none. A budget every connection shares tells an off-path attacker, who can
    /// spend it, whether a guessed connection exists (CVE-2016-5696): so each second's
    /// budget is drawn, keyed by the stack's secret, between half and one and a half
    /// times this, as Linux does.
    pub challenge_ack_limit: u32,
    /// `max_retries` of a connection the application has closed (Linux's
    /// `tcp_orphan_retries`; the smaller of the two counts), and the window probes it
    /// sends before it gives up with a reset however its peer answers: a closed
    /// connection is not held, with its unsent data, for a peer that never reads. A
    /// connection still open keeps probing a peer that answers (RFC 9293 section
    /// 3.8.6.1); an unanswered probe counts as an unanswered retransmission.
    pub max_orphan_retries: u32,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            mtu: 1500,
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            window_scaling: true,
            timestamps: true,
            sack: true,
            congestion: CcConfig::default(),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_retries: 15,
            max_syn_retries: 6,
            max_synack_retries: 5,
            delayed_ack: Some(Duration::from_millis(40)),
            nodelay: false,
            keepalive: None,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            challenge_ack_interval: Duration::from_millis(500),
            challenge_ack_limit: u32::MAX,
            max_orphan_retries: 8,
        }
    }
}

impl TcpConfig {
    /// The MSS this stack advertises: the MTU minus IPv4 and TCP headers.
    pub fn mss(&self) -> u16 {
        mss_for_mtu(self.mtu)
    }
}

/// The MSS of a path whose packets hold `mtu` bytes: the MTU minus the IPv4 and TCP
/// headers.
pub(crate) fn mss_for_mtu(mtu: usize) -> u16 {
    u16::try_from(mtu.saturating_sub(40)).unwrap_or(u16::MAX)
}

/// What the packet device finishes for the stack on transmit, as a TUN queue with
/// `IFF_VNET_HDR` or a virtio NIC does ([`Transmit`](crate::Transmit) says, per packet,
/// what is left to do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The device completes TCP checksums: the stack leaves the pseudo-header sum in
    /// the checksum field (a partial checksum) instead of summing the segment.
    pub checksum: bool,
    /// The largest IPv4 packet the device cuts into MSS-sized TCP segments (TCP
    /// segmentation offload), at most 65535; 0 turns it off. Needs `checksum`.
    pub segmentation: usize,
}

/// Configuration of a [`Stack`](crate::Stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfig {
    /// The stack's IPv4 address; packets to other addresses are dropped.
    pub addr: Ipv4Addr,
    /// Secret keying initial sequence numbers (RFC 6528), SYN cookies, timestamp
    /// offsets and the connection-table hash. Draw it from a CSPRNG.
    pub isn_secret: [u8; 16],
    /// TCP parameters for new connections.
    pub tcp: TcpConfig,
    /// Most connections (all states, including half-open and TIME-WAIT).
    pub max_connections: usize,
    /// Most half-open (SYN-RECEIVED) connections per listener before SYN cookies are
    /// used instead of state.
    pub max_half_open: usize,
    /// Answer SYNs with cookies when the half-open queue is full (otherwise drop them).
    pub syn_cookies: bool,
    /// Most queued outgoing control packets (RSTs, ICMP replies, cookie SYN-ACKs);
    /// beyond it they are dropped and counted.
    pub max_control_queue: usize,
    /// Time-to-live of emitted packets.
    pub ttl: u8,
    /// Answer ICMP echo requests.
    pub icmp_echo: bool,
    /// Ephemeral port range for [`Stack::connect`](crate::Stack::connect).
    pub ephemeral_ports: (u16, u16),
    /// What the device finishes on transmit (nothing by default).
    pub tx_offload: TxOffload,
    /// Most bytes of buffer storage kept for reuse after connections went idle (a
    /// connection whose queues are empty holds none).
    pub buffer_pool_bytes: usize,
}

impl StackConfig {
    /// A configuration with defaults for everything but the address and secret.
    pub fn new(addr: Ipv4Addr, isn_secret: [u8; 16]) -> Self {
        Self {
            addr,
            isn_secret,
            tcp: TcpConfig::default(),
            max_connections: 65536,
            max_half_open: 256,
            syn_cookies: true,
            max_control_queue: 256,
            ttl: 64,
            icmp_echo: true,
            ephemeral_ports: (49152, 65535),
            tx_offload: TxOffload::default(),
            buffer_pool_bytes: 16 << 20,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.tcp;
        if !(88..=65535).contains(&t.mtu) {
            return Err(ConfigError("tcp.mtu must be within 88..=65535"));
        }
        if t.send_buffer == 0 || t.recv_buffer == 0 {
            return Err(ConfigError("buffers must be non-empty"));
        }
        if t.recv_buffer > (1 << 30) || t.send_buffer > (1 << 30) {
            return Err(ConfigError("buffers must be at most 1 GiB"));
        }
        if t.min_rto.is_zero() || t.min_rto > t.max_rto || t.initial_rto.is_zero() {
            return Err(ConfigError(
                "need 0 < min_rto <= max_rto and initial_rto > 0",
            ));
        }
        if t.congestion.initial_window == Some(0) {
            return Err(ConfigError("congestion.initial_window must be positive"));
        }
        if self.ephemeral_ports.0 == 0 || self.ephemeral_ports.0 > self.ephemeral_ports.1 {
            return Err(ConfigError(
                "ephemeral_ports must be a non-empty range without 0",
            ));
        }
        if self.max_connections == 0 || self.max_connections > u32::MAX as usize / 2 {
            return Err(ConfigError("max_connections out of range"));
        }
        let o = self.tx_offload;
        if o.segmentation > usize::from(u16::MAX) {
            return Err(ConfigError("tx_offload.segmentation must be at most 65535"));
        }
        if o.segmentation > 0 && (!o.checksum || o.segmentation < t.mtu) {
            return Err(ConfigError(
                "tx_offload.segmentation needs checksum offload and must be at least the MTU",
            ));
        }
        if self.ttl == 0 {
            return Err(ConfigError("ttl must be positive"));
        }
        Ok(())
    }
}
