//! Sharing a CPU with other OS threads.
//!
//! A core that always has work never blocks in its wait for events, so the kernel lets
//! it run out whole time slices, milliseconds each, while another thread queued on the
//! same CPU waits: the client of a server under load, say, whose responses then sit
//! unread for that long. A core that has run for its slice ([`Builder::cpu_slice`])
//! without the kernel switching it out gives its CPU up the next time it looks at its
//! event sources ([`iolib::sched::yield_cpu`]), which returns at once when no other
//! thread waits for the CPU. A core that blocks or is preempted within its slice never
//! yields. The thread's context-switch count (`getrusage`) tells a run from a sleep;
//! it is read once per slice of continuous work, and not at all by a core whose wait
//! for events lasted long enough to show that it slept ([`BLOCKED_NS`]): that wait
//! starts a new run. On a CPU of its own the cost is two clock reads per blocking look
//! at the event sources.
//!
//! [`Builder::cpu_slice`]: crate::Builder::cpu_slice

use std::cell::Cell;

/// A wait for events that took this long (real time) gave the CPU up: it slept, or the
/// kernel preempted the core during it. Returning with events ready takes a
/// microsecond or two.
pub(crate) const BLOCKED_NS: u64 = 20_000;

/// [`CpuShare::mark`]'s count when the run began at a wait that blocked, where no
/// count was read.
const UNCOUNTED: u64 = u64::MAX;

/// One core's record of how long it has kept its CPU.
pub(crate) struct CpuShare {
    /// The longest run without a switch (ns); `None`: never yield (also once the
    /// switch count cannot be read).
    slice_ns: Cell<Option<u64>>,
    /// When the current run was first seen (real ns), with the thread's context-switch
    /// count then ([`UNCOUNTED`] if the run began at a wait that blocked).
    mark: Cell<Option<(u64, u64)>>,
    /// Times the core gave its CPU up.
    yields: Cell<u64>,
}

impl CpuShare {
    pub(crate) fn new(slice_ns: Option<u64>) -> Self {
        CpuShare {
            slice_ns: Cell::new(slice_ns),
            mark: Cell::new(None),
            yields: Cell::new(0),
        }
    }

    /// Times the core gave its CPU up.
    pub(crate) fn yields(&self) -> u64 {
        self.yields.get()
    }

    /// The core is about to look at its event sources at `now_ns` (real time): yields
    /// the CPU if the core has kept it for its slice. `switches` reads the thread's context-switch
    /// count; `yield_cpu` gives the CPU up.
    pub(crate) fn pass_ended(
        &self,
        now_ns: u64,
        switches: impl Fn() -> Option<u64>,
        yield_cpu: impl FnOnce(),
    ) {
        let Some(slice) = self.slice_ns.get() else {
            return;
        };
        if let Some((since, _)) = self.mark.get() {
            if now_ns.saturating_sub(since) < slice {
                return;
            }
        }
        let Some(mut count) = switches() else {
            // No count to tell a run from a sleep: stop sharing rather than guess.
            self.slice_ns.set(None);
            return;
        };
        if self
            .mark
            .get()
            .is_some_and(|(_, before)| before == count && before != UNCOUNTED)
        {
            yield_cpu();
            self.yields.set(self.yields.get() + 1);
            count = switches().unwrap_or(count);
        }
        self.mark.set(Some((now_ns, count)));
    }

    /// The core looked at its event sources from `before_ns` to `after_ns` (real
    /// time): if that took [`BLOCKED_NS`] or more, it gave the CPU up, and a new run
    /// starts at `after_ns` without reading the switch count.
    pub(crate) fn waited(&self, before_ns: u64, after_ns: u64) {
        if self.slice_ns.get().is_some() && after_ns.saturating_sub(before_ns) >= BLOCKED_NS {
            self.mark.set(Some((after_ns, UNCOUNTED)));
        }
    }

    /// Whether the share is kept at all (a slice is set and the count can be read).
    pub(crate) fn enabled(&self) -> bool {
        self.slice_ns.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: u64 = 200_000;

    /// Runs passes ending at `times` with the switch count `counts[i]` at each; returns
    /// the passes that yielded.
    fn passes(share: &CpuShare, times: &[u64], counts: &[u64]) -> Vec<usize> {
        let mut yielded = Vec::new();
        for (i, (&t, &c)) in times.iter().zip(counts).enumerate() {
            share.pass_ended(t, || Some(c), || yielded.push(i));
        }
        yielded
    }

    #[test]
    fn a_core_that_keeps_its_cpu_for_a_slice_yields_it_once_per_slice() {
        let share = CpuShare::new(Some(SLICE));
        // Passes every 50 µs, never switched out: the first pass marks the run, and
        // every pass a slice after the last mark yields.
        let times: Vec<u64> = (0..10).map(|i| i * 50_000).collect();
        assert_eq!(passes(&share, &times, &[7; 10]), vec![4, 8]);
        assert_eq!(share.yields(), 2);
    }

    #[test]
    fn a_core_switched_out_within_its_slice_does_not_yield() {
        let share = CpuShare::new(Some(SLICE));
        // It blocked or was preempted between every two checks.
        let times = [0, 250_000, 500_000, 750_000];
        assert_eq!(passes(&share, &times, &[1, 2, 3, 4]), Vec::<usize>::new());
        // Then it runs on unswitched: the next check a slice later yields.
        assert_eq!(passes(&share, &[1_000_000, 1_100_000], &[4, 4]), vec![0]);
    }

    #[test]
    fn the_count_after_a_yield_starts_the_next_run() {
        let share = CpuShare::new(Some(SLICE));
        let mut count = 5;
        share.pass_ended(0, || Some(5), || {});
        // The yield itself switched the thread out: the next run starts from the count
        // read after it, so the run after that still yields.
        let seen = Cell::new(0);
        share.pass_ended(
            SLICE,
            || {
                seen.set(seen.get() + 1);
                Some(if seen.get() == 1 { 5 } else { 6 })
            },
            || count += 1,
        );
        assert_eq!((count, seen.get()), (6, 2));
        share.pass_ended(2 * SLICE, || Some(6), || count += 1);
        assert_eq!(count, 7);
    }

    #[test]
    fn a_core_that_blocks_within_each_slice_reads_no_switch_count() {
        let share = CpuShare::new(Some(SLICE));
        let reads = Cell::new(0);
        let count = || {
            reads.set(reads.get() + 1);
            Some(3)
        };
        // Passes every 50 µs, each after a wait that slept 30 µs: every run is short.
        for i in 0..20u64 {
            let t = i * 50_000;
            share.pass_ended(t, count, || panic!("a core that sleeps yielded"));
            share.waited(t, t + BLOCKED_NS + 10_000);
        }
        assert_eq!(
            reads.get(),
            1,
            "only the first pass, before any wait, reads it"
        );
        // Waits that return at once do not end the run: a slice later, the count is
        // read (the run began uncounted), and a slice after that, it yields.
        let t0 = 20 * 50_000;
        let mut yielded = Vec::new();
        for i in 0..10u64 {
            let t = t0 + i * 50_000;
            share.pass_ended(t, count, || yielded.push(i));
            share.waited(t, t + 1_000);
        }
        assert_eq!(yielded, vec![8]);
        // The first count of the run, the one that yielded, and the one after the
        // yield that starts the next run.
        assert_eq!(reads.get(), 4);
    }

    #[test]
    fn no_slice_or_no_switch_count_never_yields() {
        let off = CpuShare::new(None);
        assert!(passes(&off, &[0, SLICE, 2 * SLICE], &[1, 1, 1]).is_empty());
        let blind = CpuShare::new(Some(SLICE));
        for t in [0, SLICE, 2 * SLICE, 3 * SLICE] {
            blind.pass_ended(t, || None, || panic!("yielded without a count"));
        }
        assert_eq!((off.yields(), blind.yields()), (0, 0));
    }
}
