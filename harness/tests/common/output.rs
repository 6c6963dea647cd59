//! A finished command's output, for assertion messages.

use std::process::Output;

/// The exit status, stdout and stderr of `output`, for an assertion message.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
