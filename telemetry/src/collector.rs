//! The collector: samples every source on an interval while a run is in
//! progress and streams the samples to `metrics.jsonl` and `metrics.csv`.
//!
//! Each source has its own worker (an async task per backend, one thread for
//! the host, process and GPUs), so a backend that hangs until its scrape
//! timeout delays nothing else: on a tick, a worker still busy with the
//! previous one skips it (counted in [`CollectorReport::skipped_ticks`]).
//! Failures are warnings, rate-limited per source, never errors.
//!
//! Times are ns on the run clock ([`Clock`]); a server sample is stamped
//! with the midpoint of its request, which is when the server most likely
//! rendered it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use rundir::metrics::{
    BackendWindow, METRICS_CSV_FILE, MetricSource, MetricsSample, SERVER_SUMMARY_FILE,
    ServerSummary, WindowStats,
};
use rundir::metrics_csv::CsvFormat;
use rundir::{JsonlWriter, METRICS_FILE};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use loadgen::{Phase, PhaseEnd, PhaseStart, RunObserver};

use crate::TelemetryError;
use crate::csv::CsvWriter;
use crate::gpu::{GpuReader, NvmlGpus, read_selected, select_devices};
use crate::live::LiveMetrics;
use crate::prom_parse::Exposition;
use crate::scrape::{ScrapeTarget, Scraper};
use crate::server::{ServerDelta, ServerSnapshot, interval_values};
use crate::system::SystemSampler;
use crate::warn::{WarnLimiter, WarnStats};

/// The run clock.
pub trait Clock: Send + Sync + fmt::Debug {
    /// ns since the run started.
    fn now_ns(&self) -> u64;
}

/// The real run clock: ns since an `Instant`.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
}

impl RunClock {
    /// A clock whose zero is `start` (the harness's run start).
    pub fn new(start: Instant) -> RunClock {
        RunClock { start }
    }
}

impl Clock for RunClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    ns: AtomicU64,
}

impl ManualClock {
    /// A clock reading `ns`.
    pub fn at(ns: u64) -> ManualClock {
        ManualClock {
            ns: AtomicU64::new(ns),
        }
    }

    /// Sets the time.
    pub fn set(&self, ns: u64) {
        self.ns.store(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.ns.load(Ordering::SeqCst)
    }
}

/// Where GPU readings come from.
#[derive(Debug, Default)]
pub enum GpuSource {
    /// NVML; without a driver, one warning and no GPU samples.
    #[default]
    Nvml,
    /// No GPU samples.
    Off,
    /// A given reader (tests, other vendors).
    Reader(Box<dyn GpuReader>),
}

/// What to collect and how often.
#[derive(Debug)]
pub struct CollectorConfig {
    /// Sampling interval; `None` samples only on [`Collector::tick`].
    pub interval: Option<Duration>,
    /// Backends whose `/metrics` to scrape.
    pub targets: Vec<ScrapeTarget>,
    /// GPU readings.
    pub gpu: GpuSource,
    /// Host and harness-process readings.
    pub system: bool,
    /// Per-scrape time limit.
    pub scrape_timeout: Duration,
    /// A failing source warns at most once per this interval (run clock).
    pub warn_interval: Duration,
    /// The GPUs to read, by NVML index (`--gpus 0,2`); `None` reads all.
    /// An index the machine does not have fails [`Collector::start`] when
    /// the GPUs can be counted (NVML loads, or a given reader).
    pub gpus: Option<Vec<u32>>,
    /// The layout of `metrics.csv`.
    pub csv_format: CsvFormat,
    /// Read llama.cpp's `GET /slots` beside its `/metrics` (for the KV-cache
    /// figure, see [`crate::slots`]).
    pub llamacpp_slots: bool,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            interval: Some(Duration::from_secs(1)),
            targets: Vec::new(),
            gpu: GpuSource::Nvml,
            system: true,
            scrape_timeout: Duration::from_secs(2),
            warn_interval: Duration::from_secs(60),
            gpus: None,
            csv_format: CsvFormat::Long,
            llamacpp_slots: true,
        }
    }
}

/// What the collector did, returned by [`Collector::finish`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectorReport {
    /// Lines written to `metrics.jsonl`.
    pub samples: u64,
    /// Rows written to `metrics.csv` (readings in the long layout, rounds in
    /// the wide one).
    pub csv_rows: u64,
    /// Warnings logged.
    pub warnings: u64,
    /// Repeated warnings held back by the rate limit.
    pub suppressed_warnings: u64,
    /// The warnings' texts (the first 100).
    pub warning_messages: Vec<String>,
    /// Ticks a source skipped because it was still busy with the previous one.
    pub skipped_ticks: u64,
    /// The window summary, when a window was marked (also written to
    /// `server_summary.json`).
    pub server_summary: Option<ServerSummary>,
}

/// Completion of a request to the collector.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<()>);

impl Pending {
    /// Waits until the collector has done it (or has stopped).
    pub async fn wait(self) {
        let _ = self.0.await;
    }

    /// Blocks the calling thread until done. Not for use inside an async
    /// task (use [`Pending::wait`]); meant for LoadGen's observer threads.
    pub fn wait_blocking(self) {
        let _ = self.0.blocking_recv();
    }

    /// Like [`Pending::wait_blocking`], but gives up after `limit`.
    pub fn wait_blocking_at_most(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        // A oneshot receiver has no blocking wait with a deadline; polling
        // every millisecond is cheap for the one call per phase.
        while matches!(self.0.try_recv(), Err(oneshot::error::TryRecvError::Empty))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Start,
    End,
}

#[derive(Debug)]
enum Command {
    Tick(oneshot::Sender<()>),
    Mark(Edge, u64, oneshot::Sender<()>),
    Stop,
}

#[derive(Debug)]
enum Job {
    /// Read the source for collection round `n`.
    Tick(u64, Option<oneshot::Sender<()>>),
    Mark(Edge, oneshot::Sender<()>),
}

/// One scrape at a window edge: run-clock time and mapped snapshot, or why
/// it failed.
type EdgeScrape = Result<(u64, ServerSnapshot), String>;

#[derive(Debug, Default)]
struct WindowState {
    start_mark_ns: Option<u64>,
    end_mark_ns: Option<u64>,
    start: BTreeMap<usize, EdgeScrape>,
    end: BTreeMap<usize, EdgeScrape>,
}

/// Where samples go.
#[derive(Debug, Clone)]
struct Sink {
    jsonl: Option<std_mpsc::Sender<MetricsSample>>,
    csv: Option<std_mpsc::Sender<MetricsSample>>,
    live: Option<Arc<LiveMetrics>>,
}

impl Sink {
    fn emit(&self, sample: MetricsSample) {
        if let Some(live) = &self.live
            && sample.source != MetricSource::ServerRaw
        {
            live.set_reading(sample.source, &sample.instance, sample.values.clone());
        }
        if let Some(csv) = &self.csv {
            let _ = csv.send(sample.clone());
        }
        if let Some(jsonl) = &self.jsonl {
            let _ = jsonl.send(sample);
        }
    }
}

/// Shared by the workers.
#[derive(Debug)]
struct Shared {
    clock: Arc<dyn Clock>,
    warn_every_ns: u64,
    warnings: WarnStats,
    skipped_ticks: AtomicU64,
    window: Mutex<WindowState>,
}

/// A running collector. Create it with [`Collector::start`] inside a tokio
/// runtime; end it with [`Collector::finish`].
#[derive(Debug)]
pub struct Collector {
    tx: mpsc::UnboundedSender<Command>,
    task: JoinHandle<Result<CollectorReport, TelemetryError>>,
    clock: Arc<dyn Clock>,
}

impl Collector {
    /// Starts collecting into `run_dir` (creating `metrics.jsonl` and
    /// `metrics.csv`, which must not exist) on the clock of the run that
    /// started at `run_start`. `live` receives the latest readings.
    pub fn start(
        config: CollectorConfig,
        run_dir: &Path,
        run_start: Instant,
        live: Option<Arc<LiveMetrics>>,
    ) -> Result<Collector, TelemetryError> {
        Collector::start_with_clock(config, run_dir, Arc::new(RunClock::new(run_start)), live)
    }

    /// [`Collector::start`] with any clock (tests use a [`ManualClock`]).
    pub fn start_with_clock(
        config: CollectorConfig,
        run_dir: &Path,
        clock: Arc<dyn Clock>,
        live: Option<Arc<LiveMetrics>>,
    ) -> Result<Collector, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| TelemetryError::NoRuntime(e.to_string()))?;
        let scraper = Scraper::new(config.scrape_timeout)?;
        let jsonl = JsonlWriter::<MetricsSample>::create(&run_dir.join(METRICS_FILE))?;
        let gpu = match config.gpu {
            GpuSource::Off => None,
            GpuSource::Nvml => match (&config.gpus, NvmlGpus::init()) {
                // Count now, so a wrong --gpus fails before the run.
                (Some(selection), Ok(mut nvml)) => {
                    check_selection(&mut nvml, selection)?;
                    Some(LocalGpu::Reader(Box::new(nvml)))
                }
                // Without NVML the worker warns once, as without --gpus.
                _ => Some(LocalGpu::Nvml),
            },
            GpuSource::Reader(mut r) => {
                if let Some(selection) = &config.gpus {
                    check_selection(r.as_mut(), selection)?;
                }
                Some(LocalGpu::Reader(r))
            }
        };
        let csv = CsvWriter::create(&run_dir.join(METRICS_CSV_FILE), config.csv_format)?;
        let sink = Sink {
            jsonl: jsonl.sender(),
            csv: csv.sender(),
            live,
        };
        let shared = Arc::new(Shared {
            clock: Arc::clone(&clock),
            warn_every_ns: u64::try_from(config.warn_interval.as_nanos()).unwrap_or(u64::MAX),
            warnings: WarnStats::default(),
            skipped_ticks: AtomicU64::new(0),
            window: Mutex::new(WindowState::default()),
        });

        let mut workers: Vec<mpsc::Sender<Job>> = Vec::new();
        let mut handles: Vec<WorkerHandle> = Vec::new();
        let instances: Vec<String> = config
            .targets
            .iter()
            .map(|t| t.instance().to_owned())
            .collect();
        for (index, target) in config.targets.into_iter().enumerate() {
            // Room for one job behind the one running: a `/metrics` that
            // never answers costs one scrape timeout per job, so a deeper
            // queue of ticks would hold the window's end mark (and the end
            // of the run) back by several timeouts.
            let (tx, rx) = mpsc::channel::<Job>(1);
            let worker = ServerWorker {
                index,
                target,
                scraper: scraper.clone(),
                shared: Arc::clone(&shared),
                sink: sink.clone(),
                prev: None,
                warn: None,
                slots: config.llamacpp_slots,
            };
            handles.push(WorkerHandle::Task(runtime.spawn(worker.run(rx))));
            workers.push(tx);
        }
        let mut local_worker = None;
        if config.system || gpu.is_some() {
            let (tx, rx) = mpsc::channel::<Job>(4);
            let shared2 = Arc::clone(&shared);
            let sink2 = sink.clone();
            let system = config.system;
            let selection = config.gpus.clone();
            let handle = std::thread::Builder::new()
                .name("telemetry-local".into())
                .spawn(move || {
                    local_worker_loop(rx, &shared2, &sink2, system, gpu, selection.as_deref());
                })
                .map_err(|source| TelemetryError::Io {
                    path: PathBuf::from("telemetry-local thread"),
                    source,
                })?;
            handles.push(WorkerHandle::Thread(handle));
            local_worker = Some(tx);
        }
        drop(sink);

        let (tx, rx) = mpsc::unbounded_channel();
        let main = MainLoop {
            interval: config.interval,
            servers: workers,
            local: local_worker,
            shared,
            instances,
            run_dir: run_dir.to_path_buf(),
            next_tick: 0,
        };
        let task = runtime.spawn(main.run(rx, handles, jsonl, csv));
        Ok(Collector { tx, task, clock })
    }

    /// Samples every source now, outside the interval. Resolves when all
    /// samples of this round have been handed to the writers.
    pub fn tick(&self) -> Pending {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Tick(done));
        Pending(rx)
    }

    /// Marks the start of the measured window (call at the first issue):
    /// every backend is scraped now for the window summary. Returns at once;
    /// wait on the [`Pending`] to be sure the scrape happened before load
    /// starts. A second start mark replaces the first and clears the end.
    pub fn mark_window_start(&self) -> Pending {
        self.mark(Edge::Start)
    }

    /// Marks the end of the measured window (call at the last completion).
    pub fn mark_window_end(&self) -> Pending {
        self.mark(Edge::End)
    }

    fn mark(&self, edge: Edge) -> Pending {
        self.window_marker().mark(edge)
    }

    /// A cloneable handle that marks the window, for observers that do not
    /// own the collector. It is also a [`RunObserver`] that marks the
    /// performance phase's window by itself.
    pub fn window_marker(&self) -> WindowMarker {
        WindowMarker {
            tx: self.tx.clone(),
            clock: Arc::clone(&self.clock),
            started_early: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Stops sampling, waits for the sources, writes `server_summary.json`
    /// if a window was marked, and flushes every file.
    pub async fn finish(self) -> Result<CollectorReport, TelemetryError> {
        let _ = self.tx.send(Command::Stop);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(TelemetryError::Task(e.to_string())),
        }
    }
}

#[derive(Debug)]
enum WorkerHandle {
    Task(JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

struct MainLoop {
    interval: Option<Duration>,
    servers: Vec<mpsc::Sender<Job>>,
    local: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    instances: Vec<String>,
    run_dir: PathBuf,
    /// The number of the next collection round.
    next_tick: u64,
}

impl MainLoop {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        handles: Vec<WorkerHandle>,
        jsonl: JsonlWriter<MetricsSample>,
        csv: CsvWriter,
    ) -> Result<CollectorReport, TelemetryError> {
        let mut ticker = self.interval.map(|d| {
            let mut t = tokio::time::interval(d);
            // A late tick is skipped, not bunched: the interval is a rate.
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            t
        });
        loop {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(Command::Tick(done)) => self.dispatch_tick(Some(done)),
                    Some(Command::Mark(edge, at_ns, done)) => self.dispatch_mark(edge, at_ns, done).await,
                    Some(Command::Stop) | None => break,
                },
                () = tick => self.dispatch_tick(None),
            }
        }
        let MainLoop {
            servers,
            local,
            shared,
            instances,
            run_dir,
            ..
        } = self;
        // Closing the job queues lets each worker finish its current job
        // (bounded by the scrape timeout) and exit.
        drop(servers);
        drop(local);
        for handle in handles {
            match handle {
                WorkerHandle::Task(h) => {
                    let _ = h.await;
                }
                WorkerHandle::Thread(h) => {
                    let _ = tokio::task::spawn_blocking(move || h.join()).await;
                }
            }
        }
        let summary = {
            let window = shared
                .window
                .lock()
                .map_err(|_| TelemetryError::Task("window state poisoned".into()))?;
            if window.start_mark_ns.is_some() || window.end_mark_ns.is_some() {
                let mut summary = summarize_window(&window, &instances);
                summary.skipped_ticks = shared.skipped_ticks.load(Ordering::Relaxed);
                Some(summary)
            } else {
                None
            }
        };
        if let Some(summary) = &summary {
            write_summary(&run_dir.join(SERVER_SUMMARY_FILE), summary)?;
        }
        let (samples, csv_rows) = tokio::task::spawn_blocking(move || {
            let samples = jsonl.finish().map_err(TelemetryError::from);
            let rows = csv.finish();
            (samples, rows)
        })
        .await
        .map_err(|e| TelemetryError::Task(e.to_string()))?;
        Ok(CollectorReport {
            samples: samples?,
            csv_rows: csv_rows?,
            warnings: shared.warnings.emitted.load(Ordering::Relaxed),
            suppressed_warnings: shared.warnings.suppressed.load(Ordering::Relaxed),
            warning_messages: shared.warnings.messages(),
            skipped_ticks: shared.skipped_ticks.load(Ordering::Relaxed),
            server_summary: summary,
        })
    }

    /// Hands a tick to every worker; a busy worker skips it.
    fn dispatch_tick(&mut self, done: Option<oneshot::Sender<()>>) {
        let tick = self.next_tick;
        self.next_tick += 1;
        let mut waits = Vec::new();
        for worker in self.servers.iter().chain(self.local.as_ref()) {
            let (tx, rx) = match done {
                Some(_) => {
                    let (tx, rx) = oneshot::channel();
                    (Some(tx), Some(rx))
                }
                None => (None, None),
            };
            match worker.try_send(Job::Tick(tick, tx)) {
                Ok(()) => waits.extend(rx),
                Err(_) => {
                    self.shared.skipped_ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(done) = done {
            tokio::spawn(async move {
                for w in waits {
                    let _ = w.await;
                }
                let _ = done.send(());
            });
        }
    }

    async fn dispatch_mark(&self, edge: Edge, at_ns: u64, done: oneshot::Sender<()>) {
        if let Ok(mut w) = self.shared.window.lock() {
            match edge {
                Edge::Start => {
                    *w = WindowState {
                        start_mark_ns: Some(at_ns),
                        ..WindowState::default()
                    };
                }
                Edge::End => {
                    w.end_mark_ns = Some(at_ns);
                    w.end.clear();
                }
            }
        }
        let mut waits = Vec::new();
        for worker in &self.servers {
            let (tx, rx) = oneshot::channel();
            // Marks wait for room: they must not be skipped.
            if worker.send(Job::Mark(edge, tx)).await.is_ok() {
                waits.push(rx);
            }
        }
        tokio::spawn(async move {
            for w in waits {
                let _ = w.await;
            }
            let _ = done.send(());
        });
    }
}

/// The longest the start mark waits for its scrapes before the
/// performance phase's clock starts (a healthy `/metrics` answers in
/// milliseconds; one that never answers costs the run this much, once per
/// phase, and no query).
pub const START_MARK_WAIT: Duration = Duration::from_millis(250);

/// Marks the measured window of a running [`Collector`] (see
/// [`Collector::window_marker`]). Marks sent after the collector finished
/// are ignored.
///
/// As a [`RunObserver`] it marks the start when the performance phase is
/// about to start and the end when it finishes (after its last
/// completion); the accuracy phase is not a measured window. The start
/// mark is taken before the phase's clock starts
/// ([`RunObserver::phase_starting`]) and waits for its scrapes at most
/// [`START_MARK_WAIT`] there: the backends' counters then precede the load,
/// and no query is held back against its schedule. A driver without that
/// hook gets the mark when the phase has started, never waited for (the
/// clock is running: telemetry must not delay the first query). Either
/// way each backend's window starts when its start scrape lands
/// (`start_scrape_ns` in server_summary.json); one that never answers has
/// no start and its window says why. Off a tokio runtime (LoadGen on a
/// plain `std::thread`) the end mark waits for its scrapes, bounded by the
/// scrape timeout, so they precede whatever comes next; on a thread with a
/// runtime context, where blocking may be forbidden, no mark waits.
#[derive(Debug, Clone)]
pub struct WindowMarker {
    tx: mpsc::UnboundedSender<Command>,
    clock: Arc<dyn Clock>,
    /// The start was marked by `phase_starting` for the phase now starting.
    started_early: Arc<AtomicBool>,
}

impl WindowMarker {
    /// As [`Collector::mark_window_start`].
    pub fn mark_window_start(&self) -> Pending {
        self.mark(Edge::Start)
    }

    /// As [`Collector::mark_window_end`].
    pub fn mark_window_end(&self) -> Pending {
        self.mark(Edge::End)
    }

    fn mark(&self, edge: Edge) -> Pending {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Mark(edge, self.clock.now_ns(), done));
        Pending(rx)
    }
}

impl RunObserver for WindowMarker {
    fn phase_starting(&self, phase: Phase) {
        if phase == Phase::Performance {
            self.started_early.store(true, Ordering::Relaxed);
            let pending = self.mark_window_start();
            if tokio::runtime::Handle::try_current().is_err() {
                pending.wait_blocking_at_most(START_MARK_WAIT);
            }
        }
    }

    fn phase_started(&self, start: &PhaseStart) {
        if start.phase == Phase::Performance && !self.started_early.swap(false, Ordering::Relaxed) {
            // Not waited for: the phase clock is already running, and a
            // `/metrics` that never answers must not hold the first query
            // back (late queries, an INVALID run).
            drop(self.mark_window_start());
        }
    }

    fn phase_finished(&self, end: &PhaseEnd) {
        if end.phase == Phase::Performance {
            // Waiting keeps a following accuracy phase's load out of the
            // end scrapes.
            let pending = self.mark_window_end();
            if tokio::runtime::Handle::try_current().is_err() {
                pending.wait_blocking();
            }
        }
    }
}

/// Scrapes one backend.
struct ServerWorker {
    index: usize,
    target: ScrapeTarget,
    scraper: Scraper,
    shared: Arc<Shared>,
    sink: Sink,
    prev: Option<(u64, ServerSnapshot)>,
    warn: Option<WarnLimiter>,
    /// Still reading llama.cpp's `/slots` (off once it failed: a server
    /// started with `--no-slots`, or not llama.cpp after all).
    slots: bool,
}

impl ServerWorker {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        self.warn = Some(WarnLimiter::new(
            self.target.instance(),
            self.shared.warn_every_ns,
        ));
        while let Some(job) = rx.recv().await {
            match job {
                Job::Tick(tick, done) => {
                    self.tick(tick).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Job::Mark(edge, done) => {
                    let result = self.scrape().await;
                    if let Ok(mut w) = self.shared.window.lock() {
                        let slot = match edge {
                            Edge::Start => &mut w.start,
                            Edge::End => &mut w.end,
                        };
                        slot.insert(self.index, result);
                    }
                    let _ = done.send(());
                }
            }
        }
    }

    fn problem(&mut self, message: &str) {
        let now = self.shared.clock.now_ns();
        if let Some(w) = self.warn.as_mut() {
            w.problem(&self.shared.warnings, now, message);
        }
    }

    /// Scrapes and maps; parse issues are warned about and the rest used.
    async fn scrape(&mut self) -> EdgeScrape {
        let t0 = self.shared.clock.now_ns();
        let fetched = self.scraper.fetch(&self.target).await;
        let t1 = self.shared.clock.now_ns();
        let t = t0 + (t1.saturating_sub(t0)) / 2;
        let mut text = match fetched {
            Ok(text) => text,
            Err(e) => {
                let message = format!("scrape failed: {e}");
                self.problem(&message);
                return Err(message);
            }
        };
        if self.slots && text.contains("llamacpp:") {
            let slots = match self.scraper.fetch_slots(&self.target).await {
                Ok(json) => crate::slots::slots_exposition(&json),
                Err(e) => Err(e.to_string()),
            };
            match slots {
                Ok(lines) => text.push_str(&lines),
                Err(e) => {
                    self.slots = false;
                    let now = self.shared.clock.now_ns();
                    // Once: slots are not read again.
                    WarnLimiter::new(self.target.instance(), u64::MAX).problem(
                        &self.shared.warnings,
                        now,
                        &format!("llama.cpp /slots unreadable ({e}); no KV-cache figure for it"),
                    );
                }
            }
        }
        let expo = Exposition::parse(&text);
        if let Some(first) = expo.issues.first() {
            let message = format!(
                "{} unreadable line(s) in /metrics, first: {first}",
                expo.issues.len()
            );
            self.problem(&message);
        }
        let snapshot = ServerSnapshot::from_exposition(&expo);
        if snapshot.is_empty() {
            let message = "no known metrics (vLLM, llama.cpp, SGLang or TGI names) in /metrics; \
                           its series are still kept as server_raw"
                .to_owned();
            self.problem(&message);
        } else if expo.issues.is_empty()
            && let Some(w) = self.warn.as_mut()
        {
            w.ok();
        }
        Ok((t, snapshot))
    }

    async fn tick(&mut self, tick: u64) {
        let Ok((t, mut snapshot)) = self.scrape().await else {
            return;
        };
        let prev = self.prev.as_ref();
        let dt_s = prev.map_or(0.0, |(pt, _)| t.saturating_sub(*pt) as f64 / 1e9);
        let values = interval_values(prev.map(|(_, s)| s), &snapshot, dt_s);
        self.sink.emit(MetricsSample {
            t_ns: t,
            tick: Some(tick),
            source: MetricSource::Server,
            instance: self.target.instance().to_owned(),
            values,
        });
        self.sink.emit(MetricsSample {
            t_ns: t,
            tick: Some(tick),
            source: MetricSource::ServerRaw,
            instance: self.target.instance().to_owned(),
            values: std::mem::take(&mut snapshot.raw),
        });
        self.prev = Some((t, snapshot));
    }
}

enum LocalGpu {
    Nvml,
    Reader(Box<dyn GpuReader>),
}

fn local_worker_loop(
    mut rx: mpsc::Receiver<Job>,
    shared: &Shared,
    sink: &Sink,
    system: bool,
    gpu: Option<LocalGpu>,
    selection: Option<&[u32]>,
) {
    let every = shared.warn_every_ns;
    let mut gpu_warn = WarnLimiter::new("gpu", every);
    let mut sys_warn = WarnLimiter::new("system", every);
    let mut gpu: Option<Box<dyn GpuReader>> = match gpu {
        None => None,
        Some(LocalGpu::Reader(r)) => Some(r),
        Some(LocalGpu::Nvml) => match NvmlGpus::init() {
            Ok(n) => Some(Box::new(n)),
            Err(e) => {
                gpu_warn.problem(
                    &shared.warnings,
                    shared.clock.now_ns(),
                    &format!("{e}; no GPU metrics for this run"),
                );
                None
            }
        },
    };
    let mut sampler = if system {
        match SystemSampler::new() {
            Ok(s) => Some(s),
            Err(e) => {
                sys_warn.problem(
                    &shared.warnings,
                    shared.clock.now_ns(),
                    &format!("{e}; no host metrics for this run"),
                );
                None
            }
        }
    } else {
        None
    };
    while let Some(job) = rx.blocking_recv() {
        let (tick, done) = match job {
            Job::Tick(tick, done) => (Some(tick), done),
            Job::Mark(_, done) => (None, Some(done)),
        };
        let t = shared.clock.now_ns();
        if let Some(reader) = gpu.as_mut() {
            match read_selected(reader.as_mut(), selection) {
                Ok(devices) => {
                    let mut all_ok = true;
                    for (instance, reading) in devices {
                        match reading {
                            Ok(r) => sink.emit(MetricsSample {
                                t_ns: t,
                                tick,
                                source: MetricSource::Gpu,
                                instance,
                                values: r.values(),
                            }),
                            Err(e) => {
                                all_ok = false;
                                gpu_warn.problem(&shared.warnings, t, &e.to_string());
                            }
                        }
                    }
                    if all_ok {
                        gpu_warn.ok();
                    }
                }
                Err(e) => {
                    gpu_warn.problem(&shared.warnings, t, &e.to_string());
                }
            }
        }
        if let Some(s) = sampler.as_mut() {
            let reading = s.sample(t);
            sink.emit(MetricsSample {
                t_ns: t,
                tick,
                source: MetricSource::System,
                instance: reading.host,
                values: reading.system,
            });
            if !reading.process.is_empty() {
                sink.emit(MetricsSample {
                    t_ns: t,
                    tick,
                    source: MetricSource::Process,
                    instance: "harness".into(),
                    values: reading.process,
                });
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

/// Counts the GPUs and checks a `--gpus` selection against them.
fn check_selection(reader: &mut dyn GpuReader, selection: &[u32]) -> Result<(), TelemetryError> {
    reader
        .device_count()
        .and_then(|count| select_devices(count, Some(selection)))
        .map(|_| ())
        .map_err(TelemetryError::Gpu)
}

/// Builds the window summary from the edge scrapes.
fn summarize_window(window: &WindowState, instances: &[String]) -> ServerSummary {
    let mut summary = ServerSummary {
        window_start_ns: window.start_mark_ns,
        window_end_ns: window.end_mark_ns,
        ..ServerSummary::default()
    };
    let mut total: Option<ServerDelta> = None;
    let mut total_rates: BTreeMap<String, f64> = BTreeMap::new();
    let (mut first_start, mut last_end) = (u64::MAX, 0u64);
    for (i, instance) in instances.iter().enumerate() {
        let mut entry = BackendWindow {
            instance: instance.clone(),
            ..BackendWindow::default()
        };
        let start = edge_result(window.start_mark_ns, window.start.get(&i), "start");
        let end = edge_result(window.end_mark_ns, window.end.get(&i), "end");
        entry.start_scrape_ns = start.as_ref().ok().map(|(t, _)| **t);
        entry.end_scrape_ns = end.as_ref().ok().map(|(t, _)| **t);
        match (start, end) {
            (Ok((t0, s0)), Ok((t1, s1))) => {
                let delta = ServerDelta::between(s0, s1, t1.saturating_sub(*t0) as f64 / 1e9);
                let stats = window_stats(&delta, delta.rates());
                for (k, v) in &stats.values {
                    if k.ends_with("_per_s") {
                        *total_rates.entry(k.clone()).or_default() += v;
                    }
                }
                first_start = first_start.min(*t0);
                last_end = last_end.max(*t1);
                match total.as_mut() {
                    Some(t) => t.absorb(&delta),
                    None => total = Some(delta),
                }
                entry.stats = Some(stats);
            }
            (Err(e), _) | (_, Err(e)) => entry.error = Some(e),
        }
        summary.backends.push(entry);
    }
    if let Some(mut delta) = total {
        delta.dt_s = last_end.saturating_sub(first_start) as f64 / 1e9;
        summary.total = Some(window_stats(&delta, total_rates));
    }
    summary
}

fn edge_result<'w>(
    mark: Option<u64>,
    scrape: Option<&'w EdgeScrape>,
    edge: &str,
) -> Result<(&'w u64, &'w ServerSnapshot), String> {
    match (mark, scrape) {
        (None, _) => Err(format!("the window {edge} was not marked")),
        (Some(_), None) => Err(format!("no scrape at the window {edge}")),
        (Some(_), Some(Err(e))) => Err(format!("window {edge}: {e}")),
        (Some(_), Some(Ok((t, s)))) => Ok((t, s)),
    }
}

fn window_stats(delta: &ServerDelta, rates: BTreeMap<String, f64>) -> WindowStats {
    let mut values = rates;
    values.extend(delta.distribution_values());
    WindowStats {
        duration_s: delta.dt_s,
        counts: delta
            .counters
            .iter()
            .map(|(id, v)| (id.as_str().to_owned(), *v))
            .collect(),
        observations: delta
            .histograms
            .iter()
            .map(|(stem, h)| ((*stem).to_owned(), h.count))
            .collect(),
        values,
        counter_resets: delta.resets,
    }
}

fn write_summary(path: &Path, summary: &ServerSummary) -> Result<(), TelemetryError> {
    let io_err = |source| TelemetryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = serde_json::to_string_pretty(summary).map_err(|e| TelemetryError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    text.push('\n');
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)?;
    file.sync_data().map_err(io_err)
}
