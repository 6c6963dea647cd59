//! The results history: `harness run` records every run; `harness history`
//! lists them or follows one metric over time.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use history::{Database, Filter, History, RunEntry};

use crate::cli::HistoryArgs;
use crate::outcome::Outcome;
/// Records a finished run with its figures (summary.json `figures`).
pub fn record(
    db: &Database,
    dir: &Path,
    manifest: &rundir::RunManifest,
    figures: &std::collections::BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let mut history = History::open(db)?;
    let status = serde_json::to_value(manifest.status)?
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    history.record(&RunEntry {
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
    })?;
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
fn metric_series(samples: &[rundir::MetricsSample]) -> Vec<history::SeriesPoint> {
    samples
        .iter()
        .filter(|s| s.source != rundir::metrics::MetricSource::ServerRaw)
        .flat_map(|s| {
            s.values.iter().map(|(name, value)| history::SeriesPoint {
                t_ns: s.t_ns,
                source: s.source.as_str().to_owned(),
                instance: s.instance.clone(),
                name: name.clone(),
                value: *value,
            })
        })
        .collect()
}

/// An empty trend: fine for a metric runs record (none recorded it yet
/// under this filter), a usage error (exit 2) listing the valid names for
/// any other.
fn check_metric_name(history: &History, metric: &str) -> anyhow::Result<()> {
    // Every figure of the registry is a name runs record.
    let mut known: Vec<String> = reports::figures::FIGURES
        .iter()
        .map(|f| f.name.to_owned())
        .collect();
    if known.iter().any(|k| k == metric) {
        return Ok(());
    }
    // Any other metric a recorded run holds is valid too.
    let everything = Filter::default();
    for run in history.list(&everything)? {
        for (name, _) in run.metrics {
            if name == metric {
                return Ok(());
            }
            if !known.contains(&name) {
                known.push(name);
            }
        }
    }
    Err(crate::outcome::UsageError(format!(
        "--metric {metric:?}: no such metric (valid metrics: {})",
        known.join(", ")
    ))
    .into())
}

/// `harness history`.
pub fn main(args: &HistoryArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    run(args, out)?;
    Ok(Outcome::Success)
}

fn run(args: &HistoryArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Database::Sqlite(path) = &args.db
        && !path.is_file()
    {
        anyhow::bail!(
            "{}: no history database (runs record into <output-dir>/{})",
            path.display(),
            crate::shared::DEFAULT_DB_FILE
        );
    }
    let history = History::open(&args.db)?;
    let filter = Filter {
        model: args.model.clone(),
        scenario: args.scenario.clone(),
        limit: Some(args.limit),
        ..Filter::default()
    };
    match &args.metric {
        None => {
            let runs = history.list(&filter)?;
            let mut table = crate::table::new(
                &[
                    "run",
                    "scenario",
                    "mode",
                    "result",
                    "samples/s",
                    "TTFT p99 ms",
                    "TPOT p99 ms",
                ],
                &[4, 5, 6],
            );
            for run in &runs {
                let metric = |name: &str| {
                    run.metrics
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or_else(|| "-".to_owned(), |(_, v)| format!("{v:.2}"))
                };
                let result = match run.valid {
                    Some(true) => "VALID",
                    Some(false) => "INVALID",
                    None => "-",
                };
                table.add_row([
                    run.run_id.clone(),
                    run.scenario.clone(),
                    run.mode.clone(),
                    result.to_owned(),
                    metric("samples_per_s"),
                    metric("ttft_p99_ms"),
                    metric("tpot_p99_ms"),
                ]);
            }
            crate::table::write(&table, out)?;
        }
        Some(metric) => {
            let mut trend = history.trend(metric, &filter)?;
            if trend.is_empty() {
                check_metric_name(&history, metric)?;
            }
            let skip = trend.len().saturating_sub(args.limit);
            trend.drain(..skip);
            let mut table = crate::table::new(&["started", "run", metric], &[2]);
            for (at, run, value) in &trend {
                table.add_row([at.clone(), run.clone(), format!("{value:.3}")]);
            }
            crate::table::write(&table, out)?;
            if let Some(path) = &args.chart {
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("--chart needs a file name")?;
                let series = reports::charts::XySeries {
                    name: metric.clone(),
                    points: trend
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (i as f64, t.2))
                        .collect(),
                };
                reports::charts::xy_chart(
                    dir,
                    name,
                    &format!("{metric} over the last {} runs", trend.len()),
                    ("run (oldest to newest)", metric),
                    &[series],
                )?;
                writeln!(out, "wrote {}", path.display())?;
            }
        }
    }
    Ok(())
}
