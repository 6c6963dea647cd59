//! Running a Python peer (pandas, rouge, tokenizers) from a test.

use std::process::Command;

/// Runs `command` (a peer's python with its script) to the end, fails the
/// test with the peer's error output if it did not succeed, and returns
/// what it wrote on stdout.
pub fn run_peer(command: &mut Command) -> Vec<u8> {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        command.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
