//! `harness submission` end to end: real run directories (an audit, a short
//! performance run, an accuracy run) against the built-in simulator, placed
//! in the v6.0 tree or refused with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common {
    pub mod paths;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::paths::sample_dataset;

fn harness(dir: &Path, args: &[&str]) -> Output {
    let dataset = sample_dataset();
    let mut c = Command::new(env!("CARGO_BIN_EXE_harness"));
    c.current_dir(dir).args(args);
    if matches!(args[0], "run" | "audit") {
        c.args([
            "--quiet",
            "--no-report",
            "--no-history",
            "--user-conf",
            "user.conf",
            "--sim-profile",
            "tiny-fast",
            "--max-tokens",
            "16",
            "--scenario",
            "Offline",
        ])
        .arg("--dataset-path")
        .arg(dataset);
    }
    c.output().unwrap()
}

fn newest_run(dir: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    runs.pop().unwrap()
}

#[test]
fn runs_are_placed_in_the_tree_or_refused_with_the_reason() {
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    std::fs::write(
        s.join("user.conf"),
        "*.Offline.target_qps = 2000\n*.*.min_duration = 200\n",
    )
    .unwrap();
    let out = harness(s, &["audit", "TEST06"]);
    assert!(out.status.success(), "{out:?}");
    let audit = newest_run(s);
    let out = harness(s, &["run"]);
    assert!(out.status.success(), "{out:?}");
    let performance = newest_run(s);
    let out = harness(s, &["run", "--test-mode", "AccuracyOnly"]);
    assert!(out.status.success(), "{out:?}");
    let accuracy = newest_run(s);
    // Random simulator words miss the ROUGE targets: exit 3, accuracy.json written.
    let scored = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("accuracy")
        .arg(&accuracy)
        .output()
        .unwrap();
    assert_eq!(scored.status.code(), Some(3), "{scored:?}");

    let tree = s.join("tree");
    let submit = |division: &str| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["submission", "--division", division, "--submitter", "Acme"])
            .args(["--system", "box", "--out"])
            .arg(&tree)
            .args([&audit, &performance, &accuracy])
            .output()
            .unwrap()
    };
    let out = submit("open");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}");
    let offline = tree.join("open/Acme/results/box/llama3.1-8b/Offline");
    assert_eq!(
        std::fs::read_to_string(offline.join("TEST06/verify_accuracy.txt")).unwrap(),
        std::fs::read_to_string(audit.join("TEST06/verify_accuracy.txt")).unwrap()
    );
    assert!(offline.join("measurements.json").is_file());
    assert!(offline.join("user.conf").is_file());
    assert!(!offline.join("performance").exists(), "{text}");
    assert!(!offline.join("accuracy").exists(), "{text}");
    assert!(
        text.contains("below the 600000 ms the rules require"),
        "{text}"
    );
    assert!(text.contains("accuracy: a target was missed"), "{text}");
    assert!(
        text.contains("systems/box.json: host_processor_model_name"),
        "{text}"
    );
    assert!(tree.join("open/Acme/systems/box.json").is_file());

    // --host-fields answers what this machine can.
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["submission", "--division", "open", "--submitter", "Acme"])
        .args(["--system", "host", "--host-fields", "--out"])
        .arg(&tree)
        .arg(&audit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("host_memory_capacity"), "{text}");
    assert!(text.contains("systems/host.json: cooling"), "{text}");
    let host: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.join("open/Acme/systems/host.json")).unwrap())
            .unwrap();
    assert!(
        host["host_memory_capacity"]
            .as_str()
            .unwrap()
            .ends_with(" GB")
    );

    // What the runs recorded reaches the tree: the conf files they ran
    // with, the backend's identity, how to reproduce.
    assert_eq!(
        std::fs::read_to_string(offline.join("user.conf")).unwrap(),
        std::fs::read_to_string(s.join("user.conf")).unwrap()
    );
    assert!(
        std::fs::read_to_string(offline.join("mlperf.conf"))
            .unwrap()
            .contains("llama3_1-8b.*.performance_sample_count_override = 13368")
    );
    let system: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.join("open/Acme/systems/box.json")).unwrap())
            .unwrap();
    assert!(
        system["framework"]
            .as_str()
            .unwrap()
            .starts_with("vllm sim-"),
        "{system}"
    );
    assert!(
        system["other_software_stack"]
            .as_str()
            .unwrap()
            .contains("(LoadGen: harness-rust"),
        "{system}"
    );
    let src = std::fs::read_to_string(tree.join("open/Acme/src/llama3.1-8b/README.md")).unwrap();
    assert!(src.contains("harness audit TEST06"), "{src}");
    assert!(
        !src.contains("--test-mode AccuracyOnly"),
        "refused runs are not listed: {src}"
    );

    // A draft places the short performance run and says what it breaks.
    let draft = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["submission", "--division", "open", "--submitter", "Acme"])
        .args(["--system", "box", "--draft", "--out"])
        .arg(s.join("draft"))
        .args([&audit, &performance])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&draft.stdout).into_owned();
    assert_eq!(draft.status.code(), Some(3), "{text}");
    assert!(
        text.contains("draft only: effective_min_duration_ms"),
        "{text}"
    );
    assert!(text.contains("DRAFT: "), "{text}");
    assert!(
        s.join("draft/open/Acme/results/box/llama3.1-8b/Offline/performance/run_1/mlperf_log_detail.txt")
            .is_file()
    );

    let out = submit("closed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(
        text.matches("needs the official MLPerf LoadGen").count(),
        3,
        "{text}"
    );
    assert!(!tree.join("closed/Acme/results").exists(), "{text}");
}

/// A tree with one llama3.1-8b result per given scenario.
fn tree(root: &Path, system: &str, results: &[(&str, &str, f64)]) {
    for (scenario, key, value) in results {
        let dir = root
            .join("closed/Acme/results")
            .join(system)
            .join("llama3.1-8b")
            .join(scenario)
            .join("performance/run_1");
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [
            serde_json::json!({"key": "requested_use_token_latencies", "value": true}),
            serde_json::json!({"key": "result_validity", "value": "VALID"}),
            serde_json::json!({"key": key, "value": value}),
        ];
        let text: String = lines.iter().map(|l| format!(":::MLLOG {l}\n")).collect();
        std::fs::write(dir.join("mlperf_log_detail.txt"), text).unwrap();
    }
}

#[test]
fn compare_puts_two_submission_trees_side_by_side_in_every_format() {
    let s = tempfile::tempdir().unwrap();
    let (a, b) = (s.path().join("a"), s.path().join("b"));
    tree(
        &a,
        "box1",
        &[
            ("Offline", "result_tokens_per_second", 1000.0),
            ("Server", "result_completed_tokens_per_second", 900.0),
        ],
    );
    tree(
        &b,
        "box2",
        &[("Offline", "result_tokens_per_second", 1500.0)],
    );
    let compare = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["compare", "--format", format])
            .args([&a, &b])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let csv = compare("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("benchmark,scenario,unit,"), "{csv}");
    assert_eq!(
        lines[1],
        "llama3.1-8b,Offline,Tokens/s,box1,1000.00,box2,1500.00,1.500"
    );
    assert_eq!(lines[2], "llama3.1-8b,Server,Tokens/s,box1,900.00,-,-,-");
    let json: serde_json::Value = serde_json::from_str(&compare("json")).unwrap();
    assert_eq!(json[0]["speedup"], 1.5);
    assert_eq!(json[1]["b"], serde_json::Value::Null);
    let md = compare("markdown");
    assert!(
        md.contains(
            "| llama3.1-8b | Offline | Tokens/s | box1 | 1000.00 | box2 | 1500.00 | 1.500 |"
        ),
        "{md}"
    );
    let text = compare("terminal");
    assert!(text.lines().nth(1).unwrap().ends_with("1.500"), "{text}");
}
