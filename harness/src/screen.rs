//! The one-screen summary printed at the end of `harness run`. Every figure
//! on it is read from the run's [`reports::Summary`] (its `figures`, the
//! registry in [`reports::figures`]), the same values summary.json, the
//! history and report.html hold.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use loadgen::TestOutcome;
use reports::Summary;

/// The figures of a run that sweeps tabulate (sweep.json, sweep.csv),
/// from the run's figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyMetrics {
    /// Target QPS the phase ran at.
    pub target_qps: f64,
    /// `samples_per_s` (LoadGen's throughput).
    pub samples_per_s: f64,
    /// `output_tokens_per_s` (LoadGen's token throughput).
    pub output_tokens_per_s: f64,
    /// Failed samples.
    pub failed: u64,
    /// Latency p50, ms.
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
    /// The sweep's columns from a run's figures (missing ones are 0 or
    /// absent, as for an accuracy-only run).
    pub fn from_figures(figures: &BTreeMap<String, f64>) -> KeyMetrics {
        let get = |name: &str| figures.get(name).copied();
        KeyMetrics {
            target_qps: get("target_qps").unwrap_or(0.0),
            samples_per_s: get("samples_per_s").unwrap_or(0.0),
            output_tokens_per_s: get("output_tokens_per_s").unwrap_or(0.0),
            failed: get("failed").unwrap_or(0.0) as u64,
            latency_p50_ms: get("latency_p50_ms"),
            latency_p99_ms: get("latency_p99_ms"),
            ttft_p50_ms: get("ttft_p50_ms"),
            ttft_p99_ms: get("ttft_p99_ms"),
            tpot_p50_ms: get("tpot_p50_ms"),
            tpot_p99_ms: get("tpot_p99_ms"),
        }
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn ms(figures: &BTreeMap<String, f64>, name: &str) -> String {
    figures
        .get(name)
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The figures of the reported performance phase: throughput, the latency
/// table, issue lateness.
fn render_figures(out: &mut dyn Write, summary: &Summary) -> std::io::Result<()> {
    let f = &summary.figures;
    if let (Some(qps), Some(rate)) = (f.get("target_qps"), f.get("samples_per_s")) {
        write!(out, "  target QPS {qps:.2}; {rate:.2} samples/s")?;
        if let Some(tokens) = f.get("output_tokens_per_s") {
            write!(out, "; {tokens:.1} output tokens/s")?;
        }
        if let Some(window) = &summary.window {
            write!(out, "; measured window {:.2} s", window.duration_s)?;
        }
        writeln!(out)?;
    }
    // The one terminal table writer (comfy-table), indented under the run's
    // heading like the lines around it.
    let mut table = crate::table::new(&["(ms)", "p50", "p90", "p99", "max"], &[1, 2, 3, 4]);
    for (label, name) in [
        ("latency", "latency"),
        ("time to first token", "ttft"),
        ("time per output token", "tpot"),
    ] {
        if name != "latency" && !f.contains_key(&format!("{name}_p50_ms")) {
            continue;
        }
        table.add_row([
            label.to_owned(),
            ms(f, &format!("{name}_p50_ms")),
            ms(f, &format!("{name}_p90_ms")),
            ms(f, &format!("{name}_p99_ms")),
            ms(f, &format!("{name}_max_ms")),
        ]);
    }
    for line in table.lines() {
        writeln!(out, " {}", line.trim_end())?;
    }
    let official = summary
        .run
        .loadgen
        .as_ref()
        .is_some_and(|l| l.implementation == rundir::LoadgenImplementation::MlcommonsLoadgen);
    if official {
        // Its records' scheduled times are when IssueQuery reached the SUT.
        writeln!(
            out,
            "  issue lateness: not measured (MLCommons' LoadGen keeps its schedule to itself)"
        )?;
    } else if let Some(delay) = &summary.issue_delay_ns {
        let us = |key: &str| {
            delay
                .percentiles
                .get(key)
                .map_or(f64::NAN, |p| p.loadgen / 1e3)
        };
        writeln!(
            out,
            "  issue lateness: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            us("p50"),
            us("p99"),
            delay.max / 1e3
        )?;
    }
    Ok(())
}

/// Renders the summary of a finished run: the phases as they ran
/// (`outcome`), then the figures and the verdict (`summary`).
pub fn render(
    out: &mut dyn Write,
    dir: &Path,
    manifest: &rundir::RunManifest,
    outcome: &TestOutcome,
    summary: &Summary,
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
        // A peak is only quoted when its run is VALID (as `harness
        // find-peak` reports it).
        let peak_valid = outcome
            .performance()
            .and_then(|p| p.verdict.as_ref())
            .is_some_and(|v| v.valid);
        match search.peak_qps {
            Some(qps) if peak_valid => writeln!(out, "  peak target QPS: {qps} (VALID)")?,
            Some(qps) => writeln!(
                out,
                "  no VALID peak: the search ended at {qps} QPS but that run is INVALID (reasons below)"
            )?,
            None => writeln!(
                out,
                "  no VALID peak: the base target fails (latency limits or failed queries)"
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
    }
    if outcome.performance().is_some() {
        render_figures(out, summary)?;
    }
    if let Some(results) = &summary.loadgen {
        let use_tokens = summary
            .settings
            .as_ref()
            .is_some_and(|s| s.use_token_latencies);
        let (key, value) = results.primary_metric(use_tokens);
        writeln!(
            out,
            "LoadGen: {key} = {value:.2}; min duration {}, min queries {}, latency constraints {}, early stopping {}",
            met(results.min_duration_met),
            met(results.min_queries_met),
            met(results.perf_constraints_met),
            met(results.early_stopping_met),
        )?;
    }
    writeln!(out, "Result: {}", summary.validity.verdict)?;
    if summary.validity.run_valid != Some(true) {
        for reason in &summary.validity.run_reasons {
            writeln!(out, "  - {reason}")?;
        }
    }
    writeln!(out, "Run directory: {}", dir.display())?;
    Ok(())
}
