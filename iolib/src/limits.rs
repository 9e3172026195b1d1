//! Process resource limits.

use crate::error::{Error, Result};

/// Raises the soft limit on open file descriptors (`RLIMIT_NOFILE`) towards `want`,
/// never past the hard limit and never lowering it; returns the soft limit then in
/// effect.
///
/// When the soft limit already reaches `want`, or already equals the hard limit, no
/// limit is changed. `u64::MAX` asks for as many as the hard limit allows.
pub fn raise_open_files(want: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(Error::last("getrlimit(RLIMIT_NOFILE)"));
    }
    let target = want.min(limit.rlim_max);
    if limit.rlim_cur >= target {
        return Ok(limit.rlim_cur);
    }
    limit.rlim_cur = target;
    // SAFETY: `limit` is a valid rlimit whose soft value does not exceed the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(Error::last("setrlimit(RLIMIT_NOFILE)"));
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> (u64, u64) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        (limit.rlim_cur, limit.rlim_max)
    }

    #[test]
    fn raises_to_what_is_asked_within_the_hard_limit_and_never_lowers() {
        let (soft, hard) = current();
        // Asking for less than the soft limit changes nothing.
        assert_eq!(raise_open_files(0).unwrap(), soft);
        assert_eq!(current(), (soft, hard));
        // Asking for everything reaches the hard limit, and stays there.
        assert_eq!(raise_open_files(u64::MAX).unwrap(), hard);
        assert_eq!(current(), (hard, hard));
        assert_eq!(raise_open_files(1).unwrap(), hard);
    }
}
