//! `harness accuracy`: scores an accuracy log as the MLPerf evaluation does
//! (ROUGE-1/2/L/Lsum, gen_len, tokens per sample) and checks the model's
//! targets.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dataset::accuracy::{AccuracyOptions, Model, TokenDtype, score_accuracy};
use dataset::tokenizer::{HfTokenizer, Tokenizer};

use dataset::{Dataset, DatasetOptions};

use crate::cli::AccuracyArgs;
use crate::outcome::Outcome;
use crate::replay::SimTokenizer;
use crate::tokenizers::BlockingRemoteTokenizer;

/// The accuracy log's file name in a run directory.
const ACCURACY_LOG: &str = "mlperf_log_accuracy.json";

fn remote_decoder(url: &str, api_key_env: Option<&str>) -> anyhow::Result<BlockingRemoteTokenizer> {
    let key = api_key_env.map(sut::ApiKey::from_env).transpose()?;
    BlockingRemoteTokenizer::connect(url, key.as_ref())
        .with_context(|| format!("--detokenize-url {}", crate::shared::redact_url(url)))
}

/// The tokenizer a run recorded in run.json (`config.tokenizer`, set when
/// its token ids are not the dataset's vocabulary): a tokenizer.json, or a
/// server URL whose /detokenize decodes them.
fn recorded_tokenizer(manifest: &rundir::RunManifest) -> (Option<PathBuf>, Option<String>) {
    let recorded = &manifest.config["tokenizer"];
    let file = recorded["file"].as_str().map(PathBuf::from);
    let server = recorded["server"]
        .as_str()
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .map(str::to_owned);
    (file, server)
}

/// A validated `harness accuracy`.
#[derive(Debug)]
struct AccuracyConfig {
    log: PathBuf,
    dataset: PathBuf,
    tokenizer: Option<PathBuf>,
    detokenize_url: Option<String>,
    sim_profile: Option<String>,
    model: Option<Model>,
    dtype: TokenDtype,
}

impl AccuracyConfig {
    fn from_args(args: &AccuracyArgs) -> anyhow::Result<AccuracyConfig> {
        let (log, manifest) = if args.path.is_dir() {
            let manifest = rundir::RunManifest::read(&args.path).ok();
            (args.path.join(ACCURACY_LOG), manifest)
        } else {
            (args.path.clone(), None)
        };
        if !log.is_file() {
            bail!(
                "{}: no accuracy log (run with --test-mode AccuracyOnly or SubmissionRun)",
                log.display()
            );
        }
        let dataset = match (
            &args.dataset_path,
            manifest.as_ref().and_then(|m| m.dataset.clone()),
        ) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => PathBuf::from(path),
            (None, None) => bail!(
                "--dataset-path is needed: {} is not in a run directory",
                log.display()
            ),
        };
        // A run against the simulator decodes with the simulator's own
        // vocabulary unless a tokenizer is given.
        let sim_profile = manifest
            .as_ref()
            .and_then(|m| m.backends.first())
            .and_then(|b| b.strip_prefix("sim://"))
            .map(str::to_owned);
        let (mut tokenizer, mut detokenize_url) =
            (args.tokenizer.clone(), args.detokenize_url.clone());
        if tokenizer.is_none() && detokenize_url.is_none() {
            (tokenizer, detokenize_url) = manifest
                .as_ref()
                .map(recorded_tokenizer)
                .unwrap_or_default();
        }
        if tokenizer.is_none() && detokenize_url.is_none() && sim_profile.is_none() {
            bail!(
                "--tokenizer tokenizer.json (or --detokenize-url URL) is needed to decode the output token ids"
            );
        }
        let dtype = match args.dtype.as_str() {
            "int32" => TokenDtype::Int32,
            "int64" => TokenDtype::Int64,
            other => bail!("--dtype must be int32 or int64, not {other:?}"),
        };
        Ok(AccuracyConfig {
            log,
            dataset,
            tokenizer,
            detokenize_url,
            sim_profile,
            model: Model::from_name(&args.lg_model_name),
            dtype,
        })
    }
}

/// Scores and prints; exit 0 when the targets are met (or there are none),
/// 3 when a target is missed.
pub fn main(args: &AccuracyArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = AccuracyConfig::from_args(args)?;
    let dataset = if config.dataset == Path::new(crate::data::BUNDLED_NAME) {
        crate::data::load_bundled(None)?
    } else {
        Dataset::load(&config.dataset, &DatasetOptions::new())
            .with_context(|| format!("loading {}", config.dataset.display()))?
    };
    let tokenizer: Box<dyn Tokenizer> = match (
        &config.tokenizer,
        &config.detokenize_url,
        &config.sim_profile,
    ) {
        (Some(path), _, _) => Box::new(
            HfTokenizer::from_file(path)
                .with_context(|| format!("loading tokenizer {}", path.display()))?,
        ),
        (None, Some(url), _) => Box::new(remote_decoder(url, args.api_key_env.as_deref())?),
        (None, None, Some(profile)) => Box::new(SimTokenizer::for_profile(profile)?),
        (None, None, None) => bail!("no tokenizer"),
    };
    let mut options = AccuracyOptions::new().with_dtype(config.dtype);
    if let Some(model) = config.model {
        options = options.with_model(model);
    }
    let report = score_accuracy(&config.log, &dataset, &*tokenizer, &options)?;
    let mut text = Vec::new();
    report.render(&mut text)?;
    out.write_all(&text)?;
    if let Some(parent) = accuracy_json_dir(&config.log) {
        let path = parent.join("accuracy.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        writeln!(out, "wrote {}", path.display())?;
    }
    Ok(Outcome::success_if(
        report.passed != Some(false),
        Outcome::Invalid,
    ))
}

/// `accuracy.json` goes next to the log when the log is in a run directory.
fn accuracy_json_dir(log: &Path) -> Option<&Path> {
    let parent = log.parent()?;
    parent
        .join(rundir::MANIFEST_FILE)
        .is_file()
        .then_some(parent)
}
