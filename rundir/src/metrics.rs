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
    /// A backend's Prometheus `/metrics`, mapped onto the vocabulary
    /// ([`names`]).
    Server,
    /// The same scrape as scraped: every series under its own name
    /// (`family{label="value",...}`), counters and histogram buckets as the
    /// cumulative values the server reported.
    ServerRaw,
    /// One GPU, through NVML.
    Gpu,
    /// The host the harness runs on.
    System,
    /// The harness process itself.
    Process,
}

impl MetricSource {
    /// The name used in files (`server`, `server_raw`, `gpu`, `system`,
    /// `process`), as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricSource::Server => "server",
            MetricSource::ServerRaw => "server_raw",
            MetricSource::Gpu => "gpu",
            MetricSource::System => "system",
            MetricSource::Process => "process",
        }
    }
}

/// One source's readings at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    /// Run clock: ns since the run started.
    pub t_ns: u64,
    /// The collection round (0, 1, ...) the sample belongs to: every source
    /// is read once per round, each at its own `t_ns`. Absent in files
    /// written before rounds were numbered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<u64>,
    /// Kind of source.
    pub source: MetricSource,
    /// Which one: backend URL, `gpu0`, host name, `harness`.
    pub instance: String,
    /// Readings by vocabulary name ([`names`]); rates are per second over
    /// the interval that ended at `t_ns`. For [`MetricSource::ServerRaw`],
    /// by series name as scraped.
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
    /// Server histogram quantiles over the interval, as the bounds of the
    /// bucket holding them (`<metric>_p50_gt_s`, `<metric>_p50_le_s`), and
    /// the exact mean `<metric>_mean_s`.
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
    /// Stem: per-request time per output token (vLLM's
    /// `request_time_per_output_token_seconds`, LoadGen's TPOT definition).
    pub const TPOT: &str = "tpot";

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

    /// `<stem>_<q>_s`: `quantile_name(TTFT, "mean")` = `ttft_mean_s` is the
    /// interval's exact mean (`_sum / _count`).
    pub fn quantile_name(stem: &str, quantile: &str) -> String {
        format!("{stem}_{quantile}_s")
    }

    /// `<stem>_<q>_le_s`, e.g. `ttft_p99_le_s`: the upper bound of the
    /// server's histogram bucket holding quantile `q`. The quantile is at
    /// most this; a server histogram cannot say more (no interpolated
    /// value is reported). Absent when the quantile is past the highest
    /// finite bucket bound.
    pub fn quantile_upper_name(stem: &str, quantile: &str) -> String {
        format!("{stem}_{quantile}_le_s")
    }

    /// `<stem>_<q>_gt_s`, e.g. `ttft_p99_gt_s`: the lower bound of that
    /// bucket. The quantile lies in `(gt, le]`.
    pub fn quantile_lower_name(stem: &str, quantile: &str) -> String {
        format!("{stem}_{quantile}_gt_s")
    }
}

/// The flat CSV copy of `metrics.jsonl` ([`crate::metrics_csv`]): long
/// (one `t_ns,source,instance,metric,value` row per reading, streamed) or
/// wide (one row per collection round).
pub const METRICS_CSV_FILE: &str = "metrics.csv";

/// Server-side statistics over exactly the measured window
/// ([`ServerSummary`]), written when the run ends.
pub const SERVER_SUMMARY_FILE: &str = "server_summary.json";

/// `server_summary.json`: what each backend's own `/metrics` say happened
/// between the scrapes taken at the window's start (first issue) and end
/// (last completion).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// Run clock when the window start was marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start_ns: Option<u64>,
    /// Run clock when the window end was marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end_ns: Option<u64>,
    /// One entry per backend.
    pub backends: Vec<BackendWindow>,
    /// All backends together: counts and rates added, histograms merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<WindowStats>,
    /// Collection ticks skipped because a source was still busy with the
    /// previous one (a slow or unanswered `/metrics`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_ticks: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One backend's part of a [`ServerSummary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendWindow {
    /// Backend, as in [`MetricsSample::instance`].
    pub instance: String,
    /// Run clock of the scrape at the window start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_scrape_ns: Option<u64>,
    /// Run clock of the scrape at the window end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_scrape_ns: Option<u64>,
    /// The statistics, when both scrapes succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<WindowStats>,
    /// Why `stats` is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Server-side statistics between two scrapes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Seconds between the two scrapes.
    pub duration_s: f64,
    /// Counter increases: `prompt_tokens`, `generation_tokens`,
    /// `request_success`, `request_failure`, `preemptions`,
    /// `prefix_cache_queries`, `prefix_cache_hits` (those the server has).
    pub counts: BTreeMap<String, f64>,
    /// Observations per histogram stem ([`names::TTFT`]...).
    pub observations: BTreeMap<String, f64>,
    /// Vocabulary values over the window: `*_per_s` rates,
    /// `prefix_cache_hit_frac`, `<stem>_mean_s`, and per quantile (`p50`,
    /// `p90`, `p99`) the bucket bounds `<stem>_p50_gt_s` / `<stem>_p50_le_s`.
    pub values: BTreeMap<String, f64>,
    /// Server series that went down in the window and were taken to have
    /// restarted (a server restart makes the window suspect).
    #[serde(default)]
    pub counter_resets: u32,
}

/// Reads a `server_summary.json`.
pub fn read_server_summary(path: &Path) -> Result<ServerSummary, RunDirError> {
    let text = std::fs::read_to_string(path).map_err(crate::io_err(path))?;
    serde_json::from_str(&text).map_err(|e| RunDirError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
    })
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
        values.insert(names::quantile_upper_name(names::TTFT, "p99"), 0.02);
        let sample = MetricsSample {
            t_ns: 1_000_000_000,
            tick: Some(3),
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
                .contains("\"ttft_p99_le_s\":0.02")
        );
    }

    #[test]
    fn every_float_reads_back_as_written() {
        // Without serde_json's float_roundtrip, about one value in ten of
        // these came back one ulp off, and metrics.csv written from the
        // file disagreed with the one written while collecting.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(crate::METRICS_FILE);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut values = BTreeMap::new();
        for i in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(i % 12 - 4);
            values.insert(format!("v{i}"), v);
        }
        let sample = MetricsSample {
            t_ns: 1,
            tick: None,
            source: MetricSource::System,
            instance: "h".into(),
            values,
        };
        let writer = crate::JsonlWriter::create(&path).unwrap();
        writer.send(sample.clone());
        writer.finish().unwrap();
        let back = read_metrics(&path).unwrap();
        for (k, v) in &sample.values {
            assert_eq!(back[0].values[k].to_bits(), v.to_bits(), "{k}: {v}");
        }
    }

    #[test]
    fn server_summary_round_trips_and_bad_json_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(SERVER_SUMMARY_FILE);
        let mut stats = WindowStats {
            duration_s: 2.0,
            ..WindowStats::default()
        };
        stats.counts.insert("prompt_tokens".into(), 3072.0);
        stats
            .values
            .insert(names::quantile_upper_name(names::TTFT, "p50"), 0.08);
        let summary = ServerSummary {
            skipped_ticks: 3,
            window_start_ns: Some(1),
            window_end_ns: Some(2),
            backends: vec![BackendWindow {
                instance: "http://127.0.0.1:8000".into(),
                start_scrape_ns: Some(1),
                end_scrape_ns: Some(2),
                stats: Some(stats.clone()),
                error: None,
            }],
            total: Some(stats),
        };
        std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
        assert_eq!(read_server_summary(&path).unwrap(), summary);
        std::fs::write(&path, "{\n  oops").unwrap();
        let err = read_server_summary(&path).unwrap_err().to_string();
        assert!(err.contains("server_summary.json:2:"), "{err}");
    }
}
