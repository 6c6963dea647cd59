//! The system under test for OpenAI-compatible servers (vLLM, llama.cpp):
//! HTTP client, streaming, batching, replicas.
//!
//! [`OpenAiSut`] implements [`loadgen::SystemUnderTest`]. Each issued sample
//! becomes a request to `/v1/completions` (prompt as token ids by default)
//! or `/v1/chat/completions`, sent from a tokio task so LoadGen's issuer
//! never waits. Streamed responses are parsed as they arrive:
//!
//! - `FirstTokenComplete` fires on the first chunk that carries generated
//!   content, with that chunk's token ids (int32 little-endian);
//! - `QuerySamplesComplete` fires at the end of the sample's stream (its
//!   finish reason plus the usage that closes the stream, else `[DONE]`;
//!   with several prompts per request, at the sample's own finish), with
//!   every output token id and `n_tokens` from the token ids or else the
//!   server's `usage.completion_tokens`, never from the number of chunks;
//! - the [`loadgen::ResponseDetail`] carries the server's prompt token
//!   count, the endpoint index, and each content chunk's arrival time (one
//!   clock read per network read, before parsing) with its token count.
//!
//! A server that returns no token ids (llama.cpp) still works: `data` then
//! holds the UTF-8 text and the detail says so ([`loadgen::OutputData`]).
//!
//! Offline runs use [`Dispatch::Batched`]: a work queue drained by a fixed
//! number of in-flight requests, each with one or more prompts. Several
//! endpoints are balanced by least outstanding requests. Every failure
//! (refused connection, timeout, HTTP status, disconnect, malformed stream,
//! server error event, stall, cancellation) answers the sample with one
//! [`loadgen::ErrorKind`] and a one-line message; nothing hangs.
//!
//! ```no_run
//! # async fn example(dataset: std::sync::Arc<dataset::Dataset>) -> Result<(), sut::SutError> {
//! let mut config = sut::SutConfig::new(["http://127.0.0.1:8000"]);
//! config.request.max_tokens = Some(128);
//! let sut = sut::OpenAiSut::connect(config, dataset).await?;
//! // hand `sut` to LoadGen; on Ctrl-C:
//! sut.shutdown().await;
//! # Ok(()) }
//! ```

mod body;
mod chunk;
mod client;
pub mod config;
mod h1;
mod openai;
pub mod secrets;
pub mod sse;
pub mod tokenizer;
mod tracker;

pub use client::ServerIdentity;
pub use config::{
    ApiKey, ApiKeySource, BatchPolicy, ClientOptions, Dispatch, EndpointKind, ExtraHeader,
    HttpVersion, OutputTokenizer, RequestOptions, SutConfig,
};
pub use openai::{EndpointStats, OpenAiSut};
pub use secrets::{Secrets, redact_url};
pub use tokenizer::{RemoteTokenizer, TokenizerApi, TokenizerError};

/// Why the SUT could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SutError {
    /// The configuration is inconsistent.
    #[error("invalid sut configuration: {0}")]
    Config(String),
    /// An endpoint URL cannot be used.
    #[error("invalid endpoint url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An endpoint failed its health check or model listing.
    #[error("endpoint check failed: {url}: {reason}")]
    Unhealthy {
        /// The URL that failed.
        url: String,
        /// What happened.
        reason: String,
    },
    /// An endpoint does not list the configured model.
    #[error("{url} does not list model {model:?} (it lists: {served})")]
    ModelNotServed {
        /// The model list URL.
        url: String,
        /// The configured model.
        model: String,
        /// The models it lists, comma-separated.
        served: String,
    },
    /// The API key cannot be used. Never contains the key.
    #[error("api key from {origin}: {reason}")]
    ApiKey {
        /// Where the key came from (variable name or file path).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--header` cannot be used. Never contains the header's value.
    #[error("header {spec:?}: {reason}")]
    Header {
        /// The header's name (never its value).
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A text endpoint was chosen but a sample has no text.
    #[error("sample {index} of dataset {dataset:?} has no prompt text, which {endpoint} needs")]
    MissingText {
        /// The dataset's name.
        dataset: String,
        /// The first sample without text.
        index: usize,
        /// The endpoint path.
        endpoint: &'static str,
    },
    /// The token-id endpoint was chosen but a sample has no token ids (a
    /// prompt-only dataset read without a tokenizer).
    #[error(
        "sample {index} of dataset {dataset:?} has text but no token ids, which {endpoint} with \
         token-id prompts needs: load a tokenizer (--tokenizer tokenizer.json) or send text \
         (--api completions-text or --api chat)"
    )]
    MissingTokens {
        /// The dataset's name.
        dataset: String,
        /// The first sample without token ids.
        index: usize,
        /// The endpoint path.
        endpoint: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the http client: {0}")]
    Client(String),
}

impl SutError {
    /// The same error with every secret scrubbed from its text (a server's
    /// answer may echo the key; a URL may carry a password).
    pub fn scrubbed(self, secrets: &Secrets) -> SutError {
        let s = |text: String| secrets.scrub(&text);
        match self {
            SutError::Config(m) => SutError::Config(s(m)),
            SutError::InvalidUrl { url, reason } => SutError::InvalidUrl {
                url: s(url),
                reason: s(reason),
            },
            SutError::Unhealthy { url, reason } => SutError::Unhealthy {
                url: s(url),
                reason: s(reason),
            },
            SutError::ModelNotServed { url, model, served } => SutError::ModelNotServed {
                url: s(url),
                model: s(model),
                served: s(served),
            },
            SutError::ApiKey { origin, reason } => SutError::ApiKey {
                origin: s(origin),
                reason: s(reason),
            },
            SutError::Header { spec, reason } => SutError::Header {
                spec: s(spec),
                reason: s(reason),
            },
            e @ (SutError::MissingText { .. } | SutError::MissingTokens { .. }) => e,
            SutError::Client(m) => SutError::Client(s(m)),
        }
    }
}
