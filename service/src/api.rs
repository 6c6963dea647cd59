//! The routes: JSON in, JSON out, every error a JSON `{"error": ...}` with
//! a 4xx/5xx status. Every filter value is bound as a query parameter by
//! the history crate, never spliced into SQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use history::{Filter, RunEntry};
use serde_json::{Value, json};

use crate::State;
use crate::auth::Scope;
use crate::rankings;

/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Longest single parameter value.
pub const MAX_VALUE_BYTES: usize = 256;
/// Most runs one page lists.
pub const MAX_PAGE: usize = 1000;
/// Default page size.
pub(crate) const DEFAULT_PAGE: usize = 50;
/// Largest run file served.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    /// The answer's status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's message.
    pub(crate) fn message(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// The same error, its message prefixed with what it concerns
    /// (`baseline: no such run`).
    fn prefixed(mut self, what: &str) -> ApiError {
        if let Some(Value::String(text)) = self.body.get_mut("error") {
            *text = format!("{what}: {text}");
        }
        self
    }

    /// A server-side failure: logged in full (errors name the database with
    /// its password redacted), answered without detail.
    pub(crate) fn internal(e: &dyn std::fmt::Display) -> ApiError {
        tracing::error!("request failed: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error reading the history (see the server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

fn bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

type ApiResult = Result<Response, ApiError>;

/// The routes; every /api route behind a key.
pub(crate) fn router(state: Arc<State>) -> Router {
    let read = Router::new()
        .route("/api/v1/benchmarks/rankings", get(rankings_all))
        .route("/api/v1/benchmarks/rankings/{metric}", get(rankings_one))
        .route("/api/v1/metrics", get(metrics))
        .route(
            "/api/v1/runs",
            get(runs)
                .post(upload_run)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/runs/{id}", get(run).delete(delete_run))
        .route("/api/v1/runs/{id}/files/{name}", get(run_file))
        .route("/api/v1/trends/{metric}", get(trends))
        .route("/api/v1/compare", get(compare))
        // Unknown API paths: a JSON 404, after the key is checked (so the
        // routes cannot be probed without one).
        .route("/api", axum::routing::any(api_not_found))
        .route("/api/", axum::routing::any(api_not_found))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(read)
        .merge(crate::dashboard::routes(&state))
        // Any other path is the dashboard's: an HTML 404 page.
        .fallback(crate::dashboard::not_found)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One line per request: method, path (no query, no headers: a key never
/// reaches the log), status.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(%method, path, status = response.status().as_u16(), "request");
    response
}

/// The key of a request: `x-api-key`, else `Authorization: Bearer`.
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get("x-api-key") {
        return Some(v.as_bytes());
    }
    let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
    auth.strip_prefix(b"Bearer ")
        .or_else(|| auth.strip_prefix(b"bearer "))
}

/// 401 without a valid key, 403 for a read key on a write.
async fn authorize(AxState(state): AxState<Arc<State>>, request: Request, next: Next) -> Response {
    let Some(key) = presented_key(request.headers()) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send it in the x-api-key header (or Authorization: Bearer)",
        )
        .into_response();
    };
    let Some(scope) = state.keys.check(key) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "invalid API key").into_response();
    };
    let needed = if request.method() == axum::http::Method::GET {
        Scope::Read
    } else {
        Scope::Upload
    };
    if scope < needed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "this API key may only read; changing the history needs an upload key",
        )
        .into_response();
    }
    next.run(request).await
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

async fn api_not_found() -> ApiError {
    ApiError::not_found("no such API route (see the README's API section)")
}

/// Query parameters, checked: known names only, each once, bounded sizes.
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    pub(crate) fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return Err(ApiError::new(
                StatusCode::URI_TOO_LONG,
                format!("query string longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        // Decoded strictly: bytes that are not UTF-8 are an error, not
        // replacement characters that would match nothing silently.
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(&text.replace('+', " "))
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| ApiError::bad("malformed query string: not UTF-8 once decoded"))
        };
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(name)?, decode(value)?));
        }
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let shown: String = name.chars().take(40).collect();
                return Err(ApiError::bad(format!(
                    "unknown parameter {shown:?}; accepted: {}",
                    allowed.join(", ")
                )));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(ApiError::bad(format!(
                    "parameter {name} is longer than {MAX_VALUE_BYTES} bytes"
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(ApiError::bad(format!(
                    "parameter {name} holds a control character"
                )));
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(ApiError::bad(format!("parameter {name} given twice")));
            }
        }
        Ok(Params(map))
    }

    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    pub(crate) fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(ApiError::bad(format!(
                    "parameter {name} must be a whole number from 0 to {max}"
                ))),
            },
        }
    }

    /// The history filter the parameters describe.
    pub(crate) fn filter(&self) -> Result<Filter, ApiError> {
        // A run has one label of each key: two filters on two keys would
        // need two needles; `system` and `label` are the keys runs carry.
        let label = match (self.get("system"), self.get("label")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad("give system or label, not both"));
            }
            (Some(system), None) => Some(("system".to_owned(), system)),
            (None, Some(label)) => Some(("label".to_owned(), label)),
            (None, None) => None,
        };
        Ok(Filter {
            model: self.get("model"),
            scenario: self.get("scenario"),
            dataset: self.get("dataset"),
            label,
            backend: self.get("backend"),
            since: self.time("since")?,
            until: self.time("until")?,
            ..Filter::default()
        })
    }

    /// An RFC 3339 time (any offset) or a date (midnight UTC), as UTC text
    /// the history compares as an instant.
    fn time(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(Some(
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.fZ")
                    .to_string(),
            ));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Some(d.format("%Y-%m-%dT00:00:00Z").to_string()));
        }
        Err(ApiError::bad(format!(
            "parameter {name} must be an RFC 3339 time (2026-11-22T10:00:00Z) or a date (2026-11-22)"
        )))
    }
}

/// The filters every list accepts.
pub(crate) const FILTERS: &[&str] = &[
    "model", "scenario", "dataset", "system", "label", "backend", "since", "until",
];

/// The metric names a ranking accepts: the aliases and every recorded one.
pub(crate) async fn valid_metrics(state: &Arc<State>) -> Result<Vec<String>, ApiError> {
    let recorded = state.db(|h| h.metric_names()).await?;
    let mut names: Vec<String> = rankings::ALIASES
        .iter()
        .map(|(a, _)| (*a).to_owned())
        .collect();
    names.extend(recorded);
    Ok(names)
}

async fn metrics(AxState(state): AxState<Arc<State>>) -> ApiResult {
    let names = valid_metrics(&state).await?;
    let aliases: BTreeMap<&str, &str> = rankings::ALIASES.iter().copied().collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "data": names, "aliases": aliases }),
    ))
}

/// The cached answer under `key`. No database read: the cache is dropped
/// when a run is recorded (through this service at once; by another
/// process within [`crate::SQLITE_POLL`], or on PostgreSQL's `NOTIFY`).
pub(crate) fn cache_hit(state: &State, key: &str) -> Option<Response> {
    state
        .cache
        .get(key)
        .map(|answer| with_cache_header(answer.response(), "hit"))
}

fn with_cache_header(mut response: Response, value: &'static str) -> Response {
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(value));
    response
}

/// A cached rankings answer, or computes and caches it.
async fn cached_rankings(
    state: &Arc<State>,
    metrics: Vec<String>,
    filter: Filter,
    key: String,
) -> ApiResult {
    if let Some(hit) = cache_hit(state, &key) {
        return Ok(hit);
    }
    let generation = state.cache.generation();
    // Each ranking's sums are one aggregate query; the statistics run
    // without the history's lock, taking it only to read a small group's
    // values, so other requests' queries need not wait for them.
    let sums_filter = filter.clone();
    let fetched = state
        .db(move |h| rankings::fetch_groups(h, metrics, &sums_filter))
        .await?;
    let reader = Arc::clone(state);
    let ranked = tokio::task::spawn_blocking(move || {
        rankings::rank_fetched(fetched, |figure, model, system| {
            reader
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .group_values(figure, &filter, model, system)
        })
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::internal(&e))?;
    let data: Vec<Value> = ranked
        .iter()
        .map(|(m, _, entries)| json!({ m.as_str(): entries }))
        .collect();
    let figures: BTreeMap<&str, &str> = ranked
        .iter()
        .map(|(m, name, _)| (m.as_str(), name.as_str()))
        .collect();
    let answer = crate::cache::Answer::json(
        serde_json::to_vec(&json!({
            "data": data,
            "figures": figures,
            "confidence_level": rankings::LEVEL,
        }))
        .unwrap_or_default(),
    );
    state.cache.put(key, generation, answer.clone());
    Ok(with_cache_header(answer.response(), "miss"))
}

async fn rankings_all(AxState(state): AxState<Arc<State>>, RawQuery(query): RawQuery) -> ApiResult {
    let params = Params::parse(query.as_deref(), FILTERS)?;
    let filter = params.filter()?;
    let metrics = rankings::ALIASES
        .iter()
        .map(|(a, _)| (*a).to_owned())
        .collect();
    let key = format!("*{:?}", params.0);
    cached_rankings(&state, metrics, filter, key).await
}

/// A 404 listing the valid names unless `metric` is one the history holds.
pub(crate) async fn known_metric(state: &Arc<State>, metric: &str) -> Result<(), ApiError> {
    // An alias, or one index seek for a recorded name; every name (a scan
    // of all recorded figures) only for the 404's list.
    if rankings::ALIASES.iter().any(|(alias, _)| *alias == metric) {
        return Ok(());
    }
    let name = metric.to_owned();
    if state.db(move |h| h.has_metric(&name)).await? {
        return Ok(());
    }
    let valid = valid_metrics(state).await?;
    if valid.iter().any(|m| m == metric) {
        return Ok(());
    }
    let shown: String = metric.chars().take(40).collect();
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        body: json!({
            "error": format!("unknown metric {shown:?}"),
            "valid_metrics": valid,
        }),
    })
}

async fn rankings_one(
    AxState(state): AxState<Arc<State>>,
    UrlPath(metric): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = Params::parse(query.as_deref(), FILTERS)?;
    let filter = params.filter()?;
    let key = format!("{metric}{:?}", params.0);
    // A cached answer's metric was checked when it was computed: answer it
    // before asking the history for every metric name (a scan of all
    // recorded figures, which made each cached answer cost a query).
    if let Some(hit) = cache_hit(&state, &key) {
        return Ok(hit);
    }
    known_metric(&state, &metric).await?;
    cached_rankings(&state, vec![metric], filter, key).await
}

async fn runs(AxState(state): AxState<Arc<State>>, RawQuery(query): RawQuery) -> ApiResult {
    let mut allowed = FILTERS.to_vec();
    allowed.extend(["limit", "offset"]);
    let params = Params::parse(query.as_deref(), &allowed)?;
    let limit = params.number("limit", DEFAULT_PAGE, MAX_PAGE)?;
    let offset = params.number("offset", 0, 1_000_000_000)?;
    let mut filter = params.filter()?;
    // One more than asked says whether another page follows.
    filter.limit = Some(limit + 1);
    filter.offset = Some(offset);
    let mut runs = state.db(move |h| h.list(&filter)).await?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "data": runs,
            "limit": limit,
            "offset": offset,
            "next_offset": more.then_some(offset + limit),
        }),
    ))
}

/// A run id as the URL gives it: bounded, printable.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_VALUE_BYTES || id.chars().any(char::is_control) {
        return Err(ApiError::bad("malformed run id"));
    }
    Ok(())
}

pub(crate) async fn find_run(state: &Arc<State>, id: String) -> Result<RunEntry, ApiError> {
    check_id(&id)?;
    state
        .db(move |h| h.get(&id))
        .await?
        .ok_or_else(|| ApiError::not_found("no such run"))
}

/// The files of a run directory the API serves: charts, report, summary.
pub(crate) fn served_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| content_type(n).is_some())
        .collect();
    names.sort();
    names
}

/// The content type of a served file, by extension; others are not served.
pub(crate) fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1;
    Some(match ext {
        "png" => "image/png",
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

async fn run(AxState(state): AxState<Arc<State>>, UrlPath(id): UrlPath<String>) -> ApiResult {
    let run = find_run(&state, id).await?;
    let dir = PathBuf::from(&run.run_dir);
    let files = tokio::task::spawn_blocking(move || served_files(&dir))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let links: BTreeMap<String, String> = files
        .into_iter()
        .map(|name| {
            let url = format!(
                "/api/v1/runs/{}/files/{}",
                encode(&run.run_id),
                encode(&name)
            );
            (name, url)
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "data": run, "links": links }),
    ))
}

/// Percent-encodes a path segment.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn run_file(
    AxState(state): AxState<Arc<State>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> ApiResult {
    // A plain file name: no separator, no parent, nothing hidden.
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let Some(kind) = content_type(&name).filter(|_| plain) else {
        return Err(ApiError::bad(
            "file name must be a plain .png, .html, .json, .csv or .txt name in the run directory",
        ));
    };
    let run = find_run(&state, id).await?;
    let dir = PathBuf::from(&run.run_dir);
    let body = tokio::task::spawn_blocking(move || read_inside(&dir, &name))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, kind)], body).into_response())
}

/// Reads `dir/name` only if it really lies in `dir` (a symlink out of it is
/// refused) and is a bounded regular file.
fn read_inside(dir: &Path, name: &str) -> Result<Vec<u8>, ApiError> {
    let missing = || ApiError::not_found("no such file in the run directory");
    let dir = dir.canonicalize().map_err(|_| missing())?;
    let path = dir.join(name).canonicalize().map_err(|_| missing())?;
    if path.parent() != Some(dir.as_path()) {
        return Err(missing());
    }
    let meta = std::fs::metadata(&path).map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file larger than the API serves",
        ));
    }
    std::fs::read(&path).map_err(|e| ApiError::internal(&e))
}

async fn delete_run(
    AxState(state): AxState<Arc<State>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult {
    check_id(&id)?;
    let removed = state.db(move |h| h.delete(&id)).await?;
    if !removed {
        return Err(ApiError::not_found("no such run"));
    }
    state.cache.invalidate();
    Ok(json_response(StatusCode::OK, &json!({ "removed": 1 })))
}

async fn trends(
    AxState(state): AxState<Arc<State>>,
    UrlPath(metric): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let params = Params::parse(query.as_deref(), FILTERS)?;
    let filter = params.filter()?;
    known_metric(&state, &metric).await?;
    let name = rankings::resolve(&metric).to_owned();
    let values = state.db(move |h| h.values(&name, &filter)).await?;
    let data = rankings::trend_series(&values);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "data": data, "figure": rankings::resolve(&metric) }),
    ))
}

/// A boolean parameter: `true` or `false` (absent: false).
pub(crate) fn flag(params: &Params, name: &str) -> Result<bool, ApiError> {
    match params.0.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::bad(format!(
            "parameter {name} must be true or false"
        ))),
    }
}

/// The run directory of a recorded run, when this server has it.
pub(crate) async fn run_dir_of(
    state: &Arc<State>,
    which: &str,
    id: Option<String>,
) -> Result<PathBuf, ApiError> {
    let id =
        id.ok_or_else(|| ApiError::bad(format!("parameter {which} (a run id) is required")))?;
    let run = find_run(state, id).await.map_err(|e| e.prefixed(which))?;
    let dir = PathBuf::from(&run.run_dir);
    if !dir.join(rundir::RECORDS_FILE).is_file() {
        return Err(ApiError::not_found(format!(
            "{which}: the run directory of {} is not on this server (recorded elsewhere, or \
             removed)",
            run.run_id
        )));
    }
    Ok(dir)
}

/// `GET /api/v1/compare?baseline=ID&candidate=ID`: `harness compare
/// BASELINE CANDIDATE --format json`, the same bytes; refused runs are a
/// 422 with the reasons.
async fn compare(AxState(state): AxState<Arc<State>>, RawQuery(query): RawQuery) -> ApiResult {
    let params = Params::parse(
        query.as_deref(),
        &[
            "baseline",
            "candidate",
            "allow_mismatch",
            "allow_failed_runs",
        ],
    )?;
    let allow = reports::compare::Allow {
        mismatch: flag(&params, "allow_mismatch")?,
        unsound: flag(&params, "allow_failed_runs")?,
    };
    let baseline = run_dir_of(&state, "baseline", params.get("baseline")).await?;
    let candidate = run_dir_of(&state, "candidate", params.get("candidate")).await?;
    // Bootstrap intervals cost CPU: a bounded number at a time.
    let _permit = state.heavy().await?;
    tokio::task::spawn_blocking(move || compare_dirs(&[baseline, candidate], allow))
        .await
        .map_err(|e| ApiError::internal(&e))?
}

/// Run directories read for a comparison (the API's and the dashboard's);
/// an unreadable one is a 422 with the whole cause.
pub(crate) fn load_runs(dirs: &[PathBuf]) -> Result<Vec<reports::compare::RunSamples>, ApiError> {
    dirs.iter()
        .map(|d| reports::compare::RunSamples::load(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, text)
        })
}

/// The comparison of run directories as `harness compare --format json`
/// writes it.
fn compare_dirs(dirs: &[PathBuf], allow: reports::compare::Allow) -> ApiResult {
    use reports::compare;
    let runs = load_runs(dirs)?;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    match compare::compare_checked(&runs, &names, &[], allow) {
        Ok((comparison, _)) => {
            let mut body = Vec::new();
            compare::write_json(&comparison, &mut body).map_err(|e| ApiError::internal(&e))?;
            Ok(bytes_response(StatusCode::OK, body))
        }
        Err(refusal) => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": refusal.message("compare", "allow_failed_runs=true", "allow_mismatch=true"),
                "unsound": refusal.unsound,
                "mismatched": refusal.mismatched,
            }),
        }),
    }
}

/// `POST /api/v1/runs`: a run directory as a tar.gz body (an upload key).
/// 201 with the run's id and URL; 400 for an archive or run that is not
/// acceptable, 409 for a run already recorded, 413 past a size limit.
async fn upload_run(AxState(state): AxState<Arc<State>>, body: axum::body::Body) -> ApiResult {
    use futures_util::StreamExt as _;
    let Some(uploads) = state.uploads.clone() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this server takes no uploads",
        ));
    };
    // One permit before reading: at most that many bodies in memory.
    let _permit = state.heavy().await?;
    let limit = uploads.limits.compressed_bytes;
    let mut archive = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad("the request body ended early"))?;
        if (archive.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the archive is larger than {limit} bytes"),
            ));
        }
        archive.extend_from_slice(&chunk);
    }
    let worker = Arc::clone(&state);
    let id = tokio::task::spawn_blocking(move || store_upload(&worker, &uploads, &archive))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    state.cache.invalidate();
    let url = format!("/api/v1/runs/{}", encode(&id));
    let mut response = json_response(StatusCode::CREATED, &json!({ "run_id": id, "url": url }));
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Unpacks, checks, moves into place and records an upload; returns the
/// run id. Nothing stays behind on failure (the staging directory is
/// removed when dropped).
fn store_upload(
    state: &State,
    uploads: &crate::Uploads,
    archive: &[u8],
) -> Result<String, ApiError> {
    use crate::upload::{self, UploadError};
    let upload_error = |e: UploadError| match e {
        UploadError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
        UploadError::Invalid(m) => ApiError::bad(m),
        UploadError::Internal(m) => ApiError::internal(&m),
    };
    std::fs::create_dir_all(&uploads.runs_dir).map_err(|e| ApiError::internal(&e))?;
    let staging = tempfile::Builder::new()
        .prefix(".upload-")
        .tempdir_in(&uploads.runs_dir)
        .map_err(|e| ApiError::internal(&e))?;
    upload::unpack(archive, staging.path(), uploads.limits).map_err(upload_error)?;
    let root = upload::run_root(staging.path()).map_err(upload_error)?;
    let run = crate::record::read_finished(&root).map_err(|e| match e {
        crate::record::RecordError::NotFinished { reason, .. } => {
            // The staging path means nothing to the client.
            let reason = reason.replace(&format!("{}/", root.display()), "");
            ApiError::bad(format!("not a finished run: {reason}"))
        }
        other => ApiError::bad(other.to_string()),
    })?;
    let id = run.manifest.run_id.clone();
    let target = uploads.runs_dir.join(&id);
    // The history's lock makes check, move and record one step: of two
    // uploads of one run, exactly one is stored.
    let mut history = state
        .history
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let conflict = |what: String| ApiError::new(StatusCode::CONFLICT, what);
    if history.contains(&id).map_err(|e| ApiError::internal(&e))? {
        return Err(conflict(format!("run {id} is already recorded")));
    }
    if target.exists() {
        return Err(conflict(format!(
            "a run directory named {id} already exists on the server"
        )));
    }
    std::fs::rename(&root, &target).map_err(|e| ApiError::internal(&e))?;
    if let Err(e) = crate::record::record(&mut history, &target, &run.manifest, &run.figures) {
        // Not recorded: the directory goes too (nothing half-stored); a
        // row recorded before the failure is removed.
        let _ = history.delete(&id);
        let _ = std::fs::remove_dir_all(&target);
        return Err(ApiError::internal(&e));
    }
    Ok(id)
}
