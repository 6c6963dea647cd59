//! The history on a real PostgreSQL server (`scripts/peers/postgres.sh`),
//! compared with the SQLite backend doing the same things.
//!
//! Each test works in its own schema (selected through the URL's
//! `options=-csearch_path=...`), so the tests run in parallel on one database.

// Test helpers outside #[test] functions: unwrap and the skip message are fine here.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::{Arc, Barrier};

mod common;

use history::{Database, Filter, History, HistoryError, RunEntry, SCHEMA_VERSION};
use postgres::{Client, NoTls};

/// The server's URL, or `None` (after saying so) when no server was set up.
fn server(test: &str) -> Option<String> {
    match std::env::var("HARNESS_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!(
                "skipping {test}: HARNESS_TEST_PG_URL is unset (eval \"$(bash scripts/peers/postgres.sh)\")"
            );
            None
        }
    }
}

/// A new, empty schema for one test (dropped first if an earlier run left
/// it), and the URL that works in it.
fn fresh_schema(server: &str, test: &str) -> (Client, String, Database) {
    let schema = format!("history_{test}");
    let mut admin = Client::connect(server, NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let sep = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{sep}options=-csearch_path%3D{schema}");
    (admin, schema, Database::parse(&url))
}

fn entry(id: &str, at: &str, model: &str, scenario: &str, qps: f64) -> RunEntry {
    RunEntry {
        run_id: id.into(),
        run_dir: format!("runs/{id}"),
        started_at: at.into(),
        model: model.into(),
        scenario: scenario.into(),
        mode: "PerformanceOnly".into(),
        backends: vec!["http://127.0.0.1:8000/v1".into()],
        dataset: Some("datasets/x.json".into()),
        labels: vec![("label".into(), "a".into())],
        status: "complete".into(),
        valid: Some(true),
        reasons: vec![],
        harness_version: "0.1.0".into(),
        loadgen: "mlcommons-loadgen 6.0.17".into(),
        metrics: vec![("samples_per_s".into(), qps), ("ttft_p99_ms".into(), 12.5)],
    }
}

fn ids(runs: &[RunEntry]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

#[test]
fn an_empty_database_is_migrated_to_the_same_tables_as_sqlite() {
    let Some(server) = server("an_empty_database_is_migrated_to_the_same_tables_as_sqlite") else {
        return;
    };
    let (mut admin, schema, db) = fresh_schema(&server, "migrate_empty");
    let history = History::open(&db).unwrap();
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    drop(history);
    // Opening again changes nothing.
    assert_eq!(
        History::open(&db).unwrap().schema_version().unwrap(),
        SCHEMA_VERSION
    );
    let rows = admin
        .query(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION as i32);

    let tmp = tempfile::tempdir().unwrap();
    let sqlite = tmp.path().join("h.sqlite");
    drop(History::open(&Database::from(sqlite.as_path())).unwrap());
    let conn = rusqlite::Connection::open(&sqlite).unwrap();
    for table in ["runs", "metrics"] {
        // SQLite lets a TEXT primary key hold NULL unless it says NOT NULL
        // (PostgreSQL never does); the history never writes one.
        let mut stmt = conn
            .prepare("SELECT name, \"notnull\" OR pk > 0 FROM pragma_table_info(?1) ORDER BY cid")
            .unwrap();
        let lite: Vec<(String, bool)> = stmt
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let pg: Vec<(String, bool)> = admin
            .query(
                "SELECT column_name::TEXT, is_nullable = 'NO' FROM information_schema.columns
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&schema, &table],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(pg, lite, "columns of {table}");
    }
}

#[test]
fn a_version_1_database_is_migrated() {
    let Some(server) = server("a_version_1_database_is_migrated") else {
        return;
    };
    let (mut admin, schema, db) = fresh_schema(&server, "migrate_v1");
    // The schema as the first release wrote it.
    admin
        .batch_execute(&format!(
            r#"SET search_path = {schema};
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            CREATE TABLE runs (
                run_id TEXT COLLATE "C" PRIMARY KEY, run_dir TEXT NOT NULL,
                started_at TEXT COLLATE "C" NOT NULL, model TEXT NOT NULL, scenario TEXT NOT NULL,
                mode TEXT NOT NULL, backends TEXT NOT NULL, dataset TEXT, labels TEXT NOT NULL,
                status TEXT NOT NULL, valid BOOLEAN, reasons TEXT NOT NULL);
            CREATE TABLE metrics (
                run_id TEXT COLLATE "C" NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
                name TEXT COLLATE "C" NOT NULL, value DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (run_id, name));
            CREATE INDEX runs_started ON runs(started_at);
            INSERT INTO runs VALUES ('old', 'runs/old', '2026-01-01', 'm', 'Server',
                'PerformanceOnly', '[]', NULL, '[]', 'complete', TRUE, '[]');
            INSERT INTO metrics VALUES ('old', 'samples_per_s', 3.25);
            INSERT INTO runs VALUES ('older', 'runs/older', '2025-12-31T23:00:00-02:00', 'm',
                'Server', 'PerformanceOnly', '["http://h:1/v1"]', NULL,
                '[["system","vllm \"x\""]]', 'complete', TRUE, '[]');
            INSERT INTO metrics VALUES ('older', 'samples_per_s', 4.5);"#
        ))
        .unwrap();
    let history = History::open(&db).unwrap();
    assert_eq!(history.schema_version().unwrap(), SCHEMA_VERSION);
    // The ranking columns are filled in from the JSON columns: the system,
    // the labels and backends for the filters, the start instant.
    let sums = history
        .group_sums("samples_per_s", &Filter::default())
        .unwrap();
    assert_eq!(
        sums.iter()
            .map(|g| (g.system.as_str(), g.count))
            .collect::<Vec<_>>(),
        [("-", 1), ("vllm \"x\"", 1)]
    );
    let only = |f: Filter| -> Vec<String> {
        history
            .list(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    assert_eq!(
        only(Filter {
            label: Some(("system".into(), "vllm \"x\"".into())),
            ..Filter::default()
        }),
        ["older"]
    );
    assert_eq!(
        only(Filter {
            backend: Some("http://h:1/v1".into()),
            ..Filter::default()
        }),
        ["older"]
    );
    // 2026-01-01T01:00Z: after midnight UTC, whatever its text says.
    assert_eq!(
        only(Filter {
            since: Some("2026-01-01T00:30:00Z".into()),
            ..Filter::default()
        }),
        ["older"]
    );
    let runs = history
        .list(&Filter {
            model: Some("m".into()),
            until: Some("2026-01-01T00:30:00Z".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(ids(&runs), ["old"]);
    assert_eq!(runs[0].harness_version, "");
    assert_eq!(runs[0].loadgen, "");
    assert_eq!(runs[0].valid, Some(true));
    assert_eq!(runs[0].metrics, [("samples_per_s".to_owned(), 3.25)]);
}

#[test]
fn harnesses_opening_a_new_database_at_once_migrate_it_once() {
    let Some(server) = server("harnesses_opening_a_new_database_at_once_migrate_it_once") else {
        return;
    };
    let (mut admin, schema, db) = fresh_schema(&server, "migrate_concurrently");
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (db, barrier) = (db.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                History::open(&db).map(|h| h.schema_version())
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap().unwrap(), SCHEMA_VERSION);
    }
    let rows = admin
        .query(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[test]
fn re_recording_a_run_replaces_it_and_its_metrics() {
    let Some(server) = server("re_recording_a_run_replaces_it_and_its_metrics") else {
        return;
    };
    let (_admin, _schema, db) = fresh_schema(&server, "re_record");
    let mut history = History::open(&db).unwrap();
    history
        .record(&entry(
            "a",
            "2026-11-21T10:00:00+00:00",
            "m",
            "Server",
            10.0,
        ))
        .unwrap();
    let mut again = entry("a", "2026-11-23T10:00:00+00:00", "m2", "Offline", 11.0);
    again.metrics = vec![("samples_per_s".into(), 11.0)];
    again.valid = None;
    again.dataset = None;
    history.record(&again).unwrap();
    let runs = history.list(&Filter::default()).unwrap();
    assert_eq!(runs, [again]);
    assert!(
        history
            .trend("ttft_p99_ms", &Filter::default())
            .unwrap()
            .is_empty()
    );
    assert!(history.contains("a").unwrap());
    assert!(!history.contains("b").unwrap());
}

#[test]
fn filters_select_by_model_scenario_and_limit() {
    let Some(server) = server("filters_select_by_model_scenario_and_limit") else {
        return;
    };
    let (_admin, _schema, db) = fresh_schema(&server, "filters");
    let mut history = History::open(&db).unwrap();
    for (id, at, model, scenario) in [
        ("r1", "2026-11-20T00:00:00+00:00", "llama3_1-8b", "Server"),
        ("r2", "2026-11-21T00:00:00+00:00", "llama3_1-8b", "Offline"),
        ("r3", "2026-11-22T00:00:00+00:00", "llama2-70b", "Server"),
        ("r4", "2026-11-23T00:00:00+00:00", "llama3_1-8b", "Server"),
    ] {
        history
            .record(&entry(id, at, model, scenario, 1.0))
            .unwrap();
    }
    let list = |model: Option<&str>, scenario: Option<&str>, limit: Option<usize>| {
        let filter = Filter {
            model: model.map(str::to_owned),
            scenario: scenario.map(str::to_owned),
            limit,
            ..Filter::default()
        };
        let runs = history.list(&filter).unwrap();
        ids(&runs).iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(list(None, None, None), ["r4", "r3", "r2", "r1"]);
    assert_eq!(list(Some("llama3_1-8b"), None, None), ["r4", "r2", "r1"]);
    assert_eq!(list(None, Some("Server"), None), ["r4", "r3", "r1"]);
    assert_eq!(
        list(Some("llama3_1-8b"), Some("Server"), None),
        ["r4", "r1"]
    );
    assert_eq!(list(None, None, Some(2)), ["r4", "r3"]);
    assert_eq!(list(None, None, Some(0)), Vec::<String>::new());
    assert_eq!(list(Some("nope"), None, None), Vec::<String>::new());
    let trend = history
        .trend(
            "samples_per_s",
            &Filter {
                scenario: Some("Server".into()),
                ..Filter::default()
            },
        )
        .unwrap();
    assert_eq!(
        trend.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(),
        ["r1", "r3", "r4"]
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let Some(server) = server("a_newer_schema_is_refused_and_left_alone") else {
        return;
    };
    let (mut admin, schema, db) = fresh_schema(&server, "newer_schema");
    History::open(&db)
        .unwrap()
        .record(&entry(
            "kept",
            "2026-11-21T10:00:00+00:00",
            "m",
            "Server",
            1.0,
        ))
        .unwrap();
    admin
        .batch_execute(&format!("UPDATE {schema}.schema_version SET version = 99"))
        .unwrap();
    let err = History::open(&db).unwrap_err();
    assert!(
        matches!(err, HistoryError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    let password = password_of(&server);
    assert!(!err.to_string().contains(&password), "{err}");
    assert!(!format!("{err:?}").contains(&password), "{err:?}");
    let kept = admin
        .query_one(&format!("SELECT count(*) FROM {schema}.runs"), &[])
        .unwrap();
    assert_eq!(kept.get::<_, i64>(0), 1);
}

fn password_of(server: &str) -> String {
    let config: postgres::Config = server.parse().unwrap();
    String::from_utf8(config.get_password().unwrap().to_vec()).unwrap()
}

/// Display, Debug and every source of an error.
fn all_text(err: &HistoryError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    text
}

#[test]
fn the_password_never_shows_in_errors_or_debug_output() {
    let Some(server) = server("the_password_never_shows_in_errors_or_debug_output") else {
        return;
    };
    let password = password_of(&server);
    assert!(password.len() >= 8, "the peer's server has a real password");
    let (_admin, _schema, db) = fresh_schema(&server, "password");
    let history = History::open(&db).unwrap();
    for shown in [
        format!("{history:?}"),
        format!("{db}"),
        format!("{db:?}"),
        format!("{:?}", history.database()),
    ] {
        assert!(!shown.contains(&password), "{shown}");
        assert!(shown.contains(":***@"), "{shown}");
    }

    let wrong = "Wr0ng-pa55word-for-this-test";
    let cases = [
        // Authentication fails.
        server.replacen(&password, wrong, 1),
        // No such database.
        format!("{}_missing", server.split('?').next().unwrap()).replacen(&password, wrong, 1),
        server.replacen("/harness_test", "/no_such_database", 1),
        // Nothing listens there.
        server
            .replacen("127.0.0.1:", "127.0.0.1:1", 1)
            .replacen(&password, wrong, 1),
        // The client cannot parse it.
        server.replacen("127.0.0.1:", "127.0.0.1:notaport", 1),
    ];
    for url in cases {
        let err = History::open(&Database::parse(&url)).unwrap_err();
        let text = all_text(&err);
        assert!(matches!(err, HistoryError::Postgres { .. }), "{text}");
        assert!(!text.contains(&password), "{text}");
        assert!(!text.contains(wrong), "{text}");
        assert!(text.contains(":***@"), "the error names the server: {text}");
    }
}

/// A small seeded generator, so the differential test is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const RUN_IDS: &[&str] = &[
    "run_a",
    "run-a",
    "Run-B",
    "run a",
    "run.b",
    "ünïcode-run",
    "it's-quoted",
    "20261121-100000-sweep",
    "20261121-100000-Sweep",
    "z",
];
const TIMES: &[&str] = &[
    "2026-11-20T09:00:00+00:00",
    "2026-11-21T10:00:00+00:00",
    "2026-11-21T10:00:00.5+00:00",
    "2026-11-21T10:00:00Z",
    "2026-11-22T08:00:00+01:00",
];
const MODELS: &[&str] = &["llama3_1-8b", "llama2-70b"];
const SCENARIOS: &[&str] = &["Server", "Offline", "Interactive"];
const METRICS: &[&str] = &[
    "samples_per_s",
    "ttft_p99_ms",
    "TPOT_p99_ms",
    "_odd",
    "failed",
];

fn random_entry(rng: &mut Rng) -> RunEntry {
    let values = [
        0.1 + 0.2,
        1e-300,
        1.7976931348623157e308,
        -3.5,
        0.0,
        42.0,
        f64::NAN,
        f64::INFINITY,
        (rng.next() >> 11) as f64 / (1u64 << 53) as f64,
    ];
    let mut metrics = Vec::new();
    for _ in 0..rng.next() % 6 {
        // Names repeat sometimes: the last value wins on both backends.
        metrics.push(((*rng.pick(METRICS)).to_owned(), *rng.pick(&values)));
    }
    RunEntry {
        run_id: (*rng.pick(RUN_IDS)).to_owned(),
        run_dir: format!("runs/{}", rng.next() % 100),
        started_at: (*rng.pick(TIMES)).to_owned(),
        model: (*rng.pick(MODELS)).to_owned(),
        scenario: (*rng.pick(SCENARIOS)).to_owned(),
        mode: (*rng.pick(&["PerformanceOnly", "AccuracyOnly"])).to_owned(),
        backends: (0..rng.next() % 3)
            .map(|i| format!("http://host{i}:8000/v1"))
            .collect(),
        dataset: rng
            .pick(&[None, Some("datasets/cnn \"eval\".json")])
            .map(str::to_owned),
        labels: (0..rng.next() % 3)
            .map(|i| (format!("k{i}"), format!("v'{}", rng.next() % 7)))
            .collect(),
        status: (*rng.pick(&["complete", "interrupted"])).to_owned(),
        valid: *rng.pick(&[None, Some(true), Some(false)]),
        reasons: (0..rng.next() % 2)
            .map(|_| "min duration not met".to_owned())
            .collect(),
        harness_version: (*rng.pick(&["0.1.0", ""])).to_owned(),
        loadgen: (*rng.pick(&["harness-rust 0.1.0", ""])).to_owned(),
        metrics,
    }
}

/// Every question the history answers, asked of one backend.
/// Each (metric, filter)'s ranking sums for every filter [`answers`]
/// tries: the sums rounded to 12 significant digits (SQLite's `sum` adds
/// with compensation, PostgreSQL's does not), the rest exact, with each
/// group's values in order.
fn group_answers(history: &History) -> String {
    let mut out = String::new();
    for filter in filters() {
        for metric in METRICS.iter().chain(&["never_recorded"]) {
            for g in history.group_sums(metric, &filter).unwrap() {
                let values = history
                    .group_values(metric, &filter, &g.model, &g.system)
                    .unwrap();
                // Past ±1e100 PostgreSQL's sums are infinite (it refuses an
                // overflow), SQLite's only past f64's range: both then read
                // the group's values.
                let huge = g.shift.abs() >= 1e100 || values.iter().any(|v| v.abs() >= 1e100);
                let sums = if g.sum.is_finite() && g.sum_sq.is_finite() && !huge {
                    format!("{:.12e} {:.12e}", g.sum, g.sum_sq)
                } else {
                    "overflow".to_owned()
                };
                out.push_str(&format!(
                    "sums {metric} {filter:?}: {} {} {} {:.12e} {sums} {:?}\n",
                    g.model, g.system, g.count, g.shift, values
                ));
            }
        }
    }
    out
}

fn filters() -> Vec<Filter> {
    let mut filters = vec![Filter::default()];
    for model in MODELS.iter().chain(&["missing"]) {
        filters.push(Filter {
            model: Some((*model).to_owned()),
            ..Filter::default()
        });
    }
    for scenario in SCENARIOS {
        filters.push(Filter {
            scenario: Some((*scenario).to_owned()),
            ..Filter::default()
        });
        filters.push(Filter {
            model: Some(MODELS[0].to_owned()),
            scenario: Some((*scenario).to_owned()),
            limit: Some(2),
            ..Filter::default()
        });
    }
    for limit in [0, 1, 3] {
        filters.push(Filter {
            limit: Some(limit),
            ..Filter::default()
        });
    }
    // The service's filters: dataset (with a quote), label (with a quote),
    // backend, a time window, a page.
    filters.push(Filter {
        dataset: Some("datasets/cnn \"eval\".json".into()),
        ..Filter::default()
    });
    for (k, v) in [("k0", "v'3"), ("k1", "v'0"), ("k0", "nope")] {
        filters.push(Filter {
            label: Some((k.into(), v.into())),
            ..Filter::default()
        });
    }
    for backend in ["http://host1:8000/v1", "http://host", "host0"] {
        filters.push(Filter {
            backend: Some(backend.into()),
            ..Filter::default()
        });
    }
    filters.push(Filter {
        since: Some(TIMES[1].into()),
        until: Some(TIMES[TIMES.len() - 1].into()),
        ..Filter::default()
    });
    filters.push(Filter {
        limit: Some(2),
        offset: Some(1),
        ..Filter::default()
    });
    filters
}

fn answers(history: &History) -> String {
    let mut out = String::new();
    for filter in &filters() {
        for metric in METRICS {
            out.push_str(&format!(
                "values {metric} {filter:?}: {:?}\n",
                history.values(metric, filter).unwrap()
            ));
        }
        out.push_str(&format!(
            "list {filter:?}: {:?}\n",
            history.list(filter).unwrap()
        ));
        for metric in METRICS.iter().chain(&["never_recorded"]) {
            out.push_str(&format!(
                "trend {metric} {filter:?}: {:?}\n",
                history.trend(metric, filter).unwrap()
            ));
        }
    }
    for id in RUN_IDS.iter().chain(&["never_recorded"]) {
        out.push_str(&format!(
            "contains {id}: {}\n",
            history.contains(id).unwrap()
        ));
        out.push_str(&format!("get {id}: {:?}\n", history.get(id).unwrap()));
    }
    out.push_str(&format!("names: {:?}\n", history.metric_names().unwrap()));
    out
}

#[test]
fn postgres_answers_exactly_as_sqlite_does() {
    let Some(server) = server("postgres_answers_exactly_as_sqlite_does") else {
        return;
    };
    let (_admin, _schema, db) = fresh_schema(&server, "differential");
    let tmp = tempfile::tempdir().unwrap();
    let mut lite = History::open(&Database::from(tmp.path().join("h.sqlite"))).unwrap();
    let mut pg = History::open(&db).unwrap();
    assert_eq!(pg.schema_version().unwrap(), lite.schema_version().unwrap());
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for step in 0..40 {
        let run = random_entry(&mut rng);
        lite.record(&run).unwrap();
        pg.record(&run).unwrap();
        if step % 8 == 7 {
            let (a, b) = (answers(&lite), answers(&pg));
            // Compare line by line so a failure shows the first difference.
            for (x, y) in a.lines().zip(b.lines()) {
                assert_eq!(x, y, "after {} records", step + 1);
            }
            assert_eq!(a, b);
            assert_eq!(group_answers(&lite), group_answers(&pg));
        }
    }
    // The comparison saw real content: re-recorded ids, ties, both results.
    let all = pg.list(&Filter::default()).unwrap();
    assert!(all.len() >= 8, "{} runs", all.len());
    assert!(all.iter().any(|r| r.metrics.len() >= 3));
    // Values round-trip bit for bit (DOUBLE PRECISION, not REAL).
    let exact = pg.list(&Filter::default()).unwrap();
    let exact_lite = lite.list(&Filter::default()).unwrap();
    let bits = |runs: &[RunEntry]| -> Vec<u64> {
        runs.iter()
            .flat_map(|r| r.metrics.iter().map(|m| m.1.to_bits()))
            .collect()
    };
    assert_eq!(bits(&exact), bits(&exact_lite));
}

#[test]
fn metric_series_answer_exactly_as_in_sqlite() {
    let Some(server) = server("metric_series_answer_exactly_as_in_sqlite") else {
        return;
    };
    let (_admin, _schema, db) = fresh_schema(&server, "series");
    let tmp = tempfile::tempdir().unwrap();
    let mut lite = History::open(&Database::from(tmp.path().join("h.sqlite"))).unwrap();
    let mut pg = History::open(&db).unwrap();
    let run = entry("r1", "2026-11-21T10:00:00+00:00", "m", "Server", 1.0);
    let mut rng = Rng(0x5EED_5E41_E500_0001);
    let points: Vec<history::SeriesPoint> = (0..3000u64)
        .map(|i| history::SeriesPoint {
            t_ns: (i / 3) * 1_000_000_000 + i % 3,
            source: ["server", "gpu", "system"][(i % 3) as usize].into(),
            instance: "http://h:1".into(),
            name: format!("m{}", i % 7),
            value: f64::from_bits(rng.next() >> 2),
        })
        .collect();
    for h in [&mut lite, &mut pg] {
        h.record(&run).unwrap();
        h.record_series("r1", &points).unwrap();
    }
    for name in [None, Some("m3")] {
        let (a, b) = (
            lite.series("r1", name).unwrap(),
            pg.series("r1", name).unwrap(),
        );
        assert!(!a.is_empty());
        // Bit for bit, in the same order.
        assert_eq!(a, b);
    }
    assert_eq!(pg.series("r1", None).unwrap().len(), 3000);
}

#[test]
fn a_listener_hears_of_runs_recorded_by_another_connection() {
    let Some(server) = server("a_listener_hears_of_runs_recorded_by_another_connection") else {
        return;
    };
    let (_admin, _schema, db) = fresh_schema(&server, "listen");
    let mut writer = History::open(&db).unwrap();
    // Listening starts before `open` returns, so the record below is heard
    // even though `wait` is called after it.
    let mut listener = history::ChangeListener::open(&db).unwrap().unwrap();
    writer
        .record(&entry(
            "r1",
            "2026-11-20T09:00:00+00:00",
            "m",
            "Server",
            1.0,
        ))
        .unwrap();
    listener.wait().unwrap();
    // Removing a run is heard too; removing nothing sends nothing.
    assert!(!writer.delete("never").unwrap());
    assert!(writer.delete("r1").unwrap());
    listener.wait().unwrap();
    // SQLite has no listener (its data_version says the same).
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        history::ChangeListener::open(&Database::from(tmp.path().join("h.sqlite")))
            .unwrap()
            .is_none()
    );
}

/// The running sums on PostgreSQL, as `tests/running_sums.rs` checks them
/// on SQLite: against the raw rows through records, replacements and
/// prunes; and filled in for a database from before them (schema 7).
#[test]
fn running_sums_match_the_rows_through_records_replacements_and_prunes() {
    let test = "running_sums_match_the_rows_through_records_replacements_and_prunes";
    let Some(server) = server(test) else {
        return;
    };
    let (mut admin, schema, db) = fresh_schema(&server, "running_sums");
    let mut h = History::open(&db).unwrap();
    common::exercise_running_sums(&mut h, 0x5EED_0016, 60);
    drop(h);
    admin
        .batch_execute(&format!(
            "DROP TABLE {schema}.metric_groups; DROP TABLE {schema}.metric_shifts;
             UPDATE {schema}.schema_version SET version = 7"
        ))
        .unwrap();
    let h = History::open(&db).unwrap();
    common::assert_migrated(&h);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
