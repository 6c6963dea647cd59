//! What a performance phase measured ([`PerformanceResult`]) and what
//! LoadGen derives from it ([`PerformanceSummary`]): percentiles, rates,
//! validity and early stopping, with LoadGen's exact arithmetic
//! (`loadgen/results.cc`).
//!
//! The arithmetic is LoadGen's on purpose, quirks included: percentiles are
//! `sorted[(size_t)(N * p)]`, means are integer divisions, Server rates
//! divide `N - 1` samples, and `result_token_throughput` divides tokens by
//! nanoseconds (it prints about 1e-9, as LoadGen's does).
//!
//! One extension: LoadGen has no failed samples. Here any failed sample
//! ([`PerformanceResult::failed_samples`]) or an interrupted run makes the
//! result INVALID, with one reason per cause in
//! [`PerformanceSummary::reasons`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::early_stopping::MinPassingQueriesFinder;
use crate::settings::{EffectiveSettings, Scenario, TestMode};
use crate::sut::ErrorKind;

/// A latency in nanoseconds (LoadGen's `QuerySampleLatency`, an int64).
pub type QuerySampleLatency = i64;

/// Token-latency measurements (LoadGen's `TokenPerformanceResults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenPerformanceResults {
    /// First-token latency per sample: first token − scheduled.
    pub first_token_latencies: Vec<QuerySampleLatency>,
    /// TPOT per sample: (latency − TTFT) / (n_tokens − 1), integer division.
    pub time_per_output_token_arr: Vec<QuerySampleLatency>,
    /// `n_tokens` per sample.
    pub tokens_per_sample: Vec<i64>,
}

/// Everything a finished performance phase measured: the input of the
/// results computation (LoadGen's `PerformanceResult`, plus the failure
/// accounting this implementation adds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerformanceResult {
    /// Per sample: completion − scheduled time, in issue order.
    pub sample_latencies: Vec<QuerySampleLatency>,
    /// Per query: last sample's completion − scheduled time (MultiStream).
    pub query_latencies: Vec<QuerySampleLatency>,
    /// Queries issued.
    pub queries_issued: u64,
    /// Largest sample latency, in seconds.
    pub max_latency: f64,
    /// Scheduled time of the last issued query, seconds from the start.
    pub final_query_scheduled_time: f64,
    /// Issue time of the last issued query, seconds from the start.
    pub final_query_issued_time: f64,
    /// Completion of the last issued query's last sample, seconds from the start.
    pub final_query_all_samples_done_time: f64,
    /// TTFT, TPOT and token counts (filled when `use_token_latencies`).
    pub token_results: TokenPerformanceResults,
    /// Samples that completed with an error, by kind. LoadGen has no notion
    /// of failed samples; any failure makes the run INVALID here.
    pub failed_samples: BTreeMap<ErrorKind, u64>,
    /// The run was stopped early by a stop request or signal.
    pub interrupted: bool,
}

/// The six percentiles LoadGen reports.
pub const REPORTED_PERCENTILES: [f64; 6] = [0.50, 0.90, 0.95, 0.97, 0.99, 0.999];

/// LoadGen's `DoubleToString`: fixed notation with `precision` decimals
/// (`99.90`, `90.0`).
pub fn double_to_string(value: f64, precision: usize) -> String {
    format!("{value:.precision$}")
}

/// A latency at one percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentileLatency {
    /// The percentile as a fraction (0.99).
    pub percentile: f64,
    /// Per-sample latency at that percentile, ns.
    pub sample_latency: QuerySampleLatency,
    /// Per-query latency at that percentile, ns (MultiStream only, else 0).
    pub query_latency: QuerySampleLatency,
}

impl PercentileLatency {
    fn new(percentile: f64) -> Self {
        PercentileLatency {
            percentile,
            sample_latency: 0,
            query_latency: 0,
        }
    }

    fn table() -> [PercentileLatency; 6] {
        REPORTED_PERCENTILES.map(PercentileLatency::new)
    }
}

/// Throughput figures, in the units LoadGen logs them. Each is `None` where
/// LoadGen does not compute it for the scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Offline: `N / max_latency`.
    pub samples_per_second: Option<f64>,
    /// Server: `(N - 1) / final_query_all_samples_done_time`.
    pub completed_samples_per_sec: Option<f64>,
    /// Server: `(N - 1) / final_query_scheduled_time`.
    pub scheduled_samples_per_sec: Option<f64>,
    /// SingleStream: `(N - 1) / final_query_issued_time`.
    pub qps_with_loadgen_overhead: Option<f64>,
    /// SingleStream: `1 / mean latency`.
    pub qps_without_loadgen_overhead: Option<f64>,
    /// Offline, token mode: `token_count / max_latency`.
    pub tokens_per_second: Option<f64>,
    /// Token mode outside Offline: `token_count / final_query_all_samples_done_time`.
    pub completed_tokens_per_second: Option<f64>,
    /// Token mode outside Offline: `token_count / final_query_issued_time`.
    pub token_throughput_with_loadgen_overhead: Option<f64>,
    /// Token mode outside Offline: `token_count / (mean_ns * N)`: LoadGen
    /// divides by nanoseconds, so this is about 1e-9 of the real figure.
    pub token_throughput: Option<f64>,
    /// SingleStream, token mode (summary only): `token_count / (mean_s * N)`.
    pub tps_without_loadgen_overhead: Option<f64>,
}

/// LoadGen's `PerformanceSummary` after `ProcessLatencies`, the validity
/// checks and early stopping: everything the summary and detail logs print,
/// plus this implementation's verdict. Serializable for `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceSummary {
    /// Scenario.
    pub scenario: Scenario,
    /// Test mode.
    pub mode: TestMode,
    /// Our verdict: LoadGen's, and no failed samples, and not interrupted.
    pub valid: bool,
    /// LoadGen's own verdict (min duration, min queries, perf constraints,
    /// early stopping), which is what `result_validity` would say in LoadGen.
    pub loadgen_valid: bool,
    /// One line per reason the result is INVALID (empty when valid).
    pub reasons: Vec<String>,
    /// Min duration met.
    pub min_duration_met: bool,
    /// Min queries and min samples met.
    pub min_queries_met: bool,
    /// Server performance constraints met (always true elsewhere).
    pub perf_constraints_met: bool,
    /// Early stopping met (always true for Offline).
    pub early_stopping_met: bool,
    /// LoadGen's recommendation when min duration is not met.
    pub min_duration_recommendation: String,
    /// LoadGen's recommendation when the perf constraints are not met.
    pub perf_constraints_recommendation: String,
    /// Early-stopping text (latency mode), with LoadGen's newlines.
    pub early_stopping_recommendation: String,
    /// Early-stopping text on TTFT (token mode).
    pub early_stopping_ttft_recommendation: String,
    /// Early-stopping text on TPOT (token mode).
    pub early_stopping_tpot_recommendation: String,

    /// Samples measured.
    pub sample_count: u64,
    /// Queries issued.
    pub query_count: u64,
    /// Server: samples over the target latency (`>= target + 1`).
    pub overlatency_query_count: u64,
    /// Minimum sample latency, ns.
    pub sample_latency_min: QuerySampleLatency,
    /// Maximum sample latency, ns.
    pub sample_latency_max: QuerySampleLatency,
    /// Mean sample latency (integer division), ns.
    pub sample_latency_mean: QuerySampleLatency,
    /// MultiStream: minimum query latency, ns.
    pub query_latency_min: QuerySampleLatency,
    /// MultiStream: maximum query latency, ns.
    pub query_latency_max: QuerySampleLatency,
    /// MultiStream: mean query latency, ns.
    pub query_latency_mean: QuerySampleLatency,
    /// Latency at the scenario's target percentile.
    pub target_latency_percentile: PercentileLatency,
    /// Latency at the six reported percentiles.
    pub latency_percentiles: [PercentileLatency; 6],
    /// SingleStream early-stopping estimate at the target percentile.
    pub early_stopping_latency_ss: QuerySampleLatency,
    /// MultiStream early-stopping estimate (or SingleStream's p99 estimate).
    pub early_stopping_latency_ms: QuerySampleLatency,

    /// Σ n_tokens (token mode).
    pub token_count: u64,
    /// Server: first tokens over the (latency) target.
    pub overlatency_first_token_count: u64,
    /// Minimum TTFT, ns.
    pub first_token_latency_min: QuerySampleLatency,
    /// Maximum TTFT, ns.
    pub first_token_latency_max: QuerySampleLatency,
    /// Mean TTFT, ns.
    pub first_token_latency_mean: QuerySampleLatency,
    /// Minimum TPOT, ns.
    pub time_per_output_token_min: QuerySampleLatency,
    /// Maximum TPOT, ns.
    pub time_per_output_token_max: QuerySampleLatency,
    /// Mean TPOT, ns.
    pub time_per_output_token_mean: QuerySampleLatency,
    /// TTFT at the target percentile.
    pub token_target_latency_percentile: PercentileLatency,
    /// TTFT at the six reported percentiles.
    pub token_latency_percentiles: [PercentileLatency; 6],
    /// TPOT at the target percentile.
    pub target_tpot_percentile: PercentileLatency,
    /// TPOT at the six reported percentiles.
    pub tpot_percentiles: [PercentileLatency; 6],

    /// Throughput figures.
    pub rates: Rates,
    /// Largest sample latency, s (input, kept for reports).
    pub max_latency: f64,
    /// Scheduled time of the last query, s.
    pub final_query_scheduled_time: f64,
    /// Issue time of the last query, s.
    pub final_query_issued_time: f64,
    /// Completion of the last query, s.
    pub final_query_all_samples_done_time: f64,
    /// Failed samples by kind (our extension).
    pub failed_samples: BTreeMap<ErrorKind, u64>,
    /// The run was interrupted (our extension).
    pub interrupted: bool,
}

/// `sorted[(size_t)(n * p)]`, where `n` is the count LoadGen multiplies by
/// (not always the slice's length). LoadGen reads out of bounds when they
/// disagree; here the last element (or 0) is used instead.
fn at_percentile(sorted: &[QuerySampleLatency], n: u64, p: f64) -> QuerySampleLatency {
    let idx = (n as f64 * p) as usize;
    sorted
        .get(idx)
        .or_else(|| sorted.last())
        .copied()
        .unwrap_or(0)
}

/// LoadGen divides an int64 sum by a `size_t` count, which converts the sum
/// to unsigned first.
fn mean(sum: i64, count: u64) -> i64 {
    if count == 0 {
        return 0;
    }
    ((sum as u64) / count) as i64
}

fn min_duration_recommendation(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::SingleStream | Scenario::MultiStream => {
            "Decrease the expected latency so the loadgen pre-generates more queries."
        }
        Scenario::Server => "Increase the target QPS so the loadgen pre-generates more queries.",
        Scenario::Offline => {
            "Increase expected QPS so the loadgen pre-generates a larger (coalesced) query."
        }
    }
}

/// LoadGen's text when min queries is not met (summary form).
pub const MIN_QUERIES_RECOMMENDATION: &str = " * The test exited early, before enough queries were issued.\n   See the detailed log for why this may have occurred.";

/// One-line description of failed samples, e.g.
/// `12 samples failed: http_status 10, timeout 2`, most frequent first
/// (None when none failed).
pub fn failed_samples_reason(failed: &BTreeMap<ErrorKind, u64>) -> Option<String> {
    let total: u64 = failed.values().sum();
    if total == 0 {
        return None;
    }
    // Most frequent first, so the dominant cause leads the line.
    let mut counts: Vec<(&ErrorKind, &u64)> = failed.iter().filter(|(_, n)| **n > 0).collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
    let parts: Vec<String> = counts
        .iter()
        .map(|(kind, n)| format!("{} {n}", kind.as_str()))
        .collect();
    let noun = if total == 1 { "sample" } else { "samples" };
    Some(format!("{total} {noun} failed: {}", parts.join(", ")))
}

/// The reason given for an interrupted run.
pub const INTERRUPTED_REASON: &str = "run interrupted by a stop request";

/// A phase's latency arrays in ascending order, as LoadGen's result maths
/// reads them. An array already in order is borrowed: copying one to sort
/// it cost a large Offline test 7,800 page faults and a 32 MB copy per 4M
/// samples at its very end, and an Offline SUT that answers in issue order
/// produces its latencies in order. The result's own arrays keep their
/// per-sample order.
struct SortedLatencies<'a> {
    samples: Cow<'a, [QuerySampleLatency]>,
    queries: Cow<'a, [QuerySampleLatency]>,
    first_token: Cow<'a, [QuerySampleLatency]>,
    tpot: Cow<'a, [QuerySampleLatency]>,
}

impl<'a> SortedLatencies<'a> {
    fn of(pr: &'a PerformanceResult) -> SortedLatencies<'a> {
        SortedLatencies {
            samples: sorted(&pr.sample_latencies),
            queries: sorted(&pr.query_latencies),
            first_token: sorted(&pr.token_results.first_token_latencies),
            tpot: sorted(&pr.token_results.time_per_output_token_arr),
        }
    }
}

/// `values` in ascending order: borrowed when they already are.
fn sorted(values: &[QuerySampleLatency]) -> Cow<'_, [QuerySampleLatency]> {
    if values.is_sorted() {
        Cow::Borrowed(values)
    } else {
        let mut owned = values.to_vec();
        owned.sort_unstable();
        Cow::Owned(owned)
    }
}

impl PerformanceSummary {
    /// Computes everything LoadGen derives from a performance phase.
    pub fn compute(settings: &EffectiveSettings, result: &PerformanceResult) -> PerformanceSummary {
        let mut s = PerformanceSummary::empty(settings, result);
        let sorted = SortedLatencies::of(result);
        s.process_latencies(settings, result, &sorted);

        // Validity, in LoadGen's order (LogDetail's).
        let min_duration = settings.min_duration_ms as f64 / 1000.0;
        s.min_duration_met = match settings.scenario {
            Scenario::Offline => result.max_latency >= min_duration,
            Scenario::Server => result.final_query_scheduled_time >= min_duration,
            Scenario::SingleStream | Scenario::MultiStream => {
                result.final_query_issued_time >= min_duration
            }
        };
        if !s.min_duration_met {
            s.min_duration_recommendation = min_duration_recommendation(settings.scenario).into();
        }
        s.min_queries_met = result.queries_issued >= settings.min_query_count
            && s.sample_count >= settings.min_sample_count;
        s.perf_constraints_met = s.perf_constraints(settings);

        let queries = result.queries_issued as i64;
        if !settings.use_token_latencies {
            let mut rec = String::new();
            s.early_stopping_met = s.early_stopping(
                settings,
                &mut rec,
                queries,
                &sorted.samples,
                &sorted.queries,
                settings.target_latency_ns as i64,
            );
            s.early_stopping_recommendation = rec;
        } else {
            let mut tpot = String::new();
            let mut ttft = String::new();
            // `&&` short-circuits in LoadGen too: a failed TPOT check leaves
            // the TTFT text empty.
            s.early_stopping_met = s.early_stopping(
                settings,
                &mut tpot,
                queries,
                &sorted.tpot,
                &sorted.queries,
                settings.server_tpot_latency,
            ) && s.early_stopping(
                settings,
                &mut ttft,
                queries,
                &sorted.first_token,
                &sorted.queries,
                settings.server_ttft_latency,
            );
            s.early_stopping_tpot_recommendation = tpot;
            s.early_stopping_ttft_recommendation = ttft;
        }

        s.loadgen_valid = s.min_duration_met
            && s.min_queries_met
            && s.perf_constraints_met
            && s.early_stopping_met;

        let perf = format!(
            "performance constraints not met: {}",
            s.perf_constraints_recommendation.replace("\n * ", "; ")
        );
        let duration = format!("min duration not met: {}", s.min_duration_recommendation);
        s.push_check_reasons(perf, duration);
        if let Some(reason) = failed_samples_reason(&result.failed_samples) {
            s.reasons.push(reason);
        }
        if result.interrupted {
            s.reasons.push(INTERRUPTED_REASON.into());
        }
        s.valid = s.loadgen_valid && s.reasons.is_empty();
        s.rates = s.compute_rates(settings);
        s
    }

    /// One reason per failed LoadGen check (performance constraints, min
    /// duration, min queries, early stopping), in LoadGen's order: the one
    /// wording for the summaries computed here and those read back from a
    /// LoadGen log. `perf` and `duration` say why the first two failed.
    pub(crate) fn push_check_reasons(&mut self, perf: String, duration: String) {
        if !self.perf_constraints_met {
            self.reasons.push(perf);
        }
        if !self.min_duration_met {
            self.reasons.push(duration);
        }
        if !self.min_queries_met {
            self.reasons.push(
                "min queries not met: the test exited early, before enough queries were issued"
                    .into(),
            );
        }
        if !self.early_stopping_met {
            // LoadGen's recommendations are multi-line bullet lists.
            let text = [
                &self.early_stopping_recommendation,
                &self.early_stopping_tpot_recommendation,
                &self.early_stopping_ttft_recommendation,
            ]
            .iter()
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
            self.reasons.push(format!("early stopping not met: {text}"));
        }
    }

    pub(crate) fn empty(
        settings: &EffectiveSettings,
        pr: &PerformanceResult,
    ) -> PerformanceSummary {
        let p = settings.target_latency_percentile;
        PerformanceSummary {
            scenario: settings.scenario,
            mode: settings.mode,
            valid: false,
            loadgen_valid: false,
            reasons: Vec::new(),
            min_duration_met: false,
            min_queries_met: false,
            perf_constraints_met: true,
            early_stopping_met: true,
            min_duration_recommendation: String::new(),
            perf_constraints_recommendation: String::new(),
            early_stopping_recommendation: String::new(),
            early_stopping_ttft_recommendation: String::new(),
            early_stopping_tpot_recommendation: String::new(),
            sample_count: 0,
            query_count: 0,
            overlatency_query_count: 0,
            sample_latency_min: 0,
            sample_latency_max: 0,
            sample_latency_mean: 0,
            query_latency_min: 0,
            query_latency_max: 0,
            query_latency_mean: 0,
            target_latency_percentile: PercentileLatency::new(p),
            latency_percentiles: PercentileLatency::table(),
            early_stopping_latency_ss: 0,
            early_stopping_latency_ms: 0,
            token_count: 0,
            overlatency_first_token_count: 0,
            first_token_latency_min: 0,
            first_token_latency_max: 0,
            first_token_latency_mean: 0,
            time_per_output_token_min: 0,
            time_per_output_token_max: 0,
            time_per_output_token_mean: 0,
            token_target_latency_percentile: PercentileLatency::new(p),
            token_latency_percentiles: PercentileLatency::table(),
            target_tpot_percentile: PercentileLatency::new(p),
            tpot_percentiles: PercentileLatency::table(),
            rates: Rates::default(),
            max_latency: pr.max_latency,
            final_query_scheduled_time: pr.final_query_scheduled_time,
            final_query_issued_time: pr.final_query_issued_time,
            final_query_all_samples_done_time: pr.final_query_all_samples_done_time,
            failed_samples: pr.failed_samples.clone(),
            interrupted: pr.interrupted,
        }
    }

    /// `ProcessLatencies` (+ `ProcessTokenLatencies`) over the sorted
    /// arrays (LoadGen sorts its own in place; early stopping reads them
    /// sorted too).
    fn process_latencies(
        &mut self,
        settings: &EffectiveSettings,
        pr: &PerformanceResult,
        sorted: &SortedLatencies<'_>,
    ) {
        let lat: &[QuerySampleLatency] = &sorted.samples;
        if lat.is_empty() {
            return;
        }
        let n = lat.len() as u64;
        self.sample_count = n;
        let sum = lat.iter().fold(0_i64, |a, &l| a.wrapping_add(l));
        self.sample_latency_mean = mean(sum, n);
        self.target_latency_percentile.sample_latency =
            at_percentile(lat, n, self.target_latency_percentile.percentile);
        self.sample_latency_min = lat[0];
        self.sample_latency_max = lat[lat.len() - 1];
        for lp in &mut self.latency_percentiles {
            lp.sample_latency = at_percentile(lat, n, lp.percentile);
        }
        self.query_count = pr.queries_issued;

        if settings.scenario == Scenario::Server {
            let bound = (settings.target_latency_ns as i64).wrapping_add(1);
            self.overlatency_query_count = lat.iter().filter(|&&l| l >= bound).count() as u64;
        }

        if settings.use_token_latencies {
            self.process_token_latencies(settings, pr, sorted);
        }

        if settings.scenario != Scenario::MultiStream {
            return;
        }
        let q = pr.queries_issued;
        let ql: &[QuerySampleLatency] = &sorted.queries;
        let sum = ql.iter().fold(0_i64, |a, &l| a.wrapping_add(l));
        self.query_latency_mean = mean(sum, q);
        self.query_latency_min = ql.first().copied().unwrap_or(0);
        self.query_latency_max = ql.last().copied().unwrap_or(0);
        self.target_latency_percentile.query_latency =
            at_percentile(ql, q, self.target_latency_percentile.percentile);
        for lp in &mut self.latency_percentiles {
            lp.query_latency = at_percentile(ql, q, lp.percentile);
        }
    }

    fn process_token_latencies(
        &mut self,
        settings: &EffectiveSettings,
        pr: &PerformanceResult,
        sorted: &SortedLatencies<'_>,
    ) {
        self.token_count = pr
            .token_results
            .tokens_per_sample
            .iter()
            .filter(|&&n| n != i64::MIN)
            .fold(0_u64, |a, &n| a.wrapping_add(n as u64));
        let ft: &[QuerySampleLatency] = &sorted.first_token;
        if ft.is_empty() {
            return;
        }
        // Failed samples carry no TTFT or TPOT (see the issuer), so each
        // statistic is over its own array; LoadGen divides by the sample
        // count, which is the same number when nothing failed.
        let n = ft.len() as u64;
        let sum = ft.iter().fold(0_i64, |a, &l| a.wrapping_add(l));
        self.first_token_latency_mean = mean(sum, n);
        let tp: &[QuerySampleLatency] = &sorted.tpot;
        let n_tpot = tp.len() as u64;
        let sum = tp.iter().fold(0_i64, |a, &l| a.wrapping_add(l));
        self.time_per_output_token_mean = mean(sum, n_tpot);
        self.token_target_latency_percentile.sample_latency =
            at_percentile(ft, n, self.token_target_latency_percentile.percentile);
        self.first_token_latency_min = ft[0];
        self.first_token_latency_max = ft[ft.len() - 1];
        for lp in &mut self.token_latency_percentiles {
            lp.sample_latency = at_percentile(ft, n, lp.percentile);
        }
        let n = n_tpot;
        self.target_tpot_percentile.sample_latency =
            at_percentile(tp, n, self.target_tpot_percentile.percentile);
        self.time_per_output_token_min = tp.first().copied().unwrap_or(0);
        self.time_per_output_token_max = tp.last().copied().unwrap_or(0);
        for lp in &mut self.tpot_percentiles {
            lp.sample_latency = at_percentile(tp, n, lp.percentile);
        }
        if settings.scenario == Scenario::Server {
            let bound = (settings.target_latency_ns as i64).wrapping_add(1);
            self.overlatency_first_token_count = ft.iter().filter(|&&l| l >= bound).count() as u64;
        }
    }

    fn perf_constraints(&mut self, settings: &EffectiveSettings) -> bool {
        if settings.scenario != Scenario::Server {
            return true;
        }
        let mut met = true;
        let mut rec = String::new();
        if !settings.use_token_latencies {
            if self.target_latency_percentile.sample_latency > settings.target_latency_ns as i64 {
                rec = "Reduce target QPS to improve latency.".into();
                met = false;
            }
        } else {
            if self.token_target_latency_percentile.sample_latency > settings.server_ttft_latency {
                rec = "TTFT constrain not met: Reduce target QPS to improve latency.".into();
                met = false;
            }
            if self.target_tpot_percentile.sample_latency > settings.server_tpot_latency {
                if rec.is_empty() {
                    rec = "TPOT constrain not met: Reduce target QPS to improve latency.".into();
                } else {
                    rec.push_str(
                        "\n * TPOT constrain not met: Reduce target QPS to improve latency.",
                    );
                }
                met = false;
            }
        }
        self.perf_constraints_recommendation = rec;
        met
    }

    /// `PerformanceSummary::EarlyStopping`: one fresh finder per call.
    fn early_stopping(
        &mut self,
        settings: &EffectiveSettings,
        rec: &mut String,
        queries_issued: i64,
        sample_latencies: &[QuerySampleLatency],
        query_latencies: &[QuerySampleLatency],
        target_latency: i64,
    ) -> bool {
        use crate::early_stopping::percentile_estimate_rank;
        rec.clear();
        let mut finder = MinPassingQueriesFinder::new();
        let p = self.target_latency_percentile.percentile;
        let pick = |arr: &[QuerySampleLatency], idx: i64| -> QuerySampleLatency {
            usize::try_from(idx)
                .ok()
                .and_then(|i| arr.get(i))
                .copied()
                .unwrap_or(0)
        };
        let not_enough = |h_min: i64| {
            format!(
                " * Only processed {queries_issued} queries.\n * Need to process at least {} queries for early stopping.",
                h_min + 1
            )
        };
        let estimate_text = |h_min: i64, t: i64, estimate: i64, p: f64| {
            format!(
                " * Processed at least {} queries ({queries_issued}).\n * Would discard {} highest latency queries.\n * Early stopping {}th percentile estimate: {estimate}",
                h_min + 1,
                t - 1,
                double_to_string(p * 100.0, 1)
            )
        };
        match settings.scenario {
            Scenario::SingleStream => {
                let (t, h_min) = match percentile_estimate_rank(&mut finder, queries_issued, p) {
                    Ok(v) => v,
                    Err(h_min) => {
                        *rec = not_enough(h_min);
                        return false;
                    }
                };
                let estimate = pick(sample_latencies, queries_issued - t);
                *rec = estimate_text(h_min, t, estimate, p);
                self.early_stopping_latency_ss = estimate;

                // LoadGen hard-codes the MultiStream percentile here.
                let ms_p = 0.99;
                match percentile_estimate_rank(&mut finder, queries_issued, ms_p) {
                    Err(h_min) => rec.push_str(&format!(
                        "\n * Not enough queries processed for {}th percentile\n early stopping estimate (would need to process at\n least {} total queries).",
                        double_to_string(ms_p * 100.0, 1),
                        h_min + 1
                    )),
                    Ok((t, _)) => {
                        let estimate = pick(sample_latencies, queries_issued - t);
                        rec.push_str(&format!(
                            "\n * Early stopping {}th percentile estimate: {estimate}",
                            double_to_string(ms_p * 100.0, 1)
                        ));
                        self.early_stopping_latency_ms = estimate;
                    }
                }
            }
            Scenario::Server => {
                let t = sample_latencies
                    .iter()
                    .filter(|&&l| l > target_latency)
                    .count() as i64;
                let h = finder.find(
                    t,
                    p,
                    crate::early_stopping::TOLERANCE,
                    crate::early_stopping::CONFIDENCE,
                );
                if queries_issued >= h + t {
                    *rec = " * Run successful.".into();
                } else {
                    *rec = format!(
                        " * Run unsuccessful.\n * Processed {queries_issued} queries.\n * Would need to run at least {} more queries,\n with the run being successful if every additional\n query were under latency.",
                        h + t - queries_issued
                    );
                    return false;
                }
            }
            Scenario::MultiStream => {
                let (t, h_min) = match percentile_estimate_rank(&mut finder, queries_issued, p) {
                    Ok(v) => v,
                    Err(h_min) => {
                        *rec = not_enough(h_min);
                        return false;
                    }
                };
                let estimate = pick(query_latencies, queries_issued - t);
                *rec = estimate_text(h_min, t, estimate, p);
                self.early_stopping_latency_ms = estimate;
            }
            Scenario::Offline => {}
        }
        true
    }

    fn compute_rates(&self, settings: &EffectiveSettings) -> Rates {
        let n = self.sample_count;
        // size_t arithmetic: N - 1 wraps when N is 0, as in LoadGen.
        let n_minus_1 = n.wrapping_sub(1) as f64;
        let tokens = self.token_count as f64;
        let mean_s = self.sample_latency_mean as f64 / 1e9;
        let mut r = Rates::default();
        match settings.scenario {
            Scenario::SingleStream => {
                r.qps_with_loadgen_overhead = Some(n_minus_1 / self.final_query_issued_time);
                r.qps_without_loadgen_overhead = Some(1.0 / mean_s);
            }
            Scenario::Server => {
                r.scheduled_samples_per_sec = Some(n_minus_1 / self.final_query_scheduled_time);
                r.completed_samples_per_sec =
                    Some(n_minus_1 / self.final_query_all_samples_done_time);
            }
            Scenario::Offline => {
                r.samples_per_second = Some(n as f64 / self.max_latency);
            }
            Scenario::MultiStream => {}
        }
        if settings.use_token_latencies {
            if settings.scenario == Scenario::Offline {
                r.tokens_per_second = Some(tokens / self.max_latency);
            } else {
                r.token_throughput_with_loadgen_overhead =
                    Some(tokens / self.final_query_issued_time);
                // int64 mean * size_t count, in unsigned arithmetic.
                let denom = (self.sample_latency_mean as u64).wrapping_mul(n) as f64;
                r.token_throughput = Some(tokens / denom);
                r.completed_tokens_per_second =
                    Some(tokens / self.final_query_all_samples_done_time);
                if settings.scenario == Scenario::SingleStream {
                    r.tps_without_loadgen_overhead = Some(tokens / (mean_s * n as f64));
                }
            }
        }
        r
    }

    /// `"VALID"` or `"INVALID"` (our verdict).
    pub fn validity_str(&self) -> &'static str {
        if self.valid { "VALID" } else { "INVALID" }
    }

    /// The metric MLPerf reports for the scenario, under the detail-log key
    /// the submission checker reads: `(key, value)`.
    pub fn primary_metric(&self, use_token_latencies: bool) -> (&'static str, f64) {
        match (self.scenario, use_token_latencies) {
            (Scenario::Offline, false) => (
                "result_samples_per_second",
                self.rates.samples_per_second.unwrap_or(0.0),
            ),
            (Scenario::Offline, true) => (
                "result_tokens_per_second",
                self.rates.tokens_per_second.unwrap_or(0.0),
            ),
            (Scenario::Server, false) => (
                "result_completed_samples_per_sec",
                self.rates.completed_samples_per_sec.unwrap_or(0.0),
            ),
            (Scenario::Server, true) => (
                "result_completed_tokens_per_second",
                self.rates.completed_tokens_per_second.unwrap_or(0.0),
            ),
            (Scenario::SingleStream, _) => (
                "early_stopping_latency_ss",
                self.early_stopping_latency_ss as f64,
            ),
            (Scenario::MultiStream, _) => (
                "early_stopping_latency_ms",
                self.early_stopping_latency_ms as f64,
            ),
        }
    }
}

/// LoadGen's detail log replaces newlines by spaces.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::settings::TestSettings;

    /// Settings of `scenario` (at least 1 s and 10 queries, a 1 µs Server
    /// latency target, 100 samples); `tokens` turns on token latencies.
    /// The `logged` module's tests use it too.
    pub(crate) fn settings(scenario: Scenario, tokens: bool) -> EffectiveSettings {
        let t = TestSettings {
            scenario,
            use_token_latencies: tokens,
            min_duration_ms: 1000,
            min_query_count: 10,
            server_target_latency_ns: 1000,
            ..TestSettings::default()
        };
        EffectiveSettings::new(&t, 100, 100).unwrap().0
    }

    /// The summary does not depend on the order the latencies come in:
    /// arrays already ascending are read in place, others are sorted in a
    /// copy, and the result's own arrays keep their order either way.
    #[test]
    fn summary_is_the_same_for_latencies_in_order_and_shuffled() {
        let mut rng = crate::rng::Mt19937::new(7);
        let mut draw = |n: usize, hi: u64| -> Vec<i64> {
            (0..n)
                .map(|_| crate::rng::uniform_int(&mut rng, 0, hi) as i64)
                .collect()
        };
        for scenario in [Scenario::Server, Scenario::Offline, Scenario::MultiStream] {
            for tokens in [false, true] {
                let s = settings(scenario, tokens);
                let n = 2_000;
                let shuffled = PerformanceResult {
                    sample_latencies: draw(n, 3_000),
                    query_latencies: draw(n / 8, 5_000),
                    queries_issued: (n / 8) as u64,
                    max_latency: 3e-6,
                    final_query_scheduled_time: 2.0,
                    final_query_issued_time: 2.0,
                    final_query_all_samples_done_time: 2.5,
                    token_results: TokenPerformanceResults {
                        first_token_latencies: draw(n, 900),
                        time_per_output_token_arr: draw(n - 3, 90),
                        tokens_per_sample: vec![12; n],
                    },
                    ..PerformanceResult::default()
                };
                let mut ordered = shuffled.clone();
                ordered.sample_latencies.sort_unstable();
                ordered.query_latencies.sort_unstable();
                ordered.token_results.first_token_latencies.sort_unstable();
                ordered
                    .token_results
                    .time_per_output_token_arr
                    .sort_unstable();
                assert!(!shuffled.sample_latencies.is_sorted());
                let before = shuffled.clone();
                let from_shuffled = PerformanceSummary::compute(&s, &shuffled);
                let from_ordered = PerformanceSummary::compute(&s, &ordered);
                assert_eq!(from_shuffled, from_ordered, "{scenario:?} tokens={tokens}");
                assert_eq!(shuffled, before, "the result is left as it was");
                // Not vacuous: the percentiles read the sorted values.
                assert_eq!(
                    from_ordered.sample_latency_max,
                    *ordered.sample_latencies.last().unwrap()
                );
                assert_ne!(
                    from_ordered.latency_percentiles[0].sample_latency,
                    shuffled.sample_latencies[n / 2]
                );
            }
        }
    }

    #[test]
    fn percentiles_index_by_truncated_product_and_means_truncate() {
        let s = settings(Scenario::Server, false);
        // Reversed so sorting matters; mean = 5050/100 = 50 (integer)... 50.5 truncates.
        let lat: Vec<i64> = (1..=100).rev().collect();
        let pr = PerformanceResult {
            sample_latencies: lat,
            queries_issued: 100,
            final_query_scheduled_time: 2.0,
            final_query_all_samples_done_time: 2.5,
            ..PerformanceResult::default()
        };
        let sum = PerformanceSummary::compute(&s, &pr);
        assert_eq!(sum.sample_latency_mean, 50);
        assert_eq!(sum.latency_percentiles[0].sample_latency, 51); // sorted[50]
        assert_eq!(sum.latency_percentiles[5].sample_latency, 100); // sorted[(size_t)99.9]
        assert_eq!(sum.target_latency_percentile.sample_latency, 100); // sorted[99]
        assert_eq!(sum.rates.completed_samples_per_sec, Some(99.0 / 2.5));
        assert_eq!(sum.rates.scheduled_samples_per_sec, Some(99.0 / 2.0));
        // Only 100 queries: early stopping needs 459 with none over latency.
        assert!(!sum.early_stopping_met);
        assert!(
            sum.early_stopping_recommendation
                .contains("359 more queries")
        );
        assert!(!sum.valid && !sum.loadgen_valid);
    }

    #[test]
    fn server_overlatency_is_strictly_greater() {
        let s = settings(Scenario::Server, false);
        let mut lat = vec![500_i64; 1000];
        lat[0] = 1000; // equal to the bound: not over
        lat[1] = 1001;
        let pr = PerformanceResult {
            sample_latencies: lat,
            queries_issued: 1000,
            final_query_scheduled_time: 5.0,
            final_query_all_samples_done_time: 5.0,
            ..PerformanceResult::default()
        };
        let sum = PerformanceSummary::compute(&s, &pr);
        assert_eq!(sum.overlatency_query_count, 1);
        // t = 1 needs 661 + 1 queries: 1000 passes.
        assert!(sum.early_stopping_met);
        assert!(sum.perf_constraints_met);
        assert!(sum.valid, "{:?}", sum.reasons);
    }

    #[test]
    fn failures_and_interruption_invalidate_with_reasons() {
        let s = settings(Scenario::Offline, false);
        let mut failed = BTreeMap::new();
        failed.insert(ErrorKind::HttpStatus, 10);
        failed.insert(ErrorKind::Timeout, 2);
        let pr = PerformanceResult {
            sample_latencies: vec![2_000_000_000; 100],
            queries_issued: 1,
            max_latency: 2.0,
            failed_samples: failed,
            interrupted: true,
            ..PerformanceResult::default()
        };
        let sum = PerformanceSummary::compute(&s, &pr);
        assert!(sum.loadgen_valid);
        assert!(!sum.valid);
        assert_eq!(
            sum.reasons,
            [
                "12 samples failed: http_status 10, timeout 2",
                "run interrupted by a stop request"
            ]
        );
        assert_eq!(sum.rates.samples_per_second, Some(50.0));
    }

    #[test]
    fn token_mode_server_checks_ttft_and_tpot() {
        let mut s = settings(Scenario::Server, true);
        s.server_ttft_latency = 100;
        s.server_tpot_latency = 10;
        let n = 1000;
        let pr = PerformanceResult {
            sample_latencies: vec![1000; n],
            queries_issued: n as u64,
            final_query_scheduled_time: 2.0,
            final_query_issued_time: 2.0,
            final_query_all_samples_done_time: 4.0,
            token_results: TokenPerformanceResults {
                first_token_latencies: vec![150; n],
                time_per_output_token_arr: vec![5; n],
                tokens_per_sample: vec![3; n],
            },
            ..PerformanceResult::default()
        };
        let sum = PerformanceSummary::compute(&s, &pr);
        assert!(!sum.perf_constraints_met);
        assert_eq!(
            sum.perf_constraints_recommendation,
            "TTFT constrain not met: Reduce target QPS to improve latency."
        );
        assert_eq!(sum.token_count, 3000);
        assert_eq!(sum.rates.completed_tokens_per_second, Some(750.0));
        // The known quirk: tokens / (mean_ns * N).
        assert_eq!(sum.rates.token_throughput, Some(3000.0 / 1_000_000.0));
        // TPOT passes, TTFT (all 1000 over 100 ns) fails early stopping.
        assert_eq!(sum.early_stopping_tpot_recommendation, " * Run successful.");
        assert!(
            sum.early_stopping_ttft_recommendation
                .starts_with(" * Run unsuccessful.")
        );
        assert!(!sum.early_stopping_met);
    }

    #[test]
    fn single_stream_estimates() {
        let s = settings(Scenario::SingleStream, false);
        let lat: Vec<i64> = (1..=1024).collect();
        let pr = PerformanceResult {
            sample_latencies: lat,
            queries_issued: 1024,
            final_query_issued_time: 2.0,
            ..PerformanceResult::default()
        };
        let sum = PerformanceSummary::compute(&s, &pr);
        // p90, N=1024: t - 1 = 79 discarded, estimate sorted[1024 - 80].
        assert!(
            sum.early_stopping_recommendation
                .contains("Would discard 79 highest")
        );
        assert_eq!(sum.early_stopping_latency_ss, 945);
        assert!(
            sum.early_stopping_recommendation
                .contains("99.0th percentile estimate")
        );
        assert!(sum.valid, "{:?}", sum.reasons);
    }

    #[test]
    fn failed_reason_singular() {
        let mut f = BTreeMap::new();
        f.insert(ErrorKind::Connect, 1);
        assert_eq!(
            failed_samples_reason(&f).unwrap(),
            "1 sample failed: connect 1"
        );
        assert_eq!(failed_samples_reason(&BTreeMap::new()), None);
    }
}
