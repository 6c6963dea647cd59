//! Loading the run's dataset (the LoadGen QSL): a file, or a synthetic one.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use dataset::synthetic::{LengthDist, SyntheticSpec};
use dataset::{Dataset, DatasetFormat, DatasetOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::DatasetFormatArg;
use crate::tokenizers::TokenizerChoice;

/// The bundled sample dataset (CNN-DailyMail-shaped, llama3.1-8b token
/// ids), built into the binary so a copied or installed harness runs
/// without the checkout.
pub const BUNDLED_BYTES: &[u8] = include_bytes!("../../datasets/cnn_dailymail_sample.json");

/// How run.json names the bundled dataset (`harness accuracy` reads it back
/// from there).
pub const BUNDLED_NAME: &str = "bundled:cnn_dailymail_sample.json";

/// Reads the bundled dataset, keeping the first `limit` samples.
pub fn load_bundled(limit: Option<usize>) -> anyhow::Result<Dataset> {
    let mut options = DatasetOptions::new().with_name("cnn_dailymail_sample");
    if let Some(n) = limit {
        options = options.with_total_sample_count(n);
    }
    Ok(Dataset::load_mlperf_json_bytes(
        BUNDLED_NAME,
        BUNDLED_BYTES,
        &options,
    )?)
}

/// Where the samples come from.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    /// The dataset built into the binary ([`BUNDLED_BYTES`]).
    Bundled,
    /// A file.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: DatasetFormatArg,
    },
    /// Seeded random token ids.
    Synthetic(SyntheticSpec),
}

/// Which dataset, and how to read it.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// The source.
    pub source: DatasetSource,
    /// Keep only the first N samples.
    pub limit: Option<usize>,
    /// The served model's tokenizer: turns text-only datasets (ShareGPT)
    /// into token ids, and re-tokenizes other files' prompt text for a model
    /// whose vocabulary is not the dataset's.
    pub tokenizer: Option<TokenizerChoice>,
    /// The served model's vocabulary when it is known without a tokenizer
    /// (the built-in simulator's profile); a loaded tokenizer's own size
    /// takes precedence.
    pub vocabulary: Option<Vocabulary>,
}

/// A vocabulary size and where it comes from (for the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    /// What fixes it, as the user set it (`--sim-profile NAME`).
    pub source: String,
    /// Valid token ids are below it.
    pub size: u32,
}

impl DatasetSpec {
    /// How the run describes its dataset (run.json, logs).
    pub fn describe(&self) -> String {
        match &self.source {
            DatasetSource::Bundled => BUNDLED_NAME.to_owned(),
            DatasetSource::File { path, .. } => path.display().to_string(),
            DatasetSource::Synthetic(spec) => format!("synthetic {spec:?}"),
        }
    }
}

/// Parses a length: `N`, `MIN:MAX` (uniform) or `normal:MEAN:STD[:MIN:MAX]`.
fn length(field: &str, text: &str) -> anyhow::Result<LengthDist> {
    let parts: Vec<&str> = text.split(':').collect();
    let num = |s: &str| -> anyhow::Result<u32> {
        s.parse()
            .with_context(|| format!("--synthetic {field}={text}: {s:?} is not a whole number"))
    };
    let float = |s: &str| -> anyhow::Result<f64> {
        s.parse()
            .with_context(|| format!("--synthetic {field}={text}: {s:?} is not a number"))
    };
    Ok(match parts.as_slice() {
        [n] => LengthDist::Fixed { len: num(n)? },
        [min, max] => LengthDist::Uniform {
            min: num(min)?,
            max: num(max)?,
        },
        ["normal", mean, std] => LengthDist::Normal {
            mean: float(mean)?,
            std: float(std)?,
            min: 1,
            max: u32::MAX,
        },
        ["normal", mean, std, min, max] => LengthDist::Normal {
            mean: float(mean)?,
            std: float(std)?,
            min: num(min)?,
            max: num(max)?,
        },
        _ => bail!("--synthetic {field}={text}: expected N, MIN:MAX or normal:MEAN:STD[:MIN:MAX]"),
    })
}

/// Parses `--synthetic samples=1000,input=128:1024,output=128,prefix=0,seed=1,vocab=1000:30000`.
pub fn parse_synthetic(text: &str) -> anyhow::Result<SyntheticSpec> {
    let mut spec = SyntheticSpec::default();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--synthetic: {item:?} is not KEY=VALUE"))?;
        let whole = |v: &str| -> anyhow::Result<u64> {
            v.parse()
                .with_context(|| format!("--synthetic {key}={v}: not a whole number"))
        };
        match key {
            "samples" => spec.num_samples = whole(value)? as usize,
            "seed" => spec.seed = whole(value)?,
            "input" => spec.input_len = length(key, value)?,
            "output" => spec.output_len = length(key, value)?,
            "prefix" => spec.prefix_len = whole(value)? as u32,
            "vocab" => {
                let (min, max) = value
                    .split_once(':')
                    .with_context(|| format!("--synthetic vocab={value}: expected MIN:MAX"))?;
                spec.vocab_min = whole(min)? as u32;
                spec.vocab_max = whole(max)? as u32;
            }
            other => bail!(
                "--synthetic: unknown key {other:?} (samples, input, output, prefix, seed, vocab)"
            ),
        }
    }
    Ok(spec)
}

/// Reads the dataset a run asked for.
pub fn load(spec: &DatasetSpec) -> anyhow::Result<Dataset> {
    let mut vocabulary = spec.vocabulary.clone();
    let dataset = match &spec.source {
        DatasetSource::Bundled => load_bundled(spec.limit)?,
        DatasetSource::Synthetic(synthetic) => {
            let mut dataset = dataset::synthetic::generate(synthetic)?;
            if let Some(n) = spec.limit {
                dataset.samples.truncate(n);
                dataset.performance_sample_count = dataset.performance_sample_count.min(n);
            }
            dataset
        }
        DatasetSource::File { path, format } => {
            let mut options = DatasetOptions::new();
            options = match format {
                DatasetFormatArg::Auto => options,
                DatasetFormatArg::CnnEval => options.with_format(DatasetFormat::MlperfJson),
                DatasetFormatArg::Pickle => options.with_format(DatasetFormat::PandasPickle),
                DatasetFormatArg::Jsonl => options.with_format(DatasetFormat::Jsonl),
                DatasetFormatArg::Sharegpt => options.with_format(DatasetFormat::ShareGpt),
            };
            if let Some(n) = spec.limit {
                options = options.with_total_sample_count(n);
            }
            let tokenizer = spec
                .tokenizer
                .as_ref()
                .map(TokenizerChoice::load)
                .transpose()?;
            if let Some(tokenizer) = &tokenizer {
                options = options.with_sharegpt(
                    dataset::sharegpt::ShareGptOptions::new().with_tokenizer(Arc::clone(tokenizer)),
                );
            }
            if let Some(size) = tokenizer.as_ref().and_then(|t| t.vocab_size()) {
                let source = match &spec.tokenizer {
                    Some(TokenizerChoice::File(file)) => format!("--tokenizer {}", file.display()),
                    _ => format!("--tokenizer {}", crate::tokenizers::SERVER),
                };
                vocabulary = Some(Vocabulary { source, size });
            }
            let mut dataset = load_file(path, &options)?;
            // ShareGPT was just tokenized with it.
            if let Some(tokenizer) = &tokenizer
                && !matches!(format, DatasetFormatArg::Sharegpt)
            {
                dataset
                    .retokenize(&**tokenizer)
                    .with_context(|| format!("--tokenizer: {}", path.display()))?;
            }
            dataset
        }
    };
    if dataset.samples.is_empty() {
        bail!("{}: the dataset has no samples", spec.describe());
    }
    // Before any query: a server would refuse such a prompt, or read ids of
    // another model's vocabulary.
    if let Some(vocabulary) = &vocabulary {
        // The caller's context names the dataset.
        dataset::check_token_ids(&dataset.samples, vocabulary.size).with_context(|| {
            format!(
                "token ids checked against the vocabulary of {}",
                vocabulary.source
            )
        })?;
    }
    Ok(dataset)
}

/// Loads a dataset file with a byte progress bar on stderr while a person
/// watches (stderr a terminal); quiet otherwise, so scripts and CI see
/// nothing new.
fn load_file(path: &std::path::Path, options: &DatasetOptions) -> anyhow::Result<Dataset> {
    if !std::io::stderr().is_terminal() {
        return Ok(Dataset::load(path, options)?);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
        .with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
        .with_message(format!("loading {}", path.display()));
    let loaded = Dataset::load_with_progress(path, options, &mut |read, total| {
        bar.set_length(total);
        bar.set_position(read);
    });
    bar.finish_and_clear();
    Ok(loaded?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_specs_parse_every_length_form() {
        let spec = parse_synthetic(
            "samples=10, input=64:128, output=normal:100:20:1:200, prefix=16, seed=3, vocab=5:9",
        )
        .unwrap();
        assert_eq!(spec.num_samples, 10);
        assert_eq!(spec.input_len, LengthDist::Uniform { min: 64, max: 128 });
        assert_eq!(
            spec.output_len,
            LengthDist::Normal {
                mean: 100.0,
                std: 20.0,
                min: 1,
                max: 200
            }
        );
        assert_eq!(
            (spec.prefix_len, spec.seed, spec.vocab_min, spec.vocab_max),
            (16, 3, 5, 9)
        );
        assert_eq!(
            parse_synthetic("input=32").unwrap().input_len,
            LengthDist::Fixed { len: 32 }
        );
    }

    #[test]
    fn the_bundled_dataset_is_in_the_binary() {
        let all = load_bundled(None).unwrap();
        assert!(all.samples.len() > 8, "{}", all.samples.len());
        assert!(all.samples.iter().all(|s| !s.input_tokens.is_empty()));
        assert_eq!(load_bundled(Some(3)).unwrap().samples.len(), 3);
    }

    #[test]
    fn bad_synthetic_specs_name_the_key() {
        assert!(
            parse_synthetic("size=3")
                .unwrap_err()
                .to_string()
                .contains("unknown key \"size\"")
        );
        assert!(
            parse_synthetic("input=a")
                .unwrap_err()
                .to_string()
                .contains("input=a")
        );
        assert!(
            parse_synthetic("samples")
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
    }
}
