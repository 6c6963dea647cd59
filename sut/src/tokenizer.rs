//! A tokenizer that asks the server: `/tokenize` and `/detokenize`.
//!
//! vLLM and llama.cpp agree on the paths and on the tokenize answer
//! (`{"tokens": [ids]}`), and differ in the rest:
//!
//! | | vLLM | llama.cpp |
//! |---|---|---|
//! | tokenize request | `{"model", "prompt", "add_special_tokens"}` | `{"content", "add_special"}` |
//! | detokenize request | `{"model", "tokens"}` | `{"tokens"}` |
//! | detokenize answer | `{"prompt": text}` | `{"content": text}` |
//!
//! llama.cpp answers a vLLM-shaped tokenize request with an empty token
//! list instead of an error, so the shape must be known, not guessed from
//! failures: [`RemoteTokenizer::detect`] reads `owned_by` from `/v1/models`
//! (`"llamacpp"` on llama.cpp).

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use crate::client::{self, error_body_message};
use crate::config::{ApiKey, ClientOptions, ExtraHeader};

/// The request shapes of a server's tokenizer endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenizerApi {
    /// vLLM (and servers that copy it).
    Vllm,
    /// llama.cpp's server.
    LlamaCpp,
}

/// Why a tokenizer call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The setup is unusable (URL, API key, client).
    #[error("remote tokenizer setup: {0}")]
    Setup(#[from] crate::SutError),
    /// The request did not get an answer.
    #[error("{url}: {reason}")]
    Request {
        /// The URL called.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer is not the expected JSON.
    #[error("{url} answered something unexpected: {reason}")]
    Malformed {
        /// The URL called.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Tokenizes and detokenizes through a server.
#[derive(Clone)]
pub struct RemoteTokenizer {
    client: reqwest::Client,
    root: String,
    api: TokenizerApi,
    model: Option<String>,
    auth: Option<HeaderValue>,
    options: ClientOptions,
}

impl fmt::Debug for RemoteTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTokenizer")
            .field("root", &self.root)
            .field("api", &self.api)
            .field("model", &self.model)
            .field("api_key", &self.auth.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenizeAnswer {
    tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct DetokenizeAnswer {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

impl RemoteTokenizer {
    /// A tokenizer for the server at `base_url` with a known API shape.
    /// `model` is sent to vLLM (which needs it when it serves several).
    pub fn new(
        base_url: &str,
        api: TokenizerApi,
        model: Option<String>,
        api_key: Option<&ApiKey>,
    ) -> Result<RemoteTokenizer, TokenizerError> {
        let options = ClientOptions {
            request_timeout: Some(Duration::from_secs(60)),
            ..ClientOptions::default()
        };
        Ok(RemoteTokenizer {
            client: client::build_client(&options, &[])?,
            root: client::server_root(base_url)?,
            api,
            model,
            auth: api_key.map(client::auth_header).transpose()?,
            options,
        })
    }

    /// Asks `/v1/models` which server this is and which model it serves.
    pub async fn detect(
        base_url: &str,
        api_key: Option<&ApiKey>,
    ) -> Result<RemoteTokenizer, TokenizerError> {
        RemoteTokenizer::detect_with_headers(base_url, api_key, &[]).await
    }

    /// [`RemoteTokenizer::detect`], sending these headers with every call.
    pub async fn detect_with_headers(
        base_url: &str,
        api_key: Option<&ApiKey>,
        headers: &[ExtraHeader],
    ) -> Result<RemoteTokenizer, TokenizerError> {
        let mut tokenizer = RemoteTokenizer::new(base_url, TokenizerApi::Vllm, None, api_key)?
            .with_headers(headers)?;
        let models = client::list_models(
            &tokenizer.client,
            &tokenizer.root,
            tokenizer.auth.as_ref(),
            &tokenizer.options,
        )
        .await?;
        if let Some(first) = models.first() {
            if first.owned_by.as_deref() == Some("llamacpp") {
                tokenizer.api = TokenizerApi::LlamaCpp;
            }
            tokenizer.model = Some(first.id.clone());
        }
        Ok(tokenizer)
    }

    /// Sends these headers with every call (auth schemes besides Bearer).
    pub fn with_headers(
        mut self,
        headers: &[ExtraHeader],
    ) -> Result<RemoteTokenizer, TokenizerError> {
        self.client = client::build_client(&self.options, headers)?;
        Ok(self)
    }

    /// The API shape in use.
    pub fn api(&self) -> TokenizerApi {
        self.api
    }

    /// Token ids of `text`; `add_special_tokens` adds BOS and the like.
    pub async fn tokenize(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let body = match self.api {
            TokenizerApi::Vllm => {
                let mut body = json!({"prompt": text, "add_special_tokens": add_special_tokens});
                if let Some(model) = &self.model {
                    body["model"] = model.as_str().into();
                }
                body
            }
            TokenizerApi::LlamaCpp => json!({"content": text, "add_special": add_special_tokens}),
        };
        let (url, bytes) = self.post("/tokenize", &body).await?;
        let answer: TokenizeAnswer =
            serde_json::from_slice(&bytes).map_err(|e| TokenizerError::Malformed {
                url,
                reason: e.to_string(),
            })?;
        Ok(answer.tokens)
    }

    /// Text of token ids.
    pub async fn detokenize(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut body = json!({"tokens": ids});
        if let (TokenizerApi::Vllm, Some(model)) = (self.api, &self.model) {
            body["model"] = model.as_str().into();
        }
        let (url, bytes) = self.post("/detokenize", &body).await?;
        let answer: DetokenizeAnswer =
            serde_json::from_slice(&bytes).map_err(|e| TokenizerError::Malformed {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        answer
            .prompt
            .or(answer.content)
            .ok_or_else(|| TokenizerError::Malformed {
                url,
                reason: "no \"prompt\" or \"content\" field".into(),
            })
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(String, bytes::Bytes), TokenizerError> {
        let url = format!("{}{path}", self.root);
        let mut request = self
            .client
            .post(&url)
            .timeout(
                self.options
                    .request_timeout
                    .unwrap_or(Duration::from_secs(60)),
            )
            .json(body);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let failed = |e: reqwest::Error| TokenizerError::Request {
            url: url.clone(),
            reason: client::classify(&e, &url, &self.options).message,
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(failed)?;
        if !status.is_success() {
            return Err(TokenizerError::Status {
                url,
                status: status.as_u16(),
                message: error_body_message(&bytes),
            });
        }
        Ok((url, bytes))
    }
}
