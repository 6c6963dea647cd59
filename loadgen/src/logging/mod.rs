//! LoadGen's four log files: `mlperf_log_detail.txt`, `mlperf_log_summary.txt`,
//! `mlperf_log_accuracy.json` and (optionally) `mlperf_log_trace.json`.
//!
//! A [`LogWriter`] owns the files. Every call formats nothing and writes
//! nothing on the calling thread beyond taking a timestamp and sending a
//! message: a background thread renders and writes, and flushes whenever its
//! queue runs empty, so a crash keeps everything logged before it. Files are
//! created new; an existing file is an error, never overwritten.
//!
//! The test driver calls it in LoadGen's order:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use loadgen::*;
//! # use loadgen::logging::{LogHeader, LogWriter};
//! # fn demo(log_settings: &LogSettings, effective: &EffectiveSettings,
//! #         warnings: &[SettingsWarning], config: &ConfigLoader,
//! #         loaded: &[u64], schedule: &Schedule, result: &PerformanceResult)
//! #         -> Result<(), Box<dyn std::error::Error>> {
//! let header = LogHeader::new("MySUT", "MyQSL", 13368, 13368, effective.requested.scenario,
//!                             effective.use_token_latencies);
//! let log = Arc::new(LogWriter::open(log_settings, &header)?);   // version keys, sut/qsl
//! log.log_config_diagnostics(config.diagnostics());              // "Multiple conf files"...
//! log.log_settings(effective, warnings);                         // requested_*, effective_*
//! log.generic_message("Starting performance mode");
//! log.log_loaded_qsl_set(loaded);
//! log.log_generated(schedule);                                   // generated_*
//! let phase_log = LogWriter::phase_log(&log, schedule.first_sample_id());
//! // let measurements = run_phase(&PhaseRequest { log: phase_log, .. });
//! // log.log_phase_end(&measurements);                          // logger_*, power_*
//! let summary = PerformanceSummary::compute(effective, result);
//! log.log_results(effective, &summary)?;                        // summary file + result_* keys
//! let paths = log.finish()?;                                     // trailer, footers, flush
//! # Ok(()) }
//! ```
//!
//! Accuracy-log `seq_id`s: the run loop numbers samples from 0 within a
//! phase; [`LogWriter::phase_log`] adds the schedule's `first_sample_id`, so
//! `seq_id` is LoadGen's continuing sequence id (an accuracy phase followed
//! by a performance phase keeps counting).

pub mod accuracy;
pub mod detail;
pub mod summary;
pub mod trace;

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::results::PerformanceSummary;
use crate::run::{PhaseLog, PhaseMeasurements, RuntimeError};
use crate::schedule::Schedule;
use crate::settings::{EffectiveSettings, LogSettings, Scenario, SettingsWarning};
use accuracy::AccuracyFormat;
use detail::{DetailValue, LineMeta};

/// This implementation's version, logged under LoadGen's `loadgen_version`
/// key as `"<crate version> @ <commit>"`, the shape LoadGen uses
/// (`"6.0.17 @ b66003e1"`). The submission checker only requires the key to
/// parse; it reads it for endpoint submissions (`endpoints_version`) and
/// never compares it with a LoadGen release.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the log files could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A log file could not be created (it exists, or the directory is missing).
    #[error("cannot create log file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing a log file failed.
    #[error("cannot write log file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The background writer thread died.
    #[error("log writer thread ended unexpectedly")]
    WriterGone,
}

/// Identity of the run, logged at the top of the detail log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHeader {
    /// `sut_name`.
    pub sut_name: String,
    /// `qsl_name`.
    pub qsl_name: String,
    /// `qsl_reported_total_count`.
    pub qsl_total_count: u64,
    /// `qsl_reported_performance_count`.
    pub qsl_performance_count: u64,
    /// `get_sut_name_duration_ns`.
    pub get_sut_name_duration_ns: u64,
    /// Scenario (requested): decides whether accuracy entries carry `token_data`.
    pub scenario: Scenario,
    /// `use_token_latencies` (requested): accuracy entries carry `token_count`.
    pub use_token_latencies: bool,
    /// Commit of this build, if known (goes into `loadgen_version`).
    pub git_commit: Option<String>,
    /// Wall-clock start, for `test_datetime` and file-name datetimes.
    pub start: SystemTime,
}

impl LogHeader {
    /// A header with the current time, no commit and a zero name duration.
    pub fn new(
        sut_name: &str,
        qsl_name: &str,
        qsl_total_count: u64,
        qsl_performance_count: u64,
        scenario: Scenario,
        use_token_latencies: bool,
    ) -> LogHeader {
        LogHeader {
            sut_name: sut_name.to_owned(),
            qsl_name: qsl_name.to_owned(),
            qsl_total_count,
            qsl_performance_count,
            get_sut_name_duration_ns: 0,
            scenario,
            use_token_latencies,
            git_commit: None,
            start: SystemTime::now(),
        }
    }
}

/// The four files' paths (trace is `None` when disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    /// `mlperf_log_summary.txt`.
    pub summary: PathBuf,
    /// `mlperf_log_detail.txt`.
    pub detail: PathBuf,
    /// `mlperf_log_accuracy.json`.
    pub accuracy: PathBuf,
    /// `mlperf_log_trace.json`.
    pub trace: Option<PathBuf>,
}

impl LogPaths {
    /// LoadGen's names: `<outdir>/<prefix>[<datetime>_]<kind><suffix>.<ext>`.
    pub fn new(settings: &LogSettings, test_datetime: &str) -> LogPaths {
        let o = &settings.log_output;
        let mut prefix = o.prefix.clone();
        if o.prefix_with_datetime {
            prefix.push_str(test_datetime);
            prefix.push('_');
        }
        let name =
            |kind: &str, ext: &str| o.outdir.join(format!("{prefix}{kind}{}.{ext}", o.suffix));
        LogPaths {
            summary: name("summary", "txt"),
            detail: name("detail", "txt"),
            accuracy: name("accuracy", "json"),
            trace: settings.enable_trace.then(|| name("trace", "json")),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC (LoadGen's `%FT%TZ`; LoadGen prints local
/// time with a `Z`, which is only right on UTC machines).
pub fn iso8601_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let c = CivilTime::from_unix_secs(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// LoadGen's `DateTimeStringForPower`: `%m-%d-%Y %T` in UTC plus `.mmm`
/// (`12-04-2026 23:28:08.858`), the text of `power_begin` / `power_end` that
/// MLCommons' power checker parses with `%m-%d-%Y %H:%M:%S.%f`.
pub fn power_datetime(unix_ns: u64) -> String {
    let c = CivilTime::from_unix_secs(unix_ns / 1_000_000_000);
    format!(
        "{:02}-{:02}-{:04} {:02}:{:02}:{:02}.{:03}",
        c.month,
        c.day,
        c.year,
        c.hour,
        c.minute,
        c.second,
        unix_ns % 1_000_000_000 / 1_000_000
    )
}

/// A UTC calendar date and time of day.
struct CivilTime {
    year: i64,
    month: i64,
    day: i64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl CivilTime {
    fn from_unix_secs(secs: u64) -> CivilTime {
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        CivilTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }
}

/// The SHA-1 of each of this crate's source files (`"/src/lib.rs"`, ...),
/// embedded by `build.rs`: the value of `loadgen_file_sha1`. LoadGen lists
/// its own C++ sources there; ours name the Rust code that really ran.
pub fn file_sha1() -> &'static [(&'static str, &'static str)] {
    generated::FILE_SHA1
}

mod generated {
    include!(concat!(env!("OUT_DIR"), "/file_sha1.rs"));
}

/// LoadGen's `logger_*` contention counters, in its order. They count retries
/// in LoadGen's lock-free scheme (swap-request slots, thread-local buffer
/// CAS); our writer is one channel to one thread, with no slot, CAS or
/// buffer swap that could retry, so each of these events happens zero times
/// and the counts are truthfully 0. LoadGen also resets them after logging.
pub const LOGGER_COUNTERS: [&str; 6] = [
    "logger_swap_request_slots_retry_count",
    "logger_swap_request_slots_retry_retry_count",
    "logger_swap_request_slots_retry_reencounter_count",
    "logger_start_reading_entries_retry_count",
    "logger_tls_total_log_cas_fail_count",
    "logger_tls_total_swap_buffers_slot_retry_count",
];

enum Msg {
    Detail {
        key: String,
        value: DetailValue,
        time_ns: u64,
        meta: LineMeta,
    },
    Summary(String),
    Accuracy {
        seq_id: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        token_data: Option<Vec<u8>>,
        token_count: Option<i64>,
    },
    Sync(mpsc::SyncSender<Result<(), LogError>>),
    Finish {
        trailer: String,
        reply: mpsc::SyncSender<Result<(), LogError>>,
    },
}

/// Writes LoadGen's log files from any thread (see the module docs).
pub struct LogWriter {
    tx: Mutex<Option<Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    origin: Instant,
    pid: u32,
    errors: AtomicU64,
    warnings: AtomicU64,
    paths: LogPaths,
    sut_name: String,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("paths", &self.paths)
            .field("errors", &self.errors.load(Ordering::Relaxed))
            .field("warnings", &self.warnings.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn create(path: &Path) -> Result<BufWriter<File>, LogError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|source| LogError::Create {
            path: path.to_owned(),
            source,
        })
}

fn thread_id() -> u64 {
    #[cfg(target_os = "linux")]
    {
        u64::from(
            rustix::thread::gettid()
                .as_raw_nonzero()
                .get()
                .unsigned_abs(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        u64::from(std::process::id())
    }
}

fn basename(path: &'static str) -> &'static str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

impl LogWriter {
    /// Creates the files (never overwriting), starts the writer thread and
    /// logs the version keys, `test_datetime`, SUT and QSL identity.
    #[track_caller]
    pub fn open(settings: &LogSettings, header: &LogHeader) -> Result<LogWriter, LogError> {
        let test_datetime = iso8601_utc(header.start);
        let paths = LogPaths::new(settings, &test_datetime);
        let summary = create(&paths.summary)?;
        let detail = create(&paths.detail)?;
        let mut accuracy = create(&paths.accuracy)?;
        let mut trace = match &paths.trace {
            Some(p) => Some(create(p)?),
            None => None,
        };
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| LogError::Write { path, source }
        };
        accuracy
            .write_all(accuracy::HEADER.as_bytes())
            .map_err(io_err(&paths.accuracy))?;
        if let (Some(t), Some(p)) = (trace.as_mut(), paths.trace.as_ref()) {
            t.write_all(trace::HEADER.as_bytes()).map_err(io_err(p))?;
        }
        let origin_unix_us = header
            .start
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let format = AccuracyFormat {
            use_tokens: header.use_token_latencies,
            needs_first_token: header.scenario != Scenario::Offline,
        };
        let (tx, rx) = mpsc::channel();
        let mut files = Files {
            summary,
            detail,
            accuracy,
            trace,
            paths: paths.clone(),
            format,
            accuracy_entries: 0,
            origin_unix_us,
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name("mlperf-log".into())
            .spawn(move || files.run(&rx))
            .map_err(|source| LogError::Write {
                path: paths.detail.clone(),
                source,
            })?;
        let writer = LogWriter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            origin: Instant::now(),
            pid: std::process::id(),
            errors: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            paths,
            sut_name: header.sut_name.clone(),
        };

        let version = match &header.git_commit {
            Some(c) => format!("{VERSION} @ {c}"),
            None => VERSION.to_owned(),
        };
        writer.detail("loadgen_version", version);
        writer.detail("loadgen_build_date_local", "");
        writer.detail("loadgen_build_date_utc", "");
        writer.detail("loadgen_git_commit_date", "");
        writer.detail("loadgen_git_log_message", "");
        writer.detail("loadgen_git_status_message", "");
        writer.detail(
            "loadgen_file_sha1",
            DetailValue::Map(
                file_sha1()
                    .iter()
                    .map(|&(name, hash)| (name.to_owned(), hash.to_owned()))
                    .collect(),
            ),
        );
        writer.detail("test_datetime", test_datetime);
        writer.detail("sut_name", header.sut_name.as_str());
        writer.detail("get_sut_name_duration_ns", header.get_sut_name_duration_ns);
        writer.detail("qsl_name", header.qsl_name.as_str());
        writer.detail("qsl_reported_total_count", header.qsl_total_count);
        writer.detail(
            "qsl_reported_performance_count",
            header.qsl_performance_count,
        );
        Ok(writer)
    }

    /// The files being written.
    pub fn paths(&self) -> &LogPaths {
        &self.paths
    }

    /// Errors logged so far (`num_errors`).
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Warnings logged so far.
    pub fn warning_count(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    fn send(&self, msg: Msg) {
        if let Ok(guard) = self.tx.lock()
            && let Some(tx) = guard.as_ref()
        {
            // A dead writer thread reports itself at `sync`/`finish`.
            let _ = tx.send(msg);
        }
    }

    #[track_caller]
    fn line(&self, key: &str, value: DetailValue, is_error: bool, is_warning: bool) {
        let loc = Location::caller();
        if is_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if is_warning {
            self.warnings.fetch_add(1, Ordering::Relaxed);
        }
        self.send(Msg::Detail {
            key: key.to_owned(),
            value,
            time_ns: self.origin.elapsed().as_nanos() as u64,
            meta: LineMeta {
                is_error,
                is_warning,
                file: basename(loc.file()),
                line_no: loc.line(),
                pid: self.pid,
                tid: thread_id(),
            },
        });
    }

    /// A plain detail line.
    #[track_caller]
    pub fn detail(&self, key: &str, value: impl Into<DetailValue>) {
        self.line(key, value.into(), false, false);
    }

    /// An error line (`is_error: true`); counted in `num_errors` and the
    /// summary trailer. Any error makes the MLCommons checker reject a log.
    #[track_caller]
    pub fn error(&self, key: &str, message: &str) {
        self.line(key, message.into(), true, false);
    }

    /// A `warning_generic_message` line (`is_warning: true`).
    #[track_caller]
    pub fn warning(&self, message: &str) {
        self.line("warning_generic_message", message.into(), false, true);
    }

    /// A `generic_message` line.
    #[track_caller]
    pub fn generic_message(&self, message: &str) {
        self.detail("generic_message", message);
    }

    /// An `error_runtime` line with LoadGen's text for the error.
    #[track_caller]
    pub fn runtime_error(&self, error: &RuntimeError) {
        self.error("error_runtime", &error.message());
    }

    /// `error_invalid_config` lines for config-file problems, e.g.
    /// [`ConfigLoader::diagnostics`](crate::ConfigLoader::diagnostics)
    /// ("Multiple conf files are used...").
    #[track_caller]
    pub fn log_config_diagnostics(&self, messages: &[String]) {
        for m in messages {
            self.error("error_invalid_config", m);
        }
    }

    /// The settings warnings LoadGen logs as `error_invalid_test_settings`,
    /// then `requested_*` (from `effective.requested`) and `effective_*`.
    #[track_caller]
    pub fn log_settings(&self, effective: &EffectiveSettings, warnings: &[SettingsWarning]) {
        for w in warnings {
            self.error("error_invalid_test_settings", &w.message);
        }
        for (k, v) in detail::requested_entries(&effective.requested) {
            self.line(&k, v, false, false);
        }
        for (k, v) in detail::effective_entries(effective) {
            self.line(&k, v, false, false);
        }
    }

    /// `loaded_qsl_set`: the QSL indices loaded for a phase.
    #[track_caller]
    pub fn log_loaded_qsl_set(&self, samples: &[u64]) {
        self.detail("loaded_qsl_set", DetailValue::List(samples.to_vec()));
    }

    /// `generated_query_count`, `generated_samples_per_query`,
    /// `generated_query_duration` after query generation.
    #[track_caller]
    pub fn log_generated(&self, schedule: &Schedule) {
        self.detail("generated_query_count", schedule.generated_query_count());
        self.detail(
            "generated_samples_per_query",
            schedule.generated_samples_per_query(),
        );
        self.detail(
            "generated_query_duration",
            schedule.generated_query_duration(),
        );
    }

    /// What LoadGen logs when a phase's samples have all completed (every
    /// phase, accuracy ones too): the `logger_*` counters (see
    /// [`LOGGER_COUNTERS`]), then `power_begin` (wall clock when issuing
    /// started) and `power_end` (that plus the time to the last completion),
    /// the window a power analyzer's samples are averaged over.
    #[track_caller]
    pub fn log_phase_end(&self, measurements: &PhaseMeasurements) {
        for key in LOGGER_COUNTERS {
            self.detail(key, 0_u64);
        }
        let begin = measurements.clock.origin_unix_ns();
        self.detail("power_begin", power_datetime(begin));
        self.detail(
            "power_end",
            power_datetime(begin.saturating_add(measurements.max_complete_ns)),
        );
    }

    /// Records one accuracy-log entry (any thread). `seq_id` is LoadGen's
    /// sample sequence id.
    pub fn accuracy_entry(
        &self,
        seq_id: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        token_data: Option<Vec<u8>>,
        token_count: Option<i64>,
    ) {
        self.send(Msg::Accuracy {
            seq_id,
            qsl_idx,
            data,
            token_data,
            token_count,
        });
    }

    /// The [`PhaseLog`] to hand to `run_phase`: accuracy entries get
    /// `first_sample_id` added to the phase-relative sequence number.
    pub fn phase_log(this: &Arc<LogWriter>, first_sample_id: u64) -> Arc<dyn PhaseLog> {
        Arc::new(PhaseLogAdapter {
            writer: Arc::clone(this),
            first_sample_id,
        })
    }

    /// Writes the summary's results section and logs the `result_*` keys
    /// and `num_errors` (LoadGen's `LogSummary` + `LogDetail` at the end of
    /// a performance phase).
    #[track_caller]
    pub fn log_results(
        &self,
        effective: &EffectiveSettings,
        summary: &PerformanceSummary,
    ) -> Result<(), LogError> {
        let sut_name = &self.sut_name;
        let mut text = Vec::new();
        summary::write_summary(&mut text, sut_name, effective, summary).map_err(|source| {
            LogError::Write {
                path: self.paths.summary.clone(),
                source,
            }
        })?;
        self.send(Msg::Summary(String::from_utf8_lossy(&text).into_owned()));
        for (k, v) in detail::result_entries(effective, summary) {
            self.line(&k, v, false, false);
        }
        self.detail("num_errors", self.error_count());
        Ok(())
    }

    /// Waits until everything sent so far is written and flushed.
    pub fn sync(&self) -> Result<(), LogError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Msg::Sync(reply));
        rx.recv().map_err(|_| LogError::WriterGone)?
    }

    /// Writes the summary trailer (warning and error counts), closes the
    /// accuracy and trace JSON, flushes and stops the writer thread.
    pub fn finish(&self) -> Result<LogPaths, LogError> {
        let mut trailer = Vec::new();
        let _ = summary::write_trailer(&mut trailer, self.warning_count(), self.error_count());
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Msg::Finish {
            trailer: String::from_utf8_lossy(&trailer).into_owned(),
            reply,
        });
        let result = rx.recv().map_err(|_| LogError::WriterGone);
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(handle) = t.take()
        {
            let _ = handle.join();
        }
        result??;
        Ok(self.paths.clone())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Close the channel so the thread drains, flushes and exits.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(handle) = t.take()
        {
            let _ = handle.join();
        }
    }
}

struct PhaseLogAdapter {
    writer: Arc<LogWriter>,
    first_sample_id: u64,
}

impl PhaseLog for PhaseLogAdapter {
    fn accuracy_entry(
        &self,
        seq: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        token_data: Option<Vec<u8>>,
        token_count: Option<i64>,
    ) {
        self.writer.accuracy_entry(
            self.first_sample_id + seq,
            qsl_idx,
            data,
            token_data,
            token_count,
        );
    }

    fn runtime_error(&self, error: RuntimeError) {
        self.writer.runtime_error(&error);
    }

    fn generic_message(&self, message: &str) {
        self.writer.generic_message(message);
    }
}

struct Files {
    summary: BufWriter<File>,
    detail: BufWriter<File>,
    accuracy: BufWriter<File>,
    trace: Option<BufWriter<File>>,
    paths: LogPaths,
    format: AccuracyFormat,
    accuracy_entries: u64,
    origin_unix_us: u64,
    failed: Option<LogError>,
}

impl Files {
    fn run(&mut self, rx: &Receiver<Msg>) {
        let mut buf = String::with_capacity(1 << 12);
        while let Ok(msg) = rx.recv() {
            let mut next = Some(msg);
            while let Some(msg) = next.take() {
                if self.handle(msg, &mut buf) {
                    return;
                }
                next = rx.try_recv().ok();
            }
            // Queue empty: flush so a crash loses nothing already logged.
            self.flush_all();
        }
        // Channel closed without finish (writer dropped): close the JSON
        // files anyway so they stay valid.
        self.close(None);
    }

    fn record(&mut self, r: io::Result<()>, path: &Path) {
        if let Err(source) = r
            && self.failed.is_none()
        {
            self.failed = Some(LogError::Write {
                path: path.to_owned(),
                source,
            });
        }
    }

    fn flush_all(&mut self) {
        let r = self.detail.flush();
        self.record(r, &self.paths.detail.clone());
        let r = self.accuracy.flush();
        self.record(r, &self.paths.accuracy.clone());
        let r = self.summary.flush();
        self.record(r, &self.paths.summary.clone());
        if let Some(t) = self.trace.as_mut() {
            let r = t.flush();
            let p = self.paths.trace.clone().unwrap_or_default();
            self.record(r, &p);
        }
    }

    fn take_result(&mut self) -> Result<(), LogError> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Returns true when the thread should stop.
    fn handle(&mut self, msg: Msg, buf: &mut String) -> bool {
        buf.clear();
        match msg {
            Msg::Detail {
                key,
                value,
                time_ns,
                meta,
            } => {
                let line = detail::render_line(&key, &value, time_ns, &meta);
                let r = self.detail.write_all(line.as_bytes());
                self.record(r, &self.paths.detail.clone());
                if let Some(t) = self.trace.as_mut() {
                    let mut arg = String::new();
                    value.render(&mut arg);
                    trace::render_instant(buf, &key, time_ns, meta.pid, meta.tid, &arg);
                    let r = t.write_all(buf.as_bytes());
                    let p = self.paths.trace.clone().unwrap_or_default();
                    self.record(r, &p);
                }
                if meta.is_error {
                    // LoadGen flushes right after an error line.
                    let r = self.detail.flush();
                    self.record(r, &self.paths.detail.clone());
                }
            }
            Msg::Summary(text) => {
                let r = self.summary.write_all(text.as_bytes());
                self.record(r, &self.paths.summary.clone());
            }
            Msg::Accuracy {
                seq_id,
                qsl_idx,
                data,
                token_data,
                token_count,
            } => {
                accuracy::render_entry(
                    buf,
                    self.accuracy_entries == 0,
                    self.format,
                    &accuracy::AccuracyEntry {
                        seq_id,
                        qsl_idx,
                        data: &data,
                        token_data: token_data.as_deref(),
                        token_count,
                    },
                );
                self.accuracy_entries += 1;
                let r = self.accuracy.write_all(buf.as_bytes());
                self.record(r, &self.paths.accuracy.clone());
            }
            Msg::Sync(reply) => {
                self.flush_all();
                let _ = reply.send(self.take_result());
            }
            Msg::Finish { trailer, reply } => {
                self.close(Some(&trailer));
                let _ = reply.send(self.take_result());
                return true;
            }
        }
        false
    }

    fn close(&mut self, trailer: Option<&str>) {
        if let Some(trailer) = trailer {
            let r = self.summary.write_all(trailer.as_bytes());
            self.record(r, &self.paths.summary.clone());
        }
        let r = self.accuracy.write_all(accuracy::FOOTER.as_bytes());
        self.record(r, &self.paths.accuracy.clone());
        let footer = trace::footer(self.origin_unix_us);
        if let Some(t) = self.trace.as_mut() {
            let r = t.write_all(footer.as_bytes());
            let p = self.paths.trace.clone().unwrap_or_default();
            self.record(r, &p);
        }
        self.flush_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_datetime_is_loadgens_utc_format_with_truncated_milliseconds() {
        // Expected values from Python's datetime in UTC.
        assert_eq!(power_datetime(0), "01-01-1970 00:00:00.000");
        assert_eq!(
            power_datetime(1_796_426_888_858_999_999),
            "12-04-2026 23:28:08.858"
        );
        assert_eq!(
            power_datetime(951_782_400_123_000_000),
            "02-29-2000 00:00:00.123"
        );
    }

    #[test]
    fn iso8601_and_power_datetime_agree_on_the_date() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(iso8601_utc(t), "2000-02-29T00:00:00Z");
    }
}
