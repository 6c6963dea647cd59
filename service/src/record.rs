//! Recording a run directory into the history: the one function
//! `harness run` (and sweep, find-peak), `harness history import` and the
//! API's upload all use, so a run is recorded the same way wherever it
//! comes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use history::{History, HistoryError, RunEntry, SeriesPoint};
use rundir::{RunManifest, RunStatus};

/// Why a run could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The directory is not a finished run (the reason says why).
    #[error("{}: not a finished run: {reason}", dir.display())]
    NotFinished {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A run file could not be read.
    #[error(transparent)]
    RunDir(#[from] rundir::RunDirError),
    /// The history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// A finished run directory, read back: its manifest and figures.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    /// `run.json`.
    pub manifest: RunManifest,
    /// The run's figures, as `summary.json` holds them (computed from the
    /// run's records, so a directory without summary.json gets the same).
    pub figures: BTreeMap<String, f64>,
}

/// Reads a run directory and checks it is a finished run: `run.json`
/// parses, its status is final (not `running`), its start time is RFC 3339,
/// its run id is a plain directory name, `records.jsonl` holds a phase and `metrics.jsonl`, when
/// there is one, parses.
pub fn read_finished(dir: &Path) -> Result<FinishedRun, RecordError> {
    let refuse = |reason: String| RecordError::NotFinished {
        dir: dir.to_path_buf(),
        reason,
    };
    if !dir.join(rundir::MANIFEST_FILE).is_file() {
        return Err(refuse(format!("no {}", rundir::MANIFEST_FILE)));
    }
    let manifest = RunManifest::read(dir).map_err(|e| refuse(e.to_string()))?;
    if manifest.status == RunStatus::Running {
        return Err(refuse(format!(
            "{} says \"running\" (still running, or the process died)",
            rundir::MANIFEST_FILE
        )));
    }
    if chrono::DateTime::parse_from_rfc3339(&manifest.started_at).is_err() {
        return Err(refuse(format!(
            "started_at {:?} in {} is not an RFC 3339 time",
            manifest.started_at.chars().take(64).collect::<String>(),
            rundir::MANIFEST_FILE
        )));
    }
    if !plain_run_id(&manifest.run_id) {
        return Err(refuse(format!(
            "run id {:?} in {} is not a plain directory name",
            manifest.run_id.chars().take(64).collect::<String>(),
            rundir::MANIFEST_FILE
        )));
    }
    let data = reports::load(dir, 0).map_err(|e| refuse(e.to_string()))?;
    if data.main_phase().is_none() {
        return Err(refuse(format!("no phase in {}", rundir::RECORDS_FILE)));
    }
    // A metrics.jsonl that does not parse would fail the recording halfway.
    let metrics = dir.join(rundir::METRICS_FILE);
    if metrics.exists() {
        rundir::metrics::read_metrics(&metrics).map_err(|e| refuse(e.to_string()))?;
    }
    let figures = reports::summarize(&data).figures;
    Ok(FinishedRun { manifest, figures })
}

/// Whether a run id can name a directory: 1 to 200 characters of letters,
/// digits, `.`, `_`, `-`, not starting with `.` (what `harness run` makes).
pub fn plain_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The history's row for a run.
pub fn run_entry(dir: &Path, manifest: &RunManifest, figures: &BTreeMap<String, f64>) -> RunEntry {
    let status = serde_json::to_value(manifest.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    RunEntry {
        run_id: manifest.run_id.clone(),
        run_dir: dir.display().to_string(),
        started_at: manifest.started_at.clone(),
        model: manifest.model.clone(),
        scenario: manifest.scenario.clone(),
        mode: manifest.mode.clone(),
        backends: manifest.backends.clone(),
        dataset: manifest.dataset.clone(),
        labels: manifest.labels.clone().into_iter().collect(),
        status,
        valid: manifest.verdict.as_ref().map(|v| v.valid),
        reasons: manifest
            .verdict
            .as_ref()
            .map(|v| v.reasons.clone())
            .unwrap_or_default(),
        harness_version: manifest.harness_version.clone(),
        loadgen: manifest.loadgen.to_string(),
        metrics: figures.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    }
}

/// Records a finished run with its figures (summary.json `figures`) and
/// its metric series (metrics.jsonl, when there is one).
pub fn record(
    history: &mut History,
    dir: &Path,
    manifest: &RunManifest,
    figures: &BTreeMap<String, f64>,
) -> Result<(), RecordError> {
    history.record(&run_entry(dir, manifest, figures))?;
    let metrics = dir.join(rundir::METRICS_FILE);
    if metrics.is_file() {
        let points = metric_series(&rundir::metrics::read_metrics(&metrics)?);
        history.record_series(&manifest.run_id, &points)?;
    }
    Ok(())
}

/// The readings of metrics.jsonl the history keeps: the normalized ones
/// (server, GPU, host, process); series as scraped stay in the run
/// directory.
fn metric_series(samples: &[rundir::MetricsSample]) -> Vec<SeriesPoint> {
    samples
        .iter()
        .filter(|s| s.source != rundir::metrics::MetricSource::ServerRaw)
        .flat_map(|s| {
            s.values.iter().map(|(name, value)| SeriesPoint {
                t_ns: s.t_ns,
                source: s.source.as_str().to_owned(),
                instance: s.instance.clone(),
                name: name.clone(),
                value: *value,
            })
        })
        .collect()
}
