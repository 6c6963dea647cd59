//! The running per-group sums a ranking reads, against the raw rows, on
//! SQLite (PostgreSQL: tests/postgres.rs, the same checks).

#![allow(clippy::unwrap_used)]

mod common;

use history::{Database, History};

#[test]
fn running_sums_match_the_rows_through_records_replacements_and_prunes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = History::open(&Database::from(tmp.path().join("h.sqlite"))).unwrap();
    common::exercise_running_sums(&mut h, 0x5EED_0016, 48);
}

/// A database from before the running sums (schema 7: the same tables
/// without them) gets them summed from its rows when opened.
#[test]
fn a_schema_7_database_gets_its_running_sums_filled_in() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("h.sqlite");
    let mut rng = common::Rng::new(7);
    {
        let mut h = History::open(&Database::from(path.as_path())).unwrap();
        for i in 0..150 {
            h.record(&common::random_run(&mut rng, &format!("r{i}")))
                .unwrap();
        }
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE metric_groups; DROP TABLE metric_shifts; PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);
    let h = History::open(&Database::from(path.as_path())).unwrap();
    common::assert_migrated(&h);
}
