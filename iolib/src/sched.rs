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

/// Sets how late the kernel may end the calling thread's timed waits so as to batch
/// wake-ups (`PR_SET_TIMERSLACK`; 50 µs by default). Threads it creates afterwards
/// inherit it. A program that times events to microseconds asks for 1 ns.
pub fn set_timer_slack(ns: u64) -> Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns.max(1) as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(Error::last("prctl(PR_SET_TIMERSLACK)"));
    }
    Ok(())
}

/// The calling thread's timer slack in ns (`PR_GET_TIMERSLACK`).
pub fn timer_slack() -> Result<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the slack.
    let r = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    if r < 0 {
        return Err(Error::last("prctl(PR_GET_TIMERSLACK)"));
    }
    Ok(r as u64)
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), in ascending order.
/// Threads it creates afterwards inherit the same set.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return Err(Error::last("sched_getaffinity"));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, within the set.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restricts the calling thread to `cpus` (`sched_setaffinity`): the kernel runs it
/// only there, moving it at once if it is elsewhere. Fails with `EINVAL` if none of
/// them is online or permitted, and for a CPU number not below `CPU_SETSIZE` (1024).
pub fn set_allowed_cpus(cpus: &[usize]) -> Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(Error::from_errno("sched_setaffinity", libc::EINVAL));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, within the set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed, only read by the call.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } != 0 {
        return Err(Error::last("sched_setaffinity"));
    }
    Ok(())
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

    #[test]
    fn a_thread_restricted_to_one_cpu_runs_there_and_its_children_inherit_it() {
        std::thread::spawn(|| {
            let all = allowed_cpus().unwrap();
            assert!(!all.is_empty());
            let last = *all.last().unwrap();
            set_allowed_cpus(&[last]).unwrap();
            assert_eq!(allowed_cpus().unwrap(), [last]);
            // SAFETY: sched_getcpu takes no arguments.
            assert_eq!(unsafe { libc::sched_getcpu() }, last as i32);
            let child = std::thread::spawn(|| allowed_cpus().unwrap())
                .join()
                .unwrap();
            assert_eq!(child, [last]);
            set_allowed_cpus(&all).unwrap();
            assert_eq!(allowed_cpus().unwrap(), all);
            assert!(set_allowed_cpus(&[libc::CPU_SETSIZE as usize]).is_err());
            assert!(set_allowed_cpus(&[]).is_err());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn timer_slack_is_set_for_the_calling_thread_and_inherited() {
        std::thread::spawn(|| {
            set_timer_slack(1).unwrap();
            assert_eq!(timer_slack().unwrap(), 1);
            let child = std::thread::spawn(|| timer_slack().unwrap())
                .join()
                .unwrap();
            assert_eq!(child, 1);
        })
        .join()
        .unwrap();
    }
}
