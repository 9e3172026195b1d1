//! Result records (the `target/bench/<area>.json` format of docs/ARCHITECTURE.md, kept in
//! [`benchkit`]), and the printed table with each figure's goal.

use benchkit::Record;

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
    use benchkit::{Better, Spec};

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
