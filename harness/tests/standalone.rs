//! The harness binary on its own: copied into an empty directory (no
//! checkout beside it) it runs the README's default `harness run`, and the
//! metrics options (`--metrics-format`, `--gpus`, the series recorded in
//! the history) work from there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod output;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::output::text;
use std::sync::Mutex;

/// Held while a test writes its copy of the binary and while one spawns a
/// child. A child forked while another test's copy is still open for writing
/// inherits that descriptor until it execs, and executing the copy then
/// fails with "Text file busy" (ETXTBSY); `spawn` returns only after the
/// child has exec'd, so holding this across both closes the window.
static FORK: Mutex<()> = Mutex::new(());

/// Runs `command` to completion, spawning it under [`FORK`].
fn output(command: &mut Command) -> Output {
    let child = {
        let _fork = FORK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    child.wait_with_output().unwrap()
}

/// An empty directory holding only a copy of the harness binary.
fn copied_binary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("harness");
    let _fork = FORK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::fs::copy(env!("CARGO_BIN_EXE_harness"), &bin).unwrap();
    (dir, bin)
}

fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn a_copied_binary_runs_with_no_arguments() {
    // The README's first command, exactly: no flags, no files around it.
    let (dir, bin) = copied_binary();
    let out = output(Command::new(&bin).current_dir(dir.path()).arg("run"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let runs = run_dirs(dir.path());
    assert_eq!(runs.len(), 1, "{}", text(&out));
    let manifest = rundir::RunManifest::read(&runs[0]).unwrap();
    assert_eq!(
        manifest.dataset.as_deref(),
        Some("bundled:cnn_dailymail_sample.json")
    );
}

#[test]
fn a_copied_binary_collects_metrics_in_the_wide_layout() {
    let (dir, bin) = copied_binary();
    std::fs::write(
        dir.path().join("user.conf"),
        "*.Server.target_qps = 200\n*.*.min_duration = 300\n*.Server.min_query_count = 40\n",
    )
    .unwrap();
    let out = output(Command::new(&bin).current_dir(dir.path()).args([
        "run",
        "--quiet",
        "--no-report",
        "--user-conf",
        "user.conf",
        "--max-tokens",
        "8",
        "--enable-metrics-collection",
        "--metrics-collection-interval",
        "0.1",
        "--metrics-format",
        "wide",
        // No GPU here: NVML is missing, which is a warning, not an error.
        "--gpus",
        "0",
    ]));
    // VALID or INVALID both mean the run completed; only the files matter.
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
    let run = run_dirs(dir.path()).pop().unwrap();
    let samples = rundir::metrics::read_metrics(&run.join(rundir::METRICS_FILE)).unwrap();
    let mut ticks: Vec<u64> = samples.iter().filter_map(|s| s.tick).collect();
    ticks.sort_unstable();
    ticks.dedup();
    assert!(ticks.len() >= 2, "{ticks:?}");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("tick,t_ns,"), "{header}");
    // The simulator's series, normalized and as scraped, are columns.
    assert!(header.contains("/requests_running"), "{header}");
    assert!(header.contains("server_raw/"), "{header}");
    assert_eq!(lines.count(), ticks.len());

    // The normalized series are in the history with the run, as collected.
    let manifest = rundir::RunManifest::read(&run).unwrap();
    let history = history::History::open(&history::Database::from(
        dir.path().join("runs/history.sqlite"),
    ))
    .unwrap();
    let stored = history
        .series(&manifest.run_id, Some("requests_running"))
        .unwrap();
    let collected: Vec<(u64, f64)> = samples
        .iter()
        .filter(|s| s.source == rundir::metrics::MetricSource::Server)
        .filter_map(|s| s.values.get("requests_running").map(|v| (s.t_ns, *v)))
        .collect();
    assert!(!collected.is_empty());
    let mut stored: Vec<(u64, f64)> = stored.iter().map(|p| (p.t_ns, p.value)).collect();
    stored.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut collected = collected;
    collected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(stored, collected);
    // Series as scraped stay in the run directory only.
    assert!(
        history
            .series(&manifest.run_id, None)
            .unwrap()
            .iter()
            .all(|p| p.source != "server_raw")
    );
}

#[test]
fn bad_gpu_lists_are_usage_errors() {
    for args in [
        &["--enable-metrics-collection", "--gpus", "0,x"][..],
        &["--enable-metrics-collection", "--gpus", "1,1"][..],
        &["--gpus", "0"][..],
    ] {
        let out = output(
            Command::new(env!("CARGO_BIN_EXE_harness"))
                .arg("run")
                .args(args),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--gpus"), "{args:?}: {stderr}");
    }
}
