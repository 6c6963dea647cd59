//! MLCommons' C++ LoadGen (the mlcommons-loadgen 6.0.17 release) driving our
//! system under test and query sample library: `harness run --loadgen
//! official`.
//!
//! MLPerf's rules require the official LoadGen, unmodified, for a
//! closed-division result, however exact a reimplementation is. With the
//! `official` feature, `build.rs` compiles LoadGen's own sources (from the
//! PyPI sdist, `$LOADGEN_SRC`) with its release flags and a thin C shim
//! (`shim/shim.cc`); [`start_test`] then runs LoadGen's `StartTest` with:
//!
//! - `TestSettings` from LoadGen's own `FromConfig` (its embedded
//!   mlperf.conf, then the user.conf) and the command line's overrides;
//! - `LogSettings` pointing at the run directory, so LoadGen writes its own
//!   `mlperf_log_*` files there;
//! - `IssueQuery` handed to our [`SystemUnderTest`] from LoadGen's issue
//!   thread, and our SUT's answers ([`Responder`](loadgen::Responder))
//!   passed to LoadGen's `FirstTokenComplete` / `QuerySamplesComplete`;
//! - every answer also recorded as a [`QueryRecord`] for the run's observers
//!   (records.jsonl, the live view, telemetry), as the Rust LoadGen does.
//!
//! Without the feature the crate needs no C++ toolchain: [`AVAILABLE`] is
//! false and [`start_test`] returns [`OfficialError::NotBuilt`].
//!
//! `unsafe` lives only in the FFI module (`ffi.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use loadgen::{ErrorKind, PhaseStart, QuerySampleLibrary, RunObserver, Scenario, StopSignal};
use loadgen::{SystemUnderTest, TestMode};

#[cfg(feature = "official")]
mod bridge;
#[cfg(feature = "official")]
mod ffi;

/// Whether this build links the official LoadGen (the `official` feature).
pub const AVAILABLE: bool = cfg!(feature = "official");

/// How to get a build that has it.
pub const BUILD_HINT: &str = "this harness was built without the official LoadGen; build it with \
     `eval \"$(bash scripts/peers/loadgen_src.sh)\" && cargo build --release -p harness \
     --features official` (needs a C++14 compiler)";

/// The release whose sources `build.rs` expects (the sdist
/// `scripts/peers/loadgen_src.sh` fetches). The library reports its own
/// version at run time ([`identity`]); this is what the build asked for.
pub const EXPECTED_VERSION: &str = "6.0.17";

/// The linked library, as it names itself (its generated
/// `version_generated.cc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryIdentity {
    /// `LoadgenVersion()`, e.g. `6.0.17`.
    pub version: String,
    /// `LoadgenGitRevision()`: the commit the release was cut from.
    pub git_revision: String,
}

/// The linked library's identity; `None` without the `official` feature.
pub fn identity() -> Option<LibraryIdentity> {
    #[cfg(feature = "official")]
    {
        let (version, git_revision) = ffi::version();
        Some(LibraryIdentity {
            version,
            git_revision,
        })
    }
    #[cfg(not(feature = "official"))]
    None
}

/// What LoadGen's `TestSettings` are built from, as the Rust LoadGen's
/// settings are: the user.conf (LoadGen's `FromConfig` reads its own
/// embedded mlperf.conf first), then the command line's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct OfficialSettings {
    /// The user.conf file `FromConfig` reads.
    pub user_conf: PathBuf,
    /// The model key for conf lookups (e.g. `llama3_1-8b`).
    pub model: String,
    /// The scenario.
    pub scenario: Scenario,
    /// The test mode: AccuracyOnly or PerformanceOnly (see
    /// [`OfficialError::UnsupportedMode`]).
    pub mode: TestMode,
    /// `--target-qps`: Server target QPS or Offline expected QPS.
    pub target_qps: Option<f64>,
    /// `--min-duration-ms`.
    pub min_duration_ms: Option<u64>,
    /// `--min-query-count`.
    pub min_query_count: Option<u64>,
    /// `--max-duration-ms`.
    pub max_duration_ms: Option<u64>,
    /// An audit.config LoadGen applies itself (`StartTest`'s
    /// `audit_config_filename`); none: LoadGen is given a name that does
    /// not exist, so an audit.config in the working directory is not
    /// picked up behind the user's back.
    pub audit_config: Option<PathBuf>,
    /// Where LoadGen writes its `mlperf_log_*` files.
    pub log_dir: PathBuf,
    /// Write `mlperf_log_trace.json`.
    pub trace: bool,
}

/// How the test went, from our side of the boundary (LoadGen's own results
/// are in its logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfficialRun {
    /// Samples LoadGen issued.
    pub issued_samples: u64,
    /// Queries LoadGen issued (`IssueQuery` calls).
    pub issued_queries: u64,
    /// Samples answered to LoadGen (every issued one, when it finished).
    pub completed_samples: u64,
    /// Samples that failed, by kind.
    pub failed_samples: BTreeMap<ErrorKind, u64>,
    /// Σ n_tokens passed to LoadGen.
    pub token_count: u64,
    /// A stop request (Ctrl-C, SIGTERM) cancelled samples.
    pub interrupted: bool,
    /// The phase's end on its clock, ns.
    pub end_ns: u64,
}

/// Why the official LoadGen could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfficialError {
    /// This build does not link the library.
    #[error("{BUILD_HINT}")]
    NotBuilt,
    /// A mode the bridge cannot follow yet.
    #[error(
        "--loadgen official runs AccuracyOnly and PerformanceOnly tests, not {0}; run the \
         accuracy and performance tests separately (a submission needs both runs anyway)"
    )]
    UnsupportedMode(TestMode),
    /// A path or name with a NUL byte.
    #[error("{0}: contains a NUL byte, which LoadGen cannot take")]
    Nul(String),
    /// LoadGen's `FromConfig` refused the user.conf.
    #[error("{path}: LoadGen's FromConfig could not read it (returned {code})")]
    Config {
        /// The user.conf.
        path: PathBuf,
        /// FromConfig's return value.
        code: i32,
    },
    /// LoadGen threw out of `StartTest`.
    #[error("LoadGen's StartTest failed (threw an exception); see {0}/mlperf_log_detail.txt")]
    StartTest(PathBuf),
    /// The QSL could not load or unload samples.
    #[error("loading samples for LoadGen: {0}")]
    Qsl(String),
}

/// LoadGen's enum value for a scenario (`TestScenario`).
pub fn scenario_code(scenario: Scenario) -> i32 {
    match scenario {
        Scenario::SingleStream => 0,
        Scenario::MultiStream => 1,
        Scenario::Server => 2,
        Scenario::Offline => 3,
    }
}

/// LoadGen's enum value for a supported mode (`TestMode`).
pub fn mode_code(mode: TestMode) -> Result<i32, OfficialError> {
    match mode {
        TestMode::AccuracyOnly => Ok(1),
        TestMode::PerformanceOnly => Ok(2),
        other => Err(OfficialError::UnsupportedMode(other)),
    }
}

/// Runs one test under the official LoadGen: blocks until LoadGen's
/// `StartTest` returns. `phase` is announced to `observer` (its
/// `start_unix_ns` set to the phase clock's zero, just before `StartTest`);
/// the records follow as samples complete; the caller ends the phase once
/// it has read LoadGen's verdict from the logs. A raised `stop` answers
/// every outstanding and later sample at once as cancelled, so LoadGen ends
/// as soon as its schedule lets it.
pub fn start_test(
    sut: &dyn SystemUnderTest,
    qsl: &dyn QuerySampleLibrary,
    settings: &OfficialSettings,
    phase: PhaseStart,
    observer: Option<std::sync::Arc<dyn RunObserver>>,
    stop: &StopSignal,
) -> Result<OfficialRun, OfficialError> {
    mode_code(settings.mode)?;
    #[cfg(feature = "official")]
    {
        bridge::run(sut, qsl, settings, phase, observer, stop)
    }
    #[cfg(not(feature = "official"))]
    {
        let _ = (sut, qsl, phase, observer, stop);
        Err(OfficialError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_accuracy_and_performance_modes_map_to_loadgen() {
        assert_eq!(mode_code(TestMode::AccuracyOnly).unwrap(), 1);
        assert_eq!(mode_code(TestMode::PerformanceOnly).unwrap(), 2);
        let err = mode_code(TestMode::SubmissionRun).unwrap_err().to_string();
        assert!(err.contains("SubmissionRun"), "{err}");
        assert_eq!(scenario_code(Scenario::Server), 2);
        assert_eq!(scenario_code(Scenario::Offline), 3);
    }

    #[test]
    fn the_identity_is_there_exactly_when_the_library_is_linked() {
        assert_eq!(identity().is_some(), AVAILABLE);
        if let Some(id) = identity() {
            assert_eq!(id.version, EXPECTED_VERSION);
            assert!(!id.git_revision.is_empty());
        }
    }
}
