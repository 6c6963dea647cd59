//! A vLLM-compatible serving simulator: OpenAI API, SSE streaming, Prometheus metrics,
//! continuous batching model, fault injection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sim::SimError> {
//! let listener = sim::listen(([127, 0, 0, 1], 0).into()).map_err(sim::SimError::bind)?;
//! let sim = sim::Simulator::start(sim::SimConfig::from_profile("tiny-fast")?, listener)?;
//! println!("serving on http://{}", sim.local_addr());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Requests go through the same path as in vLLM: the HTTP layer tokenizes and validates, the
//! engine thread schedules sequences in steps (continuous batching, chunked prefill, KV blocks,
//! preemption, prefix caching) whose durations follow [`EngineConfig`]'s cost model, and each
//! step's tokens are streamed as vLLM's SSE chunks.

mod api;
pub mod config;
mod engine;
mod ground_truth;
mod kv;
mod listen;
mod metrics;
pub mod replay;
mod rng;
mod server;
pub mod tokenizer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use config::{
    BUILTIN_PROFILES, DEFAULT_PROFILE, EngineConfig, ErrorRate, FaultConfig, GroundTruthConfig,
    SimConfig, profile_names,
};
pub use engine::{StepTiming, step_time_us};
pub use ground_truth::GroundTruthRecord;
pub use listen::{LISTEN_BACKLOG, listen};
pub use metrics::FinishReason;
pub use replay::Replay;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A configuration value is invalid.
    #[error("invalid simulator config: {0}")]
    Config(String),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl SimError {
    /// Wraps a bind error (for callers building the listener).
    pub fn bind(source: std::io::Error) -> SimError {
        SimError::Io {
            context: "binding the simulator's listener".to_owned(),
            source,
        }
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

/// A running simulator. Dropping it without [`SimHandle::shutdown`] stops accepting and lets
/// the engine thread end once its last request is gone.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<server::ServerState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
    engine_thread: Option<std::thread::JoinHandle<()>>,
    started_unix_ns: u64,
}

impl Simulator {
    /// Starts serving on `listener`, on the current tokio runtime; the engine runs on its own
    /// thread.
    pub fn start(config: SimConfig, listener: TcpListener) -> Result<SimHandle, SimError> {
        config.validate()?;
        let addr = listener.local_addr().map_err(|source| SimError::Io {
            context: "reading the listener's address".into(),
            source,
        })?;
        let started = Instant::now();
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let tokenizer = Arc::new(tokenizer::Tokenizer::new(config.vocab_size));
        let shared = Arc::new(engine::EngineShared {
            metrics: Mutex::new(metrics::Metrics::new(
                now_unix.as_secs_f64(),
                config.max_model_len,
            )),
            timing: Mutex::new(engine::StepLateness::new()),
        });
        let ground_truth = ground_truth::GroundTruthSink::new(&config.ground_truth, started)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let engine_thread = {
            let config = config.clone();
            let tokenizer = tokenizer.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sim-engine".into())
                .spawn(move || engine::run(&config, tokenizer, &rx, &shared))
                .map_err(|source| SimError::Io {
                    context: "spawning the engine thread".into(),
                    source,
                })?
        };
        let (kill, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(server::ServerState {
            config,
            tokenizer,
            engine_tx: Mutex::new(tx),
            engine: shared,
            ground_truth,
            started,
            created_unix: now_unix.as_secs(),
            requests: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            kill,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let accept_task = tokio::spawn(accept_loop(state.clone(), listener, stop_rx));
        Ok(SimHandle {
            addr,
            state,
            stop: Some(stop_tx),
            accept_task: Some(accept_task),
            engine_thread: Some(engine_thread),
            started_unix_ns: now_unix.as_nanos() as u64,
        })
    }
}

async fn accept_loop(
    state: Arc<server::ServerState>,
    listener: TcpListener,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut conns = JoinSet::new();
    let mut kill = state.kill.subscribe();
    let delay = Duration::from_millis(state.config.faults.accept_delay_ms);
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep_until((state.started + delay).into()) => {}
            _ = &mut stop => return,
        }
    }
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = kill.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                // axum::serve does not set it; without it a streamed token waits for Nagle.
                let _ = tcp.set_nodelay(true);
                let st = state.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| server::handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        }
    }
    // Stopping (or dying) drops the listening socket and every connection at once.
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

impl SimHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The monotonic instant ground-truth times count from.
    pub fn started_at(&self) -> Instant {
        self.state.started
    }

    /// Unix time (ns) of [`SimHandle::started_at`].
    pub fn started_unix_ns(&self) -> u64 {
        self.started_unix_ns
    }

    /// The ground-truth records kept in memory so far (empty unless
    /// `ground_truth.in_memory`).
    pub fn ground_truth(&self) -> Vec<GroundTruthRecord> {
        self.state.ground_truth.snapshot()
    }

    /// How precisely the engine met its step deadlines so far.
    pub fn step_timing(&self) -> StepTiming {
        self.state
            .engine
            .timing
            .lock()
            .map(|t| t.timing())
            .unwrap_or_default()
    }

    /// The /metrics text as it would be served now.
    pub fn metrics_text(&self) -> String {
        let mut s = String::new();
        if let Ok(m) = self.state.engine.metrics.lock() {
            m.render(
                &self.state.config.model,
                self.state.config.legacy_metric_names,
                &mut s,
            );
        }
        s
    }

    /// Whether refuse-after killed the server.
    pub fn killed(&self) -> bool {
        self.state.killed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops accepting, drops every connection, stops the engine and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.accept_task.take() {
            let _ = t.await;
        }
        if let Ok(tx) = self.state.engine_tx.lock() {
            let _ = tx.send(engine::EngineMsg::Shutdown);
        }
        if let Some(t) = self.engine_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Ok(tx) = self.state.engine_tx.lock() {
            let _ = tx.send(engine::EngineMsg::Shutdown);
        }
    }
}
