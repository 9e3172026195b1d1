//! The benchmark result record, shared by the bench harnesses: one [`Record`] per
//! measured figure, written as a JSON array to `target/bench/<area>.json` (the format of
//! docs/ARCHITECTURE.md), and the [`median`] each figure is.

use std::io;
use std::path::Path;

use serde::Serialize;

/// Which direction of a metric wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Smaller is better (times, bytes).
    Lower,
    /// Larger is better (throughput).
    Higher,
}

/// One measured figure: ours against one anchor. Serialises to one record of the
/// format, its fields in this order.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Benchmark name, e.g. `spawn_join_1m`.
    pub bench: &'static str,
    /// Unit of `ours` and `anchor_value`, e.g. `seconds`.
    pub metric: &'static str,
    /// Which direction wins.
    pub better: Better,
    /// Our median.
    pub ours: f64,
    /// What we compare against, e.g. `tokio spawn_local`.
    pub anchor: &'static str,
    /// The anchor's median.
    pub anchor_value: f64,
    /// `ours / anchor_value`; NaN (written as `null`) when the anchor's value is 0.
    pub ratio: f64,
    /// Runs per side (each median is over this many).
    pub runs: usize,
    /// Sizes and settings of the benchmark.
    pub params: serde_json::Value,
}

/// What a benchmark measures: its name, unit, direction and parameters.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Benchmark name, e.g. `spawn_join_1m`.
    pub bench: &'static str,
    /// Unit, e.g. `seconds`.
    pub metric: &'static str,
    /// Which direction wins.
    pub better: Better,
    /// Sizes and settings.
    pub params: serde_json::Value,
}

impl Spec {
    /// The record comparing our median with one anchor's; the ratio is computed here.
    pub fn record(
        &self,
        ours: f64,
        anchor: &'static str,
        anchor_value: f64,
        runs: usize,
    ) -> Record {
        let ratio = if anchor_value == 0.0 {
            f64::NAN
        } else {
            ours / anchor_value
        };
        Record {
            bench: self.bench,
            metric: self.metric,
            better: self.better,
            ours,
            anchor,
            anchor_value,
            ratio,
            runs,
            params: self.params.clone(),
        }
    }
}

/// The median of `xs` (the mean of the middle two for an even count), NaNs left out;
/// NaN if nothing is left.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Writes `records` to `path` as a pretty-printed JSON array and a final newline,
/// creating the parent directory if needed.
pub fn write<'a>(path: &Path, records: impl IntoIterator<Item = &'a Record>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let records: Vec<&Record> = records.into_iter().collect();
    std::fs::write(path, serde_json::to_string_pretty(&records)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        bench: &'static str,
        metric: &'static str,
        better: Better,
        params: serde_json::Value,
    ) -> Spec {
        Spec {
            bench,
            metric,
            better,
            params,
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn record_serialises_in_the_design_format() {
        let params = serde_json::json!({"threads": 1_000_000});
        let r = spec("spawn_join_1m", "seconds", Better::Lower, params).record(
            0.5,
            "tokio spawn_local",
            2.0,
            5,
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "bench": "spawn_join_1m", "metric": "seconds", "better": "lower",
                "ours": 0.5, "anchor": "tokio spawn_local", "anchor_value": 2.0,
                "ratio": 0.25, "runs": 5, "params": {"threads": 1_000_000}
            })
        );
    }

    #[test]
    fn a_written_file_keeps_field_order_and_writes_a_zero_anchor_as_null() {
        let spec = spec("b", "m", Better::Higher, serde_json::json!({}));
        let dir = std::env::temp_dir().join(format!("benchkit-{}", std::process::id()));
        let path = dir.join("sub").join("x.json");
        write(&path, &[spec.record(1.0, "a", 0.0, 3)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            text,
            "[\n  {\n    \"bench\": \"b\",\n    \"metric\": \"m\",\n    \"better\": \"higher\",\n    \
             \"ours\": 1.0,\n    \"anchor\": \"a\",\n    \"anchor_value\": 0.0,\n    \
             \"ratio\": null,\n    \"runs\": 3,\n    \"params\": {}\n  }\n]\n"
        );
    }
}
