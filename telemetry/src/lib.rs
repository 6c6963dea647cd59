//! Metrics collection during runs: Prometheus scrapes of the backends, NVML
//! GPU counters, host and process stats, and the harness's own live metrics.
//!
//! # What the harness calls
//!
//! Start a [`Collector`] inside the tokio runtime, feed LoadGen's
//! [`loadgen::RunObserver`] events to [`LiveMetrics`] and to the collector's
//! [`WindowMarker`] (which marks the performance phase's window), draw
//! [`render_live`] while the run goes, then [`Collector::finish`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use loadgen::{PhaseEnd, PhaseStart, QueryRecord, RunObserver};
//! use telemetry::{Collector, CollectorConfig, LiveMetrics, ScrapeTarget, WindowMarker};
//!
//! /// The harness's observer: records.jsonl writer, live view, window marks.
//! struct Observers { live: Arc<LiveMetrics>, marker: WindowMarker /* , records: ... */ }
//! impl RunObserver for Observers {
//!     fn phase_started(&self, s: &PhaseStart) { self.live.phase_started(s); self.marker.phase_started(s); }
//!     fn query_issued(&self, q: u64, n: usize, t: u64) { self.live.query_issued(q, n, t); }
//!     fn sample_completed(&self, r: QueryRecord) {
//!         self.live.record_completed(&r); // by reference: `r` goes on to records.jsonl
//!     }
//!     fn phase_finished(&self, e: &PhaseEnd) { self.live.phase_finished(e); self.marker.phase_finished(e); }
//! }
//!
//! # async fn run(run_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! let run_start = std::time::Instant::now(); // the zero of records.jsonl's clock
//! let live = Arc::new(LiveMetrics::new());
//! let config = CollectorConfig {
//!     targets: vec![ScrapeTarget::for_backend("http://127.0.0.1:8000")?],
//!     ..CollectorConfig::default() // 1 s interval, NVML, host and process
//! };
//! let collector = Collector::start(config, run_dir, run_start, Some(Arc::clone(&live)))?;
//! // --prometheus-listen ADDR
//! let exporter = telemetry::serve_prometheus("127.0.0.1:9400".parse()?, Arc::clone(&live)).await?;
//! let observer = Arc::new(Observers { live: Arc::clone(&live), marker: collector.window_marker() });
//! // Run LoadGen on a std::thread with `observer`; meanwhile, when stdout is
//! // a terminal, once a second (keeping a snapshot from a few seconds back
//! // for the rates):
//! let view = telemetry::LiveView {
//!     now: live.snapshot(),
//!     window_start: None, // the snapshot of ~5 s ago, once there is one
//!     requests_on_wire: None,
//!     samples_per_request: 1,
//! };
//! let mut frame = Vec::new();
//! telemetry::render_live(&view, 80, &mut frame)?; // -> indicatif
//! // After LoadGen returns:
//! let report = collector.finish().await?; // writes server_summary.json
//! exporter.shutdown().await;
//! # let _ = (observer, frame, report); Ok(()) }
//! ```
//!
//! Without a `RunObserver`, `collector.mark_window_start().wait().await`
//! and `collector.mark_window_end().wait().await` do the same by hand.
//!
//! # Files written into the run directory
//!
//! - `metrics.jsonl`: one [`rundir::MetricsSample`] per source per interval
//!   (two per backend: the normalized view and every series as scraped);
//! - `metrics.csv`: the same, long (one `t_ns,source,instance,metric,value`
//!   row per reading) or wide (one row per round), see
//!   [`rundir::metrics_csv`];
//! - `server_summary.json`: [`rundir::metrics::ServerSummary`], the backends'
//!   own counters and histograms over exactly the measured window.
//!
//! # Overhead
//!
//! `scripts/bench/telemetry_overhead.sh 60 1000 1 3` (release build; one
//! vLLM v1 `/metrics` of ~540 lines served by another process; host and
//! process readings, both files written; no GPU on that machine, so NVML is
//! one failed load): 0.20-0.23% of one core over 60 s, three repeats, on a
//! shared 2-core AMD EPYC VM. Eight backends: 0.65%.
//!
//! # Vocabulary mapping (source name -> our name)
//!
//! Server series are kept as scraped (`server_raw` samples) and mapped onto
//! the normalized view by the table in [`mapping`] (vLLM, llama.cpp, SGLang,
//! TGI), which the README's "Server metrics" section shows.
//! Gauges are summed over label sets (`engine`, ...), except fractions, which
//! are averaged. Counters become per-second rates over each interval, summed
//! over label sets after per-series reset handling. Histograms become
//! per-interval deltas, merged over label sets, reported as the exact mean
//! `<stem>_mean_s` (`_sum / _count`) and, for p50, p90 and p99, the bounds of
//! the bucket holding the quantile, `<stem>_p50_gt_s` and `<stem>_p50_le_s`
//! (the quantile lies in `(gt, le]`; see [`histogram::quantile_bucket`]).
//! No interpolated quantile is reported: within vLLM's coarse buckets it is a
//! guess that can contradict the mean. Where several sources are listed, the first
//! present wins.
//!
//! | source | our name |
//! |---|---|
//! | NVML utilization, memory info, temperature, power, SM/memory clocks, throttle reasons | `gpu_*` |
//! | sysinfo global CPU, memory, network and disk counters | `cpu_pct`, `memory_*`, `net_*`, `disk_*` |
//! | sysinfo, this process | `process_cpu_pct` (of one core), `process_rss_bytes` |

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub mod collector;
pub mod csv;
pub mod fixed_histogram;
pub mod gpu;
pub mod histogram;
pub mod live;
pub mod mapping;
pub mod prom_endpoint;
pub mod prom_parse;
pub mod scrape;
pub mod server;
pub mod slots;
pub mod system;
mod warn;

pub use collector::{
    Clock, Collector, CollectorConfig, CollectorReport, GpuSource, ManualClock, Pending, RunClock,
    WindowMarker,
};
pub use gpu::{GpuError, GpuReader, GpuReading, NvmlGpus};
pub use live::{LiveMetrics, LiveSnapshot, LiveView, RunFigures, RunLabels, render_live};
pub use prom_endpoint::{PrometheusServer, exported_metrics, serve_prometheus};
pub use scrape::{ScrapeError, ScrapeTarget};

/// Errors starting or finishing telemetry. Failures while sampling are
/// warnings, never errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A backend URL that cannot be scraped (credentials redacted).
    #[error("invalid backend url {url}: {reason}")]
    BadUrl {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run-directory file could not be created or written.
    #[error(transparent)]
    RunDir(#[from] rundir::RunDirError),
    /// Another file error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Not called from inside a tokio runtime.
    #[error("telemetry needs a tokio runtime: {0}")]
    NoRuntime(String),
    /// The Prometheus endpoint could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// The GPUs asked for (`--gpus`) are not there.
    #[error("--gpus: {0}")]
    Gpu(#[from] gpu::GpuError),
    /// The collector task died.
    #[error("collector task failed: {0}")]
    Task(String),
}
