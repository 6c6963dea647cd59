//! JSON Lines: one JSON object per line.

use std::io::{BufRead, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{DatasetError, Sample, io_error};

/// The longest line a JSON Lines dataset may have (64 MiB): a file is read a
/// line at a time, and this bounds the memory one line takes.
pub const MAX_JSONL_LINE_BYTES: u64 = 64 << 20;

/// Which keys of a JSON Lines object hold what.
///
/// Each entry is a list of candidate keys; the first one present (and not
/// `null`) in an object is used. Every object needs prompt text or token ids.
/// The defaults read what the documented pandas conversion of the MLPerf
/// pickle writes (`input`, `tok_input`, `output`) as well as common
/// `prompt`/`completion` files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonlFields {
    /// Prompt text (a string). Default: `prompt`, `input`, `text`.
    pub text: Vec<String>,
    /// Prompt token ids (an array of non-negative integers).
    /// Default: `tok_input`, `input_ids`, `prompt_tokens`.
    pub tokens: Vec<String>,
    /// Reference output (a string). Default: `output`, `reference`,
    /// `completion`, `response`.
    pub reference: Vec<String>,
    /// Output length cap (a non-negative integer). Default: `max_tokens`,
    /// `max_output_tokens`, `output_len`.
    pub max_tokens: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

impl Default for JsonlFields {
    fn default() -> Self {
        Self {
            text: names(&["prompt", "input", "text"]),
            tokens: names(&["tok_input", "input_ids", "prompt_tokens"]),
            reference: names(&["output", "reference", "completion", "response"]),
            max_tokens: names(&["max_tokens", "max_output_tokens", "output_len"]),
        }
    }
}

impl JsonlFields {
    /// Fields with exactly these keys (`None`: that field is never read).
    pub fn exact(
        text: Option<&str>,
        tokens: Option<&str>,
        reference: Option<&str>,
        max_tokens: Option<&str>,
    ) -> Self {
        let one = |k: Option<&str>| k.map(|k| vec![k.to_string()]).unwrap_or_default();
        Self {
            text: one(text),
            tokens: one(tokens),
            reference: one(reference),
            max_tokens: one(max_tokens),
        }
    }
}

/// Reads the file a line at a time, keeping the first `keep` samples (every
/// line is still checked).
pub(crate) fn load(
    path: &Path,
    mut reader: impl BufRead,
    fields: &JsonlFields,
    keep: Option<usize>,
) -> Result<Vec<Sample>, DatasetError> {
    let mut samples = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_JSONL_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        line += 1;
        if n as u64 > MAX_JSONL_LINE_BYTES && buf.last() != Some(&b'\n') {
            return Err(line_error(
                path,
                line,
                format!("line longer than {MAX_JSONL_LINE_BYTES} bytes"),
            ));
        }
        let raw = std::str::from_utf8(&buf).map_err(|_| line_error(path, line, "invalid UTF-8"))?;
        if raw.trim().is_empty() {
            continue;
        }
        if keep.is_some_and(|n| samples.len() >= n) {
            // Past the samples kept: still checked, as a whole file would be.
            parse_line(path, line, raw, fields)?;
            continue;
        }
        samples.push(parse_line(path, line, raw, fields)?);
    }
    Ok(samples)
}

fn parse_line(
    path: &Path,
    line: usize,
    raw: &str,
    fields: &JsonlFields,
) -> Result<Sample, DatasetError> {
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| line_error(path, line, format!("invalid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(line_error(path, line, "expected a JSON object"));
    };

    let string = |v: &Value| v.as_str().map(str::to_owned);
    let input_text = typed_field(&obj, &fields.text, path, line, "a string", string)?;
    let input_tokens = typed_field(
        &obj,
        &fields.tokens,
        path,
        line,
        "an array of token ids (integers 0..2^32)",
        token_ids,
    )?
    .unwrap_or_default();
    if input_text.is_none() && input_tokens.is_empty() {
        return Err(line_error(
            path,
            line,
            format!(
                "no prompt: none of the text fields {:?} or token fields {:?} is present",
                fields.text, fields.tokens
            ),
        ));
    }
    let reference = typed_field(&obj, &fields.reference, path, line, "a string", string)?;
    let max_output_tokens = typed_field(
        &obj,
        &fields.max_tokens,
        path,
        line,
        "a non-negative integer",
        |v| v.as_u64().and_then(|n| u32::try_from(n).ok()),
    )?;
    Ok(Sample {
        input_tokens,
        input_text,
        reference,
        max_output_tokens,
    })
}

fn find_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    keys: &'a [String],
) -> Option<(&'a str, &'a Value)> {
    keys.iter()
        .find_map(|k| obj.get(k).filter(|v| !v.is_null()).map(|v| (k.as_str(), v)))
}

/// The first present, non-null field of `keys`, converted by `convert`;
/// one that `convert` refuses is an error naming the field and what it
/// should have been (`expected`).
fn typed_field<T>(
    obj: &serde_json::Map<String, Value>,
    keys: &[String],
    path: &Path,
    line: usize,
    expected: &str,
    convert: impl FnOnce(&Value) -> Option<T>,
) -> Result<Option<T>, DatasetError> {
    find_field(obj, keys)
        .map(|(k, v)| {
            convert(v)
                .ok_or_else(|| line_error(path, line, format!("field `{k}`: expected {expected}")))
        })
        .transpose()
}

fn token_ids(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|t| t.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn line_error(path: &Path, line: usize, message: impl Into<String>) -> DatasetError {
    DatasetError::Line {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn load(path: &Path, fields: &JsonlFields) -> Result<Vec<Sample>, DatasetError> {
        let reader = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        super::load(path, reader, fields, None)
    }

    #[test]
    fn default_fields() {
        let f = file(
            "{\"prompt\": \"hi\", \"output\": \"yo\", \"max_tokens\": 7}\n\n{\"tok_input\": [1, 2], \"input\": \"ab\", \"reference\": null}\n",
        );
        let s = load(f.path(), &JsonlFields::default()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].input_text.as_deref(), Some("hi"));
        assert_eq!(s[0].reference.as_deref(), Some("yo"));
        assert_eq!(s[0].max_output_tokens, Some(7));
        assert_eq!(s[1].input_tokens, vec![1, 2]);
        assert_eq!(s[1].input_text.as_deref(), Some("ab"));
        assert_eq!(s[1].reference, None);
    }

    #[test]
    fn exact_fields() {
        let f = file("{\"q\": \"x\", \"prompt\": \"ignored\", \"a\": \"y\", \"n\": 3}\n");
        let fields = JsonlFields::exact(Some("q"), None, Some("a"), Some("n"));
        let s = load(f.path(), &fields).unwrap();
        assert_eq!(s[0].input_text.as_deref(), Some("x"));
        assert_eq!(s[0].reference.as_deref(), Some("y"));
        assert_eq!(s[0].max_output_tokens, Some(3));
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                "{\"prompt\": \"a\"}\n{\"prompt\": 3}\n",
                ":2: field `prompt`: expected a string",
            ),
            ("{\"prompt\": \"a\"}\nnot json\n", ":2: invalid JSON"),
            ("[1]\n", ":1: expected a JSON object"),
            (
                "{\"tok_input\": [1, -1]}\n",
                ":1: field `tok_input`: expected an array",
            ),
            (
                "{\"prompt\": \"a\", \"max_tokens\": 1.5}\n",
                ":1: field `max_tokens`",
            ),
            ("{\"other\": 1}\n", ":1: no prompt"),
        ];
        for (content, want) in cases {
            let f = file(content);
            let e = load(f.path(), &JsonlFields::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
            assert!(e.starts_with(&f.path().display().to_string()), "{e}");
        }
    }
}
