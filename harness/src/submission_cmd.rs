//! `harness submission`: the MLPerf v6.0 submission tree from run
//! directories (see the `submission` crate's `tree` module).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};
use submission::tree::{Division, RunLogs, TreeOptions, build_tree};

use crate::cli::{DivisionArg, SubmissionArgs};
use crate::outcome::Outcome;

/// The system description fields this machine can answer.
fn host_fields() -> anyhow::Result<Map<String, Value>> {
    let mut sys =
        sysinfo::System::new().map_err(|e| anyhow::anyhow!("--host-fields: sysinfo: {e}"))?;
    sys.refresh_cpu_all();
    sys.refresh_memory();
    let mut fields = Map::new();
    if let Some(cpu) = sys.cpus().first() {
        fields.insert(
            "host_processor_model_name".into(),
            cpu.brand().trim().into(),
        );
    }
    if let Ok(cores) = sysinfo::System::physical_core_count() {
        fields.insert("host_processor_core_count".into(), cores.into());
    }
    fields.insert(
        "host_memory_capacity".into(),
        format!("{} GB", sys.total_memory() / 1_000_000_000).into(),
    );
    if let Ok(os) = sysinfo::System::long_os_version() {
        fields.insert("operating_system".into(), os.into());
    }
    Ok(fields)
}

fn json_object(path: Option<&Path>) -> anyhow::Result<Map<String, Value>> {
    let Some(path) = path else {
        return Ok(Map::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))? {
        Value::Object(map) => Ok(map),
        _ => bail!("{}: expected a JSON object", path.display()),
    }
}

/// Builds the tree; exit 0 when every run found its place, 3 when one was
/// refused.
pub fn main(args: &SubmissionArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let options = TreeOptions {
        division: match args.division {
            DivisionArg::Closed => Division::Closed,
            DivisionArg::Open => Division::Open,
        },
        submitter: args.submitter.clone(),
        system: args.system.clone(),
        benchmark: args.benchmark.clone(),
        system_json: {
            let mut fields = if args.host_fields {
                host_fields()?
            } else {
                Map::new()
            };
            fields.extend(json_object(args.system_json.as_deref())?);
            fields
        },
        measurements_json: json_object(args.measurements_json.as_deref())?,
    };
    let runs = args
        .runs
        .iter()
        .map(|d| RunLogs::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let report = build_tree(&args.out, &options, &runs)?;
    for run in &report.runs {
        if run.refused.is_empty() {
            writeln!(out, "placed {}:", run.run.display())?;
            for w in &run.written {
                writeln!(out, "  {w}")?;
            }
        } else {
            writeln!(out, "refused {}:", run.run.display())?;
            for r in &run.refused {
                writeln!(out, "  {r}")?;
            }
        }
    }
    if !report.missing_fields.is_empty() {
        writeln!(out, "fill in before submitting:")?;
        for f in &report.missing_fields {
            writeln!(out, "  {f}")?;
        }
    }
    writeln!(
        out,
        "wrote {}",
        args.out
            .join(options.division.as_str())
            .join(&options.submitter)
            .display()
    )?;
    Ok(Outcome::success_if(report.all_accepted(), Outcome::Invalid))
}

/// `harness compare TREE_A TREE_B`: per benchmark and scenario, the two
/// trees' results and the second's speedup over the first.
pub fn compare_trees(
    trees: &[PathBuf],
    format: crate::cli::CompareFormat,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    use crate::cli::CompareFormat;
    use submission::results::{compare, read_results};
    let [a, b] = trees else {
        bail!("compare takes exactly two submission trees");
    };
    let read = |t: &Path| read_results(t).with_context(|| format!("reading {}", t.display()));
    let rows = compare(&read(a)?, &read(b)?);
    if rows.is_empty() {
        bail!(
            "no performance results under {} or {}",
            a.display(),
            b.display()
        );
    }
    let value = |e: &Option<submission::results::ResultEntry>| match e {
        Some(e) => format!("{:.2}{}", e.value, if e.valid { "" } else { " (INVALID)" }),
        None => "-".to_owned(),
    };
    let system = |e: &Option<submission::results::ResultEntry>| {
        e.as_ref().map_or("-".to_owned(), |e| e.system.clone())
    };
    let unit = |r: &submission::results::ComparedRow| {
        r.a.as_ref()
            .or(r.b.as_ref())
            .map_or(String::new(), |e| e.unit.clone())
    };
    let speedup = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.3}"));
    let header = [
        "benchmark".to_owned(),
        "scenario".to_owned(),
        "unit".to_owned(),
        format!("system A ({})", a.display()),
        "A".to_owned(),
        format!("system B ({})", b.display()),
        "B".to_owned(),
        "B/A speedup".to_owned(),
    ];
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.benchmark.clone(),
                r.scenario.clone(),
                unit(r),
                system(&r.a),
                value(&r.a),
                system(&r.b),
                value(&r.b),
                speedup(r.speedup),
            ]
        })
        .collect();
    match format {
        CompareFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        CompareFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut *out);
            for line in std::iter::once(&header).chain(&table) {
                csv.write_record(line)?;
            }
            csv.flush()?;
        }
        CompareFormat::Markdown => {
            writeln!(out, "| {} |", header.join(" | "))?;
            writeln!(out, "|{}", "---|".repeat(header.len()))?;
            for line in &table {
                writeln!(out, "| {} |", line.join(" | "))?;
            }
        }
        CompareFormat::Terminal => {
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    std::iter::once(&header)
                        .chain(&table)
                        .map(|l| l[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for line in std::iter::once(&header).chain(&table) {
                let cells: Vec<String> = line
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                writeln!(out, "{}", cells.join("  ").trim_end())?;
            }
        }
    }
    Ok(Outcome::Success)
}
