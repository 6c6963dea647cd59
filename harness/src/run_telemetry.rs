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
    /// After the run, how long the endpoint waits for a scrape of the final
    /// figures before the process goes on (zero: it does not wait).
    pub prometheus_linger: Duration,
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
    /// The live metrics: an observer that reads each completed record.
    pub fn live(&self) -> &Arc<LiveMetrics> {
        &self.live
    }

    /// The collector's marker of the measured window (the performance
    /// phase), when metrics are collected: an observer that ignores
    /// records and waits for the edge scrapes when called from LoadGen's
    /// plain thread.
    pub fn window_marker(&self) -> Option<Arc<dyn RunObserver>> {
        self.collector
            .as_ref()
            .map(|c| Arc::new(c.window_marker()) as Arc<dyn RunObserver>)
    }

    /// Stops the collector (writing server_summary.json); the Prometheus
    /// endpoint, if any, keeps serving so it can show the final figures.
    /// Also returns the collection ticks skipped because a scrape was still
    /// outstanding (a slow or unanswered `/metrics`).
    pub fn finish(mut self, runtime: &tokio::runtime::Runtime) -> (Option<Exporter>, u64) {
        let mut skipped_ticks = 0;
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(collector) = self.collector.take() {
            match Arc::try_unwrap(collector) {
                Ok(collector) => match runtime.block_on(collector.finish()) {
                    // The collector already logged its warnings as they came.
                    Ok(report) => {
                        tracing::debug!("metrics collection: {report:?}");
                        skipped_ticks = report.skipped_ticks;
                    }
                    Err(e) => tracing::warn!("metrics collection: {e}"),
                },
                Err(_) => tracing::warn!("metrics collector still in use at the end of the run"),
            }
        }
        let exporter = self.exporter.take().map(|server| Exporter {
            server,
            live: Arc::clone(&self.live),
        });
        (exporter, skipped_ticks)
    }
}

/// The Prometheus endpoint after the run: it adds the run's final figures
/// to the exposition and serves them until the run is done (the last thing
/// `harness run` does before it exits).
pub struct Exporter {
    server: telemetry::prom_endpoint::PrometheusServer,
    live: Arc<LiveMetrics>,
}

impl Exporter {
    /// Publishes the run's figures (the registry's values, as in
    /// summary.json) and, with a linger, waits until a scrape has received
    /// them or the linger has passed. `announce` is told where to scrape.
    pub fn publish(
        self,
        runtime: &tokio::runtime::Runtime,
        run_id: &str,
        figures: &std::collections::BTreeMap<String, f64>,
        linger: Duration,
        announce: &mut dyn std::io::Write,
    ) -> anyhow::Result<()> {
        let figures = figures
            .iter()
            .map(|(name, value)| {
                let unit = reports::figures::find(name).map_or("", |f| f.unit);
                (name.clone(), unit.to_owned(), *value)
            })
            .collect();
        self.live.publish_run_figures(telemetry::RunFigures {
            run_id: run_id.to_owned(),
            figures,
        });
        if !linger.is_zero() {
            writeln!(
                announce,
                "final figures at http://{}/metrics (waiting up to {} s for a scrape)",
                self.server.local_addr(),
                linger.as_secs_f64()
            )?;
            announce.flush()?;
            let scraped = runtime.block_on(async {
                tokio::time::timeout(linger, self.live.run_figures_scraped()).await
            });
            if scraped.is_err() {
                tracing::warn!(
                    "--prometheus-linger: nobody scraped the final figures within {} s",
                    linger.as_secs_f64()
                );
            }
        }
        // Graceful: a scrape in progress still receives its answer.
        runtime.block_on(self.server.shutdown());
        Ok(())
    }
}

/// Who the run is, for the labels of every exposed series.
#[derive(Debug, Clone, Copy)]
pub struct RunIdentity<'a> {
    /// The run directory's name.
    pub run_id: &'a str,
    /// The LoadGen scenario.
    pub scenario: &'a str,
    /// The backends as run.json names them, in the order of the endpoints.
    pub described: &'a [String],
}

/// The exposition's labels: the run's backends as run.json names them, and
/// each endpoint's collector instance mapped to its name, so the client's
/// and the server's series of one backend carry the same `backend`.
fn run_labels(identity: RunIdentity<'_>, endpoints: &[String]) -> telemetry::RunLabels {
    let backend_names = endpoints
        .iter()
        .zip(identity.described)
        .filter_map(|(endpoint, name)| {
            ScrapeTarget::for_backend(endpoint)
                .ok()
                .map(|t| (t.instance().to_owned(), name.clone()))
        })
        .collect();
    telemetry::RunLabels {
        run_id: identity.run_id.to_owned(),
        scenario: identity.scenario.to_owned(),
        backend: identity.described.join(","),
        backend_names,
    }
}

/// Starts live metrics, the Prometheus endpoint and the collector as
/// configured. `progress` receives the live line once a second.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    options: &TelemetryOptions,
    dir: &Path,
    endpoints: &[String],
    identity: RunIdentity<'_>,
    run_start: Instant,
    progress: Option<Arc<crate::progress::Progress>>,
) -> anyhow::Result<Telemetry> {
    let live = Arc::new(LiveMetrics::new());
    live.set_run_labels(run_labels(identity, endpoints));
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
