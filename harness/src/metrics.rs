//! Telemetry for `harness run`: the live metrics every run keeps (console
//! view, optional Prometheus endpoint) and, with
//! `--enable-metrics-collection`, the collector that samples the backends'
//! /metrics, the GPUs and the host into the run directory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use loadgen::RunObserver;
use telemetry::{Collector, CollectorConfig, LiveMetrics, ScrapeTarget};

/// Telemetry of a run.
#[derive(Debug, Clone, Default)]
pub struct TelemetryOptions {
    /// Metrics collection interval, when enabled.
    pub metrics_interval: Option<Duration>,
    /// Prometheus exposition address.
    pub prometheus_listen: Option<SocketAddr>,
    /// GPUs to monitor (NVML indices); `None`: all.
    pub gpus: Option<Vec<u32>>,
    /// Layout of metrics.csv.
    pub metrics_format: rundir::metrics_csv::CsvFormat,
}

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

impl Telemetry {
    /// The observers to add to the run: the live metrics, and the
    /// collector's marker of the measured window (the performance phase),
    /// which waits for the edge scrapes when called from LoadGen's plain
    /// thread.
    pub fn observers(&self) -> Vec<Arc<dyn RunObserver>> {
        let mut out: Vec<Arc<dyn RunObserver>> = vec![Arc::clone(&self.live) as _];
        if let Some(c) = &self.collector {
            out.push(Arc::new(c.window_marker()));
        }
        out
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
    options: &TelemetryOptions,
    dir: &Path,
    endpoints: &[String],
    run_start: Instant,
    progress: Option<Arc<crate::progress::Progress>>,
) -> anyhow::Result<Telemetry> {
    let live = Arc::new(LiveMetrics::new());
    let collector = match options.metrics_interval {
        Some(interval) => {
            let targets = endpoints
                .iter()
                .map(|e| ScrapeTarget::for_backend(e))
                .collect::<Result<Vec<_>, _>>()?;
            let collector_config = CollectorConfig {
                interval: Some(interval),
                targets,
                gpus: options.gpus.clone(),
                csv_format: options.metrics_format,
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
    let exporter = match options.prometheus_listen {
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
                        while !stop.load(Ordering::Relaxed) {
                            thread::sleep(Duration::from_secs(1));
                            progress.update(live.snapshot());
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
