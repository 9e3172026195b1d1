//! Incoming packets: validation, demultiplexing, listeners, SYN cookies and resets
//! for closed ports (RFC 9293 sections 3.10.7.1 and 3.10.7.2).

use core::net::{Ipv4Addr, SocketAddrV4};

use super::Stack;
use crate::conn::Tcb;
use crate::control::Control;
use crate::handle::ListenerId;
use crate::isn::FourTuple;
use crate::wire::{self, flags, Ingress, Segment};
use crate::Instant;

impl Stack {
    // ----- inputs ---------------------------------------------------------------------

    /// Processes one IPv4 packet received at `now`. Malformed packets are dropped and
    /// counted; nothing here can fail or panic.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet_inner(now, packet, true);
    }

    /// [`handle_packet`](Self::handle_packet) for a packet whose TCP checksum the device
    /// verified or vouches for (a TUN queue with checksum offload hands over locally
    /// generated packets with a partial checksum, see `iolib::tun::VnetHeader`). The IP
    /// header checksum and everything else are still checked. Such a packet may also
    /// be a TCP super-segment larger than the MTU (segmentation offload), which is
    /// taken as one segment.
    pub fn handle_packet_trusted(&mut self, now: Instant, packet: &[u8]) {
        self.handle_packet_inner(now, packet, false);
    }

    fn handle_packet_inner(&mut self, now: Instant, packet: &[u8], verify_tcp_checksum: bool) {
        self.counters.ip_rx_packets += 1;
        match wire::parse_with(packet, self.cfg.addr, verify_tcp_checksum) {
            Err(reason) => self.counters.record_drop(reason),
            Ok(Ingress::Tcp { src, seg }) => {
                self.counters.tcp_rx_segments += 1;
                self.handle_segment(now, src, &seg);
            }
            Ok(Ingress::EchoRequest { src, icmp }) => {
                if self.cfg.icmp_echo {
                    self.counters.icmp_echo_requests += 1;
                    let c = Control::EchoReply {
                        dst: src,
                        request: icmp.into(),
                    };
                    self.control.push(c, &mut self.counters);
                } else {
                    self.counters.icmp_ignored += 1;
                }
            }
            Ok(Ingress::FragNeeded {
                mtu,
                local_port,
                remote,
                seq,
            }) => {
                let tuple = FourTuple {
                    local: SocketAddrV4::new(self.cfg.addr, local_port),
                    remote,
                };
                let taken = match self.by_tuple.get(&tuple) {
                    Some(&idx) => {
                        let taken = self.call(idx, |tcb, _| tcb.on_frag_needed(now, mtu, seq));
                        self.after(idx);
                        taken == Some(true)
                    }
                    None => false,
                };
                if taken {
                    self.counters.icmp_frag_needed += 1;
                } else {
                    self.counters.icmp_ignored += 1;
                }
            }
            Ok(Ingress::OtherIcmp) => self.counters.icmp_ignored += 1,
        }
    }

    fn handle_segment(&mut self, now: Instant, src: Ipv4Addr, seg: &Segment<'_>) {
        let tuple = FourTuple {
            local: SocketAddrV4::new(self.cfg.addr, seg.dst_port),
            remote: SocketAddrV4::new(src, seg.src_port),
        };
        if seg.opts.wscale.is_some_and(|w| w > 14) && seg.has(flags::SYN) {
            self.counters.tcp_wscale_clamped += 1;
        }
        if let Some(&idx) = self.by_tuple.get(&tuple) {
            let reuse = seg.flags & (flags::SYN | flags::ACK | flags::RST) == flags::SYN
                && self.by_port.contains_key(&seg.dst_port)
                && self
                    .conns
                    .at(idx)
                    .is_some_and(|c| c.tcb.syn_may_reuse_time_wait(seg));
            if reuse {
                if let Some(conn) = self.conns.at_mut(idx) {
                    conn.tcb.end_time_wait();
                }
                self.after(idx);
                if let Some(&lid) = self.by_port.get(&seg.dst_port) {
                    self.listen_segment(now, lid, tuple, seg);
                }
                return;
            }
            self.call(idx, |tcb, ctx| tcb.on_segment(now, seg, ctx));
            self.after(idx);
            return;
        }
        if let Some(&lid) = self.by_port.get(&seg.dst_port) {
            self.listen_segment(now, lid, tuple, seg);
            return;
        }
        self.counters.tcp_no_socket += 1;
        self.reset_for(tuple, seg);
    }

    /// RFC 9293 section 3.10.7.1: the reset answering a segment with no connection.
    fn reset_for(&mut self, tuple: FourTuple, seg: &Segment<'_>) {
        if seg.has(flags::RST) {
            return;
        }
        let c = if seg.has(flags::ACK) {
            Control::Rst {
                tuple,
                seq: seg.ack,
                ack: None,
            }
        } else {
            Control::Rst {
                tuple,
                seq: crate::SeqNum(0),
                ack: Some(seg.seq + seg.seq_len()),
            }
        };
        self.control.push(c, &mut self.counters);
    }

    /// RFC 9293 section 3.10.7.2, plus SYN cookies.
    fn listen_segment(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        seg: &Segment<'_>,
    ) {
        if seg.has(flags::RST) {
            self.counters.rst_received += 1;
            return;
        }
        if seg.has(flags::ACK) {
            if !seg.has(flags::SYN) && self.cfg.syn_cookies {
                if let Some(mss) =
                    self.secrets
                        .check_cookie(now, &tuple, seg.seq - 1u32, seg.ack - 1u32)
                {
                    self.accept_cookie(now, lid, tuple, seg, mss);
                    return;
                }
                self.counters.syn_cookies_rejected += 1;
                let live = self
                    .listeners
                    .get(lid.index, lid.generation)
                    .is_some_and(|l| l.cookies_live(now));
                if live {
                    return;
                }
            }
            self.reset_for(tuple, seg);
            return;
        }
        if !seg.has(flags::SYN) {
            self.counters.unexpected_segments += 1;
            return;
        }
        let Some(listener) = self.listeners.get(lid.index, lid.generation) else {
            return;
        };
        if !listener.has_room() {
            self.counters.listen_overflow += 1;
            return;
        }
        let half_open_full = listener.half_open >= self.cfg.max_half_open;
        if half_open_full || !self.table_has_room() {
            if self.cfg.syn_cookies {
                if let Some(l) = self.listeners.get_mut(lid.index, lid.generation) {
                    l.cookies_until = Some(now + crate::isn::COOKIE_LIFETIME);
                }
                self.send_cookie(now, tuple, seg);
            } else if half_open_full {
                self.counters.listen_overflow += 1;
            } else {
                self.counters.conn_table_full += 1;
            }
            return;
        }
        let iss = self.secrets.isn(now, &tuple);
        let ts_offset = self.secrets.ts_offset(&tuple);
        let tcb = Tcb::accept_syn(now, &self.cfg.tcp, tuple, iss, ts_offset, seg);
        self.counters.passive_opens += 1;
        if let Some(l) = self.listeners.get_mut(lid.index, lid.generation) {
            l.half_open += 1;
        }
        let idx = self.insert_conn(tcb, tuple, Some(lid), true);
        self.after(idx);
    }

    fn send_cookie(&mut self, now: Instant, tuple: FourTuple, seg: &Segment<'_>) {
        let t = &self.cfg.tcp;
        let peer_mss = seg.opts.mss.unwrap_or(536).min(t.mss());
        let iss = self.secrets.cookie(now, &tuple, seg.seq, peer_mss);
        let sack = t.sack && seg.opts.sack_permitted;
        let ours = crate::buffer::window::shift_for_buffer(t.recv_buffer);
        // Window scaling and SACK survive only through the timestamp echo; without
        // timestamps the connection runs without them.
        let (wscale, timestamp) = match seg.opts.timestamp {
            Some((tsval, _)) if t.timestamps => {
                let peer_ws = match seg.opts.wscale {
                    Some(w) if t.window_scaling => u32::from(w.min(14)),
                    _ => 0xf,
                };
                let clock = crate::conn::ts_clock(now, self.secrets.ts_offset(&tuple));
                let mut encoded = (clock & !0x3f) | (u32::from(sack) << 4) | peer_ws;
                // Never ahead of the clock, or the peer's PAWS would reject our next
                // segments (which carry the plain clock) for up to 63 ms.
                if (encoded.wrapping_sub(clock) as i32) > 0 {
                    encoded = encoded.wrapping_sub(0x40);
                }
                let ws = (peer_ws != 0xf).then_some(ours);
                (ws, Some((encoded, tsval)))
            }
            _ => (None, None),
        };
        let window = crate::buffer::window::syn_window(t.recv_buffer);
        let c = Control::CookieSynAck {
            tuple,
            iss,
            ack: seg.seq + 1u32,
            window,
            mss: t.mss(),
            wscale,
            sack: sack && timestamp.is_some(),
            timestamp,
        };
        self.control.push(c, &mut self.counters);
    }

    fn accept_cookie(
        &mut self,
        now: Instant,
        lid: ListenerId,
        tuple: FourTuple,
        seg: &Segment<'_>,
        mss: u16,
    ) {
        let Some(listener) = self.listeners.get(lid.index, lid.generation) else {
            return;
        };
        if !listener.has_room() {
            self.counters.listen_overflow += 1;
            return;
        }
        if !self.table_has_room() {
            self.counters.conn_table_full += 1;
            return;
        }
        let t = &self.cfg.tcp;
        let (peer_ws, sack) = match seg.opts.timestamp {
            Some((_, tsecr)) if t.timestamps => {
                let ws = tsecr & 0xf;
                ((ws != 0xf).then_some(ws as u8), tsecr & 0x10 != 0)
            }
            _ => (None, false),
        };
        let ts_offset = self.secrets.ts_offset(&tuple);
        let tcb = Tcb::from_cookie(now, t, tuple, ts_offset, seg, mss, peer_ws, sack);
        self.counters.syn_cookies_accepted += 1;
        self.counters.passive_opens += 1;
        self.counters.established += 1;
        let idx = self.insert_conn(tcb, tuple, Some(lid), false);
        // The completing ACK may already carry data (or a FIN).
        if !seg.payload.is_empty() || seg.has(flags::FIN) {
            self.call(idx, |tcb, ctx| tcb.on_segment(now, seg, ctx));
        }
        self.after(idx);
    }
}
