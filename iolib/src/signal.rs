//! Unix signals as descriptors: block them for the calling OS thread, then read them
//! from a `signalfd`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::{cvt, cvt_size, Error, Result};

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid value to hand to sigemptyset, which
    // initialises it; sigaddset updates the struct we own (an invalid signal number
    // is rejected by it and left out).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The usual name of `signal` (`SIGINT`) for the signals programs here wait for;
/// "a signal" for any other.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Blocks `signals` for the calling OS thread (and the threads it creates later).
pub fn block(signals: &[i32]) -> Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        // pthread_sigmask returns the error number instead of setting errno.
        return Err(Error::from_errno("pthread_sigmask", r));
    }
    Ok(())
}

/// A new non-blocking, close-on-exec `signalfd` for `signals` (which should be
/// blocked, see [`block`], or they are also delivered the usual way).
pub fn signalfd(signals: &[i32]) -> Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; -1 asks for a new descriptor.
    let fd = cvt("signalfd", unsafe {
        libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one signal from the signalfd `fd`; returns its number. A non-blocking `fd`
/// with nothing pending fails with `EAGAIN`.
pub fn read_signal(fd: RawFd) -> Result<i32> {
    // SAFETY: signalfd_siginfo is plain data, for which all-zero bytes are valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is `size` bytes of writable memory.
    let n = cvt_size("read(signalfd)", unsafe {
        libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size)
    })?;
    if n != size {
        // The kernel hands out whole records only; anything else is not a signalfd.
        return Err(Error::from_errno("read(signalfd)", libc::EINVAL));
    }
    Ok(info.ssi_signo as i32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_blocked_signal_is_read_from_the_signalfd() {
        // Run on a fresh OS thread so the blocked mask stays there.
        std::thread::spawn(|| {
            super::block(&[libc::SIGUSR2]).unwrap();
            let fd = super::signalfd(&[libc::SIGUSR2]).unwrap();
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            assert!(super::read_signal(raw).unwrap_err().is_would_block());
            // SAFETY: raising a blocked signal on this thread just marks it pending.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
            assert_eq!(super::read_signal(raw).unwrap(), libc::SIGUSR2);
        })
        .join()
        .unwrap();
    }
}
