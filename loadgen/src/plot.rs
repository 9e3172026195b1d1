//! `--plot`: a self-contained SVG picture of a run (no scripts, no external
//! resources), in three panels:
//!
//! 1. latency by percentile, the same rows as the `--latency` spectrum, on the usual
//!    logarithmic `1/(1-p)` axis (0%, 90%, 99%, 99.9%, ...), with the maximum as a
//!    dashed line;
//! 2. requests per second (and errors per second, when there were any) for each second
//!    of the run;
//! 3. the 99th percentile latency of each second, with the whole run's p99 dashed.
//!
//! Every point carries its figures as `data-*` attributes and a `<title>` (a tooltip
//! in a browser), so the picture can be read back exactly.

use std::fmt::Write as _;

use crate::report::{
    format_bytes, format_duration, format_us, per_second, spectrum, JsonReport, SecondFigures,
    SpectrumRow, Summary,
};

/// Width of the picture.
const WIDTH: f64 = 960.0;
/// Left edge of the plot areas (room for the value labels).
const LEFT: f64 = 80.0;
/// Right margin.
const RIGHT: f64 = 30.0;
/// Height of the header (title and summary lines).
const HEADER: f64 = 90.0;
/// Height of each plot area.
const PANEL: f64 = 220.0;
/// Space above each plot area (its title) and below it (its axis labels).
const ABOVE: f64 = 30.0;
const BELOW: f64 = 45.0;
/// Most decades of the percentile axis (99.9999999999%).
const MAX_DECADES: u32 = 12;

const CURVE: &str = "#1f77b4";
const ERRORS: &str = "#d62728";
const REFERENCE: &str = "#7f7f7f";

/// A plot area and the value ranges it shows.
struct Area {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Area {
    /// Panel `index` (from 0), showing x in `[0, x_max]` and y in `[0, y_max]`.
    fn panel(index: usize, x_max: f64, y_max: f64) -> Self {
        Area {
            left: LEFT,
            top: HEADER + ABOVE + index as f64 * (ABOVE + PANEL + BELOW),
            width: WIDTH - LEFT - RIGHT,
            height: PANEL,
            x_max: if x_max > 0.0 { x_max } else { 1.0 },
            y_max: if y_max > 0.0 { y_max } else { 1.0 },
        }
    }

    fn x(&self, value: f64) -> f64 {
        self.left + self.width * (value / self.x_max).clamp(0.0, 1.0)
    }

    fn y(&self, value: f64) -> f64 {
        self.top + self.height * (1.0 - (value / self.y_max).clamp(0.0, 1.0))
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    /// The frame, the title above it, horizontal grid lines with their labels, and
    /// the y axis's name.
    fn draw_frame(&self, out: &mut String, title: &str, y_name: &str) {
        let _ = writeln!(
            out,
            r#"<text class="panel-title" x="{:.1}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
            self.left,
            self.top - 10.0,
            escape(title)
        );
        for i in 0..=4 {
            let value = self.y_max * f64::from(i) / 4.0;
            let y = self.y(value);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/>"##,
                self.left,
                self.left + self.width
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                self.left - 6.0,
                y + 4.0,
                number(value)
            );
        }
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
            self.left, self.top, self.width, self.height
        );
        let (x, y) = (self.left - 60.0, self.top + self.height / 2.0);
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" transform="rotate(-90 {x:.1} {y:.1})">{}</text>"#,
            escape(y_name)
        );
    }

    /// A tick and its label on the x axis at `value`.
    fn draw_x_tick(&self, out: &mut String, value: f64, label: &str) {
        let x = self.x(value);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e0e0e0"/>"##,
            self.top,
            self.bottom()
        );
        let _ = writeln!(
            out,
            r#"<text class="x-label" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            self.bottom() + 16.0,
            escape(label)
        );
    }

    /// The x axis's name, under the labels.
    fn draw_x_name(&self, out: &mut String, name: &str) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            self.left + self.width / 2.0,
            self.bottom() + 34.0,
            escape(name)
        );
    }

    /// A dashed horizontal reference line at `value` with a label at its right end;
    /// `class` and the value in milliseconds are its attributes.
    fn draw_reference(&self, out: &mut String, class: &str, value_ms: f64, label: &str) {
        let y = self.y(value_ms);
        let _ = writeln!(
            out,
            r#"<line class="{class}" data-latency-ms="{value_ms:.3}" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{REFERENCE}" stroke-dasharray="6 4"/>"#,
            self.left,
            self.left + self.width
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{REFERENCE}">{}</text>"#,
            self.left + self.width - 4.0,
            y - 4.0,
            escape(label)
        );
    }
}

/// The SVG picture of the run `s` describes.
pub fn svg(s: &Summary<'_>) -> String {
    let report = JsonReport::new(s);
    let rows = spectrum(&s.stats.latency);
    let seconds = per_second(s);
    let height = HEADER + 3.0 * (ABOVE + PANEL + BELOW);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        "<title>loadgen {}</title>",
        escape(&report.urls.join(" "))
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    header(&mut out, s, &report);
    percentile_panel(&mut out, &rows);
    throughput_panel(&mut out, &seconds);
    p99_panel(&mut out, &seconds, report.latency_us.p99);
    out.push_str("</svg>\n");
    out
}

/// The title and the report's main figures, worded as in the human report.
fn header(out: &mut String, s: &Summary<'_>, r: &JsonReport) {
    let l = &r.latency_us;
    let e = &r.errors;
    let mut lines = vec![
        format!(
            "{} requests in {}, {} read; Requests/sec: {:.2}; {} threads and {} connections",
            r.requests,
            format_duration(s.elapsed),
            format_bytes(r.bytes as f64),
            r.requests_per_sec,
            r.threads,
            r.connections
        ),
        format!(
            "Latency p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
            format_us(l.p50 as f64),
            format_us(l.p90 as f64),
            format_us(l.p99 as f64),
            format_us(l.p999 as f64),
            format_us(l.max as f64)
        ),
        format!(
            "Errors: connect {}, read {}, write {}, timeout {}, status {}, malformed {}",
            e.connect, e.read, e.write, e.timeout, e.status, e.malformed
        ),
    ];
    if let Some(since) = r.unreachable_since_s {
        lines.push(format!("Target unreachable since {since:.2}s"));
    }
    let _ = writeln!(
        out,
        r#"<text class="title" x="{LEFT}" y="24" font-size="16" font-weight="bold">loadgen {}</text>"#,
        escape(&r.urls.join(", "))
    );
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text class="summary" x="{LEFT}" y="{}">{}</text>"#,
            44 + 16 * i,
            escape(line)
        );
    }
}

/// Panel 1: latency by percentile on the `1/(1-p)` axis.
fn percentile_panel(out: &mut String, rows: &[SpectrumRow]) {
    let finite: Vec<&SpectrumRow> = rows.iter().filter(|r| r.quantile < 1.0).collect();
    let highest = finite.iter().map(|r| r.inverse()).fold(1.0, f64::max);
    let decades = (highest.log10().ceil() as u32).clamp(2, MAX_DECADES);
    let max_ms = rows.last().map_or(0.0, |r| ms(r.value_us));
    let area = Area::panel(0, f64::from(decades), nice_ceiling(max_ms));
    area.draw_frame(out, "Latency by percentile", "latency (ms)");
    for d in 0..=decades {
        area.draw_x_tick(out, f64::from(d), &percentile_label(d));
    }
    area.draw_x_name(out, "percentile (logarithmic in 1/(1-p))");
    if rows.is_empty() {
        no_data(out, &area);
        return;
    }
    let at = |r: &SpectrumRow| (area.x(r.inverse().log10()), area.y(ms(r.value_us)));
    let points: Vec<String> = finite
        .iter()
        .map(|r| {
            let (x, y) = at(r);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = writeln!(
        out,
        r#"<polyline class="percentile-curve" points="{}" fill="none" stroke="{CURVE}" stroke-width="2"/>"#,
        points.join(" ")
    );
    for r in &finite {
        let (x, y) = at(r);
        let _ = writeln!(
            out,
            r#"<circle class="percentile-point" cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{CURVE}" data-percentile="{:.6}" data-latency-ms="{:.3}" data-total-count="{}"><title>{:.4}%: {:.3} ms ({} responses at or below)</title></circle>"#,
            r.quantile,
            ms(r.value_us),
            r.total_count,
            r.quantile * 100.0,
            ms(r.value_us),
            r.total_count
        );
    }
    if let Some(last) = rows.last() {
        let label = format!("max {}", format_us(last.value_us as f64));
        area.draw_reference(out, "latency-max", ms(last.value_us), &label);
    }
}

/// Panel 2: requests (and errors) per second.
fn throughput_panel(out: &mut String, seconds: &[SecondFigures]) {
    let end = seconds.last().map_or(0.0, |s| s.start_s + s.span_s);
    let errors_per_sec = |s: &SecondFigures| {
        if s.span_s > 0.0 {
            s.errors as f64 / s.span_s
        } else {
            0.0
        }
    };
    let top = seconds
        .iter()
        .map(|s| s.requests_per_sec.max(errors_per_sec(s)))
        .fold(0.0, f64::max);
    let area = Area::panel(1, end, nice_ceiling(top));
    area.draw_frame(out, "Requests per second", "per second");
    time_axis(out, &area);
    if seconds.is_empty() {
        no_data(out, &area);
        return;
    }
    let middle = |s: &SecondFigures| area.x(s.start_s + s.span_s / 2.0);
    let line = |value: &dyn Fn(&SecondFigures) -> f64| -> String {
        seconds
            .iter()
            .map(|s| format!("{:.1},{:.1}", middle(s), area.y(value(s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        out,
        r#"<polyline class="requests-line" points="{}" fill="none" stroke="{CURVE}" stroke-width="2"/>"#,
        line(&|s| s.requests_per_sec)
    );
    if seconds.iter().any(|s| s.errors > 0) {
        let _ = writeln!(
            out,
            r#"<polyline class="errors-line" points="{}" fill="none" stroke="{ERRORS}" stroke-width="2"/>"#,
            line(&errors_per_sec)
        );
        legend(out, &area, &[(CURVE, "requests/s"), (ERRORS, "errors/s")]);
    }
    for s in seconds {
        let _ = writeln!(
            out,
            r#"<circle class="second" cx="{:.1}" cy="{:.1}" r="3" fill="{CURVE}" data-start-s="{}" data-span-s="{:.3}" data-requests="{}" data-requests-per-sec="{:.2}" data-errors="{}"><title>{}s: {:.2} requests/s, {} errors</title></circle>"#,
            middle(s),
            area.y(s.requests_per_sec),
            s.start_s,
            s.span_s,
            s.requests,
            s.requests_per_sec,
            s.errors,
            s.start_s,
            s.requests_per_sec,
            s.errors
        );
    }
}

/// Panel 3: the p99 latency of each second, and of the whole run.
fn p99_panel(out: &mut String, seconds: &[SecondFigures], run_p99_us: u64) {
    let end = seconds.last().map_or(0.0, |s| s.start_s + s.span_s);
    let top = seconds
        .iter()
        .filter_map(|s| s.p99_us)
        .chain([run_p99_us])
        .max()
        .unwrap_or(0);
    let area = Area::panel(2, end, nice_ceiling(ms(top)));
    area.draw_frame(out, "p99 latency per second", "latency (ms)");
    time_axis(out, &area);
    if seconds.iter().all(|s| s.p99_us.is_none()) {
        no_data(out, &area);
        return;
    }
    // A second without responses breaks the line.
    let mut path = String::new();
    let mut pen_down = false;
    for s in seconds {
        match s.p99_us {
            Some(us) => {
                let x = area.x(s.start_s + s.span_s / 2.0);
                let _ = write!(
                    path,
                    "{}{x:.1} {:.1} ",
                    if pen_down { "L" } else { "M" },
                    area.y(ms(us))
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let _ = writeln!(
        out,
        r#"<path class="p99-line" d="{}" fill="none" stroke="{CURVE}" stroke-width="2"/>"#,
        path.trim_end()
    );
    for s in seconds {
        let Some(us) = s.p99_us else { continue };
        let _ = writeln!(
            out,
            r#"<circle class="second-p99" cx="{:.1}" cy="{:.1}" r="3" fill="{CURVE}" data-start-s="{}" data-p99-ms="{:.3}"><title>{}s: p99 {}</title></circle>"#,
            area.x(s.start_s + s.span_s / 2.0),
            area.y(ms(us)),
            s.start_s,
            ms(us),
            s.start_s,
            format_us(us as f64)
        );
    }
    let label = format!("p99 of the run {}", format_us(run_p99_us as f64));
    area.draw_reference(out, "run-p99", ms(run_p99_us), &label);
}

/// Ticks every nice number of seconds along the area's x range.
fn time_axis(out: &mut String, area: &Area) {
    let step = nice_ceiling(area.x_max / 10.0);
    let ticks = (area.x_max / step + 1e-9).floor() as u32;
    for i in 0..=ticks {
        let t = f64::from(i) * step;
        area.draw_x_tick(out, t, &format!("{}s", number(t)));
    }
    area.draw_x_name(out, "time into the run");
}

fn legend(out: &mut String, area: &Area, entries: &[(&str, &str)]) {
    for (i, (color, label)) in entries.iter().enumerate() {
        let x = area.left + area.width - 110.0;
        let y = area.top + 16.0 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"/>"#,
            y - 4.0,
            x + 20.0,
            y - 4.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x + 26.0,
            escape(label)
        );
    }
}

fn no_data(out: &mut String, area: &Area) {
    let _ = writeln!(
        out,
        r#"<text class="no-data" x="{:.1}" y="{:.1}" text-anchor="middle" fill="{REFERENCE}">no responses</text>"#,
        area.left + area.width / 2.0,
        area.top + area.height / 2.0
    );
}

/// The label of decade `d` of the `1/(1-p)` axis: 0%, 90%, 99%, 99.9%, ...
pub fn percentile_label(d: u32) -> String {
    match d {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        _ => format!("99.{}%", "9".repeat(d as usize - 2)),
    }
}

/// Microseconds as milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `v` (1 for
/// nothing to show).
fn nice_ceiling(v: f64) -> f64 {
    if !(v > 0.0 && v.is_finite()) {
        return 1.0;
    }
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|&c| c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * decade)
}

/// A number for an axis label: at most three decimals, trailing zeros dropped.
fn number(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// `text` safe inside an XML element or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;
    use std::time::Duration;

    #[test]
    fn axis_helpers() {
        let labels: Vec<String> = (0..5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(57.6), 100.0);
        assert_eq!(nice_ceiling(0.0123), 0.02);
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(10.0), "10");
        assert_eq!(number(0.0), "0");
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn empty_runs_draw_empty_panels() {
        let stats = Stats::new();
        let urls = ["http://h/?a=1&b=<2>".to_string()];
        let summary = Summary {
            stats: &stats,
            elapsed: Duration::from_millis(1500),
            threads: 1,
            connections: 1,
            pipeline: 1,
            rate: None,
            urls: &urls,
        };
        let svg = svg(&summary);
        assert_eq!(svg.matches("no responses").count(), 2);
        assert!(svg.contains("http://h/?a=1&amp;b=&lt;2&gt;"));
        assert!(!svg.contains("percentile-point"));
        assert_eq!(svg.matches(r#"class="second""#).count(), 2);
    }
}
