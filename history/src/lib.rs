//! Results history: one row per run, so runs can be listed and a metric
//! followed over time without keeping every run directory around.
//!
//! The history lives in an embedded SQLite file by default, or on a
//! PostgreSQL server (a `postgres://` URL) that a team shares; both hold the
//! same schema and answer the same API. The schema is versioned (SQLite's
//! `user_version`; PostgreSQL's `schema_version` table): [`History::open`]
//! applies the migrations a database lacks, in order, in transactions, and
//! refuses a database written by a newer schema.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod database;
mod pg;
mod sqlite;

pub use database::{Database, PostgresUrl};

/// One schema migration, in each backend's SQL dialect. Both describe the
/// same tables; PostgreSQL's types are chosen so values round-trip exactly
/// as in SQLite (`DOUBLE PRECISION`, not the 4-byte `REAL`; byte-order
/// `"C"` collation for the columns runs are ordered by).
struct Migration {
    sqlite: &'static str,
    postgres: &'static str,
}

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    // 1: runs and their metrics.
    Migration {
        sqlite: "CREATE TABLE runs (
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
        postgres: r#"CREATE TABLE runs (
            run_id      TEXT COLLATE "C" PRIMARY KEY,
            run_dir     TEXT NOT NULL,
            started_at  TEXT COLLATE "C" NOT NULL,
            model       TEXT NOT NULL,
            scenario    TEXT NOT NULL,
            mode        TEXT NOT NULL,
            backends    TEXT NOT NULL,
            dataset     TEXT,
            labels      TEXT NOT NULL,
            status      TEXT NOT NULL,
            valid       BOOLEAN,
            reasons     TEXT NOT NULL
        );
        CREATE TABLE metrics (
            run_id TEXT COLLATE "C" NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            name   TEXT COLLATE "C" NOT NULL,
            value  DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (run_id, name)
        );
        CREATE INDEX runs_started ON runs(started_at);"#,
    },
    // 2: the harness version that made the run.
    Migration {
        sqlite: "ALTER TABLE runs ADD COLUMN harness_version TEXT NOT NULL DEFAULT '';",
        postgres: "ALTER TABLE runs ADD COLUMN harness_version TEXT NOT NULL DEFAULT '';",
    },
    // 3: the run's metric time series (metrics.jsonl's normalized readings).
    Migration {
        sqlite: "CREATE TABLE metric_series (
            run_id   TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            t_ns     INTEGER NOT NULL,
            source   TEXT NOT NULL,
            instance TEXT NOT NULL,
            name     TEXT NOT NULL,
            value    REAL NOT NULL
        );
        CREATE INDEX metric_series_run ON metric_series(run_id, name, t_ns);",
        postgres: r#"CREATE TABLE metric_series (
            run_id   TEXT COLLATE "C" NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            t_ns     BIGINT NOT NULL,
            source   TEXT COLLATE "C" NOT NULL,
            instance TEXT COLLATE "C" NOT NULL,
            name     TEXT COLLATE "C" NOT NULL,
            value    DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX metric_series_run ON metric_series(run_id, name, t_ns);"#,
    },
    // 4: the LoadGen that produced the run (run.json's `loadgen`).
    Migration {
        sqlite: "ALTER TABLE runs ADD COLUMN loadgen TEXT NOT NULL DEFAULT '';",
        postgres: "ALTER TABLE runs ADD COLUMN loadgen TEXT NOT NULL DEFAULT '';",
    },
    // 5: one metric's values without scanning every run's metrics (what
    // rankings and trends read); covering, so the table is not visited.
    Migration {
        sqlite: "CREATE INDEX metrics_name ON metrics(name, run_id, value);",
        postgres: "CREATE INDEX metrics_name ON metrics(name, run_id, value);",
    },
    // 6: what rankings group and filter by, as columns: the run's system
    // (`system_of`) and start instant; its labels and backends one per row;
    // and on each metric row the run's model, system, scenario, dataset and
    // start, so that one index range holds everything a ranking of one
    // metric reads (no join, no JSON parsed). Existing rows are filled in
    // by `sqlite::backfill`/`pg::backfill` in the same transaction.
    Migration {
        sqlite: "ALTER TABLE runs ADD COLUMN system TEXT NOT NULL DEFAULT '';
        ALTER TABLE runs ADD COLUMN started_instant REAL;
        CREATE TABLE run_labels (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            key    TEXT NOT NULL,
            value  TEXT NOT NULL
        );
        CREATE INDEX run_labels_run ON run_labels(run_id);
        CREATE INDEX run_labels_pair ON run_labels(key, value, run_id);
        CREATE TABLE run_backends (
            run_id  TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            backend TEXT NOT NULL
        );
        CREATE INDEX run_backends_run ON run_backends(run_id);
        CREATE INDEX run_backends_url ON run_backends(backend, run_id);
        ALTER TABLE metrics ADD COLUMN model TEXT NOT NULL DEFAULT '';
        ALTER TABLE metrics ADD COLUMN system TEXT NOT NULL DEFAULT '';
        ALTER TABLE metrics ADD COLUMN scenario TEXT NOT NULL DEFAULT '';
        ALTER TABLE metrics ADD COLUMN dataset TEXT;
        ALTER TABLE metrics ADD COLUMN started_instant REAL;",
        postgres: r#"CREATE FUNCTION harness_started_at(t TEXT) RETURNS TIMESTAMPTZ
            LANGUAGE plpgsql STABLE AS $f$
            BEGIN RETURN t::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END
            $f$;
        ALTER TABLE runs ADD COLUMN system TEXT COLLATE "C" NOT NULL DEFAULT '';
        ALTER TABLE runs ADD COLUMN started_instant TIMESTAMPTZ;
        CREATE TABLE run_labels (
            run_id TEXT COLLATE "C" NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            key    TEXT NOT NULL,
            value  TEXT NOT NULL
        );
        CREATE INDEX run_labels_run ON run_labels(run_id);
        CREATE INDEX run_labels_pair ON run_labels(key, value, run_id);
        CREATE TABLE run_backends (
            run_id  TEXT COLLATE "C" NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            backend TEXT NOT NULL
        );
        CREATE INDEX run_backends_run ON run_backends(run_id);
        CREATE INDEX run_backends_url ON run_backends(backend, run_id);
        ALTER TABLE metrics ADD COLUMN model TEXT COLLATE "C" NOT NULL DEFAULT '';
        ALTER TABLE metrics ADD COLUMN system TEXT COLLATE "C" NOT NULL DEFAULT '';
        ALTER TABLE metrics ADD COLUMN scenario TEXT NOT NULL DEFAULT '';
        ALTER TABLE metrics ADD COLUMN dataset TEXT;
        ALTER TABLE metrics ADD COLUMN started_instant TIMESTAMPTZ;"#,
    },
    // 7: the ranking index, built after migration 6's backfill: one
    // metric's rows in (model, system) order with the filters' columns and
    // the value, so a ranking's GROUP BY streams one range of it.
    Migration {
        sqlite: "CREATE INDEX metrics_rank
            ON metrics(name, model, system, scenario, dataset, started_instant, value, run_id);",
        postgres: "CREATE INDEX metrics_rank
            ON metrics(name, model, system, scenario, dataset, started_instant, value, run_id);",
    },
    // 8: running sums per metric and (model, system, scenario, dataset), so
    // a ranking without a time, label or backend filter reads a few rows
    // instead of every run's value. `record` and `delete` keep them in the
    // same transaction as the metric rows (`GROUP_DELTA_SQL`); every group
    // of a metric is summed about that metric's one `shift` (a value of it,
    // fixed when first recorded), so groups add up by plain sums. Existing
    // rows are summed by `sqlite::backfill_groups`/`pg::backfill_groups`,
    // one metric per statement.
    Migration {
        sqlite: "CREATE TABLE metric_shifts (
            name  TEXT PRIMARY KEY,
            shift REAL NOT NULL
        );
        CREATE TABLE metric_groups (
            name        TEXT NOT NULL,
            model       TEXT NOT NULL,
            system      TEXT NOT NULL,
            scenario    TEXT NOT NULL,
            has_dataset INTEGER NOT NULL,
            dataset     TEXT NOT NULL,
            runs        INTEGER NOT NULL,
            sum         REAL,
            sum_sq      REAL,
            PRIMARY KEY (name, model, system, scenario, has_dataset, dataset)
        );",
        postgres: r#"CREATE TABLE metric_shifts (
            name  TEXT COLLATE "C" PRIMARY KEY,
            shift DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE metric_groups (
            name        TEXT COLLATE "C" NOT NULL,
            model       TEXT COLLATE "C" NOT NULL,
            system      TEXT COLLATE "C" NOT NULL,
            scenario    TEXT NOT NULL,
            has_dataset BOOLEAN NOT NULL,
            dataset     TEXT NOT NULL,
            runs        BIGINT NOT NULL,
            sum         DOUBLE PRECISION NOT NULL,
            sum_sq      DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (name, model, system, scenario, has_dataset, dataset)
        );"#,
    },
];

/// The migration that added the running sums ([`MIGRATIONS`] 8): existing
/// metric rows are summed into them.
const GROUP_SUMS_VERSION: u32 = 8;

/// A value's difference from its metric's shift, and that difference
/// squared, as the running sums add them: infinite where a value or the
/// shift is past ±1e100 (PostgreSQL refuses an overflow; SQLite would turn
/// one infinite by itself), so that group's sums stop being finite and a
/// ranking reads its values instead; a square below 1e-300 is 0 (PostgreSQL
/// refuses an underflow too), the same in both dialects. `inf` is the
/// dialect's infinity.
fn shifted(inf: &str) -> (String, String) {
    let guard = "abs(m.value) < 1e100 AND abs(s.shift) < 1e100";
    let d = "(m.value - s.shift)";
    (
        format!("(CASE WHEN {guard} THEN {d} ELSE {inf} END)"),
        format!(
            "(CASE WHEN NOT ({guard}) THEN {inf} WHEN abs({d}) < 1e-150 THEN 0.0 ELSE {d} * {d} END)"
        ),
    )
}

/// Adds (`sign` `+`) or takes away (`-`) one run's metric rows (run id in
/// placeholder `p`) to or from the running sums: one statement for every
/// metric of the run, the same in both dialects but for `inf` and `p`.
/// The run's rows must be in `metrics` and their shifts in
/// `metric_shifts`.
fn group_delta_sql(sign: char, p: &str, inf: &str) -> String {
    let (d, d2) = shifted(inf);
    format!(
        "INSERT INTO metric_groups
           (name, model, system, scenario, has_dataset, dataset, runs, sum, sum_sq)
         SELECT m.name, m.model, m.system, m.scenario, m.dataset IS NOT NULL,
                coalesce(m.dataset, ''), {sign}1, {sign}{d}, {sign}{d2}
         FROM metrics m JOIN metric_shifts s ON s.name = m.name
         WHERE m.run_id = {p}
         ON CONFLICT (name, model, system, scenario, has_dataset, dataset) DO UPDATE SET
           runs = metric_groups.runs + excluded.runs,
           sum = metric_groups.sum + excluded.sum,
           sum_sq = metric_groups.sum_sq + excluded.sum_sq"
    )
}

/// Drops the groups a run's removal emptied (run id in placeholder `p`):
/// a group recorded again starts from exact zeros, not from the rounding
/// its removals left.
fn empty_groups_sql(p: &str) -> String {
    // The run's own groups, by their key: a seek each, not a pass over
    // every group of its metrics.
    format!(
        "DELETE FROM metric_groups
         WHERE runs <= 0
           AND (name, model, system, scenario, has_dataset, dataset) IN
               (SELECT name, model, system, scenario, dataset IS NOT NULL, coalesce(dataset, '')
                FROM metrics WHERE run_id = {p})"
    )
}

/// Fixes the shift of every metric of a run (placeholder `p`) that has
/// none yet.
fn new_shifts_sql(p: &str) -> String {
    format!(
        "INSERT INTO metric_shifts (name, shift)
         SELECT name, value FROM metrics WHERE run_id = {p}
         ON CONFLICT (name) DO NOTHING"
    )
}

/// Sums one metric's (placeholder `p`) existing rows into the running
/// sums, its shift the value of its first run id (as the scan summed
/// about before the running sums).
fn backfill_groups_sql(p: &str, inf: &str) -> [String; 2] {
    let (d, d2) = shifted(inf);
    [
        format!(
            "INSERT INTO metric_shifts (name, shift)
             SELECT name, value FROM metrics WHERE name = {p} ORDER BY run_id LIMIT 1"
        ),
        format!(
            "INSERT INTO metric_groups
               (name, model, system, scenario, has_dataset, dataset, runs, sum, sum_sq)
             SELECT m.name, m.model, m.system, m.scenario, m.dataset IS NOT NULL,
                    coalesce(m.dataset, ''), count(*), sum({d}), sum({d2})
             FROM metrics m JOIN metric_shifts s ON s.name = m.name
             WHERE m.name = {p}
             GROUP BY m.name, m.model, m.system, m.scenario, m.dataset"
        ),
    ]
}

/// The names of the metrics recorded, sorted, from the running sums: a
/// metric has a group there exactly while a run has a value of it (`record`
/// and `delete` keep both in one transaction, a migrated database has its
/// groups summed when opened), so this reads the few group rows instead of
/// every run's value. Both dialects sort by bytes (PostgreSQL's columns are
/// `COLLATE "C"`).
const METRIC_NAMES_SQL: &str =
    "SELECT DISTINCT name FROM metric_groups WHERE runs > 0 ORDER BY name";

/// Whether the running sums answer `filter`: they are kept per model,
/// scenario and dataset; time, label and backend filters read the rows.
fn sums_answer(filter: &Filter) -> bool {
    filter.since.is_none()
        && filter.until.is_none()
        && filter.label.is_none()
        && filter.backend.is_none()
}

/// One metric's groups from the running sums (`?1`/`$1` the name, the
/// filter's model, scenario and dataset from placeholder 2 on), in (model,
/// system) order, and the values to bind after the name. A sum that is
/// NULL (SQLite's NaN, from an infinity taken away) in any row makes the
/// group's sum NULL, read as NaN.
fn stored_sums_sql(filter: &Filter, d: &Dialect) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for (column, value) in [
        ("model", &filter.model),
        ("scenario", &filter.scenario),
        ("dataset", &filter.dataset),
    ] {
        if let Some(value) = value {
            values.push(value.clone());
            let p = (d.placeholder)(values.len() + 1);
            if column == "dataset" {
                sql.push_str(&format!(" AND g.has_dataset AND g.dataset = {p}"));
            } else {
                sql.push_str(&format!(" AND g.{column} = {p}"));
            }
        }
    }
    let name = (d.placeholder)(1);
    let nullable = |c: &str| format!("CASE WHEN count(g.{c}) = count(*) THEN sum(g.{c}) END");
    (
        format!(
            "SELECT g.model, g.system, CAST(sum(g.runs) AS BIGINT), s.shift, {}, {}
             FROM metric_groups g JOIN metric_shifts s ON s.name = g.name
             WHERE g.name = {name}{sql}
             GROUP BY g.model, g.system, s.shift
             HAVING sum(g.runs) > 0
             ORDER BY g.model, g.system",
            nullable("sum"),
            nullable("sum_sq")
        ),
        values,
    )
}

/// The migration that added the ranking columns: databases older than it
/// get those columns filled in from their JSON columns (in Rust, with
/// [`system_of`], the one definition of a run's system).
const RANK_COLUMNS_VERSION: u32 = 6;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Errors of the history database. Each names the database (a PostgreSQL
/// URL without its password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// SQLite failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// PostgreSQL failed (connecting, or a statement).
    #[error("{db}: {source}")]
    Postgres {
        /// The server's URL, redacted.
        db: String,
        /// The cause.
        source: postgres::Error,
    },
    /// A PostgreSQL server did not answer in time: it accepted the
    /// connection and never completed it, or never answered a statement
    /// (every operation is bounded client-side).
    #[error(
        "{db}: no answer from the server within {seconds} s (is it a PostgreSQL server, and is \
         it up?)"
    )]
    PostgresNoAnswer {
        /// The server's URL, redacted.
        db: String,
        /// The limit that passed.
        seconds: u64,
    },
    /// A [`ChangeListener`]'s connection closed.
    #[error("{db}: the connection listening for recorded runs closed")]
    ListenerClosed {
        /// The server's URL, redacted.
        db: String,
    },
    /// The database comes from a newer harness.
    #[error(
        "{db}: schema version {found} is newer than this harness's {SCHEMA_VERSION}; upgrade the harness"
    )]
    NewerSchema {
        /// The database (a URL redacted).
        db: String,
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
    /// The LoadGen that produced the run, as run.json's `loadgen` prints
    /// (`harness-rust 0.1.0`, `mlcommons-loadgen 6.0.17 @ <hash>`); empty
    /// for runs recorded before the history kept it.
    #[serde(default)]
    pub loadgen: String,
    /// Named figures (`samples_per_s`, `ttft_p99_ms`, ...).
    pub metrics: Vec<(String, f64)>,
}

/// What [`History::list`], [`History::trend`] and [`History::values`]
/// select. Every field is a bound parameter of the query, never SQL text.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this model.
    pub model: Option<String>,
    /// Only this scenario.
    pub scenario: Option<String>,
    /// Only runs of this dataset (as recorded).
    pub dataset: Option<String>,
    /// Only runs carrying this label (key, value).
    pub label: Option<(String, String)>,
    /// Only runs that used this backend (one of their redacted URLs).
    pub backend: Option<String>,
    /// Only runs started at or after this RFC 3339 time, compared as
    /// instants (any offset on either side).
    pub since: Option<String>,
    /// Only runs started before this RFC 3339 time (instants, as `since`).
    pub until: Option<String>,
    /// At most this many, newest first ([`History::list`] only).
    pub limit: Option<usize>,
    /// Skip this many first ([`History::list`] only).
    pub offset: Option<usize>,
}

/// How one backend writes [`conditions`]: its placeholders and its
/// start-instant column.
struct Dialect {
    /// The `n`th (1-based) placeholder.
    placeholder: fn(usize) -> String,
    /// The start-instant column of `table` compared (`op`) with the
    /// instant a placeholder's RFC 3339 text is.
    time: fn(table: &str, op: &str, placeholder: &str) -> String,
}

/// The filter's conditions on `table` (`runs` or `metrics`: both carry the
/// run's id, model, scenario, dataset and start instant) joined by `AND`,
/// `TRUE` when there is none; placeholders numbered from `first`; and the
/// values to bind, in order. The SQL is built from constant pieces only:
/// every filter value is bound, never spliced. Leaving out absent filters
/// (rather than `? IS NULL OR ...`) lets the planner seek the index on the
/// ones present.
fn conditions(filter: &Filter, table: &str, first: usize, d: &Dialect) -> (String, Vec<String>) {
    let mut sql: Vec<String> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let next = |values: &mut Vec<String>, value: &str| {
        values.push(value.to_owned());
        (d.placeholder)(first + values.len() - 1)
    };
    for (column, value) in [
        ("model", &filter.model),
        ("scenario", &filter.scenario),
        ("dataset", &filter.dataset),
    ] {
        if let Some(value) = value {
            let p = next(&mut values, value);
            sql.push(format!("{table}.{column} = {p}"));
        }
    }
    if let Some((key, value)) = &filter.label {
        let (k, v) = (next(&mut values, key), next(&mut values, value));
        sql.push(format!(
            "{table}.run_id IN (SELECT run_id FROM run_labels WHERE key = {k} AND value = {v})"
        ));
    }
    if let Some(backend) = &filter.backend {
        let p = next(&mut values, backend);
        sql.push(format!(
            "{table}.run_id IN (SELECT run_id FROM run_backends WHERE backend = {p})"
        ));
    }
    if let Some(since) = &filter.since {
        let p = next(&mut values, since);
        sql.push((d.time)(table, ">=", &p));
    }
    if let Some(until) = &filter.until {
        let p = next(&mut values, until);
        sql.push((d.time)(table, "<", &p));
    }
    if sql.is_empty() {
        ("TRUE".to_owned(), values)
    } else {
        (sql.join(" AND "), values)
    }
}

/// The system a run measured, as rankings, trends and the history's
/// `system` column group runs: its `system` label, else its `label` (what
/// `harness run --label` sets), else its backends joined by commas (`-`
/// without any). Stored when a run is recorded, so changing this needs a
/// migration that recomputes the column.
pub fn system_of(labels: &[(String, String)], backends: &[String]) -> String {
    let label = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    label("system")
        .or_else(|| label("label"))
        .unwrap_or_else(|| {
            if backends.is_empty() {
                "-".to_owned()
            } else {
                backends.join(",")
            }
        })
}

/// One (model, system) group's sums of one metric, as
/// [`History::group_sums`] aggregates them in the database: enough for its
/// mean and variance without reading its values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSums {
    /// The model.
    pub model: String,
    /// The system ([`system_of`]).
    pub system: String,
    /// Runs in the group (with a value of the metric).
    pub count: u64,
    /// The constant subtracted from every value before summing (one value
    /// of the metric), so the squares do not cancel digits.
    pub shift: f64,
    /// Sum of `value − shift`.
    pub sum: f64,
    /// Sum of `(value − shift)²`.
    pub sum_sq: f64,
}

/// One run's value of one metric, with what rankings group runs by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricValue {
    /// The run.
    pub run_id: String,
    /// Its start time, RFC 3339.
    pub started_at: String,
    /// Its model.
    pub model: String,
    /// Its backends.
    pub backends: Vec<String>,
    /// Its labels.
    pub labels: Vec<(String, String)>,
    /// The metric's value.
    pub value: f64,
}

/// One reading of a run's metric time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Run clock: ns since the run started.
    pub t_ns: u64,
    /// `server`, `gpu`, `system`, `process`.
    pub source: String,
    /// Which one: backend URL, `gpu0`, host name, `harness`.
    pub instance: String,
    /// Metric name (`kv_cache_usage_frac`, `gpu_utilization_pct`, ...).
    pub name: String,
    /// The reading.
    pub value: f64,
}

/// One point of a metric's trend: (started_at, run_id, value).
pub type TrendPoint = (String, String, f64);

/// Reads a JSON column; a value this build cannot read becomes empty
/// rather than hiding the whole run.
fn parse<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

/// JSON text of a value, for the JSON columns.
fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The open connection.
enum Backend {
    Sqlite(rusqlite::Connection),
    // The sync client needs `&mut` for every query; the history's readers
    // take `&self`, as they do for SQLite. Every operation is bounded
    // client-side (`pg::Conn`).
    Postgres(RefCell<pg::Conn>),
}

fn pg_error(db: &Database, e: pg::PgError) -> HistoryError {
    match e {
        pg::PgError::Db(source) => HistoryError::Postgres {
            db: db.to_string(),
            source,
        },
        pg::PgError::NoAnswer(limit) => HistoryError::PostgresNoAnswer {
            db: db.to_string(),
            seconds: limit.as_secs(),
        },
    }
}

fn sqlite_error(db: &Database, source: rusqlite::Error) -> HistoryError {
    HistoryError::Sqlite {
        path: match db {
            Database::Sqlite(path) => path.clone(),
            // Unreachable: an SQLite connection comes from a path.
            other => PathBuf::from(other.to_string()),
        },
        source,
    }
}

/// An open history database.
pub struct History {
    backend: Backend,
    db: Database,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History").field("db", &self.db).finish()
    }
}

impl History {
    /// Opens (creating if needed) the history at `db` and migrates it to
    /// [`SCHEMA_VERSION`]. An SQLite file's directory is created when
    /// missing; a PostgreSQL database must exist (its tables are created in
    /// the connection's current schema).
    pub fn open(db: &Database) -> Result<History, HistoryError> {
        let backend = match db {
            Database::Sqlite(path) => Backend::Sqlite(sqlite::open(path)?),
            Database::Postgres(url) => Backend::Postgres(RefCell::new(pg::open(url)?)),
        };
        Ok(History {
            backend,
            db: db.clone(),
        })
    }

    /// Where this history is.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs a reader on whichever backend is open: `sqlite` on the SQLite
    /// connection, or `pg` on the PostgreSQL one (owning what it needs: it
    /// runs on the connection's thread); either's error names the database.
    fn on_backend<R: Send + 'static>(
        &self,
        sqlite: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
        pg: impl FnOnce(&mut postgres::Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, HistoryError> {
        match &self.backend {
            Backend::Sqlite(conn) => sqlite(conn).map_err(|e| sqlite_error(&self.db, e)),
            Backend::Postgres(client) => client
                .borrow_mut()
                .run(pg)
                .map_err(|e| pg_error(&self.db, e)),
        }
    }

    /// [`History::on_backend`] for a writer (SQLite's transactions need
    /// the connection mutably).
    fn on_backend_mut<R: Send + 'static>(
        &mut self,
        sqlite: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R>,
        pg: impl FnOnce(&mut postgres::Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, HistoryError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => sqlite(conn).map_err(|e| sqlite_error(&self.db, e)),
            Backend::Postgres(client) => {
                client.get_mut().run(pg).map_err(|e| pg_error(&self.db, e))
            }
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, HistoryError> {
        self.on_backend(sqlite::schema_version, pg::schema_version)
    }

    /// Records a run (replacing an earlier record of the same run id).
    /// Metrics that are not finite are left out.
    pub fn record(&mut self, run: &RunEntry) -> Result<(), HistoryError> {
        let owned = run.clone();
        self.on_backend_mut(
            |conn| sqlite::record(conn, run),
            move |c| pg::record(c, &owned),
        )
    }

    /// Runs, newest first (by start time, then run id).
    pub fn list(&self, filter: &Filter) -> Result<Vec<RunEntry>, HistoryError> {
        let owned = filter.clone();
        self.on_backend(
            |conn| sqlite::list(conn, filter),
            move |c| pg::list(c, &owned),
        )
    }

    /// One metric over time, oldest first.
    pub fn trend(&self, metric: &str, filter: &Filter) -> Result<Vec<TrendPoint>, HistoryError> {
        let (m, f) = (metric.to_owned(), filter.clone());
        self.on_backend(
            |conn| sqlite::trend(conn, metric, filter),
            move |c| pg::trend(c, &m, &f),
        )
    }

    /// Stores a recorded run's metric time series, replacing any it had.
    /// Readings that are not finite are left out.
    pub fn record_series(
        &mut self,
        run_id: &str,
        points: &[SeriesPoint],
    ) -> Result<(), HistoryError> {
        let (id, owned) = (run_id.to_owned(), points.to_vec());
        self.on_backend_mut(
            |conn| sqlite::record_series(conn, run_id, points),
            move |c| pg::record_series(c, &id, &owned),
        )
    }

    /// A run's metric time series (one metric, or all), in time order.
    pub fn series(
        &self,
        run_id: &str,
        name: Option<&str>,
    ) -> Result<Vec<SeriesPoint>, HistoryError> {
        let (id, n) = (run_id.to_owned(), name.map(str::to_owned));
        self.on_backend(
            |conn| sqlite::series(conn, run_id, name),
            move |c| pg::series(c, &id, n.as_deref()),
        )
    }

    /// Removes a run and its metrics; whether it was recorded.
    pub fn delete(&mut self, run_id: &str) -> Result<bool, HistoryError> {
        let id = run_id.to_owned();
        self.on_backend_mut(
            |conn| sqlite::delete(conn, run_id),
            move |c| pg::delete(c, &id),
        )
    }

    /// One run with its metrics, if recorded.
    pub fn get(&self, run_id: &str) -> Result<Option<RunEntry>, HistoryError> {
        let id = run_id.to_owned();
        self.on_backend(|conn| sqlite::get(conn, run_id), move |c| pg::get(c, &id))
    }

    /// Every selected run's value of `metric` (runs without it left out),
    /// newest first; `limit` and `offset` do not apply.
    pub fn values(&self, metric: &str, filter: &Filter) -> Result<Vec<MetricValue>, HistoryError> {
        let (m, f) = (metric.to_owned(), filter.clone());
        self.on_backend(
            |conn| sqlite::values(conn, metric, filter),
            move |c| pg::values(c, &m, &f),
        )
    }

    /// Each (model, system) group's run count and sums of `metric` over
    /// the runs `filter` selects (`limit` and `offset` do not apply), in
    /// (model, system) order. Without a time, label or backend filter, read
    /// from the running sums `record` and `delete` keep (a few rows per
    /// group, whatever the number of runs); with one, aggregated by the
    /// database over one range of the ranking index. No run's JSON is read.
    pub fn group_sums(
        &self,
        metric: &str,
        filter: &Filter,
    ) -> Result<Vec<GroupSums>, HistoryError> {
        let (m, f) = (metric.to_owned(), filter.clone());
        self.on_backend(
            |conn| sqlite::group_sums(conn, metric, filter),
            move |c| pg::group_sums(c, &m, &f),
        )
    }

    /// One (model, system) group's values of `metric` among the runs
    /// `filter` selects, in [`History::values`]' order (newest first).
    pub fn group_values(
        &self,
        metric: &str,
        filter: &Filter,
        model: &str,
        system: &str,
    ) -> Result<Vec<f64>, HistoryError> {
        let (m, f) = (metric.to_owned(), filter.clone());
        let (mo, sy) = (model.to_owned(), system.to_owned());
        self.on_backend(
            |conn| sqlite::group_values(conn, metric, filter, model, system),
            move |c| pg::group_values(c, &m, &f, &mo, &sy),
        )
    }

    /// Whether any run has a value of `metric` (one index seek).
    pub fn has_metric(&self, metric: &str) -> Result<bool, HistoryError> {
        let m = metric.to_owned();
        self.on_backend(
            |conn| sqlite::has_metric(conn, metric),
            move |c| pg::has_metric(c, &m),
        )
    }

    /// The names of the metrics recorded, sorted.
    pub fn metric_names(&self) -> Result<Vec<String>, HistoryError> {
        self.on_backend(sqlite::metric_names, pg::metric_names)
    }

    /// For SQLite, a number that changes whenever another connection (say
    /// a `harness run` recording into the same file) commits a change, so a
    /// reader can tell its cached answers are stale; `None` for PostgreSQL,
    /// where [`ChangeListener`] says so instead.
    pub fn data_version(&self) -> Result<Option<i64>, HistoryError> {
        match &self.backend {
            Backend::Sqlite(conn) => sqlite::data_version(conn)
                .map(Some)
                .map_err(|e| sqlite_error(&self.db, e)),
            Backend::Postgres(_) => Ok(None),
        }
    }

    /// A probe of [`History::data_version`] on its own connection, so a
    /// caller can check for changes without waiting for this history (a
    /// long query holding it). Unlike the history's own connection, the
    /// probe also sees this history's commits as changes.
    pub fn version_probe(&self) -> Result<VersionProbe, HistoryError> {
        let conn = match (&self.backend, &self.db) {
            (Backend::Sqlite(_), Database::Sqlite(path)) => {
                Some(sqlite::open_probe(path).map_err(|e| sqlite_error(&self.db, e))?)
            }
            _ => None,
        };
        Ok(VersionProbe {
            conn,
            db: self.db.clone(),
        })
    }

    /// Whether a run id is recorded.
    pub fn contains(&self, run_id: &str) -> Result<bool, HistoryError> {
        let id = run_id.to_owned();
        self.on_backend(
            |conn| sqlite::contains(conn, run_id),
            move |c| pg::contains(c, &id),
        )
    }
}

/// SQLite's `data_version` read on a connection of its own (see
/// [`History::version_probe`]); holds no lock between calls.
pub struct VersionProbe {
    /// `None` for PostgreSQL, where [`ChangeListener`] tells of changes.
    conn: Option<rusqlite::Connection>,
    db: Database,
}

impl fmt::Debug for VersionProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionProbe")
            .field("db", &self.db)
            .finish()
    }
}

impl VersionProbe {
    /// A number that changes whenever any connection commits a change to
    /// the SQLite file; `None` for PostgreSQL.
    pub fn data_version(&self) -> Result<Option<i64>, HistoryError> {
        match &self.conn {
            Some(conn) => sqlite::data_version(conn)
                .map(Some)
                .map_err(|e| sqlite_error(&self.db, e)),
            None => Ok(None),
        }
    }
}

/// Waits for runs recorded into a PostgreSQL history by any client:
/// [`History::record`] sends a notification (`LISTEN`/`NOTIFY`) on commit,
/// so several readers of one database learn of new runs without polling.
pub struct ChangeListener {
    client: postgres::Client,
    db: String,
}

impl fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeListener")
            .field("db", &self.db)
            .finish()
    }
}

impl ChangeListener {
    /// Connects and starts listening; `None` for an SQLite history (see
    /// [`History::data_version`]).
    pub fn open(db: &Database) -> Result<Option<ChangeListener>, HistoryError> {
        let Database::Postgres(url) = db else {
            return Ok(None);
        };
        let client = pg::listen(url)?;
        Ok(Some(ChangeListener {
            client,
            db: url.redacted(),
        }))
    }

    /// Blocks until a run is recorded in this listener's schema. An error
    /// (the connection lost) means changes may have been missed: open a new
    /// listener and treat everything as changed.
    pub fn wait(&mut self) -> Result<(), HistoryError> {
        match pg::wait(&mut self.client) {
            Ok(true) => Ok(()),
            Ok(false) => Err(HistoryError::ListenerClosed {
                db: self.db.clone(),
            }),
            Err(source) => Err(HistoryError::Postgres {
                db: self.db.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

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
            loadgen: "harness-rust 0.1.0".into(),
            metrics: vec![("samples_per_s".into(), qps), ("ttft_p99_ms".into(), 12.5)],
        }
    }

    #[test]
    fn runs_round_trip_and_trend_in_time_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.sqlite");
        let mut h = History::open(&Database::from(path.as_path())).unwrap();
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
    fn a_runs_metric_series_round_trips_and_follows_the_run() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.sqlite");
        let mut h = History::open(&Database::from(path.as_path())).unwrap();
        h.record(&entry("a", "2026-11-21T10:00:00+00:00", 10.0))
            .unwrap();
        let point = |t_ns, name: &str, value| SeriesPoint {
            t_ns,
            source: "server".into(),
            instance: "http://127.0.0.1:8000".into(),
            name: name.into(),
            value,
        };
        let points = [
            point(2_000_000_000, "kv_cache_usage_frac", 0.1 + 0.2),
            point(1_000_000_000, "kv_cache_usage_frac", 0.25),
            point(1_000_000_000, "requests_running", 3.0),
            point(3_000_000_000, "requests_running", f64::NAN),
        ];
        h.record_series("a", &points).unwrap();
        let kv = h.series("a", Some("kv_cache_usage_frac")).unwrap();
        assert_eq!(kv, [points[1].clone(), points[0].clone()]);
        // NaN is left out; the rest come back in time order.
        assert_eq!(h.series("a", None).unwrap().len(), 3);
        // Recording again replaces; re-recording the run drops its series.
        h.record_series("a", &points[2..3]).unwrap();
        assert_eq!(h.series("a", None).unwrap(), [points[2].clone()]);
        h.record(&entry("a", "2026-11-21T10:00:00+00:00", 11.0))
            .unwrap();
        assert!(h.series("a", None).unwrap().is_empty());
    }

    #[test]
    fn filters_select_by_every_field_and_pages_do_not_overlap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.sqlite");
        let mut h = History::open(&Database::from(path.as_path())).unwrap();
        let mut b = entry("b", "2026-11-22T10:00:00+00:00", 20.0);
        b.labels = vec![("system".into(), "vllm \"x\"".into())];
        b.backends = vec!["http://a:1/v1".into(), "http://b:2/v1".into()];
        b.dataset = None;
        h.record(&b).unwrap();
        h.record(&entry("a", "2026-11-21T10:00:00+00:00", 10.0))
            .unwrap();
        h.record(&entry("c", "2026-11-23T10:00:00+00:00", 30.0))
            .unwrap();
        let ids = |f: Filter| -> Vec<String> {
            h.list(&f).unwrap().into_iter().map(|r| r.run_id).collect()
        };
        assert_eq!(
            ids(Filter {
                label: Some(("system".into(), "vllm \"x\"".into())),
                ..Filter::default()
            }),
            ["b"]
        );
        // A label key and value from two different labels is no match.
        assert!(
            ids(Filter {
                label: Some(("label".into(), "vllm".into())),
                ..Filter::default()
            })
            .is_empty()
        );
        assert_eq!(
            ids(Filter {
                backend: Some("http://b:2/v1".into()),
                ..Filter::default()
            }),
            ["b"]
        );
        // Part of a URL is not a backend.
        assert!(
            ids(Filter {
                backend: Some("http://b".into()),
                ..Filter::default()
            })
            .is_empty()
        );
        assert_eq!(
            ids(Filter {
                dataset: Some("datasets/x.json".into()),
                ..Filter::default()
            }),
            ["c", "a"]
        );
        assert_eq!(
            ids(Filter {
                since: Some("2026-11-22".into()),
                until: Some("2026-11-23".into()),
                ..Filter::default()
            }),
            ["b"]
        );
        let page = |offset| {
            ids(Filter {
                limit: Some(2),
                offset: Some(offset),
                ..Filter::default()
            })
        };
        assert_eq!(
            (page(0), page(2)),
            (vec!["c".into(), "b".into()], vec!["a".into()])
        );
        // SQL in a filter is a value, not SQL.
        assert!(
            ids(Filter {
                model: Some("x' OR '1'='1".into()),
                ..Filter::default()
            })
            .is_empty()
        );
        let values = h.values("samples_per_s", &Filter::default()).unwrap();
        assert_eq!(
            values.iter().map(|v| v.value).collect::<Vec<_>>(),
            [30.0, 20.0, 10.0]
        );
        assert_eq!(values[1].labels, b.labels);
        assert_eq!(h.get("b").unwrap(), Some(b));
        assert_eq!(h.get("nope").unwrap(), None);
        assert!(h.delete("a").unwrap());
        assert!(!h.delete("a").unwrap());
        assert!(h.values("samples_per_s", &Filter::default()).unwrap().len() == 2);
        assert_eq!(h.metric_names().unwrap(), ["samples_per_s", "ttft_p99_ms"]);
        assert!(h.has_metric("ttft_p99_ms").unwrap() && !h.has_metric("ttft").unwrap());
    }

    #[test]
    fn data_version_changes_when_another_connection_records() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::from(tmp.path().join("h.sqlite"));
        let reader = History::open(&db).unwrap();
        let before = reader.data_version().unwrap();
        assert_eq!(reader.data_version().unwrap(), before);
        History::open(&db)
            .unwrap()
            .record(&entry("a", "2026-11-21T10:00:00+00:00", 10.0))
            .unwrap();
        assert_ne!(reader.data_version().unwrap(), before);
    }

    #[test]
    fn a_version_probe_sees_commits_of_every_connection() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::from(tmp.path().join("h.sqlite"));
        let mut h = History::open(&db).unwrap();
        let probe = h.version_probe().unwrap();
        let before = probe.data_version().unwrap();
        assert!(before.is_some());
        assert_eq!(probe.data_version().unwrap(), before);
        // The probed history's own commit counts too.
        h.record(&entry("a", "2026-11-21T10:00:00+00:00", 10.0))
            .unwrap();
        let after_own = probe.data_version().unwrap();
        assert_ne!(after_own, before);
        History::open(&db)
            .unwrap()
            .record(&entry("b", "2026-11-21T11:00:00+00:00", 11.0))
            .unwrap();
        assert_ne!(probe.data_version().unwrap(), after_own);
    }

    fn plan(
        conn: &Connection,
        (sql, values): (String, Vec<rusqlite::types::Value>),
    ) -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(values), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn one_metrics_values_are_read_through_the_name_index() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::from(tmp.path().join("h.sqlite"));
        drop(History::open(&db).unwrap());
        let Database::Sqlite(path) = &db else {
            unreachable!()
        };
        let conn = Connection::open(path).unwrap();
        let plan = plan(&conn, sqlite::values_sql("ttft_p50_ms", &Filter::default()));
        assert!(
            plan.iter()
                .any(|step| step.contains("USING COVERING INDEX metrics_name")),
            "{plan:?}"
        );
    }

    /// A ranking's sums stream one range of the ranking index, already in
    /// group order: no table row read, no sort, also with the time filter
    /// the rankings API is asked most.
    #[test]
    fn group_sums_read_one_range_of_the_ranking_index_without_sorting() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::from(tmp.path().join("h.sqlite"));
        drop(History::open(&db).unwrap());
        let Database::Sqlite(path) = &db else {
            unreachable!()
        };
        let conn = Connection::open(path).unwrap();
        for filter in [
            Filter::default(),
            Filter {
                since: Some("2026-01-01T00:00:00Z".into()),
                scenario: Some("Server".into()),
                ..Filter::default()
            },
        ] {
            let plan = plan(&conn, sqlite::group_sums_sql("ttft_p50_ms", &filter));
            assert!(
                plan.iter()
                    .any(|step| step.contains("USING COVERING INDEX metrics_rank (name=?)")),
                "{plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn group_sums_are_the_sums_of_each_groups_values() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::from(tmp.path().join("h.sqlite"));
        let mut h = History::open(&db).unwrap();
        let mut runs = Vec::new();
        for (i, (system, qps)) in [
            ("a", 10.0),
            ("b", 20.0),
            ("a", 12.5),
            ("a", 11.0),
            ("b", 21.0),
        ]
        .into_iter()
        .enumerate()
        {
            let mut run = entry(
                &format!("r{i}"),
                &format!("2026-11-2{i}T10:00:00+00:00"),
                qps,
            );
            run.labels = vec![("system".into(), system.into())];
            h.record(&run).unwrap();
            runs.push(run);
        }
        let sums = h.group_sums("samples_per_s", &Filter::default()).unwrap();
        assert_eq!(
            sums.iter()
                .map(|g| (g.system.as_str(), g.count))
                .collect::<Vec<_>>(),
            [("a", 3), ("b", 2)]
        );
        for g in &sums {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| system_of(&r.labels, &r.backends) == g.system)
                .map(|r| r.metrics[0].1)
                .collect();
            let sum: f64 = values.iter().map(|v| v - g.shift).sum();
            let sum_sq: f64 = values.iter().map(|v| (v - g.shift).powi(2)).sum();
            assert!((g.sum - sum).abs() < 1e-9 && (g.sum_sq - sum_sq).abs() < 1e-9);
            // Newest first, as `values` orders them.
            let mut newest_first = values.clone();
            newest_first.reverse();
            assert_eq!(
                h.group_values("samples_per_s", &Filter::default(), &g.model, &g.system)
                    .unwrap(),
                newest_first
            );
        }
        // The filters apply to the sums as to every other read.
        let since = Filter {
            since: Some("2026-11-22".into()),
            label: Some(("system".into(), "a".into())),
            ..Filter::default()
        };
        let sums = h.group_sums("samples_per_s", &since).unwrap();
        assert_eq!((sums.len(), sums[0].count), (1, 2));
        assert_eq!(
            h.group_values("samples_per_s", &since, "llama3_1-8b", "a")
                .unwrap(),
            [11.0, 12.5]
        );
        assert!(h.group_sums("nope", &Filter::default()).unwrap().is_empty());
    }

    /// A database written before the ranking columns (schema 5) gets them
    /// filled in from its JSON columns: filters and sums read the same as
    /// on a database that recorded the same runs after the migration.
    #[test]
    fn a_schema_5_database_gets_its_ranking_columns_filled_in() {
        let tmp = tempfile::tempdir().unwrap();
        let old_path = tmp.path().join("old.sqlite");
        let mut runs = Vec::new();
        for i in 0..6 {
            let mut run = entry(
                &format!("r{i}"),
                &format!("2026-11-2{i}T10:00:00+0{i}:00"),
                10.0 + f64::from(i),
            );
            match i % 3 {
                0 => run.labels = vec![("system".into(), "sys".into())],
                1 => run.labels = vec![("label".into(), "lab".into())],
                _ => run.labels = vec![],
            }
            run.backends = vec![format!("http://h{}:1/v1", i % 2)];
            runs.push(run);
        }
        {
            // Schema 5, and rows as schema 5's `record` wrote them.
            let conn = Connection::open(&old_path).unwrap();
            for m in &MIGRATIONS[..5] {
                conn.execute_batch(m.sqlite).unwrap();
            }
            conn.execute_batch("PRAGMA user_version = 5").unwrap();
            for r in &runs {
                conn.execute(
                    "INSERT INTO runs (run_id, run_dir, started_at, model, scenario, mode, backends,
                       dataset, labels, status, valid, reasons, harness_version, loadgen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    rusqlite::params![
                        r.run_id, r.run_dir, r.started_at, r.model, r.scenario, r.mode,
                        to_json(&r.backends), r.dataset, to_json(&r.labels), r.status, r.valid,
                        to_json(&r.reasons), r.harness_version, r.loadgen
                    ],
                )
                .unwrap();
                for (name, value) in &r.metrics {
                    conn.execute(
                        "INSERT INTO metrics (run_id, name, value) VALUES (?1, ?2, ?3)",
                        rusqlite::params![r.run_id, name, value],
                    )
                    .unwrap();
                }
            }
        }
        let old = History::open(&Database::from(old_path.as_path())).unwrap();
        assert_eq!(old.schema_version().unwrap(), SCHEMA_VERSION);
        let mut new = History::open(&Database::from(tmp.path().join("new.sqlite"))).unwrap();
        for r in &runs {
            new.record(r).unwrap();
        }
        let filters = [
            Filter::default(),
            Filter {
                label: Some(("label".into(), "lab".into())),
                ..Filter::default()
            },
            Filter {
                backend: Some("http://h1:1/v1".into()),
                ..Filter::default()
            },
            Filter {
                since: Some("2026-11-22T08:30:00Z".into()),
                until: Some("2026-11-25T12:00:00+02:00".into()),
                ..Filter::default()
            },
        ];
        for f in &filters {
            assert_eq!(old.list(f).unwrap(), new.list(f).unwrap(), "{f:?}");
            assert_eq!(
                old.group_sums("samples_per_s", f).unwrap(),
                new.group_sums("samples_per_s", f).unwrap(),
                "{f:?}"
            );
        }
        let systems: Vec<String> = old
            .group_sums("samples_per_s", &Filter::default())
            .unwrap()
            .into_iter()
            .map(|g| g.system)
            .collect();
        assert_eq!(systems, ["http://h0:1/v1", "http://h1:1/v1", "lab", "sys"]);
    }

    #[test]
    fn an_old_database_is_migrated_and_a_newer_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("old.sqlite");
        {
            // A version-1 database, as the first release wrote it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0].sqlite).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            conn.execute(
                "INSERT INTO runs VALUES ('old', 'runs/old', '2026-01-01', 'm', 'Server', 'PerformanceOnly', '[]', NULL, '[]', 'complete', 1, '[]')",
                [],
            )
            .unwrap();
        }
        let h = History::open(&Database::from(path.as_path())).unwrap();
        assert_eq!(h.schema_version().unwrap(), SCHEMA_VERSION);
        let runs = h.list(&Filter::default()).unwrap();
        assert_eq!(runs[0].run_id, "old");
        assert_eq!(runs[0].harness_version, "");
        assert_eq!(runs[0].loadgen, "");
        drop(h);
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = History::open(&Database::from(path.as_path())).unwrap_err();
        assert!(
            matches!(err, HistoryError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }
}
