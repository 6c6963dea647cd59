//! The engine: a continuous-batching scheduler (waiting queue, chunked prefill, KV blocks,
//! preemption by recompute, prefix caching) stepped on a dedicated thread whose step times follow
//! [`crate::EngineConfig`]'s cost model on deadlines of a monotonic clock.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::{EngineConfig, SimConfig};
use crate::kv::BlockPool;
use crate::metrics::{FinishReason, Metrics, RequestTimes};
use crate::replay::Replay;
use crate::rng::{Rng, hash_tokens};
use crate::tokenizer::{EOS_TOKEN_ID, Tokenizer};

/// Why generation stopped, as the API reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StopReason {
    /// EOS or a length limit: `stop_reason: null`.
    None,
    /// A stop string matched.
    Text(Arc<str>),
    /// A stop token id matched.
    Token(u32),
}

/// The end of one sequence.
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub(crate) reason: FinishReason,
    pub(crate) stop_reason: StopReason,
    /// When a stop string matched: how many bytes of this token's text to keep.
    pub(crate) keep_bytes: Option<usize>,
}

/// What the engine tells a request.
#[derive(Debug)]
pub(crate) enum Event {
    /// The sequence left the waiting queue for the first time.
    Scheduled { at: Instant },
    /// One generated token (the last one carries `finish`).
    Token {
        choice: u32,
        token: u32,
        finish: Option<Box<Finish>>,
    },
}

/// Sampling parameters of one sequence.
#[derive(Debug, Clone)]
pub(crate) struct SeqParams {
    pub(crate) max_tokens: u32,
    pub(crate) min_tokens: u32,
    pub(crate) ignore_eos: bool,
    pub(crate) stop: Arc<[Arc<str>]>,
    pub(crate) stop_token_ids: Arc<[u32]>,
    pub(crate) seed: u64,
    /// `n` of the request (for the metrics histogram).
    pub(crate) n: u32,
}

/// One sequence to generate.
#[derive(Debug)]
pub(crate) struct SeqRequest {
    pub(crate) prompt: Arc<[u32]>,
    pub(crate) params: SeqParams,
    pub(crate) choice: u32,
    pub(crate) arrival: Instant,
    pub(crate) events: UnboundedSender<Event>,
}

/// Messages to the engine thread.
#[derive(Debug)]
pub(crate) enum EngineMsg {
    Add(SeqRequest),
    Shutdown,
}

/// How far the engine's step ends landed from their deadlines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTiming {
    /// Steps run.
    pub steps: u64,
    /// Mean lateness of a step's end after its deadline, in microseconds.
    pub mean_late_us: f64,
    /// 99th percentile of the lateness, in microseconds (to 0.1%).
    pub p99_late_us: f64,
    /// Largest lateness, in microseconds.
    pub max_late_us: f64,
}

/// The engine's step lateness so far, in constant memory however long the
/// simulator runs: a histogram for the percentiles, a sum for the mean.
#[derive(Debug)]
pub(crate) struct StepLateness {
    steps: u64,
    sum_us: f64,
    max_us: f64,
    /// Nanoseconds, 3 significant digits, up to a minute (longer is clamped).
    /// None only if hdrhistogram refused these constant bounds.
    late_ns: Option<hdrhistogram::Histogram<u64>>,
}

impl StepLateness {
    pub(crate) fn new() -> StepLateness {
        StepLateness {
            steps: 0,
            sum_us: 0.0,
            max_us: 0.0,
            late_ns: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).ok(),
        }
    }

    fn record(&mut self, late: Duration) {
        let us = late.as_secs_f64() * 1e6;
        self.steps += 1;
        self.sum_us += us;
        self.max_us = self.max_us.max(us);
        if let Some(h) = self.late_ns.as_mut() {
            h.saturating_record(u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
        }
    }

    pub(crate) fn timing(&self) -> StepTiming {
        let p99_ns = self
            .late_ns
            .as_ref()
            .filter(|h| !h.is_empty())
            .map_or(0, |h| h.value_at_quantile(0.99));
        StepTiming {
            steps: self.steps,
            mean_late_us: if self.steps == 0 {
                0.0
            } else {
                self.sum_us / self.steps as f64
            },
            p99_late_us: p99_ns as f64 / 1e3,
            max_late_us: self.max_us,
        }
    }
}

#[derive(Debug)]
struct Seq {
    req: SeqRequest,
    rng: Rng,
    output_len: u32,
    /// Tokens whose KV is computed.
    computed: u32,
    /// Hashes of the prompt's full blocks (prefix caching only).
    block_hashes: Vec<u64>,
    /// Leading prompt blocks held as cached blocks.
    cached_blocks: u32,
    private_blocks: u32,
    text: Option<String>,
    scheduled: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    /// Replay mode: the output to answer with, when the prompt is known.
    replay: Option<Arc<[u32]>>,
}

impl Seq {
    fn total_len(&self) -> u32 {
        self.req.prompt.len() as u32 + self.output_len
    }

    fn held_blocks(&self) -> u32 {
        self.cached_blocks + self.private_blocks
    }
}

/// The step-time model, a pure function of the batch's shape (before jitter).
pub fn step_time_us(
    cfg: &EngineConfig,
    prefill_tokens: u32,
    decode_seqs: u32,
    kv_tokens: u64,
) -> f64 {
    cfg.step_overhead_us
        + cfg.prefill_us_per_token * f64::from(prefill_tokens)
        + cfg.decode_us_per_seq * f64::from(decode_seqs)
        + cfg.decode_us_per_kv_token * kv_tokens as f64
}

/// What one step computes.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct StepPlan {
    /// (index into running, tokens computed).
    pub(crate) work: Vec<(usize, u32)>,
    pub(crate) prefill_tokens: u32,
    pub(crate) decode_seqs: u32,
    pub(crate) kv_tokens: u64,
    pub(crate) preempted: u32,
}

/// The scheduler state, separate from time and threads so it can be tested step by step.
#[derive(Debug)]
pub(crate) struct Scheduler {
    cfg: EngineConfig,
    max_model_len: u32,
    eos_probability: f64,
    pool: BlockPool,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    tokenizer: Arc<Tokenizer>,
    replay: Option<Arc<Replay>>,
}

/// A token produced by a step, to be sent once the step's time has passed.
#[derive(Debug)]
pub(crate) struct Produced {
    pub(crate) running_index: usize,
    pub(crate) token: u32,
    pub(crate) finish: Option<Finish>,
}

impl Scheduler {
    pub(crate) fn new(config: &SimConfig, tokenizer: Arc<Tokenizer>) -> Scheduler {
        Scheduler {
            cfg: config.engine.clone(),
            max_model_len: config.max_model_len,
            eos_probability: config.eos_probability,
            pool: BlockPool::new(config.engine.num_gpu_blocks),
            waiting: VecDeque::new(),
            running: Vec::new(),
            tokenizer,
            replay: config.replay.clone(),
        }
    }

    pub(crate) fn add(&mut self, req: SeqRequest, metrics: &mut Metrics) {
        let bs = self.cfg.block_size as usize;
        let block_hashes = if self.cfg.enable_prefix_caching {
            let mut h = 0u64;
            req.prompt
                .chunks_exact(bs)
                .map(|block| {
                    h = hash_tokens(h, block);
                    h
                })
                .collect()
        } else {
            Vec::new()
        };
        let rng = Rng::new(hash_tokens(req.params.seed, &req.prompt) ^ u64::from(req.choice));
        let text = (!req.params.stop.is_empty()).then(String::new);
        let replay = self.replay.as_ref().and_then(|r| {
            let output = r.output(&req.prompt);
            if output.is_none() {
                tracing::warn!(
                    prompt_tokens = req.prompt.len(),
                    "replay: prompt not in the replay table; sampling its output"
                );
            }
            output
        });
        metrics.waiting += 1;
        self.waiting.push_back(Seq {
            req,
            rng,
            output_len: 0,
            computed: 0,
            block_hashes,
            cached_blocks: 0,
            private_blocks: 0,
            text,
            scheduled: None,
            first_token: None,
            last_token: None,
            replay,
        });
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn num_running(&self) -> usize {
        self.running.len()
    }

    #[cfg(test)]
    pub(crate) fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    #[cfg(test)]
    pub(crate) fn kv_usage(&self) -> f64 {
        self.pool.usage()
    }

    fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.cfg.block_size)
    }

    fn release(&mut self, seq: &mut Seq) {
        for h in &seq.block_hashes[..seq.cached_blocks as usize] {
            self.pool.release_cached(*h);
        }
        self.pool.release_private(seq.private_blocks);
        seq.cached_blocks = 0;
        seq.private_blocks = 0;
        seq.computed = 0;
    }

    /// Drops sequences whose client went away.
    pub(crate) fn reap_aborted(&mut self, now: Instant, metrics: &mut Metrics) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].req.events.is_closed() {
                let mut s = self.running.remove(i);
                self.release(&mut s);
                finish_metrics(&s, FinishReason::Abort, now, metrics);
            } else {
                i += 1;
            }
        }
        let before = self.waiting.len();
        self.waiting.retain(|s| !s.req.events.is_closed());
        for _ in self.waiting.len()..before {
            metrics.success_abort();
        }
    }

    /// Decides what the next step computes, allocating KV blocks and preempting when they run
    /// out (vLLM v1's scheduler, simplified: running sequences first, newest preempted first,
    /// then admission in arrival order while nothing was preempted).
    pub(crate) fn schedule(&mut self, now: Instant, metrics: &mut Metrics) -> StepPlan {
        let mut plan = StepPlan::default();
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let (total, computed, held) = {
                let s = &self.running[i];
                (s.total_len(), s.computed, s.held_blocks())
            };
            let new = (total - computed).min(budget);
            let need = self.blocks_for(computed + new).saturating_sub(held);
            let mut self_preempted = false;
            while !self.pool.alloc(need) {
                let Some(mut victim) = self.running.pop() else {
                    break;
                };
                self.release(&mut victim);
                metrics.preemptions += 1;
                plan.preempted += 1;
                let was_self = self.running.len() == i;
                self.waiting.push_front(victim);
                if was_self {
                    self_preempted = true;
                    break;
                }
            }
            if self_preempted {
                break;
            }
            let s = &mut self.running[i];
            s.private_blocks += need;
            if s.output_len > 0 && new == 1 && computed + 1 == total {
                plan.decode_seqs += 1;
                plan.kv_tokens += u64::from(total);
            } else {
                plan.prefill_tokens += new;
            }
            plan.work.push((i, new));
            budget -= new;
            i += 1;
        }
        while plan.preempted == 0
            && budget > 0
            && (self.running.len() as u32) < self.cfg.max_num_seqs
            && !self.waiting.is_empty()
        {
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            let total = s.total_len();
            let first_time = s.scheduled.is_none();
            // At least one token must be computed, so a full hit leaves the last block out.
            let max_hit = ((total - 1) / self.cfg.block_size) as usize;
            let hits = if s.block_hashes.is_empty() {
                0
            } else {
                self.pool.lookup(&s.block_hashes, max_hit)
            };
            let cached = hits as u32 * self.cfg.block_size;
            let new = (total - cached).min(budget);
            let need = self.blocks_for(cached + new) - hits as u32;
            if !self.pool.alloc(need) {
                for h in &s.block_hashes[..hits] {
                    self.pool.release_cached(*h);
                }
                self.waiting.push_front(s);
                break;
            }
            if first_time {
                metrics.prefix_queries += u64::from(total);
                metrics.prefix_hits += u64::from(cached);
                s.scheduled = Some(now);
                let _ = s.req.events.send(Event::Scheduled { at: now });
            }
            s.cached_blocks = hits as u32;
            s.private_blocks = need;
            s.computed = cached;
            metrics.waiting = metrics.waiting.saturating_sub(1);
            plan.prefill_tokens += new;
            plan.work.push((self.running.len(), new));
            self.running.push(s);
            budget -= new;
        }
        metrics.waiting = self.waiting.len() as u32;
        metrics.running = self.running.len() as u32;
        plan
    }

    /// Applies a step: advances the computed tokens, caches full prompt blocks and samples a
    /// token for every sequence whose tokens are all computed.
    pub(crate) fn complete(&mut self, plan: &StepPlan, metrics: &mut Metrics) -> Vec<Produced> {
        let mut out = Vec::with_capacity(plan.work.len());
        let bs = self.cfg.block_size;
        metrics.observe_iteration(plan.prefill_tokens + plan.decode_seqs);
        for &(i, new) in &plan.work {
            let max_model_len = self.max_model_len;
            let eos_p = self.eos_probability;
            let s = &mut self.running[i];
            let was_prefill = s.computed < s.req.prompt.len() as u32;
            s.computed += new;
            if was_prefill {
                metrics.prompt_tokens += u64::from(new.min(s.req.prompt.len() as u32));
            }
            // Cache the prompt blocks this step completed.
            let full = (s.computed.min(s.req.prompt.len() as u32) / bs) as usize;
            while (s.cached_blocks as usize) < full.min(s.block_hashes.len()) {
                let h = s.block_hashes[s.cached_blocks as usize];
                self.pool.promote(h);
                s.private_blocks -= 1;
                s.cached_blocks += 1;
            }
            if s.computed < s.total_len() {
                continue;
            }
            // Sample.
            let p = &s.req.params;
            let may_stop = !p.ignore_eos && s.output_len >= p.min_tokens;
            // Replay: the reference tokens, and the sequence ends on the last
            // one (no EOS token is emitted, so the output is exactly the
            // reference). Where min_tokens or ignore_eos forbid ending there,
            // sampled tokens follow, as a real server keeps generating.
            let reference = s.replay.as_ref().filter(|r| !r.is_empty());
            let (token, is_eos) = match reference.and_then(|r| r.get(s.output_len as usize)) {
                Some(&token) => (token, false),
                None if reference.is_none() && may_stop && s.rng.chance(eos_p) => {
                    (EOS_TOKEN_ID, true)
                }
                None => (
                    7 + s.rng.below(u64::from(self.tokenizer.vocab_size() - 7)) as u32,
                    false,
                ),
            };
            s.output_len += 1;
            metrics.generation_tokens += 1;
            let mut finish = None;
            let past_min = s.output_len > p.min_tokens;
            let reference_done = reference.is_some_and(|r| s.output_len as usize == r.len())
                && !p.ignore_eos
                && s.output_len >= p.min_tokens;
            if (is_eos && !p.ignore_eos && past_min) || reference_done {
                finish = Some((FinishReason::Stop, StopReason::None, None));
            } else if past_min && p.stop_token_ids.contains(&token) {
                finish = Some((FinishReason::Stop, StopReason::Token(token), None));
            } else if let Some(text) = s.text.as_mut() {
                let before = text.len();
                text.push_str(self.tokenizer.piece(token));
                if past_min {
                    for stop in p.stop.iter() {
                        // Only matches that end in this token's text are new.
                        let from = before.saturating_sub(stop.len().saturating_sub(1));
                        if let Some(pos) = text[from..].find(&**stop) {
                            let keep = (from + pos).saturating_sub(before);
                            finish = Some((
                                FinishReason::Stop,
                                StopReason::Text(stop.clone()),
                                Some(keep),
                            ));
                            break;
                        }
                    }
                }
            }
            if finish.is_none() && (s.output_len >= p.max_tokens || s.total_len() >= max_model_len)
            {
                finish = Some((FinishReason::Length, StopReason::None, None));
            }
            out.push(Produced {
                running_index: i,
                token,
                finish: finish.map(|(reason, stop_reason, keep_bytes)| Finish {
                    reason,
                    stop_reason,
                    keep_bytes,
                }),
            });
        }
        out
    }

    /// Sends the produced tokens, records timings and retires finished sequences.
    pub(crate) fn deliver(&mut self, produced: Vec<Produced>, now: Instant, metrics: &mut Metrics) {
        let mut finished = Vec::new();
        for p in produced {
            let s = &mut self.running[p.running_index];
            if s.first_token.is_none() {
                s.first_token = Some(now);
            } else if let Some(last) = s.last_token {
                metrics.observe_itl((now - last).as_secs_f64());
            }
            s.last_token = Some(now);
            let done = p.finish.as_ref().map(|f| f.reason);
            let _ = s.req.events.send(Event::Token {
                choice: s.req.choice,
                token: p.token,
                finish: p.finish.map(Box::new),
            });
            if let Some(reason) = done {
                finished.push((p.running_index, reason));
            }
        }
        // Remove from the back so indices stay valid.
        finished.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
        for (i, reason) in finished {
            let mut s = self.running.remove(i);
            self.release(&mut s);
            finish_metrics(&s, reason, now, metrics);
        }
        metrics.running = self.running.len() as u32;
        metrics.kv_usage = self.pool.usage();
    }
}

fn finish_metrics(s: &Seq, reason: FinishReason, now: Instant, metrics: &mut Metrics) {
    let arrival = s.req.arrival;
    let scheduled = s.scheduled.unwrap_or(now);
    let first = s.first_token.unwrap_or(now);
    let secs = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    metrics.finish(
        reason,
        &RequestTimes {
            e2e: secs(arrival, now),
            queue: secs(arrival, scheduled),
            prefill: secs(scheduled, first),
            decode: secs(first, now),
            inference: secs(scheduled, now),
            ttft: s.first_token.map(|f| secs(arrival, f)),
            prompt_tokens: s.req.prompt.len() as u32,
            generation_tokens: s.output_len,
            max_tokens: s.req.params.max_tokens,
            n: s.req.params.n,
        },
    );
}

/// Sleeps until `spin` before `deadline`, then spins: OS sleeps overshoot by
/// tens of microseconds on a quiet machine and by hundreds in some VMs, and
/// step times of vLLM are often a few milliseconds. Returns how late the sleep
/// woke (zero when it did not sleep), for [`next_spin`].
pub(crate) fn wait_until(deadline: Instant, spin: Duration) -> Duration {
    let mut overshoot = Duration::ZERO;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return overshoot;
        }
        let left = deadline - now;
        if left > spin {
            let wake = deadline - spin;
            std::thread::sleep(left - spin);
            overshoot = Instant::now().saturating_duration_since(wake);
        } else {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }
}

/// The spin window for the next step, after a sleep that woke `overshoot`
/// late: at once twice that overshoot if it is larger than the window (a
/// wake-up as late as the ones just seen still lands before the deadline),
/// else back toward the larger of it and `floor` by 1/64 of the gap per step,
/// and never beyond `cap`. So a machine whose timers are sharp spins for
/// `floor` only, and one whose timers wake late (a VM's) spins long enough to
/// keep steps on time, without a setting per machine. A `floor` of zero turns
/// spinning off.
pub(crate) fn next_spin(
    current: Duration,
    overshoot: Duration,
    floor: Duration,
    cap: Duration,
) -> Duration {
    if floor.is_zero() {
        return Duration::ZERO;
    }
    let cap = cap.max(floor);
    let want = overshoot.saturating_mul(2).clamp(floor, cap);
    if want >= current {
        want
    } else {
        current - (current - want) / 64
    }
}

/// State shared between the engine thread and the server.
#[derive(Debug)]
pub(crate) struct EngineShared {
    pub(crate) metrics: Mutex<Metrics>,
    pub(crate) timing: Mutex<StepLateness>,
}

/// The engine thread's loop; returns on `Shutdown` or when every sender is gone.
pub(crate) fn run(
    config: &SimConfig,
    tokenizer: Arc<Tokenizer>,
    rx: &Receiver<EngineMsg>,
    shared: &EngineShared,
) {
    let mut sched = Scheduler::new(config, tokenizer);
    let mut jitter_rng = Rng::new(config.seed ^ 0x6A09_E667_F3BC_C908);
    let spin_floor = Duration::from_micros(config.engine.spin_us);
    let spin_cap = Duration::from_micros(config.engine.max_spin_us);
    let mut spin = spin_floor;
    // End of the previous step while the engine stays busy: the next step starts there, not at
    // "now", so the time spent between steps never accumulates into drift.
    let mut prev_deadline: Option<Instant> = None;
    loop {
        // Intake.
        if sched.is_idle() {
            prev_deadline = None;
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(EngineMsg::Add(r)) => lock(&shared.metrics, |m| sched.add(r, m)),
                Ok(EngineMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => continue,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(EngineMsg::Add(r)) => lock(&shared.metrics, |m| sched.add(r, m)),
                Ok(EngineMsg::Shutdown) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        let now = Instant::now();
        let start = match prev_deadline {
            Some(d) if now.saturating_duration_since(d) < Duration::from_millis(5) => d.min(now),
            _ => now,
        };
        let plan = lock(&shared.metrics, |m| {
            sched.reap_aborted(now, m);
            sched.schedule(now, m)
        });
        if plan.work.is_empty() {
            // Nothing fits (e.g. every sequence's client left): wait for new work.
            prev_deadline = None;
            if sched.is_idle() {
                continue;
            }
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        let mut us = step_time_us(
            &config.engine,
            plan.prefill_tokens,
            plan.decode_seqs,
            plan.kv_tokens,
        );
        if config.engine.jitter > 0.0 {
            us *= (1.0 + config.engine.jitter * jitter_rng.normal().clamp(-3.0, 3.0)).max(0.0);
        }
        let deadline = start + Duration::from_nanos((us * 1000.0) as u64);
        let produced = lock(&shared.metrics, |m| sched.complete(&plan, m));
        let overshoot = wait_until(deadline, spin);
        spin = next_spin(spin, overshoot, spin_floor, spin_cap);
        let end = Instant::now();
        let late = end.saturating_duration_since(deadline);
        lock(&shared.metrics, |m| sched.deliver(produced, end, m));
        prev_deadline = Some(deadline);
        if let Ok(mut t) = shared.timing.lock() {
            t.record(late);
        }
    }
}

fn lock<T>(m: &Mutex<Metrics>, f: impl FnOnce(&mut Metrics) -> T) -> T {
    match m.lock() {
        Ok(mut g) => f(&mut g),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    fn config(blocks: u32, max_seqs: u32, batched: u32) -> SimConfig {
        let mut c = SimConfig::default();
        c.engine.num_gpu_blocks = blocks;
        c.engine.max_num_seqs = max_seqs;
        c.engine.max_num_batched_tokens = batched;
        c.engine.block_size = 4;
        c.engine.enable_prefix_caching = false;
        c.vocab_size = 1000;
        c
    }

    fn req(prompt: Vec<u32>, max_tokens: u32) -> (SeqRequest, UnboundedReceiver<Event>) {
        let (tx, rx) = unbounded_channel();
        let r = SeqRequest {
            prompt: prompt.into(),
            params: SeqParams {
                max_tokens,
                min_tokens: 0,
                ignore_eos: true,
                stop: Arc::from(Vec::new()),
                stop_token_ids: Arc::from(Vec::new()),
                seed: 1,
                n: 1,
            },
            choice: 0,
            arrival: Instant::now(),
            events: tx,
        };
        (r, rx)
    }

    fn step(s: &mut Scheduler, m: &mut Metrics) -> StepPlan {
        let now = Instant::now();
        let plan = s.schedule(now, m);
        let produced = s.complete(&plan, m);
        s.deliver(produced, now, m);
        plan
    }

    fn tokens(rx: &mut UnboundedReceiver<Event>) -> Vec<u32> {
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::Token { token, .. } = e {
                v.push(token);
            }
        }
        v
    }

    #[test]
    fn spin_window_follows_the_timers_overshoot() {
        let us = Duration::from_micros;
        let (floor, cap) = (us(200), us(1000));
        // Sharp timers: the window stays at the floor.
        assert_eq!(next_spin(floor, us(20), floor, cap), floor);
        // A late wake-up widens it at once to twice the overshoot...
        assert_eq!(next_spin(floor, us(300), floor, cap), us(600));
        // ...never beyond the cap...
        assert_eq!(next_spin(us(600), us(3000), floor, cap), cap);
        // ...and prompt wake-ups narrow it by 1/64 of the gap per step.
        assert_eq!(next_spin(us(840), us(10), floor, cap), us(830));
        let mut w = cap;
        for _ in 0..1000 {
            w = next_spin(w, Duration::ZERO, floor, cap);
        }
        assert!(w < us(201), "{w:?}");
        // A floor of zero turns spinning off whatever the timers do.
        assert_eq!(
            next_spin(us(500), us(400), Duration::ZERO, cap),
            Duration::ZERO
        );
        // A machine whose sleeps always wake 300 us late: from the second
        // step on, the window covers it and the steps are on time.
        let mut w = floor;
        let mut late = Vec::new();
        for _ in 0..10 {
            late.push(us(300).saturating_sub(w));
            w = next_spin(w, us(300), floor, cap);
        }
        assert_eq!(late[0], us(100));
        assert!(late[1..].iter().all(|l| l.is_zero()), "{late:?}");
    }

    #[test]
    fn step_lateness_reports_mean_p99_and_max() {
        let mut l = StepLateness::new();
        assert_eq!(l.timing(), StepTiming::default());
        // 98 steps on time, one 1 ms late, one 5 ms late: the p99 is the
        // 99th of the 100 sorted values, 1 ms (within hdrhistogram's 0.1%).
        for _ in 0..98 {
            l.record(Duration::ZERO);
        }
        l.record(Duration::from_millis(1));
        l.record(Duration::from_millis(5));
        let t = l.timing();
        assert_eq!(t.steps, 100);
        assert!((t.mean_late_us - 60.0).abs() < 1e-9, "{t:?}");
        assert!((t.p99_late_us - 1000.0).abs() <= 1.0, "{t:?}");
        assert!((t.max_late_us - 5000.0).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn step_time_formula() {
        let c = EngineConfig {
            step_overhead_us: 100.0,
            prefill_us_per_token: 2.0,
            decode_us_per_seq: 10.0,
            decode_us_per_kv_token: 0.5,
            ..EngineConfig::default()
        };
        assert_eq!(step_time_us(&c, 50, 3, 40), 100.0 + 100.0 + 30.0 + 20.0);
    }

    #[test]
    fn chunked_prefill_then_one_token_per_step() {
        let c = config(100, 8, 10);
        let mut m = Metrics::new(0.0, c.max_model_len);
        let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
        let (r, mut rx) = req((0..25).collect(), 3);
        s.add(r, &mut m);
        // 25 prompt tokens with a budget of 10: 10, 10, 5 (the last chunk samples a token).
        assert_eq!(step(&mut s, &mut m).prefill_tokens, 10);
        assert_eq!(step(&mut s, &mut m).prefill_tokens, 10);
        assert!(tokens(&mut rx).is_empty());
        assert_eq!(step(&mut s, &mut m).prefill_tokens, 5);
        assert_eq!(tokens(&mut rx).len(), 1);
        let p = step(&mut s, &mut m);
        assert_eq!((p.prefill_tokens, p.decode_seqs, p.kv_tokens), (0, 1, 26));
        step(&mut s, &mut m);
        assert_eq!(tokens(&mut rx).len(), 2);
        assert!(s.is_idle());
        assert_eq!(m.generation_tokens, 3);
        assert_eq!(m.prompt_tokens, 25);
        assert_eq!(s.kv_usage(), 0.0);
    }

    #[test]
    fn max_num_seqs_limits_the_batch_and_the_rest_waits() {
        let c = config(1000, 2, 1000);
        let mut m = Metrics::new(0.0, c.max_model_len);
        let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
        let mut rxs = Vec::new();
        for _ in 0..3 {
            let (r, rx) = req(vec![1; 8], 2);
            s.add(r, &mut m);
            rxs.push(rx);
        }
        let p = step(&mut s, &mut m);
        assert_eq!(p.work.len(), 2);
        assert_eq!((s.num_running(), s.num_waiting()), (2, 1));
        step(&mut s, &mut m); // both finish (2 tokens each)
        assert_eq!(s.num_running(), 0);
        let p = step(&mut s, &mut m);
        assert_eq!(p.work.len(), 1);
    }

    #[test]
    fn full_kv_cache_preempts_the_newest_and_recomputes_it() {
        // 4 blocks of 4 tokens; two sequences of 7-token prompts need 2 blocks each and a third
        // block each as they grow past 8 tokens.
        let c = config(4, 8, 100);
        let mut m = Metrics::new(0.0, c.max_model_len);
        let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
        let (a, mut rxa) = req(vec![5; 7], 6);
        let (b, mut rxb) = req(vec![6; 7], 6);
        s.add(a, &mut m);
        s.add(b, &mut m);
        step(&mut s, &mut m); // both prefilled: 8 tokens each, 2 blocks each, pool full
        assert_eq!(s.kv_usage(), 1.0);
        let p = step(&mut s, &mut m); // a computes its 8th token in block 2; b's 9th needs block 3
        assert_eq!(p.preempted, 0);
        let p = step(&mut s, &mut m); // a's 9th token needs a third block: b is preempted
        assert_eq!(p.preempted, 1);
        assert_eq!(m.preemptions, 1);
        assert_eq!((s.num_running(), s.num_waiting()), (1, 1));
        while !s.is_idle() {
            step(&mut s, &mut m);
        }
        let ta = tokens(&mut rxa);
        let tb = tokens(&mut rxb);
        assert_eq!((ta.len(), tb.len()), (6, 6));
        // Recompute does not change what b generates.
        let c2 = config(100, 8, 100);
        let mut m2 = Metrics::new(0.0, c2.max_model_len);
        let mut s2 = Scheduler::new(&c2, Arc::new(Tokenizer::new(c2.vocab_size)));
        let (b2, mut rxb2) = req(vec![6; 7], 6);
        s2.add(b2, &mut m2);
        while !s2.is_idle() {
            step(&mut s2, &mut m2);
        }
        assert_eq!(tokens(&mut rxb2), tb);
    }

    #[test]
    fn prefix_cache_hits_shared_block_aligned_prefixes() {
        let mut c = config(100, 8, 1000);
        c.engine.enable_prefix_caching = true;
        let mut m = Metrics::new(0.0, c.max_model_len);
        let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
        let prefix: Vec<u32> = (100..110).collect(); // 2 full blocks + 2 tokens
        let (a, _rxa) = req(prefix.clone(), 1);
        s.add(a, &mut m);
        step(&mut s, &mut m);
        assert!(s.is_idle());
        let mut p2 = prefix;
        p2.extend([1, 2, 3]);
        let (b, _rxb) = req(p2, 1);
        s.add(b, &mut m);
        let plan = step(&mut s, &mut m);
        assert_eq!(plan.prefill_tokens, 13 - 8);
        assert_eq!((m.prefix_queries, m.prefix_hits), (10 + 13, 8));
        // A different first block shares nothing.
        let (c3, _rxc) = req((200..213).collect(), 1);
        s.add(c3, &mut m);
        assert_eq!(step(&mut s, &mut m).prefill_tokens, 13);
    }

    #[test]
    fn outputs_depend_on_seed_and_prompt_only() {
        let c = config(100, 8, 100);
        let run = |prompt: Vec<u32>, seed: u64| {
            let mut m = Metrics::new(0.0, c.max_model_len);
            let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
            let (mut r, mut rx) = req(prompt, 8);
            r.params.seed = seed;
            s.add(r, &mut m);
            while !s.is_idle() {
                step(&mut s, &mut m);
            }
            tokens(&mut rx)
        };
        assert_eq!(run(vec![1, 2, 3], 5), run(vec![1, 2, 3], 5));
        assert_ne!(run(vec![1, 2, 3], 5), run(vec![1, 2, 4], 5));
        assert_ne!(run(vec![1, 2, 3], 5), run(vec![1, 2, 3], 6));
    }

    #[test]
    fn eos_ends_sequences_with_a_realistic_mean_length() {
        let mut c = config(100_000, 256, 100_000);
        c.eos_probability = 0.05;
        let mut m = Metrics::new(0.0, c.max_model_len);
        let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
        let mut rxs = Vec::new();
        for i in 0..200u32 {
            let (mut r, rx) = req(vec![i, 1, 2], 10_000);
            r.params.ignore_eos = false;
            s.add(r, &mut m);
            rxs.push(rx);
        }
        while !s.is_idle() {
            step(&mut s, &mut m);
        }
        let lens: Vec<usize> = rxs.iter_mut().map(|rx| tokens(rx).len()).collect();
        let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
        assert!((15.0..25.0).contains(&mean), "mean length {mean}");
    }
    #[test]
    fn replay_answers_known_prompts_with_the_reference_and_samples_the_rest() {
        let mut c = config(1000, 8, 1000);
        c.eos_probability = 0.0;
        c.replay = Some(Arc::new(Replay::new([
            (vec![10, 11, 12], vec![500, 2, 501]),
            (vec![20], vec![600]),
        ])));
        let run = |prompt: Vec<u32>, min_tokens: u32, ignore_eos: bool| {
            let mut m = Metrics::new(0.0, c.max_model_len);
            let mut s = Scheduler::new(&c, Arc::new(Tokenizer::new(c.vocab_size)));
            let (mut r, mut rx) = req(prompt, 6);
            r.params.min_tokens = min_tokens;
            r.params.ignore_eos = ignore_eos;
            s.add(r, &mut m);
            while !s.is_idle() {
                step(&mut s, &mut m);
            }
            tokens(&mut rx)
        };
        // Exactly the reference; a reference token equal to the EOS id does
        // not end it, and no EOS token is added after it.
        assert_eq!(run(vec![10, 11, 12], 1, false), vec![500, 2, 501]);
        // min_tokens past the reference, or ignore_eos: sampled tokens
        // follow until max_tokens (6).
        let longer = run(vec![20], 3, false);
        assert_eq!(longer.len(), 6);
        assert_eq!(longer[0], 600);
        let ignored = run(vec![10, 11, 12], 0, true);
        assert_eq!((ignored.len(), &ignored[..3]), (6, &[500, 2, 501][..]));
        // A prompt not in the table is sampled as without replay.
        let unknown = run(vec![30], 0, false);
        assert_eq!(unknown.len(), 6);
        assert!(unknown.iter().all(|&t| t >= 7));
    }
}
