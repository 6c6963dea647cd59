//! What a subcommand ended with, and the one mapping of outcomes to the
//! process exit code.
//!
//! | exit code | meaning |
//! |---|---|
//! | 0 | the run finished and is VALID (or the command succeeded) |
//! | 1 | an error: bad arguments or input, unreachable backend, I/O; a gate that fails; a sweep with points that could not run |
//! | 2 | a usage error (clap, or [`UsageError`]: a flag or rule that cannot be carried out) |
//! | 3 | the run finished but is INVALID (reasons printed and in run.json); an accuracy target missed; find-peak found no VALID peak |
//! | 4 | compare/gate refused the runs ([`Refused`]: crashed, interrupted, INVALID because queries failed, or different workloads) |
//! | 130 | the run was interrupted (Ctrl-C, SIGTERM); what was measured is kept |

use std::process::ExitCode;

/// How a subcommand that did not fail with an error ended. Every
/// subcommand's entry point returns `anyhow::Result<Outcome>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the run is VALID, or the command did what it was asked.
    Success,
    /// The command ran to the end but its answer is "no": a gate failed, a
    /// sweep had points that could not run.
    Failed,
    /// The run finished but is INVALID (or a target was missed).
    Invalid,
    /// Stopped by a signal before it finished.
    Interrupted,
}

impl Outcome {
    /// [`Outcome::Success`] when `ok`, else `otherwise`.
    pub fn success_if(ok: bool, otherwise: Outcome) -> Outcome {
        if ok { Outcome::Success } else { otherwise }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failed => 1,
            Outcome::Invalid => 3,
            Outcome::Interrupted => 130,
        }
    }
}

/// A command line that cannot be carried out as asked, found after clap
/// parsed it: an unknown metric name, a flag that conflicts with a resumed
/// record (exit 2, like clap's own usage errors).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `compare` or `gate` refusing runs it cannot judge: crashed, interrupted,
/// INVALID because queries failed, or of different workloads (exit 4).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Exit code of a [`UsageError`].
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a [`Refused`].
pub const EXIT_REFUSED: u8 = 4;

/// The exit status of a subcommand's result: its outcome's code, 2 for a
/// [`UsageError`], 4 for [`Refused`], or 1 for any other error (clap exits
/// with 2 on a usage error before any of this runs).
pub fn exit_status(result: &anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) if e.downcast_ref::<UsageError>().is_some() => ExitCode::from(EXIT_USAGE),
        Err(e) if e.downcast_ref::<Refused>().is_some() => ExitCode::from(EXIT_REFUSED),
        Err(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Outcome::Success.exit_code(), 0);
        assert_eq!(Outcome::Failed.exit_code(), 1);
        assert_eq!(Outcome::Invalid.exit_code(), 3);
        assert_eq!(Outcome::Interrupted.exit_code(), 130);
        assert_eq!(exit_status(&Err(anyhow::anyhow!("x"))), ExitCode::FAILURE);
        assert_eq!(
            exit_status(&Err(UsageError("x".into()).into())),
            ExitCode::from(2)
        );
        // Context added on the way up keeps the code.
        let refused: anyhow::Error = Refused("x".into()).into();
        assert_eq!(
            exit_status(&Err(refused.context("comparing"))),
            ExitCode::from(4)
        );
        assert_eq!(
            Outcome::success_if(false, Outcome::Invalid),
            Outcome::Invalid
        );
    }
}
