//! Where the stack puts an outgoing packet: copied whole into the caller's buffer
//! ([`Stack::poll_transmit`](crate::Stack::poll_transmit)), or its headers into the
//! caller's buffer and its payload left in the connection's send buffer for the caller
//! to gather from ([`Stack::poll_transmit_gathered`](crate::Stack::poll_transmit_gathered)).

use crate::stack::Transmit;

/// A packet from [`Stack::poll_transmit_gathered`](crate::Stack::poll_transmit_gathered):
/// on the wire, `headers` then the payload pieces, in order.
#[derive(Debug, Clone, Copy)]
pub struct Gathered<'a> {
    /// The IPv4 and TCP headers (a packet without payload, such as a reset or an ICMP
    /// echo reply, is all here).
    pub headers: &'a [u8],
    /// The payload, borrowed from the connection's send buffer: two pieces because
    /// that buffer is a ring (either or both may be empty).
    pub payload: [&'a [u8]; 2],
}

/// The destination of one packet.
pub(crate) trait PacketSink {
    /// What [`PacketSink::send`] returns.
    type Sent;

    /// The buffer the headers are written into (a packet without payload whole).
    fn head(&mut self) -> &mut [u8];

    /// The most bytes one packet may take, payload included.
    fn max_len(&self) -> usize;

    /// The part of [`PacketSink::head`] a packet's headers (or a packet without
    /// payload) may take: no more than [`PacketSink::max_len`].
    fn head_room(&mut self) -> &mut [u8] {
        let max_len = self.max_len();
        let head = self.head();
        let room = head.len().min(max_len);
        &mut head[..room]
    }

    /// Whether the sink is too small for some packets: they then wait for a call
    /// with a larger one instead of being dropped.
    fn is_short(&mut self) -> bool {
        self.head_room().len() < crate::MIN_TRANSMIT_BUF
    }

    /// The packet `t` is complete: its headers are at the front of [`PacketSink::head`]
    /// and `payload` (its pieces in order) follows them.
    fn send(&mut self, t: Transmit, payload: [&[u8]; 2]) -> Self::Sent;
}

/// Copies each packet whole into one buffer.
pub(crate) struct CopyInto<'b>(pub &'b mut [u8]);

impl PacketSink for CopyInto<'_> {
    type Sent = ();

    fn head(&mut self) -> &mut [u8] {
        self.0
    }

    fn max_len(&self) -> usize {
        self.0.len()
    }

    fn send(&mut self, t: Transmit, [a, b]: [&[u8]; 2]) {
        let at = t.len - a.len() - b.len();
        self.0[at..at + a.len()].copy_from_slice(a);
        self.0[at + a.len()..t.len].copy_from_slice(b);
    }
}

/// Hands each packet's headers and payload pieces to `send`, copying nothing.
pub(crate) struct GatherInto<'h, F> {
    pub head: &'h mut [u8],
    pub max_len: usize,
    pub send: Option<F>,
}

impl<R, F: FnOnce(Transmit, Gathered<'_>) -> R> PacketSink for GatherInto<'_, F> {
    /// `None` only for a second packet, which no caller asks of one sink.
    type Sent = Option<R>;

    fn head(&mut self) -> &mut [u8] {
        self.head
    }

    fn max_len(&self) -> usize {
        self.max_len
    }

    fn send(&mut self, t: Transmit, payload: [&[u8]; 2]) -> Option<R> {
        let headers = &self.head[..t.len - payload[0].len() - payload[1].len()];
        let send = self.send.take()?;
        Some(send(t, Gathered { headers, payload }))
    }
}
