//! Issuing a phase's queries to a SUT and collecting what comes back.
//!
//! The issuer runs on the calling thread, like LoadGen's: it waits for each
//! scheduled instant (Server), for the previous query (SingleStream,
//! MultiStream) or for nothing (Offline), calls
//! [`SystemUnderTest::issue_query`](crate::SystemUnderTest::issue_query) and
//! moves on; a slow SUT never delays it. Completions are recorded lock-free
//! on the SUT's threads. Unlike LoadGen, a phase always ends: a SUT that
//! stops answering is given up on after [`RunOptions::idle_timeout`], a stop
//! request ends issuing at once, and every sample not answered by then is
//! completed with an error, so the result is INVALID with a reason instead of
//! a hang.

mod clock;
mod issuer;
mod monotonic;
mod plan;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use clock::PhaseClock;
pub use issuer::{IssueStop, PhaseMeasurements, PhaseRequest, run_phase};
pub use monotonic::clock_source;
pub(crate) use monotonic::start as start_clock;
pub use plan::IssuePlan;

/// Asks a running test to stop (Ctrl-C, SIGTERM, a sweep being cancelled).
/// Cheap to clone; all clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Raise it: issuing stops at the next opportunity.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it was raised.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Options of a run that LoadGen's `TestSettings` does not have.
#[derive(Clone)]
pub struct RunOptions {
    /// Receives records and events as they happen.
    pub observer: Option<Arc<dyn crate::RunObserver>>,
    /// Raised to stop the run early.
    pub stop: StopSignal,
    /// Give up on outstanding samples when none has completed for this long
    /// after issuing ended (or, in SingleStream/MultiStream, while waiting for
    /// the previous query). `None` waits forever, as LoadGen does.
    pub idle_timeout: Option<Duration>,
    /// After a stop request, how long to wait for in-flight samples (the SUT
    /// is expected to cancel them) before giving up on them.
    pub stop_grace: Duration,
    /// The issuer spins, instead of sleeping, for this last part of each wait.
    /// The default is [`issue_spin_for`] the CPUs this process may use.
    pub issue_spin: Duration,
}

/// The issuer's spin for a process allowed `cpus` CPUs: 40 µs when there
/// are two or more, none on one. A spin sharpens each wake-up only while
/// the issuer has a CPU to itself; confined to one CPU it takes that CPU
/// from the threads that do the work (the HTTP client, an instant SUT),
/// at high rates up to a third of it, and the sleep alone (with the
/// issuer's 1 ns timer slack) still wakes within microseconds, as
/// LoadGen's own issue thread does without spinning.
pub fn issue_spin_for(cpus: usize) -> Duration {
    if cpus >= 2 {
        Duration::from_micros(40)
    } else {
        Duration::ZERO
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            observer: None,
            stop: StopSignal::new(),
            idle_timeout: None,
            stop_grace: Duration::from_secs(10),
            // available_parallelism honours the affinity mask (taskset)
            // and cgroup CPU quotas; unknown counts as one.
            issue_spin: issue_spin_for(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("observer", &self.observer.is_some())
            .field("stop", &self.stop)
            .field("idle_timeout", &self.idle_timeout)
            .field("stop_grace", &self.stop_grace)
            .field("issue_spin", &self.issue_spin)
            .finish()
    }
}

/// A problem LoadGen reports in the detail log while a phase runs, with
/// LoadGen's own wording.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A sample completed without a first token (token mode, not Offline).
    MissingFirstToken,
    /// `n_tokens` was 0.
    ZeroTokens,
    /// `n_tokens` was negative.
    NegativeTokens,
    /// `n_tokens` was 1 (TPOT undefined).
    OneToken,
    /// A first token arrived for a sample already complete.
    FirstTokenAfterCompletion,
    /// A second first token arrived for a sample.
    FirstTokenTwice,
    /// Completions arrived for samples already complete.
    RepeatedCompletions {
        /// How many.
        count: u64,
    },
    /// Completions arrived for ids never issued.
    UnknownIds {
        /// How many.
        count: u64,
    },
    /// Server issuing stopped: too many queries outstanding.
    TooManyOutstanding {
        /// Queries issued so far.
        issued: u64,
        /// Queries outstanding.
        outstanding: u64,
    },
    /// Issuing stopped at `max_query_count`.
    MaxQueryCount {
        /// Queries issued.
        issued: u64,
    },
    /// Issuing stopped at `max_duration`.
    MaxDuration {
        /// Elapsed time.
        duration_ns: u64,
    },
    /// The pre-generated queries ran out before min duration and count were met.
    RanOutOfQueries,
    /// The SUT stopped answering; outstanding samples were given up on.
    SutStalled {
        /// Samples given up on.
        samples: u64,
        /// Seconds without a completion.
        idle_s: f64,
    },
    /// A stop was requested; issuing ended early.
    Interrupted {
        /// Samples still outstanding when the grace period ended.
        abandoned: u64,
    },
}

impl RuntimeError {
    /// The detail-log message (LoadGen's text where LoadGen has one).
    pub fn message(&self) -> String {
        match self {
            RuntimeError::MissingFirstToken => {
                "Attempted to record a sample latency before it's first token latency".into()
            }
            RuntimeError::ZeroTokens => {
                "n_tokens argument missing or attempted to record 0 as number of tokens".into()
            }
            RuntimeError::NegativeTokens => {
                "Attempted to record a negative number of tokens".into()
            }
            RuntimeError::OneToken => "Number of tokens need to be greater than 1".into(),
            RuntimeError::FirstTokenAfterCompletion => {
                "Attempted to record token latency after sample was completed".into()
            }
            RuntimeError::FirstTokenTwice => "Attempted to complete a sample twice.".into(),
            RuntimeError::RepeatedCompletions { count } => format!(
                "Attempted to complete a sample twice. ({count} completions for samples already complete)"
            ),
            RuntimeError::UnknownIds { count } => {
                format!("Received SequenceId that was too large. ({count} unknown response ids)")
            }
            RuntimeError::TooManyOutstanding {
                issued,
                outstanding,
            } => format!(
                "IssueQueryThread 0 Ending early: Too many outstanding queries. issued {issued} outstanding {outstanding}"
            ),
            RuntimeError::MaxQueryCount { issued } => format!(
                "IssueQueryThread 0 Ending early: Max query count reached. query_count {issued}"
            ),
            RuntimeError::MaxDuration { duration_ns } => format!(
                "IssueQueryThread 0 Ending early: Max test duration reached. duration_ns {duration_ns}"
            ),
            RuntimeError::RanOutOfQueries => "Ending early: Ran out of generated queries to issue \
                before the minimum query count and test duration were reached. Please update the \
                relevant expected latency or target qps in the TestSettings so they are more \
                accurate."
                .into(),
            RuntimeError::SutStalled { samples, idle_s } => format!(
                "SUT stopped answering: no completion for {idle_s:.1} s; {samples} outstanding samples given up"
            ),
            RuntimeError::Interrupted { abandoned } => format!(
                "Test interrupted by a stop request; {abandoned} outstanding samples abandoned"
            ),
        }
    }
}

/// Where a phase's log output goes while it runs. The log writers implement
/// it; tests can collect calls instead.
pub trait PhaseLog: Send + Sync {
    /// A response to put in `mlperf_log_accuracy.json` (LoadGen's LogAccuracy).
    fn accuracy_entry(
        &self,
        seq: u64,
        qsl_idx: u64,
        data: Vec<u8>,
        token_data: Option<Vec<u8>>,
        token_count: Option<i64>,
    );
    /// An `error_runtime` line.
    fn runtime_error(&self, error: RuntimeError);
    /// A `generic_message` line.
    fn generic_message(&self, message: &str);
}

/// A [`PhaseLog`] that discards everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPhaseLog;

impl PhaseLog for NoPhaseLog {
    fn accuracy_entry(&self, _: u64, _: u64, _: Vec<u8>, _: Option<Vec<u8>>, _: Option<i64>) {}
    fn runtime_error(&self, _: RuntimeError) {}
    fn generic_message(&self, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_spins_only_with_a_cpu_to_spare() {
        assert_eq!(issue_spin_for(0), Duration::ZERO);
        assert_eq!(issue_spin_for(1), Duration::ZERO);
        assert_eq!(issue_spin_for(2), Duration::from_micros(40));
        assert_eq!(issue_spin_for(128), Duration::from_micros(40));
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(RunOptions::default().issue_spin, issue_spin_for(cpus));
    }
}
