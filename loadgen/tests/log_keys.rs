//! The detail log of a whole test driven by `start_test`, for the keys
//! LoadGen writes around the phases: `loadgen_file_sha1` (our own sources'
//! hashes, checked against the files), the `logger_*` counters and
//! `power_begin` / `power_end` after every phase, in LoadGen's order. With
//! `LOADGEN_PYTHON` (the 6.0.17 wheel) set, the same test run through the
//! wheel must log these keys in the same sequence.
// Integration tests are not #[test]-scoped for clippy's allow-*-in-tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use loadgen::logging::{LOGGER_COUNTERS, LogHeader, LogWriter};
use loadgen::results::PerformanceSummary;
use loadgen::{
    EffectiveSettings, LogOutputSettings, LogSettings, Phase, PhaseLog, PhaseMeasurements,
    PhaseVerdict, QslError, QuerySample, QuerySampleIndex, QuerySampleLibrary, QuerySampleResponse,
    Responder, RunOptions, Scenario, SystemUnderTest, TestHooks, TestMode, TestSettings,
    start_test,
};
use serde_json::Value;
use sha1::{Digest, Sha1};

struct InstantSut;

impl SystemUnderTest for InstantSut {
    fn name(&self) -> &str {
        "instant"
    }
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        let mut responses: Vec<_> = samples
            .iter()
            .map(|s| QuerySampleResponse {
                id: s.id,
                ..QuerySampleResponse::default()
            })
            .collect();
        responder.complete_all(&mut responses);
    }
}

struct Qsl;

impl QuerySampleLibrary for Qsl {
    fn name(&self) -> &str {
        "qsl"
    }
    fn total_sample_count(&self) -> usize {
        100
    }
    fn performance_sample_count(&self) -> usize {
        50
    }
    fn load_samples_to_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
        Ok(())
    }
    fn unload_samples_from_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
        Ok(())
    }
}

/// The hooks `harness run` uses, reduced to the log calls.
struct LogHooks(Arc<LogWriter>);

impl TestHooks for LogHooks {
    fn phase_log(&self) -> Arc<dyn PhaseLog> {
        LogWriter::phase_log(&self.0, 0)
    }
    fn loaded_qsl_set(&self, set: &loadgen::LoadableSet) {
        let v: Vec<u64> = set.samples.iter().map(|&i| i as u64).collect();
        self.0.log_loaded_qsl_set(&v);
    }
    fn generated(&self, schedule: &loadgen::Schedule) {
        self.0.log_generated(schedule);
    }
    fn phase_ended(&self, _: Phase, m: &PhaseMeasurements) {
        self.0.log_phase_end(m);
    }
    fn performance_finished(&self, s: &EffectiveSettings, m: &PhaseMeasurements) -> PhaseVerdict {
        let summary = PerformanceSummary::compute(s, &m.result);
        self.0.log_results(s, &summary).unwrap();
        PhaseVerdict {
            valid: summary.valid,
            perf_constraints_met: summary.perf_constraints_met,
            reasons: Vec::new(),
        }
    }
}

/// The settings of the wheel driver below.
fn requested() -> TestSettings {
    TestSettings {
        scenario: Scenario::Offline,
        mode: TestMode::SubmissionRun,
        min_duration_ms: 50,
        min_query_count: 700,
        offline_expected_qps: 1000.0,
        ..TestSettings::default()
    }
}

const WHEEL_DRIVER: &str = r#"
import sys
import mlperf_loadgen as lg
s = lg.TestSettings()
s.scenario = lg.TestScenario.Offline
s.mode = lg.TestMode.SubmissionRun
s.min_duration_ms = 50
s.min_query_count = 700
s.offline_expected_qps = 1000
def issue(qs):
    lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in qs])
sut = lg.ConstructSUT(issue, lambda: None)
qsl = lg.ConstructQSL(100, 50, lambda x: None, lambda x: None)
ls = lg.LogSettings()
ls.log_output.outdir = sys.argv[1]
ls.enable_trace = False
lg.StartTestWithLogSettings(sut, qsl, s, ls)
"#;

fn run_ours(dir: &Path) -> PathBuf {
    let (effective, _) = EffectiveSettings::new(&requested(), 50, 100).unwrap();
    let settings = LogSettings {
        log_output: LogOutputSettings {
            outdir: dir.to_owned(),
            ..LogOutputSettings::default()
        },
        enable_trace: false,
    };
    let header = LogHeader::new("instant", "qsl", 100, 50, Scenario::Offline, false);
    let log = Arc::new(LogWriter::open(&settings, &header).unwrap());
    log.log_settings(&effective, &[]);
    let hooks = LogHooks(Arc::clone(&log));
    start_test(
        &InstantSut,
        &Qsl,
        &effective,
        &hooks,
        &RunOptions::default(),
    )
    .unwrap();
    log.finish().unwrap().detail
}

/// `(key, value)` of every line.
fn lines(path: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l.strip_prefix(":::MLLOG ").unwrap())
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            (v["key"].as_str().unwrap().to_owned(), v["value"].clone())
        })
        .collect()
}

/// The keys whose order this test is about.
fn structural(lines: &[(String, Value)]) -> Vec<String> {
    lines
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            k.starts_with("loadgen_")
                || k.starts_with("logger_")
                || k.starts_with("power_")
                || k.starts_with("generated_")
                || matches!(
                    k.as_str(),
                    "test_datetime" | "loaded_qsl_set" | "result_validity" | "num_errors"
                )
        })
        .collect()
}

/// `MM-DD-YYYY HH:MM:SS.mmm` as milliseconds since the epoch (the power
/// checker's `%m-%d-%Y %H:%M:%S.%f`, UTC).
fn power_ms(text: &str) -> u64 {
    let b = text.as_bytes();
    assert_eq!(text.len(), 23, "{text}");
    for (i, c) in [
        (2, b'-'),
        (5, b'-'),
        (10, b' '),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        assert_eq!(b[i], c, "{text}");
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (m, d, y) = (n(0..2), n(3..5), n(6..10));
    // Days from civil (Howard Hinnant), independent of the writer's code path.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn phase_end_keys_follow_every_phase_in_loadgens_order() {
    let dir = tempfile::tempdir().unwrap();
    let before = now_ms();
    let detail = run_ours(dir.path());
    let after = now_ms();
    let lines = lines(&detail);
    let keys = structural(&lines);

    // One accuracy set of 50 samples then 50 more (100 total), then the
    // performance phase: three phases, each followed by the counters and
    // the power window.
    let mut phase_end: Vec<String> = LOGGER_COUNTERS.iter().map(|k| k.to_string()).collect();
    phase_end.extend(["power_begin".into(), "power_end".into()]);
    let mut want: Vec<String> = [
        "loadgen_version",
        "loadgen_build_date_local",
        "loadgen_build_date_utc",
        "loadgen_git_commit_date",
        "loadgen_git_log_message",
        "loadgen_git_status_message",
        "loadgen_file_sha1",
        "test_datetime",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    let phase = [
        "loaded_qsl_set",
        "generated_query_count",
        "generated_samples_per_query",
        "generated_query_duration",
    ];
    for _ in 0..3 {
        want.extend(phase.iter().map(|k| k.to_string()));
        want.extend(phase_end.iter().cloned());
    }
    want.extend(["result_validity".into(), "num_errors".into()]);
    assert_eq!(keys, want);

    for (k, v) in &lines {
        if k.starts_with("logger_") {
            assert_eq!(v, &Value::from(0), "{k}");
        }
    }
    // Each power window lies within the test and does not run backwards.
    let power: Vec<u64> = lines
        .iter()
        .filter(|(k, _)| k.starts_with("power_"))
        .map(|(_, v)| power_ms(v.as_str().unwrap()))
        .collect();
    assert_eq!(power.len(), 6);
    for pair in power.windows(2) {
        assert!(pair[0] <= pair[1], "{power:?}");
    }
    assert!(
        before <= power[0] && power[5] <= after,
        "{before} {power:?} {after}"
    );
}

#[test]
fn file_sha1_names_this_crates_sources() {
    let dir = tempfile::tempdir().unwrap();
    let detail = run_ours(dir.path());
    let lines = lines(&detail);
    let map = lines
        .iter()
        .find(|(k, _)| k == "loadgen_file_sha1")
        .map(|(_, v)| v.as_object().unwrap().clone())
        .unwrap();
    // Every file under src/ plus Cargo.toml and build.rs, hashed as they are
    // on disk now.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("Cargo.toml"), root.join("build.rs")];
    let mut stack = vec![root.join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(map.len(), files.len(), "{:?}", map.keys());
    for f in files {
        let name = format!(
            "/{}",
            f.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        );
        let hex: String = Sha1::digest(std::fs::read(&f).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(map.get(&name), Some(&Value::from(hex)), "{name}");
    }
    // The map's keys are sorted, as LoadGen's std::map prints them.
    let names: Vec<&String> = map.keys().collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[test]
fn same_key_sequence_as_the_loadgen_wheel() {
    let Ok(python) = std::env::var("LOADGEN_PYTHON") else {
        println!("skipping same_key_sequence_as_the_loadgen_wheel: LOADGEN_PYTHON is unset");
        return;
    };
    let theirs_dir = tempfile::tempdir().unwrap();
    let out = Command::new(&python)
        .args(["-c", WHEEL_DRIVER])
        .arg(theirs_dir.path())
        .current_dir(theirs_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "wheel run failed: {out:?}");
    let theirs = lines(&theirs_dir.path().join("mlperf_log_detail.txt"));
    let ours_dir = tempfile::tempdir().unwrap();
    let ours = lines(&run_ours(ours_dir.path()));
    assert_eq!(structural(&ours), structural(&theirs));
    // Same value types: counters are integers, power times are strings of
    // one length, the file hashes a string-to-string map.
    let kind = |v: &Value| match v {
        Value::String(s) if s.len() == 23 => "power-time",
        Value::String(_) => "string",
        Value::Number(n) if n.is_u64() => "uint",
        Value::Object(m) if m.values().all(Value::is_string) => "map",
        other => panic!("unexpected value {other}"),
    };
    for ((k, a), (_, b)) in ours
        .iter()
        .filter(|(k, _)| {
            k.starts_with("logger_") || k.starts_with("power_") || k == "loadgen_file_sha1"
        })
        .zip(theirs.iter().filter(|(k, _)| {
            k.starts_with("logger_") || k.starts_with("power_") || k == "loadgen_file_sha1"
        }))
    {
        assert_eq!(kind(a), kind(b), "{k}: ours {a}, theirs {b}");
    }
}
