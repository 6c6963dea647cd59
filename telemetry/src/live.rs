//! Live state of a run, for the console and for `--prometheus-listen`.
//!
//! [`LiveMetrics`] is a [`RunObserver`]: hand it the run's events (or call
//! it from the harness's own observer) and it keeps
//! - monotonic totals and fixed-bucket histograms for the Prometheus
//!   exposition ([`LiveMetrics::render_prometheus`]), never reset;
//! - per-phase counts and HDR histograms (3 significant digits, in µs) for
//!   the console, reset when a phase starts, so the accuracy phase does not
//!   blur the performance phase's percentiles;
//! - the collector's latest server and GPU readings.
//!
//! Live percentiles are approximations for watching a run. The report's
//! numbers come from `records.jsonl`, never from here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use loadgen::Timed;
use loadgen::{Phase, PhaseEnd, PhaseStart, QueryRecord, RunObserver};
use rundir::metrics::{MetricSource, names};

use crate::fixed_histogram::{
    FixedHistogram, ISSUE_DELAY_BOUNDS, LATENCY_BOUNDS, TOKEN_BOUNDS, TPOT_BOUNDS, TTFT_BOUNDS,
};

/// Highest value the live HDR histograms hold: one hour, in µs.
const HDR_MAX_US: u64 = 3_600_000_000;

/// Console percentiles for one phase.
#[derive(Debug)]
struct PhaseHistograms {
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
    tpot: Histogram<u64>,
    issue_delay: Histogram<u64>,
}

impl PhaseHistograms {
    fn new() -> Option<PhaseHistograms> {
        let h = || Histogram::<u64>::new_with_bounds(1, HDR_MAX_US, 3).ok();
        Some(PhaseHistograms {
            latency: h()?,
            ttft: h()?,
            tpot: h()?,
            issue_delay: h()?,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    issued: u64,
    completed: u64,
    failed: u64,
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Debug)]
struct PhaseState {
    phase: Option<Phase>,
    scenario: Option<loadgen::Scenario>,
    finished: bool,
    started_at_ns: u64,
    expected_samples: u64,
    base: Totals,
    hist: Option<PhaseHistograms>,
}

/// The live registry. Cheap to update from any thread.
#[derive(Debug)]
pub struct LiveMetrics {
    origin: Instant,
    pub(crate) issued: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) input_tokens: AtomicU64,
    pub(crate) output_tokens: AtomicU64,
    pub(crate) latency: FixedHistogram,
    pub(crate) ttft: FixedHistogram,
    pub(crate) tpot: FixedHistogram,
    pub(crate) issue_delay: FixedHistogram,
    pub(crate) input_length: FixedHistogram,
    pub(crate) output_length: FixedHistogram,
    /// Failed samples by error kind and HTTP status.
    pub(crate) failures: Mutex<BTreeMap<(String, Option<u16>), u64>>,
    run_labels: Mutex<Option<RunLabels>>,
    limits: Mutex<PhaseLimits>,
    phase: Mutex<PhaseState>,
    readings: Mutex<BTreeMap<(MetricSource, String), BTreeMap<String, f64>>>,
    /// The run's final figures, once computed ([`LiveMetrics::publish_run_figures`]).
    pub(crate) run_figures: Mutex<Option<RunFigures>>,
    /// Signalled by each scrape whose exposition held the run's figures.
    pub(crate) figures_scraped: tokio::sync::Notify,
}

/// The labels every series of a run carries in the Prometheus exposition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLabels {
    /// The run directory's name.
    pub run_id: String,
    /// The LoadGen scenario (`Server`, `Offline`, ...).
    pub scenario: String,
    /// The run's backends as run.json names them (`sim://PROFILE` for the
    /// built-in simulator), joined by `,`.
    pub backend: String,
    /// The collector's instance of each backend (its URL without
    /// credentials) -> its run.json name, for the server series' `backend`.
    pub backend_names: BTreeMap<String, String>,
}

/// What LoadGen's settings of the phase running ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PhaseLimits {
    /// Target queries per second.
    pub(crate) target_qps: Option<f64>,
    /// The Server TTFT limit, seconds, when the run judges token latencies.
    pub(crate) ttft_limit_s: Option<f64>,
}

/// A run's final figures as the exposition shows them: the run-level
/// figures registry's values (summary.json's `figures`), computed elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    /// The run directory's name.
    pub run_id: String,
    /// Name, unit and value of each figure.
    pub figures: Vec<(String, String, f64)>,
}

impl Default for LiveMetrics {
    fn default() -> Self {
        LiveMetrics::new()
    }
}

impl LiveMetrics {
    /// An empty registry; its clock starts now.
    pub fn new() -> LiveMetrics {
        LiveMetrics {
            origin: Instant::now(),
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            latency: FixedHistogram::new(LATENCY_BOUNDS),
            ttft: FixedHistogram::new(TTFT_BOUNDS),
            tpot: FixedHistogram::new(TPOT_BOUNDS),
            issue_delay: FixedHistogram::new(ISSUE_DELAY_BOUNDS),
            input_length: FixedHistogram::counts(TOKEN_BOUNDS),
            output_length: FixedHistogram::counts(TOKEN_BOUNDS),
            failures: Mutex::new(BTreeMap::new()),
            run_labels: Mutex::new(None),
            limits: Mutex::new(PhaseLimits::default()),
            phase: Mutex::new(PhaseState {
                phase: None,
                scenario: None,
                finished: false,
                started_at_ns: 0,
                expected_samples: 0,
                base: Totals::default(),
                hist: PhaseHistograms::new(),
            }),
            readings: Mutex::new(BTreeMap::new()),
            run_figures: Mutex::new(None),
            figures_scraped: tokio::sync::Notify::new(),
        }
    }

    /// Labels every series of the exposition with the run's identity.
    pub fn set_run_labels(&self, labels: RunLabels) {
        if let Ok(mut slot) = self.run_labels.lock() {
            *slot = Some(labels);
        }
    }

    pub(crate) fn run_labels(&self) -> Option<RunLabels> {
        self.run_labels.lock().ok().and_then(|l| l.clone())
    }

    pub(crate) fn limits(&self) -> PhaseLimits {
        self.limits.lock().map(|l| *l).unwrap_or_default()
    }

    /// Every source's latest readings, by (source, instance).
    pub(crate) fn readings_snapshot(
        &self,
    ) -> BTreeMap<(MetricSource, String), BTreeMap<String, f64>> {
        self.readings.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Adds the run's final figures to the exposition, where they stay
    /// until the process exits (or the next run publishes its own).
    pub fn publish_run_figures(&self, figures: RunFigures) {
        if let Ok(mut slot) = self.run_figures.lock() {
            *slot = Some(figures);
        }
    }

    /// Resolves once a scrape has received the run's final figures (at once
    /// when one already has since they were published).
    pub async fn run_figures_scraped(&self) {
        self.figures_scraped.notified().await;
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn totals(&self) -> Totals {
        Totals {
            issued: self.issued.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            input_tokens: self.input_tokens.load(Ordering::Relaxed),
            output_tokens: self.output_tokens.load(Ordering::Relaxed),
        }
    }

    /// Samples were issued.
    pub fn record_issued(&self, samples: u64) {
        self.issued.fetch_add(samples, Ordering::Relaxed);
    }

    /// A sample completed (or failed).
    pub fn record_completed(&self, record: &QueryRecord) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        if let Some(input) = record.input_tokens() {
            self.input_tokens
                .fetch_add(u64::from(input), Ordering::Relaxed);
            self.input_length.observe(u64::from(input));
        }
        if let Some(err) = record.error() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut failures) = self.failures.lock() {
                *failures
                    .entry((err.kind.as_str().to_owned(), err.http_status))
                    .or_default() += 1;
            }
            return;
        }
        let output = u64::try_from(record.n_tokens).unwrap_or(0);
        self.output_tokens.fetch_add(output, Ordering::Relaxed);
        self.output_length.observe(output);
        let latency = record.latency_ns();
        let ttft = record.ttft_ns();
        let tpot = record.tpot_ns();
        let delay = record.issue_delay_ns();
        self.latency.observe_ns(latency);
        self.issue_delay.observe_ns(delay);
        if let Some(t) = ttft {
            self.ttft.observe_ns(t);
        }
        if let Some(t) = tpot {
            self.tpot.observe_ns(t);
        }
        if let Ok(mut state) = self.phase.lock()
            && let Some(h) = state.hist.as_mut()
        {
            let us = |ns: u64| (ns / 1_000).max(1);
            h.latency.saturating_record(us(latency));
            h.issue_delay.saturating_record(us(delay));
            if let Some(t) = ttft {
                h.ttft.saturating_record(us(t));
            }
            if let Some(t) = tpot {
                h.tpot.saturating_record(us(t));
            }
        }
    }

    /// The collector's latest normalized readings of each backend.
    pub fn server_readings(&self) -> Vec<(String, BTreeMap<String, f64>)> {
        self.readings
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|((source, _), _)| *source == MetricSource::Server)
                    .map(|((_, instance), values)| (instance.clone(), values.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The collector's latest readings of one source.
    pub fn set_reading(&self, source: MetricSource, instance: &str, values: BTreeMap<String, f64>) {
        if let Ok(mut r) = self.readings.lock() {
            r.insert((source, instance.to_owned()), values);
        }
    }

    /// The current state.
    pub fn snapshot(&self) -> LiveSnapshot {
        let now = self.now_ns();
        let totals = self.totals();
        let mut snap = LiveSnapshot {
            at_ns: now,
            ..LiveSnapshot::default()
        };
        if let Ok(state) = self.phase.lock() {
            snap.phase = state.phase;
            snap.scenario = state.scenario;
            snap.phase_finished = state.finished;
            snap.phase_elapsed_s = now.saturating_sub(state.started_at_ns) as f64 / 1e9;
            snap.expected_samples = state.expected_samples;
            let b = state.base;
            snap.issued = totals.issued.saturating_sub(b.issued);
            snap.completed = totals.completed.saturating_sub(b.completed);
            snap.failed = totals.failed.saturating_sub(b.failed);
            snap.input_tokens = totals.input_tokens.saturating_sub(b.input_tokens);
            snap.output_tokens = totals.output_tokens.saturating_sub(b.output_tokens);
            if let Some(h) = &state.hist {
                let q = |h: &Histogram<u64>, q: f64| {
                    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e6)
                };
                snap.ttft_p50_s = q(&h.ttft, 0.5);
                snap.ttft_p99_s = q(&h.ttft, 0.99);
                snap.tpot_p50_s = q(&h.tpot, 0.5);
                snap.tpot_p99_s = q(&h.tpot, 0.99);
                snap.latency_p50_s = q(&h.latency, 0.5);
                snap.latency_p99_s = q(&h.latency, 0.99);
                snap.issue_delay_p99_s = q(&h.issue_delay, 0.99);
            }
        }
        snap.in_flight = snap.issued.saturating_sub(snap.completed);
        if let Ok(readings) = self.readings.lock() {
            let mut running = Vec::new();
            let mut waiting = Vec::new();
            let mut kv = Vec::new();
            let mut gpu = Vec::new();
            for ((source, _), values) in readings.iter() {
                match source {
                    MetricSource::Server => {
                        running.extend(values.get(names::REQUESTS_RUNNING));
                        waiting.extend(values.get(names::REQUESTS_WAITING));
                        kv.extend(values.get(names::KV_CACHE_USAGE_FRAC));
                    }
                    MetricSource::Gpu => gpu.extend(values.get(names::GPU_UTILIZATION_PCT)),
                    MetricSource::ServerRaw | MetricSource::System | MetricSource::Process => {}
                }
            }
            let sum = |v: &[&f64]| (!v.is_empty()).then(|| v.iter().copied().sum::<f64>());
            let mean = |v: &[&f64]| sum(v).map(|s| s / v.len() as f64);
            snap.server_running = sum(&running);
            snap.server_waiting = sum(&waiting);
            snap.kv_cache_usage_frac = mean(&kv);
            snap.gpu_utilization_pct = mean(&gpu);
        }
        snap
    }
}

impl RunObserver for LiveMetrics {
    fn phase_started(&self, start: &PhaseStart) {
        let totals = self.totals();
        let now = self.now_ns();
        if let Ok(mut state) = self.phase.lock() {
            state.phase = Some(start.phase);
            state.scenario = Some(start.scenario);
            state.finished = false;
            state.started_at_ns = now;
            state.expected_samples = start.sample_count;
            state.base = totals;
            if let Ok(mut limits) = self.limits.lock() {
                let s = &start.settings;
                let token_limits = s.scenario == loadgen::Scenario::Server
                    && s.use_token_latencies
                    && s.server_ttft_latency > 0;
                *limits = PhaseLimits {
                    target_qps: Some(s.target_qps).filter(|q| q.is_finite() && *q > 0.0),
                    ttft_limit_s: token_limits.then(|| s.server_ttft_latency as f64 / 1e9),
                };
            }
            if let Some(h) = state.hist.as_mut() {
                h.latency.reset();
                h.ttft.reset();
                h.tpot.reset();
                h.issue_delay.reset();
            }
        }
    }

    fn query_issued(&self, _query: u64, samples: usize, _issued_ns: u64) {
        self.record_issued(samples as u64);
    }

    fn sample_completed(&self, record: QueryRecord) {
        self.record_completed(&record);
    }

    fn phase_finished(&self, _end: &PhaseEnd) {
        if let Ok(mut state) = self.phase.lock() {
            state.finished = true;
        }
    }
}

/// What the console shows. Counts are for the current phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSnapshot {
    /// When it was taken, ns on the registry's clock.
    pub at_ns: u64,
    /// The phase running (or last run).
    pub phase: Option<Phase>,
    /// The run's scenario, once a phase started.
    pub scenario: Option<loadgen::Scenario>,
    /// The phase has ended.
    pub phase_finished: bool,
    /// Seconds since the phase started.
    pub phase_elapsed_s: f64,
    /// Samples the phase will issue.
    pub expected_samples: u64,
    /// Samples issued.
    pub issued: u64,
    /// Samples completed (failed ones included).
    pub completed: u64,
    /// Samples failed.
    pub failed: u64,
    /// Issued and not completed.
    pub in_flight: u64,
    /// Prompt tokens of completed samples, as the server reported them.
    pub input_tokens: u64,
    /// Output tokens of successful samples.
    pub output_tokens: u64,
    /// TTFT median, seconds.
    pub ttft_p50_s: Option<f64>,
    /// TTFT 99th percentile, seconds.
    pub ttft_p99_s: Option<f64>,
    /// TPOT median, seconds.
    pub tpot_p50_s: Option<f64>,
    /// TPOT 99th percentile, seconds.
    pub tpot_p99_s: Option<f64>,
    /// Latency median, seconds.
    pub latency_p50_s: Option<f64>,
    /// Latency 99th percentile, seconds.
    pub latency_p99_s: Option<f64>,
    /// Issue delay 99th percentile, seconds.
    pub issue_delay_p99_s: Option<f64>,
    /// Requests running on all backends.
    pub server_running: Option<f64>,
    /// Requests waiting on all backends.
    pub server_waiting: Option<f64>,
    /// Mean KV-cache usage of the backends, 0..1.
    pub kv_cache_usage_frac: Option<f64>,
    /// Mean GPU utilisation, percent.
    pub gpu_utilization_pct: Option<f64>,
}

/// One frame of the live view: what [`render_live`] draws.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveView {
    /// The state now.
    pub now: LiveSnapshot,
    /// An earlier snapshot of the same phase, a few seconds back: the rates
    /// are measured from it, and the view says over how long. Without it
    /// (the first second of a phase) they are over the whole phase so far.
    pub window_start: Option<LiveSnapshot>,
    /// Requests the client has on the wire (sent, not fully answered), when
    /// the SUT tells. In Offline LoadGen issues every sample at once and the
    /// client sends at most `--max-in-flight` requests; the rest wait.
    pub requests_on_wire: Option<u64>,
    /// Samples each request carries (Offline `--prompts-per-request`).
    pub samples_per_request: u64,
}

/// Draws `view` as lines of at most `width` columns, one fact a line:
///
/// ```text
/// performance Server  12 s  [#######.............]  1200/24576
/// issued 1234  completed 1200  failed 3
/// last 5 s: issued 12.0/s  completed 11.8/s  890 tok/s
/// in flight 34 samples
/// TTFT p50 45.1 ms  p99 120 ms  TPOT p50 12 ms
/// server running 32  waiting 2  KV 45%  GPU 87%
/// ```
///
/// Counts are the current phase's, from the same events records.jsonl is
/// written from, so they end where the summary starts. Percentiles are live
/// approximations (HDR histograms); the report's come from records.jsonl.
pub fn render_live(view: &LiveView, width: usize, w: &mut impl io::Write) -> io::Result<()> {
    let cur = &view.now;
    let mut lines: Vec<String> = Vec::with_capacity(6);

    let phase = match cur.phase {
        Some(Phase::Performance) => "performance",
        Some(Phase::Accuracy) => "accuracy",
        None => "starting",
    };
    let mut head = phase.to_owned();
    if let Some(scenario) = cur.scenario {
        let _ = write!(head, " {scenario}");
    }
    let _ = write!(head, "  {}", elapsed(cur.phase_elapsed_s));
    let count = if cur.expected_samples > 0 {
        format!("{}/{}", cur.completed, cur.expected_samples)
    } else {
        cur.completed.to_string()
    };
    let tail = if cur.phase_finished {
        format!("{count} done")
    } else {
        count
    };
    // The bar takes what the text leaves, between 10 and 40 columns.
    let room = width.saturating_sub(head.chars().count() + tail.chars().count() + 6);
    if cur.expected_samples > 0 && room >= 10 {
        let cells = room.min(40);
        let filled = ((cur.completed.min(cur.expected_samples) as f64
            / cur.expected_samples as f64)
            * cells as f64)
            .floor() as usize;
        let _ = write!(
            head,
            "  [{}{}]  {tail}",
            "#".repeat(filled),
            ".".repeat(cells - filled)
        );
    } else {
        let _ = write!(head, "  {tail}");
    }
    lines.push(head);

    let mut counts = format!("issued {}  completed {}", cur.issued, cur.completed);
    if cur.failed > 0 {
        let _ = write!(counts, "  failed {}", cur.failed);
    }
    lines.push(counts);

    if !cur.phase_finished {
        let from = view.window_start.as_ref().filter(|p| {
            p.phase == cur.phase && p.at_ns < cur.at_ns && p.completed <= cur.completed
        });
        let (issued, done, tokens, secs, label) = match from {
            Some(p) => {
                let secs = (cur.at_ns - p.at_ns) as f64 / 1e9;
                (
                    cur.issued.saturating_sub(p.issued),
                    cur.completed - p.completed,
                    cur.output_tokens.saturating_sub(p.output_tokens),
                    secs,
                    format!("last {} s", sig3(secs)),
                )
            }
            None => (
                cur.issued,
                cur.completed,
                cur.output_tokens,
                cur.phase_elapsed_s,
                "since start".to_owned(),
            ),
        };
        if secs > 0.0 {
            lines.push(format!(
                "{label}: issued {}/s  completed {}/s  {} tok/s",
                sig3(issued as f64 / secs),
                sig3(done as f64 / secs),
                sig3(tokens as f64 / secs)
            ));
        }
        let offline = cur.scenario == Some(loadgen::Scenario::Offline);
        match view.requests_on_wire {
            Some(requests) if offline => {
                let on_wire = requests.saturating_mul(view.samples_per_request.max(1));
                lines.push(format!(
                    "on the wire {requests} requests  queued {} samples",
                    cur.in_flight.saturating_sub(on_wire)
                ));
            }
            _ => lines.push(format!("in flight {} samples", cur.in_flight)),
        }
    }

    let mut latency = String::new();
    if let Some(p50) = cur.ttft_p50_s {
        let _ = write!(latency, "TTFT p50 {}", duration(p50));
        if let Some(p99) = cur.ttft_p99_s {
            let _ = write!(latency, "  p99 {}", duration(p99));
        }
    } else if let Some(p50) = cur.latency_p50_s {
        let _ = write!(latency, "latency p50 {}", duration(p50));
        if let Some(p99) = cur.latency_p99_s {
            let _ = write!(latency, "  p99 {}", duration(p99));
        }
    }
    if let Some(p50) = cur.tpot_p50_s {
        let sep = if latency.is_empty() { "" } else { "  " };
        let _ = write!(latency, "{sep}TPOT p50 {}", duration(p50));
    }
    if !latency.is_empty() {
        lines.push(latency);
    }

    let mut state = Vec::new();
    if let Some(r) = cur.server_running {
        state.push(format!("running {}", sig3(r)));
    }
    if let Some(wt) = cur.server_waiting {
        state.push(format!("waiting {}", sig3(wt)));
    }
    if let Some(kv) = cur.kv_cache_usage_frac {
        state.push(format!("KV {:.0}%", kv * 100.0));
    }
    let mut server = String::new();
    if !state.is_empty() {
        server = format!("server {}", state.join("  "));
    }
    if let Some(g) = cur.gpu_utilization_pct {
        let sep = if server.is_empty() { "" } else { "  " };
        let _ = write!(server, "{sep}GPU {g:.0}%");
    }
    if !server.is_empty() {
        lines.push(server);
    }

    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            w.write_all(b"\n")?;
        }
        // Never wider than the terminal: a wrapped line breaks the redraw.
        let cut: String = line.chars().take(width).collect();
        w.write_all(cut.as_bytes())?;
    }
    Ok(())
}

/// Elapsed time as `12 s` or `3 min 05 s`.
fn elapsed(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

/// Three significant digits, no exponent, no trailing zeros.
fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // 0.0123 -> 4 decimals.
        (2 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Seconds as `850 µs`, `45.1 ms` or `1.23 s`.
fn duration(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{} µs", sig3(secs * 1e6))
    } else if secs < 1.0 {
        format!("{} ms", sig3(secs * 1e3))
    } else {
        format!("{} s", sig3(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::{ErrorKind, QueryError};

    fn record(seq: u64, ttft_ms: u64, latency_ms: u64, tokens: i64) -> QueryRecord {
        QueryRecord {
            seq,
            query: seq,
            sample_index: 0,
            scheduled_ns: 1_000_000,
            issued_ns: 1_100_000,
            first_token_ns: Some(1_000_000 + ttft_ms * 1_000_000),
            end_ns: 1_000_000 + latency_ms * 1_000_000,
            n_tokens: tokens,
            extras: loadgen::RecordExtras {
                input_tokens: Some(100),
                ..loadgen::RecordExtras::default()
            }
            .boxed(),
        }
    }

    #[test]
    fn observer_events_update_counts_and_percentiles() {
        let live = LiveMetrics::new();
        live.query_issued(0, 10, 0);
        for i in 0..8 {
            // TTFT 10..80 ms, latency 1 s, 101 tokens -> TPOT (1000-ttft)/100 ms.
            live.sample_completed(record(i, 10 * (i + 1), 1000, 101));
        }
        live.sample_completed(record(8, 1, 2, 0).with_error(QueryError {
            kind: ErrorKind::Timeout,
            http_status: None,
            message: "slow".into(),
        }));
        let s = live.snapshot();
        assert_eq!(
            (s.issued, s.completed, s.failed, s.in_flight),
            (10, 9, 1, 1)
        );
        assert_eq!(s.output_tokens, 808);
        // Median of 10..80 ms (8 values): HDR returns the 4th, 40 ms.
        let p50 = s.ttft_p50_s.unwrap();
        assert!((p50 - 0.040).abs() < 0.0001, "{p50}");
        assert!((s.ttft_p99_s.unwrap() - 0.080).abs() < 0.0001);
        assert!((s.latency_p50_s.unwrap() - 1.0).abs() < 0.001);
        assert_eq!(
            live.failures
                .lock()
                .unwrap()
                .get(&("timeout".to_owned(), None)),
            Some(&1)
        );
        assert_eq!(live.input_tokens.load(Ordering::Relaxed), 900);
    }

    #[test]
    fn a_new_phase_resets_the_console_view_but_not_the_totals() {
        let live = LiveMetrics::new();
        live.query_issued(0, 1, 0);
        live.sample_completed(record(0, 500, 1000, 2));
        let settings = loadgen::TestSettings::default();
        let (effective, _) = loadgen::EffectiveSettings::new(&settings, 10, 10).unwrap();
        live.phase_started(&PhaseStart {
            phase: Phase::Performance,
            scenario: loadgen::Scenario::Server,
            mode: loadgen::TestMode::PerformanceOnly,
            start_unix_ns: 0,
            settings: effective,
            query_count: 5,
            sample_count: 5,
        });
        let s = live.snapshot();
        assert_eq!((s.issued, s.completed), (0, 0));
        assert_eq!(s.expected_samples, 5);
        assert_eq!(s.ttft_p50_s, None);
        assert_eq!(live.completed.load(Ordering::Relaxed), 1);
        assert_eq!(live.ttft.count(), 1);
    }

    #[test]
    fn readings_are_combined_across_backends_and_gpus() {
        let live = LiveMetrics::new();
        let server = |running: f64, kv: f64| {
            BTreeMap::from([
                (names::REQUESTS_RUNNING.to_owned(), running),
                (names::REQUESTS_WAITING.to_owned(), 1.0),
                (names::KV_CACHE_USAGE_FRAC.to_owned(), kv),
            ])
        };
        live.set_reading(MetricSource::Server, "a", server(3.0, 0.2));
        live.set_reading(MetricSource::Server, "b", server(5.0, 0.6));
        live.set_reading(MetricSource::Server, "a", server(4.0, 0.4));
        live.set_reading(
            MetricSource::Gpu,
            "gpu0",
            BTreeMap::from([(names::GPU_UTILIZATION_PCT.to_owned(), 80.0)]),
        );
        live.set_reading(
            MetricSource::Gpu,
            "gpu1",
            BTreeMap::from([(names::GPU_UTILIZATION_PCT.to_owned(), 90.0)]),
        );
        let s = live.snapshot();
        assert_eq!(s.server_running, Some(9.0));
        assert_eq!(s.server_waiting, Some(2.0));
        assert!((s.kv_cache_usage_frac.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(s.gpu_utilization_pct, Some(85.0));
    }

    fn render(view: &LiveView, width: usize) -> String {
        let mut out = Vec::new();
        render_live(view, width, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn busy() -> LiveView {
        let prev = LiveSnapshot {
            at_ns: 7_000_000_000,
            phase: Some(Phase::Performance),
            issued: 1174,
            completed: 1141,
            output_tokens: 97_330,
            ..LiveSnapshot::default()
        };
        let now = LiveSnapshot {
            at_ns: 12_000_000_000,
            phase: Some(Phase::Performance),
            scenario: Some(loadgen::Scenario::Server),
            phase_elapsed_s: 12.0,
            expected_samples: 24576,
            issued: 1234,
            completed: 1200,
            failed: 3,
            in_flight: 34,
            output_tokens: 101_780,
            ttft_p50_s: Some(0.04512),
            ttft_p99_s: Some(0.1204),
            tpot_p50_s: Some(0.012),
            server_running: Some(32.0),
            server_waiting: Some(2.0),
            kv_cache_usage_frac: Some(0.451),
            gpu_utilization_pct: Some(87.2),
            ..LiveSnapshot::default()
        };
        LiveView {
            now,
            window_start: Some(prev),
            requests_on_wire: Some(34),
            samples_per_request: 1,
        }
    }

    #[test]
    fn the_live_view_is_one_fact_a_line_within_80_columns() {
        let text = render(&busy(), 80);
        assert_eq!(
            text,
            "performance Server  12 s  [#.......................................]  1200/24576\n\
             issued 1234  completed 1200  failed 3\n\
             last 5 s: issued 12/s  completed 11.8/s  890 tok/s\n\
             in flight 34 samples\n\
             TTFT p50 45.1 ms  p99 120 ms  TPOT p50 12 ms\n\
             server running 32  waiting 2  KV 45%  GPU 87%"
        );
        for width in [40, 60, 80, 120] {
            for line in render(&busy(), width).lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
        }
        // Without an earlier snapshot the rates say they are since the start.
        let first = LiveView {
            window_start: None,
            ..busy()
        };
        assert!(render(&first, 80).contains("\nsince start: issued 103/s  completed 100/s"));
        let idle = render(&LiveView::default(), 80);
        assert_eq!(
            idle,
            "starting  0 s  0\nissued 0  completed 0\nin flight 0 samples"
        );
    }

    #[test]
    fn offline_shows_requests_on_the_wire_and_queued_samples_apart() {
        let mut view = busy();
        view.now.scenario = Some(loadgen::Scenario::Offline);
        view.now.in_flight = 2152;
        view.requests_on_wire = Some(128);
        view.samples_per_request = 2;
        let text = render(&view, 80);
        assert!(
            text.contains("\non the wire 128 requests  queued 1896 samples\n"),
            "{text}"
        );
        // A finished phase shows its final counts and no rates.
        view.now.phase_finished = true;
        let done = render(&view, 80);
        assert!(done.starts_with("performance Offline  12 s  ["), "{done}");
        assert!(done.contains("1200/24576 done\nissued 1234  completed 1200"));
        assert!(!done.contains("/s"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(0.012345), "0.0123");
        assert_eq!(sig3(1234.7), "1235");
        assert_eq!(sig3(2.0), "2");
        assert_eq!(duration(0.00085), "850 µs");
        assert_eq!(duration(1.234), "1.23 s");
    }
}
