//! End-to-end tests of `reports::generate` on synthetic run directories
//! written through the `rundir` types, checked against a naive reference
//! computed from `rundir::read_records` and `loadgen::QueryRecord`'s own
//! latency definitions.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::Path;

use loadgen::Timed;
use reports::synthetic::{SyntheticRun, write_run};
use reports::{ReportOptions, generate};
use serde_json::Value;

fn make(dir: &Path, run: &SyntheticRun) {
    write_run(dir, run).unwrap();
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// A small JSON Schema checker: `type` (string or list), `const`, `enum`,
/// `properties`, `required`, `additionalProperties` (bool or schema),
/// `items`, `minItems`/`maxItems`, `anyOf` and local `$ref`s. Enough for the
/// committed schema; anything else in it is reported as unsupported.
fn check(schema: &Value, root: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in obj.keys() {
        let known = [
            "type",
            "const",
            "enum",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "minItems",
            "maxItems",
            "anyOf",
            "$ref",
            "$schema",
            "title",
            "$defs",
        ];
        if !known.contains(&key.as_str()) {
            errors.push(format!("{path}: unsupported schema keyword {key}"));
        }
    }
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        check(&root["$defs"][name], root, v, path, errors);
    }
    if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            check(s, root, v, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{path}: matches no anyOf branch"));
        }
    }
    if let Some(ty) = obj.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let matches = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_u64() || v.is_i64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !matches {
            errors.push(format!("{path}: {v} is not of type {types:?}"));
            return;
        }
    }
    if let Some(c) = obj.get("const")
        && c != v
    {
        errors.push(format!("{path}: {v} != const {c}"));
    }
    if let Some(e) = obj.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errors.push(format!("{path}: {v} not in enum"));
    }
    if let Some(o) = v.as_object() {
        let props = obj.get("properties").and_then(Value::as_object);
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(r) {
                    errors.push(format!("{path}: missing {r}"));
                }
            }
        }
        for (k, val) in o {
            let sub = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, root, val, &sub, errors),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{sub}: not in the schema")),
                    Some(s @ Value::Object(_)) => check(s, root, val, &sub, errors),
                    _ => {}
                },
            }
        }
    }
    if let Some(a) = v.as_array() {
        if let Some(items) = obj.get("items") {
            for (i, x) in a.iter().enumerate() {
                check(items, root, x, &format!("{path}[{i}]"), errors);
            }
        }
        if obj
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (a.len() as u64) < m)
            || obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| a.len() as u64 > m)
        {
            errors.push(format!("{path}: array length {} out of bounds", a.len()));
        }
    }
}

fn schema_errors(v: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("../summary.schema.json")).unwrap();
    let mut errors = Vec::new();
    check(&schema, &schema, v, "$", &mut errors);
    errors
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Naive reference: LoadGen's `sorted[floor(N p)]` over QueryRecord's own
/// latency definitions, from rundir's reader.
fn reference(dir: &Path) -> (Vec<u64>, Vec<u64>, Vec<u64>, Vec<u64>, usize) {
    let file = rundir::read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let perf = file.performance().unwrap();
    let ok: Vec<_> = perf.records.iter().filter(|r| r.is_ok()).collect();
    let mut lat: Vec<u64> = ok.iter().map(|r| r.latency_ns()).collect();
    let mut ttft: Vec<u64> = ok.iter().filter_map(|r| r.ttft_ns()).collect();
    let mut tpot: Vec<u64> = ok.iter().filter_map(|r| r.tpot_ns()).collect();
    let mut itl: Vec<u64> = ok
        .iter()
        .flat_map(|r| r.chunk_ns().windows(2).map(|w| w[1] - w[0]))
        .collect();
    lat.sort_unstable();
    ttft.sort_unstable();
    tpot.sort_unstable();
    itl.sort_unstable();
    (lat, ttft, tpot, itl, perf.records.len())
}

fn loadgen_pct(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)] as f64
}

#[test]
fn summary_matches_a_naive_reference_and_the_committed_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    make(
        &dir,
        &SyntheticRun {
            samples: 3000,
            fail_every: 97,
            gpu: true,
            ..SyntheticRun::default()
        },
    );
    let records_before = fs::read(dir.join(rundir::RECORDS_FILE)).unwrap();
    let out = generate(&dir, &ReportOptions::default()).unwrap();
    assert!(!out.incomplete);
    let s = summary(&dir);
    assert_eq!(schema_errors(&s), Vec::<String>::new());
    assert_eq!(s["schema_version"], 2);
    // The run's identity names the LoadGen that produced it.
    assert_eq!(s["run"]["loadgen"]["implementation"], "harness-rust");
    assert_eq!(s["run"]["loadgen"]["version"], loadgen::logging::VERSION);

    let (lat, ttft, tpot, itl, n) = reference(&dir);
    assert_eq!(s["counts"]["samples"], n as u64);
    let failed = (3000 / 97) as u64;
    assert_eq!(s["counts"]["failed"], failed);
    assert_eq!(s["errors"]["by_kind"]["timeout"], failed);
    assert_eq!(s["validity"]["mlperf_valid"], false);
    for (key, sorted) in [
        ("latency_ns", &lat),
        ("ttft_ns", &ttft),
        ("tpot_ns", &tpot),
        ("itl_ns", &itl),
    ] {
        let st = &s[key];
        assert_eq!(st["count"], sorted.len() as u64, "{key}");
        for (k, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
            assert_eq!(
                st["percentiles"][k]["loadgen"].as_f64().unwrap(),
                loadgen_pct(sorted, p),
                "{key} {k}"
            );
        }
        let mean = sorted.iter().map(|&v| v as f64).sum::<f64>() / sorted.len() as f64;
        let got = st["mean"].as_f64().unwrap();
        assert!((got - mean).abs() <= mean * 1e-12, "{key}: {got} vs {mean}");
        assert_eq!(st["min"].as_f64().unwrap(), sorted[0] as f64);
        assert_eq!(st["max"].as_f64().unwrap(), *sorted.last().unwrap() as f64);
    }
    // Throughput over the window [first scheduled, last completion].
    let w = &s["window"];
    let dur = w["duration_s"].as_f64().unwrap();
    let ok = (n as u64 - failed) as f64;
    assert!((s["throughput"]["window_samples_per_s"].as_f64().unwrap() - ok / dur).abs() < 1e-9);
    // Goodput: the synthetic TTFT (<= 220 ms) and TPOT (<= 17 ms) meet the limits.
    assert_eq!(s["goodput"]["good_samples"], n as u64 - failed);
    // Metrics statistics per series.
    let metrics = s["metrics"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m["source"] == "gpu" && m["name"] == "gpu_power_w")
    );

    // Charts of the right size; the GPU chart exists with GPU metrics.
    for name in ["latency.png", "ttft.png", "tpot.png", "ttft_over_time.png"] {
        assert_eq!(
            png_size(&dir.join(name)),
            reports::charts::CHART_SIZE,
            "{name}"
        );
    }
    assert_eq!(
        png_size(&dir.join("dashboard.png")),
        reports::charts::DASHBOARD_SIZE
    );
    assert!(dir.join("gpu.png").is_file());
    assert!(dir.join("server.png").is_file());
    // Run data untouched; no temporary files left behind.
    assert_eq!(
        fs::read(dir.join(rundir::RECORDS_FILE)).unwrap(),
        records_before
    );
    for e in fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "left {name}");
    }
    let mut listing = Vec::new();
    out.render(&mut listing).unwrap();
    let listing = String::from_utf8(listing).unwrap();
    assert!(listing.contains("summary.json") && listing.contains("report.html"));
}

#[test]
fn queries_csv_round_trips_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    make(
        &dir,
        &SyntheticRun {
            samples: 500,
            fail_every: 50,
            metrics: false,
            ..SyntheticRun::default()
        },
    );
    let opts = ReportOptions {
        charts: false,
        html: false,
        ..ReportOptions::default()
    };
    let out = generate(&dir, &opts).unwrap();
    assert!(
        out.skipped.iter().any(|s| s.starts_with("metrics.csv")),
        "{:?}",
        out.skipped
    );
    let text = fs::read_to_string(dir.join("queries.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.join(","), reports::csv::QUERIES_HEADER);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let file = rundir::read_records(&dir.join(rundir::RECORDS_FILE)).unwrap();
    let records = &file.performance().unwrap().records;
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), records.len());
    for (row, r) in rows.iter().zip(records) {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("seq")].parse::<u64>().unwrap(), r.seq);
        assert_eq!(
            row[col("latency_ns")].parse::<u64>().unwrap(),
            r.latency_ns()
        );
        let ms: f64 = row[col("latency_ms")].parse().unwrap();
        assert!((ms - r.latency_ns() as f64 / 1e6).abs() < 1e-9);
        assert_eq!(
            row[col("ttft_ns")],
            r.ttft_ns().map_or(String::new(), |v| v.to_string())
        );
        match r.error() {
            None => {
                assert_eq!(row[col("status")], "ok");
                assert_eq!(
                    row[col("tpot_ns")],
                    r.tpot_ns().map_or(String::new(), |v| v.to_string())
                );
            }
            Some(e) => {
                assert_eq!(row[col("status")], "error");
                assert_eq!(row[col("error_kind")], e.kind.as_str());
                assert_eq!(row[col("error_message")], e.message);
            }
        }
    }
}

#[test]
fn metrics_csv_is_written_when_absent_and_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    make(&dir, &SyntheticRun::default());
    let opts = ReportOptions {
        charts: false,
        html: false,
        ..ReportOptions::default()
    };
    generate(&dir, &opts).unwrap();
    let text = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let metrics = rundir::metrics::read_metrics(&dir.join(rundir::METRICS_FILE)).unwrap();
    let readings: usize = metrics.iter().map(|m| m.values.len()).sum();
    assert_eq!(text.lines().count(), readings + 1);
    assert_eq!(
        text.lines().next().unwrap(),
        "t_ns,source,instance,metric,value"
    );

    // A run's own metrics.csv is kept byte for byte.
    fs::write(dir.join("metrics.csv"), "written by the run\n").unwrap();
    let out = generate(&dir, &opts).unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        "written by the run\n"
    );
    assert!(out.skipped.iter().any(|s| s.contains("kept")));
}

#[test]
fn a_crashed_run_still_reports_and_is_flagged_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    make(
        &dir,
        &SyntheticRun {
            samples: 400,
            metrics: false,
            finished: false,
            ..SyntheticRun::default()
        },
    );
    // Cut the last record mid-line, as a crash mid-write leaves it.
    let path = dir.join(rundir::RECORDS_FILE);
    let text = fs::read(&path).unwrap();
    let cut = text.len() - 40;
    fs::write(&path, &text[..cut]).unwrap();

    let out = generate(&dir, &ReportOptions::default()).unwrap();
    assert!(out.incomplete);
    let s = summary(&dir);
    assert_eq!(schema_errors(&s), Vec::<String>::new());
    assert_eq!(s["completeness"]["incomplete"], true);
    assert_eq!(s["completeness"]["truncated_records"], true);
    assert_eq!(s["completeness"]["phase_end_present"], false);
    assert_eq!(s["counts"]["samples"], 399);
    assert_eq!(s["validity"]["mlperf_valid"], Value::Null);
    // No metrics: the server and GPU charts are skipped, with reasons.
    assert!(out.skipped.iter().any(|s| s.starts_with("server.png")));
    assert!(out.skipped.iter().any(|s| s.starts_with("gpu.png")));
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("class=\"banner incomplete\""));

    // A bad line in the middle is an error naming the file and line.
    let mut bad = text[..cut].to_vec();
    let second_nl = bad
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    bad.splice(second_nl + 1..second_nl + 1, b"{oops\n".iter().copied());
    fs::write(&path, bad).unwrap();
    let err = generate(&dir, &ReportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("records.jsonl:3:"), "{err}");
}

#[test]
fn a_directory_without_records_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = generate(tmp.path(), &ReportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a run directory"), "{err}");
}

#[test]
fn the_html_is_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    make(&dir, &SyntheticRun::default());
    let out = generate(&dir, &ReportOptions::default()).unwrap();
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    for id in [
        "validity",
        "run",
        "throughput",
        "latency",
        "errors",
        "charts",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    let pngs = out
        .files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
        .count();
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), pngs);
    for external in ["src=\"http", "href=\"http", "url(", "<script", "<link"] {
        assert!(!html.contains(external), "{external}");
    }
}

/// Loads report.html in headless Chromium with the network cut off and a
/// probe script appended to a copy of the page (the report itself has no
/// scripts): every image must have decoded, and the key elements be there.
#[test]
fn report_html_renders_in_headless_chromium() {
    let Ok(chromium) = std::env::var("CHROMIUM") else {
        eprintln!(
            "skipping report_html_renders_in_headless_chromium: CHROMIUM is unset \
             (eval \"$(scripts/peers/chromium.sh)\")"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    fs::create_dir(&dir).unwrap();
    make(
        &dir,
        &SyntheticRun {
            gpu: true,
            fail_every: 10,
            ..SyntheticRun::default()
        },
    );
    generate(&dir, &ReportOptions::default()).unwrap();
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    let probe = "<script>window.addEventListener('load',()=>{const imgs=[...document.images];\
        const bad=imgs.filter(i=>!(i.complete&&i.naturalWidth>0)).length;\
        document.body.setAttribute('data-images',imgs.length);\
        document.body.setAttribute('data-broken',bad);});</script></body>";
    let probed = html.replace("</body>", probe);
    let page = tmp.path().join("probe.html");
    fs::write(&page, probed).unwrap();
    let output = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dom.contains("id=\"validity\""), "{dom:.2000}");
    assert!(dom.contains("INVALID"), "failures make the run invalid");
    assert!(dom.contains("timeout"), "the errors table lists the kind");
    assert!(dom.contains("data-broken=\"0\""), "an image failed to load");
    let images: usize = dom
        .split("data-images=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(images >= 7, "{images} images");
}
