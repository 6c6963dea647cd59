//! Resuming a sweep or a peak search: its own command line, stored in its
//! record when it began, is parsed again, so `--resume DIR` alone continues
//! with exactly the settings it started with. Flags given beside `--resume`
//! must agree with the stored ones; one that differs would mix two settings
//! in one table, so it is refused by name.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Flags that change nothing a resumed record holds.
const HARMLESS: [&str; 3] = ["resume", "log", "quiet"];

fn subcommand_matches(command: &[String], subcommand: &str) -> anyhow::Result<ArgMatches> {
    let matches = Cli::command()
        .try_get_matches_from(command)
        .map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    match matches.subcommand() {
        Some((name, sub)) if name == subcommand => Ok(sub.clone()),
        _ => anyhow::bail!("not a `{subcommand}` command line: {}", command.join(" ")),
    }
}

fn raw(matches: &ArgMatches, id: &str) -> Vec<String> {
    matches
        .get_raw(id)
        .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// The arguments `stored` (the command line the record began with) gave
/// `subcommand`, after checking that `current` (the command line running
/// now, `--resume` included) sets no flag to another value. `what` names
/// the record in messages ("sweep", "peak search").
pub fn restore<T: FromArgMatches>(
    stored: &[String],
    current: &[String],
    subcommand: &str,
    what: &str,
    dir: &std::path::Path,
) -> anyhow::Result<T> {
    let stored_matches = subcommand_matches(stored, subcommand)
        .map_err(|e| anyhow::anyhow!("{}: the stored command line: {e}", dir.display()))?;
    let current_matches = subcommand_matches(current, subcommand)?;
    let command = Cli::command();
    let args = command
        .find_subcommand(subcommand)
        .map(|c| c.get_arguments().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let mut conflicts = Vec::new();
    for arg in &args {
        let id = arg.get_id().as_str();
        if HARMLESS.contains(&id)
            || current_matches.value_source(id) != Some(ValueSource::CommandLine)
        {
            continue;
        }
        let (now, then) = (raw(&current_matches, id), raw(&stored_matches, id));
        if now != then {
            let flag = arg
                .get_long()
                .map_or_else(|| id.to_owned(), |l| format!("--{l}"));
            let shown = |v: &[String]| {
                if v.is_empty() {
                    "not set".to_owned()
                } else {
                    v.join(" ")
                }
            };
            conflicts.push(format!(
                "{flag} {} (the {what} has {})",
                shown(&now),
                shown(&then)
            ));
        }
    }
    if !conflicts.is_empty() {
        return Err(crate::outcome::UsageError(format!(
            "--resume {dir} continues the {what} with its own settings, and these flags differ \
             from them: {}. Resume with --resume {dir} alone, or start a new {what}.",
            conflicts.join("; "),
            dir = dir.display(),
        ))
        .into());
    }
    T::from_arg_matches(&stored_matches)
        .map_err(|e| anyhow::anyhow!("{}: the stored command line: {e}", dir.display()))
}

/// Writes `value` as `dir/name` atomically (temporary file, then rename), so
/// an interruption never leaves a half-written record.
pub fn write_json_atomic(
    dir: &std::path::Path,
    name: &str,
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}
