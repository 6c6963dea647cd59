//! What a performance phase measured, and (to come) the results LoadGen
//! derives from it: percentiles, validity, early stopping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sut::ErrorKind;

/// A latency in nanoseconds (LoadGen's `QuerySampleLatency`, an int64).
pub type QuerySampleLatency = i64;

/// Token-latency measurements (LoadGen's `TokenPerformanceResults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenPerformanceResults {
    /// First-token latency per sample: first token − scheduled.
    pub first_token_latencies: Vec<QuerySampleLatency>,
    /// TPOT per sample: (latency − TTFT) / (n_tokens − 1), integer division.
    pub time_per_output_token_arr: Vec<QuerySampleLatency>,
    /// `n_tokens` per sample.
    pub tokens_per_sample: Vec<i64>,
}

/// Everything a finished performance phase measured: the input of the
/// results computation (LoadGen's `PerformanceResult`, plus the failure
/// accounting this implementation adds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerformanceResult {
    /// Per sample: completion − scheduled time, in issue order.
    pub sample_latencies: Vec<QuerySampleLatency>,
    /// Per query: last sample's completion − scheduled time (MultiStream).
    pub query_latencies: Vec<QuerySampleLatency>,
    /// Queries issued.
    pub queries_issued: u64,
    /// Largest sample latency, in seconds.
    pub max_latency: f64,
    /// Scheduled time of the last issued query, seconds from the start.
    pub final_query_scheduled_time: f64,
    /// Issue time of the last issued query, seconds from the start.
    pub final_query_issued_time: f64,
    /// Completion of the last issued query's last sample, seconds from the start.
    pub final_query_all_samples_done_time: f64,
    /// TTFT, TPOT and token counts (filled when `use_token_latencies`).
    pub token_results: TokenPerformanceResults,
    /// Samples that completed with an error, by kind. LoadGen has no notion
    /// of failed samples; any failure makes the run INVALID here.
    pub failed_samples: BTreeMap<ErrorKind, u64>,
    /// The run was stopped early by a stop request or signal.
    pub interrupted: bool,
}
