//! Round-trip time estimation and retransmission timeout (RFC 6298).
