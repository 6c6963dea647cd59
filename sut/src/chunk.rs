//! Parsing OpenAI-compatible response bodies and stream chunks into reused
//! buffers.
//!
//! A chunk (or a whole non-streamed response) is parsed with serde seeds into
//! [`ParsedChunk`]: token ids are pushed straight into a `Vec<u32>` and text
//! is appended to a `String`, so steady-state streaming allocates nothing per
//! chunk. [`crate::tracker::Tracker`] then applies chunks to the samples of
//! one request.
//!
//! Both vLLM's and llama.cpp's shapes are accepted: `text` (completions),
//! `delta` (chat chunks) and `message` (chat responses); `token_ids` and
//! `prompt_token_ids` (vLLM's `return_token_ids`); usage in a separate
//! `choices: []` chunk (vLLM), in the final chunk (llama.cpp) or in every
//! chunk (vLLM's `continuous_usage_stats`); error objects as
//! `{"error": {...}}`, `{"error": "..."}` or `{"object": "error", ...}`.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

mod fast;

/// Token counts a server reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    #[serde(default)]
    pub completion_tokens: Option<u32>,
}

/// One choice of a chunk, in reused buffers.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ChoiceDelta {
    pub index: u32,
    /// `text`, `delta.content` or `message.content`.
    pub text: String,
    /// Reasoning text or tool calls arrived: generated content that is not
    /// part of `text`.
    pub other_content: bool,
    pub ids: Vec<u32>,
    /// `token_ids` was present and not null.
    pub has_ids: bool,
    pub finished: bool,
    /// Length of `prompt_token_ids`, when present.
    pub prompt_ids: Option<u32>,
}

impl ChoiceDelta {
    fn reset(&mut self) {
        self.index = 0;
        self.text.clear();
        self.other_content = false;
        self.ids.clear();
        self.has_ids = false;
        self.finished = false;
        self.prompt_ids = None;
    }
}

/// One parsed chunk or response. Reuse it: parsing resets it.
#[derive(Debug, Default)]
pub(crate) struct ParsedChunk {
    slots: Vec<ChoiceDelta>,
    used: usize,
    pub usage: Option<Usage>,
    /// Set when the chunk is an error object: its message.
    pub error: Option<String>,
    /// The last chunk the fast path parsed, for [`fast::replay`].
    shape: fast::Shape,
}

impl ParsedChunk {
    /// The choices of the last parsed chunk.
    pub fn choices(&self) -> &[ChoiceDelta] {
        &self.slots[..self.used]
    }

    fn reset(&mut self) {
        self.used = 0;
        self.usage = None;
        self.error = None;
    }

    fn next_slot(&mut self) -> &mut ChoiceDelta {
        if self.used == self.slots.len() {
            self.slots.push(ChoiceDelta::default());
        }
        let slot = &mut self.slots[self.used];
        slot.reset();
        slot
    }

    /// Parses one JSON object (a stream chunk's data or a whole response):
    /// vLLM's compact completion chunk on a fast path that reads only what
    /// the tracker needs, anything else (and anything the fast path is not
    /// sure of) with serde.
    pub fn parse(&mut self, json: &[u8]) -> Result<(), serde_json::Error> {
        self.reset();
        if fast::replay(self, json).is_some() {
            return Ok(());
        }
        self.reset();
        if fast::parse(self, json).is_some() {
            return Ok(());
        }
        self.parse_serde(json)
    }

    /// [`ParsedChunk::parse`] without the fast path.
    fn parse_serde(&mut self, json: &[u8]) -> Result<(), serde_json::Error> {
        self.reset();
        let mut de = serde_json::Deserializer::from_slice(json);
        ChunkSeed(self).deserialize(&mut de)?;
        de.end()
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum TopField {
    Choices,
    Usage,
    Error,
    Object,
    Message,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum ChoiceField {
    Index,
    Text,
    Delta,
    Message,
    TokenIds,
    PromptTokenIds,
    FinishReason,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum DeltaField {
    Content,
    ReasoningContent,
    Reasoning,
    ToolCalls,
    #[serde(other)]
    Other,
}

/// The shapes servers use for an error: a string or an object with a message.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorValue {
    Text(String),
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    },
    Other(IgnoredAny),
}

impl ErrorValue {
    fn message(self) -> String {
        match self {
            ErrorValue::Text(text) => text,
            ErrorValue::Object {
                message: Some(message),
                ..
            } => message,
            ErrorValue::Object {
                message: None,
                kind: Some(kind),
            } => kind,
            ErrorValue::Object { .. } | ErrorValue::Other(_) => {
                "error object without a message".to_string()
            }
        }
    }
}

struct ChunkSeed<'a>(&'a mut ParsedChunk);

impl<'de> DeserializeSeed<'de> for ChunkSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChunkSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut object_is_error = false;
        let mut top_message: Option<String> = None;
        while let Some(key) = map.next_key::<TopField>()? {
            match key {
                TopField::Choices => map.next_value_seed(ChoicesSeed(self.0))?,
                TopField::Usage => self.0.usage = map.next_value::<Option<Usage>>()?,
                TopField::Error => {
                    if let Some(error) = map.next_value::<Option<ErrorValue>>()? {
                        self.0.error = Some(error.message());
                    }
                }
                TopField::Object => object_is_error = map.next_value_seed(IsErrorSeed)?,
                TopField::Message => top_message = map.next_value::<Option<String>>()?,
                TopField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if object_is_error && self.0.error.is_none() {
            self.0.error =
                Some(top_message.unwrap_or_else(|| "error object without a message".into()));
        }
        Ok(())
    }
}

/// `"object": "error"` (vLLM's older top-level error shape).
struct IsErrorSeed;

impl<'de> DeserializeSeed<'de> for IsErrorSeed {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IsErrorSeed {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "error")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
}

struct ChoicesSeed<'a>(&'a mut ParsedChunk);

impl<'de> DeserializeSeed<'de> for ChoicesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ChoicesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of choices")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let slot = self.0.next_slot();
            if seq.next_element_seed(ChoiceSeed(slot))?.is_none() {
                return Ok(());
            }
            self.0.used += 1;
        }
    }
}

struct ChoiceSeed<'a>(&'a mut ChoiceDelta);

impl<'de> DeserializeSeed<'de> for ChoiceSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChoiceSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a choice object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let c = self.0;
        while let Some(key) = map.next_key::<ChoiceField>()? {
            match key {
                ChoiceField::Index => c.index = map.next_value()?,
                ChoiceField::Text => map.next_value_seed(TextSeed(&mut c.text))?,
                ChoiceField::Delta | ChoiceField::Message => {
                    map.next_value_seed(DeltaSeed(c))?;
                }
                ChoiceField::TokenIds => {
                    c.has_ids |= map.next_value_seed(IdsSeed(Some(&mut c.ids)))?.is_some();
                }
                ChoiceField::PromptTokenIds => {
                    c.prompt_ids = map.next_value_seed(IdsSeed(None))?;
                }
                ChoiceField::FinishReason => {
                    c.finished = map.next_value::<Option<IgnoredAny>>()?.is_some();
                }
                ChoiceField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `delta` (chat chunks) or `message` (chat responses).
struct DeltaSeed<'a>(&'a mut ChoiceDelta);

impl<'de> DeserializeSeed<'de> for DeltaSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for DeltaSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a delta or message object")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let c = self.0;
        while let Some(key) = map.next_key::<DeltaField>()? {
            match key {
                DeltaField::Content => map.next_value_seed(TextSeed(&mut c.text))?,
                DeltaField::ReasoningContent | DeltaField::Reasoning | DeltaField::ToolCalls => {
                    c.other_content |= map.next_value_seed(NonEmptySeed)?;
                }
                DeltaField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Appends a string (or nothing for null) to a buffer.
struct TextSeed<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for TextSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// A token id array: pushed into the buffer (when given) and counted.
/// `None` for null.
struct IdsSeed<'a>(Option<&'a mut Vec<u32>>);

impl<'de> DeserializeSeed<'de> for IdsSeed<'_> {
    type Value = Option<u32>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for IdsSeed<'_> {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of token ids or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Option<u32>, A::Error> {
        let mut n: u32 = 0;
        while let Some(id) = seq.next_element::<u32>()? {
            if let Some(buf) = self.0.as_deref_mut() {
                buf.push(id);
            }
            n = n.saturating_add(1);
        }
        Ok(Some(n))
    }
}

/// True for a non-empty string or array; false for null or empty.
struct NonEmptySeed;

impl<'de> DeserializeSeed<'de> for NonEmptySeed {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NonEmptySeed {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, array or null")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(!v.is_empty())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut any = false;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            any = true;
        }
        Ok(any)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut any = false;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
            any = true;
        }
        Ok(any)
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shapes() {
        let mut chunk = ParsedChunk::default();
        for (json, want) in [
            (
                r#"{"error":{"message":"boom","type":"server_error","code":500}}"#,
                "boom",
            ),
            (r#"{"error":"plain"}"#, "plain"),
            (
                r#"{"object":"error","message":"old vllm","type":"BadRequestError","code":400}"#,
                "old vllm",
            ),
            (r#"{"error":{"type":"only_type"}}"#, "only_type"),
        ] {
            chunk.parse(json.as_bytes()).unwrap();
            assert_eq!(chunk.error.as_deref(), Some(want), "{json}");
        }
        chunk
            .parse(br#"{"object":"text_completion","choices":[]}"#)
            .unwrap();
        assert!(chunk.error.is_none());
        assert!(chunk.parse(b"{\"choices\": [").is_err());
        assert!(chunk.parse(b"[1,2]").is_err());
        assert!(
            chunk
                .parse(br#"{"choices":[{"index":0,"token_ids":["a"]}]}"#)
                .is_err()
        );
        assert!(chunk.parse(b"{} trailing").is_err());
    }

    /// A parsed chunk as `(choices, usage, error)`.
    type Snapshot = (Vec<ChoiceDelta>, Option<Usage>, Option<String>);

    /// What the fast path parses; `None` when it hands the chunk to serde.
    fn fast(json: &[u8]) -> Option<Snapshot> {
        let mut chunk = ParsedChunk::default();
        chunk.reset();
        fast::parse(&mut chunk, json)?;
        Some(snapshot(chunk))
    }

    fn serde(json: &[u8]) -> Result<Snapshot, String> {
        let mut chunk = ParsedChunk::default();
        chunk.parse_serde(json).map_err(|e| e.to_string())?;
        Ok(snapshot(chunk))
    }

    fn snapshot(mut chunk: ParsedChunk) -> Snapshot {
        let used = chunk.used;
        chunk.slots.truncate(used);
        (chunk.slots, chunk.usage, chunk.error)
    }

    const FAST: &[&str] = &[
        r#"{"id":"cmpl-82c5","object":"text_completion","created":1796461207,"model":"sim-tiny","choices":[{"index":0,"text":" daru","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":[1,2,3],"token_ids":[5777]}]}"#,
        r#"{"id":"cmpl-82c5","object":"text_completion","created":1796461207,"model":"sim-tiny","choices":[{"index":0,"text":" bezico","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":[72638,0,4294967295]}]}"#,
        r#"{"id":"x","choices":[{"index":1,"text":"é","finish_reason":"stop","stop_reason":128009,"token_ids":[]},{"index":0,"text":null,"token_ids":null}],"usage":null}"#,
        r#"{"choices":[{"index":0,"stop_reason":"</s>","prompt_token_ids":[],"text":"a","text":"b","token_ids":[1],"token_ids":[2]}]}"#,
        r#"{"id":"cmpl-1","object":"text_completion","created":0,"model":"m","choices":[]}"#,
        r#"{"choices":[{}]}"#,
        "{}",
        r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":120,"total_tokens":136,"completion_tokens":16}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"total_tokens":6,"completion_tokens":3}}"#,
        r#"{"choices":[],"usage":{}}"#,
        r#"{"usage":{"prompt_tokens":null,"completion_tokens":0,"total_tokens":null}}"#,
        r#"{"usage":{"prompt_tokens":3},"usage":null}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[0,4294967295,10,7],"token_ids":[1]}]}"#,
        r#"{"choices":[{"index":0,"finish_reason":"stop","finish_reason":null}]}"#,
    ];

    const SERDE: &[&str] = &[
        // Escapes, whitespace, shapes and values the fast path leaves alone.
        r#"{"choices":[{"index":0,"text":"a\nb","token_ids":[1]}]}"#,
        r#"{"choices":[{"index":0,"text":"\u00e9","token_ids":[1]}]}"#,
        r#"{"id":"a\"b","choices":[]}"#,
        r#"{ "choices": [{"index": 0, "text": "a"}] }"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"prompt_tokens_details":null}}"#,
        r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
        r#"{"usage":{"total_tokens":1,"total_tokens":2}}"#,
        r#"{"usage":{"completion_tokens":4294967296}}"#,
        r#"{"usage":{"completion_tokens":1.5}}"#,
        r#"{"usage":{"total_tokens":-1}}"#,
        r#"{"usage":{"prompt_tokens":"3"}}"#,
        r#"{"usage":{"prompt_tokens":3,}}"#,
        r#"{"usage":[]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[4294967296]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[9999999999]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[12345678901]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[01]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[1,]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[,1]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[1 ]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[-1]}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[1}]}"#,
        r#"{"choices":[{"index":0,"prompt_token_ids":[1"#,
        r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"text":"a","finish_reason":1}]}"#,
        r#"{"error":{"message":"boom","type":"server_error","code":500}}"#,
        r#"{"object":"error","message":"old vllm"}"#,
        r#"{"choices":[{"index":0,"text":"a","token_ids":[1]}],"system_fingerprint":"x"}"#,
        r#"{"created":1.5,"choices":[]}"#,
        r#"{"created":-1,"choices":[]}"#,
        r#"{"choices":[{"index":0,"token_ids":[01]}]}"#,
        r#"{"choices":[{"index":0,"token_ids":[1.0]}]}"#,
        r#"{"choices":[{"index":0,"token_ids":[4294967296]}]}"#,
        r#"{"choices":[{"index":4294967296}]}"#,
        r#"{"choices":[{"index":0,"token_ids":["a"]}]}"#,
        r#"{"choices":[{"index":0,"logprobs":{"tokens":[]}}]}"#,
        "{\"choices\":[{\"text\":\"a\tb\"}]}",
        "{} ",
        "{}x",
        "[1,2]",
        "",
        r#"{"choices":[{"index":0,"text":"a"}],}"#,
        r#"{"choices":[{"index":0,"text":"a"},]}"#,
        r#"{"usage":nul}"#,
    ];

    #[test]
    fn the_fast_path_parses_vllm_chunks_exactly_as_serde_does() {
        for json in FAST {
            let fast = fast(json.as_bytes()).unwrap_or_else(|| panic!("not fast: {json}"));
            assert_eq!(Ok(&fast), serde(json.as_bytes()).as_ref(), "{json}");
            let mut chunk = ParsedChunk::default();
            chunk.parse(json.as_bytes()).unwrap();
            assert_eq!(snapshot(chunk), fast, "{json}");
        }
        let (choices, usage, error) = fast(FAST[1].as_bytes()).unwrap();
        assert_eq!((usage, error), (None, None));
        assert_eq!(choices.len(), 1);
        assert_eq!(choices[0].text, " bezico");
        assert_eq!(choices[0].ids, [72638, 0, 4294967295]);
        assert!(choices[0].has_ids && choices[0].finished);
        assert_eq!(choices[0].prompt_ids, None);
        assert_eq!(fast(FAST[0].as_bytes()).unwrap().0[0].prompt_ids, Some(3));
    }

    #[test]
    fn everything_else_goes_to_serde_with_the_same_outcome() {
        for json in SERDE {
            assert!(fast(json.as_bytes()).is_none(), "fast path took {json}");
            let mut chunk = ParsedChunk::default();
            let parsed = chunk.parse(json.as_bytes()).map(|()| snapshot(chunk));
            assert_eq!(
                parsed.map_err(|e| e.to_string()),
                serde(json.as_bytes()),
                "{json}"
            );
        }
        // Invalid UTF-8 in a string.
        assert!(fast(b"{\"choices\":[{\"text\":\"\xff\"}]}").is_none());
        // Keys are compared, not checked: an invalid one is unknown and
        // goes to serde, which refuses it.
        for json in [
            &b"{\"\xff\":1,\"choices\":[]}"[..],
            b"{\"choices\":[{\"index\":0,\"te\x01xt\":\"a\"}]}",
        ] {
            assert!(fast(json).is_none());
            assert!(ParsedChunk::default().parse(json).is_err());
        }
    }

    #[test]
    fn a_cut_chunk_is_an_error_on_both_paths() {
        for json in FAST.iter().chain(SERDE) {
            let bytes = json.as_bytes();
            for cut in 0..bytes.len() {
                let part = &bytes[..cut];
                let mut chunk = ParsedChunk::default();
                let fast_took = fast(part).is_some();
                let outcome = chunk.parse(part).is_ok();
                assert_eq!(
                    outcome,
                    serde(part).is_ok(),
                    "{:?}",
                    String::from_utf8_lossy(part)
                );
                assert!(!fast_took || outcome, "{:?}", String::from_utf8_lossy(part));
            }
        }
    }

    /// The three pieces of the simulator's (and vLLM's) middle chunks.
    const BEFORE: &str = r#"{"id":"cmpl-9","object":"text_completion","created":5,"model":"m","choices":[{"index":0,"text":""#;
    const BETWEEN: &str = r#"","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":["#;
    const AFTER: &str = "]}]}";

    fn middle(text: &[u8], ids: &[u8], after: &[u8]) -> Vec<u8> {
        [BEFORE.as_bytes(), text, BETWEEN.as_bytes(), ids, after].concat()
    }

    /// A chunk that has parsed `primers` in order, as one stream's reader.
    fn primed(primers: &[&[u8]]) -> ParsedChunk {
        let mut chunk = ParsedChunk::default();
        for p in primers {
            chunk.parse(p).unwrap();
        }
        chunk
    }

    /// Parses `json` after `primers` as a stream's reader does, checks the
    /// outcome is serde's for `json` alone, and says whether the replay
    /// path took it.
    fn parse_after(primers: &[&[u8]], json: &[u8]) -> bool {
        let mut chunk = primed(primers);
        let outcome = chunk.parse(json).map(|()| snapshot(chunk));
        assert_eq!(
            outcome.map_err(|e| e.to_string()),
            serde(json),
            "{:?} after {:?}",
            String::from_utf8_lossy(json),
            primers
                .iter()
                .map(|p| String::from_utf8_lossy(p))
                .collect::<Vec<_>>()
        );
        let mut chunk = primed(primers);
        chunk.reset();
        fast::replay(&mut chunk, json).is_some()
    }

    #[test]
    fn a_streams_middle_chunks_are_replayed_and_parse_as_serde_does() {
        let first = r#"{"id":"cmpl-9","object":"text_completion","created":5,"model":"m","choices":[{"index":0,"text":" a","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":[1,2,3],"token_ids":[7]}]}"#;
        let last = format!(
            r#"{BEFORE} z","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":[9{AFTER}"#
        );
        let usage = r#"{"id":"cmpl-9","object":"text_completion","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"total_tokens":8,"completion_tokens":5}}"#;
        let stream: Vec<Vec<u8>> = vec![
            first.as_bytes().to_vec(),
            middle(b" b", b"8", AFTER.as_bytes()),
            middle(b" c", b"4294967295", AFTER.as_bytes()),
            middle("é".as_bytes(), b"", AFTER.as_bytes()),
            middle(b"", b"0,12", AFTER.as_bytes()),
            last.into_bytes(),
            usage.as_bytes().to_vec(),
        ];
        let mut replayed = Vec::new();
        for (n, json) in stream.iter().enumerate() {
            let before: Vec<&[u8]> = stream[..n].iter().map(Vec::as_slice).collect();
            replayed.push(parse_after(&before, json));
        }
        // The first middle chunk differs from the first chunk (prompt ids):
        // it is parsed whole and leaves the shape the next three replay.
        assert_eq!(replayed, [false, false, true, true, true, false, false]);
    }

    #[test]
    fn a_chunk_that_only_looks_like_the_last_one_parses_as_serde_does() {
        let primer = middle(b" b", b"8", AFTER.as_bytes());
        let replays: &[(&[u8], &[u8], &[u8])] = &[
            (b"x", b"1", AFTER.as_bytes()),
            (b"", b"", AFTER.as_bytes()),
            ("é ü".as_bytes(), b"0,4294967295,3", AFTER.as_bytes()),
        ];
        for &(text, ids, after) in replays {
            assert!(parse_after(&[&primer], &middle(text, ids, after)));
        }
        let others: &[(&[u8], &[u8], &[u8])] = &[
            (br"a\nb", b"1", AFTER.as_bytes()),
            (b"a\"b", b"1", AFTER.as_bytes()),
            (b"a\tb", b"1", AFTER.as_bytes()),
            (b"\xff", b"1", AFTER.as_bytes()),
            (b"x", b"01", AFTER.as_bytes()),
            (b"x", b"4294967296", AFTER.as_bytes()),
            (b"x", b"1,", AFTER.as_bytes()),
            (b"x", b",1", AFTER.as_bytes()),
            (b"x", b"1 ", AFTER.as_bytes()),
            (b"x", b"a", AFTER.as_bytes()),
            (b"x", b"-1", AFTER.as_bytes()),
            (b"x", b"1.0", AFTER.as_bytes()),
            (b"x", b"1", b"]}]}x"),
            (b"x", b"1", b"]}]"),
            (b"x", b"1", br#"]},{"index":1,"text":"y"}]}"#),
            (b"x", b"1", br#"]}],"usage":null}"#),
            (b"x", b"1]", AFTER.as_bytes()),
        ];
        for &(text, ids, after) in others {
            assert!(!parse_after(&[&primer], &middle(text, ids, after)));
        }
        // A different index or finish reason is another shape.
        let index1 = String::from_utf8(middle(b"x", b"1", AFTER.as_bytes()))
            .unwrap()
            .replace(r#""index":0"#, r#""index":1"#);
        assert!(!parse_after(&[&primer], index1.as_bytes()));
    }

    #[test]
    fn pieces_that_add_text_or_ids_of_their_own_are_never_a_shape() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"choices":[{"index":0,"text":"a","text":"b","token_ids":[1]}]}"#,
                r#"{"choices":[{"index":0,"text":"a","text":"c","token_ids":[2]}]}"#,
            ),
            (
                r#"{"choices":[{"index":0,"text":"b","token_ids":[1],"token_ids":[2]}]}"#,
                r#"{"choices":[{"index":0,"text":"c","token_ids":[1],"token_ids":[3]}]}"#,
            ),
            (
                r#"{"choices":[{"index":0,"token_ids":[1],"text":"b"}]}"#,
                r#"{"choices":[{"index":0,"token_ids":[2],"text":"c"}]}"#,
            ),
            (
                r#"{"choices":[{"index":0,"text":"b","token_ids":[1]},{"index":1,"text":"d","token_ids":[1]}]}"#,
                r#"{"choices":[{"index":0,"text":"c","token_ids":[1]},{"index":1,"text":"d","token_ids":[1]}]}"#,
            ),
            (
                r#"{"choices":[{"index":0,"text":"b","token_ids":[1],"text":"e"}]}"#,
                r#"{"choices":[{"index":0,"text":"c","token_ids":[1],"text":"e"}]}"#,
            ),
        ];
        for (primer, next) in cases {
            assert!(
                !parse_after(&[primer.as_bytes()], next.as_bytes()),
                "{next}"
            );
        }
        // Pieces whose own text and ids are empty, or whose other fields
        // are set, are shapes: replaying them keeps those fields.
        let kept: &[(&str, &str)] = &[
            (
                r#"{"choices":[{"index":2,"text":"","text":"b","token_ids":[],"token_ids":[1]}]}"#,
                r#"{"choices":[{"index":2,"text":"","text":"c","token_ids":[],"token_ids":[5,6]}]}"#,
            ),
            (
                r#"{"choices":[{"index":0,"text":"b","finish_reason":"stop","prompt_token_ids":[1,2],"token_ids":[1]}],"usage":{"prompt_tokens":2}}"#,
                r#"{"choices":[{"index":0,"text":"c","finish_reason":"stop","prompt_token_ids":[1,2],"token_ids":[4]}],"usage":{"prompt_tokens":2}}"#,
            ),
        ];
        for (primer, next) in kept {
            assert!(parse_after(&[primer.as_bytes()], next.as_bytes()), "{next}");
        }
    }

    #[test]
    fn mutated_middle_chunks_parse_as_serde_does_whichever_path_takes_them() {
        let primer = middle(b" b", b"8", AFTER.as_bytes());
        let base = middle(b" cat", b"4021", AFTER.as_bytes());
        let text_at = BEFORE.len();
        let ids_at = text_at + b" cat".len() + BETWEEN.len();
        const BYTES: &[u8] = b"\"\\,[]{}:0123456789anul \xff\x01";
        // xorshift64: deterministic, and enough to spread the edits.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut replayed = 0;
        for _ in 0..3000 {
            let mut json = base.clone();
            for _ in 0..1 + next(3) {
                // Most edits fall in the text and ids, where replay looks.
                let at = match next(4) {
                    0 => next(json.len() + 1),
                    1 => text_at + next(5),
                    _ => ids_at + next(5),
                }
                .min(json.len());
                let byte = BYTES[next(BYTES.len())];
                match next(3) {
                    0 if at < json.len() => json[at] = byte,
                    1 if at < json.len() => {
                        json.remove(at);
                    }
                    _ => json.insert(at, byte),
                }
            }
            if parse_after(&[&primer], &json) {
                replayed += 1;
            }
        }
        // The test must exercise the replay path, not only its refusal.
        assert!(replayed > 100, "replayed {replayed}");
    }
}
