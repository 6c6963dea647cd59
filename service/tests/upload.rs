//! `POST /api/v1/runs`: a run directory uploaded as tar.gz is recorded as a
//! local run; every hostile archive is a clear 4xx with nothing stored and
//! the server still serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use history::{Database, History};
use reports::synthetic::{SyntheticRun, write_run};

const LIMITS: service::UploadLimits = service::UploadLimits {
    compressed_bytes: 256 << 10,
    unpacked_bytes: 2 << 20,
    entries: 50,
};

struct Fixture {
    tmp: tempfile::TempDir,
    db: Database,
    runs: PathBuf,
    server: Server,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::from(tmp.path().join("history.sqlite"));
    fixture_on(tmp, db).await
}

/// A server storing uploads under `tmp` and recording them into `db`.
async fn fixture_on(tmp: tempfile::TempDir, db: Database) -> Fixture {
    let runs = tmp.path().join("runs");
    let uploads = service::Uploads {
        runs_dir: runs.clone(),
        limits: LIMITS,
    };
    let server = start_uploading(db.clone(), service::DashboardAccess::Login, Some(uploads)).await;
    Fixture {
        tmp,
        db,
        runs,
        server,
    }
}

/// A synthetic run directory `parent/name`.
fn run_dir(parent: &Path, name: &str, finished: bool) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let run = SyntheticRun {
        samples: 200,
        finished,
        ..SyntheticRun::default()
    };
    write_run(&dir, &run).unwrap();
    dir
}

fn gzip(tar: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

/// `tar czf - -C parent name`.
fn archive(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_dir_all(dir.file_name().unwrap(), dir)
        .unwrap();
    gzip(&builder.into_inner().unwrap())
}

/// A tar holding the run's files plus one hostile entry written raw (its
/// name bytes as given, whatever the tar crate would allow).
fn archive_with(dir: &Path, name: &[u8], kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", dir).unwrap();
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
    gzip(&builder.into_inner().unwrap())
}

async fn upload(s: &Server, key: &str, body: &[u8]) -> Answer {
    send_body(
        s.addr,
        "POST",
        "/api/v1/runs",
        &[("x-api-key", key), ("content-type", "application/gzip")],
        body,
    )
    .await
}

/// Nothing stored: no run directory, no staging left, no history row, and
/// the server still answers.
async fn nothing_stored(f: &Fixture) {
    let left: Vec<_> = std::fs::read_dir(&f.runs)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    let db = f.db.clone();
    let listed = tokio::task::spawn_blocking(move || {
        History::open(&db)
            .unwrap()
            .list(&history::Filter::default())
            .unwrap()
    })
    .await
    .unwrap();
    assert!(listed.is_empty(), "recorded: {listed:?}");
    assert_eq!(get(f.server.addr, "/health").await.status, 200);
}

#[tokio::test]
async fn an_uploaded_run_is_recorded_as_a_local_run_once() {
    let f = fixture().await;
    let dir = run_dir(f.tmp.path(), "20270115-080000-upload", true);
    let body = archive(&dir);

    let a = upload(&f.server, UPLOAD_KEY, &body).await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let answer = a.json();
    assert_eq!(answer["run_id"], "20270115-080000-upload");
    assert_eq!(answer["url"], "/api/v1/runs/20270115-080000-upload");
    assert_eq!(
        a.header("location"),
        Some("/api/v1/runs/20270115-080000-upload")
    );

    // Recorded as `harness run` records it: the same row.
    let stored = f.runs.join("20270115-080000-upload");
    assert!(stored.join("records.jsonl").is_file());
    let history = History::open(&f.db).unwrap();
    let row = history.get("20270115-080000-upload").unwrap().unwrap();
    let local = service::record::read_finished(&dir).unwrap();
    let expected = service::record::run_entry(&stored, &local.manifest, &local.figures);
    assert_eq!(row, expected);
    assert!(
        !history
            .series("20270115-080000-upload", Some("kv_cache_usage_frac"))
            .unwrap()
            .is_empty()
    );
    let run = get(f.server.addr, "/api/v1/runs/20270115-080000-upload").await;
    assert_eq!(run.status, 200);

    // The same run again: 409, the first copy untouched.
    let again = upload(&f.server, UPLOAD_KEY, &body).await;
    assert_eq!(
        again.status,
        409,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("already recorded")
    );
    let names: Vec<_> = std::fs::read_dir(&f.runs).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[tokio::test]
async fn concurrent_uploads_of_one_run_store_it_once() {
    let f = fixture().await;
    let dir = run_dir(f.tmp.path(), "20270115-080000-race", true);
    let body = archive(&dir);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (addr, body) = (f.server.addr, body.clone());
            tokio::spawn(async move {
                send_body(
                    addr,
                    "POST",
                    "/api/v1/runs",
                    &[("x-api-key", UPLOAD_KEY)],
                    &body,
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
    let names: Vec<_> = std::fs::read_dir(&f.runs).unwrap().collect();
    assert_eq!(names.len(), 1, "one directory, no staging left");
}

#[tokio::test]
async fn keys_without_upload_scope_are_refused() {
    let f = fixture().await;
    let dir = run_dir(f.tmp.path(), "r", true);
    let body = archive(&dir);
    assert_eq!(upload(&f.server, READ_KEY, &body).await.status, 403);
    assert_eq!(
        upload(&f.server, "not-a-key-at-all-0000", &body)
            .await
            .status,
        401
    );
    let none = send_body(f.server.addr, "POST", "/api/v1/runs", &[], &body).await;
    assert_eq!(none.status, 401);
    nothing_stored(&f).await;
}

#[tokio::test]
async fn hostile_archives_are_refused_and_nothing_is_stored() {
    let f = fixture().await;
    let good = run_dir(f.tmp.path(), "20270115-080000-good", true);
    let body = archive(&good);
    let crashed = run_dir(f.tmp.path(), "20270115-080000-crashed", false);
    let empty = f.tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "hello").unwrap();
    let bomb = {
        let mut builder = tar::Builder::new(Vec::new());
        let zeros = vec![0u8; 3 << 20];
        let mut header = tar::Header::new_gnu();
        header.set_size(zeros.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "records.jsonl", zeros.as_slice())
            .unwrap();
        gzip(&builder.into_inner().unwrap())
    };
    assert!(bomb.len() < 64 << 10, "a bomb is small: {}", bomb.len());
    let too_many = {
        let mut builder = tar::Builder::new(Vec::new());
        for i in 0..60 {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("f{i}.txt"), &b"x"[..])
                .unwrap();
        }
        gzip(&builder.into_inner().unwrap())
    };
    let oversized: Vec<u8> = {
        // Incompressible: bigger than the compressed limit.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..(300 << 10))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    };
    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend_from_slice(b"this is not deflate data at all");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", Vec::new(), 400, "not a gzip"),
        (
            "not gzip",
            b"PK\x03\x04 a zip file".to_vec(),
            400,
            "not a gzip",
        ),
        ("corrupt gzip", garbage, 400, "corrupt or truncated"),
        (
            "truncated",
            body[..body.len() / 2].to_vec(),
            400,
            "corrupt or truncated",
        ),
        (
            "parent path",
            archive_with(&good, b"../escaped.txt", tar::EntryType::Regular, b"x"),
            400,
            "a path with .. is refused",
        ),
        (
            "absolute path",
            archive_with(&good, b"/tmp/escaped.txt", tar::EntryType::Regular, b"x"),
            400,
            "an absolute path is refused",
        ),
        (
            "symlink",
            archive_with(&good, b"link.txt", tar::EntryType::Symlink, b""),
            400,
            "a symbolic link is refused",
        ),
        (
            "device",
            archive_with(&good, b"dev", tar::EntryType::Char, b""),
            400,
            "a device file is refused",
        ),
        (
            "duplicate entry",
            archive_with(&good, b"run.json", tar::EntryType::Regular, b"{}"),
            400,
            "given twice",
        ),
        ("gzip bomb", bomb, 413, "unpacks to more than"),
        ("too many entries", too_many, 413, "more than 50 entries"),
        ("oversized", oversized, 413, "larger than"),
        ("crashed run", archive(&crashed), 400, "says \"running\""),
        ("no run.json", archive(&empty), 400, "no run.json"),
        (
            "sql injection in the run id",
            {
                let evil = f.tmp.path().join("evil");
                std::fs::create_dir(&evil).unwrap();
                write_run(
                    &evil,
                    &SyntheticRun {
                        samples: 50,
                        ..SyntheticRun::default()
                    },
                )
                .unwrap();
                let manifest = evil.join("run.json");
                let text = std::fs::read_to_string(&manifest).unwrap();
                let text = text.replace(
                    "\"run_id\": \"evil\"",
                    "\"run_id\": \"x'; DROP TABLE runs; --\"",
                );
                assert!(text.contains("DROP TABLE"), "{text}");
                std::fs::write(&manifest, text).unwrap();
                archive(&evil)
            },
            400,
            "is not a plain directory name",
        ),
    ];
    for (what, body, status, needle) in cases {
        let a = upload(&f.server, UPLOAD_KEY, &body).await;
        let text = String::from_utf8_lossy(&a.body).into_owned();
        assert_eq!(a.status, status, "{what}: {text}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{what}");
        assert!(
            a.json()["error"].as_str().unwrap().contains(needle),
            "{what}: {text}"
        );
        nothing_stored(&f).await;
    }
    assert!(!f.tmp.path().join("escaped.txt").exists());
    // And a good upload still works afterwards.
    assert_eq!(
        upload(&f.server, UPLOAD_KEY, &archive(&good)).await.status,
        201
    );
}

/// The same upload against a real PostgreSQL history (skipped, saying so,
/// when HARNESS_TEST_PG_URL is unset): the run is recorded exactly as a
/// local run is (`harness history import`'s and `harness run`'s function,
/// into SQLite: the same row, the same metric series), its ranking columns
/// too (it ranks and filters as the local copy does); rejected uploads
/// (a read key, a crashed run, a path with `..`, the same run again) store
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_into_postgres_is_recorded_as_a_local_run_and_a_rejected_one_stores_nothing() {
    let Ok(server) = std::env::var("HARNESS_TEST_PG_URL") else {
        println!(
            "skipping: HARNESS_TEST_PG_URL is unset (eval \"$(bash scripts/peers/postgres.sh)\")"
        );
        return;
    };
    let db = fresh_postgres_schema(&server, "service_upload").await;
    let f = fixture_on(tempfile::tempdir().unwrap(), db.clone()).await;
    let dir = run_dir(f.tmp.path(), "20270115-080000-pg", true);
    let crashed = run_dir(f.tmp.path(), "20270115-080000-pg-crashed", false);

    // Refused before anything is stored.
    let body = archive(&dir);
    assert_eq!(upload(&f.server, READ_KEY, &body).await.status, 403);
    assert_eq!(
        upload(&f.server, UPLOAD_KEY, &archive(&crashed))
            .await
            .status,
        400
    );
    let escaping = archive_with(&dir, b"../escaped.txt", tar::EntryType::Regular, b"x");
    assert_eq!(upload(&f.server, UPLOAD_KEY, &escaping).await.status, 400);
    nothing_stored(&f).await;

    let a = upload(&f.server, UPLOAD_KEY, &body).await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let again = upload(&f.server, UPLOAD_KEY, &body).await;
    assert_eq!(again.status, 409);

    // The local run: the same directory recorded by the CLI's function
    // into SQLite, under the stored directory's path.
    let stored = f.runs.join("20270115-080000-pg");
    let local_db = Database::from(f.tmp.path().join("local.sqlite"));
    let (pg_db, local) = (db.clone(), local_db.clone());
    let (dir2, stored2) = (dir.clone(), stored.clone());
    tokio::task::spawn_blocking(move || {
        let run = service::record::read_finished(&dir2).unwrap();
        let mut lite = History::open(&local).unwrap();
        service::record::record(&mut lite, &stored2, &run.manifest, &run.figures).unwrap();
        let pg = History::open(&pg_db).unwrap();
        let id = "20270115-080000-pg";
        let row = pg.get(id).unwrap().unwrap();
        assert_eq!(Some(row.clone()), lite.get(id).unwrap());
        assert_eq!(
            row,
            service::record::run_entry(&stored2, &run.manifest, &run.figures)
        );
        let series = pg.series(id, None).unwrap();
        assert!(!series.is_empty());
        assert_eq!(series, lite.series(id, None).unwrap());
        // Ranked and filtered as the local copy: the same groups and sums.
        let by_system = history::Filter {
            backend: Some(row.backends[0].clone()),
            ..history::Filter::default()
        };
        for filter in [history::Filter::default(), by_system] {
            let sums = pg.group_sums("ttft_p50_ms", &filter).unwrap();
            assert_eq!(sums.len(), 1);
            assert_eq!(sums, lite.group_sums("ttft_p50_ms", &filter).unwrap());
        }
        // One run recorded, one directory stored: the refusals left nothing.
        assert_eq!(pg.list(&history::Filter::default()).unwrap().len(), 1);
    })
    .await
    .unwrap();
    let names: Vec<_> = std::fs::read_dir(&f.runs).unwrap().collect();
    assert_eq!(names.len(), 1, "one directory, no staging left");
    let run = get(f.server.addr, "/api/v1/runs/20270115-080000-pg").await;
    assert_eq!(run.status, 200);
}
