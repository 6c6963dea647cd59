//! The web dashboard over a real socket: login, every page's figures
//! against the API's answer for the same history, escaping of user data,
//! run files and their protections, 404s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use history::{Database, History};
use service::DashboardAccess;

async fn fixture_server(access: DashboardAccess) -> (tempfile::TempDir, Database, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    record_all(&db, &fixture());
    let server = start_with(db.clone(), access).await;
    (tmp, db, server)
}

/// Logs in with `key`; the session cookie (name=value).
async fn login(s: &Server, key: &str) -> String {
    let body = format!("key={key}&next=%2Fruns%3Fscenario%3DOffline");
    let a = send_body(
        s.addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 303, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("location"), Some("/runs?scenario=Offline"));
    let cookie = a.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(key), "the cookie must not be the key");
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(s: &Server, cookie: &str, target: &str) -> (u16, String) {
    let a = send(s.addr, "GET", target, &[("cookie", cookie)]).await;
    (a.status, String::from_utf8(a.body).unwrap())
}

/// The `data-value`s of the rows whose attribute `attr` is `value`...
/// simply: every `data-value="..."` after `marker`, up to `end`.
fn values_between(html: &str, marker: &str, end: &str) -> Vec<f64> {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} missing"));
    let rest = &html[start..];
    let rest = &rest[..rest.find(end).unwrap_or(rest.len())];
    rest.split("data-value=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse().unwrap())
        .collect()
}

fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    html.split(&format!("{attr}=\""))
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect()
}

#[tokio::test]
async fn pages_need_a_login_with_an_api_key_and_the_cookie_is_not_the_key() {
    let (_tmp, _db, s) = fixture_server(DashboardAccess::Login).await;
    for path in ["/", "/runs", "/runs/vllm-0", "/trends/ttft", "/compare"] {
        let a = send(s.addr, "GET", path, &[]).await;
        assert_eq!(a.status, 401, "{path}");
        let html = String::from_utf8(a.body).unwrap();
        assert!(html.contains("name=\"key\""), "{path}: no login form");
        assert!(
            !html.contains("llama3_1-8b"),
            "{path}: data shown without login"
        );
    }
    // A wrong key: the form again, the key not echoed.
    let a = send_body(
        s.addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"key=wrong-key-0123456789abcdef",
    )
    .await;
    assert_eq!(a.status, 401);
    let html = String::from_utf8(a.body.clone()).unwrap();
    assert!(html.contains("not one of this service"));
    assert!(!html.contains("wrong-key"));
    assert!(a.header("set-cookie").is_none());

    let cookie = login(&s, READ_KEY).await;
    let (status, html) = page(&s, &cookie, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Log out"));
    assert!(!html.contains(READ_KEY));
    // An upload key logs in too; a forged cookie does not.
    login(&s, UPLOAD_KEY).await;
    let forged = format!("{}0", &cookie[..cookie.len() - 1]);
    let forged = if forged == cookie {
        format!("{}1", &cookie[..cookie.len() - 1])
    } else {
        forged
    };
    assert_eq!(page(&s, &forged, "/").await.0, 401);
    // The cookie opens no API route: those need the key itself.
    let a = send(s.addr, "GET", "/api/v1/runs", &[("cookie", &cookie)]).await;
    assert_eq!(a.status, 401);
    // Logging out clears it; a login cannot be sent elsewhere.
    let a = send(s.addr, "POST", "/logout", &[("cookie", &cookie)]).await;
    assert_eq!(a.status, 303);
    assert!(a.header("set-cookie").unwrap().contains("Max-Age=0"));
    let a = send_body(
        s.addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("key={READ_KEY}&next=%2F%2Fevil.example%2F").as_bytes(),
    )
    .await;
    assert_eq!(a.header("location"), Some("/"));
    // Every page carries the policy that forbids scripts.
    let a = send(s.addr, "GET", "/", &[("cookie", &cookie)]).await;
    let csp = a.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(a.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_public_dashboard_needs_no_login_but_the_api_still_needs_a_key() {
    let (_tmp, _db, s) = fixture_server(DashboardAccess::Public).await;
    let a = send(s.addr, "GET", "/", &[]).await;
    assert_eq!(a.status, 200);
    assert!(!String::from_utf8(a.body).unwrap().contains("Log out"));
    assert_eq!(send(s.addr, "GET", "/api/v1/runs", &[]).await.status, 401);
}

#[tokio::test]
async fn rankings_page_shows_the_apis_figures_ties_and_filters() {
    let (_tmp, _db, s) = fixture_server(DashboardAccess::Public).await;
    let api = get(s.addr, "/api/v1/benchmarks/rankings?scenario=Server")
        .await
        .json();
    // Blank form fields are ignored, as a browser sends them.
    let (status, html) = page(&s, "", "/?scenario=Server&model=&since=&metric=").await;
    assert_eq!(status, 200, "{html}");
    for (i, alias) in ["ttft", "tps", "e2e_latency", "rps", "tpot"]
        .iter()
        .enumerate()
    {
        let entries = api["data"][i][alias].as_array().unwrap();
        let section = format!("id=\"ranking-{alias}\"");
        let start = html.find(&section).unwrap();
        let end = html[start + 1..]
            .find("<section")
            .map_or(html.len(), |e| start + 1 + e);
        let part = &html[start..end];
        let systems: Vec<&str> = attr_values(part, "data-system");
        let expected: Vec<&str> = entries
            .iter()
            .map(|e| e["system"].as_str().unwrap())
            .collect();
        assert_eq!(systems, expected, "{alias}");
        if entries.is_empty() {
            assert!(part.contains("No run records this figure"), "{alias}");
            continue;
        }
        let means = values_between(part, "<tbody", "</tbody>");
        for (e, shown) in entries.iter().zip(&means) {
            let mean = e["mean_value"].as_f64().unwrap();
            assert_eq!(*shown, mean, "{alias}");
            assert!(part.contains(&format!(">{mean:.3}<")), "{alias}: {mean:.3}");
            let low = e["ci_low"].as_f64().unwrap();
            let high = e["ci_high"].as_f64().unwrap();
            assert!(part.contains(&format!("{low:.3} – {high:.3}")), "{alias}");
        }
    }
    // ttft: vllm 1, tgi tied (=, highlighted), sglang 3.
    let start = html.find("id=\"ranking-ttft\"").unwrap();
    let part = &html[start..html[start..].find("</section>").unwrap() + start];
    assert_eq!(part.matches("class=\"tie\"").count(), 1);
    assert!(part.contains("1=</td>"), "{part}");
    assert!(part.contains("tie: not significant"));
    assert!(part.contains(">3</td>"));
    // The filter form shows the filter; a filter narrows the table.
    assert!(html.contains("name=\"scenario\" value=\"Server\""));
    let (_, html) = page(&s, "", "/?metric=samples_per_s&label=tgi").await;
    assert_eq!(attr_values(&html, "data-system"), ["tgi"]);
    assert_eq!(html.matches("<section").count(), 1);
    // Bad input: the API's message, as a page.
    let (status, html) = page(&s, "", "/?metric=nope").await;
    assert_eq!(status, 404);
    assert!(html.contains("unknown metric"));
    let (status, html) = page(&s, "", "/?since=yesterday").await;
    assert_eq!(status, 400);
    assert!(html.contains("parameter since must be"), "{html}");
    let (status, _) = page(&s, "", "/?colour=red").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn runs_page_lists_filters_and_pages_linking_each_run() {
    let (_tmp, _db, s) = fixture_server(DashboardAccess::Public).await;
    let (status, html) = page(&s, "", "/runs?limit=5").await;
    assert_eq!(status, 200);
    let api = get(s.addr, "/api/v1/runs?limit=5").await.json();
    let expected: Vec<&str> = api["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(attr_values(&html, "data-run"), expected);
    for id in &expected {
        assert!(html.contains(&format!("href=\"/runs/{id}\"")), "{id}");
    }
    assert!(
        html.contains("href=\"/runs?limit=5&amp;offset=5\""),
        "no next page link"
    );
    assert!(!html.contains("Newer"));
    let (_, html) = page(&s, "", "/runs?limit=5&offset=10").await;
    assert_eq!(attr_values(&html, "data-run").len(), 2);
    assert!(
        html.contains("href=\"/runs?limit=5&amp;offset=5\""),
        "no previous link"
    );
    assert!(!html.contains("Older"));
    // Filters: the three Offline runs, their figures the history's.
    let (_, html) = page(&s, "", "/runs?scenario=Offline&model=").await;
    let mut runs = attr_values(&html, "data-run");
    runs.sort_unstable();
    assert_eq!(runs, ["sglang-3", "tgi-3", "vllm-3"]);
    assert!(html.contains("data-value=\"20.5\""), "sglang-3's TTFT");
    let (status, _) = page(&s, "", "/runs?limit=many").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn run_page_shows_its_figures_charts_and_report_and_guards_its_files() {
    let (tmp, db, s) = fixture_server(DashboardAccess::Public).await;
    let dir = tmp.path().join("run-with-files");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("latency.png"), b"\x89PNG\r\n\x1a\nlatency").unwrap();
    std::fs::write(dir.join("report.html"), "<html>report</html>").unwrap();
    std::fs::write(dir.join("summary.json"), "{}").unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dir.join("leak.txt")).unwrap();
    let mut entry = run(
        "with-files",
        "2026-11-25T10:00:00+00:00",
        "vllm",
        "Server",
        12.5,
        40.0,
    );
    entry.run_dir = dir.display().to_string();
    History::open(&db).unwrap().record(&entry).unwrap();

    let (status, html) = page(&s, "", "/runs/with-files").await;
    assert_eq!(status, 200);
    for (name, value) in &entry.metrics {
        let row = html.find(&format!("data-figure=\"{name}\"")).unwrap();
        let shown = values_between(&html[row..], "data-value", "</tr>");
        assert_eq!(shown, [*value], "{name}");
    }
    assert!(html.contains("src=\"/runs/with-files/files/latency.png\""));
    assert!(html.contains("href=\"/runs/with-files/files/report.html\""));
    assert!(html.contains("href=\"/runs/with-files/files/summary.json\""));
    let png = send(s.addr, "GET", "/runs/with-files/files/latency.png", &[]).await;
    assert_eq!(png.status, 200);
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert!(png.body.starts_with(b"\x89PNG"));
    let report = send(s.addr, "GET", "/runs/with-files/files/report.html", &[]).await;
    assert_eq!(report.status, 200);
    assert!(
        report
            .header("content-security-policy")
            .unwrap()
            .ends_with("sandbox")
    );
    for bad in [
        "/runs/with-files/files/..%2F..%2Fsecret.txt",
        "/runs/with-files/files/.hidden.txt",
        "/runs/with-files/files/run.sh",
    ] {
        assert_eq!(send(s.addr, "GET", bad, &[]).await.status, 400, "{bad}");
    }
    let leak = send(s.addr, "GET", "/runs/with-files/files/leak.txt", &[]).await;
    assert_eq!(leak.status, 404, "a symlink out of the run directory");
    // A run whose directory is elsewhere: figures, and a note instead of charts.
    let (status, html) = page(&s, "", "/runs/vllm-0").await;
    assert_eq!(status, 200);
    assert!(html.contains("not readable on this server"));
    assert_eq!(page(&s, "", "/runs/no-such-run").await.0, 404);
}

#[tokio::test]
async fn trend_page_draws_each_system_and_tabulates_the_apis_points() {
    let (_tmp, _db, s) = fixture_server(DashboardAccess::Public).await;
    let api = get(s.addr, "/api/v1/trends/ttft?scenario=Server")
        .await
        .json();
    let (status, html) = page(&s, "", "/trends/ttft?scenario=Server").await;
    assert_eq!(status, 200);
    let series = api["data"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    assert_eq!(html.matches("<polyline").count(), 3);
    assert_eq!(html.matches("<circle").count(), 9);
    let mut expected: Vec<(String, f64)> = series
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap().iter())
        .map(|p| {
            (
                p["run_id"].as_str().unwrap().to_owned(),
                p["value"].as_f64().unwrap(),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let table = &html[html.find("id=\"points\"").unwrap()..];
    let mut shown: Vec<(String, f64)> = attr_values(table, "data-run")
        .into_iter()
        .map(str::to_owned)
        .zip(values_between(table, "<tbody", "</tbody>"))
        .collect();
    shown.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(shown, expected);
    // The metric form goes to the chosen metric, keeping the filters.
    let a = send(
        s.addr,
        "GET",
        "/trends?metric=samples_per_s&scenario=Server&label=",
        &[],
    )
    .await;
    assert_eq!(a.status, 303);
    assert_eq!(
        a.header("location"),
        Some("/trends/samples_per_s?scenario=Server")
    );
    // An unknown metric: 404, linking the valid ones.
    let (status, html) = page(&s, "", "/trends/ttft_p999").await;
    assert_eq!(status, 404);
    assert!(html.contains("href=\"/trends/samples_per_s\""));
}

#[tokio::test]
async fn user_data_is_escaped_on_every_page() {
    let (_tmp, db, s) = fixture_server(DashboardAccess::Public).await;
    let script = "<script>alert(1)</script>";
    let mut entry = run(
        "evil-<script>x</script>",
        "2026-11-26T10:00:00+00:00",
        script,
        "Server",
        11.0,
        45.0,
    );
    entry.model = "\"><img src=x onerror=alert(2)>".into();
    entry.reasons = vec![script.into()];
    History::open(&db).unwrap().record(&entry).unwrap();
    let id = "evil-%3Cscript%3Ex%3C%2Fscript%3E";
    for target in [
        "/".to_owned(),
        "/runs".to_owned(),
        format!("/runs/{id}"),
        "/trends/ttft".to_owned(),
        format!("/?label={}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ] {
        let (status, html) = page(&s, "", &target).await;
        assert_eq!(status, 200, "{target}");
        assert!(!html.contains("<script"), "{target}: unescaped script");
        assert!(!html.contains("<img src=x"), "{target}: unescaped model");
        assert!(
            html.contains("&lt;script&gt;"),
            "{target}: the label is shown escaped"
        );
    }
}

/// Records a synthetic run directory under `id`.
fn synthetic(tmp: &std::path::Path, db: &Database, id: &str, run: &SyntheticRun) {
    let dir = tmp.join(id);
    std::fs::create_dir(&dir).unwrap();
    write_run(&dir, run).unwrap();
    let mut entry = common::run(id, "2026-11-27T10:00:00+00:00", id, "Server", 10.0, 50.0);
    entry.run_dir = dir.display().to_string();
    History::open(db).unwrap().record(&entry).unwrap();
}

use reports::compare::{Allow, RunSamples, compare_checked};
use reports::synthetic::{SyntheticRun, write_run};

#[tokio::test]
async fn compare_page_shows_harness_compares_figures_and_refusals() {
    let (tmp, db, s) = fixture_server(DashboardAccess::Public).await;
    let base = SyntheticRun {
        samples: 100,
        ..SyntheticRun::default()
    };
    synthetic(tmp.path(), &db, "base", &base);
    synthetic(
        tmp.path(),
        &db,
        "cand",
        &SyntheticRun {
            seed: 2,
            ..base.clone()
        },
    );
    synthetic(
        tmp.path(),
        &db,
        "other-qps",
        &SyntheticRun {
            qps: 50.0,
            ..base.clone()
        },
    );
    synthetic(
        tmp.path(),
        &db,
        "failing",
        &SyntheticRun {
            fail_every: 10,
            ..base.clone()
        },
    );

    let (status, html) = page(&s, "", "/compare").await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"baseline\""));
    let (status, html) = page(&s, "", "/compare?baseline=base&candidate=cand").await;
    assert_eq!(status, 200, "{html}");
    // The same comparison harness compare computes from the directories.
    let runs: Vec<RunSamples> = ["base", "cand"]
        .iter()
        .map(|id| RunSamples::load(&tmp.path().join(id)).unwrap())
        .collect();
    let (expected, _) = compare_checked(&runs, &["base", "cand"], &[], Allow::default()).unwrap();
    assert!(!expected.rows.is_empty());
    for row in &expected.rows {
        let at = html
            .find(&format!("data-metric=\"{}\"", row.metric))
            .unwrap_or_else(|| panic!("{} missing", row.metric));
        let part = &html[at..at + html[at..].find("</tr>").unwrap()];
        let shown = values_between(part, "data-metric", "</tr>");
        let values: Vec<f64> = row.values.iter().flatten().copied().collect();
        assert_eq!(shown, values, "{}", row.metric);
        if let Some(Some(d)) = row.diffs.first() {
            assert!(
                part.contains(&format!("data-diff=\"{}\"", d.diff)),
                "{}",
                row.metric
            );
            assert!(part.contains(&format!("{:+.3} [{:+.3}, {:+.3}]", d.diff, d.lo, d.hi)));
        }
    }
    // Different workloads and failed runs are refused, as on the command
    // line, unless allowed.
    let (status, html) = page(&s, "", "/compare?baseline=base&candidate=other-qps").await;
    assert_eq!(status, 422);
    assert!(html.contains("different workloads"), "{html}");
    assert!(html.contains("target_qps"), "{html}");
    let (status, _) = page(
        &s,
        "",
        "/compare?baseline=base&candidate=other-qps&allow_mismatch=true",
    )
    .await;
    assert_eq!(status, 200);
    let (status, html) = page(&s, "", "/compare?baseline=base&candidate=failing").await;
    assert_eq!(status, 422);
    assert!(html.contains("cannot be trusted"), "{html}");
    // Unknown runs and runs without their directory: 404 naming which.
    let (status, html) = page(&s, "", "/compare?baseline=base&candidate=nope").await;
    assert_eq!(status, 404);
    assert!(html.contains("candidate: no such run"), "{html}");
    let (status, html) = page(&s, "", "/compare?baseline=vllm-0&candidate=base").await;
    assert_eq!(status, 404);
    assert!(html.contains("baseline: the run directory of vllm-0 is not on this server"));
    let (status, _) = page(
        &s,
        "",
        "/compare?baseline=base&candidate=cand&allow_mismatch=yes",
    )
    .await;
    assert_eq!(status, 400);
}

/// A path no route answers is the dashboard's 404 page (HTML, with the
/// pages' security headers, no login needed: it shows no data); under
/// `/api` it stays a JSON answer: 401 without a key, 404 with one.
#[tokio::test]
async fn unknown_paths_are_an_html_404_and_unknown_api_paths_a_json_404_after_the_key() {
    let (_tmp, _db, s) = fixture_server(DashboardAccess::Login).await;
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/nope/deeper?x=1"),
        ("GET", "/runs/x/y/z"),
        ("POST", "/nope"),
        ("GET", "/apinope"),
    ] {
        let a = send(s.addr, method, path, &[]).await;
        assert_eq!(a.status, 404, "{method} {path}");
        assert_eq!(
            a.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{method} {path}"
        );
        assert!(
            a.header("content-security-policy").is_some(),
            "{method} {path}"
        );
        let html = String::from_utf8(a.body).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("404 Not Found"), "{html}");
        // The dashboard's shell: its navigation leads back.
        assert!(html.contains("href=\"/runs\""), "{html}");
    }
    for path in ["/api", "/api/", "/api/nope", "/api/v1/nope", "/api/v2/runs"] {
        let a = send(s.addr, "GET", path, &[]).await;
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{path}");
        assert!(a.json()["error"].as_str().unwrap().contains("API key"));
        let a = send(s.addr, "GET", path, &[("x-api-key", READ_KEY)]).await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{path}");
        assert!(
            a.json()["error"]
                .as_str()
                .unwrap()
                .contains("no such API route"),
            "{path}"
        );
    }
}
