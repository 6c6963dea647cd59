//! `harness accuracy`: scores an accuracy log as the MLPerf evaluation does.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::AccuracyArgs;

/// Scores and prints; exit 0 when the targets are met.
pub fn run(args: &AccuracyArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let _ = (args, out);
    anyhow::bail!("accuracy scoring is not wired yet")
}
