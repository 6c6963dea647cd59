//! Results history: one row per run in an embedded SQLite database, so runs
//! can be listed and a metric followed over time without keeping every run
//! directory around.
//!
//! The schema is versioned with SQLite's `user_version`; [`History::open`]
//! applies the migrations a database lacks, in order, each in a
//! transaction, and refuses a database written by a newer schema.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their metrics.
    "CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        run_dir     TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        model       TEXT NOT NULL,
        scenario    TEXT NOT NULL,
        mode        TEXT NOT NULL,
        backends    TEXT NOT NULL,
        dataset     TEXT,
        labels      TEXT NOT NULL,
        status      TEXT NOT NULL,
        valid       INTEGER,
        reasons     TEXT NOT NULL
    );
    CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
        name   TEXT NOT NULL,
        value  REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE INDEX runs_started ON runs(started_at);",
    // 2: the harness version that made the run.
    "ALTER TABLE runs ADD COLUMN harness_version TEXT NOT NULL DEFAULT '';",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Errors of the history database. Each names the database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// SQLite failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The database comes from a newer harness.
    #[error(
        "{path}: schema version {found} is newer than this harness's {SCHEMA_VERSION}; upgrade the harness"
    )]
    NewerSchema {
        /// The database.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The run directory's name (unique).
    pub run_id: String,
    /// Where the run directory was.
    pub run_dir: String,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// LoadGen model key.
    pub model: String,
    /// Scenario.
    pub scenario: String,
    /// Test mode.
    pub mode: String,
    /// Backends (redacted URLs).
    pub backends: Vec<String>,
    /// Dataset description.
    pub dataset: Option<String>,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// `complete`, `interrupted`, ...
    pub status: String,
    /// MLPerf validity, when known.
    pub valid: Option<bool>,
    /// Why invalid.
    pub reasons: Vec<String>,
    /// Harness version.
    pub harness_version: String,
    /// Named figures (`samples_per_s`, `ttft_p99_ms`, ...).
    pub metrics: Vec<(String, f64)>,
}

/// What [`History::list`] selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this model.
    pub model: Option<String>,
    /// Only this scenario.
    pub scenario: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// Reads a JSON column; a value this build cannot read becomes empty
/// rather than hiding the whole run.
fn parse<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// An open history database.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (creating if needed) the database at `path` and migrates it to
    /// [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let err = |source| HistoryError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A missing directory surfaces as SQLite's open error below.
            let _ = std::fs::create_dir_all(parent);
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(err)?;
        let found: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::NewerSchema {
                path: path.to_path_buf(),
                found,
            });
        }
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(migration).map_err(err)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", version + 1))
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(History {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl FnOnce(rusqlite::Error) -> HistoryError + '_ {
        move |source| HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, HistoryError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err())
    }

    /// Records a run (replacing an earlier record of the same run id).
    pub fn record(&mut self, run: &RunEntry) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let json = |v: &dyn erased::Json| v.to_json();
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM runs WHERE run_id = ?1", params![run.run_id])
            .map_err(err)?;
        tx.execute(
            "INSERT INTO runs (run_id, run_dir, started_at, model, scenario, mode, backends, dataset,
                               labels, status, valid, reasons, harness_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                run.run_id,
                run.run_dir,
                run.started_at,
                run.model,
                run.scenario,
                run.mode,
                json(&run.backends),
                run.dataset,
                json(&run.labels),
                run.status,
                run.valid,
                json(&run.reasons),
                run.harness_version,
            ],
        )
        .map_err(err)?;
        for (name, value) in &run.metrics {
            if value.is_finite() {
                tx.execute(
                    "INSERT OR REPLACE INTO metrics (run_id, name, value) VALUES (?1, ?2, ?3)",
                    params![run.run_id, name, value],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Runs, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<RunEntry>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, run_dir, started_at, model, scenario, mode, backends, dataset, labels,
                        status, valid, reasons, harness_version
                 FROM runs
                 WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR scenario = ?2)
                 ORDER BY started_at DESC, run_id DESC
                 LIMIT ?3",
            )
            .map_err(self.err())?;
        let limit = filter.limit.map_or(-1, |n| n as i64);
        let rows = stmt
            .query_map(params![filter.model, filter.scenario, limit], |r| {
                Ok(RunEntry {
                    run_id: r.get(0)?,
                    run_dir: r.get(1)?,
                    started_at: r.get(2)?,
                    model: r.get(3)?,
                    scenario: r.get(4)?,
                    mode: r.get(5)?,
                    backends: parse(&r.get::<_, String>(6)?),
                    dataset: r.get(7)?,
                    labels: parse(&r.get::<_, String>(8)?),
                    status: r.get(9)?,
                    valid: r.get(10)?,
                    reasons: parse(&r.get::<_, String>(11)?),
                    harness_version: r.get(12)?,
                    metrics: Vec::new(),
                })
            })
            .map_err(self.err())?;
        let mut runs = rows.collect::<Result<Vec<_>, _>>().map_err(self.err())?;
        let mut metrics = self
            .conn
            .prepare("SELECT name, value FROM metrics WHERE run_id = ?1 ORDER BY name")
            .map_err(self.err())?;
        for run in &mut runs {
            run.metrics = metrics
                .query_map(params![run.run_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.err())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.err())?;
        }
        Ok(runs)
    }

    /// One metric over time: (started_at, run_id, value), oldest first.
    pub fn trend(
        &self,
        metric: &str,
        filter: &Filter,
    ) -> Result<Vec<(String, String, f64)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT runs.started_at, runs.run_id, metrics.value
                 FROM metrics JOIN runs ON runs.run_id = metrics.run_id
                 WHERE metrics.name = ?1 AND (?2 IS NULL OR runs.model = ?2)
                   AND (?3 IS NULL OR runs.scenario = ?3)
                 ORDER BY runs.started_at, runs.run_id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![metric, filter.model, filter.scenario], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Whether a run id is recorded.
    pub fn contains(&self, run_id: &str) -> Result<bool, HistoryError> {
        self.conn
            .query_row(
                "SELECT 1 FROM runs WHERE run_id = ?1",
                params![run_id],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(self.err())
    }
}

mod erased {
    /// JSON text of a value, for the JSON columns.
    pub trait Json {
        fn to_json(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, at: &str, qps: f64) -> RunEntry {
        RunEntry {
            run_id: id.into(),
            run_dir: format!("runs/{id}"),
            started_at: at.into(),
            model: "llama3_1-8b".into(),
            scenario: "Server".into(),
            mode: "PerformanceOnly".into(),
            backends: vec!["sim://tiny-fast".into()],
            dataset: Some("datasets/x.json".into()),
            labels: vec![("label".into(), "a".into())],
            status: "complete".into(),
            valid: Some(true),
            reasons: vec![],
            harness_version: "0.1.0".into(),
            metrics: vec![("samples_per_s".into(), qps), ("ttft_p99_ms".into(), 12.5)],
        }
    }

    #[test]
    fn runs_round_trip_and_trend_in_time_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.sqlite");
        let mut h = History::open(&path).unwrap();
        assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
        h.record(&entry("b", "2026-11-22T10:00:00+00:00", 20.0))
            .unwrap();
        h.record(&entry("a", "2026-11-21T10:00:00+00:00", 10.0))
            .unwrap();
        let runs = h.list(&Filter::default()).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(runs[1], entry("a", "2026-11-21T10:00:00+00:00", 10.0));
        let trend = h.trend("samples_per_s", &Filter::default()).unwrap();
        assert_eq!(trend.iter().map(|t| t.2).collect::<Vec<_>>(), [10.0, 20.0]);
        // Re-recording a run replaces it.
        h.record(&entry("a", "2026-11-21T10:00:00+00:00", 11.0))
            .unwrap();
        assert_eq!(
            h.trend("samples_per_s", &Filter::default()).unwrap()[0].2,
            11.0
        );
        assert_eq!(
            h.list(&Filter {
                limit: Some(1),
                ..Filter::default()
            })
            .unwrap()
            .len(),
            1
        );
    }

    #[test]
    fn an_old_database_is_migrated_and_a_newer_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.sqlite");
        {
            // A version-1 database, as the first release wrote it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            conn.execute(
                "INSERT INTO runs VALUES ('old', 'runs/old', '2026-01-01', 'm', 'Server', 'PerformanceOnly', '[]', NULL, '[]', 'complete', 1, '[]')",
                [],
            )
            .unwrap();
        }
        let h = History::open(&path).unwrap();
        assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
        let runs = h.list(&Filter::default()).unwrap();
        assert_eq!(runs[0].run_id, "old");
        assert_eq!(runs[0].harness_version, "");
        drop(h);
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = History::open(&path).unwrap_err();
        assert!(
            matches!(err, HistoryError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }
}
