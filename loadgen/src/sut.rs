//! The interfaces between LoadGen and the system under test.
//!
//! These mirror LoadGen's C++ classes (`SystemUnderTest`,
//! `QuerySampleLibrary`, `QuerySampleResponse`, `FirstTokenComplete`,
//! `QuerySamplesComplete`) with two Rust-specific changes:
//!
//! - completions go through a [`Responder`] handle instead of global
//!   functions, so several tests can run in one process and a SUT can answer
//!   from any thread or async task;
//! - a response may carry a [`ResponseDetail`]: an error, input-token count,
//!   the endpoint that served it and per-chunk arrival times. LoadGen's own
//!   results ignore it except for the error flag; the per-query records keep
//!   all of it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Identifies one issued sample until it completes (LoadGen's `ResponseId`).
///
/// Unique within a test phase; the SUT passes it back unchanged.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct ResponseId(pub u64);

/// Index of a sample in the query sample library (LoadGen's `QuerySampleIndex`).
pub type QuerySampleIndex = usize;

/// One sample of an issued query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerySample {
    /// Pass back in the response.
    pub id: ResponseId,
    /// Which library sample to run.
    pub index: QuerySampleIndex,
}

/// What kind of failure a query ended with.
///
/// The names are stable: they appear in per-query records, reports and error
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection could not be made (refused, DNS, TLS).
    Connect,
    /// No answer within the per-request timeout.
    Timeout,
    /// The server answered with a non-success HTTP status.
    HttpStatus,
    /// The connection or stream ended before the response was complete.
    Disconnected,
    /// The response or a stream chunk could not be parsed.
    MalformedResponse,
    /// The server sent an error object (for example a mid-stream error event).
    ServerError,
    /// The stream went silent for longer than the stall timeout.
    Stalled,
    /// The run was stopped (Ctrl-C, SIGTERM) before the query finished.
    Cancelled,
    /// LoadGen gave up waiting: the SUT never completed the query.
    NeverCompleted,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::HttpStatus,
        ErrorKind::Disconnected,
        ErrorKind::MalformedResponse,
        ErrorKind::ServerError,
        ErrorKind::Stalled,
        ErrorKind::Cancelled,
        ErrorKind::NeverCompleted,
        ErrorKind::Other,
    ];

    /// Position in [`ErrorKind::ALL`], for counting by kind in arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Stalled => "stalled",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::NeverCompleted => "never_completed",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a query failed. A failed query still completes; the run is then INVALID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// HTTP status, when the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// One line saying what happened. Never contains secrets.
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.http_status {
            Some(status) => write!(f, "{} (HTTP {status}): {}", self.kind, self.message),
            None => write!(f, "{}: {}", self.kind, self.message),
        }
    }
}

/// What a response's `data` holds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutputData {
    /// Output token ids as little-endian int32 (LoadGen's format for LLMs).
    #[default]
    TokenIds,
    /// UTF-8 text: the server returned no token ids, so the SUT kept the
    /// generated text instead; accuracy scoring reads it as text.
    Text,
}

impl OutputData {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputData::TokenIds => "token_ids",
            OutputData::Text => "text",
        }
    }
}

/// Extra facts about a response, beyond what LoadGen itself records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDetail {
    /// Set when the query failed.
    pub error: Option<QueryError>,
    /// Prompt tokens, as the server reported them.
    pub input_tokens: Option<u32>,
    /// Index of the backend endpoint that served the query.
    pub endpoint: Option<u32>,
    /// Arrival time (run clock, ns; see [`Responder::now_ns`]) of each
    /// streamed chunk that carried output tokens.
    pub chunk_ns: Vec<u64>,
    /// Output tokens in each of those chunks (same length as `chunk_ns`);
    /// 0 where the server's stream did not say.
    pub chunk_tokens: Vec<u32>,
    /// What `data` (and the first-token data) holds.
    pub output_data: OutputData,
}

/// The answer to one sample (LoadGen's `QuerySampleResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySampleResponse {
    /// The id from the [`QuerySample`].
    pub id: ResponseId,
    /// Output bytes; for LLMs, the output token ids as little-endian int32.
    /// Copied into the accuracy log when the sample is logged.
    pub data: Vec<u8>,
    /// Output tokens (LoadGen's `n_tokens`; 0 when not an LLM).
    pub n_tokens: i64,
    /// Extra facts kept in the per-query record.
    pub detail: ResponseDetail,
}

impl QuerySampleResponse {
    /// A response with output tokens encoded as LoadGen's int32 array.
    pub fn with_tokens(id: ResponseId, tokens: &[u32], n_tokens: i64) -> QuerySampleResponse {
        QuerySampleResponse {
            id,
            data: tokens_to_bytes(tokens),
            n_tokens,
            detail: ResponseDetail::default(),
        }
    }

    /// A failed response: no data, no tokens.
    pub fn failed(id: ResponseId, error: QueryError) -> QuerySampleResponse {
        QuerySampleResponse {
            id,
            data: Vec::new(),
            n_tokens: 0,
            detail: ResponseDetail {
                error: Some(error),
                ..ResponseDetail::default()
            },
        }
    }
}

/// Token ids as the little-endian int32 bytes the accuracy log holds.
pub fn tokens_to_bytes(tokens: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tokens.len() * 4);
    for &t in tokens {
        out.extend_from_slice(&(t as i32).to_le_bytes());
    }
    out
}

/// Where completions go. Implemented by the LoadGen run; tests may implement
/// it to observe a SUT in isolation.
pub trait CompletionSink: Send + Sync {
    /// Nanoseconds since the start of the current phase, on the run's
    /// monotonic clock.
    fn now_ns(&self) -> u64;
    /// LoadGen's `FirstTokenComplete`: the first output token of a sample
    /// arrived. The time is taken on entry. `data` holds the first token(s).
    fn first_token_complete(&self, id: ResponseId, data: &[u8]);
    /// LoadGen's `QuerySamplesComplete`: these samples are done. One time is
    /// taken on entry for all of them. The sink may move data out of the
    /// responses (leaving them empty) instead of copying.
    fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]);
}

/// The handle a SUT answers through. Cheap to clone; safe to use from any
/// thread or task; valid for as long as the SUT keeps it (completions that
/// arrive after the run gave up on a query are ignored).
#[derive(Clone)]
pub struct Responder {
    sink: Arc<dyn CompletionSink>,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

impl Responder {
    /// Wraps a sink.
    pub fn new(sink: Arc<dyn CompletionSink>) -> Responder {
        Responder { sink }
    }

    /// Nanoseconds since the start of the current phase (the run clock).
    pub fn now_ns(&self) -> u64 {
        self.sink.now_ns()
    }

    /// The first output token of a sample arrived.
    pub fn first_token_complete(&self, id: ResponseId, data: &[u8]) {
        self.sink.first_token_complete(id, data);
    }

    /// One sample is done.
    pub fn complete(&self, mut response: QuerySampleResponse) {
        // A slice of the argument itself: an array around it would copy
        // the response (about 150 B) once more per completion.
        self.sink
            .query_samples_complete(std::slice::from_mut(&mut response));
    }

    /// Several samples are done, all at this instant.
    pub fn complete_all(&self, responses: &mut [QuerySampleResponse]) {
        self.sink.query_samples_complete(responses);
    }
}

/// The system under test (LoadGen's `SystemUnderTest`).
pub trait SystemUnderTest: Send + Sync {
    /// Name logged as `sut_name`.
    fn name(&self) -> &str;

    /// Start work on these samples and return at once.
    ///
    /// Called from LoadGen's issuer thread, whose timing is the measurement:
    /// never block here. Hand the work to another thread or async task and
    /// answer through `responder`, exactly once per sample (an error is an
    /// answer too).
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder);

    /// No more queries will be issued for now; send anything batched.
    fn flush_queries(&self) {}
}

/// Error from loading or unloading samples.
pub type QslError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The dataset side (LoadGen's `QuerySampleLibrary`).
pub trait QuerySampleLibrary: Send + Sync {
    /// Name logged as `qsl_name`.
    fn name(&self) -> &str;
    /// Samples in the library.
    fn total_sample_count(&self) -> usize;
    /// Samples a performance run loads (and cycles through).
    fn performance_sample_count(&self) -> usize;
    /// Make these samples ready; called before the queries that use them.
    fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError>;
    /// Release these samples; called after their queries completed.
    fn unload_samples_from_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recording {
        done: Mutex<Vec<(u64, i64)>>,
    }

    impl CompletionSink for Recording {
        fn now_ns(&self) -> u64 {
            7
        }
        fn first_token_complete(&self, _id: ResponseId, _data: &[u8]) {}
        fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]) {
            let mut done = self.done.lock().unwrap();
            for r in responses {
                done.push((r.id.0, r.n_tokens));
            }
        }
    }

    #[test]
    fn responder_forwards_to_sink() {
        let sink = Arc::new(Recording::default());
        let responder = Responder::new(sink.clone());
        assert_eq!(responder.now_ns(), 7);
        responder.complete(QuerySampleResponse::with_tokens(ResponseId(3), &[1, 2], 2));
        responder.complete_all(&mut [
            QuerySampleResponse::failed(
                ResponseId(4),
                QueryError {
                    kind: ErrorKind::Timeout,
                    http_status: None,
                    message: "no answer in 5 s".into(),
                },
            ),
            QuerySampleResponse::default(),
        ]);
        assert_eq!(*sink.done.lock().unwrap(), vec![(3, 2), (4, 0), (0, 0)]);
    }

    #[test]
    fn tokens_are_little_endian_int32() {
        assert_eq!(
            tokens_to_bytes(&[0x4912, 1]),
            vec![0x12, 0x49, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn error_display_names_kind_and_status() {
        let e = QueryError {
            kind: ErrorKind::HttpStatus,
            http_status: Some(503),
            message: "service unavailable".into(),
        };
        assert_eq!(e.to_string(), "http_status (HTTP 503): service unavailable");
        assert_eq!(
            serde_json::to_string(&ErrorKind::NeverCompleted).unwrap(),
            "\"never_completed\""
        );
    }
}
