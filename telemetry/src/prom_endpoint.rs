//! The harness's own metrics in Prometheus text format, and the optional
//! `/metrics` endpoint (`--prometheus-listen ADDR`).
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `harness_requests_issued_total` | counter | samples issued |
//! | `harness_requests_completed_total` | counter | samples completed, failed ones included |
//! | `harness_requests_failed_total{kind}` | counter | failed samples by error kind |
//! | `harness_requests_in_flight` | gauge | issued and not completed |
//! | `harness_input_tokens_total` | counter | prompt tokens reported by the server |
//! | `harness_output_tokens_total` | counter | output tokens of successful samples |
//! | `harness_ttft_seconds` | histogram | LoadGen TTFT (first token - scheduled) |
//! | `harness_tpot_seconds` | histogram | LoadGen TPOT |
//! | `harness_request_latency_seconds` | histogram | LoadGen latency (end - scheduled) |
//! | `harness_issue_delay_seconds` | histogram | issued - scheduled |
//! | `harness_server_requests_running{backend}` | gauge | the backend's requests running, normalized (with metrics collection) |
//! | `harness_server_requests_waiting{backend}` | gauge | its requests waiting, normalized |
//! | `harness_server_kv_cache_usage_frac{backend}` | gauge | its KV-cache usage 0..1, normalized (llama.cpp's from /slots) |
//! | `harness_run_figure{run_id,name,unit}` | gauge | the run's final figures (summary.json's `figures`), once the run is summarised |
//!
//! TTFT, TPOT and latency use vLLM's bucket bounds, so the client's and the
//! server's histograms line up in one Grafana panel. Totals never reset
//! during a process, as Prometheus expects of counters.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::TelemetryError;
use crate::live::LiveMetrics;
#[cfg(test)]
use crate::live::RunFigures;

/// Every metric family the exposition contains.
pub const EXPORTED_METRICS: &[&str] = &[
    "harness_requests_issued_total",
    "harness_requests_completed_total",
    "harness_requests_failed_total",
    "harness_requests_in_flight",
    "harness_input_tokens_total",
    "harness_output_tokens_total",
    "harness_ttft_seconds",
    "harness_tpot_seconds",
    "harness_request_latency_seconds",
    "harness_issue_delay_seconds",
    "harness_server_requests_running",
    "harness_server_requests_waiting",
    "harness_server_kv_cache_usage_frac",
    "harness_run_figure",
];

/// The collector's normalized server gauges, exported per backend so a
/// dashboard reads every server under one name ([`crate::mapping`]).
const SERVER_GAUGES: [(&str, &str, &str); 3] = [
    (
        "harness_server_requests_running",
        rundir::metrics::names::REQUESTS_RUNNING,
        "Requests the backend is running (its own metric, normalized).",
    ),
    (
        "harness_server_requests_waiting",
        rundir::metrics::names::REQUESTS_WAITING,
        "Requests queued at the backend (its own metric, normalized).",
    ),
    (
        "harness_server_kv_cache_usage_frac",
        rundir::metrics::names::KV_CACHE_USAGE_FRAC,
        "The backend's KV-cache usage, 0..1 (its own metric, normalized).",
    ),
];

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl LiveMetrics {
    /// Writes the exposition (text format 0.0.4).
    pub fn render_prometheus(&self, w: &mut impl Write) -> io::Result<()> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counter = |w: &mut dyn Write, name: &str, help: &str, v: u64| -> io::Result<()> {
            writeln!(w, "# HELP {name} {help}")?;
            writeln!(w, "# TYPE {name} counter")?;
            writeln!(w, "{name} {v}")
        };
        // Completed is read before issued so in-flight never goes negative
        // under concurrent updates.
        let completed = load(&self.completed);
        let issued = load(&self.issued);
        counter(
            w,
            "harness_requests_issued_total",
            "Samples issued to the backends.",
            issued,
        )?;
        counter(
            w,
            "harness_requests_completed_total",
            "Samples completed, failed ones included.",
            completed,
        )?;
        writeln!(
            w,
            "# HELP harness_requests_failed_total Samples failed, by error kind."
        )?;
        writeln!(w, "# TYPE harness_requests_failed_total counter")?;
        let errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        for (kind, n) in &errors {
            writeln!(
                w,
                "harness_requests_failed_total{{kind=\"{}\"}} {n}",
                escape_label(kind)
            )?;
        }
        writeln!(
            w,
            "# HELP harness_requests_in_flight Samples issued and not yet completed."
        )?;
        writeln!(w, "# TYPE harness_requests_in_flight gauge")?;
        writeln!(
            w,
            "harness_requests_in_flight {}",
            issued.saturating_sub(completed)
        )?;
        counter(
            w,
            "harness_input_tokens_total",
            "Prompt tokens of completed samples, as the server reported them.",
            load(&self.input_tokens),
        )?;
        counter(
            w,
            "harness_output_tokens_total",
            "Output tokens of successful samples.",
            load(&self.output_tokens),
        )?;
        self.ttft.write(
            w,
            "harness_ttft_seconds",
            "Time to first token, from the scheduled issue time (LoadGen's TTFT).",
        )?;
        self.tpot.write(
            w,
            "harness_tpot_seconds",
            "Time per output token after the first (LoadGen's TPOT).",
        )?;
        self.latency.write(
            w,
            "harness_request_latency_seconds",
            "Request latency, from the scheduled issue time to completion.",
        )?;
        self.issue_delay.write(
            w,
            "harness_issue_delay_seconds",
            "How late samples were issued against the schedule.",
        )?;
        let servers = self.server_readings();
        for (family, name, help) in SERVER_GAUGES {
            writeln!(w, "# HELP {family} {help}")?;
            writeln!(w, "# TYPE {family} gauge")?;
            for (backend, values) in &servers {
                if let Some(v) = values.get(name).filter(|v| v.is_finite()) {
                    writeln!(w, "{family}{{backend=\"{}\"}} {v}", escape_label(backend))?;
                }
            }
        }
        self.write_run_figures(w)
    }

    /// The run's final figures, one sample per figure. One family with the
    /// figure's name and unit as labels, as the figures differ in unit and
    /// the registry, not this exposition, defines them. Values are written
    /// in Rust's shortest round-trip form: the same f64 as summary.json.
    fn write_run_figures(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "# HELP harness_run_figure The run's final figures (summary.json's figures), once the run is summarised."
        )?;
        writeln!(w, "# TYPE harness_run_figure gauge")?;
        let figures = self
            .run_figures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        if let Some(run) = figures {
            for (name, unit, value) in &run.figures {
                writeln!(
                    w,
                    "harness_run_figure{{run_id=\"{}\",name=\"{}\",unit=\"{}\"}} {}",
                    escape_label(&run.run_id),
                    escape_label(name),
                    escape_label(unit),
                    prom_float(*value)
                )?;
            }
        }
        Ok(())
    }
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
