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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SweepArgs;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_stored_settings_come_back_and_differing_flags_are_refused_by_name() {
        let stored = argv(&[
            "harness",
            "sweep",
            "--vary",
            "target_qps=1,2",
            "--max-tokens",
            "8",
        ]);
        let dir = std::path::Path::new("runs/s");
        let alone = argv(&["harness", "sweep", "--resume", "runs/s"]);
        let args: SweepArgs = restore(&stored, &alone, "sweep", "sweep", dir).unwrap();
        assert_eq!(args.run.max_tokens, 8, "not the default 128");
        assert_eq!(args.vary, ["target_qps=1,2"]);
        // The same value again, or a flag that changes nothing, is fine.
        let same = argv(&[
            "harness",
            "sweep",
            "--resume",
            "runs/s",
            "--max-tokens",
            "8",
            "--quiet",
        ]);
        assert!(restore::<SweepArgs>(&stored, &same, "sweep", "sweep", dir).is_ok());
        let other = argv(&[
            "harness",
            "sweep",
            "--resume",
            "runs/s",
            "--max-tokens",
            "16",
            "--target-qps",
            "3",
        ]);
        let error = restore::<SweepArgs>(&stored, &other, "sweep", "sweep", dir).unwrap_err();
        assert!(error.downcast_ref::<crate::outcome::UsageError>().is_some());
        let text = error.to_string();
        assert!(text.contains("--max-tokens 16 (the sweep has 8)"), "{text}");
        assert!(
            text.contains("--target-qps 3 (the sweep has not set)"),
            "{text}"
        );
    }
}
