//! Helpers every subcommand may use: secrets kept out of what is written or
//! printed, and the defaults several commands share (the history database,
//! the built-in user.conf and dataset). Nothing here depends on another
//! module of the binary.

use std::path::Path;

/// The history database's file name inside an output directory.
pub const DEFAULT_DB_FILE: &str = "history.sqlite";

/// The output directory `harness run` and its relatives default to.
pub const DEFAULT_OUTPUT_DIR: &str = "runs";

/// The example user.conf, used when no --user-conf is given.
pub const BUILTIN_USER_CONF: &str = include_str!("../../user.conf");

/// The history database runs under `output_dir` record into by default.
pub fn default_db(output_dir: &Path) -> history::Database {
    output_dir.join(DEFAULT_DB_FILE).into()
}

/// A URL without user info or query string (credentials never reach
/// run.json, logs or the terminal): the SUT's, so there is one.
pub use sut::redact_url;

/// `args` (a command line) with secrets' values replaced.
pub fn redact_command(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    // API keys never come on the command line (--api-key-env / -file), but
    // URLs may carry user info and --header values may be credentials.
    let mut header_value_next = false;
    for arg in args {
        if std::mem::take(&mut header_value_next) {
            out.push(redact_header(&arg));
            continue;
        }
        if arg == "--header" {
            header_value_next = true;
            out.push(arg);
            continue;
        }
        if let Some(header) = arg.strip_prefix("--header=") {
            out.push(format!("--header={}", redact_header(header)));
            continue;
        }
        if let Some(url) = arg.strip_prefix("--backend=") {
            out.push(format!("--backend={}", redact_url(url)));
            continue;
        }
        // A PostgreSQL history URL (--db) may carry a password.
        if let Some(db) = arg.strip_prefix("--db=") {
            out.push(format!("--db={}", history::Database::parse(db)));
            continue;
        }
        out.push(if arg.starts_with("http") {
            redact_url(&arg)
        } else if arg.starts_with("postgres") {
            history::Database::parse(&arg).to_string()
        } else {
            arg
        });
    }
    out
}

/// A `--header 'Name: value'` with its value replaced, unless the value only
/// names where the secret is (`@env:VAR`, `@file:PATH`).
fn redact_header(spec: &str) -> String {
    match spec.split_once(':') {
        Some((name, value)) => {
            let value = value.trim();
            if value.starts_with("@env:") || value.starts_with("@file:") {
                format!("{name}: {value}")
            } else {
                format!("{name}: <redacted>")
            }
        }
        None => "<redacted>".to_owned(),
    }
}

/// This process's command line, redacted (recorded in run.json).
pub fn redacted_command() -> Vec<String> {
    redact_command(std::env::args())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_never_survive_redaction_but_their_sources_do() {
        let args = [
            "harness",
            "run",
            "--header",
            "x-api-key: sk-123",
            "--header=Authorization: Basic abc",
            "--header",
            "x-key: @env:MY_KEY",
            "--header",
            "nocolon-secret",
        ]
        .map(String::from);
        let redacted = redact_command(args).join(" ");
        assert_eq!(
            redacted,
            "harness run --header x-api-key: <redacted> --header=Authorization: <redacted> \
             --header x-key: @env:MY_KEY --header <redacted>"
        );
    }

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact_url("https://user:secret@host:8000/v1?key=abc"),
            "https://host:8000/v1"
        );
        assert_eq!(redact_url("http://127.0.0.1:8000"), "http://127.0.0.1:8000");
    }

    #[test]
    fn command_lines_lose_url_passwords() {
        let line = redact_command(
            [
                "harness",
                "run",
                "--backend=http://u:pw@h:1/v1",
                "http://a:b@c",
                "--db=postgres://me:hunter2@db/x",
            ]
            .map(String::from),
        );
        let text = line.join(" ");
        assert!(!text.contains("pw@") && !text.contains("hunter2") && !text.contains("a:b@"));
        assert!(text.contains("--backend=http://h:1/v1"), "{text}");
    }

    #[test]
    fn the_default_database_lives_in_the_output_directory() {
        assert_eq!(
            default_db(Path::new("runs")).to_string(),
            Path::new("runs")
                .join("history.sqlite")
                .display()
                .to_string()
        );
    }
}
