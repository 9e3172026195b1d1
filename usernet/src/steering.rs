//! Which core owns a TCP flow when several TUN queues share a device, decided the same
//! way by the kernel (a steering program) and by the stacks (the port picker).
//!
//! Without a steering program the kernel picks a queue from a flow table it learns
//! from our writes, which misses the SYN-ACK to an active open (it is produced while
//! our SYN is still being written) and forgets flows after 3 s or 4096 entries. So the
//! device gets [`Steering::program`]: for every TCP packet the kernel sends to it, the
//! queue is `(source port + destination port) % queues`; other packets (ICMP,
//! fragments without a TCP header) go to queue 0. The sum is symmetric, so the stack
//! computes the same value from its own side of the flow ([`Steering::queue_of`]):
//! a passive open lands on the core whose queue received the SYN, and an active open
//! picks its local port so that the replies come back to the opening core
//! ([`Steering::port_for`]).

use iolib::bpf::{Insn, Size, SocketFilter, NET_OFF};

/// The steering rule for a device with `queues` queues (one per core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steering {
    queues: u16,
}

impl Steering {
    /// The rule for `queues` queues (at least 1).
    pub fn new(queues: usize) -> Steering {
        Steering {
            queues: queues.clamp(1, usize::from(u16::MAX)) as u16,
        }
    }

    /// Number of queues.
    pub fn queues(&self) -> usize {
        usize::from(self.queues)
    }

    /// The queue (core) that owns the TCP flow between `local_port` and `remote_port`.
    pub fn queue_of(&self, local_port: u16, remote_port: u16) -> usize {
        ((u32::from(local_port) + u32::from(remote_port)) % u32::from(self.queues)) as usize
    }

    /// The queue the steering program picks for `packet`, an IPv4 packet the kernel
    /// sent to the device.
    pub fn queue_of_packet(&self, packet: &[u8]) -> usize {
        if packet.len() < 20
            || packet[9] != 6
            || u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff != 0
        {
            return 0;
        }
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        match packet.get(ihl..ihl + 4) {
            Some(p) => self.queue_of(
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            ),
            None => 0,
        }
    }

    /// A local port in `lo..=hi` whose flows to `remote_port` are owned by `queue`,
    /// the `k`-th such port counting from the bottom of the range (wrapping), so that
    /// successive `k` walk through all of them.
    pub fn port_for(&self, queue: usize, remote_port: u16, (lo, hi): (u16, u16), k: u32) -> u16 {
        let n = u32::from(self.queues);
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        // First port >= lo with (port + remote) % n == queue.
        let want = (queue as u32 + n - (u32::from(remote_port) % n)) % n;
        let first = lo + (want + n - lo % n) % n;
        let count = if first > hi { 0 } else { (hi - first) / n + 1 };
        if count == 0 {
            return lo as u16;
        }
        (first + (k % count) * n) as u16
    }

    /// The steering program: for a TCP packet (not a later fragment) the sum of its
    /// ports modulo the number of queues, for anything else 0.
    pub fn program(&self) -> Vec<Insn> {
        const R0: u8 = 0;
        const RET0: i16 = 16;
        vec![
            // 0: the context in r6, as packet loads need.
            Insn::mov_reg(6, 1),
            // 1-2: not TCP: queue 0.
            Insn::load_abs(Size::Byte, NET_OFF + 9),
            Insn::jne_imm(R0, 6, RET0 - 3),
            // 3-5: a fragment other than the first carries no TCP header: queue 0.
            Insn::load_abs(Size::Half, NET_OFF + 6),
            Insn::and_imm(R0, 0x1fff),
            Insn::jne_imm(R0, 0, RET0 - 6),
            // 6-9: r7 = IPv4 header length.
            Insn::load_abs(Size::Byte, NET_OFF),
            Insn::and_imm(R0, 0x0f),
            Insn::lsh_imm(R0, 2),
            Insn::mov_reg(7, R0),
            // 10-13: r0 = source port + destination port.
            Insn::load_ind(Size::Half, 7, NET_OFF),
            Insn::mov_reg(8, R0),
            Insn::load_ind(Size::Half, 7, NET_OFF + 2),
            Insn::add_reg(R0, 8),
            // 14-15: modulo the queues.
            Insn::mod_imm(R0, i32::from(self.queues)),
            Insn::exit(),
            // 16-17: queue 0.
            Insn::mov_imm(R0, 0),
            Insn::exit(),
        ]
    }

    /// Loads [`Steering::program`] into the kernel (needs root).
    pub fn load(&self) -> iolib::Result<SocketFilter> {
        SocketFilter::load("usernet_steer", &self.program())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_of_a_flow_map_to_one_queue() {
        let s = Steering::new(3);
        for (a, b) in [(80u16, 40_000u16), (8080, 1), (65535, 65535)] {
            assert_eq!(s.queue_of(a, b), s.queue_of(b, a));
            assert!(s.queue_of(a, b) < 3);
        }
        assert_eq!(Steering::new(1).queue_of(1234, 80), 0);
    }

    #[test]
    fn the_port_picker_lands_every_port_on_the_asked_queue() {
        for queues in 1..=5 {
            let s = Steering::new(queues);
            for queue in 0..queues {
                let mut seen = std::collections::BTreeSet::new();
                for k in 0..(16384 / queues as u32 + 2) {
                    let p = s.port_for(queue, 8080, (49152, 65535), k);
                    assert!((49152..=65535).contains(&p));
                    assert_eq!(s.queue_of(p, 8080), queue, "queues {queues} port {p}");
                    seen.insert(p);
                }
                // Each queue gets its share of the range, no port twice in a cycle.
                assert!(seen.len() >= 16384 / queues - 1, "{} ports", seen.len());
            }
        }
    }

    #[test]
    fn packets_are_steered_by_their_ports() {
        let s = Steering::new(4);
        let mut p = [0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[20..22].copy_from_slice(&8080u16.to_be_bytes());
        p[22..24].copy_from_slice(&50_001u16.to_be_bytes());
        assert_eq!(s.queue_of_packet(&p), s.queue_of(50_001, 8080));
        p[9] = 1;
        assert_eq!(s.queue_of_packet(&p), 0, "ICMP goes to queue 0");
        p[9] = 6;
        p[7] = 1; // a later fragment
        assert_eq!(s.queue_of_packet(&p), 0);
        assert_eq!(s.queue_of_packet(&p[..21]), 0);
    }
}
