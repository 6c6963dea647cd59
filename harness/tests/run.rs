//! `harness run` end to end: the binary against the built-in simulator and
//! against simulators with injected faults, started here on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod output;
    pub mod paths;
    pub mod quick_conf;
    pub mod simulator;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::output::text;
use common::paths::sample_dataset;
use common::quick_conf::QUICK_CONF;
use common::simulator;
use rundir::{RunManifest, RunStatus, read_records};

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("user.conf"), QUICK_CONF).unwrap();
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `harness run` with the quick user.conf and the bundled dataset.
    fn run(&self, args: &[&str]) -> Output {
        let dataset = sample_dataset();
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(self.path())
            .args([
                "run",
                "--quiet",
                "--no-report",
                "--user-conf",
                "user.conf",
                "--max-tokens",
                "16",
            ])
            .arg("--dataset-path")
            .arg(&dataset)
            .args(args)
            .output()
            .unwrap()
    }

    fn run_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.path().join("runs"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }
}

/// Every issued sample has exactly one record, and the run's files agree.
fn check_accounted(dir: &Path) -> (RunManifest, u64, u64) {
    let manifest = RunManifest::read(dir).unwrap();
    let records = read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let perf = records.performance().expect("a performance phase");
    let end = perf.end.as_ref().expect("the phase ended");
    assert_eq!(
        perf.records.len() as u64,
        end.completed_samples,
        "one record per issued sample"
    );
    assert!(perf.header.start.sample_count >= end.completed_samples);
    let mut seqs: Vec<u64> = perf.records.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), perf.records.len(), "no sample recorded twice");
    let failed = perf.records.iter().filter(|r| r.error().is_some()).count() as u64;
    assert_eq!(failed, end.failed_samples);
    (manifest, perf.records.len() as u64, failed)
}

#[test]
fn a_server_run_on_the_builtin_simulator_is_valid_and_fully_recorded() {
    let scratch = Scratch::new();
    let output = scratch.run(&["--scenario", "Server", "--sim-profile", "tiny-fast"]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Result: VALID"), "{stdout}");
    let dirs = scratch.run_dirs();
    assert_eq!(dirs.len(), 1);
    let (manifest, records, failed) = check_accounted(&dirs[0]);
    assert_eq!(manifest.status, RunStatus::Complete);
    assert!(manifest.verdict.unwrap().valid);
    assert!(records >= 40);
    assert_eq!(failed, 0);
    assert_eq!(manifest.backends, vec!["sim://tiny-fast".to_owned()]);
    // The default run is the Rust LoadGen's, and run.json says so.
    assert_eq!(manifest.loadgen, rundir::LoadgenIdentity::harness_rust());
}

#[test]
fn an_offline_run_batches_every_sample_and_never_overwrites_a_previous_run() {
    let scratch = Scratch::new();
    for _ in 0..2 {
        let output = scratch.run(&[
            "--scenario",
            "Offline",
            "--sim-profile",
            "tiny-fast",
            "--max-in-flight",
            "8",
        ]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let dirs = scratch.run_dirs();
    assert_eq!(dirs.len(), 2, "each run gets its own directory");
    for dir in dirs {
        let (_, records, failed) = check_accounted(&dir);
        assert!(records >= 40);
        assert_eq!(failed, 0);
    }
}

#[test]
fn http_errors_and_broken_streams_make_the_run_invalid_with_every_query_accounted_for() {
    let sim = simulator::start(7, |c| {
        c.faults.error_rates = vec![sim::ErrorRate {
            status: 500,
            probability: 0.2,
        }];
        c.faults.disconnect_probability = 0.1;
        c.faults.malformed_probability = 0.1;
        c.faults.error_event_probability = 0.1;
    });
    let scratch = Scratch::new();
    let output = scratch.run(&["--scenario", "Server", "--backend", &sim.url]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Result: INVALID"), "{stdout}");
    assert!(
        stdout.contains("http_status"),
        "errors are counted by kind: {stdout}"
    );
    let (manifest, _, failed) = check_accounted(&scratch.run_dirs()[0]);
    assert!(failed > 0);
    let verdict = manifest.verdict.unwrap();
    assert!(!verdict.valid);
    assert!(
        verdict.reasons.iter().any(|r| r.contains("samples failed")),
        "{verdict:?}"
    );
}

#[test]
fn a_server_that_dies_mid_run_ends_the_run_invalid_not_hung() {
    let sim = simulator::start(7, |c| c.faults.refuse_after = Some(10));
    let scratch = Scratch::new();
    let output = scratch.run(&["--scenario", "Server", "--backend", &sim.url]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let (_, records, failed) = check_accounted(&scratch.run_dirs()[0]);
    assert!(records >= 40);
    assert!(failed >= records - 10, "{failed} of {records} failed");
}

#[test]
fn a_stalled_stream_is_failed_after_the_stall_timeout() {
    let sim = simulator::start(7, |c| {
        // Per chunk after the first: with 16 tokens, about one stream in
        // four stalls.
        c.faults.stall_mid_probability = 0.02;
        c.faults.stall_ms = 60_000;
    });
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "--scenario",
        "Server",
        "--backend",
        &sim.url,
        "--stall-timeout",
        "0.5",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let dir = &scratch.run_dirs()[0];
    let (_, _, failed) = check_accounted(dir);
    assert!(failed > 0);
    let records = read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let kinds: Vec<String> = records
        .performance()
        .unwrap()
        .records
        .iter()
        .filter_map(|r| r.error().map(|e| e.kind.to_string()))
        .collect();
    assert!(kinds.iter().all(|k| k == "stalled"), "{kinds:?}");
}

#[test]
fn an_unreachable_backend_is_a_clear_error_before_any_run_directory() {
    // Bind then drop a listener: the port is free and refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = Scratch::new();
    let url = format!("http://127.0.0.1:{port}");
    let output = scratch.run(&["--backend", &url]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&url),
        "the error names the endpoint: {stderr}"
    );
    assert!(scratch.run_dirs().is_empty());
}

#[test]
fn a_bad_user_conf_names_the_file_and_line() {
    let scratch = Scratch::new();
    std::fs::write(
        scratch.path().join("bad.conf"),
        "*.Server.target_qps = 10\n*.Server.min_duration = 5 # comment\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .args(["run", "--user-conf", "bad.conf"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.conf") && stderr.contains('2'),
        "{stderr}"
    );
}

#[test]
fn an_api_key_never_reaches_the_run_directory_or_the_output() {
    let scratch = Scratch::new();
    // What is tested is where the key goes, not latency: bounds no busy
    // machine misses (with the quick conf's, a loaded CI runner sometimes
    // made the run INVALID, exit 3, and the secret was never checked).
    std::fs::write(
        scratch.path().join("user.conf"),
        format!("{QUICK_CONF}*.Server.ttft_latency = 60000\n*.Server.tpot_latency = 60000\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .env("TEST_SECRET_KEY", "sk-very-secret-value")
        .args([
            "run",
            "--quiet",
            "--no-report",
            "--user-conf",
            "user.conf",
            "--max-tokens",
            "8",
        ])
        .args([
            "--sim-profile",
            "tiny-fast",
            "--api-key-env",
            "TEST_SECRET_KEY",
        ])
        .arg("--dataset-path")
        .arg(sample_dataset())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("sk-very-secret-value"));
    for entry in std::fs::read_dir(&scratch.run_dirs()[0]).unwrap() {
        let content = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&content).contains("sk-very-secret-value"));
    }
}

#[test]
fn an_accuracy_run_logs_every_sample_and_scores_with_the_simulators_vocabulary() {
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "--scenario",
        "Offline",
        "--test-mode",
        "AccuracyOnly",
        "--sim-profile",
        "tiny-fast",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let dir = &scratch.run_dirs()[0];
    for log in [
        "mlperf_log_summary.txt",
        "mlperf_log_detail.txt",
        "mlperf_log_accuracy.json",
    ] {
        assert!(dir.join(log).is_file(), "{log} written");
    }
    let accuracy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("mlperf_log_accuracy.json")).unwrap())
            .unwrap();
    let entries = accuracy.as_array().unwrap();
    let mut indices: Vec<u64> = entries
        .iter()
        .map(|e| e["qsl_idx"].as_u64().unwrap())
        .collect();
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..51).collect::<Vec<u64>>(),
        "every bundled sample once"
    );

    let scored = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["accuracy"])
        .arg(dir)
        .output()
        .unwrap();
    // Simulated text is random words: ROUGE is far below the targets.
    assert_eq!(scored.status.code(), Some(3), "{}", text(&scored));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("accuracy.json")).unwrap()).unwrap();
    assert_eq!(report["gen_num"], 51);
    assert!(report["rouge1"].as_f64().unwrap() < 38.0);
    assert_eq!(report["passed"], false);
}

#[test]
fn loadgens_logs_carry_the_settings_and_the_result() {
    let scratch = Scratch::new();
    let output = scratch.run(&["--scenario", "Server", "--sim-profile", "tiny-fast"]);
    assert!(output.status.success(), "{}", text(&output));
    let dir = &scratch.run_dirs()[0];
    let summary = std::fs::read_to_string(dir.join("mlperf_log_summary.txt")).unwrap();
    assert!(summary.contains("Scenario : Server"), "{summary}");
    assert!(summary.contains("Result is : VALID"), "{summary}");
    let detail = std::fs::read_to_string(dir.join("mlperf_log_detail.txt")).unwrap();
    let keys: Vec<String> = detail
        .lines()
        .filter_map(|l| l.strip_prefix(":::MLLOG "))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for key in [
        "requested_server_target_qps",
        "effective_min_query_count",
        "loaded_qsl_set",
        "generated_query_count",
        "result_validity",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} logged");
    }
}

#[test]
fn a_sweep_runs_every_point_and_resumes_only_what_is_unfinished() {
    let scratch = Scratch::new();
    let sweep = |extra: &[&str]| {
        let dataset = sample_dataset();
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .args([
                "sweep",
                "--vary",
                "target_qps=400,600",
                "--vary",
                "max_tokens=4,8",
            ])
            .args([
                "--quiet",
                "--no-report",
                "--user-conf",
                "user.conf",
                "--sim-profile",
                "tiny-fast",
            ])
            .arg("--dataset-path")
            .arg(&dataset)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = sweep(&[]);
    assert!(output.status.success(), "{}", text(&output));
    let dirs = scratch.run_dirs();
    assert_eq!(dirs.len(), 1, "one sweep directory");
    let sweep_dir = &dirs[0];
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sweep_dir.join("sweep.json")).unwrap()).unwrap();
    let points = record["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for p in points {
        assert_eq!(p["status"], "complete");
        assert!(
            sweep_dir
                .join(p["run_dir"].as_str().unwrap())
                .join("run.json")
                .is_file()
        );
    }
    for chart in [
        "sweep_latency.png",
        "sweep_tokens.png",
        "sweep_validity.png",
    ] {
        assert!(sweep_dir.join(chart).is_file(), "{chart}");
    }
    let csv = std::fs::read_to_string(sweep_dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.starts_with("point,target_qps,max_tokens,status,valid,"),
        "{csv}"
    );

    // As if the sweep had been interrupted during point 2: resuming runs
    // points 2 and 3 again and leaves 0 and 1 alone.
    let mut edited = record.clone();
    for i in [2, 3] {
        edited["points"][i]["status"] = "interrupted".into();
    }
    std::fs::write(
        sweep_dir.join("sweep.json"),
        serde_json::to_vec(&edited).unwrap(),
    )
    .unwrap();
    let runs_before = std::fs::read_dir(sweep_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    let output = sweep(&["--resume", sweep_dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let runs_after = std::fs::read_dir(sweep_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        runs_after,
        runs_before + 2,
        "only the two unfinished points ran again"
    );
    let resumed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sweep_dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(
        resumed["points"][0]["run_dir"],
        record["points"][0]["run_dir"]
    );
    assert_ne!(
        resumed["points"][3]["run_dir"],
        record["points"][3]["run_dir"]
    );
    assert!(
        resumed["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "complete")
    );

    // Resuming with another grid is refused, as a usage error naming the flag.
    let other = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .args([
            "sweep",
            "--vary",
            "target_qps=1",
            "--resume",
            sweep_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2), "{}", text(&other));
    assert!(String::from_utf8_lossy(&other.stderr).contains("--vary target_qps=1"));
}

#[test]
fn a_synthetic_dataset_runs_without_a_file() {
    let scratch = Scratch::new();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .args([
            "run",
            "--quiet",
            "--no-report",
            "--user-conf",
            "user.conf",
            "--sim-profile",
            "tiny-fast",
        ])
        .args([
            "--scenario",
            "Offline",
            "--synthetic",
            "samples=64,input=16:64,output=4,seed=9",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let dir = &scratch.run_dirs()[0];
    let records = read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let perf = records.performance().unwrap();
    assert!(perf.records.iter().all(|r| r.sample_index < 64));
    assert!(
        perf.records
            .iter()
            .all(|r| r.error().is_none() && r.n_tokens <= 4)
    );
    let manifest = RunManifest::read(dir).unwrap();
    assert!(manifest.dataset.unwrap().starts_with("synthetic"));
}

#[test]
fn every_run_is_recorded_in_the_history_and_listed_newest_first() {
    let scratch = Scratch::new();
    for qps in ["400", "500"] {
        let output = scratch.run(&[
            "--scenario",
            "Server",
            "--sim-profile",
            "tiny-fast",
            "--target-qps",
            qps,
        ]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let history = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .arg("history")
            .args(args)
            .output()
            .unwrap()
    };
    let listed = history(&[]);
    assert!(listed.status.success(), "{}", text(&listed));
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let dirs = scratch.run_dirs();
    let names: Vec<String> = dirs
        .iter()
        .filter(|d| d.is_dir())
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2);
    let first = stdout.find(&names[1]).expect("newest listed");
    let second = stdout.find(&names[0]).expect("oldest listed");
    assert!(first < second, "newest first: {stdout}");
    assert_eq!(stdout.matches("VALID").count(), 2, "{stdout}");

    let trend = history(&["--metric", "target_qps", "--chart", "trend.png"]);
    assert!(trend.status.success(), "{}", text(&trend));
    let stdout = String::from_utf8_lossy(&trend.stdout);
    let values: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(values, ["400.000", "500.000"], "{stdout}");
    assert!(scratch.path().join("trend.png").is_file());
}

#[test]
fn compare_and_gate_read_two_run_directories() {
    let scratch = Scratch::new();
    for qps in ["300", "600"] {
        let output = scratch.run(&[
            "--scenario",
            "Server",
            "--sim-profile",
            "tiny-fast",
            "--target-qps",
            qps,
        ]);
        assert!(output.status.success(), "{}", text(&output));
    }
    let dirs = scratch.run_dirs();
    let harness = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .args(args)
            .output()
            .unwrap()
    };
    let (a, b) = (dirs[0].to_str().unwrap(), dirs[1].to_str().unwrap());
    // The runs differ in target QPS (a different workload), so compare
    // and gate refuse them (exit 4) unless told otherwise.
    let refused = harness(&["compare", a, b]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("target_qps"));
    let compared = harness(&[
        "compare",
        a,
        b,
        "--format",
        "json",
        "--charts",
        "cmp",
        "--allow-mismatch",
    ]);
    assert!(compared.status.success(), "{}", text(&compared));
    let json: serde_json::Value = serde_json::from_slice(&compared.stdout).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    let tput = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "samples_per_s")
        .unwrap();
    assert_eq!(
        tput["ranking"][0], 1,
        "the 600 QPS run completes more samples per second"
    );

    std::fs::write(scratch.path().join("loose.toml"), "[[rule]]\nmetric = \"failed\"\n[[rule]]\nmetric = \"ttft_p99_ms\"\nmax_regression_abs = 10000\n").unwrap();
    let passed = harness(&[
        "gate",
        "--baseline",
        a,
        "--candidate",
        b,
        "--rules",
        "loose.toml",
        "--allow-mismatch",
    ]);
    assert!(passed.status.success(), "{}", text(&passed));
    // Throughput may not fall at all: the slower run as candidate fails.
    std::fs::write(
        scratch.path().join("strict.toml"),
        "[[rule]]\nmetric = \"samples_per_s\"\nmax_regression_pct = 0\n",
    )
    .unwrap();
    let failed = harness(&[
        "gate",
        "--baseline",
        b,
        "--candidate",
        a,
        "--rules",
        "strict.toml",
        "--allow-mismatch",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("gate FAILED"));
    let bad = harness(&[
        "gate",
        "--baseline",
        a,
        "--candidate",
        b,
        "--rules",
        "missing.toml",
        "--allow-mismatch",
    ]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("missing.toml"),
        "{}",
        text(&bad)
    );
}

#[test]
fn find_peak_brackets_and_bisects_to_the_highest_passing_qps() {
    let scratch = Scratch::new();
    // The peak is the simulated engine's, not the machine's: 4 sequences at
    // once and 1.5 ms steps serve a few hundred requests/s of 8 tokens (~9
    // steps each) however busy the machine is. Past that the queue grows
    // for the whole run (short steps of 200 ms and 100 queries), and at a
    // few times the capacity the TTFT p99 is far beyond its 200 ms limit; at
    // the 100 QPS start the engine answers in a few ms, so only a stall of
    // ~200 ms fails the first step (a 25 ms limit on the machine-bound peak
    // failed it on a busy CI runner). TPOT stays at the step time, so its
    // limit is not what fails a step. The full-length confirmation runs 500
    // queries, enough for LoadGen's early stopping to let it be VALID.
    let sim = simulator::start(7, |c| {
        c.engine.max_num_seqs = 4;
        c.engine.step_overhead_us = 1500.0;
    });
    std::fs::write(
        scratch.path().join("peak.conf"),
        "*.Server.target_qps = 100\n*.*.min_duration = 1000\n*.Server.min_query_count = 500\n\
         *.Server.ttft_latency = 200\n*.Server.tpot_latency = 200\n",
    )
    .unwrap();
    let dataset = sample_dataset();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(scratch.path())
        .args([
            "find-peak",
            "--fast",
            "--fast-factor",
            "0.2",
            "--precision",
            "0",
        ])
        .args([
            "--quiet",
            "--no-report",
            "--user-conf",
            "peak.conf",
            "--backend",
            &sim.url,
            "--max-tokens",
            "8",
            "--ignore-eos",
        ])
        .arg("--dataset-path")
        .arg(&dataset)
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "{}",
        text(&output)
    );
    let dir = &scratch.run_dirs()[0];
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("find_peak.json")).unwrap()).unwrap();
    let steps = record["steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{record}");
    for step in steps {
        assert!(
            dir.join(step["run_dir"].as_str().unwrap())
                .join("run.json")
                .is_file()
        );
    }
    if let Some(peak) = record["peak_qps"].as_f64() {
        let (lo, hi) = (
            record["bracket"][0].as_f64().unwrap(),
            record["bracket"][1].as_f64().unwrap(),
        );
        assert!(lo <= peak && peak < hi, "{record}");
        // Bisection to whole QPS: the highest passing step is the peak, and
        // no passing short step is above it.
        let short_passing = steps
            .iter()
            .filter(|s| s["short"] == true && s["passed"] == true);
        assert!(
            short_passing
                .map(|s| s["qps"].as_f64().unwrap())
                .all(|q| q <= peak)
        );
        assert_eq!(record["confirmation"]["qps"].as_f64(), Some(peak));
        assert_eq!(record["confirmation"]["short"], false);
        // Only a VALID confirmation is reported as the peak.
        assert_eq!(record["confirmation"]["valid"], true, "{record}");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    } else if let Some(search_peak) = record["search_peak_qps"].as_f64() {
        // The short runs found a peak that did not hold at full length.
        assert_eq!(record["confirmation"]["qps"].as_f64(), Some(search_peak));
        assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    } else {
        // The simulator's engine sets a capacity well above the base rate,
        // so the search must find a peak, even if it then fails at full length.
        panic!("find-peak found no peak: {record}");
    }
}

#[test]
fn a_server_still_starting_is_waited_for_with_wait_ready() {
    // /health answers 503 for the first 3 s (long enough that the first run
    // below certainly starts inside it).
    let slow = simulator::start(7, |c| c.faults.unready_secs = 3.0);
    let scratch = Scratch::new();
    let refused = scratch.run(&["--scenario", "Offline", "--backend", &slow.url]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "one check fails fast: {}",
        text(&refused)
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&slow.url),
        "{}",
        text(&refused)
    );
    let waited = scratch.run(&[
        "--scenario",
        "Offline",
        "--backend",
        &slow.url,
        "--wait-ready",
        "30",
    ]);
    assert!(waited.status.success(), "{}", text(&waited));
}

#[test]
fn sigterm_and_ctrl_c_end_a_run_as_interrupted_with_everything_kept() {
    use std::io::{BufRead, BufReader};
    for signal in ["INT", "TERM"] {
        let scratch = Scratch::new();
        // A run that would take a minute.
        let dataset = sample_dataset();
        let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .args([
                "run",
                "--no-report",
                "--user-conf",
                "user.conf",
                "--sim-profile",
                "tiny-fast",
            ])
            .args([
                "--target-qps",
                "50",
                "--min-duration-ms",
                "60000",
                "--max-tokens",
                "8",
                "--log",
                "harness=debug",
            ])
            .arg("--dataset-path")
            .arg(&dataset)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until records are being written, then signal.
        let records = loop {
            if let Some(dir) = scratch.run_dirs().first() {
                let path = dir.join(rundir::RECORDS_FILE);
                if std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() > 5) {
                    break path;
                }
            }
            std::thread::yield_now();
        };
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{signal}"), &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            stderr.push_str(&line.unwrap());
        }
        assert_eq!(status.code(), Some(130), "SIG{signal}: {stderr}");
        let dir = records.parent().unwrap();
        let manifest = RunManifest::read(dir).unwrap();
        assert_eq!(manifest.status, RunStatus::Interrupted, "SIG{signal}");
        assert!(!manifest.verdict.unwrap().valid);
        let file = read_records(&records).unwrap();
        let perf = file.performance().unwrap();
        assert!(perf.end.as_ref().unwrap().interrupted, "SIG{signal}");
        assert_eq!(
            perf.records.len() as u64,
            perf.end.as_ref().unwrap().completed_samples
        );
        // LoadGen's logs are complete files too.
        let summary = std::fs::read_to_string(dir.join("mlperf_log_summary.txt")).unwrap();
        assert!(summary.contains("INVALID"), "{summary}");
        let accuracy = std::fs::read(dir.join("mlperf_log_accuracy.json")).unwrap();
        serde_json::from_slice::<serde_json::Value>(&accuracy).unwrap();
    }
}

#[test]
fn metrics_collection_samples_the_simulators_metrics_and_summarises_the_window() {
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "--scenario",
        "Server",
        "--sim-profile",
        "tiny-fast",
        "--enable-metrics-collection",
        "--metrics-collection-interval",
        "0.2",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let dir = &scratch.run_dirs()[0];
    let samples = rundir::metrics::read_metrics(&dir.join(rundir::METRICS_FILE)).unwrap();
    let server: Vec<_> = samples
        .iter()
        .filter(|s| s.source == rundir::metrics::MetricSource::Server)
        .collect();
    // How many interval scrapes land in a ~1 s run depends on the machine's
    // load (a busy worker skips a tick); the collector guarantees the first,
    // taken when it starts, and the window's two edge scrapes below. (Rates
    // between interval scrapes: telemetry/tests/collector.rs.)
    assert!(
        !server.is_empty(),
        "the first interval scrape is always taken"
    );
    for name in [
        "requests_running",
        "requests_waiting",
        "kv_cache_usage_frac",
    ] {
        assert!(
            server.iter().all(|s| s.values.contains_key(name)),
            "{name} in every scrape"
        );
    }
    assert!(
        samples
            .iter()
            .any(|s| s.source == rundir::metrics::MetricSource::Process)
    );
    let summary =
        rundir::metrics::read_server_summary(&dir.join(rundir::metrics::SERVER_SUMMARY_FILE))
            .unwrap();
    // The window's start and end were scraped (marks are never skipped),
    // one after the other, and the simulator generated tokens between them.
    let [backend] = summary.backends.as_slice() else {
        panic!("one backend, the simulator: {summary:?}");
    };
    let (Some(start), Some(end)) = (backend.start_scrape_ns, backend.end_scrape_ns) else {
        panic!("both edges of the window scraped: {backend:?}");
    };
    assert!(start < end, "{backend:?}");
    let total = summary.total.expect("a window was measured");
    assert!(
        total
            .counts
            .get("generation_tokens")
            .is_some_and(|v| *v > 0.0),
        "the simulator generated tokens during the run: {total:?}"
    );
    // The server counted (at least) every request the harness completed in
    // the window: the sim's success counter against our records.
    let records = read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let completed = records.performance().unwrap().records.len() as f64;
    let counted: f64 = total
        .counts
        .iter()
        .filter(|(k, _)| k.contains("success"))
        .map(|(_, v)| v)
        .sum();
    assert!(
        counted >= completed * 0.9 && counted <= completed * 1.1,
        "server counted {counted}, we completed {completed}: {total:?}"
    );
}

#[test]
fn a_servers_detokenize_endpoint_decodes_like_the_local_vocabulary() {
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "--scenario",
        "Offline",
        "--test-mode",
        "AccuracyOnly",
        "--sim-profile",
        "tiny-fast",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let dir = scratch.run_dirs()[0].clone();
    let score = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("accuracy")
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(
            &std::fs::read(dir.join("accuracy.json")).unwrap(),
        )
        .unwrap()
    };
    let local = score(&[]);
    let server = simulator::start(7, |_| {});
    let remote = score(&["--detokenize-url", &server.url]);
    for key in ["rouge1", "rouge2", "rougeL", "gen_len", "gen_tok_len"] {
        assert_eq!(local[key], remote[key], "{key}");
    }
}

/// A llama.cpp-like server on 127.0.0.1:0: every completion streams three
/// text chunks without token counts, and the final `usage` says four tokens
/// (llama.cpp counts the EOS token it never streams).
fn usage_beyond_stream_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    if !request_line.starts_with("POST") {
                        let json = r#"{"object":"list","data":[{"id":"fake","object":"model"}]}"#;
                        let _ = write!(
                            out,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                            json.len()
                        );
                        continue;
                    }
                    let mut events = String::new();
                    for text in ["a", "b", "c"] {
                        events.push_str(&format!(
                            "data: {{\"id\":\"x\",\"object\":\"text_completion\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"finish_reason\":null}}]}}\n\n"
                        ));
                    }
                    events.push_str(
                        "data: {\"id\":\"x\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"total_tokens\":9}}\n\ndata: [DONE]\n\n",
                    );
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{events}",
                        events.len()
                    );
                }
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn output_tokens_known_only_from_the_final_usage_reach_the_time_series() {
    let url = usage_beyond_stream_server();
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "--scenario",
        "Offline",
        "--backend",
        &url,
        "--api",
        "completions-text",
        "--total-sample-count",
        "8",
        // This fake server answers at once: whether its Offline query lasts
        // the conf's min_duration is a race, and validity is not the point.
        "--min-duration-ms",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let data = reports::load(&scratch.run_dirs()[0], 1).unwrap();
    let summary = reports::summarize(&data);
    let throughput = summary.throughput.unwrap();
    let samples = data.main_phase().unwrap().samples.len() as u64;
    assert!(samples > 0);
    // Every sample: 3 streamed chunks, 4 tokens by the usage.
    assert_eq!(throughput.output_tokens, 4 * samples);
    let series = reports::charts::time_series(data.main_phase().unwrap());
    let charted: f64 = series.tokens_per_s.iter().map(|&(_, y)| y).sum::<f64>() * series.bin_s;
    assert_eq!(charted.round() as u64, throughput.output_tokens);
    // The peak second cannot hold fewer tokens than a fair share of the run.
    assert!(throughput.peak_output_tokens_per_s >= 4.0, "{throughput:?}");
}
