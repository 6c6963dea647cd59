//! `harness audit TEST06`: the compliance test's audit.config applied over
//! the run's settings (as LoadGen applies audit.config), the audited run,
//! then the verification MLCommons' `compliance/TEST06/run_verification.py`
//! does, with its output files (see the `submission` crate).

use std::io::Write;

use anyhow::Context as _;
use submission::audit::{AuditTest, Test06Options, TokenDtype, verify_test06, write_test06};

use crate::cli::AuditArgs;
use crate::outcome::Outcome;
use crate::run_cmd::{RunConfig, execute};

/// Runs the audited test and verifies it; exit 0 when the verification
/// passes, 3 when it fails.
pub fn main(args: &AuditArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let test = AuditTest::from_name(&args.test)
        .with_context(|| format!("unknown compliance test {}", args.test))?;
    if args.run.audit_conf.is_some() {
        anyhow::bail!("--audit-conf: harness audit applies the {test} audit.config itself");
    }
    let dtype =
        TokenDtype::from_name(&args.dtype).with_context(|| format!("--dtype {}", args.dtype))?;
    let mut run = args.run.clone();
    run.audit_text = Some(("audit.config".to_owned(), test.audit_config().to_owned()));
    let config = RunConfig::from_args(&run, crate::shared::redacted_command())?;
    let result = execute(&config, out)?;
    let audit_config = result.dir.join("audit.config");
    std::fs::write(&audit_config, test.audit_config())
        .with_context(|| format!("writing {}", audit_config.display()))?;
    if result.interrupted {
        return Ok(Outcome::Interrupted);
    }
    let log = result.dir.join("mlperf_log_accuracy.json");
    let options = Test06Options {
        offline: config.settings.scenario == loadgen::Scenario::Offline,
        dtype,
        eos_token_id: args.eos_token_id,
    };
    let report = verify_test06(&log, &options)?;
    let target = args
        .compliance_dir
        .clone()
        .unwrap_or_else(|| result.dir.clone());
    let dir = write_test06(&report, &log, &target)?;
    writeln!(out, "{test} verification of {}:", log.display())?;
    for message in &report.messages {
        writeln!(out, "{message}")?;
    }
    report.render(out)?;
    writeln!(out, "wrote {}", dir.display())?;
    Ok(Outcome::success_if(report.passed(), Outcome::Invalid))
}
