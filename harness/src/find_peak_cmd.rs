//! `harness find-peak`: the highest Server target QPS whose run meets the
//! latency constraints, by LoadGen's FindPeakPerformance method (widen from
//! the target QPS by `server_find_peak_qps_boundary_step_size`, then bisect
//! to `server_find_peak_qps_decimals_of_precision`), each step a normal run
//! directory, recorded in `find_peak.json` with the bracket it tested.
//!
//! A step passes when its run met the constraints with no failed query and
//! was not interrupted ([`loadgen::find_peak::step_passed`]). The peak
//! reported is always a VALID run: the search's answer when its run is
//! VALID, else the highest passing VALID step below it; with none the
//! command says so and exits 3. `--fast` searches with shortened runs
//! (`--fast-factor` of the minimum duration and query count) and then
//! confirms the peak with one run at the full settings, which must be VALID.
//!
//! `find_peak.json` is rewritten (atomically) after every step, so Ctrl-C
//! keeps the finished steps, and `--resume DIR` continues the search: the
//! recorded steps are replayed (the search is deterministic given their
//! outcomes) and only the missing ones run.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use loadgen::find_peak::{FindPeakSettings, find_peak, step_passed};
use serde::{Deserialize, Serialize};

use crate::cli::{FindPeakArgs, RunArgs, ScenarioArg, TestModeArg};
use crate::outcome::Outcome;

/// The record's file name.
pub const FIND_PEAK_FILE: &str = "find_peak.json";

/// Where a search stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchStatus {
    /// Steps are still running.
    Running,
    /// The search finished (with or without a peak).
    Complete,
    /// Stopped by Ctrl-C: `--resume` continues it.
    Interrupted,
    /// A step could not run (`error` says why): `--resume` retries it.
    Failed,
}

/// `find_peak.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindPeakRecord {
    /// Version of this file's format.
    #[serde(default)]
    pub format_version: u32,
    /// The command line the search began with (redacted), which
    /// `--resume` runs again.
    #[serde(default)]
    pub command: Vec<String>,
    /// Where the search stands.
    #[serde(default = "complete")]
    pub status: SearchStatus,
    /// Why the search stopped, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every run of the search, in order.
    pub steps: Vec<StepRecord>,
    /// The bracket `[passing, failing)` found by widening.
    pub bracket: Option<(f64, f64)>,
    /// What the search itself found (LoadGen's answer: the last passing
    /// lower bound), VALID or not.
    #[serde(default)]
    pub search_peak_qps: Option<f64>,
    /// The peak reported: the highest passing step whose run is VALID
    /// (with `--fast`, the confirmed one). `None`: no VALID peak.
    pub peak_qps: Option<f64>,
    /// The run directory of the reported peak.
    #[serde(default)]
    pub peak_run_dir: Option<String>,
    /// `--fast`: the full-length confirmation at the search's peak.
    pub confirmation: Option<StepRecord>,
}

fn complete() -> SearchStatus {
    SearchStatus::Complete
}

/// One run of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Target QPS.
    pub qps: f64,
    /// Passed its step: LoadGen's PerfConstraintsMet, no failed query, not
    /// interrupted (what the search follows).
    pub passed: bool,
    /// Full MLPerf validity of the run.
    pub valid: bool,
    /// LoadGen's PerfConstraintsMet.
    #[serde(default)]
    pub perf_constraints_met: bool,
    /// Failed queries.
    #[serde(default)]
    pub failed: u64,
    /// Why the run is INVALID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The run directory (relative to the search directory).
    pub run_dir: String,
    /// Shortened run (`--fast`).
    pub short: bool,
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindPeakEnd {
    /// A VALID peak (exit 0).
    Found,
    /// No VALID peak (exit 3).
    NoValidPeak,
    /// Ctrl-C (exit 130); `--resume` continues.
    Interrupted,
}

/// Why a step did not give an outcome.
#[derive(Debug)]
enum StepStop {
    Interrupted,
    Error(String),
}

impl std::fmt::Display for StepStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepStop::Interrupted => f.write_str("interrupted"),
            StepStop::Error(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StepStop {}

/// The peak to report: the search's when its run is VALID, else the highest
/// passing VALID step below it (short steps never count: they are not the
/// settings asked for).
pub fn valid_peak<'a>(
    steps: &'a [StepRecord],
    search_peak: Option<f64>,
    confirmation: Option<&'a StepRecord>,
) -> Option<&'a StepRecord> {
    let peak = search_peak?;
    if let Some(c) = confirmation {
        return (c.passed && c.valid).then_some(c);
    }
    steps
        .iter()
        .filter(|s| !s.short && s.passed && s.valid && s.qps <= peak)
        .max_by(|a, b| a.qps.total_cmp(&b.qps))
}

/// `harness find-peak`: exit 0 with a VALID peak, 3 without one, 130 when
/// interrupted.
pub fn main(args: &FindPeakArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    Ok(match run(args, &crate::shared::redacted_command(), out)? {
        FindPeakEnd::Found => Outcome::Success,
        FindPeakEnd::NoValidPeak => Outcome::Invalid,
        FindPeakEnd::Interrupted => Outcome::Interrupted,
    })
}

/// Runs (or resumes) the search.
pub fn run(
    args: &FindPeakArgs,
    command: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<FindPeakEnd> {
    let (args, dir, previous) = open_search(args, command)?;
    validate(&args)?;
    let mut base = args.run.clone();
    base.test_mode = TestModeArg::PerformanceOnly;
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
    let runner = StepRunner {
        full_duration: probe.settings.min_duration_ms,
        full_queries: probe.settings.min_query_count,
        factor: args.fast_factor,
        base,
        command,
        dir: &dir,
    };
    let fast = args.fast;

    let mut record = FindPeakRecord {
        format_version: 2,
        command: previous
            .as_ref()
            .map_or_else(|| command.to_vec(), |p| p.command.clone()),
        status: SearchStatus::Running,
        error: None,
        steps: Vec::new(),
        bracket: None,
        search_peak_qps: None,
        peak_qps: None,
        peak_run_dir: None,
        confirmation: None,
    };
    // Recorded steps, replayed in order while the search asks for them.
    let mut replay: VecDeque<StepRecord> = previous
        .as_ref()
        .map(|p| p.steps.iter().cloned().collect())
        .unwrap_or_default();
    let replay_confirmation = previous.as_ref().and_then(|p| p.confirmation.clone());
    match &previous {
        Some(_) => writeln!(
            out,
            "find-peak resumed in {} ({} steps recorded)",
            dir.display(),
            replay.len()
        )?,
        None => writeln!(out, "find-peak in {} from {start_qps} QPS", dir.display())?,
    }
    crate::resume::write_json_atomic(&dir, FIND_PEAK_FILE, &record)?;

    let outcome = find_peak(start_qps, search, |qps| {
        runner
            .replay_or_run(&mut replay, qps, fast, &mut record, out)
            .map(|s| (s.passed, ()))
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(loadgen::find_peak::FindPeakError::Run {
            source: StepStop::Interrupted,
            ..
        }) => return interrupted(&dir, &mut record, out),
        Err(e) => {
            record.status = SearchStatus::Failed;
            record.error = Some(e.to_string());
            crate::resume::write_json_atomic(&dir, FIND_PEAK_FILE, &record)?;
            return Err(anyhow::anyhow!(
                "{e}\n(the finished steps are in {}; continue with `harness find-peak --resume {}`)",
                dir.join(FIND_PEAK_FILE).display(),
                dir.display()
            ));
        }
    };
    record.bracket = outcome.boundaries;
    record.search_peak_qps = outcome.peak_qps;
    if let (true, Some(peak)) = (fast, outcome.peak_qps) {
        let c = match replay_confirmation.filter(|c| c.qps.to_bits() == peak.to_bits()) {
            Some(c) => c,
            None => match runner.run(peak, false, record.steps.len(), out) {
                Ok(c) => c,
                Err(StepStop::Interrupted) => return interrupted(&dir, &mut record, out),
                Err(StepStop::Error(e)) => {
                    record.status = SearchStatus::Failed;
                    record.error = Some(e.clone());
                    crate::resume::write_json_atomic(&dir, FIND_PEAK_FILE, &record)?;
                    bail!("the confirmation run at {peak} QPS failed: {e}");
                }
            },
        };
        record.confirmation = Some(c);
    }
    let peak = valid_peak(
        &record.steps,
        outcome.peak_qps,
        record.confirmation.as_ref(),
    )
    .cloned();
    record.peak_qps = peak.as_ref().map(|p| p.qps);
    record.peak_run_dir = peak.as_ref().map(|p| p.run_dir.clone());
    record.status = SearchStatus::Complete;
    crate::resume::write_json_atomic(&dir, FIND_PEAK_FILE, &record)?;

    let end = report(
        &record,
        outcome.boundaries,
        outcome.peak_qps,
        peak.as_ref(),
        start_qps,
        out,
    )?;
    writeln!(out, "wrote {}", dir.join(FIND_PEAK_FILE).display())?;
    Ok(end)
}

/// The search's arguments, its directory and, with `--resume`, the record
/// to continue: a new search creates its directory, a resumed one restores
/// the command line it began with.
fn open_search(
    args: &FindPeakArgs,
    command: &[String],
) -> anyhow::Result<(FindPeakArgs, PathBuf, Option<FindPeakRecord>)> {
    let Some(dir) = &args.resume else {
        let label = args
            .run
            .label
            .clone()
            .unwrap_or_else(|| "find-peak".to_owned());
        validate(args)?;
        let dir = rundir::create_run_dir(&args.run.output_dir, &label)?;
        return Ok((args.clone(), dir, None));
    };
    let path = dir.join(FIND_PEAK_FILE);
    let text =
        std::fs::read(&path).with_context(|| format!("--resume: reading {}", path.display()))?;
    let previous: FindPeakRecord = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a find-peak record", path.display()))?;
    if previous.command.is_empty() {
        bail!(
            "{}: written by an older harness without its command line; it cannot be resumed",
            path.display()
        );
    }
    let mut restored: FindPeakArgs =
        crate::resume::restore(&previous.command, command, "find-peak", "peak search", dir)?;
    // The runs go where the search's own runs went (its parent
    // directory), wherever the search is resumed from.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        restored.run.output_dir = parent.to_path_buf();
    }
    restored.resume = Some(dir.clone());
    Ok((restored, dir.clone(), Some(previous)))
}

/// Runs the search's steps: each a normal run at a target QPS, shortened
/// by the `--fast-factor` when asked.
struct StepRunner<'a> {
    /// The run options every step starts from.
    base: RunArgs,
    command: &'a [String],
    /// The search directory (step run directories are recorded relative to it).
    dir: &'a Path,
    /// The conf's min_duration_ms and min_query_count, which short steps scale.
    full_duration: u64,
    full_queries: u64,
    factor: f64,
}

impl StepRunner<'_> {
    /// Runs step number `index` at `qps`.
    fn run(
        &self,
        qps: f64,
        short: bool,
        index: usize,
        out: &mut dyn Write,
    ) -> Result<StepRecord, StepStop> {
        let mut args = self.base.clone();
        args.target_qps = Some(qps);
        if short {
            args.min_duration_ms = Some((self.full_duration as f64 * self.factor).max(1.0) as u64);
            args.min_query_count = Some((self.full_queries as f64 * self.factor).max(1.0) as u64);
        }
        args.label = Some(format!(
            "step{index:02}-qps{qps:.3}{}",
            if short { "-short" } else { "" }
        ));
        let result = crate::run_cmd::RunConfig::from_args(&args, self.command.to_vec())
            .and_then(|config| crate::run_cmd::execute(&config, out))
            .map_err(|e| StepStop::Error(format!("{e:#}")))?;
        if result.interrupted {
            return Err(StepStop::Interrupted);
        }
        let perf_constraints_met = result.perf_constraints_met.unwrap_or(false);
        Ok(StepRecord {
            qps,
            passed: step_passed(perf_constraints_met, result.metrics.failed, false),
            valid: result.verdict.valid,
            perf_constraints_met,
            failed: result.metrics.failed,
            reasons: result.verdict.reasons,
            run_dir: result
                .dir
                .strip_prefix(self.dir)
                .unwrap_or(&result.dir)
                .display()
                .to_string(),
            short,
        })
    }

    /// The next step: the recorded one when the search asks for it again
    /// (`--resume`), else a fresh run; appended to `record`, which is
    /// rewritten so that Ctrl-C or a crash keeps what finished.
    fn replay_or_run(
        &self,
        replay: &mut VecDeque<StepRecord>,
        qps: f64,
        short: bool,
        record: &mut FindPeakRecord,
        out: &mut dyn Write,
    ) -> Result<StepRecord, StepStop> {
        let done = match replay.front() {
            Some(r) if r.qps.to_bits() == qps.to_bits() && r.short == short => replay.pop_front(),
            _ => {
                // The search left the recorded path (it cannot, given
                // the same outcomes; a hand-edited record): run afresh.
                replay.clear();
                None
            }
        };
        let s = match done {
            Some(s) => s,
            None => self.run(qps, short, record.steps.len(), out)?,
        };
        record.steps.push(s.clone());
        crate::resume::write_json_atomic(self.dir, FIND_PEAK_FILE, &*record)
            .map_err(|e| StepStop::Error(format!("{e:#}")))?;
        Ok(s)
    }
}

/// Prints the steps, the bracket and the verdict on the peak; says how the
/// search ended.
fn report(
    record: &FindPeakRecord,
    bracket: Option<(f64, f64)>,
    search_peak_qps: Option<f64>,
    peak: Option<&StepRecord>,
    start_qps: f64,
    out: &mut dyn Write,
) -> anyhow::Result<FindPeakEnd> {
    writeln!(out, "\nfind-peak steps:")?;
    for s in record.steps.iter().chain(record.confirmation.iter()) {
        writeln!(out, "  {}", step_line(s))?;
    }
    if let Some((lo, hi)) = bracket {
        writeln!(out, "bracket: [{lo}, {hi})")?;
    }
    Ok(match (search_peak_qps, &record.confirmation, peak) {
        (None, _, _) => {
            let why = record.steps.first().map_or_else(String::new, |s| {
                if s.failed > 0 {
                    format!("{} queries failed", s.failed)
                } else {
                    "latency constraints not met".to_owned()
                }
            });
            writeln!(
                out,
                "no VALID peak: the starting {start_qps} QPS already fails ({why}); the search \
                 stops there"
            )?;
            FindPeakEnd::NoValidPeak
        }
        (Some(search_peak), Some(c), None) => {
            writeln!(
                out,
                "no VALID peak: {search_peak} QPS from short runs did NOT hold in the full-length \
                 run ({}: {})",
                c.run_dir,
                if c.reasons.is_empty() {
                    "latency constraints not met".to_owned()
                } else {
                    c.reasons.join("; ")
                }
            )?;
            FindPeakEnd::NoValidPeak
        }
        (Some(search_peak), None, None) => {
            writeln!(
                out,
                "no VALID peak: the search ended at {search_peak} QPS but no passing step is a \
                 VALID run (see each run's reasons)"
            )?;
            FindPeakEnd::NoValidPeak
        }
        (Some(search_peak), _, Some(p)) => {
            if p.qps.to_bits() == search_peak.to_bits() {
                writeln!(out, "peak: {} QPS (VALID, {})", p.qps, p.run_dir)?;
            } else {
                writeln!(
                    out,
                    "peak: {} QPS (VALID, {}); the search's {search_peak} QPS run is INVALID",
                    p.qps, p.run_dir
                )?;
            }
            FindPeakEnd::Found
        }
    })
}

fn validate(args: &FindPeakArgs) -> anyhow::Result<()> {
    if !(args.fast_factor > 0.0 && args.fast_factor <= 1.0) {
        bail!("--fast-factor must be in (0, 1], got {}", args.fast_factor);
    }
    match args.run.scenario {
        ScenarioArg::Server | ScenarioArg::Interactive => Ok(()),
        other => bail!("find-peak needs --scenario Server or Interactive, not {other:?}"),
    }
}

fn interrupted(
    dir: &Path,
    record: &mut FindPeakRecord,
    out: &mut dyn Write,
) -> anyhow::Result<FindPeakEnd> {
    record.status = SearchStatus::Interrupted;
    crate::resume::write_json_atomic(dir, FIND_PEAK_FILE, &*record)?;
    writeln!(
        out,
        "find-peak interrupted after {} steps (kept in {}): continue with `harness find-peak --resume {}`",
        record.steps.len(),
        dir.join(FIND_PEAK_FILE).display(),
        dir.display()
    )?;
    Ok(FindPeakEnd::Interrupted)
}

fn step_line(s: &StepRecord) -> String {
    let mut line = format!(
        "{} qps {}{}",
        loadgen::find_peak::qps_field(s.qps),
        if s.passed { "passed" } else { "failed" },
        if s.valid { ", VALID" } else { ", INVALID" },
    );
    if s.failed > 0 {
        line.push_str(&format!(" ({} queries failed)", s.failed));
    }
    if s.short {
        line.push_str(" [short]");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(qps: f64, passed: bool, valid: bool, short: bool) -> StepRecord {
        StepRecord {
            qps,
            passed,
            valid,
            perf_constraints_met: passed,
            failed: 0,
            reasons: Vec::new(),
            run_dir: format!("step-{qps}"),
            short,
        }
    }

    #[test]
    fn only_a_valid_run_is_reported_as_the_peak() {
        let steps = [
            step(100.0, true, true, false),
            step(200.0, true, false, false),
            step(400.0, false, false, false),
            step(300.0, true, false, false),
        ];
        // The search ends at 300 (INVALID): the highest VALID passing step.
        assert_eq!(
            valid_peak(&steps, Some(300.0), None).map(|s| s.qps),
            Some(100.0)
        );
        // None VALID: no peak.
        let invalid = [
            step(100.0, true, false, false),
            step(200.0, false, false, false),
        ];
        assert_eq!(valid_peak(&invalid, Some(100.0), None), None);
        assert_eq!(valid_peak(&steps, None, None), None);
        // --fast: the confirmation decides; short steps never count.
        let short = [
            step(100.0, true, true, true),
            step(200.0, false, false, true),
        ];
        let held = step(100.0, true, true, false);
        assert_eq!(valid_peak(&short, Some(100.0), Some(&held)), Some(&held));
        let not_held = step(100.0, true, false, false);
        assert_eq!(valid_peak(&short, Some(100.0), Some(&not_held)), None);
        assert_eq!(valid_peak(&short, Some(100.0), None), None);
    }
}
