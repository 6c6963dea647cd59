//! ShareGPT JSON: `[{"id": ..., "conversations": [{"from": "human", "value":
//! ...}, {"from": "gpt", "value": ...}, ...]}, ...]`.
//!
//! Per record, like vLLM's `ShareGPTDataset` (benchmarks):
//! - records without `conversations` or with fewer than two turns are
//!   skipped;
//! - the prompt is the first turn from `human`/`user`, the reference the
//!   first `gpt`/`assistant`/`chatgpt`/`bard`/`bing` turn after it (vLLM takes
//!   turns 0 and 1 whatever their roles; records where no such pair exists
//!   are skipped);
//! - with a tokenizer ([`ShareGptOptions::tokenizer`]) the prompt is
//!   tokenized (with special tokens, as `tokenizer(prompt).input_ids`), the
//!   output length is the completion's token count (also with special
//!   tokens, as vLLM counts it) unless [`ShareGptOptions::output_len`] fixes
//!   it, and vLLM's `is_valid_sequence` filter applies: prompt at least
//!   `min_len` (4) tokens, output at least `min_len` unless fixed, prompt at
//!   most `max_prompt_len` (1024), prompt + output at most `max_total_len`
//!   (2048);
//! - without a tokenizer samples carry text only (no ids), the output cap is
//!   `output_len` if set, and the length filters are not applied;
//! - records are taken in file order (vLLM shuffles with Python's RNG first;
//!   shuffle the file if you need that) up to `max_samples`.

use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::tokenizer::Tokenizer;
use crate::{DatasetError, Sample, record_error, stream_array};

/// Filters and limits for ShareGPT (defaults: vLLM's).
#[derive(Clone)]
#[non_exhaustive]
pub struct ShareGptOptions {
    /// Tokenizer for prompt ids and length filtering.
    pub tokenizer: Option<Arc<dyn Tokenizer>>,
    /// Fixed output length for every sample (vLLM's `--sharegpt-output-len`).
    pub output_len: Option<u32>,
    /// Shortest prompt and output kept, in tokens.
    pub min_len: usize,
    /// Longest prompt kept, in tokens.
    pub max_prompt_len: usize,
    /// Longest prompt + output kept, in tokens.
    pub max_total_len: usize,
    /// Stop after this many samples.
    pub max_samples: Option<usize>,
}

impl Default for ShareGptOptions {
    fn default() -> Self {
        Self {
            tokenizer: None,
            output_len: None,
            min_len: 4,
            max_prompt_len: 1024,
            max_total_len: 2048,
            max_samples: None,
        }
    }
}

impl fmt::Debug for ShareGptOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareGptOptions")
            .field("tokenizer", &self.tokenizer.as_ref().map(|_| "<tokenizer>"))
            .field("output_len", &self.output_len)
            .field("min_len", &self.min_len)
            .field("max_prompt_len", &self.max_prompt_len)
            .field("max_total_len", &self.max_total_len)
            .field("max_samples", &self.max_samples)
            .finish()
    }
}

impl ShareGptOptions {
    /// vLLM's defaults, no tokenizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokenizes prompts and filters by length with this tokenizer.
    #[must_use]
    pub fn with_tokenizer(mut self, tokenizer: Arc<dyn Tokenizer>) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// Fixes every sample's output length.
    #[must_use]
    pub fn with_output_len(mut self, len: u32) -> Self {
        self.output_len = Some(len);
        self
    }

    /// Stops after `n` samples.
    #[must_use]
    pub fn with_max_samples(mut self, n: usize) -> Self {
        self.max_samples = Some(n);
        self
    }
}

#[derive(Deserialize)]
struct Turn {
    from: String,
    value: String,
}

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    conversations: Option<Vec<Turn>>,
}

fn is_human(role: &str) -> bool {
    matches!(role, "human" | "user")
}

fn is_model(role: &str) -> bool {
    matches!(role, "gpt" | "assistant" | "chatgpt" | "bard" | "bing")
}

/// Reads the array record by record: a record is held only while it is
/// turned into a sample, and reading stops at `max_samples`. Samples past
/// `keep` are still checked, but dropped.
pub(crate) fn load(
    path: &Path,
    reader: impl BufRead,
    options: &ShareGptOptions,
    keep: Option<usize>,
) -> Result<Vec<Sample>, DatasetError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    stream_array(
        &mut de,
        keep,
        options.max_samples,
        |index, value: serde_json::Value| to_sample(path, options, index, value),
    )
    .map_err(|e| e.into_dataset_error(path, "not a ShareGPT JSON array"))
}

fn to_sample(
    path: &Path,
    options: &ShareGptOptions,
    index: usize,
    value: serde_json::Value,
) -> Result<Option<Sample>, DatasetError> {
    let record: Record = serde_json::from_value(value)
        .map_err(|e| record_error(path, index, format!("field `conversations`: {e}")))?;
    let Some(turns) = record.conversations.filter(|c| c.len() >= 2) else {
        return Ok(None);
    };
    let Some(h) = turns.iter().position(|t| is_human(&t.from)) else {
        return Ok(None);
    };
    let Some(g) = turns[h + 1..].iter().position(|t| is_model(&t.from)) else {
        return Ok(None);
    };
    let (prompt, completion) = (&turns[h].value, &turns[h + 1 + g].value);
    let mut sample = Sample {
        input_tokens: Vec::new(),
        input_text: Some(prompt.clone()),
        reference: Some(completion.clone()),
        max_output_tokens: options.output_len,
    };
    if let Some(tok) = &options.tokenizer {
        let tokenize_error =
            |e: crate::tokenizer::TokenizerError| record_error(path, index, e.to_string());
        let ids = tok.encode(prompt, true).map_err(tokenize_error)?;
        let output_len = match options.output_len {
            Some(n) => n as usize,
            None => tok.encode(completion, true).map_err(tokenize_error)?.len(),
        };
        let too_short = ids.len() < options.min_len
            || (options.output_len.is_none() && output_len < options.min_len);
        let too_long =
            ids.len() > options.max_prompt_len || ids.len() + output_len > options.max_total_len;
        if too_short || too_long {
            return Ok(None);
        }
        sample.input_tokens = ids;
        sample.max_output_tokens = Some(u32::try_from(output_len).unwrap_or(u32::MAX));
    }
    Ok(Some(sample))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::HfTokenizer;
    use std::io::Write;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn load(path: &Path, options: &ShareGptOptions) -> Result<Vec<Sample>, DatasetError> {
        let reader = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        super::load(path, reader, options, None)
    }

    const DATA: &str = r#"[
      {"id": "a", "conversations": [{"from": "human", "value": "hello world hello world"},
                                     {"from": "gpt", "value": "world world world world"}]},
      {"id": "short", "conversations": [{"from": "human", "value": "hello"}]},
      {"id": "none"},
      {"id": "sys", "conversations": [{"from": "system", "value": "x"}, {"from": "human", "value": "hello hello hello hello hello"},
                                       {"from": "gpt", "value": "world"}]},
      {"id": "gptonly", "conversations": [{"from": "gpt", "value": "x"}, {"from": "gpt", "value": "y"}]}
    ]"#;

    #[test]
    fn text_only_without_tokenizer() {
        let f = file(DATA);
        let s = load(f.path(), &ShareGptOptions::new()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].input_text.as_deref(), Some("hello world hello world"));
        assert_eq!(s[0].reference.as_deref(), Some("world world world world"));
        assert!(s[0].input_tokens.is_empty());
        assert_eq!(s[1].reference.as_deref(), Some("world"));
        let s = load(
            f.path(),
            &ShareGptOptions::new()
                .with_output_len(9)
                .with_max_samples(1),
        )
        .unwrap();
        assert_eq!((s.len(), s[0].max_output_tokens), (1, Some(9)));
    }

    #[test]
    fn vllm_length_filters_with_tokenizer() {
        let tok: Arc<dyn Tokenizer> =
            Arc::new(HfTokenizer::from_bytes(crate::tokenizer::tests::TINY.as_bytes()).unwrap());
        let f = file(DATA);
        // Record "sys": the completion is 2 tokens with BOS (< 4): dropped.
        let s = load(
            f.path(),
            &ShareGptOptions::new().with_tokenizer(tok.clone()),
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].input_tokens, vec![0, 3, 4, 3, 4]);
        assert_eq!(s[0].max_output_tokens, Some(5));
        // A fixed output length skips the output minimum.
        let opts = ShareGptOptions::new()
            .with_tokenizer(tok.clone())
            .with_output_len(2);
        assert_eq!(load(f.path(), &opts).unwrap().len(), 2);
        // Prompt + output over the total limit.
        let mut opts = ShareGptOptions::new().with_tokenizer(tok);
        opts.max_total_len = 9;
        assert_eq!(load(f.path(), &opts).unwrap().len(), 0);
    }

    #[test]
    fn malformed_records_are_named() {
        let f = file(r#"[{"conversations": [{"from": "human"}, {"from": "gpt", "value": "x"}]}]"#);
        let e = load(f.path(), &ShareGptOptions::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 0: field `conversations`"), "{e}");
        let f = file("{}");
        assert!(
            load(f.path(), &ShareGptOptions::new())
                .unwrap_err()
                .to_string()
                .contains("not a ShareGPT")
        );
    }
}
