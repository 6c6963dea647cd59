//! Synthetic run directories, written exactly as `harness run` writes them
//! (the same `rundir` types through serde), for tests and for the 1M-record
//! benchmark (`scripts/bench/report_1m.sh`).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use loadgen::{
    EffectiveSettings, ErrorKind, Phase, PhaseEnd, PhaseStart, QueryError, QueryRecord,
    RecordExtras, Scenario, TestMode, TestSettings,
};
use rundir::metrics::{MetricSource, MetricsSample, names};
use rundir::{PhaseHeader, RecordLine, RunManifest, RunStatus, RunVerdict};

use crate::ReportError;
use crate::stats::SplitMix64;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticRun {
    /// Samples in the performance phase.
    pub samples: u64,
    /// Poisson arrival rate.
    pub qps: f64,
    /// Output tokens per sample: uniform in `1..=2 * mean - 1`.
    pub mean_output_tokens: u32,
    /// Every `n`-th sample fails with a timeout (0 = none).
    pub fail_every: u64,
    /// RNG seed.
    pub seed: u64,
    /// Write `metrics.jsonl` (server and, with `gpu`, GPU samples each second).
    pub metrics: bool,
    /// Include GPU samples in the metrics.
    pub gpu: bool,
    /// Write the phase end and a finished manifest (false: a crashed run).
    pub finished: bool,
}

impl Default for SyntheticRun {
    fn default() -> Self {
        SyntheticRun {
            samples: 1000,
            qps: 100.0,
            mean_output_tokens: 32,
            fail_every: 0,
            seed: 1,
            metrics: true,
            gpu: false,
            finished: true,
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn json_err(path: &Path) -> impl Fn(serde_json::Error) -> ReportError + '_ {
    move |e| ReportError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// The settings the synthetic phase declares: Server at `qps`, TTFT limit
/// 2 s, TPOT limit 100 ms (the llama3.1-8b defaults).
pub fn settings(run: &SyntheticRun) -> Result<EffectiveSettings, ReportError> {
    let requested = TestSettings {
        scenario: Scenario::Server,
        mode: TestMode::PerformanceOnly,
        server_target_qps: run.qps,
        use_token_latencies: true,
        server_ttft_latency: 2_000_000_000,
        server_tpot_latency: 100_000_000,
        ..TestSettings::default()
    };
    EffectiveSettings::new(&requested, 1024, 1024)
        .map(|(s, _)| s)
        .map_err(|e| ReportError::Io {
            path: "synthetic settings".into(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Writes a synthetic run into the existing, empty directory `dir`.
pub fn write_run(dir: &Path, run: &SyntheticRun) -> Result<(), ReportError> {
    let start_unix_ns = 1_800_000_000_000_000_000u64;
    let (end_max, failed) = write_records(dir, run, start_unix_ns)?;
    if run.metrics {
        write_metrics(dir, run, end_max)?;
    }
    write_manifest(dir, run, start_unix_ns, failed)
}

/// Writes `value` as one JSON line.
fn write_line<T: serde::Serialize>(
    w: &mut impl Write,
    path: &Path,
    value: &T,
) -> Result<(), ReportError> {
    serde_json::to_writer(&mut *w, value).map_err(json_err(path))?;
    w.write_all(b"\n").map_err(io(path))
}

/// Writes records.jsonl: the phase header, every query, and (when the run
/// finished) the phase end. Returns the last completion time and the
/// number of failed queries.
fn write_records(
    dir: &Path,
    run: &SyntheticRun,
    start_unix_ns: u64,
) -> Result<(u64, u64), ReportError> {
    let header = PhaseHeader {
        run_offset_ns: 5_000_000,
        start: PhaseStart {
            phase: Phase::Performance,
            scenario: Scenario::Server,
            mode: TestMode::PerformanceOnly,
            start_unix_ns: start_unix_ns + 5_000_000,
            settings: settings(run)?,
            query_count: run.samples,
            sample_count: run.samples,
        },
    };
    let path = dir.join(rundir::RECORDS_FILE);
    let file = std::fs::File::create_new(&path).map_err(io(&path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_line(&mut w, &path, &RecordLine::Phase(Box::new(header)))?;

    let mut rng = SplitMix64::new(run.seed);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut t = 0f64;
    let mut end_max = 0u64;
    let mut failed = 0u64;
    // Completion order differs from issue order; a writer sees completions,
    // but the order does not matter to any statistic, so issue order is kept.
    for seq in 0..run.samples {
        let record = synthetic_query(run, seq, &mut t, &mut unit);
        if record.error().is_some() {
            failed += 1;
        }
        end_max = end_max.max(record.end_ns);
        write_line(&mut w, &path, &RecordLine::Query(record))?;
    }
    if run.finished {
        let end = PhaseEnd {
            phase: Phase::Performance,
            end_ns: end_max,
            completed_samples: run.samples,
            failed_samples: failed,
            valid: Some(failed == 0),
            invalid_reasons: if failed == 0 {
                vec![]
            } else {
                vec![format!("{failed} samples failed")]
            },
            interrupted: false,
        };
        write_line(&mut w, &path, &RecordLine::PhaseEnd(end))?;
    }
    w.flush().map_err(io(&path))?;
    Ok((end_max, failed))
}

/// Query `seq`: Poisson arrivals at the run's QPS (`t`, the arrival time in
/// ns, advances), random TTFT, token count and TPOT drawn from `unit`
/// (uniform in [0, 1)); every `fail_every`-th query times out.
fn synthetic_query(
    run: &SyntheticRun,
    seq: u64,
    t: &mut f64,
    unit: &mut impl FnMut() -> f64,
) -> QueryRecord {
    let mut record = QueryRecord::default();
    let mut extras = RecordExtras {
        endpoint: Some(0),
        ..RecordExtras::default()
    };
    *t += -(1.0 - unit()).ln() / run.qps * 1e9;
    let scheduled = *t as u64;
    let issued = scheduled + (unit() * 50_000.0) as u64;
    let ttft = 20_000_000 + (unit() * unit() * 200_000_000.0) as u64;
    let tokens = 1 + (unit() * f64::from(2 * run.mean_output_tokens.max(1) - 1)) as u32;
    let tpot = 8_000_000 + (unit() * 8_000_000.0) as u64;
    record.seq = seq;
    record.query = seq;
    record.sample_index = seq % 1024;
    record.scheduled_ns = scheduled;
    record.issued_ns = issued;
    extras.input_tokens = Some(100 + (unit() * 900.0) as u32);
    let fails = run.fail_every > 0 && seq % run.fail_every == run.fail_every - 1;
    if fails {
        record.first_token_ns = None;
        record.n_tokens = 0;
        record.end_ns = issued + 30_000_000_000;
        extras.error = Some(QueryError {
            kind: ErrorKind::Timeout,
            http_status: None,
            message: "no answer within 30 s".into(),
        });
    } else {
        let first = scheduled + ttft;
        let mut at = first;
        for i in 0..tokens {
            if i > 0 {
                at += tpot + (unit() * 1_000_000.0) as u64;
            }
            extras.chunk_ns.push(at);
            extras.chunk_tokens.push(1);
        }
        record.first_token_ns = Some(first);
        record.end_ns = at;
        record.n_tokens = i64::from(tokens);
    }
    record.extras = extras.boxed();
    record
}

/// Writes metrics.jsonl: one server sample (and with `gpu` one GPU sample)
/// a second until `end_max`, following half a sine wave.
fn write_metrics(dir: &Path, run: &SyntheticRun, end_max: u64) -> Result<(), ReportError> {
    let path = dir.join(rundir::METRICS_FILE);
    let file = std::fs::File::create_new(&path).map_err(io(&path))?;
    let mut w = BufWriter::new(file);
    let seconds = end_max / 1_000_000_000 + 1;
    for s in 0..=seconds {
        let t_ns = 5_000_000 + s * 1_000_000_000;
        let mut values = BTreeMap::new();
        let phase = s as f64 / seconds as f64 * std::f64::consts::PI;
        values.insert(
            names::REQUESTS_RUNNING.to_owned(),
            (20.0 * phase.sin()).round(),
        );
        values.insert(
            names::REQUESTS_WAITING.to_owned(),
            (5.0 * phase.sin()).round(),
        );
        values.insert(names::KV_CACHE_USAGE_FRAC.to_owned(), 0.5 * phase.sin());
        let sample = MetricsSample {
            t_ns,
            tick: None,
            source: MetricSource::Server,
            instance: "http://127.0.0.1:8000".into(),
            values,
        };
        write_line(&mut w, &path, &sample)?;
        if run.gpu {
            let mut values = BTreeMap::new();
            values.insert(names::GPU_UTILIZATION_PCT.to_owned(), 90.0 * phase.sin());
            values.insert(names::GPU_MEMORY_USED_BYTES.to_owned(), 60e9);
            values.insert(names::GPU_POWER_W.to_owned(), 300.0 + 200.0 * phase.sin());
            let sample = MetricsSample {
                t_ns,
                tick: None,
                source: MetricSource::Gpu,
                instance: "gpu0".into(),
                values,
            };
            write_line(&mut w, &path, &sample)?;
        }
    }
    w.flush().map_err(io(&path))
}

/// Writes manifest.json, its verdict from the failed-query count.
fn write_manifest(
    dir: &Path,
    run: &SyntheticRun,
    start_unix_ns: u64,
    failed: u64,
) -> Result<(), ReportError> {
    let manifest = RunManifest {
        format_version: rundir::FORMAT_VERSION,
        harness_version: "synthetic".into(),
        loadgen: rundir::LoadgenIdentity::harness_rust(),
        run_id: dir
            .file_name()
            .map_or("synthetic".into(), |n| n.to_string_lossy().into_owned()),
        started_at: "2027-01-15T08:00:00+00:00".into(),
        start_unix_ns,
        finished_at: run.finished.then(|| "2027-01-15T09:00:00+00:00".into()),
        status: if run.finished {
            RunStatus::Complete
        } else {
            RunStatus::Running
        },
        command: vec!["synthetic".into()],
        model: "llama3_1-8b".into(),
        scenario: "Server".into(),
        mode: "PerformanceOnly".into(),
        backends: vec!["sim://synthetic".into()],
        dataset: None,
        labels: BTreeMap::new(),
        config: serde_json::Value::Null,
        verdict: run.finished.then(|| RunVerdict {
            valid: failed == 0,
            reasons: if failed == 0 {
                vec![]
            } else {
                vec![format!("{failed} samples failed")]
            },
        }),
        loadgen_results: None,
        warnings: Vec::new(),
    };
    manifest.write(dir).map_err(|e| ReportError::Io {
        path: dir.join(rundir::MANIFEST_FILE),
        source: std::io::Error::other(e.to_string()),
    })
}
