//! The issue loop of one phase (LoadGen's `IssueQueries` and
//! `IssueQueryController::IssueQueriesInternal`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::clock::{PhaseClock, TimerSlackGuard, Waiter};
use super::plan::IssuePlan;
use super::state::{NO_ERROR, PhaseFlags, PhaseState, TimeSlots, UNSET};
use super::{PhaseLog, RunOptions, RuntimeError};
use crate::record::{Phase, PhaseStart};
use crate::results::{PerformanceResult, QuerySampleLatency, TokenPerformanceResults};
use crate::settings::{EffectiveSettings, Scenario};
use crate::sut::{ErrorKind, QuerySample, Responder, ResponseId, SystemUnderTest};

/// Everything one phase needs.
pub struct PhaseRequest<'a> {
    /// The system under test.
    pub sut: &'a dyn SystemUnderTest,
    /// The queries to issue.
    pub plan: Arc<IssuePlan>,
    /// The settings in force.
    pub settings: &'a EffectiveSettings,
    /// Accuracy or performance.
    pub phase: Phase,
    /// Log hooks.
    pub log: Arc<dyn PhaseLog>,
    /// Observer, stop signal, timeouts.
    pub options: &'a RunOptions,
}

impl std::fmt::Debug for PhaseRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhaseRequest")
            .field("sut", &self.sut.name())
            .field("queries", &self.plan.query_count())
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Why issuing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueStop {
    /// Every generated query was issued (Server, Offline, accuracy mode).
    AllIssued,
    /// SingleStream/MultiStream: minimum query count and duration were met.
    EndedNaturally,
    /// SingleStream/MultiStream: the generated queries ran out first.
    RanOutOfQueries,
    /// `max_query_count` reached.
    MaxQueryCount,
    /// `max_duration` reached.
    MaxDuration,
    /// Server: more than `max_async_queries` outstanding.
    TooManyOutstanding,
    /// The SUT stopped answering while the issuer waited on it.
    SutStalled,
    /// A stop was requested.
    Interrupted,
}

/// What a phase measured.
#[derive(Debug, Clone)]
pub struct PhaseMeasurements {
    /// The phase's clock.
    pub clock: PhaseClock,
    /// Why issuing ended.
    pub stop: IssueStop,
    /// Queries issued.
    pub queries_issued: u64,
    /// Samples issued.
    pub samples_issued: u64,
    /// Samples the run gave up on (never completed, or abandoned on stop).
    pub samples_given_up: u64,
    /// LoadGen's measurements plus failure counts.
    pub result: PerformanceResult,
    /// Issue delay (issued − scheduled) per issued query, ns; Server only.
    pub issue_delay: Option<IssueDelayStats>,
    /// Time of the latest completion, ns.
    pub max_complete_ns: u64,
}

/// Issue-delay percentiles (Server): how late the issuer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueDelayStats {
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
}

/// Runs one phase: issues the plan's queries to the SUT on LoadGen's
/// schedule, waits for the answers and returns what was measured.
///
/// Never hangs on a silent SUT when [`RunOptions::idle_timeout`] is set, and
/// returns promptly after a stop request (within
/// [`RunOptions::stop_grace`]).
pub fn run_phase(request: &PhaseRequest<'_>) -> PhaseMeasurements {
    let settings = request.settings;
    let options = request.options;
    let plan = Arc::clone(&request.plan);
    let scenario = settings.scenario;
    let accuracy_mode = request.phase == Phase::Accuracy;
    let flags = PhaseFlags {
        scenario,
        accuracy_mode,
        use_tokens: settings.use_token_latencies,
    };

    // The buffer of one `issue_query` call, holding the first query's
    // samples before the clock starts, as LoadGen's queries hold theirs
    // from generation on: building it while issuing (Offline: every
    // sample in one call) would put its page faults on the clock, and
    // building it there once more after sizing and touching it here wrote
    // every entry twice. Later queries reuse it.
    let first_batch = || -> Vec<QuerySample> {
        plan.samples_of(0)
            .map(|seq| QuerySample {
                id: ResponseId(seq as u64),
                index: plan.sample_indices[seq] as usize,
            })
            .collect()
    };
    let (batch, prepared) = if scenario == Scenario::Offline {
        prepare_offline(plan.sample_count(), first_batch)
    } else {
        (first_batch(), Prepared::default())
    };

    if let Some(observer) = &options.observer {
        observer.phase_starting(request.phase);
    }
    let _slack = TimerSlackGuard::tighten();
    let state = Arc::new(PhaseState::new(
        Arc::clone(&plan),
        flags,
        options.observer.clone(),
        Arc::clone(&request.log),
        thread::current(),
        prepared.complete_ns,
    ));
    let clock = state.clock;
    if let Some(observer) = &options.observer {
        observer.phase_started(&PhaseStart {
            phase: request.phase,
            scenario,
            mode: settings.mode,
            start_unix_ns: clock.origin_unix_ns(),
            settings: settings.clone(),
            query_count: plan.query_count() as u64,
            sample_count: plan.sample_count() as u64,
        });
    }
    let responder = Responder::new(Arc::clone(&state) as Arc<dyn crate::CompletionSink>);

    let mut issuer = Issuer {
        request,
        state: &state,
        responder: &responder,
        waiter: Waiter {
            spin: options.issue_spin,
        },
        batch,
        queries_issued: 0,
        samples_issued: 0,
        last_query: None,
    };
    let stop = issuer.issue_all();
    request.sut.flush_queries();
    let (queries_issued, samples_issued, last_query) = (
        issuer.queries_issued,
        issuer.samples_issued,
        issuer.last_query,
    );

    if stop == IssueStop::RanOutOfQueries && !accuracy_mode {
        request.log.runtime_error(RuntimeError::RanOutOfQueries);
    }

    let (stop, given_up) = wait_for_tail(request, &state, stop, samples_issued);

    // Issue delays first: their scratch array is freed before the result's
    // latency array is allocated, which keeps the phase's peak memory lower.
    let issue_delay =
        (scenario == Scenario::Server).then(|| issue_delay_stats(&state, queries_issued));
    let (result, max_complete_ns) = collect_result(
        &state,
        settings,
        Counts {
            queries_issued,
            samples_issued,
            last_query,
        },
        stop,
        prepared.latencies,
    );
    PhaseMeasurements {
        clock,
        stop,
        queries_issued,
        samples_issued,
        samples_given_up: given_up,
        result,
        issue_delay,
        max_complete_ns,
    }
}

/// Waits for the phase's tail (a stop request shortens the wait to the grace
/// period), gives up what never completed, and logs the phase's runtime
/// errors. Returns the final stop reason and how many samples were given up.
fn wait_for_tail(
    request: &PhaseRequest<'_>,
    state: &Arc<PhaseState>,
    mut stop: IssueStop,
    samples_issued: u64,
) -> (IssueStop, u64) {
    let options = request.options;
    let mut given_up = 0;
    let tail = if stop == IssueStop::SutStalled {
        // The issuer already waited out the idle timeout on this SUT.
        WaitOutcome::Idle(options.idle_timeout.unwrap_or_default())
    } else {
        wait_for_completions(state, samples_issued, options)
    };
    match tail {
        WaitOutcome::Done => {}
        WaitOutcome::Idle(idle) => {
            given_up = state.give_up(
                samples_issued,
                ErrorKind::NeverCompleted,
                &format!(
                    "no answer: the SUT completed nothing for {:.1} s",
                    idle.as_secs_f64()
                ),
            );
            request.log.runtime_error(RuntimeError::SutStalled {
                samples: given_up,
                idle_s: idle.as_secs_f64(),
            });
            // A stall after an earlier failure (too many outstanding, a stop)
            // keeps that first reason; the stall is logged above as well.
            if !matches!(stop, IssueStop::Interrupted | IssueStop::TooManyOutstanding) {
                stop = IssueStop::SutStalled;
            }
        }
        WaitOutcome::Stopped => {
            given_up = state.give_up(
                samples_issued,
                ErrorKind::Cancelled,
                "abandoned: the test was stopped",
            );
            stop = IssueStop::Interrupted;
        }
    }
    if stop == IssueStop::Interrupted {
        request.log.runtime_error(RuntimeError::Interrupted {
            abandoned: given_up,
        });
    }
    let repeated = state.repeated_completions.load(Ordering::Relaxed);
    if repeated > 0 {
        request
            .log
            .runtime_error(RuntimeError::RepeatedCompletions { count: repeated });
    }
    let unknown = state.unknown_ids.load(Ordering::Relaxed);
    if unknown > 0 {
        request
            .log
            .runtime_error(RuntimeError::UnknownIds { count: unknown });
    }

    (stop, given_up)
}

struct Issuer<'r, 'a> {
    request: &'r PhaseRequest<'a>,
    state: &'r Arc<PhaseState>,
    responder: &'r Responder,
    waiter: Waiter,
    /// Reused buffer for the samples of one `issue_query` call; it holds
    /// query 0's samples when `issue_all` starts (`issue_all` runs once).
    batch: Vec<QuerySample>,
    queries_issued: u64,
    samples_issued: u64,
    last_query: Option<usize>,
}

impl Issuer<'_, '_> {
    fn issue_all(&mut self) -> IssueStop {
        let settings = self.request.settings;
        let options = self.request.options;
        let plan = Arc::clone(&self.request.plan);
        let scenario = settings.scenario;
        let accuracy_mode = self.request.phase == Phase::Accuracy;
        let clock = self.state.clock;
        let coalesce = scenario == Scenario::Server && settings.requested.server_coalesce_queries;
        let query_count = plan.query_count();

        let mut q = 0;
        while q < query_count {
            if options.stop.is_requested() {
                return IssueStop::Interrupted;
            }
            // LoadGen's QueryScheduler::Wait.
            let now_ns = match scenario {
                Scenario::Server => {
                    match self
                        .waiter
                        .wait_until(&clock, plan.scheduled_ns[q], &options.stop)
                    {
                        Some(now) => now,
                        None => return IssueStop::Interrupted,
                    }
                }
                Scenario::SingleStream | Scenario::MultiStream => {
                    if q > 0 {
                        match wait_for_completions(self.state, self.samples_issued, options) {
                            WaitOutcome::Done => {}
                            WaitOutcome::Stopped => return IssueStop::Interrupted,
                            WaitOutcome::Idle(_) => return IssueStop::SutStalled,
                        }
                    }
                    let now = clock.now_ns();
                    self.state.set_scheduled_ns(q, now);
                    now
                }
                Scenario::Offline => clock.now_ns(),
            };

            // Server coalescing: queries already due go out in this call.
            let mut last = q;
            if coalesce {
                while last + 1 < query_count && plan.scheduled_ns[last + 1] <= now_ns {
                    last += 1;
                }
            }
            for query in q..=last {
                self.state.query_issued_ns[query].store(now_ns, Ordering::Release);
            }
            // The first call issues `batch` as built before the clock,
            // unless coalescing adds queries to query 0.
            if !(q == 0 && last == 0) {
                self.batch.clear();
                for query in q..=last {
                    for seq in plan.samples_of(query) {
                        self.batch.push(QuerySample {
                            id: ResponseId(seq as u64),
                            index: plan.sample_indices[seq] as usize,
                        });
                    }
                }
            }
            self.request.sut.issue_query(&self.batch, self.responder);
            let issued_now = (last - q + 1) as u64;
            self.queries_issued += issued_now;
            self.samples_issued += self.batch.len() as u64;
            self.last_query = Some(last);
            if let Some(observer) = &options.observer {
                for query in q..=last {
                    observer.query_issued(query as u64, plan.samples_of(query).len(), now_ns);
                }
            }
            q = last + 1;

            if accuracy_mode {
                continue;
            }
            let duration_ns = now_ns;
            if scenario == Scenario::Server {
                if settings.max_async_queries != 0 {
                    // One sample per Server query, so completed samples are
                    // completed queries.
                    let completed = self.state.completed.load(Ordering::Relaxed);
                    let outstanding = self.queries_issued.saturating_sub(completed);
                    if outstanding > settings.max_async_queries {
                        self.request
                            .log
                            .runtime_error(RuntimeError::TooManyOutstanding {
                                issued: self.queries_issued,
                                outstanding,
                            });
                        return IssueStop::TooManyOutstanding;
                    }
                }
            } else if self.queries_issued >= settings.min_query_count
                && duration_ns >= settings.target_duration_ms.saturating_mul(1_000_000)
            {
                self.request.log.generic_message(
                    "Ending naturally: Minimum query count and test duration met.",
                );
                return IssueStop::EndedNaturally;
            }
            if settings.max_query_count != 0 && self.queries_issued >= settings.max_query_count {
                self.request.log.runtime_error(RuntimeError::MaxQueryCount {
                    issued: self.queries_issued,
                });
                return IssueStop::MaxQueryCount;
            }
            if settings.max_duration_ms != 0
                && duration_ns > settings.max_duration_ms.saturating_mul(1_000_000)
            {
                self.request
                    .log
                    .runtime_error(RuntimeError::MaxDuration { duration_ns });
                return IssueStop::MaxDuration;
            }
        }
        if scenario != Scenario::Server && !accuracy_mode {
            IssueStop::RanOutOfQueries
        } else {
            IssueStop::AllIssued
        }
    }
}

enum WaitOutcome {
    Done,
    Idle(Duration),
    Stopped,
}

/// Blocks until `target` samples have completed, the SUT has been silent for
/// the idle timeout, or a stop request's grace period has passed.
fn wait_for_completions(state: &PhaseState, target: u64, options: &RunOptions) -> WaitOutcome {
    const POLL: Duration = Duration::from_millis(50);
    state.wake_issuer_at(target);
    let mut last_count = state.completed.load(Ordering::Acquire);
    let mut last_progress = Instant::now();
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let done = state.completed.load(Ordering::Acquire);
        if done >= target {
            state.wake_issuer_at(u64::MAX);
            return WaitOutcome::Done;
        }
        let now = Instant::now();
        if done != last_count {
            last_count = done;
            last_progress = now;
        }
        let mut next_check = now + POLL;
        if options.stop.is_requested() {
            let deadline = *stop_deadline.get_or_insert(now + options.stop_grace);
            if now >= deadline {
                state.wake_issuer_at(u64::MAX);
                return WaitOutcome::Stopped;
            }
            next_check = next_check.min(deadline);
        }
        if let Some(idle) = options.idle_timeout {
            let idle_deadline = last_progress + idle;
            if now >= idle_deadline {
                state.wake_issuer_at(u64::MAX);
                return WaitOutcome::Idle(now - last_progress);
            }
            next_check = next_check.min(idle_deadline);
        }
        // Completions unpark us when the target is reached; the timeout
        // covers progress tracking, stop requests and idle detection.
        thread::park_timeout(next_check.saturating_duration_since(now));
    }
}

/// Samples in an Offline phase from which [`prepare_offline`] uses a second
/// core: below this, starting a thread costs more than it saves.
const PREPARE_ON_SECOND_CORE_MIN: usize = 1 << 18;

/// Memory an Offline phase needs later, mapped before the phase starts.
#[derive(Default)]
struct Prepared {
    /// The completion slots, every page mapped.
    complete_ns: Option<TimeSlots>,
    /// Room for every sample's latency, every page mapped (empty).
    latencies: Option<Vec<QuerySampleLatency>>,
}

/// Builds the first (Offline: the only) query's buffer with `first_batch`
/// and, for a large Offline phase on a machine with a second core, maps the
/// phase's completion slots and the result's latency array there
/// meanwhile. Each is a fresh allocation that the kernel maps a page at a
/// time on first write, a few microseconds per 4 KiB page on a VM (7,800
/// pages each at 4M samples): mapped by the completions and at the end of
/// the test, they were on the issuer's thread inside the timed test, and
/// the second core sat idle while the buffer was built.
fn prepare_offline(
    samples: usize,
    first_batch: impl FnOnce() -> Vec<QuerySample>,
) -> (Vec<QuerySample>, Prepared) {
    let cores = thread::available_parallelism().map_or(1, usize::from);
    if samples < PREPARE_ON_SECOND_CORE_MIN || cores < 2 {
        return (first_batch(), Prepared::default());
    }
    let map = move || {
        let complete_ns = TimeSlots::new(samples);
        complete_ns.map_pages();
        let mut latencies: Vec<QuerySampleLatency> = vec![0; samples];
        // An opaque zero: a plain 0 written into memory known to be
        // zeroed may be optimized away, and the page would stay unmapped.
        for value in latencies.iter_mut().step_by(4096 / 8) {
            *value = std::hint::black_box(0);
        }
        latencies.clear();
        Prepared {
            complete_ns: Some(complete_ns),
            latencies: Some(latencies),
        }
    };
    thread::scope(|scope| {
        let helper = thread::Builder::new()
            .name("loadgen-prepare".into())
            .spawn_scoped(scope, map);
        let batch = first_batch();
        // A helper that could not start (or panicked) maps nothing: the
        // pages are then mapped where they are first written, as before.
        let prepared = helper.ok().and_then(|h| h.join().ok()).unwrap_or_default();
        (batch, prepared)
    })
}

/// How far issuing got.
#[derive(Clone, Copy)]
struct Counts {
    queries_issued: u64,
    samples_issued: u64,
    last_query: Option<usize>,
}

fn collect_result(
    state: &PhaseState,
    settings: &EffectiveSettings,
    counts: Counts,
    stop: IssueStop,
    latencies: Option<Vec<QuerySampleLatency>>,
) -> (PerformanceResult, u64) {
    let Counts {
        queries_issued,
        samples_issued,
        last_query,
    } = counts;
    let plan = &state.plan;
    let n = samples_issued as usize;
    let scheduled = |seq: usize| state.scheduled_ns(plan.query_of(seq));
    let complete = |seq: usize| state.complete_ns.load(seq);

    let mut sample_latencies = latencies.unwrap_or_default();
    sample_latencies.clear();
    sample_latencies.reserve(n);
    let mut max_latency: QuerySampleLatency = 0;
    // The latest completion of the phase, any sample (`UNSET` is never a
    // time): read here, in the pass the latencies need anyway, rather than
    // kept up to date by every completion.
    let mut max_complete_ns = 0;
    for seq in 0..n {
        let c = complete(seq);
        // After give_up every issued sample is complete.
        let latency = if c == UNSET {
            0
        } else {
            max_complete_ns = max_complete_ns.max(c);
            c as i64 - scheduled(seq) as i64
        };
        max_latency = max_latency.max(latency);
        sample_latencies.push(latency);
    }
    // Answers for samples never issued (a SUT that made up ids) count too.
    for seq in n.min(state.complete_ns.len())..state.complete_ns.len() {
        let c = complete(seq);
        if c != UNSET {
            max_complete_ns = max_complete_ns.max(c);
        }
    }

    let query_done_ns = |q: usize| plan.samples_of(q).map(complete).max().unwrap_or(0);
    let query_latencies = if settings.scenario == Scenario::MultiStream {
        (0..queries_issued as usize)
            .map(|q| query_done_ns(q) as i64 - state.scheduled_ns(q) as i64)
            .collect()
    } else {
        Vec::new()
    };

    let token_results = if settings.use_token_latencies {
        token_results(state, settings.scenario, &sample_latencies)
    } else {
        TokenPerformanceResults::default()
    };

    let mut failed_samples = BTreeMap::new();
    for kind in ErrorKind::ALL {
        let count = state.errors_by_kind[kind.index()].load(Ordering::Relaxed);
        if count > 0 {
            failed_samples.insert(kind, count);
        }
    }

    let seconds = |ns: u64| ns as f64 / 1e9;
    let (final_scheduled, final_issued, final_done) = match last_query {
        Some(q) => (
            seconds(plan.scheduled_ns[q]),
            seconds(state.query_issued_ns[q].load(Ordering::Acquire)),
            seconds(query_done_ns(q)),
        ),
        None => (0.0, 0.0, 0.0),
    };

    let result = PerformanceResult {
        sample_latencies,
        query_latencies,
        queries_issued,
        max_latency: max_latency as f64 / 1e9,
        final_query_scheduled_time: final_scheduled,
        final_query_issued_time: final_issued,
        final_query_all_samples_done_time: final_done,
        token_results,
        failed_samples,
        interrupted: stop == IssueStop::Interrupted,
    };
    (result, max_complete_ns)
}

/// The token latencies of the samples whose `sample_latencies` these are
/// (sample `seq` at index `seq`): TTFT (not in Offline), TPOT and tokens
/// per sample, as LoadGen's token-latency results hold them.
fn token_results(
    state: &PhaseState,
    scenario: Scenario,
    sample_latencies: &[QuerySampleLatency],
) -> TokenPerformanceResults {
    let n = sample_latencies.len();
    let scheduled = |seq: usize| state.scheduled_ns(state.plan.query_of(seq));
    let complete = |seq: usize| state.complete_ns.load(seq);
    let needs_first_token = scenario != Scenario::Offline;
    let mut first_token_latencies = Vec::with_capacity(if needs_first_token { n } else { 0 });
    let mut time_per_output_token_arr = Vec::with_capacity(n);
    let mut tokens_per_sample = Vec::with_capacity(n);
    for (seq, &latency) in sample_latencies.iter().enumerate() {
        // LoadGen's RecordSampleCompletion: negative or single-token
        // counts are recorded as 0 (after logging an error).
        let mut n_tokens = state.n_tokens[seq].load(Ordering::Relaxed);
        if n_tokens < 0 || n_tokens == 1 {
            n_tokens = 0;
        }
        tokens_per_sample.push(n_tokens);
        // Deviation from LoadGen, on purpose: a failed sample, one that
        // never completed (interrupted) or one without a first token has
        // no TTFT and no TPOT. LoadGen would record kInvalidLatency
        // (i64::MIN) and a TPOT divided by -1, and those sentinels would
        // reach the mean, the minimum and the percentiles.
        let failed = state.error_kind[seq].load(Ordering::Relaxed) != NO_ERROR;
        if failed || complete(seq) == UNSET {
            continue;
        }
        let base = if needs_first_token {
            let first = state.first_token_ns.load(seq);
            if first == UNSET {
                continue;
            }
            let ttft = first as i64 - scheduled(seq) as i64;
            first_token_latencies.push(ttft);
            ttft
        } else {
            // Offline has no first token; TPOT is latency / (n - 1).
            0
        };
        // TPOT needs at least two tokens (0 and 1 are LoadGen errors
        // already logged) and is never negative.
        if n_tokens >= 2 {
            time_per_output_token_arr.push((latency - base).max(0) / (n_tokens - 1));
        }
    }
    TokenPerformanceResults {
        first_token_latencies,
        time_per_output_token_arr,
        tokens_per_sample,
    }
}

fn issue_delay_stats(state: &PhaseState, queries_issued: u64) -> IssueDelayStats {
    let mut delays: Vec<u64> = (0..queries_issued as usize)
        .map(|q| {
            state.query_issued_ns[q]
                .load(Ordering::Relaxed)
                .saturating_sub(state.scheduled_ns(q))
        })
        .collect();
    if delays.is_empty() {
        return IssueDelayStats {
            p50_ns: 0,
            p99_ns: 0,
            max_ns: 0,
        };
    }
    delays.sort_unstable();
    let at = |p: f64| delays[((delays.len() as f64 * p) as usize).min(delays.len() - 1)];
    IssueDelayStats {
        p50_ns: at(0.50),
        p99_ns: at(0.99),
        max_ns: delays[delays.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(n: usize) -> impl FnOnce() -> Vec<QuerySample> {
        move || {
            (0..n)
                .map(|i| QuerySample {
                    id: ResponseId(i as u64),
                    index: n - i,
                })
                .collect()
        }
    }

    #[test]
    fn a_large_offline_phase_gets_its_memory_prepared_beside_its_batch() {
        let n = PREPARE_ON_SECOND_CORE_MIN;
        let (batch, prepared) = prepare_offline(n, batch_of(n));
        assert_eq!(batch.len(), n);
        assert_eq!(batch[n - 1].index, 1);
        if thread::available_parallelism().map_or(1, usize::from) < 2 {
            // One core: nothing is prepared, and nothing is lost.
            assert!(prepared.complete_ns.is_none() && prepared.latencies.is_none());
            return;
        }
        let slots = prepared.complete_ns.expect("completion slots");
        assert_eq!(slots.len(), n);
        // Mapped, and still reading as never written.
        assert_eq!(slots.load(n - 1), UNSET);
        assert_eq!(slots.set_once(n - 1, 5), Some(true));
        assert_eq!(slots.load(n - 1), 5);
        let latencies = prepared.latencies.expect("latency array");
        assert!(latencies.is_empty() && latencies.capacity() >= n);
    }

    #[test]
    fn a_small_offline_phase_prepares_nothing() {
        let n = PREPARE_ON_SECOND_CORE_MIN - 1;
        let (batch, prepared) = prepare_offline(n, batch_of(n));
        assert_eq!(batch.len(), n);
        assert!(prepared.complete_ns.is_none() && prepared.latencies.is_none());
    }
}
