//! The web dashboard of `harness serve` in a real browser: runs recorded by
//! `harness run` (the built-in simulator, quick settings), `serve` on
//! 127.0.0.1:0, and every page opened in headless Chromium (the repository's
//! chromium peer) with the network cut off: its DOM must hold the figures
//! the API (and `harness compare`) give, and a screenshot is taken at
//! 1280 px and at a phone's 390 px (kept under the target directory's
//! `dashboard-screenshots/` for a look).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common {
    pub mod child;
    pub mod http;
    pub mod paths;
    pub mod serve;
    pub mod stdout;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use common::paths::sample_dataset;
use common::serve::{harness_serve, start};
use serde_json::Value;

const KEY: &str = "read-key-0123456789abcdef";

/// Short runs: about a second each.
const QUICK_CONF: &str = "\
*.Server.target_qps = 500
*.Server.min_duration = 500
*.Server.min_query_count = 480
";

fn record(scratch: &Path, label: &str, report: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
    cmd.current_dir(scratch)
        .args([
            "run",
            "--quiet",
            "--user-conf",
            "user.conf",
            "--db",
            "h.sqlite",
        ])
        .args(["--max-tokens", "16", "--scenario", "Server"])
        .args(["--sim-profile", "tiny-fast", "--label", label])
        .arg("--dataset-path")
        .arg(sample_dataset());
    if !report {
        cmd.arg("--no-report");
    }
    let output = cmd.output().unwrap();
    // 3: finished but INVALID on a loaded machine; recorded all the same.
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn api(addr: &str, path: &str) -> Value {
    let (_, body) = common::http::get(addr, path, &[&format!("x-api-key: {KEY}")]);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn chromium(bin: &str, extra: &[&str], url: &str) -> std::process::Output {
    // A profile of its own: the pages load side by side.
    let profile = tempfile::tempdir().unwrap();
    Command::new(bin)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            // Nothing but the server under test: no name resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

/// A PNG's width, from its header.
fn png_width(bytes: &[u8]) -> u32 {
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    u32::from_be_bytes(bytes[16..20].try_into().unwrap())
}

/// Screenshots of a page at 1280 px and 390 px wide, and its DOM as
/// Chromium built it (at 1280 px).
fn open(bin: &str, url: &str, name: &str, dir: &Path) -> String {
    let mut dom = String::new();
    for (width, height) in [(1280, 900), (390, 844)] {
        let path = dir.join(format!("{name}-{width}.png"));
        let _ = std::fs::remove_file(&path);
        let shot = format!("--screenshot={}", path.display());
        let size = format!("--window-size={width},{height}");
        let mut args = vec![shot.as_str(), size.as_str()];
        if width == 1280 {
            args.push("--dump-dom");
        }
        let output = chromium(bin, &args, url);
        assert!(
            output.status.success(),
            "chromium failed on {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if width == 1280 {
            dom = String::from_utf8(output.stdout).unwrap();
        }
        let png = std::fs::read(&path).unwrap();
        assert_eq!(png_width(&png), width, "{}", path.display());
    }
    dom
}

fn fmt(v: &Value) -> String {
    format!("{:.3}", v.as_f64().unwrap())
}

#[test]
fn every_dashboard_page_renders_in_headless_chromium_with_the_apis_figures() {
    let Ok(bin) = std::env::var("CHROMIUM") else {
        println!(
            "skipping every_dashboard_page_renders_in_headless_chromium_with_the_apis_figures: \
             CHROMIUM is unset (eval \"$(scripts/peers/chromium.sh)\")"
        );
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(scratch.path().join("user.conf"), QUICK_CONF).unwrap();
    record(scratch.path(), "engine-a", true);
    record(scratch.path(), "engine-<b>", false);

    let served = start(
        harness_serve()
            .current_dir(scratch.path())
            .args(["--db", "h.sqlite", "--public-dashboard"])
            .env("HARNESS_API_KEYS", format!("read:{KEY}")),
    );
    let addr = served.addr.as_str();
    let base = format!("http://{addr}");
    let shots: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // What the API (and harness compare) say, then every page at once.
    let rankings = api(addr, "/api/v1/benchmarks/rankings/ttft");
    let runs = api(addr, "/api/v1/runs");
    let ids: Vec<String> = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    // The oldest run is the one with a report.
    let with_report = ids.last().unwrap();
    let detail = api(addr, &format!("/api/v1/runs/{with_report}"));
    let trend = api(addr, "/api/v1/trends/ttft");
    let dirs: Vec<PathBuf> = ids[..2]
        .iter()
        .map(|id| {
            let run = api(addr, &format!("/api/v1/runs/{id}"));
            scratch
                .path()
                .join(run["data"]["run_dir"].as_str().unwrap())
        })
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "compare",
            "--format",
            "json",
            "--allow-failed-runs",
            "--allow-mismatch",
        ])
        .args(&dirs)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let compared: Value = serde_json::from_slice(&output.stdout).unwrap();
    let pages = [
        ("rankings", format!("{base}/")),
        ("runs", format!("{base}/runs")),
        ("run", format!("{base}/runs/{with_report}")),
        ("trends", format!("{base}/trends/ttft")),
        (
            "compare",
            format!(
                "{base}/compare?baseline={}&candidate={}&allow_failed_runs=true&allow_mismatch=true",
                ids[0], ids[1]
            ),
        ),
    ];
    let doms: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = pages
            .iter()
            .map(|(name, url)| {
                let (bin, shots) = (&bin, &shots);
                scope.spawn(move || open(bin, url, name, shots))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Rankings: every system with its mean, the label escaped.
    let page = &doms[0];
    let entries = rankings["data"][0]["ttft"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        let system = e["system"]
            .as_str()
            .unwrap()
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(page.contains(&system), "{system} missing: {page:.3000}");
        assert!(page.contains(&fmt(&e["mean_value"])), "mean of {system}");
    }
    assert!(!page.contains("<b>"), "a label became markup");

    // Runs: every recorded run, linked.
    for id in &ids {
        assert!(doms[1].contains(&format!("href=\"/runs/{id}\"")), "{id}");
    }

    // The run with a report: its figures, its charts, its report.
    let page = &doms[2];
    for name in ["ttft_p50_ms", "samples_per_s", "latency_p50_ms"] {
        let value = detail["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m[0] == name)
            .map(|m| m[1].clone())
            .unwrap();
        assert!(page.contains(&fmt(&value)), "{name} {value}");
    }
    let pngs = detail["links"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.ends_with(".png"))
        .count();
    assert!(pngs > 0, "the run has no charts");
    assert_eq!(page.matches("<img ").count(), pngs);
    assert!(page.contains("files/report.html"));

    // Trends: a line per system, every point in the table.
    let page = &doms[3];
    let series = trend["data"].as_array().unwrap();
    assert_eq!(page.matches("<polyline").count(), series.len());
    for p in series.iter().flat_map(|s| s["points"].as_array().unwrap()) {
        assert!(page.contains(&fmt(&p["value"])));
    }

    // Compare: the figures harness compare prints for the same two runs.
    let page = &doms[4];
    let rows = compared["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let metric = row["metric"].as_str().unwrap();
        assert!(
            page.contains(&format!("data-metric=\"{metric}\"")),
            "{metric}: {page:.3000}"
        );
        for v in row["values"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.is_number())
        {
            assert!(page.contains(&fmt(v)), "{metric}: {v}");
        }
    }
}
