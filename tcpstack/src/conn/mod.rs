//! The transmission control block: one connection's state machine (RFC 9293).
//!
//! The stack owns the TCBs and calls into them with segments ([`input`]), transmit
//! opportunities ([`output`]), timer expirations ([`timers`]) and application requests
//! (this module). A TCB reports what the application should hear about as [`Notes`],
//! which the stack turns into events.

mod app;
mod input;
mod output;
mod timers;

use core::time::Duration;

use crate::assembler::Reassembler;
use crate::buffer::{window, BufferPool, RingBuffer};
use crate::cc::CongestionControl;
use crate::config::{KeepAlive, TcpConfig};
use crate::counters::Counters;
use crate::error::ConnError;
use crate::event::{ConnInfo, TcpState};
use crate::isn::FourTuple;
use crate::rack::Rack;
use crate::recovery::Recovery;
use crate::rtt::{RtoConfig, RttEstimator, RttSampler};
use crate::sack::SackReporter;
use crate::stack::{ChallengeLimiter, ControlQueue};
use crate::{Instant, SeqNum};
use timers::{Timer, TimerTable};

/// What a TCB may touch besides itself while handling an input.
pub(crate) struct Ctx<'a> {
    pub counters: &'a mut Counters,
    pub control: &'a mut ControlQueue,
    pub challenge: &'a mut ChallengeLimiter,
    /// Storage for buffers about to be written, and where idle ones go.
    pub pool: &'a mut BufferPool,
}

/// Things the application should hear about, accumulated until the stack takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Notes(u8);

impl Notes {
    pub const ESTABLISHED: Notes = Notes(1);
    pub const READABLE: Notes = Notes(2);
    pub const WRITABLE: Notes = Notes(4);
    pub const PEER_FIN: Notes = Notes(8);
    /// Entered TIME-WAIT or CLOSED (raised once).
    pub const CLOSED: Notes = Notes(16);

    pub fn contains(self, n: Notes) -> bool {
        self.0 & n.0 == n.0
    }

    fn insert(&mut self, n: Notes) {
        self.0 |= n.0;
    }
}

/// The millisecond timestamp clock of a connection (RFC 7323 section 5.4).
pub(crate) fn ts_clock(now: Instant, offset: u32) -> u32 {
    (now.as_millis() as u32).wrapping_add(offset)
}

/// Whether timestamp `a` is older than `b` on the wrapping timestamp clock (RFC 7323
/// section 5.2: compared like sequence numbers).
pub(crate) fn ts_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Loss probes sent without news from the peer before only the retransmission timeout
/// is left: each costs one segment, and each doubles the wait for the next.
const MAX_LOSS_PROBES: u32 = 4;

/// How far, in the peer's clock ticks, a TSval may be behind TS.Recent and still pass
/// PAWS (Linux's `TCP_PAWS_WINDOW`). Two segments reordered on the way, sent either
/// side of a tick, arrive with the older TSval second; the segment is new data, not an
/// old duplicate from a wrapped sequence space (which is minutes or more behind).
pub(crate) const PAWS_WINDOW: u32 = 1;

/// Timestamps older than this are not used for PAWS (RFC 7323 section 5.5: 24 days).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// A congestion response that D-SACKs may prove needless (RFC 3708): when the peer
/// reports every retransmission of the episode as a duplicate, the losses were
/// reordering, and the controller goes back to where it was (as Linux's
/// `tcp_try_undo_dsack`).
#[derive(Debug, Clone)]
struct Undo {
    /// The controller before the response.
    cc: CongestionControl,
    /// `SND.UNA` and `SND.MAX` at the response: the episode's data.
    from: SeqNum,
    to: SeqNum,
    /// Retransmissions of the episode's data not yet reported as duplicates.
    retransmits: u32,
}

/// The most transmit records a connection keeps: two per smallest segment the send
/// buffer holds (records split at SACK edges), plus slack.
fn rack_record_limit(send_buffer: usize) -> usize {
    send_buffer / 536 * 2 + 16
}

/// Connection parameters copied from the [`TcpConfig`] at creation.
#[derive(Debug, Clone)]
struct Params {
    /// Our MSS (what we advertise).
    mss: u16,
    delayed_ack: Option<Duration>,
    time_wait: Duration,
    fin_wait2_timeout: Duration,
    max_retries: u32,
    max_syn_retries: u32,
    max_synack_retries: u32,
    max_orphan_retries: u32,
    recv_buffer: u32,
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Tcb {
    state: TcpState,
    tuple: FourTuple,
    params: Params,
    nodelay: bool,
    keepalive: Option<KeepAlive>,
    /// The application released the handle: nothing more will be read.
    orphaned: bool,

    // --- send sequence space -------------------------------------------------------
    iss: SeqNum,
    /// Our SYN is acknowledged (`SND.UNA` may come back to `ISS` after 4 GiB, so this
    /// is a flag, not a comparison).
    syn_acked: bool,
    snd_una: SeqNum,
    /// Next sequence number to send (rewound to `snd_una` after a timeout).
    snd_nxt: SeqNum,
    /// Highest sequence number sent plus one.
    snd_max: SeqNum,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    /// Effective send MSS (payload per segment, options accounted for).
    smss: u32,
    snd_shift: u8,
    rcv_shift: u8,
    /// Bytes queued by the application; offset 0 is sequence `data_start()`.
    send_buf: RingBuffer,
    /// The application shut down the send side: FIN follows the queued data.
    fin_queued: bool,
    /// Sequence number of our FIN, fixed when the send side is shut down (no data can
    /// be queued after it).
    our_fin: SeqNum,
    /// A send() could not take everything: report WRITABLE when space frees.
    write_blocked: bool,

    // --- receive sequence space ----------------------------------------------------
    irs: SeqNum,
    rcv_nxt: SeqNum,
    /// Right edge of the window last advertised.
    rcv_adv: SeqNum,
    recv: Reassembler,
    /// The peer's FIN, once seen (possibly ahead of `rcv_nxt`).
    fin_seq: Option<SeqNum>,
    fin_received: bool,
    /// READABLE was reported and not yet answered by a draining read.
    read_notified: bool,
    sack_reporter: SackReporter,

    // --- options ---------------------------------------------------------------------
    ts_enabled: bool,
    ts_offset: u32,
    /// Our timestamp clock at the latest retransmission: an echo older than it may
    /// come from an ACK of a duplicate (the peer echoes the TSval it holds, from the
    /// original), so it does not time anything (as Eifel detection reasons, RFC 3522).
    rtx_tsval: Option<u32>,
    ts_recent: u32,
    ts_recent_at: Instant,
    sack_enabled: bool,
    ws_enabled: bool,
    last_ack_sent: SeqNum,

    // --- loss recovery and congestion --------------------------------------------------
    rtt: RttEstimator,
    sampler: RttSampler,
    cc: CongestionControl,
    /// With SACK: the transmit records RACK finds losses in (RFC 8985).
    rack: Rack,
    recovery: Recovery,
    /// The congestion response of the latest recovery, until D-SACKs prove it
    /// needless or another response replaces it.
    undo: Option<Undo>,
    dup_acks: u32,
    /// Retransmit the segment at `snd_una` at the next opportunity.
    rtx_pending: bool,

    // --- timers -------------------------------------------------------------------------
    /// Every timer's deadline, and the expiries that still owe a segment.
    timers: TimerTable,
    /// When the last segment was sent (for the idle restart of RFC 5681 section 4.1).
    last_send: Instant,
    /// Consecutive timeouts without progress.
    retries: u32,
    /// An acceptable ACK arrived since the last retransmission timeout: with a zero
    /// window that timeout was a window probe the peer answered, not a failure.
    peer_answered: bool,
    /// Full-sized segments received since the last ACK sent.
    unacked_segments: u32,
    persist_backoff: u32,
    /// Window probes sent since the application closed the connection.
    orphan_probes: u32,
    /// When the last challenge ACK was allowed (one per interval per connection).
    last_challenge: Option<Instant>,
    /// `SND.MAX` when the outstanding probe was sent; one probe per episode.
    tlp_high: Option<SeqNum>,
    /// The outstanding probe was a retransmission (not new data).
    tlp_rtx: bool,
    /// Loss probes sent since an ACK last brought news (acknowledged or SACKed data).
    tlp_sent: u32,
    keepalive_sent: u32,

    // --- pending output -----------------------------------------------------------------
    /// Send an ACK at the next opportunity.
    ack_now: bool,
    /// Further duplicate ACKs owed for out-of-order segments that arrived while an ACK
    /// was already pending (one ACK per such segment, RFC 5681 section 4.2, so that a
    /// peer without SACK still counts its duplicates when input comes in batches).
    dup_acks_owed: u8,
    /// Send a SYN (or SYN-ACK) at the next opportunity.
    syn_pending: bool,

    /// Totals for [`ConnInfo`].
    bytes_acked: u64,
    bytes_received: u64,
    retransmits: u64,

    notes: Notes,
    /// CLOSED was raised once already.
    closed_reported: bool,
    error: Option<ConnError>,
}

impl Tcb {
    fn new(
        now: Instant,
        cfg: &TcpConfig,
        tuple: FourTuple,
        iss: SeqNum,
        ts_offset: u32,
        state: TcpState,
    ) -> Self {
        let rto = RtoConfig {
            initial: cfg.initial_rto,
            min: cfg.min_rto,
            max: cfg.max_rto,
            ..RtoConfig::default()
        };
        let mss = cfg.mss();
        let recv_buffer = cfg.recv_buffer as u32;
        Tcb {
            state,
            tuple,
            params: Params {
                mss,
                delayed_ack: cfg.delayed_ack,
                time_wait: cfg.time_wait,
                fin_wait2_timeout: cfg.fin_wait2_timeout,
                max_retries: cfg.max_retries,
                max_syn_retries: cfg.max_syn_retries,
                max_synack_retries: cfg.max_synack_retries,
                max_orphan_retries: cfg.max_orphan_retries,
                recv_buffer,
            },
            nodelay: cfg.nodelay,
            keepalive: cfg.keepalive,
            orphaned: false,
            iss,
            syn_acked: false,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: iss,
            smss: u32::from(mss.min(536)),
            snd_shift: 0,
            rcv_shift: if cfg.window_scaling {
                window::shift_for_buffer(cfg.recv_buffer)
            } else {
                0
            },
            send_buf: RingBuffer::new(cfg.send_buffer),
            fin_queued: false,
            our_fin: SeqNum(0),
            write_blocked: false,
            irs: SeqNum(0),
            rcv_nxt: SeqNum(0),
            rcv_adv: SeqNum(0),
            recv: Reassembler::new(cfg.recv_buffer),
            fin_seq: None,
            fin_received: false,
            read_notified: false,
            sack_reporter: SackReporter::new(),
            ts_enabled: cfg.timestamps,
            ts_offset,
            rtx_tsval: None,
            ts_recent: 0,
            ts_recent_at: now,
            sack_enabled: cfg.sack,
            ws_enabled: cfg.window_scaling,
            last_ack_sent: SeqNum(0),
            rtt: RttEstimator::new(rto),
            sampler: RttSampler::default(),
            cc: CongestionControl::new(&cfg.congestion, u32::from(mss.min(536))),
            rack: Rack::new(rack_record_limit(cfg.send_buffer)),
            recovery: Recovery::new(),
            undo: None,
            dup_acks: 0,
            rtx_pending: false,
            timers: TimerTable::default(),
            last_send: now,
            retries: 0,
            peer_answered: false,
            unacked_segments: 0,
            persist_backoff: 0,
            orphan_probes: 0,
            last_challenge: None,
            tlp_high: None,
            tlp_rtx: false,
            tlp_sent: 0,
            keepalive_sent: 0,
            ack_now: false,
            syn_pending: false,
            dup_acks_owed: 0,
            bytes_acked: 0,
            bytes_received: 0,
            retransmits: 0,
            notes: Notes::default(),
            closed_reported: false,
            error: None,
        }
    }

    /// Active open: SYN-SENT, the SYN goes out at the next transmit opportunity.
    pub fn connect(
        now: Instant,
        cfg: &TcpConfig,
        tuple: FourTuple,
        iss: SeqNum,
        ts_offset: u32,
    ) -> Self {
        let mut tcb = Tcb::new(now, cfg, tuple, iss, ts_offset, TcpState::SynSent);
        tcb.syn_pending = true;
        tcb
    }

    /// Passive open from a SYN: SYN-RECEIVED, the SYN-ACK goes out next.
    pub fn accept_syn(
        now: Instant,
        cfg: &TcpConfig,
        tuple: FourTuple,
        iss: SeqNum,
        ts_offset: u32,
        syn: &crate::wire::Segment<'_>,
    ) -> Self {
        let mut tcb = Tcb::new(now, cfg, tuple, iss, ts_offset, TcpState::SynReceived);
        tcb.take_syn_options(now, syn);
        tcb.irs = syn.seq;
        tcb.rcv_nxt = syn.seq + 1u32;
        // The window field of a SYN is never scaled.
        tcb.update_window(u32::from(syn.window), syn.seq, syn.ack);
        tcb.syn_pending = true;
        tcb
    }

    /// Passive open completed by a valid SYN-cookie ACK: ESTABLISHED at once.
    #[allow(clippy::too_many_arguments)]
    pub fn from_cookie(
        now: Instant,
        cfg: &TcpConfig,
        tuple: FourTuple,
        ts_offset: u32,
        ack: &crate::wire::Segment<'_>,
        peer_mss: u16,
        peer_wscale: Option<u8>,
        sack: bool,
    ) -> Self {
        let iss = ack.ack - 1u32;
        let mut tcb = Tcb::new(now, cfg, tuple, iss, ts_offset, TcpState::Established);
        tcb.irs = ack.seq - 1u32;
        tcb.rcv_nxt = ack.seq;
        // What the cookie SYN-ACK acknowledged and offered (the same window a stateful
        // SYN-ACK offers): the peer may fill that window at once, so the right edge
        // starts there, never at RCV.NXT (a receiver must not shrink its window).
        tcb.last_ack_sent = ack.seq;
        tcb.rcv_adv = ack.seq + u32::from(window::syn_window(tcb.recv.window()));
        tcb.syn_acked = true;
        tcb.snd_una = ack.ack;
        tcb.snd_nxt = ack.ack;
        tcb.snd_max = ack.ack;
        tcb.ws_enabled = tcb.ws_enabled && peer_wscale.is_some();
        if tcb.ws_enabled {
            tcb.snd_shift = peer_wscale.unwrap_or(0).min(14);
        } else {
            tcb.rcv_shift = 0;
        }
        tcb.sack_enabled = tcb.sack_enabled && sack;
        tcb.ts_enabled = tcb.ts_enabled && ack.opts.timestamp.is_some();
        if let Some((tsval, _)) = ack.opts.timestamp {
            tcb.ts_recent = tsval;
            tcb.ts_recent_at = now;
        }
        tcb.set_smss(peer_mss);
        let wnd = window::decode(ack.window, tcb.snd_shift);
        tcb.update_window(wnd, ack.seq, ack.ack);
        tcb.notes.insert(Notes::ESTABLISHED);
        tcb.arm_keepalive(now);
        tcb
    }

    /// Records the options of the peer's SYN (or SYN-ACK).
    fn take_syn_options(&mut self, now: Instant, syn: &crate::wire::Segment<'_>) {
        let o = &syn.opts;
        self.ws_enabled = self.ws_enabled && o.wscale.is_some();
        if self.ws_enabled {
            self.snd_shift = o.wscale.unwrap_or(0).min(window::MAX_WINDOW_SHIFT);
        } else {
            self.snd_shift = 0;
            self.rcv_shift = 0;
        }
        self.sack_enabled = self.sack_enabled && o.sack_permitted;
        self.ts_enabled = self.ts_enabled && o.timestamp.is_some();
        if let Some((tsval, _)) = o.timestamp {
            self.ts_recent = tsval;
            self.ts_recent_at = now;
        }
        // RFC 9293 section 3.7.1: 536 when the option is absent.
        self.set_smss(o.mss.unwrap_or(536));
    }

    fn set_smss(&mut self, peer_mss: u16) {
        // At least 64 bytes whatever the peer claims (a tiny MSS is an amplification
        // lever), never above our own; `min` last so a tiny configured MTU cannot panic.
        let mss = peer_mss.max(64).min(self.params.mss);
        self.smss = self.data_per_segment(mss);
        self.cc.set_mss(self.smss);
    }

    /// The data a segment of `mss` bytes (data and options) carries: `mss` less the
    /// timestamps' room, when they are on.
    fn data_per_segment(&self, mss: u16) -> u32 {
        let opts = if self.ts_enabled { 12 } else { 0 };
        u32::from(mss) - opts
    }

    /// Gives the storage of empty buffers back to `pool`, so an idle connection holds
    /// no buffer memory (out-of-order data keeps the receive buffer's).
    pub fn reclaim_idle_buffers(&mut self, pool: &mut BufferPool) {
        pool.reclaim(&mut self.send_buf);
        if self.recv.assembler().is_empty() {
            pool.reclaim(self.recv.buffer_mut());
        }
    }

    /// Bytes of buffer storage this connection holds now.
    pub fn buffer_bytes(&self) -> usize {
        self.send_buf.allocated_bytes() + self.recv.buffer().allocated_bytes()
    }

    /// Drops whatever the buffers hold and gives their storage to `pool` (the
    /// connection is being freed).
    pub fn release_buffers(&mut self, pool: &mut BufferPool) {
        self.send_buf.clear();
        self.recv.clear();
        self.reclaim_idle_buffers(pool);
    }

    /// Sequence number of the first byte in `send_buf`.
    fn data_start(&self) -> SeqNum {
        if !self.syn_acked {
            self.iss + 1u32
        } else {
            self.snd_una
        }
    }

    /// Sequence number of our FIN (valid when `fin_queued`).
    fn fin_seq_out(&self) -> SeqNum {
        self.our_fin
    }

    /// Shuts the send side: the FIN goes after everything queued so far.
    fn queue_fin(&mut self) {
        if !self.fin_queued {
            self.fin_queued = true;
            self.our_fin = self.data_start() + self.send_buf.len();
        }
    }

    /// Whether our FIN has been sent at least once.
    fn fin_sent(&self) -> bool {
        self.fin_queued && self.snd_max.gt(self.fin_seq_out())
    }

    /// Whether our FIN is acknowledged.
    fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una.gt(self.fin_seq_out())
    }

    fn set_state(&mut self, state: TcpState) {
        self.state = state;
        if matches!(state, TcpState::TimeWait | TcpState::Closed)
            && !self.notes.contains(Notes::CLOSED)
            && !self.closed_reported
        {
            self.closed_reported = true;
            self.notes.insert(Notes::CLOSED);
        }
        if state == TcpState::Closed {
            self.timers.clear();
            self.ack_now = false;
            self.syn_pending = false;
            self.rtx_pending = false;
            self.rack.clear();
        }
    }

    /// Terminates with `error`, dropping all queued data.
    fn fail(&mut self, error: ConnError) {
        self.error = Some(error);
        self.send_buf.clear();
        self.set_state(TcpState::Closed);
        if !self.read_notified {
            self.read_notified = true;
            self.notes.insert(Notes::READABLE);
        }
    }

    /// Queues a RST for the current connection (`<SEQ=SND.NXT><CTL=RST>`).
    fn send_rst(&mut self, ctx: &mut Ctx<'_>) {
        ctx.control.push(
            crate::control::Control::Rst {
                tuple: self.tuple,
                seq: self.snd_max,
                ack: None,
            },
            ctx.counters,
        );
    }

    // ----- queries ------------------------------------------------------------------

    pub fn state(&self) -> TcpState {
        self.state
    }

    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    pub fn take_notes(&mut self) -> Notes {
        core::mem::take(&mut self.notes)
    }

    /// Re-raise readiness notes (after `accept`, for what arrived before it). A
    /// connection that closed before `accept` was freed and never gets here.
    pub fn renotify(&mut self) {
        self.read_notified = false;
        if !self.recv.buffer().is_empty() || self.fin_received {
            self.read_notified = true;
            self.notes.insert(Notes::READABLE);
        }
        if self.fin_received {
            self.notes.insert(Notes::PEER_FIN);
        }
    }

    /// RFC 6191 / RFC 9293 section 3.6.1: a SYN may reopen a connection in TIME-WAIT
    /// when its sequence number (or, with timestamps, its TSval) is beyond the old
    /// incarnation's. The caller then ends this TCB and hands the SYN to the listener.
    pub fn syn_may_reuse_time_wait(&self, syn: &crate::wire::Segment<'_>) -> bool {
        if self.state != TcpState::TimeWait {
            return false;
        }
        match (self.ts_enabled, syn.opts.timestamp) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => syn.seq.gt(self.rcv_nxt),
        }
    }

    /// Ends a TIME-WAIT connection early (its 4-tuple is being reused).
    pub fn end_time_wait(&mut self) {
        if self.state == TcpState::TimeWait {
            self.set_state(TcpState::Closed);
        }
    }

    pub fn send_capacity(&self) -> usize {
        if self.fin_queued || self.state == TcpState::Closed {
            0
        } else {
            self.send_buf.free()
        }
    }

    pub fn recv_available(&self) -> usize {
        self.recv.buffer().len()
    }

    fn recv_window(&self) -> u32 {
        let adv = self.rcv_adv - self.rcv_nxt;
        if adv > (1 << 31) {
            0
        } else {
            adv
        }
    }

    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            local: self.tuple.local,
            remote: self.tuple.remote,
            mss: self.smss as u16,
            window_scale: self.ws_enabled.then_some((self.snd_shift, self.rcv_shift)),
            timestamps: self.ts_enabled,
            sack: self.sack_enabled,
            srtt: self.rtt.srtt(),
            rto: self.rtt.rto(),
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            send_window: self.snd_wnd,
            bytes_in_flight: self.snd_max - self.snd_una,
            send_queued: self.send_buf.len(),
            recv_queued: self.recv.buffer().len(),
            ooo_bytes: self.recv.assembler().held_bytes() as usize,
            recv_window: self.recv_window(),
            bytes_acked: self.bytes_acked,
            bytes_received: self.bytes_received,
            retransmits: self.retransmits,
            retries: self.retries,
            tx_records: self.rack.records().len(),
            error: self.error,
        }
    }
}
