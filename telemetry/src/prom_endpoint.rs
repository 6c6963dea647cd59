//! The harness's own metrics in Prometheus text format, and the optional
//! `/metrics` endpoint (`--prometheus-listen ADDR`).
//!
//! Every family, its type, labels and meaning are in [`FAMILIES`] (the
//! client's own series, the collector's server, GPU and host readings, the
//! run's figures); the README's table is [`markdown_table`] of it, and a
//! test keeps the two equal. Names follow Prometheus' conventions: base
//! units in the name (`_seconds`, `_bytes`, `_ratio` for 0..1, `_hertz`,
//! `_celsius`, `_watts`), `_total` for counters only.
//!
//! Every series carries `run_id`, `scenario` and `backend` (the run's
//! backends as run.json names them; a server's own series: that server),
//! once the run has set them ([`LiveMetrics::set_run_labels`]).
//!
//! TTFT, TPOT and latency use vLLM's bucket bounds, and the token-length
//! histograms vLLM's 1-2-5 bounds, so the client's and the server's
//! histograms line up in one Grafana panel. Totals never reset during a
//! process, as Prometheus expects of counters.
//!
//! Why the text is written here rather than by a metrics crate
//! (`prometheus-client`): every value already lives elsewhere, in
//! [`LiveMetrics`] (which the console view reads too) and in the collector's
//! latest readings, whose label sets come and go with each collection round.
//! A crate's registry would hold a second copy of each value, updated beside
//! the first (two truths), or need a hand-written collector per family,
//! which is this module again. The output is checked by the same strict
//! parser the harness uses on vLLM's `/metrics` and by a real Prometheus
//! (`harness/tests/observability.rs`).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use rundir::metrics::{MetricSource, names};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::TelemetryError;
#[cfg(test)]
use crate::live::RunFigures;
use crate::live::{LiveMetrics, RunLabels};

/// A family's type, as its `# TYPE` line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// A value now.
    Gauge,
    /// Cumulative buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Where a family's values come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    /// The client's own counts and histograms ([`LiveMetrics`]).
    Client,
    /// A collector reading ([`rundir::metrics::names`]) of one source, times
    /// `scale` (percent to ratio, MHz to Hz).
    Reading {
        /// Which source's readings.
        source: MetricSource,
        /// The vocabulary name read.
        name: &'static str,
        /// Factor from the reading's unit to the family's.
        scale: f64,
    },
    /// A server histogram's interval statistics for one stem (`ttft`...):
    /// `<stem>_mean_s` and the quantile bucket bounds, one sample each,
    /// labelled `statistic` (`mean`, `p50_gt`, `p50_le`, ...).
    ServerDistribution(&'static str),
    /// The run's final figures.
    Figures,
}

/// One metric family of the exposition.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels, in order (`le` of histograms not listed).
    pub labels: &'static [&'static str],
    /// What it measures (its HELP text).
    pub help: &'static str,
    /// Where its values come from.
    pub origin: Origin,
}

const RUN: &[&str] = &["run_id", "scenario", "backend"];
const FAILED: &[&str] = &["run_id", "scenario", "backend", "kind", "status"];
const DIST: &[&str] = &["run_id", "scenario", "backend", "statistic"];
const GPU: &[&str] = &["run_id", "scenario", "backend", "gpu"];
const HOST: &[&str] = &["run_id", "scenario", "backend", "host"];
const FIGURE: &[&str] = &["run_id", "name", "unit", "scenario", "backend"];

const fn client(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family {
        name,
        kind,
        labels: RUN,
        help,
        origin: Origin::Client,
    }
}

const fn reading(
    name: &'static str,
    source: MetricSource,
    reading: &'static str,
    scale: f64,
    help: &'static str,
) -> Family {
    let labels = match source {
        MetricSource::Gpu => GPU,
        MetricSource::System => HOST,
        _ => RUN,
    };
    Family {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        origin: Origin::Reading {
            source,
            name: reading,
            scale,
        },
    }
}

const fn server(name: &'static str, reading_name: &'static str, help: &'static str) -> Family {
    reading(name, MetricSource::Server, reading_name, 1.0, help)
}

const fn distribution(name: &'static str, stem: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Gauge,
        labels: DIST,
        help,
        origin: Origin::ServerDistribution(stem),
    }
}

/// Every family, in exposition order.
pub const FAMILIES: &[Family] = &[
    client(
        "harness_requests_issued_total",
        Kind::Counter,
        "Samples issued to the backends.",
    ),
    client(
        "harness_requests_completed_total",
        Kind::Counter,
        "Samples completed, failed ones included.",
    ),
    Family {
        name: "harness_requests_failed_total",
        kind: Kind::Counter,
        labels: FAILED,
        help: "Samples failed, by error kind and HTTP status (status absent when the failure had none).",
        origin: Origin::Client,
    },
    client(
        "harness_requests_in_flight",
        Kind::Gauge,
        "Samples issued and not yet completed.",
    ),
    client(
        "harness_input_tokens_total",
        Kind::Counter,
        "Prompt tokens of completed samples, as the server reported them.",
    ),
    client(
        "harness_output_tokens_total",
        Kind::Counter,
        "Output tokens of successful samples.",
    ),
    client(
        "harness_request_input_tokens",
        Kind::Histogram,
        "Prompt length of each completed sample, tokens, as the server reported it.",
    ),
    client(
        "harness_request_output_tokens",
        Kind::Histogram,
        "Output length of each successful sample, tokens.",
    ),
    client(
        "harness_ttft_seconds",
        Kind::Histogram,
        "Time to first token, from the scheduled issue time (LoadGen's TTFT).",
    ),
    client(
        "harness_tpot_seconds",
        Kind::Histogram,
        "Time per output token after the first (LoadGen's TPOT).",
    ),
    client(
        "harness_request_latency_seconds",
        Kind::Histogram,
        "Request latency, from the scheduled issue time to completion.",
    ),
    client(
        "harness_issue_delay_seconds",
        Kind::Histogram,
        "Issue lateness: how long after its scheduled time each sample was issued.",
    ),
    client(
        "harness_target_qps",
        Kind::Gauge,
        "LoadGen's target queries per second of the phase running (Server: the arrival rate; Offline: the expected rate).",
    ),
    client(
        "harness_ttft_limit_seconds",
        Kind::Gauge,
        "The scenario's TTFT limit (Server with token latencies), for alerts.",
    ),
    server(
        "harness_server_requests_running",
        names::REQUESTS_RUNNING,
        "Requests the backend is running (its own metric, normalized).",
    ),
    server(
        "harness_server_requests_waiting",
        names::REQUESTS_WAITING,
        "Requests queued at the backend (its own metric, normalized).",
    ),
    server(
        "harness_server_kv_cache_usage_ratio",
        names::KV_CACHE_USAGE_FRAC,
        "The backend's KV-cache usage, 0..1 (its own metric, normalized; llama.cpp's from /slots).",
    ),
    server(
        "harness_server_prompt_tokens_per_second",
        names::PROMPT_TOKENS_PER_S,
        "Prompt tokens the backend processed per second over the last collection interval.",
    ),
    server(
        "harness_server_generation_tokens_per_second",
        names::GENERATION_TOKENS_PER_S,
        "Tokens the backend generated per second over the last collection interval.",
    ),
    server(
        "harness_server_request_success_per_second",
        names::REQUEST_SUCCESS_PER_S,
        "Requests the backend finished normally per second over the last collection interval.",
    ),
    server(
        "harness_server_request_failure_per_second",
        names::REQUEST_FAILURE_PER_S,
        "Requests the backend aborted or failed per second over the last collection interval.",
    ),
    server(
        "harness_server_preemptions_per_second",
        names::PREEMPTIONS_PER_S,
        "Preemptions per second at the backend over the last collection interval.",
    ),
    server(
        "harness_server_prefix_cache_hit_ratio",
        names::PREFIX_CACHE_HIT_FRAC,
        "The backend's prefix-cache hit rate over the last collection interval, 0..1.",
    ),
    distribution(
        "harness_server_ttft_seconds",
        names::TTFT,
        "The backend's own time to first token over the last collection interval: mean, and the bucket bounds of p50/p90/p99.",
    ),
    distribution(
        "harness_server_itl_seconds",
        names::ITL,
        "The backend's inter-token latency over the last collection interval (statistics as for TTFT).",
    ),
    distribution(
        "harness_server_tpot_seconds",
        names::TPOT,
        "The backend's per-request time per output token over the last collection interval.",
    ),
    distribution(
        "harness_server_e2e_seconds",
        names::E2E,
        "The backend's end-to-end request latency over the last collection interval.",
    ),
    distribution(
        "harness_server_queue_seconds",
        names::QUEUE,
        "Time requests waited in the backend's queue over the last collection interval.",
    ),
    distribution(
        "harness_server_prefill_seconds",
        names::PREFILL,
        "The backend's prefill time over the last collection interval.",
    ),
    distribution(
        "harness_server_decode_seconds",
        names::DECODE,
        "The backend's decode time over the last collection interval.",
    ),
    reading(
        "harness_gpu_utilization_ratio",
        MetricSource::Gpu,
        names::GPU_UTILIZATION_PCT,
        0.01,
        "GPU busy, 0..1 (NVML).",
    ),
    reading(
        "harness_gpu_memory_utilization_ratio",
        MetricSource::Gpu,
        names::GPU_MEMORY_UTILIZATION_PCT,
        0.01,
        "GPU memory-controller busy, 0..1 (NVML).",
    ),
    reading(
        "harness_gpu_memory_used_bytes",
        MetricSource::Gpu,
        names::GPU_MEMORY_USED_BYTES,
        1.0,
        "GPU memory used (NVML).",
    ),
    reading(
        "harness_gpu_memory_free_bytes",
        MetricSource::Gpu,
        names::GPU_MEMORY_FREE_BYTES,
        1.0,
        "GPU memory free (NVML).",
    ),
    reading(
        "harness_gpu_memory_total_bytes",
        MetricSource::Gpu,
        names::GPU_MEMORY_TOTAL_BYTES,
        1.0,
        "GPU memory in all (NVML).",
    ),
    reading(
        "harness_gpu_temperature_celsius",
        MetricSource::Gpu,
        names::GPU_TEMPERATURE_C,
        1.0,
        "GPU temperature (NVML).",
    ),
    reading(
        "harness_gpu_power_watts",
        MetricSource::Gpu,
        names::GPU_POWER_W,
        1.0,
        "GPU power draw (NVML).",
    ),
    reading(
        "harness_gpu_sm_clock_hertz",
        MetricSource::Gpu,
        names::GPU_SM_CLOCK_MHZ,
        1e6,
        "GPU SM clock (NVML).",
    ),
    reading(
        "harness_gpu_memory_clock_hertz",
        MetricSource::Gpu,
        names::GPU_MEMORY_CLOCK_MHZ,
        1e6,
        "GPU memory clock (NVML).",
    ),
    reading(
        "harness_gpu_throttle_reasons",
        MetricSource::Gpu,
        names::GPU_THROTTLE_REASONS,
        1.0,
        "NVML's clock-throttle reason bit mask (0: not throttled).",
    ),
    reading(
        "harness_host_cpu_utilization_ratio",
        MetricSource::System,
        names::CPU_PCT,
        0.01,
        "The harness host's CPU busy over all cores, 0..1.",
    ),
    reading(
        "harness_host_memory_used_bytes",
        MetricSource::System,
        names::MEMORY_USED_BYTES,
        1.0,
        "The harness host's memory used.",
    ),
    reading(
        "harness_host_memory_total_bytes",
        MetricSource::System,
        names::MEMORY_TOTAL_BYTES,
        1.0,
        "The harness host's memory in all.",
    ),
    reading(
        "harness_host_network_receive_bytes_per_second",
        MetricSource::System,
        names::NET_RX_BYTES_PER_S,
        1.0,
        "Bytes the harness host received per second over the last collection interval.",
    ),
    reading(
        "harness_host_network_transmit_bytes_per_second",
        MetricSource::System,
        names::NET_TX_BYTES_PER_S,
        1.0,
        "Bytes the harness host sent per second over the last collection interval.",
    ),
    reading(
        "harness_host_disk_read_bytes_per_second",
        MetricSource::System,
        names::DISK_READ_BYTES_PER_S,
        1.0,
        "Bytes the harness host read from disk per second over the last collection interval.",
    ),
    reading(
        "harness_host_disk_written_bytes_per_second",
        MetricSource::System,
        names::DISK_WRITE_BYTES_PER_S,
        1.0,
        "Bytes the harness host wrote to disk per second over the last collection interval.",
    ),
    reading(
        "harness_process_cpu_cores",
        MetricSource::Process,
        names::PROCESS_CPU_PCT,
        0.01,
        "The harness process's CPU use, in cores (1: one core busy).",
    ),
    reading(
        "harness_process_resident_memory_bytes",
        MetricSource::Process,
        names::PROCESS_RSS_BYTES,
        1.0,
        "The harness process's resident memory.",
    ),
    Family {
        name: "harness_run_figure",
        kind: Kind::Gauge,
        labels: FIGURE,
        help: "The run's final figures (summary.json's figures, one sample per figure), once the run is summarised.",
        origin: Origin::Figures,
    },
];

/// Every metric family the exposition contains.
pub fn exported_metrics() -> impl Iterator<Item = &'static str> {
    FAMILIES.iter().map(|f| f.name)
}

/// The family that exports a collector reading, if one does.
pub fn family_of_reading(source: MetricSource, reading: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| {
        matches!(f.origin, Origin::Reading { source: s, name, .. } if s == source && name == reading)
    })
}

/// The README's table of the exposition: one row per family.
pub fn markdown_table() -> String {
    let mut out = String::from("| series | type | labels | meaning |\n|---|---|---|---|\n");
    for f in FAMILIES {
        let labels = f
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {} | {labels} | {} |\n",
            f.name,
            f.kind.as_str(),
            f.help
        ));
    }
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `k="v",...` with values escaped.
fn render_labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn sample(w: &mut impl Write, name: &str, labels: &str, value: f64) -> io::Result<()> {
    if labels.is_empty() {
        writeln!(w, "{name} {}", prom_float(value))
    } else {
        writeln!(w, "{name}{{{labels}}} {}", prom_float(value))
    }
}

impl LiveMetrics {
    /// Writes the exposition (text format 0.0.4).
    pub fn render_prometheus(&self, w: &mut impl Write) -> io::Result<()> {
        let run = self.run_labels();
        let base: Vec<(&str, &str)> = match &run {
            Some(r) => vec![
                ("run_id", r.run_id.as_str()),
                ("scenario", r.scenario.as_str()),
                ("backend", r.backend.as_str()),
            ],
            None => Vec::new(),
        };
        let base_text = render_labels(&base);
        let readings = self.readings_snapshot();
        for family in FAMILIES {
            writeln!(w, "# HELP {} {}", family.name, family.help)?;
            writeln!(w, "# TYPE {} {}", family.name, family.kind.as_str())?;
            match family.origin {
                Origin::Client => self.write_client(w, family.name, &base, &base_text)?,
                Origin::Reading {
                    source,
                    name,
                    scale,
                } => {
                    for ((s, instance), values) in &readings {
                        let Some(v) = values.get(name).filter(|v| v.is_finite()) else {
                            continue;
                        };
                        if *s != source {
                            continue;
                        }
                        let labels = instance_labels(&base, run.as_ref(), source, instance);
                        sample(w, family.name, &labels, v * scale)?;
                    }
                }
                Origin::ServerDistribution(stem) => {
                    for ((s, instance), values) in &readings {
                        if *s != MetricSource::Server {
                            continue;
                        }
                        let labels = instance_labels(&base, run.as_ref(), *s, instance);
                        for (statistic, v) in distribution_statistics(stem, values) {
                            let sep = if labels.is_empty() { "" } else { "," };
                            let labels = format!("{labels}{sep}statistic=\"{statistic}\"");
                            sample(w, family.name, &labels, v)?;
                        }
                    }
                }
                Origin::Figures => self.write_run_figures(w, run.as_ref())?,
            }
        }
        Ok(())
    }

    fn write_client(
        &self,
        w: &mut impl Write,
        name: &str,
        base: &[(&str, &str)],
        labels: &str,
    ) -> io::Result<()> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        match name {
            "harness_requests_issued_total" => sample(w, name, labels, load(&self.issued)),
            "harness_requests_completed_total" => sample(w, name, labels, load(&self.completed)),
            "harness_requests_failed_total" => {
                let failures = self.failures.lock().map(|e| e.clone()).unwrap_or_default();
                for ((kind, status), n) in &failures {
                    let mut pairs = base.to_vec();
                    pairs.push(("kind", kind));
                    let status = status.map(|s| s.to_string());
                    if let Some(status) = &status {
                        pairs.push(("status", status));
                    }
                    sample(w, name, &render_labels(&pairs), *n as f64)?;
                }
                Ok(())
            }
            "harness_requests_in_flight" => {
                // Completed is read before issued so in-flight never goes
                // negative under concurrent updates.
                let completed = self.completed.load(Ordering::Relaxed);
                let issued = self.issued.load(Ordering::Relaxed);
                sample(w, name, labels, issued.saturating_sub(completed) as f64)
            }
            "harness_input_tokens_total" => sample(w, name, labels, load(&self.input_tokens)),
            "harness_output_tokens_total" => sample(w, name, labels, load(&self.output_tokens)),
            "harness_request_input_tokens" => self.input_length.write(w, name, labels),
            "harness_request_output_tokens" => self.output_length.write(w, name, labels),
            "harness_ttft_seconds" => self.ttft.write(w, name, labels),
            "harness_tpot_seconds" => self.tpot.write(w, name, labels),
            "harness_request_latency_seconds" => self.latency.write(w, name, labels),
            "harness_issue_delay_seconds" => self.issue_delay.write(w, name, labels),
            "harness_target_qps" => match self.limits().target_qps {
                Some(v) => sample(w, name, labels, v),
                None => Ok(()),
            },
            "harness_ttft_limit_seconds" => match self.limits().ttft_limit_s {
                Some(v) => sample(w, name, labels, v),
                None => Ok(()),
            },
            // FAMILIES and this match are one list; a test renders every family.
            _ => Ok(()),
        }
    }

    /// The run's final figures, one sample per figure. One family with the
    /// figure's name and unit as labels, as the figures differ in unit and
    /// the registry, not this exposition, defines them. Values are written
    /// in Rust's shortest round-trip form: the same f64 as summary.json.
    fn write_run_figures(&self, w: &mut impl Write, run: Option<&RunLabels>) -> io::Result<()> {
        let figures = self
            .run_figures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        if let Some(figures) = figures {
            for (name, unit, value) in &figures.figures {
                let mut pairs = vec![
                    ("run_id", figures.run_id.as_str()),
                    ("name", name.as_str()),
                    ("unit", unit.as_str()),
                ];
                if let Some(r) = run {
                    pairs.push(("scenario", &r.scenario));
                    pairs.push(("backend", &r.backend));
                }
                sample(w, "harness_run_figure", &render_labels(&pairs), *value)?;
            }
        }
        Ok(())
    }
}

/// The labels of one reading's series: the run's, with a server's own
/// `backend`, or a `gpu` / `host` label naming the instance.
fn instance_labels(
    base: &[(&str, &str)],
    run: Option<&RunLabels>,
    source: MetricSource,
    instance: &str,
) -> String {
    let mut pairs = base.to_vec();
    match source {
        MetricSource::Server | MetricSource::ServerRaw => {
            let name = run
                .and_then(|r| r.backend_names.get(instance))
                .map_or(instance, String::as_str);
            pairs.retain(|(k, _)| *k != "backend");
            pairs.push(("backend", name));
        }
        MetricSource::Gpu => pairs.push(("gpu", instance)),
        MetricSource::System => pairs.push(("host", instance)),
        MetricSource::Process => {}
    }
    render_labels(&pairs)
}

/// A server histogram's interval statistics from the collector's readings:
/// (`mean` | `p50_gt` | `p50_le` | ..., seconds).
fn distribution_statistics(stem: &str, values: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(v) = values.get(&names::quantile_name(stem, "mean")) {
        out.push(("mean".to_owned(), *v));
    }
    for (_, q) in crate::server::QUANTILES {
        for (suffix, name) in [
            ("gt", names::quantile_lower_name(stem, q)),
            ("le", names::quantile_upper_name(stem, q)),
        ] {
            if let Some(v) = values.get(&name) {
                out.push((format!("{q}_{suffix}"), *v));
            }
        }
    }
    out.retain(|(_, v)| v.is_finite());
    out
}

/// A running `/metrics` endpoint.
#[derive(Debug)]
pub struct PrometheusServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl PrometheusServer {
    /// Where it listens (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and waits for the server to close.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Serves `live` on `http://addr/metrics`.
pub async fn serve_prometheus(
    addr: SocketAddr,
    live: Arc<LiveMetrics>,
) -> Result<PrometheusServer, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Listen { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TelemetryError::Listen { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(live);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(target: "telemetry", "prometheus endpoint on {local_addr} stopped: {e}");
        }
    });
    Ok(PrometheusServer {
        local_addr,
        stop: Some(stop),
        task,
    })
}

/// A sample value as the text format spells it (`+Inf`, `-Inf`, `NaN`).
fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

async fn metrics_handler(State(live): State<Arc<LiveMetrics>>) -> impl IntoResponse {
    // Figures are never withdrawn once published: when they are there now,
    // the body below holds them.
    let with_figures = live.run_figures.lock().is_ok_and(|f| f.is_some());
    let mut body = Vec::with_capacity(8 << 10);
    // Writing to a Vec cannot fail.
    let _ = live.render_prometheus(&mut body);
    if with_figures {
        live.figures_scraped.notify_one();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_figures_appear_once_published_and_round_trip() {
        let live = LiveMetrics::new();
        let mut before = Vec::new();
        live.render_prometheus(&mut before).unwrap();
        let before = String::from_utf8(before).unwrap();
        assert!(before.contains("# TYPE harness_run_figure gauge"));
        assert!(!before.contains("harness_run_figure{"));
        let value = 36.354_123_456_789_01_f64;
        live.publish_run_figures(RunFigures {
            run_id: "r\"1".to_owned(),
            figures: vec![("samples_per_s".to_owned(), "samples/s".to_owned(), value)],
        });
        let mut after = Vec::new();
        live.render_prometheus(&mut after).unwrap();
        let after = String::from_utf8(after).unwrap();
        let line = after
            .lines()
            .find(|l| l.starts_with("harness_run_figure{"))
            .unwrap();
        let (labels, shown) = line.rsplit_once(' ').unwrap();
        assert_eq!(
            labels,
            "harness_run_figure{run_id=\"r\\\"1\",name=\"samples_per_s\",unit=\"samples/s\"}"
        );
        assert_eq!(shown.parse::<f64>().unwrap(), value);
        assert_eq!(prom_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
