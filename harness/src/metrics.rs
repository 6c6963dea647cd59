//! Telemetry for `harness run`: the live metrics every run keeps (console
//! view, optional Prometheus endpoint) and, with
//! `--enable-metrics-collection`, the collector that samples the backends'
//! /metrics, the GPUs and the host into the run directory.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use loadgen::{PhaseEnd, PhaseStart, QueryRecord, RunObserver};
use telemetry::{Collector, CollectorConfig, LiveMetrics, ScrapeTarget};

use crate::run_cmd::RunConfig;

/// Running telemetry.
pub struct Telemetry {
    live: Arc<LiveMetrics>,
    collector: Option<Arc<Collector>>,
    exporter: Option<telemetry::prom_endpoint::PrometheusServer>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("collecting", &self.collector.is_some())
            .finish_non_exhaustive()
    }
}

/// Feeds the live metrics and marks the collector's measured window (the
/// performance phase) through the collector's own marker, which waits for
/// the edge scrapes when called from LoadGen's plain thread.
struct WindowObserver {
    live: Arc<LiveMetrics>,
    marker: Option<telemetry::WindowMarker>,
}

impl RunObserver for WindowObserver {
    fn phase_started(&self, start: &PhaseStart) {
        self.live.phase_started(start);
        if let Some(m) = &self.marker {
            m.phase_started(start);
        }
    }
    fn query_issued(&self, query: u64, samples: usize, issued_ns: u64) {
        self.live.query_issued(query, samples, issued_ns);
    }
    fn first_token(&self, seq: u64, at_ns: u64) {
        self.live.first_token(seq, at_ns);
    }
    fn sample_completed(&self, record: QueryRecord) {
        self.live.sample_completed(record);
    }
    fn phase_finished(&self, end: &PhaseEnd) {
        self.live.phase_finished(end);
        if let Some(m) = &self.marker {
            m.phase_finished(end);
        }
    }
}

impl Telemetry {
    /// The observer to add to the run.
    pub fn observer(&self) -> Arc<dyn RunObserver> {
        Arc::new(WindowObserver {
            live: Arc::clone(&self.live),
            marker: self.collector.as_ref().map(|c| c.window_marker()),
        })
    }

    /// Stops the collector (writing server_summary.json) and the exporter.
    pub fn finish(mut self, runtime: &tokio::runtime::Runtime) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(collector) = self.collector.take() {
            match Arc::try_unwrap(collector) {
                Ok(collector) => match runtime.block_on(collector.finish()) {
                    // The collector already logged its warnings as they came.
                    Ok(report) => tracing::debug!("metrics collection: {report:?}"),
                    Err(e) => tracing::warn!("metrics collection: {e}"),
                },
                Err(_) => tracing::warn!("metrics collector still in use at the end of the run"),
            }
        }
        if let Some(exporter) = self.exporter.take() {
            runtime.block_on(exporter.shutdown());
        }
    }
}

/// Starts live metrics, the Prometheus endpoint and the collector as
/// configured. `progress` receives the live line once a second.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    config: &RunConfig,
    dir: &Path,
    endpoints: &[String],
    run_start: Instant,
    progress: Option<Arc<crate::progress::Progress>>,
) -> anyhow::Result<Telemetry> {
    let live = Arc::new(LiveMetrics::new());
    let collector = match config.metrics_interval {
        Some(interval) => {
            let targets = endpoints
                .iter()
                .map(|e| ScrapeTarget::for_backend(e))
                .collect::<Result<Vec<_>, _>>()?;
            let collector_config = CollectorConfig {
                interval: Some(interval),
                targets,
                ..CollectorConfig::default()
            };
            let _guard = runtime.enter();
            Some(Arc::new(
                Collector::start(collector_config, dir, run_start, Some(Arc::clone(&live)))
                    .context("starting metrics collection")?,
            ))
        }
        None => None,
    };
    let exporter = match config.prometheus_listen {
        Some(addr) => {
            let server = runtime
                .block_on(telemetry::serve_prometheus(addr, Arc::clone(&live)))
                .with_context(|| format!("--prometheus-listen {addr}"))?;
            tracing::info!("live metrics at http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let ticker_stop = Arc::new(AtomicBool::new(false));
    let ticker = match progress {
        Some(progress) if progress.is_visible() => {
            let live = Arc::clone(&live);
            let stop = Arc::clone(&ticker_stop);
            Some(
                thread::Builder::new()
                    .name("live-view".into())
                    .spawn(move || {
                        let mut previous = None;
                        while !stop.load(Ordering::Relaxed) {
                            thread::sleep(Duration::from_secs(1));
                            let snapshot = live.snapshot();
                            progress.set_live(telemetry::render_live(&snapshot, previous.as_ref()));
                            previous = Some(snapshot);
                        }
                    })
                    .context("starting the live view")?,
            )
        }
        _ => None,
    };
    Ok(Telemetry {
        live,
        collector,
        exporter,
        ticker_stop,
        ticker,
    })
}
