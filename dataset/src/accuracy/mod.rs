//! MLPerf accuracy scoring for the LLM summarisation benchmarks.
//!
//! [`score_accuracy`] does what the reference `evaluation.py`
//! (llama3.1-8b) and `evaluate-accuracy.py` (llama2-70b) do with an
//! `mlperf_log_accuracy.json`:
//!
//! 1. keep the first entry per `qsl_idx` (the log may repeat samples);
//! 2. hex-decode `data` into token ids ([`TokenDtype`]: int32 as the
//!    reference SUTs write, or int64, the scripts' default);
//! 3. decode with the tokenizer, `skip_special_tokens=True`;
//! 4. strip predictions and references, split them into sentences
//!    ([`punkt`], NLTK's `sent_tokenize`) and join the sentences with `\n`;
//! 5. ROUGE-1/2/L/Lsum F-measures per pair ([`rouge`], `rouge_score` with
//!    the Porter stemmer), averaged (numpy's pairwise sum), x100, rounded
//!    to 4 places; `gen_len` = characters of the processed predictions,
//!    `gen_num`, `gen_tok_len` = output tokens, `tokens_per_sample`
//!    rounded to 1 place;
//! 6. compare against the model's targets ([`Model::targets`], the
//!    submission checker's constants).
//!
//! [`AccuracyReport::render`] writes the text report.

pub mod porter;
pub mod punkt;
pub mod rouge;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Dataset;
use crate::tokenizer::{Tokenizer, TokenizerError};
use punkt::{PunktParams, SentenceSplitter};

/// Element type of the token data in the accuracy log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDtype {
    /// 4-byte little-endian (what the MLPerf reference SUTs and the run
    /// scripts' `--dtype int32` use).
    #[default]
    Int32,
    /// 8-byte little-endian (`evaluation.py`'s default).
    Int64,
}

/// Benchmarks with known accuracy targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Model {
    /// `llama3.1-8b` (datacenter).
    #[serde(rename = "llama3.1-8b")]
    Llama31_8b,
    /// `llama3.1-8b-edge`.
    #[serde(rename = "llama3.1-8b-edge")]
    Llama31_8bEdge,
    /// `llama2-70b-99`.
    #[serde(rename = "llama2-70b-99")]
    Llama2_70b99,
    /// `llama2-70b-99.9`.
    #[serde(rename = "llama2-70b-99.9")]
    Llama2_70b999,
}

/// The metrics a target can constrain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// ROUGE-1 (x100).
    Rouge1,
    /// ROUGE-2 (x100).
    Rouge2,
    /// ROUGE-L (x100).
    RougeL,
    /// ROUGE-Lsum (x100).
    RougeLsum,
    /// Total characters generated.
    GenLen,
    /// Mean output tokens per sample.
    TokensPerSample,
}

/// One accuracy bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What is bounded.
    pub metric: Metric,
    /// Smallest passing value.
    pub min: f64,
    /// Largest passing value, if bounded above.
    pub max: Option<f64>,
}

impl Model {
    /// The model's name as MLPerf spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llama31_8b => "llama3.1-8b",
            Self::Llama31_8bEdge => "llama3.1-8b-edge",
            Self::Llama2_70b99 => "llama2-70b-99",
            Self::Llama2_70b999 => "llama2-70b-99.9",
        }
    }

    /// Parses an MLPerf model name (`llama3.1-8b`, `llama2-70b-99.9`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama3.1-8b" | "llama3_1-8b" => Some(Self::Llama31_8b),
            "llama3.1-8b-edge" | "llama3_1-8b-edge" => Some(Self::Llama31_8bEdge),
            "llama2-70b-99" => Some(Self::Llama2_70b99),
            "llama2-70b-99.9" => Some(Self::Llama2_70b999),
            _ => None,
        }
    }

    /// The submission checker's accuracy targets (lower limits, and upper
    /// limits where it has them), computed the way it computes them.
    pub fn targets(self) -> Vec<Target> {
        let lo = |metric, min| Target {
            metric,
            min,
            max: None,
        };
        match self {
            Self::Llama31_8b => vec![
                lo(Metric::Rouge1, 38.7792 * 0.99),
                lo(Metric::Rouge2, 15.9075 * 0.99),
                lo(Metric::RougeL, 24.4957 * 0.99),
                lo(Metric::RougeLsum, 35.793 * 0.99),
                Target {
                    metric: Metric::GenLen,
                    min: 8_167_644.0 * 0.9,
                    max: Some(8_167_644.0 * 1.1),
                },
            ],
            Self::Llama31_8bEdge => vec![
                lo(Metric::Rouge1, 39.06 * 0.99),
                lo(Metric::Rouge2, 16.1147 * 0.99),
                lo(Metric::RougeL, 24.6375 * 0.99),
                lo(Metric::RougeLsum, 36.124 * 0.99),
                Target {
                    metric: Metric::GenLen,
                    min: 3_051_113.0 * 0.9,
                    max: Some(3_051_113.0 * 1.1),
                },
            ],
            Self::Llama2_70b99 | Self::Llama2_70b999 => {
                let f = if self == Self::Llama2_70b99 {
                    0.99
                } else {
                    0.999
                };
                vec![
                    lo(Metric::Rouge1, 44.4312 * f),
                    lo(Metric::Rouge2, 22.0352 * f),
                    lo(Metric::RougeL, 28.6162 * f),
                    Target {
                        metric: Metric::TokensPerSample,
                        min: 294.45 * 0.9,
                        max: Some(294.45 * 1.1),
                    },
                ]
            }
        }
    }
}

/// How [`score_accuracy`] reads and scores.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AccuracyOptions {
    /// Token element type in the log.
    pub dtype: TokenDtype,
    /// Targets to check; `None` reports the scores only.
    pub model: Option<Model>,
    /// Sentence-splitter tables; `None` uses [`PunktParams::builtin`]. Pass
    /// NLTK's `punkt_tab/english` ([`PunktParams::from_dir`]) for
    /// NLTK-exact ROUGE-Lsum.
    pub punkt: Option<PunktParams>,
}

impl AccuracyOptions {
    /// Int32 tokens, no targets, built-in sentence splitting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the token element type.
    #[must_use]
    pub fn with_dtype(mut self, dtype: TokenDtype) -> Self {
        self.dtype = dtype;
        self
    }

    /// Checks this model's targets.
    #[must_use]
    pub fn with_model(mut self, model: Model) -> Self {
        self.model = Some(model);
        self
    }

    /// Uses these Punkt tables.
    #[must_use]
    pub fn with_punkt(mut self, params: PunktParams) -> Self {
        self.punkt = Some(params);
        self
    }
}

/// Why scoring failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccuracyError {
    /// The log could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The log is not an MLPerf accuracy log.
    #[error("{}: not an MLPerf accuracy log: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// One entry is malformed or names a sample without a reference.
    #[error("{}: entry {index} (qsl_idx {qsl_idx}): {message}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// 0-based position in the log.
        index: usize,
        /// Its `qsl_idx`.
        qsl_idx: usize,
        /// What is wrong.
        message: String,
    },
    /// The log has no entries.
    #[error("{}: no entries to score", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Decoding failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// One `mlperf_log_accuracy.json` entry, token data already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccuracyEntry {
    /// The sample's index in the dataset.
    pub qsl_idx: usize,
    /// The output token ids.
    pub tokens: Vec<u32>,
}

#[derive(Deserialize)]
struct RawEntry {
    qsl_idx: usize,
    data: String,
}

/// Reads `mlperf_log_accuracy.json` and keeps the first entry per
/// `qsl_idx`; returns the entries and how many duplicates were dropped.
pub fn read_accuracy_log(
    path: &Path,
    dtype: TokenDtype,
) -> Result<(Vec<AccuracyEntry>, usize), AccuracyError> {
    let bytes = std::fs::read(path).map_err(|source| AccuracyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let raw: Vec<RawEntry> = serde_json::from_slice(&bytes).map_err(|e| AccuracyError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    let mut duplicates = 0;
    for (index, entry) in raw.into_iter().enumerate() {
        if !seen.insert(entry.qsl_idx) {
            duplicates += 1;
            continue;
        }
        let tokens =
            decode_hex_tokens(&entry.data, dtype).map_err(|message| AccuracyError::Entry {
                path: path.to_path_buf(),
                index,
                qsl_idx: entry.qsl_idx,
                message,
            })?;
        out.push(AccuracyEntry {
            qsl_idx: entry.qsl_idx,
            tokens,
        });
    }
    Ok((out, duplicates))
}

/// `np.frombuffer(bytes.fromhex(data), dtype)` for token ids.
pub fn decode_hex_tokens(data: &str, dtype: TokenDtype) -> Result<Vec<u32>, String> {
    let hex = data.as_bytes();
    if !hex.len().is_multiple_of(2) {
        return Err("`data` has an odd number of hex digits".into());
    }
    let bytes: Vec<u8> = hex
        .chunks_exact(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            match (d(p[0]), d(p[1])) {
                // Two hex digits fit a byte.
                (Some(a), Some(b)) => Ok((a * 16 + b) as u8),
                _ => Err("`data` is not hexadecimal".to_string()),
            }
        })
        .collect::<Result<_, _>>()?;
    let width = match dtype {
        TokenDtype::Int32 => 4,
        TokenDtype::Int64 => 8,
    };
    if !bytes.len().is_multiple_of(width) {
        return Err(format!(
            "`data` has {} bytes, not a whole number of {width}-byte tokens",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(width)
        .map(|c| {
            let v: i64 = match dtype {
                TokenDtype::Int32 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                TokenDtype::Int64 => {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                }
            };
            u32::try_from(v).map_err(|_| format!("token id {v} out of range"))
        })
        .collect()
}

/// A pass/fail line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// The bound.
    pub target: Target,
    /// The measured value.
    pub value: f64,
    /// Whether it is within the bound.
    pub passed: bool,
}

/// What [`score_accuracy`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// Mean ROUGE-1 F-measure x100, rounded to 4 places.
    pub rouge1: f64,
    /// Mean ROUGE-2 x100, rounded to 4 places.
    pub rouge2: f64,
    /// Mean ROUGE-L x100, rounded to 4 places.
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    /// Mean ROUGE-Lsum x100, rounded to 4 places.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
    /// Characters in the processed predictions.
    pub gen_len: u64,
    /// Predictions scored (distinct samples).
    pub gen_num: usize,
    /// Output tokens of the scored predictions.
    pub gen_tok_len: u64,
    /// `gen_tok_len / gen_num`, rounded to 1 place.
    pub tokens_per_sample: f64,
    /// Log entries dropped as repeats of an earlier `qsl_idx`.
    pub duplicates_skipped: usize,
    /// The model whose targets were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// One line per target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<TargetCheck>,
    /// Whether every target passed (`None` without a model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
}

/// Scores an `mlperf_log_accuracy.json` against `dataset`'s references.
pub fn score_accuracy(
    log_path: &Path,
    dataset: &Dataset,
    tokenizer: &dyn Tokenizer,
    options: &AccuracyOptions,
) -> Result<AccuracyReport, AccuracyError> {
    let (entries, duplicates) = read_accuracy_log(log_path, options.dtype)?;
    if entries.is_empty() {
        return Err(AccuracyError::Empty {
            path: log_path.to_path_buf(),
        });
    }
    let mut references = Vec::with_capacity(entries.len());
    for (index, e) in entries.iter().enumerate() {
        let reference = dataset
            .samples
            .get(e.qsl_idx)
            .ok_or_else(|| AccuracyError::Entry {
                path: log_path.to_path_buf(),
                index,
                qsl_idx: e.qsl_idx,
                message: format!(
                    "sample index out of range (dataset {} has {} samples)",
                    dataset.name,
                    dataset.samples.len()
                ),
            })?
            .reference
            .as_deref()
            .ok_or_else(|| AccuracyError::Entry {
                path: log_path.to_path_buf(),
                index,
                qsl_idx: e.qsl_idx,
                message: format!("sample has no reference in dataset {}", dataset.name),
            })?;
        references.push(reference);
    }
    let batch: Vec<&[u32]> = entries.iter().map(|e| e.tokens.as_slice()).collect();
    let predictions = tokenizer.batch_decode(&batch, true)?;
    let gen_tok_len: u64 = entries.iter().map(|e| e.tokens.len() as u64).sum();
    let splitter =
        SentenceSplitter::new(options.punkt.clone().unwrap_or_else(PunktParams::builtin));
    let mut report = score_texts(&predictions, &references, &splitter, gen_tok_len);
    report.duplicates_skipped = duplicates;
    if let Some(model) = options.model {
        report.check(model);
    }
    Ok(report)
}

/// Steps 4 and 5 on already-decoded predictions and their references (same
/// length, same order). `gen_tok_len` is passed through to the report.
pub fn score_texts<P: AsRef<str>, R: AsRef<str>>(
    predictions: &[P],
    references: &[R],
    splitter: &SentenceSplitter,
    gen_tok_len: u64,
) -> AccuracyReport {
    let n = predictions.len().min(references.len());
    let mut r1 = Vec::with_capacity(n);
    let mut r2 = Vec::with_capacity(n);
    let mut rl = Vec::with_capacity(n);
    let mut rlsum = Vec::with_capacity(n);
    let mut gen_len = 0u64;
    for (p, r) in predictions.iter().zip(references) {
        let p = postprocess(p.as_ref(), splitter);
        let r = postprocess(r.as_ref(), splitter);
        gen_len += p.chars().count() as u64;
        let s = rouge::score(&r, &p);
        r1.push(s.rouge1);
        r2.push(s.rouge2);
        rl.push(s.rouge_l);
        rlsum.push(s.rouge_lsum);
    }
    let pct = |v: &[f64]| round_to(mean(v) * 100.0, 4);
    AccuracyReport {
        rouge1: pct(&r1),
        rouge2: pct(&r2),
        rouge_l: pct(&rl),
        rouge_lsum: pct(&rlsum),
        gen_len,
        gen_num: n,
        gen_tok_len,
        tokens_per_sample: if n == 0 {
            0.0
        } else {
            round_to(gen_tok_len as f64 / n as f64, 1)
        },
        duplicates_skipped: 0,
        model: None,
        checks: Vec::new(),
        passed: None,
    }
}

/// `"\n".join(nltk.sent_tokenize(text.strip()))`.
pub fn postprocess(text: &str, splitter: &SentenceSplitter) -> String {
    splitter.split(py_strip(text)).join("\n")
}

/// Python's `str.strip()` (Unicode whitespace, plus the ASCII separators
/// 0x1c..=0x1f that Python also counts).
fn py_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `np.mean`: numpy's pairwise summation divided by the count.
fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    pairwise_sum(v) / v.len() as f64
}

/// numpy's `pairwise_sum` for contiguous doubles (blocks of 128 with eight
/// accumulators, halves split on a multiple of 8).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        // numpy starts from -0.0 here, so an empty or all -0.0 sum is -0.0.
        return a.iter().fold(-0.0, |s, &x| s + x);
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for k in 0..8 {
                r[k] += a[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        return res;
    }
    let mut n2 = n / 2;
    n2 -= n2 % 8;
    pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
}

/// Python's `round(x, places)` for the values reported here (correctly
/// rounded decimal, as Rust's formatting is).
fn round_to(x: f64, places: usize) -> f64 {
    format!("{x:.places$}").parse().unwrap_or(x)
}

impl AccuracyReport {
    /// The value of a metric.
    pub fn value(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Rouge1 => self.rouge1,
            Metric::Rouge2 => self.rouge2,
            Metric::RougeL => self.rouge_l,
            Metric::RougeLsum => self.rouge_lsum,
            Metric::GenLen => self.gen_len as f64,
            Metric::TokensPerSample => self.tokens_per_sample,
        }
    }

    /// Checks `model`'s targets and records the outcome.
    pub fn check(&mut self, model: Model) {
        self.checks = model
            .targets()
            .into_iter()
            .map(|target| {
                let value = self.value(target.metric);
                let passed = value >= target.min && target.max.is_none_or(|m| value <= m);
                TargetCheck {
                    target,
                    value,
                    passed,
                }
            })
            .collect();
        self.passed = Some(self.checks.iter().all(|c| c.passed));
        self.model = Some(model);
    }

    /// Writes the human-readable report.
    pub fn render(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(w, "Accuracy results ({} samples)", self.gen_num)?;
        writeln!(w, "  rouge1             {:.4}", self.rouge1)?;
        writeln!(w, "  rouge2             {:.4}", self.rouge2)?;
        writeln!(w, "  rougeL             {:.4}", self.rouge_l)?;
        writeln!(w, "  rougeLsum          {:.4}", self.rouge_lsum)?;
        writeln!(w, "  gen_len            {}", self.gen_len)?;
        writeln!(w, "  gen_num            {}", self.gen_num)?;
        writeln!(w, "  gen_tok_len        {}", self.gen_tok_len)?;
        writeln!(w, "  tokens_per_sample  {:.1}", self.tokens_per_sample)?;
        if self.duplicates_skipped > 0 {
            writeln!(
                w,
                "  ({} repeated log entries ignored)",
                self.duplicates_skipped
            )?;
        }
        if let Some(model) = self.model {
            writeln!(w, "Targets for {}:", model.as_str())?;
            for c in &self.checks {
                let bound = match c.target.max {
                    Some(max) => format!("{:.4} ..= {:.4}", c.target.min, max),
                    None => format!(">= {:.4}", c.target.min),
                };
                writeln!(
                    w,
                    "  {:<18} {:>14.4}  {:<30} {}",
                    metric_name(c.target.metric),
                    c.value,
                    bound,
                    if c.passed { "PASS" } else { "FAIL" }
                )?;
            }
            writeln!(
                w,
                "Result: {}",
                if self.passed == Some(true) {
                    "PASS"
                } else {
                    "FAIL"
                }
            )?;
        }
        Ok(())
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Rouge1 => "rouge1",
        Metric::Rouge2 => "rouge2",
        Metric::RougeL => "rougeL",
        Metric::RougeLsum => "rougeLsum",
        Metric::GenLen => "gen_len",
        Metric::TokensPerSample => "tokens_per_sample",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_tokens_both_dtypes() {
        assert_eq!(
            decode_hex_tokens("01000000ff000000", TokenDtype::Int32).unwrap(),
            vec![1, 255]
        );
        assert_eq!(
            decode_hex_tokens("0100000000000000", TokenDtype::Int64).unwrap(),
            vec![1]
        );
        assert_eq!(
            decode_hex_tokens("", TokenDtype::Int32).unwrap(),
            Vec::<u32>::new()
        );
        assert!(
            decode_hex_tokens("010000", TokenDtype::Int32)
                .unwrap_err()
                .contains("3 bytes")
        );
        assert!(decode_hex_tokens("zz000000", TokenDtype::Int32).is_err());
        assert!(
            decode_hex_tokens("ffffffff", TokenDtype::Int32)
                .unwrap_err()
                .contains("-1")
        );
    }

    #[test]
    fn pairwise_sum_matches_definition_shape() {
        let v: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.1).collect();
        let naive: f64 = v.iter().sum();
        assert!((pairwise_sum(&v) - naive).abs() < 1e-9);
        assert_eq!(pairwise_sum(&[1.0, 2.0]), 3.0);
        assert_eq!(round_to(38.77925, 4), 38.7792); // 38.77925 is below the tie in binary
        assert_eq!(round_to(294.45, 1), 294.4); // likewise: Python gives 294.4
    }

    #[test]
    fn targets_and_render() {
        let mut r = score_texts(
            &["The cat sat on the mat."],
            &["The cat sat on the mat."],
            &SentenceSplitter::default(),
            7,
        );
        assert_eq!(
            (r.rouge1, r.rouge_lsum, r.gen_len, r.tokens_per_sample),
            (100.0, 100.0, 23, 7.0)
        );
        r.check(Model::Llama2_70b999);
        assert_eq!(r.passed, Some(false)); // 7 tokens per sample is far below 294.45 x 0.9
        assert!(r.checks[..3].iter().all(|c| c.passed));
        let mut out = Vec::new();
        r.render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("tokens_per_sample          7.0000  265.0050 ..= 323.8950          FAIL"),
            "{text}"
        );
        assert!(text.ends_with("Result: FAIL\n"));
        let t = Model::Llama31_8b.targets();
        assert_eq!(t[0].min, 38.7792 * 0.99);
        assert_eq!(t[4].max, Some(8_167_644.0 * 1.1));
    }

    #[test]
    fn score_accuracy_end_to_end() {
        use crate::tokenizer::{HfTokenizer, tests::TINY};
        use crate::{Dataset, Sample};
        let tok = HfTokenizer::from_bytes(TINY.as_bytes()).unwrap();
        let sample = |r: &str| Sample {
            input_tokens: vec![3],
            reference: Some(r.to_string()),
            ..Sample::default()
        };
        let ds = Dataset::from_samples(
            "t",
            vec![
                sample("hello world ."),
                sample("world hello ."),
                Sample::default(),
            ],
            None,
        );
        let hex = |ids: &[i32]| {
            ids.iter()
                .map(|i| {
                    i.to_le_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                })
                .collect::<String>()
        };
        // Sample 0 answered exactly (BOS/EOS skipped), sample 1 answered
        // twice (the repeat is ignored), sample 1's first answer half right.
        let log = serde_json::json!([
            {"seq_id": 0, "qsl_idx": 0, "data": hex(&[0, 3, 4, 5, 1]), "token_count": 5},
            {"seq_id": 1, "qsl_idx": 1, "data": hex(&[4, 4]), "token_count": 2},
            {"seq_id": 2, "qsl_idx": 1, "data": hex(&[4, 3, 5]), "token_count": 3},
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlperf_log_accuracy.json");
        std::fs::write(&path, log.to_string()).unwrap();
        let r = score_accuracy(&path, &ds, &tok, &AccuracyOptions::new()).unwrap();
        assert_eq!((r.gen_num, r.duplicates_skipped, r.gen_tok_len), (2, 1, 7));
        // Pair 1: "world world" vs "world hello .": P = 1/2, R = 1/2.
        assert_eq!(r.rouge1, 75.0);
        assert_eq!(
            r.gen_len,
            "hello world .".len() as u64 + "world world".len() as u64
        );
        assert_eq!(r.tokens_per_sample, 3.5);

        let bad = serde_json::json!([{"qsl_idx": 2, "data": hex(&[3])}]);
        std::fs::write(&path, bad.to_string()).unwrap();
        let e = score_accuracy(&path, &ds, &tok, &AccuracyOptions::new()).unwrap_err();
        assert!(
            e.to_string()
                .contains("entry 0 (qsl_idx 2): sample has no reference"),
            "{e}"
        );
        let bad = serde_json::json!([{"qsl_idx": 0, "data": "abc"}]);
        std::fs::write(&path, bad.to_string()).unwrap();
        let e = score_accuracy(&path, &ds, &tok, &AccuracyOptions::new()).unwrap_err();
        assert!(e.to_string().contains("odd number of hex digits"), "{e}");
        std::fs::write(&path, "[]").unwrap();
        assert!(matches!(
            score_accuracy(&path, &ds, &tok, &AccuracyOptions::new()),
            Err(AccuracyError::Empty { .. })
        ));
    }
}
