//! Progress of the long-running commands a person watches (`chaos`,
//! `load-bench`, `queue-bench`): an `indicatif` bar on a terminal, or a
//! timestamped progress line every so often when standard error is a file
//! or a pipe (CI logs), so a run never looks hung: for a count that moves
//! continuously (orders placed) at most one line per interval, for coarse
//! steps (benchmark phases) one line per step. Progress always goes to
//! standard error; standard output is kept for the results (the summary
//! table, or the `--json` document).

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when standard error is a terminal, lines otherwise.
    #[default]
    Auto,
    /// Periodic lines on standard error, never a bar (tests use this, so
    /// the lines land in the test's captured output).
    Lines,
    /// Nothing.
    Hidden,
}

/// What is being counted, and how often lines are printed.
#[derive(Clone, Debug)]
pub struct ProgressSpec {
    /// Shown before the count, e.g. `chaos` or `queue-bench`.
    pub label: String,
    /// What is counted, e.g. `orders` or `steps`.
    pub unit: &'static str,
    /// The count at completion.
    pub total: u64,
    /// Time between progress lines when there is no bar.
    pub line_every: Duration,
}

/// A progress display: one bar, or periodic lines.
pub struct Progress {
    bar: Option<ProgressBar>,
    spec: ProgressSpec,
    lines: bool,
    started: Instant,
    last_line: Mutex<Option<Instant>>,
    steps_done: AtomicU64,
}

impl Progress {
    /// Starts showing progress in `mode`.
    pub fn start(mode: ProgressMode, spec: ProgressSpec) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (mode == ProgressMode::Auto && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(spec.total), ProgressDrawTarget::stderr());
            let template = format!(
                "{{prefix}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {} (eta {{eta}})\n{{msg}}",
                spec.unit
            );
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
            bar.set_prefix(spec.label.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let lines = match mode {
            ProgressMode::Auto => !terminal,
            ProgressMode::Lines => true,
            ProgressMode::Hidden => false,
        };
        Progress {
            bar,
            spec,
            lines,
            started: Instant::now(),
            last_line: Mutex::new(None),
            steps_done: AtomicU64::new(0),
        }
    }

    /// How often the caller should call [`Progress::update`]: often for a
    /// bar, once per line otherwise.
    pub fn update_every(&self) -> Duration {
        if self.bar.is_some() { Duration::from_millis(250) } else { self.spec.line_every }
    }

    /// Reports `position` of the total, with a one-line status. Without a
    /// bar, prints a line if the last one is at least `line_every` old.
    pub fn update(&self, position: u64, status: impl Display) {
        self.show(position, &status, false);
    }

    fn show(&self, position: u64, status: &dyn Display, every_time: bool) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(status.to_string());
            return;
        }
        if !self.lines {
            return;
        }
        let now = Instant::now();
        let mut last = self.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = last
            .is_some_and(|at| now.duration_since(at) < self.spec.line_every.saturating_sub(Duration::from_millis(50)));
        if recent && !every_time {
            return;
        }
        *last = Some(now);
        eprintln!(
            "[{:>7.1}s] {} {position}/{} {} | {status}",
            self.started.elapsed().as_secs_f64(),
            self.spec.label,
            self.spec.total,
            self.spec.unit
        );
    }

    /// Counts one more step done (for totals counted in steps) and reports
    /// `status`, which says what was just finished. Steps are coarse, so
    /// without a bar each one gets its line.
    pub fn advance(&self, status: impl Display) {
        let done = self.steps_done.fetch_add(1, Ordering::Relaxed) + 1;
        self.show(done, &status, true);
    }

    /// A line of narrative (what the run is doing now) that does not
    /// disturb the bar.
    pub fn note(&self, line: impl Display) {
        match &self.bar {
            Some(bar) if !bar.is_finished() => bar.println(line.to_string()),
            Some(_) => eprintln!("{line}"),
            None if self.lines => eprintln!("{line}"),
            None => {}
        }
    }

    /// Removes the bar; the summary comes next.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
