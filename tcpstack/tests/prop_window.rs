//! Property tests: window arithmetic with scaling (RFC 7323) and SWS helpers.

use proptest::prelude::*;
use tcpstack::buffer::window::{
    advertised, clamp_shift, decode, encode, shift_for_buffer, usable, MAX_SCALED_WINDOW,
    MAX_WINDOW_SHIFT,
};
use tcpstack::SeqNum;

proptest! {
    #[test]
    fn encode_never_offers_more_than_exists(w in any::<u32>(), shift in 0u8..=20) {
        let s = clamp_shift(shift);
        let d = decode(encode(w, shift), shift);
        prop_assert!(d <= w);
        prop_assert!(d <= MAX_SCALED_WINDOW);
        if w <= decode(u16::MAX, s) {
            // Only the low `s` bits are lost.
            prop_assert!(w - d < (1u32 << s));
        } else {
            prop_assert_eq!(encode(w, shift), u16::MAX);
        }
    }

    #[test]
    fn decode_encode_round_trips(field in any::<u16>(), shift in 0u8..=14) {
        prop_assert_eq!(encode(decode(field, shift), shift), field);
    }

    #[test]
    fn shift_is_minimal_and_sufficient(buffer in 0usize..(1 << 32)) {
        let s = shift_for_buffer(buffer);
        prop_assert!(s <= MAX_WINDOW_SHIFT);
        if s < MAX_WINDOW_SHIFT {
            prop_assert!((buffer >> s) <= u16::MAX as usize);
        }
        if s > 0 {
            prop_assert!((buffer >> (s - 1)) > u16::MAX as usize);
        }
    }

    #[test]
    fn advertised_is_representable_and_never_shrinks(
        free in 0u32..(1 << 31),
        prev in 0u32..(1 << 30),
        shift in 0u8..=14,
    ) {
        let a = advertised(free, prev, shift);
        // Exactly representable on the wire.
        prop_assert_eq!(decode(encode(a, shift), shift), a);
        // Never left of the previous edge (unless that edge cannot be expressed).
        prop_assert!(a >= prev.min(decode(u16::MAX, shift)));
        // Never more than the free space, beyond what keeping the edge requires.
        let unit = 1u32 << shift;
        prop_assert!(a <= free.max(prev.saturating_add(unit - 1)));
    }

    #[test]
    fn usable_window_bounds(
        una in any::<u32>(),
        flight in 0u32..(1 << 30),
        wnd in 0u32..(1 << 30),
        cwnd in 0u32..(1 << 30),
    ) {
        let una = SeqNum(una);
        let u = usable(una, una + flight, wnd, cwnd);
        prop_assert!(u <= wnd.min(cwnd));
        prop_assert_eq!(u, wnd.min(cwnd).saturating_sub(flight));
        // Sending `u` more bytes fills, never overfills, the window.
        prop_assert!(flight + u <= wnd.min(cwnd).max(flight));
    }
}
