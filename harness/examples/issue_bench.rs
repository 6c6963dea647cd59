//! Measures the issuer's own overhead: a full `start_test` (query
//! generation, issuing, completion bookkeeping, result collection) against a
//! SUT that answers every sample inside `issue_query`. The C++ twin is
//! `scripts/bench/loadgen_cpp/instant_sut.cc`; `scripts/bench/loadgen_issue.sh`
//! runs both side by side.
//!
//! `cargo run --release -p harness --example issue_bench -- <server|offline>
//! <target_qps> <min_duration_ms> <min_query_count> <outdir>
//! [target_latency_ms=10] [performance_sample_count=1024]`
//!
//! `ISSUE_RECORDS=off` in the environment runs without `records.jsonl` (no
//! run observer): a diagnostic of what the records cost, not the way
//! `harness run` runs (`scripts/bench/loadgen_issue.sh` reports it as
//! `rust-norecords`, beside the real path).
//!
//! `ISSUE_SPIN_US=<n>` in the environment replaces the issuer's spin margin
//! (`RunOptions::issue_spin`: by default `loadgen::issue_spin_for` the CPUs allowed, 40 us on
//! two or more; 0 sleeps to each instant as LoadGen C++ does).
//!
//! The test runs the way `harness run` runs it, less the HTTP client: LoadGen's
//! log files written by `loadgen::logging::LogWriter` as `harness run`'s hooks
//! write them, and `records.jsonl` (one line per sample) written by
//! `rundir::RecordsWriter` as the run's observer, both in `<outdir>`; LoadGen
//! C++ posts a log entry per sample too. The issuer's timer slack is
//! the one `start_test` sets (1 ns); the C++ twin sets the same.
//!
//! Prints one JSON object. Its latency figures and `valid` are read from
//! the LoadGen summary the hooks compute and log (`PerformanceSummary`, one
//! sort of the latencies, as `harness run`'s hooks do), as the C++ twin's
//! are read from LoadGen's summary: `valid` is LoadGen's VALID less early
//! stopping (`MinDurationMet`, `MinQueriesMet`, `PerfConstraintsMet`: the
//! latency at the target percentile within the target), and no failed
//! sample. `over_latency` (Server: samples above the target) and
//! `samples_issued` are what early stopping needs;
//! `scripts/bench/loadgen_cpp/report.py` applies LoadGen's Server
//! early-stopping check to them. The SUT's response buffer is allocated
//! before the test, as the C++ twin's is.

// A benchmark's output is its purpose.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use loadgen::logging::{LogHeader, LogWriter};
use loadgen::results::PerformanceSummary;
use loadgen::schedule::{SequenceGen, generate_queries, performance_set};
use loadgen::{
    EffectiveSettings, IssuePlan, LogOutputSettings, LogSettings, Phase, PhaseLog,
    PhaseMeasurements, PhaseVerdict, QslError, QuerySample, QuerySampleIndex, QuerySampleLibrary,
    QuerySampleResponse, Responder, RunObserver, RunOptions, Scenario, Schedule, SystemUnderTest,
    TestHooks, TestMode, TestSettings, start_test,
};
use serde_json::json;

/// Responses handed to `complete_all` at once (Offline's one query holds
/// millions of samples; a bounded buffer keeps the SUT's memory flat).
const CHUNK: usize = 4096;

/// Answers inside `issue_query`. The response buffer is allocated before
/// the test, as the C++ twin's is.
struct InstantSut {
    responses: Mutex<Vec<QuerySampleResponse>>,
}

impl InstantSut {
    fn new() -> InstantSut {
        InstantSut {
            responses: Mutex::new(vec![QuerySampleResponse::default(); CHUNK]),
        }
    }
}

impl SystemUnderTest for InstantSut {
    fn name(&self) -> &str {
        "instant_sut"
    }

    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        if let [sample] = samples {
            responder.complete(QuerySampleResponse {
                id: sample.id,
                ..QuerySampleResponse::default()
            });
            return;
        }
        // Only the issuer thread calls this: the lock is never contended.
        let mut buf = self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for chunk in samples.chunks(CHUNK) {
            let responses = &mut buf[..chunk.len()];
            for (response, sample) in responses.iter_mut().zip(chunk) {
                response.id = sample.id;
            }
            responder.complete_all(responses);
        }
    }
}

struct Qsl(usize);

impl QuerySampleLibrary for Qsl {
    fn name(&self) -> &str {
        "instant_qsl"
    }
    fn total_sample_count(&self) -> usize {
        self.0
    }
    fn performance_sample_count(&self) -> usize {
        self.0
    }
    fn load_samples_to_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
        Ok(())
    }
    fn unload_samples_from_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
        Ok(())
    }
}

/// What the hooks saw, for the report.
#[derive(Default)]
struct Seen {
    generated_at: Option<Instant>,
    /// Peak RSS when the schedule was generated and when the phase ended
    /// (before the verdict's own copy of the latencies).
    peak_rss_generated: Option<u64>,
    peak_rss_phase_end: Option<u64>,
    queries: usize,
    samples: usize,
    schedule_heap_bytes: usize,
    latency: Option<LatencySummary>,
}

struct LatencySummary {
    p50_ns: i64,
    p99_ns: i64,
    target_percentile_ns: i64,
    max_ns: i64,
    over_latency: usize,
    min_duration_met: bool,
    min_queries_met: bool,
    perf_constraints_met: bool,
}

/// `harness run`'s hooks (harness/src/hooks.rs: LoadGen's logs) plus what
/// the report needs.
struct Hooks {
    logs: Arc<LogWriter>,
    seen: Mutex<Seen>,
}

impl TestHooks for Hooks {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        LogWriter::phase_log(&self.logs, 0)
    }

    fn loaded_qsl_set(&self, set: &loadgen::schedule::LoadableSet) {
        let indices: Vec<u64> = set.samples.iter().map(|&i| i as u64).collect();
        self.logs.log_loaded_qsl_set(&indices);
    }

    fn phase_ended(&self, _phase: Phase, measurements: &PhaseMeasurements) {
        self.logs.log_phase_end(measurements);
    }

    fn generated(&self, schedule: &Schedule) {
        self.logs.log_generated(schedule);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.generated_at = Some(Instant::now());
        seen.peak_rss_generated = proc_status_bytes("VmHWM");
        seen.queries = schedule.len();
        seen.samples = schedule.sample_count();
        seen.schedule_heap_bytes = schedule.heap_bytes();
    }

    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict {
        let peak_rss_phase_end = proc_status_bytes("VmHWM");
        // `harness run`'s hooks: LoadGen's result maths and summary log.
        // Every figure below is read from that one summary (its one sort of
        // the latencies), as the C++ twin's are read from LoadGen's.
        let summary = PerformanceSummary::compute(settings, &measurements.result);
        if let Err(e) = self.logs.log_results(settings, &summary) {
            eprintln!("issue_bench: writing the LoadGen summary: {e}");
        }
        let result = &measurements.result;
        let percentile = |p: f64| {
            summary
                .latency_percentiles
                .iter()
                .find(|l| l.percentile == p)
                .map_or(0, |l| l.sample_latency)
        };
        let failed: u64 = result.failed_samples.values().sum();
        // LoadGen's VALID without early stopping (report.py applies that to
        // `over_latency`, as for the C++ twin's column).
        let valid = summary.min_duration_met
            && summary.min_queries_met
            && summary.perf_constraints_met
            && failed == 0;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.peak_rss_phase_end = peak_rss_phase_end;
        seen.latency = Some(LatencySummary {
            p50_ns: percentile(0.5),
            p99_ns: percentile(0.99),
            target_percentile_ns: summary.target_latency_percentile.sample_latency,
            max_ns: summary.sample_latency_max,
            // LoadGen counts it in Server only (its early-stopping input).
            over_latency: summary.overlatency_query_count as usize,
            min_duration_met: summary.min_duration_met,
            min_queries_met: summary.min_queries_met,
            perf_constraints_met: summary.perf_constraints_met,
        });
        PhaseVerdict {
            valid,
            perf_constraints_met: summary.perf_constraints_met,
            reasons: Vec::new(),
        }
    }
}

/// A `/proc/self/status` field (`VmRSS`, `VmHWM`) in bytes (Linux).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: Option<T>) -> Result<T, String> {
    match args.get(i) {
        Some(a) => a
            .parse()
            .map_err(|_| format!("argument {i}: bad value {a:?}")),
        None => default.ok_or_else(|| {
            "usage: issue_bench <server|offline> <target_qps> <min_duration_ms> \
             <min_query_count> <outdir> [target_latency_ms=10] [performance_sample_count=1024]"
                .to_owned()
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let scenario = match arg::<String>(&args, 1, None)?.as_str() {
        "server" => Scenario::Server,
        "offline" => Scenario::Offline,
        other => return Err(format!("unknown scenario {other:?}").into()),
    };
    let qps: f64 = arg(&args, 2, None)?;
    let min_duration_ms: u64 = arg(&args, 3, None)?;
    let min_query_count: u64 = arg(&args, 4, None)?;
    let outdir: std::path::PathBuf = arg(&args, 5, None)?;
    let target_latency_ms: f64 = arg(&args, 6, Some(10.0))?;
    let sample_count: usize = arg(&args, 7, Some(1024))?;

    let requested = TestSettings {
        scenario,
        mode: TestMode::PerformanceOnly,
        server_target_qps: qps,
        offline_expected_qps: qps,
        server_target_latency_ns: (target_latency_ms * 1e6) as u64,
        server_target_latency_percentile: 0.99,
        min_duration_ms,
        min_query_count,
        // MLPerf's seeds (mlperf.conf), the same ones the C++ driver uses.
        qsl_rng_seed: 2_085_463_073_848_966_840,
        sample_index_rng_seed: 2_747_215_439_041_700_203,
        schedule_rng_seed: 16_159_082_839_903_944_936,
        ..TestSettings::default()
    };
    let total = sample_count as u64;
    let (settings, _) = EffectiveSettings::new(&requested, total, total)?;
    std::fs::create_dir_all(&outdir)?;
    let sut = InstantSut::new();
    let qsl = Qsl(sample_count);
    let log_settings = LogSettings {
        log_output: LogOutputSettings {
            outdir: outdir.clone(),
            ..LogOutputSettings::default()
        },
        enable_trace: false,
    };
    let header = LogHeader::new(
        sut.name(),
        qsl.name(),
        total,
        total,
        settings.scenario,
        settings.use_token_latencies,
    );
    let logs = Arc::new(LogWriter::open(&log_settings, &header)?);
    logs.log_settings(&settings, &[]);
    let hooks = Hooks {
        logs,
        seen: Mutex::new(Seen::default()),
    };
    let records = match std::env::var("ISSUE_RECORDS").as_deref() {
        Ok("off") => None,
        Ok(other) => return Err(format!("ISSUE_RECORDS: bad value {other:?} (off)").into()),
        Err(_) => Some(Arc::new(rundir::RecordsWriter::create(
            &outdir,
            unix_now_ns(),
            settings.scenario,
        )?)),
    };
    let defaults = RunOptions::default();
    let options = RunOptions {
        observer: records
            .as_ref()
            .map(|r| Arc::clone(r) as Arc<dyn RunObserver>),
        issue_spin: match std::env::var("ISSUE_SPIN_US") {
            Ok(us) => std::time::Duration::from_micros(
                us.parse()
                    .map_err(|_| format!("ISSUE_SPIN_US: bad value {us:?}"))?,
            ),
            Err(_) => defaults.issue_spin,
        },
        ..defaults
    };

    let rss_before = proc_status_bytes("VmRSS");
    // The whole test, as the C++ twin times StartTest: the logs and records
    // are written out and closed inside the window. Neither side waits for
    // the disk in it (LoadGen C++ never syncs its logs); records.jsonl is
    // synced right after, as `harness run` does, and that wait is reported
    // on its own (`records_sync_s`).
    let start = Instant::now();
    let outcome = start_test(&sut, &qsl, &settings, &hooks, &options)?;
    drop(options);
    hooks.logs.finish()?;
    let closed = match records {
        Some(records) => Some(
            Arc::try_unwrap(records)
                .map_err(|_| "the records writer is still shared")?
                .close()?,
        ),
        None => None,
    };
    let wall_s = start.elapsed().as_secs_f64();
    let synced = Instant::now();
    let record_lines = match closed {
        Some(closed) => closed.sync()?,
        None => 0,
    };
    let records_sync_s = synced.elapsed().as_secs_f64();
    // What the disk had to take: loadgen_issue.sh writes and syncs as many
    // bytes with dd to show the disk's share of the whole-test time.
    let records_bytes = std::fs::metadata(outdir.join(rundir::RECORDS_FILE)).map_or(0, |m| m.len());
    let peak_rss = proc_status_bytes("VmHWM");

    let phase = outcome.performance().ok_or("no performance phase ran")?;
    let m = &phase.measurements;
    let r = &m.result;
    let seen = hooks
        .seen
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let latency = seen.latency.as_ref().ok_or("no verdict was computed")?;
    let generation_s = seen
        .generated_at
        .map_or(0.0, |t| t.duration_since(start).as_secs_f64());

    // Structural accounting, after the timed test so it cannot raise its
    // peak: the issuer's plan for the same schedule, plus the per-phase
    // arrays of run/state.rs (per query: the issued time, 8 B, the schedule
    // being the plan's; per sample: first token, completion, n_tokens,
    // error kind, 25 B) and
    // the collected sample latencies (8 B per sample).
    let set = performance_set(&settings, total)?;
    let schedule = generate_queries(&settings, Phase::Performance, &set, &mut SequenceGen::new())?;
    let plan_heap_bytes = IssuePlan::from_schedule(schedule).heap_bytes();
    let state_bytes = seen.queries * 8 + seen.samples * 25;
    let result_bytes = seen.samples * 8;
    let queries = seen.queries.max(1) as f64;

    let n = m.samples_issued as f64;
    let completed_per_s = match scenario {
        Scenario::Offline => n / r.max_latency,
        _ => (n - 1.0) / r.final_query_all_samples_done_time,
    };
    let scheduled_per_s = (n - 1.0) / r.final_query_scheduled_time;
    let verdict = phase.verdict.clone().unwrap_or_default();
    let rss_growth = match (rss_before, peak_rss) {
        (Some(before), Some(peak)) => Some(peak.saturating_sub(before)),
        _ => None,
    };
    let report = json!({
        "impl": "rust",
        "scenario": scenario.to_string(),
        "target_qps": qps,
        "min_duration_ms": min_duration_ms,
        "min_query_count": min_query_count,
        "target_latency_ns": settings.target_latency_ns,
        "record_lines": record_lines,
        "records_bytes": records_bytes,
        "generated_queries": seen.queries,
        "generated_samples": seen.samples,
        "queries_issued": r.queries_issued,
        "samples_issued": m.samples_issued,
        "completed_per_s": completed_per_s,
        "scheduled_per_s": scheduled_per_s,
        "latency_p50_ns": latency.p50_ns,
        "latency_p99_ns": latency.p99_ns,
        "latency_target_percentile_ns": latency.target_percentile_ns,
        "latency_max_ns": latency.max_ns,
        "over_latency": latency.over_latency,
        "issue_lateness_p50_ns": m.issue_delay.map(|d| d.p50_ns),
        "issue_lateness_p99_ns": m.issue_delay.map(|d| d.p99_ns),
        "issue_lateness_max_ns": m.issue_delay.map(|d| d.max_ns),
        "min_duration_met": latency.min_duration_met,
        "min_queries_met": latency.min_queries_met,
        "perf_constraints_met": latency.perf_constraints_met,
        "valid": verdict.valid,
        "validity_rule": "perf constraint (target-percentile latency <= target) + min duration + min queries/samples; no early stopping",
        "generation_s": generation_s,
        "start_test_wall_s": wall_s,
        "clock_source": loadgen::clock_source(),
        "records_sync_s": records_sync_s,
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak_rss,
        "peak_rss_growth_per_query": rss_growth.map(|g| g as f64 / queries),
        "peak_rss_at_generation_bytes": seen.peak_rss_generated,
        "peak_rss_at_phase_end_bytes": seen.peak_rss_phase_end,
        "schedule_heap_bytes_per_query": seen.schedule_heap_bytes as f64 / queries,
        "plan_heap_bytes_per_query": plan_heap_bytes as f64 / queries,
        "state_bytes_per_query": state_bytes as f64 / queries,
        "result_bytes_per_query": result_bytes as f64 / queries,
    });
    println!("{report}");
    Ok(())
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
