//! The live progress line (`indicatif`), shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the run is bounded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// A duration (`-d`).
    Duration(Duration),
    /// A request count (`-n`).
    Requests(u64),
}

/// A progress line on stderr; silent (hidden) when stderr is not a terminal. Clones
/// draw the same line.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    goal: Goal,
}

impl Progress {
    /// A progress line for `goal`, drawn only if stderr is a terminal.
    pub fn new(goal: Goal) -> Self {
        Self::with_target(goal, std::io::stderr().is_terminal())
    }

    /// A progress line drawn (`visible`) or hidden.
    pub fn with_target(goal: Goal, visible: bool) -> Self {
        let len = match goal {
            Goal::Duration(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Goal::Requests(n) => n,
        };
        let target = if visible {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(len), target);
        let template = "{spinner} [{elapsed_precise}] [{bar:30}] {percent:>3}% {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress { bar, goal }
    }

    /// Whether the line is drawn.
    pub fn is_visible(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Updates the line: `requests` complete responses after `elapsed`.
    pub fn update(&self, requests: u64, elapsed: Duration) {
        let position = match self.goal {
            Goal::Duration(_) => u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            Goal::Requests(_) => requests,
        };
        self.bar.set_position(position);
        let rate = if elapsed.is_zero() {
            0.0
        } else {
            requests as f64 / elapsed.as_secs_f64()
        };
        self.bar
            .set_message(format!("{requests} requests, {rate:.0} req/s"));
    }

    /// Removes the line before the report is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_progress_tracks_position() {
        let p = Progress::with_target(Goal::Duration(Duration::from_secs(10)), false);
        assert!(!p.is_visible());
        p.update(500, Duration::from_secs(5));
        assert_eq!(p.bar.position(), 5000);
        assert_eq!(p.bar.message(), "500 requests, 100 req/s");
        p.finish();
        let p = Progress::with_target(Goal::Requests(1000), false);
        p.update(250, Duration::ZERO);
        assert_eq!(p.bar.position(), 250);
        assert_eq!(p.bar.message(), "250 requests, 0 req/s");
    }

    #[test]
    fn default_is_hidden_without_a_terminal() {
        // Test harnesses capture stderr; when it is not a terminal nothing is drawn.
        let p = Progress::new(Goal::Requests(1));
        assert_eq!(p.is_visible(), std::io::stderr().is_terminal());
    }
}
