//! Dispatch of the subcommands and the process exit code.
//!
//! | exit code | meaning |
//! |---|---|
//! | 0 | the run finished and is VALID (or the command succeeded) |
//! | 1 | an error: bad arguments or input, unreachable backend, I/O |
//! | 2 | a usage error (clap) |
//! | 3 | the run finished but is INVALID (reasons printed and in run.json) |
//! | 130 | the run was interrupted (Ctrl-C); what was measured is kept |

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// The run finished but is INVALID.
pub const EXIT_INVALID: u8 = 3;
/// The run was interrupted.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing(&cli.log);
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The command line as run, with secrets' values replaced.
fn redacted_command() -> Vec<String> {
    let mut out = Vec::new();
    // API keys never come on the command line (--api-key-env / -file), but
    // URLs may carry user info.
    for arg in std::env::args() {
        if let Some(url) = arg.strip_prefix("--backend=") {
            out.push(format!("--backend={}", crate::run_cmd::redact_url(url)));
            continue;
        }
        // A PostgreSQL history URL (--db) may carry a password.
        if let Some(db) = arg.strip_prefix("--db=") {
            out.push(format!("--db={}", history::Database::parse(db)));
            continue;
        }
        out.push(if arg.starts_with("http") {
            crate::run_cmd::redact_url(&arg)
        } else if arg.starts_with("postgres") {
            history::Database::parse(&arg).to_string()
        } else {
            arg
        });
    }
    out
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Run(args) => {
            let config = crate::run_cmd::RunConfig::from_args(&args, redacted_command())?;
            let result = crate::run_cmd::execute(&config, &mut out)?;
            out.flush()?;
            Ok(if result.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if result.verdict.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            })
        }
        Command::Sweep(args) => {
            let result = crate::sweep_cmd::run(&args, &redacted_command(), &mut out)?;
            out.flush()?;
            Ok(if result.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if result.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Compare(args) => {
            crate::compare_cmd::run_compare(&args, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate(args) => {
            let passed = crate::compare_cmd::run_gate(&args, &mut out)?;
            out.flush()?;
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::FindPeak(args) => {
            let found = crate::find_peak_cmd::run(&args, &redacted_command(), &mut out)?;
            out.flush()?;
            Ok(if found {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            })
        }
        Command::History(args) => {
            crate::history_cmd::run(&args, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => {
            crate::report_cmd::generate(&args.run_dir, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Accuracy(args) => crate::accuracy_cmd::run(&args, &mut out),
        Command::Sim(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::sim_cmd::run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
