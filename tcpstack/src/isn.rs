//! Keyed hashing: ISNs (RFC 6528), timestamp offsets, SYN cookies and the
//! connection-table hasher, all derived from the stack's secret.

use core::hash::{BuildHasher, Hasher};
use core::net::SocketAddrV4;

use siphasher::sip::{SipHasher13, SipHasher24};

use crate::{Instant, SeqNum};

/// Mss values a SYN cookie can encode (3 bits), in ascending order.
const COOKIE_MSS: [u16; 8] = [536, 1200, 1400, 1440, 1452, 1460, 8960, 65495];
/// A cookie's time counter ticks every 64 seconds.
const COOKIE_TICK_MICROS: u64 = 64_000_000;
/// The longest a cookie stays valid: it is accepted in its own tick and the next.
pub(crate) const COOKIE_LIFETIME: core::time::Duration =
    core::time::Duration::from_micros(2 * COOKIE_TICK_MICROS);

/// The keyed functions of one stack.
#[derive(Debug, Clone)]
pub(crate) struct Secrets {
    k0: u64,
    k1: u64,
}

/// A four-tuple as seen from the stack: local then remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FourTuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

impl FourTuple {
    fn write(&self, h: &mut impl Hasher) {
        h.write(&self.local.ip().octets());
        h.write(&self.remote.ip().octets());
        h.write_u16(self.local.port());
        h.write_u16(self.remote.port());
    }
}

impl Secrets {
    pub fn new(secret: &[u8; 16]) -> Self {
        let (a, b) = secret.split_at(8);
        Self {
            k0: u64::from_le_bytes(a.try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(b.try_into().expect("8 bytes")),
        }
    }

    fn hash(&self, domain: u8, t: &FourTuple, extra: &[u32]) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write_u8(domain);
        t.write(&mut h);
        for &x in extra {
            h.write_u32(x);
        }
        h.finish()
    }

    /// RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
    /// where M is a timer ticking every 4 microseconds.
    pub fn isn(&self, now: Instant, t: &FourTuple) -> SeqNum {
        let m = (now.as_micros() / 4) as u32;
        SeqNum(m.wrapping_add(self.hash(0, t, &[]) as u32))
    }

    /// Per-connection offset added to the millisecond timestamp clock (RFC 7323
    /// section 5.4 recommends a random offset per connection).
    pub fn ts_offset(&self, t: &FourTuple) -> u32 {
        self.hash(1, t, &[]) as u32
    }

    /// A SYN cookie ISN: `[5 bits time counter | 3 bits MSS index | 24 bits MAC]`,
    /// the MAC covering the tuple, the counter, the client's ISN and the MSS index.
    pub fn cookie(&self, now: Instant, t: &FourTuple, client_isn: SeqNum, mss: u16) -> SeqNum {
        let count = (now.as_micros() / COOKIE_TICK_MICROS) as u32;
        let idx = COOKIE_MSS.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let mac = self.hash(2, t, &[count, client_isn.0, idx]) as u32 & 0x00ff_ffff;
        SeqNum(((count & 0x1f) << 27) | (idx << 24) | mac)
    }

    /// Validates the cookie echoed in an ACK (`ack - 1`) sent in reply to a SYN with
    /// `client_isn` (`seq - 1`). Cookies are valid for the current and the previous
    /// time counter (64-128 s). Returns the MSS the cookie encodes.
    pub fn check_cookie(
        &self,
        now: Instant,
        t: &FourTuple,
        client_isn: SeqNum,
        cookie: SeqNum,
    ) -> Option<u16> {
        let now_count = (now.as_micros() / COOKIE_TICK_MICROS) as u32;
        let c = cookie.0;
        let idx = (c >> 24) & 0x7;
        for age in 0..2u32 {
            let count = now_count.wrapping_sub(age);
            if (count & 0x1f) != c >> 27 {
                continue;
            }
            let mac = self.hash(2, t, &[count, client_isn.0, idx]) as u32 & 0x00ff_ffff;
            if mac == c & 0x00ff_ffff {
                return Some(COOKIE_MSS[idx as usize]);
            }
        }
        None
    }

    /// A number for `n` that nobody without the secret can tell (domain 3).
    pub fn keyed(&self, n: u64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write_u8(3);
        h.write_u64(n);
        h.finish()
    }

    /// A deterministic hasher keyed by the secret, for the connection table (keyed so
    /// remote peers cannot aim collisions at one bucket).
    pub fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            k0: self.k0 ^ 0x5bd1_e995_0000_0001,
            k1: self.k1,
        }
    }
}

/// A [`BuildHasher`] for SipHash-1-3 with fixed keys: deterministic, unlike
/// `RandomState`, and still resistant to collision flooding while the key is secret.
#[derive(Debug, Clone)]
pub(crate) struct KeyedHasher {
    k0: u64,
    k1: u64,
}

impl BuildHasher for KeyedHasher {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port),
        }
    }

    #[test]
    fn isn_depends_on_tuple_secret_and_time() {
        let s = Secrets::new(&[7; 16]);
        let t0 = Instant::ZERO;
        assert_ne!(s.isn(t0, &tuple(1000)), s.isn(t0, &tuple(1001)));
        assert_ne!(
            s.isn(t0, &tuple(1000)),
            Secrets::new(&[8; 16]).isn(t0, &tuple(1000))
        );
        let later = Instant::from_micros(400);
        assert_eq!(s.isn(later, &tuple(1000)) - s.isn(t0, &tuple(1000)), 100);
    }

    #[test]
    fn cookies_validate_expire_and_bind_to_the_tuple() {
        let s = Secrets::new(&[1; 16]);
        let now = Instant::from_millis(1_000_000);
        let c = s.cookie(now, &tuple(5), SeqNum(42), 1460);
        assert_eq!(s.check_cookie(now, &tuple(5), SeqNum(42), c), Some(1460));
        let later = now + core::time::Duration::from_secs(64);
        assert_eq!(s.check_cookie(later, &tuple(5), SeqNum(42), c), Some(1460));
        let much_later = now + core::time::Duration::from_secs(200);
        assert_eq!(s.check_cookie(much_later, &tuple(5), SeqNum(42), c), None);
        assert_eq!(s.check_cookie(now, &tuple(6), SeqNum(42), c), None);
        assert_eq!(s.check_cookie(now, &tuple(5), SeqNum(43), c), None);
        assert_eq!(s.check_cookie(now, &tuple(5), SeqNum(42), c + 1u32), None);
        // MSS rounds down to an encodable value.
        let c = s.cookie(now, &tuple(5), SeqNum(1), 1000);
        assert_eq!(s.check_cookie(now, &tuple(5), SeqNum(1), c), Some(536));
    }
}
