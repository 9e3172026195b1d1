//! Which core owns a TCP flow when several TUN queues share a device, decided the same
//! way by the kernel (a steering program) and by the stacks (the port picker).
//!
//! Without a steering program the kernel picks a queue from a flow table it learns
//! from our writes, which misses the SYN-ACK to an active open (it is produced while
//! our SYN is still being written) and forgets flows after 3 s or 4096 entries. So the
//! device gets [`Steering::program`]: for every TCP packet the kernel sends to it, the
//! queue is a hash of the sum of its two ports (multiplied by a 32-bit Fibonacci
//! constant, high half, modulo the queues); other packets (ICMP, fragments without a
//! TCP header) go to queue 0. The sum makes it symmetric, so the stack computes the
//! same value from its own side of the flow ([`Steering::queue_of`]); the
//! multiplication spreads flows whose ports share their low bits (Linux hands out
//! even ephemeral ports to `connect()`, so a plain sum modulo 2 would put every
//! client of one server port on one queue):
//! a passive open lands on the core whose queue received the SYN, and an active open
//! picks its local port so that the replies come back to the opening core
//! ([`Steering::port_for`]).

use iolib::bpf::{Insn, Size, SocketFilter, NET_OFF};

/// The multiplier of the port hash: 2^32 divided by the golden ratio (odd).
const MIX: u32 = 0x9e37_79b1;

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
        let sum = u32::from(local_port) + u32::from(remote_port);
        ((sum.wrapping_mul(MIX) >> 16) % u32::from(self.queues)) as usize
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

    /// The next local port in `lo..=hi`, from `*cursor` on (wrapping), whose flows to
    /// `remote_port` are owned by `queue`; advances `*cursor` past it, so successive
    /// calls walk through all of them. `None` if the range holds none.
    pub fn port_for(
        &self,
        queue: usize,
        remote_port: u16,
        (lo, hi): (u16, u16),
        cursor: &mut u32,
    ) -> Option<u16> {
        let size = u32::from(hi.checked_sub(lo)?) + 1;
        for _ in 0..size {
            let port = lo + (*cursor % size) as u16;
            *cursor = cursor.wrapping_add(1);
            if self.queue_of(port, remote_port) == queue {
                return Some(port);
            }
        }
        None
    }

    /// The steering program: for a TCP packet (not a later fragment) the hash of its
    /// ports [`Steering::queue_of`] computes, for anything else 0.
    pub fn program(&self) -> Vec<Insn> {
        const R0: u8 = 0;
        const RET0: i16 = 18;
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
            // 14-17: mixed, high half, modulo the queues.
            Insn::mul32_imm(R0, MIX),
            Insn::rsh32_imm(R0, 16),
            Insn::mod32_imm(R0, u32::from(self.queues)),
            Insn::exit(),
            // 18-19: queue 0.
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
                let mut cursor = 0;
                for _ in 0..(16384 / queues) / 2 {
                    let p = s
                        .port_for(queue, 8080, (49152, 65535), &mut cursor)
                        .unwrap();
                    assert!((49152..=65535).contains(&p));
                    assert_eq!(s.queue_of(p, 8080), queue, "queues {queues} port {p}");
                    assert!(seen.insert(p), "port {p} handed out twice");
                }
            }
        }
        assert_eq!(Steering::new(2).port_for(1, 80, (5, 4), &mut 0), None);
    }

    /// Linux gives `connect()` even ports: flows from one client host to one server
    /// port still spread over every queue.
    #[test]
    fn clients_with_even_ports_spread_over_the_queues() {
        for queues in 2..=4 {
            let s = Steering::new(queues);
            let mut per_queue = vec![0; queues];
            for port in (32768..=60999u16).step_by(2).take(4000) {
                per_queue[s.queue_of(8080, port)] += 1;
            }
            let fair = 4000 / queues;
            assert!(
                per_queue
                    .iter()
                    .all(|&n| n > fair * 8 / 10 && n < fair * 12 / 10),
                "{queues} queues: {per_queue:?}"
            );
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
