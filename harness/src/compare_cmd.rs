//! `harness compare` and `harness gate`: runs side by side with the
//! statistics that say whether a difference is real.
//!
//! The comparison itself (run samples, settings, refusals, statistics, the
//! JSON document) is `reports::compare`, shared with the results service;
//! here are the command lines, the terminal and markdown tables, the CDF
//! charts and the gate. A gate only fails on a difference that is both past
//! its threshold and significant.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reports::compare::{
    self, Allow, Comparison, Difference, QUANTITIES, RESAMPLES, RunSamples, SEED, SettingKind,
    lower_is_better,
};
use reports::significance::{DiffEstimate, bootstrap_percentile_diff};
use serde::{Deserialize, Serialize};

use crate::cli::{CompareArgs, CompareFormat, GateArgs};
use crate::outcome::Outcome;

/// Every metric a comparison or a gate rule can name.
pub fn metric_names() -> Vec<String> {
    compare::metric_names()
}

/// The comparison settings a sweep dimension varies.
fn setting_of_dimension(name: &str) -> &'static str {
    match name {
        "target_qps" => "target_qps",
        "scenario" => "scenario",
        "dataset" => "dataset",
        "max_tokens" => "max_tokens",
        "backend" => "backend",
        "model" => "server_model",
        _ => "sampling",
    }
}

/// Expands sweep directories into their points, and says which settings
/// the sweeps vary (those differ by design).
fn expand(paths: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, Vec<&'static str>)> {
    let mut out = Vec::new();
    let mut varied = Vec::new();
    let mut all_sweeps = true;
    for path in paths {
        let sweep = path.join(crate::sweep_cmd::SWEEP_FILE);
        if sweep.is_file() {
            let record: crate::sweep_cmd::SweepRecord = serde_json::from_slice(
                &std::fs::read(&sweep).with_context(|| format!("reading {}", sweep.display()))?,
            )
            .with_context(|| format!("{}: not a sweep record", sweep.display()))?;
            out.extend(
                record
                    .points
                    .iter()
                    .filter_map(|p| p.run_dir.as_ref().map(|d| path.join(d))),
            );
            varied.extend(
                record
                    .dimensions
                    .iter()
                    .map(|d| setting_of_dimension(&d.name)),
            );
        } else {
            all_sweeps = false;
            out.push(path.clone());
        }
    }
    if !all_sweeps {
        // A run given by itself is not part of any sweep's design.
        varied.clear();
    }
    Ok((out, varied))
}

/// States the differences and problems, and refuses (exit 4) what the user
/// did not allow.
fn check_comparable(
    runs: &[RunSamples],
    names: &[&str],
    labels: &[&str],
    varied: &[&str],
    allow: Allow,
    command: &str,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<Difference>> {
    let comparable =
        compare::check_comparable(runs, names, varied, allow).map_err(|r| refused(&r, command))?;
    state_comparable(&comparable, labels, out)?;
    Ok(comparable.differences)
}

/// A refusal with the command line's flags as the way to allow it (exit 4).
fn refused(refusal: &compare::Refusal, command: &str) -> crate::outcome::Refused {
    crate::outcome::Refused(refusal.message(command, "--allow-failed-runs", "--allow-mismatch"))
}

/// Warns about unsound runs judged anyway and states every difference.
fn state_comparable(
    comparable: &compare::Comparable,
    labels: &[&str],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for line in &comparable.unsound {
        writeln!(out, "warning: {line} (judged anyway: --allow-failed-runs)")?;
    }
    for d in &comparable.differences {
        let note = match (d.kind, d.varied) {
            (_, true) => "varied by the sweep",
            (SettingKind::System, _) => "the systems compared",
            (SettingKind::Workload, _) => "compared anyway: --allow-mismatch",
        };
        writeln!(out, "differs: {} ({note})", compare::describe(d, labels))?;
    }
    Ok(())
}

fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

fn fmt_diff(d: Option<&DiffEstimate>) -> String {
    d.map_or_else(String::new, |d| {
        format!(
            " ({:+.3} [{:+.3}, {:+.3}]{})",
            d.diff,
            d.lo,
            d.hi,
            if d.significant() { " *" } else { "" }
        )
    })
}

/// Renders a comparison as a terminal table or markdown.
pub fn render(c: &Comparison, markdown: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if markdown {
        write!(out, "| metric |")?;
        for name in &c.runs {
            write!(out, " {name} |")?;
        }
        writeln!(out, " best |")?;
        write!(out, "|---|")?;
        for _ in &c.runs {
            write!(out, "---:|")?;
        }
        writeln!(out, "---|")?;
    } else {
        for (i, name) in c.runs.iter().enumerate() {
            writeln!(
                out,
                "[{i}] {name}{}",
                if i == 0 { " (baseline)" } else { "" }
            )?;
        }
    }
    // The terminal's table: one column per run, numbers right-aligned.
    let labels: Vec<String> = (0..c.runs.len()).map(|i| format!("[{i}]")).collect();
    let mut header = vec!["metric"];
    header.extend(labels.iter().map(String::as_str));
    header.push("best");
    let mut table = crate::table::new(&header, &(1..=c.runs.len()).collect::<Vec<_>>());
    for row in &c.rows {
        let cells: Vec<String> = row
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let diff = if i == 0 {
                    None
                } else {
                    row.diffs.get(i - 1).and_then(Option::as_ref)
                };
                format!("{}{}", fmt_value(*v), fmt_diff(diff))
            })
            .collect();
        let best = row.ranking.first().map_or_else(
            || "-".to_owned(),
            |&i| {
                if markdown {
                    c.runs[i].clone()
                } else {
                    format!("[{i}]")
                }
            },
        );
        if markdown {
            writeln!(out, "| {} | {} | {best} |", row.metric, cells.join(" | "))?;
        } else {
            let mut line = vec![row.metric.clone()];
            line.extend(cells);
            line.push(best);
            table.add_row(line);
        }
    }
    if !markdown {
        crate::table::write(&table, out)?;
    }
    writeln!(
        out,
        "\n(B - A against the first run with its 95% bootstrap interval; * = significant)"
    )?;
    for row in c
        .rows
        .iter()
        .filter(|r| r.mann_whitney_p.iter().any(Option::is_some))
    {
        let ps: Vec<String> = row
            .mann_whitney_p
            .iter()
            .map(|p| p.map_or("-".into(), |p| format!("{p:.3e}")))
            .collect();
        if row.metric.ends_with("_p50_ms") {
            writeln!(
                out,
                "Mann-Whitney p, {} distribution vs baseline: {}",
                row.metric.trim_end_matches("_p50_ms"),
                ps.join(", ")
            )?;
        }
    }
    Ok(())
}

/// `harness compare`.
pub fn main_compare(args: &CompareArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if args
        .runs
        .iter()
        .all(|d| submission::results::is_submission_tree(d))
    {
        return crate::submission_cmd::compare_trees(&args.runs, args.format, out);
    }
    if args.format == CompareFormat::Csv {
        bail!("--format csv compares submission trees; for runs use terminal, markdown or json");
    }
    run_compare(args, out)?;
    Ok(Outcome::Success)
}

/// `harness gate`: a failed check fails the command (exit 1).
pub fn main_gate(args: &GateArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let passed = run_gate(args, out)?;
    Ok(Outcome::success_if(passed, Outcome::Failed))
}

fn run_compare(args: &CompareArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (dirs, varied) = expand(&args.runs)?;
    if dirs.len() < 2 {
        bail!("compare needs at least two runs (a sweep directory counts as its points)");
    }
    let runs = dirs
        .iter()
        .map(|d| RunSamples::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    // The terminal table names runs [0], [1]...; the notes follow it.
    let indices: Vec<String> = (0..runs.len()).map(|i| format!("[{i}]")).collect();
    let labels: Vec<&str> = match args.format {
        CompareFormat::Terminal => indices.iter().map(String::as_str).collect(),
        _ => names.clone(),
    };
    let allow = Allow {
        mismatch: args.allow_mismatch,
        unsound: args.allow_failed_runs,
    };
    // JSON output stays one parseable document: the differences are in it.
    let mut notes = Vec::new();
    let (comparison, comparable) = compare::compare_checked(&runs, &names, &varied, allow)
        .map_err(|r| refused(&r, "compare"))?;
    state_comparable(&comparable, &labels, &mut notes)?;

    match args.format {
        CompareFormat::Json => compare::write_json(&comparison, &mut *out)?,
        CompareFormat::Markdown => render(&comparison, true, out)?,
        // Refused in main_compare before any run was read.
        CompareFormat::Terminal | CompareFormat::Csv => render(&comparison, false, out)?,
    }
    if args.format != CompareFormat::Json {
        out.write_all(&notes)?;
    }
    if let Some(dir) = &args.charts {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for path in cdf_charts(&runs, dir)? {
            // JSON output stays one parseable document.
            if args.format != CompareFormat::Json {
                writeln!(out, "wrote {}", path.display())?;
            }
        }
    }
    Ok(())
}

/// CDF overlays of each per-query quantity, one line per run.
fn cdf_charts(runs: &[RunSamples], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    const POINTS: usize = 200;
    let mut written = Vec::new();
    for quantity in QUANTITIES {
        let series: Vec<reports::charts::XySeries> = runs
            .iter()
            .filter_map(|run| {
                let mut sorted = run.values.get(quantity)?.clone();
                if sorted.is_empty() {
                    return None;
                }
                sorted.sort_by(f64::total_cmp);
                let n = sorted.len();
                let points = (0..POINTS)
                    .map(|i| {
                        let idx = i * (n - 1) / (POINTS - 1);
                        (sorted[idx], (idx + 1) as f64 / n as f64)
                    })
                    .collect();
                Some(reports::charts::XySeries {
                    name: run.name.clone(),
                    points,
                })
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let name = format!("compare_{quantity}_cdf.png");
        let title = format!("{} CDF, {} runs", quantity.to_uppercase(), series.len());
        reports::charts::xy_chart(dir, &name, &title, ("ms", "fraction of queries"), &series)?;
        written.push(dir.join(name));
    }
    Ok(written)
}

/// One gate rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateRule {
    /// The metric (`ttft_p99_ms`, `samples_per_s`, `failed`, `valid`...).
    pub metric: String,
    /// Worse by more than this percentage of the baseline fails.
    #[serde(default)]
    pub max_regression_pct: Option<f64>,
    /// Worse by more than this absolute amount fails.
    #[serde(default)]
    pub max_regression_abs: Option<f64>,
}

/// `gate.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateRules {
    /// Confidence level of the significance check (default 0.95).
    #[serde(default)]
    pub confidence: Option<f64>,
    /// The rules.
    #[serde(rename = "rule")]
    pub rules: Vec<GateRule>,
}

/// What a rule found.
#[derive(Debug, Clone, Serialize)]
pub struct GateCheck {
    /// The metric.
    pub metric: String,
    /// Baseline value.
    pub baseline: Option<f64>,
    /// Candidate value.
    pub candidate: Option<f64>,
    /// How much worse the candidate is (positive = worse).
    pub regression: Option<f64>,
    /// The allowed regression.
    pub allowed: f64,
    /// The bootstrap interval of the difference, for per-query metrics.
    pub interval: Option<(f64, f64)>,
    /// Failed: past the threshold and (where it can be tested) significant.
    pub failed: bool,
    /// One line explaining the outcome.
    pub note: String,
}

/// Applies the rules to a baseline and a candidate.
pub fn gate(rules: &GateRules, baseline: &RunSamples, candidate: &RunSamples) -> Vec<GateCheck> {
    let level = rules.confidence.unwrap_or(0.95);
    rules
        .rules
        .iter()
        .map(|rule| {
            let metric = &rule.metric;
            let a = baseline.scalars.get(metric).copied();
            let b = candidate.scalars.get(metric).copied();
            let sign = if lower_is_better(metric) { 1.0 } else { -1.0 };
            let regression = a.zip(b).map(|(a, b)| sign * (b - a));
            let allowed = match (rule.max_regression_pct, rule.max_regression_abs, a) {
                (Some(pct), Some(abs), Some(a)) => (pct / 100.0 * a.abs()).max(abs),
                (Some(pct), None, Some(a)) => pct / 100.0 * a.abs(),
                (None, Some(abs), _) => abs,
                _ => 0.0,
            };
            let interval = baseline
                .distribution(metric)
                .zip(candidate.distribution(metric))
                .and_then(|((x, p), (y, _))| bootstrap_percentile_diff(x, y, p, level, RESAMPLES, SEED));
            let (failed, note) = match (regression, &interval) {
                (None, _) => (true, "missing in one of the runs".to_owned()),
                (Some(r), _) if r <= allowed => (false, "within the allowed regression".to_owned()),
                (Some(_), Some(d)) => {
                    // Worse past the threshold; is it noise? The interval of
                    // the regression must lie entirely above zero.
                    let (lo, hi) = if sign > 0.0 { (d.lo, d.hi) } else { (-d.hi, -d.lo) };
                    if lo > 0.0 {
                        (true, format!("regressed beyond {allowed:.3}, significant at {level}"))
                    } else {
                        (false, format!("past the threshold but not significant ([{lo:.3}, {hi:.3}] includes 0)"))
                    }
                }
                (Some(_), None) => (true, format!("regressed beyond {allowed:.3}")),
            };
            GateCheck {
                metric: metric.clone(),
                baseline: a,
                candidate: b,
                regression,
                allowed,
                interval: interval.map(|d| (d.lo, d.hi)),
                failed,
                note,
            }
        })
        .collect()
}

/// `harness gate`: returns whether every rule passed.
fn run_gate(args: &GateArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("reading --rules {}", args.rules.display()))?;
    let rules: GateRules =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.rules.display()))?;
    if rules.rules.is_empty() {
        bail!("{}: no [[rule]] entries", args.rules.display());
    }
    let known = metric_names();
    let unknown: Vec<&str> = rules
        .rules
        .iter()
        .map(|r| r.metric.as_str())
        .filter(|m| !known.iter().any(|k| k == m))
        .collect();
    if !unknown.is_empty() {
        return Err(crate::outcome::UsageError(format!(
            "{}: unknown metric {} (valid metrics: {})",
            args.rules.display(),
            unknown
                .iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            known.join(", ")
        ))
        .into());
    }
    let baseline = RunSamples::load(&args.baseline)?;
    let candidate = RunSamples::load(&args.candidate)?;
    writeln!(
        out,
        "baseline  {}\ncandidate {}",
        baseline.name, candidate.name
    )?;
    let allow = Allow {
        mismatch: args.allow_mismatch,
        unsound: args.allow_failed_runs,
    };
    check_comparable(
        &[baseline.clone(), candidate.clone()],
        &["baseline", "candidate"],
        &["baseline", "candidate"],
        &[],
        allow,
        "gate",
        out,
    )?;
    let checks = gate(&rules, &baseline, &candidate);
    for c in &checks {
        writeln!(
            out,
            "{} {:<22} {} -> {}  {}",
            if c.failed { "FAIL" } else { "ok  " },
            c.metric,
            fmt_value(c.baseline),
            fmt_value(c.candidate),
            c.note
        )?;
    }
    let failed = checks.iter().filter(|c| c.failed).count();
    if failed == 0 {
        writeln!(out, "gate passed: {} rules", checks.len())?;
    } else {
        writeln!(out, "gate FAILED: {failed} of {} rules", checks.len())?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&checks)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use reports::compare::fixtures::run;

    use super::*;

    fn rules(text: &str) -> GateRules {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_significant_regression_past_the_threshold_fails_the_gate() {
        let r = rules("[[rule]]\nmetric = \"ttft_p99_ms\"\nmax_regression_pct = 10\n");
        let checks = gate(&r, &run("a", 0.0, 10.0), &run("b", 30.0, 10.0));
        assert!(checks[0].failed, "{checks:?}");
        let checks = gate(&r, &run("a", 0.0, 10.0), &run("b", 5.0, 10.0));
        assert!(!checks[0].failed, "5 ms on 99 ms is within 10%: {checks:?}");
    }

    #[test]
    fn throughput_regresses_downwards_and_missing_metrics_fail() {
        let r = rules(
            "[[rule]]\nmetric = \"samples_per_s\"\nmax_regression_pct = 5\n[[rule]]\nmetric = \"tpot_p99_ms\"\n",
        );
        let checks = gate(&r, &run("a", 0.0, 100.0), &run("b", 0.0, 90.0));
        assert!(checks[0].failed && checks[1].failed, "{checks:?}");
        let checks = gate(&r, &run("a", 0.0, 100.0), &run("b", 0.0, 120.0));
        assert!(!checks[0].failed, "more throughput is no regression");
    }

    #[test]
    fn unknown_rule_fields_are_refused() {
        assert!(
            toml::from_str::<GateRules>("[[rule]]\nmetric = \"x\"\nmax_regresion_pct = 1\n")
                .is_err()
        );
    }
}
