//! LoadGen's results as a LoadGen wrote them in `mlperf_log_detail.txt`:
//! the way to show another LoadGen's figures (the official C++ library
//! under `harness run --loadgen official`) through the same
//! [`PerformanceSummary`] every report reads.
//!
//! The detail log holds the validity checks, the rates, the latency, TTFT
//! and TPOT tables and the early-stopping texts. What it lacks comes from
//! the caller, who saw every sample pass ([`Observed`]): the sample and
//! token counts, failed samples, interruption. The times LoadGen does not
//! log (`final_query_*`, `max_latency`) are recovered from the logged rates
//! that were computed from them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::results::{
    INTERRUPTED_REASON, PerformanceResult, PerformanceSummary, REPORTED_PERCENTILES,
    double_to_string, failed_samples_reason,
};
use crate::settings::{EffectiveSettings, Scenario};
use crate::sut::ErrorKind;

/// The `:::MLLOG` lines of a detail log, by key (the last line of a key
/// wins, as a reader of LoadGen's log sees the final value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetailLog {
    values: BTreeMap<String, Value>,
    /// Keys of `"error": true` lines, in order.
    pub errors: Vec<String>,
}

impl DetailLog {
    /// Parses the text of `mlperf_log_detail.txt`; lines that are not
    /// `:::MLLOG` JSON are skipped.
    pub fn parse(text: &str) -> DetailLog {
        let mut log = DetailLog::default();
        for line in text.lines() {
            let Some(json) = line.strip_prefix(":::MLLOG ") else {
                continue;
            };
            let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            let Some(Value::String(key)) = map.remove("key") else {
                continue;
            };
            if map
                .get("metadata")
                .and_then(|m| m.get("is_error"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                log.errors.push(key.clone());
            }
            log.values
                .insert(key, map.remove("value").unwrap_or(Value::Null));
        }
        log
    }

    /// A key's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    fn i64(&self, key: &str) -> i64 {
        self.get(key)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .unwrap_or(0)
    }

    fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    fn text(&self, key: &str) -> String {
        self.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// What the caller saw of the phase that the detail log does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Samples of the performance phase (LoadGen issued and was answered).
    pub sample_count: u64,
    /// Σ n_tokens answered.
    pub token_count: u64,
    /// Failed samples by kind.
    pub failed_samples: BTreeMap<ErrorKind, u64>,
    /// The run was stopped early.
    pub interrupted: bool,
}

fn percentile_key(p: f64) -> String {
    double_to_string(p * 100.0, 2)
}

impl PerformanceSummary {
    /// The performance summary a LoadGen logged, for the settings it ran
    /// with; `None` when the log has no results (`result_validity`).
    pub fn from_detail_log(
        log: &DetailLog,
        settings: &EffectiveSettings,
        observed: &Observed,
    ) -> Option<PerformanceSummary> {
        let validity = log.get("result_validity")?.as_str()?.to_owned();
        let mut s = PerformanceSummary::empty(settings, &PerformanceResult::default());
        s.loadgen_valid = validity == "VALID";
        s.perf_constraints_met = log.bool("result_perf_constraints_met").unwrap_or(true);
        s.min_duration_met = log.bool("result_min_duration_met").unwrap_or(false);
        s.min_queries_met = log.bool("result_min_queries_met").unwrap_or(false);
        s.early_stopping_met = log.bool("early_stopping_met").unwrap_or(true);
        s.early_stopping_recommendation = log.text("early_stopping_result");
        s.early_stopping_ttft_recommendation = log.text("early_stopping_ttft_result");
        s.early_stopping_tpot_recommendation = log.text("early_stopping_tpot_result");
        s.sample_count = observed.sample_count;
        s.token_count = observed.token_count;
        s.query_count = log.i64("result_query_count") as u64;
        s.overlatency_query_count = log.i64("result_overlatency_query_count") as u64;
        s.sample_latency_min = log.i64("result_min_latency_ns");
        s.sample_latency_max = log.i64("result_max_latency_ns");
        s.sample_latency_mean = log.i64("result_mean_latency_ns");
        s.query_latency_min = log.i64("result_min_query_latency_ns");
        s.query_latency_max = log.i64("result_max_query_latency_ns");
        s.query_latency_mean = log.i64("result_mean_query_latency_ns");
        s.first_token_latency_min = log.i64("result_first_token_min_latency_ns");
        s.first_token_latency_max = log.i64("result_first_token_max_latency_ns");
        s.first_token_latency_mean = log.i64("result_first_token_mean_latency_ns");
        s.time_per_output_token_min = log.i64("result_time_to_output_token_min");
        s.time_per_output_token_max = log.i64("result_time_to_output_token_max");
        s.time_per_output_token_mean = log.i64("result_time_to_output_token_mean");
        s.early_stopping_latency_ss = log.i64("early_stopping_latency_ss");
        s.early_stopping_latency_ms = log.i64("early_stopping_latency_ms");
        for (i, p) in REPORTED_PERCENTILES.iter().enumerate() {
            let k = percentile_key(*p);
            s.latency_percentiles[i].sample_latency =
                log.i64(&format!("result_{k}_percentile_latency_ns"));
            s.latency_percentiles[i].query_latency =
                log.i64(&format!("result_{k}_percentile_per_query_latency_ns"));
            s.token_latency_percentiles[i].sample_latency =
                log.i64(&format!("result_first_token_{k}_percentile_latency_ns"));
            s.tpot_percentiles[i].sample_latency =
                log.i64(&format!("result_time_per_output_token_{k}_percentile_ns"));
        }
        // The target percentile is one of the reported six for every
        // benchmark LoadGen knows; its value is the same array element.
        let target = settings.target_latency_percentile;
        if let Some(i) = REPORTED_PERCENTILES.iter().position(|p| *p == target) {
            s.target_latency_percentile = s.latency_percentiles[i];
            s.token_target_latency_percentile = s.token_latency_percentiles[i];
            s.target_tpot_percentile = s.tpot_percentiles[i];
        }
        let r = &mut s.rates;
        r.samples_per_second = log.f64("result_samples_per_second");
        r.completed_samples_per_sec = log.f64("result_completed_samples_per_sec");
        r.scheduled_samples_per_sec = log.f64("result_scheduled_samples_per_sec");
        r.qps_with_loadgen_overhead = log.f64("result_qps_with_loadgen_overhead");
        r.qps_without_loadgen_overhead = log.f64("result_qps_without_loadgen_overhead");
        r.tokens_per_second = log.f64("result_tokens_per_second");
        r.completed_tokens_per_second = log.f64("result_completed_tokens_per_second");
        r.token_throughput_with_loadgen_overhead =
            log.f64("result_token_throughput_with_loadgen_overhead");
        r.token_throughput = log.f64("result_token_throughput");
        // The times behind the rates: N / rate (N - 1 where LoadGen
        // divides by it), tokens / rate in token mode.
        let n = s.sample_count as f64;
        let since = |count: f64, rate: Option<f64>| rate.filter(|r| *r > 0.0).map(|r| count / r);
        s.max_latency = s.sample_latency_max as f64 / 1e9;
        if settings.scenario == Scenario::Server {
            s.final_query_all_samples_done_time =
                since(n - 1.0, r.completed_samples_per_sec).unwrap_or(0.0);
            s.final_query_scheduled_time =
                since(n - 1.0, r.scheduled_samples_per_sec).unwrap_or(0.0);
        }
        s.final_query_issued_time = since(n - 1.0, r.qps_with_loadgen_overhead)
            .or_else(|| {
                since(
                    s.token_count as f64,
                    r.token_throughput_with_loadgen_overhead,
                )
            })
            .unwrap_or(0.0);

        let invalid_reason = log.text("result_invalid_reason");
        let loadgen_says = |what: &str| {
            if invalid_reason.trim().is_empty() {
                what.to_owned()
            } else {
                format!("{what}: {}", invalid_reason.trim())
            }
        };
        s.push_check_reasons(
            loadgen_says("performance constraints not met"),
            loadgen_says("min duration not met"),
        );
        if !s.loadgen_valid && s.reasons.is_empty() {
            s.reasons.push(loadgen_says("LoadGen's result is INVALID"));
        }
        s.failed_samples = observed.failed_samples.clone();
        if let Some(reason) = failed_samples_reason(&s.failed_samples) {
            s.reasons.push(reason);
        }
        s.interrupted = observed.interrupted;
        if observed.interrupted {
            s.reasons.push(INTERRUPTED_REASON.into());
        }
        s.valid = s.loadgen_valid && s.reasons.is_empty();
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::detail::{LineMeta, render_line, result_entries};
    use crate::results::TokenPerformanceResults;
    use crate::results::tests::settings;

    /// The detail log our own writer makes of a summary.
    fn logged(settings: &EffectiveSettings, s: &PerformanceSummary) -> String {
        let meta = LineMeta {
            is_error: false,
            is_warning: false,
            file: "results.cc",
            line_no: 1,
            pid: 1,
            tid: 1,
        };
        result_entries(settings, s)
            .iter()
            .map(|(k, v)| render_line(k, v, 5, &meta))
            .collect()
    }

    fn observed(s: &PerformanceSummary) -> Observed {
        Observed {
            sample_count: s.sample_count,
            token_count: s.token_count,
            failed_samples: s.failed_samples.clone(),
            interrupted: s.interrupted,
        }
    }

    #[test]
    fn a_server_token_summary_reads_back_from_its_detail_log() {
        let st = settings(Scenario::Server, true);
        let n = 700_i64;
        let pr = PerformanceResult {
            sample_latencies: (0..n).map(|i| 400 + (i * 37) % 900).collect(),
            queries_issued: n as u64,
            final_query_scheduled_time: 2.0,
            final_query_issued_time: 2.0,
            final_query_all_samples_done_time: 2.5,
            token_results: TokenPerformanceResults {
                first_token_latencies: (0..n).map(|i| 100 + (i * 13) % 300).collect(),
                time_per_output_token_arr: (0..n).map(|i| 10 + i % 7).collect(),
                tokens_per_sample: vec![8; n as usize],
            },
            ..PerformanceResult::default()
        };
        let original = PerformanceSummary::compute(&st, &pr);
        let log = DetailLog::parse(&logged(&st, &original));
        let back = PerformanceSummary::from_detail_log(&log, &st, &observed(&original)).unwrap();
        assert_eq!(back.loadgen_valid, original.loadgen_valid);
        assert_eq!(back.valid, original.valid);
        assert_eq!(back.perf_constraints_met, original.perf_constraints_met);
        assert_eq!(back.early_stopping_met, original.early_stopping_met);
        assert_eq!(back.query_count, original.query_count);
        assert_eq!(
            back.overlatency_query_count,
            original.overlatency_query_count
        );
        assert_eq!(back.latency_percentiles, original.latency_percentiles);
        assert_eq!(
            back.token_latency_percentiles,
            original.token_latency_percentiles
        );
        assert_eq!(back.tpot_percentiles, original.tpot_percentiles);
        assert_eq!(
            back.target_latency_percentile,
            original.target_latency_percentile
        );
        assert_eq!(
            (
                back.sample_latency_min,
                back.sample_latency_max,
                back.sample_latency_mean
            ),
            (
                original.sample_latency_min,
                original.sample_latency_max,
                original.sample_latency_mean
            )
        );
        assert_eq!(
            back.first_token_latency_max,
            original.first_token_latency_max
        );
        assert_eq!(
            back.time_per_output_token_max,
            original.time_per_output_token_max
        );
        assert_eq!(
            back.rates.completed_samples_per_sec,
            original.rates.completed_samples_per_sec
        );
        assert_eq!(
            back.rates.completed_tokens_per_second,
            original.rates.completed_tokens_per_second
        );
        assert_eq!(back.primary_metric(true), original.primary_metric(true));
        // The times behind the rates come back from them.
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
        assert!(close(
            back.final_query_all_samples_done_time,
            original.final_query_all_samples_done_time
        ));
        assert_eq!(back.reasons.is_empty(), original.reasons.is_empty());
    }

    #[test]
    fn a_failed_early_stopping_check_reads_back_in_the_same_words() {
        // Every TTFT over its bound: the early-stopping checks fail with
        // LoadGen's multi-line recommendations, which both paths flatten
        // the same way.
        let st = settings(Scenario::Server, true);
        let n = 700_i64;
        let over = 10 * st.server_ttft_latency;
        let pr = PerformanceResult {
            sample_latencies: vec![over; n as usize],
            queries_issued: n as u64,
            final_query_scheduled_time: 2.0,
            final_query_issued_time: 2.0,
            final_query_all_samples_done_time: 2.5,
            token_results: TokenPerformanceResults {
                first_token_latencies: vec![over; n as usize],
                time_per_output_token_arr: vec![10; n as usize],
                tokens_per_sample: vec![8; n as usize],
            },
            ..PerformanceResult::default()
        };
        let original = PerformanceSummary::compute(&st, &pr);
        assert!(!original.early_stopping_met);
        let log = DetailLog::parse(&logged(&st, &original));
        let back = PerformanceSummary::from_detail_log(&log, &st, &observed(&original)).unwrap();
        let early = |s: &PerformanceSummary| {
            s.reasons
                .iter()
                .find(|r| r.starts_with("early stopping not met"))
                .cloned()
        };
        let reason = early(&original).unwrap();
        assert!(!reason.contains('\n') && !reason.contains("  "), "{reason}");
        assert_eq!(early(&back), Some(reason));
    }

    #[test]
    fn an_offline_summary_and_its_failures_read_back() {
        let st = settings(Scenario::Offline, false);
        let pr = PerformanceResult {
            sample_latencies: (1..=100).collect(),
            queries_issued: 1,
            max_latency: 2.0,
            final_query_all_samples_done_time: 2.0,
            failed_samples: BTreeMap::from([(ErrorKind::Timeout, 2)]),
            ..PerformanceResult::default()
        };
        let original = PerformanceSummary::compute(&st, &pr);
        let log = DetailLog::parse(&logged(&st, &original));
        let back = PerformanceSummary::from_detail_log(&log, &st, &observed(&original)).unwrap();
        assert_eq!(
            back.rates.samples_per_second,
            original.rates.samples_per_second
        );
        assert_eq!(back.latency_percentiles, original.latency_percentiles);
        assert_eq!(back.min_duration_met, original.min_duration_met);
        assert_eq!(back.min_queries_met, original.min_queries_met);
        // Failed samples make it INVALID with the same reason line.
        assert!(!back.valid);
        assert!(
            back.reasons
                .contains(&"2 samples failed: timeout 2".to_owned()),
            "{:?}",
            back.reasons
        );
        assert_eq!(
            PerformanceSummary::from_detail_log(&DetailLog::default(), &st, &Observed::default()),
            None
        );
    }

    #[test]
    fn error_lines_are_listed_by_key() {
        let log = DetailLog::parse(concat!(
            ":::MLLOG {\"key\": \"error_runtime\", \"value\": \"boom\", \"metadata\": {\"is_error\": true}}\n",
            "not a log line\n",
            ":::MLLOG {\"key\": \"result_validity\", \"value\": \"VALID\", \"metadata\": {\"is_error\": false}}\n",
        ));
        assert_eq!(log.errors, ["error_runtime"]);
        assert_eq!(
            log.get("result_validity").and_then(Value::as_str),
            Some("VALID")
        );
    }
}
