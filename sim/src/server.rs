//! The HTTP server: hyper HTTP/1.1 connections, routing, SSE streams, fault injection.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::api::{self, GenerateRequest, PromptInput};
use crate::config::SimConfig;
use crate::engine::{EngineMsg, EngineShared, Event, Finish, SeqParams, SeqRequest, StopReason};
use crate::ground_truth::{GroundTruthRecord, GroundTruthSink};
use crate::rng::{Rng, mix};
use crate::tokenizer::Tokenizer;

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct ServerState {
    pub(crate) config: SimConfig,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) engine_tx: std::sync::Mutex<std::sync::mpsc::Sender<EngineMsg>>,
    pub(crate) engine: Arc<EngineShared>,
    pub(crate) ground_truth: GroundTruthSink,
    pub(crate) started: Instant,
    pub(crate) created_unix: u64,
    pub(crate) requests: AtomicU64,
    pub(crate) killed: AtomicBool,
    pub(crate) kill: tokio::sync::watch::Sender<bool>,
}

type Resp = Response<Body>;

fn json_response(status: u16, body: String) -> Resp {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(status: u16, message: &str, param: Option<&str>) -> Resp {
    json_response(status, api::error_json(status, message, param))
}

/// Routes one request.
pub(crate) async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let arrival = Instant::now();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let resp = match (&method, path.as_str()) {
        (&Method::GET, "/health") => {
            if unready(&state) {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            } else {
                Response::new(Body::empty())
            }
        }
        (&Method::GET, "/version") => json_response(
            200,
            format!("{{\"version\":\"sim-{}\"}}", env!("CARGO_PKG_VERSION")),
        ),
        (&Method::GET, "/v1/models") => models(&state),
        (&Method::GET, "/metrics") => metrics(&state),
        (&Method::POST, "/tokenize") => match read_body(req).await {
            Ok(b) => tokenize(&state, &b),
            Err(r) => r,
        },
        (&Method::POST, "/detokenize") => match read_body(req).await {
            Ok(b) => detokenize(&state, &b),
            Err(r) => r,
        },
        (&Method::POST, "/v1/completions") => {
            let client_id = client_request_id(&req);
            match read_body(req).await {
                Ok(b) => generate(&state, &b, arrival, Flavor::Completion, client_id),
                Err(r) => r,
            }
        }
        (&Method::POST, "/v1/chat/completions") => {
            let client_id = client_request_id(&req);
            match read_body(req).await {
                Ok(b) => generate(&state, &b, arrival, Flavor::Chat, client_id),
                Err(r) => r,
            }
        }
        (
            _,
            "/health"
            | "/version"
            | "/v1/models"
            | "/metrics"
            | "/tokenize"
            | "/detokenize"
            | "/v1/completions"
            | "/v1/chat/completions",
        ) => json_response(405, "{\"detail\":\"Method Not Allowed\"}".to_owned()),
        _ => json_response(404, "{\"detail\":\"Not Found\"}".to_owned()),
    };
    Ok(resp)
}

fn unready(state: &ServerState) -> bool {
    state.started.elapsed().as_secs_f64() < state.config.faults.unready_secs
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Resp> {
    axum::body::to_bytes(Body::new(req.into_body()), 64 << 20)
        .await
        .map_err(|e| error_response(400, &format!("could not read the request body: {e}"), None))
}

fn models(state: &ServerState) -> Resp {
    let m = &state.config.model;
    let perm_id = format!("modelperm-{:016x}", mix(state.config.seed ^ 0x77));
    let list = api::ModelList {
        object: "list",
        data: vec![api::ModelCard {
            id: m,
            object: "model",
            created: state.created_unix,
            owned_by: "vllm",
            root: m,
            parent: None,
            max_model_len: state.config.max_model_len,
            permission: vec![api::ModelPermission {
                id: &perm_id,
                object: "model_permission",
                created: state.created_unix,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: None,
                is_blocking: false,
            }],
        }],
    };
    json_response(200, serde_json::to_string(&list).unwrap_or_default())
}

fn metrics(state: &ServerState) -> Resp {
    let mut text = String::with_capacity(32 * 1024);
    if let Ok(m) = state.engine.metrics.lock() {
        m.render(
            &state.config.model,
            state.config.legacy_metric_names,
            &mut text,
        );
    }
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

fn chat_prompt(tok: &Tokenizer, messages: &[api::ChatMessage]) -> Vec<u32> {
    // A fixed template: three marker tokens around every message, then the assistant header.
    let mut ids = Vec::new();
    for m in messages {
        ids.extend([1, 3 + (m.role.len() as u32 % 4), 4]);
        ids.extend(tok.encode(&m.text()));
    }
    ids.extend([1, 3, 4]);
    ids
}

fn tokenize(state: &ServerState, body: &[u8]) -> Resp {
    let req: api::TokenizeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error_response(400, &format!("invalid request body: {e}"), None),
    };
    let tokens = match (&req.prompt, &req.messages) {
        (Some(p), _) => state.tokenizer.encode(p),
        (None, Some(m)) => chat_prompt(&state.tokenizer, m),
        (None, None) => return error_response(400, "either prompt or messages is required", None),
    };
    json_response(
        200,
        serde_json::json!({
            "count": tokens.len(),
            "max_model_len": state.config.max_model_len,
            "tokens": tokens,
            "token_strs": null,
        })
        .to_string(),
    )
}

fn detokenize(state: &ServerState, body: &[u8]) -> Resp {
    let req: api::DetokenizeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error_response(400, &format!("invalid request body: {e}"), None),
    };
    json_response(
        200,
        serde_json::json!({ "prompt": state.tokenizer.decode(&req.tokens) }).to_string(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Completion,
    Chat,
}

/// What faults this request gets, drawn at arrival.
#[derive(Debug, Default, Clone)]
struct FaultPlan {
    stall_first: bool,
    /// Chunk number (1-based) after which the connection drops.
    disconnect_after: Option<u32>,
    malformed_at: Option<(u32, bool)>,
    error_event_at: Option<u32>,
}

fn finish_str(f: &Finish) -> &'static str {
    f.reason.as_str()
}

fn stop_reason_json(f: Option<&Finish>) -> serde_json::Value {
    match f.map(|f| &f.stop_reason) {
        Some(StopReason::Text(s)) => serde_json::Value::String(s.to_string()),
        Some(StopReason::Token(t)) => serde_json::Value::from(*t),
        _ => serde_json::Value::Null,
    }
}

/// The client's `X-Request-Id`, which vLLM makes the request's id
/// (`cmpl-<id>`). Only short ids of URL-safe characters are taken, so the id
/// can go into JSON and logs unescaped; others are ignored.
fn client_request_id(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get("x-request-id")?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| value.to_owned())
}

fn generate(
    state: &Arc<ServerState>,
    body: &[u8],
    arrival: Instant,
    flavor: Flavor,
    client_id: Option<String>,
) -> Resp {
    let seq_no = state.requests.fetch_add(1, Ordering::Relaxed);
    let faults = &state.config.faults;
    if let Some(limit) = faults.refuse_after
        && seq_no >= limit
    {
        state.killed.store(true, Ordering::SeqCst);
        let _ = state.kill.send(true);
        // The connection task is aborted with the others; this body never completes.
        return Response::new(Body::from_stream(futures_util::stream::pending::<
            Result<Bytes, std::io::Error>,
        >()));
    }
    let prefix = if flavor == Flavor::Chat {
        "chatcmpl"
    } else {
        "cmpl"
    };
    let id = match client_id {
        Some(client_id) => format!("{prefix}-{client_id}"),
        None => format!(
            "{prefix}-{:032x}",
            u128::from(mix(state.config.seed ^ 0xA5A5)) << 64 | u128::from(seq_no)
        ),
    };
    let gt = |status: u16, outcome: &str, prompt_tokens: u32| {
        if state.ground_truth.enabled() {
            let now = state.ground_truth.ns(Instant::now());
            state.ground_truth.record(GroundTruthRecord {
                id: id.clone(),
                seq: seq_no,
                arrival_ns: state.ground_truth.ns(arrival),
                scheduled_ns: None,
                first_token_ns: None,
                end_ns: now,
                prompt_tokens,
                completion_tokens: 0,
                status,
                outcome: outcome.to_owned(),
            });
        }
    };
    if unready(state) {
        gt(503, "injected_error", 0);
        return error_response(503, "the server is starting up", None);
    }
    let req: GenerateRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            gt(400, "invalid_request", 0);
            return error_response(400, &format!("invalid request body: {e}"), None);
        }
    };
    let mut frng = Rng::new(mix(
        state.config.seed ^ mix(seq_no.wrapping_add(0x1234_5678))
    ));
    // Injected HTTP errors.
    let draw = frng.next_f64();
    let mut acc = 0.0;
    for r in &faults.error_rates {
        acc += r.probability;
        if draw < acc {
            gt(r.status, "injected_error", 0);
            return error_response(
                r.status,
                &format!("simulated fault: HTTP {}", r.status),
                None,
            );
        }
    }
    match validate_and_submit(state, req, flavor, arrival) {
        Err((status, msg, param)) => {
            gt(status, "invalid_request", 0);
            error_response(status, &msg, param)
        }
        Ok(sub) => {
            let expected_chunks = sub.max_tokens.max(1);
            let plan = FaultPlan {
                stall_first: frng.chance(faults.stall_first_probability),
                disconnect_after: frng
                    .chance(faults.disconnect_probability)
                    .then(|| 1 + frng.below(u64::from(expected_chunks)) as u32),
                malformed_at: frng.chance(faults.malformed_probability).then(|| {
                    (
                        1 + frng.below(u64::from(expected_chunks)) as u32,
                        frng.chance(0.5),
                    )
                }),
                error_event_at: frng
                    .chance(faults.error_event_probability)
                    .then(|| 1 + frng.below(u64::from(expected_chunks)) as u32),
            };
            let stream = GenStream::new(state.clone(), sub, id, seq_no, arrival, plan, frng);
            if stream.sub.stream {
                let mut r = Response::new(Body::from_stream(stream));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream; charset=utf-8"),
                );
                r
            } else {
                let mut r = Response::new(Body::from_stream(stream));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
        }
    }
}

/// A validated request, already handed to the engine.
#[derive(Debug)]
struct Submitted {
    flavor: Flavor,
    stream: bool,
    include_usage: bool,
    continuous_usage: bool,
    return_token_ids: bool,
    prompts: Vec<Arc<[u32]>>,
    n: u32,
    max_tokens: u32,
    rx: UnboundedReceiver<Event>,
    model: String,
}

type Invalid = (u16, String, Option<&'static str>);

/// A 400 naming the offending parameter, as vLLM answers.
fn bad<T>(msg: String, param: Option<&'static str>) -> Result<T, Invalid> {
    Err((400, msg, param))
}

fn validate_and_submit(
    state: &ServerState,
    mut req: GenerateRequest,
    flavor: Flavor,
    arrival: Instant,
) -> Result<Submitted, Invalid> {
    let cfg = &state.config;
    if let Some(m) = &req.model
        && m != &cfg.model
    {
        return Err((
            404,
            format!("The model `{m}` does not exist."),
            Some("model"),
        ));
    }
    let stream = req.stream.unwrap_or(false);
    if req.stream_options.is_some() && !stream {
        return bad(
            "Stream options can only be defined when `stream=True`.".into(),
            Some("stream_options"),
        );
    }
    let prompts = request_prompts(&state.tokenizer, &mut req, flavor)?;
    let n = req.n.unwrap_or(1);
    if n == 0 {
        return bad("n must be at least 1.".into(), Some("n"));
    }
    let min_tokens = req.min_tokens.unwrap_or(0);
    let explicit_max = match flavor {
        Flavor::Completion => Some(req.max_tokens.unwrap_or(16)),
        Flavor::Chat => req.max_completion_tokens.or(req.max_tokens),
    };
    let max_for_metrics = check_lengths(cfg, &prompts, explicit_max, min_tokens)?;
    // Greedy sampling does not depend on the request seed.
    let seed = if req.temperature == Some(0.0) {
        cfg.seed
    } else {
        req.seed.unwrap_or(cfg.seed)
    };
    let stop: Arc<[Arc<str>]> = req
        .stop
        .map(|s| {
            s.into_vec()
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(Arc::from)
                .collect()
        })
        .unwrap_or_else(|| Arc::from(Vec::new()));
    let params = SeqParams {
        // Set per prompt by `submit` when the request gives no maximum.
        max_tokens: explicit_max.unwrap_or(0),
        min_tokens,
        ignore_eos: req.ignore_eos.unwrap_or(false),
        stop,
        stop_token_ids: req.stop_token_ids.unwrap_or_default().into(),
        seed,
        n,
    };
    let rx = submit(state, &prompts, &params, explicit_max.is_none(), arrival)?;
    let opts = req.stream_options.unwrap_or_default();
    Ok(Submitted {
        flavor,
        stream,
        include_usage: opts.include_usage.unwrap_or(false) || cfg.force_include_usage,
        continuous_usage: opts.continuous_usage_stats.unwrap_or(false),
        return_token_ids: req.return_token_ids.unwrap_or(false),
        prompts,
        n,
        max_tokens: max_for_metrics,
        rx,
        model: cfg.model.clone(),
    })
}

/// The request's prompts as token ids (text encoded by the server's
/// tokenizer, chat messages through its template); none, or an empty one,
/// is a 400.
fn request_prompts(
    tok: &Tokenizer,
    req: &mut GenerateRequest,
    flavor: Flavor,
) -> Result<Vec<Arc<[u32]>>, Invalid> {
    let prompts: Vec<Arc<[u32]>> = match flavor {
        Flavor::Completion => match req.prompt.take() {
            None => {
                return bad(
                    "Either prompt or prompt_embeds must be provided and non-empty.".into(),
                    Some("prompt"),
                );
            }
            Some(PromptInput::Text(t)) => vec![tok.encode(&t).into()],
            Some(PromptInput::Tokens(t)) => vec![t.into()],
            Some(PromptInput::Texts(v)) => v.iter().map(|t| tok.encode(t).into()).collect(),
            Some(PromptInput::TokenLists(v)) => v.into_iter().map(Into::into).collect(),
        },
        Flavor::Chat => match &req.messages {
            Some(m) if !m.is_empty() => vec![chat_prompt(tok, m).into()],
            _ => return bad("messages must be a non-empty list".into(), Some("messages")),
        },
    };
    if prompts.is_empty() || prompts.iter().any(|p| p.is_empty()) {
        return bad(
            "Either prompt or prompt_embeds must be provided and non-empty.".into(),
            Some("prompt"),
        );
    }
    Ok(prompts)
}

/// vLLM's length checks: every prompt shorter than the context, prompt
/// plus `max_tokens` within it, `min_tokens` at most the maximum. Returns
/// the largest maximum of any prompt (what the metrics record).
fn check_lengths(
    cfg: &SimConfig,
    prompts: &[Arc<[u32]>],
    explicit_max: Option<u32>,
    min_tokens: u32,
) -> Result<u32, Invalid> {
    let mut max_for_metrics = 0;
    for p in prompts {
        let len = p.len() as u32;
        if len >= cfg.max_model_len {
            return bad(
                format!(
                    "This model's maximum context length is {} tokens. However, your request has {len} input tokens. Please reduce the length of the input messages.",
                    cfg.max_model_len
                ),
                Some("input_tokens"),
            );
        }
        if let Some(mt) = explicit_max {
            if mt == 0 {
                return bad(
                    "max_tokens must be at least 1, got 0.".into(),
                    Some("max_tokens"),
                );
            }
            if len + mt > cfg.max_model_len {
                return bad(
                    format!(
                        "'max_tokens' or 'max_completion_tokens' is too large: {mt}. This model's maximum context length is {} tokens and your request has {len} input tokens ({mt} > {} - {len}).",
                        cfg.max_model_len, cfg.max_model_len
                    ),
                    Some("max_tokens"),
                );
            }
        }
        max_for_metrics = max_for_metrics.max(explicit_max.unwrap_or(cfg.max_model_len - len));
    }
    if min_tokens > max_for_metrics {
        return bad(
            format!(
                "min_tokens must be less than or equal to max_tokens={max_for_metrics}, got {min_tokens}."
            ),
            Some("min_tokens"),
        );
    }
    Ok(max_for_metrics)
}

/// Hands `n` sequences per prompt to the engine (choice `prompt * n + k`);
/// with `fill_max`, each may run to the end of the context.
fn submit(
    state: &ServerState,
    prompts: &[Arc<[u32]>],
    params: &SeqParams,
    fill_max: bool,
    arrival: Instant,
) -> Result<UnboundedReceiver<Event>, Invalid> {
    let (tx, rx) = unbounded_channel();
    let engine_tx = state
        .engine_tx
        .lock()
        .map_err(|_| (500, "the engine is gone".to_owned(), None))?
        .clone();
    let n = params.n;
    for (pi, p) in prompts.iter().enumerate() {
        for k in 0..n {
            let mut params = params.clone();
            if fill_max {
                params.max_tokens = state.config.max_model_len - p.len() as u32;
            }
            engine_tx
                .send(EngineMsg::Add(SeqRequest {
                    prompt: p.clone(),
                    params,
                    choice: pi as u32 * n + k,
                    arrival,
                    events: tx.clone(),
                }))
                .map_err(|_| (500, "the engine is gone".to_owned(), None))?;
        }
    }
    Ok(rx)
}

#[derive(Debug, Default, Clone)]
struct ChoiceState {
    tokens: Vec<u32>,
    finish: Option<Finish>,
    started: bool,
}

/// The response body of a generation request: SSE chunks as tokens arrive, or one JSON body.
struct GenStream {
    state: Arc<ServerState>,
    sub: Submitted,
    id: String,
    seq_no: u64,
    arrival: Instant,
    plan: FaultPlan,
    frng: Rng,
    /// `data: {"id":…,"choices":[{"index":` rendered once.
    chunk_head: Bytes,
    choices: Vec<ChoiceState>,
    remaining: usize,
    chunks: u32,
    completion_tokens: u32,
    scheduled: Option<Instant>,
    first_token: Option<Instant>,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    kill: tokio::sync::watch::Receiver<bool>,
    buf: BytesMut,
    done: bool,
    recorded: bool,
    malformed_sent: bool,
}

impl std::fmt::Debug for GenStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl GenStream {
    fn new(
        state: Arc<ServerState>,
        sub: Submitted,
        id: String,
        seq_no: u64,
        arrival: Instant,
        plan: FaultPlan,
        frng: Rng,
    ) -> GenStream {
        let created = state.created_unix + state.started.elapsed().as_secs();
        let object = match sub.flavor {
            Flavor::Completion => "text_completion",
            Flavor::Chat => "chat.completion.chunk",
        };
        let model = serde_json::to_string(&sub.model).unwrap_or_default();
        let head = format!(
            "data: {{\"id\":\"{id}\",\"object\":\"{object}\",\"created\":{created},\"model\":{model},\"choices\":[{{\"index\":"
        );
        let nchoices = sub.prompts.len() * sub.n as usize;
        let kill = state.kill.subscribe();
        GenStream {
            state,
            id,
            seq_no,
            arrival,
            plan,
            frng,
            chunk_head: Bytes::from(head),
            choices: vec![ChoiceState::default(); nchoices],
            remaining: nchoices,
            chunks: 0,
            completion_tokens: 0,
            scheduled: None,
            first_token: None,
            stall: None,
            kill,
            buf: BytesMut::with_capacity(4096),
            done: false,
            recorded: false,
            malformed_sent: false,
            sub,
        }
    }

    fn prompt_tokens(&self) -> u32 {
        self.sub.prompts.iter().map(|p| p.len() as u32).sum::<u32>()
    }

    fn record(&mut self, status: u16, outcome: &str) {
        if self.recorded || !self.state.ground_truth.enabled() {
            self.recorded = true;
            return;
        }
        self.recorded = true;
        let g = &self.state.ground_truth;
        g.record(GroundTruthRecord {
            id: self.id.clone(),
            seq: self.seq_no,
            arrival_ns: g.ns(self.arrival),
            scheduled_ns: self.scheduled.map(|t| g.ns(t)),
            first_token_ns: self.first_token.map(|t| g.ns(t)),
            end_ns: g.ns(Instant::now()),
            prompt_tokens: self.prompt_tokens(),
            completion_tokens: self.completion_tokens,
            status,
            outcome: outcome.to_owned(),
        });
    }

    fn usage_json(&self, buf: &mut BytesMut, prompt: u32, completion: u32) {
        let mut ib = itoa::Buffer::new();
        buf.put_slice(b"{\"prompt_tokens\":");
        buf.put_slice(ib.format(prompt).as_bytes());
        buf.put_slice(b",\"total_tokens\":");
        buf.put_slice(ib.format(prompt + completion).as_bytes());
        buf.put_slice(b",\"completion_tokens\":");
        buf.put_slice(ib.format(completion).as_bytes());
        buf.put_slice(b"}");
    }

    /// Renders one streamed token of choice `c`.
    fn render_chunk(&mut self, c: usize, token: u32) {
        let tok = self.state.tokenizer.clone();
        let mut ib = itoa::Buffer::new();
        let chat = self.sub.flavor == Flavor::Chat;
        let mut buf = std::mem::take(&mut self.buf);
        let st = &self.choices[c];
        let piece = match st.finish.as_ref().and_then(|f| f.keep_bytes) {
            Some(k) => &tok.piece(token)[..k.min(tok.piece(token).len())],
            None => tok.piece(token),
        };
        if chat && !st.started {
            // vLLM opens every chat choice with a role-only delta.
            buf.put_slice(&self.chunk_head);
            buf.put_slice(ib.format(c).as_bytes());
            buf.put_slice(b",\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        }
        let first = !st.started;
        buf.put_slice(&self.chunk_head);
        buf.put_slice(ib.format(c).as_bytes());
        if chat {
            buf.put_slice(b",\"delta\":{\"content\":\"");
            buf.put_slice(piece.as_bytes());
            buf.put_slice(b"\"},\"logprobs\":null,\"finish_reason\":");
        } else {
            buf.put_slice(b",\"text\":\"");
            buf.put_slice(piece.as_bytes());
            buf.put_slice(b"\",\"logprobs\":null,\"finish_reason\":");
        }
        match &st.finish {
            Some(f) => {
                buf.put_u8(b'"');
                buf.put_slice(finish_str(f).as_bytes());
                buf.put_u8(b'"');
            }
            None => buf.put_slice(b"null"),
        }
        if !chat || st.finish.is_some() {
            buf.put_slice(b",\"stop_reason\":");
            buf.put_slice(stop_reason_json(st.finish.as_ref()).to_string().as_bytes());
        }
        if !chat {
            buf.put_slice(b",\"prompt_token_ids\":");
            if self.sub.return_token_ids && first {
                let p = &self.sub.prompts[c / self.sub.n as usize];
                buf.put_slice(serde_json::to_string(&p[..]).unwrap_or_default().as_bytes());
            } else {
                buf.put_slice(b"null");
            }
            buf.put_slice(b",\"token_ids\":");
        } else if self.sub.return_token_ids {
            buf.put_slice(b",\"token_ids\":");
        }
        if self.sub.return_token_ids {
            buf.put_u8(b'[');
            buf.put_slice(ib.format(token).as_bytes());
            buf.put_u8(b']');
        } else if !chat {
            buf.put_slice(b"null");
        }
        buf.put_slice(b"}]");
        if self.sub.continuous_usage {
            let prompt = self.sub.prompts[c / self.sub.n as usize].len() as u32;
            buf.put_slice(b",\"usage\":");
            self.usage_json(&mut buf, prompt, self.choices[c].tokens.len() as u32);
        }
        buf.put_slice(b"}\n\n");
        self.choices[c].started = true;
        self.buf = buf;
    }

    fn render_end(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if self.sub.include_usage {
            let head = &self.chunk_head[..self.chunk_head.len() - b"[{\"index\":".len()];
            buf.put_slice(head);
            buf.put_slice(b"[],\"usage\":");
            self.usage_json(&mut buf, self.prompt_tokens(), self.completion_tokens);
            buf.put_slice(b"}\n\n");
        }
        buf.put_slice(b"data: [DONE]\n\n");
        self.buf = buf;
    }

    fn render_full(&mut self) {
        let tok = &self.state.tokenizer;
        let n = self.sub.n as usize;
        let created = self.state.created_unix + self.state.started.elapsed().as_secs();
        let usage = api::Usage {
            prompt_tokens: self.prompt_tokens(),
            total_tokens: self.prompt_tokens() + self.completion_tokens,
            completion_tokens: self.completion_tokens,
            prompt_tokens_details: None,
        };
        let text_of = |c: &ChoiceState| {
            let mut s = String::new();
            for (i, &t) in c.tokens.iter().enumerate() {
                let piece = tok.piece(t);
                match c.finish.as_ref().and_then(|f| f.keep_bytes) {
                    Some(k) if i + 1 == c.tokens.len() => s.push_str(&piece[..k.min(piece.len())]),
                    _ => s.push_str(piece),
                }
            }
            s
        };
        let json = match self.sub.flavor {
            Flavor::Completion => serde_json::to_string(&api::CompletionResponse {
                id: &self.id,
                object: "text_completion",
                created,
                model: &self.sub.model,
                choices: self
                    .choices
                    .iter()
                    .enumerate()
                    .map(|(i, c)| api::CompletionChoice {
                        index: i as u32,
                        text: text_of(c),
                        logprobs: None,
                        finish_reason: c.finish.as_ref().map(finish_str),
                        stop_reason: stop_reason_json(c.finish.as_ref()),
                        token_ids: self.sub.return_token_ids.then(|| c.tokens.clone()),
                        prompt_logprobs: None,
                        prompt_token_ids: self
                            .sub
                            .return_token_ids
                            .then(|| self.sub.prompts[i / n].to_vec()),
                        routed_experts: None,
                    })
                    .collect(),
                service_tier: None,
                system_fingerprint: None,
                usage,
                kv_transfer_params: None,
                ec_transfer_params: None,
                metrics: None,
            }),
            Flavor::Chat => serde_json::to_string(&api::ChatResponse {
                id: &self.id,
                object: "chat.completion",
                created,
                model: &self.sub.model,
                choices: self
                    .choices
                    .iter()
                    .enumerate()
                    .map(|(i, c)| api::ChatChoice {
                        index: i as u32,
                        message: api::ChatResponseMessage {
                            role: "assistant",
                            content: text_of(c),
                            refusal: None,
                            annotations: None,
                            audio: None,
                            function_call: None,
                            tool_calls: Vec::new(),
                            reasoning: None,
                        },
                        logprobs: None,
                        finish_reason: c.finish.as_ref().map(finish_str),
                        stop_reason: stop_reason_json(c.finish.as_ref()),
                        token_ids: self.sub.return_token_ids.then(|| c.tokens.clone()),
                    })
                    .collect(),
                service_tier: None,
                system_fingerprint: None,
                usage,
                prompt_logprobs: None,
                prompt_token_ids: None,
                kv_transfer_params: None,
            }),
        };
        self.buf.put_slice(json.unwrap_or_default().as_bytes());
    }

    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Scheduled { at } => {
                if self.scheduled.is_none() {
                    self.scheduled = Some(at);
                }
            }
            Event::Token {
                choice,
                token,
                finish,
            } => {
                let c = choice as usize;
                self.completion_tokens += 1;
                let finished = finish.is_some();
                {
                    let st = &mut self.choices[c];
                    st.tokens.push(token);
                    st.finish = finish.map(|f| *f);
                }
                if self.sub.stream {
                    self.render_chunk(c, token);
                    self.chunks += 1;
                }
                if finished {
                    self.remaining -= 1;
                }
            }
        }
    }
}

impl futures_util::Stream for GenStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if *this.kill.borrow() {
            this.done = true;
            this.record(200, "disconnect");
            return Poll::Ready(Some(Err(std::io::Error::other("server killed"))));
        }
        if let Some(s) = this.stall.as_mut() {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.stall = None;
        }
        // Collect whatever is ready, so a busy server writes several tokens per syscall.
        let mut got = 0;
        while this.remaining > 0 {
            match this.sub.rx.poll_recv(cx) {
                Poll::Ready(Some(ev)) => {
                    let is_token = matches!(ev, Event::Token { .. });
                    this.apply(ev);
                    if is_token {
                        got += 1;
                        if this.sub.stream && this.buf.len() >= 16 * 1024 {
                            break;
                        }
                    }
                }
                Poll::Ready(None) => {
                    // The engine stopped (shutdown) before finishing: end with an error event.
                    this.buf.clear();
                    let msg = api::streaming_error_json(500, "the engine stopped");
                    this.buf
                        .put_slice(format!("data: {msg}\n\ndata: [DONE]\n\n").as_bytes());
                    this.done = true;
                    this.record(200, "error_event");
                    return Poll::Ready(Some(Ok(this.buf.split().freeze())));
                }
                Poll::Pending => break,
            }
        }
        if got == 0 && this.remaining > 0 {
            return Poll::Pending;
        }
        if !this.sub.stream {
            if this.remaining > 0 {
                return Poll::Pending;
            }
            this.render_full();
            this.done = true;
            this.first_token = Some(Instant::now());
            this.record(200, "ok");
            return Poll::Ready(Some(Ok(this.buf.split().freeze())));
        }
        // Faults, at chunk granularity.
        if this.plan.stall_first && this.first_token.is_none() {
            this.plan.stall_first = false;
            let mut s = Box::pin(tokio::time::sleep(Duration::from_millis(
                this.state.config.faults.stall_ms,
            )));
            if s.as_mut().poll(cx).is_pending() {
                this.stall = Some(s);
                // The rendered chunks wait in `buf` until the stall ends.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if this.first_token.is_some()
            && this.stall.is_none()
            && this
                .frng
                .chance(this.state.config.faults.stall_mid_probability)
        {
            let mut s = Box::pin(tokio::time::sleep(Duration::from_millis(
                this.state.config.faults.stall_ms,
            )));
            if s.as_mut().poll(cx).is_pending() {
                this.stall = Some(s);
                return Poll::Pending;
            }
        }
        if let Some(k) = this.plan.error_event_at
            && this.chunks >= k
        {
            this.buf.clear();
            let msg = api::streaming_error_json(500, "simulated engine error");
            this.buf
                .put_slice(format!("data: {msg}\n\ndata: [DONE]\n\n").as_bytes());
            this.done = true;
            this.record(200, "error_event");
            return Poll::Ready(Some(Ok(this.buf.split().freeze())));
        }
        if let Some(k) = this.plan.disconnect_after
            && this.chunks >= k
        {
            this.done = true;
            this.record(200, "disconnect");
            // An error from the body makes hyper drop the connection mid-response.
            return Poll::Ready(Some(Err(std::io::Error::other("simulated disconnect"))));
        }
        if let Some((k, bad_json)) = this.plan.malformed_at
            && this.chunks >= k
        {
            this.plan.malformed_at = None;
            if bad_json {
                this.buf
                    .put_slice(b"data: {\"id\":\"broken\",\"choices\":[{\"text\":\n\n");
            } else {
                // Broken framing: a field line with no `data:` and no blank line.
                this.buf.put_slice(b"dta {\"id\":\"broken\"}\r");
            }
            this.malformed_sent = true;
        }
        if this.remaining == 0 {
            this.render_end();
            this.done = true;
        }
        if this.first_token.is_none() {
            this.first_token = Some(Instant::now());
        }
        let out = this.buf.split().freeze();
        if this.done {
            let outcome = if this.malformed_sent {
                "malformed"
            } else {
                "ok"
            };
            this.record(200, outcome);
        }
        Poll::Ready(Some(Ok(out)))
    }
}

impl Drop for GenStream {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(200, "client_gone");
        }
    }
}
