//! The one-screen summary printed at the end of `harness run`.

use std::io::Write;
use std::path::Path;

use loadgen::{Phase, TestOutcome};

use crate::hooks::TestVerdict;

/// The figures of a run that sweeps and comparisons tabulate, from the
/// performance phase that stands for the test.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyMetrics {
    /// Target QPS the phase ran at.
    pub target_qps: f64,
    /// Completed samples per second over the phase.
    pub samples_per_s: f64,
    /// Output tokens per second over the phase.
    pub output_tokens_per_s: f64,
    /// Failed samples.
    pub failed: u64,
    /// Latency percentiles, ms.
    pub latency_p50_ms: Option<f64>,
    /// Latency p99, ms.
    pub latency_p99_ms: Option<f64>,
    /// TTFT p50, ms.
    pub ttft_p50_ms: Option<f64>,
    /// TTFT p99, ms.
    pub ttft_p99_ms: Option<f64>,
    /// TPOT p50, ms.
    pub tpot_p50_ms: Option<f64>,
    /// TPOT p99, ms.
    pub tpot_p99_ms: Option<f64>,
}

impl KeyMetrics {
    /// The figures of `outcome`'s reported performance phase (defaults for
    /// an accuracy-only test).
    pub fn of(outcome: &TestOutcome) -> KeyMetrics {
        let Some(phase) = outcome.performance() else {
            return KeyMetrics::default();
        };
        let r = &phase.measurements.result;
        let duration = r.final_query_all_samples_done_time.max(r.max_latency);
        let per_s = |n: f64| if duration > 0.0 { n / duration } else { 0.0 };
        let pct = |values: &[i64], p: f64| {
            let mut sorted = values.to_vec();
            sorted.sort_unstable();
            percentile(&sorted, p).map(|ns| ns as f64 / 1e6)
        };
        let t = &r.token_results;
        KeyMetrics {
            target_qps: phase.settings.target_qps,
            samples_per_s: per_s(r.sample_latencies.len() as f64),
            output_tokens_per_s: per_s(t.tokens_per_sample.iter().sum::<i64>() as f64),
            failed: r.failed_samples.values().sum(),
            latency_p50_ms: pct(&r.sample_latencies, 0.5),
            latency_p99_ms: pct(&r.sample_latencies, 0.99),
            ttft_p50_ms: pct(&t.first_token_latencies, 0.5),
            ttft_p99_ms: pct(&t.first_token_latencies, 0.99),
            tpot_p50_ms: pct(&t.time_per_output_token_arr, 0.5),
            tpot_p99_ms: pct(&t.time_per_output_token_arr, 0.99),
        }
    }
}

/// LoadGen's percentile: `sorted[floor(N * p)]`.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[reports::stats::loadgen_index(sorted.len(), p)])
}

fn ms(ns: Option<i64>) -> String {
    ns.map_or_else(|| "-".to_owned(), |ns| format!("{:.2}", ns as f64 / 1e6))
}

fn row(out: &mut dyn Write, name: &str, values: &[i64]) -> std::io::Result<()> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    writeln!(
        out,
        "  {name:<22} {:>10} {:>10} {:>10} {:>10}",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.9)),
        ms(percentile(&sorted, 0.99)),
        ms(sorted.last().copied()),
    )
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Renders the summary of a finished run.
pub fn render(
    out: &mut dyn Write,
    dir: &Path,
    manifest: &rundir::RunManifest,
    outcome: &TestOutcome,
    verdict: &TestVerdict,
    loadgen: Option<&loadgen::results::PerformanceSummary>,
) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "{} {} {} against {}",
        manifest.model,
        manifest.scenario,
        manifest.mode,
        manifest.backends.join(", ")
    )?;
    if let Some(search) = &outcome.find_peak {
        for step in &search.steps {
            writeln!(out, "  find-peak: {step}")?;
        }
        match search.peak_qps {
            Some(qps) => writeln!(out, "  peak target QPS: {qps}")?,
            None => writeln!(
                out,
                "  no passing QPS: the base target fails its latency limits"
            )?,
        }
    }
    for phase in &outcome.phases {
        let m = &phase.measurements;
        let failed: u64 = m.result.failed_samples.values().sum();
        writeln!(
            out,
            "{} phase: {} samples in {} queries, {} failed",
            phase.phase, m.samples_issued, m.queries_issued, failed
        )?;
        for (kind, n) in &m.result.failed_samples {
            writeln!(out, "  errors: {kind} {n}")?;
        }
        if phase.phase != Phase::Performance {
            continue;
        }
        let r = &m.result;
        let duration = r.final_query_all_samples_done_time.max(r.max_latency);
        let tokens: i64 = r.token_results.tokens_per_sample.iter().sum();
        if duration > 0.0 {
            writeln!(
                out,
                "  target QPS {:.2}; duration {:.2} s; {:.2} samples/s; {:.1} output tokens/s",
                phase.settings.target_qps,
                duration,
                r.sample_latencies.len() as f64 / duration,
                tokens as f64 / duration,
            )?;
        }
        writeln!(
            out,
            "  {:<22} {:>10} {:>10} {:>10} {:>10}",
            "(ms)", "p50", "p90", "p99", "max"
        )?;
        row(out, "latency", &r.sample_latencies)?;
        if !r.token_results.first_token_latencies.is_empty() {
            row(
                out,
                "time to first token",
                &r.token_results.first_token_latencies,
            )?;
            row(
                out,
                "time per output token",
                &r.token_results.time_per_output_token_arr,
            )?;
        }
        if let Some(delay) = &m.issue_delay {
            writeln!(
                out,
                "  issue lateness: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
                delay.p50_ns as f64 / 1e3,
                delay.p99_ns as f64 / 1e3,
                delay.max_ns as f64 / 1e3
            )?;
        }
    }
    if let Some(summary) = loadgen {
        let use_tokens = outcome
            .performance()
            .is_some_and(|p| p.settings.use_token_latencies);
        let (key, value) = summary.primary_metric(use_tokens);
        writeln!(
            out,
            "LoadGen: {key} = {value:.2}; min duration {}, min queries {}, latency constraints {}, early stopping {}",
            met(summary.min_duration_met),
            met(summary.min_queries_met),
            met(summary.perf_constraints_met),
            met(summary.early_stopping_met),
        )?;
    }
    if verdict.valid {
        writeln!(out, "Result: VALID")?;
    } else {
        writeln!(out, "Result: INVALID")?;
        for reason in &verdict.reasons {
            writeln!(out, "  - {reason}")?;
        }
    }
    writeln!(out, "Run directory: {}", dir.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_index_like_loadgen() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.5), Some(6));
        assert_eq!(percentile(&v, 0.99), Some(10));
        assert_eq!(percentile(&v, 0.9), Some(10));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
