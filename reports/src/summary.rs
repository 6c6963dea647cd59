//! `summary.json`: every statistic of a run, versioned. The schema is
//! documented field by field in `reports/SCHEMA.md` and checked against
//! `reports/summary.schema.json` in the tests.

use std::collections::BTreeMap;
use std::io::Write;

use loadgen::ErrorKind;
use loadgen::Timed;
use rundir::RunStatus;
use serde::{Deserialize, Serialize};

use crate::load::{FINE_BIN_NS, LoadgenError, PhaseData, RunData};
use crate::stats::{self, Stats};

/// Version of the `summary.json` schema. Bump on any change that is not a
/// purely additive optional field.
pub const SCHEMA_VERSION: u32 = 2;

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What wrote it (`reports <version>`).
    pub generator: String,
    /// What ran (from `run.json`, falling back on the phase header).
    pub run: RunInfo,
    /// The phase summarised: `performance`, or `accuracy` in an accuracy-only run.
    pub phase: Option<String>,
    /// The limits and targets in force.
    pub settings: Option<SettingsInfo>,
    /// Whether the data is whole.
    pub completeness: Completeness,
    /// MLPerf validity and the run's verdict.
    pub validity: Validity,
    /// Sample counts.
    pub counts: Counts,
    /// Failures by kind.
    pub errors: Errors,
    /// The measured window.
    pub window: Option<Window>,
    /// Throughputs over the window.
    pub throughput: Option<Throughput>,
    /// Samples meeting the TTFT/TPOT limits.
    pub goodput: Option<Goodput>,
    /// LoadGen latency (completion − scheduled), ns, successful samples.
    pub latency_ns: Option<Stats>,
    /// End-to-end request time (completion − issued), ns: vLLM's E2EL.
    pub e2e_ns: Option<Stats>,
    /// LoadGen TTFT (first token − scheduled), ns.
    pub ttft_ns: Option<Stats>,
    /// LoadGen/vLLM TPOT ((latency − ttft) / (tokens − 1)), ns, samples with ≥ 2 tokens.
    pub tpot_ns: Option<Stats>,
    /// vLLM ITL: gaps between successive token-carrying chunks, pooled, ns.
    pub itl_ns: Option<Stats>,
    /// Issue delay (issued − scheduled), ns, all samples.
    pub issue_delay_ns: Option<Stats>,
    /// Prompt tokens per successful sample (where reported).
    pub input_tokens: Option<Stats>,
    /// Output tokens per successful sample (`n_tokens`).
    pub output_tokens: Option<Stats>,
    /// Statistics of every series in `metrics.jsonl`.
    pub metrics: Vec<MetricStats>,
    /// The run-level figures by name ([`crate::figures::FIGURES`]): what the
    /// terminal, the history, sweeps, compare and gate show.
    pub figures: BTreeMap<String, f64>,
    /// LoadGen's results of the reported performance phase, as run.json
    /// keeps them (`null` for accuracy-only runs and older run directories).
    pub loadgen: Option<loadgen::results::PerformanceSummary>,
    /// Every LoadGen error and every class of failed samples, then problems
    /// met while loading, one line each.
    pub warnings: Vec<String>,
}

/// What ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run directory name.
    pub run_id: Option<String>,
    /// LoadGen model key.
    pub model: Option<String>,
    /// Scenario.
    pub scenario: Option<String>,
    /// Test mode.
    pub mode: Option<String>,
    /// Backend URLs (no credentials).
    pub backends: Vec<String>,
    /// Dataset description.
    pub dataset: Option<String>,
    /// Start time, RFC 3339.
    pub started_at: Option<String>,
    /// End time, RFC 3339.
    pub finished_at: Option<String>,
    /// `run.json` status: running, complete, interrupted, failed.
    pub status: Option<String>,
    /// The LoadGen that produced the run (`run.json`'s `loadgen`).
    pub loadgen: Option<rundir::LoadgenIdentity>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
}

/// Targets and limits from the phase header's effective settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsInfo {
    /// Target queries per second.
    pub target_qps: f64,
    /// Server latency bound, ns (0 when not used).
    pub target_latency_ns: u64,
    /// Percentile at which latency is judged.
    pub target_latency_percentile: f64,
    /// TTFT limit, ns (0 when not set).
    pub ttft_limit_ns: i64,
    /// TPOT limit, ns (0 when not set).
    pub tpot_limit_ns: i64,
    /// Whether LoadGen judges TTFT/TPOT instead of latency.
    pub use_token_latencies: bool,
    /// Minimum duration for validity, ms.
    pub min_duration_ms: u64,
    /// Minimum query count for validity.
    pub min_query_count: u64,
    /// Samples the phase generated.
    pub expected_samples: u64,
}

/// Whether the run's data is whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    /// True when anything below says the data is partial.
    pub incomplete: bool,
    /// Why, one line each.
    pub reasons: Vec<String>,
    /// `records.jsonl` ended in a cut line.
    pub truncated_records: bool,
    /// The phase's `phase_end` line is present.
    pub phase_end_present: bool,
    /// `metrics.jsonl` was present and read.
    pub metrics_present: bool,
}

/// Validity verdicts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validity {
    /// MLPerf validity from the phase end (`null` without one).
    pub mlperf_valid: Option<bool>,
    /// LoadGen's reasons.
    pub mlperf_reasons: Vec<String>,
    /// The run's verdict from `run.json` (`null` without one).
    pub run_valid: Option<bool>,
    /// The verdict's reasons.
    pub run_reasons: Vec<String>,
    /// The phase was stopped early.
    pub interrupted: bool,
    /// The verdict line the terminal and report.html show: VALID/INVALID,
    /// with LoadGen's errors and the failed samples by kind.
    pub verdict: String,
}

/// Sample counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Records found.
    pub samples: u64,
    /// Records without an error.
    pub succeeded: u64,
    /// Records with an error.
    pub failed: u64,
    /// Samples the phase planned (`sample_count` of the header).
    pub expected: Option<u64>,
    /// Distinct queries among the records.
    pub queries: u64,
}

/// Failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Count per `ErrorKind` name (kinds that occurred).
    pub by_kind: BTreeMap<String, u64>,
    /// Count per HTTP status, for `http_status` errors.
    pub by_http_status: BTreeMap<String, u64>,
    /// Up to 10 examples: first failure of each kind, then the earliest others.
    pub examples: Vec<ErrorExample>,
    /// The error lines of LoadGen's detail log (its "N ERRORS"), grouped.
    pub loadgen: Vec<LoadgenError>,
}

/// One failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorExample {
    /// Sample sequence number.
    pub seq: u64,
    /// Kind name.
    pub kind: String,
    /// HTTP status, when any.
    pub http_status: Option<u16>,
    /// The message.
    pub message: String,
}

/// The measured window, on the phase clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Earliest scheduled time of any sample, ns.
    pub start_ns: u64,
    /// Latest completion of any sample, ns.
    pub end_ns: u64,
    /// `(end − start) / 1e9`.
    pub duration_s: f64,
}

/// Throughputs over [`Window`] (the run-level throughputs, LoadGen's, are
/// `figures.samples_per_s` and `figures.output_tokens_per_s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Successful samples per second of the window (LoadGen's
    /// `samples_per_s` counts failed samples too and divides by its own
    /// duration).
    pub window_samples_per_s: f64,
    /// All completed samples (failed included) per second of the window.
    pub window_completed_per_s: f64,
    /// Output tokens of successful samples per second of the window.
    pub window_output_tokens_per_s: f64,
    /// Prompt tokens of successful samples per second (where reported).
    pub input_tokens_per_s: f64,
    /// Input plus output tokens per second.
    pub total_tokens_per_s: f64,
    /// Highest output tokens in any 1 s bin of chunk arrivals (vLLM's `max_output_tokens_per_s`).
    pub peak_output_tokens_per_s: f64,
    /// Total output tokens of successful samples.
    pub output_tokens: u64,
    /// Total prompt tokens of successful samples.
    pub input_tokens: u64,
}

/// Goodput against the run's TTFT/TPOT limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// TTFT limit applied, ns (`null`: not applied).
    pub ttft_limit_ns: Option<i64>,
    /// TPOT limit applied, ns (`null`: not applied).
    pub tpot_limit_ns: Option<i64>,
    /// Successful samples within every applied limit.
    pub good_samples: u64,
    /// `good_samples / samples` (all records, failed included).
    pub good_fraction: f64,
    /// `good_samples / window duration`.
    pub goodput_samples_per_s: f64,
}

/// Statistics of one `metrics.jsonl` series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    /// `server`, `gpu`, `system` or `process`.
    pub source: String,
    /// Which one.
    pub instance: String,
    /// Vocabulary name (unit in the name).
    pub name: String,
    /// Over every reading in the run.
    pub stats: Stats,
}

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed => "failed",
    }
}

/// Computes the summary of a loaded run.
pub fn summarize(data: &RunData) -> Summary {
    let phase = data.main_phase();
    let mut run = RunInfo::default();
    if let Some(m) = &data.manifest {
        run = RunInfo {
            run_id: Some(m.run_id.clone()),
            model: Some(m.model.clone()),
            scenario: Some(m.scenario.clone()),
            mode: Some(m.mode.clone()),
            backends: m.backends.clone(),
            dataset: m.dataset.clone(),
            started_at: Some(m.started_at.clone()),
            finished_at: m.finished_at.clone(),
            status: Some(status_name(m.status).to_owned()),
            loadgen: Some(m.loadgen.clone()),
            labels: m.labels.clone(),
        };
    } else {
        run.run_id = data
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
    }
    if let Some(p) = phase {
        run.scenario
            .get_or_insert_with(|| p.header.start.scenario.as_str().to_owned());
        run.mode
            .get_or_insert_with(|| p.header.start.mode.as_str().to_owned());
    }

    let settings = phase.map(|p| {
        let s = &p.header.start.settings;
        SettingsInfo {
            target_qps: s.target_qps,
            target_latency_ns: s.target_latency_ns,
            target_latency_percentile: s.target_latency_percentile,
            ttft_limit_ns: s.server_ttft_latency,
            tpot_limit_ns: s.server_tpot_latency,
            use_token_latencies: s.use_token_latencies,
            min_duration_ms: s.min_duration_ms,
            min_query_count: s.min_query_count,
            expected_samples: p.header.start.sample_count,
        }
    });

    let mut completeness = Completeness {
        truncated_records: data.truncated,
        phase_end_present: phase.is_some_and(|p| p.end.is_some()),
        metrics_present: data.dir.join(rundir::METRICS_FILE).is_file(),
        ..Completeness::default()
    };
    match phase {
        None => completeness
            .reasons
            .push("no phase in records.jsonl".into()),
        Some(p) if p.end.is_none() => completeness.reasons.push(format!(
            "{} phase has no end (the run died or is still running)",
            p.header.start.phase
        )),
        Some(_) => {}
    }
    if data.truncated {
        completeness
            .reasons
            .push("records.jsonl ends in a cut line".into());
    }
    match &data.manifest {
        None => completeness.reasons.push("no readable run.json".into()),
        Some(m) if m.status != RunStatus::Complete => completeness
            .reasons
            .push(format!("run status is {}", status_name(m.status))),
        Some(_) => {}
    }
    if let Some(end) = phase.and_then(|p| p.end.as_ref())
        && end.interrupted
    {
        completeness
            .reasons
            .push("the phase was interrupted".into());
    }
    completeness.incomplete = !completeness.reasons.is_empty();

    let end = phase.and_then(|p| p.end.as_ref());
    let validity = Validity {
        mlperf_valid: end.and_then(|e| e.valid),
        mlperf_reasons: end.map(|e| e.invalid_reasons.clone()).unwrap_or_default(),
        run_valid: data
            .manifest
            .as_ref()
            .and_then(|m| m.verdict.as_ref())
            .map(|v| v.valid),
        run_reasons: data
            .manifest
            .as_ref()
            .and_then(|m| m.verdict.as_ref())
            .map(|v| v.reasons.clone())
            .unwrap_or_default(),
        interrupted: end.is_some_and(|e| e.interrupted)
            || data
                .manifest
                .as_ref()
                .is_some_and(|m| m.status == RunStatus::Interrupted),
        verdict: String::new(),
    };

    let mut summary = Summary {
        schema_version: SCHEMA_VERSION,
        generator: format!("reports {}", env!("CARGO_PKG_VERSION")),
        run,
        phase: phase.map(|p| p.header.start.phase.as_str().to_owned()),
        settings,
        completeness,
        validity,
        counts: Counts::default(),
        errors: Errors::default(),
        window: None,
        throughput: None,
        goodput: None,
        latency_ns: None,
        e2e_ns: None,
        ttft_ns: None,
        tpot_ns: None,
        itl_ns: None,
        issue_delay_ns: None,
        input_tokens: None,
        output_tokens: None,
        metrics: metric_stats(&data.metrics),
        figures: BTreeMap::new(),
        loadgen: data
            .manifest
            .as_ref()
            .and_then(|m| m.loadgen_results.clone()),
        warnings: Vec::new(),
    };
    if let Some(p) = phase {
        fill_phase(&mut summary, p);
    }
    summary.errors.loadgen = data.loadgen_errors.clone();
    summary.warnings = error_warnings(&summary);
    summary.warnings.extend(data.warnings.iter().cloned());
    summary.figures = crate::figures::compute(&summary);
    summary.validity.verdict = crate::figures::verdict_line(&summary);
    summary
}

/// One warning per LoadGen error and per kind of failed sample (with an
/// example message).
fn error_warnings(s: &Summary) -> Vec<String> {
    let mut out: Vec<String> = s
        .errors
        .loadgen
        .iter()
        .map(|e| format!("LoadGen error ({}) x{}: {}", e.key, e.count, e.message))
        .collect();
    for (kind, n) in &s.errors.by_kind {
        let noun = if *n == 1 { "sample" } else { "samples" };
        let example = s
            .errors
            .examples
            .iter()
            .find(|e| &e.kind == kind)
            .map(|e| format!(", e.g. sample {}: {}", e.seq, e.message))
            .unwrap_or_default();
        out.push(format!("{n} {noun} failed: {kind}{example}"));
    }
    out
}

fn fill_phase(s: &mut Summary, p: &PhaseData) {
    let n = p.samples.len();
    let mut latency = Vec::with_capacity(n);
    let mut e2e = Vec::with_capacity(n);
    let mut ttft = Vec::with_capacity(n);
    let mut tpot = Vec::with_capacity(n);
    let mut issue_delay = Vec::with_capacity(n);
    let mut input = Vec::with_capacity(n);
    let mut output = Vec::with_capacity(n);
    let mut by_kind = [0u64; ErrorKind::ALL.len()];
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen_kind = [false; ErrorKind::ALL.len()];
    let mut first_examples = Vec::new();
    let mut other_examples = Vec::new();
    let (mut start, mut end) = (u64::MAX, 0u64);
    let (mut out_tokens, mut in_tokens) = (0u64, 0u64);
    let mut queries: Vec<u64> = Vec::with_capacity(n);
    let ttft_limit = s.settings.as_ref().map_or(0, |x| x.ttft_limit_ns);
    let tpot_limit = s.settings.as_ref().map_or(0, |x| x.tpot_limit_ns);
    let mut good = 0u64;
    let mut failed = 0u64;
    for q in &p.samples {
        start = start.min(q.scheduled_ns);
        end = end.max(q.end_ns);
        issue_delay.push(q.issue_delay_ns());
        queries.push(q.query);
        if let Some(err) = &q.error {
            failed += 1;
            let k = err.kind.index();
            by_kind[k] += 1;
            if let Some(code) = err.http_status {
                *by_status.entry(code.to_string()).or_default() += 1;
            }
            let example = ErrorExample {
                seq: q.seq,
                kind: err.kind.as_str().to_owned(),
                http_status: err.http_status,
                message: err.message.clone(),
            };
            if !seen_kind[k] {
                seen_kind[k] = true;
                first_examples.push(example);
            } else if other_examples.len() < 10 {
                other_examples.push(example);
            }
            continue;
        }
        latency.push(q.latency_ns());
        e2e.push(q.end_ns.saturating_sub(q.issued_ns));
        let t1 = q.ttft_ns();
        if let Some(t) = t1 {
            ttft.push(t);
        }
        let t2 = q.tpot_ns();
        if let Some(t) = t2 {
            tpot.push(t);
        }
        let tokens = q.n_tokens.max(0) as u64;
        out_tokens += tokens;
        output.push(tokens);
        if let Some(i) = q.input_tokens {
            in_tokens += u64::from(i);
            input.push(u64::from(i));
        }
        // A sample without a first token cannot show it met a TTFT limit;
        // one with < 2 tokens has no TPOT and meets any TPOT limit (vLLM).
        let ttft_ok = ttft_limit <= 0 || t1.is_some_and(|t| t <= ttft_limit as u64);
        let tpot_ok = tpot_limit <= 0 || t2.is_none_or(|t| t <= tpot_limit as u64);
        good += u64::from(ttft_ok && tpot_ok);
    }
    queries.sort_unstable();
    queries.dedup();
    s.counts = Counts {
        samples: n as u64,
        succeeded: n as u64 - failed,
        failed,
        expected: Some(p.header.start.sample_count),
        queries: queries.len() as u64,
    };
    for kind in ErrorKind::ALL {
        if by_kind[kind.index()] > 0 {
            s.errors
                .by_kind
                .insert(kind.as_str().to_owned(), by_kind[kind.index()]);
        }
    }
    s.errors.by_http_status = by_status;
    first_examples.extend(other_examples);
    first_examples.truncate(10);
    s.errors.examples = first_examples;

    if n > 0 {
        let duration_s = end.saturating_sub(start) as f64 / 1e9;
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        s.window = Some(Window {
            start_ns: start,
            end_ns: end,
            duration_s,
        });
        let bins_per_s = (1_000_000_000 / FINE_BIN_NS) as usize;
        let peak = p
            .token_bins
            .chunks(bins_per_s)
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(0);
        s.throughput = Some(Throughput {
            window_samples_per_s: per_s((n as u64 - failed) as f64),
            window_completed_per_s: per_s(n as f64),
            window_output_tokens_per_s: per_s(out_tokens as f64),
            input_tokens_per_s: per_s(in_tokens as f64),
            total_tokens_per_s: per_s((in_tokens + out_tokens) as f64),
            peak_output_tokens_per_s: peak as f64,
            output_tokens: out_tokens,
            input_tokens: in_tokens,
        });
        if ttft_limit > 0 || tpot_limit > 0 {
            s.goodput = Some(Goodput {
                ttft_limit_ns: (ttft_limit > 0).then_some(ttft_limit),
                tpot_limit_ns: (tpot_limit > 0).then_some(tpot_limit),
                good_samples: good,
                good_fraction: good as f64 / n as f64,
                goodput_samples_per_s: per_s(good as f64),
            });
        }
    }
    s.latency_ns = stats::stats_u64(&mut latency);
    s.e2e_ns = stats::stats_u64(&mut e2e);
    s.ttft_ns = stats::stats_u64(&mut ttft);
    s.tpot_ns = stats::stats_u64(&mut tpot);
    s.issue_delay_ns = stats::stats_u64(&mut issue_delay);
    s.input_tokens = stats::stats_u64(&mut input);
    s.output_tokens = stats::stats_u64(&mut output);
    s.itl_ns = itl_stats(p);
}

fn itl_stats(p: &PhaseData) -> Option<Stats> {
    let n = p.itl_count();
    if n == 0 {
        return None;
    }
    let ranks = stats::needed_ranks(n);
    let values = p.itl_counts.select(p.itl_gaps(), &ranks);
    let (mean, std) = stats::integer_moments(n as u64, p.itl_sum.0, p.itl_sum.1);
    stats::stats_from_ranks(n, mean, std, |r| {
        ranks
            .binary_search(&r)
            .map_or(f64::NAN, |i| values[i] as f64)
    })
}

fn metric_stats(samples: &[rundir::MetricsSample]) -> Vec<MetricStats> {
    let mut series: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    for s in samples {
        let source = serde_json::to_value(s.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for (name, &v) in &s.values {
            if v.is_finite() {
                series
                    .entry((source.clone(), s.instance.clone(), name.clone()))
                    .or_default()
                    .push(v);
            }
        }
    }
    series
        .into_iter()
        .filter_map(|((source, instance, name), mut values)| {
            stats::stats_f64(&mut values).map(|stats| MetricStats {
                source,
                instance,
                name,
                stats,
            })
        })
        .collect()
}

/// Writes the summary as pretty JSON.
pub fn render_json(summary: &Summary, w: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, summary).map_err(std::io::Error::other)?;
    w.write_all(b"\n")
}
