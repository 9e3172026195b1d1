//! The run's event hash: FNV-1a over every event, so two runs of a seed can be compared
//! by one number (and a replay checked against a failure report).

/// A running 64-bit FNV-1a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHash(u64);

impl Default for EventHash {
    fn default() -> Self {
        EventHash(0xcbf2_9ce4_8422_2325)
    }
}

impl EventHash {
    /// Adds `bytes`.
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Adds numbers (as their little-endian bytes).
    pub fn add(&mut self, words: &[u64]) {
        for w in words {
            self.add_bytes(&w.to_le_bytes());
        }
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_known_input() {
        let mut h = EventHash::default();
        h.add_bytes(b"a");
        assert_eq!(h.value(), 0xaf63_dc4c_8601_ec8c);
        let mut g = EventHash::default();
        g.add(&[1]);
        assert_ne!(g.value(), EventHash::default().value());
    }
}
