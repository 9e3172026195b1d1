//! Window arithmetic: window scaling (RFC 7323 section 2), the usable send window, and
//! silly-window-syndrome avoidance on both sides (RFC 9293 section 3.8.6.2).
//!
//! Pure helpers with no state. This file is declared from `buffer.rs`
//! (`crate::buffer::window`) because `lib.rs` has no `mod window` slot; the core may
//! move the declaration to `lib.rs` (`pub mod window;`) and drop the `#[path]` line in
//! `buffer.rs` at any time.

use crate::seq::SeqNum;

/// The largest window-scale shift count (RFC 7323 section 2.3).
pub const MAX_WINDOW_SHIFT: u8 = 14;

/// The largest window a scaled window field can express: `65535 << 14`.
pub const MAX_SCALED_WINDOW: u32 = (u16::MAX as u32) << MAX_WINDOW_SHIFT;

/// A received shift count, clamped to 14 as RFC 7323 section 2.3 requires (a larger
/// value is treated as 14, and the receiver may log it).
#[inline]
pub fn clamp_shift(shift: u8) -> u8 {
    shift.min(MAX_WINDOW_SHIFT)
}

/// The smallest shift that lets a receive buffer of `buffer` bytes be advertised in
/// full (`buffer >> shift <= 65535`), capped at 14.
pub fn shift_for_buffer(buffer: usize) -> u8 {
    let mut shift = 0u8;
    while shift < MAX_WINDOW_SHIFT && (buffer >> shift) > u16::MAX as usize {
        shift += 1;
    }
    shift
}

/// The window field of a SYN or SYN-ACK offering `free` bytes: never scaled
/// (RFC 7323 section 2.2), so at most 65535.
#[inline]
pub fn syn_window(free: usize) -> u16 {
    u16::try_from(free).unwrap_or(u16::MAX)
}

/// The 16-bit window field for a window of `window` bytes under `shift`.
///
/// Rounds down (never offers space that does not exist) and saturates at 65535.
#[inline]
pub fn encode(window: u32, shift: u8) -> u16 {
    let w = window >> clamp_shift(shift);
    w.min(u16::MAX as u32) as u16
}

/// The window in bytes that a 16-bit window field means under `shift`.
#[inline]
pub fn decode(field: u16, shift: u8) -> u32 {
    (field as u32) << clamp_shift(shift)
}

/// The receive window to advertise, rounded so that `decode(encode(w))` equals it and
/// never placing the right edge left of where it was (RFC 9293 section 3.8.6: a
/// receiver should not shrink the window), as far as the largest window expressible
/// under `shift` allows.
///
/// `free` is the free receive-buffer space; `prev_right_edge_offset` is how far the
/// previously advertised right edge lies beyond the current `RCV.NXT` (0 if none, or if
/// it already lies behind `RCV.NXT`).
pub fn advertised(free: u32, prev_right_edge_offset: u32, shift: u8) -> u32 {
    let shift = clamp_shift(shift);
    let rounded = decode(encode(free, shift), shift);
    // Rounding up the previous edge keeps it representable without shrinking it.
    let mask = (1u32 << shift) - 1;
    let prev = prev_right_edge_offset.saturating_add(mask) & !mask;
    rounded.max(prev.min(decode(u16::MAX, shift)))
}

/// Receiver-side SWS avoidance (RFC 9293 section 3.8.6.2.2): whether the window may be
/// opened from `current` (the window now offered, right edge minus `RCV.NXT`) to
/// `free` (the buffer space available). It may when the increase is at least
/// `min(buffer / 2, mss)`.
pub fn receiver_may_open(current: u32, free: u32, buffer: u32, mss: u32) -> bool {
    let threshold = (buffer / 2).min(mss).max(1);
    free.saturating_sub(current) >= threshold
}

/// The usable send window: how many new bytes may be sent now, given the peer's
/// window `snd_wnd` starting at `snd_una`, the congestion window `cwnd` and the bytes
/// in flight (`snd_nxt - snd_una`). Zero if the window is already overfilled.
#[inline]
pub fn usable(snd_una: SeqNum, snd_nxt: SeqNum, snd_wnd: u32, cwnd: u32) -> u32 {
    let in_flight = snd_nxt - snd_una;
    snd_wnd.min(cwnd).saturating_sub(in_flight)
}

/// Sender-side SWS avoidance and Nagle's algorithm (RFC 9293 sections 3.8.6.2.1 and
/// 3.7.4): whether a segment of `len` bytes (already limited to the usable window and
/// to `mss`) should be sent now.
///
/// - `queued`: bytes queued and not yet sent (`len <= queued`).
/// - `max_snd_wnd`: the largest window the peer has ever offered.
/// - `idle`: nothing is in flight (all sent data acknowledged).
/// - `nodelay`: Nagle disabled.
/// - `push`: the application flushed or closed, so `queued` is all there will be for now.
///
/// Sends a full segment; or all the queued data when pushing and either idle or Nagle is
/// off; or at least half the peer's largest window (Fs = 1/2). The override timer of
/// the RFC (send after a short time anyway) is the caller's.
pub fn sender_may_send(
    len: u32,
    queued: u32,
    mss: u32,
    max_snd_wnd: u32,
    idle: bool,
    nodelay: bool,
    push: bool,
) -> bool {
    if len == 0 {
        return false;
    }
    if len >= mss {
        return true;
    }
    if len == queued && push && (idle || nodelay) {
        return true;
    }
    (idle || nodelay) && max_snd_wnd > 0 && len >= max_snd_wnd / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts() {
        assert_eq!(shift_for_buffer(0), 0);
        assert_eq!(shift_for_buffer(65535), 0);
        assert_eq!(shift_for_buffer(65536), 1);
        assert_eq!(shift_for_buffer(1 << 20), 5);
        assert_eq!(shift_for_buffer(usize::MAX), 14);
        assert_eq!(clamp_shift(15), 14);
        assert_eq!(clamp_shift(3), 3);
    }

    #[test]
    fn encode_decode() {
        assert_eq!(encode(65535, 0), 65535);
        assert_eq!(encode(70000, 0), 65535);
        assert_eq!(encode(1 << 20, 5), 32768);
        assert_eq!(encode(1023, 10), 0);
        assert_eq!(decode(1, 14), 16384);
        assert_eq!(decode(65535, 200), MAX_SCALED_WINDOW);
        assert_eq!(encode(u32::MAX, 14), 65535);
    }

    #[test]
    fn advertised_never_shrinks() {
        // Free space smaller than the previous edge: keep the edge.
        assert_eq!(advertised(1000, 5000, 0), 5000);
        // Rounded down to the scale unit.
        assert_eq!(advertised(1000, 0, 4), 992);
        // Previous edge not on a unit boundary: rounded up so it does not shrink.
        assert_eq!(advertised(0, 17, 4), 32);
        assert_eq!(advertised(1 << 29, 0, 14), 1 << 29);
        assert_eq!(advertised(1 << 30, 0, 14), MAX_SCALED_WINDOW);
    }

    #[test]
    fn receiver_sws() {
        assert!(!receiver_may_open(0, 100, 65535, 1460));
        assert!(receiver_may_open(0, 1460, 65535, 1460));
        assert!(receiver_may_open(100, 600, 1000, 1460));
        assert!(!receiver_may_open(100, 599, 1000, 1460));
    }

    #[test]
    fn usable_window() {
        let una = SeqNum(u32::MAX - 100);
        assert_eq!(usable(una, una + 200u32, 1000, 500), 300);
        assert_eq!(usable(una, una + 600u32, 1000, 500), 0);
        assert_eq!(usable(una, una, 0, 500), 0);
    }

    #[test]
    fn sender_sws_and_nagle() {
        assert!(sender_may_send(
            1460, 5000, 1460, 65535, false, false, false
        ));
        assert!(!sender_may_send(100, 100, 1460, 65535, false, false, true));
        assert!(sender_may_send(100, 100, 1460, 65535, true, false, true));
        assert!(sender_may_send(100, 100, 1460, 65535, false, true, true));
        assert!(!sender_may_send(100, 200, 1460, 65535, true, true, false));
        // Half the largest window seen.
        assert!(sender_may_send(500, 2000, 1460, 1000, true, false, false));
        assert!(!sender_may_send(0, 0, 1460, 1000, true, true, true));
    }
}
