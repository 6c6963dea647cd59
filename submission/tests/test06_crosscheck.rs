//! TEST06 verification against MLCommons' own script: for each accuracy
//! log below (clean, each fault, the script's quirks, Offline), our
//! `verify_accuracy.txt`, the copied accuracy log and the messages equal
//! what `compliance/TEST06/run_verification.py` writes and prints, and an
//! entry that makes the script crash is an error here.
//!
//! Needs `MLPERF_INFERENCE_DIR` (an mlcommons/inference checkout) and
//! `PANDAS_PYTHON` (a Python with numpy, from `scripts/peers/pandas.sh`);
//! skips when either is unset.
// Integration tests are not #[test]-scoped for clippy's allow-*-in-tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use submission::audit::{Test06Options, verify_test06, write_test06};

fn hex(tokens: &[i32]) -> String {
    tokens
        .iter()
        .flat_map(|t| t.to_le_bytes())
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn entry(data: &[i32], first: &[i32], count: i64) -> Value {
    json!({"seq_id": 0, "qsl_idx": 3, "data": hex(data), "token_data": hex(first), "token_count": count})
}

/// (name, scenario, log entries).
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    let mut bad_first = entry(&[5, 6], &[5], 2);
    bad_first["token_data"] = json!("XYZ");
    let mut bad_data = entry(&[5, 6], &[5], 2);
    bad_data["data"] = json!("050000");
    let mut float_count = entry(&[5, 6, 7], &[5], 3);
    float_count["token_count"] = json!(3.0);
    vec![
        (
            "clean",
            "Server",
            json!([entry(&[5, 6, 2], &[5], 3), entry(&[9, 9], &[9], 2)]),
        ),
        (
            "clean-offline",
            "Offline",
            json!([entry(&[5, 6, 2], &[], 3)]),
        ),
        ("empty-log", "Server", json!([])),
        (
            "first-token-differs",
            "Server",
            json!([entry(&[5, 6], &[7], 2)]),
        ),
        (
            "first-token-differs-offline",
            "Offline",
            json!([entry(&[5, 6], &[7], 2)]),
        ),
        (
            "two-trailing-eos",
            "Interactive",
            json!([entry(&[5, 2, 2], &[5], 3)]),
        ),
        (
            "eos-inside-then-end",
            "Server",
            json!([entry(&[2, 5, 2, 6, 2], &[2], 5)]),
        ),
        ("only-eos-pair", "Server", json!([entry(&[2, 2], &[2], 2)])),
        (
            "count-mismatch",
            "Offline",
            json!([entry(&[5, 6], &[5], 3)]),
        ),
        (
            "long-first-token",
            "Server",
            json!([entry(&[5], &[5, 9], 1)]),
        ),
        ("unreadable-token-data", "Server", json!([bad_first])),
        ("float-token-count", "SingleStream", json!([float_count])),
        (
            "mismatch-before-unreadable",
            "Server",
            json!([entry(&[5], &[5], 2), bad_data.clone()]),
        ),
        ("unreadable-data", "Server", json!([bad_data])),
    ]
}

#[test]
fn test06_outputs_match_mlcommons_run_verification() {
    let (Ok(inference), Ok(python)) = (
        std::env::var("MLPERF_INFERENCE_DIR"),
        std::env::var("PANDAS_PYTHON"),
    ) else {
        println!("skipping: MLPERF_INFERENCE_DIR or PANDAS_PYTHON is unset");
        return;
    };
    let script = Path::new(&inference).join("compliance/TEST06/run_verification.py");
    assert!(script.is_file(), "{} missing", script.display());
    for (name, scenario, entries) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let log = logs.join("mlperf_log_accuracy.json");
        std::fs::write(&log, serde_json::to_vec_pretty(&entries).unwrap()).unwrap();

        let theirs_dir = dir.path().join("theirs");
        let out = Command::new(&python)
            .arg(&script)
            .arg("-c")
            .arg(&logs)
            .arg("-o")
            .arg(&theirs_dir)
            .args(["-s", scenario])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();

        let options = Test06Options {
            offline: scenario == "Offline",
            ..Test06Options::default()
        };
        match verify_test06(&log, &options) {
            Ok(report) => {
                assert!(out.status.success(), "{name}: script failed: {out:?}");
                let ours_dir = write_test06(&report, &log, &dir.path().join("ours")).unwrap();
                let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
                let theirs = theirs_dir.join("TEST06");
                assert_eq!(
                    String::from_utf8(read(&ours_dir, "verify_accuracy.txt")).unwrap(),
                    String::from_utf8(read(&theirs, "verify_accuracy.txt")).unwrap(),
                    "{name}: verify_accuracy.txt"
                );
                assert_eq!(
                    read(&ours_dir, "accuracy/mlperf_log_accuracy.json"),
                    read(&theirs, "accuracy/mlperf_log_accuracy.json"),
                    "{name}: copied log"
                );
                // What the script prints: its messages, then the file's text.
                let mut printed = String::new();
                for m in &report.messages {
                    printed.push_str(m);
                    printed.push('\n');
                }
                let mut text = Vec::new();
                report.render(&mut text).unwrap();
                printed.push_str(&String::from_utf8(text).unwrap());
                printed.push('\n');
                assert_eq!(stdout, printed, "{name}: printed output");
                println!(
                    "{name}: identical ({})",
                    if report.passed() { "pass" } else { "fail" }
                );
            }
            Err(e) => {
                assert!(
                    !out.status.success()
                        && !theirs_dir.join("TEST06/verify_accuracy.txt").exists(),
                    "{name}: we refused ({e}) but the script wrote a verdict: {stdout}"
                );
                println!("{name}: both refuse ({e})");
            }
        }
    }
}
