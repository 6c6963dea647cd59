//! Dispatch of the subcommands. Each subcommand's entry point has the same
//! shape, `fn main(args, out) -> anyhow::Result<Outcome>`; the exit code is
//! decided in one place, [`crate::outcome::exit_status`].

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::outcome::{Outcome, exit_status};

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing(&cli.log);
    // The simulator serves until Ctrl-C and handles it itself.
    if !matches!(cli.command, Command::Sim(_)) {
        crate::shutdown::install();
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = dispatch(cli.command, &mut out).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    if let Err(error) = &result {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {}", error_chain(error));
    }
    exit_status(&result)
}

/// The error and its causes on one line, each cause once: many errors
/// already quote their source in their own text.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn init_tracing(filter: &str) {
    let (env_filter, invalid) = match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (tracing_subscriber::EnvFilter::new("warn"), Some(e)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(crate::progress::AboveBars)
        .try_init();
    if let Some(e) = invalid {
        tracing::warn!(
            "invalid log filter {filter:?} (--log or HARNESS_LOG): {e}; logging warnings only"
        );
    }
}

fn dispatch(command: Command, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match command {
        Command::Run(args) => crate::run_cmd::main(&args, out),
        Command::Sweep(args) => crate::sweep_cmd::main(&args, out),
        Command::Compare(args) => crate::compare_cmd::main_compare(&args, out),
        Command::Gate(args) => crate::compare_cmd::main_gate(&args, out),
        Command::FindPeak(args) => crate::find_peak_cmd::main(&args, out),
        Command::History(args) => crate::history_cmd::main(&args, out),
        Command::Report(args) => crate::report_cmd::main(&args, out),
        Command::Accuracy(args) => crate::accuracy_cmd::main(&args, out),
        Command::Sim(args) => crate::sim_cmd::main(&args, out),
        Command::Audit(args) => crate::audit_cmd::main(&args, out),
        Command::Submission(args) => crate::submission_cmd::main(&args, out),
        Command::Serve(args) => crate::serve_cmd::main(&args, out),
        Command::Push(args) => crate::push_cmd::main(&args, out),
    }
}
