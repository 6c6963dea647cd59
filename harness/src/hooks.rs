//! The test driver's hooks for `harness run`: LoadGen's four log files in the
//! run directory, and the verdict of each performance phase from LoadGen's
//! results maths.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use loadgen::logging::{LogHeader, LogWriter};
use loadgen::results::PerformanceSummary;
use loadgen::run::{IssueStop, PhaseLog};
use loadgen::{
    EffectiveSettings, LogOutputSettings, LogSettings, PhaseMeasurements, PhaseVerdict, TestHooks,
    TestOutcome,
};

/// LoadGen's log files.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Write the trace log.
    pub trace: bool,
    /// LoadGen's `error_invalid_config` messages from the conf files.
    pub conf_diagnostics: Vec<String>,
    /// An audit.config was applied (LoadGen then logs a warning saying so).
    pub audit_config: bool,
}

/// The run's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestVerdict {
    /// VALID.
    pub valid: bool,
    /// Why not, one line each.
    pub reasons: Vec<String>,
}

/// [`TestHooks`] writing LoadGen's logs into the run directory.
pub struct RunHooks {
    logs: Arc<LogWriter>,
    conf_diagnostics: Vec<String>,
    /// Each performance phase's results, in order (FindPeakPerformance has
    /// several).
    summaries: Mutex<Vec<PerformanceSummary>>,
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
        options: &LogOptions,
        effective: &EffectiveSettings,
        warnings: &[loadgen::SettingsWarning],
        qsl: &dyn loadgen::QuerySampleLibrary,
        server_model: &str,
    ) -> anyhow::Result<RunHooks> {
        let settings = LogSettings {
            log_output: LogOutputSettings {
                outdir: dir.to_path_buf(),
                ..LogOutputSettings::default()
            },
            enable_trace: options.trace,
        };
        let header = LogHeader::new(
            &format!("harness-openai ({server_model})"),
            qsl.name(),
            qsl.total_sample_count() as u64,
            qsl.performance_sample_count() as u64,
            effective.scenario,
            effective.use_token_latencies,
        );
        let logs = Arc::new(LogWriter::open(&settings, &header)?);
        logs.log_config_diagnostics(&options.conf_diagnostics);
        if options.audit_config {
            logs.warning(
                "Found Audit Config file (audit.config). Overriding TestSettings from audit.config file.",
            );
        }
        logs.log_settings(effective, warnings);
        Ok(RunHooks {
            logs,
            conf_diagnostics: options.conf_diagnostics.clone(),
            summaries: Mutex::default(),
        })
    }

    /// The performance summaries, in the order the phases ran.
    pub fn summaries(&self) -> Vec<PerformanceSummary> {
        self.summaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes the logs; returns the verdict of the test.
    pub fn finish(&self, outcome: &TestOutcome) -> anyhow::Result<TestVerdict> {
        self.logs.finish()?;
        let mut reasons = Vec::new();
        for diagnostic in &self.conf_diagnostics {
            reasons.push(format!("config: {diagnostic}"));
        }
        if outcome.interrupted {
            reasons.push("the run was interrupted before it finished".to_owned());
        }
        if outcome
            .find_peak
            .as_ref()
            .is_some_and(|search| search.peak_qps.is_none())
        {
            reasons.push(
                "find-peak: the initial target QPS does not meet the performance constraints"
                    .to_owned(),
            );
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
        let mut seen = std::collections::HashSet::new();
        reasons.retain(|r| seen.insert(r.clone()));
        Ok(TestVerdict {
            valid: reasons.is_empty(),
            reasons,
        })
    }
}

impl TestHooks for RunHooks {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        // The driver already turns phase positions into sequence ids, so the
        // writer's own adapter adds no offset.
        LogWriter::phase_log(&self.logs, 0)
    }

    fn loaded_qsl_set(&self, set: &loadgen::schedule::LoadableSet) {
        let indices: Vec<u64> = set.samples.iter().map(|&i| i as u64).collect();
        self.logs.log_loaded_qsl_set(&indices);
    }

    fn generated(&self, schedule: &loadgen::Schedule) {
        self.logs.log_generated(schedule);
    }

    fn phase_ended(&self, _phase: loadgen::Phase, measurements: &PhaseMeasurements) {
        self.logs.log_phase_end(measurements);
    }

    fn performance_finished(
        &self,
        settings: &EffectiveSettings,
        measurements: &PhaseMeasurements,
    ) -> PhaseVerdict {
        let summary = PerformanceSummary::compute(settings, &measurements.result);
        if let Err(e) = self.logs.log_results(settings, &summary) {
            tracing::error!("writing the LoadGen summary: {e}");
        }
        let mut reasons = summary.reasons.clone();
        // A stall or an overload also shows as failed samples; say why
        // issuing stopped when nothing else did.
        if matches!(
            measurements.stop,
            IssueStop::SutStalled | IssueStop::TooManyOutstanding
        ) && reasons.is_empty()
        {
            reasons.push(format!("issuing ended early: {:?}", measurements.stop));
        }
        let verdict = PhaseVerdict {
            valid: summary.valid && reasons.is_empty(),
            perf_constraints_met: summary.perf_constraints_met,
            reasons,
        };
        self.summaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(summary);
        verdict
    }
}
