//! The test driver's hooks for `harness run`: LoadGen's log files and the
//! verdict of each performance phase.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use loadgen::run::{IssueStop, PhaseLog, RuntimeError};
use loadgen::{EffectiveSettings, PhaseMeasurements, PhaseVerdict, TestHooks, TestOutcome};

use crate::run_cmd::RunConfig;

/// The run's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestVerdict {
    /// VALID.
    pub valid: bool,
    /// Why not, one line each.
    pub reasons: Vec<String>,
}

/// What the issuer logged, kept for the summary.
#[derive(Debug, Default)]
struct Collected {
    runtime_errors: Vec<String>,
}

struct Log {
    logs: Arc<loadgen::logging::LogWriter>,
    collected: Arc<Mutex<Collected>>,
}

impl PhaseLog for Log {
    fn accuracy_entry(
        &self,
        seq: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        token_data: Option<Vec<u8>>,
        token_count: Option<i64>,
    ) {
        self.logs
            .accuracy_entry(seq, qsl_idx, data, token_data, token_count);
    }

    fn runtime_error(&self, error: RuntimeError) {
        let message = error.message();
        self.collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .runtime_errors
            .push(message);
        self.logs.runtime_error(error);
    }

    fn generic_message(&self, message: &str) {
        self.logs.generic_message(message);
    }
}

/// [`TestHooks`] writing LoadGen's logs into the run directory.
pub struct RunHooks {
    logs: Arc<loadgen::logging::LogWriter>,
    collected: Arc<Mutex<Collected>>,
    conf_diagnostics: Vec<String>,
}

impl std::fmt::Debug for RunHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHooks").finish_non_exhaustive()
    }
}

impl RunHooks {
    /// Opens LoadGen's log files in `dir` and logs the settings.
    pub fn open(
        dir: &Path,
        config: &RunConfig,
        effective: &EffectiveSettings,
        warnings: &[loadgen::SettingsWarning],
        qsl: &dyn loadgen::QuerySampleLibrary,
        server_model: &str,
    ) -> anyhow::Result<RunHooks> {
        let logs = loadgen::logging::LogWriter::open(
            &loadgen::logging::LogOpen {
                dir,
                sut_name: &format!("harness-openai ({server_model})"),
                qsl_name: qsl.name(),
                qsl_total_sample_count: qsl.total_sample_count() as u64,
                qsl_performance_sample_count: qsl.performance_sample_count() as u64,
                trace: config.trace,
            },
        )?;
        logs.log_settings(&config.settings, effective, warnings, &config.conf_diagnostics);
        Ok(RunHooks {
            logs: Arc::new(logs),
            collected: Arc::default(),
            conf_diagnostics: config.conf_diagnostics.clone(),
        })
    }

    /// Writes the summary and closes the logs; returns the verdict of the
    /// test.
    pub fn finish(&self, outcome: &TestOutcome) -> anyhow::Result<TestVerdict> {
        self.logs.finish()?;
        let mut reasons = Vec::new();
        for diagnostic in &self.conf_diagnostics {
            reasons.push(format!("config: {diagnostic}"));
        }
        if outcome.interrupted {
            reasons.push("the run was interrupted before it finished".to_owned());
        }
        match outcome.performance() {
            Some(phase) => {
                if let Some(verdict) = &phase.verdict {
                    reasons.extend(verdict.reasons.iter().cloned());
                }
            }
            None => {
                // Accuracy only: valid when every sample was answered.
                for phase in &outcome.phases {
                    let failed: u64 = phase.measurements.result.failed_samples.values().sum();
                    if failed > 0 {
                        reasons.push(format!("{failed} accuracy samples failed"));
                    }
                }
            }
        }
        reasons.dedup();
        Ok(TestVerdict {
            valid: reasons.is_empty(),
            reasons,
        })
    }
}

impl TestHooks for RunHooks {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        Arc::new(Log {
            logs: Arc::clone(&self.logs),
            collected: Arc::clone(&self.collected),
        })
    }

    fn loaded_qsl_set(&self, set: &loadgen::schedule::LoadableSet) {
        self.logs.loaded_qsl_set(set);
    }

    fn generated(&self, schedule: &loadgen::Schedule) {
        self.logs.generated(schedule);
    }

    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict {
        let summary = self.logs.performance_results(settings, measurements);
        let mut reasons = summary.invalid_reasons.clone();
        if matches!(
            measurements.stop,
            IssueStop::SutStalled | IssueStop::TooManyOutstanding
        ) && reasons.is_empty()
        {
            reasons.push(format!("issuing ended early: {:?}", measurements.stop));
        }
        PhaseVerdict {
            valid: reasons.is_empty(),
            perf_constraints_met: summary.perf_constraints_met,
            reasons,
        }
    }
}
