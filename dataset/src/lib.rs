//! Datasets: the samples a run sends, and what they are scored against.
//!
//! A [`Dataset`] is an in-memory list of [`Sample`]s. Loaders for the MLPerf
//! formats and common benchmark formats build one; [`Dataset`] is also the
//! LoadGen query sample library the run loads samples from.
//!
//! # Entry points
//!
//! - [`Dataset::load`]`(path, &`[`DatasetOptions`]`)` reads a dataset file,
//!   detecting its format from the extension and, for `.json`, its content
//!   (see [`DatasetFormat::detect`]); set [`DatasetOptions::format`] to force
//!   one. Formats: MLPerf llama3.1-8b `cnn_eval.json`
//!   ([`DatasetFormat::MlperfJson`]), the MLPerf llama2-70b pandas pickle
//!   ([`DatasetFormat::PandasPickle`]), JSON Lines with configurable field
//!   names ([`DatasetFormat::Jsonl`], [`JsonlFields`]) and ShareGPT
//!   ([`DatasetFormat::ShareGpt`], [`sharegpt`] documents the filters).
//! - [`synthetic::generate`] builds a seeded random dataset from a
//!   [`synthetic::SyntheticSpec`] (no file).
//! - [`tokenizer::HfTokenizer::from_file`] loads a `tokenizer.json`
//!   (the [`tokenizer::Tokenizer`] trait is what scoring needs).
//! - [`accuracy::score_accuracy`] scores an `mlperf_log_accuracy.json`
//!   against a dataset's references as the MLPerf evaluation scripts do
//!   (ROUGE as `rouge_score` with the stemmer, `gen_len`, tokens per sample)
//!   and checks the model's targets; [`accuracy::AccuracyReport::render`]
//!   writes the text report.
//!
//! Every loader error is a [`DatasetError`] that names the file and, where it
//! applies, the line, record and field.
//!
//! # Large files
//!
//! JSON Lines is read line by line and JSON arrays (MLPerf records,
//! ShareGPT) element by element, so memory grows with the samples kept, not
//! with the file: a line is at most [`MAX_JSONL_LINE_BYTES`]. pandas'
//! column-oriented JSON and pickles cannot be read a row at a time and are
//! decoded whole. [`Dataset::load_with_progress`] reports the bytes read.

use std::fmt;
use std::io::{BufRead, Read};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use loadgen::{QslError, QuerySampleIndex, QuerySampleLibrary};
use serde::{Deserialize, Serialize};

pub mod accuracy;
mod jsonl;
mod mlperf_json;
mod pickle;
pub mod sharegpt;
pub mod synthetic;
pub mod tokenizer;

pub use jsonl::{JsonlFields, MAX_JSONL_LINE_BYTES};
pub use pickle::{DataFrame, PICKLE_TO_JSONL, read_dataframe};

/// One prompt, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Prompt token ids (what the SUT sends when the server accepts ids).
    pub input_tokens: Vec<u32>,
    /// Prompt text, when the dataset has it (for chat endpoints or servers
    /// that take text only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_text: Option<String>,
    /// Reference output for accuracy scoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Output length cap for this sample, if the dataset fixes one
    /// (synthetic and ShareGPT-style data); otherwise the run's max_tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// A named list of samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// Name logged as `qsl_name`.
    pub name: String,
    /// The samples, indexed by LoadGen's `QuerySampleIndex`.
    pub samples: Vec<Sample>,
    /// Samples a performance run uses (LoadGen's performance sample count);
    /// the MLPerf LLM references use every sample.
    pub performance_sample_count: usize,
}

/// The file formats [`Dataset::load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DatasetFormat {
    /// MLPerf llama3.1-8b `cnn_eval.json`: a JSON array of records with
    /// `instruction`, `input`, `tok_input`, `output` (pandas' column-oriented
    /// `to_json` layout is accepted too).
    MlperfJson,
    /// MLPerf llama2-70b pandas DataFrame pickle (`tok_input`, `output`,
    /// `input`, ...).
    PandasPickle,
    /// JSON Lines, one object per line; field names from [`JsonlFields`].
    Jsonl,
    /// ShareGPT JSON: an array of `{"conversations": [{"from", "value"}...]}`.
    ShareGpt,
}

impl DatasetFormat {
    /// Stable name (`mlperf_json`, `pandas_pickle`, `jsonl`, `sharegpt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MlperfJson => "mlperf_json",
            Self::PandasPickle => "pandas_pickle",
            Self::Jsonl => "jsonl",
            Self::ShareGpt => "sharegpt",
        }
    }

    /// Guesses the format of a file.
    ///
    /// `.pkl`/`.pickle` is a pandas pickle and `.jsonl`/`.ndjson` JSON Lines.
    /// For anything else the first 64 KiB decide: a leading `{` followed by
    /// another top-level object on a later line means JSON Lines; a record
    /// with a `conversations` key means ShareGPT; otherwise MLPerf JSON.
    pub fn detect(path: &Path) -> Result<Self, DatasetError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("pkl" | "pickle") => return Ok(Self::PandasPickle),
            Some("jsonl" | "ndjson") => return Ok(Self::Jsonl),
            _ => {}
        }
        let head = read_head(path, 64 * 1024)?;
        let text = String::from_utf8_lossy(&head);
        let trimmed = text.trim_start();
        if trimmed.starts_with('\u{80}') || head.first() == Some(&0x80) {
            return Ok(Self::PandasPickle);
        }
        if trimmed.starts_with('{') {
            // A column-oriented pandas to_json file is one object; JSON Lines
            // has a second object starting a later line.
            let second_object = trimmed
                .lines()
                .skip(1)
                .any(|l| l.trim_start().starts_with('{'));
            if second_object && !trimmed.contains("\"tok_input\": {") {
                return Ok(Self::Jsonl);
            }
            return Ok(Self::MlperfJson);
        }
        if trimmed.contains("\"conversations\"") {
            return Ok(Self::ShareGpt);
        }
        Ok(Self::MlperfJson)
    }
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DatasetFormat {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mlperf_json" | "mlperf" | "cnn_eval" => Ok(Self::MlperfJson),
            "pandas_pickle" | "pickle" | "pkl" => Ok(Self::PandasPickle),
            "jsonl" => Ok(Self::Jsonl),
            "sharegpt" => Ok(Self::ShareGpt),
            other => Err(DatasetError::Options(format!(
                "unknown dataset format {other:?} (expected mlperf_json, pandas_pickle, jsonl or sharegpt)"
            ))),
        }
    }
}

/// How [`Dataset::load`] reads a file.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DatasetOptions {
    /// Format; `None` detects it ([`DatasetFormat::detect`]).
    pub format: Option<DatasetFormat>,
    /// Name logged as `qsl_name`; `None` uses the file stem.
    pub name: Option<String>,
    /// Keep only the first N samples (MLPerf's `--total-sample-count`).
    pub total_sample_count: Option<usize>,
    /// LoadGen's performance sample count; `None` means every sample (as
    /// the MLPerf LLM references do). Capped at the sample count.
    pub performance_sample_count: Option<usize>,
    /// Field names for JSON Lines.
    pub jsonl: JsonlFields,
    /// Filters and limits for ShareGPT.
    pub sharegpt: sharegpt::ShareGptOptions,
}

impl DatasetOptions {
    /// Default options: detect the format, use every sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forces a format.
    #[must_use]
    pub fn with_format(mut self, format: DatasetFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets the `qsl_name`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps only the first `n` samples.
    #[must_use]
    pub fn with_total_sample_count(mut self, n: usize) -> Self {
        self.total_sample_count = Some(n);
        self
    }

    /// Sets the performance sample count.
    #[must_use]
    pub fn with_performance_sample_count(mut self, n: usize) -> Self {
        self.performance_sample_count = Some(n);
        self
    }

    /// Sets the JSON Lines field names.
    #[must_use]
    pub fn with_jsonl_fields(mut self, fields: JsonlFields) -> Self {
        self.jsonl = fields;
        self
    }

    /// Sets the ShareGPT options.
    #[must_use]
    pub fn with_sharegpt(mut self, options: sharegpt::ShareGptOptions) -> Self {
        self.sharegpt = options;
        self
    }
}

/// Why a dataset could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file as a whole is malformed (e.g. not JSON, wrong top-level shape).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One record (array element or DataFrame row) is malformed.
    #[error("{}: record {index}: {message}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// 0-based record index.
        index: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// One line of a line-oriented file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A pandas pickle this reader cannot decode.
    #[error(
        "{}: cannot read this pandas pickle: {message}; convert it to JSON Lines once with\n  {} \nand load the .jsonl file",
        path.display(), pickle::conversion_command(path)
    )]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A pickle that is not a pandas DataFrame (or not a pickle). It is
    /// never advised to open it in Python: unpickling runs its code.
    #[error(
        "{}: not a pandas DataFrame pickle: {message}. It was only decoded, never run; do not \
         open a pickle of unknown origin with pickle or pandas (unpickling executes code)",
        path.display()
    )]
    NotADataFrame {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The options are inconsistent.
    #[error("invalid dataset options: {0}")]
    Options(String),
    /// The dataset has no samples.
    #[error("{}: no samples", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Dataset {
    /// Replaces every sample's prompt token ids with `tokenizer`'s encoding
    /// of its prompt text, special tokens added as a server adds them to a
    /// text prompt: for a served model whose vocabulary is not the
    /// dataset's. Fails, changing nothing, when a sample has no text.
    pub fn retokenize(&mut self, tokenizer: &dyn tokenizer::Tokenizer) -> Result<(), DatasetError> {
        if let Some(index) = self.samples.iter().position(|s| s.input_text.is_none()) {
            return Err(DatasetError::Options(format!(
                "sample {index} of {:?} has token ids but no prompt text to re-tokenize",
                self.name
            )));
        }
        let mut encoded = Vec::with_capacity(self.samples.len());
        for (index, sample) in self.samples.iter().enumerate() {
            let text = sample.input_text.as_deref().unwrap_or_default();
            let ids = tokenizer.encode(text, true).map_err(|e| {
                DatasetError::Options(format!("cannot re-tokenize sample {index}: {e}"))
            })?;
            encoded.push(ids);
        }
        for (sample, ids) in self.samples.iter_mut().zip(encoded) {
            sample.input_tokens = ids;
        }
        Ok(())
    }

    /// Reads a dataset file (see the crate docs for formats and detection).
    pub fn load(path: impl AsRef<Path>, options: &DatasetOptions) -> Result<Self, DatasetError> {
        Self::load_with_progress(path, options, &mut |_, _| {})
    }

    /// [`Dataset::load`], calling `progress(bytes_read, file_size)` as the
    /// file is read (the library draws nothing; the caller decides how to
    /// show it). The byte counts only grow, and reach the file's size once
    /// a streamed format (JSON Lines, a JSON array) has been read through.
    pub fn load_with_progress(
        path: impl AsRef<Path>,
        options: &DatasetOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self, DatasetError> {
        let path = path.as_ref();
        // A device or a pipe has no end to stop at (`/dev/zero`).
        let total = loadgen::input::regular_file_size(path).map_err(|e| io_error(path, e))?;
        let format = match options.format {
            Some(f) => f,
            None => DatasetFormat::detect(path)?,
        };
        let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        let reader = std::io::BufReader::with_capacity(
            STREAM_BUFFER,
            CountingReader {
                inner: file,
                read: 0,
                total,
                progress,
            },
        );
        let keep = options.total_sample_count;
        let samples = match format {
            DatasetFormat::MlperfJson => mlperf_json::load(path, reader, keep)?,
            DatasetFormat::PandasPickle => pickle::load(path, reader)?,
            DatasetFormat::Jsonl => jsonl::load(path, reader, &options.jsonl, keep)?,
            DatasetFormat::ShareGpt => sharegpt::load(path, reader, &options.sharegpt, keep)?,
        };
        Self::finish_load(path, samples, options)
    }

    /// An MLPerf `cnn_eval.json` already in memory (a dataset built into the
    /// binary); `path` is how errors and the dataset's name refer to it.
    pub fn load_mlperf_json_bytes(
        path: impl AsRef<Path>,
        bytes: &[u8],
        options: &DatasetOptions,
    ) -> Result<Self, DatasetError> {
        let path = path.as_ref();
        Self::finish_load(path, mlperf_json::parse(path, bytes)?, options)
    }

    fn finish_load(
        path: &Path,
        mut samples: Vec<Sample>,
        options: &DatasetOptions,
    ) -> Result<Self, DatasetError> {
        if let Some(n) = options.total_sample_count {
            samples.truncate(n);
        }
        if samples.is_empty() {
            return Err(DatasetError::Empty {
                path: path.to_path_buf(),
            });
        }
        let name = options.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "dataset".to_string())
        });
        Ok(Self::from_samples(
            name,
            samples,
            options.performance_sample_count,
        ))
    }

    /// A dataset over these samples; `performance_sample_count` `None` means
    /// every sample, and a larger value is capped at the sample count.
    pub fn from_samples(
        name: impl Into<String>,
        samples: Vec<Sample>,
        performance_sample_count: Option<usize>,
    ) -> Self {
        let total = samples.len();
        Self {
            name: name.into(),
            performance_sample_count: performance_sample_count.map_or(total, |n| n.min(total)),
            samples,
        }
    }

    /// The references (accuracy targets), by sample index; `None` where a
    /// sample has none.
    pub fn references(&self) -> Vec<Option<&str>> {
        self.samples
            .iter()
            .map(|s| s.reference.as_deref())
            .collect()
    }

    fn check_indices(&self, indices: &[QuerySampleIndex]) -> Result<(), QslError> {
        match indices.iter().find(|&&i| i >= self.samples.len()) {
            Some(&bad) => Err(Box::new(QslIndexError {
                dataset: self.name.clone(),
                index: bad,
                total: self.samples.len(),
            })),
            None => Ok(()),
        }
    }
}

/// A sample holds a token id the served model's vocabulary does not have (a
/// server would refuse the prompt, or read ids of another model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "sample {index} has token id {id}, beyond the served model's vocabulary of {vocab_size} ids \
     (the dataset was tokenized for another model?)"
)]
pub struct TokenIdError {
    /// 0-based sample index.
    pub index: usize,
    /// The offending id.
    pub id: u32,
    /// The vocabulary size: valid ids are below it.
    pub vocab_size: u32,
}

/// Checks that every prompt token id of `samples` is below `vocab_size`;
/// the first sample (and its first id) that is not is the error.
pub fn check_token_ids(samples: &[Sample], vocab_size: u32) -> Result<(), TokenIdError> {
    for (index, sample) in samples.iter().enumerate() {
        if let Some(&id) = sample.input_tokens.iter().find(|&&id| id >= vocab_size) {
            return Err(TokenIdError {
                index,
                id,
                vocab_size,
            });
        }
    }
    Ok(())
}

/// A QSL load/unload asked for a sample the dataset does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dataset {dataset}: sample index {index} out of range (it has {total} samples)")]
pub struct QslIndexError {
    /// Dataset name.
    pub dataset: String,
    /// The offending index.
    pub index: QuerySampleIndex,
    /// Samples in the dataset.
    pub total: usize,
}

impl QuerySampleLibrary for Dataset {
    fn name(&self) -> &str {
        &self.name
    }

    fn total_sample_count(&self) -> usize {
        self.samples.len()
    }

    fn performance_sample_count(&self) -> usize {
        self.performance_sample_count
    }

    // Samples are in memory from the start (as in the MLPerf LLM references,
    // whose load/unload are no-ops); only the indices are checked.
    fn load_samples_to_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        self.check_indices(samples)
    }

    fn unload_samples_from_ram(&self, samples: &[QuerySampleIndex]) -> Result<(), QslError> {
        self.check_indices(samples)
    }
}

fn read_head(path: &Path, max: usize) -> Result<Vec<u8>, DatasetError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut head = Vec::with_capacity(max.min(1 << 16));
    file.take(max as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_error(path, e))?;
    Ok(head)
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read buffer of a streamed dataset file.
const STREAM_BUFFER: usize = 256 << 10;

/// Counts the bytes read through it for a progress callback.
struct CountingReader<'a, R> {
    inner: R,
    read: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.read += n as u64;
            (self.progress)(self.read, self.total.max(self.read));
        }
        Ok(n)
    }
}

/// Skips JSON whitespace and returns the next byte, unread (`None` at the
/// end): which top-level shape a JSON file has.
pub(crate) fn peek_json_start(reader: &mut impl BufRead) -> std::io::Result<Option<u8>> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        match buf
            .iter()
            .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        {
            Some(i) => {
                let first = buf[i];
                reader.consume(i);
                return Ok(Some(first));
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

/// Why a streamed JSON array could not be read.
pub(crate) enum ArrayError {
    /// The JSON itself (syntax, shape, a field's type), with line and column.
    Json(serde_json::Error),
    /// A record the caller's conversion rejected.
    Record(DatasetError),
}

impl ArrayError {
    /// The error naming `path`; JSON errors get `what` in front.
    pub(crate) fn into_dataset_error(self, path: &Path, what: &str) -> DatasetError {
        match self {
            Self::Record(e) => e,
            Self::Json(e) if e.is_io() => io_error(path, e.into()),
            Self::Json(e) => format_error(path, format!("{what}: {e}")),
        }
    }
}

/// Reads a top-level JSON array one element at a time: each element is
/// deserialized as `T` and handed to `convert` with its index, and only the
/// samples it returns are kept, so memory follows the samples, not the file.
/// After `keep` samples the rest are still converted (checked) but dropped;
/// after `stop` samples the rest are only checked to be JSON.
pub(crate) fn stream_array<'de, R, T, F>(
    de: &mut serde_json::Deserializer<R>,
    keep: Option<usize>,
    stop: Option<usize>,
    mut convert: F,
) -> Result<Vec<Sample>, ArrayError>
where
    R: serde_json::de::Read<'de>,
    T: Deserialize<'de>,
    F: FnMut(usize, T) -> Result<Option<Sample>, DatasetError>,
{
    use serde::Deserializer as _;
    let mut rejected = None;
    let visitor = ArrayVisitor {
        keep,
        stop,
        convert: &mut convert,
        rejected: &mut rejected,
        element: PhantomData,
    };
    let result = de.deserialize_seq(visitor).and_then(|samples| {
        de.end()?;
        Ok(samples)
    });
    result.map_err(|e| match rejected {
        Some(record) => ArrayError::Record(record),
        None => ArrayError::Json(e),
    })
}

struct ArrayVisitor<'a, T, F> {
    keep: Option<usize>,
    stop: Option<usize>,
    convert: &'a mut F,
    rejected: &'a mut Option<DatasetError>,
    element: PhantomData<fn() -> T>,
}

impl<'de, T, F> serde::de::Visitor<'de> for ArrayVisitor<'_, T, F>
where
    T: Deserialize<'de>,
    F: FnMut(usize, T) -> Result<Option<Sample>, DatasetError>,
{
    type Value = Vec<Sample>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Sample>, A::Error> {
        let mut samples = Vec::new();
        let mut index = 0;
        loop {
            if self.stop.is_some_and(|n| samples.len() >= n) {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                break;
            }
            let Some(element) = seq.next_element::<T>()? else {
                break;
            };
            match (self.convert)(index, element) {
                Ok(Some(sample)) if self.keep.is_none_or(|n| samples.len() < n) => {
                    samples.push(sample);
                }
                Ok(_) => {}
                Err(e) => {
                    *self.rejected = Some(e);
                    return Err(serde::de::Error::custom("record rejected"));
                }
            }
            index += 1;
        }
        Ok(samples)
    }
}

pub(crate) fn format_error(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

pub(crate) fn record_error(path: &Path, index: usize, message: impl Into<String>) -> DatasetError {
    DatasetError::Record {
        path: path.to_path_buf(),
        index,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retokenize_replaces_ids_from_text_or_changes_nothing() {
        struct Bytes;
        impl tokenizer::Tokenizer for Bytes {
            fn encode(
                &self,
                text: &str,
                special: bool,
            ) -> Result<Vec<u32>, tokenizer::TokenizerError> {
                let mut ids: Vec<u32> = text.bytes().map(u32::from).collect();
                if special {
                    ids.insert(0, 1);
                }
                Ok(ids)
            }
            fn decode(&self, _: &[u32], _: bool) -> Result<String, tokenizer::TokenizerError> {
                Ok(String::new())
            }
        }
        let sample = |text: Option<&str>| Sample {
            input_tokens: vec![128000, 5],
            input_text: text.map(str::to_owned),
            reference: None,
            max_output_tokens: None,
        };
        let mut dataset = Dataset {
            name: "d".into(),
            samples: vec![sample(Some("ab")), sample(Some("c"))],
            performance_sample_count: 2,
        };
        dataset.retokenize(&Bytes).unwrap();
        assert_eq!(dataset.samples[0].input_tokens, vec![1, 97, 98]);
        assert_eq!(dataset.samples[1].input_tokens, vec![1, 99]);

        let mut ids_only = Dataset {
            name: "d".into(),
            samples: vec![sample(Some("ab")), sample(None)],
            performance_sample_count: 2,
        };
        let e = ids_only.retokenize(&Bytes).unwrap_err().to_string();
        assert!(e.contains("sample 1"), "{e}");
        assert_eq!(ids_only.samples[0].input_tokens, vec![128000, 5]);
    }

    #[test]
    fn token_ids_at_or_beyond_the_vocabulary_are_refused_naming_the_first() {
        let sample = |ids: &[u32]| Sample {
            input_tokens: ids.to_vec(),
            ..Sample::default()
        };
        let samples = [sample(&[0, 9]), sample(&[3, 10, 200_000]), sample(&[11])];
        assert_eq!(check_token_ids(&samples, 200_001), Ok(()));
        let err = check_token_ids(&samples, 10).unwrap_err();
        assert_eq!(
            err,
            TokenIdError {
                index: 1,
                id: 10,
                vocab_size: 10
            }
        );
        let text = err.to_string();
        assert!(text.contains("sample 1 has token id 10"), "{text}");
        assert!(text.contains("vocabulary of 10 ids"), "{text}");
        assert_eq!(check_token_ids(&[], 1), Ok(()));
    }

    fn ds(n: usize, perf: Option<usize>) -> Dataset {
        let samples = (0..n)
            .map(|i| Sample {
                input_tokens: vec![i as u32],
                ..Sample::default()
            })
            .collect();
        Dataset::from_samples("t", samples, perf)
    }

    #[test]
    fn qsl_counts_and_index_checks() {
        let d = ds(5, None);
        assert_eq!(d.total_sample_count(), 5);
        assert_eq!(QuerySampleLibrary::performance_sample_count(&d), 5);
        assert!(d.load_samples_to_ram(&[0, 4, 4]).is_ok());
        let err = d.load_samples_to_ram(&[1, 5]).unwrap_err().to_string();
        assert_eq!(
            err,
            "dataset t: sample index 5 out of range (it has 5 samples)"
        );
        assert!(d.unload_samples_from_ram(&[7]).is_err());
        assert_eq!(ds(5, Some(3)).performance_sample_count, 3);
        assert_eq!(ds(5, Some(9)).performance_sample_count, 5);
    }

    #[test]
    fn format_names_round_trip() {
        for f in [
            DatasetFormat::MlperfJson,
            DatasetFormat::PandasPickle,
            DatasetFormat::Jsonl,
            DatasetFormat::ShareGpt,
        ] {
            assert_eq!(f.as_str().parse::<DatasetFormat>().unwrap(), f);
        }
        assert!("csv".parse::<DatasetFormat>().is_err());
    }
}
