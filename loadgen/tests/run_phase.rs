//! The issue loop against in-process SUTs: every scenario issues what it
//! should, answers are recorded exactly once, and no SUT can hang a phase.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity,
    clippy::collapsible_if
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use loadgen::{
    EffectiveSettings, ErrorKind, IssuePlan, IssueStop, NoPhaseLog, Phase, PhaseLog, PhaseRequest,
    QueryError, QueryRecord, QuerySample, QuerySampleResponse, Responder, RunObserver, RunOptions,
    RuntimeError, Scenario, StopSignal, SystemUnderTest, TestMode, TestSettings, run_phase,
};

fn settings(scenario: Scenario, f: impl FnOnce(&mut TestSettings)) -> EffectiveSettings {
    let mut s = TestSettings {
        scenario,
        mode: TestMode::PerformanceOnly,
        min_duration_ms: 0,
        min_query_count: 1,
        ..TestSettings::default()
    };
    f(&mut s);
    EffectiveSettings::new(&s, 16, 16).unwrap().0
}

fn plan(queries: usize, samples_per_query: usize, interval_ns: u64) -> Arc<IssuePlan> {
    Arc::new(IssuePlan {
        scheduled_ns: (0..queries as u64).map(|q| q * interval_ns).collect(),
        sample_indices: (0..(queries * samples_per_query) as u32)
            .map(|i| i % 16)
            .collect(),
        samples_per_query,
        accuracy_log_bits: Vec::new(),
    })
}

/// Answers every sample inside `issue_query`, with a first token and `n` tokens.
struct InstantSut {
    tokens: i64,
    calls: AtomicU64,
}

impl SystemUnderTest for InstantSut {
    fn name(&self) -> &str {
        "instant"
    }
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut responses: Vec<_> = samples
            .iter()
            .map(|s| {
                responder.first_token_complete(s.id, &[1, 0, 0, 0]);
                QuerySampleResponse::with_tokens(s.id, &[1, 2], self.tokens)
            })
            .collect();
        responder.complete_all(&mut responses);
    }
}

/// Hands samples to a worker thread, which answers them in order and checks
/// that no more than `max_outstanding` were ever outstanding at once.
struct WorkerSut {
    tx: Mutex<mpsc::Sender<(QuerySample, Responder)>>,
    outstanding: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

impl WorkerSut {
    fn start() -> WorkerSut {
        let (tx, rx) = mpsc::channel::<(QuerySample, Responder)>();
        let outstanding = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let out = Arc::clone(&outstanding);
        thread::spawn(move || {
            for (sample, responder) in rx {
                out.fetch_sub(1, Ordering::SeqCst);
                responder.complete(QuerySampleResponse::with_tokens(sample.id, &[7], 1));
            }
        });
        WorkerSut {
            tx: Mutex::new(tx),
            outstanding,
            peak,
        }
    }
}

impl SystemUnderTest for WorkerSut {
    fn name(&self) -> &str {
        "worker"
    }
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        let now = self
            .outstanding
            .fetch_add(samples.len() as u64, Ordering::SeqCst)
            + samples.len() as u64;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let tx = self.tx.lock().unwrap();
        for s in samples {
            tx.send((*s, responder.clone())).unwrap();
        }
    }
}

/// Never answers. Optionally raises a stop signal after `stop_after` calls.
struct SilentSut {
    calls: AtomicU64,
    stop_after: Option<(u64, StopSignal)>,
    held: Mutex<Vec<Responder>>,
}

impl SilentSut {
    fn new(stop_after: Option<(u64, StopSignal)>) -> SilentSut {
        SilentSut {
            calls: AtomicU64::new(0),
            stop_after,
            held: Mutex::new(Vec::new()),
        }
    }
}

impl SystemUnderTest for SilentSut {
    fn name(&self) -> &str {
        "silent"
    }
    fn issue_query(&self, _samples: &[QuerySample], responder: &Responder) {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.held.lock().unwrap().push(responder.clone());
        if let Some((after, stop)) = &self.stop_after {
            if calls >= *after {
                stop.request();
            }
        }
    }
}

#[derive(Default)]
struct Collect {
    records: Mutex<Vec<QueryRecord>>,
    issued: AtomicU64,
    accuracy: Mutex<Vec<(u64, u64, Vec<u8>, Option<Vec<u8>>, Option<i64>)>>,
    errors: Mutex<Vec<RuntimeError>>,
    messages: Mutex<Vec<String>>,
}

impl RunObserver for Collect {
    fn query_issued(&self, _query: u64, _samples: usize, _issued_ns: u64) {
        self.issued.fetch_add(1, Ordering::Relaxed);
    }
    fn sample_completed(&self, record: QueryRecord) {
        self.records.lock().unwrap().push(record);
    }
}

impl PhaseLog for Collect {
    fn accuracy_entry(
        &self,
        seq: u64,
        qsl: u64,
        data: Vec<u8>,
        token: Option<Vec<u8>>,
        count: Option<i64>,
    ) {
        self.accuracy
            .lock()
            .unwrap()
            .push((seq, qsl, data, token, count));
    }
    fn runtime_error(&self, error: RuntimeError) {
        self.errors.lock().unwrap().push(error);
    }
    fn generic_message(&self, message: &str) {
        self.messages.lock().unwrap().push(message.to_owned());
    }
}

fn run(
    sut: &dyn SystemUnderTest,
    plan: Arc<IssuePlan>,
    settings: &EffectiveSettings,
    phase: Phase,
    options: RunOptions,
    collect: &Arc<Collect>,
) -> loadgen::PhaseMeasurements {
    let options = RunOptions {
        observer: Some(Arc::clone(collect) as Arc<dyn RunObserver>),
        ..options
    };
    run_phase(&PhaseRequest {
        sut,
        plan,
        settings,
        phase,
        log: Arc::clone(collect) as Arc<dyn PhaseLog>,
        options: &options,
    })
}

#[test]
fn server_issues_every_query_on_schedule_and_records_each_sample_once() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 5,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Server, |s| s.use_token_latencies = true);
    let m = run(
        &sut,
        plan(200, 1, 50_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );

    assert_eq!(m.stop, IssueStop::AllIssued);
    assert_eq!((m.queries_issued, m.samples_issued), (200, 200));
    assert_eq!(sut.calls.load(Ordering::Relaxed), 200);
    assert_eq!(collect.issued.load(Ordering::Relaxed), 200);
    let records = collect.records.lock().unwrap();
    assert_eq!(records.len(), 200);
    for r in records.iter() {
        // Never issued before its scheduled instant; latency from the schedule.
        assert_eq!(r.scheduled_ns, r.query * 50_000);
        assert!(r.issued_ns >= r.scheduled_ns);
        assert!(r.end_ns >= r.issued_ns);
        assert_eq!(r.n_tokens, 5);
        assert!(r.first_token_ns.is_some());
        assert!(r.is_ok());
    }
    // The latest completion, as recorded per sample.
    assert_eq!(
        m.max_complete_ns,
        records.iter().map(|r| r.end_ns).max().unwrap()
    );
    let result = &m.result;
    assert_eq!(result.sample_latencies.len(), 200);
    assert_eq!(result.queries_issued, 200);
    assert!((result.final_query_scheduled_time - 199.0 * 50e-6).abs() < 1e-12);
    assert!(result.final_query_issued_time >= result.final_query_scheduled_time);
    // LoadGen's TPOT: (latency - ttft) / (n_tokens - 1), integer division.
    let tokens = &result.token_results;
    for i in 0..200 {
        let want = (result.sample_latencies[i] - tokens.first_token_latencies[i]) / 4;
        assert_eq!(tokens.time_per_output_token_arr[i], want);
        assert_eq!(tokens.tokens_per_sample[i], 5);
    }
    assert!(result.failed_samples.is_empty());
    assert!(m.issue_delay.is_some());
    assert!(collect.errors.lock().unwrap().is_empty());
}

#[test]
fn single_stream_keeps_one_query_outstanding_and_ends_naturally() {
    let collect = Arc::new(Collect::default());
    let sut = WorkerSut::start();
    let s = settings(Scenario::SingleStream, |s| s.min_query_count = 40);
    let m = run(
        &sut,
        plan(100, 1, 1_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );

    assert_eq!(m.stop, IssueStop::EndedNaturally);
    assert_eq!(m.queries_issued, 40);
    assert_eq!(sut.peak.load(Ordering::SeqCst), 1);
    assert_eq!(
        *collect.messages.lock().unwrap(),
        vec!["Ending naturally: Minimum query count and test duration met.".to_owned()]
    );
    // Scheduled = issued in SingleStream.
    for r in collect.records.lock().unwrap().iter() {
        assert_eq!(r.scheduled_ns, r.issued_ns);
    }
}

#[test]
fn single_stream_that_runs_out_of_queries_logs_loadgens_error() {
    let collect = Arc::new(Collect::default());
    let sut = WorkerSut::start();
    let s = settings(Scenario::SingleStream, |s| s.min_query_count = 500);
    let m = run(
        &sut,
        plan(10, 1, 1_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(m.stop, IssueStop::RanOutOfQueries);
    assert_eq!(m.queries_issued, 10);
    assert_eq!(
        *collect.errors.lock().unwrap(),
        vec![RuntimeError::RanOutOfQueries]
    );
}

#[test]
fn multi_stream_issues_eight_samples_per_query_and_measures_query_latency() {
    let collect = Arc::new(Collect::default());
    let sut = WorkerSut::start();
    let s = settings(Scenario::MultiStream, |s| s.min_query_count = 5);
    let m = run(
        &sut,
        plan(20, 8, 1_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(m.queries_issued, 5);
    assert_eq!(m.samples_issued, 40);
    assert_eq!(sut.peak.load(Ordering::SeqCst), 8);
    assert_eq!(m.result.query_latencies.len(), 5);
    assert_eq!(m.result.sample_latencies.len(), 40);
    for (q, &ql) in m.result.query_latencies.iter().enumerate() {
        let max_sample = m.result.sample_latencies[q * 8..q * 8 + 8]
            .iter()
            .max()
            .unwrap();
        assert_eq!(ql, *max_sample);
    }
    // The last query's own samples, not the phase's latest completion.
    let records = collect.records.lock().unwrap();
    let last_done = records
        .iter()
        .filter(|r| r.query == 4)
        .map(|r| r.end_ns)
        .max()
        .unwrap();
    assert_eq!(
        m.result.final_query_all_samples_done_time,
        last_done as f64 / 1e9
    );
}

/// Offline's one query of `samples` samples (indices cycling over 16), no
/// accuracy logging.
fn one_offline_query(samples: usize) -> Arc<IssuePlan> {
    Arc::new(IssuePlan {
        scheduled_ns: vec![0],
        sample_indices: (0..samples as u32).map(|i| i % 16).collect(),
        samples_per_query: samples,
        accuracy_log_bits: Vec::new(),
    })
}

#[test]
fn offline_issues_one_query_with_every_sample() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 3,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Offline, |_| {});
    let offline = one_offline_query(1000);
    let m = run(
        &sut,
        offline,
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(sut.calls.load(Ordering::Relaxed), 1);
    assert_eq!((m.queries_issued, m.samples_issued), (1, 1000));
    assert_eq!(collect.records.lock().unwrap().len(), 1000);
    assert!(
        collect
            .records
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.scheduled_ns == 0)
    );
}

/// A large Offline phase (its completion slots and latency array mapped on
/// a second core beforehand, where there is one) loses nothing: every
/// sample completes once, and its latency is its completion time.
#[test]
fn a_large_offline_phase_accounts_for_every_sample() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 3,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Offline, |_| {});
    let n = 300_000;
    let m = run(
        &sut,
        one_offline_query(n),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!((m.queries_issued, m.samples_issued), (1, n as u64));
    assert_eq!(m.samples_given_up, 0);
    assert_eq!(m.result.sample_latencies.len(), n);
    let records = collect.records.lock().unwrap();
    assert_eq!(records.len(), n);
    let mut seen = vec![false; n];
    for r in records.iter() {
        assert!(!std::mem::replace(&mut seen[r.seq as usize], true));
        assert_eq!(m.result.sample_latencies[r.seq as usize], r.end_ns as i64);
    }
    assert_eq!(
        m.max_complete_ns,
        records.iter().map(|r| r.end_ns).max().unwrap()
    );
}

/// Answers an Offline query's samples one at a time, last sample first,
/// each after the clock has moved on from the previous one.
struct ReverseSut;

impl SystemUnderTest for ReverseSut {
    fn name(&self) -> &str {
        "reverse"
    }
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        for s in samples.iter().rev() {
            let before = std::time::Instant::now();
            while std::time::Instant::now() == before {
                std::hint::spin_loop();
            }
            responder.complete(QuerySampleResponse::with_tokens(s.id, &[7], 1));
        }
    }
}

/// The final query's "all samples done" time (LoadGen's Offline samples per
/// second divides by it) is its latest completion, whichever sample that
/// is: here the first one issued.
#[test]
fn the_final_query_is_done_when_its_last_answered_sample_is() {
    let collect = Arc::new(Collect::default());
    let s = settings(Scenario::Offline, |_| {});
    let m = run(
        &ReverseSut,
        one_offline_query(500),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    let records = collect.records.lock().unwrap();
    let end_of = |seq: u64| records.iter().find(|r| r.seq == seq).unwrap().end_ns;
    assert!(end_of(0) > end_of(499));
    assert_eq!(m.max_complete_ns, end_of(0));
    assert_eq!(
        m.result.final_query_all_samples_done_time,
        end_of(0) as f64 / 1e9
    );
}

/// Keeps the size of each batch of records and the records themselves.
#[derive(Default)]
struct Batches {
    sizes: Mutex<Vec<usize>>,
    records: Mutex<Vec<QueryRecord>>,
}

impl RunObserver for Batches {
    fn sample_completed(&self, record: QueryRecord) {
        self.sizes.lock().unwrap().push(1);
        self.records.lock().unwrap().push(record);
    }
    fn samples_completed(&self, records: &mut Vec<QueryRecord>) {
        self.sizes.lock().unwrap().push(records.len());
        self.records.lock().unwrap().append(records);
    }
}

#[test]
fn a_many_sample_completion_reaches_the_observer_in_bounded_batches_in_order() {
    let sut = InstantSut {
        tokens: 3,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Offline, |_| {});
    let offline = one_offline_query(2500);
    let batches = Arc::new(Batches::default());
    run_phase(&PhaseRequest {
        sut: &sut,
        plan: offline,
        settings: &s,
        phase: Phase::Performance,
        log: Arc::new(NoPhaseLog),
        options: &RunOptions {
            observer: Some(Arc::clone(&batches) as Arc<dyn RunObserver>),
            ..RunOptions::default()
        },
    });
    // One call per 1024 samples of the one `complete_all`, not one per sample.
    assert_eq!(*batches.sizes.lock().unwrap(), vec![1024, 1024, 452]);
    let records = batches.records.lock().unwrap();
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..2500).collect::<Vec<u64>>());
    assert!(
        records
            .iter()
            .all(|r| r.n_tokens == 3 && r.first_token_ns.is_some())
    );
}

#[test]
fn a_silent_sut_is_given_up_on_after_the_idle_timeout() {
    let collect = Arc::new(Collect::default());
    let sut = SilentSut::new(None);
    let s = settings(Scenario::Server, |_| {});
    let options = RunOptions {
        idle_timeout: Some(Duration::from_millis(100)),
        ..RunOptions::default()
    };
    let m = run(
        &sut,
        plan(20, 1, 10_000),
        &s,
        Phase::Performance,
        options,
        &collect,
    );

    assert_eq!(m.stop, IssueStop::SutStalled);
    assert_eq!(m.samples_given_up, 20);
    assert_eq!(
        m.result.failed_samples.get(&ErrorKind::NeverCompleted),
        Some(&20)
    );
    let records = collect.records.lock().unwrap();
    assert_eq!(records.len(), 20, "every issued sample is accounted for");
    assert_eq!(
        m.max_complete_ns,
        records.iter().map(|r| r.end_ns).max().unwrap()
    );
    assert!(
        records
            .iter()
            .all(|r| r.error().unwrap().kind == ErrorKind::NeverCompleted)
    );
    drop(records);
    assert!(matches!(
        collect.errors.lock().unwrap()[0],
        RuntimeError::SutStalled { samples: 20, .. }
    ));

    // Answers that arrive after the run gave up are ignored, not double counted.
    let held = sut.held.lock().unwrap();
    held[0].complete(QuerySampleResponse::with_tokens(
        loadgen::ResponseId(0),
        &[1],
        1,
    ));
    assert_eq!(collect.records.lock().unwrap().len(), 20);
}

#[test]
fn a_stop_request_ends_issuing_and_abandons_outstanding_samples() {
    let collect = Arc::new(Collect::default());
    let stop = StopSignal::new();
    let sut = SilentSut::new(Some((3, stop.clone())));
    let s = settings(Scenario::Server, |_| {});
    let options = RunOptions {
        stop,
        stop_grace: Duration::ZERO,
        ..RunOptions::default()
    };
    // A schedule that would take an hour: the stop must cut it short.
    let m = run(
        &sut,
        plan(1000, 1, 3_600_000_000),
        &s,
        Phase::Performance,
        options,
        &collect,
    );
    assert_eq!(m.stop, IssueStop::Interrupted);
    assert_eq!(m.queries_issued, 3);
    assert!(m.result.interrupted);
    assert_eq!(m.result.failed_samples.get(&ErrorKind::Cancelled), Some(&3));
    assert_eq!(collect.records.lock().unwrap().len(), 3);
}

#[test]
fn server_stops_issuing_when_too_many_queries_are_outstanding() {
    let collect = Arc::new(Collect::default());
    let sut = SilentSut::new(None);
    let s = settings(Scenario::Server, |s| s.server_max_async_queries = 3);
    let options = RunOptions {
        idle_timeout: Some(Duration::from_millis(50)),
        ..RunOptions::default()
    };
    let m = run(
        &sut,
        plan(100, 1, 1_000),
        &s,
        Phase::Performance,
        options,
        &collect,
    );
    assert_eq!(m.stop, IssueStop::TooManyOutstanding);
    assert_eq!(m.queries_issued, 4);
    assert_eq!(
        collect.errors.lock().unwrap()[0],
        RuntimeError::TooManyOutstanding {
            issued: 4,
            outstanding: 4
        }
    );
}

#[test]
fn max_query_count_ends_a_server_run() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 0,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Server, |s| s.max_query_count = 7);
    let m = run(
        &sut,
        plan(50, 1, 1_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(m.stop, IssueStop::MaxQueryCount);
    assert_eq!(m.queries_issued, 7);
}

#[test]
fn accuracy_phase_logs_every_response_with_its_first_token() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 2,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Server, |s| s.use_token_latencies = true);
    let m = run(
        &sut,
        plan(10, 1, 1_000),
        &s,
        Phase::Accuracy,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(m.samples_issued, 10);
    let mut entries = collect.accuracy.lock().unwrap().clone();
    entries.sort_by_key(|e| e.0);
    assert_eq!(entries.len(), 10);
    for (seq, entry) in entries.iter().enumerate() {
        assert_eq!(entry.0, seq as u64);
        assert_eq!(entry.1, seq as u64 % 16);
        assert_eq!(entry.2, vec![1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(entry.3.as_deref(), Some(&[1u8, 0, 0, 0][..]));
        assert_eq!(entry.4, Some(2));
    }
}

#[test]
fn performance_phase_logs_only_sampled_responses() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 0,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Offline, |_| {});
    let offline = Arc::new(IssuePlan {
        scheduled_ns: vec![0],
        sample_indices: (0..100).collect(),
        samples_per_query: 100,
        accuracy_log_bits: vec![1 << 5 | 1 << 40, 1 << (70 - 64)],
    });
    run(
        &sut,
        offline,
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    let mut seqs: Vec<u64> = collect
        .accuracy
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.0)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![5, 40, 70]);
}

#[test]
fn token_count_problems_are_logged_as_loadgen_does() {
    let collect = Arc::new(Collect::default());
    let sut = InstantSut {
        tokens: 1,
        calls: AtomicU64::new(0),
    };
    let s = settings(Scenario::Server, |s| s.use_token_latencies = true);
    let m = run(
        &sut,
        plan(3, 1, 1_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(
        *collect.errors.lock().unwrap(),
        vec![RuntimeError::OneToken; 3]
    );
    // LoadGen records a single-token count as 0.
    assert_eq!(m.result.token_results.tokens_per_sample, vec![0, 0, 0]);
    // LoadGen would divide by 0 - 1 and store a negative TPOT; a TPOT needs
    // two tokens, so these samples have none (their TTFT is kept).
    assert!(m.result.token_results.time_per_output_token_arr.is_empty());
    assert_eq!(m.result.token_results.first_token_latencies.len(), 3);
}

#[test]
fn failed_samples_carry_no_ttft_or_tpot() {
    /// Streams a first token for every sample, then fails every other one
    /// (a server that errors after its headers); `all` fails all of them.
    struct FailAfterFirstToken {
        all: bool,
    }
    impl SystemUnderTest for FailAfterFirstToken {
        fn name(&self) -> &str {
            "fail-after-first-token"
        }
        fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
            for s in samples {
                responder.first_token_complete(s.id, &[1, 0, 0, 0]);
                if self.all || s.id.0 % 2 == 0 {
                    responder.complete(QuerySampleResponse::failed(
                        s.id,
                        QueryError {
                            kind: ErrorKind::MalformedResponse,
                            http_status: Some(200),
                            message: "garbage after headers".into(),
                        },
                    ));
                } else {
                    responder.complete(QuerySampleResponse::with_tokens(s.id, &[1, 2], 5));
                }
            }
        }
    }
    for (all, ok) in [(false, 5), (true, 0)] {
        let collect = Arc::new(Collect::default());
        let s = settings(Scenario::Server, |s| s.use_token_latencies = true);
        let m = run(
            &FailAfterFirstToken { all },
            plan(10, 1, 1_000),
            &s,
            Phase::Performance,
            RunOptions::default(),
            &collect,
        );
        let tokens = &m.result.token_results;
        assert_eq!(tokens.first_token_latencies.len(), ok, "all={all}");
        assert_eq!(tokens.time_per_output_token_arr.len(), ok, "all={all}");
        assert!(tokens.first_token_latencies.iter().all(|&l| l >= 0));
        assert!(tokens.time_per_output_token_arr.iter().all(|&l| l >= 0));
        let sum = loadgen::PerformanceSummary::compute(&s, &m.result);
        for v in [
            sum.first_token_latency_min,
            sum.first_token_latency_max,
            sum.first_token_latency_mean,
            sum.time_per_output_token_min,
            sum.time_per_output_token_max,
            sum.time_per_output_token_mean,
            sum.token_target_latency_percentile.sample_latency,
            sum.target_tpot_percentile.sample_latency,
        ] {
            assert!(v >= 0, "all={all}: a statistic holds {v}");
        }
        if all {
            assert_eq!(sum.first_token_latency_min, 0);
            assert_eq!(sum.first_token_latency_mean, 0);
        }
    }
}

#[test]
fn failed_samples_are_counted_by_kind() {
    struct Failing;
    impl SystemUnderTest for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
            for s in samples {
                let kind = if s.id.0 % 2 == 0 {
                    ErrorKind::HttpStatus
                } else {
                    ErrorKind::Timeout
                };
                responder.complete(QuerySampleResponse::failed(
                    s.id,
                    QueryError {
                        kind,
                        http_status: None,
                        message: "test".into(),
                    },
                ));
            }
        }
    }
    let collect = Arc::new(Collect::default());
    let s = settings(Scenario::Server, |s| s.use_token_latencies = true);
    let m = run(
        &Failing,
        plan(9, 1, 1_000),
        &s,
        Phase::Performance,
        RunOptions::default(),
        &collect,
    );
    assert_eq!(
        m.result.failed_samples.get(&ErrorKind::HttpStatus),
        Some(&5)
    );
    assert_eq!(m.result.failed_samples.get(&ErrorKind::Timeout), Some(&4));
    // A failed sample carries its own error; LoadGen's token checks are not repeated.
    assert!(collect.errors.lock().unwrap().is_empty());
}
