//! `harness serve` as a user starts it: keys from the environment or a
//! file, a free port printed at start, refused without a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common {
    pub mod child;
    pub mod http;
    pub mod postgres;
    pub mod serve;
    pub mod stdout;
}

use std::process::Command;

use common::serve::{Served, harness_serve, start};

const KEY: &str = "read-key-0123456789abcdef";

fn get(addr: &str, path: &str, key: Option<&str>) -> (u16, String) {
    match key {
        Some(k) => common::http::get(addr, path, &[&format!("x-api-key: {k}")]),
        None => common::http::get(addr, path, &[]),
    }
}

#[test]
fn serve_prints_its_address_and_answers_with_a_key_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys.txt");
    std::fs::write(&keys, format!("# the team\nread:{KEY}\n")).unwrap();
    let served = start(
        harness_serve()
            .arg("--db")
            .arg(tmp.path().join("h.sqlite"))
            .arg("--api-keys-file")
            .arg(&keys),
    );
    let addr = served.addr.clone();
    let health = get(&addr, "/health", None);
    let runs = get(&addr, "/api/v1/runs", Some(KEY));
    let unauthorized = get(&addr, "/api/v1/runs", None);
    drop(served);
    assert_eq!(health.0, 200, "{addr}");
    assert_eq!(runs.0, 200);
    assert!(runs.1.contains("\"data\":[]"), "{}", runs.1);
    assert_eq!(unauthorized.0, 401);
}

#[test]
fn serve_refuses_to_start_without_a_key_or_with_a_weak_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env_remove("HARNESS_API_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no API key: set HARNESS_API_KEYS"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("HARNESS_API_KEYS", "upload:tooshortsecret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HARNESS_API_KEYS: entry 1: a key needs at least 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("tooshortsecret"), "{stderr}");
}

fn harness(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .env_remove("HARNESS_API_KEYS")
        .output()
        .unwrap()
}

/// Writes a synthetic run directory `parent/name`.
fn synthetic(parent: &std::path::Path, name: &str, qps: f64, seed: u64, finished: bool) -> String {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    let run = reports::synthetic::SyntheticRun {
        samples: 300,
        qps,
        seed,
        finished,
        ..Default::default()
    };
    reports::synthetic::write_run(&dir, &run).unwrap();
    dir.to_str().unwrap().to_owned()
}

/// Starts `harness serve` over `db` with `keys`.
fn serve(db: &std::path::Path, keys: &str) -> Served {
    start(
        harness_serve()
            .arg("--db")
            .arg(db)
            .env("HARNESS_API_KEYS", keys),
    )
}

#[test]
fn imported_runs_compare_over_the_api_exactly_as_the_cli_does() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    let db_arg = db.to_str().unwrap();
    let a = synthetic(tmp.path(), "run-a", 100.0, 1, true);
    let b = synthetic(tmp.path(), "run-b", 100.0, 2, true);
    let c = synthetic(tmp.path(), "run-c", 50.0, 3, true);
    let crashed = synthetic(tmp.path(), "run-crashed", 100.0, 4, false);

    // A directory that is not a finished run is refused with the reason;
    // the others are recorded; the exit code says something was refused.
    let out = harness(&["history", "--db", db_arg, "import", &a, &b, &c, &crashed]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("3 imported, 0 skipped (already recorded), 1 refused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("run-crashed: not a finished run: run.json says \"running\""),
        "{stdout}"
    );
    // Idempotent: importing again skips, and says so.
    let out = harness(&["history", "import", &a, "--db", db_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("run run-a is already recorded"), "{stdout}");
    assert!(stdout.contains("0 imported, 1 skipped"), "{stdout}");

    let cli = harness(&["compare", &a, &b, "--format", "json"]);
    assert_eq!(cli.status.code(), Some(0));
    let cli_mismatch = harness(&["compare", &a, &c, "--format", "json", "--allow-mismatch"]);
    assert_eq!(cli_mismatch.status.code(), Some(0));

    let served = serve(&db, &format!("read:{KEY}"));
    let addr = served.addr.clone();
    let same = get(
        &addr,
        "/api/v1/compare?baseline=run-a&candidate=run-b",
        Some(KEY),
    );
    let refused = get(
        &addr,
        "/api/v1/compare?baseline=run-a&candidate=run-c",
        Some(KEY),
    );
    let allowed = get(
        &addr,
        "/api/v1/compare?baseline=run-a&candidate=run-c&allow_mismatch=true",
        Some(KEY),
    );
    let unknown = get(
        &addr,
        "/api/v1/compare?baseline=run-a&candidate=nope",
        Some(KEY),
    );
    let injected = get(
        &addr,
        "/api/v1/compare?baseline=run-a%27%20OR%20%271%27=%271&candidate=run-b",
        Some(KEY),
    );
    let missing = get(&addr, "/api/v1/compare?baseline=run-a", Some(KEY));
    let bad_flag = get(
        &addr,
        "/api/v1/compare?baseline=run-a&candidate=run-b&allow_mismatch=yes",
        Some(KEY),
    );
    let no_key = get(
        &addr,
        "/api/v1/compare?baseline=run-a&candidate=run-b",
        None,
    );
    let still = get(&addr, "/health", None);
    drop(served);

    assert_eq!(same.0, 200, "{}", same.1);
    assert_eq!(
        same.1.as_bytes(),
        cli.stdout.as_slice(),
        "API and CLI differ"
    );
    assert_eq!(refused.0, 422, "{}", refused.1);
    assert!(refused.1.contains("allow_mismatch=true"), "{}", refused.1);
    assert!(
        refused.1.contains("target_qps (run-a: 100, run-c: 50)"),
        "{}",
        refused.1
    );
    assert_eq!(allowed.0, 200, "{}", allowed.1);
    assert_eq!(allowed.1.as_bytes(), cli_mismatch.stdout.as_slice());
    assert_eq!(unknown.0, 404, "{}", unknown.1);
    assert!(
        unknown.1.contains("candidate: no such run"),
        "{}",
        unknown.1
    );
    assert_eq!(injected.0, 404, "{}", injected.1);
    assert_eq!(missing.0, 400, "{}", missing.1);
    assert!(missing.1.contains("parameter candidate"), "{}", missing.1);
    assert_eq!(bad_flag.0, 400, "{}", bad_flag.1);
    assert_eq!(no_key.0, 401);
    assert_eq!(still.0, 200);
}

fn push(dir: &str, server: &str, key: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["push", dir, "--server", server])
        .env("HARNESS_API_KEY", key)
        .output()
        .unwrap()
}

#[test]
fn push_uploads_a_run_that_the_server_records_once_and_never_prints_the_key() {
    const UPLOAD: &str = "upload-key-0123456789abcdef";
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("h.sqlite");
    let local = tmp.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let run = synthetic(&local, "20270115-080000-pushed", 100.0, 1, true);
    let crashed = synthetic(&local, "20270115-080000-crashed", 100.0, 2, false);
    let served = start(
        harness_serve()
            .arg("--db")
            .arg(&db)
            .arg("--runs-dir")
            .arg(tmp.path().join("stored"))
            .env("HARNESS_API_KEYS", format!("read:{KEY},upload:{UPLOAD}")),
    );
    let addr = served.addr.clone();
    let server = format!("http://{addr}");

    let first = push(&run, &server, UPLOAD);
    let again = push(&run, &server, UPLOAD);
    let read_only = push(&run, &server, KEY);
    let unfinished = push(&crashed, &server, UPLOAD);
    let listed = get(&addr, "/api/v1/runs/20270115-080000-pushed", Some(KEY));
    drop(served);

    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        text(&first).contains(&format!(
            "uploaded 20270115-080000-pushed: {server}/api/v1/runs/20270115-080000-pushed"
        )),
        "{}",
        text(&first)
    );
    assert_eq!(listed.0, 200, "{}", listed.1);
    assert!(
        tmp.path()
            .join("stored/20270115-080000-pushed/records.jsonl")
            .is_file()
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("(HTTP 409): run 20270115-080000-pushed is already recorded"),
        "{}",
        text(&again)
    );
    assert_eq!(read_only.status.code(), Some(1));
    assert!(
        text(&read_only).contains("HTTP 403"),
        "{}",
        text(&read_only)
    );
    assert_eq!(unfinished.status.code(), Some(1));
    assert!(
        text(&unfinished).contains("not a finished run"),
        "{}",
        text(&unfinished)
    );
    for o in [&first, &again, &read_only, &unfinished] {
        assert!(
            !text(o).contains(UPLOAD) && !text(o).contains(KEY),
            "{}",
            text(o)
        );
    }
}

/// `harness push` to a `harness serve` over a real PostgreSQL history
/// (skipped, saying so, when HARNESS_TEST_PG_URL is unset): the pushed run
/// is recorded exactly as `harness history import` records the same
/// directory into SQLite (row and metric series), and the refused pushes (a
/// read key, an unfinished run, the same run again) store nothing more.
#[test]
fn push_to_a_postgres_history_records_the_run_as_a_local_import() {
    #![allow(clippy::print_stdout)]
    let Ok(server) = std::env::var("HARNESS_TEST_PG_URL") else {
        println!(
            "skipping: HARNESS_TEST_PG_URL is unset (eval \"$(bash scripts/peers/postgres.sh)\")"
        );
        return;
    };
    const UPLOAD: &str = "upload-key-0123456789abcdef";
    let url = common::postgres::own_schema(&server, "harness_push");
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let run = synthetic(&local, "20270115-080000-pg-pushed", 100.0, 1, true);
    let crashed = synthetic(&local, "20270115-080000-pg-crashed", 100.0, 2, false);
    let stored = tmp.path().join("stored");
    let served = start(
        harness_serve()
            .args(["--db", &url, "--runs-dir"])
            .arg(&stored)
            .env("HARNESS_API_KEYS", format!("read:{KEY},upload:{UPLOAD}")),
    );
    let base = format!("http://{}", served.addr);
    let read_only = push(&run, &base, KEY);
    let unfinished = push(&crashed, &base, UPLOAD);
    let pg = history::History::open(&history::Database::parse(&url)).unwrap();
    let before = pg.list(&history::Filter::default()).unwrap();
    let first = push(&run, &base, UPLOAD);
    let again = push(&run, &base, UPLOAD);
    drop(served);

    assert_eq!(read_only.status.code(), Some(1));
    assert_eq!(unfinished.status.code(), Some(1));
    assert!(before.is_empty(), "refused pushes recorded {before:?}");
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(again.status.code(), Some(1));
    // The same directory imported locally into SQLite, as stored.
    let id = "20270115-080000-pg-pushed";
    let stored_run = stored.join(id);
    let lite = tmp.path().join("local.sqlite");
    let import = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["history", "import", "--db"])
        .arg(&lite)
        .arg(&stored_run)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let lite = history::History::open(&history::Database::from(lite.as_path())).unwrap();
    let row = pg.get(id).unwrap().unwrap();
    assert_eq!(Some(row.clone()), lite.get(id).unwrap());
    assert!(!row.metrics.is_empty());
    assert_eq!(pg.series(id, None).unwrap(), lite.series(id, None).unwrap());
    assert_eq!(pg.list(&history::Filter::default()).unwrap().len(), 1);
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), 1);
}
