//! `harness`: MLPerf-style load testing for LLM serving.
//!
//! `main` only parses the command line and hands over to [`app::main`]; each
//! subcommand lives in its own module and validates its arguments into a
//! config struct first.

mod accuracy_cmd;
mod app;
mod audit_cmd;
mod cli;
mod compare_cmd;
mod data;
mod find_peak_cmd;
mod history_cmd;
mod hooks;
mod outcome;
mod progress;
mod push_cmd;
mod replay;
mod report_cmd;
mod resume;
mod run_cmd;
mod run_telemetry;
mod screen;
mod serve_cmd;
mod shared;
mod shutdown;
mod sim_cmd;
mod submission_cmd;
mod sweep_cmd;
mod table;
mod tokenizers;

use clap::Parser;

fn main() -> std::process::ExitCode {
    app::main(cli::Cli::parse())
}
