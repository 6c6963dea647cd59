//! `harness sweep`: a grid of ordinary runs over settings, recorded in
//! `sweep.json` (rewritten atomically after every point, so an interrupted
//! sweep resumes with `--resume`) and tabulated in `sweep.csv`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::cli::{RunArgs, ScenarioArg, SweepArgs};
use crate::outcome::Outcome;
use crate::screen::KeyMetrics;

/// The sweep record's file name.
pub const SWEEP_FILE: &str = "sweep.json";
/// The table's file name.
pub const SWEEP_CSV: &str = "sweep.csv";

/// One dimension of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimension {
    /// What varies (`target_qps`, `conf:min_duration`, ...).
    pub name: String,
    /// Its values, as given.
    pub values: Vec<String>,
}

/// Where a point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    /// Not run yet.
    Pending,
    /// Ran to the end (VALID or not).
    Complete,
    /// Stopped by Ctrl-C: runs again on resume.
    Interrupted,
    /// Could not run (the error says why): runs again on resume.
    Failed,
}

impl PointStatus {
    /// The name used in sweep.json and sweep.csv.
    pub fn as_str(self) -> &'static str {
        match self {
            PointStatus::Pending => "pending",
            PointStatus::Complete => "complete",
            PointStatus::Interrupted => "interrupted",
            PointStatus::Failed => "failed",
        }
    }
}

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Position in the grid.
    pub index: usize,
    /// Value of each dimension, in dimension order.
    pub params: Vec<(String, String)>,
    /// Where it stands.
    pub status: PointStatus,
    /// Its run directory, relative to the sweep directory (so a sweep can
    /// be moved), once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    /// MLPerf validity, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// Why invalid, or why it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Key figures, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<KeyMetrics>,
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// Version of this file's format.
    pub format_version: u32,
    /// When the sweep began, RFC 3339.
    pub created_at: String,
    /// The command line the sweep began with (redacted): `--resume` runs
    /// the remaining points with exactly these settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The grid's dimensions.
    pub dimensions: Vec<Dimension>,
    /// Every point, in run order.
    pub points: Vec<Point>,
}

impl SweepRecord {
    fn read(dir: &Path) -> anyhow::Result<SweepRecord> {
        let path = dir.join(SWEEP_FILE);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a sweep record", path.display()))
    }

    /// Writes atomically (temporary file, then rename).
    fn write(&self, dir: &Path) -> anyhow::Result<()> {
        crate::resume::write_json_atomic(dir, SWEEP_FILE, self)
    }
}

/// Parses `NAME=V1,V2,...`.
pub fn parse_dimension(text: &str) -> anyhow::Result<Dimension> {
    let (name, values) = text
        .split_once('=')
        .with_context(|| format!("--vary {text:?}: expected NAME=V1,V2,..."))?;
    let name = name.trim().to_owned();
    const NAMES: [&str; 11] = [
        "user_conf",
        "target_qps",
        "max_tokens",
        "max_in_flight",
        "prompts_per_request",
        "scenario",
        "dataset",
        "backend",
        "model",
        "temperature",
        "top_p",
    ];
    let is_key = |prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    };
    if !NAMES.contains(&name.as_str()) && !is_key("conf:") && !is_key("extra_body:") {
        bail!(
            "--vary {text:?}: unknown setting {name:?} (one of {}, conf:KEY for a user.conf key, \
             or extra_body:KEY for a request body field)",
            NAMES.join(", ")
        );
    }
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        bail!("--vary {text:?}: no values");
    }
    Ok(Dimension { name, values })
}

/// The grid's points: the product of the dimensions, the last varying
/// fastest.
pub fn grid(dimensions: &[Dimension]) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for dimension in dimensions {
        let mut next = Vec::with_capacity(points.len() * dimension.values.len());
        for point in &points {
            for value in &dimension.values {
                let mut p = point.clone();
                p.push((dimension.name.clone(), value.clone()));
                next.push(p);
            }
        }
        points = next;
    }
    points
}

/// The run arguments of one point.
fn point_args(
    base: &RunArgs,
    params: &[(String, String)],
    sweep_dir: &Path,
    index: usize,
) -> anyhow::Result<RunArgs> {
    let mut args = base.clone();
    let mut conf_lines = Vec::new();
    let mut body_fields: Vec<(String, serde_json::Value)> = Vec::new();
    for (name, value) in params {
        let bad = |what: &str| format!("sweep point {index}: {name}={value:?} is not {what}");
        match name.as_str() {
            "target_qps" => args.target_qps = Some(value.parse().with_context(|| bad("a number"))?),
            "max_tokens" => args.max_tokens = value.parse().with_context(|| bad("an integer"))?,
            "max_in_flight" => {
                args.max_in_flight = value.parse().with_context(|| bad("an integer"))?;
            }
            "prompts_per_request" => {
                args.prompts_per_request = value.parse().with_context(|| bad("an integer"))?;
            }
            // The served model asked for (a server serving several, or a
            // backend dimension's servers each serving its own).
            "model" => args.model = Some(value.clone()),
            "scenario" => {
                args.scenario = ScenarioArg::from_str(value, true)
                    .map_err(|_| anyhow::anyhow!(bad("a scenario")))?;
            }
            "dataset" => args.dataset_path = Some(PathBuf::from(value)),
            "user_conf" => args.user_conf = Some(PathBuf::from(value)),
            "backend" => args.backends = value.split('+').map(str::to_owned).collect(),
            "temperature" | "top_p" => {
                let number: f64 = value.parse().with_context(|| bad("a number"))?;
                body_fields.push((name.clone(), serde_json::json!(number)));
            }
            other if other.starts_with("extra_body:") => {
                let key = other.trim_start_matches("extra_body:");
                // A JSON value as written (1, 0.5, true, "x", {...}); any
                // other text is a string.
                let parsed = serde_json::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
                body_fields.push((key.to_owned(), parsed));
            }
            other => {
                let key = other.strip_prefix("conf:").unwrap_or(other);
                conf_lines.push(format!("*.*.{key} = {value}"));
            }
        }
    }
    if !body_fields.is_empty() {
        // The point's request body: the sweep's --extra-body, then the
        // varied fields (they replace the harness's own, temperature and
        // top_p included).
        let mut body = match &base.extra_body {
            Some(text) => match serde_json::from_str(text) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => bail!("--extra-body {text:?} is not a JSON object"),
            },
            None => serde_json::Map::new(),
        };
        for (key, value) in body_fields {
            body.insert(key, value);
        }
        args.extra_body = Some(serde_json::Value::Object(body).to_string());
    }
    if !conf_lines.is_empty() {
        // The point's user.conf: the sweep's own, then the varied keys
        // (later lines win in LoadGen's lookup).
        let base_text = match &base.user_conf {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading --user-conf {}", path.display()))?,
            None => crate::shared::BUILTIN_USER_CONF.to_owned(),
        };
        let path = sweep_dir.join(format!("p{index:03}-user.conf"));
        let text = format!(
            "{base_text}\n# sweep point {index}\n{}\n",
            conf_lines.join("\n")
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        args.user_conf = Some(path);
    }
    if args.db.is_none() {
        // Points record where the sweep's runs would have.
        args.db = Some(crate::shared::default_db(&base.output_dir));
    }
    args.output_dir = sweep_dir.to_path_buf();
    let label: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
    args.label = Some(format!("p{index:03}-{}", label.join("-")));
    Ok(args)
}

fn write_csv(record: &SweepRecord, out: &mut impl Write) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["point"];
    header.extend(record.dimensions.iter().map(|d| d.name.as_str()));
    header.extend([
        "status",
        "valid",
        "effective_target_qps",
        "samples_per_s",
        "output_tokens_per_s",
        "failed",
        "latency_p50_ms",
        "latency_p99_ms",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "tpot_p50_ms",
        "tpot_p99_ms",
        "run_dir",
    ]);
    w.write_record(&header)?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for p in &record.points {
        let m = p.metrics.clone().unwrap_or_default();
        let mut row = vec![p.index.to_string()];
        row.extend(p.params.iter().map(|(_, v)| v.clone()));
        row.extend([
            p.status.as_str().to_owned(),
            p.valid.map(|v| v.to_string()).unwrap_or_default(),
            m.target_qps.to_string(),
            format!("{:.3}", m.samples_per_s),
            format!("{:.3}", m.output_tokens_per_s),
            m.failed.to_string(),
            opt(m.latency_p50_ms),
            opt(m.latency_p99_ms),
            opt(m.ttft_p50_ms),
            opt(m.ttft_p99_ms),
            opt(m.tpot_p50_ms),
            opt(m.tpot_p99_ms),
            p.run_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        ]);
        w.write_record(&row)?;
    }
    w.flush()
}

/// What a sweep ended with.
#[derive(Debug)]
pub struct SweepResult {
    /// A point was interrupted: the sweep stopped there.
    pub interrupted: bool,
    /// Points that could not run.
    pub failed: usize,
}

/// `harness sweep`: a failed point fails the command (exit 1), an
/// interrupted one stops it (130).
pub fn main(args: &SweepArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let result = run(args, &crate::shared::redacted_command(), out)?;
    Ok(if result.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::success_if(result.failed == 0, Outcome::Failed)
    })
}

fn dimensions_of(args: &SweepArgs) -> anyhow::Result<Vec<Dimension>> {
    if args.vary.is_empty() {
        return Err(crate::outcome::UsageError(
            "sweep needs at least one --vary NAME=V1,V2,...".into(),
        )
        .into());
    }
    args.vary.iter().map(|v| parse_dimension(v)).collect()
}

/// Runs (or resumes) a sweep.
pub fn run(
    args: &SweepArgs,
    command: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<SweepResult> {
    let mut restored = None;
    let (dir, mut record) = match &args.resume {
        Some(dir) if !SweepRecord::read(dir)?.command.is_empty() => {
            // The sweep's own settings, whatever else is on the command
            // line now (flags that differ are refused).
            let record = SweepRecord::read(dir)?;
            let mut stored: SweepArgs =
                crate::resume::restore(&record.command, command, "sweep", "sweep", dir)?;
            stored.resume = Some(dir.clone());
            // Points record where the sweep's own runs did.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                stored.run.output_dir = parent.to_path_buf();
            }
            restored = Some(stored);
            (dir.clone(), record)
        }
        Some(dir) => {
            // A sweep.json from before the command line was stored: the
            // grid must be given again.
            let dimensions = dimensions_of(args)?;
            let record = SweepRecord::read(dir)?;
            if record.dimensions != dimensions {
                bail!(
                    "--resume {}: the sweep varies {:?}, not what --vary asks now",
                    dir.display(),
                    record
                        .dimensions
                        .iter()
                        .map(|d| &d.name)
                        .collect::<Vec<_>>()
                );
            }
            (dir.clone(), record)
        }
        None => {
            let dimensions = dimensions_of(args)?;
            let label = args.run.label.clone().unwrap_or_else(|| "sweep".to_owned());
            let dir = rundir::create_run_dir(&args.run.output_dir, &label)?;
            let points = grid(&dimensions)
                .into_iter()
                .enumerate()
                .map(|(index, params)| Point {
                    index,
                    params,
                    status: PointStatus::Pending,
                    run_dir: None,
                    valid: None,
                    reasons: Vec::new(),
                    metrics: None,
                })
                .collect();
            let record = SweepRecord {
                format_version: 1,
                created_at: chrono::Local::now().to_rfc3339(),
                command: command.to_vec(),
                dimensions,
                points,
            };
            record.write(&dir)?;
            (dir, record)
        }
    };
    let args = restored.as_ref().unwrap_or(args);
    writeln!(
        out,
        "sweep {} ({} points)",
        dir.display(),
        record.points.len()
    )?;
    let mut result = SweepResult {
        interrupted: false,
        failed: 0,
    };
    for i in 0..record.points.len() {
        if record.points[i].status == PointStatus::Complete {
            continue;
        }
        let params = record.points[i].params.clone();
        let shown: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        writeln!(out, "\n== point {i}: {}", shown.join(" "))?;
        let outcome = point_args(&args.run, &params, &dir, i)
            .and_then(|point| crate::run_cmd::RunConfig::from_args(&point, command.to_vec()))
            .and_then(|config| crate::run_cmd::execute(&config, out));
        let point = &mut record.points[i];
        match outcome {
            Ok(run) => {
                point.run_dir = Some(
                    run.dir
                        .strip_prefix(&dir)
                        .map_or_else(|_| run.dir.clone(), Path::to_path_buf),
                );
                point.valid = Some(run.verdict.valid);
                point.reasons = run.verdict.reasons;
                point.metrics = Some(run.metrics);
                point.status = if run.interrupted {
                    PointStatus::Interrupted
                } else {
                    PointStatus::Complete
                };
                result.interrupted = run.interrupted;
            }
            Err(error) => {
                writeln!(out, "point {i} failed: {error:#}")?;
                point.status = PointStatus::Failed;
                point.reasons = vec![format!("{error:#}")];
                result.failed += 1;
            }
        }
        record.write(&dir)?;
        if result.interrupted {
            writeln!(
                out,
                "sweep interrupted: continue with `harness sweep --resume {}` (the sweep's own settings)",
                dir.display()
            )?;
            break;
        }
    }
    let csv_path = dir.join(SWEEP_CSV);
    let mut csv = Vec::new();
    write_csv(&record, &mut csv)?;
    std::fs::write(&csv_path, csv).with_context(|| format!("writing {}", csv_path.display()))?;
    writeln!(
        out,
        "\nwrote {} and {}",
        dir.join(SWEEP_FILE).display(),
        csv_path.display()
    )?;
    for chart in draw_charts(&record, &dir)? {
        writeln!(out, "wrote {}", chart.display())?;
    }
    Ok(result)
}

/// The completed points grouped into the lines of the sweep's charts.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries<'a> {
    /// The x axis: a varied numeric setting (`target_qps` when varied),
    /// or `None` for each point's effective target QPS.
    pub x_dimension: Option<String>,
    /// One line per combination of the other dimensions' values (server,
    /// model, sampling setting...), named by them; its points are
    /// `(x, point)` in increasing x.
    pub lines: Vec<(String, Vec<(f64, &'a Point)>)>,
}

/// Groups the completed points into one line per series, so "server A vs
/// server B over request rates" reads as two curves, not one zig-zag.
pub fn chart_series(record: &SweepRecord) -> ChartSeries<'_> {
    let numeric = |d: &Dimension| d.values.iter().all(|v| v.parse::<f64>().is_ok());
    let x_dimension = record
        .dimensions
        .iter()
        .find(|d| d.name == "target_qps")
        .or_else(|| record.dimensions.iter().find(|d| numeric(d)))
        .map(|d| d.name.clone());
    let mut lines: Vec<(String, Vec<(f64, &Point)>)> = Vec::new();
    for point in record
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Complete && p.metrics.is_some())
    {
        let x = match &x_dimension {
            Some(name) => point
                .params
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.parse::<f64>().ok()),
            None => point.metrics.as_ref().map(|m| m.target_qps),
        };
        let Some(x) = x else { continue };
        let key: Vec<String> = point
            .params
            .iter()
            .filter(|(n, _)| Some(n) != x_dimension.as_ref())
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let key = key.join(" ");
        match lines.iter_mut().find(|(k, _)| *k == key) {
            Some((_, points)) => points.push((x, point)),
            None => lines.push((key, vec![(x, point)])),
        }
    }
    for (_, points) in &mut lines {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    ChartSeries { x_dimension, lines }
}

/// The sweep's curves, one line per series: latency against achieved
/// throughput, output tokens/s and validity against the varied setting.
fn draw_charts(record: &SweepRecord, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use reports::charts::{XySeries, xy_chart};
    let grouped = chart_series(record);
    if grouped.lines.is_empty() {
        return Ok(Vec::new());
    }
    let x_name = grouped
        .x_dimension
        .clone()
        .unwrap_or_else(|| "target QPS".to_owned());
    let several = grouped.lines.len() > 1;
    let named = |line: &str, what: &str| match (several, line.is_empty()) {
        (true, false) => format!("{what} | {line}"),
        _ => what.to_owned(),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    type Pick = fn(&KeyMetrics) -> Option<f64>;
    // One series: every percentile; several: the p99s, or the lines
    // would drown each other.
    let all: [(&str, Pick); 5] = [
        ("TTFT p50", |m| m.ttft_p50_ms),
        ("TTFT p99", |m| m.ttft_p99_ms),
        ("TPOT p50", |m| m.tpot_p50_ms),
        ("TPOT p99", |m| m.tpot_p99_ms),
        ("latency p99", |m| m.latency_p99_ms),
    ];
    let stats: Vec<(&str, Pick)> = if several {
        all.into_iter()
            .filter(|(n, _)| n.ends_with("p99"))
            .collect()
    } else {
        all.to_vec()
    };
    let mut latency = Vec::new();
    let mut tokens = Vec::new();
    let mut validity = Vec::new();
    for (line, points) in &grouped.lines {
        for (stat, pick) in &stats {
            // Points in order of achieved throughput: the curve's x.
            let mut xy: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|(_, p)| {
                    let m = p.metrics.as_ref()?;
                    pick(m).map(|v| (m.samples_per_s, v))
                })
                .collect();
            xy.sort_by(|a, b| a.0.total_cmp(&b.0));
            latency.push(XySeries {
                name: named(line, stat),
                points: xy,
            });
        }
        tokens.push(XySeries {
            name: named(line, "output tokens/s"),
            points: points
                .iter()
                .filter_map(|(x, p)| p.metrics.as_ref().map(|m| (*x, m.output_tokens_per_s)))
                .collect(),
        });
        validity.push(XySeries {
            name: named(line, "VALID (1) / INVALID (0)"),
            points: points
                .iter()
                .map(|(x, p)| (*x, if p.valid == Some(true) { 1.0 } else { 0.0 }))
                .collect(),
        });
    }
    latency.retain(|s| !s.points.is_empty());
    let mut written = Vec::new();
    if !latency.is_empty() {
        let title = format!("Latency vs throughput | {name}");
        xy_chart(
            dir,
            "sweep_latency.png",
            &title,
            ("completed samples/s", "ms"),
            &latency,
        )?;
        written.push(dir.join("sweep_latency.png"));
    }
    let title = format!("Output tokens/s vs {x_name} | {name}");
    xy_chart(
        dir,
        "sweep_tokens.png",
        &title,
        (&x_name, "tokens/s"),
        &tokens,
    )?;
    written.push(dir.join("sweep_tokens.png"));
    let title = format!("Validity vs {x_name} | {name}");
    xy_chart(
        dir,
        "sweep_validity.png",
        &title,
        (&x_name, "valid"),
        &validity,
    )?;
    written.push(dir.join("sweep_validity.png"));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_the_product_with_the_last_dimension_fastest() {
        let dims = vec![
            parse_dimension("target_qps=1,2").unwrap(),
            parse_dimension("conf:min_duration=100, 200,300").unwrap(),
        ];
        let points = grid(&dims);
        assert_eq!(points.len(), 6);
        assert_eq!(
            points[0],
            vec![
                ("target_qps".into(), "1".into()),
                ("conf:min_duration".into(), "100".into())
            ]
        );
        assert_eq!(
            points[5],
            vec![
                ("target_qps".into(), "2".into()),
                ("conf:min_duration".into(), "300".into())
            ]
        );
    }

    #[test]
    fn unknown_or_empty_dimensions_are_refused_by_name() {
        assert!(
            parse_dimension("qps")
                .unwrap_err()
                .to_string()
                .contains("NAME=V1")
        );
        assert!(
            parse_dimension("speed=1")
                .unwrap_err()
                .to_string()
                .contains("unknown setting \"speed\"")
        );
        assert!(
            parse_dimension("target_qps=")
                .unwrap_err()
                .to_string()
                .contains("no values")
        );
        assert!(parse_dimension("conf:bad key=1").is_err());
    }

    fn point(index: usize, params: &[(&str, &str)], qps: f64) -> Point {
        Point {
            index,
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            status: PointStatus::Complete,
            run_dir: None,
            valid: Some(true),
            reasons: Vec::new(),
            metrics: Some(KeyMetrics {
                target_qps: qps,
                ..KeyMetrics::default()
            }),
        }
    }

    #[test]
    fn charts_draw_one_line_per_server_in_increasing_rate() {
        let dims = vec![
            parse_dimension("backend=http://a,http://b").unwrap(),
            parse_dimension("target_qps=4,1,2").unwrap(),
        ];
        let points: Vec<Point> = grid(&dims)
            .iter()
            .enumerate()
            .map(|(i, params)| {
                let p: Vec<(&str, &str)> = params
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                point(i, &p, 0.0)
            })
            .collect();
        let mut record = SweepRecord {
            format_version: 1,
            created_at: String::new(),
            command: Vec::new(),
            dimensions: dims,
            points,
        };
        record.points[5].status = PointStatus::Interrupted;
        let grouped = chart_series(&record);
        assert_eq!(grouped.x_dimension.as_deref(), Some("target_qps"));
        let names: Vec<&str> = grouped.lines.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["backend=http://a", "backend=http://b"]);
        let xs: Vec<Vec<f64>> = grouped
            .lines
            .iter()
            .map(|(_, pts)| pts.iter().map(|(x, _)| *x).collect())
            .collect();
        // Sorted by rate within each server; the unfinished point is left out.
        assert_eq!(xs, [vec![1.0, 2.0, 4.0], vec![1.0, 4.0]]);
    }

    #[test]
    fn without_a_numeric_dimension_the_effective_qps_is_the_axis() {
        let record = SweepRecord {
            format_version: 1,
            created_at: String::new(),
            command: Vec::new(),
            dimensions: vec![parse_dimension("scenario=Server,Offline").unwrap()],
            points: vec![
                point(0, &[("scenario", "Server")], 10.0),
                point(1, &[("scenario", "Offline")], 20.0),
            ],
        };
        let grouped = chart_series(&record);
        assert_eq!(grouped.x_dimension, None);
        assert_eq!(grouped.lines.len(), 2);
        assert_eq!(grouped.lines[1].1[0].0, 20.0);
    }

    #[test]
    fn sampling_settings_vary_through_the_request_body() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "harness",
            "sweep",
            "--vary",
            "temperature=0,0.7",
            "--extra-body",
            r#"{"top_k": 5, "temperature": 1}"#,
        ])
        .unwrap();
        let crate::cli::Command::Sweep(sweep) = cli.command else {
            panic!("not a sweep")
        };
        let dir = tempfile::tempdir().unwrap();
        let params = vec![
            ("temperature".to_owned(), "0.7".to_owned()),
            ("extra_body:repetition_penalty".to_owned(), "1.1".to_owned()),
            ("extra_body:stop".to_owned(), "[\"x\"]".to_owned()),
            ("extra_body:note".to_owned(), "plain text".to_owned()),
        ];
        let args = point_args(&sweep.run, &params, dir.path(), 0).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(args.extra_body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "top_k": 5,
                "temperature": 0.7,
                "repetition_penalty": 1.1,
                "stop": ["x"],
                "note": "plain text",
            })
        );
        assert!(parse_dimension("top_p=0.9,1").is_ok());
        let served = point_args(
            &sweep.run,
            &[("model".to_owned(), "m-8b".to_owned())],
            dir.path(),
            2,
        )
        .unwrap();
        assert_eq!(served.model.as_deref(), Some("m-8b"));
        assert!(parse_dimension("extra_body:min_p=0,0.1").is_ok());
        assert!(parse_dimension("extra_body:=1").is_err());
        let bad = point_args(
            &sweep.run,
            &[("temperature".to_owned(), "hot".to_owned())],
            dir.path(),
            1,
        );
        assert!(bad.unwrap_err().to_string().contains("temperature=\"hot\""));
    }

    #[test]
    fn sweep_csv_quotes_fields_that_need_it_and_reads_back() {
        let record = SweepRecord {
            format_version: 1,
            created_at: String::new(),
            command: Vec::new(),
            dimensions: vec![parse_dimension("scenario=Server,Offline").unwrap()],
            points: vec![
                point(0, &[("scenario", "a,\"b\"")], 10.0),
                point(1, &[("scenario", "plain")], 20.0),
            ],
        };
        let mut out = Vec::new();
        write_csv(&record, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\n0,\"a,\"\"b\"\"\","), "{text}");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        assert_eq!(&header[0], "point");
        assert_eq!(&header[1], "scenario");
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][1], "a,\"b\"");
        assert_eq!(&rows[1][1], "plain");
        assert!(rows.iter().all(|r| r.len() == header.len()));
    }
}
