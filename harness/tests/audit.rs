//! `harness audit TEST06` end to end against the built-in simulator: the
//! audit.config overrides the flags as LoadGen's does, the run samples
//! about 100 responses into the accuracy log, and TEST06's outputs are
//! written and pass. With `MLPERF_INFERENCE_DIR` and `PANDAS_PYTHON` set,
//! MLCommons' own `run_verification.py` reads the same log and writes the
//! same `verify_accuracy.txt`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common {
    pub mod paths;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use common::paths::sample_dataset;
use serde_json::Value;

fn detail_value(dir: &Path, key: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("mlperf_log_detail.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix(":::MLLOG "))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("{key} not logged"))["value"]
        .clone()
}

#[test]
fn audit_test06_runs_the_audited_test_and_writes_the_verification() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
        scratch.path().join("user.conf"),
        "*.Server.target_qps = 200\n*.*.min_duration = 60000\n",
    )
    .unwrap();
    let dataset = sample_dataset();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .args([
            "audit",
            "TEST06",
            "--quiet",
            "--no-report",
            "--no-history",
            "--user-conf",
            "user.conf",
            "--scenario",
            "Server",
            // The audit.config's mode (performance) wins over the flag.
            "--test-mode",
            "AccuracyOnly",
            "--sim-profile",
            "tiny-fast",
            "--max-tokens",
            "16",
        ])
        .arg("--dataset-path")
        .arg(&dataset)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{output:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir: PathBuf = std::fs::read_dir(scratch.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The audit's settings, over the user.conf's 60 s and the flag.
    assert_eq!(detail_value(&dir, "effective_test_mode"), "PerformanceOnly");
    assert_eq!(detail_value(&dir, "effective_min_duration_ms"), 0);
    assert_eq!(detail_value(&dir, "effective_min_query_count"), 100);
    assert_eq!(
        detail_value(&dir, "effective_accuracy_log_sampling_target"),
        100
    );
    assert_eq!(
        detail_value(&dir, "effective_sample_concatenate_permutation"),
        false
    );
    assert!(
        detail_value(&dir, "warning_generic_message")
            .as_str()
            .unwrap()
            .starts_with("Found Audit Config file (audit.config).")
    );
    assert!(dir.join("audit.config").is_file());
    // Responses were sampled into the accuracy log, with first tokens.
    let log: Value =
        serde_json::from_slice(&std::fs::read(dir.join("mlperf_log_accuracy.json")).unwrap())
            .unwrap();
    let entries = log.as_array().unwrap();
    assert!(entries.len() > 20, "{} entries", entries.len());
    assert!(entries.iter().all(|e| e["token_data"].is_string()));
    let verify = std::fs::read_to_string(dir.join("TEST06/verify_accuracy.txt")).unwrap();
    assert_eq!(
        verify,
        "First token check pass: True\nEOS check pass: True\n\
         Sample length check pass: True\nTEST06 verification complete\n"
    );
    assert!(stdout.contains("TEST06 verification complete"), "{stdout}");
    assert_eq!(
        std::fs::read(dir.join("TEST06/accuracy/mlperf_log_accuracy.json")).unwrap(),
        std::fs::read(dir.join("mlperf_log_accuracy.json")).unwrap()
    );

    // MLCommons' script on the same log.
    let (Ok(inference), Ok(python)) = (
        std::env::var("MLPERF_INFERENCE_DIR"),
        std::env::var("PANDAS_PYTHON"),
    ) else {
        eprintln!("skipping the MLCommons script: MLPERF_INFERENCE_DIR or PANDAS_PYTHON unset");
        return;
    };
    let theirs = scratch.path().join("theirs");
    let out = Command::new(python)
        .arg(Path::new(&inference).join("compliance/TEST06/run_verification.py"))
        .arg("-c")
        .arg(&dir)
        .arg("-o")
        .arg(&theirs)
        .args(["-s", "Server"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(theirs.join("TEST06/verify_accuracy.txt")).unwrap(),
        verify
    );
}
