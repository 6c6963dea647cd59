//! The safe side of the boundary: LoadGen's callbacks into our SUT and QSL,
//! our SUT's answers into LoadGen, and a [`QueryRecord`] per answer for the
//! run's observers.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadgen::{
    CompletionSink, ErrorKind, PhaseStart, QueryError, QueryRecord, QuerySample,
    QuerySampleLibrary, QuerySampleResponse, Responder, ResponseId, RunObserver, StopSignal,
    SystemUnderTest,
};

use crate::ffi::{self, Callbacks, RawResponse, RawSample};
use crate::{OfficialError, OfficialRun, OfficialSettings, mode_code, scenario_code};

/// A sample LoadGen issued that has not been answered yet.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    query: u64,
    index: usize,
    issued_ns: u64,
    first_token_ns: Option<u64>,
}

/// A call for LoadGen, made by the forwarder thread.
enum Forward {
    FirstToken(u64, Vec<u8>),
    Complete(Vec<(u64, Vec<u8>, i64)>),
    End,
}

/// Where our SUT's answers go: LoadGen, and the observers.
///
/// LoadGen orders a sample's first token and completion by when its IO
/// thread drains each calling thread's buffer, so a first token and a
/// completion made on two threads (a tokio task moves between workers)
/// microseconds apart can reach it swapped ("Attempted to record a sample
/// latency before it's first token latency"). Every call therefore goes
/// through one forwarder thread, queued under the map's lock in the order
/// the SUT made them.
struct Sink {
    zero: Instant,
    /// The forwarder's queue.
    forward: Mutex<mpsc::Sender<Forward>>,
    /// Keyed by LoadGen's response id: each is answered to LoadGen once.
    in_flight: Mutex<HashMap<u64, InFlight>>,
    next_seq: AtomicU64,
    next_query: AtomicU64,
    /// A stop was requested: answer at once as cancelled.
    stopping: AtomicBool,
    observer: Option<Arc<dyn RunObserver>>,
    tally: Mutex<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    completed: u64,
    failed: BTreeMap<ErrorKind, u64>,
    tokens: u64,
    cancelled_by_stop: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    fn cancel_outstanding(&self) {
        let ids: Vec<u64> = lock(&self.in_flight).keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        lock(&self.tally).cancelled_by_stop = true;
        let mut responses: Vec<QuerySampleResponse> = ids
            .into_iter()
            .map(|id| QuerySampleResponse::failed(ResponseId(id), cancelled()))
            .collect();
        self.query_samples_complete(&mut responses);
    }
}

fn cancelled() -> QueryError {
    QueryError {
        kind: ErrorKind::Cancelled,
        http_status: None,
        message: "the run was stopped before the query finished".to_owned(),
    }
}

impl CompletionSink for Sink {
    fn now_ns(&self) -> u64 {
        self.zero.elapsed().as_nanos() as u64
    }

    fn first_token_complete(&self, id: ResponseId, data: &[u8]) {
        let now = self.now_ns();
        let seq = {
            let mut map = lock(&self.in_flight);
            let Some(entry) = map.get_mut(&id.0) else {
                return;
            };
            if entry.first_token_ns.is_some() {
                return;
            }
            entry.first_token_ns = Some(now);
            // Queued under the map's lock: before the sample's completion.
            let _ = lock(&self.forward).send(Forward::FirstToken(id.0, data.to_vec()));
            entry.seq
        };
        if let Some(o) = &self.observer {
            o.first_token(seq, now);
        }
    }

    fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]) {
        let now = self.now_ns();
        let entries: Vec<Option<InFlight>> = {
            let mut map = lock(&self.in_flight);
            let entries: Vec<Option<InFlight>> =
                responses.iter().map(|r| map.remove(&r.id.0)).collect();
            let calls: Vec<(u64, Vec<u8>, i64)> = responses
                .iter_mut()
                .zip(&entries)
                .filter(|(_, e)| e.is_some())
                .map(|(r, _)| (r.id.0, std::mem::take(&mut r.data), r.n_tokens))
                .collect();
            if !calls.is_empty() {
                let _ = lock(&self.forward).send(Forward::Complete(calls));
            }
            entries
        };
        let mut tally = lock(&self.tally);
        for (response, entry) in responses.iter_mut().zip(entries) {
            let Some(entry) = entry else { continue };
            tally.completed += 1;
            tally.tokens += response.n_tokens.max(0) as u64;
            let detail = std::mem::take(&mut response.detail);
            if let Some(error) = &detail.error {
                *tally.failed.entry(error.kind).or_default() += 1;
            }
            if let Some(o) = &self.observer {
                o.sample_completed(QueryRecord {
                    seq: entry.seq,
                    query: entry.query,
                    sample_index: entry.index as u64,
                    // LoadGen keeps its schedule to itself: the time its
                    // IssueQuery reached us stands for it.
                    scheduled_ns: entry.issued_ns,
                    issued_ns: entry.issued_ns,
                    first_token_ns: entry.first_token_ns,
                    end_ns: now,
                    n_tokens: response.n_tokens,
                    extras: loadgen::RecordExtras {
                        input_tokens: detail.input_tokens,
                        endpoint: detail.endpoint,
                        error: detail.error,
                        chunk_ns: detail.chunk_ns,
                        chunk_tokens: detail.chunk_tokens,
                    }
                    .boxed(),
                });
            }
        }
    }
}

/// LoadGen's callbacks.
struct Bridge<'a> {
    sut: &'a dyn SystemUnderTest,
    qsl: &'a dyn QuerySampleLibrary,
    sink: Arc<Sink>,
    responder: Responder,
    qsl_error: Mutex<Option<String>>,
}

impl Callbacks for Bridge<'_> {
    fn issue_query(&self, samples: &[RawSample]) {
        let now = self.sink.now_ns();
        let query = self.sink.next_query.fetch_add(1, Ordering::Relaxed);
        let ours: Vec<QuerySample> = {
            let mut map = lock(&self.sink.in_flight);
            samples
                .iter()
                .map(|s| {
                    let seq = self.sink.next_seq.fetch_add(1, Ordering::Relaxed);
                    map.insert(
                        s.id as u64,
                        InFlight {
                            seq,
                            query,
                            index: s.index,
                            issued_ns: now,
                            first_token_ns: None,
                        },
                    );
                    QuerySample {
                        id: ResponseId(s.id as u64),
                        index: s.index,
                    }
                })
                .collect()
        };
        if let Some(o) = &self.sink.observer {
            o.query_issued(query, ours.len(), now);
        }
        if self.sink.stopping.load(Ordering::SeqCst) {
            let mut responses: Vec<QuerySampleResponse> = ours
                .iter()
                .map(|s| QuerySampleResponse::failed(s.id, cancelled()))
                .collect();
            self.responder.complete_all(&mut responses);
            return;
        }
        self.sut.issue_query(&ours, &self.responder);
    }

    fn flush_queries(&self) {
        self.sut.flush_queries();
    }

    fn load_samples(&self, indices: &[usize]) {
        if let Err(e) = self.qsl.load_samples_to_ram(indices) {
            lock(&self.qsl_error).get_or_insert_with(|| e.to_string());
        }
    }

    fn unload_samples(&self, indices: &[usize]) {
        if let Err(e) = self.qsl.unload_samples_from_ram(indices) {
            lock(&self.qsl_error).get_or_insert_with(|| e.to_string());
        }
    }
}

/// Makes the queued calls into LoadGen, in order, until [`Forward::End`].
fn forwarder(queue: mpsc::Receiver<Forward>, live: &AtomicBool) {
    for call in queue {
        // Every queued call is for a sample LoadGen still waits on (each id
        // is answered once), so StartTest cannot have returned before it;
        // the flag only guards against a bug in that reasoning.
        match call {
            Forward::End => return,
            Forward::FirstToken(id, data) if live.load(Ordering::SeqCst) => {
                ffi::first_token_complete(&mut [RawResponse::new(id as usize, &data, 1)]);
            }
            Forward::Complete(calls) if live.load(Ordering::SeqCst) => {
                // `calls` owns the bytes the raw responses point at.
                let mut raw: Vec<RawResponse> = calls
                    .iter()
                    .map(|(id, data, n)| RawResponse::new(*id as usize, data, *n))
                    .collect();
                ffi::query_samples_complete(&mut raw);
            }
            _ => {}
        }
    }
}

fn c(s: &str) -> Result<CString, OfficialError> {
    ffi::c_string(s).ok_or_else(|| OfficialError::Nul(s.to_owned()))
}

fn path_c(p: &std::path::Path) -> Result<CString, OfficialError> {
    c(&p.to_string_lossy())
}

/// LoadGen's `TestSettings`: `FromConfig`, then the overrides.
fn test_settings(settings: &OfficialSettings) -> Result<ffi::Settings, OfficialError> {
    let mut s = ffi::Settings::new(scenario_code(settings.scenario), mode_code(settings.mode)?);
    let code = s.read_config(
        &path_c(&settings.user_conf)?,
        &c(&settings.model)?,
        &c(settings.scenario.as_str())?,
    );
    if code != 0 {
        return Err(OfficialError::Config {
            path: settings.user_conf.clone(),
            code,
        });
    }
    if let Some(qps) = settings.target_qps {
        s.set_target_qps(qps);
    }
    if let Some(v) = settings.min_duration_ms {
        s.set_min_duration_ms(v);
    }
    if let Some(v) = settings.min_query_count {
        s.set_min_query_count(v);
    }
    if let Some(v) = settings.max_duration_ms {
        s.set_max_duration_ms(v);
    }
    Ok(s)
}

/// See [`crate::start_test`].
pub(crate) fn run(
    sut: &dyn SystemUnderTest,
    qsl: &dyn QuerySampleLibrary,
    settings: &OfficialSettings,
    mut phase: PhaseStart,
    observer: Option<Arc<dyn RunObserver>>,
    stop: &StopSignal,
) -> Result<OfficialRun, OfficialError> {
    let test_settings = test_settings(settings)?;
    let sut_name = c(sut.name())?;
    let qsl_name = c(qsl.name())?;
    let outdir = path_c(&settings.log_dir)?;
    let audit = match &settings.audit_config {
        Some(p) => path_c(p)?,
        None => path_c(&settings.log_dir.join(".no-audit.config"))?,
    };
    // Before the phase clock starts (a telemetry start mark waits here).
    if let Some(o) = &observer {
        o.phase_starting(phase.phase);
    }
    let (forward, queue) = mpsc::channel();
    let sink = Arc::new(Sink {
        zero: Instant::now(),
        forward: Mutex::new(forward),
        in_flight: Mutex::default(),
        next_seq: AtomicU64::new(0),
        next_query: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        observer,
        tally: Mutex::default(),
    });
    phase.start_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    if let Some(o) = &sink.observer {
        o.phase_started(&phase);
    }
    let bridge = Bridge {
        sut,
        qsl,
        responder: Responder::new(sink.clone()),
        sink: Arc::clone(&sink),
        qsl_error: Mutex::new(None),
    };
    let done = AtomicBool::new(false);
    // True while LoadGen's StartTest runs: only then may its completion
    // functions be called.
    let live = AtomicBool::new(true);
    let ok = std::thread::scope(|scope| {
        let live = &live;
        scope.spawn(move || forwarder(queue, live));
        // A stop request answers what is outstanding; LoadGen offers no
        // clean way to end StartTest early.
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if stop.is_requested() {
                    sink.stopping.store(true, Ordering::SeqCst);
                    sink.cancel_outstanding();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let ok = ffi::start_test(
            &bridge,
            &test_settings,
            &ffi::TestArgs {
                sut_name: &sut_name,
                qsl_name: &qsl_name,
                total_samples: qsl.total_sample_count(),
                performance_samples: qsl.performance_sample_count(),
                outdir: &outdir,
                trace: settings.trace,
                audit_config: &audit,
            },
        );
        // LoadGen's test is over: no call may reach it any more.
        live.store(false, Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        let _ = lock(&sink.forward).send(Forward::End);
        ok
    });
    let end_ns = sink.now_ns();
    if !ok {
        return Err(OfficialError::StartTest(settings.log_dir.clone()));
    }
    if let Some(e) = lock(&bridge.qsl_error).take() {
        return Err(OfficialError::Qsl(e));
    }
    let tally = lock(&sink.tally);
    Ok(OfficialRun {
        issued_samples: sink.next_seq.load(Ordering::SeqCst),
        issued_queries: sink.next_query.load(Ordering::SeqCst),
        completed_samples: tally.completed,
        failed_samples: tally.failed.clone(),
        token_count: tally.tokens,
        interrupted: tally.cancelled_by_stop || sink.stopping.load(Ordering::SeqCst),
        end_ns,
    })
}
