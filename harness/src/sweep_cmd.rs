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
use crate::summary::KeyMetrics;

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
        let path = dir.join(SWEEP_FILE);
        let tmp = dir.join(format!(".{SWEEP_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}

/// Parses `NAME=V1,V2,...`.
pub fn parse_dimension(text: &str) -> anyhow::Result<Dimension> {
    let (name, values) = text
        .split_once('=')
        .with_context(|| format!("--vary {text:?}: expected NAME=V1,V2,..."))?;
    let name = name.trim().to_owned();
    const NAMES: [&str; 8] = [
        "user_conf",
        "target_qps",
        "max_tokens",
        "max_in_flight",
        "prompts_per_request",
        "scenario",
        "dataset",
        "backend",
    ];
    let is_conf = name.strip_prefix("conf:").is_some_and(|key| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if !NAMES.contains(&name.as_str()) && !is_conf {
        bail!(
            "--vary {text:?}: unknown setting {name:?} (one of {}, or conf:KEY)",
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
            "scenario" => {
                args.scenario = ScenarioArg::from_str(value, true)
                    .map_err(|_| anyhow::anyhow!(bad("a scenario")))?;
            }
            "dataset" => args.dataset_path = Some(PathBuf::from(value)),
            "user_conf" => args.user_conf = Some(PathBuf::from(value)),
            "backend" => args.backends = value.split('+').map(str::to_owned).collect(),
            other => {
                let key = other.strip_prefix("conf:").unwrap_or(other);
                conf_lines.push(format!("*.*.{key} = {value}"));
            }
        }
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
    let names: Vec<&str> = record.dimensions.iter().map(|d| d.name.as_str()).collect();
    writeln!(
        out,
        "point,{},status,valid,effective_target_qps,samples_per_s,output_tokens_per_s,failed,\
         latency_p50_ms,latency_p99_ms,ttft_p50_ms,ttft_p99_ms,tpot_p50_ms,tpot_p99_ms,run_dir",
        names.join(",")
    )?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for p in &record.points {
        let values: Vec<String> = p.params.iter().map(|(_, v)| csv_field(v)).collect();
        let m = p.metrics.clone().unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},{}",
            p.index,
            values.join(","),
            p.status.as_str(),
            p.valid.map(|v| v.to_string()).unwrap_or_default(),
            m.target_qps,
            m.samples_per_s,
            m.output_tokens_per_s,
            m.failed,
            opt(m.latency_p50_ms),
            opt(m.latency_p99_ms),
            opt(m.ttft_p50_ms),
            opt(m.ttft_p99_ms),
            opt(m.tpot_p50_ms),
            opt(m.tpot_p99_ms),
            p.run_dir
                .as_ref()
                .map(|d| csv_field(&d.display().to_string()))
                .unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// One CSV field, quoted as the reports' CSV files quote theirs.
fn csv_field(v: &str) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = reports::csv::field(&mut out, v);
    String::from_utf8_lossy(&out).into_owned()
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

/// Runs (or resumes) a sweep.
pub fn run(
    args: &SweepArgs,
    command: &[String],
    out: &mut dyn Write,
) -> anyhow::Result<SweepResult> {
    let dimensions = args
        .vary
        .iter()
        .map(|v| parse_dimension(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (dir, mut record) = match &args.resume {
        Some(dir) => {
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
                dimensions,
                points,
            };
            record.write(&dir)?;
            (dir, record)
        }
    };
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
                "sweep interrupted: resume with --resume {}",
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

/// The sweep's curves: latency against achieved throughput, output tokens/s
/// and validity against target QPS.
fn draw_charts(record: &SweepRecord, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use reports::charts::{XySeries, xy_chart};
    let mut done: Vec<(&Point, &KeyMetrics)> = record
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Complete)
        .filter_map(|p| p.metrics.as_ref().map(|m| (p, m)))
        .collect();
    if done.is_empty() {
        return Ok(Vec::new());
    }
    done.sort_by(|a, b| a.1.target_qps.total_cmp(&b.1.target_qps));
    let series = |name: &str, f: &dyn Fn(&KeyMetrics) -> Option<(f64, f64)>| XySeries {
        name: name.to_owned(),
        points: done.iter().filter_map(|(_, m)| f(m)).collect(),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut written = Vec::new();
    let latency: Vec<XySeries> = [
        series("TTFT p50", &|m| m.ttft_p50_ms.map(|v| (m.samples_per_s, v))),
        series("TTFT p99", &|m| m.ttft_p99_ms.map(|v| (m.samples_per_s, v))),
        series("TPOT p50", &|m| m.tpot_p50_ms.map(|v| (m.samples_per_s, v))),
        series("TPOT p99", &|m| m.tpot_p99_ms.map(|v| (m.samples_per_s, v))),
        series("latency p99", &|m| {
            m.latency_p99_ms.map(|v| (m.samples_per_s, v))
        }),
    ]
    .into_iter()
    .filter(|s| !s.points.is_empty())
    .collect();
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
    let tokens = [series("output tokens/s", &|m| {
        Some((m.target_qps, m.output_tokens_per_s))
    })];
    let title = format!("Output tokens/s vs target QPS | {name}");
    xy_chart(
        dir,
        "sweep_tokens.png",
        &title,
        ("target QPS", "tokens/s"),
        &tokens,
    )?;
    written.push(dir.join("sweep_tokens.png"));
    let validity = [XySeries {
        name: "VALID (1) / INVALID (0)".to_owned(),
        points: done
            .iter()
            .map(|(p, m)| (m.target_qps, if p.valid == Some(true) { 1.0 } else { 0.0 }))
            .collect(),
    }];
    let title = format!("Validity vs target QPS | {name}");
    xy_chart(
        dir,
        "sweep_validity.png",
        &title,
        ("target QPS", "valid"),
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

    #[test]
    fn csv_quotes_fields_that_need_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
