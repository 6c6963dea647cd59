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

/// vLLM's TTFT bucket bounds, seconds.
pub const TTFT_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's inter-token/TPOT bucket bounds, seconds.
pub const TPOT_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's request-latency bucket bounds, seconds.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Issue-delay bucket bounds, seconds: 10 µs to 1 s.
pub const ISSUE_DELAY_BOUNDS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

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
];

/// A histogram with fixed bounds and atomic counts: exact, lock-free, and
/// cumulative forever (what a Prometheus histogram must be).
#[derive(Debug)]
pub(crate) struct FixedHistogram {
    bounds: &'static [f64],
    bounds_ns: Vec<u64>,
    /// Per bucket (not cumulative), the last one for `+Inf`.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
}

impl FixedHistogram {
    pub(crate) fn new(bounds: &'static [f64]) -> FixedHistogram {
        FixedHistogram {
            bounds,
            // Bounds are short decimal seconds; rounding to whole ns is exact
            // for all of them.
            bounds_ns: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe_ns(&self, ns: u64) {
        // `le` is inclusive: a value equal to a bound belongs to it.
        let idx = self.bounds_ns.partition_point(|&b| b < ns);
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn write(&self, w: &mut impl Write, name: &str, help: &str) -> io::Result<()> {
        writeln!(w, "# HELP {name} {help}")?;
        writeln!(w, "# TYPE {name} histogram")?;
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => writeln!(w, "{name}_bucket{{le=\"{b}\"}} {cumulative}")?,
                None => writeln!(w, "{name}_bucket{{le=\"+Inf\"}} {cumulative}")?,
            }
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        writeln!(w, "{name}_sum {sum}")?;
        writeln!(w, "{name}_count {cumulative}")
    }
}

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
        )
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

async fn metrics_handler(State(live): State<Arc<LiveMetrics>>) -> impl IntoResponse {
    let mut body = Vec::with_capacity(8 << 10);
    // Writing to a Vec cannot fail.
    let _ = live.render_prometheus(&mut body);
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
    fn buckets_are_inclusive_and_cumulative() {
        let h = FixedHistogram::new(&[0.1, 0.5]);
        h.observe_ns(100_000_000); // exactly 0.1 s: in le=0.1
        h.observe_ns(100_000_001);
        h.observe_ns(2_000_000_000);
        let mut out = Vec::new();
        h.write(&mut out, "x_seconds", "help").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum 2.200000001\n"));
        assert!(text.contains("x_seconds_count 3\n"));
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
