//! The live view on stderr while a run goes (drawn only on a terminal): one
//! block of lines, one fact a line, redrawn in place from the live metrics
//! ([`telemetry::render_live`]), with messages (steps, warnings, LoadGen's
//! schedule) printed above it, never inside it.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use loadgen::{Phase, PhaseStart, RunObserver, Scenario};
use telemetry::{LiveSnapshot, LiveView};

/// Rates are measured over about this long.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The bar messages go above, while one is drawn (for [`AboveBars`]).
static DRAWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Counts the requests the client has on the wire.
type WireGauge = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The live display (a no-op off a terminal).
pub struct Progress {
    bar: ProgressBar,
    visible: bool,
    width: usize,
    recent: Mutex<VecDeque<LiveSnapshot>>,
    wire: Mutex<Option<(WireGauge, u64)>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("visible", &self.visible)
            .finish_non_exhaustive()
    }
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
        let bar = ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        // One column short of the terminal: a line that fills the last
        // column makes some terminals wrap, and the redraw then climbs.
        let width = console_width().saturating_sub(1).max(20);
        if visible {
            *DRAWN.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        }
        Progress {
            bar,
            visible,
            width,
            recent: Mutex::new(VecDeque::new()),
            wire: Mutex::new(None),
        }
    }

    /// Prints a message above the live view (dataset loading, backend
    /// checks); nothing when hidden.
    pub fn step(&self, message: &str) {
        if self.visible {
            self.bar.println(wrap(message, self.width));
        }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        self.visible
    }

    /// Where the view reads the requests on the wire from, and how many
    /// samples each request carries.
    pub fn set_requests_on_wire(
        &self,
        gauge: impl Fn() -> u64 + Send + Sync + 'static,
        samples_per_request: u64,
    ) {
        *self.wire.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Arc::new(gauge), samples_per_request));
    }

    /// Redraws the view from the live metrics' latest snapshot.
    pub fn update(&self, now: LiveSnapshot) {
        if !self.visible {
            return;
        }
        let window_start = {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            let window_ns = RATE_WINDOW.as_nanos() as u64;
            while recent
                .front()
                .is_some_and(|old| old.phase != now.phase || old.at_ns + window_ns < now.at_ns)
            {
                recent.pop_front();
            }
            let start = recent.front().cloned();
            recent.push_back(now.clone());
            start
        };
        let (requests_on_wire, samples_per_request) =
            match &*self.wire.lock().unwrap_or_else(PoisonError::into_inner) {
                Some((gauge, per)) => (Some(gauge()), *per),
                None => (None, 1),
            };
        let view = LiveView {
            now,
            window_start,
            requests_on_wire,
            samples_per_request,
        };
        let mut frame = Vec::new();
        if telemetry::render_live(&view, self.width, &mut frame).is_ok() {
            self.bar
                .set_message(String::from_utf8_lossy(&frame).into_owned());
        }
    }

    /// Clears the view.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        *DRAWN.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl RunObserver for Progress {
    fn phase_started(&self, start: &PhaseStart) {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.step(&explain_schedule(start));
    }
}

/// Terminal width from `COLUMNS` or the terminal, else 80.
fn console_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .or_else(|| {
            let (_, cols) = console::Term::stderr().size_checked()?;
            Some(usize::from(cols))
        })
        .unwrap_or(80)
}

/// What LoadGen is about to do and why, before the user waits for it: the
/// samples it generated from min_query_count, min_duration, the target QPS
/// and the performance sample count, and about how long that takes.
pub fn explain_schedule(start: &PhaseStart) -> String {
    let s = &start.settings;
    let n = start.sample_count;
    let queries = start.query_count;
    if start.phase == Phase::Accuracy {
        return format!("LoadGen accuracy phase: {n} samples, each of the set once");
    }
    let min_s = s.requested.min_duration_ms as f64 / 1000.0;
    let qps = s.target_qps;
    match start.scenario {
        Scenario::Offline => format!(
            "LoadGen: 1 query of {n} samples = max(min_query_count {}, \
             1.1 x min_duration {} s x target {} QPS); \
             about {} s at that rate",
            s.requested.min_query_count,
            short(min_s),
            short(qps),
            short(n as f64 / qps.max(f64::MIN_POSITIVE)),
        ),
        Scenario::Server => format!(
            "LoadGen: {queries} queries scheduled at {} QPS (Poisson) to fill \
             min_duration {} s and min_query_count {}; about {} s",
            short(qps),
            short(min_s),
            s.min_query_count,
            short(queries as f64 / qps.max(f64::MIN_POSITIVE)),
        ),
        Scenario::SingleStream | Scenario::MultiStream => format!(
            "LoadGen: queries one after another until min_query_count {} and \
             min_duration {} s are both met ({queries} generated, {} per query)",
            s.min_query_count,
            short(min_s),
            s.samples_per_query,
        ),
    }
}

/// `text` broken at spaces into lines of at most `width` columns (a word
/// longer than that stays whole).
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut column = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if column > 0 && column + 1 + len > width {
            out.push('\n');
            column = 0;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
    }
    out
}

/// A number without needless decimals: `20`, `1.5`, `0.25`.
fn short(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A `tracing` writer that prints above the live view while one is drawn,
/// so warnings (a GPU that cannot be read, a slow scrape) never land inside
/// it, and straight to stderr otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct AboveBars;

/// One event's text, printed when the event is complete.
#[derive(Debug, Default)]
pub struct AboveBarsWriter(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AboveBars {
    type Writer = AboveBarsWriter;

    fn make_writer(&'a self) -> AboveBarsWriter {
        AboveBarsWriter::default()
    }
}

impl Write for AboveBarsWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for AboveBarsWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.0);
        let drawn = DRAWN.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let write = || {
            let _ = std::io::stderr().write_all(&text);
        };
        match drawn {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::{EffectiveSettings, TestMode, TestSettings};

    fn start(scenario: Scenario, f: impl FnOnce(&mut TestSettings)) -> PhaseStart {
        let mut requested = TestSettings {
            scenario,
            mode: TestMode::PerformanceOnly,
            ..TestSettings::default()
        };
        f(&mut requested);
        let (settings, _) = EffectiveSettings::new(&requested, 100, 100).unwrap();
        PhaseStart {
            phase: Phase::Performance,
            scenario,
            mode: TestMode::PerformanceOnly,
            start_unix_ns: 0,
            query_count: 0,
            sample_count: 0,
            settings,
        }
    }

    #[test]
    fn messages_are_wrapped_to_the_width() {
        let text = "LoadGen: 357 queries scheduled at 40 QPS (Poisson) to fill min_duration 8 s";
        let wrapped = wrap(text, 40);
        assert_eq!(
            wrapped,
            "LoadGen: 357 queries scheduled at 40 QPS\n(Poisson) to fill min_duration 8 s"
        );
        assert!(wrapped.lines().all(|l| l.chars().count() <= 40));
        assert_eq!(wrap("short", 80), "short");
    }

    #[test]
    fn the_schedule_line_says_why_loadgen_issues_what_it_issues() {
        // --min-query-count 8 with a 1 s minimum at 18.2 QPS: 20 samples.
        let mut offline = start(Scenario::Offline, |s| {
            s.min_query_count = 8;
            s.min_duration_ms = 1000;
            s.offline_expected_qps = 18.2;
            s.sample_concatenate_permutation = false;
        });
        offline.query_count = 1;
        offline.sample_count = offline.settings.samples_per_query;
        assert_eq!(offline.sample_count, 20);
        assert_eq!(
            explain_schedule(&offline),
            "LoadGen: 1 query of 20 samples = max(min_query_count 8, 1.1 x min_duration 1 s \
             x target 18.2 QPS); about 1.1 s at that rate"
        );
        let mut server = start(Scenario::Server, |s| {
            s.min_query_count = 20;
            s.min_duration_ms = 60_000;
            s.server_target_qps = 0.5;
            s.sample_concatenate_permutation = false;
        });
        server.query_count = 31;
        server.sample_count = 31;
        let line = explain_schedule(&server);
        assert_eq!(
            line,
            "LoadGen: 31 queries scheduled at 0.5 QPS (Poisson) to fill min_duration 60 s \
             and min_query_count 20; about 62 s"
        );
    }
}
