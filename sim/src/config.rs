//! Simulator configuration: model shape, performance model, faults, profiles.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::replay::Replay;

/// The profiles shipped with the crate (a JSON object: profile name -> partial [`SimConfig`]).
pub const BUILTIN_PROFILES: &str = include_str!("../profiles.json");

/// The profile [`SimConfig::default`] is built from.
pub const DEFAULT_PROFILE: &str = "llama3.1-8b-h100";

/// Everything the simulator needs. Every field has a default, so a profile or a config file
/// names only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// The model name served by /v1/models and echoed in responses.
    pub model: String,
    /// Longest prompt + output a request may have (vLLM's `max_model_len`).
    pub max_model_len: u32,
    /// Vocabulary size of the built-in tokenizer; generated ids fall in `[3, vocab_size)`.
    pub vocab_size: u32,
    /// Chance that a generated token is EOS (after `min_tokens`, unless `ignore_eos`); the mean
    /// natural output length is about `1 / eos_probability`.
    pub eos_probability: f64,
    /// Seed of every random choice (outputs when the request has no seed, jitter, faults).
    pub seed: u64,
    /// Send the final usage chunk even when the request did not ask for it
    /// (vLLM's `--enable-force-include-usage`).
    pub force_include_usage: bool,
    /// Also expose the removed metric names (`vllm:gpu_cache_usage_perc`,
    /// `vllm:gpu_prefix_cache_*`, `vllm:time_per_output_token_seconds`).
    pub legacy_metric_names: bool,
    /// The continuous-batching engine and its step-time model.
    pub engine: EngineConfig,
    /// Fault injection.
    pub faults: FaultConfig,
    /// Ground-truth per-request log.
    pub ground_truth: GroundTruthConfig,
    /// Replay mode: prompts found in this table are answered with its output
    /// tokens (then EOS) instead of sampled ones. Data, not a profile
    /// setting, so never read from or written to JSON.
    #[serde(skip)]
    pub replay: Option<Arc<Replay>>,
}

/// The engine: scheduler limits, KV cache and the step-time model.
///
/// One engine step takes
/// `step_overhead_us + prefill_us_per_token * P + decode_us_per_seq * D + decode_us_per_kv_token * K`
/// microseconds, times `(1 + jitter * z)` with `z` a seeded standard normal clamped to ±3, where
/// `P` is the number of uncached prompt tokens computed in the step (chunked prefill included),
/// `D` the number of sequences decoding one token and `K` the total context length (KV tokens) of
/// those sequences (attention reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Most sequences running at once (vLLM `--max-num-seqs`).
    pub max_num_seqs: u32,
    /// Most tokens computed in one step (vLLM `--max-num-batched-tokens`); longer prompts are
    /// prefilled in chunks.
    pub max_num_batched_tokens: u32,
    /// Tokens per KV-cache block.
    pub block_size: u32,
    /// KV-cache blocks; when they run out the newest running sequence is preempted (recompute).
    pub num_gpu_blocks: u32,
    /// Reuse KV blocks of identical block-aligned prompt prefixes (LRU eviction).
    pub enable_prefix_caching: bool,
    /// Fixed cost of every step, in microseconds.
    pub step_overhead_us: f64,
    /// Cost per prompt token computed, in microseconds.
    pub prefill_us_per_token: f64,
    /// Cost per decoding sequence, in microseconds.
    pub decode_us_per_seq: f64,
    /// Cost per KV token attended by decoding sequences, in microseconds.
    pub decode_us_per_kv_token: f64,
    /// Relative standard deviation of the step time (0 = none).
    pub jitter: f64,
    /// The engine thread sleeps until at least this many microseconds before a step's deadline
    /// and spins for the rest, because OS timers wake late by tens of microseconds to a
    /// millisecond. 0 turns spinning off.
    pub spin_us: u64,
    /// The spin window grows past `spin_us`, up to this, while sleeps wake later than it allows
    /// (to twice the overshoot seen), and shrinks back when they wake on time.
    pub max_spin_us: u64,
}

/// Faults, each drawn from a generator seeded by `SimConfig::seed` and the request's arrival
/// number, so a sequential client sees the same faults on every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Answer a generation request with this HTTP status instead of serving it.
    pub error_rates: Vec<ErrorRate>,
    /// Chance to stall before the first token.
    pub stall_first_probability: f64,
    /// Chance, per streamed chunk after the first, to stall.
    pub stall_mid_probability: f64,
    /// How long a stall lasts, in milliseconds.
    pub stall_ms: u64,
    /// Chance per request that its stream is cut (connection dropped without `[DONE]`) after a
    /// random number of chunks.
    pub disconnect_probability: f64,
    /// Chance per request that one chunk is malformed (invalid JSON or broken SSE framing).
    pub malformed_probability: f64,
    /// Chance per request that the stream ends with a vLLM error event then `[DONE]`.
    pub error_event_probability: f64,
    /// /health answers 503 for this long after start, in seconds.
    pub unready_secs: f64,
    /// New connections are accepted only this long after start, in milliseconds.
    pub accept_delay_ms: u64,
    /// After this many generation requests, the server dies: it stops accepting, drops every
    /// connection and the listening socket.
    pub refuse_after: Option<u64>,
}

/// One HTTP status and the chance a generation request gets it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRate {
    /// HTTP status code (e.g. 500, 429, 503).
    pub status: u16,
    /// Probability in [0, 1].
    pub probability: f64,
}

/// Where ground-truth records go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct GroundTruthConfig {
    /// Append one JSON line per finished request to this file (created; never overwritten).
    pub file: Option<PathBuf>,
    /// Keep the records in memory for [`crate::SimHandle::ground_truth`].
    pub in_memory: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            model: "meta-llama/Llama-3.1-8B-Instruct".to_owned(),
            max_model_len: 131_072,
            vocab_size: 128_256,
            eos_probability: 0.005,
            seed: 0,
            force_include_usage: false,
            legacy_metric_names: false,
            engine: EngineConfig::default(),
            faults: FaultConfig::default(),
            ground_truth: GroundTruthConfig::default(),
            replay: None,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        // Llama-3.1-8B bf16 on one H100: see profiles.json for the derivation.
        EngineConfig {
            max_num_seqs: 256,
            max_num_batched_tokens: 8192,
            block_size: 16,
            num_gpu_blocks: 26_000,
            enable_prefix_caching: true,
            step_overhead_us: 6000.0,
            prefill_us_per_token: 40.0,
            decode_us_per_seq: 30.0,
            decode_us_per_kv_token: 0.04,
            jitter: 0.02,
            spin_us: 200,
            max_spin_us: 1000,
        }
    }
}

impl SimConfig {
    /// A shipped profile by name (see [`profile_names`]).
    pub fn from_profile(name: &str) -> Result<SimConfig, SimError> {
        profile_from_text(BUILTIN_PROFILES, name, "built-in profiles")
    }

    /// A profile from a JSON profiles file (an object: name -> partial config).
    pub fn from_profiles_file(path: &Path, name: &str) -> Result<SimConfig, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            context: format!("reading profiles file {}", path.display()),
            source,
        })?;
        profile_from_text(&text, name, &path.display().to_string())
    }

    /// Checks the values a server cannot run with.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &str, why: &str| Err(SimError::Config(format!("{field}: {why}")));
        let e = &self.engine;
        if e.max_num_seqs == 0 {
            return bad("engine.max_num_seqs", "must be at least 1");
        }
        if e.max_num_batched_tokens == 0 {
            return bad("engine.max_num_batched_tokens", "must be at least 1");
        }
        if e.block_size == 0 {
            return bad("engine.block_size", "must be at least 1");
        }
        if e.num_gpu_blocks == 0 {
            return bad("engine.num_gpu_blocks", "must be at least 1");
        }
        for (name, v) in [
            ("engine.step_overhead_us", e.step_overhead_us),
            ("engine.prefill_us_per_token", e.prefill_us_per_token),
            ("engine.decode_us_per_seq", e.decode_us_per_seq),
            ("engine.decode_us_per_kv_token", e.decode_us_per_kv_token),
            ("engine.jitter", e.jitter),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, "must be a finite number >= 0");
            }
        }
        if self.vocab_size < 4 {
            return bad("vocab_size", "must be at least 4");
        }
        if self.max_model_len == 0 {
            return bad("max_model_len", "must be at least 1");
        }
        let f = &self.faults;
        let mut probs = vec![
            ("eos_probability", self.eos_probability),
            ("faults.stall_first_probability", f.stall_first_probability),
            ("faults.stall_mid_probability", f.stall_mid_probability),
            ("faults.disconnect_probability", f.disconnect_probability),
            ("faults.malformed_probability", f.malformed_probability),
            ("faults.error_event_probability", f.error_event_probability),
        ];
        let total: f64 = f.error_rates.iter().map(|r| r.probability).sum();
        probs.push(("faults.error_rates (sum)", total));
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return bad(name, "must be a probability in [0, 1]");
            }
        }
        for r in &f.error_rates {
            if !(400..=599).contains(&r.status) {
                return bad("faults.error_rates", "status must be in 400..=599");
            }
        }
        if !(f.unready_secs.is_finite() && f.unready_secs >= 0.0) {
            return bad("faults.unready_secs", "must be a finite number >= 0");
        }
        Ok(())
    }
}

/// Names of the shipped profiles.
pub fn profile_names() -> Vec<String> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(BUILTIN_PROFILES)
        .map(|m| m.keys().filter(|k| !k.starts_with('_')).cloned().collect())
        .unwrap_or_default()
}

fn profile_from_text(text: &str, name: &str, origin: &str) -> Result<SimConfig, SimError> {
    let mut all: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| SimError::Config(format!("{origin}: invalid JSON: {e}")))?;
    let Some(value) = all.remove(name) else {
        let mut names: Vec<&String> = all.keys().filter(|k| !k.starts_with('_')).collect();
        names.sort();
        return Err(SimError::Config(format!(
            "{origin}: no profile named {name:?} (have: {names:?})"
        )));
    };
    let config: SimConfig = serde_json::from_value(value)
        .map_err(|e| SimError::Config(format!("{origin}: profile {name:?}: {e}")))?;
    config.validate()?;
    Ok(config)
}
