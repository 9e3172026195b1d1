//! Running many seeds: spread over OS threads (each seed is its own one-core runtime,
//! so a seed's outcome never depends on what runs beside it), with failure reports
//! whose first line replays the seed, and the regression-seed file.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::coverage::Coverage;
use crate::world::{run, Outcome, RunOptions};

/// What a batch of seeds did.
#[derive(Debug, Default)]
pub struct Batch {
    /// Seeds run.
    pub seeds: u64,
    /// The seeds that failed, in seed order.
    pub failures: Vec<Outcome>,
    /// Paths taken, summed over the seeds.
    pub coverage: Coverage,
    /// Virtual time of all runs.
    pub virtual_time: Duration,
}

/// Runs `seeds` on `jobs` OS threads, calling `each` with every outcome as it comes.
pub fn run_batch(seeds: &[u64], jobs: usize, each: impl Fn(&Outcome) + Sync) -> Batch {
    let next = AtomicUsize::new(0);
    let batch = Mutex::new(Batch::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { return };
                let o = run(seed, &RunOptions::default());
                each(&o);
                let mut b = batch.lock().unwrap_or_else(|p| p.into_inner());
                b.seeds += 1;
                b.coverage += &o.coverage;
                b.virtual_time += o.virtual_time;
                if !o.passed() {
                    b.failures.push(o);
                }
            });
        }
    });
    let mut b = batch.into_inner().unwrap_or_else(|p| p.into_inner());
    b.failures.sort_by_key(|o| o.params.seed);
    b
}

/// A failed seed's report. Its first line is the command that replays the seed; then
/// the violations, the drawn parameters and the event hash.
pub fn failure_report(o: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "make sim SEED={}", o.params.seed);
    let _ = writeln!(
        out,
        "  seed {} FAILED ({} violations):",
        o.params.seed,
        o.violations.len()
    );
    for v in o.violations.iter().take(20) {
        let _ = writeln!(out, "    {v}");
    }
    let _ = writeln!(out, "  drawn parameters:\n{}", o.params);
    let _ = writeln!(out, "  event hash: {:016x}", o.hash);
    out
}

/// The seeds of a regression file: one per line, `SEED  what it caught`; `#` starts a
/// comment. Every seed must carry its note.
pub fn regression_seeds(text: &str) -> Result<Vec<(u64, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (seed, note) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let seed = seed
            .parse()
            .map_err(|e| format!("line {}: {seed:?} is not a seed: {e}", n + 1))?;
        let note = note.trim();
        if note.is_empty() {
            return Err(format!(
                "line {}: seed {seed} has no note of what it caught",
                n + 1
            ));
        }
        out.push((seed, note.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_files_need_a_note_per_seed() {
        let ok = regression_seeds("# header\n12  a bug\n\n7 another # trailing\n").unwrap();
        assert_eq!(
            ok,
            vec![(12, "a bug".to_owned()), (7, "another".to_owned())]
        );
        assert!(regression_seeds("12\n").is_err());
        assert!(regression_seeds("x  note\n").is_err());
    }
}
