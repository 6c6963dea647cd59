//! Per-sample records and the observer that receives them during a run.
//!
//! LoadGen's own logs keep only aggregates and sampled responses. A harness
//! also needs every sample's timeline, streamed as it happens so a crash keeps
//! what was measured: the run calls a [`RunObserver`] with a [`QueryRecord`]
//! the moment each sample completes.

use serde::{Deserialize, Serialize};

use crate::settings::{EffectiveSettings, Scenario, TestMode};
use crate::sut::{QueryError, ResponseDetail};

/// Which part of a test a record belongs to. A SubmissionRun has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Every sample once, for scoring.
    Accuracy,
    /// The timed run.
    Performance,
}

impl Phase {
    /// `accuracy` or `performance`, as in `records.jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Accuracy => "accuracy",
            Phase::Performance => "performance",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one issued sample (one request to the server).
///
/// Times are nanoseconds since the start of the phase, on one monotonic clock.
/// Field names are the file format of `records.jsonl`: keep them stable. A
/// line leaves out what its other fields already say ([`QueryRecordLine`]),
/// and reading it back gives the same record (when `chunk_tokens` has one
/// count per chunk, as [`crate::ResponseDetail`] asks).
///
/// 80 bytes: what every record has is inline, what only some have (prompt
/// tokens, endpoint, error, chunk times) is boxed in [`RecordExtras`]. An
/// instant SUT's issuer builds and hands over one record per sample, millions
/// per second, so every byte is copied on its hottest path: with all fields
/// inline (168 bytes) the Offline issuer spent more time copying records
/// than completing samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "QueryRecordLine", into = "QueryRecordLine")]
pub struct QueryRecord {
    /// LoadGen's sequence id of the sample, in issue order: the accuracy
    /// log's `seq_id`. It keeps counting across phases and accuracy sets (the
    /// second set of an accuracy run starts where the first ended; a
    /// SubmissionRun's performance phase follows its accuracy phase), as in
    /// real LoadGen, so a record and its accuracy-log entry share the number.
    pub seq: u64,
    /// Index of the query the sample was issued in.
    pub query: u64,
    /// Index of the sample in the query sample library.
    pub sample_index: u64,
    /// When LoadGen meant to issue it. Latencies are measured from here.
    pub scheduled_ns: u64,
    /// When `issue_query` was actually called.
    pub issued_ns: u64,
    /// When the first token arrived (`FirstTokenComplete`), if reported.
    pub first_token_ns: Option<u64>,
    /// When the sample completed, or when the run gave up on it.
    pub end_ns: u64,
    /// Output tokens as the SUT reported them (LoadGen's `n_tokens`).
    pub n_tokens: i64,
    /// The rest, `None` when all of it is empty ([`RecordExtras::boxed`]
    /// keeps it so, and records compare equal only then).
    pub extras: Option<Box<RecordExtras>>,
}

/// The parts of a [`QueryRecord`] that many samples leave empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordExtras {
    /// Prompt tokens, if the server reported them.
    pub input_tokens: Option<u32>,
    /// Backend endpoint that served the sample.
    pub endpoint: Option<u32>,
    /// Set when the sample failed.
    pub error: Option<QueryError>,
    /// Arrival times of streamed chunks that carried tokens.
    pub chunk_ns: Vec<u64>,
    /// Tokens in each of those chunks.
    pub chunk_tokens: Vec<u32>,
}

impl RecordExtras {
    /// True when every part is empty.
    pub fn is_empty(&self) -> bool {
        self.input_tokens.is_none()
            && self.endpoint.is_none()
            && self.error.is_none()
            && self.chunk_ns.is_empty()
            && self.chunk_tokens.is_empty()
    }

    /// What [`QueryRecord::extras`] holds: `None` when empty.
    pub fn boxed(self) -> Option<Box<RecordExtras>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// Moves the record's parts out of a response's detail: `None`, and
    /// nothing moved, when all of them are empty. Checking the detail first
    /// spares the many samples without extras (an Offline burst: millions)
    /// building a value only to find it empty.
    #[inline]
    pub fn take_from(detail: &mut ResponseDetail) -> Option<Box<RecordExtras>> {
        if detail.input_tokens.is_none()
            && detail.endpoint.is_none()
            && detail.error.is_none()
            && detail.chunk_ns.is_empty()
            && detail.chunk_tokens.is_empty()
        {
            return None;
        }
        Some(Self::moved_from(detail))
    }

    /// The moving half of [`RecordExtras::take_from`], out of line so that
    /// only the check inlines into the completion path (an Offline burst
    /// never gets here; a streamed sample always does).
    #[inline(never)]
    fn moved_from(detail: &mut ResponseDetail) -> Box<RecordExtras> {
        Box::new(RecordExtras {
            input_tokens: detail.input_tokens.take(),
            endpoint: detail.endpoint.take(),
            error: detail.error.take(),
            chunk_ns: std::mem::take(&mut detail.chunk_ns),
            chunk_tokens: std::mem::take(&mut detail.chunk_tokens),
        })
    }

    /// The way back from [`RecordExtras::boxed`]: empty for `None`.
    pub fn unboxed(extras: Option<Box<RecordExtras>>) -> RecordExtras {
        extras.map(|e| *e).unwrap_or_default()
    }
}

/// A [`QueryRecord`] as its `records.jsonl` line holds it. Four fields are
/// left out when the rest of the line already says them or when they hold
/// their default, because a run at millions of samples per second writes one
/// line per sample and the memory and disk bandwidth of writing those lines
/// is what then limits the rate:
/// - `query` when it equals `seq` (every Server and SingleStream sample of a
///   run's first phase: one sample per query, both counted from 0);
/// - `scheduled_ns` when it is 0 (every sample of an Offline phase: its one
///   query is scheduled at the phase's start; 17 of an Offline line's 113
///   bytes, and 5% of a 4M-sample Offline test's wall time on 2 cores);
/// - `n_tokens` when it is 0 (failed samples, SUTs that count no tokens);
/// - `chunk_tokens` when every chunk carried exactly one token (the usual
///   stream), which is also how lines written before chunk counts existed
///   read.
///
/// A line that spells them out anyway (older files) reads the same.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueryRecordLine {
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<u64>,
    sample_index: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    scheduled_ns: u64,
    issued_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_token_ns: Option<u64>,
    end_ns: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    n_tokens: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<QueryError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    chunk_ns: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    chunk_tokens: Vec<u32>,
}

/// True for an integer field's default, 0, which its line leaves out.
fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// True when a line may leave `chunk_tokens` out: one token in each chunk.
pub fn chunk_tokens_implied(chunk_ns: &[u64], chunk_tokens: &[u32]) -> bool {
    chunk_tokens.len() == chunk_ns.len() && chunk_tokens.iter().all(|&n| n == 1)
}

impl From<QueryRecord> for QueryRecordLine {
    fn from(r: QueryRecord) -> QueryRecordLine {
        let extras = RecordExtras::unboxed(r.extras);
        let implied = chunk_tokens_implied(&extras.chunk_ns, &extras.chunk_tokens);
        QueryRecordLine {
            seq: r.seq,
            query: (r.query != r.seq).then_some(r.query),
            sample_index: r.sample_index,
            scheduled_ns: r.scheduled_ns,
            issued_ns: r.issued_ns,
            first_token_ns: r.first_token_ns,
            end_ns: r.end_ns,
            n_tokens: r.n_tokens,
            input_tokens: extras.input_tokens,
            endpoint: extras.endpoint,
            error: extras.error,
            chunk_ns: extras.chunk_ns,
            chunk_tokens: if implied {
                Vec::new()
            } else {
                extras.chunk_tokens
            },
        }
    }
}

impl From<QueryRecordLine> for QueryRecord {
    fn from(l: QueryRecordLine) -> QueryRecord {
        let chunk_tokens = if l.chunk_tokens.is_empty() {
            vec![1; l.chunk_ns.len()]
        } else {
            l.chunk_tokens
        };
        QueryRecord {
            seq: l.seq,
            query: l.query.unwrap_or(l.seq),
            sample_index: l.sample_index,
            scheduled_ns: l.scheduled_ns,
            issued_ns: l.issued_ns,
            first_token_ns: l.first_token_ns,
            end_ns: l.end_ns,
            n_tokens: l.n_tokens,
            extras: RecordExtras {
                input_tokens: l.input_tokens,
                endpoint: l.endpoint,
                error: l.error,
                chunk_ns: l.chunk_ns,
                chunk_tokens,
            }
            .boxed(),
        }
    }
}

impl QueryRecord {
    /// True when the sample did not fail.
    pub fn is_ok(&self) -> bool {
        self.error().is_none()
    }

    /// Prompt tokens, if the server reported them.
    pub fn input_tokens(&self) -> Option<u32> {
        self.extras.as_ref().and_then(|e| e.input_tokens)
    }

    /// Backend endpoint that served the sample.
    pub fn endpoint(&self) -> Option<u32> {
        self.extras.as_ref().and_then(|e| e.endpoint)
    }

    /// Why the sample failed, when it did.
    pub fn error(&self) -> Option<&QueryError> {
        self.extras.as_ref().and_then(|e| e.error.as_ref())
    }

    /// Arrival times of streamed chunks that carried tokens.
    pub fn chunk_ns(&self) -> &[u64] {
        self.extras.as_ref().map_or(&[], |e| &e.chunk_ns)
    }

    /// Tokens in each of those chunks.
    pub fn chunk_tokens(&self) -> &[u32] {
        self.extras.as_ref().map_or(&[], |e| &e.chunk_tokens)
    }

    /// The record with `edit` applied to its extras (kept `None` when they
    /// end up empty).
    #[must_use]
    pub fn with_extras(mut self, edit: impl FnOnce(&mut RecordExtras)) -> QueryRecord {
        let mut extras = RecordExtras::unboxed(self.extras.take());
        edit(&mut extras);
        self.extras = extras.boxed();
        self
    }

    /// The record failed with `error`.
    #[must_use]
    pub fn with_error(self, error: QueryError) -> QueryRecord {
        self.with_extras(|e| e.error = Some(error))
    }
}

impl Timed for QueryRecord {
    fn times(&self) -> SampleTimes {
        SampleTimes {
            scheduled_ns: self.scheduled_ns,
            issued_ns: self.issued_ns,
            first_token_ns: self.first_token_ns,
            end_ns: self.end_ns,
            n_tokens: self.n_tokens,
            failed: self.error().is_some(),
        }
    }
}

/// A sample that carries its [`SampleTimes`]: [`QueryRecord`] here, and the
/// compact samples reports load from `records.jsonl`. Each type says only
/// how to read its times; LoadGen's per-sample figures come from
/// [`SampleTimes`] for all of them.
pub trait Timed {
    /// The times LoadGen's per-sample figures are computed from.
    fn times(&self) -> SampleTimes;

    /// LoadGen's latency: completion minus scheduled time.
    fn latency_ns(&self) -> u64 {
        self.times().latency_ns()
    }

    /// LoadGen's TTFT ([`SampleTimes::ttft_ns`]): `None` for a failed sample.
    fn ttft_ns(&self) -> Option<u64> {
        self.times().ttft_ns()
    }

    /// LoadGen's TPOT ([`SampleTimes::tpot_ns`]).
    fn tpot_ns(&self) -> Option<u64> {
        self.times().tpot_ns()
    }

    /// Issue delay: how late the issuer was against the schedule.
    fn issue_delay_ns(&self) -> u64 {
        self.times().issue_delay_ns()
    }
}

/// One sample's times on the phase clock: the one place its latency, TTFT,
/// TPOT and issue delay are computed, for [`QueryRecord`] and for the
/// compact samples reports load from `records.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleTimes {
    /// When LoadGen meant to issue it.
    pub scheduled_ns: u64,
    /// When `issue_query` was called.
    pub issued_ns: u64,
    /// When the first token arrived, if reported.
    pub first_token_ns: Option<u64>,
    /// When the sample completed, or when the run gave up on it.
    pub end_ns: u64,
    /// Output tokens as the SUT reported them.
    pub n_tokens: i64,
    /// Whether the sample failed.
    pub failed: bool,
}

impl SampleTimes {
    /// LoadGen's latency: completion minus scheduled time.
    #[inline]
    pub fn latency_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.scheduled_ns)
    }

    /// LoadGen's TTFT: first token minus scheduled time.
    /// `None` for a failed sample: a first token followed by an error is
    /// no time to first token of an answer (and so no TPOT either).
    #[inline]
    pub fn ttft_ns(&self) -> Option<u64> {
        if self.failed {
            return None;
        }
        self.first_token_ns
            .map(|t| t.saturating_sub(self.scheduled_ns))
    }

    /// LoadGen's TPOT: `(latency - ttft) / (n_tokens - 1)` in integer
    /// arithmetic; `None` without a first token or with fewer than 2 tokens.
    #[inline]
    pub fn tpot_ns(&self) -> Option<u64> {
        let ttft = self.ttft_ns()?;
        if self.n_tokens < 2 {
            return None;
        }
        Some(self.latency_ns().saturating_sub(ttft) / (self.n_tokens as u64 - 1))
    }

    /// Issue delay: how late the issuer was against the schedule.
    #[inline]
    pub fn issue_delay_ns(&self) -> u64 {
        self.issued_ns.saturating_sub(self.scheduled_ns)
    }
}

/// Announced when a phase starts, before any sample is issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStart {
    /// Accuracy or performance.
    pub phase: Phase,
    /// Scenario of the run.
    pub scenario: Scenario,
    /// Test mode of the run.
    pub mode: TestMode,
    /// Wall-clock time of the phase's zero, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// The settings in force.
    pub settings: EffectiveSettings,
    /// Queries generated for the phase.
    pub query_count: u64,
    /// Samples across those queries.
    pub sample_count: u64,
}

/// Announced when a phase has ended and its results are known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseEnd {
    /// Accuracy or performance.
    pub phase: Phase,
    /// Phase clock at the end.
    pub end_ns: u64,
    /// Samples that completed (failed ones included).
    pub completed_samples: u64,
    /// Samples that failed.
    pub failed_samples: u64,
    /// MLPerf validity of a performance phase; `None` for accuracy.
    pub valid: Option<bool>,
    /// Why the phase is invalid, one line each.
    pub invalid_reasons: Vec<String>,
    /// The run was stopped early (signal or stop request).
    pub interrupted: bool,
}

/// Receives the run's events as they happen.
///
/// Methods are called from LoadGen's threads and from whatever thread the SUT
/// completes on; they must be quick (hand the work to a writer thread).
pub trait RunObserver: Send + Sync {
    /// A phase is about to start; its clock is not running yet, so time
    /// spent here delays the phase's start but no query against its
    /// schedule (a telemetry scrape that must precede the load waits here).
    /// Called before [`RunObserver::phase_started`].
    fn phase_starting(&self, _phase: Phase) {}
    /// A phase is about to issue its first query (its clock is running).
    fn phase_started(&self, _start: &PhaseStart) {}
    /// A query of `samples` samples was issued at `issued_ns`.
    fn query_issued(&self, _query: u64, _samples: usize, _issued_ns: u64) {}
    /// A first token arrived for sample `seq` ([`QueryRecord::seq`]).
    fn first_token(&self, _seq: u64, _at_ns: u64) {}
    /// A sample completed (or was given up on).
    fn sample_completed(&self, _record: QueryRecord) {}
    /// Several samples completed in one `QuerySamplesComplete` call (an
    /// Offline SUT answers thousands at once): one call for all of them
    /// instead of one per sample. The observer may take the records out of
    /// `records` (or swap in another empty buffer); whatever is left is
    /// dropped by the caller. By default each goes to
    /// [`RunObserver::sample_completed`], in order.
    fn samples_completed(&self, records: &mut Vec<QueryRecord>) {
        for record in records.drain(..) {
            self.sample_completed(record);
        }
    }
    /// A phase ended.
    fn phase_finished(&self, _end: &PhaseEnd) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sut::ErrorKind;

    fn record() -> QueryRecord {
        QueryRecord {
            seq: 0,
            query: 0,
            sample_index: 9,
            scheduled_ns: 1_000,
            issued_ns: 1_250,
            first_token_ns: Some(11_000),
            end_ns: 41_003,
            n_tokens: 4,
            extras: RecordExtras {
                input_tokens: Some(12),
                ..RecordExtras::default()
            }
            .boxed(),
        }
    }

    #[test]
    fn a_record_is_80_bytes() {
        // The Offline issuer copies one per sample (see QueryRecord).
        assert_eq!(std::mem::size_of::<QueryRecord>(), 80);
    }

    #[test]
    fn extras_are_boxed_only_when_something_is_in_them() {
        assert_eq!(RecordExtras::default().boxed(), None);
        let r = record().with_extras(|e| e.input_tokens = None);
        assert_eq!(r.extras, None);
        assert_eq!(
            (r.chunk_ns(), r.chunk_tokens(), r.error()),
            (&[][..], &[][..], None)
        );
        let r = r.with_extras(|e| e.endpoint = Some(2));
        assert_eq!((r.endpoint(), r.input_tokens()), (Some(2), None));
    }

    #[test]
    fn loadgen_latency_definitions() {
        let r = record();
        assert_eq!(r.latency_ns(), 40_003);
        assert_eq!(r.ttft_ns(), Some(10_000));
        // (40003 - 10000) / 3 = 10001 in integer division.
        assert_eq!(r.tpot_ns(), Some(10_001));
        assert_eq!(r.issue_delay_ns(), 250);
        let one_token = QueryRecord {
            n_tokens: 1,
            ..record()
        };
        assert_eq!(one_token.tpot_ns(), None);
        // A failed sample has no TTFT or TPOT, even after a first token.
        let failed = record().with_error(crate::QueryError {
            kind: crate::ErrorKind::MalformedResponse,
            http_status: Some(200),
            message: "garbage".into(),
        });
        assert_eq!((failed.ttft_ns(), failed.tpot_ns()), (None, None));
    }

    #[test]
    fn json_shape_is_compact_and_round_trips() {
        let r = record();
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains("error"));
        assert!(!line.contains("chunk_ns"));
        assert_eq!(serde_json::from_str::<QueryRecord>(&line).unwrap(), r);

        let failed = record().with_error(QueryError {
            kind: ErrorKind::HttpStatus,
            http_status: Some(500),
            message: "internal".into(),
        });
        let line = serde_json::to_string(&failed).unwrap();
        assert!(line.contains(r#""error":{"kind":"http_status","http_status":500"#));
        assert!(!failed.is_ok());
    }

    #[test]
    fn lines_leave_out_only_what_the_rest_says_and_read_back_the_same() {
        let stream = QueryRecord {
            seq: 41,
            query: 41,
            n_tokens: 3,
            ..record()
        }
        .with_extras(|e| {
            e.chunk_ns = vec![11_000, 12_000, 13_000];
            e.chunk_tokens = vec![1, 1, 1];
        });
        let line = serde_json::to_string(&stream).unwrap();
        assert!(
            !line.contains("\"query\"") && !line.contains("chunk_tokens"),
            "{line}"
        );
        assert!(line.contains(r#""n_tokens":3"#), "{line}");
        assert_eq!(serde_json::from_str::<QueryRecord>(&line).unwrap(), stream);

        let failed = QueryRecord {
            n_tokens: 0,
            ..stream.clone()
        }
        .with_error(crate::QueryError {
            kind: ErrorKind::Timeout,
            http_status: None,
            message: "late".into(),
        });
        let line = serde_json::to_string(&failed).unwrap();
        assert!(!line.contains("n_tokens"), "{line}");
        assert_eq!(serde_json::from_str::<QueryRecord>(&line).unwrap(), failed);

        // Anything the rest does not imply is written and read back.
        for kept in [
            QueryRecord {
                query: 40,
                ..stream.clone()
            },
            stream
                .clone()
                .with_extras(|e| e.chunk_tokens = vec![1, 2, 1]),
            stream
                .clone()
                .with_extras(|e| e.chunk_tokens = vec![1, 0, 1]),
        ] {
            let line = serde_json::to_string(&kept).unwrap();
            assert_eq!(serde_json::from_str::<QueryRecord>(&line).unwrap(), kept);
        }
        let line = serde_json::to_string(&QueryRecord {
            query: 40,
            ..stream.clone()
        })
        .unwrap();
        assert!(line.contains(r#""query":40"#), "{line}");

        // An Offline sample, scheduled at the phase's start: no scheduled_ns.
        let offline = QueryRecord {
            query: 0,
            scheduled_ns: 0,
            ..stream.clone()
        };
        let line = serde_json::to_string(&offline).unwrap();
        assert!(!line.contains("scheduled_ns"), "{line}");
        assert_eq!(serde_json::from_str::<QueryRecord>(&line).unwrap(), offline);
        let spelled_out = line.replace(r#""issued_ns""#, r#""scheduled_ns":0,"issued_ns""#);
        assert_eq!(
            serde_json::from_str::<QueryRecord>(&spelled_out).unwrap(),
            offline
        );
        assert!(
            serde_json::to_string(&stream)
                .unwrap()
                .contains(r#""scheduled_ns":1000"#)
        );

        // A line that spells everything out, as older files do, reads the same.
        let old = r#"{"seq":41,"query":41,"sample_index":9,"scheduled_ns":1000,"issued_ns":1250,"first_token_ns":11000,"end_ns":41003,"n_tokens":3,"input_tokens":12,"chunk_ns":[11000,12000,13000],"chunk_tokens":[1,1,1]}"#;
        assert_eq!(serde_json::from_str::<QueryRecord>(old).unwrap(), stream);
        let old_failed = r#"{"seq":41,"query":41,"sample_index":9,"scheduled_ns":1000,"issued_ns":1250,"first_token_ns":11000,"end_ns":41003,"n_tokens":0,"input_tokens":12,"error":{"kind":"timeout","http_status":null,"message":"late"},"chunk_ns":[11000,12000,13000]}"#;
        assert_eq!(
            serde_json::from_str::<QueryRecord>(old_failed).unwrap(),
            failed
        );
    }
}
