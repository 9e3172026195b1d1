//! Property tests: congestion control stays within its bounds under any event sequence.

use core::time::Duration;

use proptest::prelude::*;
use tcpstack::cc::{CcAlgorithm, CcConfig, CongestionControl, MAX_CWND};
use tcpstack::Instant;

#[derive(Debug, Clone)]
enum Ev {
    Ack {
        bytes: u32,
        rtt_us: u64,
        flight: u32,
    },
    Congestion {
        flight: u32,
    },
    Rto {
        flight: u32,
    },
    Exit,
    DupAck,
    Partial {
        bytes: u32,
    },
    Idle,
    Mss(u32),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        6 => (0u32..200_000, 1u64..2_000_000, 0u32..(1 << 28))
            .prop_map(|(bytes, rtt_us, flight)| Ev::Ack { bytes, rtt_us, flight }),
        1 => (0u32..(1 << 28)).prop_map(|flight| Ev::Congestion { flight }),
        1 => (0u32..(1 << 28)).prop_map(|flight| Ev::Rto { flight }),
        1 => Just(Ev::Exit),
        1 => Just(Ev::DupAck),
        1 => (0u32..100_000).prop_map(|bytes| Ev::Partial { bytes }),
        1 => Just(Ev::Idle),
        1 => (1u32..65_535).prop_map(Ev::Mss),
    ]
}

proptest! {
    #[test]
    fn windows_stay_bounded(
        cubic in any::<bool>(),
        mss in 1u32..9000,
        events in prop::collection::vec((ev(), 0u64..500_000), 1..300),
    ) {
        let cfg = CcConfig {
            algorithm: if cubic { CcAlgorithm::Cubic } else { CcAlgorithm::NewReno },
            ..CcConfig::default()
        };
        let mut cc = CongestionControl::new(&cfg, mss);
        let mut now = Instant::ZERO;
        for (e, dt) in events {
            now += Duration::from_micros(dt);
            let before = cc.cwnd();
            match e {
                Ev::Ack { bytes, rtt_us, flight } => {
                    cc.on_ack(now, bytes, Some(Duration::from_micros(rtt_us)), flight);
                    if !cubic {
                        // NewReno never shrinks on an ACK. It grows by at most 2 SMSS in
                        // slow start (RFC 3465, L = 2) plus, when that ACK carries
                        // cwnd past ssthresh, 1 SMSS of congestion avoidance for the
                        // bytes left over.
                        prop_assert!(cc.cwnd() >= before);
                        prop_assert!(cc.cwnd() <= before + 3 * cc.mss());
                    }
                }
                Ev::Congestion { flight } => {
                    cc.on_congestion_event(now, flight);
                    prop_assert_eq!(cc.cwnd(), cc.ssthresh());
                }
                Ev::Rto { flight } => {
                    cc.on_rto(now, flight);
                    prop_assert_eq!(cc.cwnd(), cc.mss());
                }
                Ev::Exit => {
                    cc.on_recovery_exit(now);
                    prop_assert_eq!(cc.cwnd(), cc.ssthresh().min(MAX_CWND));
                }
                Ev::DupAck => cc.on_dup_ack_in_recovery(),
                Ev::Partial { bytes } => cc.on_partial_ack(bytes),
                Ev::Idle => {
                    cc.on_idle_restart(now);
                    prop_assert!(cc.cwnd() <= before);
                }
                Ev::Mss(m) => cc.set_mss(m),
            }
            prop_assert!(cc.cwnd() >= cc.mss(), "cwnd {} < mss {}", cc.cwnd(), cc.mss());
            prop_assert!(cc.cwnd() <= MAX_CWND);
            prop_assert!(cc.ssthresh() >= 2 * cc.mss(), "ssthresh {}", cc.ssthresh());
        }
    }
}
