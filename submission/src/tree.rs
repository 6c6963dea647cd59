//! The v6.0 submission tree from run directories (the layout of MLCommons'
//! `submission_structure.md` and the checker's v6.0/v6.1 `*_PATH` tables):
//!
//! ```text
//! <division>/<submitter>/systems/<system>.json
//! <division>/<submitter>/src/<benchmark>/README.md
//! <division>/<submitter>/results/<system>/<benchmark>/<scenario>/
//!     performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}
//!     accuracy/{mlperf_log_summary.txt, mlperf_log_detail.txt, mlperf_log_accuracy.json, accuracy.txt}
//!     TEST06/{verify_accuracy.txt, accuracy/mlperf_log_accuracy.json}
//!     measurements.json, user.conf, mlperf.conf, README.md
//! ```
//!
//! (v6.0 keeps a scenario's measurements beside its results, and the code
//! under `src/`, where v5.x had `measurements/` and `code/`.) A run that
//! cannot belong to a valid submission is refused with the reason instead
//! of being copied: an INVALID or too short performance run, a mode the
//! tree has no place for, LoadGen errors, a failed accuracy or audit, a run
//! whose settings differ from the first run's, and, in the closed division,
//! any run not made by the official LoadGen.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::audit::AuditTest;
use crate::rules::{
    BenchmarkRules, MIN_DURATION_MS, benchmark_rules, conf_lines, model_key, settings_mismatch,
    shared_settings,
};
use crate::system::{SystemFacts, fact_fields, system_description, system_problems};

/// run.json's name for MLCommons' C++ LoadGen (`loadgen.implementation`);
/// the closed division accepts only its runs.
pub const OFFICIAL_LOADGEN: &str = "mlcommons-loadgen";

/// Fields the checker requires in `measurements.json`
/// (`SYSTEM_IMP_REQUIRED_FILES`), none of which may be empty.
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
    /// The user's values for systems/<system>.json; they win over the
    /// measured facts, and division, submitter and system_name over both.
    pub system_json: Map<String, Value>,
    /// What was measured for the description (host, NVML, backend).
    pub system_facts: SystemFacts,
    /// Values for measurements.json.
    pub measurements_json: Map<String, Value>,
    /// Place runs that break only the rules' size requirements (duration,
    /// sample counts, a gen_len sized for the full dataset), saying so: a
    /// preview of the tree from short runs, never a submission.
    pub draft: bool,
    /// The command that builds the tree, redacted (for src/'s README).
    pub command: Vec<String>,
}

/// One run directory as the submission sees it.
#[derive(Debug, Clone)]
pub struct RunLogs {
    /// The run directory.
    pub dir: PathBuf,
    /// Detail-log keys (the last value of each).
    pub detail: HashMap<String, Value>,
    /// The detail log's `error` entries, in order.
    pub errors: Vec<String>,
    /// run.json, when the directory has one.
    pub manifest: Option<Value>,
}

impl RunLogs {
    /// Reads `mlperf_log_detail.txt` and `run.json` of a run directory.
    pub fn read(dir: &Path) -> Result<RunLogs, TreeError> {
        let path = dir.join("mlperf_log_detail.txt");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut detail = HashMap::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(json) = line.strip_prefix(":::MLLOG ") else {
                continue;
            };
            let v: Value = serde_json::from_str(json).map_err(|e| TreeError::Format {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })?;
            if let (Some(key), Some(value)) = (v["key"].as_str(), v.get("value")) {
                if key == "error" {
                    errors.push(
                        value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned),
                    );
                }
                detail.insert(key.to_owned(), value.clone());
            }
        }
        let manifest_path = dir.join("run.json");
        let manifest = match std::fs::read(&manifest_path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes).map_err(|e| TreeError::Format {
                    path: manifest_path.clone(),
                    message: e.to_string(),
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&manifest_path)(e)),
        };
        Ok(RunLogs {
            dir: dir.to_owned(),
            detail,
            errors,
            manifest,
        })
    }

    fn str(&self, key: &str) -> &str {
        self.detail.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn u64(&self, key: &str) -> Option<u64> {
        self.detail.get(key).and_then(Value::as_u64)
    }

    fn manifest(&self, key: &str) -> &Value {
        self.manifest.as_ref().map_or(&Value::Null, |m| &m[key])
    }

    /// The results folder's scenario name (`Server`, `Offline`, ...;
    /// `Interactive` for a Server run under a `-interactive` model key).
    pub fn scenario(&self) -> &str {
        let scenario = self.str("effective_scenario");
        let interactive = self
            .manifest("model")
            .as_str()
            .is_some_and(|m| m.ends_with("-interactive"))
            || self.manifest("scenario") == "Interactive";
        if scenario == "Server" && interactive {
            "Interactive"
        } else {
            scenario
        }
    }

    /// The run directory's name (where a README refers to the run).
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Which LoadGen made the run: run.json's `loadgen.implementation`, or
    /// for a run.json without it, what the detail log's
    /// `loadgen_file_sha1` shows (the C++ LoadGen hashes `/loadgen.cc`).
    pub fn loadgen_implementation(&self) -> &str {
        match self.manifest("loadgen")["implementation"].as_str() {
            Some(i) => i,
            None if self.log_is_official() => OFFICIAL_LOADGEN,
            None => "harness-rust",
        }
    }

    /// `implementation version @ hash`, as the run recorded it; the detail
    /// log's `loadgen_version` when run.json has no identity.
    pub fn loadgen_identity(&self) -> String {
        let l = self.manifest("loadgen");
        let mut s = self.loadgen_implementation().to_owned();
        match l["version"].as_str().filter(|v| !v.is_empty()) {
            Some(v) => {
                let _ = write!(s, " {v}");
                if let Some(h) = l["git_hash"].as_str() {
                    let _ = write!(s, " @ {h}");
                }
            }
            None if !self.str("loadgen_version").is_empty() => {
                let _ = write!(s, " {}", self.str("loadgen_version"));
            }
            None => {}
        }
        s
    }

    fn log_is_official(&self) -> bool {
        self.detail
            .get("loadgen_file_sha1")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key("/loadgen.cc"))
    }

    /// The command line run.json recorded (redacted when it was written).
    pub fn command(&self) -> Option<String> {
        let args = self.manifest("command").as_array()?;
        let args: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
        Some(args.join(" "))
    }

    fn user_conf(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("user.conf")).ok()
    }
}

/// One run's place in the tree, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The run directory.
    pub run: PathBuf,
    /// What the run is in the tree (`performance`, `accuracy`, `TEST06`).
    pub role: String,
    /// What was written (relative paths), empty when refused.
    pub written: Vec<String>,
    /// Why the run (or part of it) was refused.
    pub refused: Vec<String>,
    /// Rules a draft tree let the run break (see [`TreeOptions::draft`]).
    pub draft: Vec<String>,
}

/// What [`build_tree`] did.
#[derive(Debug, Clone, Default)]
pub struct TreeReport {
    /// Per run.
    pub runs: Vec<Placement>,
    /// What the checker would still reject in systems/ and
    /// measurements.json, as `file: field`.
    pub missing_fields: Vec<String>,
    /// Other things said about the tree.
    pub notes: Vec<String>,
}

impl TreeReport {
    /// Whether every run found its place without a draft exception.
    pub fn all_accepted(&self) -> bool {
        self.runs
            .iter()
            .all(|r| r.refused.is_empty() && r.draft.is_empty())
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

/// What a run is, as the tree files it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Audit(AuditTest),
    Performance,
    Accuracy,
    /// SubmissionRun: accuracy then performance in one run directory.
    Both,
    Other,
}

impl Role {
    fn of(run: &RunLogs) -> Role {
        let audit = AuditTest::Test06;
        if run
            .dir
            .join(audit.name())
            .join("verify_accuracy.txt")
            .is_file()
        {
            return Role::Audit(audit);
        }
        match run.str("effective_test_mode") {
            "PerformanceOnly" => Role::Performance,
            "AccuracyOnly" => Role::Accuracy,
            "SubmissionRun" => Role::Both,
            _ => Role::Other,
        }
    }

    fn name(self) -> String {
        match self {
            Role::Audit(a) => a.name().to_owned(),
            Role::Performance => "performance".to_owned(),
            Role::Accuracy => "accuracy".to_owned(),
            Role::Both => "performance and accuracy".to_owned(),
            Role::Other => "none".to_owned(),
        }
    }

    /// The tree slots the run fills.
    fn slots(self) -> Vec<String> {
        match self {
            Role::Audit(a) => vec![a.name().to_owned()],
            Role::Performance => vec!["performance".to_owned()],
            Role::Accuracy => vec!["accuracy".to_owned()],
            Role::Both => vec!["performance".to_owned(), "accuracy".to_owned()],
            Role::Other => Vec::new(),
        }
    }

    /// Performance runs first: a scenario's user.conf is its performance
    /// run's.
    fn order(self) -> u8 {
        match self {
            Role::Performance | Role::Both => 0,
            Role::Accuracy => 1,
            Role::Audit(_) => 2,
            Role::Other => 3,
        }
    }
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
    let reference = runs.first().map(|r| {
        (
            shared_settings(
                r.manifest.as_ref(),
                r.detail.get("qsl_reported_total_count"),
            ),
            r.name(),
        )
    });
    // Per scenario: the user.conf its runs share and the slots taken.
    let mut confs: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let mut taken: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| Role::of(&runs[i]).order());
    let mut placements: Vec<Option<Placement>> = vec![None; runs.len()];
    let mut scenarios: BTreeMap<String, Vec<&RunLogs>> = BTreeMap::new();
    for i in order {
        let run = &runs[i];
        let role = Role::of(run);
        let mut placement = Placement {
            run: run.dir.clone(),
            role: role.name(),
            written: Vec::new(),
            refused: Vec::new(),
            draft: Vec::new(),
        };
        check_run(options, run, role, &mut placement)?;
        if let Some((settings, name)) = &reference {
            let mine = shared_settings(
                run.manifest.as_ref(),
                run.detail.get("qsl_reported_total_count"),
            );
            placement
                .refused
                .extend(settings_mismatch(&mine, settings, name));
        }
        let scenario = run.scenario().to_owned();
        if let Some(conf) = run.user_conf() {
            let lines = conf_lines(&conf);
            match confs.get(&scenario) {
                Some((reference, from)) if *reference != lines => placement.refused.push(format!(
                    "its user.conf differs from {from}'s, the other {scenario} runs'"
                )),
                Some(_) => {}
                None if placement.refused.is_empty() => {
                    confs.insert(scenario.clone(), (lines, run.name()));
                }
                None => {}
            }
        }
        for slot in role.slots() {
            if let Some(from) = taken.get(&(scenario.clone(), slot.clone())) {
                placement
                    .refused
                    .push(format!("{scenario} already has a {slot} run ({from})"));
            }
        }
        if placement.refused.is_empty() {
            for slot in role.slots() {
                taken.insert((scenario.clone(), slot), run.name());
            }
            place_run(&root, options, run, role, &mut placement)?;
            scenarios.entry(scenario).or_default().push(run);
        }
        placements[i] = Some(placement);
    }
    report.runs = placements.into_iter().flatten().collect();
    write_system_json(&root, options, &mut report)?;
    for (scenario, runs) in &scenarios {
        write_scenario_files(&root, options, scenario, runs, &mut report)?;
    }
    write_src_readme(&root, options, runs, &report)?;
    Ok(report)
}

/// A rule the rules' size requirements impose: refused, or in a draft tree
/// placed and said.
fn size_rule(options: &TreeOptions, placement: &mut Placement, broken: String) {
    if options.draft {
        placement.draft.push(broken);
    } else {
        placement.refused.push(broken);
    }
}

/// Everything that keeps a run out of the tree, whatever its role.
fn check_run(
    options: &TreeOptions,
    run: &RunLogs,
    role: Role,
    placement: &mut Placement,
) -> Result<(), TreeError> {
    let rules = benchmark_rules(&options.benchmark);
    let implementation = run.loadgen_implementation();
    if options.division == Division::Closed {
        if implementation != OFFICIAL_LOADGEN {
            placement.refused.push(format!(
                "closed division needs the official MLPerf LoadGen ({OFFICIAL_LOADGEN}); this run was \
                 made by {} (run it with --loadgen official, or submit it in the open division)",
                run.loadgen_identity()
            ));
        } else if !run.log_is_official() {
            placement.refused.push(
                "run.json names the official LoadGen but mlperf_log_detail.txt's loadgen_file_sha1 \
                 does not list its sources"
                    .to_owned(),
            );
        }
    }
    match run.manifest("status").as_str() {
        None | Some("complete") => {}
        Some(status) => placement
            .refused
            .push(format!("run.json says the run is {status}")),
    }
    let mode = run.str("effective_test_mode");
    let expected = model_key(&options.benchmark);
    if let Some(key) = run.manifest("model").as_str()
        && key.trim_end_matches("-interactive") != expected.trim_end_matches("-interactive")
    {
        placement.refused.push(format!(
            "the run is of LoadGen model {key:?}, not {expected:?} ({})",
            options.benchmark
        ));
    }
    if !run.errors.is_empty() && !matches!(role, Role::Audit(_)) {
        placement.refused.push(format!(
            "LoadGen logged {} error(s) (the checker rejects them): {}",
            run.errors.len(),
            run.errors[0]
        ));
    }
    match role {
        Role::Audit(audit) => check_audit(run, audit, placement)?,
        Role::Other => placement
            .refused
            .push(format!("test mode {mode:?} has no place in a submission")),
        Role::Performance => check_performance(options, run, rules, placement),
        Role::Accuracy => check_accuracy(options, run, rules, placement)?,
        Role::Both => {
            check_performance(options, run, rules, placement);
            check_accuracy(options, run, rules, placement)?;
        }
    }
    Ok(())
}

/// An audit run: its verification must have passed.
fn check_audit(
    run: &RunLogs,
    audit: AuditTest,
    placement: &mut Placement,
) -> Result<(), TreeError> {
    let verify = run.dir.join(audit.name()).join("verify_accuracy.txt");
    let text = std::fs::read_to_string(&verify).map_err(io(&verify))?;
    if !text.contains(&format!("{} verification complete", audit.name())) {
        placement
            .refused
            .push(format!("{}: verification failed", audit.name()));
    }
    Ok(())
}

/// A performance run: VALID, and as long and as large as the rules demand.
fn check_performance(
    options: &TreeOptions,
    run: &RunLogs,
    rules: Option<BenchmarkRules>,
    placement: &mut Placement,
) {
    if run.str("result_validity") != "VALID" {
        placement.refused.push(format!(
            "performance result is {}: {}",
            run.str("result_validity"),
            run.str("result_invalid_reason")
        ));
    }
    let min = run.u64("effective_min_duration_ms").unwrap_or(0);
    if min < MIN_DURATION_MS {
        size_rule(
            options,
            placement,
            format!(
                "effective_min_duration_ms {min} is below the {MIN_DURATION_MS} ms the rules require"
            ),
        );
    }
    let Some(rules) = rules else { return };
    let psc = run.u64("effective_performance_sample_count").unwrap_or(0);
    if psc < rules.performance_sample_count {
        size_rule(
            options,
            placement,
            format!(
                "effective_performance_sample_count {psc} is below the {} {} requires",
                rules.performance_sample_count, options.benchmark
            ),
        );
    }
    let spq = run.u64("effective_samples_per_query").unwrap_or(0);
    if options.division == Division::Closed
        && run.scenario() == "Offline"
        && spq < rules.offline_min_samples_per_query
    {
        size_rule(
            options,
            placement,
            format!(
                "Offline effective_samples_per_query {spq} is below the {} the closed division requires",
                rules.offline_min_samples_per_query
            ),
        );
    }
}

/// An accuracy run: scored by `harness accuracy`, every target met, over
/// the whole dataset.
fn check_accuracy(
    options: &TreeOptions,
    run: &RunLogs,
    rules: Option<BenchmarkRules>,
    placement: &mut Placement,
) -> Result<(), TreeError> {
    let count = run
        .u64("effective_accuracy_sample_count")
        .or_else(|| run.u64("qsl_reported_total_count"))
        .unwrap_or(0);
    if let Some(rules) = rules
        && count != rules.accuracy_sample_count
    {
        size_rule(
            options,
            placement,
            format!(
                "the accuracy run covers {count} samples, not the {} of {}'s dataset",
                rules.accuracy_sample_count, options.benchmark
            ),
        );
    }
    let acc_path = run.dir.join("accuracy.json");
    let bytes = match std::fs::read(&acc_path) {
        Ok(bytes) => bytes,
        Err(_) => {
            placement.refused.push(
                "accuracy: no accuracy.json (score the run with harness accuracy first)".to_owned(),
            );
            return Ok(());
        }
    };
    let acc: Value = serde_json::from_slice(&bytes).map_err(|e| TreeError::Format {
        path: acc_path.clone(),
        message: e.to_string(),
    })?;
    if acc["passed"] == Value::Bool(false) {
        let missed: Vec<String> = acc["checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|c| c["passed"] == Value::Bool(false))
                    .map(|c| c["target"]["metric"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        // gen_len counts characters over the whole dataset: a short run
        // misses it by its size alone.
        if !missed.is_empty() && missed.iter().all(|m| m == "gen_len") {
            size_rule(
                options,
                placement,
                "accuracy: gen_len is below its target (sized for the whole dataset)".to_owned(),
            );
        } else {
            placement.refused.push(format!(
                "accuracy: a target was missed ({}; see accuracy.json)",
                if missed.is_empty() {
                    "?".to_owned()
                } else {
                    missed.join(", ")
                }
            ));
        }
    }
    Ok(())
}

/// Copies an accepted run's logs to their places in the tree
/// (`results/<system>/<benchmark>/<scenario>/...`).
fn place_run(
    root: &Path,
    options: &TreeOptions,
    run: &RunLogs,
    role: Role,
    placement: &mut Placement,
) -> Result<(), TreeError> {
    let base = PathBuf::from("results")
        .join(&options.system)
        .join(&options.benchmark)
        .join(run.scenario());
    let mut targets: Vec<(PathBuf, PathBuf)> = Vec::new();
    let logs = ["mlperf_log_summary.txt", "mlperf_log_detail.txt"];
    if let Role::Audit(audit) = role {
        for f in ["verify_accuracy.txt", "accuracy/mlperf_log_accuracy.json"] {
            targets.push((
                run.dir.join(audit.name()).join(f),
                base.join(audit.name()).join(f),
            ));
        }
    }
    if matches!(role, Role::Performance | Role::Both) {
        for f in logs {
            targets.push((
                run.dir.join(f),
                base.join("performance").join("run_1").join(f),
            ));
        }
    }
    if matches!(role, Role::Accuracy | Role::Both) {
        for f in logs.into_iter().chain(["mlperf_log_accuracy.json"]) {
            targets.push((run.dir.join(f), base.join("accuracy").join(f)));
        }
        let acc_path = run.dir.join("accuracy.json");
        let bytes = std::fs::read(&acc_path).map_err(io(&acc_path))?;
        let acc: Value = serde_json::from_slice(&bytes).map_err(|e| TreeError::Format {
            path: acc_path.clone(),
            message: e.to_string(),
        })?;
        let txt = base.join("accuracy").join("accuracy.txt");
        let dest = root.join(&txt);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&dest, accuracy_txt(&acc, &options.benchmark)).map_err(io(&dest))?;
        placement.written.push(txt.display().to_string());
    }
    for (from, to) in targets {
        copy(&from, &root.join(&to))?;
        placement.written.push(to.display().to_string());
    }
    if matches!(role, Role::Accuracy | Role::Both) {
        seal_accuracy(&root.join(&base).join("accuracy"))?;
    }
    Ok(())
}

/// systems/<system>.json: required fields, measured facts, the template
/// over them, identity over all; what the checker would reject is listed.
fn write_system_json(
    root: &Path,
    options: &TreeOptions,
    report: &mut TreeReport,
) -> Result<(), TreeError> {
    let system = system_description(
        &options.system_json,
        &fact_fields(&options.system_facts),
        [
            ("division", options.division.as_str()),
            ("submitter", &options.submitter),
            ("system_name", &options.system),
        ],
    );
    for problem in system_problems(&system) {
        report
            .missing_fields
            .push(format!("systems/{}.json: {problem}", options.system));
    }
    let system_path = root
        .join("systems")
        .join(format!("{}.json", options.system));
    write_json(&system_path, &Value::Object(system))
}

/// A scenario's measurements.json, user.conf, mlperf.conf and README.md,
/// from the runs placed under it.
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
    // Runs are in placement order: performance first.
    let conf_path = dir.join("user.conf");
    match runs.iter().find(|r| r.dir.join("user.conf").is_file()) {
        Some(run) => copy(&run.dir.join("user.conf"), &conf_path)?,
        None => {
            std::fs::write(
                &conf_path,
                reconstructed_user_conf(&options.benchmark, scenario, runs),
            )
            .map_err(io(&conf_path))?;
            report.notes.push(format!(
                "{scenario}: no run directory holds its user.conf (made before `harness run` kept \
                 one); user.conf was rebuilt from the detail log's requested_* keys"
            ));
        }
    }
    if let Some(run) = runs.iter().find(|r| r.dir.join("mlperf.conf").is_file()) {
        copy(&run.dir.join("mlperf.conf"), &dir.join("mlperf.conf"))?;
    }
    let readme = dir.join("README.md");
    std::fs::write(&readme, scenario_readme(options, scenario, runs)).map_err(io(&readme))
}

/// How a scenario's results were produced, run by run.
fn scenario_readme(options: &TreeOptions, scenario: &str, runs: &[&RunLogs]) -> String {
    let mut text = format!(
        "# {} {scenario}\n\nMeasured with `harness` (src/{}/README.md says how to \
         reproduce). Runs:\n",
        options.benchmark, options.benchmark
    );
    for run in runs {
        let _ = write!(
            text,
            "\n## {} (`{}`)\n\n- LoadGen: {}\n",
            Role::of(run).name(),
            run.name(),
            run.loadgen_identity()
        );
        if let Some(v) = run.manifest("harness_version").as_str() {
            let _ = writeln!(text, "- harness: {v}");
        }
        let servers = run.manifest("config")["server"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for s in servers {
            let _ = writeln!(
                text,
                "- backend: {} (owned_by {}, version {})",
                s["url"].as_str().unwrap_or("?"),
                s["owned_by"].as_str().unwrap_or("not answered"),
                s["version"].as_str().unwrap_or("not answered")
            );
        }
        if let Some(model) = run.manifest("config")["server_model"].as_str() {
            let _ = writeln!(text, "- served model: {model}");
        }
        if let Some(command) = run.command() {
            let _ = writeln!(text, "- command:\n\n  ```sh\n  {command}\n  ```");
        }
    }
    text
}

/// src/<benchmark>/README.md: the code that made the results and how to
/// reproduce them.
fn write_src_readme(
    root: &Path,
    options: &TreeOptions,
    runs: &[RunLogs],
    report: &TreeReport,
) -> Result<(), TreeError> {
    let placed: Vec<&RunLogs> = runs
        .iter()
        .filter(|r| {
            report
                .runs
                .iter()
                .any(|p| p.run == r.dir && p.refused.is_empty())
        })
        .collect();
    let mut text = format!(
        "# {benchmark}: how these results were produced\n\n\
         The load generator is `harness`, an MLPerf-style load tester for LLM serving \
         (one binary; `cargo build --release -p harness`). Each run below is one \
         `harness run` (or `harness audit`) against the system under test; \
         `harness accuracy` scored the accuracy runs as MLCommons' evaluation script does, \
         and `harness submission` built this tree:\n\n```sh\n{}\n```\n",
        options.command.join(" "),
        benchmark = options.benchmark
    );
    let mut versions: Vec<String> = placed
        .iter()
        .filter_map(|r| r.manifest("harness_version").as_str().map(str::to_owned))
        .collect();
    versions.sort();
    versions.dedup();
    let mut loadgens: Vec<String> = placed.iter().map(|r| r.loadgen_identity()).collect();
    loadgens.sort();
    loadgens.dedup();
    let _ = writeln!(
        text,
        "\nharness version(s): {}\nLoadGen: {}",
        if versions.is_empty() {
            "not recorded".to_owned()
        } else {
            versions.join(", ")
        },
        loadgens.join(", ")
    );
    for run in &placed {
        let _ = writeln!(
            text,
            "\n## {} {} (`{}`)\n\n```sh\n{}\n```",
            run.scenario(),
            Role::of(run).name(),
            run.name(),
            run.command()
                .unwrap_or_else(|| "(no run.json: command not recorded)".to_owned())
        );
    }
    let path = root.join("src").join(&options.benchmark).join("README.md");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, text).map_err(io(&path))
}

/// A user.conf from the performance runs' `requested_*` target keys, for
/// runs that kept no copy of their own.
fn reconstructed_user_conf(benchmark: &str, scenario: &str, runs: &[&RunLogs]) -> String {
    let model = model_key(benchmark);
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
            ("effective_performance_sample_count", json!(13368)),
            ("qsl_reported_total_count", json!(13368)),
            ("effective_samples_per_query", json!(14705)),
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
            system_facts: SystemFacts::default(),
            measurements_json: Map::new(),
            draft: false,
            command: vec!["harness".into(), "submission".into()],
        }
    }

    /// A run directory with a detail log, run.json and user.conf.
    fn run_dir(
        parent: &Path,
        name: &str,
        pairs: &[(&str, Value)],
        manifest: &Value,
        user_conf: &str,
    ) -> RunLogs {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        detail(&dir, pairs);
        std::fs::write(dir.join("run.json"), manifest.to_string()).unwrap();
        std::fs::write(dir.join("user.conf"), user_conf).unwrap();
        std::fs::write(dir.join("mlperf.conf"), "# mlperf.conf\n").unwrap();
        RunLogs::read(&dir).unwrap()
    }

    fn official(mode: &str) -> Vec<(&'static str, Value)> {
        let mut pairs = ours(mode, "VALID", 600_000);
        pairs[3] = ("loadgen_version", json!("6.0.17 @ d6147c7eb7"));
        pairs[4] = ("loadgen_file_sha1", json!({"/loadgen.cc": "ab"}));
        pairs
    }

    fn manifest(implementation: &str, server_model: &str) -> Value {
        json!({"model": "llama3_1-8b", "scenario": "Offline", "status": "complete",
               "harness_version": "0.1.0", "dataset": "cnn_eval.json",
               "command": ["harness", "run", "--scenario", "Offline"],
               "loadgen": {"implementation": implementation, "version": "6.0.17"},
               "config": {"server_model": server_model, "request": {"max_tokens": 128},
                          "server": [{"url": "http://gpu:8000", "owned_by": "vllm", "version": "0.9.2"}]}})
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
        assert!(reasons[3].contains("no accuracy.json"), "{reasons:?}");
        assert!(!out.join("open/Acme/results").exists(), "nothing copied");

        // Closed: a valid run of this harness's LoadGen is refused too.
        let report = build_tree(&out, &options(Division::Closed), &runs[..1]).unwrap();
        assert!(report.runs[0].refused[0].contains("official MLPerf LoadGen"));
    }

    #[test]
    fn closed_division_takes_official_loadgen_runs_and_their_own_conf_files() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = "# ours\nllama3_1-8b.Offline.target_qps = 10\n";
        let perf = run_dir(
            tmp.path(),
            "perf",
            &official("PerformanceOnly"),
            &manifest(OFFICIAL_LOADGEN, "m"),
            conf,
        );
        // run.json claims the official LoadGen; the log says otherwise.
        let liar = run_dir(
            tmp.path(),
            "liar",
            &ours("PerformanceOnly", "VALID", 600_000),
            &manifest(OFFICIAL_LOADGEN, "m"),
            conf,
        );
        let rust = run_dir(
            tmp.path(),
            "rust",
            &official("PerformanceOnly"),
            &manifest("harness-rust", "m"),
            conf,
        );
        let out = tmp.path().join("tree");
        let report = build_tree(&out, &options(Division::Closed), &[perf, liar, rust]).unwrap();
        assert!(report.runs[0].refused.is_empty(), "{report:?}");
        assert!(
            report.runs[1].refused[0].contains("does not list its sources"),
            "{report:?}"
        );
        assert!(
            report.runs[2].refused[0].contains("made by harness-rust 6.0.17"),
            "{report:?}"
        );
        let scen = out.join("closed/Acme/results/box/llama3.1-8b/Offline");
        assert_eq!(
            std::fs::read_to_string(scen.join("user.conf")).unwrap(),
            conf
        );
        assert_eq!(
            std::fs::read_to_string(scen.join("mlperf.conf")).unwrap(),
            "# mlperf.conf\n"
        );
        let readme = std::fs::read_to_string(scen.join("README.md")).unwrap();
        assert!(
            readme.contains("- LoadGen: mlcommons-loadgen 6.0.17"),
            "{readme}"
        );
        assert!(
            readme.contains("harness run --scenario Offline"),
            "{readme}"
        );
        assert!(
            readme.contains("- backend: http://gpu:8000 (owned_by vllm, version 0.9.2)"),
            "{readme}"
        );
        let src =
            std::fs::read_to_string(out.join("closed/Acme/src/llama3.1-8b/README.md")).unwrap();
        assert!(src.contains("harness submission"), "{src}");
        assert!(src.contains("## Offline performance (`perf`)"), "{src}");
        assert!(
            !src.contains("`liar`"),
            "refused runs are not listed: {src}"
        );
    }

    #[test]
    fn runs_that_differ_from_the_first_are_refused_naming_the_setting() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = "llama3_1-8b.Offline.target_qps = 10\n";
        let perf = run_dir(
            tmp.path(),
            "perf",
            &ours("PerformanceOnly", "VALID", 600_000),
            &manifest("harness-rust", "llama-8b"),
            conf,
        );
        let other_model = run_dir(
            tmp.path(),
            "acc",
            &ours("AccuracyOnly", "VALID", 600_000),
            &manifest("harness-rust", "llama-70b"),
            conf,
        );
        let other_conf = run_dir(
            tmp.path(),
            "acc2",
            &ours("AccuracyOnly", "VALID", 600_000),
            &manifest("harness-rust", "llama-8b"),
            "llama3_1-8b.Offline.target_qps = 11\n",
        );
        for acc in ["acc", "acc2"] {
            std::fs::write(
                tmp.path().join(acc).join("accuracy.json"),
                r#"{"passed": true}"#,
            )
            .unwrap();
        }
        let second_perf = run_dir(
            tmp.path(),
            "perf2",
            &ours("PerformanceOnly", "VALID", 600_000),
            &manifest("harness-rust", "llama-8b"),
            conf,
        );
        let report = build_tree(
            &tmp.path().join("tree"),
            &options(Division::Open),
            &[perf, other_model, other_conf, second_perf],
        )
        .unwrap();
        let refused = |i: usize| report.runs[i].refused.join("; ");
        assert_eq!(refused(0), "");
        assert_eq!(
            refused(1),
            "settings differ from perf: served model is \"llama-70b\" here, \"llama-8b\" there"
        );
        assert_eq!(
            refused(2),
            "its user.conf differs from perf's, the other Offline runs'"
        );
        assert_eq!(refused(3), "Offline already has a performance run (perf)");
    }

    #[test]
    fn a_draft_places_short_runs_and_says_what_they_break() {
        let tmp = tempfile::tempdir().unwrap();
        let mut pairs = ours("PerformanceOnly", "VALID", 10_000);
        pairs[0] = ("effective_performance_sample_count", json!(100));
        let perf = run_dir(
            tmp.path(),
            "perf",
            &pairs,
            &manifest("harness-rust", "m"),
            "",
        );
        let invalid = run_dir(
            tmp.path(),
            "bad",
            &ours("PerformanceOnly", "INVALID", 10_000),
            &manifest("harness-rust", "m"),
            "",
        );
        let mut opts = options(Division::Open);
        opts.draft = true;
        let out = tmp.path().join("tree");
        let report = build_tree(&out, &opts, &[perf.clone(), invalid]).unwrap();
        assert!(report.runs[0].refused.is_empty(), "{report:?}");
        assert_eq!(report.runs[0].draft.len(), 2, "{report:?}");
        assert!(report.runs[0].draft[1].contains("effective_performance_sample_count 100"));
        assert!(!report.all_accepted());
        // INVALID is never a draft exception.
        assert!(report.runs[1].refused[0].contains("INVALID"), "{report:?}");
        assert!(
            out.join("open/Acme/results/box/llama3.1-8b/Offline/performance/run_1")
                .is_dir()
        );
        // Without --draft the same run is refused.
        let report = build_tree(&tmp.path().join("t2"), &options(Division::Open), &[perf]).unwrap();
        assert_eq!(report.runs[0].refused.len(), 2, "{report:?}");
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
