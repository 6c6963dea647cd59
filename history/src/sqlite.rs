//! The SQLite backend: one file, versioned by `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Bound, Filter, HistoryError, MIGRATIONS, MetricValue, RunEntry, SCHEMA_VERSION, SeriesPoint,
    TrendPoint, parse, to_json,
};

/// Opens (creating) the file and migrates it.
pub(crate) fn open(path: &Path) -> Result<Connection, HistoryError> {
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
    // Several harnesses may open one new file at once: the version is read
    // and every pending migration applied inside one IMMEDIATE transaction,
    // which takes the write lock first (waiting up to busy_timeout), so
    // exactly one of them migrates and the others see its result.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(err)?;
    let found = schema_version(&tx).map_err(err)?;
    if found > SCHEMA_VERSION {
        return Err(HistoryError::NewerSchema {
            db: path.display().to_string(),
            found,
        });
    }
    for migration in MIGRATIONS.iter().skip(found as usize) {
        tx.execute_batch(migration.sqlite).map_err(err)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(conn)
}

pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

pub(crate) fn record(conn: &mut Connection, run: &RunEntry) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM runs WHERE run_id = ?1", params![run.run_id])?;
    tx.execute(
        "INSERT INTO runs (run_id, run_dir, started_at, model, scenario, mode, backends, dataset,
                           labels, status, valid, reasons, harness_version, loadgen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            run.run_id,
            run.run_dir,
            run.started_at,
            run.model,
            run.scenario,
            run.mode,
            to_json(&run.backends),
            run.dataset,
            to_json(&run.labels),
            run.status,
            run.valid,
            to_json(&run.reasons),
            run.harness_version,
            run.loadgen,
        ],
    )?;
    for (name, value) in &run.metrics {
        if value.is_finite() {
            tx.execute(
                "INSERT OR REPLACE INTO metrics (run_id, name, value) VALUES (?1, ?2, ?3)",
                params![run.run_id, name, value],
            )?;
        }
    }
    tx.commit()
}

/// The filter's conditions; parameters ?1..?7 in [`bind`]'s order.
const WHERE: &str = "(?1 IS NULL OR runs.model = ?1) AND (?2 IS NULL OR runs.scenario = ?2)
    AND (?3 IS NULL OR runs.dataset = ?3) AND (?4 IS NULL OR instr(runs.labels, ?4) > 0)
    AND (?5 IS NULL OR instr(runs.backends, '[' || ?5) > 0 OR instr(runs.backends, ',' || ?5) > 0)
    AND (?6 IS NULL OR julianday(runs.started_at) >= julianday(?6))
    AND (?7 IS NULL OR julianday(runs.started_at) < julianday(?7))";

fn bind(b: &Bound) -> [&dyn rusqlite::ToSql; 7] {
    [
        &b.model,
        &b.scenario,
        &b.dataset,
        &b.label,
        &b.backend,
        &b.since,
        &b.until,
    ]
}

const RUN_COLUMNS: &str = "run_id, run_dir, started_at, model, scenario, mode, backends, dataset,
    labels, status, valid, reasons, harness_version, loadgen";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunEntry> {
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
        loadgen: r.get(13)?,
        metrics: Vec::new(),
    })
}

fn metrics_of(conn: &Connection, runs: &mut [RunEntry]) -> rusqlite::Result<()> {
    let mut metrics =
        conn.prepare_cached("SELECT name, value FROM metrics WHERE run_id = ?1 ORDER BY name")?;
    for run in runs {
        run.metrics = metrics
            .query_map(params![run.run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<RunEntry>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE {WHERE}
         ORDER BY started_at DESC, run_id DESC
         LIMIT ?8 OFFSET ?9"
    ))?;
    // SQLite reads a negative LIMIT as none.
    let limit = filter
        .limit
        .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let offset = filter
        .offset
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let bound = Bound::of(filter);
    let mut values = bind(&bound).to_vec();
    values.push(&limit);
    values.push(&offset);
    let mut runs = stmt
        .query_map(values.as_slice(), run_row)?
        .collect::<Result<Vec<_>, _>>()?;
    metrics_of(conn, &mut runs)?;
    Ok(runs)
}

pub(crate) fn get(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<RunEntry>> {
    let run = conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"),
            params![run_id],
            run_row,
        )
        .optional()?;
    let Some(run) = run else { return Ok(None) };
    let mut runs = [run];
    metrics_of(conn, &mut runs)?;
    let [run] = runs;
    Ok(Some(run))
}

pub(crate) fn trend(
    conn: &Connection,
    metric: &str,
    filter: &Filter,
) -> rusqlite::Result<Vec<TrendPoint>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT runs.started_at, runs.run_id, metrics.value
         FROM metrics JOIN runs ON runs.run_id = metrics.run_id
         WHERE metrics.name = ?8 AND {WHERE}
         ORDER BY runs.started_at, runs.run_id"
    ))?;
    let bound = Bound::of(filter);
    let mut values = bind(&bound).to_vec();
    values.push(&metric);
    let rows = stmt.query_map(values.as_slice(), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// One metric's values: [`WHERE`]'s filters are `?1`..`?7`, the name `?8`.
pub(crate) fn values_sql() -> String {
    format!(
        "SELECT runs.run_id, runs.started_at, runs.model, runs.backends, runs.labels, metrics.value
         FROM metrics JOIN runs ON runs.run_id = metrics.run_id
         WHERE metrics.name = ?8 AND {WHERE}
         ORDER BY runs.started_at DESC, runs.run_id DESC"
    )
}

pub(crate) fn values(
    conn: &Connection,
    metric: &str,
    filter: &Filter,
) -> rusqlite::Result<Vec<MetricValue>> {
    let mut stmt = conn.prepare_cached(&values_sql())?;
    let bound = Bound::of(filter);
    let mut values = bind(&bound).to_vec();
    values.push(&metric);
    let rows = stmt.query_map(values.as_slice(), |r| {
        Ok(MetricValue {
            run_id: r.get(0)?,
            started_at: r.get(1)?,
            model: r.get(2)?,
            backends: parse(&r.get::<_, String>(3)?),
            labels: parse(&r.get::<_, String>(4)?),
            value: r.get(5)?,
        })
    })?;
    rows.collect()
}

pub(crate) fn metric_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT name FROM metrics ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// A read-only connection to an already opened (and migrated) file, for
/// [`data_version`] alone.
pub(crate) fn open_probe(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

pub(crate) fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
}

pub(crate) fn delete(conn: &mut Connection, run_id: &str) -> rusqlite::Result<bool> {
    // Metrics go with their run (ON DELETE CASCADE).
    Ok(conn.execute("DELETE FROM runs WHERE run_id = ?1", params![run_id])? > 0)
}

pub(crate) fn contains(conn: &Connection, run_id: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM runs WHERE run_id = ?1",
        params![run_id],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

pub(crate) fn record_series(
    conn: &mut Connection,
    run_id: &str,
    points: &[SeriesPoint],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM metric_series WHERE run_id = ?1",
        params![run_id],
    )?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO metric_series (run_id, t_ns, source, instance, name, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for p in points.iter().filter(|p| p.value.is_finite()) {
            let t_ns = i64::try_from(p.t_ns).unwrap_or(i64::MAX);
            insert.execute(params![run_id, t_ns, p.source, p.instance, p.name, p.value])?;
        }
    }
    tx.commit()
}

pub(crate) fn series(
    conn: &Connection,
    run_id: &str,
    name: Option<&str>,
) -> rusqlite::Result<Vec<SeriesPoint>> {
    let mut stmt = conn.prepare(
        "SELECT t_ns, source, instance, name, value FROM metric_series
         WHERE run_id = ?1 AND (?2 IS NULL OR name = ?2)
         ORDER BY t_ns, source, instance, name",
    )?;
    let rows = stmt.query_map(params![run_id, name], |r| {
        Ok(SeriesPoint {
            t_ns: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            source: r.get(1)?,
            instance: r.get(2)?,
            name: r.get(3)?,
            value: r.get(4)?,
        })
    })?;
    rows.collect()
}
