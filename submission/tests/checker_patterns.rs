//! Our `accuracy.txt` read with the MLCommons submission checker's own
//! patterns (`ACC_PATTERN` of `submission_checker/constants.py`) and its
//! `hash=` rule, as `accuracy_check.py` applies them line by line. Needs
//! `MLPERF_INFERENCE_DIR` (a checkout); skips otherwise.
// Integration tests are not #[test]-scoped for clippy's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::process::Command;

use serde_json::json;
use submission::tree::{accuracy_txt, seal_accuracy};

const READ: &str = r#"
import re, sys, json
sys.path.insert(0, sys.argv[1])
from submission_checker.constants import ACC_PATTERN
found = {}
for line in open(sys.argv[2]):
    for name in sys.argv[3].split(","):
        m = re.match(ACC_PATTERN[name], line)
        if m:
            found[name] = m.group(1)
    m = re.match(r"^hash=([\w\d]+)$", line)
    if m:
        found["hash"] = m.group(1)
print(json.dumps(found))
"#;

#[test]
fn accuracy_txt_reads_with_the_checkers_patterns() {
    let Ok(inference) = std::env::var("MLPERF_INFERENCE_DIR") else {
        println!("skipping: MLPERF_INFERENCE_DIR is unset");
        return;
    };
    let tools = Path::new(&inference).join("tools/submission");
    for (benchmark, names, report) in [
        (
            "llama3.1-8b",
            "ROUGE1,ROUGE2,ROUGEL,ROUGELSUM,GEN_LEN",
            json!({"rouge1": 38.7792, "rouge2": 15.9075, "rougeL": 24.4957,
                   "rougeLsum": 100.0, "gen_len": 8167644, "gen_num": 13368}),
        ),
        (
            "llama2-70b-99",
            "ROUGE1,ROUGE2,ROUGEL,TOKENS_PER_SAMPLE",
            json!({"rouge1": 44.4312, "rouge2": 22.0352, "rougeL": 28.6162,
                   "rougeLsum": 42.0, "gen_len": 1, "gen_num": 24576,
                   "gen_tok_len": 7236352, "tokens_per_sample": 294.4}),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("accuracy.txt"),
            accuracy_txt(&report, benchmark),
        )
        .unwrap();
        std::fs::write(dir.path().join("mlperf_log_accuracy.json"), "[\n]\n").unwrap();
        seal_accuracy(dir.path()).unwrap();
        let out = Command::new("python3")
            .args(["-c", READ])
            .arg(&tools)
            .arg(dir.path().join("accuracy.txt"))
            .arg(names)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = |key: &str| report[key].to_string();
        assert_eq!(
            found["ROUGE1"].as_str().unwrap(),
            want("rouge1"),
            "{benchmark}: {found}"
        );
        assert_eq!(
            found["ROUGE2"].as_str().unwrap(),
            want("rouge2"),
            "{benchmark}: {found}"
        );
        assert_eq!(
            found["ROUGEL"].as_str().unwrap(),
            want("rougeL"),
            "{benchmark}: {found}"
        );
        if benchmark == "llama3.1-8b" {
            assert_eq!(found["ROUGELSUM"], "100.0");
            assert_eq!(found["GEN_LEN"], "8167644");
        } else {
            assert_eq!(found["TOKENS_PER_SAMPLE"], "294.4");
        }
        // sha256 of "[\n]\n".
        assert_eq!(
            found["hash"],
            "3fbbd4c6d76130399b0c79cdf41758669224a91e05b7b216953f0c9728750865"
        );
        println!("{benchmark}: {found}");
    }
}
