//! MLPerf llama3.1-8b `cnn_eval.json`.
//!
//! The reference's `download_cnndm.py` writes `json.dump(list_of_records)`;
//! each record has `instruction` (the prompt template, as a string or as
//! `{"llama": template}`), `input` (the article), `tok_input` (the Llama 3.1
//! tokenisation of the filled-in template, with BOS) and `output` (the
//! highlights: the ROUGE reference). The reference reads it with
//! `pd.read_json`, which also accepts pandas' default column-oriented
//! `to_json` layout (`{"tok_input": {"0": [...], ...}, ...}`), so this reader
//! accepts both.
//!
//! A sample's `input_text` is the template with `{input}` replaced by the
//! article (what `tok_input` tokenises); without an `instruction` it is the
//! `input` verbatim.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use crate::{DatasetError, Sample, format_error, io_error, record_error, stream_array};

#[derive(Deserialize)]
#[serde(untagged)]
enum Instruction {
    Text(String),
    ByModel(BTreeMap<String, String>),
}

#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    instruction: Option<Instruction>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    tok_input: Option<Vec<u32>>,
    #[serde(default)]
    output: Option<String>,
}

const NOT_AN_ARRAY: &str = "not an MLPerf JSON dataset: expected a JSON array of records";
const BAD_ARRAY: &str = "not an MLPerf JSON record array";

/// Reads the file record by record (a record array), keeping the first
/// `keep` samples; the pandas column layout is read whole.
pub(crate) fn load(
    path: &Path,
    mut reader: impl BufRead,
    keep: Option<usize>,
) -> Result<Vec<Sample>, DatasetError> {
    match crate::peek_json_start(&mut reader).map_err(|e| io_error(path, e))? {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_reader(reader);
            stream_array(&mut de, keep, None, |i, r| to_sample(path, i, r).map(Some))
                .map_err(|e| e.into_dataset_error(path, BAD_ARRAY))
        }
        // Columns hold every row's value of one field: no row is whole
        // before the last column is read.
        Some(b'{') => {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| io_error(path, e))?;
            columns_to_samples(path, &bytes)
        }
        _ => Err(format_error(path, NOT_AN_ARRAY)),
    }
}

/// Parses the file's bytes; `path` names it in errors.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<Sample>, DatasetError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            stream_array(&mut de, None, None, |i, r| to_sample(path, i, r).map(Some))
                .map_err(|e| e.into_dataset_error(path, BAD_ARRAY))
        }
        Some(b'{') => columns_to_samples(path, bytes),
        _ => Err(format_error(path, NOT_AN_ARRAY)),
    }
}

fn columns_to_samples(path: &Path, bytes: &[u8]) -> Result<Vec<Sample>, DatasetError> {
    columns_to_records(path, bytes)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| to_sample(path, i, r))
        .collect()
}

fn to_sample(path: &Path, index: usize, r: Record) -> Result<Sample, DatasetError> {
    let tokens = r
        .tok_input
        .ok_or_else(|| record_error(path, index, "missing field `tok_input`"))?;
    if tokens.is_empty() {
        return Err(record_error(path, index, "field `tok_input` is empty"));
    }
    let template = match r.instruction {
        None => None,
        Some(Instruction::Text(t)) => Some(t),
        Some(Instruction::ByModel(mut m)) => {
            let t = match m.remove("llama") {
                Some(t) => t,
                None if m.len() == 1 => m.into_values().next().unwrap_or_default(),
                None => {
                    return Err(record_error(
                        path,
                        index,
                        "field `instruction` maps several models and none is \"llama\"",
                    ));
                }
            };
            Some(t)
        }
    };
    let text = match (template, r.input) {
        (Some(t), Some(input)) if t.contains("{input}") => Some(t.replace("{input}", &input)),
        (Some(_), Some(_)) => {
            return Err(record_error(
                path,
                index,
                "field `instruction` has no `{input}` placeholder",
            ));
        }
        (_, input) => input,
    };
    Ok(Sample {
        input_tokens: tokens,
        input_text: text,
        reference: r.output,
        max_output_tokens: None,
    })
}

/// pandas' column-oriented layout: `{column: {row_label: value}}`.
fn columns_to_records(path: &Path, bytes: &[u8]) -> Result<Vec<Record>, DatasetError> {
    let columns: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
        serde_json::from_slice(bytes).map_err(|e| {
            format_error(
                path,
                format!("not an MLPerf JSON dataset (array of records or pandas columns): {e}"),
            )
        })?;
    let labels: Vec<String> = match columns.get("tok_input") {
        Some(col) => {
            let mut labels: Vec<(u64, String)> = col
                .keys()
                .map(|k| {
                    k.parse::<u64>().map(|n| (n, k.clone())).map_err(|_| {
                        format_error(
                            path,
                            format!("column `tok_input`: row label {k:?} is not an integer"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            labels.sort_unstable();
            labels.into_iter().map(|(_, k)| k).collect()
        }
        None => return Err(format_error(path, "missing column `tok_input`")),
    };
    let mut records = Vec::with_capacity(labels.len());
    for (i, label) in labels.iter().enumerate() {
        let mut obj = serde_json::Map::new();
        for (name, col) in &columns {
            if let Some(v) = col.get(label) {
                obj.insert(name.clone(), v.clone());
            }
        }
        let record: Record = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| record_error(path, i, e.to_string()))?;
        records.push(record);
    }
    Ok(records)
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

    fn load(path: &Path) -> Result<Vec<Sample>, DatasetError> {
        let reader = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        super::load(path, reader, None)
    }

    #[test]
    fn records_with_template_map_and_string() {
        let f = file(
            r#"[
 {"instruction": {"llama": "Sum:\n{input}\nS:"}, "input": "A b.", "tok_input": [128000, 5, 6], "output": "Ref."},
 {"instruction": "T {input}", "input": "x", "tok_input": [1], "output": "o", "extra": 3},
 {"input": "raw", "tok_input": [2]}
]"#,
        );
        let s = load(f.path()).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].input_tokens, vec![128000, 5, 6]);
        assert_eq!(s[0].input_text.as_deref(), Some("Sum:\nA b.\nS:"));
        assert_eq!(s[0].reference.as_deref(), Some("Ref."));
        assert_eq!(s[1].input_text.as_deref(), Some("T x"));
        assert_eq!(s[2].input_text.as_deref(), Some("raw"));
        assert_eq!(s[2].reference, None);
    }

    #[test]
    fn pandas_column_layout() {
        let f = file(
            r#"{"input": {"0": "a", "1": "b", "10": "k"}, "tok_input": {"1": [2], "0": [1], "10": [3]},
                "output": {"0": "x", "1": "y", "10": "z"}}"#,
        );
        let s = load(f.path()).unwrap();
        let toks: Vec<_> = s.iter().map(|s| s.input_tokens[0]).collect();
        assert_eq!(toks, vec![1, 2, 3]);
        assert_eq!(s[2].reference.as_deref(), Some("z"));
    }

    #[test]
    fn errors_name_file_record_and_field() {
        let f = file(r#"[{"tok_input": [1]}, {"input": "x"}]"#);
        let e = load(f.path()).unwrap_err().to_string();
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains("record 1: missing field `tok_input`"), "{e}");

        let f = file("[{\"tok_input\": [1, -2]}]");
        let e = load(f.path()).unwrap_err().to_string();
        assert!(e.contains("line 1 column"), "{e}");

        let f =
            file("[{\"instruction\": \"no placeholder\", \"input\": \"x\", \"tok_input\": [1]}]");
        let e = load(f.path()).unwrap_err().to_string();
        assert!(e.contains("record 0: field `instruction`"), "{e}");

        let f = file("42");
        assert!(load(f.path()).is_err());
    }
}
