//! Statistical summaries, charts, CSV and HTML reports from run directories.
//!
//! [`generate`] reads a run directory's raw files (`run.json`,
//! `records.jsonl`, `metrics.jsonl`) and writes, next to them:
//!
//! | file | content |
//! |---|---|
//! | `summary.json` | [`summary::Summary`], schema in `reports/SCHEMA.md` |
//! | `queries.csv` | one row per sample of the reported phase ([`csv`]) |
//! | `metrics.csv` | metrics in long format, only when the run did not write it |
//! | `*.png` | charts ([`charts`]) |
//! | `report.html` | everything above in one self-contained page ([`html`]) |
//!
//! Run data files are never touched; report outputs are rewritten on each
//! call. Every output is first rendered to a temporary file (`.NAME.tmp`,
//! `.NAME.tmp.png`) and the set is renamed into place together only once
//! all of them rendered ([`stage_reports`], [`StagedReports::commit`]): a
//! reader never sees half a file, and a reporting phase that is stopped
//! midway leaves no new report beside the run's data.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub mod charts;
pub mod compare;
pub mod csv;
pub mod figures;
pub mod html;
pub mod load;
pub mod significance;
pub mod stats;
pub mod summary;
pub mod synthetic;

pub use load::{RunData, load};
pub use summary::{SCHEMA_VERSION, Summary, summarize};

/// `summary.json`.
pub const SUMMARY_FILE: &str = "summary.json";
/// `queries.csv`.
pub const QUERIES_CSV_FILE: &str = "queries.csv";
/// `report.html`.
pub const HTML_FILE: &str = "report.html";

/// Errors generating reports. Each names the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A malformed line.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// No `records.jsonl` in the directory.
    #[error("{path}: not a run directory (no {})", rundir::RECORDS_FILE)]
    NotARunDir {
        /// The directory.
        path: PathBuf,
    },
    /// A chart could not be drawn.
    #[error("{path}: drawing failed: {message}")]
    Chart {
        /// The chart file.
        path: PathBuf,
        /// The plotting error.
        message: String,
    },
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Draw PNG charts (and embed them in the HTML).
    pub charts: bool,
    /// Write `report.html`.
    pub html: bool,
    /// Write `queries.csv` and (if the run did not) `metrics.csv`.
    pub csv: bool,
    /// Parser threads for `records.jsonl`; 0 = available parallelism.
    pub threads: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            charts: true,
            html: true,
            csv: true,
            threads: 0,
        }
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportOutputs {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// Outputs not produced, each with the reason (`gpu.png: no GPU metrics`).
    pub skipped: Vec<String>,
    /// The run's data is partial (crashed, interrupted, truncated).
    pub incomplete: bool,
}

impl ReportOutputs {
    /// Lists what was written and skipped, one line each.
    pub fn render(&self, w: &mut impl Write) -> io::Result<()> {
        if self.incomplete {
            writeln!(
                w,
                "report: the run is incomplete (see summary.json completeness)"
            )?;
        }
        for f in &self.files {
            writeln!(w, "wrote {}", f.display())?;
        }
        for s in &self.skipped {
            writeln!(w, "skipped {s}")?;
        }
        Ok(())
    }
}

/// Where the output `path` is rendered before the set is renamed into
/// place. A chart keeps its extension last: the plotting backend picks the
/// image format from it.
pub(crate) fn staging_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged = if name.ends_with(".png") {
        format!(".{name}.tmp.png")
    } else {
        format!(".{name}.tmp")
    };
    path.with_file_name(staged)
}

/// Renders `name` in `dir` to its staging file ([`staging_path`]); the
/// returned final path exists once the set is committed.
pub(crate) fn write_output(
    dir: &Path,
    name: &str,
    render: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> Result<PathBuf, ReportError> {
    let path = dir.join(name);
    let tmp = staging_path(&path);
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ReportError::Io { path: p, source }
    };
    let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    render(&mut w).map_err(io_err(&tmp))?;
    w.flush().map_err(io_err(&tmp))?;
    Ok(path)
}

/// Reports rendered to their staging files, not yet in place.
#[derive(Debug)]
#[must_use = "the reports are in place only once committed"]
pub struct StagedReports(ReportOutputs);

impl StagedReports {
    /// Renames every staged report into place (`summary.json` last, so a
    /// `summary.json` beside the data means the set is there).
    pub fn commit(self) -> Result<ReportOutputs, ReportError> {
        let mut order: Vec<&PathBuf> = self.0.files.iter().collect();
        order.sort_by_key(|p| p.file_name().is_some_and(|n| n == SUMMARY_FILE));
        for path in order {
            std::fs::rename(staging_path(path), path).map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(self.0)
    }
}

/// Generates every report of the run directory `run_dir`.
pub fn generate(run_dir: &Path, opts: &ReportOptions) -> Result<ReportOutputs, ReportError> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let data = load::load(run_dir, threads)?;
    stage(&data, None, opts)?.commit()
}

/// Writes the reports of a loaded run whose summary is already computed
/// (`harness run` computes it once for the terminal, the history and the
/// reports): [`stage_reports`], then [`StagedReports::commit`].
pub fn write_reports(
    data: &RunData,
    summary: &Summary,
    opts: &ReportOptions,
) -> Result<ReportOutputs, ReportError> {
    stage_reports(data, summary, opts)?.commit()
}

/// Renders every report of a loaded run to its staging file; nothing is in
/// place until [`StagedReports::commit`].
pub fn stage_reports(
    data: &RunData,
    summary: &Summary,
    opts: &ReportOptions,
) -> Result<StagedReports, ReportError> {
    stage(data, Some(summary), opts)
}

/// [`stage_reports`], summarizing first when no summary is given. The CSV
/// files need no summary, and `queries.csv` (a row per sample) takes about as
/// long as the summary, charts and HTML together on a large run, so it is
/// written on a thread of its own while this one does the rest.
fn stage(
    data: &RunData,
    given: Option<&Summary>,
    opts: &ReportOptions,
) -> Result<StagedReports, ReportError> {
    std::thread::scope(|scope| {
        let csv = opts.csv.then(|| {
            scope.spawn(|| {
                let mut out = ReportOutputs::default();
                csv::write_all(data, &mut out).map(|()| out)
            })
        });
        let computed;
        let summary = match given {
            Some(s) => s,
            None => {
                computed = summarize(data);
                &computed
            }
        };
        let rest = stage_summary_charts_html(data, summary, opts);
        // Joined before `rest` is looked at: when it failed, the CSV thread's
        // outcome (a panic included) is dropped with it.
        let csv = csv.map(|csv| csv.join());
        let (summary_file, rest) = rest?;
        let mut out = ReportOutputs {
            incomplete: summary.completeness.incomplete,
            files: vec![summary_file],
            ..ReportOutputs::default()
        };
        match csv {
            Some(joined) => {
                let staged = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                out.files.extend(staged.files);
                out.skipped.extend(staged.skipped);
            }
            None => out.skipped.push("csv: disabled".into()),
        }
        out.files.extend(rest.files);
        out.skipped.extend(rest.skipped);
        Ok(StagedReports(out))
    })
}

/// `summary.json`, then the charts and `report.html`: the summary's path
/// (first in [`ReportOutputs`]) and what goes after the CSV files.
fn stage_summary_charts_html(
    data: &RunData,
    summary: &Summary,
    opts: &ReportOptions,
) -> Result<(PathBuf, ReportOutputs), ReportError> {
    let run_dir = data.dir.as_path();
    let summary_file = write_output(run_dir, SUMMARY_FILE, |w| summary::render_json(summary, w))?;
    let mut out = ReportOutputs::default();
    let charts = if opts.charts {
        charts::draw_all(data, summary, &mut out)?
    } else {
        out.skipped.push("charts: disabled".into());
        Vec::new()
    };
    if opts.html {
        out.files.push(write_output(run_dir, HTML_FILE, |w| {
            html::render(summary, &charts, w)
        })?);
    } else {
        out.skipped.push("report.html: disabled".into());
    }
    Ok((summary_file, out))
}
