//! Property tests: sequence-number arithmetic across the 2^32 wraparound.

use proptest::prelude::*;
use tcpstack::SeqNum;

/// Distances for which circular comparison is defined (under 2^31).
fn dist() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..1000, 0u32..(1 << 31), Just((1u32 << 31) - 1)]
}

/// Bases that often sit near the wrap point.
fn base() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (u32::MAX - 2000)..=u32::MAX, 0u32..2000]
}

proptest! {
    #[test]
    fn add_then_sub_round_trips(a in base(), d in dist()) {
        let s = SeqNum(a);
        let t = s + d;
        prop_assert_eq!(t - s, d);
        prop_assert_eq!(t - d, s);
        prop_assert_eq!(t.diff(s), d as i32);
        prop_assert_eq!(s.diff(t), -(d as i32));
        let mut u = s;
        u += d;
        prop_assert_eq!(u, t);
        u -= d;
        prop_assert_eq!(u, s);
    }

    #[test]
    fn ordering_is_consistent(a in base(), d in dist()) {
        let s = SeqNum(a);
        let t = s + d;
        if d == 0 {
            prop_assert!(s.le(t) && s.ge(t) && !s.lt(t) && !s.gt(t));
        } else {
            prop_assert!(s.lt(t) && s.le(t) && t.gt(s) && t.ge(s));
            prop_assert!(!t.lt(s) && !s.gt(t) && !t.le(s) && !s.ge(t));
        }
        prop_assert_eq!(s.max(t), t);
        prop_assert_eq!(s.min(t), s);
        prop_assert_eq!(s.cmp_seq(t), t.cmp_seq(s).reverse());
    }

    #[test]
    fn transitive_within_half_space(a in base(), d1 in 0u32..(1 << 30), d2 in 0u32..(1 << 30)) {
        let x = SeqNum(a);
        let y = x + d1;
        let z = y + d2;
        prop_assert!(x.le(y) && y.le(z) && x.le(z));
        prop_assert_eq!(z - x, d1 + d2);
    }

    #[test]
    fn in_window_matches_distance(a in base(), len in any::<u32>(), d in any::<u32>()) {
        let start = SeqNum(a);
        let s = start + d;
        prop_assert_eq!(s.in_window(start, len), d < len);
    }

    #[test]
    fn usize_and_u32_addition_agree(a in base(), d in any::<u32>()) {
        prop_assert_eq!(SeqNum(a) + d, SeqNum(a) + d as usize);
    }
}
