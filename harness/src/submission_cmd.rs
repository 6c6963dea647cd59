//! `harness submission`: the MLPerf v6.0 submission tree from run
//! directories (see the `submission` crate's `tree` module).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};
use submission::system::{Accelerator, AcceleratorFacts, BackendFacts, HostFacts, SystemFacts};
use submission::tree::{Division, RunLogs, TreeOptions, build_tree};

use crate::cli::{DivisionArg, SubmissionArgs};
use crate::outcome::Outcome;

/// CPU sockets: distinct `physical id`s in /proc/cpuinfo (Linux only).
fn sockets() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("physical id"))
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    u32::try_from(ids.len()).ok().filter(|&n| n > 0)
}

/// What this machine says about its host.
fn host_facts() -> anyhow::Result<HostFacts> {
    let mut sys =
        sysinfo::System::new().map_err(|e| anyhow::anyhow!("--host-fields: sysinfo: {e}"))?;
    sys.refresh_cpu_all();
    sys.refresh_memory();
    let processors = sockets();
    let cores = sysinfo::System::physical_core_count()
        .ok()
        .map(|c| c as u64);
    Ok(HostFacts {
        processor_model: sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .filter(|b| !b.is_empty()),
        processors,
        cores_per_processor: cores.map(|c| c / u64::from(processors.unwrap_or(1))),
        memory_bytes: Some(sys.total_memory()).filter(|&m| m > 0),
        os: sysinfo::System::long_os_version().ok(),
        kernel: sysinfo::System::kernel_version().ok(),
    })
}

/// The accelerators NVML sees; `Err` says why there are none.
fn accelerator_facts() -> Result<AcceleratorFacts, String> {
    use telemetry::gpu::{GpuReader, NvmlGpus};
    let mut nvml = NvmlGpus::init().map_err(|e| e.to_string())?;
    let count = nvml.device_count().map_err(|e| e.to_string())?;
    let devices = (0..count)
        .map(|i| Accelerator {
            name: nvml.device_name(i).unwrap_or_else(|| format!("GPU {i}")),
            memory_bytes: nvml.read(i).ok().and_then(|r| r.memory_total_bytes),
        })
        .collect();
    Ok(AcceleratorFacts {
        devices,
        driver: nvml.driver_version(),
    })
}

/// The serving software and the load generator, from what the first run
/// recorded (its backend's `/v1/models` owner and `/version`).
fn backend_facts(runs: &[RunLogs]) -> BackendFacts {
    let Some(run) = runs.first() else {
        return BackendFacts::default();
    };
    let manifest = run.manifest.as_ref().unwrap_or(&Value::Null);
    let server = &manifest["config"]["server"][0];
    let framework = match (server["owned_by"].as_str(), server["version"].as_str()) {
        (Some(owner), Some(version)) => Some(format!("{owner} {version}")),
        (Some(owner), None) => Some(owner.to_owned()),
        (None, Some(version)) => Some(version.to_owned()),
        (None, None) => None,
    };
    let harness = manifest["harness_version"]
        .as_str()
        .map(|v| format!("harness {v} (LoadGen: {})", run.loadgen_identity()));
    BackendFacts { framework, harness }
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
/// refused or placed only as a draft.
pub fn main(args: &SubmissionArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let runs = args
        .runs
        .iter()
        .map(|d| RunLogs::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut facts = SystemFacts {
        backend: backend_facts(&runs),
        ..SystemFacts::default()
    };
    if args.host_fields {
        facts.host = Some(host_facts()?);
        match accelerator_facts() {
            Ok(acc) => facts.accelerators = Some(acc),
            Err(why) => writeln!(out, "no accelerator fields from NVML: {why}")?,
        }
    }
    let options = TreeOptions {
        division: match args.division {
            DivisionArg::Closed => Division::Closed,
            DivisionArg::Open => Division::Open,
        },
        submitter: args.submitter.clone(),
        system: args.system.clone(),
        benchmark: args.benchmark.clone(),
        system_json: json_object(args.system_json.as_deref())?,
        system_facts: facts,
        measurements_json: json_object(args.measurements_json.as_deref())?,
        draft: args.draft,
        command: crate::shared::redacted_command(),
    };
    let report = build_tree(&args.out, &options, &runs)?;
    for run in &report.runs {
        let verb = if run.refused.is_empty() {
            "placed"
        } else {
            "refused"
        };
        writeln!(out, "{verb} {} ({}):", run.run.display(), run.role)?;
        for r in &run.refused {
            writeln!(out, "  {r}")?;
        }
        for d in &run.draft {
            writeln!(out, "  draft only: {d}")?;
        }
        if run.refused.is_empty() {
            for w in &run.written {
                writeln!(out, "  {w}")?;
            }
        }
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    if !report.missing_fields.is_empty() {
        writeln!(
            out,
            "fill in before submitting (the checker rejects these):"
        )?;
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
    if report.runs.iter().any(|r| !r.draft.is_empty()) {
        writeln!(
            out,
            "DRAFT: runs above break the rules' size requirements; this tree is a preview, not a submission"
        )?;
    }
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
