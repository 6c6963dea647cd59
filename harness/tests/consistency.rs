//! One truth: every figure a run shows in more than one place has the same
//! value everywhere, at the precision each place shows it.
//!
//! Runs `harness run` for the four scenarios against a simulator that fails
//! some requests (HTTP 500), and a small sweep, then reads every output: the
//! terminal, summary.json, mlperf_log_summary.txt, mlperf_log_detail.txt,
//! the history database, report.html, queries.csv, records.jsonl and
//! sweep.csv. Against llama.cpp too when the peer is installed
//! (`LLAMACPP_PYTHON`, `LLAMACPP_MODEL`; skipped otherwise).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

mod common {
    pub mod child;
    pub mod cli;
    pub mod http;
    pub mod llamacpp;
    pub mod output;
    pub mod paths;
    pub mod simulator;
    pub mod stdout;
}

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::cli::harness;
use common::llamacpp;
use common::output::text;
use common::paths::sample_dataset;
use common::simulator::{self, Sim};
use loadgen::format::cpp_double;
use serde_json::Value;

/// Short runs with small counts.
const CONF: &str = "\
*.Server.target_qps = 300
*.Offline.target_qps = 2000
*.*.min_duration = 200
*.Server.min_query_count = 60
*.Offline.min_query_count = 40
*.SingleStream.min_query_count = 12
*.SingleStream.target_latency = 50
*.MultiStream.min_query_count = 6
*.MultiStream.target_latency = 200
";

/// The simulator answering one request in ten with HTTP 500.
fn failing_sim() -> Sim {
    simulator::start(11, |config| {
        config.faults.error_rates = vec![sim::ErrorRate {
            status: 500,
            probability: 0.1,
        }];
    })
}

/// Whether the one run under `dir/out_dir` has the file `name`.
fn runs_dir_has(dir: &Path, out_dir: &str, name: &str) -> bool {
    run_dirs(&dir.join(out_dir))
        .first()
        .is_some_and(|run| run.join(name).is_file())
}

/// The run directories under `dir`, oldest first.
fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value after the last `:` of the first line starting with `label`.
fn labelled<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(label))
        .and_then(|l| l.rsplit_once(':'))
        .map(|(_, v)| v.trim())
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// A figure's value, as `ns` (integer nanoseconds) from ms.
fn ns(ms: f64) -> i64 {
    (ms * 1e6).round() as i64
}

/// Checks one finished run directory against every output that shows its
/// figures. `stdout` is the terminal output of the run.
/// `counts_requests`: the server exports request success/failure counters
/// (vLLM and the simulator do; llama.cpp exports none).
fn check_run(dir: &Path, stdout: &str, history: &Path, token_mode: bool, counts_requests: bool) {
    let summary = json(&dir.join("summary.json"));
    let figures: BTreeMap<String, f64> = summary["figures"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    let fig = |name: &str| {
        *figures
            .get(name)
            .unwrap_or_else(|| panic!("{}: no figure {name} in {figures:?}", dir.display()))
    };
    let scenario = summary["run"]["scenario"].as_str().unwrap().to_owned();
    let where_ = format!("{scenario} run {}", dir.display());

    // The terminal: throughput, the latency table and the verdict line.
    let verdict = summary["validity"]["verdict"].as_str().unwrap();
    assert!(
        stdout.lines().any(|l| l == format!("Result: {verdict}")),
        "{where_}: terminal verdict differs from summary.json's {verdict:?}:\n{stdout}"
    );
    let throughput_line = stdout
        .lines()
        .find(|l| l.starts_with("  target QPS"))
        .unwrap_or_else(|| panic!("{where_}: no throughput line:\n{stdout}"));
    assert!(
        throughput_line.contains(&format!("; {} samples/s", f2(fig("samples_per_s")))),
        "{where_}: {throughput_line} vs samples_per_s {}",
        fig("samples_per_s")
    );
    if let Some(tokens) = figures.get("output_tokens_per_s") {
        assert!(
            throughput_line.contains(&format!("; {tokens:.1} output tokens/s")),
            "{where_}: {throughput_line} vs output_tokens_per_s {tokens}"
        );
    }
    for (row, name) in [
        ("  latency ", "latency"),
        ("  time to first token", "ttft"),
        ("  time per output token", "tpot"),
    ] {
        let Some(line) = stdout.lines().find(|l| l.starts_with(row)) else {
            assert!(
                !figures.contains_key(&format!("{name}_p50_ms")),
                "{where_}: no {row} row"
            );
            continue;
        };
        let shown: Vec<&str> = line.split_whitespace().rev().take(4).collect();
        let want: Vec<String> = ["max", "p99", "p90", "p50"]
            .iter()
            .map(|p| f2(fig(&format!("{name}_{p}_ms"))))
            .collect();
        assert_eq!(shown, want, "{where_}: terminal {row} row");
    }

    // LoadGen's summary and detail logs hold the same figures.
    let lg_summary = std::fs::read_to_string(dir.join("mlperf_log_summary.txt")).unwrap();
    let detail = std::fs::read_to_string(dir.join("mlperf_log_detail.txt")).unwrap();
    let detail_value = |key: &str| {
        detail
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix(":::MLLOG "))
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["key"] == key)
            .map(|v| v["value"].to_string())
    };
    let samples_per_s = fig("samples_per_s");
    match scenario.as_str() {
        "Offline" => {
            assert_eq!(
                labelled(&lg_summary, "Samples per second"),
                Some(cpp_double(samples_per_s).as_str()),
                "{where_}"
            );
            assert_eq!(
                detail_value("result_samples_per_second"),
                Some(cpp_double(samples_per_s)),
                "{where_}"
            );
            if token_mode {
                assert_eq!(
                    labelled(&lg_summary, "Tokens per second:"),
                    Some(cpp_double(fig("output_tokens_per_s")).as_str()),
                    "{where_}"
                );
            }
        }
        "Server" => {
            assert_eq!(
                labelled(&lg_summary, "Completed samples per second"),
                Some(f2(samples_per_s).as_str()),
                "{where_}"
            );
            assert_eq!(
                detail_value("result_completed_samples_per_sec"),
                Some(cpp_double(samples_per_s)),
                "{where_}"
            );
            if token_mode {
                assert_eq!(
                    labelled(&lg_summary, "Completed tokens per second:"),
                    Some(f2(fig("output_tokens_per_s")).as_str()),
                    "{where_}"
                );
            }
        }
        "SingleStream" => assert_eq!(
            labelled(&lg_summary, "QPS w/ loadgen overhead"),
            Some(f2(samples_per_s).as_str()),
            "{where_}"
        ),
        _ => {}
    }
    for (label, p) in [("50.00", "p50"), ("90.00", "p90"), ("99.00", "p99")] {
        let at = |what: &str| {
            labelled(&lg_summary, &format!("{label} percentile {what} (ns)"))
                .map(|v| v.parse::<i64>().unwrap())
        };
        assert_eq!(
            at("latency"),
            Some(ns(fig(&format!("latency_{p}_ms")))),
            "{where_}: {p} latency"
        );
        if token_mode && scenario != "Offline" {
            assert_eq!(
                at("first token latency"),
                Some(ns(fig(&format!("ttft_{p}_ms")))),
                "{where_}: {p} TTFT"
            );
            assert_eq!(
                at("time to output token"),
                Some(ns(fig(&format!("tpot_{p}_ms")))),
                "{where_}: {p} TPOT"
            );
        } else if let Some(stats) = summary["tpot_ns"].as_object() {
            // LoadGen has no TPOT here: the figure is records.jsonl's, the
            // same number as summary.json's tpot_ns.
            let v = stats["percentiles"][p]["loadgen"].as_f64().unwrap();
            assert_eq!(fig(&format!("tpot_{p}_ms")), v / 1e6, "{where_}: {p} TPOT");
        }
    }

    // Every LoadGen error and every kind of failed sample is a warning,
    // and the verdict line counts them.
    let warnings: Vec<&str> = summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let logged = lg_summary
        .lines()
        .find(|l| l.contains("ERROR encountered") || l.contains("ERRORS encountered"))
        .map_or(0, |l| {
            l.split_whitespace().next().unwrap().parse::<u64>().unwrap()
        });
    let errors = summary["errors"]["loadgen"].as_array().unwrap();
    let counted: u64 = errors.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, logged, "{where_}: LoadGen's error count");
    for e in errors {
        let message = e["message"].as_str().unwrap();
        assert!(
            warnings.iter().any(|w| w.contains(message)),
            "{where_}: no warning for LoadGen error {message:?} in {warnings:?}"
        );
    }
    if logged > 0 {
        assert!(
            verdict.contains(&format!("LoadGen logged {logged} error")),
            "{where_}: {verdict}"
        );
    }
    let failed = summary["counts"]["failed"].as_u64().unwrap();
    assert_eq!(failed as f64, fig("failed"), "{where_}");
    for (kind, n) in summary["errors"]["by_kind"].as_object().unwrap() {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("{n} sample"))
                    && w.contains(&format!("failed: {kind}"))),
            "{where_}: no warning for failed {kind} in {warnings:?}"
        );
        assert!(
            verdict.contains(&format!("{kind} {n}")),
            "{where_}: {verdict}"
        );
    }
    if failed > 0 {
        assert!(verdict.starts_with("INVALID"), "{where_}: {verdict}");
        assert!(
            verdict.contains(&format!("{failed} sample")),
            "{where_}: {verdict}"
        );
    }

    // report.html: every figure at full precision, the same verdict, and a
    // Warnings section exactly when there are warnings.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for (name, value) in &figures {
        assert!(
            html.contains(&format!("data-name=\"{name}\" data-value=\"{value}\"")),
            "{where_}: report.html lacks {name} = {value}"
        );
    }
    assert!(
        html.contains(&format!("\">{verdict}</div>")),
        "{where_}: report.html verdict"
    );
    assert_eq!(
        html.contains("<h2>Warnings</h2>"),
        !warnings.is_empty(),
        "{where_}"
    );

    // The history holds the same figures, bit for bit.
    let db = history::History::open(&history::Database::Sqlite(history.to_path_buf())).unwrap();
    let run_id = summary["run"]["run_id"].as_str().unwrap();
    let entry = db
        .list(&history::Filter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.run_id == run_id)
        .unwrap_or_else(|| panic!("{where_}: not in the history"));
    let recorded: BTreeMap<String, f64> = entry.metrics.into_iter().collect();
    assert_eq!(recorded, figures, "{where_}: history vs summary.json");

    // Token totals: records.jsonl, queries.csv, the charts' token series,
    // summary.json and LoadGen's count.
    let records = rundir::read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let perf = records.performance().unwrap();
    let ok_tokens: i64 = perf
        .records
        .iter()
        .filter(|r| r.error().is_none())
        .map(|r| r.n_tokens.max(0))
        .sum();
    assert_eq!(
        summary["throughput"]["output_tokens"].as_i64(),
        Some(ok_tokens),
        "{where_}: output tokens"
    );
    let csv = std::fs::read_to_string(dir.join("queries.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (kind_col, tokens_col) = (col("error_kind"), col("output_tokens"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(
        rows.len() as u64,
        summary["counts"]["samples"].as_u64().unwrap()
    );
    assert_eq!(
        rows.iter().filter(|r| !r[kind_col].is_empty()).count() as u64,
        failed
    );
    let csv_tokens: i64 = rows
        .iter()
        .filter(|r| r[kind_col].is_empty())
        .map(|r| r[tokens_col].parse::<i64>().unwrap())
        .sum();
    assert_eq!(csv_tokens, ok_tokens, "{where_}: queries.csv tokens");
    let data = reports::load(dir, 1).unwrap();
    let binned: u64 = data.main_phase().unwrap().token_bins.iter().sum();
    assert_eq!(binned as i64, ok_tokens, "{where_}: chart token series");
    if token_mode {
        // LoadGen counts every sample, failed ones too, and records a count
        // of 1 (or below 0) as 0.
        let lg_tokens: i64 = perf
            .records
            .iter()
            .map(|r| {
                if r.n_tokens < 0 || r.n_tokens == 1 {
                    0
                } else {
                    r.n_tokens
                }
            })
            .sum();
        assert_eq!(
            summary["loadgen"]["token_count"].as_i64(),
            Some(lg_tokens),
            "{where_}: LoadGen's token count"
        );
    }

    // The server's own counters over the measured window (metrics
    // collection on): vLLM's generation_tokens_total delta is the output
    // tokens of the successful samples. The simulator refuses its injected
    // failures (HTTP 500) before generating, so they add neither tokens nor
    // requests; with no failed sample and no sample of one token (which
    // LoadGen counts as 0), LoadGen's token count is the same number.
    let server_summary = dir.join("server_summary.json");
    if server_summary.is_file() {
        let server = json(&server_summary);
        let counts = &server["total"]["counts"];
        let generated = counts["generation_tokens"].as_f64().unwrap();
        assert_eq!(
            generated, ok_tokens as f64,
            "{where_}: the server's generation_tokens delta vs summary.json's output tokens"
        );
        if counts_requests {
            assert_eq!(
                counts["request_success"].as_f64(),
                summary["counts"]["succeeded"].as_f64(),
                "{where_}: the server's successful requests vs summary.json's"
            );
            assert_eq!(counts["request_failure"].as_f64(), Some(0.0), "{where_}");
        }
        if token_mode && failed == 0 && perf.records.iter().all(|r| r.n_tokens != 1) {
            assert_eq!(
                summary["loadgen"]["token_count"].as_f64(),
                Some(generated),
                "{where_}: LoadGen's token count vs the server's"
            );
        }
    }
}

#[test]
fn every_output_of_a_run_and_a_sweep_shows_the_same_figures() {
    let sim = failing_sim();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::write(dir.join("user.conf"), CONF).unwrap();
    let dataset = sample_dataset();
    let dataset = dataset.to_str().unwrap();
    let common = [
        "--quiet",
        "--user-conf",
        "user.conf",
        "--dataset-path",
        dataset,
        "--backend",
        &sim.url,
        "--db",
        "history.sqlite",
    ];
    let history = dir.join("history.sqlite");
    let mut failed_somewhere = false;
    // The last run asks for one token: LoadGen logs an error for each
    // sample answered with fewer than two.
    for (scenario, max_tokens) in [
        ("Offline", "12"),
        ("Server", "12"),
        ("SingleStream", "12"),
        ("MultiStream", "12"),
        ("Server", "1"),
    ] {
        let out_dir = format!("runs-{scenario}-{max_tokens}");
        let mut args = vec![
            "run",
            "--scenario",
            scenario,
            "--output-dir",
            &out_dir,
            "--max-tokens",
            max_tokens,
            // server_summary.json: the server's own token counter.
            "--enable-metrics-collection",
        ];
        args.extend(common);
        let output = harness(dir, &args);
        assert!(
            runs_dir_has(dir, &out_dir, "server_summary.json"),
            "{scenario}: no server_summary.json"
        );
        // One request in ten fails: INVALID (3), never an error (1).
        assert!(
            matches!(output.status.code(), Some(0 | 3)),
            "{scenario}: {}",
            text(&output)
        );
        let runs = run_dirs(&dir.join(&out_dir));
        assert_eq!(runs.len(), 1, "{scenario}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        check_run(&runs[0], &stdout, &history, true, true);
        let summary = json(&runs[0].join("summary.json"));
        failed_somewhere |= summary["counts"]["failed"].as_u64().unwrap() > 0;
        if max_tokens == "1" {
            let verdict = summary["validity"]["verdict"].as_str().unwrap();
            assert!(
                verdict.contains("LoadGen logged") && verdict.contains("error_runtime"),
                "{verdict}"
            );
        }
        assert_eq!(
            output.status.code() == Some(0),
            summary["validity"]["run_valid"] == true,
            "{scenario}: exit code vs verdict"
        );
    }
    assert!(failed_somewhere, "the simulator's faults never showed");

    // A small sweep: sweep.csv shows each point's figures.
    let mut args = vec![
        "sweep",
        "--vary",
        "target_qps=150,300",
        "--scenario",
        "Server",
        "--output-dir",
        "sweeps",
        "--max-tokens",
        "12",
    ];
    args.extend(common);
    let output = harness(dir, &args);
    assert!(output.status.success(), "{}", text(&output));
    let sweep = run_dirs(&dir.join("sweeps"));
    assert!(sweep.is_empty(), "points live inside the sweep directory");
    let sweep_dir = std::fs::read_dir(dir.join("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("sweep.csv").is_file())
        .unwrap();
    let csv = std::fs::read_to_string(sweep_dir.join("sweep.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for line in csv.lines().skip(1) {
        let row: Vec<&str> = line.split(',').collect();
        let point = sweep_dir.join(row[col("run_dir")]);
        let figures = &json(&point.join("summary.json"))["figures"];
        for name in [
            "samples_per_s",
            "output_tokens_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "ttft_p50_ms",
            "ttft_p99_ms",
            "tpot_p50_ms",
            "tpot_p99_ms",
        ] {
            assert_eq!(
                row[col(name)],
                format!("{:.3}", figures[name].as_f64().unwrap()),
                "sweep.csv {name} of {}",
                point.display()
            );
        }
        assert_eq!(
            row[col("failed")],
            figures["failed"].as_f64().unwrap().to_string()
        );
    }
}

/// `GET /metrics` from `addr` (host:port), the body.
fn scrape(addr: &str) -> String {
    let (status, body) = common::http::get(addr, "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    body
}

/// `harness_run_figure` samples: name -> (run_id, unit, value).
fn run_figures(exposition: &str) -> BTreeMap<String, (String, String, f64)> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("harness_run_figure{"))
        .map(|l| {
            let (labels, value) = l.rsplit_once("} ").unwrap();
            let label = |key: &str| {
                let start = labels.find(&format!("{key}=\"")).unwrap() + key.len() + 2;
                let len = labels[start..].find('"').unwrap();
                labels[start..start + len].to_owned()
            };
            (
                label("name"),
                (
                    label("run_id"),
                    label("unit"),
                    value.parse::<f64>().unwrap(),
                ),
            )
        })
        .collect()
}

/// Prometheus reads the figures from the registry too: scraped once the run
/// is summarised (`--prometheus-linger` holds the process until then; its
/// stderr line says where), the endpoint shows summary.json's figures, bit
/// for bit, with the registry's units and the run's id.
#[test]
fn the_prometheus_endpoint_serves_summary_json_figures() {
    let sim = failing_sim();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::write(dir.join("user.conf"), CONF).unwrap();
    let dataset = sample_dataset();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir)
        .args([
            "run",
            "--quiet",
            "--scenario",
            "Server",
            "--user-conf",
            "user.conf",
            "--max-tokens",
            "12",
            "--dataset-path",
            dataset.to_str().unwrap(),
            "--backend",
            &sim.url,
            "--output-dir",
            "runs",
            "--db",
            "history.sqlite",
            "--prometheus-listen",
            "127.0.0.1:0",
            "--prometheus-linger",
            "120",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the run ended without announcing its final figures:\n{seen}"
        );
        if let Some(rest) = line.strip_prefix("final figures at http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
        seen.push_str(&line);
    };
    let exposition = scrape(&addr);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "{status:?}\n{seen}{rest}"
    );
    assert!(
        !rest.contains("nobody scraped"),
        "the scrape was not counted: {rest}"
    );

    let runs = run_dirs(&dir.join("runs"));
    let summary = json(&runs[0].join("summary.json"));
    let run_id = summary["run"]["run_id"].as_str().unwrap();
    let want: BTreeMap<String, (String, String, f64)> = summary["figures"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            let unit = reports::figures::find(name).unwrap().unit;
            (
                name.clone(),
                (run_id.to_owned(), unit.to_owned(), v.as_f64().unwrap()),
            )
        })
        .collect();
    assert!(want.contains_key("samples_per_s"), "{want:?}");
    assert_eq!(run_figures(&exposition), want, "{exposition}");
    // The live metrics are still there beside them.
    assert!(exposition.contains("harness_requests_completed_total "));
}

#[test]
fn every_output_agrees_against_llama_cpp() {
    let Some(server) = llamacpp::start("every_output_agrees_against_llama_cpp") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::write(
        dir.join("user.conf"),
        "*.Server.target_qps = 2\n*.Offline.target_qps = 4\n*.*.min_duration = 1000\n\
         *.Server.min_query_count = 6\n*.Offline.min_query_count = 6\n\
         *.*.sample_concatenate_permutation = 0\n",
    )
    .unwrap();
    let dataset = sample_dataset();
    for scenario in ["Offline", "Server"] {
        let out_dir = format!("runs-{scenario}");
        let output = harness(
            dir,
            &[
                "run",
                "--scenario",
                scenario,
                "--quiet",
                "--user-conf",
                "user.conf",
                "--max-tokens",
                "4",
                "--total-sample-count",
                "6",
                "--max-in-flight",
                "2",
                "--api",
                "completions-text",
                "--enable-metrics-collection",
                "--metrics-collection-interval",
                "0.2",
                "--dataset-path",
                dataset.to_str().unwrap(),
                "--backend",
                &server.url,
                "--output-dir",
                &out_dir,
                "--db",
                "history.sqlite",
            ],
        );
        assert!(
            matches!(output.status.code(), Some(0 | 3)),
            "{scenario}: {}",
            text(&output)
        );
        let runs = run_dirs(&dir.join(&out_dir));
        let stdout = String::from_utf8_lossy(&output.stdout);
        // With metrics collection on, llama.cpp's own tokens_predicted
        // counter is checked against the run's output tokens too.
        assert!(runs[0].join("server_summary.json").is_file(), "{scenario}");
        check_run(&runs[0], &stdout, &dir.join("history.sqlite"), true, false);
    }
}
