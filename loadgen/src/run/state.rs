//! Per-phase state shared by the issuer and whatever threads complete samples.
//!
//! Completions arrive on the SUT's threads, possibly hundreds of thousands per
//! second, so the hot path is lock-free: one timestamp per call, one
//! compare-and-swap per sample on a pre-allocated slot, counters as atomics.
//! Anything slower (records, accuracy-log entries) is handed to observers that
//! queue it for other threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;

use super::clock::PhaseClock;
use super::plan::IssuePlan;
use super::{PhaseLog, RuntimeError};
use crate::record::{QueryRecord, RecordExtras, RunObserver};
use crate::settings::Scenario;
use crate::sut::{
    CompletionSink, ErrorKind, OutputData, QueryError, QuerySampleResponse, ResponseId,
};

/// Marks a time slot that has not been written.
pub(crate) const UNSET: u64 = u64::MAX;

/// `error_kind` slot value for a sample without error.
pub(crate) const NO_ERROR: u8 = 0;

/// Records handed to the observer in one call at most, when one
/// `query_samples_complete` call completes several samples: one call (and,
/// for the records writer, one lock) per this many samples instead of one
/// per sample, with a bounded buffer.
const OBSERVER_BATCH: usize = 1024;

/// What is known up front about a phase, for the completion path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhaseFlags {
    pub scenario: Scenario,
    /// Every sample's response goes to the accuracy log.
    pub accuracy_mode: bool,
    /// LoadGen's use_tokens: record TTFT/TPOT and check token counts.
    pub use_tokens: bool,
}

pub(crate) struct PhaseState {
    pub clock: PhaseClock,
    pub plan: Arc<IssuePlan>,
    flags: PhaseFlags,
    /// SingleStream and MultiStream, per query: the scheduled instant (ns),
    /// set when the query is issued. Empty otherwise: Server's schedule is
    /// the plan's (no second copy of 8 bytes per query), Offline's is 0.
    /// Read through [`PhaseState::scheduled_ns`].
    issue_scheduled_ns: Box<[AtomicU64]>,
    /// Per query: when `issue_query` was called.
    pub query_issued_ns: Box<[AtomicU64]>,
    /// Per sample: first token arrival.
    pub first_token_ns: TimeSlots,
    /// Per sample: completion.
    pub complete_ns: TimeSlots,
    /// Per sample: `n_tokens` as reported (0 until completed; zeroed by
    /// the allocator, see [`TimeSlots`]).
    pub n_tokens: Box<[AtomicI64]>,
    /// Per sample: 0, or 1 + `ErrorKind::index()` (zeroed by the
    /// allocator: a run without errors never touches its pages).
    pub error_kind: Box<[AtomicU8]>,
    /// Samples completed (or given up on).
    pub completed: AtomicU64,
    /// The issuer is unparked when `completed` reaches this.
    wake_at: AtomicU64,
    issuer: Thread,
    /// Failed samples by `ErrorKind::index()`.
    pub errors_by_kind: [AtomicU64; ErrorKind::ALL.len()],
    /// Completions for ids this phase never issued.
    pub unknown_ids: AtomicU64,
    /// Completions for samples already complete (duplicates, or answers that
    /// came after the run gave up on the sample).
    pub repeated_completions: AtomicU64,
    observer: Option<Arc<dyn RunObserver>>,
    log: Arc<dyn PhaseLog>,
    /// First-token bytes of samples whose response is logged, kept until the
    /// sample completes (LoadGen's token cache).
    token_cache: Mutex<HashMap<u64, Vec<u8>>>,
    /// The records of one multi-sample completion call, reused across
    /// calls (a call that finds it in use builds its own).
    records: Mutex<Vec<QueryRecord>>,
}

/// Calls `touch` on one element of every 4 KiB of `slots`: a write there
/// maps the page (larger pages are touched more often than needed, never
/// less).
fn map_pages<T>(slots: &[T], mut touch: impl FnMut(&T)) {
    let step = (4096 / std::mem::size_of::<T>().max(1)).max(1);
    for slot in slots.iter().step_by(step) {
        touch(slot);
    }
}

fn atomics_u64(n: usize, value: u64) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(value)).collect()
}

/// One time per sample, each written at most once, read as [`UNSET`] until
/// then.
///
/// In memory a slot holds the time plus one, so "not written" is zero and
/// the slots come zeroed from the allocator: an allocation this large is
/// fresh pages, each mapped only when first written. Filling millions of
/// slots with a marker before the phase faulted in and wrote every page
/// (Offline, 4M samples: 64 MB of first-token and completion times) even
/// where nothing is ever written (first tokens in Offline).
///
/// Until a first slot is written, reads do not touch the slots either:
/// every completion reads its sample's first-token time, and reading
/// slots never written mapped the zero page, 4 KiB at a time (Offline,
/// 4M samples: 7,800 page faults for no first token at all).
pub(crate) struct TimeSlots {
    slots: Box<[AtomicU64]>,
    /// Raised before the first slot is written (the write's release
    /// orders it first): a reader that finds it down would have found its
    /// slot unwritten as well.
    any_written: AtomicBool,
}

impl TimeSlots {
    pub(crate) fn new(n: usize) -> TimeSlots {
        TimeSlots {
            slots: bytemuck::zeroed_slice_box(n),
            any_written: AtomicBool::new(false),
        }
    }

    /// Maps every page of the slots (writing the "not written" 0 they
    /// already hold), so writing a slot later never faults.
    pub(crate) fn map_pages(&self) {
        map_pages(&self.slots, |slot| slot.store(0, Ordering::Relaxed));
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slot `i`'s time, or [`UNSET`]. Panics if `i` is out of range (once
    /// any slot was written).
    #[inline]
    pub fn load(&self, i: usize) -> u64 {
        if !self.any_written.load(Ordering::Acquire) {
            return UNSET;
        }
        // 0 (never written) wraps to UNSET.
        self.slots[i].load(Ordering::Acquire).wrapping_sub(1)
    }

    /// Writes `t` into slot `i` if it was not written yet. `None` if `i` is
    /// out of range, else whether this call wrote it.
    #[inline]
    pub fn set_once(&self, i: usize, t: u64) -> Option<bool> {
        let slot = self.slots.get(i)?;
        // Stored once: a store per write would bounce the flag's cache
        // line between completing threads.
        if !self.any_written.load(Ordering::Relaxed) {
            self.any_written.store(true, Ordering::Relaxed);
        }
        Some(
            slot.compare_exchange(0, t.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok(),
        )
    }
}

impl PhaseState {
    /// Allocates the phase's arrays, then starts the phase clock: filling
    /// the arrays takes tens of milliseconds per million queries (page
    /// faults), and a clock started before that would make the first
    /// queries of a Server run late by as much.
    ///
    /// `complete_ns`, when given, is the completion slots (one per sample of
    /// the plan), allocated and perhaps mapped by the caller already.
    pub fn new(
        plan: Arc<IssuePlan>,
        flags: PhaseFlags,
        observer: Option<Arc<dyn RunObserver>>,
        log: Arc<dyn PhaseLog>,
        issuer: Thread,
        complete_ns: Option<TimeSlots>,
    ) -> PhaseState {
        let queries = plan.query_count();
        let samples = plan.sample_count();
        let issue_scheduled_ns = match flags.scenario {
            Scenario::SingleStream | Scenario::MultiStream => atomics_u64(queries, 0),
            Scenario::Server | Scenario::Offline => Box::default(),
        };
        let query_issued_ns = atomics_u64(queries, UNSET);
        let first_token_ns = TimeSlots::new(samples);
        let complete_ns = complete_ns
            .filter(|slots| slots.len() == samples)
            .unwrap_or_else(|| TimeSlots::new(samples));
        // Zero is 0 tokens and NO_ERROR.
        let n_tokens: Box<[AtomicI64]> = bytemuck::zeroed_slice_box(samples);
        let error_kind = bytemuck::zeroed_slice_box(samples);
        // Scheduled scenarios: the pages every completion writes are mapped
        // now, before the clock starts, as LoadGen C++ builds its per-query
        // state before the test. Mapped by the completions instead (a page
        // per 512 samples), a Server run at 4M QPS took 8,000 first-touch
        // faults a second on the issuer's thread, and on a VM some of them
        // stalled it for tens of milliseconds: INVALID in 3 of 4 20 s runs
        // (p99 issue lateness up to 108 ms), against VALID in 4 of 4 (at
        // most 6 ms) with the pages mapped up front. Offline stays lazy
        // here: its whole test is timed, and it issues everything at once
        // anyway (a large one gets its completion slots mapped on another
        // core meanwhile: see `issuer::prepare_offline`).
        if flags.scenario != Scenario::Offline {
            complete_ns.map_pages();
            if flags.use_tokens {
                first_token_ns.map_pages();
                map_pages(&n_tokens, |slot| slot.store(0, Ordering::Relaxed));
            }
        }
        PhaseState {
            clock: PhaseClock::start_now(),
            flags,
            issue_scheduled_ns,
            query_issued_ns,
            first_token_ns,
            complete_ns,
            n_tokens,
            error_kind,
            completed: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            issuer,
            errors_by_kind: std::array::from_fn(|_| AtomicU64::new(0)),
            unknown_ids: AtomicU64::new(0),
            repeated_completions: AtomicU64::new(0),
            observer,
            log,
            token_cache: Mutex::new(HashMap::new()),
            records: Mutex::new(Vec::new()),
            plan,
        }
    }

    /// When query `q` was scheduled (ns): latencies are measured from here.
    #[inline]
    pub fn scheduled_ns(&self, q: usize) -> u64 {
        match self.flags.scenario {
            Scenario::Server => self.plan.scheduled_ns[q],
            Scenario::Offline => 0,
            Scenario::SingleStream | Scenario::MultiStream => {
                self.issue_scheduled_ns[q].load(Ordering::Acquire)
            }
        }
    }

    /// SingleStream and MultiStream: query `q` is scheduled at `ns` (the
    /// instant it is issued).
    pub fn set_scheduled_ns(&self, q: usize, ns: u64) {
        if let Some(slot) = self.issue_scheduled_ns.get(q) {
            slot.store(ns, Ordering::Release);
        }
    }

    /// Asks to be unparked once `count` samples have completed. The caller
    /// must re-check `completed` after setting this (a completion may have
    /// raced ahead of it).
    pub fn wake_issuer_at(&self, count: u64) {
        self.wake_at.store(count, Ordering::SeqCst);
    }

    fn logs_response(&self, seq: u64) -> bool {
        self.flags.accuracy_mode || self.plan.logs_accuracy(seq as usize)
    }

    /// Ends samples that never completed: each gets `kind` at `now_ns`.
    /// Returns how many were ended. Only samples of issued queries are touched.
    pub fn give_up(&self, issued_samples: u64, kind: ErrorKind, message: &str) -> u64 {
        let now = self.clock.now_ns();
        let mut ended = 0;
        for seq in 0..issued_samples {
            if self.complete_ns.load(seq as usize) != UNSET {
                continue;
            }
            let mut response = QuerySampleResponse::failed(
                ResponseId(seq),
                QueryError {
                    kind,
                    http_status: None,
                    message: message.to_owned(),
                },
            );
            if self.complete_one(&mut response, now, None) {
                ended += 1;
            }
        }
        self.completed.fetch_add(ended, Ordering::AcqRel);
        ended
    }

    /// Records one completion at `now`; false if it was not the first for its
    /// sample (or the id is unknown). Its record goes to `records` when
    /// given (the caller hands them to the observer together), else
    /// straight to the observer.
    fn complete_one(
        &self,
        response: &mut QuerySampleResponse,
        now: u64,
        records: Option<&mut Vec<QueryRecord>>,
    ) -> bool {
        let seq = response.id.0;
        let i = seq as usize;
        match self.complete_ns.set_once(i, now) {
            None => {
                self.unknown_ids.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Some(false) => {
                self.repeated_completions.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Some(true) => {}
        }
        // The slot is 0 until this, the sample's one completion: storing a
        // 0 would only fault its page in (an Offline SUT without token
        // counts writes none).
        if response.n_tokens != 0 {
            self.n_tokens[i].store(response.n_tokens, Ordering::Relaxed);
        }
        if let Some(error) = &response.detail.error {
            self.error_kind[i].store(error.kind.index() as u8 + 1, Ordering::Relaxed);
            self.errors_by_kind[error.kind.index()].fetch_add(1, Ordering::Relaxed);
        }

        let query = self.plan.query_of(i);
        // LoadGen's token checks; a failed sample already carries its own error.
        if self.flags.use_tokens && response.detail.error.is_none() {
            if self.flags.scenario != Scenario::Offline && self.first_token_ns.load(i) == UNSET {
                self.log.runtime_error(RuntimeError::MissingFirstToken);
            }
            match response.n_tokens {
                0 => self.log.runtime_error(RuntimeError::ZeroTokens),
                n if n < 0 => self.log.runtime_error(RuntimeError::NegativeTokens),
                1 => self.log.runtime_error(RuntimeError::OneToken),
                _ => {}
            }
        }

        if self.logs_response(seq) {
            let token_data = if self.flags.use_tokens && self.flags.scenario != Scenario::Offline {
                self.token_cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&seq)
            } else {
                None
            };
            self.log.accuracy_entry(
                seq,
                u64::from(self.plan.sample_indices[i]),
                std::mem::take(&mut response.data),
                token_data,
                self.flags.use_tokens.then_some(response.n_tokens),
            );
        }

        if let Some(observer) = &self.observer {
            // Field by field (the detail is left as a default one, as a
            // whole `mem::take` would leave it, without its copy).
            let detail = &mut response.detail;
            detail.output_data = OutputData::default();
            let first = self.first_token_ns.load(i);
            let record = QueryRecord {
                seq,
                query: query as u64,
                sample_index: u64::from(self.plan.sample_indices[i]),
                scheduled_ns: self.scheduled_ns(query),
                issued_ns: self.query_issued_ns[query].load(Ordering::Acquire),
                first_token_ns: (first != UNSET).then_some(first),
                end_ns: now,
                n_tokens: response.n_tokens,
                extras: RecordExtras::take_from(detail),
            };
            match records {
                Some(records) => records.push(record),
                None => observer.sample_completed(record),
            }
        }
        true
    }

    /// Records several completions at `now`, their records handed to the
    /// observer in batches; returns how many were first completions.
    fn complete_batch(
        &self,
        observer: &dyn RunObserver,
        responses: &mut [QuerySampleResponse],
        now: u64,
    ) -> u64 {
        let mut shared = self.records.try_lock().ok();
        let mut own = Vec::new();
        let records = match shared.as_deref_mut() {
            Some(records) => records,
            None => &mut own,
        };
        records.clear();
        records.reserve(responses.len().min(OBSERVER_BATCH));
        let mut newly = 0;
        for chunk in responses.chunks_mut(OBSERVER_BATCH) {
            for response in chunk {
                if self.complete_one(response, now, Some(records)) {
                    newly += 1;
                }
            }
            if !records.is_empty() {
                observer.samples_completed(records);
                records.clear();
            }
        }
        newly
    }
}

impl CompletionSink for PhaseState {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    fn first_token_complete(&self, id: ResponseId, data: &[u8]) {
        let now = self.clock.now_ns();
        let seq = id.0;
        let i = seq as usize;
        if i >= self.first_token_ns.len() {
            self.unknown_ids.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.complete_ns.load(i) != UNSET {
            self.log
                .runtime_error(RuntimeError::FirstTokenAfterCompletion);
            return;
        }
        if self.first_token_ns.set_once(i, now) != Some(true) {
            self.log.runtime_error(RuntimeError::FirstTokenTwice);
            return;
        }
        if self.flags.use_tokens && self.logs_response(seq) {
            self.token_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(seq, data.to_vec());
        }
        if let Some(observer) = &self.observer {
            observer.first_token(seq, now);
        }
    }

    fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]) {
        // LoadGen takes one timestamp on entry for the whole call.
        let now = self.clock.now_ns();
        let mut newly = 0u64;
        match &self.observer {
            Some(observer) if responses.len() > 1 => {
                newly = self.complete_batch(observer.as_ref(), responses, now);
            }
            _ => {
                for response in responses.iter_mut() {
                    if self.complete_one(response, now, None) {
                        newly += 1;
                    }
                }
            }
        }
        if newly == 0 {
            return;
        }
        // The latest completion time is not tracked here (a compare-and-swap
        // loop per call): the result's pass over the completion times
        // finds it after the phase.
        let done = self.completed.fetch_add(newly, Ordering::AcqRel) + newly;
        if done >= self.wake_at.load(Ordering::SeqCst) {
            self.issuer.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_slots_still_read_unwritten_and_are_written_once() {
        // More than one page of slots, and a length that is not a multiple
        // of a page's worth.
        let slots = TimeSlots::new(3 * 512 + 7);
        slots.map_pages();
        assert!(!slots.any_written.load(Ordering::Relaxed));
        assert_eq!(slots.set_once(512, 5), Some(true));
        for i in [0, 1, 511, 513, 1024, 3 * 512 + 6] {
            assert_eq!(slots.load(i), UNSET, "slot {i}");
            assert_eq!(slots.set_once(i, 7), Some(true), "slot {i}");
            assert_eq!(slots.set_once(i, 8), Some(false), "slot {i}");
            assert_eq!(slots.load(i), 7, "slot {i}");
        }
        assert_eq!(slots.load(512), 5);
        assert_eq!(slots.set_once(3 * 512 + 7, 1), None);

        let mut touched = Vec::new();
        let values: Vec<u64> = (0..1500).collect();
        map_pages(&values, |v| touched.push(*v));
        assert_eq!(touched, vec![0, 512, 1024]);
    }
}
