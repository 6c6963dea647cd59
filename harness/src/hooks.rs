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
    logs: Arc<InterimLogs>,
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
    logs: Arc<InterimLogs>,
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
        let _ = (dir, effective, warnings, qsl, server_model);
        let logs = InterimLogs::default();
        Ok(RunHooks {
            logs: Arc::new(logs),
            collected: Arc::default(),
            conf_diagnostics: config.conf_diagnostics.clone(),
        })
    }

    /// Writes the summary and closes the logs; returns the verdict of the
    /// test.
    pub fn finish(&self, outcome: &TestOutcome) -> anyhow::Result<TestVerdict> {
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

    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict {
        let summary = interim_results(settings, measurements);
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

/// Stand-in for LoadGen's log writers until they land: keeps nothing.
#[derive(Debug, Default)]
struct InterimLogs;

impl InterimLogs {
    fn accuracy_entry(&self, _: u64, _: u64, _: Vec<u8>, _: Option<Vec<u8>>, _: Option<i64>) {}
    fn runtime_error(&self, error: RuntimeError) {
        tracing::warn!("{}", error.message());
    }
    fn generic_message(&self, message: &str) {
        tracing::info!("{message}");
    }
}

struct InterimSummary {
    invalid_reasons: Vec<String>,
    perf_constraints_met: bool,
}

fn interim_results(settings: &EffectiveSettings, m: &PhaseMeasurements) -> InterimSummary {
    let r = &m.result;
    let mut reasons = Vec::new();
    let failed: u64 = r.failed_samples.values().sum();
    if failed > 0 {
        let kinds: Vec<String> = r
            .failed_samples
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        reasons.push(format!("{failed} samples failed: {}", kinds.join(", ")));
    }
    let duration_ns = (r.final_query_all_samples_done_time.max(r.max_latency) * 1e9) as u64;
    if duration_ns < settings.min_duration_ms.saturating_mul(1_000_000) {
        reasons.push("min duration not met".to_owned());
    }
    if r.queries_issued < settings.min_query_count {
        reasons.push("min queries not met".to_owned());
    }
    InterimSummary {
        invalid_reasons: reasons,
        perf_constraints_met: failed == 0,
    }
}
