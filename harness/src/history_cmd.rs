//! The results history: `harness run` records every run; `harness history`
//! lists them or follows one metric over time.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use history::{Database, Filter, History, RunEntry};

use crate::cli::{HistoryAction, HistoryArgs, HistoryPruneArgs};
use crate::outcome::Outcome;
/// Records a finished run with its figures (summary.json `figures`):
/// `service::record::record`, the function uploads and imports use too.
pub fn record(
    db: &Database,
    dir: &Path,
    manifest: &rundir::RunManifest,
    figures: &std::collections::BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let mut history = History::open(db)?;
    service::record::record(&mut history, dir, manifest, figures)?;
    Ok(())
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
    match &args.action {
        None => run(args, out)?,
        Some(HistoryAction::Import(import_args)) => {
            return import(&args.db, &import_args.dirs, out);
        }
        Some(HistoryAction::Prune(prune_args)) => prune(&args.db, prune_args, out)?,
    }
    Ok(Outcome::Success)
}

/// `harness history import`: records each finished run directory not yet
/// recorded; fails (exit 1) when any directory was refused, after trying
/// them all.
fn import(db: &Database, dirs: &[PathBuf], out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut history = History::open(db)?;
    let (mut imported, mut skipped, mut refused) = (0usize, 0usize, 0usize);
    for dir in dirs {
        let run = match service::record::read_finished(dir) {
            Ok(run) => run,
            Err(e) => {
                refused += 1;
                writeln!(out, "refused  {e}")?;
                continue;
            }
        };
        let id = &run.manifest.run_id;
        if history.contains(id)? {
            skipped += 1;
            writeln!(
                out,
                "skipped  {}: run {id} is already recorded",
                dir.display()
            )?;
            continue;
        }
        // An absolute path: `harness serve` finds the files wherever it
        // runs from.
        let stored = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        service::record::record(&mut history, &stored, &run.manifest, &run.figures)
            .with_context(|| format!("recording {}", dir.display()))?;
        imported += 1;
        writeln!(out, "imported {} as run {id}", dir.display())?;
    }
    writeln!(
        out,
        "{imported} imported, {skipped} skipped (already recorded), {refused} refused"
    )?;
    Ok(Outcome::success_if(refused == 0, Outcome::Failed))
}

/// `harness history prune`: removes history rows (never run directories),
/// saying which.
fn prune(db: &Database, args: &HistoryPruneArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if let Database::Sqlite(path) = db
        && !path.is_file()
    {
        anyhow::bail!("{}: no history database", path.display());
    }
    let mut history = History::open(db)?;
    let runs = history.list(&Filter::default())?;
    let doomed = prune_selection(&runs, args, chrono::Utc::now())?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for run in &doomed {
        if !args.dry_run {
            history.delete(&run.run_id)?;
        }
        writeln!(out, "{verb} {} (started {})", run.run_id, run.started_at)?;
    }
    writeln!(
        out,
        "{verb} {} of {} runs from {} (run directories are not touched)",
        doomed.len(),
        runs.len(),
        db
    )?;
    Ok(())
}

/// The runs a prune removes: started before `now - older_than`, or all but
/// the newest `keep` (by start instant, whatever offset each was recorded
/// in). A run whose start time does not parse is never removed by age.
fn prune_selection<'a>(
    runs: &'a [RunEntry],
    args: &HistoryPruneArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<&'a RunEntry>> {
    let started = |r: &RunEntry| chrono::DateTime::parse_from_rfc3339(&r.started_at).ok();
    if let Some(age) = args.older_than {
        let age = chrono::Duration::from_std(age).context("--older-than is too long")?;
        let cutoff = now - age;
        return Ok(runs
            .iter()
            .filter(|r| started(r).is_some_and(|t| t < cutoff))
            .collect());
    }
    let keep = args.keep.unwrap_or(usize::MAX);
    let mut newest_first: Vec<&RunEntry> = runs.iter().collect();
    // Unparseable start times sort as the newest: kept, not guessed at.
    newest_first.sort_by(|a, b| {
        started(b)
            .map(|t| t.to_utc())
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
            .cmp(
                &started(a)
                    .map(|t| t.to_utc())
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            )
            .then_with(|| b.run_id.cmp(&a.run_id))
    });
    Ok(newest_first.into_iter().skip(keep).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, started_at: &str) -> RunEntry {
        RunEntry {
            run_id: id.into(),
            run_dir: id.into(),
            started_at: started_at.into(),
            model: "m".into(),
            scenario: "Server".into(),
            mode: "PerformanceOnly".into(),
            backends: vec![],
            dataset: None,
            labels: vec![],
            status: "complete".into(),
            valid: Some(true),
            reasons: vec![],
            harness_version: String::new(),
            loadgen: String::new(),
            metrics: vec![],
        }
    }

    fn ids(runs: &[&RunEntry]) -> Vec<String> {
        runs.iter().map(|r| r.run_id.clone()).collect()
    }

    #[test]
    fn prune_compares_start_instants_not_text() {
        // b (09:30 at -02:00, i.e. 11:30 UTC) is newer than c (11:00 UTC)
        // although its text sorts first.
        let runs = [
            entry("a", "2026-11-01T10:00:00+00:00"),
            entry("b", "2026-11-20T09:30:00-02:00"),
            entry("c", "2026-11-20T11:00:00Z"),
            entry("bad", "yesterday"),
        ];
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .to_utc();
        let by_age = |s: &str| HistoryPruneArgs {
            older_than: Some(humantime::parse_duration(s).unwrap()),
            keep: None,
            dry_run: false,
        };
        assert_eq!(
            ids(&prune_selection(&runs, &by_age("10d"), now).unwrap()),
            ["a"]
        );
        // 45 minutes: c (1 h old) goes, b (30 min old) stays.
        assert_eq!(
            ids(&prune_selection(&runs, &by_age("45m"), now).unwrap()),
            ["a", "c"]
        );
        let keep = |n| HistoryPruneArgs {
            older_than: None,
            keep: Some(n),
            dry_run: false,
        };
        // The unparseable one counts as newest and is kept.
        assert_eq!(
            ids(&prune_selection(&runs, &keep(2), now).unwrap()),
            ["c", "a"]
        );
        assert!(prune_selection(&runs, &keep(4), now).unwrap().is_empty());
    }
}
