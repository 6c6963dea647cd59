//! Comparisons of runs: the statistics that say whether a difference is
//! real, as pure functions of run directories' files.
//!
//! `harness compare`, `harness gate` and the results service
//! (`GET /api/v1/compare`) share this one implementation, so the CLI's
//! `--format json` and the API answer the same bytes ([`write_json`]).
//! Every figure comes from the run directory (records.jsonl, run.json), so
//! runs from different machines and days compare the same way. Percentile
//! differences carry a seeded bootstrap interval (B − A, 95%), distributions
//! a Mann-Whitney p-value.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ReportError;
use crate::significance::{DiffEstimate, bootstrap_percentile_diff, mann_whitney};
use loadgen::Timed;

/// Errors reading runs for a comparison.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// The run directory could not be read.
    #[error("reading {}", dir.display())]
    Load {
        /// The run directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: ReportError,
    },
    /// records.jsonl holds no phase.
    #[error("{}: no phase in records.jsonl", dir.display())]
    NoPhase {
        /// The run directory.
        dir: PathBuf,
    },
}

/// Bootstrap resamples for every interval.
pub const RESAMPLES: usize = 1000;
/// Seed of the bootstrap: the same runs give the same intervals.
pub const SEED: u64 = 20_261_122;

/// The per-query quantities compared.
pub const QUANTITIES: [&str; 3] = ["latency", "ttft", "tpot"];
/// The percentiles tabulated.
pub const PERCENTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

/// Every metric a comparison or a gate rule can name: the run-level
/// figures of the registry ([`crate::figures::FIGURES`]).
pub fn metric_names() -> Vec<String> {
    crate::figures::FIGURES
        .iter()
        .map(|f| f.name.to_owned())
        .collect()
}

/// Whether a setting's difference changes the workload (comparing such runs
/// is apples to oranges) or only the system under test (what comparisons
/// are for: server A against server B on the same workload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingKind {
    /// Scenario, mode, LoadGen model, target QPS, dataset, request
    /// settings: a difference is refused unless the user allows a mismatch.
    Workload,
    /// Backend URL, served model name: a difference is stated only.
    System,
}

/// The settings compared between runs, in the order they are stated.
pub const SETTINGS: [(&str, SettingKind); 9] = [
    ("scenario", SettingKind::Workload),
    ("mode", SettingKind::Workload),
    ("model", SettingKind::Workload),
    ("target_qps", SettingKind::Workload),
    ("dataset", SettingKind::Workload),
    ("max_tokens", SettingKind::Workload),
    ("sampling", SettingKind::Workload),
    ("backend", SettingKind::System),
    ("server_model", SettingKind::System),
];

/// One run, reduced to what comparisons need.
#[derive(Debug, Clone)]
pub struct RunSamples {
    /// Display name (the run directory's name).
    pub name: String,
    /// Per-query values in ms of successful samples, by quantity.
    pub values: BTreeMap<&'static str, Vec<f64>>,
    /// Scalar figures: throughput, failures, validity.
    pub scalars: BTreeMap<String, f64>,
    /// The settings in [`SETTINGS`] (absent when the run's files do not
    /// say, e.g. a run.json from an older harness).
    pub settings: BTreeMap<&'static str, String>,
    /// Why the run cannot be judged: it crashed, was interrupted, or is
    /// INVALID because queries failed. `None` for a sound run.
    pub unsound: Option<String>,
}

/// Reads the settings of a run from its run.json and phase header.
fn run_settings(
    manifest: Option<&rundir::RunManifest>,
    phase: &crate::load::PhaseData,
) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let start = &phase.header.start;
    out.insert("scenario", start.scenario.as_str().to_owned());
    out.insert("mode", start.mode.to_string());
    out.insert("target_qps", format!("{}", start.settings.target_qps));
    let Some(m) = manifest else {
        return out;
    };
    out.insert("model", m.model.clone());
    if let Some(dataset) = &m.dataset {
        out.insert("dataset", dataset.clone());
    }
    out.insert("backend", m.backends.join(" + "));
    if let Some(served) = m.config.get("server_model").and_then(|v| v.as_str()) {
        out.insert("server_model", served.to_owned());
    }
    if let Some(request) = m.config.get("request").and_then(|v| v.as_object()) {
        if let Some(n) = request.get("max_tokens") {
            out.insert("max_tokens", n.to_string());
        }
        // Everything else a request asks for, as one comparable text.
        let mut rest = request.clone();
        rest.remove("max_tokens");
        out.insert("sampling", serde_json::Value::Object(rest).to_string());
    }
    out
}

/// Why a run cannot be judged, if it cannot.
fn unsoundness(
    dir: &Path,
    manifest: Option<&rundir::RunManifest>,
    phase: &crate::load::PhaseData,
) -> Option<String> {
    let failed = phase.samples.iter().filter(|s| s.error.is_some()).count();
    let status = manifest.map(|m| m.status);
    match status {
        None => return Some("no run.json: not a run the harness finished".to_owned()),
        Some(rundir::RunStatus::Running) => {
            return Some(
                "it crashed: run.json still says \"running\" (the process died)".to_owned(),
            );
        }
        Some(rundir::RunStatus::Failed) => {
            return Some("it failed before producing results".to_owned());
        }
        Some(rundir::RunStatus::Interrupted) => {
            return Some(format!(
                "it was interrupted after {} of {} samples",
                phase.samples.len(),
                phase.header.start.sample_count
            ));
        }
        Some(rundir::RunStatus::Complete) => {}
    }
    match &phase.end {
        None => Some("its performance phase never ended (records.jsonl has no end)".to_owned()),
        Some(end) if end.interrupted => Some("it was interrupted".to_owned()),
        _ if failed > 0 => Some(format!(
            "INVALID because {failed} of {} queries failed",
            phase.samples.len()
        )),
        _ => match loadgen_errors(dir) {
            0 => None,
            n => Some(format!(
                "INVALID because LoadGen logged {n} error{} (mlperf_log_detail.txt)",
                if n == 1 { "" } else { "s" }
            )),
        },
    }
}

/// The error lines in the run's LoadGen detail log (any one makes a
/// submission invalid); 0 when there is no log.
fn loadgen_errors(dir: &Path) -> usize {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(dir.join("mlperf_log_detail.txt")) else {
        return 0;
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| line.contains("\"is_error\": true"))
        .count()
}

impl RunSamples {
    /// Reads a run directory.
    pub fn load(dir: &Path) -> Result<RunSamples, CompareError> {
        let data = crate::load(dir, 0).map_err(|source| CompareError::Load {
            dir: dir.to_path_buf(),
            source,
        })?;
        let phase = data.main_phase().ok_or_else(|| CompareError::NoPhase {
            dir: dir.to_path_buf(),
        })?;
        let ok: Vec<_> = phase.samples.iter().filter(|s| s.error.is_none()).collect();
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut values = BTreeMap::new();
        values.insert(
            "latency",
            ok.iter().map(|s| ms(s.latency_ns())).collect::<Vec<_>>(),
        );
        values.insert(
            "ttft",
            ok.iter().filter_map(|s| s.ttft_ns().map(ms)).collect(),
        );
        values.insert(
            "tpot",
            ok.iter().filter_map(|s| s.tpot_ns().map(ms)).collect(),
        );
        // The scalar figures are the run's registered figures, the values
        // the terminal, the history and summary.json show.
        let scalars = crate::summarize(&data).figures;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(RunSamples {
            name,
            values,
            scalars,
            settings: run_settings(data.manifest.as_ref(), phase),
            unsound: unsoundness(dir, data.manifest.as_ref(), phase),
        })
    }

    /// The per-query values behind a `<quantity>_<pNN>_ms` metric.
    pub fn distribution(&self, metric: &str) -> Option<(&[f64], f64)> {
        let (quantity, rest) = metric.split_once('_')?;
        let label = rest.strip_suffix("_ms")?;
        let p = PERCENTILES.iter().find(|(l, _)| *l == label)?.1;
        let values = self.values.get(quantity)?;
        Some((values.as_slice(), p))
    }
}

/// Whether less is better for a metric (unknown names: latencies).
pub fn lower_is_better(metric: &str) -> bool {
    crate::figures::find(metric).is_none_or(|f| f.better == crate::figures::Better::Lower)
}

/// A setting that differs between the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The setting.
    pub setting: String,
    /// Its value per run (in the order given; `None`: the run does not say).
    pub values: Vec<Option<String>>,
    /// Workload or system under test.
    pub kind: SettingKind,
    /// Differs by a sweep's design (one of its varied dimensions).
    pub varied: bool,
}

/// Every setting of [`SETTINGS`] whose value is not the same in all runs.
pub fn differences(runs: &[RunSamples], varied: &[&str]) -> Vec<Difference> {
    SETTINGS
        .iter()
        .filter_map(|&(setting, kind)| {
            let values: Vec<Option<String>> = runs
                .iter()
                .map(|r| r.settings.get(setting).cloned())
                .collect();
            let known: Vec<&String> = values.iter().flatten().collect();
            // A run that does not record a setting (older run.json) is not
            // a difference by itself.
            let differ = known.windows(2).any(|w| w[0] != w[1]);
            differ.then(|| Difference {
                setting: setting.to_owned(),
                values,
                kind,
                varied: varied.contains(&setting),
            })
        })
        .collect()
}

/// What the user allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    /// Compare runs whose workloads differ.
    pub mismatch: bool,
    /// Judge runs that crashed, were interrupted or had failed queries.
    pub unsound: bool,
}

/// Why runs were refused: each list names the runs or settings concerned.
/// Empty lists were either fine or allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `name: why` for each run whose figures cannot be trusted.
    pub unsound: Vec<String>,
    /// `setting (name: value, ...)` for each workload setting that differs.
    pub mismatched: Vec<String>,
}

impl Refusal {
    /// The refusal as text; `unsound_hint` and `mismatch_hint` say how to
    /// allow each (a flag on the command line, a parameter in the API).
    pub fn message(&self, command: &str, unsound_hint: &str, mismatch_hint: &str) -> String {
        let mut refused = Vec::new();
        if !self.unsound.is_empty() {
            refused.push(format!(
                "{command} refuses runs whose figures cannot be trusted:\n  {}\n({unsound_hint} \
                 judges them anyway)",
                self.unsound.join("\n  ")
            ));
        }
        if !self.mismatched.is_empty() {
            refused.push(format!(
                "{command} refuses runs of different workloads (apples to oranges):\n  {}\n\
                 ({mismatch_hint} compares them anyway)",
                self.mismatched.join("\n  ")
            ));
        }
        refused.join("\n")
    }
}

/// Runs that may be compared: the settings that differ and the runs judged
/// although unsound (`name: why`), for the caller to state.
#[derive(Debug, Clone)]
pub struct Comparable {
    /// Every setting that differs (workload ones only when allowed or
    /// varied by a sweep).
    pub differences: Vec<Difference>,
    /// `name: why` for each unsound run judged anyway.
    pub unsound: Vec<String>,
}

/// Decides whether runs may be compared: refuses unsound runs and runs of
/// different workloads (not varied by a sweep) unless `allow` says so.
/// `names` name the runs in the refusal.
pub fn check_comparable(
    runs: &[RunSamples],
    names: &[&str],
    varied: &[&str],
    allow: Allow,
) -> Result<Comparable, Refusal> {
    let unsound: Vec<String> = runs
        .iter()
        .zip(names)
        .filter_map(|(r, name)| r.unsound.as_ref().map(|why| format!("{name}: {why}")))
        .collect();
    let differences = differences(runs, varied);
    let mut refusal = Refusal::default();
    if !allow.unsound {
        refusal.unsound.clone_from(&unsound);
    }
    if !allow.mismatch {
        refusal.mismatched = differences
            .iter()
            .filter(|d| d.kind == SettingKind::Workload && !d.varied)
            .map(|d| describe(d, names))
            .collect();
    }
    if refusal.unsound.is_empty() && refusal.mismatched.is_empty() {
        Ok(Comparable {
            differences,
            unsound,
        })
    } else {
        Err(refusal)
    }
}

/// One difference as text: `setting (name: value, name: value)`.
pub fn describe(d: &Difference, names: &[&str]) -> String {
    let values: Vec<String> = d
        .values
        .iter()
        .zip(names)
        .map(|(v, name)| format!("{name}: {}", v.as_deref().unwrap_or("-")))
        .collect();
    format!("{} ({})", d.setting, values.join(", "))
}

/// One row of the comparison: a metric across runs.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    /// The metric.
    pub metric: String,
    /// Its value per run (in the order given).
    pub values: Vec<Option<f64>>,
    /// Per run after the first: B − A against the first run, with interval.
    pub diffs: Vec<Option<DiffEstimate>>,
    /// Per run after the first: Mann-Whitney p-value against the first run.
    pub mann_whitney_p: Vec<Option<f64>>,
    /// Run indices from best to worst.
    pub ranking: Vec<usize>,
}

/// A comparison of runs.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Run names, in the order given; the first is the baseline.
    pub runs: Vec<String>,
    /// Settings that differ between the runs.
    pub differences: Vec<Difference>,
    /// One row per metric.
    pub rows: Vec<MetricRow>,
}

/// Compares runs against the first one.
pub fn compare(runs: &[RunSamples]) -> Comparison {
    let mut metrics: Vec<String> = runs
        .iter()
        .flat_map(|r| r.scalars.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Throughput first, then latencies in quantity order.
    metrics.sort_by_key(|m| (lower_is_better(m), m.clone()));
    let rows = metrics
        .into_iter()
        .map(|metric| {
            let values: Vec<Option<f64>> = runs
                .iter()
                .map(|r| r.scalars.get(&metric).copied())
                .collect();
            let (mut diffs, mut mw) = (Vec::new(), Vec::new());
            if let Some(base) = runs.first() {
                for run in &runs[1..] {
                    let pair = base.distribution(&metric).zip(run.distribution(&metric));
                    diffs.push(pair.and_then(|((a, p), (b, _))| {
                        bootstrap_percentile_diff(a, b, p, 0.95, RESAMPLES, SEED)
                    }));
                    mw.push(pair.and_then(|((a, _), (b, _))| mann_whitney(a, b).map(|(_, p)| p)));
                }
            }
            let mut ranking: Vec<usize> =
                (0..runs.len()).filter(|&i| values[i].is_some()).collect();
            let lower = lower_is_better(&metric);
            ranking.sort_by(|&a, &b| {
                let (x, y) = (values[a].unwrap_or(0.0), values[b].unwrap_or(0.0));
                if lower {
                    x.total_cmp(&y)
                } else {
                    y.total_cmp(&x)
                }
            });
            MetricRow {
                metric,
                values,
                diffs,
                mann_whitney_p: mw,
                ranking,
            }
        })
        .collect();
    Comparison {
        runs: runs.iter().map(|r| r.name.clone()).collect(),
        differences: differences(runs, &[]),
        rows,
    }
}

/// Compares runs the way `harness compare` does: refused as
/// [`check_comparable`] decides, else the comparison with its differences.
pub fn compare_checked(
    runs: &[RunSamples],
    names: &[&str],
    varied: &[&str],
    allow: Allow,
) -> Result<(Comparison, Comparable), Refusal> {
    let comparable = check_comparable(runs, names, varied, allow)?;
    let mut comparison = compare(runs);
    comparison.differences.clone_from(&comparable.differences);
    Ok((comparison, comparable))
}

/// The JSON document of a comparison (`harness compare --format json` and
/// `GET /api/v1/compare` write these same bytes): pretty, one trailing
/// newline.
pub fn write_json(comparison: &Comparison, mut out: impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut out, comparison)?;
    writeln!(out)
}

/// Runs to compare, for the tests of this module and of `harness compare`
/// (the `test-fixtures` feature).
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures {
    use std::collections::BTreeMap;

    use super::RunSamples;

    /// A run named `name` whose 2,000 TTFTs are `shift` plus 0 to 99 ms
    /// (p99 `shift + 98`), with `throughput` samples per second.
    pub fn run(name: &str, shift: f64, throughput: f64) -> RunSamples {
        let ttft: Vec<f64> = (0..2000).map(|i| shift + f64::from(i % 100)).collect();
        let mut scalars = BTreeMap::new();
        scalars.insert("samples_per_s".to_owned(), throughput);
        let mut sorted = ttft.clone();
        sorted.sort_by(f64::total_cmp);
        // 2,000 values: never empty.
        let p99 = crate::significance::percentile_sorted(&sorted, 0.99).unwrap_or(f64::NAN);
        scalars.insert("ttft_p99_ms".to_owned(), p99);
        let mut values = BTreeMap::new();
        values.insert("ttft", ttft);
        RunSamples {
            name: name.into(),
            values,
            scalars,
            settings: BTreeMap::new(),
            unsound: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::run;
    use super::*;

    #[test]
    fn comparison_ranks_lower_latency_and_higher_throughput_first() {
        let c = compare(&[run("a", 10.0, 50.0), run("b", 0.0, 60.0)]);
        let ttft = c.rows.iter().find(|r| r.metric == "ttft_p99_ms").unwrap();
        assert_eq!(ttft.ranking, vec![1, 0]);
        assert!(ttft.diffs[0].unwrap().significant());
        let tput = c.rows.iter().find(|r| r.metric == "samples_per_s").unwrap();
        assert_eq!(tput.ranking, vec![1, 0]);
    }

    #[test]
    fn different_workloads_and_unsound_runs_are_refused_unless_allowed() {
        let mut a = run("a", 0.0, 10.0);
        let mut b = run("b", 0.0, 10.0);
        a.settings.insert("scenario", "Server".into());
        b.settings.insert("scenario", "Offline".into());
        a.settings.insert("backend", "http://x".into());
        b.settings.insert("backend", "http://y".into());
        b.unsound = Some("it was interrupted".into());
        let runs = [a, b];
        let names = ["a", "b"];
        let refusal = check_comparable(&runs, &names, &[], Allow::default()).unwrap_err();
        assert_eq!(refusal.unsound, vec!["b: it was interrupted"]);
        assert_eq!(refusal.mismatched, vec!["scenario (a: Server, b: Offline)"]);
        let text = refusal.message("compare", "--u", "--m");
        assert!(text.contains("(--u judges them anyway)"), "{text}");
        assert!(text.contains("(--m compares them anyway)"), "{text}");

        // Only the mismatch allowed: still refused for the unsound run.
        let allow = Allow {
            mismatch: true,
            unsound: false,
        };
        let refusal = check_comparable(&runs, &names, &[], allow).unwrap_err();
        assert!(refusal.mismatched.is_empty());
        // A sweep's varied dimension is no mismatch.
        let allow = Allow {
            mismatch: false,
            unsound: true,
        };
        let ok = check_comparable(&runs, &names, &["scenario"], allow).unwrap();
        assert_eq!(ok.unsound, vec!["b: it was interrupted"]);
        let settings: Vec<&str> = ok.differences.iter().map(|d| d.setting.as_str()).collect();
        assert_eq!(settings, ["scenario", "backend"]);
        let (comparison, _) = compare_checked(&runs, &names, &["scenario"], allow).unwrap();
        assert!(comparison.differences[0].varied);
    }

    #[test]
    fn the_json_document_is_pretty_with_one_trailing_newline() {
        let c = compare(&[run("a", 10.0, 50.0), run("b", 0.0, 60.0)]);
        let mut bytes = Vec::new();
        write_json(&c, &mut bytes).unwrap();
        assert!(bytes.ends_with(b"}\n") && !bytes.ends_with(b"\n\n"));
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back["runs"], serde_json::json!(["a", "b"]));
    }
}
