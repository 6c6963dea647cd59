//! The v6.0 submission tree from run directories:
//!
//! ```text
//! <division>/<submitter>/systems/<system>.json
//! <division>/<submitter>/results/<system>/<benchmark>/<scenario>/
//!     performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}
//!     accuracy/{mlperf_log_summary.txt, mlperf_log_detail.txt, mlperf_log_accuracy.json, accuracy.txt}
//!     TEST06/{verify_accuracy.txt, accuracy/mlperf_log_accuracy.json}
//!     measurements.json, user.conf, README.md
//! ```
//!
//! (paths from the checker's v6.0 `*_PATH` tables). A run that cannot
//! belong to a valid submission is refused with the reason instead of being
//! copied: an INVALID or too short performance run, a mode the tree has no
//! place for, a failed accuracy or audit, and, in the closed division, any
//! run not made by the official LoadGen (these logs name this project's
//! LoadGen, which MLPerf's rules do not accept there).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::audit::AuditTest;

/// The rules' minimum run length (`TEST_DURATION_MS`).
pub const MIN_DURATION_MS: u64 = 600_000;

/// Fields the checker requires in `systems/<system>.json`
/// (`SYSTEM_DESC_REQUIRED_FIELDS`, v6.0).
pub const SYSTEM_REQUIRED_FIELDS: [&str; 35] = [
    "division",
    "submitter",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_storage_capacity",
    "host_storage_type",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "framework",
    "operating_system",
    "system_type",
    "other_software_stack",
    "host_processor_frequency",
    "host_processor_caches",
    "host_memory_configuration",
    "host_processor_interconnect",
    "host_networking",
    "host_networking_topology",
    "accelerator_frequency",
    "accelerator_host_interconnect",
    "accelerator_interconnect",
    "accelerator_interconnect_topology",
    "accelerator_memory_configuration",
    "accelerator_on-chip_memories",
    "cooling",
    "hw_notes",
    "sw_notes",
    "host_network_card_count",
    "system_type_detail",
];

/// Fields the checker requires in `measurements.json`
/// (`SYSTEM_IMP_REQUIRED_FILES`).
pub const MEASUREMENTS_REQUIRED_FIELDS: [&str; 5] = [
    "input_data_types",
    "retraining",
    "starting_weights_filename",
    "weight_data_types",
    "weight_transformations",
];

/// Why the tree could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Closed or open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Division {
    /// Closed: the official LoadGen, the reference model, audits.
    Closed,
    /// Open.
    Open,
}

impl Division {
    /// `closed` / `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Division::Closed => "closed",
            Division::Open => "open",
        }
    }
}

/// What the tree is built for.
#[derive(Debug, Clone)]
pub struct TreeOptions {
    /// Division.
    pub division: Division,
    /// Submitter (organisation) name.
    pub submitter: String,
    /// System name (the systems/ file and results/ folder).
    pub system: String,
    /// Benchmark as the checker names it (`llama3.1-8b`, `llama2-70b-99`...).
    pub benchmark: String,
    /// Values for systems/<system>.json (a template the user completes);
    /// division, submitter and system_name are filled in.
    pub system_json: Map<String, Value>,
    /// Values for measurements.json.
    pub measurements_json: Map<String, Value>,
}

/// One run directory as the submission sees it.
#[derive(Debug, Clone)]
pub struct RunLogs {
    /// The run directory.
    pub dir: PathBuf,
    /// Detail-log keys (the last value of each).
    pub detail: HashMap<String, Value>,
}

impl RunLogs {
    /// Reads `mlperf_log_detail.txt` of a run directory.
    pub fn read(dir: &Path) -> Result<RunLogs, TreeError> {
        let path = dir.join("mlperf_log_detail.txt");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut detail = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let Some(json) = line.strip_prefix(":::MLLOG ") else {
                continue;
            };
            let v: Value = serde_json::from_str(json).map_err(|e| TreeError::Format {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })?;
            if let (Some(key), Some(value)) = (v["key"].as_str(), v.get("value")) {
                detail.insert(key.to_owned(), value.clone());
            }
        }
        Ok(RunLogs {
            dir: dir.to_owned(),
            detail,
        })
    }

    fn str(&self, key: &str) -> &str {
        self.detail.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The results folder's scenario name (`Server`, `Offline`, ...).
    pub fn scenario(&self) -> &str {
        self.str("effective_scenario")
    }
}

/// One run's place in the tree, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The run directory.
    pub run: PathBuf,
    /// What was written (relative paths), empty when refused.
    pub written: Vec<String>,
    /// Why the run (or part of it) was refused.
    pub refused: Vec<String>,
}

/// What [`build_tree`] did.
#[derive(Debug, Clone, Default)]
pub struct TreeReport {
    /// Per run.
    pub runs: Vec<Placement>,
    /// Required systems/measurements fields still empty, as
    /// `file: field`.
    pub missing_fields: Vec<String>,
}

impl TreeReport {
    /// Whether every run found its place.
    pub fn all_accepted(&self) -> bool {
        self.runs.iter().all(|r| r.refused.is_empty())
    }
}

/// Python's `repr` of a float (`38.7792`, `100.0`).
fn py_float(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'E']) || !v.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// `accuracy.txt` as the reference evaluation script prints its result
/// dict, from a harness `accuracy.json`: llama3.1-8b's `evaluation.py`
/// quotes the ROUGE values (`'rouge1': '38.7792'`); llama2-70b's
/// `evaluate-accuracy.py` does not and adds `gen_tok_len` and
/// `tokens_per_sample`. Numbers print as numpy < 2 prints them (numpy 2's
/// `np.int64(...)` would not match the checker's `'gen_len':\s([\d.]+)`).
pub fn accuracy_txt(accuracy: &Value, benchmark: &str) -> String {
    let f = |k: &str| py_float(accuracy[k].as_f64().unwrap_or(0.0));
    let llama2 = benchmark.starts_with("llama2-70b");
    let q = if llama2 { "" } else { "'" };
    let mut s = format!(
        "\nResults\n\n{{'rouge1': {q}{}{q}, 'rouge2': {q}{}{q}, 'rougeL': {q}{}{q}, 'rougeLsum': {q}{}{q}, 'gen_len': {}, 'gen_num': {}",
        f("rouge1"),
        f("rouge2"),
        f("rougeL"),
        f("rougeLsum"),
        accuracy["gen_len"].as_u64().unwrap_or(0),
        accuracy["gen_num"].as_u64().unwrap_or(0),
    );
    if llama2 {
        let _ = write!(
            s,
            ", 'gen_tok_len': {}, 'tokens_per_sample': {}",
            accuracy["gen_tok_len"].as_u64().unwrap_or(0),
            f("tokens_per_sample")
        );
    }
    s.push_str("}\n");
    s
}

/// Whether the official (C++) LoadGen wrote the log: its
/// `loadgen_file_sha1` lists LoadGen's own sources (`/loadgen.cc`); this
/// project's LoadGen lists its Rust files, and older logs of it none.
fn official_loadgen(run: &RunLogs) -> bool {
    run.detail
        .get("loadgen_file_sha1")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("/loadgen.cc"))
}

/// What MLCommons' `truncate_accuracy_log.py` does to an accuracy folder
/// before submission (the checker requires its `hash=` line): appends
/// `\nhash=<sha256 of mlperf_log_accuracy.json>\n` to accuracy.txt, then
/// cuts a log of 4096 bytes or more to its first and last 4096 bytes around
/// `\n\n...\n\n`. The full log stays in the run directory.
pub fn seal_accuracy(dir: &Path) -> Result<(), TreeError> {
    use sha2::{Digest, Sha256};
    const VIEWABLE_SIZE: usize = 4096;
    let log = dir.join("mlperf_log_accuracy.json");
    let bytes = std::fs::read(&log).map_err(io(&log))?;
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(&bytes) {
        let _ = write!(hex, "{b:02x}");
    }
    let txt = dir.join("accuracy.txt");
    let mut text = std::fs::read_to_string(&txt).map_err(io(&txt))?;
    let _ = write!(text, "\nhash={hex}\n");
    std::fs::write(&txt, text).map_err(io(&txt))?;
    if bytes.len() >= VIEWABLE_SIZE {
        let mut cut = bytes[..VIEWABLE_SIZE].to_vec();
        cut.extend_from_slice(b"\n\n...\n\n");
        cut.extend_from_slice(&bytes[bytes.len() - VIEWABLE_SIZE..]);
        std::fs::write(&log, cut).map_err(io(&log))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), TreeError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::copy(from, to).map_err(io(from))?;
    Ok(())
}

/// Builds the tree under `out` from `runs`; refused runs are reported,
/// never copied.
pub fn build_tree(
    out: &Path,
    options: &TreeOptions,
    runs: &[RunLogs],
) -> Result<TreeReport, TreeError> {
    let root = out.join(options.division.as_str()).join(&options.submitter);
    let mut report = TreeReport::default();
    let mut scenarios: BTreeMap<String, Vec<&RunLogs>> = BTreeMap::new();
    for run in runs {
        let placement = place_run(&root, options, run)?;
        if placement.refused.is_empty() {
            scenarios
                .entry(run.scenario().to_owned())
                .or_default()
                .push(run);
        }
        report.runs.push(placement);
    }
    write_system_json(&root, options, &mut report)?;
    for (scenario, runs) in &scenarios {
        write_scenario_files(&root, options, scenario, runs, &mut report)?;
    }
    Ok(report)
}

/// Checks one run and, unless refused, copies its logs to their places in
/// the tree (`results/<system>/<benchmark>/<scenario>/...`).
fn place_run(root: &Path, options: &TreeOptions, run: &RunLogs) -> Result<Placement, TreeError> {
    let mut placement = Placement {
        run: run.dir.clone(),
        written: Vec::new(),
        refused: Vec::new(),
    };
    let base = PathBuf::from("results")
        .join(&options.system)
        .join(&options.benchmark)
        .join(run.scenario());
    if options.division == Division::Closed && !official_loadgen(run) {
        placement.refused.push(format!(
            "closed division needs the official MLPerf LoadGen; this run's log (loadgen_version {:?}) is from this harness's own LoadGen",
            run.str("loadgen_version")
        ));
    }
    let audit = AuditTest::Test06;
    let is_audit = run
        .dir
        .join(audit.name())
        .join("verify_accuracy.txt")
        .is_file();
    let mode = run.str("effective_test_mode");
    let mut targets: Vec<(PathBuf, PathBuf)> = Vec::new();
    if is_audit {
        targets.extend(audit_targets(run, audit, &base, &mut placement)?);
    } else {
        let performance = matches!(mode, "PerformanceOnly" | "SubmissionRun");
        let accuracy = matches!(mode, "AccuracyOnly" | "SubmissionRun");
        if !performance && !accuracy {
            placement
                .refused
                .push(format!("test mode {mode:?} has no place in a submission"));
        }
        if performance {
            targets.extend(performance_targets(run, &base, &mut placement));
        }
        if accuracy {
            targets.extend(accuracy_targets(root, options, run, &base, &mut placement)?);
        }
    }
    if placement.refused.is_empty() {
        for (from, to) in targets {
            copy(&from, &root.join(&to))?;
            placement.written.push(to.display().to_string());
        }
        let accuracy_dir = root.join(&base).join("accuracy");
        if accuracy_dir.join("accuracy.txt").is_file() {
            seal_accuracy(&accuracy_dir)?;
        }
    }
    Ok(placement)
}

/// An audit run (TEST06): refused unless its verification passed; its
/// verify_accuracy.txt and accuracy log go under `<scenario>/TEST06`.
fn audit_targets(
    run: &RunLogs,
    audit: AuditTest,
    base: &Path,
    placement: &mut Placement,
) -> Result<Vec<(PathBuf, PathBuf)>, TreeError> {
    let verify = run.dir.join(audit.name()).join("verify_accuracy.txt");
    let text = std::fs::read_to_string(&verify).map_err(io(&verify))?;
    if !text.contains(&format!("{} verification complete", audit.name())) {
        placement
            .refused
            .push(format!("{}: verification failed", audit.name()));
    }
    Ok(["verify_accuracy.txt", "accuracy/mlperf_log_accuracy.json"]
        .into_iter()
        .map(|f| {
            (
                run.dir.join(audit.name()).join(f),
                base.join(audit.name()).join(f),
            )
        })
        .collect())
}

/// A performance run: refused unless VALID and at least the rules' minimum
/// duration; its summary and detail logs go under `performance/run_1`.
fn performance_targets(
    run: &RunLogs,
    base: &Path,
    placement: &mut Placement,
) -> Vec<(PathBuf, PathBuf)> {
    if run.str("result_validity") != "VALID" {
        placement.refused.push(format!(
            "performance result is {}: {}",
            run.str("result_validity"),
            run.str("result_invalid_reason")
        ));
    }
    let min = run
        .detail
        .get("effective_min_duration_ms")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if min < MIN_DURATION_MS {
        placement.refused.push(format!(
            "effective_min_duration_ms {min} is below the {MIN_DURATION_MS} ms the rules require"
        ));
    }
    ["mlperf_log_summary.txt", "mlperf_log_detail.txt"]
        .into_iter()
        .map(|f| {
            (
                run.dir.join(f),
                base.join("performance").join("run_1").join(f),
            )
        })
        .collect()
}

/// An accuracy run: refused without a passing accuracy.json; while nothing
/// refused the run, accuracy.txt is written from it. Its logs go under
/// `accuracy`.
fn accuracy_targets(
    root: &Path,
    options: &TreeOptions,
    run: &RunLogs,
    base: &Path,
    placement: &mut Placement,
) -> Result<Vec<(PathBuf, PathBuf)>, TreeError> {
    let acc_path = run.dir.join("accuracy.json");
    match std::fs::read(&acc_path) {
        Ok(bytes) => {
            let acc: Value = serde_json::from_slice(&bytes).map_err(|e| TreeError::Format {
                path: acc_path.clone(),
                message: e.to_string(),
            })?;
            if acc["passed"] == Value::Bool(false) {
                placement
                    .refused
                    .push("accuracy: a target was missed (see accuracy.json)".to_owned());
            }
            let txt = base.join("accuracy").join("accuracy.txt");
            if placement.refused.is_empty() {
                let dest = root.join(&txt);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                std::fs::write(&dest, accuracy_txt(&acc, &options.benchmark)).map_err(io(&dest))?;
                placement.written.push(txt.display().to_string());
            }
        }
        Err(_) => placement.refused.push(
            "accuracy: no accuracy.json (score the run with harness accuracy first)".to_owned(),
        ),
    }
    Ok([
        "mlperf_log_summary.txt",
        "mlperf_log_detail.txt",
        "mlperf_log_accuracy.json",
    ]
    .into_iter()
    .map(|f| (run.dir.join(f), base.join("accuracy").join(f)))
    .collect())
}

/// systems/<system>.json: the template with identity filled in; required
/// fields left empty are reported.
fn write_system_json(
    root: &Path,
    options: &TreeOptions,
    report: &mut TreeReport,
) -> Result<(), TreeError> {
    let mut system = options.system_json.clone();
    system.insert("division".into(), options.division.as_str().into());
    system.insert("submitter".into(), options.submitter.clone().into());
    system.insert("system_name".into(), options.system.clone().into());
    for field in SYSTEM_REQUIRED_FIELDS {
        let entry = system.entry(field).or_insert_with(|| "".into());
        if entry.as_str() == Some("") {
            report
                .missing_fields
                .push(format!("systems/{}.json: {field}", options.system));
        }
    }
    let system_path = root
        .join("systems")
        .join(format!("{}.json", options.system));
    write_json(&system_path, &Value::Object(system))
}

/// A scenario's measurements.json, user.conf and README.md, from the runs
/// placed under it.
fn write_scenario_files(
    root: &Path,
    options: &TreeOptions,
    scenario: &str,
    runs: &[&RunLogs],
    report: &mut TreeReport,
) -> Result<(), TreeError> {
    let dir = root
        .join("results")
        .join(&options.system)
        .join(&options.benchmark)
        .join(scenario);
    let mut measurements = options.measurements_json.clone();
    for field in MEASUREMENTS_REQUIRED_FIELDS {
        let entry = measurements.entry(field).or_insert_with(|| "".into());
        if entry.as_str() == Some("") {
            report.missing_fields.push(format!(
                "results/{}/{}/{scenario}/measurements.json: {field}",
                options.system, options.benchmark
            ));
        }
    }
    write_json(&dir.join("measurements.json"), &Value::Object(measurements))?;
    let conf = user_conf(&options.benchmark, scenario, runs);
    let conf_path = dir.join("user.conf");
    std::fs::write(&conf_path, conf).map_err(io(&conf_path))?;
    let readme = dir.join("README.md");
    let mut text = format!(
        "# {} {scenario}\n\nRuns made with the `harness` load generator (its own LoadGen \
         reimplementation, see each mlperf_log_detail.txt's loadgen_version and \
         loadgen_file_sha1). Run directories:\n\n",
        options.benchmark
    );
    for run in runs {
        let _ = writeln!(text, "- `{}`", run.dir.display());
    }
    std::fs::write(&readme, text).map_err(io(&readme))
}

/// A user.conf from the performance runs' `requested_*` target keys (the
/// values user.conf sets); the MLPerf model key is the benchmark's
/// mlperf.conf name.
fn user_conf(benchmark: &str, scenario: &str, runs: &[&RunLogs]) -> String {
    let model = match benchmark {
        b if b.starts_with("llama3.1-8b") => "llama3_1-8b".to_owned(),
        b if b.starts_with("llama2-70b") => "llama2-70b".to_owned(),
        other => other.to_owned(),
    };
    let mut text = String::from(
        "# From the runs' mlperf_log_detail.txt requested_* keys (the settings user.conf gave).\n",
    );
    for run in runs {
        for (key, conf_key) in [
            ("requested_server_target_qps", "target_qps"),
            ("requested_offline_expected_qps", "target_qps"),
        ] {
            if let Some(v) = run.detail.get(key) {
                let _ = writeln!(text, "{model}.{scenario}.{conf_key} = {v}");
                return text;
            }
        }
    }
    text
}

fn write_json(path: &Path, value: &Value) -> Result<(), TreeError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| TreeError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail(dir: &Path, pairs: &[(&str, Value)]) {
        let mut text = String::new();
        for (k, v) in pairs {
            text.push_str(&format!(":::MLLOG {}\n", json!({"key": k, "value": v})));
        }
        std::fs::write(dir.join("mlperf_log_detail.txt"), text).unwrap();
        std::fs::write(dir.join("mlperf_log_summary.txt"), "summary\n").unwrap();
        std::fs::write(dir.join("mlperf_log_accuracy.json"), "[\n]\n").unwrap();
    }

    fn ours(mode: &str, valid: &str, min_ms: u64) -> Vec<(&'static str, Value)> {
        vec![
            ("loadgen_version", json!("0.1.0")),
            ("loadgen_file_sha1", json!({"/src/lib.rs": "ab"})),
            ("effective_scenario", json!("Offline")),
            ("effective_test_mode", json!(mode)),
            ("requested_offline_expected_qps", json!(12.5)),
            ("effective_min_duration_ms", json!(min_ms)),
            ("result_validity", json!(valid)),
            ("result_invalid_reason", json!("Reduce target QPS")),
        ]
    }

    fn options(division: Division) -> TreeOptions {
        TreeOptions {
            division,
            submitter: "Acme".into(),
            system: "box".into(),
            benchmark: "llama3.1-8b".into(),
            system_json: Map::new(),
            measurements_json: Map::new(),
        }
    }

    #[test]
    fn open_division_places_a_valid_run_and_lists_missing_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        std::fs::create_dir(&run).unwrap();
        detail(&run, &ours("PerformanceOnly", "VALID", 600_000));
        let acc = tmp.path().join("acc");
        std::fs::create_dir(&acc).unwrap();
        detail(&acc, &ours("AccuracyOnly", "VALID", 600_000));
        std::fs::write(
            acc.join("accuracy.json"),
            r#"{"rouge1": 40.1, "rouge2": 16.0, "rougeL": 25.0, "rougeLsum": 36.0,
                "gen_len": 8000000, "gen_num": 13368, "passed": true}"#,
        )
        .unwrap();
        let out = tmp.path().join("tree");
        let runs = [RunLogs::read(&run).unwrap(), RunLogs::read(&acc).unwrap()];
        let report = build_tree(&out, &options(Division::Open), &runs).unwrap();
        assert!(report.all_accepted(), "{report:?}");
        let scen = out.join("open/Acme/results/box/llama3.1-8b/Offline");
        let txt = std::fs::read_to_string(scen.join("accuracy/accuracy.txt")).unwrap();
        assert!(txt.contains("'rouge1': '40.1'"), "{txt}");
        assert!(txt.contains("\nhash="), "{txt}");
        assert!(
            scen.join("performance/run_1/mlperf_log_detail.txt")
                .is_file()
        );
        assert_eq!(
            std::fs::read_to_string(scen.join("user.conf"))
                .unwrap()
                .lines()
                .nth(1),
            Some("llama3_1-8b.Offline.target_qps = 12.5")
        );
        let system: Value =
            serde_json::from_slice(&std::fs::read(out.join("open/Acme/systems/box.json")).unwrap())
                .unwrap();
        assert_eq!(system["division"], "open");
        assert!(
            report
                .missing_fields
                .contains(&"systems/box.json: cooling".to_owned())
        );
        assert!(
            !report
                .missing_fields
                .iter()
                .any(|f| f.ends_with(": submitter"))
        );
    }

    #[test]
    fn runs_that_cannot_belong_to_a_valid_submission_are_refused_with_reasons() {
        let tmp = tempfile::tempdir().unwrap();
        let mut runs = Vec::new();
        for (i, (mode, valid, min)) in [
            ("PerformanceOnly", "INVALID", 600_000),
            ("PerformanceOnly", "VALID", 1000),
            ("FindPeakPerformance", "VALID", 600_000),
            ("AccuracyOnly", "VALID", 600_000),
        ]
        .into_iter()
        .enumerate()
        {
            let run = tmp.path().join(format!("run{i}"));
            std::fs::create_dir(&run).unwrap();
            detail(&run, &ours(mode, valid, min));
            runs.push(RunLogs::read(&run).unwrap());
        }
        let out = tmp.path().join("tree");
        let report = build_tree(&out, &options(Division::Open), &runs).unwrap();
        let reasons: Vec<&str> = report
            .runs
            .iter()
            .map(|p| p.refused.first().map_or("", String::as_str))
            .collect();
        assert!(reasons[0].starts_with("performance result is INVALID: Reduce target QPS"));
        assert!(reasons[1].contains("below the 600000 ms"));
        assert!(reasons[2].contains("has no place"));
        assert!(reasons[3].contains("no accuracy.json"));
        assert!(!out.join("open/Acme/results").exists(), "nothing copied");

        // Closed: a valid run of this harness's LoadGen is refused too.
        let report = build_tree(&out, &options(Division::Closed), &runs[..1]).unwrap();
        assert!(report.runs[0].refused[0].contains("official MLPerf LoadGen"));
    }

    #[test]
    fn sealing_adds_the_hash_line_and_truncates_like_the_script() {
        let tmp = tempfile::tempdir().unwrap();
        let log: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(tmp.path().join("mlperf_log_accuracy.json"), &log).unwrap();
        std::fs::write(tmp.path().join("accuracy.txt"), "\nResults\n\n{}\n").unwrap();
        seal_accuracy(tmp.path()).unwrap();
        // sha256 of the full log, from Python's hashlib.
        let txt = std::fs::read_to_string(tmp.path().join("accuracy.txt")).unwrap();
        assert!(txt.starts_with("\nResults\n\n{}\n\nhash="), "{txt}");
        assert_eq!(
            txt.lines().last(),
            Some("hash=5b92f844f0ed521b75688f4b6ff58e127711709613589eb6ec88fdfbbdc7dc63")
        );
        let cut = std::fs::read(tmp.path().join("mlperf_log_accuracy.json")).unwrap();
        assert_eq!(cut.len(), 4096 * 2 + 7);
        assert_eq!(&cut[..4096], &log[..4096]);
        assert_eq!(&cut[4096..4103], b"\n\n...\n\n");
        assert_eq!(&cut[4103..], &log[log.len() - 4096..]);
    }

    #[test]
    fn accuracy_txt_matches_evaluation_py() {
        let acc = json!({"rouge1": 38.7792, "rouge2": 15.9075, "rougeL": 24.4957,
                         "rougeLsum": 100.0, "gen_len": 8167644, "gen_num": 13368});
        assert_eq!(
            accuracy_txt(&acc, "llama3.1-8b"),
            "\nResults\n\n{'rouge1': '38.7792', 'rouge2': '15.9075', 'rougeL': '24.4957', \
             'rougeLsum': '100.0', 'gen_len': 8167644, 'gen_num': 13368}\n"
        );
    }
}
