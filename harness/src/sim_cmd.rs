//! `harness sim`: serve the built-in vLLM-compatible simulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// Arguments of `harness sim`. Every model knob overrides the chosen profile.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Profile to start from (llama3.1-8b-h100, llama2-70b-8xh100, tiny-fast, throughput-bench).
    #[arg(long, default_value = sim::DEFAULT_PROFILE)]
    pub profile: String,
    /// A JSON profiles file (name -> partial config) to take --profile from instead of the
    /// built-in ones.
    #[arg(long)]
    pub profiles_file: Option<PathBuf>,
    /// Served model name.
    #[arg(long)]
    pub model: Option<String>,
    /// Longest prompt + output.
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// Vocabulary size of the built-in tokenizer.
    #[arg(long)]
    pub vocab_size: Option<u32>,
    /// Chance per generated token to be EOS (mean natural output length ~ 1/p).
    #[arg(long)]
    pub eos_probability: Option<f64>,
    /// Seed of outputs (when requests carry none), jitter and faults.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most sequences running at once.
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// Most tokens computed per step (chunked prefill beyond it).
    #[arg(long)]
    pub max_num_batched_tokens: Option<u32>,
    /// Tokens per KV block.
    #[arg(long)]
    pub block_size: Option<u32>,
    /// KV blocks.
    #[arg(long)]
    pub num_gpu_blocks: Option<u32>,
    /// Prefix caching on or off.
    #[arg(long)]
    pub enable_prefix_caching: Option<bool>,
    /// Fixed cost of a step (µs).
    #[arg(long)]
    pub step_overhead_us: Option<f64>,
    /// Cost per prompt token computed (µs).
    #[arg(long)]
    pub prefill_us_per_token: Option<f64>,
    /// Cost per decoding sequence (µs).
    #[arg(long)]
    pub decode_us_per_seq: Option<f64>,
    /// Cost per KV token attended while decoding (µs).
    #[arg(long)]
    pub decode_us_per_kv_token: Option<f64>,
    /// Relative standard deviation of step times.
    #[arg(long)]
    pub jitter: Option<f64>,
    /// Least sleep/spin threshold of the engine thread (µs); 0 turns spinning off.
    #[arg(long)]
    pub spin_us: Option<u64>,
    /// Most the threshold grows to while the OS's sleeps wake late (µs).
    #[arg(long)]
    pub max_spin_us: Option<u64>,
    /// Always send the final usage chunk (vLLM --enable-force-include-usage).
    #[arg(long)]
    pub force_include_usage: bool,
    /// Also expose removed metric names (gpu_cache_usage_perc, time_per_output_token_seconds).
    #[arg(long)]
    pub legacy_metric_names: bool,
    /// Injected HTTP errors, STATUS:PROBABILITY, repeatable (e.g. 500:0.01 --error-rate 429:0.02).
    #[arg(long = "error-rate", value_parser = parse_error_rate)]
    pub error_rates: Vec<sim::ErrorRate>,
    /// Chance to stall before the first token.
    #[arg(long)]
    pub stall_first_probability: Option<f64>,
    /// Chance per chunk to stall mid-stream.
    #[arg(long)]
    pub stall_mid_probability: Option<f64>,
    /// Stall length (ms).
    #[arg(long)]
    pub stall_ms: Option<u64>,
    /// Chance per request to drop the connection mid-stream.
    #[arg(long)]
    pub disconnect_probability: Option<f64>,
    /// Chance per request to send one malformed chunk.
    #[arg(long)]
    pub malformed_probability: Option<f64>,
    /// Chance per request to end the stream with a vLLM error event.
    #[arg(long)]
    pub error_event_probability: Option<f64>,
    /// /health answers 503 for this many seconds after start.
    #[arg(long)]
    pub unready_secs: Option<f64>,
    /// Accept no connection during this many milliseconds after start.
    #[arg(long)]
    pub accept_delay_ms: Option<u64>,
    /// Die (stop accepting, drop every connection) after this many generation requests.
    #[arg(long)]
    pub refuse_after: Option<u64>,
    /// Write one ground-truth JSON line per request to FILE (must not exist).
    #[arg(long, value_name = "FILE")]
    pub ground_truth: Option<PathBuf>,
    /// Replay mode: answer each prompt of this dataset (cnn_eval.json, a
    /// llama2-70b pickle, ...) with its reference output instead of sampled
    /// tokens; other prompts are sampled as usual.
    #[arg(long, value_name = "DATASET")]
    pub replay: Option<PathBuf>,
    /// tokenizer.json to encode the replayed references with (default: the
    /// profile's own vocabulary, lossy for words outside it).
    #[arg(long, value_name = "FILE", requires = "replay")]
    pub tokenizer: Option<PathBuf>,
}

fn parse_error_rate(s: &str) -> Result<sim::ErrorRate, String> {
    let (status, p) = s
        .split_once(':')
        .ok_or_else(|| format!("expected STATUS:PROBABILITY, got {s:?}"))?;
    let status: u16 = status
        .trim()
        .parse()
        .map_err(|e| format!("status in {s:?}: {e}"))?;
    let probability: f64 = p
        .trim()
        .parse()
        .map_err(|e| format!("probability in {s:?}: {e}"))?;
    Ok(sim::ErrorRate {
        status,
        probability,
    })
}

impl SimArgs {
    /// The simulator configuration these flags describe.
    pub fn to_config(&self) -> anyhow::Result<sim::SimConfig> {
        let mut c = match &self.profiles_file {
            Some(path) => sim::SimConfig::from_profiles_file(path, &self.profile)?,
            None => sim::SimConfig::from_profile(&self.profile)?,
        };
        fn set<T: Clone>(dst: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *dst = v.clone();
            }
        }
        set(&mut c.model, &self.model);
        set(&mut c.max_model_len, &self.max_model_len);
        set(&mut c.vocab_size, &self.vocab_size);
        set(&mut c.eos_probability, &self.eos_probability);
        set(&mut c.seed, &self.seed);
        let e = &mut c.engine;
        set(&mut e.max_num_seqs, &self.max_num_seqs);
        set(&mut e.max_num_batched_tokens, &self.max_num_batched_tokens);
        set(&mut e.block_size, &self.block_size);
        set(&mut e.num_gpu_blocks, &self.num_gpu_blocks);
        set(&mut e.enable_prefix_caching, &self.enable_prefix_caching);
        set(&mut e.step_overhead_us, &self.step_overhead_us);
        set(&mut e.prefill_us_per_token, &self.prefill_us_per_token);
        set(&mut e.decode_us_per_seq, &self.decode_us_per_seq);
        set(&mut e.decode_us_per_kv_token, &self.decode_us_per_kv_token);
        set(&mut e.jitter, &self.jitter);
        set(&mut e.spin_us, &self.spin_us);
        set(&mut e.max_spin_us, &self.max_spin_us);
        c.force_include_usage |= self.force_include_usage;
        c.legacy_metric_names |= self.legacy_metric_names;
        let f = &mut c.faults;
        if !self.error_rates.is_empty() {
            f.error_rates = self.error_rates.clone();
        }
        set(
            &mut f.stall_first_probability,
            &self.stall_first_probability,
        );
        set(&mut f.stall_mid_probability, &self.stall_mid_probability);
        set(&mut f.stall_ms, &self.stall_ms);
        set(&mut f.disconnect_probability, &self.disconnect_probability);
        set(&mut f.malformed_probability, &self.malformed_probability);
        set(
            &mut f.error_event_probability,
            &self.error_event_probability,
        );
        set(&mut f.unready_secs, &self.unready_secs);
        set(&mut f.accept_delay_ms, &self.accept_delay_ms);
        if self.refuse_after.is_some() {
            f.refuse_after = self.refuse_after;
        }
        if self.ground_truth.is_some() {
            c.ground_truth.file = self.ground_truth.clone();
        }
        if let Some(path) = &self.replay {
            let data = dataset::Dataset::load(path, &dataset::DatasetOptions::new())
                .with_context(|| format!("--replay {}", path.display()))?;
            let tokenizer =
                crate::replay::replay_tokenizer(self.tokenizer.as_deref(), &self.profile)?;
            c.replay = Some(std::sync::Arc::new(crate::replay::replay_table(
                &data,
                &*tokenizer,
            )?));
        }
        c.validate()?;
        Ok(c)
    }
}

/// `harness sim`: serves until Ctrl-C. Prints nothing on stdout (the
/// address goes to the log).
pub fn main(
    args: &SimArgs,
    _out: &mut dyn std::io::Write,
) -> anyhow::Result<crate::outcome::Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))?;
    Ok(crate::outcome::Outcome::Success)
}

async fn serve(args: &SimArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let listener = sim::listen(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let handle = sim::Simulator::start(config, listener)?;
    tracing::info!(
        "simulator ({} profile) serving on {}",
        args.profile,
        handle.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn flags_override_the_profile() {
        let cli = Cli::parse_from([
            "x",
            "--profile",
            "tiny-fast",
            "--max-num-seqs",
            "7",
            "--error-rate",
            "500:0.01",
            "--error-rate",
            "429:0.02",
            "--enable-prefix-caching",
            "false",
            "--refuse-after",
            "3",
        ]);
        let c = cli.sim.to_config().unwrap();
        assert_eq!(c.model, "sim-tiny");
        assert_eq!(c.engine.max_num_seqs, 7);
        assert!(!c.engine.enable_prefix_caching);
        assert_eq!(c.faults.error_rates.len(), 2);
        assert_eq!(c.faults.error_rates[1].status, 429);
        assert_eq!(c.faults.refuse_after, Some(3));
    }

    #[test]
    fn bad_values_are_named() {
        let cli = Cli::parse_from(["x", "--disconnect-probability", "2"]);
        let e = cli.sim.to_config().unwrap_err().to_string();
        assert!(e.contains("faults.disconnect_probability"), "{e}");
        assert!(Cli::try_parse_from(["x", "--error-rate", "500"]).is_err());
        let cli = Cli::parse_from(["x", "--profile", "nope"]);
        assert!(
            cli.sim
                .to_config()
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }
}
