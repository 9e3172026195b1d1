//! One-line descriptions of packets, for the event log and the trace.

/// `sport->dport [flags] seq=.. ack=.. win=.. len=..` for a TCP/IPv4 packet, the size
/// otherwise.
pub fn packet(p: &[u8]) -> String {
    let ihl = usize::from(p.first().map_or(0, |b| b & 0x0f)) * 4;
    let Some(tcp) = p
        .get(ihl..)
        .filter(|t| t.len() >= 20 && p.get(9) == Some(&6))
    else {
        return format!("non-TCP {} bytes", p.len());
    };
    let be32 = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
    let mut f = String::new();
    for (bit, c) in [(1, 'F'), (2, 'S'), (4, 'R'), (8, 'P'), (16, '.')] {
        if tcp[13] & bit != 0 {
            f.push(c);
        }
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    format!(
        "{}->{} [{}] seq={} ack={} win={} len={}",
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
        f,
        be32(4),
        be32(8),
        u16::from_be_bytes([tcp[14], tcp[15]]),
        tcp.len().saturating_sub(doff)
    )
}
