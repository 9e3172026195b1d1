//! Counters for every drop and notable event, readable through
//! [`Stack::counters`](crate::Stack::counters).

/// Why an incoming packet was dropped before reaching a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than an IPv4 header.
    IpTruncated,
    /// IP version field is not 4.
    IpBadVersion,
    /// IHL below 5 or beyond the packet.
    IpBadHeaderLen,
    /// Total length below the header length or beyond the packet.
    IpBadTotalLen,
    /// IPv4 header checksum mismatch.
    IpBadChecksum,
    /// Destination is not the stack's address.
    IpWrongDestination,
    /// A fragment (MF set or non-zero offset); fragments are not reassembled.
    IpFragment,
    /// Source is no peer's address: broadcast, multicast, 0/8, 240/4, loopback (for a
    /// stack not on loopback) or the stack's own address.
    IpBadSource,
    /// Neither TCP nor ICMP.
    IpUnknownProtocol,
    /// ICMP message shorter than 8 bytes.
    IcmpTruncated,
    /// ICMP checksum mismatch.
    IcmpBadChecksum,
    /// TCP segment shorter than 20 bytes.
    TcpTruncated,
    /// Data offset below 5 words or beyond the segment.
    TcpBadDataOffset,
    /// TCP checksum mismatch.
    TcpBadChecksum,
    /// Source or destination port 0.
    TcpBadPort,
    /// SYN together with FIN or RST.
    TcpBadFlags,
    /// Malformed options (zero length, overrun, wrong length for a known kind).
    TcpBadOptions,
}

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Monotonic event counters of a [`Stack`](crate::Stack).
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Counters {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Counters {
            /// Every counter as `(name, value)`, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$( (stringify!($name), self.$name) ),*].into_iter()
            }
        }
    };
}

counters! {
    /// IPv4 packets handed to the stack.
    ip_rx_packets,
    /// IPv4 packets the stack emitted.
    ip_tx_packets,
    /// Dropped: shorter than an IPv4 header.
    ip_truncated,
    /// Dropped: IP version not 4.
    ip_bad_version,
    /// Dropped: bad IHL.
    ip_bad_header_len,
    /// Dropped: bad total length.
    ip_bad_total_len,
    /// Dropped: bad IPv4 header checksum.
    ip_bad_checksum,
    /// Dropped: not addressed to the stack.
    ip_wrong_destination,
    /// Dropped: IPv4 fragment.
    ip_fragments,
    /// Dropped: a source address no peer has (broadcast, multicast, 0/8, 240/4,
    /// loopback, own).
    ip_bad_source,
    /// Dropped: protocol other than TCP and ICMP.
    ip_unknown_protocol,
    /// ICMP echo requests answered.
    icmp_echo_requests,
    /// ICMP messages other than echo requests and a "fragmentation needed" that was
    /// taken (ignored).
    icmp_ignored,
    /// ICMP "fragmentation needed" taken: a connection's segments shrank to the path's
    /// MTU (RFC 1191); one that matches nothing in flight counts as ignored.
    icmp_frag_needed,
    /// Dropped: truncated ICMP message.
    icmp_truncated,
    /// Dropped: bad ICMP checksum.
    icmp_bad_checksum,
    /// Dropped: outgoing control packet (RST, ICMP reply, SYN-ACK cookie) when the
    /// control queue was full.
    control_queue_overflow,
    /// Dropped: ICMP echo reply longer than the buffer given to
    /// [`Stack::poll_transmit`](crate::Stack::poll_transmit) (or, for
    /// [`Stack::poll_transmit_gathered`](crate::Stack::poll_transmit_gathered), than its
    /// header buffer or packet limit).
    icmp_reply_too_long,
    /// TCP segments received (valid headers).
    tcp_rx_segments,
    /// TCP segments emitted.
    tcp_tx_segments,
    /// Dropped: TCP segment shorter than its fixed header.
    tcp_truncated,
    /// Dropped: data offset too small or too large.
    tcp_bad_data_offset,
    /// Dropped: bad TCP checksum.
    tcp_bad_checksum,
    /// Dropped: port 0.
    tcp_bad_port,
    /// Dropped: SYN with FIN or RST.
    tcp_bad_flags,
    /// Dropped: malformed TCP options.
    tcp_bad_options,
    /// Window scale options above 14 clamped to 14 (RFC 7323 section 2.3).
    tcp_wscale_clamped,
    /// Segments to a port with neither a connection nor a listener.
    tcp_no_socket,
    /// RST segments sent (one the full control queue dropped counts in
    /// `control_queue_overflow` instead).
    rst_sent,
    /// RST segments received.
    rst_received,
    /// RSTs accepted (connection reset).
    rst_accepted,
    /// Dropped: RST outside the receive window.
    rst_out_of_window,
    /// Challenge ACKs sent (RFC 5961).
    challenge_acks,
    /// Challenge ACKs suppressed by the rate limit.
    challenge_acks_suppressed,
    /// Dropped: segment failed the acceptability test (and was answered by an ACK
    /// unless it carried RST).
    out_of_window,
    /// Dropped: timestamp failed PAWS (RFC 7323 section 5).
    paws_rejected,
    /// Dropped: acknowledgment of data never sent (RFC 5961 section 5).
    ack_unsent,
    /// Dropped: acknowledgment older than the RFC 5961 acceptable range.
    ack_too_old,
    /// Dropped: segment without ACK in a synchronized state.
    no_ack,
    /// Dropped: segment that means nothing in the state it reached (neither SYN, ACK
    /// nor RST to a listener; no SYN in SYN-SENT).
    unexpected_segments,
    /// Connections opened actively (connect).
    active_opens,
    /// Connections opened passively (SYN to a listener).
    passive_opens,
    /// Connections that reached ESTABLISHED.
    established,
    /// Active opens refused by an RST.
    connect_refused,
    /// Connections aborted after the retransmission limit.
    timeouts,
    /// Connections aborted by keep-alive.
    keepalive_timeouts,
    /// Connections the application had closed given up, with a reset, after their
    /// peer kept its window shut through `max_orphan_retries` probes.
    orphans_dropped,
    /// Connections aborted by the application.
    aborts,
    /// Connections that went through TIME-WAIT and expired.
    time_wait_expired,
    /// TIME-WAIT connections ended early to make room in a full table.
    time_wait_recycled,
    /// Dropped: SYN while the listener's accept queue was full.
    listen_overflow,
    /// Dropped: SYN because the connection table was full.
    conn_table_full,
    /// SYN-ACKs answered with a SYN cookie (half-open queue full; one the full control
    /// queue dropped counts in `control_queue_overflow` instead).
    syn_cookies_sent,
    /// Connections established from a valid SYN cookie.
    syn_cookies_accepted,
    /// ACKs to a listener that carried an invalid or expired cookie.
    syn_cookies_rejected,
    /// Segments retransmitted (all causes).
    retransmits,
    /// Payload bytes retransmitted.
    retransmitted_bytes,
    /// Retransmission timer expirations.
    rto_expirations,
    /// Fast retransmits (entries into loss recovery).
    fast_retransmits,
    /// Retransmissions RACK found lost (data sent after them was delivered first, and
    /// reordering cannot explain the wait), to be sent again.
    lost_retransmits,
    /// Recoveries started by RACK's reordering timer rather than by an ACK: what was
    /// sent before the latest delivered data outlived the reordering window (RFC 8985
    /// section 6.3).
    reordering_timeouts,
    /// ACKs carrying a D-SACK (RFC 2883): the peer received something twice, so a
    /// retransmission was spurious.
    dsacks_received,
    /// Recoveries whose congestion response was undone: the peer reported every
    /// retransmission as a duplicate, so the loss was reordering (RFC 3708).
    recoveries_undone,
    /// Tail loss probes sent (RFC 8985 section 7).
    tail_loss_probes,
    /// Tail loss probes that repaired a loss (followed by a congestion response).
    tail_loss_probe_recoveries,
    /// Fast retransmits entered early, with fewer than four segments in flight (RFC
    /// 5827; without SACK, where RACK cannot decide).
    early_retransmits,
    /// New segments sent on the first two duplicate ACKs (RFC 3042 limited transmit).
    limited_transmits,
    /// Duplicate ACKs received.
    dup_acks,
    /// SACK blocks received.
    sack_blocks_received,
    /// Segments received out of order.
    out_of_order,
    /// Dropped: out-of-order data that did not fit the reassembly bounds.
    ooo_dropped,
    /// Payload bytes beyond the receive window trimmed away.
    rcv_window_trimmed,
    /// Duplicate payload bytes received (already acknowledged).
    duplicate_bytes,
    /// A peer's FIN, seen out of order, forgotten because data arrived past its place
    /// (stale or forged); a later FIN ends the stream.
    fin_discarded,
    /// Delayed ACKs sent when the delayed-ACK timer fired.
    delayed_acks,
    /// Zero-window probes sent.
    window_probes,
    /// Keep-alive probes sent.
    keepalive_probes,
    /// SYNs retransmitted (active open).
    syn_retransmits,
    /// SYN-ACKs retransmitted to half-open passive connections.
    synack_retransmits,
    /// TCP super-segments sent for the device to cut into MSS-sized segments
    /// (segmentation offload).
    tx_super_segments,
    /// Simultaneous closes: the peer's FIN arrived while ours was unacknowledged.
    simultaneous_closes,
}

impl Counters {
    pub(crate) fn record_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::IpTruncated => &mut self.ip_truncated,
            DropReason::IpBadVersion => &mut self.ip_bad_version,
            DropReason::IpBadHeaderLen => &mut self.ip_bad_header_len,
            DropReason::IpBadTotalLen => &mut self.ip_bad_total_len,
            DropReason::IpBadChecksum => &mut self.ip_bad_checksum,
            DropReason::IpWrongDestination => &mut self.ip_wrong_destination,
            DropReason::IpFragment => &mut self.ip_fragments,
            DropReason::IpBadSource => &mut self.ip_bad_source,
            DropReason::IpUnknownProtocol => &mut self.ip_unknown_protocol,
            DropReason::IcmpTruncated => &mut self.icmp_truncated,
            DropReason::IcmpBadChecksum => &mut self.icmp_bad_checksum,
            DropReason::TcpTruncated => &mut self.tcp_truncated,
            DropReason::TcpBadDataOffset => &mut self.tcp_bad_data_offset,
            DropReason::TcpBadChecksum => &mut self.tcp_bad_checksum,
            DropReason::TcpBadPort => &mut self.tcp_bad_port,
            DropReason::TcpBadFlags => &mut self.tcp_bad_flags,
            DropReason::TcpBadOptions => &mut self.tcp_bad_options,
        };
        *c += 1;
    }
}
