//! What the SUT sends, where, and how: endpoints, request body options,
//! dispatch policy, HTTP client settings and the API key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dataset::tokenizer::Tokenizer;
use serde_json::{Map, Value};

use crate::SutError;

/// Which OpenAI-compatible API the prompts go to, and in which form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointKind {
    /// `/v1/completions` with the prompt as token ids (`"prompt": [ids]`):
    /// the server runs exactly the dataset's tokens.
    #[default]
    Completions,
    /// `/v1/completions` with the prompt as text (the sample's text).
    CompletionsText,
    /// `/v1/chat/completions` with the sample's text as one user message.
    ChatCompletions,
}

impl EndpointKind {
    /// The request path, relative to the server root.
    pub fn path(self) -> &'static str {
        match self {
            EndpointKind::Completions | EndpointKind::CompletionsText => "/v1/completions",
            EndpointKind::ChatCompletions => "/v1/chat/completions",
        }
    }

    /// True when the prompt is sent as text (samples need `input_text`).
    pub fn needs_text(self) -> bool {
        !matches!(self, EndpointKind::Completions)
    }
}

/// Generation options put in every request body.
///
/// `None` leaves a field out, so the server's default applies (vLLM's
/// `max_tokens` default is 16: set it). The MLPerf Llama 3.1 8B reference
/// uses temperature 0, top_p 1, top_k 1, seed 42, max_tokens 128, min_tokens 1.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOptions {
    /// Model name; discovered from the first endpoint's `/v1/models` when
    /// `None`.
    pub model: Option<String>,
    /// Output cap for samples whose dataset entry sets none.
    pub max_tokens: Option<u32>,
    /// vLLM's `min_tokens`.
    pub min_tokens: Option<u32>,
    /// vLLM's and llama.cpp's `ignore_eos`.
    pub ignore_eos: Option<bool>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (-1 disables it in vLLM).
    pub top_k: Option<i64>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Stop strings (left out when empty).
    pub stop: Vec<String>,
    /// Stream the response as server-sent events (needed for first-token
    /// times).
    pub stream: bool,
    /// `stream_options.include_usage`: the server's token counts at the end
    /// of a stream.
    pub include_usage: bool,
    /// vLLM's `return_token_ids`: output token ids in every chunk, for the
    /// accuracy log. Servers that do not know it ignore it.
    pub return_token_ids: bool,
    /// Merged into the body last (`--extra-body`): its keys replace the
    /// fields above, `max_tokens` included.
    pub extra_body: Map<String, Value>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            model: None,
            max_tokens: None,
            min_tokens: None,
            ignore_eos: None,
            temperature: None,
            top_p: None,
            top_k: None,
            seed: None,
            stop: Vec::new(),
            stream: true,
            include_usage: true,
            return_token_ids: true,
            extra_body: Map::new(),
        }
    }
}

/// How issued samples become requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// One request per sample, sent the moment it is issued (Server,
    /// SingleStream, MultiStream).
    #[default]
    PerSample,
    /// A work queue drained by a fixed number of in-flight requests, each
    /// carrying one or more prompts (Offline).
    Batched(BatchPolicy),
}

/// Offline batching: how many requests are in flight and what each carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Requests in flight at once, across all endpoints.
    pub max_in_flight: usize,
    /// Prompts per request (`"prompt": [[ids], [ids]]`); 1 for chat.
    pub prompts_per_request: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_in_flight: 256,
            prompts_per_request: 1,
        }
    }
}

/// HTTP version policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.1 for `http://`, ALPN (HTTP/2 when offered) for `https://`.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 without negotiation (h2c prior knowledge for `http://`).
    Http2,
}

/// HTTP client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// HTTP version policy.
    pub http: HttpVersion,
    /// Limit on making a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on a whole request, from sending to the last byte.
    pub request_timeout: Option<Duration>,
    /// Limit on the silence between two pieces of a response body, once the
    /// first piece arrived. Waiting for the first piece (queueing and
    /// prefill on the server) is bounded only by `request_timeout`.
    pub stall_timeout: Option<Duration>,
    /// Idle keep-alive connections kept per endpoint.
    pub pool_max_idle_per_endpoint: usize,
    /// How long an idle connection is kept.
    pub pool_idle_timeout: Option<Duration>,
    /// Requests in flight per endpoint; more wait in the client (and their
    /// latency shows it). `None`: no limit.
    pub max_in_flight_per_endpoint: Option<usize>,
    /// Largest accepted stream event or non-streamed response body.
    pub max_event_bytes: usize,
    /// Check `/health` and `/v1/models` on every endpoint before the run.
    pub health_check: bool,
    /// Limit on each health-check and model-discovery request.
    pub health_timeout: Duration,
    /// Keep retrying the health check (every 500 ms) this long before
    /// giving up: a server that is still loading its model answers 503 or
    /// refuses connections for a while. `None`: one attempt.
    pub wait_ready: Option<Duration>,
    /// When set, every generation request carries `X-Request-Id:
    /// <prefix><seq>`, `seq` being its first sample's sequence number (the
    /// `seq` of records.jsonl), so server-side logs can be joined to the
    /// records. vLLM names the request after this header (`cmpl-<id>`); ids
    /// must be unique among the requests a server has in flight, hence the
    /// prefix (make it unique per run).
    pub request_id_prefix: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            http: HttpVersion::Auto,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Some(Duration::from_secs(600)),
            stall_timeout: Some(Duration::from_secs(60)),
            pool_max_idle_per_endpoint: usize::MAX,
            // Below the 5 s keep-alive timeout of uvicorn (vLLM) and
            // cpp-httplib (llama.cpp): a connection the server may be closing
            // is never reused, which would fail the request as a disconnect.
            pool_idle_timeout: Some(Duration::from_secs(4)),
            max_in_flight_per_endpoint: None,
            max_event_bytes: crate::sse::DEFAULT_MAX_EVENT_BYTES,
            health_check: true,
            health_timeout: Duration::from_secs(10),
            wait_ready: None,
            request_id_prefix: None,
        }
    }
}

/// Everything [`crate::OpenAiSut::connect`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SutConfig {
    /// Server base URLs, one per data-parallel replica
    /// (`http://host:8000`; a trailing `/v1` is accepted and dropped).
    pub endpoints: Vec<String>,
    /// API and prompt form.
    pub endpoint_kind: EndpointKind,
    /// Body options.
    pub request: RequestOptions,
    /// Per-sample or batched dispatch.
    pub dispatch: Dispatch,
    /// HTTP client settings.
    pub client: ClientOptions,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<ApiKey>,
    /// Name logged as `sut_name`; default `openai:<model>`.
    pub name: Option<String>,
    /// Headers sent with every request (health checks, model listing,
    /// generation, tokenizing): `x-api-key` and other auth schemes.
    pub headers: Vec<ExtraHeader>,
    /// Turns generated text into token ids when the server sends text only,
    /// so answers (and the accuracy log) hold token ids; `None` keeps text.
    pub output_tokenizer: Option<OutputTokenizer>,
}

/// The served model's tokenizer, for answers the server sent as text only
/// (llama.cpp, chat APIs): MLPerf's accuracy log holds int32 token ids.
///
/// The text is encoded when the request ends, so the sample's completion
/// time includes the encoding: meant for accuracy runs, where time is not
/// measured.
#[derive(Clone)]
#[non_exhaustive]
pub enum OutputTokenizer {
    /// A tokenizer loaded here (a `tokenizer.json`).
    Local(Arc<dyn Tokenizer>),
    /// The server's own `/tokenize` (the first endpoint's), found at connect.
    Server,
}

impl fmt::Debug for OutputTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputTokenizer::Local(_) => f.write_str("Local"),
            OutputTokenizer::Server => f.write_str("Server"),
        }
    }
}

impl PartialEq for OutputTokenizer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OutputTokenizer::Local(a), OutputTokenizer::Local(b)) => Arc::ptr_eq(a, b),
            (OutputTokenizer::Server, OutputTokenizer::Server) => true,
            _ => false,
        }
    }
}

impl SutConfig {
    /// A configuration for these endpoints with every other setting at its
    /// default.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> SutConfig {
        SutConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            endpoint_kind: EndpointKind::default(),
            request: RequestOptions::default(),
            dispatch: Dispatch::default(),
            client: ClientOptions::default(),
            api_key: None,
            name: None,
            headers: Vec::new(),
            output_tokenizer: None,
        }
    }
}

/// A header sent with every request, `Name: value`. Its value never appears
/// in `Debug` output, errors or logs (it is usually a credential).
#[derive(Clone, PartialEq, Eq)]
pub struct ExtraHeader {
    name: Arc<str>,
    value: Arc<str>,
}

impl fmt::Debug for ExtraHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtraHeader")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl ExtraHeader {
    /// Parses `Name: value`. A value `@env:VAR` is read from environment
    /// variable VAR, `@file:PATH` from a file (surrounding whitespace
    /// dropped), so secrets need not be on the command line.
    pub fn parse(spec: &str) -> Result<ExtraHeader, SutError> {
        let Some((name, value)) = spec.split_once(':') else {
            return Err(SutError::Header {
                spec: String::new(),
                reason: "expected 'Name: value' (the text is not shown: it may hold a secret)"
                    .into(),
            });
        };
        let bad = |reason: String| SutError::Header {
            spec: name.trim().to_string(),
            reason,
        };
        let name = name.trim();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() || name.is_empty() {
            return Err(bad(format!("{name:?} is not a valid header name")));
        }
        let value = value.trim();
        let value = if let Some(var) = value.strip_prefix("@env:") {
            std::env::var(var).map_err(|_| bad(format!("environment variable {var} is not set")))?
        } else if let Some(path) = value.strip_prefix("@file:") {
            loadgen::input::read_limited_to_string(
                std::path::Path::new(path),
                loadgen::input::SECRET_FILE_LIMIT,
            )
            .map_err(|e| bad(format!("cannot read {path}: {e}")))?
        } else {
            value.to_string()
        };
        let value = value.trim();
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(bad(
                "the value has characters an HTTP header cannot carry".into()
            ));
        }
        Ok(ExtraHeader {
            name: name.into(),
            value: value.into(),
        })
    }

    /// The header's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn expose(&self) -> &str {
        &self.value
    }
}

/// An API key. Its value never appears in `Debug` output, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    value: Arc<str>,
    origin: Arc<str>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("origin", &self.origin)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl ApiKey {
    /// A key given directly; `origin` says where it came from in messages.
    pub fn new(value: impl Into<String>, origin: impl Into<String>) -> Result<ApiKey, SutError> {
        let value: String = value.into();
        let origin: String = origin.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(SutError::ApiKey {
                origin,
                reason: "the key is empty".into(),
            });
        }
        if trimmed.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(SutError::ApiKey {
                origin,
                reason: "the key has characters an HTTP header cannot carry".into(),
            });
        }
        Ok(ApiKey {
            value: trimmed.into(),
            origin: origin.into(),
        })
    }

    /// The key in environment variable `var`.
    pub fn from_env(var: &str) -> Result<ApiKey, SutError> {
        let origin = format!("environment variable {var}");
        match std::env::var(var) {
            Ok(value) => ApiKey::new(value, origin),
            Err(std::env::VarError::NotPresent) => Err(SutError::ApiKey {
                origin,
                reason: "it is not set".into(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(SutError::ApiKey {
                origin,
                reason: "it is not valid unicode".into(),
            }),
        }
    }

    /// The key in a file (surrounding whitespace is dropped).
    pub fn from_file(path: &Path) -> Result<ApiKey, SutError> {
        let origin = format!("file {}", path.display());
        match loadgen::input::read_limited_to_string(path, loadgen::input::SECRET_FILE_LIMIT) {
            Ok(value) => ApiKey::new(value, origin),
            Err(e) => Err(SutError::ApiKey {
                origin,
                reason: format!("cannot read it: {e}"),
            }),
        }
    }

    /// Where the key came from (safe to print).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The secret itself: only for building the request header.
    pub(crate) fn expose(&self) -> &str {
        &self.value
    }
}

/// Where an API key is read from, for configurations built from files or
/// command lines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiKeySource {
    /// An environment variable.
    Env(String),
    /// A file holding the key.
    File(PathBuf),
}

impl ApiKeySource {
    /// Reads the key.
    pub fn load(&self) -> Result<ApiKey, SutError> {
        match self {
            ApiKeySource::Env(var) => ApiKey::from_env(var),
            ApiKeySource::File(path) => ApiKey::from_file(path),
        }
    }
}
