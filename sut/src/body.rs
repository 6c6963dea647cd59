//! Request bodies: the fields every request shares are serialized once; per
//! request only the prompt(s) and `max_tokens` are written.

use dataset::Sample;
use serde_json::{Map, Value};

use crate::SutError;
use crate::config::{EndpointKind, RequestOptions};

/// Builds request bodies for one endpoint kind and one set of options.
#[derive(Debug, Clone)]
pub(crate) struct RequestTemplate {
    kind: EndpointKind,
    /// The shared fields as `"k":v,"k":v` (an object without its braces).
    fixed: Vec<u8>,
    /// Written per request unless the extra body fixes `max_tokens`.
    default_max_tokens: Option<u32>,
    per_request_max_tokens: bool,
    stream: bool,
}

impl RequestTemplate {
    /// Checks the options and serializes the shared fields.
    pub fn new(
        kind: EndpointKind,
        options: &RequestOptions,
        model: &str,
    ) -> Result<RequestTemplate, SutError> {
        for key in ["prompt", "messages"] {
            if options.extra_body.contains_key(key) {
                return Err(SutError::Config(format!(
                    "extra body field {key:?} would replace the dataset's prompts"
                )));
            }
        }
        if let Some(n) = options.extra_body.get("n")
            && n.as_u64() != Some(1)
        {
            return Err(SutError::Config(format!(
                "extra body field \"n\" = {n}: one completion per prompt is supported"
            )));
        }
        let mut fixed = Map::new();
        fixed.insert("model".into(), Value::from(model));
        if let Some(v) = options.min_tokens {
            fixed.insert("min_tokens".into(), v.into());
        }
        if let Some(v) = options.ignore_eos {
            fixed.insert("ignore_eos".into(), v.into());
        }
        for (key, value) in [
            ("temperature", options.temperature),
            ("top_p", options.top_p),
        ] {
            if let Some(v) = value {
                let number = serde_json::Number::from_f64(v).ok_or_else(|| {
                    SutError::Config(format!("{key} = {v} is not a finite number"))
                })?;
                fixed.insert(key.into(), Value::Number(number));
            }
        }
        if let Some(v) = options.top_k {
            fixed.insert("top_k".into(), v.into());
        }
        if let Some(v) = options.seed {
            fixed.insert("seed".into(), v.into());
        }
        if !options.stop.is_empty() {
            fixed.insert("stop".into(), options.stop.clone().into());
        }
        if options.return_token_ids {
            fixed.insert("return_token_ids".into(), true.into());
        }
        fixed.insert("stream".into(), options.stream.into());
        if options.stream && options.include_usage {
            let mut stream_options = Map::new();
            stream_options.insert("include_usage".into(), true.into());
            fixed.insert("stream_options".into(), stream_options.into());
        }
        for (key, value) in &options.extra_body {
            fixed.insert(key.clone(), value.clone());
        }
        let stream = match fixed.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(SutError::Config(format!(
                    "extra body field \"stream\" = {other} is not a boolean"
                )));
            }
        };
        let per_request_max_tokens = !fixed.contains_key("max_tokens");
        let object = serde_json::to_vec(&Value::Object(fixed))
            .map_err(|e| SutError::Config(format!("cannot serialize the request body: {e}")))?;
        // `{...}` -> `...`
        let inner = object
            .get(1..object.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        Ok(RequestTemplate {
            kind,
            fixed: inner,
            default_max_tokens: options.max_tokens,
            per_request_max_tokens,
            stream,
        })
    }

    /// Whether requests stream (after the extra body had its say).
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The `max_tokens` a sample is sent with (`None`: left out).
    pub fn max_tokens_for(&self, sample: &Sample) -> Option<u32> {
        if self.per_request_max_tokens {
            sample.max_output_tokens.or(self.default_max_tokens)
        } else {
            None
        }
    }

    /// Writes the body for these samples (one prompt each, in order) into
    /// `out`. All samples of one request must share `max_tokens_for`; the
    /// first sample's value is used.
    pub fn write_body(&self, samples: &[&Sample], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        out.push(b'{');
        match self.kind {
            EndpointKind::Completions => {
                out.extend_from_slice(b"\"prompt\":");
                if let [one] = samples {
                    write_ids(out, &one.input_tokens);
                } else {
                    out.push(b'[');
                    for (i, s) in samples.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_ids(out, &s.input_tokens);
                    }
                    out.push(b']');
                }
            }
            EndpointKind::CompletionsText => {
                out.extend_from_slice(b"\"prompt\":");
                if let [one] = samples {
                    write_str(out, text_of(one)?);
                } else {
                    out.push(b'[');
                    for (i, s) in samples.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_str(out, text_of(s)?);
                    }
                    out.push(b']');
                }
            }
            EndpointKind::ChatCompletions => {
                let [one] = samples else {
                    return Err(format!(
                        "chat requests carry one prompt, not {}",
                        samples.len()
                    ));
                };
                out.extend_from_slice(b"\"messages\":[{\"role\":\"user\",\"content\":");
                write_str(out, text_of(one)?);
                out.extend_from_slice(b"}]");
            }
        }
        if let Some(first) = samples.first()
            && let Some(max_tokens) = self.max_tokens_for(first)
        {
            out.extend_from_slice(b",\"max_tokens\":");
            out.extend_from_slice(itoa::Buffer::new().format(max_tokens).as_bytes());
        }
        if !self.fixed.is_empty() {
            out.push(b',');
            out.extend_from_slice(&self.fixed);
        }
        out.push(b'}');
        Ok(())
    }
}

fn text_of(sample: &Sample) -> Result<&str, String> {
    sample
        .input_text
        .as_deref()
        .ok_or_else(|| "the sample has no prompt text".to_string())
}

fn write_ids(out: &mut Vec<u8>, ids: &[u32]) {
    let mut buf = itoa::Buffer::new();
    out.push(b'[');
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(buf.format(id).as_bytes());
    }
    out.push(b']');
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ids: &[u32], text: Option<&str>, max: Option<u32>) -> Sample {
        Sample {
            input_tokens: ids.to_vec(),
            input_text: text.map(str::to_string),
            reference: None,
            max_output_tokens: max,
        }
    }

    fn body(t: &RequestTemplate, samples: &[&Sample]) -> Value {
        let mut out = Vec::new();
        t.write_body(samples, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn token_id_prompt_with_every_option() {
        let options = RequestOptions {
            max_tokens: Some(128),
            min_tokens: Some(1),
            ignore_eos: Some(true),
            temperature: Some(0.0),
            top_p: Some(1.0),
            top_k: Some(1),
            seed: Some(42),
            stop: vec!["</s>".into()],
            ..RequestOptions::default()
        };
        let t = RequestTemplate::new(EndpointKind::Completions, &options, "m").unwrap();
        let got = body(&t, &[&sample(&[1, 2, 3], None, None)]);
        let want = serde_json::json!({
            "model": "m", "prompt": [1, 2, 3], "max_tokens": 128, "min_tokens": 1,
            "ignore_eos": true, "temperature": 0.0, "top_p": 1.0, "top_k": 1, "seed": 42,
            "stop": ["</s>"], "return_token_ids": true, "stream": true,
            "stream_options": {"include_usage": true}
        });
        assert_eq!(got, want);
        assert!(t.stream());
    }

    #[test]
    fn per_sample_max_tokens_and_multi_prompt() {
        let options = RequestOptions {
            max_tokens: Some(10),
            stream: false,
            return_token_ids: false,
            ..RequestOptions::default()
        };
        let t = RequestTemplate::new(EndpointKind::Completions, &options, "m").unwrap();
        let a = sample(&[1], None, Some(7));
        let b = sample(&[2, 3], None, Some(7));
        let got = body(&t, &[&a, &b]);
        assert_eq!(
            got,
            serde_json::json!({"model": "m", "prompt": [[1], [2, 3]], "max_tokens": 7, "stream": false})
        );
        assert!(!t.stream());
    }

    #[test]
    fn text_and_chat_prompts_are_escaped() {
        let options = RequestOptions {
            stream: false,
            return_token_ids: false,
            ..RequestOptions::default()
        };
        let s = sample(&[], Some("say \"hi\"\n"), None);
        let t = RequestTemplate::new(EndpointKind::CompletionsText, &options, "m").unwrap();
        assert_eq!(body(&t, &[&s])["prompt"], "say \"hi\"\n");
        let t = RequestTemplate::new(EndpointKind::ChatCompletions, &options, "m").unwrap();
        assert_eq!(
            body(&t, &[&s])["messages"],
            serde_json::json!([{"role": "user", "content": "say \"hi\"\n"}])
        );
        let mut out = Vec::new();
        assert!(t.write_body(&[&s, &s], &mut out).is_err());
        assert!(
            t.write_body(&[&sample(&[1], None, None)], &mut out)
                .unwrap_err()
                .contains("no prompt text")
        );
    }

    #[test]
    fn extra_body_overrides_and_is_checked() {
        let mut extra = Map::new();
        extra.insert("max_tokens".into(), 5.into());
        extra.insert("stream".into(), false.into());
        extra.insert("repetition_penalty".into(), 1.0.into());
        let options = RequestOptions {
            max_tokens: Some(100),
            extra_body: extra,
            ..RequestOptions::default()
        };
        let t = RequestTemplate::new(EndpointKind::Completions, &options, "m").unwrap();
        let got = body(&t, &[&sample(&[9], None, Some(50))]);
        assert_eq!(got["max_tokens"], 5);
        assert_eq!(got["stream"], false);
        assert_eq!(got["repetition_penalty"], 1.0);
        assert!(!t.stream());

        for bad in [("prompt", Value::from("x")), ("n", Value::from(2))] {
            let mut extra = Map::new();
            extra.insert(bad.0.into(), bad.1);
            let options = RequestOptions {
                extra_body: extra,
                ..RequestOptions::default()
            };
            assert!(RequestTemplate::new(EndpointKind::Completions, &options, "m").is_err());
        }
        let options = RequestOptions {
            temperature: Some(f64::NAN),
            ..RequestOptions::default()
        };
        assert!(RequestTemplate::new(EndpointKind::Completions, &options, "m").is_err());
    }
}
