//! The commands that judge runs, end to end against simulators on
//! 127.0.0.1:0: find-peak (only VALID peaks, failing servers, Ctrl-C and
//! resume), compare and gate (differing settings, unsound runs, unknown
//! metrics), history's metric names, and sweeps (resume with their own
//! settings, sampling and backend dimensions). Runs are kept tiny.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod cli;
    pub mod output;
    pub mod paths;
    pub mod simulator;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cli::harness;
use common::output::text;
use common::paths::sample_dataset;
use common::simulator;

/// Short Server runs (a few hundred ms): too few queries for LoadGen's
/// early stopping, so every run is INVALID but meets its latency bound at
/// light load.
const TINY_CONF: &str = "\
*.Server.target_qps = 200
*.*.min_duration = 100
*.Server.min_query_count = 40
";

fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.conf"), TINY_CONF).unwrap();
    dir
}

/// The options every run here shares (8 output tokens unless `extra`
/// says otherwise).
fn run_opts(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--quiet", "--no-report", "--user-conf", "tiny.conf"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if !extra.contains(&"--max-tokens") {
        v.extend(["--max-tokens".to_owned(), "8".to_owned()]);
    }
    v.extend([
        "--dataset-path".to_owned(),
        sample_dataset().display().to_string(),
    ]);
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn with(cmd: &[&str], extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
    v.extend(run_opts(extra));
    v
}

fn harness_v(cwd: &Path, args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    harness(cwd, &refs)
}

fn dirs_in(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
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

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn find_peak_against_a_failing_server_stops_at_the_first_step_and_exits_3() {
    let dir = scratch();
    let failing = simulator::start(7, |c| {
        c.faults.error_rates = vec![sim::ErrorRate {
            status: 500,
            probability: 0.5,
        }];
    });
    let output = harness_v(
        dir.path(),
        &with(
            &["find-peak", "--precision", "0"],
            &["--backend", &failing.url],
        ),
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("no VALID peak"), "{stdout}");
    assert!(stdout.contains("queries failed"), "{stdout}");
    let search = &dirs_in(&dir.path().join("runs"))[0];
    let record = json(&search.join("find_peak.json"));
    assert_eq!(record["status"], "complete");
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        1,
        "the search stops at the failing base: {record}"
    );
    assert_eq!(steps[0]["passed"], false);
    assert!(steps[0]["failed"].as_u64().unwrap() > 0, "{record}");
    assert!(record["peak_qps"].is_null());
}

#[test]
fn loadgens_own_peak_search_stops_at_a_server_that_fails_queries() {
    let dir = scratch();
    let failing = simulator::start(7, |c| {
        c.faults.error_rates = vec![sim::ErrorRate {
            status: 500,
            probability: 0.5,
        }];
    });
    let output = harness_v(
        dir.path(),
        &with(
            &["run", "--test-mode", "FindPeakPerformance"],
            &["--backend", &failing.url],
        ),
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Failed queries fail the step: one run, no widening, no peak quoted.
    assert_eq!(stdout.matches("  find-peak: ").count(), 1, "{stdout}");
    assert!(stdout.contains("qps failed"), "{stdout}");
    assert!(stdout.contains("no VALID peak"), "{stdout}");
    assert!(!stdout.contains("peak target QPS"), "{stdout}");
}

#[test]
fn find_peak_never_reports_an_invalid_peak_and_resumes_from_its_record() {
    let dir = scratch();
    // A generous TTFT bound: light load passes, the simulated engine's
    // saturation fails. No run is VALID: early stopping at p99 needs 459
    // queries all under the bound, a 100 ms run has that many only from
    // 4,590 QPS, and the 8B H100 profile's engine (40 µs per prefill token,
    // at most 8,192 a step) prefills these ~120-token prompts at about 200
    // a second. Its capacity is simulated time, not CPU: the premise holds
    // however fast the client and the simulator's code get (with
    // tiny-fast, whose engine outruns this machine's CPU, a faster client
    // did reach 4,590 QPS within a 40 ms bound).
    std::fs::write(
        dir.path().join("tiny.conf"),
        format!("{TINY_CONF}*.Server.target_qps = 50\n*.Server.ttft_latency = 200\n"),
    )
    .unwrap();
    let args = with(
        &["find-peak", "--precision", "0", "--step-size", "3"],
        &["--sim-profile", "llama3.1-8b-h100"],
    );
    let output = harness_v(dir.path(), &args);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("no VALID peak"), "{stdout}");
    assert!(!stdout.lines().any(|l| l.starts_with("peak: ")), "{stdout}");
    let search = dirs_in(&dir.path().join("runs"))[0].clone();
    let record = json(&search.join("find_peak.json"));
    assert!(record["peak_qps"].is_null(), "{record}");
    let steps = record["steps"].as_array().unwrap().clone();
    assert!(steps.iter().all(|s| s["valid"] == false), "{record}");
    if record["search_peak_qps"].is_null() {
        // The base run already failed: nothing to resume into.
        return;
    }
    assert!(steps.len() >= 3, "{record}");

    // As if Ctrl-C had come during the third step: resume runs only the
    // steps after the two kept ones, and keeps those as they were.
    let mut cut = record;
    cut["steps"] = serde_json::Value::Array(steps[..2].to_vec());
    cut["status"] = "interrupted".into();
    std::fs::write(
        search.join("find_peak.json"),
        serde_json::to_vec(&cut).unwrap(),
    )
    .unwrap();
    let before = dirs_in(&search).len();
    let search_arg = search.to_str().unwrap();
    // A flag that changes the search's settings is refused by name.
    let conflict = harness(
        dir.path(),
        &["find-peak", "--resume", search_arg, "--max-tokens", "64"],
    );
    assert_eq!(conflict.status.code(), Some(2), "{}", text(&conflict));
    assert!(
        String::from_utf8_lossy(&conflict.stderr)
            .contains("--max-tokens 64 (the peak search has 8)"),
        "{}",
        text(&conflict)
    );
    let resumed = harness(dir.path(), &["find-peak", "--resume", search_arg]);
    assert_eq!(resumed.status.code(), Some(3), "{}", text(&resumed));
    let after = json(&search.join("find_peak.json"));
    let new_steps = after["steps"].as_array().unwrap();
    assert_eq!(new_steps[..2], steps[..2], "the kept steps are replayed");
    assert_eq!(after["status"], "complete");
    assert_eq!(
        dirs_in(&search).len() - before,
        new_steps.len() - 2,
        "only the missing steps ran"
    );
    // The resumed steps ran with the search's own settings (8 tokens, not
    // the default 128).
    let last = search.join(new_steps.last().unwrap()["run_dir"].as_str().unwrap());
    assert_eq!(
        json(&last.join("run.json"))["config"]["request"]["max_tokens"],
        8
    );
}

#[test]
fn ctrl_c_during_find_peak_exits_130_and_keeps_the_record() {
    use std::io::Read;
    let dir = scratch();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir.path())
        .args(with(
            &["find-peak"],
            &["--sim-profile", "tiny-fast", "--min-duration-ms", "60000"],
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first step is issuing, then Ctrl-C.
    let search = loop {
        if let Some(search) = dirs_in(&dir.path().join("runs")).first()
            && let Some(step) = dirs_in(search).first()
            && std::fs::read_to_string(step.join(rundir::RECORDS_FILE))
                .is_ok_and(|t| t.lines().count() > 5)
        {
            break search.clone();
        }
        std::thread::yield_now();
    };
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("find-peak --resume"), "{stdout}");
    let record = json(&search.join("find_peak.json"));
    assert_eq!(record["status"], "interrupted", "{record}");
    assert!(record["peak_qps"].is_null());
}

#[test]
fn compare_and_gate_refuse_mismatched_and_unsound_runs_unless_allowed() {
    let dir = scratch();
    for tokens in ["8", "8", "16"] {
        let output = harness_v(
            dir.path(),
            &with(
                &["run"],
                &["--sim-profile", "tiny-fast", "--max-tokens", tokens],
            ),
        );
        assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    }
    let runs = dirs_in(&dir.path().join("runs"));
    let (a, b, c) = (
        runs[0].to_str().unwrap(),
        runs[1].to_str().unwrap(),
        runs[2].to_str().unwrap(),
    );
    // Different max tokens: refused (exit 4), naming the setting and values.
    let refused = harness(dir.path(), &["compare", a, c]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("max_tokens"), "{stderr}");
    assert!(
        stderr.contains(": 8,") && stderr.contains(": 16)"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-mismatch"), "{stderr}");
    let allowed = harness(dir.path(), &["compare", a, c, "--allow-mismatch"]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(String::from_utf8_lossy(&allowed.stdout).contains("differs: max_tokens"));
    let as_json = harness(
        dir.path(),
        &["compare", a, c, "--allow-mismatch", "--format", "json"],
    );
    let parsed: serde_json::Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(parsed["differences"][0]["setting"], "max_tokens");
    // Same settings: nothing to refuse or state.
    let same = harness(dir.path(), &["compare", a, b]);
    assert!(same.status.success(), "{}", text(&same));
    assert!(!String::from_utf8_lossy(&same.stdout).contains("differs"));

    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nmetric = \"ttft_p99_ms\"\nmax_regression_abs = 100000\n",
    )
    .unwrap();
    let gate = |candidate: &str, extra: &[&str]| {
        let mut args = vec![
            "gate",
            "--baseline",
            a,
            "--candidate",
            candidate,
            "--rules",
            "rules.toml",
        ];
        args.extend(extra);
        harness(dir.path(), &args)
    };
    assert!(gate(b, &[]).status.success());
    assert_eq!(gate(c, &[]).status.code(), Some(4));
    assert!(gate(c, &["--allow-mismatch"]).status.success());

    // A candidate whose queries failed.
    let failing = simulator::start(7, |c| {
        c.faults.error_rates = vec![sim::ErrorRate {
            status: 503,
            probability: 0.3,
        }];
    });
    let output = harness_v(
        dir.path(),
        &with(&["run"], &["--backend", &failing.url, "--label", "failing"]),
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let failed_run = dirs_in(&dir.path().join("runs"))
        .into_iter()
        .find(|d| d.to_string_lossy().ends_with("-failing"))
        .unwrap();
    let failed_run = failed_run.to_str().unwrap();
    let refused = gate(failed_run, &[]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("queries failed"), "{stderr}");
    assert!(stderr.contains("--allow-failed-runs"), "{stderr}");
    // The backend differs too, but that is the system compared: stated, not
    // refused.
    let judged = gate(failed_run, &["--allow-failed-runs"]);
    assert!(judged.status.success(), "{}", text(&judged));
    assert!(
        String::from_utf8_lossy(&judged.stdout).contains("differs: backend"),
        "{}",
        text(&judged)
    );

    // A candidate whose LoadGen log holds errors though no query failed:
    // one output token per answer is an error to LoadGen's token latencies.
    let output = harness_v(
        dir.path(),
        &with(
            &["run"],
            &[
                "--sim-profile",
                "tiny-fast",
                "--max-tokens",
                "1",
                "--label",
                "onetoken",
            ],
        ),
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let one_token = dirs_in(&dir.path().join("runs"))
        .into_iter()
        .find(|d| d.to_string_lossy().ends_with("-onetoken"))
        .unwrap();
    let refused = gate(one_token.to_str().unwrap(), &["--allow-mismatch"]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("LoadGen logged"),
        "{}",
        text(&refused)
    );

    // A candidate killed mid-run (SIGKILL: run.json still says running).
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir.path())
        .args(with(
            &["run"],
            &[
                "--sim-profile",
                "tiny-fast",
                "--min-duration-ms",
                "60000",
                "--label",
                "killed",
            ],
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let killed = loop {
        if let Some(run) = dirs_in(&dir.path().join("runs"))
            .into_iter()
            .find(|d| d.to_string_lossy().ends_with("-killed"))
            && std::fs::read_to_string(run.join(rundir::RECORDS_FILE))
                .is_ok_and(|t| t.lines().count() > 5)
        {
            break run;
        }
        std::thread::yield_now();
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let refused = gate(killed.to_str().unwrap(), &[]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("crashed"),
        "{}",
        text(&refused)
    );

    // An unknown metric in a rule is a usage error listing the valid names.
    std::fs::write(
        dir.path().join("typo.toml"),
        "[[rule]]\nmetric = \"ttft_p99\"\n",
    )
    .unwrap();
    let typo = harness(
        dir.path(),
        &[
            "gate",
            "--baseline",
            a,
            "--candidate",
            b,
            "--rules",
            "typo.toml",
        ],
    );
    assert_eq!(typo.status.code(), Some(2), "{}", text(&typo));
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains("\"ttft_p99\"") && stderr.contains("ttft_p99_ms"),
        "{stderr}"
    );

    // history: an unknown metric is an error naming the valid ones; a known
    // one lists its values.
    let db = dir.path().join("runs/history.sqlite");
    let db = db.to_str().unwrap();
    let unknown = harness(
        dir.path(),
        &["history", "--db", db, "--metric", "no_such_metric"],
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("samples_per_s"));
    let known = harness(
        dir.path(),
        &["history", "--db", db, "--metric", "samples_per_s"],
    );
    assert!(known.status.success(), "{}", text(&known));
}

#[test]
fn a_sweep_over_two_servers_resumes_with_its_own_settings() {
    let dir = scratch();
    let (one, two) = (simulator::start(7, |_| {}), simulator::start(7, |_| {}));
    let backends = format!("backend={},{}", one.url, two.url);
    let output = harness_v(
        dir.path(),
        &with(
            &["sweep", "--vary", &backends, "--vary", "target_qps=100,200"],
            &[],
        ),
    );
    assert!(output.status.success(), "{}", text(&output));
    let sweep = dirs_in(&dir.path().join("runs"))[0].clone();
    let record = json(&sweep.join("sweep.json"));
    let points = record["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for (point, url) in points.iter().zip([&one.url, &one.url, &two.url, &two.url]) {
        let run = json(
            &sweep
                .join(point["run_dir"].as_str().unwrap())
                .join("run.json"),
        );
        assert_eq!(run["backends"][0], url.as_str());
    }
    for chart in [
        "sweep_latency.png",
        "sweep_tokens.png",
        "sweep_validity.png",
    ] {
        assert!(sweep.join(chart).is_file(), "{chart}");
    }

    // Given as a sweep directory, its points compare: the settings the sweep
    // varies differ by design and are stated, not refused.
    let compared = harness(dir.path(), &["compare", sweep.to_str().unwrap()]);
    assert!(compared.status.success(), "{}", text(&compared));
    let stdout = String::from_utf8_lossy(&compared.stdout);
    assert!(
        stdout.contains("differs: target_qps") && stdout.contains("varied by the sweep"),
        "{stdout}"
    );

    // Interrupted during point 2: `--resume DIR` alone runs points 2 and 3
    // with the sweep's settings (8 tokens, not the default 128).
    let mut edited = record.clone();
    for i in [2, 3] {
        edited["points"][i]["status"] = "interrupted".into();
    }
    std::fs::write(
        sweep.join("sweep.json"),
        serde_json::to_vec(&edited).unwrap(),
    )
    .unwrap();
    let sweep_arg = sweep.to_str().unwrap();
    // A flag that differs from the sweep's is refused by name...
    let conflict = harness(
        dir.path(),
        &["sweep", "--resume", sweep_arg, "--max-tokens", "64"],
    );
    assert_eq!(conflict.status.code(), Some(2), "{}", text(&conflict));
    assert!(
        String::from_utf8_lossy(&conflict.stderr).contains("--max-tokens 64 (the sweep has 8)"),
        "{}",
        text(&conflict)
    );
    let other_grid = harness(
        dir.path(),
        &["sweep", "--resume", sweep_arg, "--vary", "target_qps=1"],
    );
    assert_eq!(other_grid.status.code(), Some(2), "{}", text(&other_grid));
    // ...and the same flags again are fine; here: none at all.
    let resumed = harness(dir.path(), &["sweep", "--resume", sweep_arg]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let after = json(&sweep.join("sweep.json"));
    assert_eq!(
        after["points"][0]["run_dir"],
        record["points"][0]["run_dir"]
    );
    for i in [2, 3] {
        let point = &after["points"][i];
        assert_eq!(point["status"], "complete");
        assert_ne!(point["run_dir"], record["points"][i]["run_dir"]);
        let run = json(
            &sweep
                .join(point["run_dir"].as_str().unwrap())
                .join("run.json"),
        );
        assert_eq!(run["config"]["request"]["max_tokens"], 8, "{run}");
        assert_eq!(run["backends"][0], two.url.as_str());
    }
}

#[test]
fn a_sweep_varies_sampling_settings_through_the_request_body() {
    let dir = scratch();
    let output = harness_v(
        dir.path(),
        &with(
            &[
                "sweep",
                "--vary",
                "temperature=0,0.5",
                "--vary",
                "extra_body:top_k=1",
            ],
            &["--sim-profile", "tiny-fast"],
        ),
    );
    assert!(output.status.success(), "{}", text(&output));
    let sweep = dirs_in(&dir.path().join("runs"))[0].clone();
    let record = json(&sweep.join("sweep.json"));
    let mut seen = Vec::new();
    for point in record["points"].as_array().unwrap() {
        let run = json(
            &sweep
                .join(point["run_dir"].as_str().unwrap())
                .join("run.json"),
        );
        let body = &run["config"]["request"]["extra_body"];
        assert_eq!(body["top_k"], 1, "{run}");
        seen.push(body["temperature"].as_f64().unwrap());
    }
    assert_eq!(seen, [0.0, 0.5]);
    let csv = std::fs::read_to_string(sweep.join("sweep.csv")).unwrap();
    assert!(
        csv.starts_with("point,temperature,extra_body:top_k,status"),
        "{csv}"
    );
}

#[test]
fn ctrl_c_during_a_sweep_exits_130_and_names_the_resume_command() {
    use std::io::Read;
    let dir = scratch();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir.path())
        .args(with(
            &["sweep", "--vary", "target_qps=100,200"],
            &["--sim-profile", "tiny-fast", "--min-duration-ms", "60000"],
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sweep = loop {
        if let Some(sweep) = dirs_in(&dir.path().join("runs")).first()
            && let Some(point) = dirs_in(sweep).first()
            && std::fs::read_to_string(point.join(rundir::RECORDS_FILE))
                .is_ok_and(|t| t.lines().count() > 5)
        {
            break sweep.clone();
        }
        std::thread::yield_now();
    };
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    let expected = format!(
        "harness sweep --resume {}",
        sweep.strip_prefix(dir.path()).unwrap().display()
    );
    assert!(stdout.contains(&expected), "{expected} in {stdout}");
    let record = json(&sweep.join("sweep.json"));
    assert_eq!(record["points"][0]["status"], "interrupted");
    assert_eq!(record["points"][1]["status"], "pending");
    // The stored command line is what `--resume` alone runs again.
    let command: Vec<&str> = record["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        command
            .windows(2)
            .any(|w| w == ["--min-duration-ms", "60000"]),
        "{command:?}"
    );
}
