//! A Rust reimplementation of MLPerf Inference LoadGen (6.0.x).
//!
//! The crate generates the same queries as LoadGen for the same settings and
//! seeds, issues them to a [`SystemUnderTest`] on LoadGen's schedule, measures
//! latency, TTFT and TPOT the way LoadGen does, judges validity (early
//! stopping included) and writes LoadGen's four log files.
//!
//! It knows nothing of HTTP, tokenizers or datasets: any SUT that implements
//! [`SystemUnderTest`] and any dataset that implements [`QuerySampleLibrary`]
//! can be driven by it.

pub mod config;
pub mod driver;
pub mod early_stopping;
pub mod find_peak;
pub mod format;
pub mod input;
pub mod logged;
pub mod logging;
pub mod record;
pub mod results;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod settings;
pub mod sut;

pub use logging::{LogError, LogHeader, LogPaths, LogWriter};
pub use record::{
    Phase, PhaseEnd, PhaseStart, QueryRecord, QueryRecordLine, RecordExtras, RunObserver, Timed,
    chunk_tokens_implied,
};
pub use results::{
    PerformanceResult, PerformanceSummary, QuerySampleLatency, TokenPerformanceResults,
};
pub use run::{
    IssuePlan, IssueStop, NoPhaseLog, PhaseClock, PhaseLog, PhaseMeasurements, PhaseRequest,
    RunOptions, RuntimeError, StopSignal, clock_source, issue_spin_for, run_phase,
};
pub use settings::{
    EffectiveSettings, LogOutputSettings, LogSettings, Scenario, SettingsError, SettingsWarning,
    TestMode, TestSettings,
};
pub use sut::{
    CompletionSink, ErrorKind, OutputData, QslError, QueryError, QuerySample, QuerySampleIndex,
    QuerySampleLibrary, QuerySampleResponse, Responder, ResponseDetail, ResponseId,
    SystemUnderTest, tokens_to_bytes,
};

pub use config::{ConfType, ConfigError, ConfigLoader, MLPERF_CONF};
pub use driver::{
    PhaseOutcome, PhaseVerdict, SummaryHooks, TestError, TestHooks, TestOutcome, start_test,
};
pub use find_peak::{FindPeakOutcome, FindPeakSettings, find_peak};
pub use schedule::{
    LoadableSet, Schedule, ScheduleError, ScheduledQuery, SequenceGen, generate_loadable_sets,
    generate_queries,
};
