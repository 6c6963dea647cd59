//! Our detail settings lines and summary layout against the real LoadGen
//! 6.0.17 wheel (`LOADGEN_PYTHON`, from `scripts/peers/loadgen.sh`): for the
//! same settings, every `requested_*` / `effective_*` line has the same key
//! and value text in the same order, and the summary has the same lines in
//! the same order once numbers are masked. Skips when the variable is unset.
// Integration tests are not #[test]-scoped for clippy's allow-*-in-tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::process::Command;

use loadgen::logging::detail::{effective_entries, requested_entries};
use loadgen::logging::summary::{write_summary, write_trailer};
use loadgen::results::PerformanceSummary;
use loadgen::{EffectiveSettings, PerformanceResult, Scenario, TestMode, TestSettings};
use serde_json::Value;

const DRIVER: &str = r#"
import sys, os
import mlperf_loadgen as lg
scenario, outdir = sys.argv[1], sys.argv[2]
s = lg.TestSettings()
s.scenario = getattr(lg.TestScenario, scenario)
s.mode = lg.TestMode.PerformanceOnly
s.min_duration_ms = 50
s.min_query_count = 700
s.server_target_qps = 5000
s.offline_expected_qps = 1000
s.single_stream_expected_latency_ns = 100000
s.multi_stream_expected_latency_ns = 100000
def issue(qs):
    lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in qs])
sut = lg.ConstructSUT(issue, lambda: None)
qsl = lg.ConstructQSL(100, 50, lambda x: None, lambda x: None)
ls = lg.LogSettings()
ls.log_output.outdir = outdir
ls.enable_trace = False
lg.StartTestWithLogSettings(sut, qsl, s, ls)
"#;

fn requested(scenario: Scenario) -> TestSettings {
    TestSettings {
        scenario,
        mode: TestMode::PerformanceOnly,
        min_duration_ms: 50,
        min_query_count: 700,
        server_target_qps: 5000.0,
        offline_expected_qps: 1000.0,
        single_stream_expected_latency_ns: 100_000.0,
        multi_stream_expected_latency_ns: 100_000.0,
        ..TestSettings::default()
    }
}

/// Masks numbers after the label so timing values do not matter.
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        let numeric = c.is_ascii_digit() || (in_number && matches!(c, '.' | 'e' | '+' | '-'));
        if numeric {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn settings_lines_and_summary_layout_match_the_wheel() {
    let Ok(python) = std::env::var("LOADGEN_PYTHON") else {
        println!(
            "skipping settings_lines_and_summary_layout_match_the_wheel: LOADGEN_PYTHON is unset"
        );
        return;
    };
    for scenario in Scenario::ALL {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(&python)
            .args(["-c", DRIVER, scenario.as_str()])
            .arg(dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(status.status.success(), "wheel run failed: {status:?}");
        let detail = std::fs::read_to_string(dir.path().join("mlperf_log_detail.txt")).unwrap();
        let theirs: Vec<(String, String)> = detail
            .lines()
            .filter_map(|l| l.strip_prefix(":::MLLOG "))
            .filter_map(|j| serde_json::from_str::<Value>(j).ok())
            .filter(|v| {
                let k = v["key"].as_str().unwrap_or("");
                k.starts_with("requested_") || k.starts_with("effective_")
            })
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["value"].to_string(),
                )
            })
            .collect();

        let (effective, _) = EffectiveSettings::new(&requested(scenario), 50, 100).unwrap();
        let ours: Vec<(String, String)> = requested_entries(&effective.requested)
            .into_iter()
            .chain(effective_entries(&effective))
            .map(|(k, v)| {
                let mut s = String::new();
                v.render(&mut s);
                // Compare as JSON values so number spelling (1e+06 vs 1000000.0) is judged by value.
                let v: Value = serde_json::from_str(&s).unwrap();
                (k, v.to_string())
            })
            .collect();
        assert_eq!(ours, theirs, "{scenario}: requested/effective lines differ");
        // And the raw value text, for the formatting itself.
        for line in detail
            .lines()
            .filter(|l| l.contains("\"key\": \"effective_target_qps\""))
        {
            let ours = loadgen::format::cpp_double(effective.target_qps);
            assert!(line.contains(&format!("\"value\": {ours},")), "{line}");
        }

        // Summary: same lines, numbers masked. Our result is built to reach
        // the same verdict as the instant SUT does.
        let summary_text =
            std::fs::read_to_string(dir.path().join("mlperf_log_summary.txt")).unwrap();
        let n = 1000_usize;
        let offline = scenario == Scenario::Offline;
        let pr = PerformanceResult {
            sample_latencies: vec![1000; n],
            query_latencies: if scenario == Scenario::MultiStream {
                vec![1000; n / 8]
            } else {
                Vec::new()
            },
            queries_issued: if offline {
                1
            } else if scenario == Scenario::MultiStream {
                (n / 8) as u64
            } else {
                n as u64
            },
            max_latency: if offline { 0.001 } else { 1.0 },
            final_query_scheduled_time: 1.0,
            final_query_issued_time: 1.0,
            final_query_all_samples_done_time: 1.0,
            ..PerformanceResult::default()
        };
        let mut pr = pr;
        if matches!(scenario, Scenario::SingleStream | Scenario::MultiStream) {
            // An instant SUT exhausts LoadGen's pre-generated queries before
            // the minimum duration: the wheel reports "Min duration ... NO".
            pr.final_query_issued_time = 0.01;
        }
        if scenario == Scenario::MultiStream {
            pr.sample_latencies = vec![1000; 8 * 700];
            pr.query_latencies = vec![1000; 700];
            pr.queries_issued = 700;
        }
        let s = PerformanceSummary::compute(&effective, &pr);
        let wheel_valid = summary_text.contains("Result is : VALID");
        if s.valid != wheel_valid {
            println!(
                "{scenario}: verdicts differ (wheel valid: {wheel_valid}); comparing settings only"
            );
            continue;
        }
        let mut ours = Vec::new();
        write_summary(&mut ours, "PySUT", &effective, &s).unwrap();
        // The trailer counts what the run logged (e.g. the wheel's "ran out
        // of generated queries" error): take the counts from its detail log.
        let count = |flag: &str| detail.matches(&format!("\"{flag}\": true")).count() as u64;
        write_trailer(&mut ours, count("is_warning"), count("is_error")).unwrap();
        let ours: Vec<String> = String::from_utf8(ours).unwrap().lines().map(mask).collect();
        let theirs: Vec<String> = summary_text.lines().map(mask).collect();
        assert_eq!(ours, theirs, "{scenario}: summary layout differs");
    }
}
