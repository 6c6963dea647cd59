//! `--loadgen official`: the same SUT, QSL, observers and telemetry as a
//! Rust-LoadGen run, with MLCommons' C++ LoadGen issuing the queries and
//! writing the `mlperf_log_*` files. LoadGen's results come back from its
//! own detail log ([`loadgen::logged`]), so every report reads the C++
//! library's figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use loadgen::logged::{DetailLog, Observed};
use loadgen::results::{INTERRUPTED_REASON, PerformanceResult, PerformanceSummary};
use loadgen::run::{IssueStop, PhaseClock, PhaseMeasurements};
use loadgen::schedule::{SequenceGen, accuracy_sets, generate_queries, performance_set};
use loadgen::{
    Phase, PhaseEnd, PhaseOutcome, PhaseStart, PhaseVerdict, RunObserver, StopSignal, TestMode,
    TestOutcome,
};

use super::config::{AuditSource, OfficialOptions};
use super::observers::Observers;
use super::{Backend, Measured, Plan, RunClock, RunConfig};
use crate::hooks::TestVerdict;
use crate::progress::Progress;
use crate::shared::BUILTIN_USER_CONF;

/// run.json's `loadgen` for a run of the linked library, as it names itself.
pub fn identity() -> rundir::LoadgenIdentity {
    match loadgen_official::identity() {
        Some(id) => rundir::LoadgenIdentity {
            implementation: rundir::LoadgenImplementation::MlcommonsLoadgen,
            version: id.version,
            git_hash: Some(id.git_revision).filter(|g| !g.is_empty()),
            clock: None,
        },
        // Config validation refuses `--loadgen official` in such a build.
        None => rundir::LoadgenIdentity {
            implementation: rundir::LoadgenImplementation::MlcommonsLoadgen,
            version: String::new(),
            git_hash: None,
            clock: None,
        },
    }
}

/// The phase the C++ LoadGen is about to run, with the sample and query
/// counts the Rust LoadGen derives from the same settings (equal to the
/// C++ library's: `harness/tests/official.rs` compares them).
fn phase_start(plan: &Plan) -> anyhow::Result<PhaseStart> {
    let settings = &plan.effective;
    let total = plan.dataset.samples.len() as u64;
    let mut seq = SequenceGen::new();
    let (phase, queries, samples) = if settings.mode == TestMode::AccuracyOnly {
        let (mut q, mut s) = (0, 0);
        for set in accuracy_sets(settings, total) {
            let schedule = generate_queries(settings, Phase::Accuracy, &set, &mut seq)?;
            q += schedule.len() as u64;
            s += schedule.sample_count() as u64;
        }
        (Phase::Accuracy, q, s)
    } else {
        let set = performance_set(settings, total)?;
        let schedule = generate_queries(settings, Phase::Performance, &set, &mut seq)?;
        (
            Phase::Performance,
            schedule.len() as u64,
            schedule.sample_count() as u64,
        )
    };
    Ok(PhaseStart {
        phase,
        scenario: settings.scenario,
        mode: settings.mode,
        start_unix_ns: 0,
        settings: settings.clone(),
        query_count: queries,
        sample_count: samples,
    })
}

/// The user.conf LoadGen's `FromConfig` reads: a copy in the run directory
/// (the built-in example written out), so the run keeps what it ran with.
fn user_conf(dir: &Path, options: &OfficialOptions) -> anyhow::Result<PathBuf> {
    let path = dir.join("user.conf");
    match &options.user_conf {
        Some(given) => std::fs::copy(given, &path)
            .map(drop)
            .with_context(|| format!("copying --user-conf {}", given.display()))?,
        None => std::fs::write(&path, BUILTIN_USER_CONF)
            .with_context(|| format!("writing {}", path.display()))?,
    }
    Ok(path)
}

fn audit_config(dir: &Path, options: &OfficialOptions) -> anyhow::Result<Option<PathBuf>> {
    Ok(match &options.audit {
        None => None,
        Some(AuditSource::File(path)) => Some(path.clone()),
        Some(AuditSource::Text(text)) => {
            let path = dir.join("audit.config");
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Some(path)
        }
    })
}

/// The one phase, as the screen shows phases: the counts our side saw.
fn outcome(
    start: &PhaseStart,
    plan: &Plan,
    run: &loadgen_official::OfficialRun,
    verdict: Option<PhaseVerdict>,
) -> TestOutcome {
    TestOutcome {
        phases: vec![PhaseOutcome {
            phase: start.phase,
            settings: plan.effective.clone(),
            first_sample_id: 0,
            measurements: PhaseMeasurements {
                clock: PhaseClock::start_now(),
                stop: IssueStop::AllIssued,
                queries_issued: run.issued_queries,
                samples_issued: run.issued_samples,
                samples_given_up: 0,
                result: PerformanceResult {
                    queries_issued: run.issued_queries,
                    failed_samples: run.failed_samples.clone(),
                    interrupted: run.interrupted,
                    ..PerformanceResult::default()
                },
                issue_delay: None,
                max_complete_ns: run.end_ns,
            },
            verdict,
        }],
        find_peak: None,
        interrupted: run.interrupted,
    }
}

/// Runs the test under the official LoadGen; see the module docs.
#[allow(clippy::too_many_arguments)]
pub(super) fn measure(
    runtime: &tokio::runtime::Runtime,
    config: &RunConfig,
    options: &OfficialOptions,
    plan: &Plan,
    dir: &Path,
    clock: &RunClock,
    backend: &Backend,
    progress: &Arc<Progress>,
) -> anyhow::Result<Measured> {
    let start = phase_start(plan)?;
    let settings = loadgen_official::OfficialSettings {
        user_conf: user_conf(dir, options)?,
        model: config.model_key.clone(),
        scenario: config.settings.scenario,
        mode: config.settings.mode,
        target_qps: options.target_qps,
        min_duration_ms: options.min_duration_ms,
        min_query_count: options.min_query_count,
        max_duration_ms: options.max_duration_ms,
        audit_config: audit_config(dir, options)?,
        log_dir: dir.to_path_buf(),
        trace: config.logs.trace,
    };
    let records = Arc::new(rundir::RecordsWriter::create(
        dir,
        clock.start_unix_ns,
        config.settings.scenario,
    )?);
    let telemetry = super::start_telemetry(runtime, config, dir, clock, backend, progress)?;
    let mut observers = Observers::default();
    // The progress view ignores records; the records writer keeps them
    // (it takes each record last, without a copy).
    observers.push(records.clone());
    observers.push_ignoring_records(progress.clone());
    observers.push_telemetry(&telemetry);
    let observers: Arc<Observers> = Arc::new(observers);

    let stop = StopSignal::new();
    let issuing = crate::shutdown::issuing(stop.clone());
    let result = loadgen_official::start_test(
        &*backend.sut,
        &*plan.dataset,
        &settings,
        start.clone(),
        Some(observers.clone() as Arc<dyn RunObserver>),
        &stop,
    );
    drop(issuing);
    progress.finish();
    runtime.block_on(backend.sut.shutdown());
    let run = result.context("running MLCommons' LoadGen")?;

    let detail_path = dir.join("mlperf_log_detail.txt");
    let detail = DetailLog::parse(
        &std::fs::read_to_string(&detail_path)
            .with_context(|| format!("reading LoadGen's {}", detail_path.display()))?,
    );
    let failed: u64 = run.failed_samples.values().sum();
    let reported = (start.phase == Phase::Performance)
        .then(|| {
            PerformanceSummary::from_detail_log(
                &detail,
                &plan.effective,
                &Observed {
                    sample_count: run.completed_samples,
                    token_count: run.token_count,
                    failed_samples: run.failed_samples.clone(),
                    interrupted: run.interrupted,
                },
            )
        })
        .flatten();
    let mut reasons: Vec<String> = config
        .logs
        .conf_diagnostics
        .iter()
        .map(|d| format!("config: {d}"))
        .collect();
    match (&reported, start.phase) {
        (Some(summary), _) => reasons.extend(summary.reasons.iter().cloned()),
        (None, Phase::Performance) => reasons.push(format!(
            "{}: LoadGen logged no results (no result_validity)",
            detail_path.display()
        )),
        (None, Phase::Accuracy) => {
            if failed > 0 {
                reasons.push(format!("{failed} accuracy samples failed"));
            }
            if run.interrupted {
                reasons.push(INTERRUPTED_REASON.to_owned());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    reasons.retain(|r| seen.insert(r.clone()));
    let verdict = TestVerdict {
        valid: reasons.is_empty(),
        reasons,
    };
    let phase_verdict = (start.phase == Phase::Performance).then(|| PhaseVerdict {
        valid: verdict.valid,
        perf_constraints_met: reported.as_ref().is_some_and(|s| s.perf_constraints_met),
        reasons: verdict.reasons.clone(),
    });
    observers.phase_finished(&PhaseEnd::new(
        start.phase,
        run.end_ns,
        run.completed_samples,
        failed,
        phase_verdict.as_ref(),
        run.interrupted,
    ));
    drop(observers);
    let (exporter, skipped_ticks) = telemetry.finish(runtime);
    if let Ok(records) = Arc::try_unwrap(records) {
        records.finish()?;
    }
    Ok(Measured {
        outcome: outcome(&start, plan, &run, phase_verdict),
        verdict,
        reported,
        exporter,
        skipped_ticks,
    })
}
