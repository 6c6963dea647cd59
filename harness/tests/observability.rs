//! The observability kit against real peers:
//! - a real Prometheus (`scripts/peers/prometheus.sh`) scrapes a running
//!   `harness run --prometheus-listen` against the built-in simulator, loads
//!   `prometheus/alerts.yml`, and its HTTP query API returns the harness's
//!   series (skips when PROMETHEUS_BIN is unset);
//! - every SQL query of `grafana/harness-history-dashboard.json` runs on the
//!   real PostgreSQL (`scripts/peers/postgres.sh`) holding runs recorded by
//!   `harness run --db`, and its rankings agree with the figures' own
//!   better-direction (skips when HARNESS_TEST_PG_URL is unset).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common {
    pub mod child;
    pub mod paths;
    pub mod postgres;
    pub mod simulator;
}

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::child::KillOnDrop;
use common::paths::sample_dataset;
use common::postgres::own_schema;
use common::simulator;
use serde_json::Value;

/// Everything the test waits for (the harness's start, Prometheus' start,
/// scrapes at a 1 s interval) normally takes a few seconds.
const DEADLINE: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET `path` from Prometheus; the JSON body, or None while it is not up.
fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// An instant query's result vector.
fn query(addr: SocketAddr, promql: &str) -> Vec<Value> {
    get_json(
        addr,
        &format!("/api/v1/query?query={}", percent_encode(promql)),
    )
    .and_then(|v| v["data"]["result"].as_array().cloned())
    .unwrap_or_default()
}

fn sample_value(series: &Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

/// Polls `check` until it returns Some, failing with `what` at the deadline.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_prometheus_scrapes_a_running_harness_and_loads_the_alert_rules() {
    let Some(prometheus) = std::env::var_os("PROMETHEUS_BIN") else {
        println!("skipping: PROMETHEUS_BIN unset (eval \"$(bash scripts/peers/prometheus.sh)\")");
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");

    // The simulator over HTTP, failing 30% of requests with a 503.
    let sim = simulator::start(11, |config| {
        config.faults.error_rates = vec![sim::ErrorRate {
            status: 503,
            probability: 0.3,
        }];
    });
    // A Server run that would take ten minutes; it is killed when the test
    // ends, also when it fails.
    let mut harness = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .args([
                "run",
                "--quiet",
                "--no-report",
                "--no-history",
                "--backend",
                &sim.url,
                "--target-qps",
                "20",
                "--min-duration-ms",
                "600000",
                "--max-tokens",
                "8",
                "--enable-metrics-collection",
                "--metrics-collection-interval",
                "0.5",
                "--prometheus-listen",
                "127.0.0.1:0",
                "--log",
                "harness=info",
            ])
            .arg("--dataset-path")
            .arg(sample_dataset())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The endpoint's real port, from the harness's log line.
    let stderr = harness.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("live metrics at http://").nth(1) {
                let addr = rest.trim_end_matches("/metrics").trim().to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let target = rx
        .recv_timeout(DEADLINE)
        .expect("the harness never logged its /metrics address");
    // The run directory exists before the endpoint starts; its name is the
    // run_id label.
    let run_id = std::fs::read_dir(scratch.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .next()
        .expect("no run directory");

    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let rules = root.join("prometheus/alerts.yml").canonicalize().unwrap();
    let config = scratch.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: harness\n    static_configs:\n      - targets: [{target:?}]\n"
        ),
    )
    .unwrap();
    let _prometheus = KillOnDrop(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The target is up and samples are completing.
    let up = wait_for("up{job=\"harness\"} == 1", || {
        query(web, "up{job=\"harness\"}")
            .first()
            .filter(|s| sample_value(s) == 1.0)
            .cloned()
    });
    assert_eq!(up["metric"]["instance"], target.as_str());
    let completed = wait_for("harness_requests_completed_total > 0", || {
        query(web, "harness_requests_completed_total{job=\"harness\"}")
            .first()
            .map(sample_value)
            .filter(|v| *v > 0.0)
    });
    // One scrape's issued count is never below its completed count, and
    // completions only grow.
    let issued = query(web, "harness_requests_issued_total{job=\"harness\"}");
    assert_eq!(issued.len(), 1, "{issued:?}");
    let later = query(web, "harness_requests_completed_total{job=\"harness\"}");
    assert!(sample_value(&later[0]) >= completed);
    let pairs = query(
        web,
        "harness_requests_issued_total{job=\"harness\"} - harness_requests_completed_total{job=\"harness\"}",
    );
    assert!(sample_value(&pairs[0]) >= 0.0, "{pairs:?}");

    // The histograms arrive with their buckets; the TTFT p99 the alert rule
    // computes is a finite number of seconds.
    let buckets = query(web, "count(harness_ttft_seconds_bucket{job=\"harness\"})");
    assert!(
        sample_value(&buckets[0]) >= 2.0,
        "TTFT buckets: {buckets:?}"
    );
    let p99 = wait_for("a finite TTFT p99", || {
        query(
            web,
            "histogram_quantile(0.99, sum by (le) (harness_ttft_seconds_bucket{job=\"harness\"}))",
        )
        .first()
        .map(sample_value)
        .filter(|v| v.is_finite())
    });
    assert!(p99 > 0.0, "TTFT p99 {p99}");

    // Every series carries the run's labels; the server's own metric, the
    // failures by HTTP status, the token-length histograms and the target
    // QPS arrive as Prometheus series.
    let labelled = |promql: &str| -> Vec<Value> {
        wait_for(promql, || {
            let found = query(web, promql);
            (!found.is_empty()).then_some(found)
        })
    };
    let run_labels = |series: &Value| {
        assert_eq!(series["metric"]["run_id"], run_id.as_str(), "{series}");
        assert_eq!(series["metric"]["scenario"], "Server", "{series}");
        assert_eq!(series["metric"]["backend"], sim.url.as_str(), "{series}");
    };
    for series in labelled("harness_server_requests_running{job=\"harness\"}") {
        run_labels(&series);
    }
    let kv = labelled("harness_server_kv_cache_usage_ratio{job=\"harness\"}");
    run_labels(&kv[0]);
    assert!((0.0..=1.0).contains(&sample_value(&kv[0])), "{kv:?}");
    let failed = labelled(
        "harness_requests_failed_total{job=\"harness\",kind=\"http_status\",status=\"503\"} > 0",
    );
    run_labels(&failed[0]);
    let output_lengths = labelled("harness_request_output_tokens_count{job=\"harness\"} > 0");
    run_labels(&output_lengths[0]);
    // No successful sample is longer than --max-tokens 8.
    let within = query(
        web,
        "harness_request_output_tokens_bucket{job=\"harness\",le=\"10\"} - ignoring(le) harness_request_output_tokens_count{job=\"harness\"}",
    );
    assert_eq!(sample_value(&within[0]), 0.0, "{within:?}");
    let input_lengths = labelled("harness_request_input_tokens_count{job=\"harness\"} > 0");
    run_labels(&input_lengths[0]);
    let qps = labelled("harness_target_qps{job=\"harness\"}");
    run_labels(&qps[0]);
    assert_eq!(sample_value(&qps[0]), 20.0, "{qps:?}");
    let host = labelled("harness_host_memory_total_bytes{job=\"harness\"}");
    run_labels(&host[0]);
    assert!(
        host[0]["metric"]["host"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );

    // Prometheus loaded every alert rule of prometheus/alerts.yml.
    let rules = wait_for("the alert rules", || {
        get_json(web, "/api/v1/rules?type=alert").filter(|r| {
            r["data"]["groups"]
                .as_array()
                .is_some_and(|groups| !groups.is_empty())
        })
    });
    let mut names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "HarnessErrorRateHigh",
            "HarnessIssueLate",
            "HarnessKVCacheSaturated",
            "HarnessTTFTP99OverLimit"
        ]
    );
}

/// Short runs: about a second each, valid on an idle machine.
const QUICK_CONF: &str = "\
*.Server.target_qps = 500
*.Server.min_duration = 500
*.Server.min_query_count = 480
";

/// The dashboard's SQL as Grafana's PostgreSQL data source would send it:
/// `$__timeFilter(expr)` becomes a BETWEEN over a range holding every run,
/// and each `$var` the quoted, comma-separated list Grafana writes for a
/// multi-value variable.
fn interpolate(sql: &str, vars: &BTreeMap<&str, Vec<String>>) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let args = &rest[at + "$__timeFilter(".len()..];
        let mut depth = 1;
        let end = args
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("unbalanced $__timeFilter(");
        out.push_str(&format!(
            "{} BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'",
            &args[..end]
        ));
        rest = &args[end + 1..];
    }
    out.push_str(rest);
    // Longest names first, so `$model` never eats a prefix of another name.
    let mut names: Vec<&&str> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let quoted: Vec<String> = vars[*name]
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''")))
            .collect();
        let list = quoted.join(",");
        out = out
            .replace(&format!("${{{name}}}"), &list)
            .replace(&format!("${name}"), &list);
    }
    assert!(!out.contains('$'), "a macro or variable left in:\n{out}");
    out
}

/// Every panel with its queries, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

fn strings(rows: &[postgres::Row]) -> Vec<String> {
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[test]
fn every_query_of_the_history_dashboard_runs_on_postgres_holding_recorded_runs() {
    let Ok(server) = std::env::var("HARNESS_TEST_PG_URL") else {
        println!(
            "skipping: HARNESS_TEST_PG_URL is unset (eval \"$(bash scripts/peers/postgres.sh)\")"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/harness-history-dashboard.json")).unwrap(),
    )
    .unwrap();

    // Every query reads the data source the provisioning file defines.
    let provisioning =
        std::fs::read_to_string(root.join("grafana/provisioning/datasources/harness.yaml"))
            .unwrap();
    let uid = "harness-history";
    assert!(provisioning.contains(&format!("uid: {uid}")));
    let dashboards =
        std::fs::read_to_string(root.join("grafana/provisioning/dashboards/harness.yaml")).unwrap();
    assert!(dashboards.contains("type: file"));

    // This test's own schema, holding only its runs.
    let schema = "grafana_history_dashboard";
    let url = own_schema(&server, schema);

    // Two systems: the built-in simulator at two rates, the HTTP one at a third.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("user.conf"), QUICK_CONF).unwrap();
    let dataset = sample_dataset();
    let remote = simulator::start(11, |_| {});
    let runs: [(&[&str], &str); 3] = [
        (&["--sim-profile", "tiny-fast"], "300"),
        (&["--sim-profile", "tiny-fast"], "400"),
        (&["--backend", &remote.url], "500"),
    ];
    for (backend, qps) in runs {
        let output = Command::new(env!("CARGO_BIN_EXE_harness"))
            .current_dir(scratch.path())
            .args(["run", "--quiet", "--no-report", "--user-conf", "user.conf"])
            .args(["--max-tokens", "16", "--scenario", "Server"])
            .args(backend)
            .args(["--target-qps", qps, "--db", &url])
            .arg("--dataset-path")
            .arg(&dataset)
            .output()
            .unwrap();
        // 3: finished but INVALID on a loaded machine; recorded all the same.
        assert!(
            matches!(output.status.code(), Some(0 | 3)),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // The variables' own queries list what was recorded.
    let mut vars: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        assert_eq!(var["datasource"]["uid"], uid, "{var}");
        let name = var["name"].as_str().unwrap();
        let rows = db.query(var["query"].as_str().unwrap(), &[]).unwrap();
        vars.insert(name, strings(&rows));
    }
    assert_eq!(vars["scenario"], ["Server"]);
    assert_eq!(vars["model"], ["llama3_1-8b"]);
    assert_eq!(vars["target_qps"], ["300", "400", "500"]);
    let metrics = vars["metric"].clone();
    for wanted in ["samples_per_s", "ttft_p99_ms", "target_qps", "tpot_p99_ms"] {
        assert!(metrics.iter().any(|m| m == wanted), "{metrics:?}");
    }

    // The truth the panels must show, read plainly: each system's values per metric.
    let raw = db
        .query(
            "SELECT r.backends, m.name, m.value FROM runs r JOIN metrics m USING (run_id)",
            &[],
        )
        .unwrap();
    let mut values: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for row in &raw {
        let backends: Vec<String> = serde_json::from_str(row.get::<_, &str>(0)).unwrap();
        values
            .entry((row.get::<_, String>(1), backends.join("+")))
            .or_default()
            .push(row.get(2));
    }
    let systems: Vec<String> = {
        let mut s: Vec<String> = values.keys().map(|(_, sys)| sys.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(systems.len(), 2, "{systems:?}");

    let mut queries = 0;
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], uid, "{}", panel["title"]);
            let sql = target["rawSql"].as_str().unwrap();
            // A repeated panel runs once per value of its variable.
            for metric in &metrics {
                let mut one = vars.clone();
                one.insert("metric", vec![metric.clone()]);
                let rows = db
                    .query(&interpolate(sql, &one), &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", panel["title"]));
                queries += 1;
                assert!(!rows.is_empty(), "{} ({metric}): no rows", panel["title"]);
                match panel["title"].as_str().unwrap() {
                    "$metric per system" => {
                        // A point per run, a line per system and target QPS.
                        let n: usize = values
                            .iter()
                            .filter(|((m, _), _)| m == metric)
                            .map(|(_, v)| v.len())
                            .sum();
                        assert_eq!(rows.len(), n, "{metric}");
                        for row in &rows {
                            let line: String = row.get("metric");
                            let (system, rate) = line.split_once(" @ ").unwrap();
                            assert!(systems.iter().any(|s| s == system), "{line}");
                            assert!(["300/s", "400/s", "500/s"].contains(&rate), "{line}");
                        }
                    }
                    "Ranking by $metric" => {
                        let lower = reports::figures::find(metric)
                            .is_none_or(|f| f.better == reports::figures::Better::Lower);
                        let mut expected: Vec<(f64, String)> = values
                            .iter()
                            .filter(|((m, _), _)| m == metric)
                            .map(|((_, sys), v)| {
                                let mean = v.iter().sum::<f64>() / v.len() as f64;
                                (if lower { mean } else { -mean }, sys.clone())
                            })
                            .collect();
                        expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                        let got: Vec<(i64, String, f64)> = rows
                            .iter()
                            .map(|r| (r.get("rank"), r.get("system"), r.get("mean")))
                            .collect();
                        assert_eq!(got.len(), expected.len(), "{metric}: {got:?}");
                        for (i, ((key, sys), (rank, got_sys, mean))) in
                            expected.iter().zip(&got).enumerate()
                        {
                            let want = if lower { *key } else { -*key };
                            assert!((mean - want).abs() <= 1e-9 * want.abs().max(1.0));
                            // Equal means share a rank; otherwise order decides.
                            let tied = i > 0 && expected[i - 1].0 == *key;
                            if !tied {
                                assert_eq!(*rank, i as i64 + 1, "{metric}: {got:?}");
                                assert_eq!(sys, got_sys, "{metric}: {got:?}");
                            }
                        }
                    }
                    "Latest runs" => assert_eq!(rows.len(), 3),
                    other => panic!("a query in an unexpected panel: {other}"),
                }
            }
        }
    }
    assert_eq!(queries, 3 * metrics.len());
    // The rates' ranking, known from the runs: the HTTP system asked for 500/s.
    let ranking = db
        .query(
            &interpolate(
                panels(&dashboard)
                    .iter()
                    .find(|p| p["title"] == "Ranking by $metric")
                    .unwrap()["targets"][0]["rawSql"]
                    .as_str()
                    .unwrap(),
                &{
                    let mut v = vars.clone();
                    v.insert("metric", vec!["target_qps".to_owned()]);
                    v
                },
            ),
            &[],
        )
        .unwrap();
    let first: String = ranking[0].get("system");
    assert!(first.starts_with(&remote.url), "{first} ranks first");
}
