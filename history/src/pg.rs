//! The PostgreSQL backend: the same tables in the connection's current
//! schema, versioned by a one-row `schema_version` table.

use std::collections::HashMap;
use std::time::Duration;

use postgres::{Client, NoTls};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;

use crate::{
    Dialect, Filter, GROUP_SUMS_VERSION, GroupSums, HistoryError, METRIC_NAMES_SQL, MIGRATIONS,
    MetricValue, PostgresUrl, RANK_COLUMNS_VERSION, RunEntry, SCHEMA_VERSION, SeriesPoint,
    TrendPoint, backfill_groups_sql, conditions, empty_groups_sql, group_delta_sql, new_shifts_sql,
    parse, stored_sums_sql, sums_answer, system_of, to_json,
};

/// PostgreSQL's infinity.
const INF: &str = "'Infinity'::FLOAT8";

/// How long connecting may take when the URL sets no `connect_timeout`: an
/// unreachable server must fail the open, not hang it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one statement may run on the server.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an operation on a [`Conn`] failed.
#[derive(Debug)]
pub(crate) enum PgError {
    /// The server (or the client library) said so.
    Db(postgres::Error),
    /// No answer within this limit (the connection is then given up).
    NoAnswer(Duration),
}

/// A work item for a connection's thread.
type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// A connection whose every operation is bounded on the client's side.
///
/// The server's `statement_timeout` covers a server that works slowly, not
/// one that completed the start-up and then never answers (a stopped
/// process, a proxy whose backend died): the sync client would wait on its
/// socket forever, and `harness history` or the end of `harness run` with
/// it. So the client lives on a thread of its own and each operation is
/// waited for at most the statement timeout plus the connect timeout.
/// After one that timed out the connection is given up (its thread is left
/// to the process's end) and every later operation fails at once.
pub(crate) struct Conn {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    limit: Duration,
}

impl Conn {
    fn new(client: Client, limit: Duration) -> std::io::Result<Conn> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("history-postgres".into())
            .spawn(move || {
                let mut client = client;
                for job in rx {
                    job(&mut client);
                }
            })?;
        Ok(Conn {
            jobs: Some(tx),
            limit,
        })
    }

    /// Runs `f` on the connection, waiting at most the limit.
    pub(crate) fn run<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, PgError> {
        self.call(f)?.map_err(PgError::Db)
    }

    fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Client) -> T + Send + 'static,
    ) -> Result<T, PgError> {
        let no_answer = PgError::NoAnswer(self.limit);
        let Some(jobs) = &self.jobs else {
            return Err(no_answer);
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move |client| {
            let _ = tx.send(f(client));
        });
        let answer = match jobs.send(job) {
            Ok(()) => rx.recv_timeout(self.limit).ok(),
            Err(_) => None,
        };
        answer.ok_or_else(|| {
            self.jobs = None;
            no_answer
        })
    }
}

/// The `statement_timeout` an options string (`-c statement_timeout=5s`)
/// sets, in PostgreSQL's units (a bare number is milliseconds).
fn statement_timeout(options: &str) -> Option<Duration> {
    let value = options
        .split_whitespace()
        .find_map(|o| o.strip_prefix("statement_timeout="))?;
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let n: u64 = value[..digits].parse().ok()?;
    let scale = match value[digits..].trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    // 0 disables the server's timeout; the client still bounds the wait.
    Some(Duration::from_millis(n.saturating_mul(scale))).filter(|d| !d.is_zero())
}

/// Connects on a thread of its own and gives up after `limit`: the
/// client's connect timeout covers the TCP connection only, so a server
/// that accepts and never answers its start-up would hang the open.
/// `None` when the limit passed (the thread is left to the process's end).
fn connect_within(
    config: postgres::Config,
    limit: Duration,
) -> Option<Result<Client, postgres::Error>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("history-connect".into())
        .spawn(move || {
            let _ = tx.send(config.connect(NoTls));
        })
        .ok()?;
    rx.recv_timeout(limit).ok()
}

/// First key of the advisory lock held while migrating (the second is the
/// schema's hash), so that harnesses opening one new database at the same
/// time migrate it once.
const MIGRATION_LOCK: i32 = 0x4853_5459; // "HSTY"

/// Connects and migrates.
pub(crate) fn open(url: &PostgresUrl) -> Result<Conn, HistoryError> {
    let err = |source| HistoryError::Postgres {
        db: url.redacted(),
        source,
    };
    let mut config: postgres::Config = url.secret().parse().map_err(err)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let limit = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    // A statement that waits (a lock held by a stuck migration, an
    // overloaded server) fails instead of hanging the run's end.
    let mut options = config.get_options().unwrap_or("").to_owned();
    if !options.contains("statement_timeout") {
        options.push_str(&format!(
            " -c statement_timeout={}",
            STATEMENT_TIMEOUT.as_millis()
        ));
    }
    config.options(options.trim());
    let no_answer = |limit: Duration| HistoryError::PostgresNoAnswer {
        db: url.redacted(),
        seconds: limit.as_secs(),
    };
    let client = connect_within(config, limit)
        .ok_or_else(|| no_answer(limit))?
        .map_err(err)?;
    let statement = statement_timeout(&options).unwrap_or(STATEMENT_TIMEOUT);
    // A thread that cannot be started is treated as connect_within does: no
    // answer.
    let mut conn = Conn::new(client, statement + limit).map_err(|_| no_answer(limit))?;
    let migrated = conn.call(migrate).map_err(|e| match e {
        PgError::NoAnswer(limit) => no_answer(limit),
        PgError::Db(source) => err(source),
    })?;
    match migrated {
        Ok(()) => Ok(conn),
        Err(Migration::Db(source)) => Err(err(source)),
        Err(Migration::Newer(found)) => Err(HistoryError::NewerSchema {
            db: url.redacted(),
            found,
        }),
    }
}

/// Why a migration stopped.
enum Migration {
    Db(postgres::Error),
    /// The database's schema version, newer than this harness's.
    Newer(u32),
}

impl From<postgres::Error> for Migration {
    fn from(e: postgres::Error) -> Migration {
        Migration::Db(e)
    }
}

/// Migrates the schema to [`SCHEMA_VERSION`], once however many harnesses
/// open one new database at the same time.
fn migrate(client: &mut Client) -> Result<(), Migration> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&MIGRATION_LOCK],
    )?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    let found = u32::try_from(found.unwrap_or(0)).unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(Migration::Newer(found));
    }
    if found < SCHEMA_VERSION {
        for (to, migration) in (1..).zip(MIGRATIONS).skip(found as usize) {
            tx.batch_execute(migration.postgres)?;
            if to == RANK_COLUMNS_VERSION {
                backfill(&mut tx)?;
            }
            if to == GROUP_SUMS_VERSION {
                backfill_groups(&mut tx)?;
            }
        }
        let version = i32::try_from(SCHEMA_VERSION).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn schema_version(client: &mut Client) -> Result<u32, postgres::Error> {
    let found: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    Ok(u32::try_from(found.unwrap_or(0)).unwrap_or(0))
}

/// Fills in migration 6's columns for the runs recorded before it, in a
/// few statements whatever the number of runs (arrays, not a round trip
/// per run: the whole migration is bounded by the statement timeout).
fn backfill(tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
    let (mut ids, mut systems) = (Vec::new(), Vec::new());
    let (mut label_ids, mut keys, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut backend_ids, mut urls) = (Vec::new(), Vec::new());
    for row in tx.query("SELECT run_id, labels, backends FROM runs", &[])? {
        let run_id: String = row.try_get(0)?;
        let labels: Vec<(String, String)> = parse(row.try_get(1)?);
        let backends: Vec<String> = parse(row.try_get(2)?);
        systems.push(system_of(&labels, &backends));
        for (key, value) in labels {
            label_ids.push(run_id.clone());
            keys.push(key);
            values.push(value);
        }
        for url in backends {
            backend_ids.push(run_id.clone());
            urls.push(url);
        }
        ids.push(run_id);
    }
    tx.execute(
        "UPDATE runs SET system = u.system, started_instant = harness_started_at(runs.started_at)
         FROM unnest($1::TEXT[], $2::TEXT[]) AS u(run_id, system)
         WHERE runs.run_id = u.run_id",
        &[&ids, &systems],
    )?;
    tx.execute(
        "INSERT INTO run_labels (run_id, key, value)
         SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[])",
        &[&label_ids, &keys, &values],
    )?;
    tx.execute(
        "INSERT INTO run_backends (run_id, backend)
         SELECT * FROM unnest($1::TEXT[], $2::TEXT[])",
        &[&backend_ids, &urls],
    )?;
    tx.execute(
        "UPDATE metrics SET model = runs.model, system = runs.system, scenario = runs.scenario,
                            dataset = runs.dataset, started_instant = runs.started_instant
         FROM runs WHERE runs.run_id = metrics.run_id",
        &[],
    )?;
    Ok(())
}

/// Sums the metric rows recorded before migration 8: one statement per
/// metric (an index range of `metrics_rank` each), so no single statement
/// reads every metric row and meets the statement timeout on a large
/// history.
fn backfill_groups(tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
    let names: Vec<String> = tx
        .query("SELECT DISTINCT name FROM metrics", &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let [shift, sums] = backfill_groups_sql("$1::TEXT", INF);
    let (shift, sums) = (tx.prepare(&shift)?, tx.prepare(&sums)?);
    for name in &names {
        tx.execute(&shift, &[name])?;
        tx.execute(&sums, &[name])?;
    }
    Ok(())
}

/// Takes a run's metric rows (if it is recorded) out of the running sums.
fn take_out_of_sums(
    tx: &mut postgres::Transaction<'_>,
    run_id: &str,
) -> Result<(), postgres::Error> {
    tx.execute(&group_delta_sql('-', "$1::TEXT", INF), &[&run_id])?;
    tx.execute(&empty_groups_sql("$1::TEXT"), &[&run_id])?;
    Ok(())
}

pub(crate) fn record(client: &mut Client, run: &RunEntry) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    take_out_of_sums(&mut tx, &run.run_id)?;
    tx.execute("DELETE FROM runs WHERE run_id = $1", &[&run.run_id])?;
    tx.execute(
        "INSERT INTO runs (run_id, run_dir, started_at, model, scenario, mode, backends, dataset,
                           labels, status, valid, reasons, harness_version, loadgen, system,
                           started_instant)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 harness_started_at($3))",
        &[
            &run.run_id,
            &run.run_dir,
            &run.started_at,
            &run.model,
            &run.scenario,
            &run.mode,
            &to_json(&run.backends),
            &run.dataset,
            &to_json(&run.labels),
            &run.status,
            &run.valid,
            &to_json(&run.reasons),
            &run.harness_version,
            &run.loadgen,
            &system_of(&run.labels, &run.backends),
        ],
    )?;
    let label = tx.prepare("INSERT INTO run_labels (run_id, key, value) VALUES ($1, $2, $3)")?;
    for (key, value) in &run.labels {
        tx.execute(&label, &[&run.run_id, key, value])?;
    }
    let backend = tx.prepare("INSERT INTO run_backends (run_id, backend) VALUES ($1, $2)")?;
    for url in &run.backends {
        tx.execute(&backend, &[&run.run_id, url])?;
    }
    // Each metric row carries its run's ranking columns, copied from the
    // row just written (one source).
    let insert = tx.prepare(
        "INSERT INTO metrics (run_id, name, value, model, system, scenario, dataset, started_instant)
         SELECT run_id, $2::TEXT, $3::FLOAT8, model, system, scenario, dataset, started_instant
         FROM runs WHERE run_id = $1
         ON CONFLICT (run_id, name) DO UPDATE SET value = EXCLUDED.value",
    )?;
    for (name, value) in &run.metrics {
        if value.is_finite() {
            tx.execute(&insert, &[&run.run_id, name, value])?;
        }
    }
    tx.execute(&new_shifts_sql("$1::TEXT"), &[&run.run_id])?;
    tx.execute(&group_delta_sql('+', "$1::TEXT", INF), &[&run.run_id])?;
    // Delivered on commit to every `ChangeListener` of this schema.
    tx.execute("SELECT pg_notify($1, current_schema())", &[&CHANNEL])?;
    tx.commit()
}

/// A placeholder's first use fixes its type: the time is bound as text,
/// then read as an instant.
const DIALECT: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    time: |table, op, p| format!("{table}.started_instant {op} ({p}::TEXT)::timestamptz"),
};

/// Parameters: the ones before the filter's, then the filter's values.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The filter's conditions on `table` numbered after `before`, and every
/// parameter in order.
fn filtered(filter: &Filter, table: &str, before: Params) -> (String, Params) {
    let (sql, values) = conditions(filter, table, before.len() + 1, &DIALECT);
    let mut all = before;
    all.extend(
        values
            .into_iter()
            .map(|v| Box::new(v) as Box<dyn ToSql + Sync + Send>),
    );
    (sql, all)
}

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

const RUN_COLUMNS: &str = "run_id, run_dir, started_at, model, scenario, mode, backends, dataset,
    labels, status, valid, reasons, harness_version, loadgen";

fn run_row(r: &postgres::Row) -> Result<RunEntry, postgres::Error> {
    Ok(RunEntry {
        run_id: r.try_get(0)?,
        run_dir: r.try_get(1)?,
        started_at: r.try_get(2)?,
        model: r.try_get(3)?,
        scenario: r.try_get(4)?,
        mode: r.try_get(5)?,
        backends: parse(r.try_get(6)?),
        dataset: r.try_get(7)?,
        labels: parse(r.try_get(8)?),
        status: r.try_get(9)?,
        valid: r.try_get(10)?,
        reasons: parse(r.try_get(11)?),
        harness_version: r.try_get(12)?,
        loadgen: r.try_get(13)?,
        metrics: Vec::new(),
    })
}

/// Fills in the runs' metrics in one round trip.
fn metrics_of(client: &mut Client, runs: &mut [RunEntry]) -> Result<(), postgres::Error> {
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    let mut metrics: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    for row in client.query(
        "SELECT run_id, name, value FROM metrics WHERE run_id = ANY($1) ORDER BY run_id, name",
        &[&ids],
    )? {
        metrics
            .entry(row.try_get(0)?)
            .or_default()
            .push((row.try_get(1)?, row.try_get(2)?));
    }
    for run in runs {
        run.metrics = metrics.remove(&run.run_id).unwrap_or_default();
    }
    Ok(())
}

pub(crate) fn list(client: &mut Client, filter: &Filter) -> Result<Vec<RunEntry>, postgres::Error> {
    // LIMIT NULL is no limit.
    let limit = filter.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let offset = filter
        .offset
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let (cond, params) = filtered(filter, "runs", vec![Box::new(limit), Box::new(offset)]);
    let rows = client.query(
        &format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE {cond}
             ORDER BY started_at DESC, run_id DESC
             LIMIT $1 OFFSET $2"
        ),
        &refs(&params),
    )?;
    let mut runs = rows.iter().map(run_row).collect::<Result<Vec<_>, _>>()?;
    metrics_of(client, &mut runs)?;
    Ok(runs)
}

pub(crate) fn get(client: &mut Client, run_id: &str) -> Result<Option<RunEntry>, postgres::Error> {
    let Some(row) = client.query_opt(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"),
        &[&run_id],
    )?
    else {
        return Ok(None);
    };
    let mut runs = [run_row(&row)?];
    metrics_of(client, &mut runs)?;
    let [run] = runs;
    Ok(Some(run))
}

pub(crate) fn trend(
    client: &mut Client,
    metric: &str,
    filter: &Filter,
) -> Result<Vec<TrendPoint>, postgres::Error> {
    let (cond, params) = filtered(filter, "runs", vec![Box::new(metric.to_owned())]);
    client
        .query(
            &format!(
                "SELECT runs.started_at, runs.run_id, metrics.value
                 FROM metrics JOIN runs ON runs.run_id = metrics.run_id
                 WHERE metrics.name = $1 AND {cond}
                 ORDER BY runs.started_at, runs.run_id"
            ),
            &refs(&params),
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

pub(crate) fn values(
    client: &mut Client,
    metric: &str,
    filter: &Filter,
) -> Result<Vec<MetricValue>, postgres::Error> {
    let (cond, params) = filtered(filter, "runs", vec![Box::new(metric.to_owned())]);
    client
        .query(
            &format!(
                "SELECT runs.run_id, runs.started_at, runs.model, runs.backends, runs.labels,
                        metrics.value
                 FROM metrics JOIN runs ON runs.run_id = metrics.run_id
                 WHERE metrics.name = $1 AND {cond}
                 ORDER BY runs.started_at DESC, runs.run_id DESC"
            ),
            &refs(&params),
        )?
        .iter()
        .map(|r| {
            Ok(MetricValue {
                run_id: r.try_get(0)?,
                started_at: r.try_get(1)?,
                model: r.try_get(2)?,
                backends: parse(r.try_get(3)?),
                labels: parse(r.try_get(4)?),
                value: r.try_get(5)?,
            })
        })
        .collect()
}

pub(crate) fn group_sums(
    client: &mut Client,
    metric: &str,
    filter: &Filter,
) -> Result<Vec<GroupSums>, postgres::Error> {
    if sums_answer(filter) {
        let (sql, values) = stored_sums_sql(filter, &DIALECT);
        let mut params: Params = vec![Box::new(metric.to_owned())];
        params.extend(
            values
                .into_iter()
                .map(|v| Box::new(v) as Box<dyn ToSql + Sync + Send>),
        );
        return client
            .query(&sql, &refs(&params))?
            .iter()
            .map(group_sums_row)
            .collect();
    }
    let (cond, params) = filtered(filter, "metrics", vec![Box::new(metric.to_owned())]);
    // Values past ±1e100 (or such a shift) make the group's sums infinite
    // rather than overflow, which PostgreSQL refuses: the ranking then reads
    // that group's values. (SQLite's sums turn infinite by themselves, only
    // past f64's range: the two differ only for values past ±1e100.)
    let rows = client.query(
        &format!(
            "WITH k AS (SELECT value AS shift FROM metrics WHERE name = $1 ORDER BY run_id LIMIT 1)
             SELECT model, system, count(*), k.shift,
                    sum(CASE WHEN abs(value) < 1e100 AND abs(k.shift) < 1e100
                             THEN value - k.shift ELSE 'Infinity'::FLOAT8 END),
                    sum(CASE WHEN abs(value) < 1e100 AND abs(k.shift) < 1e100
                             THEN (value - k.shift) * (value - k.shift)
                             ELSE 'Infinity'::FLOAT8 END)
             FROM metrics, k
             WHERE metrics.name = $1 AND {cond}
             GROUP BY model, system, k.shift
             ORDER BY model, system"
        ),
        &refs(&params),
    )?;
    rows.iter().map(group_sums_row).collect()
}

/// One group's sums from a row of either query above: both select model,
/// system, count, shift, sum and sum of squares in that order.
fn group_sums_row(r: &postgres::Row) -> Result<GroupSums, postgres::Error> {
    Ok(GroupSums {
        model: r.try_get(0)?,
        system: r.try_get(1)?,
        count: u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0),
        shift: r.try_get(3)?,
        sum: r.try_get(4)?,
        sum_sq: r.try_get(5)?,
    })
}

pub(crate) fn group_values(
    client: &mut Client,
    metric: &str,
    filter: &Filter,
    model: &str,
    system: &str,
) -> Result<Vec<f64>, postgres::Error> {
    let (cond, params) = filtered(
        filter,
        "metrics",
        vec![
            Box::new(metric.to_owned()),
            Box::new(model.to_owned()),
            Box::new(system.to_owned()),
        ],
    );
    client
        .query(
            &format!(
                "SELECT metrics.value FROM metrics JOIN runs ON runs.run_id = metrics.run_id
                 WHERE metrics.name = $1 AND metrics.model = $2 AND metrics.system = $3
                   AND {cond}
                 ORDER BY runs.started_at DESC, runs.run_id DESC"
            ),
            &refs(&params),
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

pub(crate) fn has_metric(client: &mut Client, metric: &str) -> Result<bool, postgres::Error> {
    Ok(client
        .query_opt("SELECT 1 FROM metrics WHERE name = $1 LIMIT 1", &[&metric])?
        .is_some())
}

pub(crate) fn metric_names(client: &mut Client) -> Result<Vec<String>, postgres::Error> {
    client
        .query(METRIC_NAMES_SQL, &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// The notification channel of recorded runs; the payload is the schema
/// recorded into, so listeners of other schemas on the same database ignore
/// it.
const CHANNEL: &str = "harness_runs";

/// A connection listening on [`CHANNEL`].
pub(crate) fn listen(url: &PostgresUrl) -> Result<Client, HistoryError> {
    let err = |source| HistoryError::Postgres {
        db: url.redacted(),
        source,
    };
    let mut config: postgres::Config = url.secret().parse().map_err(err)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let mut client = config.connect(NoTls).map_err(err)?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(err)?;
    Ok(client)
}

/// Blocks until a notification for this connection's schema arrives
/// (`true`), or the connection closes (`false`).
pub(crate) fn wait(client: &mut Client) -> Result<bool, postgres::Error> {
    let schema: String = client
        .query_one("SELECT current_schema()", &[])?
        .try_get(0)?;
    let mut notifications = client.notifications();
    let mut iter = notifications.blocking_iter();
    loop {
        match iter.next()? {
            Some(n) if n.channel() == CHANNEL && n.payload() == schema => return Ok(true),
            Some(_) => {}
            None => return Ok(false),
        }
    }
}

pub(crate) fn delete(client: &mut Client, run_id: &str) -> Result<bool, postgres::Error> {
    let mut tx = client.transaction()?;
    take_out_of_sums(&mut tx, run_id)?;
    // Metrics go with their run (ON DELETE CASCADE).
    let removed = tx.execute("DELETE FROM runs WHERE run_id = $1", &[&run_id])? > 0;
    if removed {
        tx.execute("SELECT pg_notify($1, current_schema())", &[&CHANNEL])?;
    }
    tx.commit()?;
    Ok(removed)
}

pub(crate) fn contains(client: &mut Client, run_id: &str) -> Result<bool, postgres::Error> {
    Ok(client
        .query_opt("SELECT 1 FROM runs WHERE run_id = $1", &[&run_id])?
        .is_some())
}

pub(crate) fn record_series(
    client: &mut Client,
    run_id: &str,
    points: &[SeriesPoint],
) -> Result<(), postgres::Error> {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::Type;
    let mut tx = client.transaction()?;
    tx.execute("DELETE FROM metric_series WHERE run_id = $1", &[&run_id])?;
    // COPY: a long run has tens of thousands of readings.
    let sink = tx.copy_in(
        "COPY metric_series (run_id, t_ns, source, instance, name, value) FROM STDIN BINARY",
    )?;
    let mut writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::FLOAT8,
        ],
    );
    for p in points.iter().filter(|p| p.value.is_finite()) {
        let t_ns = i64::try_from(p.t_ns).unwrap_or(i64::MAX);
        writer.write(&[&run_id, &t_ns, &p.source, &p.instance, &p.name, &p.value])?;
    }
    writer.finish()?;
    tx.commit()
}

pub(crate) fn series(
    client: &mut Client,
    run_id: &str,
    name: Option<&str>,
) -> Result<Vec<SeriesPoint>, postgres::Error> {
    let rows = client.query(
        "SELECT t_ns, source, instance, name, value FROM metric_series
         WHERE run_id = $1 AND ($2::TEXT IS NULL OR name = $2)
         ORDER BY t_ns, source, instance, name",
        &[&run_id, &name],
    )?;
    Ok(rows
        .iter()
        .map(|r| SeriesPoint {
            t_ns: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            source: r.get(1),
            instance: r.get(2),
            name: r.get(3),
            value: r.get(4),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_is_read_in_postgres_units() {
        let ms = |o: &str| statement_timeout(o).map(|d| d.as_millis());
        assert_eq!(ms("-c statement_timeout=1000"), Some(1000));
        assert_eq!(ms("-c work_mem=4MB -c statement_timeout=5s"), Some(5000));
        assert_eq!(ms("-c statement_timeout=2min"), Some(120_000));
        assert_eq!(ms("-c statement_timeout=0"), None);
        assert_eq!(ms("-c statement_timeout=soon"), None);
        assert_eq!(ms("-c work_mem=4MB"), None);
    }
}
