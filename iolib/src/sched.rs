//! The calling OS thread and the kernel's CPU scheduler.

use crate::error::{Error, Result};

/// Gives the CPU up to other runnable threads (`sched_yield`); returns at once when
/// none is waiting for this CPU.
pub fn yield_cpu() {
    // SAFETY: sched_yield takes no arguments and touches no memory of ours.
    unsafe { libc::sched_yield() };
}

/// How many times the kernel has switched the calling thread out so far, voluntarily
/// (it blocked) or not (it was preempted): `getrusage(RUSAGE_THREAD)`'s `ru_nvcsw +
/// ru_nivcsw`. Never decreases on one thread.
pub fn context_switches() -> Result<u64> {
    // SAFETY: rusage is plain old data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Err(Error::last("getrusage(RUSAGE_THREAD)"));
    }
    Ok(usage.ru_nvcsw as u64 + usage.ru_nivcsw as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_thread_that_sleeps_is_switched_out() {
        let before = context_switches().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let after = context_switches().unwrap();
        assert!(after > before, "{before} -> {after}");
        yield_cpu();
        assert!(context_switches().unwrap() >= after);
    }
}
