//! Application events, connection states and per-connection information.

use core::net::SocketAddrV4;
use core::time::Duration;

use crate::error::ConnError;
use crate::handle::{ConnId, ListenerId};

/// Something the application may want to act on, from
/// [`Stack::poll_event`](crate::Stack::poll_event).
///
/// Readiness events are edge-triggered hints: `Readable` is queued once when data (or
/// end of stream) becomes available and again only after a [`recv`](crate::Stack::recv)
/// returned [`WouldBlock`](crate::Error::WouldBlock) or drained the buffer; `Writable`
/// likewise after [`send`](crate::Stack::send) could not take everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A listener has a connection ready to [`accept`](crate::Stack::accept).
    Incoming(ListenerId),
    /// An actively opened connection reached ESTABLISHED.
    Connected(ConnId),
    /// Data (or end of stream) can be read.
    Readable(ConnId),
    /// Send buffer space became available.
    Writable(ConnId),
    /// The peer sent FIN: after the buffered data, reads return end of stream.
    PeerClosed(ConnId),
    /// The connection finished (both directions closed and acknowledged, or TIME-WAIT
    /// entered); the handle stays valid until [`close`](crate::Stack::close)d.
    Closed(ConnId),
    /// The peer reset the connection.
    Reset(ConnId),
    /// The connection failed for another reason (refused, timed out, aborted).
    Error(ConnId, ConnError),
}

/// TCP connection states (RFC 9293 section 3.3.2). LISTEN belongs to listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and answered, waiting for the ACK.
    SynReceived,
    /// Open in both directions.
    Established,
    /// Our FIN sent, not yet acknowledged; peer still open.
    FinWait1,
    /// Our FIN acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// Peer's FIN received; our side still open.
    CloseWait,
    /// Both FINs sent (simultaneous close); ours not yet acknowledged.
    Closing,
    /// Peer closed first, our FIN sent, waiting for its acknowledgment.
    LastAck,
    /// Both closed; waiting out 2*MSL.
    TimeWait,
    /// No connection.
    Closed,
}

impl TcpState {
    /// Whether the handshake completed (a synchronized state).
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            TcpState::SynSent | TcpState::SynReceived | TcpState::Closed
        )
    }
}

/// A snapshot of one connection, from [`Stack::conn_info`](crate::Stack::conn_info).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// Current state.
    pub state: TcpState,
    /// Local endpoint.
    pub local: SocketAddrV4,
    /// Remote endpoint.
    pub remote: SocketAddrV4,
    /// Effective send MSS (payload bytes per segment).
    pub mss: u16,
    /// Whether window scaling is in use, and the shifts `(send, receive)`.
    pub window_scale: Option<(u8, u8)>,
    /// Whether timestamps are in use.
    pub timestamps: bool,
    /// Whether SACK is in use.
    pub sack: bool,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Congestion window in bytes.
    pub cwnd: u32,
    /// Slow-start threshold in bytes.
    pub ssthresh: u32,
    /// Peer's advertised window in bytes (scaled).
    pub send_window: u32,
    /// Bytes sent but not yet acknowledged.
    pub bytes_in_flight: u32,
    /// Bytes queued in the send buffer (unacknowledged plus unsent).
    pub send_queued: usize,
    /// Bytes readable by the application.
    pub recv_queued: usize,
    /// Bytes held out of order for reassembly.
    pub ooo_bytes: usize,
    /// Window currently advertised to the peer, in bytes.
    pub recv_window: u32,
    /// Payload bytes the peer has acknowledged, in total.
    pub bytes_acked: u64,
    /// Payload bytes received in order (delivered or waiting to be read), in total.
    pub bytes_received: u64,
    /// Segments this connection retransmitted, in total.
    pub retransmits: u64,
    /// Retransmissions of the current oldest unacknowledged segment.
    pub retries: u32,
    /// Transmit records held for loss detection (with SACK): about one per segment in
    /// flight, never more than `2 * send_buffer / 536 + 16`.
    pub tx_records: usize,
    /// The error that ended the connection, if any.
    pub error: Option<ConnError>,
}
