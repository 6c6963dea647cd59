//! `mlperf_log_summary.txt`, laid out exactly as LoadGen 6.0.17's
//! `PerformanceSummary::LogSummary` and `TestSettingsInternal::LogSummary`.

use std::io::{self, Write};

use crate::format::cpp_double;
use crate::results::{PerformanceSummary, double_to_string};
use crate::settings::{EffectiveSettings, Scenario};

const RULE: &str = "================================================";

/// Writes the summary's results and "Test Parameters Used" sections (what
/// LoadGen writes at the end of a performance run). The warnings/errors
/// trailer comes from [`write_trailer`] when logging stops.
///
/// Mirrors LoadGen 6.0.17's `PerformanceSummary::LogSummary` (results.cc) and
/// `TestSettingsInternal::LogSummary` (test_settings_internal.cc) line for
/// line; kept in one piece so the two read side by side.
pub fn write_summary(
    w: &mut impl Write,
    sut_name: &str,
    settings: &EffectiveSettings,
    s: &PerformanceSummary,
) -> io::Result<()> {
    let tokens = settings.use_token_latencies;
    let r = &s.rates;
    let f = |x: Option<f64>| x.unwrap_or(0.0);
    writeln!(w, "{RULE}\nMLPerf Results Summary\n{RULE}")?;
    writeln!(w, "SUT name : {sut_name}")?;
    writeln!(w, "Scenario : {}", settings.scenario)?;
    writeln!(w, "Mode     : {}", settings.mode)?;

    match settings.scenario {
        Scenario::SingleStream => writeln!(
            w,
            "{}th percentile latency (ns) : {}",
            double_to_string(s.target_latency_percentile.percentile * 100.0, 1),
            s.target_latency_percentile.sample_latency
        )?,
        Scenario::MultiStream => writeln!(
            w,
            "{}th percentile latency (ns) : {}",
            double_to_string(s.target_latency_percentile.percentile * 100.0, 1),
            s.target_latency_percentile.query_latency
        )?,
        Scenario::Server => writeln!(
            w,
            "Completed samples per second    : {}",
            double_to_string(f(r.completed_samples_per_sec), 2)
        )?,
        Scenario::Offline => writeln!(
            w,
            "Samples per second: {}",
            cpp_double(f(r.samples_per_second))
        )?,
    }

    if tokens {
        match settings.scenario {
            Scenario::SingleStream | Scenario::MultiStream => writeln!(
                w,
                "{}th first token percentile latency (ns) : {}",
                double_to_string(s.token_target_latency_percentile.percentile * 100.0, 1),
                s.token_target_latency_percentile.sample_latency
            )?,
            Scenario::Offline => writeln!(
                w,
                "Tokens per second: {}",
                cpp_double(f(r.tokens_per_second))
            )?,
            Scenario::Server => writeln!(
                w,
                "Completed tokens per second: {}",
                double_to_string(f(r.completed_tokens_per_second), 2)
            )?,
        }
    }

    if settings.infer_token_latencies {
        let factor = settings.token_latency_scaling_factor as u64;
        match settings.scenario {
            Scenario::Offline => writeln!(
                w,
                "Tokens per second (inferred): {}",
                cpp_double(factor.wrapping_mul(s.sample_count) as f64 / s.max_latency)
            )?,
            Scenario::Server => writeln!(
                w,
                "Completed tokens per second (inferred): {}",
                double_to_string(
                    factor.wrapping_mul(s.sample_count.wrapping_sub(1)) as f64
                        / s.final_query_all_samples_done_time,
                    2
                )
            )?,
            Scenario::SingleStream | Scenario::MultiStream => {}
        }
    }

    let yes_no = |b: bool| if b { "Yes" } else { "NO" };
    writeln!(w, "Result is : {}", s.validity_str())?;
    if settings.scenario == Scenario::Server {
        writeln!(
            w,
            "  Performance constraints satisfied : {}",
            yes_no(s.perf_constraints_met)
        )?;
    }
    writeln!(
        w,
        "  Min duration satisfied : {}",
        yes_no(s.min_duration_met)
    )?;
    writeln!(w, "  Min queries satisfied : {}", yes_no(s.min_queries_met))?;
    writeln!(
        w,
        "  Early stopping satisfied: {}",
        yes_no(s.early_stopping_met)
    )?;
    if !s.valid {
        writeln!(w, "Recommendations:")?;
        if !s.perf_constraints_met {
            writeln!(w, " * {}", s.perf_constraints_recommendation)?;
        }
        if !s.min_duration_met {
            writeln!(w, " * {}", s.min_duration_recommendation)?;
        }
        if !s.min_queries_met {
            writeln!(w, "{}", crate::results::MIN_QUERIES_RECOMMENDATION)?;
        }
        for reason in super::detail::extension_reasons(s) {
            writeln!(w, " * {reason}")?;
        }
    }
    if settings.scenario != Scenario::Offline {
        if !tokens {
            writeln!(w, "Early Stopping Result:")?;
            writeln!(w, "{}", s.early_stopping_recommendation)?;
        } else {
            writeln!(w, "TTFT Early Stopping Result:")?;
            writeln!(w, "{}", s.early_stopping_ttft_recommendation)?;
            writeln!(w, "TPOT Early Stopping Result:")?;
            writeln!(w, "{}", s.early_stopping_tpot_recommendation)?;
        }
    }

    writeln!(w, "\n{RULE}\nAdditional Stats\n{RULE}")?;
    match settings.scenario {
        Scenario::SingleStream => {
            writeln!(
                w,
                "QPS w/ loadgen overhead         : {}",
                double_to_string(f(r.qps_with_loadgen_overhead), 2)
            )?;
            writeln!(
                w,
                "QPS w/o loadgen overhead        : {}",
                double_to_string(f(r.qps_without_loadgen_overhead), 2)
            )?;
            writeln!(w)?;
        }
        Scenario::Server => writeln!(
            w,
            "Scheduled samples per second : {}",
            double_to_string(f(r.scheduled_samples_per_sec), 2)
        )?,
        Scenario::MultiStream => {
            writeln!(w, "Per-query latency:  ")?;
            writeln!(
                w,
                "Min latency (ns)                : {}",
                s.query_latency_min
            )?;
            writeln!(
                w,
                "Max latency (ns)                : {}",
                s.query_latency_max
            )?;
            writeln!(
                w,
                "Mean latency (ns)               : {}",
                s.query_latency_mean
            )?;
            for lp in &s.latency_percentiles {
                writeln!(
                    w,
                    "{} percentile latency (ns)   : {}",
                    double_to_string(lp.percentile * 100.0, 2),
                    lp.query_latency
                )?;
            }
        }
        Scenario::Offline => {}
    }
    if settings.scenario != Scenario::MultiStream {
        writeln!(
            w,
            "Min latency (ns)                : {}",
            s.sample_latency_min
        )?;
        writeln!(
            w,
            "Max latency (ns)                : {}",
            s.sample_latency_max
        )?;
        writeln!(
            w,
            "Mean latency (ns)               : {}",
            s.sample_latency_mean
        )?;
        for lp in &s.latency_percentiles {
            writeln!(
                w,
                "{} percentile latency (ns)   : {}",
                double_to_string(lp.percentile * 100.0, 2),
                lp.sample_latency
            )?;
        }
    }
    if tokens {
        writeln!(w)?;
        match settings.scenario {
            Scenario::SingleStream => {
                let tps_w_lg = s.token_count as f64 / s.final_query_issued_time;
                writeln!(
                    w,
                    "TPS w/ loadgen overhead         : {}",
                    double_to_string(tps_w_lg, 2)
                )?;
                writeln!(
                    w,
                    "TPS w/o loadgen overhead        : {}",
                    double_to_string(f(r.tps_without_loadgen_overhead), 2)
                )?;
            }
            Scenario::Server => writeln!(
                w,
                "Completed tokens per second                 : {}",
                double_to_string(f(r.completed_tokens_per_second), 2)
            )?,
            Scenario::MultiStream | Scenario::Offline => {}
        }
        if settings.scenario != Scenario::Offline {
            writeln!(
                w,
                "Min First Token latency (ns)                : {}",
                s.first_token_latency_min
            )?;
            writeln!(
                w,
                "Max First Token latency (ns)                : {}",
                s.first_token_latency_max
            )?;
            writeln!(
                w,
                "Mean First Token latency (ns)               : {}",
                s.first_token_latency_mean
            )?;
            for lp in &s.token_latency_percentiles {
                writeln!(
                    w,
                    "{} percentile first token latency (ns)   : {}",
                    double_to_string(lp.percentile * 100.0, 2),
                    lp.sample_latency
                )?;
            }
            writeln!(w)?;
            writeln!(
                w,
                "Min Time per Output Token (ns)                : {}",
                s.time_per_output_token_min
            )?;
            writeln!(
                w,
                "Max Time per Output Token (ns)                : {}",
                s.time_per_output_token_max
            )?;
            writeln!(
                w,
                "Mean Time per Output Token (ns)               : {}",
                s.time_per_output_token_mean
            )?;
            for lp in &s.tpot_percentiles {
                writeln!(
                    w,
                    "{} percentile time to output token (ns)   : {}",
                    double_to_string(lp.percentile * 100.0, 2),
                    lp.sample_latency
                )?;
            }
        }
    }

    writeln!(w, "\n{RULE}\nTest Parameters Used\n{RULE}")?;
    write_test_parameters(w, settings)
}

/// `TestSettingsInternal::LogSummary`: the "Test Parameters Used" lines.
pub fn write_test_parameters(w: &mut impl Write, s: &EffectiveSettings) -> io::Result<()> {
    let b = |v: bool| u8::from(v);
    writeln!(w, "samples_per_query : {}", s.samples_per_query)?;
    writeln!(w, "target_qps : {}", cpp_double(s.target_qps))?;
    if !s.use_token_latencies {
        writeln!(w, "target_latency (ns): {}", s.target_latency_ns)?;
    } else {
        writeln!(w, "ttft_latency (ns): {}", s.server_ttft_latency)?;
        writeln!(w, "tpot_latency (ns): {}", s.server_tpot_latency)?;
    }
    writeln!(w, "max_async_queries : {}", s.max_async_queries)?;
    writeln!(w, "min_duration (ms): {}", s.min_duration_ms)?;
    writeln!(w, "max_duration (ms): {}", s.max_duration_ms)?;
    writeln!(w, "min_query_count : {}", s.min_query_count)?;
    writeln!(w, "max_query_count : {}", s.max_query_count)?;
    writeln!(w, "qsl_rng_seed : {}", s.qsl_rng_seed)?;
    writeln!(w, "sample_index_rng_seed : {}", s.sample_index_rng_seed)?;
    writeln!(w, "schedule_rng_seed : {}", s.schedule_rng_seed)?;
    writeln!(w, "accuracy_log_rng_seed : {}", s.accuracy_log_rng_seed)?;
    writeln!(
        w,
        "accuracy_log_probability : {}",
        cpp_double(s.accuracy_log_probability)
    )?;
    writeln!(
        w,
        "accuracy_log_sampling_target : {}",
        s.accuracy_log_sampling_target
    )?;
    writeln!(w, "print_timestamps : {}", b(s.print_timestamps))?;
    writeln!(
        w,
        "performance_issue_unique : {}",
        b(s.performance_issue_unique)
    )?;
    writeln!(
        w,
        "performance_issue_same : {}",
        b(s.performance_issue_same)
    )?;
    writeln!(
        w,
        "performance_issue_same_index : {}",
        s.performance_issue_same_index
    )?;
    writeln!(
        w,
        "performance_sample_count : {}",
        s.performance_sample_count
    )?;
    writeln!(w, "accuracy_sample_count : {}", s.accuracy_sample_count)?;
    if s.sample_concatenate_permutation {
        writeln!(
            w,
            "WARNING: sample_concatenate_permutation was set to true. \n\
             Generated samples per query might be different as the one in the setting.\n\
             Check the generated_samples_per_query line in the detailed log for the real\n\
             samples_per_query value"
        )?;
    }
    Ok(())
}

/// The trailer LoadGen writes when logging stops: warning and error counts.
pub fn write_trailer(w: &mut impl Write, warnings: u64, errors: u64) -> io::Result<()> {
    match warnings {
        0 => writeln!(w, "\nNo warnings encountered during test.")?,
        1 => writeln!(w, "\n1 warning encountered. See detailed log.")?,
        n => writeln!(w, "\n{n} warnings encountered. See detailed log.")?,
    }
    match errors {
        0 => writeln!(w, "\nNo errors encountered during test."),
        1 => writeln!(w, "\n1 ERROR encountered. See detailed log."),
        n => writeln!(w, "\n{n} ERRORS encountered. See detailed log."),
    }
}
