//! The harness binary this test suite builds.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `harness ARGS` in `cwd` to completion.
pub fn harness(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}
