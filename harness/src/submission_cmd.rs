//! `harness submission`: the MLPerf v6.0 submission tree from run
//! directories (see the `submission` crate's `tree` module).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};
use submission::tree::{Division, RunLogs, TreeOptions, build_tree};

use crate::outcome::Outcome;

/// `--division`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DivisionArg {
    /// Closed division (official LoadGen only).
    Closed,
    /// Open division.
    Open,
}

/// Arguments of `harness submission`.
#[derive(Debug, Clone, Args)]
pub struct SubmissionArgs {
    /// Run directories: performance, accuracy (scored by harness accuracy)
    /// and audit (harness audit) runs.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Where the tree is written (`<out>/<division>/<submitter>/...`).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Division.
    #[arg(long, value_enum)]
    pub division: DivisionArg,
    /// Submitter (organisation) name.
    #[arg(long)]
    pub submitter: String,
    /// System name (systems/<system>.json, results/<system>/).
    #[arg(long)]
    pub system: String,
    /// Benchmark as MLPerf names it (llama3.1-8b, llama2-70b-99, ...).
    #[arg(long, default_value = "llama3.1-8b")]
    pub benchmark: String,
    /// A JSON object with the system description's values (the rest are
    /// written empty and listed).
    #[arg(long, value_name = "FILE")]
    pub system_json: Option<PathBuf>,
    /// A JSON object with measurements.json's values.
    #[arg(long, value_name = "FILE")]
    pub measurements_json: Option<PathBuf>,
}

fn json_object(path: Option<&Path>) -> anyhow::Result<Map<String, Value>> {
    let Some(path) = path else {
        return Ok(Map::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))? {
        Value::Object(map) => Ok(map),
        _ => bail!("{}: expected a JSON object", path.display()),
    }
}

/// Builds the tree; exit 0 when every run found its place, 3 when one was
/// refused.
pub fn main(args: &SubmissionArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let options = TreeOptions {
        division: match args.division {
            DivisionArg::Closed => Division::Closed,
            DivisionArg::Open => Division::Open,
        },
        submitter: args.submitter.clone(),
        system: args.system.clone(),
        benchmark: args.benchmark.clone(),
        system_json: json_object(args.system_json.as_deref())?,
        measurements_json: json_object(args.measurements_json.as_deref())?,
    };
    let runs = args
        .runs
        .iter()
        .map(|d| RunLogs::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let report = build_tree(&args.out, &options, &runs)?;
    for run in &report.runs {
        if run.refused.is_empty() {
            writeln!(out, "placed {}:", run.run.display())?;
            for w in &run.written {
                writeln!(out, "  {w}")?;
            }
        } else {
            writeln!(out, "refused {}:", run.run.display())?;
            for r in &run.refused {
                writeln!(out, "  {r}")?;
            }
        }
    }
    if !report.missing_fields.is_empty() {
        writeln!(out, "fill in before submitting:")?;
        for f in &report.missing_fields {
            writeln!(out, "  {f}")?;
        }
    }
    writeln!(
        out,
        "wrote {}",
        args.out
            .join(options.division.as_str())
            .join(&options.submitter)
            .display()
    )?;
    Ok(Outcome::success_if(report.all_accepted(), Outcome::Invalid))
}
