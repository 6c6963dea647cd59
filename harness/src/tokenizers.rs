//! The served model's tokenizer (`--tokenizer`): a tokenizer.json loaded
//! here, or `server`, the backend's own `/tokenize` and `/detokenize`
//! (vLLM and llama.cpp serve both).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use dataset::tokenizer::{HfTokenizer, Tokenizer, TokenizerError};

use crate::shared::redact_url;

/// The `--tokenizer` value that names the server's own tokenizer.
pub const SERVER: &str = "server";

/// Where the served model's tokenizer comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerChoice {
    /// A tokenizer.json.
    File(PathBuf),
    /// The backend's `/tokenize` (the first `--backend`).
    Server {
        /// The backend's base URL.
        url: String,
        /// Its API key, if it needs one.
        api_key: Option<sut::ApiKey>,
    },
}

impl TokenizerChoice {
    /// `--tokenizer FILE|server`; `server` needs a backend.
    pub fn from_arg(
        arg: Option<&Path>,
        backends: &[String],
        api_key: Option<&sut::ApiKey>,
    ) -> anyhow::Result<Option<TokenizerChoice>> {
        let Some(arg) = arg else { return Ok(None) };
        if arg != Path::new(SERVER) {
            return Ok(Some(TokenizerChoice::File(arg.to_path_buf())));
        }
        let Some(url) = backends.first() else {
            bail!(
                "--tokenizer server uses the backend's /tokenize: it needs --backend \
                 (the built-in simulator's token ids need no re-tokenizing)"
            );
        };
        Ok(Some(TokenizerChoice::Server {
            url: url.clone(),
            api_key: api_key.cloned(),
        }))
    }

    /// Loads the tokenizer (or connects to the server's).
    pub fn load(&self) -> anyhow::Result<Arc<dyn Tokenizer>> {
        Ok(match self {
            TokenizerChoice::File(path) => Arc::new(
                HfTokenizer::from_file(path)
                    .with_context(|| format!("loading --tokenizer {}", path.display()))?,
            ),
            TokenizerChoice::Server { url, api_key } => {
                Arc::new(BlockingRemoteTokenizer::connect(url, api_key.as_ref())?)
            }
        })
    }

    /// How run.json records it (no secrets: the URL is redacted).
    pub fn describe(&self) -> serde_json::Value {
        match self {
            TokenizerChoice::File(path) => serde_json::json!({"file": path}),
            TokenizerChoice::Server { url, .. } => serde_json::json!({"server": redact_url(url)}),
        }
    }
}

/// A server's `/tokenize` and `/detokenize`, called synchronously: loading a
/// dataset and scoring a log are batch jobs outside the async runtime.
pub struct BlockingRemoteTokenizer {
    runtime: tokio::runtime::Runtime,
    remote: sut::RemoteTokenizer,
}

impl BlockingRemoteTokenizer {
    /// Detects the server's API shape (vLLM or llama.cpp) from `/v1/models`.
    pub fn connect(url: &str, api_key: Option<&sut::ApiKey>) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let remote = runtime
            .block_on(sut::RemoteTokenizer::detect(url, api_key))
            .with_context(|| format!("the tokenizer of {}", redact_url(url)))?;
        Ok(BlockingRemoteTokenizer { runtime, remote })
    }
}

impl Tokenizer for BlockingRemoteTokenizer {
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        self.runtime
            .block_on(self.remote.tokenize(text, add_special_tokens))
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }
    fn decode(&self, ids: &[u32], _skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.runtime
            .block_on(self.remote.detokenize(ids))
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_needs_a_backend_and_anything_else_is_a_file() {
        assert_eq!(TokenizerChoice::from_arg(None, &[], None).unwrap(), None);
        assert_eq!(
            TokenizerChoice::from_arg(Some(Path::new("t.json")), &[], None).unwrap(),
            Some(TokenizerChoice::File("t.json".into()))
        );
        let e = TokenizerChoice::from_arg(Some(Path::new("server")), &[], None).unwrap_err();
        assert!(e.to_string().contains("needs --backend"), "{e}");
        let backends = ["http://u:secret@h:1".to_owned()];
        let choice = TokenizerChoice::from_arg(Some(Path::new("server")), &backends, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            choice.describe(),
            serde_json::json!({"server": "http://h:1"})
        );
    }
}
