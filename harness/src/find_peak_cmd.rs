//! `harness find-peak`: the highest Server target QPS whose run meets the
//! latency constraints, by LoadGen's FindPeakPerformance method (widen from
//! the target QPS by `server_find_peak_qps_boundary_step_size`, then bisect
//! to `server_find_peak_qps_decimals_of_precision`), each step a normal run
//! directory, recorded in `find_peak.json` with the bracket it tested.
//!
//! `--fast` searches with shortened runs (`--fast-factor` of the minimum
//! duration and query count) and then confirms the peak with one run at the
//! full settings, reported (and failing the command) if it does not hold.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use loadgen::find_peak::{FindPeakSettings, find_peak};
use serde::Serialize;

use crate::cli::{FindPeakArgs, ScenarioArg, TestModeArg};
use crate::outcome::Outcome;

/// `find_peak.json`.
#[derive(Debug, Clone, Serialize)]
pub struct FindPeakRecord {
    /// Every run of the search, in order.
    pub steps: Vec<StepRecord>,
    /// The bracket `[passing, failing)` found by widening.
    pub bracket: Option<(f64, f64)>,
    /// The highest passing QPS (None: the starting QPS already fails).
    pub peak_qps: Option<f64>,
    /// `--fast`: the full-length confirmation at the peak.
    pub confirmation: Option<StepRecord>,
}

/// One run of the search.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Target QPS.
    pub qps: f64,
    /// LoadGen's PerfConstraintsMet (what the search follows).
    pub passed: bool,
    /// Full MLPerf validity of the run.
    pub valid: bool,
    /// The run directory (relative to the search directory).
    pub run_dir: String,
    /// Shortened run (`--fast`).
    pub short: bool,
}

/// A step of the search that could not run.
#[derive(Debug)]
struct StepFailed(String);

impl std::fmt::Display for StepFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StepFailed {}

/// `harness find-peak`: exit 3 when no peak was found (or confirmed).
pub fn main(args: &FindPeakArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let found = run(args, &crate::shared::redacted_command(), out)?;
    Ok(Outcome::success_if(found, Outcome::Invalid))
}

/// Runs the search; returns whether a peak was found (and confirmed).
pub fn run(args: &FindPeakArgs, command: &[String], out: &mut dyn Write) -> anyhow::Result<bool> {
    if !(args.fast_factor > 0.0 && args.fast_factor <= 1.0) {
        bail!("--fast-factor must be in (0, 1], got {}", args.fast_factor);
    }
    let mut base = args.run.clone();
    base.scenario = match base.scenario {
        ScenarioArg::Server | ScenarioArg::Interactive => base.scenario,
        other => bail!("find-peak needs --scenario Server or Interactive, not {other:?}"),
    };
    base.test_mode = TestModeArg::PerformanceOnly;
    let label = base.label.clone().unwrap_or_else(|| "find-peak".to_owned());
    let dir = rundir::create_run_dir(&base.output_dir, &label)?;
    if base.db.is_none() {
        base.db = Some(crate::shared::default_db(&base.output_dir));
    }
    base.output_dir = dir.clone();

    // The search parameters and starting QPS come from the same conf files
    // a run reads.
    let probe = crate::run_cmd::RunConfig::from_args(&base, command.to_vec())?;
    let start_qps = probe.settings.server_target_qps;
    let mut search = FindPeakSettings::from_settings(&probe.settings);
    if let Some(p) = args.precision {
        search.decimals_of_precision = i32::from(p);
    }
    if let Some(step) = args.step_size {
        search.boundary_step_size = step;
    }
    let full_duration = probe.settings.min_duration_ms;
    let full_queries = probe.settings.min_query_count;
    writeln!(out, "find-peak in {} from {start_qps} QPS", dir.display())?;

    let fast = args.fast;
    let factor = args.fast_factor;
    let mut steps: Vec<StepRecord> = Vec::new();
    let mut step =
        |qps: f64, short: bool, steps: &mut Vec<StepRecord>| -> anyhow::Result<StepRecord> {
            let mut args = base.clone();
            args.target_qps = Some(qps);
            if short {
                args.min_duration_ms = Some((full_duration as f64 * factor).max(1.0) as u64);
                args.min_query_count = Some((full_queries as f64 * factor).max(1.0) as u64);
            }
            args.label = Some(format!(
                "step{:02}-qps{qps:.3}{}",
                steps.len(),
                if short { "-short" } else { "" }
            ));
            let config = crate::run_cmd::RunConfig::from_args(&args, command.to_vec())?;
            let result = crate::run_cmd::execute(&config, out)?;
            if result.interrupted {
                bail!("interrupted");
            }
            let record = StepRecord {
                qps,
                passed: result.perf_constraints_met.unwrap_or(false),
                valid: result.verdict.valid,
                run_dir: result
                    .dir
                    .strip_prefix(&dir)
                    .unwrap_or(&result.dir)
                    .display()
                    .to_string(),
                short,
            };
            steps.push(record.clone());
            Ok(record)
        };
    let outcome = find_peak(start_qps, search, |qps| {
        step(qps, fast, &mut steps)
            .map(|r| (r.passed, ()))
            .map_err(|e| StepFailed(format!("{e:#}")))
    });
    let outcome = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut confirmation = None;
    if let (true, Some(peak)) = (fast, outcome.peak_qps) {
        // The confirmation's run summary follows the search's.
        confirmation = Some(step(peak, false, &mut steps)?);
    }
    let record = FindPeakRecord {
        steps: steps.clone(),
        bracket: outcome.boundaries,
        peak_qps: outcome.peak_qps,
        confirmation: confirmation.clone(),
    };
    write_record(&dir, &record)?;

    writeln!(out, "\nfind-peak steps:")?;
    for s in &outcome.steps {
        writeln!(out, "  {s}")?;
    }
    if let Some((lo, hi)) = outcome.boundaries {
        writeln!(out, "bracket: [{lo}, {hi})")?;
    }
    let found = match (outcome.peak_qps, &confirmation) {
        (None, _) => {
            writeln!(
                out,
                "no passing QPS: {start_qps} already misses the latency constraints"
            )?;
            false
        }
        (Some(peak), Some(c)) if !c.passed => {
            writeln!(
                out,
                "peak {peak} QPS from short runs did NOT hold in the full-length run ({})",
                c.run_dir
            )?;
            false
        }
        (Some(peak), _) => {
            writeln!(out, "peak: {peak} QPS")?;
            true
        }
    };
    writeln!(out, "wrote {}", dir.join("find_peak.json").display())?;
    Ok(found)
}

fn write_record(dir: &Path, record: &FindPeakRecord) -> anyhow::Result<()> {
    let path = dir.join("find_peak.json");
    std::fs::write(&path, serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("writing {}", path.display()))
}
