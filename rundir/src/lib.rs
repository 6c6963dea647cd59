//! The run directory: the contract between running load and reporting on it.
//!
//! `harness run` writes a fresh directory per run; every report, comparison
//! and gate reads only these files, never live state, so a report can be
//! remade at any time and a crashed run's directory still yields one.
//!
//! | file | written | content |
//! |---|---|---|
//! | [`MANIFEST_FILE`] `run.json` | at start, rewritten at end | [`RunManifest`]: what ran, status, verdict |
//! | [`RECORDS_FILE`] `records.jsonl` | streamed | per phase: a [`PhaseHeader`], one [`QueryRecord`] per sample, a [`PhaseEnd`] |
//! | [`METRICS_FILE`] `metrics.jsonl` | streamed | one [`MetricsSample`] per source per interval |
//! | `mlperf_log_*` | by loadgen | LoadGen's summary, detail, accuracy and trace logs |
//!
//! Lines of `records.jsonl` carry a `"type"` tag first: `"phase"`, `"query"`
//! or `"phase_end"`. Times in records are ns since their phase's start; a
//! phase header's `run_offset_ns` places that start on the run clock, which
//! metrics samples use (`t_ns`, ns since the run started).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use loadgen::{PhaseEnd, PhaseStart, QueryRecord};

pub mod metrics;
pub mod metrics_csv;
mod records;

pub use metrics::MetricsSample;
pub use records::{ClosedRecords, RecordsWriter};

/// The run manifest.
pub const MANIFEST_FILE: &str = "run.json";
/// Per-query records, streamed.
pub const RECORDS_FILE: &str = "records.jsonl";
/// Metrics time series, streamed.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Version of the run-directory format written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// Errors reading or writing run-directory files. Each names the file and,
/// for parse errors, the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunDirError {
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line that is not valid JSON of the expected shape.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The directory is not a run directory.
    #[error("{path}: not a run directory (no {MANIFEST_FILE} or {RECORDS_FILE})")]
    NotARunDir {
        /// The directory.
        path: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a new run directory under `parent`, named
/// `<YYYYmmdd-HHMMSS>-<label>`, adding `-2`, `-3`, ... if that name exists.
///
/// Never reuses or overwrites an existing directory: the final `create_dir`
/// fails if another process created the same name first, and we move on.
pub fn create_run_dir(parent: &Path, label: &str) -> Result<PathBuf, RunDirError> {
    if fs::metadata(parent).is_ok_and(|m| !m.is_dir()) {
        // create_dir_all would only say "File exists".
        return Err(io_err(parent)(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it is a file, not a directory for run directories",
        )));
    }
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if label.is_empty() {
        format!("{stamp}")
    } else {
        format!("{stamp}-{label}")
    };
    for n in 1..10_000 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = parent.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        }
    }
    Err(RunDirError::Io {
        path: parent.join(base),
        source: io::Error::new(io::ErrorKind::AlreadyExists, "no free run directory name"),
    })
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Load is running (or the process died: no end was recorded).
    Running,
    /// The run finished normally.
    Complete,
    /// The run was stopped by a signal or a stop request.
    Interrupted,
    /// The run failed before producing results.
    Failed,
}

/// The outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunVerdict {
    /// MLPerf validity (and no failed queries, no interruption).
    pub valid: bool,
    /// Why not, one line each.
    pub reasons: Vec<String>,
}

/// Which LoadGen implementation issued a run's queries and wrote its
/// `mlperf_log_*` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadgenImplementation {
    /// This repository's Rust reimplementation (`loadgen/`).
    HarnessRust,
    /// MLCommons' C++ LoadGen (`mlcommons-loadgen`), linked in through the
    /// `loadgen-official` crate (`harness run --loadgen official`).
    MlcommonsLoadgen,
}

impl LoadgenImplementation {
    /// The name run.json and summary.json use (`harness-rust`,
    /// `mlcommons-loadgen`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadgenImplementation::HarnessRust => "harness-rust",
            LoadgenImplementation::MlcommonsLoadgen => "mlcommons-loadgen",
        }
    }
}

/// `run.json`'s `loadgen`: the LoadGen that produced the run, as that code
/// names itself. MLPerf's closed division accepts only runs of the official
/// LoadGen, so this is what a submission checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadgenIdentity {
    /// Which implementation.
    pub implementation: LoadgenImplementation,
    /// Its version: the Rust crate's version, or the C++ library's
    /// `loadgen_version` (e.g. `6.0.17`). Empty when not recorded.
    pub version: String,
    /// The commit the library was built from, as the library reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_hash: Option<String>,
    /// What the Rust LoadGen's clock readings came from: `tsc` (the CPU's
    /// time-stamp counter, anchored to the monotonic clock every
    /// millisecond) or `clock_gettime`. Absent for the official LoadGen
    /// (`std::chrono::high_resolution_clock`) and in older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

impl LoadgenIdentity {
    /// The Rust LoadGen of this build.
    pub fn harness_rust() -> LoadgenIdentity {
        LoadgenIdentity {
            implementation: LoadgenImplementation::HarnessRust,
            version: loadgen::logging::VERSION.to_owned(),
            git_hash: None,
            clock: Some(loadgen::clock_source().to_owned()),
        }
    }
}

impl Default for LoadgenIdentity {
    /// What a run.json without the field means: it predates the field, when
    /// only the Rust LoadGen existed. Its version is not known here
    /// ([`RunManifest::read`] fills in the harness version, which the Rust
    /// LoadGen shares).
    fn default() -> LoadgenIdentity {
        LoadgenIdentity {
            implementation: LoadgenImplementation::HarnessRust,
            version: String::new(),
            git_hash: None,
            clock: None,
        }
    }
}

impl std::fmt::Display for LoadgenIdentity {
    /// `mlcommons-loadgen 6.0.17 @ b66003e1`, `harness-rust 0.1.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.implementation.as_str())?;
        if !self.version.is_empty() {
            write!(f, " {}", self.version)?;
        }
        if let Some(hash) = &self.git_hash {
            write!(f, " @ {hash}")?;
        }
        Ok(())
    }
}

/// `run.json`: what ran, how, and how it ended.
///
/// Never holds secrets: backends are recorded without credentials and the
/// command line is recorded after redaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Harness version that wrote it.
    pub harness_version: String,
    /// The LoadGen that produced the run (its queries and `mlperf_log_*`
    /// files). Files written before the field existed read as the Rust
    /// LoadGen.
    #[serde(default)]
    pub loadgen: LoadgenIdentity,
    /// Directory name of the run.
    pub run_id: String,
    /// Local start time, RFC 3339.
    pub started_at: String,
    /// Wall clock at the run clock's zero, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// Local end time, RFC 3339, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Where the run stands.
    pub status: RunStatus,
    /// The command line, redacted.
    pub command: Vec<String>,
    /// LoadGen model key (e.g. `llama3_1-8b`).
    pub model: String,
    /// Scenario name.
    pub scenario: String,
    /// Test mode name.
    pub mode: String,
    /// Backend base URLs, without credentials; `sim://` for the built-in simulator.
    pub backends: Vec<String>,
    /// Dataset description (path or generator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Free-form labels (sweep point, config name, git commit...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The settings and options in force, for reference.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Set when the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<RunVerdict>,
    /// LoadGen's results (its `PerformanceSummary`, as written to
    /// mlperf_log_summary.txt and mlperf_log_detail.txt) of the performance
    /// phase that stands for the test, kept exactly so every report shows
    /// LoadGen's own figures. Absent for accuracy-only runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadgen_results: Option<loadgen::results::PerformanceSummary>,
    /// What the run noticed that the records cannot show (answers longer
    /// than their `max_tokens`), one line each; summary.json lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RunManifest {
    /// Writes `run.json` into `dir` atomically (temporary file, then rename),
    /// so a crash never leaves a half-written manifest.
    pub fn write(&self, dir: &Path) -> Result<(), RunDirError> {
        let path = dir.join(MANIFEST_FILE);
        let tmp = dir.join(format!(".{MANIFEST_FILE}.tmp"));
        let mut text = serde_json::to_string_pretty(self).map_err(|e| RunDirError::Parse {
            path: path.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        text.push('\n');
        if let Err(e) = fs::write(&tmp, &text) {
            let _ = fs::remove_file(&tmp);
            // A full disk has no room for a second copy, but rewriting the
            // manifest in place first frees its own blocks: the run's end is
            // recorded even then.
            if path.exists() && fs::write(&path, &text).is_ok() {
                return Ok(());
            }
            return Err(io_err(&tmp)(e));
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Records how a run ended when the normal path could not (an error, a
    /// signal): a `run.json` that still says `running` gets `status` and
    /// `reason`, and the run is marked not valid. Returns whether it
    /// changed anything (a run that already ended is left alone).
    pub fn end_unfinished(
        dir: &Path,
        status: RunStatus,
        reason: &str,
    ) -> Result<bool, RunDirError> {
        Self::end_with(dir, &[RunStatus::Running], status, reason)
    }

    /// A signal while the reports of a run are written: the measurement
    /// ended (`complete`), but its report set did not, so `run.json` says
    /// `interrupted` with `reason` and the run is marked not valid. A run
    /// still `running` is marked the same way; one that already failed or
    /// was interrupted is left alone. Returns whether it changed anything.
    pub fn interrupt_reporting(dir: &Path, reason: &str) -> Result<bool, RunDirError> {
        Self::end_with(
            dir,
            &[RunStatus::Running, RunStatus::Complete],
            RunStatus::Interrupted,
            reason,
        )
    }

    fn end_with(
        dir: &Path,
        from: &[RunStatus],
        status: RunStatus,
        reason: &str,
    ) -> Result<bool, RunDirError> {
        let mut manifest = RunManifest::read(dir)?;
        if !from.contains(&manifest.status) {
            return Ok(false);
        }
        if manifest.finished_at.is_none() {
            manifest.finished_at = Some(chrono::Local::now().to_rfc3339());
        }
        manifest.status = status;
        let mut reasons = manifest
            .verdict
            .take()
            .map(|v| v.reasons)
            .unwrap_or_default();
        reasons.push(reason.to_owned());
        manifest.verdict = Some(RunVerdict {
            valid: false,
            reasons,
        });
        manifest.write(dir)?;
        Ok(true)
    }

    /// Reads `run.json` from `dir`.
    pub fn read(dir: &Path) -> Result<RunManifest, RunDirError> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        let mut manifest: RunManifest =
            serde_json::from_str(&text).map_err(|e| RunDirError::Parse {
                path,
                line: e.line(),
                message: e.to_string(),
            })?;
        // A manifest from before the `loadgen` field: the Rust LoadGen ran,
        // and it is versioned with the harness.
        if manifest.loadgen.version.is_empty()
            && manifest.loadgen.implementation == LoadgenImplementation::HarnessRust
        {
            manifest.loadgen.version = manifest.harness_version.clone();
        }
        Ok(manifest)
    }
}

/// The first line of each phase in `records.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseHeader {
    /// Where the phase's zero lies on the run clock (ns since the run started).
    pub run_offset_ns: u64,
    /// What loadgen announced.
    #[serde(flatten)]
    pub start: PhaseStart,
}

/// One line of `records.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordLine {
    /// A phase begins.
    Phase(Box<PhaseHeader>),
    /// A sample completed.
    Query(QueryRecord),
    /// A phase ended.
    PhaseEnd(PhaseEnd),
}

/// Appends lines to a JSONL file from a background thread.
///
/// `send` never blocks on disk: lines go through a channel to a writer
/// thread that flushes at least every `flush_interval`, so a crash loses at
/// most that much. [`JsonlWriter::finish`] flushes everything and reports the
/// first write error, if any.
#[derive(Debug)]
pub struct JsonlWriter<T: Serialize + Send + 'static> {
    tx: Option<mpsc::Sender<T>>,
    thread: Option<thread::JoinHandle<Result<u64, RunDirError>>>,
    path: PathBuf,
}

/// How often streamed files reach the disk at the latest.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

impl<T: Serialize + Send + 'static> JsonlWriter<T> {
    /// Creates `path` (failing if it exists: runs never overwrite) and starts
    /// the writer thread.
    pub fn create(path: &Path) -> Result<JsonlWriter<T>, RunDirError> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err(path))?;
        let (tx, rx) = mpsc::channel::<T>();
        let owned = path.to_path_buf();
        let thread = thread::Builder::new()
            .name("jsonl-writer".into())
            .spawn(move || write_loop(&owned, file, &rx))
            .map_err(io_err(path))?;
        Ok(JsonlWriter {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// Queues one line. Returns false if the writer has stopped (after an
    /// I/O error); the error is reported by [`JsonlWriter::finish`].
    pub fn send(&self, line: T) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(line).is_ok())
    }

    /// A sender usable from other threads.
    pub fn sender(&self) -> Option<mpsc::Sender<T>> {
        self.tx.clone()
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and closes the file once every sender is gone; returns the
    /// number of lines written.
    pub fn finish(mut self) -> Result<u64, RunDirError> {
        self.close()
    }

    fn close(&mut self) -> Result<u64, RunDirError> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(handle) => {
                handle.thread().unpark();
                handle.join().unwrap_or_else(|_| {
                    Err(RunDirError::Io {
                        path: self.path.clone(),
                        source: io::Error::other("writer thread panicked"),
                    })
                })
            }
            None => Ok(0),
        }
    }
}

impl<T: Serialize + Send + 'static> Drop for JsonlWriter<T> {
    fn drop(&mut self) {
        // Errors were either reported by finish() or have nowhere to go.
        let _ = self.close();
    }
}

/// How long the writer thread sleeps when its queue is empty. It is not
/// woken per line: a sender that found the thread parked on the channel
/// would pay a futex wake and the thread a context switch for every line
/// (one per completed sample in `records.jsonl`), so the thread drains the
/// queue in batches instead, and lines reach the file at most this much
/// later (well within [`FLUSH_INTERVAL`]).
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

fn write_loop<T: Serialize>(
    path: &Path,
    file: File,
    rx: &mpsc::Receiver<T>,
) -> Result<u64, RunDirError> {
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut written = 0u64;
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        match rx.try_recv() {
            Ok(line) => {
                serde_json::to_writer(&mut out, &line).map_err(|e| RunDirError::Io {
                    path: path.to_path_buf(),
                    source: e.into(),
                })?;
                out.write_all(b"\n").map_err(io_err(path))?;
                written += 1;
                dirty = true;
                continue;
            }
            // `close` unparks the thread after dropping the last sender it
            // holds, so the end is seen at once.
            Err(mpsc::TryRecvError::Empty) => thread::park_timeout(DRAIN_INTERVAL),
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
        if dirty && last_flush.elapsed() >= FLUSH_INTERVAL {
            out.flush().map_err(io_err(path))?;
            last_flush = Instant::now();
            dirty = false;
        }
    }
    out.flush().map_err(io_err(path))?;
    out.get_ref().sync_data().map_err(io_err(path))?;
    Ok(written)
}

/// The records of one phase, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRecords {
    /// The phase header.
    pub header: PhaseHeader,
    /// Every sample record, in completion order.
    pub records: Vec<QueryRecord>,
    /// The phase end, absent if the run died before it.
    pub end: Option<PhaseEnd>,
}

/// Everything in a `records.jsonl`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordsFile {
    /// Phases in file order.
    pub phases: Vec<PhaseRecords>,
    /// A last line cut short (the writer died mid-line) was skipped.
    pub truncated_tail: bool,
}

impl RecordsFile {
    /// The performance phase, if the run had one.
    pub fn performance(&self) -> Option<&PhaseRecords> {
        self.phases
            .iter()
            .find(|p| p.header.start.phase == loadgen::Phase::Performance)
    }
}

/// Reads a `records.jsonl`.
///
/// A malformed line is an error naming the file and line, except a last line
/// without its newline, which is what a crash mid-write leaves: it is
/// skipped and flagged in [`RecordsFile::truncated_tail`].
pub fn read_records(path: &Path) -> Result<RecordsFile, RunDirError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = RecordsFile::default();
    let mut buf = String::new();
    let mut line_no = 0usize;
    // Each sample's line, by seq: a duplicated line (a file edited or
    // concatenated by hand) must not count a sample twice.
    let mut seen: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let complete = buf.ends_with('\n');
        let text = buf.trim_end();
        if text.is_empty() {
            continue;
        }
        let parsed = parse_record_line(text);
        let line = match parsed {
            Ok(line) => line,
            Err(_) if !complete => {
                out.truncated_tail = true;
                break;
            }
            Err(message) => {
                return Err(RunDirError::Parse {
                    path: path.to_path_buf(),
                    line: line_no,
                    message,
                });
            }
        };
        match line {
            RecordLine::Phase(header) => {
                seen.clear();
                out.phases.push(PhaseRecords {
                    header: *header,
                    records: Vec::new(),
                    end: None,
                });
            }
            RecordLine::Query(record) => match out.phases.last_mut() {
                Some(_) if seen.contains_key(&record.seq) => {
                    return Err(RunDirError::Parse {
                        path: path.to_path_buf(),
                        line: line_no,
                        message: format!(
                            "sample seq {} was already recorded on line {}: the file holds a \
                             duplicated line",
                            record.seq, seen[&record.seq]
                        ),
                    });
                }
                Some(phase) => {
                    seen.insert(record.seq, line_no);
                    phase.records.push(record);
                }
                None => {
                    return Err(RunDirError::Parse {
                        path: path.to_path_buf(),
                        line: line_no,
                        message: "query record before any phase header".into(),
                    });
                }
            },
            RecordLine::PhaseEnd(end) => match out.phases.last_mut() {
                Some(phase) => phase.end = Some(end),
                None => {
                    return Err(RunDirError::Parse {
                        path: path.to_path_buf(),
                        line: line_no,
                        message: "phase end before any phase header".into(),
                    });
                }
            },
        }
    }
    Ok(out)
}

/// Parses one line. Query lines, by far the most numerous, are written with
/// their tag first and parsed straight into [`QueryRecord`] (serde ignores
/// the tag field), which avoids serde's buffering of internally tagged enums.
fn parse_record_line(text: &str) -> Result<RecordLine, String> {
    if text.starts_with(r#"{"type":"query","#) {
        return serde_json::from_str::<QueryRecord>(text)
            .map(RecordLine::Query)
            .map_err(|e| e.to_string());
    }
    serde_json::from_str::<RecordLine>(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::{EffectiveSettings, Phase, Scenario, TestMode, TestSettings};

    fn header() -> PhaseHeader {
        let settings = TestSettings {
            scenario: Scenario::Server,
            ..TestSettings::default()
        };
        let (effective, _) = EffectiveSettings::new(&settings, 10, 10).unwrap();
        PhaseHeader {
            run_offset_ns: 5,
            start: PhaseStart {
                phase: Phase::Performance,
                scenario: Scenario::Server,
                mode: TestMode::PerformanceOnly,
                start_unix_ns: 1_700_000_000_000_000_000,
                settings: effective,
                query_count: 2,
                sample_count: 2,
            },
        }
    }

    fn record(seq: u64) -> QueryRecord {
        QueryRecord {
            seq,
            query: seq,
            sample_index: 3,
            scheduled_ns: 10,
            issued_ns: 11,
            first_token_ns: Some(20),
            end_ns: 40,
            n_tokens: 3,
            extras: loadgen::RecordExtras {
                endpoint: Some(0),
                chunk_ns: vec![20, 30, 40],
                chunk_tokens: vec![1, 1, 1],
                ..loadgen::RecordExtras::default()
            }
            .boxed(),
        }
    }

    #[test]
    fn the_records_writer_places_phases_on_the_run_clock() {
        use loadgen::RunObserver;
        let tmp = tempfile::tempdir().unwrap();
        let start = header().start;
        let writer = RecordsWriter::create(
            tmp.path(),
            start.start_unix_ns - 1_000,
            loadgen::Scenario::Server,
        )
        .unwrap();
        writer.phase_started(&start);
        writer.sample_completed(record(7));
        assert_eq!(writer.finish().unwrap(), 2);
        let file = read_records(&tmp.path().join(RECORDS_FILE)).unwrap();
        assert_eq!(file.phases[0].header.run_offset_ns, 1_000);
        assert_eq!(file.phases[0].records, vec![record(7)]);
        assert!(
            file.phases[0].end.is_none(),
            "a run that died keeps its records"
        );
        // A second writer never overwrites the first one's file.
        assert!(RecordsWriter::create(tmp.path(), 0, loadgen::Scenario::Server).is_err());
    }

    #[test]
    fn run_dirs_are_never_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create_run_dir(tmp.path(), "server qps=4").unwrap();
        let b = create_run_dir(tmp.path(), "server qps=4").unwrap();
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("server_qps_4")
        );
        assert!(b.file_name().unwrap().to_str().unwrap().ends_with("-2"));
    }

    #[test]
    fn records_round_trip_through_writer_and_reader() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(RECORDS_FILE);
        let writer = JsonlWriter::<RecordLine>::create(&path).unwrap();
        writer.send(RecordLine::Phase(Box::new(header())));
        writer.send(RecordLine::Query(record(0)));
        writer.send(RecordLine::Query(record(1)));
        writer.send(RecordLine::PhaseEnd(PhaseEnd {
            phase: Phase::Performance,
            end_ns: 99,
            completed_samples: 2,
            failed_samples: 0,
            valid: Some(true),
            invalid_reasons: vec![],
            interrupted: false,
        }));
        assert_eq!(writer.finish().unwrap(), 4);

        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with(r#"{"type":"query","#)
        );
        let file = read_records(&path).unwrap();
        assert_eq!(file.phases.len(), 1);
        let perf = file.performance().unwrap();
        assert_eq!(perf.header, header());
        assert_eq!(perf.records, vec![record(0), record(1)]);
        assert_eq!(perf.end.as_ref().unwrap().end_ns, 99);
        assert!(!file.truncated_tail);

        // Writing again to the same file is refused.
        assert!(JsonlWriter::<RecordLine>::create(&path).is_err());
    }

    #[test]
    fn a_cut_last_line_is_skipped_but_a_bad_middle_line_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(RECORDS_FILE);
        let head = serde_json::to_string(&RecordLine::Phase(Box::new(header()))).unwrap();
        let q = serde_json::to_string(&RecordLine::Query(record(0))).unwrap();
        fs::write(&path, format!("{head}\n{q}\n{}", &q[..20])).unwrap();
        let file = read_records(&path).unwrap();
        assert!(file.truncated_tail);
        assert_eq!(file.phases[0].records.len(), 1);
        assert!(file.phases[0].end.is_none());

        fs::write(&path, format!("{head}\n{{oops\n{q}\n")).unwrap();
        let err = read_records(&path).unwrap_err().to_string();
        assert!(err.contains("records.jsonl:2:"), "{err}");
    }

    #[test]
    fn manifest_round_trips_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let manifest = RunManifest {
            format_version: FORMAT_VERSION,
            harness_version: "0.1.0".into(),
            loadgen: LoadgenIdentity {
                implementation: LoadgenImplementation::MlcommonsLoadgen,
                version: "6.0.17".into(),
                git_hash: Some("b66003e1".into()),
                clock: None,
            },
            run_id: "x".into(),
            started_at: "2026-11-22T14:00:00+00:00".into(),
            start_unix_ns: 1,
            finished_at: None,
            status: RunStatus::Running,
            command: vec!["harness".into(), "run".into()],
            model: "llama3_1-8b".into(),
            scenario: "Server".into(),
            mode: "PerformanceOnly".into(),
            backends: vec!["sim://".into()],
            dataset: None,
            labels: BTreeMap::new(),
            config: serde_json::Value::Null,
            verdict: None,
            loadgen_results: None,
            warnings: Vec::new(),
        };
        manifest.write(tmp.path()).unwrap();
        assert_eq!(RunManifest::read(tmp.path()).unwrap(), manifest);
        assert!(!tmp.path().join(".run.json.tmp").exists());
        let text = fs::read_to_string(tmp.path().join(MANIFEST_FILE)).unwrap();
        assert!(
            text.contains(r#""implementation": "mlcommons-loadgen""#),
            "{text}"
        );
        assert_eq!(
            manifest.loadgen.to_string(),
            "mlcommons-loadgen 6.0.17 @ b66003e1"
        );
    }

    #[test]
    fn only_a_reporting_interruption_turns_a_complete_run_interrupted() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join(MANIFEST_FILE),
            r#"{"format_version":1,"harness_version":"0.0.9","run_id":"r",
               "started_at":"2026-11-22T14:00:00+00:00","start_unix_ns":1,
               "finished_at":"2026-11-22T14:10:00+00:00",
               "status":"complete","command":["harness"],"model":"llama3_1-8b",
               "scenario":"Server","mode":"PerformanceOnly","backends":["sim://"],
               "verdict":{"valid":true,"reasons":[]}}"#,
        )
        .unwrap();
        // An error or a signal after the run's end leaves a complete run alone...
        assert!(!RunManifest::end_unfinished(tmp.path(), RunStatus::Failed, "x").unwrap());
        assert_eq!(
            RunManifest::read(tmp.path()).unwrap().status,
            RunStatus::Complete
        );
        // ...but one while its reports are written does not.
        assert!(RunManifest::interrupt_reporting(tmp.path(), "stopped while reporting").unwrap());
        let m = RunManifest::read(tmp.path()).unwrap();
        assert_eq!(m.status, RunStatus::Interrupted);
        assert_eq!(m.finished_at.as_deref(), Some("2026-11-22T14:10:00+00:00"));
        let verdict = m.verdict.unwrap();
        assert!(!verdict.valid);
        assert_eq!(verdict.reasons, ["stopped while reporting"]);
        // An interrupted run keeps its first reason.
        assert!(!RunManifest::interrupt_reporting(tmp.path(), "again").unwrap());
    }

    #[test]
    fn a_manifest_without_loadgen_reads_as_the_rust_loadgen_of_its_harness() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join(MANIFEST_FILE),
            r#"{"format_version":1,"harness_version":"0.0.9","run_id":"old",
               "started_at":"2026-11-22T14:00:00+00:00","start_unix_ns":1,
               "status":"complete","command":["harness"],"model":"llama3_1-8b",
               "scenario":"Server","mode":"PerformanceOnly","backends":["sim://"]}"#,
        )
        .unwrap();
        let manifest = RunManifest::read(tmp.path()).unwrap();
        assert_eq!(
            manifest.loadgen,
            LoadgenIdentity {
                implementation: LoadgenImplementation::HarnessRust,
                version: "0.0.9".into(),
                git_hash: None,
                clock: None,
            }
        );
        assert_eq!(manifest.loadgen.to_string(), "harness-rust 0.0.9");
    }
}
