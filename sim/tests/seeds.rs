//! The simulation as a test: a batch of seeds passes every oracle and reaches every
//! interesting path, the regression seeds pass, and runs are deterministic.

use sim::batch::{failure_report, regression_seeds, run_batch};
use sim::{run, RunOptions};

/// Seeds of the batch `make test` runs.
const BATCH: u64 = 500;

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn a_batch_of_seeds_passes_every_oracle_and_reaches_every_path() {
    let seeds: Vec<u64> = (0..BATCH).collect();
    let b = run_batch(&seeds, jobs(), |_| {});
    let reports: String = b.failures.iter().map(failure_report).collect();
    assert!(
        b.failures.is_empty(),
        "{} seeds failed:\n{reports}",
        b.failures.len()
    );
    assert_eq!(b.seeds, BATCH);
    assert!(
        b.coverage.missing().is_empty(),
        "no seed reached {:?}:\n{}",
        b.coverage.missing(),
        b.coverage
    );
}

#[test]
fn regression_seeds_pass() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/regression-seeds.txt"))
            .expect("the regression file");
    let listed = regression_seeds(&text).expect("a valid regression file");
    assert!(!listed.is_empty());
    let seeds: Vec<u64> = listed.iter().map(|&(s, _)| s).collect();
    let b = run_batch(&seeds, jobs(), |_| {});
    let reports: String = b
        .failures
        .iter()
        .map(|o| {
            let note = listed
                .iter()
                .find(|(s, _)| *s == o.params.seed)
                .map_or("", |(_, n)| n);
            format!("(it once caught: {note})\n{}", failure_report(o))
        })
        .collect();
    assert!(b.failures.is_empty(), "{reports}");
}

#[test]
fn a_seed_replays_exactly_and_seeds_differ() {
    let opts = RunOptions::default();
    let a = run(11, &opts);
    let again = run(11, &opts);
    assert!(a.passed(), "{}", failure_report(&a));
    assert_eq!(a.hash, again.hash, "the same seed twice in one process");
    assert_eq!(a.virtual_time, again.virtual_time);
    assert_eq!(a.link, again.link);
    // On another OS thread too (nothing thread-local leaks between runs).
    let elsewhere = std::thread::spawn(move || run(11, &RunOptions::default()).hash)
        .join()
        .unwrap();
    assert_eq!(a.hash, elsewhere);
    let hashes: std::collections::BTreeSet<u64> = (11..19).map(|s| run(s, &opts).hash).collect();
    assert_eq!(hashes.len(), 8, "eight seeds, eight different runs");
}

#[test]
fn a_verbose_run_logs_every_packet_and_a_trace_is_written() {
    let dir = std::env::temp_dir().join(format!("sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    let o = run(
        3,
        &RunOptions {
            verbose: true,
            trace: Some(path.clone()),
        },
    );
    assert!(o.passed(), "{}", failure_report(&o));
    let sent = o.link[0].sent + o.link[1].sent;
    let packet_lines = o.log.iter().filter(|l| l.contains(" sends ")).count() as u64;
    assert_eq!(
        packet_lines, sent,
        "one log line per packet put on the link"
    );
    assert!(o.log.iter().any(|l| l.contains("loadgen0 starts")));
    let trace = std::fs::read_to_string(&path).unwrap();
    assert!(
        trace.contains("\"traceEvents\"") || trace.starts_with('['),
        "a Chrome trace"
    );
    assert!(
        trace.contains("packet"),
        "packets on the link are in the trace"
    );
    // The same run with and without recording is the same run.
    assert_eq!(o.hash, run(3, &RunOptions::default()).hash);
    std::fs::remove_dir_all(&dir).unwrap();
}
