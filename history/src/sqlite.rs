//! The SQLite backend: one file, versioned by `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    Dialect, Filter, GROUP_SUMS_VERSION, GroupSums, HistoryError, METRIC_NAMES_SQL, MIGRATIONS,
    MetricValue, RANK_COLUMNS_VERSION, RunEntry, SCHEMA_VERSION, SeriesPoint, TrendPoint,
    backfill_groups_sql, conditions, empty_groups_sql, group_delta_sql, new_shifts_sql, parse,
    stored_sums_sql, sums_answer, system_of, to_json,
};

/// SQLite's infinity (a literal past f64's range).
const INF: &str = "9e999";

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
    for (to, migration) in (1..).zip(MIGRATIONS).skip(found as usize) {
        tx.execute_batch(migration.sqlite).map_err(err)?;
        if to == RANK_COLUMNS_VERSION {
            backfill(&tx).map_err(err)?;
        }
        if to == GROUP_SUMS_VERSION {
            backfill_groups(&tx).map_err(err)?;
        }
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

/// Fills in migration 6's columns for the runs recorded before it.
fn backfill(tx: &Connection) -> rusqlite::Result<()> {
    let runs: Vec<(String, String, String)> = tx
        .prepare("SELECT run_id, labels, backends FROM runs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = tx.prepare(
        "UPDATE runs SET system = ?2, started_instant = julianday(started_at) WHERE run_id = ?1",
    )?;
    for (run_id, labels, backends) in runs {
        let (labels, backends): (Vec<(String, String)>, Vec<String>) =
            (parse(&labels), parse(&backends));
        update.execute(params![run_id, system_of(&labels, &backends)])?;
        insert_labels_and_backends(tx, &run_id, &labels, &backends)?;
    }
    tx.execute_batch(
        "UPDATE metrics SET (model, system, scenario, dataset, started_instant) =
           (SELECT model, system, scenario, dataset, started_instant FROM runs
            WHERE runs.run_id = metrics.run_id);",
    )
}

/// Sums the metric rows recorded before migration 8, one metric at a time.
fn backfill_groups(tx: &Connection) -> rusqlite::Result<()> {
    let names: Vec<String> = tx
        .prepare("SELECT DISTINCT name FROM metrics")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let statements = backfill_groups_sql("?1", INF);
    for name in names {
        for sql in &statements {
            tx.execute(sql, params![name])?;
        }
    }
    Ok(())
}

/// Takes a run's metric rows (if it is recorded) out of the running sums.
fn take_out_of_sums(tx: &Connection, run_id: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(&group_delta_sql('-', "?1", INF))?
        .execute(params![run_id])?;
    tx.prepare_cached(&empty_groups_sql("?1"))?
        .execute(params![run_id])?;
    Ok(())
}

fn insert_labels_and_backends(
    tx: &Connection,
    run_id: &str,
    labels: &[(String, String)],
    backends: &[String],
) -> rusqlite::Result<()> {
    let mut label =
        tx.prepare_cached("INSERT INTO run_labels (run_id, key, value) VALUES (?1, ?2, ?3)")?;
    for (key, value) in labels {
        label.execute(params![run_id, key, value])?;
    }
    let mut backend =
        tx.prepare_cached("INSERT INTO run_backends (run_id, backend) VALUES (?1, ?2)")?;
    for url in backends {
        backend.execute(params![run_id, url])?;
    }
    Ok(())
}

pub(crate) fn record(conn: &mut Connection, run: &RunEntry) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    take_out_of_sums(&tx, &run.run_id)?;
    tx.execute("DELETE FROM runs WHERE run_id = ?1", params![run.run_id])?;
    tx.execute(
        "INSERT INTO runs (run_id, run_dir, started_at, model, scenario, mode, backends, dataset,
                           labels, status, valid, reasons, harness_version, loadgen, system,
                           started_instant)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, julianday(?3))",
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
            system_of(&run.labels, &run.backends),
        ],
    )?;
    insert_labels_and_backends(&tx, &run.run_id, &run.labels, &run.backends)?;
    {
        // Each metric row carries its run's ranking columns, copied from
        // the row just written (one source).
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO metrics
               (run_id, name, value, model, system, scenario, dataset, started_instant)
             SELECT run_id, ?2, ?3, model, system, scenario, dataset, started_instant
             FROM runs WHERE run_id = ?1",
        )?;
        for (name, value) in &run.metrics {
            if value.is_finite() {
                insert.execute(params![run.run_id, name, value])?;
            }
        }
    }
    tx.prepare_cached(&new_shifts_sql("?1"))?
        .execute(params![run.run_id])?;
    tx.prepare_cached(&group_delta_sql('+', "?1", INF))?
        .execute(params![run.run_id])?;
    tx.commit()
}

const DIALECT: Dialect = Dialect {
    placeholder: |n| format!("?{n}"),
    time: |table, op, p| format!("{table}.started_instant {op} julianday({p})"),
};

/// The filter's conditions on `table` from placeholder `first`, with
/// `before` (values of lower placeholders) in front of its values.
fn filtered(
    filter: &Filter,
    table: &str,
    before: Vec<rusqlite::types::Value>,
) -> (String, Vec<rusqlite::types::Value>) {
    let (sql, values) = conditions(filter, table, before.len() + 1, &DIALECT);
    let mut all = before;
    all.extend(values.into_iter().map(rusqlite::types::Value::Text));
    (sql, all)
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
    // SQLite reads a negative LIMIT as none.
    let limit = filter
        .limit
        .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let offset = filter
        .offset
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let (cond, values) = filtered(filter, "runs", vec![limit.into(), offset.into()]);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE {cond}
         ORDER BY started_at DESC, run_id DESC
         LIMIT ?1 OFFSET ?2"
    ))?;
    let mut runs = stmt
        .query_map(rusqlite::params_from_iter(values), run_row)?
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
    let (cond, values) = filtered(filter, "runs", vec![metric.to_owned().into()]);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT runs.started_at, runs.run_id, metrics.value
         FROM metrics JOIN runs ON runs.run_id = metrics.run_id
         WHERE metrics.name = ?1 AND {cond}
         ORDER BY runs.started_at, runs.run_id"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

/// One metric's values with the filter's: the SQL and its parameters.
pub(crate) fn values_sql(metric: &str, filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    let (cond, values) = filtered(filter, "runs", vec![metric.to_owned().into()]);
    let sql = format!(
        "SELECT runs.run_id, runs.started_at, runs.model, runs.backends, runs.labels, metrics.value
         FROM metrics JOIN runs ON runs.run_id = metrics.run_id
         WHERE metrics.name = ?1 AND {cond}
         ORDER BY runs.started_at DESC, runs.run_id DESC"
    );
    (sql, values)
}

pub(crate) fn values(
    conn: &Connection,
    metric: &str,
    filter: &Filter,
) -> rusqlite::Result<Vec<MetricValue>> {
    let (sql, values) = values_sql(metric, filter);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
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

/// One metric's per-(model, system) sums: the SQL and its parameters
/// (`?1` the name). The shift is one value of the metric (the first run
/// id's, through `metrics_name`: the same in every backend), taken once.
/// Sums past f64's range become infinite by themselves here (PostgreSQL's
/// query guards against the overflow it would refuse).
pub(crate) fn group_sums_sql(
    metric: &str,
    filter: &Filter,
) -> (String, Vec<rusqlite::types::Value>) {
    let (cond, values) = filtered(filter, "metrics", vec![metric.to_owned().into()]);
    let sql = format!(
        "WITH k AS (SELECT value AS shift FROM metrics WHERE name = ?1 ORDER BY run_id LIMIT 1)
         SELECT model, system, count(*), k.shift,
                sum(value - k.shift), sum((value - k.shift) * (value - k.shift))
         FROM metrics INDEXED BY metrics_rank, k
         WHERE metrics.name = ?1 AND {cond}
         GROUP BY model, system
         ORDER BY model, system"
    );
    (sql, values)
}

/// One metric's per-(model, system) sums from the running sums (filters
/// they answer) or summed over its rows (time, label, backend filters).
pub(crate) fn group_sums(
    conn: &Connection,
    metric: &str,
    filter: &Filter,
) -> rusqlite::Result<Vec<GroupSums>> {
    let (sql, values) = if sums_answer(filter) {
        let (sql, values) = stored_sums_sql(filter, &DIALECT);
        let mut all = vec![rusqlite::types::Value::Text(metric.to_owned())];
        all.extend(values.into_iter().map(rusqlite::types::Value::Text));
        (sql, all)
    } else {
        group_sums_sql(metric, filter)
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        Ok(GroupSums {
            model: r.get(0)?,
            system: r.get(1)?,
            count: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            shift: r.get(3)?,
            // NULL: a NaN (an infinity taken away) in the running sums.
            sum: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
            sum_sq: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
        })
    })?;
    rows.collect()
}

pub(crate) fn group_values(
    conn: &Connection,
    metric: &str,
    filter: &Filter,
    model: &str,
    system: &str,
) -> rusqlite::Result<Vec<f64>> {
    let (cond, values) = filtered(
        filter,
        "metrics",
        vec![
            metric.to_owned().into(),
            model.to_owned().into(),
            system.to_owned().into(),
        ],
    );
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT metrics.value FROM metrics JOIN runs ON runs.run_id = metrics.run_id
         WHERE metrics.name = ?1 AND metrics.model = ?2 AND metrics.system = ?3 AND {cond}
         ORDER BY runs.started_at DESC, runs.run_id DESC"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| r.get(0))?;
    rows.collect()
}

pub(crate) fn has_metric(conn: &Connection, metric: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM metrics WHERE name = ?1 LIMIT 1")?
        .exists(params![metric])
}

pub(crate) fn metric_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(METRIC_NAMES_SQL)?;
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
    let tx = conn.transaction()?;
    take_out_of_sums(&tx, run_id)?;
    // Metrics go with their run (ON DELETE CASCADE).
    let removed = tx.execute("DELETE FROM runs WHERE run_id = ?1", params![run_id])? > 0;
    tx.commit()?;
    Ok(removed)
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
