//! Test settings as MLPerf LoadGen 6.0 defines them, and the "effective"
//! values LoadGen derives from them before a run.
//!
//! [`TestSettings`] mirrors `mlperf::TestSettings` (`loadgen/test_settings.h`)
//! field for field, with the same defaults and the same C++ types where they
//! matter for arithmetic (the expected latencies are doubles, the Server target
//! latency an integer). [`EffectiveSettings`] mirrors `TestSettingsInternal`
//! (`loadgen/test_settings_internal.cc`): the values the run actually uses and
//! logs as `effective_*`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four LoadGen scenarios.
///
/// MLPerf's "Interactive" category is not a scenario: it is a Server run under
/// a `<model>-interactive` model key, which selects tighter TTFT/TPOT limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scenario {
    /// One query of one sample at a time; the next is issued when the previous completes.
    SingleStream,
    /// One query of `samples_per_query` samples at a time.
    MultiStream,
    /// Queries of one sample arriving as a Poisson process at `target_qps`.
    Server,
    /// One query holding every sample, issued at the start.
    Offline,
}

impl Scenario {
    /// Every scenario, in LoadGen's enum order.
    pub const ALL: [Scenario; 4] = [
        Scenario::SingleStream,
        Scenario::MultiStream,
        Scenario::Server,
        Scenario::Offline,
    ];

    /// The name LoadGen logs (`ToString(TestScenario)` in the new log format).
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::SingleStream => "SingleStream",
            Scenario::MultiStream => "MultiStream",
            Scenario::Server => "Server",
            Scenario::Offline => "Offline",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a scenario or test-mode name that LoadGen does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?} (expected one of: {expected})")]
pub struct UnknownName {
    /// What was being parsed ("scenario" or "test mode").
    pub what: &'static str,
    /// The name that was given.
    pub name: String,
    /// The accepted names, comma separated.
    pub expected: &'static str,
}

impl FromStr for Scenario {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // LoadGen's Python and C++ front ends spell these several ways; accept
        // the common ones, case-insensitively, but nothing ambiguous.
        match s.to_ascii_lowercase().replace([' ', '_', '-'], "").as_str() {
            "singlestream" => Ok(Scenario::SingleStream),
            "multistream" => Ok(Scenario::MultiStream),
            "server" => Ok(Scenario::Server),
            "offline" => Ok(Scenario::Offline),
            _ => Err(UnknownName {
                what: "scenario",
                name: s.to_owned(),
                expected: "SingleStream, MultiStream, Server, Offline",
            }),
        }
    }
}

/// LoadGen's test modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TestMode {
    /// An accuracy run followed by a performance run (one sequence generator).
    SubmissionRun,
    /// Every sample once, responses logged for scoring.
    AccuracyOnly,
    /// A timed run; only sampled responses are logged.
    PerformanceOnly,
    /// Server only: search for the highest target QPS that stays valid.
    FindPeakPerformance,
}

impl TestMode {
    /// The name LoadGen logs (`ToString(TestMode)` in the new log format).
    pub fn as_str(self) -> &'static str {
        match self {
            TestMode::SubmissionRun => "SubmissionRun",
            TestMode::AccuracyOnly => "AccuracyOnly",
            TestMode::PerformanceOnly => "PerformanceOnly",
            TestMode::FindPeakPerformance => "FindPeakPerformance",
        }
    }

    /// The integer `mode` takes in a config file (`mode = 2`).
    pub fn from_config_value(value: u64) -> Option<TestMode> {
        match value {
            0 => Some(TestMode::SubmissionRun),
            1 => Some(TestMode::AccuracyOnly),
            2 => Some(TestMode::PerformanceOnly),
            3 => Some(TestMode::FindPeakPerformance),
            _ => None,
        }
    }
}

impl fmt::Display for TestMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TestMode {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace([' ', '_', '-'], "").as_str() {
            "submissionrun" | "submission" => Ok(TestMode::SubmissionRun),
            "accuracyonly" | "accuracy" => Ok(TestMode::AccuracyOnly),
            "performanceonly" | "performance" => Ok(TestMode::PerformanceOnly),
            "findpeakperformance" | "findpeak" => Ok(TestMode::FindPeakPerformance),
            _ => Err(UnknownName {
                what: "test mode",
                name: s.to_owned(),
                expected: "SubmissionRun, AccuracyOnly, PerformanceOnly, FindPeakPerformance",
            }),
        }
    }
}

/// Every knob of a LoadGen test, with LoadGen's defaults.
///
/// Field names, units and types follow `mlperf::TestSettings`. Times are in
/// nanoseconds or milliseconds as the field name says; percentiles are
/// fractions (0.99), not percents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestSettings {
    /// Scenario to run.
    pub scenario: Scenario,
    /// Test mode.
    pub mode: TestMode,

    /// SingleStream: expected latency, used only to size the pre-generated schedule.
    pub single_stream_expected_latency_ns: f64,
    /// SingleStream: latency percentile reported (0.90).
    pub single_stream_target_latency_percentile: f64,

    /// MultiStream: expected latency, a hint for the schedule size.
    pub multi_stream_expected_latency_ns: f64,
    /// MultiStream: latency percentile reported (0.99).
    pub multi_stream_target_latency_percentile: f64,
    /// MultiStream: samples in each query (8).
    pub multi_stream_samples_per_query: u64,

    /// Server: Poisson arrival rate λ in queries per second.
    pub server_target_qps: f64,
    /// Server: latency bound checked at the target percentile (not used with token latencies).
    pub server_target_latency_ns: u64,
    /// Server: percentile at which the latency bound must hold (0.99).
    pub server_target_latency_percentile: f64,
    /// Server: merge queries that are already overdue into one `issue_query` call.
    pub server_coalesce_queries: bool,
    /// FindPeakPerformance: decimals of QPS precision the search stops at.
    pub server_find_peak_qps_decimals_of_precision: i32,
    /// FindPeakPerformance: relative step by which the upper bound grows.
    pub server_find_peak_qps_boundary_step_size: f64,
    /// Server: stop issuing when more queries than this are outstanding (0 = unlimited).
    pub server_max_async_queries: u64,
    /// Server: number of SUT threads that issue queries (kept for parity; unused here).
    pub server_num_issue_query_threads: u64,

    /// Offline: expected throughput, which sizes the single Offline query.
    pub offline_expected_qps: f64,

    /// "Equal issue": draw samples by concatenating permutations of the loaded set.
    pub sample_concatenate_permutation: bool,

    /// Minimum run duration.
    pub min_duration_ms: u64,
    /// Maximum run duration (0 = unlimited).
    pub max_duration_ms: u64,
    /// Minimum number of queries.
    pub min_query_count: u64,
    /// Maximum number of queries (0 = unlimited).
    pub max_query_count: u64,

    /// Seed of the sample-set shuffle (only mlperf.conf may set it).
    pub qsl_rng_seed: u64,
    /// Seed of per-query sample choice (only mlperf.conf may set it).
    pub sample_index_rng_seed: u64,
    /// Seed of the Server arrival schedule (only mlperf.conf may set it).
    pub schedule_rng_seed: u64,
    /// Seed of accuracy-log sampling in performance mode.
    pub accuracy_log_rng_seed: u64,
    /// Probability that a performance-mode response is logged (only mlperf.conf may set it).
    pub accuracy_log_probability: f64,
    /// Expected number of logged responses (TEST01/TEST06); overrides the probability.
    pub accuracy_log_sampling_target: u64,

    /// Obsolete TEST05 switch, kept because mlperf.conf may name it.
    pub test05: bool,
    /// Obsolete TEST05 seed.
    pub test05_qsl_rng_seed: u64,
    /// Obsolete TEST05 seed.
    pub test05_sample_index_rng_seed: u64,
    /// Obsolete TEST05 seed.
    pub test05_schedule_rng_seed: u64,

    /// Audit knob: print timestamps.
    pub print_timestamps: bool,
    /// Audit knob: issue each loaded sample exactly once.
    pub performance_issue_unique: bool,
    /// Audit knob: issue the same sample every time.
    pub performance_issue_same: bool,
    /// Audit knob: the sample `performance_issue_same` repeats.
    pub performance_issue_same_index: u64,
    /// Replaces the QSL's performance sample count when non-zero.
    pub performance_sample_count_override: u64,
    /// Replaces the QSL's total sample count in accuracy mode when non-zero.
    pub accuracy_sample_count_override: u64,

    /// LLM mode: measure TTFT and TPOT and judge Server runs by them.
    pub use_token_latencies: bool,
    /// Server TTFT bound (ns), read from config only with `use_token_latencies`.
    pub server_ttft_latency: u64,
    /// Server TPOT bound (ns), read from config only with `use_token_latencies`.
    pub server_tpot_latency: u64,
    /// Infer token latencies from sample latency (gpt-j only).
    pub infer_token_latencies: bool,
    /// Scaling factor for inferred token latencies. LoadGen leaves it
    /// uninitialised; 0 here.
    pub token_latency_scaling_factor: u64,
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            scenario: Scenario::SingleStream,
            mode: TestMode::PerformanceOnly,
            single_stream_expected_latency_ns: 1_000_000.0,
            single_stream_target_latency_percentile: 0.90,
            multi_stream_expected_latency_ns: 8_000_000.0,
            multi_stream_target_latency_percentile: 0.99,
            multi_stream_samples_per_query: 8,
            server_target_qps: 1.0,
            server_target_latency_ns: 100_000_000,
            server_target_latency_percentile: 0.99,
            server_coalesce_queries: false,
            server_find_peak_qps_decimals_of_precision: 1,
            server_find_peak_qps_boundary_step_size: 1.0,
            server_max_async_queries: 0,
            server_num_issue_query_threads: 0,
            offline_expected_qps: 1.0,
            sample_concatenate_permutation: false,
            min_duration_ms: 10_000,
            max_duration_ms: 0,
            min_query_count: 100,
            max_query_count: 0,
            qsl_rng_seed: 0,
            sample_index_rng_seed: 0,
            schedule_rng_seed: 0,
            accuracy_log_rng_seed: 0,
            accuracy_log_probability: 0.0,
            accuracy_log_sampling_target: 0,
            test05: false,
            test05_qsl_rng_seed: 0,
            test05_sample_index_rng_seed: 0,
            test05_schedule_rng_seed: 0,
            print_timestamps: false,
            performance_issue_unique: false,
            performance_issue_same: false,
            performance_issue_same_index: 0,
            performance_sample_count_override: 0,
            accuracy_sample_count_override: 0,
            use_token_latencies: false,
            server_ttft_latency: 100_000_000,
            server_tpot_latency: 100_000_000,
            infer_token_latencies: false,
            token_latency_scaling_factor: 0,
        }
    }
}

/// A setting combination LoadGen reports as an error (`error_invalid_test_settings`).
///
/// LoadGen logs these and carries on with a substitute value; we do the same
/// (the run goes on) but keep the message so the detail log and the run's
/// verdict can carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsWarning {
    /// The message LoadGen logs, verbatim.
    pub message: String,
}

/// Why effective settings could not be derived at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// Equal-issue SingleStream divides by the QSL's performance sample count.
    #[error(
        "sample_concatenate_permutation in SingleStream needs a QSL performance sample count above 0"
    )]
    ZeroPerformanceSampleCount,
    /// The performance phase would schedule more samples than a process
    /// can hold; computed before anything is allocated.
    #[error(
        "the performance phase would schedule {samples} samples ({cause}), about {} of \
         memory; at most {max} can be scheduled: lower the setting",
        crate::input::human_bytes(*.bytes)
    )]
    ScheduleTooLarge {
        /// Samples the schedule would hold.
        samples: u64,
        /// The setting that asks for them, with its value.
        cause: String,
        /// Memory they would need, estimated.
        bytes: u64,
        /// [`MAX_SCHEDULED_SAMPLES`].
        max: u64,
    },
}

/// The most samples one performance phase may schedule: a 30 s Server
/// test at 6.6M QPS, which a fast SUT on a small machine sustains (about
/// 40 B of memory per sample, 8 GB), and 20 times the largest run the
/// scaling benchmark measures. More is a mistake in the settings
/// (`target_qps = 1e12`, `min_query_count = 1e9`, a saturated
/// `min_duration`) that would exhaust memory while generating.
pub const MAX_SCHEDULED_SAMPLES: u64 = 200_000_000;

/// Memory one scheduled sample costs over a run (schedule entry, in-flight
/// state, its record), for the estimate in
/// [`SettingsError::ScheduleTooLarge`].
const BYTES_PER_SAMPLE: u64 = 256;

/// The values a run uses, derived from [`TestSettings`] exactly as LoadGen's
/// `TestSettingsInternal` constructor derives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectiveSettings {
    /// The settings as requested.
    pub requested: TestSettings,
    /// Scenario (copied for convenience).
    pub scenario: Scenario,
    /// Test mode (copied for convenience).
    pub mode: TestMode,
    /// Samples per query: 1, `multi_stream_samples_per_query`, or the Offline query size.
    pub samples_per_query: u64,
    /// Target queries per second: Server λ, Offline expected rate, or 1e9/expected latency.
    pub target_qps: f64,
    /// Server latency bound in ns; 0 in other scenarios.
    pub target_latency_ns: u64,
    /// Percentile at which latency is judged (Offline: 0.99, unused).
    pub target_latency_percentile: f64,
    /// Outstanding-query limit (SingleStream, MultiStream, Offline: 1; Server: as requested).
    pub max_async_queries: u64,
    /// Scheduled time to pre-generate queries for (0 for Offline).
    pub target_duration_ms: u64,
    /// Minimum duration for validity.
    pub min_duration_ms: u64,
    /// Maximum duration (0 = unlimited).
    pub max_duration_ms: u64,
    /// Minimum query count (Offline: 1).
    pub min_query_count: u64,
    /// Maximum query count (0 = unlimited).
    pub max_query_count: u64,
    /// `min_query_count * samples_per_query`.
    pub min_sample_count: u64,
    /// Sample-set shuffle seed.
    pub qsl_rng_seed: u64,
    /// Sample-choice seed.
    pub sample_index_rng_seed: u64,
    /// Arrival-schedule seed.
    pub schedule_rng_seed: u64,
    /// Accuracy-log sampling seed.
    pub accuracy_log_rng_seed: u64,
    /// Accuracy-log probability.
    pub accuracy_log_probability: f64,
    /// Accuracy-log sampling target.
    pub accuracy_log_sampling_target: u64,
    /// Audit knob.
    pub print_timestamps: bool,
    /// Audit knob.
    pub performance_issue_unique: bool,
    /// Audit knob.
    pub performance_issue_same: bool,
    /// Audit knob.
    pub performance_issue_same_index: u64,
    /// Samples loaded for a performance run.
    pub performance_sample_count: u64,
    /// Samples covered by an accuracy run.
    pub accuracy_sample_count: u64,
    /// Equal issue.
    pub sample_concatenate_permutation: bool,
    /// LLM token-latency mode.
    pub use_token_latencies: bool,
    /// Server TTFT bound (ns).
    pub server_ttft_latency: i64,
    /// Server TPOT bound (ns).
    pub server_tpot_latency: i64,
    /// gpt-j inferred token latencies.
    pub infer_token_latencies: bool,
    /// gpt-j scaling factor.
    pub token_latency_scaling_factor: i64,
}

impl EffectiveSettings {
    /// Derives the effective settings for a QSL that reports the given
    /// performance and total sample counts.
    ///
    /// Returns the settings plus the warnings LoadGen would log as
    /// `error_invalid_test_settings`, in LoadGen's order.
    ///
    /// Mirrors LoadGen 6.0.17's `TestSettingsInternal::TestSettingsInternal`
    /// (the constructor, test_settings_internal.cc) line for line; kept in
    /// one piece so the two read side by side.
    pub fn new(
        requested: &TestSettings,
        qsl_performance_sample_count: u64,
        qsl_total_sample_count: u64,
    ) -> Result<(EffectiveSettings, Vec<SettingsWarning>), SettingsError> {
        let r = requested;
        let mut warnings = Vec::new();
        let mut s = EffectiveSettings {
            requested: r.clone(),
            scenario: r.scenario,
            mode: r.mode,
            samples_per_query: 1,
            target_qps: 1.0,
            target_latency_ns: 0,
            target_latency_percentile: 0.0,
            max_async_queries: 0,
            target_duration_ms: r.min_duration_ms,
            min_duration_ms: r.min_duration_ms,
            max_duration_ms: r.max_duration_ms,
            min_query_count: r.min_query_count,
            max_query_count: r.max_query_count,
            min_sample_count: 0,
            qsl_rng_seed: r.qsl_rng_seed,
            sample_index_rng_seed: r.sample_index_rng_seed,
            schedule_rng_seed: r.schedule_rng_seed,
            accuracy_log_rng_seed: r.accuracy_log_rng_seed,
            accuracy_log_probability: r.accuracy_log_probability,
            accuracy_log_sampling_target: r.accuracy_log_sampling_target,
            print_timestamps: r.print_timestamps,
            performance_issue_unique: r.performance_issue_unique,
            performance_issue_same: r.performance_issue_same,
            performance_issue_same_index: r.performance_issue_same_index,
            performance_sample_count: 0,
            accuracy_sample_count: 0,
            sample_concatenate_permutation: false,
            use_token_latencies: r.use_token_latencies,
            // LoadGen stores these u64 settings in int64 fields; the cast wraps
            // exactly as the C++ conversion does.
            server_ttft_latency: r.server_ttft_latency as i64,
            server_tpot_latency: r.server_tpot_latency as i64,
            infer_token_latencies: r.infer_token_latencies,
            token_latency_scaling_factor: r.token_latency_scaling_factor as i64,
        };

        match r.scenario {
            Scenario::SingleStream => {
                s.target_qps = 1e9 / r.single_stream_expected_latency_ns;
                s.max_async_queries = 1;
                s.target_latency_percentile = r.single_stream_target_latency_percentile;
            }
            Scenario::MultiStream => {
                s.target_qps = 1e9 / r.multi_stream_expected_latency_ns;
                s.max_async_queries = 1;
                s.target_latency_percentile = r.multi_stream_target_latency_percentile;
            }
            Scenario::Server => {
                if r.server_target_qps >= 0.0 {
                    s.target_qps = r.server_target_qps;
                } else {
                    warnings.push(SettingsWarning {
                        message: format!(
                            "Invalid value for server_target_qps requested. requested: {} using: {}",
                            crate::format::cpp_double(r.server_target_qps),
                            crate::format::cpp_double(s.target_qps)
                        ),
                    });
                }
                s.target_latency_ns = r.server_target_latency_ns;
                s.target_latency_percentile = r.server_target_latency_percentile;
                s.max_async_queries = r.server_max_async_queries;
            }
            Scenario::Offline => {
                s.target_latency_percentile = 0.99;
                if r.offline_expected_qps >= 0.0 {
                    s.target_qps = r.offline_expected_qps;
                } else {
                    warnings.push(SettingsWarning {
                        message: format!(
                            "Invalid value for offline_expected_qps requested. requested: {} using: {}",
                            crate::format::cpp_double(r.offline_expected_qps),
                            crate::format::cpp_double(s.target_qps)
                        ),
                    });
                }
                s.max_async_queries = 1;
            }
        }

        s.performance_sample_count = if r.performance_sample_count_override == 0 {
            qsl_performance_sample_count
        } else {
            r.performance_sample_count_override
        };
        s.accuracy_sample_count = if r.accuracy_sample_count_override == 0 {
            qsl_total_sample_count
        } else {
            r.accuracy_sample_count_override
        };
        s.sample_concatenate_permutation = r.sample_concatenate_permutation;

        if r.scenario == Scenario::MultiStream {
            s.samples_per_query = r.multi_stream_samples_per_query;
        }

        if r.scenario == Scenario::Offline {
            // LoadGen's kSlack: generate enough samples that the SUT takes
            // longer than the minimum duration. The product is a double
            // truncated to uint64 on assignment.
            const SLACK: f64 = 1.1;
            let target_sample_count =
                (SLACK * ms_to_seconds(s.target_duration_ms) * s.target_qps) as u64;
            s.samples_per_query = if r.performance_issue_unique {
                s.performance_sample_count
            } else {
                s.min_query_count.max(target_sample_count)
            };
            s.min_query_count = 1;
            s.target_duration_ms = 0;
        }

        // LoadGen applies this only to SingleStream (the old 3D-UNet path). It
        // rounds up *past* a multiple of the QSL's own performance count (not
        // the override), adding a whole count when already a multiple.
        if s.sample_concatenate_permutation && r.scenario == Scenario::SingleStream {
            const SLACK: f64 = 2.0;
            let expected_queries =
                (SLACK * ms_to_seconds(s.target_duration_ms) * s.target_qps) as u64;
            s.min_query_count = s.min_query_count.max(expected_queries);
            if qsl_performance_sample_count == 0 {
                return Err(SettingsError::ZeroPerformanceSampleCount);
            }
            s.min_query_count = s.min_query_count.wrapping_add(
                qsl_performance_sample_count - (s.min_query_count % qsl_performance_sample_count),
            );
        }

        s.min_sample_count = s.min_query_count.wrapping_mul(s.samples_per_query);

        if r.performance_issue_same && r.performance_issue_same_index >= s.performance_sample_count
        {
            warnings.push(SettingsWarning {
                message: format!(
                    "Sample Idx to be repeated in performance_issue_same mode cannot be greater \
                     than loaded performance_sample_count. performance_issue_same_index: {} \
                     performance_sample_count: {}",
                    r.performance_issue_same_index, s.performance_sample_count
                ),
            });
        }
        if r.performance_issue_unique && r.performance_issue_same {
            warnings.push(SettingsWarning {
                message: format!(
                    "Performance_issue_unique and performance_issue_same, both cannot be true at \
                     the same time. performance_issue_unique: {} performance_issue_same: {}",
                    u8::from(r.performance_issue_unique),
                    u8::from(r.performance_issue_same)
                ),
            });
        }

        if s.mode != TestMode::AccuracyOnly && !s.performance_issue_unique {
            let (samples, cause) = s.performance_schedule_samples();
            if samples > MAX_SCHEDULED_SAMPLES as f64 {
                let samples = samples as u64;
                return Err(SettingsError::ScheduleTooLarge {
                    samples,
                    cause,
                    bytes: samples.saturating_mul(BYTES_PER_SAMPLE),
                    max: MAX_SCHEDULED_SAMPLES,
                });
            }
        }

        Ok((s, warnings))
    }

    /// The samples the performance phase's schedule holds at most, and the
    /// setting that decides it: the minimum query count, or the target QPS
    /// over the generation window (the minimum duration; twice that
    /// outside Server, as [`crate::generate_queries`] generates).
    fn performance_schedule_samples(&self) -> (f64, String) {
        let spq = self.samples_per_query.max(1) as f64;
        if self.scenario == Scenario::Offline {
            let by_count = self.requested.min_query_count;
            let cause = if spq <= by_count as f64 {
                format!("min_query_count {by_count}")
            } else {
                format!(
                    "1.1 x target_qps {} x min_duration {} s",
                    self.target_qps,
                    ms_to_seconds(self.requested.min_duration_ms)
                )
            };
            return (spq, cause);
        }
        let window = if self.scenario == Scenario::Server {
            1.0
        } else {
            2.0
        } * ms_to_seconds(self.target_duration_ms);
        // A rate that is not finite is the schedule's own error
        // (`ScheduleError::InvalidTargetQps`).
        let by_time = Some(self.target_qps * window)
            .filter(|n| n.is_finite())
            .unwrap_or(0.0);
        let by_count = self.min_query_count as f64;
        if by_count >= by_time {
            (
                by_count * spq,
                format!("min_query_count {}", self.min_query_count),
            )
        } else {
            (
                by_time * spq,
                format!(
                    "target_qps {} over a {} s generation window from min_duration {} ms",
                    self.target_qps, window, self.target_duration_ms
                ),
            )
        }
    }
}

/// `DurationToSeconds` for a millisecond duration.
fn ms_to_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Where and how LoadGen's four log files are written (`LogOutputSettings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogOutputSettings {
    /// Directory for the log files.
    pub outdir: std::path::PathBuf,
    /// File-name prefix (`mlperf_log_`).
    pub prefix: String,
    /// File-name suffix before the extension.
    pub suffix: String,
    /// Put the date and time after the prefix.
    pub prefix_with_datetime: bool,
    /// Also copy the detail log to stdout (ignored by the library: it never prints).
    pub copy_detail_to_stdout: bool,
    /// Also copy the summary to stdout (ignored by the library: it never prints).
    pub copy_summary_to_stdout: bool,
}

impl Default for LogOutputSettings {
    fn default() -> Self {
        LogOutputSettings {
            outdir: ".".into(),
            prefix: "mlperf_log_".to_owned(),
            suffix: String::new(),
            prefix_with_datetime: false,
            copy_detail_to_stdout: false,
            copy_summary_to_stdout: false,
        }
    }
}

/// Logging settings (`LogSettings`). Only LoadGen's AsyncPoll mode exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// File locations.
    pub log_output: LogOutputSettings,
    /// Write `mlperf_log_trace.json`.
    pub enable_trace: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            log_output: LogOutputSettings::default(),
            enable_trace: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_schedules_are_refused_before_generation_naming_the_setting() {
        let server = |qps: f64, count: u64, ms: u64| TestSettings {
            scenario: Scenario::Server,
            server_target_qps: qps,
            min_query_count: count,
            min_duration_ms: ms,
            ..TestSettings::default()
        };
        let too_large = |s: &TestSettings| match EffectiveSettings::new(s, 10, 10) {
            Err(e @ SettingsError::ScheduleTooLarge { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let e = too_large(&server(1e12, 1, 600_000));
        assert!(e.contains("600000000000000 samples"), "{e}");
        assert!(e.contains("target_qps 1000000000000"), "{e}");
        let e = too_large(&server(1.0, 1_000_000_000, 1000));
        assert!(e.contains("min_query_count 1000000000"), "{e}");
        assert!(e.contains("238.4 GiB"), "{e}");
        // A saturated min_duration.
        too_large(&server(1.0, 1, u64::MAX));
        // Accuracy runs schedule the dataset only.
        let accuracy = TestSettings {
            mode: TestMode::AccuracyOnly,
            ..server(1e12, 1, 600_000)
        };
        assert!(EffectiveSettings::new(&accuracy, 10, 10).is_ok());
        // The largest the scaling benchmark runs is fine, and so is a 30 s
        // test at the rates loadgen_issue.sh measures an instant SUT at.
        assert!(EffectiveSettings::new(&server(1e5, 10_000_000, 100_000), 10, 10).is_ok());
        assert!(EffectiveSettings::new(&server(6e6, 100, 30_000), 10, 10).is_ok());
        let e = too_large(&server(7e6, 100, 30_000));
        assert!(e.contains("at most 200000000 can be scheduled"), "{e}");
    }

    fn effective(s: &TestSettings, psc: u64, total: u64) -> EffectiveSettings {
        EffectiveSettings::new(s, psc, total).unwrap().0
    }

    #[test]
    fn defaults_match_loadgen_header() {
        let s = TestSettings::default();
        assert_eq!(s.scenario, Scenario::SingleStream);
        assert_eq!(s.min_duration_ms, 10_000);
        assert_eq!(s.min_query_count, 100);
        assert_eq!(s.server_target_latency_ns, 100_000_000);
        assert_eq!(s.multi_stream_samples_per_query, 8);
        assert!((s.single_stream_target_latency_percentile - 0.90).abs() < 1e-12);
    }

    #[test]
    fn offline_query_size_uses_slack_and_min_query_count() {
        // The AMD llama2-70b Offline log: 1.1 * 2400 s * 93 qps = 245520.
        let s = TestSettings {
            scenario: Scenario::Offline,
            offline_expected_qps: 93.0,
            min_duration_ms: 2_400_000,
            min_query_count: 24576,
            ..TestSettings::default()
        };
        let e = effective(&s, 24576, 24576);
        assert_eq!(e.samples_per_query, 245_520);
        assert_eq!(e.min_query_count, 1);
        assert_eq!(e.target_duration_ms, 0);
        assert_eq!(e.min_sample_count, 245_520);
        assert_eq!(e.max_async_queries, 1);
        assert!((e.target_latency_percentile - 0.99).abs() < 1e-12);

        // When the slack product is smaller, min_query_count wins.
        let s = TestSettings {
            scenario: Scenario::Offline,
            offline_expected_qps: 1.0,
            min_duration_ms: 1000,
            min_query_count: 13368,
            ..TestSettings::default()
        };
        assert_eq!(effective(&s, 13368, 13368).samples_per_query, 13368);
    }

    #[test]
    fn offline_issue_unique_uses_performance_sample_count() {
        let s = TestSettings {
            scenario: Scenario::Offline,
            performance_issue_unique: true,
            performance_sample_count_override: 77,
            ..TestSettings::default()
        };
        assert_eq!(effective(&s, 10, 100).samples_per_query, 77);
    }

    #[test]
    fn single_and_multi_stream_target_qps() {
        let s = TestSettings {
            scenario: Scenario::SingleStream,
            single_stream_expected_latency_ns: 10_000_000.0,
            ..TestSettings::default()
        };
        let e = effective(&s, 10, 10);
        assert!((e.target_qps - 100.0).abs() < 1e-9);
        assert_eq!(e.max_async_queries, 1);
        assert_eq!(e.target_duration_ms, 10_000);

        let s = TestSettings {
            scenario: Scenario::MultiStream,
            ..TestSettings::default()
        };
        let e = effective(&s, 10, 10);
        assert!((e.target_qps - 125.0).abs() < 1e-9);
        assert_eq!(e.samples_per_query, 8);
        assert_eq!(e.min_sample_count, 800);
    }

    #[test]
    fn single_stream_equal_issue_rounds_past_a_multiple() {
        // 2.0 * 10 s * 1000 qps = 20000 queries, already a multiple of 100:
        // LoadGen still adds a whole performance count.
        let s = TestSettings {
            scenario: Scenario::SingleStream,
            sample_concatenate_permutation: true,
            ..TestSettings::default()
        };
        let e = effective(&s, 100, 1000);
        assert_eq!(e.min_query_count, 20_100);
        // Not a multiple: rounded up to the next one.
        let e = effective(&s, 300, 1000);
        assert_eq!(e.min_query_count, 20_100);
        assert!(matches!(
            EffectiveSettings::new(&s, 0, 1000),
            Err(SettingsError::ZeroPerformanceSampleCount)
        ));
    }

    #[test]
    fn overrides_and_warnings() {
        let s = TestSettings {
            scenario: Scenario::Server,
            server_target_qps: -1.0,
            performance_sample_count_override: 5,
            accuracy_sample_count_override: 7,
            performance_issue_same: true,
            performance_issue_same_index: 5,
            ..TestSettings::default()
        };
        let (e, warnings) = EffectiveSettings::new(&s, 10, 20).unwrap();
        assert_eq!(e.performance_sample_count, 5);
        assert_eq!(e.accuracy_sample_count, 7);
        assert!((e.target_qps - 1.0).abs() < 1e-12);
        assert_eq!(e.target_latency_ns, 100_000_000);
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0]
                .message
                .starts_with("Invalid value for server_target_qps")
        );
    }

    #[test]
    fn names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.as_str().parse::<Scenario>().unwrap(), sc);
        }
        assert_eq!(
            "multi_stream".parse::<Scenario>().unwrap(),
            Scenario::MultiStream
        );
        assert!("interactive".parse::<Scenario>().is_err());
        assert_eq!(
            "accuracy".parse::<TestMode>().unwrap(),
            TestMode::AccuracyOnly
        );
        assert_eq!(
            TestMode::from_config_value(3),
            Some(TestMode::FindPeakPerformance)
        );
        assert_eq!(TestMode::from_config_value(4), None);
    }
}
