//! Progress bars on stderr while a run goes: samples issued and completed per
//! phase, with failures. Drawn only on a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use loadgen::{PhaseEnd, PhaseStart, QueryRecord, RunObserver};

/// The progress display (a no-op off a terminal).
#[derive(Debug)]
pub struct Progress {
    issued: ProgressBar,
    completed: ProgressBar,
    live: ProgressBar,
    failed: AtomicU64,
    visible: bool,
    _bars: MultiProgress,
}

impl Progress {
    /// A display; hidden when `enabled` is false or stderr is not a terminal.
    pub fn new(enabled: bool) -> Progress {
        // Drawn on stderr, only when a person watches: both streams on a
        // terminal (a redirected stdout means a script is reading).
        let visible = enabled && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bars = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>9} [{elapsed_precise}] {bar:40.cyan/blue} {pos:>8}/{len:8} eta {eta:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let issued = bars.add(
            ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix("issued"),
        );
        let completed = bars.add(
            ProgressBar::new(0)
                .with_style(style)
                .with_prefix("completed"),
        );
        let live = bars.add(
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        );
        issued.enable_steady_tick(Duration::from_millis(250));
        Progress {
            issued,
            completed,
            live,
            failed: AtomicU64::new(0),
            visible,
            _bars: bars,
        }
    }

    /// A spinner shown while something slow happens before the run (dataset
    /// loading, backend checks); hidden like the bars.
    pub fn step(&self, message: &str) {
        self.live.set_message(message.to_owned());
        self.live.tick();
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        self.visible
    }

    /// Replaces the live-metrics line (QPS, TTFT, server and GPU state).
    pub fn set_live(&self, line: String) {
        self.live.set_message(line);
    }

    /// Clears the bars.
    pub fn finish(&self) {
        self.issued.finish_and_clear();
        self.completed.finish_and_clear();
        self.live.finish_and_clear();
    }
}

impl RunObserver for Progress {
    fn phase_started(&self, start: &PhaseStart) {
        for bar in [&self.issued, &self.completed] {
            bar.reset();
            bar.set_length(start.sample_count);
        }
        self.issued
            .set_message(format!("{} {}", start.phase, start.scenario));
        self.failed.store(0, Ordering::Relaxed);
    }

    fn query_issued(&self, _query: u64, samples: usize, _issued_ns: u64) {
        self.issued.inc(samples as u64);
    }

    fn sample_completed(&self, record: QueryRecord) {
        self.completed.inc(1);
        if record.error.is_some() {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            self.completed.set_message(format!("{failed} failed"));
        }
    }

    fn phase_finished(&self, _end: &PhaseEnd) {}
}
