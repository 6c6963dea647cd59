//! The differential test of `--loadgen official`: the same settings under
//! the Rust LoadGen and MLCommons' C++ LoadGen (mlcommons-loadgen 6.0.17,
//! linked by the `official` feature) against the built-in simulator,
//! Offline and Server. They must generate the same queries, reach the same
//! verdict and give summaries with the same keys; each run directory must
//! name the LoadGen that made it, in run.json and in LoadGen's own logs.
//!
//! Runs only in a build with the feature (`LOADGEN_SRC` set:
//! `eval "$(bash scripts/peers/loadgen_src.sh)"`, then
//! `cargo test -p harness --features official --test official`); otherwise
//! it prints why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common {
    pub mod paths;
    pub mod quick_conf;
}

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::paths::sample_dataset;
use common::quick_conf::QUICK_CONF;
use loadgen::logged::DetailLog;
use rundir::{LoadgenImplementation, RunManifest};

fn run(scratch: &Path, loadgen: &str, scenario: &str) -> PathBuf {
    let dataset = sample_dataset();
    let out = scratch.join(format!("runs-{loadgen}-{scenario}"));
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch)
        .args([
            "run",
            "--quiet",
            "--no-report",
            "--no-history",
            "--user-conf",
            "user.conf",
            "--max-tokens",
            "16",
            "--sim-profile",
            "tiny-fast",
            "--loadgen",
            loadgen,
            "--scenario",
            scenario,
        ])
        .arg("--dataset-path")
        .arg(&dataset)
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{loadgen} {scenario}: {:?}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1);
    dirs.into_iter().next().unwrap()
}

fn detail(dir: &Path) -> DetailLog {
    DetailLog::parse(&std::fs::read_to_string(dir.join("mlperf_log_detail.txt")).unwrap())
}

/// Every key path of a JSON value (`run.loadgen.version`, `figures.x`...).
fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = v {
        for (k, v) in map {
            let path = format!("{prefix}{k}");
            key_paths(v, &format!("{path}."), out);
            out.insert(path);
        }
    }
}

fn summary_keys(dir: &Path) -> BTreeSet<String> {
    let data = reports::load(dir, 0).unwrap();
    let summary = serde_json::to_value(reports::summarize(&data)).unwrap();
    let mut keys = BTreeSet::new();
    key_paths(&summary, "", &mut keys);
    keys
}

#[test]
fn both_loadgens_issue_the_same_queries_and_agree_on_the_verdict() {
    if !loadgen_official::AVAILABLE {
        eprintln!(
            "skipping both_loadgens_issue_the_same_queries_and_agree_on_the_verdict: \
             harness built without the `official` feature (set LOADGEN_SRC with \
             scripts/peers/loadgen_src.sh and test with --features official)"
        );
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("user.conf"), QUICK_CONF).unwrap();
    for scenario in ["Offline", "Server"] {
        let rust = run(scratch.path(), "rust", scenario);
        let official = run(scratch.path(), "official", scenario);

        // Each names the LoadGen that made it.
        let (mr, mo) = (
            RunManifest::read(&rust).unwrap(),
            RunManifest::read(&official).unwrap(),
        );
        assert_eq!(mr.loadgen, rundir::LoadgenIdentity::harness_rust());
        assert_eq!(
            mo.loadgen.implementation,
            LoadgenImplementation::MlcommonsLoadgen
        );
        assert_eq!(mo.loadgen.version, loadgen_official::EXPECTED_VERSION);
        let (dr, dof) = (detail(&rust), detail(&official));
        let version = |d: &DetailLog| {
            d.get("loadgen_version")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            version(&dof).starts_with("6.0.17"),
            "the official run's logs are the C++ library's: {}",
            version(&dof)
        );
        assert_eq!(version(&dr), loadgen::logging::VERSION);
        assert!(dof.errors.is_empty(), "{scenario}: {:?}", dof.errors);

        // The same queries: what each generated, issued and counted.
        for key in [
            "generated_query_count",
            "generated_samples_per_query",
            "effective_target_qps",
            "effective_min_duration_ms",
            "effective_min_query_count",
            "effective_performance_sample_count",
            "effective_sample_index_rng_seed",
            "effective_schedule_rng_seed",
            "result_query_count",
            "result_min_duration_met",
            "result_min_queries_met",
        ] {
            assert_eq!(dr.get(key), dof.get(key), "{scenario}: {key}");
            assert!(dr.get(key).is_some(), "{scenario}: {key} logged");
        }
        let records = |dir: &Path| {
            let file = rundir::read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
            let perf = file.performance().unwrap().clone();
            let mut indices: Vec<u64> = perf.records.iter().map(|r| r.sample_index).collect();
            indices.sort_unstable();
            (perf.header.start.sample_count, indices)
        };
        assert_eq!(records(&rust), records(&official), "{scenario}: samples");

        // The same verdict, and LoadGen's results in run.json from its log.
        assert_eq!(
            mr.verdict.as_ref().map(|v| v.valid),
            mo.verdict.as_ref().map(|v| v.valid),
            "{scenario}: {:?} vs {:?}",
            mr.verdict,
            mo.verdict
        );
        let lo = mo.loadgen_results.as_ref().unwrap();
        let validity = dof.get("result_validity").and_then(|v| v.as_str());
        assert_eq!(
            Some(if lo.loadgen_valid { "VALID" } else { "INVALID" }),
            validity
        );
        assert_eq!(
            Some(lo.query_count),
            dof.get("result_query_count").and_then(|v| v.as_u64())
        );

        // The summaries have the same shape (only the git hash is the C++
        // library's alone, and the clock the Rust LoadGen's).
        let mut keys_official = summary_keys(&official);
        keys_official.remove("run.loadgen.git_hash");
        let mut keys_rust = summary_keys(&rust);
        assert!(keys_rust.remove("run.loadgen.clock"), "{scenario}");
        assert_eq!(keys_rust, keys_official, "{scenario}");
    }
}
