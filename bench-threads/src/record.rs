//! Result records (the `target/bench/<area>.json` format of docs/ARCHITECTURE.md), medians, and
//! the printed table.

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

/// One measured figure: ours against one anchor.
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
    /// `ours / anchor_value`.
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

/// The median of `xs` (the mean of the middle two for an even count); NaN if empty.
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

/// A target the benchmark reports as met or missed: a bound on the ratio (or on our value).
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// `ratio <= x`.
    RatioAtMost(f64),
    /// `ratio >= x`.
    RatioAtLeast(f64),
    /// No goal against this anchor (a second reference point).
    None,
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::RatioAtMost(x) => format!("<= {x}x"),
            Goal::RatioAtLeast(x) => format!(">= {x}x"),
            Goal::None => "-".to_string(),
        }
    }

    fn met(self, ratio: f64) -> &'static str {
        match self {
            Goal::RatioAtMost(x) if ratio <= x => "yes",
            Goal::RatioAtLeast(x) if ratio >= x => "yes",
            Goal::None => "",
            _ => "NO",
        }
    }
}

fn human(metric: &str, v: f64) -> String {
    if v.is_nan() {
        return "n/a".to_string();
    }
    match metric {
        "seconds" => format!("{:.4} s", v),
        "bytes" => format!("{:.0} B", v),
        "bytes_per_s" => format!("{:.2} GB/s", v / 1e9),
        _ => format!("{v}"),
    }
}

/// Renders the records as an aligned text table with each one's goal.
pub fn table(rows: &[(Record, Goal)]) -> String {
    let header = ["bench", "anchor", "ours", "anchor", "ratio", "goal", "met"];
    let mut cells: Vec<[String; 7]> = vec![header.map(str::to_string)];
    for (r, g) in rows {
        cells.push([
            r.bench.to_string(),
            r.anchor.to_string(),
            human(r.metric, r.ours),
            human(r.metric, r.anchor_value),
            format!("{:.3}", r.ratio),
            g.describe(),
            g.met(r.ratio).to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(j, (c, w))| {
                if j < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn record_serialises_in_the_design_format() {
        let spec = Spec {
            bench: "spawn_join_1m",
            metric: "seconds",
            better: Better::Lower,
            params: serde_json::json!({"threads": 1_000_000}),
        };
        let r = spec.record(0.5, "tokio spawn_local", 2.0, 5);
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
    fn table_marks_goals() {
        let spec = Spec {
            bench: "copy_vs_cat_4g",
            metric: "bytes_per_s",
            better: Better::Higher,
            params: serde_json::json!({}),
        };
        let r = spec.record(3e9, "cat", 2e9, 5);
        let t = table(&[(r, Goal::RatioAtLeast(1.2))]);
        let row = t.lines().nth(2).unwrap();
        assert!(row.contains("3.00 GB/s") && row.contains("1.500") && row.ends_with("yes"));
    }
}
