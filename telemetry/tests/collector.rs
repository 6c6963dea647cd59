//! The collector against real HTTP servers on 127.0.0.1:0 serving a
//! changing `/metrics`, driven by a manual clock and manual ticks.

// Helpers outside #[test] fns are test code too; clippy only exempts the fns.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod metrics;
}

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::metrics::{assert_close, fixture};
use rundir::metrics::{MetricSource, MetricsSample, names, read_metrics, read_server_summary};
use telemetry::{
    Collector, CollectorConfig, GpuError, GpuReader, GpuReading, GpuSource, LiveMetrics,
    ManualClock, ScrapeTarget, TelemetryError,
};
use tokio::sync::mpsc;

struct Backend {
    text: Mutex<String>,
    /// llama.cpp's `/slots` answer; 404 when `None`.
    slots: Mutex<Option<String>>,
    hang: bool,
    hits: mpsc::UnboundedSender<()>,
}

/// A `/metrics` server serving whatever text the test last set.
struct MetricsServer {
    addr: SocketAddr,
    state: Arc<Backend>,
    hits: mpsc::UnboundedReceiver<()>,
}

impl MetricsServer {
    async fn start(text: &str, hang: bool) -> MetricsServer {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Backend {
            text: Mutex::new(text.to_owned()),
            slots: Mutex::new(None),
            hang,
            hits: tx,
        });
        let app = Router::new()
            .route("/metrics", get(serve_metrics))
            .route("/slots", get(serve_slots))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        MetricsServer {
            addr,
            state,
            hits: rx,
        }
    }

    fn set(&self, text: &str) {
        *self.state.text.lock().unwrap() = text.to_owned();
    }

    fn set_slots(&self, json: &str) {
        *self.state.slots.lock().unwrap() = Some(json.to_owned());
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn serve_slots(State(b): State<Arc<Backend>>) -> Result<String, axum::http::StatusCode> {
    let slots = b.slots.lock().unwrap().clone();
    slots.ok_or(axum::http::StatusCode::NOT_FOUND)
}

async fn serve_metrics(State(b): State<Arc<Backend>>) -> String {
    let _ = b.hits.send(());
    if b.hang {
        std::future::pending::<()>().await;
    }
    b.text.lock().unwrap().clone()
}

/// Two GPUs; the second one always fails.
#[derive(Debug)]
struct FakeGpus;

impl GpuReader for FakeGpus {
    fn device_count(&mut self) -> Result<u32, GpuError> {
        Ok(2)
    }
    fn read(&mut self, index: u32) -> Result<GpuReading, GpuError> {
        match index {
            0 => Ok(GpuReading {
                utilization_pct: Some(87.0),
                memory_used_bytes: Some(1 << 30),
                power_w: Some(300.5),
                ..GpuReading::default()
            }),
            _ => Err(GpuError::Device {
                index,
                message: "gpu has fallen off the bus".into(),
            }),
        }
    }
}

fn server_samples<'a>(samples: &'a [MetricsSample], instance: &str) -> Vec<&'a MetricsSample> {
    samples
        .iter()
        .filter(|s| s.source == MetricSource::Server && s.instance == instance)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_streams_interval_values_and_summarises_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = MetricsServer::start(&fixture("vllm_v1_a.txt"), false).await;
    // Nothing listens on port 1: every scrape of it fails at once.
    let dead = "http://127.0.0.1:1";
    let clock = Arc::new(ManualClock::at(0));
    let live = Arc::new(LiveMetrics::new());
    let config = CollectorConfig {
        interval: None,
        targets: vec![
            ScrapeTarget::for_backend(&backend.url()).unwrap(),
            ScrapeTarget::for_backend(dead).unwrap(),
        ],
        gpu: GpuSource::Reader(Box::new(FakeGpus)),
        system: true,
        scrape_timeout: Duration::from_secs(5),
        ..CollectorConfig::default()
    };
    let collector =
        Collector::start_with_clock(config, tmp.path(), clock.clone(), Some(Arc::clone(&live)))
            .unwrap();

    clock.set(10_000_000_000);
    collector.tick().wait().await;
    collector.mark_window_start().wait().await;
    backend.set(&fixture("vllm_v1_b.txt"));
    clock.set(12_000_000_000);
    collector.tick().wait().await;
    collector.mark_window_end().wait().await;

    // The live view got the latest readings.
    let snap = live.snapshot();
    assert_eq!(snap.server_running, Some(5.0));
    assert_eq!(snap.kv_cache_usage_frac, Some(0.375));
    assert_eq!(snap.gpu_utilization_pct, Some(87.0));

    let report = collector.finish().await.unwrap();

    // metrics.jsonl: two server samples for the live backend, none for the
    // dead one, which produced one warning (the other failures held back).
    let samples = read_metrics(&tmp.path().join(rundir::METRICS_FILE)).unwrap();
    assert_eq!(report.samples, samples.len() as u64);
    let ours = server_samples(&samples, &backend.url());
    assert_eq!(ours.len(), 2);
    assert!(server_samples(&samples, dead).is_empty());
    assert_eq!(ours[0].t_ns, 10_000_000_000);
    assert_eq!(ours[1].t_ns, 12_000_000_000);
    assert!(!ours[0].values.contains_key(names::PROMPT_TOKENS_PER_S));
    let v = &ours[1].values;
    assert_close(v, names::REQUESTS_RUNNING, 5.0);
    assert_close(v, names::PROMPT_TOKENS_PER_S, 1536.0);
    assert_close(v, names::REQUEST_FAILURE_PER_S, 0.5);
    // The p99 bucket, not the interpolated 0.235 s.
    assert_close(v, &names::quantile_lower_name(names::TTFT, "p99"), 0.1);
    assert_close(v, &names::quantile_upper_name(names::TTFT, "p99"), 0.25);

    // GPU 0 sampled twice, GPU 1 never; host and process each round.
    let gpu: Vec<_> = samples
        .iter()
        .filter(|s| s.source == MetricSource::Gpu)
        .collect();
    assert_eq!(gpu.len(), 2);
    assert!(gpu.iter().all(|s| s.instance == "gpu0"));
    assert_eq!(gpu[0].values[names::GPU_POWER_W], 300.5);
    let process: Vec<_> = samples
        .iter()
        .filter(|s| s.source == MetricSource::Process)
        .collect();
    assert_eq!(process.len(), 2);
    assert!(process[0].values[names::PROCESS_RSS_BYTES] > 0.0);
    assert!(process[1].values.contains_key(names::PROCESS_CPU_PCT));
    let system: Vec<_> = samples
        .iter()
        .filter(|s| s.source == MetricSource::System)
        .collect();
    assert_eq!(system.len(), 2);
    assert!(system[1].values.contains_key(names::NET_RX_BYTES_PER_S));

    assert_eq!(report.warnings, 2, "{:?}", report.warning_messages);
    let dead_warning = report
        .warning_messages
        .iter()
        .find(|m| m.starts_with(dead))
        .unwrap();
    assert!(dead_warning.contains("scrape failed"), "{dead_warning}");
    assert!(
        report
            .warning_messages
            .iter()
            .any(|m| m.starts_with("gpu: gpu 1: gpu has fallen off the bus"))
    );
    // The dead backend failed 4 times (2 ticks, 2 marks) and GPU 1 twice.
    assert_eq!(report.suppressed_warnings, 4);
    assert_eq!(report.skipped_ticks, 0);

    // metrics.csv holds the same readings, one per row.
    let csv = std::fs::read_to_string(tmp.path().join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("t_ns,source,instance,metric,value")
    );
    // `harness report` writes metrics.csv from metrics.jsonl through the same
    // writer; read back exactly, the floats give the same bytes.
    let mut again = Vec::new();
    rundir::metrics_csv::render(&samples, rundir::metrics_csv::CsvFormat::Long, &mut again)
        .unwrap();
    // Rows of one instant come from several sources (server, GPU, host)
    // whose order between sources is not fixed; each row's bytes must match.
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&String::from_utf8(again).unwrap()), sorted(&csv));
    let rows: Vec<Vec<String>> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len() as u64, report.csv_rows);
    let jsonl_values: usize = samples.iter().map(|s| s.values.len()).sum();
    assert_eq!(rows.len(), jsonl_values);
    assert!(rows.iter().all(|r| r.len() == 5));
    let row = |cells: [&str; 5]| cells.map(str::to_owned).to_vec();
    assert!(rows.contains(&row([
        "12000000000",
        "server",
        backend.url().as_str(),
        "prompt_tokens_per_s",
        "1536"
    ])));
    // Every scraped series is kept as scraped, labels and all.
    assert!(rows.contains(&row([
        "12000000000",
        "server_raw",
        backend.url().as_str(),
        "vllm:num_requests_running{engine=\"1\",model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}",
        "2"
    ])));

    // server_summary.json: exactly the window between the marks.
    let path = tmp.path().join("server_summary.json");
    let written = std::fs::read_to_string(&path).unwrap();
    let expected = serde_json::to_string_pretty(report.server_summary.as_ref().unwrap()).unwrap();
    assert_eq!(written, expected + "\n");
    // Read back through rundir (serde_json without `float_roundtrip` may be
    // one ulp off, so values are compared with a tolerance below).
    let summary = read_server_summary(&path).unwrap();
    assert_eq!(summary.window_start_ns, Some(10_000_000_000));
    assert_eq!(summary.window_end_ns, Some(12_000_000_000));
    assert_eq!(summary.backends.len(), 2);
    let b = &summary.backends[0];
    assert_eq!(b.instance, backend.url());
    let stats = b.stats.as_ref().unwrap();
    assert_eq!(stats.duration_s, 2.0);
    assert_eq!(stats.counts["prompt_tokens"], 3072.0);
    assert_eq!(stats.counts["request_success"], 6.0);
    assert_eq!(stats.counts["request_failure"], 1.0);
    assert_eq!(stats.observations["ttft"], 20.0);
    assert_close(&stats.values, names::GENERATION_TOKENS_PER_S, 384.0);
    // server_summary.json: the p50 bucket (the interpolated 0.064 s is
    // gone) beside the exact mean.
    assert_close(
        &stats.values,
        &names::quantile_upper_name(names::TTFT, "p50"),
        0.08,
    );
    assert!(
        !stats
            .values
            .contains_key(&names::quantile_name(names::TTFT, "p50"))
    );
    assert_close(
        &stats.values,
        &names::quantile_name(names::TTFT, "mean"),
        1.28 / 20.0,
    );
    assert_close(&stats.values, names::PREFIX_CACHE_HIT_FRAC, 1.0 / 3.0);
    assert_eq!(stats.counter_resets, 0);
    let d = &summary.backends[1];
    assert!(d.stats.is_none());
    assert!(
        d.error
            .as_ref()
            .unwrap()
            .starts_with("window start: scrape failed"),
        "{d:?}"
    );
    let total = summary.total.as_ref().unwrap();
    assert_eq!(total.counts, stats.counts);
    assert_eq!(total.values, stats.values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_backend_times_out_without_holding_back_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let good = MetricsServer::start(&fixture("llamacpp_busy.txt"), false).await;
    let stuck = MetricsServer::start("", true).await;
    let clock = Arc::new(ManualClock::at(1_000_000_000));
    let config = CollectorConfig {
        interval: None,
        targets: vec![
            ScrapeTarget::for_backend(&stuck.url()).unwrap(),
            ScrapeTarget::for_backend(&good.url()).unwrap(),
        ],
        gpu: GpuSource::Off,
        system: false,
        scrape_timeout: Duration::from_millis(300),
        ..CollectorConfig::default()
    };
    good.set_slots(&fixture("llamacpp_slots_busy.json"));
    let collector = Collector::start_with_clock(config, tmp.path(), clock, None).unwrap();
    collector.tick().wait().await;
    let report = collector.finish().await.unwrap();
    let samples = read_metrics(&tmp.path().join(rundir::METRICS_FILE)).unwrap();
    assert_eq!(samples.len(), 2);
    let server = server_samples(&samples, &good.url());
    assert_eq!(server.len(), 1);
    assert_eq!(server[0].values[names::REQUESTS_WAITING], 1.0);
    // KV cache from /slots: (17 + 6) and (16 + 5) tokens of 2 x 1024.
    assert_close(&server[0].values, names::KV_CACHE_USAGE_FRAC, 44.0 / 2048.0);
    // All 15 llama.cpp series and the 4 derived from /slots, as scraped.
    let raw = samples
        .iter()
        .find(|s| s.source == MetricSource::ServerRaw)
        .unwrap();
    assert_eq!(raw.tick, server[0].tick);
    assert_eq!(raw.values.len(), 15 + 4, "{:?}", raw.values.keys());
    assert_eq!(raw.values["llamacpp:n_busy_slots_per_decode"], 1.93333);
    assert_eq!(
        raw.values["llamacpp_slots:busy_context_tokens{slot=\"1\"}"],
        21.0
    );
    assert_eq!(report.warnings, 1);
    assert!(
        report.warning_messages[0].contains("timed out after 300ms"),
        "{:?}",
        report.warning_messages
    );
    // No window was marked: no summary file.
    assert!(report.server_summary.is_none());
    assert!(!tmp.path().join("server_summary.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_drives_sampling_and_garbage_is_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = fixture("vllm_v1_a.txt");
    text.push_str("garbage line here\n");
    let mut backend = MetricsServer::start(&text, false).await;
    let config = CollectorConfig {
        interval: Some(Duration::from_millis(10)),
        targets: vec![ScrapeTarget::for_backend(&backend.url()).unwrap()],
        gpu: GpuSource::Off,
        system: false,
        ..CollectorConfig::default()
    };
    let collector = Collector::start(config, tmp.path(), std::time::Instant::now(), None).unwrap();
    // The server sees the scrapes the interval triggers; no manual tick.
    for _ in 0..3 {
        backend.hits.recv().await.unwrap();
    }
    let report = collector.finish().await.unwrap();
    let samples = read_metrics(&tmp.path().join(rundir::METRICS_FILE)).unwrap();
    let samples = server_samples(&samples, &backend.url());
    assert!(samples.len() >= 3, "{}", samples.len());
    assert!(samples.windows(2).all(|w| w[0].t_ns < w[1].t_ns));
    assert!(samples.windows(2).all(|w| w[0].tick < w[1].tick));
    assert!(
        samples
            .iter()
            .all(|s| s.values[names::REQUESTS_RUNNING] == 1.0)
    );
    // The bad line is reported once (the rest held back by the rate limit).
    assert_eq!(report.warnings, 1, "{:?}", report.warning_messages);
    assert!(
        report.warning_messages[0].contains("1 unreadable line(s) in /metrics, first: line 545")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let config = || CollectorConfig {
        gpu: GpuSource::Off,
        system: false,
        ..CollectorConfig::default()
    };
    let first = Collector::start(config(), tmp.path(), std::time::Instant::now(), None).unwrap();
    // Runs never overwrite: a second collector into the same directory fails
    // and names the file.
    let err = Collector::start(config(), tmp.path(), std::time::Instant::now(), None).unwrap_err();
    assert!(err.to_string().contains("metrics.jsonl"), "{err}");
    first.finish().await.unwrap();
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Collector::start(
        CollectorConfig::default(),
        tmp.path(),
        std::time::Instant::now(),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, TelemetryError::NoRuntime(_)), "{err}");
    assert!(!tmp.path().join("metrics.jsonl").exists());
}

fn phase_start(phase: loadgen::Phase) -> loadgen::PhaseStart {
    let settings = loadgen::TestSettings::default();
    let (effective, _) = loadgen::EffectiveSettings::new(&settings, 10, 10).unwrap();
    loadgen::PhaseStart {
        phase,
        scenario: loadgen::Scenario::Server,
        mode: loadgen::TestMode::PerformanceOnly,
        start_unix_ns: 0,
        settings: effective,
        query_count: 10,
        sample_count: 10,
    }
}

fn phase_end(phase: loadgen::Phase) -> loadgen::PhaseEnd {
    loadgen::PhaseEnd {
        phase,
        end_ns: 1,
        completed_samples: 10,
        failed_samples: 0,
        valid: Some(true),
        invalid_reasons: vec![],
        interrupted: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_marker_observes_the_performance_phase_only() {
    use loadgen::{Phase, RunObserver};
    let tmp = tempfile::tempdir().unwrap();
    let backend = MetricsServer::start(&fixture("vllm_v1_a.txt"), false).await;
    let clock = Arc::new(ManualClock::at(5_000_000_000));
    let config = CollectorConfig {
        interval: None,
        targets: vec![ScrapeTarget::for_backend(&backend.url()).unwrap()],
        gpu: GpuSource::Off,
        system: false,
        ..CollectorConfig::default()
    };
    let collector = Collector::start_with_clock(config, tmp.path(), clock.clone(), None).unwrap();
    let marker = collector.window_marker();
    // LoadGen calls its observer from its own (non-runtime) thread, with
    // the phase clock already running: the start mark does not wait for its
    // scrape (a `/metrics` that never answers must not delay the first
    // query). A second start mark at the same instant, waited for, orders
    // the text change after both start scrapes (a worker runs its jobs in
    // order).
    let state = Arc::clone(&backend.state);
    let clock_t = Arc::clone(&clock);
    std::thread::spawn(move || {
        marker.phase_started(&phase_start(Phase::Performance));
        marker.mark_window_start().wait_blocking();
        *state.text.lock().unwrap() = fixture("vllm_v1_b.txt");
        clock_t.set(7_000_000_000);
        marker.phase_finished(&phase_end(Phase::Performance));
        // The accuracy phase that follows is no measured window.
        clock_t.set(9_000_000_000);
        marker.phase_started(&phase_start(Phase::Accuracy));
        marker.phase_finished(&phase_end(Phase::Accuracy));
    })
    .join()
    .unwrap();
    let report = collector.finish().await.unwrap();
    let summary = report.server_summary.unwrap();
    assert_eq!(summary.window_start_ns, Some(5_000_000_000));
    assert_eq!(summary.window_end_ns, Some(7_000_000_000));
    let stats = summary.backends[0].stats.as_ref().unwrap();
    assert_eq!(stats.duration_s, 2.0);
    assert_eq!(stats.counts["prompt_tokens"], 3072.0);
    assert!(tmp.path().join("server_summary.json").exists());
}
