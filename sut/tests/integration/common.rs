//! Test scaffolding: a scriptable OpenAI-compatible server on 127.0.0.1:0
//! and a recording completion sink.
//!
//! Servers never sleep: a stream that must pause waits on a [`Gate`] the
//! test opens, and every request is reported on a channel the test awaits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use dataset::{Dataset, Sample};
use loadgen::{CompletionSink, QuerySample, QuerySampleResponse, Responder, ResponseId};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

/// Opens once and stays open; waiters pass when it is open.
#[derive(Clone, Debug)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(watch::channel(false).0))
    }
}

impl Gate {
    pub fn open(&self) {
        self.0.send_replace(true);
    }
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// One piece of a scripted response body.
#[derive(Clone)]
pub enum Step {
    /// Raw bytes, written as one piece.
    Bytes(String),
    /// Pause until the gate opens.
    Wait(Gate),
    /// Break the connection (the body errors).
    Break,
    /// Never send anything more.
    Hang,
    /// Run a callback when the stream gets here.
    Run(Arc<dyn Fn() + Send + Sync>),
    /// Pause this long: a slow server, not a synchronisation.
    Delay(Duration),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Bytes(b) => write!(f, "Bytes({b:?})"),
            Step::Wait(_) => f.write_str("Wait"),
            Step::Break => f.write_str("Break"),
            Step::Hang => f.write_str("Hang"),
            Step::Run(_) => f.write_str("Run"),
            Step::Delay(d) => write!(f, "Delay({d:?})"),
        }
    }
}

/// What the server does with one generation request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with `text/event-stream` and these pieces.
    Sse(Vec<Step>),
    /// A status and a JSON (or any) body.
    Status(u16, String),
    /// Never answer, not even headers.
    Hang,
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// Arrival order across the server's generation requests.
    pub seq: usize,
    pub version: axum::http::Version,
    /// The client's address: the same for requests on one connection.
    pub peer: std::net::SocketAddr,
}

type Behavior = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

#[derive(Clone)]
struct ServerState {
    behavior: Behavior,
    requests: mpsc::UnboundedSender<Received>,
    /// The next generation request's seq. Held while a request takes its
    /// seq, gets its reply and goes on the channel, so that the channel
    /// delivers requests in seq order even when handlers run concurrently.
    seq: Arc<std::sync::Mutex<usize>>,
    health: u16,
    models: Vec<String>,
    owned_by: String,
}

pub struct MockServer {
    pub url: String,
    requests: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
}

pub struct ServerOptions {
    pub health: u16,
    pub models: Vec<String>,
    pub owned_by: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            health: 200,
            models: vec!["mock-model".into()],
            owned_by: "vllm".into(),
        }
    }
}

impl MockServer {
    pub async fn start(
        behavior: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> MockServer {
        MockServer::start_with(ServerOptions::default(), behavior).await
    }

    pub async fn start_with(
        options: ServerOptions,
        behavior: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> MockServer {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = ServerState {
            behavior: Arc::new(behavior),
            requests: tx,
            seq: Arc::new(std::sync::Mutex::new(0)),
            health: options.health,
            models: options.models,
            owned_by: options.owned_by,
        };
        let app = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/v1/completions", post(generate))
            .route("/v1/chat/completions", post(generate))
            .route("/tokenize", post(tokenize))
            .route("/detokenize", post(detokenize))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        MockServer {
            url: format!("http://{addr}"),
            requests: tokio::sync::Mutex::new(rx),
        }
    }

    /// The next generation request the server received.
    pub async fn next_request(&self) -> Received {
        within(self.requests.lock().await.recv())
            .await
            .expect("server stopped")
    }

    /// A request if one already arrived.
    pub async fn try_request(&self) -> Option<Received> {
        self.requests.lock().await.try_recv().ok()
    }
}

async fn health(State(state): State<ServerState>) -> StatusCode {
    StatusCode::from_u16(state.health).unwrap()
}

async fn models(State(state): State<ServerState>) -> axum::Json<Value> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "owned_by": state.owned_by}))
        .collect();
    axum::Json(json!({"object": "list", "data": data}))
}

async fn generate(
    State(state): State<ServerState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    version: axum::http::Version,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let mut next_seq = state.seq.lock().unwrap();
        let received = Received {
            path: uri.path().to_string(),
            headers,
            body,
            seq: *next_seq,
            version,
            peer,
        };
        *next_seq += 1;
        let reply = (state.behavior)(&received);
        let _ = state.requests.send(received);
        reply
    };
    match reply {
        Reply::Status(code, body) => (
            StatusCode::from_u16(code).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Sse(steps) => {
            let stream = futures_util::stream::unfold(steps.into_iter(), |mut steps| async move {
                loop {
                    match steps.next()? {
                        Step::Bytes(b) => return Some((Ok(Bytes::from(b)), steps)),
                        Step::Wait(gate) => gate.wait().await,
                        Step::Break => {
                            return Some((
                                Err(std::io::Error::other("scripted disconnect")),
                                steps,
                            ));
                        }
                        Step::Hang => std::future::pending::<()>().await,
                        Step::Run(f) => f(),
                        Step::Delay(d) => tokio::time::sleep(d).await,
                    }
                }
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

/// vLLM's shape when the owner is "vllm", llama.cpp's otherwise. Tokens are
/// the bytes of the text; detokenizing maps bytes back.
async fn tokenize(State(state): State<ServerState>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let (text, special) = if state.owned_by == "vllm" {
        (
            body["prompt"].as_str(),
            body["add_special_tokens"].as_bool(),
        )
    } else {
        (body["content"].as_str(), body["add_special"].as_bool())
    };
    let Some(text) = text else {
        // llama.cpp's real behaviour for a missing "content": an empty list.
        return axum::Json(json!({"tokens": []})).into_response();
    };
    let mut tokens: Vec<u32> = text.bytes().map(u32::from).collect();
    if special == Some(true) {
        tokens.insert(0, 1);
    }
    axum::Json(json!({"tokens": tokens, "count": tokens.len()})).into_response()
}

async fn detokenize(State(state): State<ServerState>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let bytes: Vec<u8> = body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u8)
        .collect();
    let text = String::from_utf8(bytes).unwrap();
    let key = if state.owned_by == "vllm" {
        "prompt"
    } else {
        "content"
    };
    axum::Json(json!({ key: text })).into_response()
}

/// `data: <json>\n\n`
pub fn event(json: &Value) -> String {
    format!("data: {json}\n\n")
}

pub const DONE: &str = "data: [DONE]\n\n";

/// A vLLM-style completion stream: one chunk per (text, ids) entry (ids
/// omitted when `None`), the last with `finish`, then a usage chunk and
/// `[DONE]`.
pub fn vllm_stream(tokens: &[(&str, Option<&[u32]>)], prompt_tokens: u32) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut total = 0;
    for (i, (text, ids)) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        total += ids.map_or(1, |ids| ids.len() as u32);
        steps.push(Step::Bytes(event(&json!({
            "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "mock-model",
            "choices": [{
                "index": 0, "text": text, "logprobs": null,
                "finish_reason": if last { json!("length") } else { Value::Null },
                "stop_reason": null,
                "token_ids": ids,
            }],
            "usage": null,
        }))));
    }
    steps.push(Step::Bytes(event(&json!({
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "mock-model",
        "choices": [],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": total,
                  "total_tokens": prompt_tokens + total},
    }))));
    steps.push(Step::Bytes(DONE.into()));
    steps
}

/// Fails the test instead of hanging it.
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test waited more than 20 s")
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    First { id: u64, data: Vec<u8>, at_ns: u64 },
    Done(QuerySampleResponse),
}

/// Records every completion with its time; lets a test await a count.
pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
    done_count: AtomicUsize,
    changed: Notify,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
            done_count: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }
}

impl CompletionSink for Recorder {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn first_token_complete(&self, id: ResponseId, data: &[u8]) {
        let at_ns = self.now_ns();
        self.events.lock().unwrap().push(Event::First {
            id: id.0,
            data: data.to_vec(),
            at_ns,
        });
    }
    fn query_samples_complete(&self, responses: &mut [QuerySampleResponse]) {
        {
            let mut events = self.events.lock().unwrap();
            for r in responses.iter_mut() {
                events.push(Event::Done(std::mem::take(r)));
            }
        }
        self.done_count.fetch_add(responses.len(), Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

impl Recorder {
    pub fn new() -> (Arc<Recorder>, Responder) {
        let recorder = Arc::new(Recorder::default());
        let responder = Responder::new(recorder.clone());
        (recorder, responder)
    }

    /// Waits until at least `n` samples completed.
    pub async fn wait_done(&self, n: usize) {
        within(async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.done_count.load(Ordering::SeqCst) >= n {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }

    pub fn done_count(&self) -> usize {
        self.done_count.load(Ordering::SeqCst)
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Completed responses by response id; panics on a duplicate answer.
    pub fn responses(&self) -> HashMap<u64, QuerySampleResponse> {
        let mut out = HashMap::new();
        for e in self.events() {
            if let Event::Done(r) = e {
                assert!(
                    out.insert(r.id.0, r.clone()).is_none(),
                    "sample {} answered twice",
                    r.id.0
                );
            }
        }
        out
    }

    /// First-token events by response id; panics on a duplicate.
    pub fn first_tokens(&self) -> HashMap<u64, (Vec<u8>, u64)> {
        let mut out = HashMap::new();
        for e in self.events() {
            if let Event::First { id, data, at_ns } = e {
                assert!(
                    out.insert(id, (data, at_ns)).is_none(),
                    "first token of {id} reported twice"
                );
            }
        }
        out
    }
}

/// `n` samples: sample i has prompt [i*10+1, i*10+2, i*10+3] and text
/// "prompt i".
pub fn dataset(n: usize) -> Arc<Dataset> {
    Arc::new(Dataset {
        name: "test-set".into(),
        samples: (0..n)
            .map(|i| Sample {
                input_tokens: vec![i as u32 * 10 + 1, i as u32 * 10 + 2, i as u32 * 10 + 3],
                input_text: Some(format!("prompt {i}")),
                reference: None,
                max_output_tokens: None,
            })
            .collect(),
        performance_sample_count: n,
    })
}

/// Query samples for dataset indices; response id = 1000 + index.
pub fn samples(indices: impl IntoIterator<Item = usize>) -> Vec<QuerySample> {
    indices
        .into_iter()
        .map(|index| QuerySample {
            id: ResponseId(1000 + index as u64),
            index,
        })
        .collect()
}

/// A URL on which nothing listens (a port just released).
pub async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
