//! Metrics time series: one [`MetricsSample`] per source per collection
//! interval, in `metrics.jsonl`.
//!
//! Every source is mapped onto one vocabulary ([`names`]) so reports can chart
//! "KV-cache usage" whether it came from vLLM's `vllm:kv_cache_usage_perc`,
//! its older `vllm:gpu_cache_usage_perc` or a llama.cpp server.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::RunDirError;

/// Where a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// A backend's Prometheus `/metrics`.
    Server,
    /// One GPU, through NVML.
    Gpu,
    /// The host the harness runs on.
    System,
    /// The harness process itself.
    Process,
}

/// One source's readings at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    /// Run clock: ns since the run started.
    pub t_ns: u64,
    /// Kind of source.
    pub source: MetricSource,
    /// Which one: backend URL, `gpu0`, host name, `harness`.
    pub instance: String,
    /// Readings by vocabulary name ([`names`]); rates are per second over
    /// the interval that ended at `t_ns`.
    pub values: BTreeMap<String, f64>,
}

/// The metric vocabulary. Units are in the names: `_s` seconds, `_bytes`,
/// `_per_s` per second, `_frac` a fraction 0..1, `_pct` percent 0..100.
pub mod names {
    /// Server: requests being processed.
    pub const REQUESTS_RUNNING: &str = "requests_running";
    /// Server: requests queued.
    pub const REQUESTS_WAITING: &str = "requests_waiting";
    /// Server: KV-cache blocks in use, 0..1.
    pub const KV_CACHE_USAGE_FRAC: &str = "kv_cache_usage_frac";
    /// Server: prompt tokens processed per second.
    pub const PROMPT_TOKENS_PER_S: &str = "prompt_tokens_per_s";
    /// Server: tokens generated per second.
    pub const GENERATION_TOKENS_PER_S: &str = "generation_tokens_per_s";
    /// Server: requests finished successfully per second.
    pub const REQUEST_SUCCESS_PER_S: &str = "request_success_per_s";
    /// Server: requests failed or aborted per second.
    pub const REQUEST_FAILURE_PER_S: &str = "request_failure_per_s";
    /// Server: preemptions per second.
    pub const PREEMPTIONS_PER_S: &str = "preemptions_per_s";
    /// Server: prefix-cache hit rate over the interval, 0..1.
    pub const PREFIX_CACHE_HIT_FRAC: &str = "prefix_cache_hit_frac";
    /// Server histogram quantiles over the interval: `<metric>_p50_s` etc.
    /// Metric stems: time to first token.
    pub const TTFT: &str = "ttft";
    /// Stem: inter-token latency.
    pub const ITL: &str = "itl";
    /// Stem: end-to-end request latency.
    pub const E2E: &str = "e2e";
    /// Stem: time queued.
    pub const QUEUE: &str = "queue";
    /// Stem: prefill time.
    pub const PREFILL: &str = "prefill";
    /// Stem: decode time.
    pub const DECODE: &str = "decode";

    /// GPU: utilization, 0..100.
    pub const GPU_UTILIZATION_PCT: &str = "gpu_utilization_pct";
    /// GPU: memory-controller utilization, 0..100.
    pub const GPU_MEMORY_UTILIZATION_PCT: &str = "gpu_memory_utilization_pct";
    /// GPU: memory used.
    pub const GPU_MEMORY_USED_BYTES: &str = "gpu_memory_used_bytes";
    /// GPU: memory free.
    pub const GPU_MEMORY_FREE_BYTES: &str = "gpu_memory_free_bytes";
    /// GPU: memory total.
    pub const GPU_MEMORY_TOTAL_BYTES: &str = "gpu_memory_total_bytes";
    /// GPU: temperature in °C.
    pub const GPU_TEMPERATURE_C: &str = "gpu_temperature_c";
    /// GPU: power draw in watts.
    pub const GPU_POWER_W: &str = "gpu_power_w";
    /// GPU: SM clock in MHz.
    pub const GPU_SM_CLOCK_MHZ: &str = "gpu_sm_clock_mhz";
    /// GPU: memory clock in MHz.
    pub const GPU_MEMORY_CLOCK_MHZ: &str = "gpu_memory_clock_mhz";
    /// GPU: NVML clock-throttle reason bit mask.
    pub const GPU_THROTTLE_REASONS: &str = "gpu_throttle_reasons";

    /// Host: CPU busy, 0..100 over all cores.
    pub const CPU_PCT: &str = "cpu_pct";
    /// Host: memory used.
    pub const MEMORY_USED_BYTES: &str = "memory_used_bytes";
    /// Host: memory total.
    pub const MEMORY_TOTAL_BYTES: &str = "memory_total_bytes";
    /// Host: network bytes received per second.
    pub const NET_RX_BYTES_PER_S: &str = "net_rx_bytes_per_s";
    /// Host: network bytes sent per second.
    pub const NET_TX_BYTES_PER_S: &str = "net_tx_bytes_per_s";
    /// Host: disk bytes read per second.
    pub const DISK_READ_BYTES_PER_S: &str = "disk_read_bytes_per_s";
    /// Host: disk bytes written per second.
    pub const DISK_WRITE_BYTES_PER_S: &str = "disk_write_bytes_per_s";

    /// Harness process: CPU, percent of one core.
    pub const PROCESS_CPU_PCT: &str = "process_cpu_pct";
    /// Harness process: resident memory.
    pub const PROCESS_RSS_BYTES: &str = "process_rss_bytes";

    /// `<stem>_p<q>_s`, e.g. `quantile_name(TTFT, "p99")` = `ttft_p99_s`.
    pub fn quantile_name(stem: &str, quantile: &str) -> String {
        format!("{stem}_{quantile}_s")
    }
}

/// Reads a `metrics.jsonl`, skipping a last line cut short by a crash.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsSample>, RunDirError> {
    let file = File::open(path).map_err(crate::io_err(path))?;
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if reader.read_line(&mut buf).map_err(crate::io_err(path))? == 0 {
            break;
        }
        line_no += 1;
        let text = buf.trim_end();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<MetricsSample>(text) {
            Ok(sample) => out.push(sample),
            Err(_) if !buf.ends_with('\n') => break,
            Err(e) => {
                return Err(RunDirError::Parse {
                    path: path.to_path_buf(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(crate::METRICS_FILE);
        let mut values = BTreeMap::new();
        values.insert(names::KV_CACHE_USAGE_FRAC.to_owned(), 0.5);
        values.insert(names::quantile_name(names::TTFT, "p99"), 0.02);
        let sample = MetricsSample {
            t_ns: 1_000_000_000,
            source: MetricSource::Server,
            instance: "http://127.0.0.1:8000".into(),
            values,
        };
        let writer = crate::JsonlWriter::create(&path).unwrap();
        writer.send(sample.clone());
        writer.finish().unwrap();
        let back = read_metrics(&path).unwrap();
        assert_eq!(back, vec![sample]);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("\"ttft_p99_s\":0.02")
        );
    }
}
