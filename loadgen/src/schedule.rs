//! LoadGen's query generation as pure functions: which samples are loaded,
//! which samples each query carries, when each query is scheduled, and which
//! responses go to the accuracy log, bit-identical to LoadGen 6.0.17 for the
//! same settings and seeds.
//!
//! LoadGen pre-generates every query of a run before issuing the first one
//! (`GenerateLoadableSets`, then `GenerateQueries` in `loadgen.cc`). This
//! module does the same and returns a compact [`Schedule`]:
//!
//! * sample indices as `u32` in one flat vector (MultiStream queries, which
//!   are contiguous windows of the loaded set, as one `u32` start each);
//! * scheduled times as `u64` nanoseconds (Server) or as a constant period
//!   (the other scenarios, whose timestamps are `i * period`);
//! * the accuracy-log decision as one bit per sample.
//!
//! A pre-generated Server query costs 12.1 bytes; the LoadGen 6.0.17 wheel
//! holds about 470 bytes of RSS per query (`scripts/bench/loadgen_schedule.sh`).
//!
//! Reproducing LoadGen exactly needs its hidden RNG consumption too: before
//! choosing any sample, `GenerateQueries` always builds an accuracy-mode
//! distribution (one `std::shuffle`) and an equal-issue distribution
//! (`ceil(min_queries / set_size)` shuffles) from the sample RNG, whether or
//! not they are used. Those draws are made here in the same order.

use crate::record::Phase;
use crate::rng::{self, Mt19937};
use crate::settings::{EffectiveSettings, Scenario};
use crate::sut::QuerySampleIndex;

/// The most queries, or samples in one schedule, this module will generate.
/// Sample indices are stored as `u32`; more than this would not fit and
/// would need tens of gigabytes anyway.
pub const MAX_GENERATED: usize = u32::MAX as usize;

/// Why queries could not be generated. Each of these is a setting for which
/// LoadGen itself crashes, loops forever or reads out of bounds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The sample set to issue from is empty (a QSL with no samples, or a
    /// performance sample count of 0).
    #[error("the loaded sample set is empty: the QSL reports no samples to issue")]
    EmptySampleSet,
    /// MultiStream with `samples_per_query = 0`.
    #[error("multi_stream_samples_per_query must be at least 1")]
    ZeroSamplesPerQuery,
    /// The query interval is zero or not a number, so the generation window
    /// would never be filled.
    #[error(
        "target_qps {target_qps} gives no usable query interval for {scenario} \
         (needs a finite rate above 0)"
    )]
    InvalidTargetQps {
        /// The scenario.
        scenario: Scenario,
        /// The effective target QPS.
        target_qps: f64,
    },
    /// `performance_issue_same_index` points past the loaded set.
    #[error(
        "performance_issue_same_index {index} is outside the loaded sample set \
         ({set_size} samples, {samples_per_query} per query)"
    )]
    SameIndexOutOfRange {
        /// The requested index.
        index: u64,
        /// Samples in the loaded set (padding included).
        set_size: usize,
        /// Samples per query.
        samples_per_query: u64,
    },
    /// Equal issue with `min_query_count = 0`: LoadGen draws from an empty
    /// permutation (a division by zero).
    #[error(
        "sample_concatenate_permutation needs min_query_count above 0 \
         outside Offline (LoadGen divides by zero here)"
    )]
    EqualIssueWithoutQueries,
    /// A pre-shuffled distribution ran out of entries.
    #[error("sample distribution exhausted after {0} draws")]
    DistributionExhausted(usize),
    /// The settings produce no query at all.
    #[error(
        "the settings generate no query (loaded set of {set_size}, {samples_per_query} samples per query)"
    )]
    NoQueries {
        /// Samples in the loaded set.
        set_size: usize,
        /// Samples per query.
        samples_per_query: u64,
    },
    /// More queries or samples than [`MAX_GENERATED`], or timestamps past
    /// `i64::MAX` nanoseconds.
    #[error("the schedule is too large: {0}")]
    TooLarge(&'static str),
}

/// A set of samples loaded together (LoadGen's `LoadableSampleSet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadableSet {
    /// Indices to load, in LoadGen's order (MultiStream padding included):
    /// what `load_samples_to_ram` receives and `loaded_qsl_set` logs.
    pub samples: Vec<QuerySampleIndex>,
    /// Samples before the MultiStream padding (`sample_distribution_end`).
    pub distribution_end: usize,
}

/// `GenerateLoadableSets(qsl, settings, sample_count)`.
///
/// Shuffles `[0, min(sample_count, qsl_total_sample_count))` with
/// `mt19937(qsl_rng_seed)`, cuts it into sets of `performance_sample_count`
/// samples (a count of 0 means one set) and, in MultiStream, pads each set
/// with its own first `samples_per_query - 1` samples so a query can start
/// anywhere.
///
/// Performance runs load the first set of
/// `generate_loadable_sets(s, s.performance_sample_count, total)`; accuracy
/// runs load every set of `generate_loadable_sets(s, s.accuracy_sample_count,
/// total)` in turn.
pub fn generate_loadable_sets(
    settings: &EffectiveSettings,
    sample_count: u64,
    qsl_total_sample_count: u64,
) -> Vec<LoadableSet> {
    let count = sample_count.min(qsl_total_sample_count) as usize;
    let mut samples: Vec<QuerySampleIndex> = (0..count).collect();
    let mut qsl_rng = Mt19937::new(settings.qsl_rng_seed);
    rng::shuffle(&mut samples, &mut qsl_rng);

    let set_size = settings.performance_sample_count as usize;
    let padding = if settings.scenario == Scenario::MultiStream {
        settings.samples_per_query.saturating_sub(1) as usize
    } else {
        0
    };
    let chunk = if set_size == 0 {
        count.max(1)
    } else {
        set_size
    };
    samples
        .chunks(chunk)
        .map(|part| {
            let mut set = Vec::with_capacity(part.len() + padding);
            set.extend_from_slice(part);
            // The source grows as we push, so a set shorter than the padding
            // wraps around itself, as LoadGen's `set.push_back(set[i])` does.
            for i in 0..padding {
                set.push(set[i]);
            }
            LoadableSet {
                samples: set,
                distribution_end: part.len(),
            }
        })
        .collect()
}

/// The set a performance run loads: the first of [`generate_loadable_sets`]
/// for the performance sample count.
pub fn performance_set(
    settings: &EffectiveSettings,
    qsl_total_sample_count: u64,
) -> Result<LoadableSet, ScheduleError> {
    generate_loadable_sets(
        settings,
        settings.performance_sample_count,
        qsl_total_sample_count,
    )
    .into_iter()
    .next()
    .ok_or(ScheduleError::EmptySampleSet)
}

/// The sets an accuracy run loads, one after the other.
pub fn accuracy_sets(
    settings: &EffectiveSettings,
    qsl_total_sample_count: u64,
) -> Vec<LoadableSet> {
    generate_loadable_sets(
        settings,
        settings.accuracy_sample_count,
        qsl_total_sample_count,
    )
}

/// LoadGen's `SequenceGen`: query and sample sequence numbers, and the
/// per-sample random value that decides accuracy logging.
///
/// One lives for a whole test: a SubmissionRun's performance phase continues
/// the numbering (and the random stream) where its accuracy phase stopped,
/// and FindPeakPerformance continues it across its runs. The random stream is
/// a `std::mt19937` that LoadGen never seeds (seed 5489).
#[derive(Debug, Clone, Default)]
pub struct SequenceGen {
    next_query_id: u64,
    next_sample_id: u64,
    accuracy_log_rng: Mt19937,
}

impl SequenceGen {
    /// A fresh generator, as at the start of `StartTest`.
    pub fn new() -> Self {
        SequenceGen::default()
    }

    /// The next query's sequence id.
    pub fn current_query_id(&self) -> u64 {
        self.next_query_id
    }

    /// The next sample's sequence id (`CurrentSampleId`).
    pub fn current_sample_id(&self) -> u64 {
        self.next_sample_id
    }

    /// One sample's accuracy-log value (`QueryMetadata`'s constructor draws
    /// it per sample). [`SequenceGen::accuracy_log_bits`] draws the same
    /// values in bulk; tests hold the two equal.
    #[cfg(test)]
    fn next_accuracy_log_val(&mut self) -> f64 {
        rng::uniform_real(&mut self.accuracy_log_rng, 0.0, 1.0)
    }

    /// Draws the accuracy-log values of the next `total` samples, in order,
    /// and returns which are logged, as bits (sample `64 * w + b` is bit `b`
    /// of word `w`): every one without `sampling` (accuracy phases), else
    /// those [`AccuracyLogSampling::is_logged`] picks. The engine ends where
    /// `total` draws of `uniform_real(0, 1)` leave it. Its outputs come a
    /// block at a time ([`Mt19937::fill_u32`]): drawn one by one, they were
    /// most of the serial start of a large Offline test (perf).
    fn accuracy_log_bits(
        &mut self,
        total: usize,
        sampling: Option<&AccuracyLogSampling>,
    ) -> Vec<u64> {
        draw_accuracy_log_bits(&mut self.accuracy_log_rng, total, sampling)
    }

    /// Starts drawing the next `samples` samples' accuracy-log values on
    /// another thread, from a copy of the engine, while the caller
    /// generates the queries: at 4M Offline samples the draws are about
    /// 30 ms, a tenth of the whole test, and the second core is idle then.
    /// `None` (draw them later, in line) when too few to be worth a thread
    /// or when no thread can start.
    fn start_accuracy_log_bits(
        &self,
        samples: usize,
        sampling: Option<AccuracyLogSampling>,
    ) -> Option<DrawsAhead> {
        // Whole words only, so what is drawn later continues them exactly.
        let samples = samples - samples % 64;
        if samples < AHEAD_MIN_SAMPLES {
            return None;
        }
        let mut rng = self.accuracy_log_rng.clone();
        let handle = std::thread::Builder::new()
            .name("loadgen-accuracy-log".into())
            .spawn(move || {
                let bits = draw_accuracy_log_bits(&mut rng, samples, sampling.as_ref());
                (bits, rng)
            })
            .ok()?;
        Some(DrawsAhead { samples, handle })
    }

    /// [`SequenceGen::accuracy_log_bits`] for `total` samples, taking what
    /// `ahead` drew when it covers their start (the engine then continues
    /// from the copy's state); else drawn here, from the engine as it was
    /// (the copy's draws, for more samples than there are, are dropped).
    fn finish_accuracy_log_bits(
        &mut self,
        ahead: Option<DrawsAhead>,
        total: usize,
        sampling: Option<&AccuracyLogSampling>,
    ) -> Vec<u64> {
        if let Some(ahead) = ahead.filter(|a| a.samples <= total)
            && let Ok((mut bits, rng)) = ahead.handle.join()
        {
            self.accuracy_log_rng = rng;
            bits.extend(self.accuracy_log_bits(total - ahead.samples, sampling));
            return bits;
        }
        self.accuracy_log_bits(total, sampling)
    }
}

/// Fewer samples than this are drawn in line: a thread's start costs more.
const AHEAD_MIN_SAMPLES: usize = 1 << 16;

/// Accuracy-log draws running on another thread
/// ([`SequenceGen::start_accuracy_log_bits`]).
struct DrawsAhead {
    samples: usize,
    handle: std::thread::JoinHandle<(Vec<u64>, Mt19937)>,
}

/// [`SequenceGen::accuracy_log_bits`] on a given engine.
fn draw_accuracy_log_bits(
    rng: &mut Mt19937,
    total: usize,
    sampling: Option<&AccuracyLogSampling>,
) -> Vec<u64> {
    let mut bits = vec![0u64; total.div_ceil(64)];
    // Two engine outputs per value (generate_canonical).
    let mut draws = [0u32; 128];
    for (w, word) in bits.iter_mut().enumerate() {
        let n = (total - 64 * w).min(64);
        let draws = &mut draws[..2 * n];
        rng.fill_u32(draws);
        let Some(sampling) = sampling else {
            *word = u64::MAX >> (64 - n);
            continue;
        };
        for (b, pair) in draws.chunks_exact(2).enumerate() {
            // uniform_real(0, 1): canonical * (1 - 0) + 0, the same value.
            let val = rng::canonical_of(pair[0], pair[1]);
            *word |= u64::from(sampling.is_logged(val)) << b;
        }
    }
    bits
}

/// The accuracy-log sampling parameters of a performance phase, computed as
/// `IssueQueries` does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyLogSampling {
    /// The first `uniform_real(0, 1)` of `mt19937(accuracy_log_rng_seed)`,
    /// added to every sample's random value (mod 1).
    pub offset: f64,
    /// A sample is logged when its shifted value is at most this.
    /// `accuracy_log_probability`, or `accuracy_log_sampling_target` divided
    /// by the expected sample count when a target is set.
    pub probability: f64,
}

impl AccuracyLogSampling {
    /// The sampling parameters for these settings.
    pub fn new(settings: &EffectiveSettings) -> Self {
        let mut offset_rng = Mt19937::new(settings.accuracy_log_rng_seed);
        let offset = rng::uniform_real(&mut offset_rng, 0.0, 1.0);
        let mut probability = settings.accuracy_log_probability;
        if settings.accuracy_log_sampling_target > 0 {
            // `uint64_t expected = target_qps * min_duration_ms / 1000;`: a
            // double truncated on assignment.
            let mut expected =
                (settings.target_qps * settings.min_duration_ms as f64 / 1000.0) as u64;
            let mut minimum = settings
                .min_query_count
                .wrapping_mul(settings.samples_per_query);
            if settings.scenario == Scenario::Offline {
                minimum = settings.min_sample_count;
            } else {
                expected = expected.wrapping_mul(settings.samples_per_query);
            }
            let expected = expected.max(minimum);
            probability = settings.accuracy_log_sampling_target as f64 / expected as f64;
        }
        AccuracyLogSampling {
            offset,
            probability,
        }
    }

    /// Whether a sample with random value `val` is logged.
    #[inline]
    pub fn is_logged(&self, val: f64) -> bool {
        let shifted = if val + self.offset < 1.0 {
            val + self.offset
        } else {
            val + self.offset - 1.0
        };
        shifted <= self.probability
    }
}

/// How a schedule stores each query's samples.
#[derive(Debug, Clone)]
enum QuerySamples {
    /// Query `q` holds `indices[q * per_query ..]`, `per_query` of them (the
    /// last query may hold fewer).
    Flat { per_query: usize, indices: Vec<u32> },
    /// MultiStream: query `q` holds `loaded[starts[q] .. starts[q] + per_query]`.
    Window {
        per_query: usize,
        loaded: Vec<u32>,
        starts: Vec<u32>,
    },
}

/// When each query is scheduled, relative to the start of issuing.
#[derive(Debug, Clone)]
enum ScheduledTimes {
    /// Query `q` at `q * period_ns` (every scenario but Server).
    Periodic { period_ns: u64 },
    /// Server: Poisson arrivals, one time per query.
    Explicit(Vec<u64>),
}

/// Every query of one `IssueQueries` call, pre-generated.
#[derive(Debug, Clone)]
pub struct Schedule {
    scenario: Scenario,
    phase: Phase,
    query_count: usize,
    samples: QuerySamples,
    times: ScheduledTimes,
    first_query_id: u64,
    first_sample_id: u64,
    /// One bit per sample, in sequence order: the response goes to the
    /// accuracy log.
    accuracy_logged: Vec<u64>,
    accuracy_log: Option<AccuracyLogSampling>,
    generated_samples_per_query: u64,
    generated_query_duration_ns: i64,
}

/// One query of a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledQuery<'a> {
    /// Position in the schedule (0-based).
    pub index: usize,
    /// LoadGen's query sequence id (continues across phases).
    pub sequence_id: u64,
    /// Sequence id of the query's first sample (the accuracy log's `seq_id`);
    /// the others follow consecutively.
    pub first_sample_sequence_id: u64,
    /// Scheduled time, nanoseconds after the start of issuing.
    pub scheduled_ns: u64,
    /// The QSL sample indices, in order.
    pub samples: &'a [u32],
}

impl Schedule {
    /// Scenario the schedule was generated for.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// Accuracy or performance.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Number of queries (`generated_query_count`).
    pub fn len(&self) -> usize {
        self.query_count
    }

    /// True when there is no query (never, for a generated schedule).
    pub fn is_empty(&self) -> bool {
        self.query_count == 0
    }

    /// `generated_query_count` as LoadGen logs it.
    pub fn generated_query_count(&self) -> u64 {
        self.query_count as u64
    }

    /// `generated_samples_per_query` as LoadGen logs it: the Offline query
    /// size after equal-issue padding, the loaded set size for Offline
    /// accuracy, 1 for SingleStream and Server.
    pub fn generated_samples_per_query(&self) -> u64 {
        self.generated_samples_per_query
    }

    /// `generated_query_duration` as LoadGen logs it: the timestamp after the
    /// last generated query, in nanoseconds (it includes one more interval).
    pub fn generated_query_duration(&self) -> i64 {
        self.generated_query_duration_ns
    }

    /// Samples across all queries (LoadGen's `max_latencies_to_record`).
    pub fn sample_count(&self) -> usize {
        match &self.samples {
            QuerySamples::Flat { indices, .. } => indices.len(),
            QuerySamples::Window {
                per_query, starts, ..
            } => per_query * starts.len(),
        }
    }

    /// Sequence id of the first query.
    pub fn first_query_id(&self) -> u64 {
        self.first_query_id
    }

    /// Sequence id of the first sample.
    pub fn first_sample_id(&self) -> u64 {
        self.first_sample_id
    }

    /// The accuracy-log sampling in force (None in an accuracy phase, where
    /// every response is logged).
    pub fn accuracy_log_sampling(&self) -> Option<AccuracyLogSampling> {
        self.accuracy_log
    }

    /// Scheduled time of query `q`, in nanoseconds after the start of issuing.
    ///
    /// In Server this is the Poisson arrival time the issuer must wait for.
    /// Elsewhere it is LoadGen's nominal `q * period`: SingleStream and
    /// MultiStream issue a query when the previous one completes (and
    /// schedule it then), Offline issues its query at the start.
    ///
    /// # Panics
    /// If `q >= self.len()` for a Server schedule.
    #[inline]
    pub fn scheduled_ns(&self, q: usize) -> u64 {
        match &self.times {
            ScheduledTimes::Periodic { period_ns } => q as u64 * period_ns,
            ScheduledTimes::Explicit(times) => times[q],
        }
    }

    fn per_query(&self) -> usize {
        match &self.samples {
            QuerySamples::Flat { per_query, .. } | QuerySamples::Window { per_query, .. } => {
                *per_query
            }
        }
    }

    /// The QSL indices of query `q`.
    ///
    /// # Panics
    /// If `q >= self.len()`.
    #[inline]
    pub fn samples(&self, q: usize) -> &[u32] {
        match &self.samples {
            QuerySamples::Flat { per_query, indices } => {
                let start = q * per_query;
                let end = (start + per_query).min(indices.len());
                &indices[start..end]
            }
            QuerySamples::Window {
                per_query,
                loaded,
                starts,
            } => {
                let start = starts[q] as usize;
                &loaded[start..start + per_query]
            }
        }
    }

    /// Query `q` with its ids, time and samples.
    ///
    /// # Panics
    /// If `q >= self.len()`.
    pub fn query(&self, q: usize) -> ScheduledQuery<'_> {
        ScheduledQuery {
            index: q,
            sequence_id: self.first_query_id + q as u64,
            first_sample_sequence_id: self.first_sample_id + (q * self.per_query()) as u64,
            scheduled_ns: self.scheduled_ns(q),
            samples: self.samples(q),
        }
    }

    /// Every query, in issue order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ScheduledQuery<'_>> + '_ {
        (0..self.query_count).map(|q| self.query(q))
    }

    /// Whether the response of the sample with this sequence id goes to the
    /// accuracy log. Ids outside the schedule are not logged.
    #[inline]
    pub fn is_accuracy_logged(&self, sample_sequence_id: u64) -> bool {
        let Some(i) = sample_sequence_id.checked_sub(self.first_sample_id) else {
            return false;
        };
        let i = i as usize;
        self.accuracy_logged
            .get(i / 64)
            .is_some_and(|word| word >> (i % 64) & 1 == 1)
    }

    /// Takes the schedule apart for the issuer's plan: per query, the
    /// scheduled time; every sample's QSL index in issue order; and the
    /// accuracy-log bit of each sample (the bits are empty in an accuracy
    /// phase, which logs every response). The flat sample list and the
    /// bits are moved, not copied: Offline's are millions of entries.
    pub(crate) fn into_issue_parts(mut self) -> (Vec<u64>, Vec<u32>, Vec<u64>) {
        let times = match &mut self.times {
            ScheduledTimes::Explicit(times) => std::mem::take(times),
            ScheduledTimes::Periodic { .. } => (0..self.query_count)
                .map(|q| self.scheduled_ns(q))
                .collect(),
        };
        let indices = match self.samples {
            QuerySamples::Flat { indices, .. } => indices,
            QuerySamples::Window {
                per_query,
                loaded,
                starts,
            } => {
                let mut indices = Vec::with_capacity(per_query * starts.len());
                for start in starts {
                    let start = start as usize;
                    indices.extend_from_slice(&loaded[start..start + per_query]);
                }
                indices
            }
        };
        let accuracy_logged = if self.accuracy_log.is_some() {
            self.accuracy_logged
        } else {
            Vec::new()
        };
        (times, indices, accuracy_logged)
    }

    /// Heap bytes held by the schedule (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        let samples = match &self.samples {
            QuerySamples::Flat { indices, .. } => indices.capacity() * 4,
            QuerySamples::Window { loaded, starts, .. } => {
                (loaded.capacity() + starts.capacity()) * 4
            }
        };
        let times = match &self.times {
            ScheduledTimes::Periodic { .. } => 0,
            ScheduledTimes::Explicit(t) => t.capacity() * 8,
        };
        samples + times + self.accuracy_logged.capacity() * 8
    }
}

/// A distribution over positions in the loaded set that was shuffled up
/// front (`SampleDistribution<AccuracyOnly>` and the equal-issue one).
struct Shuffled {
    indices: Vec<u32>,
    next: usize,
}

impl Shuffled {
    /// `SampleDistribution<AccuracyOnly>(count, stride)`: `0, stride, 2*stride
    /// ... < count`, shuffled once.
    fn strided(count: usize, stride: usize, g: &mut Mt19937) -> Result<Self, ScheduleError> {
        let mut indices = Vec::with_capacity(count.div_ceil(stride));
        let mut i = 0;
        while i < count {
            indices.push(to_u32(i)?);
            i += stride;
        }
        rng::shuffle(&mut indices, g);
        Ok(Shuffled { indices, next: 0 })
    }

    /// `SampleDistributionEqualIssue(count, set_size)`: one permutation of
    /// `[0, set_size)` per `set_size` queries, each shuffle continuing from
    /// the previous permutation.
    ///
    /// LoadGen builds it even when equal issue is off; then only its RNG
    /// draws matter, and `keep = false` makes them without storing the
    /// permutations (which would cost 4 bytes per query).
    fn equal_issue(
        count: usize,
        set_size: usize,
        g: &mut Mt19937,
        keep: bool,
    ) -> Result<Self, ScheduleError> {
        let rounds = if set_size == 0 {
            0
        } else {
            count.div_ceil(set_size)
        };
        let total = rounds
            .checked_mul(set_size)
            .filter(|&t| t <= MAX_GENERATED)
            .ok_or(ScheduleError::TooLarge("equal-issue permutations"))?;
        let mut indices = Vec::with_capacity(if keep { total } else { 0 });
        let mut perm: Vec<u32> = (0..to_u32(set_size)?).collect();
        for _ in 0..rounds {
            rng::shuffle(&mut perm, g);
            if keep {
                indices.extend_from_slice(&perm);
            }
        }
        Ok(Shuffled { indices, next: 0 })
    }

    /// `indices.at(i++)`.
    fn next_once(&mut self) -> Result<usize, ScheduleError> {
        let v = self
            .indices
            .get(self.next)
            .ok_or(ScheduleError::DistributionExhausted(self.next))?;
        self.next += 1;
        Ok(*v as usize)
    }

    /// `indices.at(i++ % indices.size())`: the permutation repeats.
    fn next_cyclic(&mut self) -> Result<usize, ScheduleError> {
        if self.indices.is_empty() {
            return Err(ScheduleError::EqualIssueWithoutQueries);
        }
        let v = self.indices[self.next % self.indices.len()];
        self.next += 1;
        Ok(v as usize)
    }
}

/// `duration_cast<nanoseconds>(duration<double>(seconds))`: `seconds * 1e9`
/// converted to int64 the way x86-64's `cvttsd2si` does (truncation; NaN and
/// out-of-range values become `i64::MIN`), which is what LoadGen's builds do.
fn duration_cast_ns(seconds: f64) -> i64 {
    let ns = seconds * 1e9;
    // 2^63 as a double: the first value past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if ns.is_nan() || !(-LIMIT..LIMIT).contains(&ns) {
        i64::MIN
    } else {
        ns as i64
    }
}

fn to_u32(v: usize) -> Result<u32, ScheduleError> {
    u32::try_from(v).map_err(|_| ScheduleError::TooLarge("a sample index past u32::MAX"))
}

/// Where a query's sample positions come from (the `?:` chain of
/// `GenerateQueries`).
#[derive(Clone, Copy)]
enum Chooser {
    Unique,
    Same(usize),
    EqualIssue,
    Distribution,
}

/// `GenerateQueries<scenario, mode>` for `phase`, issuing from `set`.
///
/// `seq` must be the test's one [`SequenceGen`]: it numbers the queries and
/// samples and draws each sample's accuracy-log value, in LoadGen's order.
/// In a performance phase the accuracy-log decision uses
/// [`AccuracyLogSampling::new`]; in an accuracy phase every response is
/// logged.
///
/// Mirrors LoadGen 6.0.17's `GenerateQueries` (loadgen.cc) line for line; kept
/// in one piece so the two read side by side.
pub fn generate_queries(
    settings: &EffectiveSettings,
    phase: Phase,
    set: &LoadableSet,
    seq: &mut SequenceGen,
) -> Result<Schedule, ScheduleError> {
    let scenario = settings.scenario;
    let accuracy = phase == Phase::Accuracy;
    let loaded: Vec<u32> = set
        .samples
        .iter()
        .map(|&s| to_u32(s))
        .collect::<Result<_, _>>()?;
    let n_loaded = loaded.len();
    let distribution_end = set.distribution_end;
    if n_loaded == 0 || distribution_end == 0 {
        return Err(ScheduleError::EmptySampleSet);
    }
    if scenario == Scenario::MultiStream && settings.samples_per_query == 0 {
        return Err(ScheduleError::ZeroSamplesPerQuery);
    }

    // Generate 2x the expected queries, except in Server, whose schedule
    // does not depend on the SUT's speed.
    let multiplier: i128 = if scenario == Scenario::Server { 1 } else { 2 };
    let mut gen_duration_ns = i128::from(settings.target_duration_ms) * 1_000_000 * multiplier;
    let mut min_queries = u128::from(settings.min_query_count);

    let mut samples_per_query = u128::from(settings.samples_per_query);
    if accuracy && scenario == Scenario::Offline {
        samples_per_query = distribution_end as u128;
    }
    if accuracy || settings.performance_issue_unique {
        // Accuracy runs never stop early: exactly the loaded samples.
        gen_duration_ns = 0;
        if samples_per_query == 0 {
            return Err(ScheduleError::NoQueries {
                set_size: n_loaded,
                samples_per_query: 0,
            });
        }
        min_queries = n_loaded as u128 / samples_per_query;
    }

    let mut sample_rng = Mt19937::new(settings.sample_index_rng_seed);
    let mut schedule_rng = Mt19937::new(settings.schedule_rng_seed);

    let stride = if scenario == Scenario::MultiStream {
        samples_per_query as usize
    } else {
        1
    };
    // The hidden draws: these constructors consume sample_rng whether or not
    // their distributions are used.
    let mut accuracy_distribution = if accuracy {
        Some(Shuffled::strided(
            distribution_end,
            stride,
            &mut sample_rng,
        )?)
    } else {
        None
    };
    let mut unique = Shuffled::strided(distribution_end, stride, &mut sample_rng)?;
    let min_queries_usize =
        usize::try_from(min_queries).map_err(|_| ScheduleError::TooLarge("min_query_count"))?;
    // Only SingleStream and Server draw from it, and only with equal issue
    // on and neither audit knob set.
    let equal_issue_used = settings.sample_concatenate_permutation
        && !settings.performance_issue_unique
        && !settings.performance_issue_same
        && matches!(scenario, Scenario::SingleStream | Scenario::Server);
    let mut equal_issue = Shuffled::equal_issue(
        min_queries_usize,
        n_loaded,
        &mut sample_rng,
        equal_issue_used,
    )?;

    let period_ns: Option<i64> = match scenario {
        Scenario::Server => {
            if !(settings.target_qps > 0.0 && settings.target_qps.is_finite()) {
                return Err(ScheduleError::InvalidTargetQps {
                    scenario,
                    target_qps: settings.target_qps,
                });
            }
            None
        }
        _ => {
            // duration_cast<nanoseconds>(duration<double>(1.0 / qps)).
            let period = duration_cast_ns(1.0 / settings.target_qps);
            // A period that does not advance time never fills the window:
            // LoadGen would loop until memory runs out.
            if period <= 0 && gen_duration_ns > 0 {
                return Err(ScheduleError::InvalidTargetQps {
                    scenario,
                    target_qps: settings.target_qps,
                });
            }
            Some(period)
        }
    };

    let equal_issue_on = settings.sample_concatenate_permutation;
    if !accuracy && equal_issue_on {
        let n = n_loaded as u128;
        if scenario == Scenario::Offline {
            if !samples_per_query.is_multiple_of(n) {
                samples_per_query += n - samples_per_query % n;
            }
        } else if !min_queries.is_multiple_of(n) {
            min_queries += n - min_queries % n;
        }
    }
    if samples_per_query > MAX_GENERATED as u128 {
        return Err(ScheduleError::TooLarge("samples per query"));
    }
    let spq = samples_per_query as usize;

    // The `?:` chain that picks each query's sample position (SingleStream,
    // Server, MultiStream; Offline has its own rules below).
    let same_index = settings.performance_issue_same_index;
    let chooser = if settings.performance_issue_unique {
        Chooser::Unique
    } else if settings.performance_issue_same {
        Chooser::Same(usize::try_from(same_index).unwrap_or(usize::MAX))
    } else if equal_issue_on && scenario != Scenario::MultiStream {
        Chooser::EqualIssue
    } else {
        Chooser::Distribution
    };
    let same_out_of_range = || ScheduleError::SameIndexOutOfRange {
        index: same_index,
        set_size: n_loaded,
        samples_per_query: spq as u64,
    };
    // SampleDistribution<PerformanceOnly>: uniform_int_distribution<int>(0, end - 1).
    let uniform_hi = (distribution_end - 1) as u64;

    let log_sampling = (!accuracy).then(|| AccuracyLogSampling::new(settings));
    // An Offline performance phase is one query of `spq` samples.
    let ahead = (scenario == Scenario::Offline && !accuracy)
        .then(|| seq.start_accuracy_log_bits(spq, log_sampling))
        .flatten();

    let first_query_id = seq.next_query_id;
    let first_sample_id = seq.next_sample_id;
    let mut flat: Vec<u32> = Vec::new();
    let mut starts: Vec<u32> = Vec::new();
    let mut times: Vec<u64> = Vec::new();
    if scenario == Scenario::Server {
        let expected = settings.target_qps * gen_duration_ns as f64 / 1e9;
        let reserve = (expected + 6.0 * expected.sqrt() + 16.0).max(min_queries as f64);
        let reserve = (reserve as usize).min(1 << 28);
        times.reserve(reserve);
        flat.reserve(reserve);
    }
    let mut query_count: usize = 0;
    let mut timestamp: i64 = 0;
    let mut prev_timestamp: i64 = 0;
    let mut offline_block: Vec<u32> = Vec::new();

    let draw_position = |rng: &mut Mt19937,
                         unique: &mut Shuffled,
                         equal_issue: &mut Shuffled,
                         accuracy_distribution: &mut Option<Shuffled>|
     -> Result<usize, ScheduleError> {
        match chooser {
            Chooser::Unique => unique.next_once(),
            Chooser::Same(i) => Ok(i),
            Chooser::EqualIssue => equal_issue.next_cyclic(),
            Chooser::Distribution => match accuracy_distribution {
                Some(d) => d.next_once(),
                None => Ok(rng::uniform_int(rng, 0, uniform_hi) as usize),
            },
        }
    };

    while i128::from(prev_timestamp) < gen_duration_ns || (query_count as u128) < min_queries {
        if query_count >= MAX_GENERATED {
            return Err(ScheduleError::TooLarge("query count"));
        }
        match scenario {
            Scenario::MultiStream => {
                let start = draw_position(
                    &mut sample_rng,
                    &mut unique,
                    &mut equal_issue,
                    &mut accuracy_distribution,
                )?;
                // Only performance_issue_same can point past the padding.
                if start.checked_add(spq).is_none_or(|end| end > n_loaded) {
                    return Err(same_out_of_range());
                }
                starts.push(start as u32);
            }
            Scenario::Offline => {
                let before = flat.len();
                if before + spq > MAX_GENERATED {
                    return Err(ScheduleError::TooLarge("samples"));
                }
                if settings.performance_issue_same {
                    let sample = usize::try_from(same_index)
                        .ok()
                        .and_then(|i| loaded.get(i))
                        .ok_or_else(same_out_of_range)?;
                    flat.resize(before + spq, *sample);
                } else {
                    // The loaded set repeated in order plus a remainder; with
                    // equal issue each repetition is shuffled.
                    let full_repeats = spq / n_loaded;
                    let remainder = spq % n_loaded;
                    flat.reserve(spq);
                    for _ in 0..full_repeats {
                        offline_block.clear();
                        offline_block.extend_from_slice(&loaded);
                        if equal_issue_on {
                            rng::shuffle(&mut offline_block, &mut sample_rng);
                        }
                        flat.extend_from_slice(&offline_block);
                    }
                    flat.extend_from_slice(&loaded[..remainder]);
                }
            }
            Scenario::SingleStream | Scenario::Server => {
                for _ in 0..spq {
                    let position = draw_position(
                        &mut sample_rng,
                        &mut unique,
                        &mut equal_issue,
                        &mut accuracy_distribution,
                    )?;
                    let sample = *loaded.get(position).ok_or_else(same_out_of_range)?;
                    flat.push(sample);
                }
            }
        }
        if scenario == Scenario::Server {
            times.push(timestamp as u64);
        }
        query_count += 1;
        prev_timestamp = timestamp;
        let interval = match period_ns {
            Some(p) => p,
            None => {
                let seconds = rng::exponential(&mut schedule_rng, settings.target_qps);
                let ns = duration_cast_ns(seconds);
                if ns < 0 {
                    return Err(ScheduleError::TooLarge(
                        "an arrival interval past i64::MAX ns",
                    ));
                }
                ns
            }
        };
        // Non-Server timestamps are nominal (only the logged duration uses
        // them) and wrap like the C++ arithmetic; Server's must be exact.
        timestamp = if period_ns.is_some() {
            timestamp.wrapping_add(interval)
        } else {
            timestamp
                .checked_add(interval)
                .ok_or(ScheduleError::TooLarge("timestamps past i64::MAX ns"))?
        };
        if equal_issue_on
            && (query_count as u128) >= min_queries
            && i128::from(prev_timestamp) < gen_duration_ns
            && scenario != Scenario::Offline
        {
            min_queries += n_loaded as u128;
        }
    }

    // Offline accuracy: a last, smaller query for the samples that did not
    // fill a whole one. (Unreachable with LoadGen's own settings, whose
    // Offline accuracy query holds the whole set; kept for fidelity.)
    if scenario == Scenario::Offline && accuracy {
        let remaining = n_loaded % spq;
        if remaining != 0 {
            for _ in 0..remaining {
                let position = match accuracy_distribution.as_mut() {
                    Some(d) => d.next_once()?,
                    None => return Err(ScheduleError::DistributionExhausted(0)),
                };
                flat.push(loaded[position]);
            }
            query_count += 1;
        }
    }

    if query_count == 0 {
        return Err(ScheduleError::NoQueries {
            set_size: n_loaded,
            samples_per_query: spq as u64,
        });
    }

    let samples = if scenario == Scenario::MultiStream {
        QuerySamples::Window {
            per_query: spq,
            loaded,
            starts,
        }
    } else {
        flat.shrink_to_fit();
        QuerySamples::Flat {
            per_query: spq,
            indices: flat,
        }
    };
    let times = match period_ns {
        Some(p) => ScheduledTimes::Periodic {
            period_ns: p.max(0) as u64,
        },
        None => {
            times.shrink_to_fit();
            ScheduledTimes::Explicit(times)
        }
    };

    // Number the queries and samples and draw each sample's accuracy-log
    // value, in construction order (QueryMetadata's constructor).
    let mut schedule = Schedule {
        scenario,
        phase,
        query_count,
        samples,
        times,
        first_query_id,
        first_sample_id,
        accuracy_logged: Vec::new(),
        accuracy_log: log_sampling,
        generated_samples_per_query: spq as u64,
        generated_query_duration_ns: timestamp,
    };
    let total = schedule.sample_count();
    schedule.accuracy_logged = seq.finish_accuracy_log_bits(ahead, total, log_sampling.as_ref());
    seq.next_query_id += query_count as u64;
    seq.next_sample_id += total as u64;
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{TestMode, TestSettings};

    #[test]
    fn bulk_accuracy_log_bits_equal_the_draws_one_by_one() {
        let samplings = [
            None,
            // Performance defaults: probability 0, so only a value that
            // lands exactly on 0 after the shift is logged.
            Some(AccuracyLogSampling {
                offset: 0.25,
                probability: 0.0,
            }),
            Some(AccuracyLogSampling {
                offset: 0.7,
                probability: 0.3,
            }),
            Some(AccuracyLogSampling {
                offset: 0.0,
                probability: 1.0,
            }),
        ];
        for sampling in &samplings {
            // Across the engine's 624-output blocks, with partial words;
            // the second phase continues the stream where the first left it.
            let mut bulk = SequenceGen::new();
            let mut one = SequenceGen::new();
            for total in [0usize, 1, 63, 64, 65, 311, 312, 5_000] {
                let got = bulk.accuracy_log_bits(total, sampling.as_ref());
                let mut want = vec![0u64; total.div_ceil(64)];
                for i in 0..total {
                    let val = one.next_accuracy_log_val();
                    let logged = sampling.as_ref().is_none_or(|s| s.is_logged(val));
                    want[i / 64] |= u64::from(logged) << (i % 64);
                }
                assert_eq!(got, want, "{total} samples, {sampling:?}");
            }
            assert_eq!(
                bulk.accuracy_log_rng.next_u32(),
                one.accuracy_log_rng.next_u32()
            );
        }
    }

    #[test]
    fn draws_ahead_on_another_thread_equal_the_draws_in_line() {
        let sampling = Some(AccuracyLogSampling {
            offset: 0.7,
            probability: 0.3,
        });
        // The phase's samples fewer than, as many as (the started count
        // is cut to whole words: 70_000 -> 69_952) and more than the
        // started ones; the next phase's draws continue the same stream.
        for total in [69_000usize, 69_952, 70_000, 200_000] {
            let mut ahead = SequenceGen::new();
            let mut inline = SequenceGen::new();
            let started = ahead.start_accuracy_log_bits(70_000, sampling);
            assert!(started.is_some(), "no thread started");
            let got = ahead.finish_accuracy_log_bits(started, total, sampling.as_ref());
            let want = inline.accuracy_log_bits(total, sampling.as_ref());
            assert_eq!(got, want, "{total} samples");
            assert_eq!(
                ahead.accuracy_log_bits(100, None),
                inline.accuracy_log_bits(100, None)
            );
            assert_eq!(
                ahead.accuracy_log_rng.next_u32(),
                inline.accuracy_log_rng.next_u32(),
                "{total} samples"
            );
        }
        // Too few to start a thread for.
        assert!(
            SequenceGen::new()
                .start_accuracy_log_bits(60_000, None)
                .is_none()
        );
    }

    fn effective(s: &TestSettings, psc: u64, total: u64) -> EffectiveSettings {
        EffectiveSettings::new(s, psc, total).unwrap().0
    }

    #[test]
    fn loadable_sets_chop_and_pad() {
        let s = TestSettings {
            scenario: Scenario::MultiStream,
            multi_stream_samples_per_query: 4,
            mode: TestMode::AccuracyOnly,
            ..TestSettings::default()
        };
        let e = effective(&s, 4, 10);
        let sets = accuracy_sets(&e, 10);
        assert_eq!(sets.len(), 3);
        let mut all: Vec<usize> = Vec::new();
        for set in &sets {
            let end = set.distribution_end;
            assert_eq!(set.samples.len(), end + 3);
            // Padding repeats the set from its start, wrapping for short sets.
            for i in 0..3 {
                assert_eq!(set.samples[end + i], set.samples[i]);
            }
            all.extend_from_slice(&set.samples[..end]);
        }
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(sets[2].distribution_end, 2);
        assert_eq!(sets[2].samples[4], sets[2].samples[0]);
    }

    #[test]
    fn performance_set_is_a_permutation_of_the_first_psc_indices() {
        let s = TestSettings {
            qsl_rng_seed: 7,
            ..TestSettings::default()
        };
        let set = performance_set(&effective(&s, 50, 1000), 1000).unwrap();
        let mut v = set.samples;
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
        // A QSL smaller than its performance count caps the set.
        let set = performance_set(&effective(&s, 50, 20), 20).unwrap();
        assert_eq!(set.samples.len(), 20);
        assert!(matches!(
            performance_set(&effective(&s, 50, 0), 0),
            Err(ScheduleError::EmptySampleSet)
        ));
    }

    fn server(qps: f64, min_ms: u64, min_q: u64) -> TestSettings {
        TestSettings {
            scenario: Scenario::Server,
            server_target_qps: qps,
            min_duration_ms: min_ms,
            min_query_count: min_q,
            sample_index_rng_seed: 3,
            schedule_rng_seed: 4,
            ..TestSettings::default()
        }
    }

    #[test]
    fn server_schedule_is_poisson_and_covers_the_window() {
        let e = effective(&server(1000.0, 2000, 10), 64, 64);
        let set = performance_set(&e, 64).unwrap();
        let mut seq = SequenceGen::new();
        let sch = generate_queries(&e, Phase::Performance, &set, &mut seq).unwrap();
        let n = sch.len();
        // ~2000 arrivals in 2 s; the last one is scheduled before 2 s and the
        // duration (one interval later) reaches past it.
        assert!((1800..2200).contains(&n), "{n}");
        // Generation stops after the first query scheduled at or past the
        // window; the logged duration is one interval after that.
        assert!(sch.scheduled_ns(n - 2) < 2_000_000_000);
        assert!(sch.scheduled_ns(n - 1) >= 2_000_000_000);
        assert!(sch.generated_query_duration() as u64 > sch.scheduled_ns(n - 1));
        assert_eq!(sch.scheduled_ns(0), 0);
        assert!(
            sch.iter()
                .zip(sch.iter().skip(1))
                .all(|(a, b)| a.scheduled_ns <= b.scheduled_ns)
        );
        assert!(
            sch.iter()
                .all(|q| q.samples.len() == 1 && set.samples.contains(&(q.samples[0] as usize)))
        );
        assert_eq!(sch.generated_samples_per_query(), 1);
        assert_eq!(seq.current_query_id(), n as u64);
        assert_eq!(seq.current_sample_id(), n as u64);
        // Same seeds, same schedule.
        let again =
            generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        assert!(sch.iter().eq(again.iter()));
        // Compact: well under 64 bytes per query.
        assert!(
            sch.heap_bytes() < 16 * n,
            "{} bytes for {n} queries",
            sch.heap_bytes()
        );
    }

    #[test]
    fn min_query_count_extends_the_schedule() {
        let e = effective(&server(1000.0, 10, 500), 64, 64);
        let set = performance_set(&e, 64).unwrap();
        let sch = generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        assert_eq!(sch.len(), 500);
    }

    #[test]
    fn equal_issue_server_repeats_one_permutation() {
        let s = TestSettings {
            sample_concatenate_permutation: true,
            ..server(1000.0, 250, 10)
        };
        let e = effective(&s, 40, 40);
        let set = performance_set(&e, 40).unwrap();
        let sch = generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        // A multiple of the set size, at least the window's worth.
        assert_eq!(sch.len() % 40, 0);
        assert!(sch.len() >= 240);
        let first: Vec<u32> = (0..40).map(|q| sch.samples(q)[0]).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 40);
        for q in 40..sch.len() {
            assert_eq!(sch.samples(q)[0], first[q % 40]);
        }
    }

    #[test]
    fn offline_layouts() {
        // Plain: the loaded set repeated in order plus a remainder.
        let s = TestSettings {
            scenario: Scenario::Offline,
            offline_expected_qps: 100.0,
            min_duration_ms: 1000,
            min_query_count: 1,
            ..TestSettings::default()
        };
        let e = effective(&s, 30, 30);
        assert_eq!(e.samples_per_query, 110);
        let set = performance_set(&e, 30).unwrap();
        let sch = generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        assert_eq!(sch.len(), 1);
        let q = sch.samples(0);
        assert_eq!(q.len(), 110);
        for (i, &x) in q.iter().enumerate() {
            assert_eq!(x as usize, set.samples[i % 30]);
        }
        assert_eq!(sch.generated_query_duration(), 10_000_000);

        // Equal issue: padded to a multiple of the set, each block shuffled.
        let s = TestSettings {
            sample_concatenate_permutation: true,
            ..s
        };
        let e = effective(&s, 30, 30);
        let sch = generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        assert_eq!(sch.generated_samples_per_query(), 120);
        for block in sch.samples(0).chunks(30) {
            let mut b: Vec<usize> = block.iter().map(|&x| x as usize).collect();
            assert_ne!(b, set.samples);
            b.sort_unstable();
            let mut want = set.samples.clone();
            want.sort_unstable();
            assert_eq!(b, want);
        }
    }

    #[test]
    fn multistream_queries_are_contiguous_windows() {
        let s = TestSettings {
            scenario: Scenario::MultiStream,
            multi_stream_samples_per_query: 8,
            min_duration_ms: 100,
            min_query_count: 20,
            ..TestSettings::default()
        };
        let e = effective(&s, 50, 50);
        let set = performance_set(&e, 50).unwrap();
        assert_eq!(set.samples.len(), 57);
        let sch = generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        // 2 x 100 ms at 125 qps: 0, 8, ..., 192 ms are inside the window and
        // the query at 200 ms is the first one past it.
        assert_eq!(sch.len(), 26);
        for q in sch.iter() {
            assert_eq!(q.samples.len(), 8);
            let start = set
                .samples
                .windows(8)
                .position(|w| w.iter().zip(q.samples).all(|(&a, &b)| a == b as usize));
            assert!(start.is_some());
        }
        assert_eq!(sch.scheduled_ns(3), 3 * 8_000_000);
        assert_eq!(sch.sample_count(), 26 * 8);
    }

    #[test]
    fn accuracy_issues_every_sample_once() {
        for scenario in Scenario::ALL {
            let s = TestSettings {
                scenario,
                mode: TestMode::AccuracyOnly,
                multi_stream_samples_per_query: 4,
                ..TestSettings::default()
            };
            let e = effective(&s, 16, 37);
            let mut seq = SequenceGen::new();
            let mut issued: Vec<u32> = Vec::new();
            for set in accuracy_sets(&e, 37) {
                let sch = generate_queries(&e, Phase::Accuracy, &set, &mut seq).unwrap();
                for q in sch.iter() {
                    issued.extend_from_slice(q.samples);
                    for k in 0..q.samples.len() as u64 {
                        assert!(sch.is_accuracy_logged(q.first_sample_sequence_id + k));
                    }
                }
            }
            if scenario == Scenario::MultiStream {
                // Windows overlap the padding; every sample still appears.
                issued.sort_unstable();
                issued.dedup();
            } else {
                issued.sort_unstable();
            }
            assert_eq!(issued, (0..37).collect::<Vec<u32>>(), "{scenario}");
        }
    }

    #[test]
    fn accuracy_log_sampling_target_sets_the_probability() {
        let s = TestSettings {
            accuracy_log_sampling_target: 10,
            accuracy_log_rng_seed: 720_381_539_243_781_796,
            ..server(100.0, 1000, 10)
        };
        let e = effective(&s, 64, 64);
        let a = AccuracyLogSampling::new(&e);
        assert_eq!(a.probability, 10.0 / 100.0);
        assert!((0.0..1.0).contains(&a.offset));
        let set = performance_set(&e, 64).unwrap();
        let sch = generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap();
        let logged = (0..sch.sample_count() as u64)
            .filter(|&i| sch.is_accuracy_logged(i))
            .count();
        assert!((2..30).contains(&logged), "{logged}");
        assert!(!sch.is_accuracy_logged(sch.sample_count() as u64 + 5));
    }

    #[test]
    fn loadgen_crashes_become_errors() {
        let e = effective(&server(0.0, 10, 1), 8, 8);
        let set = performance_set(&e, 8).unwrap();
        assert!(matches!(
            generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()),
            Err(ScheduleError::InvalidTargetQps { .. })
        ));
        let s = TestSettings {
            performance_issue_same: true,
            performance_issue_same_index: 8,
            ..server(10.0, 10, 1)
        };
        let e = effective(&s, 8, 8);
        assert!(matches!(
            generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()),
            Err(ScheduleError::SameIndexOutOfRange { .. })
        ));
        let s = TestSettings {
            sample_concatenate_permutation: true,
            ..server(10.0, 10, 0)
        };
        let e = effective(&s, 8, 8);
        assert_eq!(
            generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()).unwrap_err(),
            ScheduleError::EqualIssueWithoutQueries
        );
        let s = TestSettings {
            scenario: Scenario::SingleStream,
            single_stream_expected_latency_ns: 0.0,
            ..TestSettings::default()
        };
        let e = effective(&s, 8, 8);
        assert!(matches!(
            generate_queries(&e, Phase::Performance, &set, &mut SequenceGen::new()),
            Err(ScheduleError::InvalidTargetQps { .. })
        ));
    }
}
