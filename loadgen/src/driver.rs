//! LoadGen's `StartTest`: the phases a test mode runs, the sample sets they
//! load, and the glue between query generation, the issuer and the logs.
//!
//! | mode | phases |
//! |---|---|
//! | `AccuracyOnly` | one accuracy phase per loadable set (every sample once) |
//! | `PerformanceOnly` | one performance phase on the first loadable set |
//! | `SubmissionRun` | accuracy, then performance (one sequence generator) |
//! | `FindPeakPerformance` | Server only: performance phases at the QPS values LoadGen's search picks |
//!
//! Like LoadGen, the samples of a set are loaded (`load_samples_to_ram`)
//! before its queries are generated and unloaded after its phase; the
//! sequence generator lives for the whole test, so a SubmissionRun's
//! performance sequence ids continue after its accuracy ones.
//!
//! Logging is the caller's: [`TestHooks`] receives the loaded sets, the
//! generated schedules and each performance phase's measurements, judges
//! them (validity needs LoadGen's result maths and early stopping) and hands
//! the issuer a [`PhaseLog`].

use std::sync::Arc;

use crate::find_peak::{FindPeakError, FindPeakOutcome, FindPeakSettings, find_peak, step_passed};
use crate::record::{Phase, PhaseEnd, PhaseStart, QueryRecord, RunObserver};
use crate::results::PerformanceSummary;
use crate::run::{
    IssuePlan, NoPhaseLog, PhaseLog, PhaseMeasurements, PhaseRequest, RunOptions, RuntimeError,
};
use crate::schedule::{
    LoadableSet, Schedule, ScheduleError, SequenceGen, accuracy_sets, generate_queries,
    performance_set,
};
use crate::settings::{EffectiveSettings, Scenario, TestMode};
use crate::sut::{QslError, QuerySampleLibrary, SystemUnderTest};

/// How a performance phase fared, as the caller's result maths judged it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhaseVerdict {
    /// MLPerf validity (LoadGen's VALID/INVALID plus our failure rules).
    pub valid: bool,
    /// LoadGen's `PerfConstraintsMet`: what FindPeakPerformance searches on.
    pub perf_constraints_met: bool,
    /// Why the phase is invalid, one line each.
    pub reasons: Vec<String>,
}

impl PhaseEnd {
    /// What observers are told when `phase` ends: its counts and, for a
    /// performance phase, its verdict (`None` for accuracy). One place for
    /// both drivers (this one and the official LoadGen's in the harness).
    pub fn new(
        phase: Phase,
        end_ns: u64,
        completed_samples: u64,
        failed_samples: u64,
        verdict: Option<&PhaseVerdict>,
        interrupted: bool,
    ) -> PhaseEnd {
        PhaseEnd {
            phase,
            end_ns,
            completed_samples,
            failed_samples,
            valid: verdict.map(|v| v.valid),
            invalid_reasons: verdict.map(|v| v.reasons.clone()).unwrap_or_default(),
            interrupted,
        }
    }
}

/// What the driver tells the caller as the test runs. Called on the thread
/// that runs [`start_test`].
pub trait TestHooks: Send + Sync {
    /// Where the issuer's log output goes (accuracy entries, runtime
    /// errors, messages).
    fn phase_log(&self) -> Arc<dyn PhaseLog>;
    /// A sample set was loaded (LoadGen logs `loaded_qsl_set`).
    fn loaded_qsl_set(&self, _set: &LoadableSet) {}
    /// A phase's queries were generated (LoadGen logs `generated_*`).
    fn generated(&self, _schedule: &Schedule) {}
    /// A phase's samples have all completed (or were given up on), before
    /// its results are judged; called for accuracy phases too. LoadGen logs
    /// its `logger_*` counters and `power_begin` / `power_end` here
    /// ([`LogWriter::log_phase_end`](crate::LogWriter::log_phase_end)).
    fn phase_ended(&self, _phase: Phase, _measurements: &PhaseMeasurements) {}
    /// A performance phase ended: compute, log and judge its results.
    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict;
}

/// [`TestHooks`] for a library user who wants LoadGen's verdicts but no log
/// files: each performance phase is judged with LoadGen's result maths
/// ([`PerformanceSummary::compute`]) and its summary kept, in order.
#[derive(Debug, Default)]
pub struct SummaryHooks {
    summaries: std::sync::Mutex<Vec<PerformanceSummary>>,
}

impl SummaryHooks {
    /// The performance summaries, in the order the phases ran.
    pub fn summaries(&self) -> Vec<PerformanceSummary> {
        self.summaries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl TestHooks for SummaryHooks {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        Arc::new(NoPhaseLog)
    }

    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict {
        let summary = PerformanceSummary::compute(settings, &measurements.result);
        let verdict = PhaseVerdict {
            valid: summary.valid,
            perf_constraints_met: summary.perf_constraints_met,
            reasons: summary.reasons.clone(),
        };
        self.summaries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(summary);
        verdict
    }
}

/// One phase's outcome.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    /// Accuracy or performance.
    pub phase: Phase,
    /// The settings the phase ran with (FindPeakPerformance changes the
    /// target QPS from phase to phase).
    pub settings: EffectiveSettings,
    /// Sequence id of the phase's first sample (records and accuracy-log
    /// entries of the phase count from it).
    pub first_sample_id: u64,
    /// What was measured.
    pub measurements: PhaseMeasurements,
    /// The verdict of a performance phase.
    pub verdict: Option<PhaseVerdict>,
}

/// Everything a test ran.
#[derive(Debug, Clone, Default)]
pub struct TestOutcome {
    /// Every phase, in the order run.
    pub phases: Vec<PhaseOutcome>,
    /// FindPeakPerformance's search: the QPS of each run and whether it
    /// passed, the peak, and (as `reported`) the index in `phases` of the
    /// run LoadGen reports. `None` in the other modes.
    pub find_peak: Option<FindPeakOutcome<usize>>,
    /// The test was stopped before it finished.
    pub interrupted: bool,
}

impl TestOutcome {
    /// The performance phase whose results stand for the test: the last one
    /// run, or for FindPeakPerformance the peak's.
    pub fn performance(&self) -> Option<&PhaseOutcome> {
        self.phases.get(self.performance_index()?)
    }

    /// The index in `phases` of [`TestOutcome::performance`].
    pub fn performance_index(&self) -> Option<usize> {
        if let Some(search) = &self.find_peak {
            return (search.reported < self.phases.len()).then_some(search.reported);
        }
        self.phases
            .iter()
            .rposition(|p| p.phase == Phase::Performance)
    }

    /// How many performance phases ran before [`TestOutcome::performance`]:
    /// its position among the performance phases (the order in which a
    /// [`crate::TestHooks`] saw them finish).
    pub fn performance_ordinal(&self) -> Option<usize> {
        let index = self.performance_index()?;
        Some(
            self.phases[..index]
                .iter()
                .filter(|p| p.phase == Phase::Performance)
                .count(),
        )
    }

    /// Whether every performance phase that stands for the test was valid
    /// and nothing failed.
    pub fn valid(&self) -> bool {
        !self.interrupted
            && self
                .performance()
                .is_none_or(|p| p.verdict.as_ref().is_some_and(|v| v.valid))
    }
}

/// Why a test could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// The QSL refused to load or unload samples.
    #[error(transparent)]
    Qsl(#[from] QslError),
    /// The queries could not be generated from the settings.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// FindPeakPerformance was asked of another scenario than Server.
    #[error("FindPeakPerformance needs the Server scenario, not {0}")]
    FindPeakScenario(Scenario),
    /// The peak search could not proceed.
    #[error("find peak performance: {0}")]
    FindPeak(String),
}

/// Runs a test as LoadGen's `StartTest` does, with settings already derived
/// ([`EffectiveSettings::new`]) and logged by the caller.
pub fn start_test(
    sut: &dyn SystemUnderTest,
    qsl: &dyn QuerySampleLibrary,
    settings: &EffectiveSettings,
    hooks: &dyn TestHooks,
    options: &RunOptions,
) -> Result<TestOutcome, TestError> {
    // Query generation's time then counts towards the clock's rate
    // measurement by the time the first phase starts.
    crate::run::start_clock();
    let mut test = Test {
        sut,
        qsl,
        hooks,
        options,
        sequence: SequenceGen::new(),
        outcome: TestOutcome::default(),
    };
    match settings.mode {
        TestMode::AccuracyOnly => test.accuracy(settings)?,
        TestMode::PerformanceOnly => {
            test.performance(settings)?;
        }
        TestMode::SubmissionRun => {
            test.accuracy(settings)?;
            if !test.stopped() {
                test.performance(settings)?;
            }
        }
        TestMode::FindPeakPerformance => test.find_peak(settings)?,
    }
    test.outcome.interrupted |= test.stopped();
    sut.flush_queries();
    Ok(test.outcome)
}

struct Test<'a> {
    sut: &'a dyn SystemUnderTest,
    qsl: &'a dyn QuerySampleLibrary,
    hooks: &'a dyn TestHooks,
    options: &'a RunOptions,
    sequence: SequenceGen,
    outcome: TestOutcome,
}

impl Test<'_> {
    fn stopped(&self) -> bool {
        self.options.stop.is_requested()
    }

    fn total_samples(&self) -> u64 {
        self.qsl.total_sample_count() as u64
    }

    fn accuracy(&mut self, settings: &EffectiveSettings) -> Result<(), TestError> {
        let log = self.hooks.phase_log();
        log.generic_message("Starting accuracy mode");
        for set in accuracy_sets(settings, self.total_samples()) {
            if self.stopped() {
                break;
            }
            self.run_set(settings, &set, Phase::Accuracy)?;
        }
        Ok(())
    }

    /// One performance phase; returns its index in `outcome.phases`.
    fn performance(&mut self, settings: &EffectiveSettings) -> Result<usize, TestError> {
        self.hooks
            .phase_log()
            .generic_message("Starting performance mode");
        let set = performance_set(settings, self.total_samples())?;
        self.run_set(settings, &set, Phase::Performance)
    }

    fn run_set(
        &mut self,
        settings: &EffectiveSettings,
        set: &LoadableSet,
        phase: Phase,
    ) -> Result<usize, TestError> {
        self.qsl.load_samples_to_ram(&set.samples)?;
        self.hooks.loaded_qsl_set(set);
        let outcome = self.issue(settings, set, phase);
        // Unload even when generation failed: the QSL loaded the set.
        let unloaded = self.qsl.unload_samples_from_ram(&set.samples);
        let index = outcome?;
        unloaded?;
        Ok(index)
    }

    fn issue(
        &mut self,
        settings: &EffectiveSettings,
        set: &LoadableSet,
        phase: Phase,
    ) -> Result<usize, TestError> {
        let schedule = generate_queries(settings, phase, set, &mut self.sequence)?;
        self.hooks.generated(&schedule);
        let first_sample_id = schedule.first_sample_id();
        // The plan takes over the schedule's memory (what the issuer needs,
        // without a second copy).
        let plan = Arc::new(IssuePlan::from_schedule(schedule));
        // A phase whose sequence ids start at 0 (every performance-only
        // test) needs no translation: the log and the observer are called
        // directly, which spares a call and a copy of each record.
        let inner_log = self.hooks.phase_log();
        let log: Arc<dyn PhaseLog> = if first_sample_id == 0 {
            inner_log
        } else {
            Arc::new(SequencedLog {
                inner: inner_log,
                first_sample_id,
            })
        };
        // The observer sees the same sequence ids as the accuracy log.
        let options = RunOptions {
            observer: self.options.observer.clone().map(|inner| {
                if first_sample_id == 0 {
                    inner
                } else {
                    Arc::new(SequencedObserver {
                        inner,
                        first_sample_id,
                    }) as Arc<dyn RunObserver>
                }
            }),
            ..self.options.clone()
        };
        let measurements = crate::run::run_phase(&PhaseRequest {
            sut: self.sut,
            plan,
            settings,
            phase,
            log,
            options: &options,
        });
        self.hooks.phase_ended(phase, &measurements);
        let verdict = (phase == Phase::Performance)
            .then(|| self.hooks.performance_finished(settings, &measurements));
        if let Some(observer) = &self.options.observer {
            let failed: u64 = measurements.result.failed_samples.values().sum();
            observer.phase_finished(&PhaseEnd::new(
                phase,
                measurements.max_complete_ns,
                measurements.samples_issued,
                failed,
                verdict.as_ref(),
                measurements.result.interrupted,
            ));
        }
        self.outcome.interrupted |= measurements.result.interrupted;
        self.outcome.phases.push(PhaseOutcome {
            phase,
            settings: settings.clone(),
            first_sample_id,
            measurements,
            verdict,
        });
        Ok(self.outcome.phases.len() - 1)
    }

    fn find_peak(&mut self, base: &EffectiveSettings) -> Result<(), TestError> {
        if base.scenario != Scenario::Server {
            return Err(TestError::FindPeakScenario(base.scenario));
        }
        let log = self.hooks.phase_log();
        log.generic_message("Starting FindPeakPerformance mode");
        let search = FindPeakSettings::from_settings(&base.requested);
        let result = find_peak(base.target_qps, search, |qps| {
            if self.stopped() {
                return Err(RunFailed("stopped".into()));
            }
            let mut settings = base.clone();
            settings.target_qps = qps;
            let index = self
                .performance(&settings)
                .map_err(|e| RunFailed(e.to_string()))?;
            let phase = &self.outcome.phases[index];
            let failed: u64 = phase.measurements.result.failed_samples.values().sum();
            let passed = phase.verdict.as_ref().is_some_and(|v| {
                step_passed(
                    v.perf_constraints_met,
                    failed,
                    phase.measurements.result.interrupted,
                )
            });
            Ok((passed, index))
        });
        match result {
            Ok(outcome) => {
                for message in outcome.loadgen_messages() {
                    log.generic_message(&message);
                }
                self.outcome.find_peak = Some(outcome);
                Ok(())
            }
            Err(FindPeakError::Run { .. }) if self.stopped() => Ok(()),
            Err(error) => Err(TestError::FindPeak(error.to_string())),
        }
    }
}

/// A run inside the peak search that could not proceed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RunFailed(String);

/// Gives the observer LoadGen's sequence ids (the accuracy log's `seq_id`,
/// counting on across phases and accuracy sets) instead of the issuer's
/// phase-relative sample positions, so records.jsonl's `seq` and
/// mlperf_log_accuracy.json's `seq_id` name a sample alike.
struct SequencedObserver {
    inner: Arc<dyn RunObserver>,
    first_sample_id: u64,
}

impl RunObserver for SequencedObserver {
    fn phase_starting(&self, phase: Phase) {
        self.inner.phase_starting(phase);
    }

    fn phase_started(&self, start: &PhaseStart) {
        self.inner.phase_started(start);
    }

    fn query_issued(&self, query: u64, samples: usize, issued_ns: u64) {
        self.inner.query_issued(query, samples, issued_ns);
    }

    fn first_token(&self, seq: u64, at_ns: u64) {
        self.inner.first_token(self.first_sample_id + seq, at_ns);
    }

    fn sample_completed(&self, mut record: QueryRecord) {
        record.seq += self.first_sample_id;
        self.inner.sample_completed(record);
    }

    fn samples_completed(&self, records: &mut Vec<QueryRecord>) {
        for record in records.iter_mut() {
            record.seq += self.first_sample_id;
        }
        self.inner.samples_completed(records);
    }

    fn phase_finished(&self, end: &PhaseEnd) {
        self.inner.phase_finished(end);
    }
}

/// Turns the issuer's phase-relative sample positions into LoadGen's
/// sequence ids (the accuracy log's `seq_id`).
struct SequencedLog {
    inner: Arc<dyn PhaseLog>,
    first_sample_id: u64,
}

impl PhaseLog for SequencedLog {
    fn accuracy_entry(
        &self,
        seq: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        token_data: Option<Vec<u8>>,
        token_count: Option<i64>,
    ) {
        self.inner.accuracy_entry(
            self.first_sample_id + seq,
            qsl_idx,
            data,
            token_data,
            token_count,
        );
    }

    fn runtime_error(&self, error: RuntimeError) {
        self.inner.runtime_error(error);
    }

    fn generic_message(&self, message: &str) {
        self.inner.generic_message(message);
    }
}
