//! `start_test`: the phases each test mode runs, the sets it loads, the
//! sequence ids it hands out and the peak search.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use loadgen::schedule::LoadableSet;
use loadgen::{
    EffectiveSettings, Phase, PhaseLog, PhaseMeasurements, PhaseVerdict, QslError, QuerySample,
    QuerySampleIndex, QuerySampleLibrary, QuerySampleResponse, Responder, RunOptions, RuntimeError,
    Scenario, SystemUnderTest, TestError, TestHooks, TestMode, TestSettings, start_test,
};

/// Answers every sample at once with its QSL index as data.
struct EchoSut;

impl SystemUnderTest for EchoSut {
    fn name(&self) -> &str {
        "echo"
    }
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        let mut responses: Vec<_> = samples
            .iter()
            .map(|s| QuerySampleResponse {
                id: s.id,
                data: (s.index as u32).to_le_bytes().to_vec(),
                ..QuerySampleResponse::default()
            })
            .collect();
        responder.complete_all(&mut responses);
    }
}

#[derive(Default)]
struct Qsl {
    total: usize,
    performance: usize,
    loaded: Mutex<Vec<Vec<QuerySampleIndex>>>,
    unloaded: Mutex<Vec<Vec<QuerySampleIndex>>>,
}

impl QuerySampleLibrary for Qsl {
    fn name(&self) -> &str {
        "qsl"
    }
    fn total_sample_count(&self) -> usize {
        self.total
    }
    fn performance_sample_count(&self) -> usize {
        self.performance
    }
    fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        self.loaded.lock().unwrap().push(samples.to_vec());
        Ok(())
    }
    fn unload_samples_from_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        self.unloaded.lock().unwrap().push(samples.to_vec());
        Ok(())
    }
}

/// Accuracy entries as (seq_id, qsl_idx); the verdict passes runs at or
/// below `passing_qps`.
struct Hooks {
    entries: Mutex<Vec<(u64, u64)>>,
    messages: Mutex<Vec<String>>,
    generated: Mutex<Vec<(u64, u64)>>,
    passing_qps: f64,
}

impl Hooks {
    fn new(passing_qps: f64) -> Arc<Hooks> {
        Arc::new(Hooks {
            entries: Mutex::default(),
            messages: Mutex::default(),
            generated: Mutex::default(),
            passing_qps,
        })
    }
}

struct Log(Arc<Hooks>);

impl PhaseLog for Log {
    fn accuracy_entry(
        &self,
        seq: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        _: Option<Vec<u8>>,
        _: Option<i64>,
    ) {
        assert_eq!(data, (qsl_idx as u32).to_le_bytes());
        self.0.entries.lock().unwrap().push((seq, qsl_idx));
    }
    fn runtime_error(&self, error: RuntimeError) {
        self.0.messages.lock().unwrap().push(error.message());
    }
    fn generic_message(&self, message: &str) {
        self.0.messages.lock().unwrap().push(message.to_owned());
    }
}

struct HookHandle(Arc<Hooks>);

impl TestHooks for HookHandle {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        Arc::new(Log(Arc::clone(&self.0)))
    }
    fn loaded_qsl_set(&self, _set: &LoadableSet) {}
    fn generated(&self, schedule: &loadgen::Schedule) {
        self.0
            .generated
            .lock()
            .unwrap()
            .push((schedule.first_sample_id(), schedule.sample_count() as u64));
    }
    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        m: &PhaseMeasurements,
    ) -> PhaseVerdict {
        let met = settings.target_qps <= self.0.passing_qps;
        PhaseVerdict {
            valid: met && m.result.failed_samples.is_empty(),
            perf_constraints_met: met,
            reasons: Vec::new(),
        }
    }
}

fn settings(scenario: Scenario, mode: TestMode, f: impl FnOnce(&mut TestSettings)) -> TestSettings {
    let mut s = TestSettings {
        scenario,
        mode,
        min_duration_ms: 0,
        min_query_count: 20,
        server_target_qps: 2000.0,
        offline_expected_qps: 1000.0,
        ..TestSettings::default()
    };
    f(&mut s);
    s
}

fn run(
    requested: &TestSettings,
    qsl: &Qsl,
    hooks: &Arc<Hooks>,
) -> Result<loadgen::TestOutcome, TestError> {
    let (effective, _) =
        EffectiveSettings::new(requested, qsl.performance as u64, qsl.total as u64).unwrap();
    start_test(
        &EchoSut,
        qsl,
        &effective,
        &HookHandle(Arc::clone(hooks)),
        &RunOptions::default(),
    )
}

#[test]
fn accuracy_only_answers_every_sample_of_the_library_once() {
    let qsl = Qsl {
        total: 37,
        performance: 10,
        ..Qsl::default()
    };
    let hooks = Hooks::new(f64::INFINITY);
    let s = settings(Scenario::Offline, TestMode::AccuracyOnly, |_| {});
    let outcome = run(&s, &qsl, &hooks).unwrap();

    // Loaded in sets of the performance sample count, each unloaded after.
    let loaded = qsl.loaded.lock().unwrap().clone();
    assert_eq!(loaded, *qsl.unloaded.lock().unwrap());
    assert_eq!(
        loaded.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 10, 7]
    );
    assert!(outcome.phases.iter().all(|p| p.phase == Phase::Accuracy));
    assert_eq!(outcome.phases.len(), 4);

    let entries = hooks.entries.lock().unwrap().clone();
    let indices: BTreeSet<u64> = entries.iter().map(|e| e.1).collect();
    assert_eq!(indices, (0..37).collect(), "every sample once");
    let seqs: BTreeSet<u64> = entries.iter().map(|e| e.0).collect();
    assert_eq!(seqs, (0..37).collect(), "sequence ids continue across sets");
    assert_eq!(outcome.performance().map(|p| p.phase), None);
    assert!(
        hooks
            .messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m == "Starting accuracy mode")
    );
}

/// The observer's records as (seq, sample_index).
#[derive(Default)]
struct Records(Mutex<Vec<(u64, u64)>>);

impl loadgen::RunObserver for Records {
    fn sample_completed(&self, record: loadgen::QueryRecord) {
        self.0
            .lock()
            .unwrap()
            .push((record.seq, record.sample_index));
    }
}

#[test]
fn records_carry_the_accuracy_logs_sequence_ids_across_sets() {
    let qsl = Qsl {
        total: 37,
        performance: 10,
        ..Qsl::default()
    };
    let hooks = Hooks::new(f64::INFINITY);
    let s = settings(Scenario::Offline, TestMode::AccuracyOnly, |_| {});
    let (effective, _) =
        EffectiveSettings::new(&s, qsl.performance as u64, qsl.total as u64).unwrap();
    let records = Arc::new(Records::default());
    let options = RunOptions {
        observer: Some(Arc::clone(&records) as Arc<dyn loadgen::RunObserver>),
        ..RunOptions::default()
    };
    start_test(
        &EchoSut,
        &qsl,
        &effective,
        &HookHandle(Arc::clone(&hooks)),
        &options,
    )
    .unwrap();
    let mut got = records.0.lock().unwrap().clone();
    let mut logged = hooks.entries.lock().unwrap().clone();
    got.sort_unstable();
    logged.sort_unstable();
    // Four sets (10, 10, 10, 7): the second set's first record is seq 10,
    // not 0, as in mlperf_log_accuracy.json.
    assert_eq!(got.len(), 37);
    assert_eq!(got, logged);
}

#[test]
fn submission_run_runs_accuracy_then_performance_with_continuing_sequence_ids() {
    let qsl = Qsl {
        total: 16,
        performance: 16,
        ..Qsl::default()
    };
    let hooks = Hooks::new(f64::INFINITY);
    let s = settings(Scenario::Server, TestMode::SubmissionRun, |_| {});
    let outcome = run(&s, &qsl, &hooks).unwrap();

    let phases: Vec<Phase> = outcome.phases.iter().map(|p| p.phase).collect();
    assert_eq!(phases, vec![Phase::Accuracy, Phase::Performance]);
    let generated = hooks.generated.lock().unwrap().clone();
    assert_eq!(generated[0], (0, 16));
    assert_eq!(
        generated[1].0, 16,
        "performance ids follow the accuracy ones"
    );
    assert_eq!(outcome.phases[1].first_sample_id, 16);
    assert!(outcome.valid());
    assert!(outcome.phases[1].measurements.result.sample_latencies.len() >= 20);
}

#[test]
fn find_peak_searches_up_to_the_last_passing_qps() {
    let qsl = Qsl {
        total: 16,
        performance: 16,
        ..Qsl::default()
    };
    // Passes up to 5000 QPS: widening from 2000 gives 2000 (pass), 4000
    // (pass), 8000 (fail), then bisection to one decimal of precision 0.
    let hooks = Hooks::new(5000.0);
    let s = settings(Scenario::Server, TestMode::FindPeakPerformance, |s| {
        s.server_find_peak_qps_decimals_of_precision = 0;
    });
    let outcome = run(&s, &qsl, &hooks).unwrap();
    let search = outcome.find_peak.as_ref().unwrap();
    let peak = search.peak_qps.unwrap();
    assert!((4999.0..=5000.0).contains(&peak), "peak {peak}");
    assert_eq!(search.steps.len(), outcome.phases.len());
    let reported = outcome.performance().unwrap();
    assert_eq!(reported.settings.target_qps, peak);
    assert!(
        hooks
            .messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("Found peak performance"))
    );
}

#[test]
fn find_peak_refuses_scenarios_other_than_server() {
    let qsl = Qsl {
        total: 4,
        performance: 4,
        ..Qsl::default()
    };
    let s = settings(Scenario::Offline, TestMode::FindPeakPerformance, |_| {});
    let error = run(&s, &qsl, &Hooks::new(1.0)).unwrap_err();
    assert!(
        matches!(error, TestError::FindPeakScenario(Scenario::Offline)),
        "{error}"
    );
}

#[test]
fn a_qsl_that_cannot_load_fails_the_test_with_its_error() {
    struct Broken;
    impl QuerySampleLibrary for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn total_sample_count(&self) -> usize {
            4
        }
        fn performance_sample_count(&self) -> usize {
            4
        }
        fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
            Err(format!("cannot load {} samples", samples.len()).into())
        }
        fn unload_samples_from_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
            Ok(())
        }
    }
    let s = settings(Scenario::Offline, TestMode::PerformanceOnly, |_| {});
    let (effective, _) = EffectiveSettings::new(&s, 4, 4).unwrap();
    let error = start_test(
        &EchoSut,
        &Broken,
        &effective,
        &HookHandle(Hooks::new(1.0)),
        &RunOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("cannot load 4 samples"),
        "{error}"
    );
}
