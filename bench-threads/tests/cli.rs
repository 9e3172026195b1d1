//! Runs the whole bench binary at a thousandth of its sizes and checks the JSON it
//! writes (the figures themselves are not checked: tests never assert speed).

use std::process::Command;

#[test]
fn smoke_run_writes_one_record_per_anchor() {
    let dir = std::env::temp_dir().join(format!("bench-threads-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("threads.json");
    // `cat` stands in for the copy example, which this crate does not build.
    let cat = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("cat"))
        .find(|p| p.is_file())
        .expect("cat on the PATH");
    let status = Command::new(env!("CARGO_BIN_EXE_bench-threads"))
        .args(["--shrink", "1000", "--runs", "1", "--copy-runs", "1"])
        .arg("--out")
        .arg(&out)
        .arg("--scratch")
        .arg(&dir)
        .arg("--copy-bin")
        .arg(&cat)
        .status()
        .expect("run bench-threads");
    assert!(status.success());

    let records: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let names: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["bench"].as_str().unwrap(), r["anchor"].as_str().unwrap()))
        .collect();
    let mut expected = Vec::new();
    for bench in [
        "spawn_join_1m",
        "yield_pingpong_1m",
        "channel_pingpong_1m",
        "sleepers_1m_bytes_per_thread",
        "sleepers_10m_bytes_per_thread",
    ] {
        expected.push((bench, "tokio spawn_local"));
        expected.push((bench, "tokio multi-thread"));
    }
    expected.push(("copy_vs_cat_4g", "cat"));
    assert_eq!(names, expected);
    for r in &records {
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "anchor",
                "anchor_value",
                "bench",
                "better",
                "metric",
                "ours",
                "params",
                "ratio",
                "runs"
            ]
        );
        let (ours, anchor) = (
            r["ours"].as_f64().unwrap(),
            r["anchor_value"].as_f64().unwrap(),
        );
        assert!(ours > 0.0 && anchor > 0.0, "{r}");
        assert!((r["ratio"].as_f64().unwrap() - ours / anchor).abs() < 1e-9 * (ours / anchor));
    }
    // The scratch data file is gone.
    assert!(!dir.join("copy-vs-cat.bin").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
