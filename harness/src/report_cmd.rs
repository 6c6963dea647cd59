//! `harness report RUN_DIR`: regenerates a run's reports (summary.json,
//! CSV exports, PNG charts, report.html) from its files alone; `harness run`
//! calls the same function at the end.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::outcome::Outcome;

/// `harness report`.
pub fn main(args: &ReportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    generate(&args.run_dir, out)?;
    Ok(Outcome::Success)
}

/// Writes the reports of a loaded and summarised run that `harness run`
/// just finished, and lists what was written. The set is rendered to
/// temporary files and put in place together; a signal meanwhile marks the
/// run interrupted instead (see [`crate::shutdown`]).
pub fn write(
    data: &reports::RunData,
    summary: &reports::Summary,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    crate::shutdown::reporting();
    let outputs = reports::stage_reports(data, summary, &reports::ReportOptions::default())
        .and_then(|staged| crate::shutdown::commit_reports(|| staged.commit()));
    let outputs = outputs.with_context(|| format!("reporting on {}", data.dir.display()))?;
    let mut text = Vec::new();
    outputs.render(&mut text)?;
    out.write_all(&text)?;
    Ok(())
}

/// Generates every report of `dir` and lists what was written.
pub fn generate(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let outputs = reports::generate(dir, &reports::ReportOptions::default())
        .with_context(|| format!("reporting on {}", dir.display()))?;
    let mut text = Vec::new();
    outputs.render(&mut text)?;
    out.write_all(&text)?;
    Ok(())
}
