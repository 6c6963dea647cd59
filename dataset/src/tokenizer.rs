//! Tokenizers: text to token ids and back.
//!
//! [`Tokenizer`] is what the rest of the crate needs (accuracy scoring
//! decodes with it, ShareGPT filtering counts tokens with it).
//! [`HfTokenizer`] is the local backend: a Hugging Face `tokenizer.json`
//! through the `tokenizers` crate (fancy-regex, no C code), which gives the
//! same ids as Python `tokenizers` (checked against the Llama 3.2 file in
//! `tests/tokenizer.rs`). A remote `/tokenize` backend lives in `sut`.
//!
//! Decoding follows `transformers`' `PreTrainedTokenizerFast.decode`, which is
//! what the MLPerf accuracy scripts call: the `tokenizers` decode, then, when
//! the model's `tokenizer_config.json` sets `clean_up_tokenization_spaces`
//! (Llama 3.x does), `transformers`' `clean_up_tokenization` replacements.

use std::path::{Path, PathBuf};

/// Why tokenizing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The tokenizer file could not be read or parsed.
    #[error("cannot load tokenizer {}: {message}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Codec(String),
}

/// Encodes text and decodes token ids.
pub trait Tokenizer: Send + Sync {
    /// Token ids of `text`; `add_special_tokens` adds what the tokenizer's
    /// post-processor adds (e.g. Llama's BOS).
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError>;

    /// Text of `ids`; `skip_special_tokens` drops special tokens (BOS, EOS,
    /// ...). Unknown ids are dropped.
    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError>;

    /// Ids it knows (added tokens included): valid ids are below it;
    /// `None` where it cannot tell (a remote tokenizer).
    fn vocab_size(&self) -> Option<u32> {
        None
    }

    /// [`Tokenizer::decode`] of each sequence.
    fn batch_decode(
        &self,
        batch: &[&[u32]],
        skip_special_tokens: bool,
    ) -> Result<Vec<String>, TokenizerError> {
        batch
            .iter()
            .map(|ids| self.decode(ids, skip_special_tokens))
            .collect()
    }
}

/// A Hugging Face `tokenizer.json` tokenizer.
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    clean_up_tokenization_spaces: bool,
}

impl HfTokenizer {
    /// Loads `tokenizer.json`. If a `tokenizer_config.json` sits next to it,
    /// its `clean_up_tokenization_spaces` is honoured (as `transformers`
    /// does); otherwise it is off (the `tokenizers` library behaviour).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        loadgen::input::regular_file_size(path).map_err(|e| TokenizerError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let config = path.with_file_name("tokenizer_config.json");
        let clean_up = match std::fs::read(&config) {
            Ok(bytes) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| TokenizerError::Load {
                        path: config.clone(),
                        message: e.to_string(),
                    })?;
                v.get("clean_up_tokenization_spaces")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false)
            }
            Err(_) => false,
        };
        Ok(Self {
            inner,
            clean_up_tokenization_spaces: clean_up,
        })
    }

    /// A tokenizer from `tokenizer.json` bytes (clean-up off).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Load {
            path: PathBuf::from("<bytes>"),
            message: e.to_string(),
        })?;
        Ok(Self {
            inner,
            clean_up_tokenization_spaces: false,
        })
    }

    /// Sets `transformers`' `clean_up_tokenization_spaces`.
    #[must_use]
    pub fn with_clean_up_tokenization_spaces(mut self, on: bool) -> Self {
        self.clean_up_tokenization_spaces = on;
        self
    }

    /// Whether decoding applies `transformers`' clean-up.
    pub fn clean_up_tokenization_spaces(&self) -> bool {
        self.clean_up_tokenization_spaces
    }

    /// The id of a token string (e.g. `"<|eot_id|>"`), if it exists.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

impl Tokenizer for HfTokenizer {
    fn vocab_size(&self) -> Option<u32> {
        u32::try_from(self.inner.get_vocab_size(true)).ok()
    }

    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        let text = self
            .inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Codec(e.to_string()))?;
        Ok(if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }
}

/// `transformers`' `PreTrainedTokenizerBase.clean_up_tokenization`: the same
/// replacements, in the same order.
pub fn clean_up_tokenization(text: &str) -> String {
    const REPLACEMENTS: [(&str, &str); 10] = [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ];
    let mut out = text.to_string();
    for (from, to) in REPLACEMENTS {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A word-level tokenizer with BOS/EOS specials, built in code.
    pub(crate) const TINY: &str = r#"{
      "version": "1.0",
      "truncation": null, "padding": null,
      "added_tokens": [
        {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
      ],
      "normalizer": null,
      "pre_tokenizer": {"type": "WhitespaceSplit"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}},
      "decoder": {"type": "WordPiece", "prefix": "~~", "cleanup": false},
      "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1, "<unk>": 2, "hello": 3, "world": 4, ".": 5, "it": 6, "'s": 7},
                "unk_token": "<unk>"}
    }"#;

    #[test]
    fn encode_decode_with_and_without_specials() {
        let t = HfTokenizer::from_bytes(TINY.as_bytes()).unwrap();
        assert_eq!(t.encode("hello world .", true).unwrap(), vec![0, 3, 4, 5]);
        assert_eq!(t.encode("hello world .", false).unwrap(), vec![3, 4, 5]);
        assert_eq!(t.encode("hello mars", false).unwrap(), vec![3, 2]);
        assert_eq!(t.decode(&[0, 3, 4, 5, 1], true).unwrap(), "hello world .");
        assert_eq!(t.decode(&[0, 3, 1], false).unwrap(), "<s> hello </s>");
        // Unknown ids are dropped, not an error.
        assert_eq!(t.decode(&[3, 999], true).unwrap(), "hello");
        let t = t.with_clean_up_tokenization_spaces(true);
        assert_eq!(t.decode(&[6, 7, 3, 5], true).unwrap(), "it's hello.");
        let batch: [&[u32]; 2] = [&[3], &[4, 5]];
        assert_eq!(
            t.batch_decode(&batch, true).unwrap(),
            vec!["hello", "world."]
        );
        assert_eq!(t.vocab_size(), Some(8));
        assert_eq!(t.token_to_id("world"), Some(4));
    }

    #[test]
    fn clean_up_matches_transformers_order() {
        assert_eq!(clean_up_tokenization("a . b ? c ! d , e"), "a. b? c! d, e");
        assert_eq!(
            clean_up_tokenization("I don 't , we 're"),
            "I don 't, we're"
        );
        assert_eq!(clean_up_tokenization("it ' s"), "it's");
        assert_eq!(clean_up_tokenization("can n't 'm 's 've"), "cann't'm's've");
    }

    #[test]
    fn load_errors_name_the_file() {
        let e = HfTokenizer::from_file("no/such/tokenizer.json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot load tokenizer no/such/tokenizer.json"),
            "{e}"
        );
    }
}
