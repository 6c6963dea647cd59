//! `mlperf_log_detail.txt`: `:::MLLOG {...}` lines and the key sets LoadGen
//! logs for settings and results, in LoadGen's order.

use std::fmt::Write as _;

use crate::format::cpp_double;
use crate::results::{PerformanceSummary, double_to_string};
use crate::settings::{EffectiveSettings, Scenario, TestSettings};

/// A detail-log value, formatted as LoadGen's `ArgValueTransform` does.
#[derive(Debug, Clone, PartialEq)]
pub enum DetailValue {
    /// A quoted string.
    Str(String),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer (seeds need all 64 bits).
    UInt(u64),
    /// A double, printed like `std::ostream << double` (`83.9006`, `6.90935e-09`).
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `[1,2,3]`.
    List(Vec<u64>),
    /// `{"k":"v",...}`: LoadGen's `std::map<std::string, std::string>`
    /// (`loadgen_file_sha1`), in the given order.
    Map(Vec<(String, String)>),
}

impl DetailValue {
    /// Appends the value's JSON text.
    pub fn render(&self, out: &mut String) {
        match self {
            DetailValue::Str(s) => {
                out.push('"');
                escape_json_into(s, out);
                out.push('"');
            }
            DetailValue::Int(v) => {
                let _ = write!(out, "{v}");
            }
            DetailValue::UInt(v) => {
                let _ = write!(out, "{v}");
            }
            DetailValue::Float(v) => out.push_str(&cpp_double(*v)),
            DetailValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            DetailValue::List(items) => {
                // LoadGen prints an empty vector as "]" (it trims the "[");
                // "[]" keeps the line valid JSON.
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{v}");
                }
                out.push(']');
            }
            DetailValue::Map(items) => {
                // LoadGen writes `{"k":"v",...}` without spaces; like `List`,
                // an empty map stays valid JSON (`{}`).
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    escape_json_into(k, out);
                    out.push_str("\":\"");
                    escape_json_into(v, out);
                    out.push('"');
                }
                out.push('}');
            }
        }
    }
}

impl From<&str> for DetailValue {
    fn from(s: &str) -> Self {
        DetailValue::Str(s.to_owned())
    }
}
impl From<String> for DetailValue {
    fn from(s: String) -> Self {
        DetailValue::Str(s)
    }
}
impl From<u64> for DetailValue {
    fn from(v: u64) -> Self {
        DetailValue::UInt(v)
    }
}
impl From<i64> for DetailValue {
    fn from(v: i64) -> Self {
        DetailValue::Int(v)
    }
}
impl From<i32> for DetailValue {
    fn from(v: i32) -> Self {
        DetailValue::Int(i64::from(v))
    }
}
impl From<f64> for DetailValue {
    fn from(v: f64) -> Self {
        DetailValue::Float(v)
    }
}
impl From<bool> for DetailValue {
    fn from(v: bool) -> Self {
        DetailValue::Bool(v)
    }
}

/// JSON string escaping. LoadGen quotes strings without escaping them (only
/// its git log goes through `EscapeStringJson`); escaping keeps every line
/// parseable and changes nothing for ordinary messages.
pub fn escape_json_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Where a line came from, for the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMeta {
    /// `is_error`.
    pub is_error: bool,
    /// `is_warning`.
    pub is_warning: bool,
    /// Source file name (base name).
    pub file: &'static str,
    /// Source line.
    pub line_no: u32,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u64,
}

/// Renders one detail line, newline included. `time_ns` is measured from
/// the log's origin.
pub fn render_line(key: &str, value: &DetailValue, time_ns: u64, meta: &LineMeta) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(":::MLLOG {\"key\": \"");
    escape_json_into(key, &mut out);
    out.push_str("\", \"value\": ");
    value.render(&mut out);
    let _ = writeln!(
        out,
        ", \"time_ms\": {}.{:06}, \"namespace\": \"mlperf::logging\", \"event_type\": \"POINT_IN_TIME\", \"metadata\": {{\"is_error\": {}, \"is_warning\": {}, \"file\": \"{}\", \"line_no\": {}, \"pid\": {}, \"tid\": {}}}}}",
        time_ns / 1_000_000,
        time_ns % 1_000_000,
        meta.is_error,
        meta.is_warning,
        meta.file,
        meta.line_no,
        meta.pid,
        meta.tid
    );
    out
}

/// A key and its value.
pub type Entry = (String, DetailValue);

fn e(key: &str, value: impl Into<DetailValue>) -> Entry {
    (key.to_owned(), value.into())
}

/// `LogRequestedTestSettings`: the `requested_*` keys for a scenario.
pub fn requested_entries(s: &TestSettings) -> Vec<Entry> {
    let mut v = vec![
        e("requested_scenario", s.scenario.as_str()),
        e("requested_test_mode", s.mode.as_str()),
    ];
    match s.scenario {
        Scenario::SingleStream => {
            v.push(e(
                "requested_single_stream_expected_latency_ns",
                s.single_stream_expected_latency_ns,
            ));
            v.push(e(
                "requested_single_stream_target_latency_percentile",
                s.single_stream_target_latency_percentile,
            ));
        }
        Scenario::MultiStream => {
            v.push(e(
                "requested_multi_stream_expected_latency_ns",
                s.multi_stream_expected_latency_ns,
            ));
            v.push(e(
                "requested_multi_stream_target_latency_percentile",
                s.multi_stream_target_latency_percentile,
            ));
            v.push(e(
                "requested_multi_stream_samples_per_query",
                s.multi_stream_samples_per_query,
            ));
        }
        Scenario::Server => {
            v.push(e("requested_server_target_qps", s.server_target_qps));
            v.push(e(
                "requested_server_target_latency_ns",
                s.server_target_latency_ns,
            ));
            v.push(e(
                "requested_server_target_latency_percentile",
                s.server_target_latency_percentile,
            ));
            v.push(e(
                "requested_server_coalesce_queries",
                s.server_coalesce_queries,
            ));
            v.push(e(
                "requested_server_find_peak_qps_decimals_of_precision",
                s.server_find_peak_qps_decimals_of_precision,
            ));
            v.push(e(
                "requested_server_find_peak_qps_boundary_step_size",
                s.server_find_peak_qps_boundary_step_size,
            ));
            v.push(e(
                "requested_server_max_async_queries",
                s.server_max_async_queries,
            ));
            v.push(e(
                "requested_server_num_issue_query_threads",
                s.server_num_issue_query_threads,
            ));
        }
        Scenario::Offline => {
            v.push(e("requested_offline_expected_qps", s.offline_expected_qps));
        }
    }
    v.extend([
        e("requested_min_duration_ms", s.min_duration_ms),
        e("requested_max_duration_ms", s.max_duration_ms),
        e("requested_min_query_count", s.min_query_count),
        e("requested_max_query_count", s.max_query_count),
        e("requested_qsl_rng_seed", s.qsl_rng_seed),
        e("requested_sample_index_rng_seed", s.sample_index_rng_seed),
        e("requested_schedule_rng_seed", s.schedule_rng_seed),
        e("requested_accuracy_log_rng_seed", s.accuracy_log_rng_seed),
        e(
            "requested_accuracy_log_probability",
            s.accuracy_log_probability,
        ),
        e(
            "requested_accuracy_log_sampling_target",
            s.accuracy_log_sampling_target,
        ),
        e("requested_print_timestamps", s.print_timestamps),
        e(
            "requested_performance_issue_unique",
            s.performance_issue_unique,
        ),
        e("requested_performance_issue_same", s.performance_issue_same),
        e(
            "requested_performance_issue_same_index",
            s.performance_issue_same_index,
        ),
        e(
            "requested_performance_sample_count_override",
            s.performance_sample_count_override,
        ),
        e(
            "requested_accuracy_sample_count_override",
            s.accuracy_sample_count_override,
        ),
        e(
            "requested_sample_concatenate_permutation",
            s.sample_concatenate_permutation,
        ),
    ]);
    if s.use_token_latencies {
        v.push(e("requested_use_token_latencies", s.use_token_latencies));
        if s.scenario != Scenario::Offline {
            v.push(e("requested_server_ttft_latency", s.server_ttft_latency));
            v.push(e("requested_server_tpot_latency", s.server_tpot_latency));
        }
    }
    v
}

/// `LogEffectiveSettings`: the `effective_*` keys.
pub fn effective_entries(s: &EffectiveSettings) -> Vec<Entry> {
    vec![
        e("effective_scenario", s.scenario.as_str()),
        e("effective_test_mode", s.mode.as_str()),
        e("effective_samples_per_query", s.samples_per_query),
        e("effective_target_qps", s.target_qps),
        e("effective_target_latency_ns", s.target_latency_ns),
        e(
            "effective_target_latency_percentile",
            s.target_latency_percentile,
        ),
        e("effective_max_async_queries", s.max_async_queries),
        e("effective_target_duration_ms", s.target_duration_ms),
        e("effective_min_duration_ms", s.min_duration_ms),
        e("effective_max_duration_ms", s.max_duration_ms),
        e("effective_min_query_count", s.min_query_count),
        e("effective_max_query_count", s.max_query_count),
        e("effective_min_sample_count", s.min_sample_count),
        e("effective_qsl_rng_seed", s.qsl_rng_seed),
        e("effective_sample_index_rng_seed", s.sample_index_rng_seed),
        e("effective_schedule_rng_seed", s.schedule_rng_seed),
        e("effective_accuracy_log_rng_seed", s.accuracy_log_rng_seed),
        e(
            "effective_accuracy_log_probability",
            s.accuracy_log_probability,
        ),
        e(
            "effective_accuracy_log_sampling_target",
            s.accuracy_log_sampling_target,
        ),
        e("effective_print_timestamps", s.print_timestamps),
        e(
            "effective_performance_issue_unique",
            s.performance_issue_unique,
        ),
        e("effective_performance_issue_same", s.performance_issue_same),
        e(
            "effective_performance_issue_same_index",
            s.performance_issue_same_index,
        ),
        e(
            "effective_performance_sample_count",
            s.performance_sample_count,
        ),
        e("effective_accuracy_sample_count", s.accuracy_sample_count),
        e(
            "effective_sample_concatenate_permutation",
            s.sample_concatenate_permutation,
        ),
    ]
}

/// `PerformanceSummary::LogDetail`: the result keys, up to but excluding
/// `num_errors` (whose value the writer knows). `result_validity` carries
/// our verdict; `result_invalid_reason` appends our extra reasons to
/// LoadGen's text.
///
/// Mirrors LoadGen 6.0.17's `PerformanceSummary::LogDetail` (results.cc) line
/// for line; kept in one piece so the two read side by side.
pub fn result_entries(settings: &EffectiveSettings, s: &PerformanceSummary) -> Vec<Entry> {
    let mut v = vec![e("result_validity", s.validity_str())];
    if settings.scenario == Scenario::Server {
        v.push(e("result_perf_constraints_met", s.perf_constraints_met));
    }
    v.push(e("result_min_duration_met", s.min_duration_met));
    v.push(e("result_min_queries_met", s.min_queries_met));
    v.push(e("early_stopping_met", s.early_stopping_met));
    if !s.valid {
        let mut rec = String::new();
        if !s.perf_constraints_met {
            rec += &s.perf_constraints_recommendation;
            rec.push(' ');
        }
        if !s.min_duration_met {
            rec += &s.min_duration_recommendation;
            rec.push(' ');
        }
        if !s.min_queries_met {
            rec += "The test exited early, before enough queries were issued.";
        }
        for extra in extension_reasons(s) {
            if !rec.is_empty() && !rec.ends_with(' ') {
                rec.push(' ');
            }
            rec += &extra;
            rec.push('.');
        }
        v.push(e("result_invalid_reason", rec.replace('\n', " ")));
    }
    if !settings.use_token_latencies {
        v.push(e(
            "early_stopping_result",
            s.early_stopping_recommendation.replace('\n', " "),
        ));
    } else {
        v.push(e(
            "early_stopping_ttft_result",
            s.early_stopping_ttft_recommendation.replace('\n', " "),
        ));
        v.push(e(
            "early_stopping_tpot_result",
            s.early_stopping_tpot_recommendation.replace('\n', " "),
        ));
    }
    v.push(e("result_query_count", s.query_count));
    if settings.scenario == Scenario::Server {
        v.push(e(
            "result_overlatency_query_count",
            s.overlatency_query_count,
        ));
    }
    let r = &s.rates;
    let f = |x: Option<f64>| x.unwrap_or(0.0);
    match settings.scenario {
        Scenario::SingleStream => {
            v.push(e(
                "result_qps_with_loadgen_overhead",
                f(r.qps_with_loadgen_overhead),
            ));
            v.push(e(
                "result_qps_without_loadgen_overhead",
                f(r.qps_without_loadgen_overhead),
            ));
            v.push(e("early_stopping_latency_ss", s.early_stopping_latency_ss));
            v.push(e("early_stopping_latency_ms", s.early_stopping_latency_ms));
        }
        Scenario::MultiStream => {
            v.push(e("result_min_query_latency_ns", s.query_latency_min));
            v.push(e("result_max_query_latency_ns", s.query_latency_max));
            v.push(e("result_mean_query_latency_ns", s.query_latency_mean));
            for lp in &s.latency_percentiles {
                v.push(e(
                    &format!(
                        "result_{}_percentile_per_query_latency_ns",
                        double_to_string(lp.percentile * 100.0, 2)
                    ),
                    lp.query_latency,
                ));
            }
            v.push(e("early_stopping_latency_ms", s.early_stopping_latency_ms));
        }
        Scenario::Server => {
            v.push(e(
                "result_scheduled_samples_per_sec",
                f(r.scheduled_samples_per_sec),
            ));
            v.push(e(
                "result_completed_samples_per_sec",
                f(r.completed_samples_per_sec),
            ));
        }
        Scenario::Offline => {
            v.push(e("result_samples_per_second", f(r.samples_per_second)));
        }
    }
    v.push(e("result_min_latency_ns", s.sample_latency_min));
    v.push(e("result_max_latency_ns", s.sample_latency_max));
    v.push(e("result_mean_latency_ns", s.sample_latency_mean));
    for lp in &s.latency_percentiles {
        v.push(e(
            &format!(
                "result_{}_percentile_latency_ns",
                double_to_string(lp.percentile * 100.0, 2)
            ),
            lp.sample_latency,
        ));
    }
    if settings.use_token_latencies {
        if settings.scenario != Scenario::Offline {
            v.push(e(
                "result_first_token_min_latency_ns",
                s.first_token_latency_min,
            ));
            v.push(e(
                "result_first_token_max_latency_ns",
                s.first_token_latency_max,
            ));
            v.push(e(
                "result_first_token_mean_latency_ns",
                s.first_token_latency_mean,
            ));
            for lp in &s.token_latency_percentiles {
                v.push(e(
                    &format!(
                        "result_first_token_{}_percentile_latency_ns",
                        double_to_string(lp.percentile * 100.0, 2)
                    ),
                    lp.sample_latency,
                ));
            }
            v.push(e(
                "result_token_throughput_with_loadgen_overhead",
                f(r.token_throughput_with_loadgen_overhead),
            ));
            v.push(e("result_token_throughput", f(r.token_throughput)));
            for lp in &s.tpot_percentiles {
                v.push(e(
                    &format!(
                        "result_time_per_output_token_{}_percentile_ns",
                        double_to_string(lp.percentile * 100.0, 2)
                    ),
                    lp.sample_latency,
                ));
            }
            v.push(e(
                "result_time_to_output_token_min",
                s.time_per_output_token_min,
            ));
            v.push(e(
                "result_time_to_output_token_max",
                s.time_per_output_token_max,
            ));
            v.push(e(
                "result_time_to_output_token_mean",
                s.time_per_output_token_mean,
            ));
            v.push(e(
                "result_completed_tokens_per_second",
                f(r.completed_tokens_per_second),
            ));
        } else {
            v.push(e("result_tokens_per_second", f(r.tokens_per_second)));
        }
    }
    if settings.infer_token_latencies {
        let factor = settings.token_latency_scaling_factor;
        match settings.scenario {
            Scenario::Server => v.push(e(
                "result_inferred_completed_tokens_per_second",
                (s.sample_count.wrapping_sub(1).wrapping_mul(factor as u64)) as f64
                    / s.final_query_all_samples_done_time,
            )),
            Scenario::Offline => v.push(e(
                "result_inferred_tokens_per_second",
                (s.sample_count.wrapping_mul(factor as u64)) as f64 / s.max_latency,
            )),
            Scenario::SingleStream | Scenario::MultiStream => {}
        }
    }
    v
}

/// Our reasons that LoadGen has no notion of (failed samples, interruption).
pub(crate) fn extension_reasons(s: &PerformanceSummary) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(r) = crate::results::failed_samples_reason(&s.failed_samples) {
        v.push(r);
    }
    if s.interrupted {
        v.push(crate::results::INTERRUPTED_REASON.to_owned());
    }
    v
}
