//! The loss-recovery episode (RFC 6675 section 5, RFC 6582): when one starts, and
//! `RecoveryPoint`, the `HighData` an ACK must cover to end it. What is lost and what
//! to send is decided elsewhere: by RACK's transmit records ([`crate::rack`]) with
//! SACK, by duplicate ACKs and partial ACKs (NewReno) without.

use crate::SeqNum;

/// RFC 6675's DupThresh: duplicate ACKs (without SACK), or segments' worth of SACKed
/// data (with it: RACK's reordering window is zero beyond it), that signal a loss.
pub const DUP_THRESH: u32 = 3;

/// How an ACK relates to an ongoing recovery (see [`Recovery::on_ack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAck {
    /// Not in recovery.
    Idle,
    /// In recovery; the ACK did not advance `SND.UNA` past `RecoveryPoint`. `advanced`
    /// tells whether it advanced at all (a partial ACK, RFC 6582).
    Partial {
        /// Whether `SND.UNA` moved.
        advanced: bool,
    },
    /// The ACK covers `RecoveryPoint`: recovery is over.
    Exited,
}

/// Loss-recovery episode state: whether one is active and its `RecoveryPoint`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recovery {
    active: bool,
    /// Set while active, and after a timeout until `SND.UNA` passes it.
    recovery_point: Option<SeqNum>,
    /// `HighData` at the last entry (for reporting after exit).
    last_point: SeqNum,
    last_una: SeqNum,
}

impl Recovery {
    /// Not in recovery.
    pub const fn new() -> Self {
        Recovery {
            active: false,
            recovery_point: None,
            last_point: SeqNum(0),
            last_una: SeqNum(0),
        }
    }

    /// Whether a recovery episode is in progress.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// `RecoveryPoint` (= `HighData` at the latest entry or timeout).
    #[inline]
    pub fn recovery_point(&self) -> SeqNum {
        self.recovery_point.unwrap_or(self.last_point)
    }

    /// Whether a new recovery may start: RFC 6675 section 5 forbids one while an ACK
    /// has not passed the previous `RecoveryPoint` (one congestion response per window
    /// of data, and none for losses a timeout already answered).
    pub fn may_enter(&self, snd_una: SeqNum) -> bool {
        !self.active && !matches!(self.recovery_point, Some(p) if snd_una.lt(p))
    }

    /// Enter recovery: `RecoveryPoint = snd_nxt`.
    pub fn enter(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        self.active = true;
        self.recovery_point = Some(snd_nxt);
        self.last_point = snd_nxt;
        self.last_una = snd_una;
    }

    /// Process the cumulative ACK `snd_una`.
    pub fn on_ack(&mut self, snd_una: SeqNum) -> RecoveryAck {
        let point = self.recovery_point.unwrap_or(snd_una);
        if !self.active {
            if snd_una.ge(point) {
                // Past the point of an abandoned episode: forget it, so it cannot
                // look like a future point once sequence numbers wrap.
                self.recovery_point = None;
            }
            return RecoveryAck::Idle;
        }
        let advanced = snd_una.gt(self.last_una);
        self.last_una = self.last_una.max(snd_una);
        if snd_una.ge(point) {
            self.active = false;
            self.recovery_point = None;
            RecoveryAck::Exited
        } else {
            RecoveryAck::Partial { advanced }
        }
    }

    /// The episode's congestion response was undone (its retransmissions proved
    /// needless): it ends, and leaves no `RecoveryPoint` behind.
    pub fn undo(&mut self) {
        self.active = false;
        self.recovery_point = None;
    }

    /// Abandon recovery (e.g. on a retransmission timeout), keeping a `RecoveryPoint`
    /// so a new episode does not start before it is passed. `snd_nxt` is the current
    /// `HighData`, which becomes the new `RecoveryPoint` (RFC 6582 section 4).
    pub fn on_timeout(&mut self, snd_nxt: SeqNum) {
        self.active = false;
        self.recovery_point = Some(snd_nxt);
        self.last_point = snd_nxt;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(off: u32) -> SeqNum {
        SeqNum(u32::MAX - 5000) + off
    }

    #[test]
    fn recovery_episode() {
        let mut rec = Recovery::new();
        assert_eq!(rec.on_ack(s(0)), RecoveryAck::Idle);
        assert!(rec.may_enter(s(0)));
        rec.enter(s(0), s(10_000));
        assert!(rec.is_active() && !rec.may_enter(s(0)));
        assert_eq!(rec.on_ack(s(0)), RecoveryAck::Partial { advanced: false });
        assert_eq!(rec.on_ack(s(2000)), RecoveryAck::Partial { advanced: true });
        assert_eq!(rec.on_ack(s(10_000)), RecoveryAck::Exited);
        assert!(!rec.is_active());
        assert_eq!(rec.recovery_point(), s(10_000));
        rec.enter(s(10_000), s(20_000));
        rec.on_timeout(s(25_000));
        assert!(!rec.is_active() && !rec.may_enter(s(20_000)) && rec.may_enter(s(25_000)));
        assert_eq!(rec.on_ack(s(25_000)), RecoveryAck::Idle);
        assert!(rec.may_enter(s(25_000)));
    }
}
