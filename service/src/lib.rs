//! The results service behind `harness serve`: a REST API over the history
//! database (SQLite or PostgreSQL) with rankings that carry confidence
//! intervals and ties, runs, trends, API-key auth and a rankings cache that
//! stays fresh when runs are recorded, also by other processes or other
//! instances; and a server-rendered web dashboard at `/` over the same data.
//!
//! `harness serve` parses its flags into a [`ServiceConfig`] and calls
//! [`Service::open`] and [`Service::serve`]; everything else is here.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use history::{ChangeListener, Database, History, HistoryError};

mod api;
pub mod auth;
mod cache;
mod dashboard;
pub mod prom;
pub mod rankings;
pub mod record;
mod upload;

pub use auth::{KeyError, KeySet, Scope};
pub use dashboard::DashboardAccess;
pub use upload::UploadLimits;

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The history database could not be opened.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Serving failed (the listener).
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    /// No key was configured.
    #[error("no API key configured: every /api route needs one")]
    NoKeys,
}

/// What `harness serve` configured.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The history database.
    pub db: Database,
    /// The accepted keys (at least one).
    pub keys: KeySet,
    /// Who may open the web dashboard at `/`.
    pub dashboard: DashboardAccess,
    /// Where uploaded runs go (`POST /api/v1/runs`); `None`: no uploads.
    pub uploads: Option<Uploads>,
}

/// Where uploaded run directories are stored, and the limits on one.
#[derive(Debug, Clone)]
pub struct Uploads {
    /// The directory holding uploaded runs (created when missing); each is
    /// stored as `RUNS_DIR/RUN_ID`.
    pub runs_dir: std::path::PathBuf,
    /// Size limits.
    pub limits: UploadLimits,
}

/// Shared by every request.
pub(crate) struct State {
    history: Mutex<History>,
    keys: KeySet,
    cache: cache::Cache,
    dashboard: DashboardAccess,
    uploads: Option<Uploads>,
    /// Permits for CPU- or disk-heavy requests (compare, upload).
    heavy: tokio::sync::Semaphore,
}

/// CPU- or disk-heavy requests (compare, upload) served at once; more wait.
const HEAVY_AT_ONCE: usize = 2;

impl State {
    /// Waits for a permit to run a heavy request.
    pub(crate) async fn heavy(&self) -> Result<tokio::sync::SemaphorePermit<'_>, api::ApiError> {
        self.heavy
            .acquire()
            .await
            .map_err(|e| api::ApiError::internal(&e))
    }

    /// Runs `f` on the history off the async threads.
    pub(crate) async fn db<T: Send + 'static>(
        self: &Arc<State>,
        f: impl FnOnce(&mut History) -> Result<T, HistoryError> + Send + 'static,
    ) -> Result<T, api::ApiError> {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut history = state.history.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut history)
        })
        .await
        .map_err(|e| api::ApiError::internal(&e))?
        .map_err(|e| api::ApiError::internal(&e))
    }
}

/// An open service.
#[derive(Clone)]
pub struct Service {
    state: Arc<State>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// Opens the history (migrating it) and, for PostgreSQL, starts the
    /// thread that invalidates the cache on every run recorded anywhere.
    pub fn open(config: ServiceConfig) -> Result<Service, ServiceError> {
        if config.keys.is_empty() {
            return Err(ServiceError::NoKeys);
        }
        let history = History::open(&config.db)?;
        let probe = history.version_probe()?;
        let state = Arc::new(State {
            history: Mutex::new(history),
            keys: config.keys,
            cache: cache::Cache::default(),
            dashboard: config.dashboard,
            uploads: config.uploads,
            heavy: tokio::sync::Semaphore::new(HEAVY_AT_ONCE),
        });
        if matches!(config.db, Database::Sqlite(_)) {
            // The version the cache starts from, read before any answer is
            // computed; then a thread looks for other processes' commits.
            state.cache.observe_version(probe.data_version()?);
            let weak = Arc::downgrade(&state);
            std::thread::Builder::new()
                .name("history-poll".into())
                .spawn(move || poll(&probe, &weak))?;
        }
        if matches!(config.db, Database::Postgres(_)) {
            // Listening starts before `open` returns, so no run recorded
            // after it is missed.
            let first = ChangeListener::open(&config.db)?;
            let weak = Arc::downgrade(&state);
            std::thread::Builder::new()
                .name("history-listener".into())
                .spawn(move || listen(&config.db, first, &weak))?;
        }
        Ok(Service { state })
    }

    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.state))
    }

    /// The `--prometheus-listen` routes: `GET /metrics`, the history's
    /// gauges ([`prom`]), computed once per history change.
    pub fn prometheus_router(&self) -> axum::Router {
        axum::Router::new()
            .route("/metrics", axum::routing::get(prometheus_metrics))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves [`Service::prometheus_router`] until `shutdown` completes.
    pub async fn serve_prometheus(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        axum::serve(listener, self.prometheus_router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }

    /// Keeps no cached answer: every rankings request and every Prometheus
    /// scrape is answered from the database (`harness serve --no-cache`, to
    /// measure that path).
    pub fn disable_cache(&self) {
        self.state.cache.set_enabled(false);
    }

    /// A receiver that changes whenever the rankings cache is invalidated.
    pub fn invalidations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.cache.subscribe()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// `GET /metrics` of the Prometheus listener: the cached exposition, or the
/// history read once and rendered.
async fn prometheus_metrics(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
) -> Result<axum::response::Response, api::ApiError> {
    /// Not a request path: cannot collide with a rankings answer's key.
    const KEY: &str = "\0prometheus";
    let answer = match state.cache.get(KEY) {
        Some(answer) => answer,
        None => {
            let generation = state.cache.generation();
            let runs = state.db(|h| h.list(&history::Filter::default())).await?;
            let answer = cache::Answer::new(
                axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                prom::render(&runs).into_bytes(),
            );
            state.cache.put(KEY.to_owned(), generation, answer.clone());
            answer
        }
    };
    Ok(answer.response())
}

/// How often `serve` looks for runs that other processes recorded into its
/// SQLite file (`PRAGMA data_version` on a connection of its own): the
/// longest a cached answer can lag behind them. Runs recorded or removed
/// through the service itself drop the cache at once, and a cache hit reads
/// nothing from the database.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);

/// The SQLite poller thread: every [`SQLITE_POLL`], invalidates the cache
/// when the file's `data_version` moved (or could not be read: a change
/// may have been missed). Ends within one period of the service's drop.
fn poll(probe: &history::VersionProbe, state: &std::sync::Weak<State>) {
    loop {
        std::thread::sleep(SQLITE_POLL);
        let Some(state) = state.upgrade() else { return };
        match probe.data_version() {
            Ok(version) => state.cache.observe_version(version),
            Err(e) => {
                tracing::warn!("history poll: {e}");
                state.cache.invalidate();
            }
        }
    }
}

/// The listener thread: invalidates on every notification; on a lost
/// connection invalidates (a change may have been missed) and reconnects.
/// Ends when the service is dropped (at the next notification or error).
fn listen(db: &Database, mut listener: Option<ChangeListener>, state: &std::sync::Weak<State>) {
    loop {
        let result = match listener.as_mut() {
            Some(l) => l.wait(),
            None => ChangeListener::open(db).map(|l| listener = l),
        };
        let Some(state) = state.upgrade() else { return };
        state.cache.invalidate();
        if let Err(e) = result {
            tracing::warn!("history listener: {e}; reconnecting");
            listener = None;
            drop(state);
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str) -> history::RunEntry {
        history::RunEntry {
            run_id: id.into(),
            run_dir: format!("runs/{id}"),
            started_at: "2026-11-22T10:00:00+00:00".into(),
            model: "m".into(),
            scenario: "Server".into(),
            mode: "PerformanceOnly".into(),
            backends: vec!["http://h:1/v1".into()],
            dataset: None,
            labels: vec![],
            status: "complete".into(),
            valid: Some(true),
            reasons: vec![],
            harness_version: "0.1.0".into(),
            loadgen: "harness-rust 0.1.0".into(),
            metrics: vec![("ttft_p50_ms".into(), 10.0)],
        }
    }

    /// A cache hit reads nothing from the database: with the history's
    /// lock held (as by a long ranking query) it still answers. A run
    /// recorded meanwhile by another connection drops the cache at the next
    /// poll. (The timeouts are deadlock guards, not timing targets.)
    #[expect(
        clippy::await_holding_lock,
        reason = "holding the history's lock across the lookup is the point"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cache_hit_reads_no_database_and_another_writer_invalidates_it() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::from(tmp.path().join("h.sqlite"));
        let service = Service::open(ServiceConfig {
            db: db.clone(),
            keys: KeySet::parse("read:0123456789abcdef0123456789abcdef", "test").unwrap(),
            dashboard: DashboardAccess::Login,
            uploads: None,
        })
        .unwrap();
        let mut invalidations = service.invalidations();
        let state = service.state;
        assert!(api::cache_hit(&state, "k").is_none());
        state.cache.put(
            "k".into(),
            state.cache.generation(),
            cache::Answer::json(b"{}".to_vec()),
        );
        let held = state.history.lock().unwrap();
        assert!(api::cache_hit(&state, "k").is_some());
        History::open(&db).unwrap().record(&run("a")).unwrap();
        tokio::time::timeout(Duration::from_secs(60), invalidations.changed())
            .await
            .expect("another connection's commit was never noticed")
            .unwrap();
        assert!(api::cache_hit(&state, "k").is_none());
        drop(held);
    }
}
