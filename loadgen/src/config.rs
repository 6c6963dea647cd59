//! LoadGen's configuration files (`mlperf.conf`, `user.conf`, `audit.config`),
//! parsed and applied exactly as `TestSettings::FromConfig` does.
//!
//! The grammar is LoadGen's, quirks included, because a config file must mean
//! the same thing to us as to the real LoadGen:
//!
//! * A line is split on whitespace: key, `=`, then one or more values (the
//!   last one wins). `k=v` without spaces is one token and silently ignored;
//!   `k =v` and `k= v` are errors.
//! * A token that is exactly `#` in the key or `=` position ends the line. In
//!   a value position it is an error (`k = 5 # note` is invalid), and
//!   `#note` glued to its text is a key, so `#note text` is an error too.
//! * A value must parse completely as C's `strtoul(v, 0, 0)` (decimal, `0x`
//!   hex, leading-`0` octal) or `strtod(v)` (decimals, exponents, hex floats,
//!   `inf`, `nan`).
//! * Integer settings are read with `strtoull(v, 0, 0)`, which stops at the
//!   first character it cannot use: `0.5` reads as 0 and `1.5e3` as 1.
//! * Lookup tries `model.scenario.key`, `*.scenario.key`, `model.*.key`,
//!   `*.*.key`. Unknown keys are ignored.
//! * Seeds, `accuracy_log_probability` and `test05*` are read only from
//!   `mlperf.conf`. `ttft_latency` / `tpot_latency` are read only when
//!   `use_token_latencies` is set, and always under scenario `Server`.
//! * If any line of a file is invalid, no key of that file is applied.
//! * The first `user.conf` loaded also loads the embedded `mlperf.conf` first;
//!   every later one logs "Multiple conf files are used" instead. LoadGen keeps
//!   that count in a process-wide static; here it is the state of a
//!   [`ConfigLoader`].
//!
//! Besides returning errors, LoadGen logs each problem to the detail log as
//! `error_invalid_config`; [`ConfigLoader::diagnostics`] keeps those messages,
//! verbatim, for the log writer.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::settings::{Scenario, TestMode, TestSettings, UnknownName};

/// The `mlperf.conf` LoadGen 6.0.17 embeds (`loadgen/mlperf.conf`, verbatim).
pub const MLPERF_CONF: &str = include_str!("mlperf.conf");

/// The name `mlperf.conf` goes by in messages.
const MLPERF_CONF_NAME: &str = "mlperf.conf";

/// Which kind of file `FromConfig` is reading (its `conf_type` argument).
///
/// The kind decides which keys may be set: only [`ConfType::MlperfConf`] may
/// set the RNG seeds, `accuracy_log_probability` and the `test05` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfType {
    /// `conf_type = 0`: the official `mlperf.conf`.
    MlperfConf,
    /// `conf_type = 1`: a submitter's `user.conf`.
    UserConf,
    /// `conf_type = 2`: a compliance test's `audit.config`.
    AuditConfig,
}

impl ConfType {
    /// LoadGen's integer for this kind.
    pub fn as_int(self) -> i32 {
        match self {
            ConfType::MlperfConf => 0,
            ConfType::UserConf => 1,
            ConfType::AuditConfig => 2,
        }
    }
}

/// What was wrong with one line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// A value token is neither an integer nor a double (LoadGen: "value
    /// needs to be integer or double").
    NotANumber,
    /// The token after the key is not `=` (LoadGen: "expected 'key=value'").
    ExpectedEquals,
}

/// One invalid line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: LineErrorKind,
    /// The key of the line.
    pub key: String,
    /// The offending token.
    pub token: String,
}

impl LineError {
    /// The message LoadGen logs for this line, verbatim.
    pub fn loadgen_message(&self) -> String {
        match self.kind {
            LineErrorKind::NotANumber => {
                format!("value needs to be integer or double, line={}", self.line)
            }
            LineErrorKind::ExpectedEquals => format!("expected 'key=value', line={}", self.line),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            LineErrorKind::NotANumber => write!(
                f,
                "line {}: value {:?} of key {:?} is neither an integer nor a double \
                 (comments must start a line or be a separate `#` before the `=`)",
                self.line, self.token, self.key
            ),
            LineErrorKind::ExpectedEquals => write!(
                f,
                "line {}: expected `key = value` with spaces around `=`, found {:?} after {:?}",
                self.line, self.token, self.key
            ),
        }
    }
}

/// Why a config file was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (LoadGen returns `-ENOENT`).
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Some lines are invalid, so none of the file's keys were applied
    /// (LoadGen returns `-EINVAL`).
    #[error("invalid config file {file}: {}", join_errors(.errors))]
    Syntax {
        /// The file, as named by the caller.
        file: String,
        /// Every invalid line, in file order.
        errors: Vec<LineError>,
    },
}

impl ConfigError {
    /// What LoadGen's `FromConfig` returns for this error (`-ENOENT` or `-EINVAL`).
    pub fn loadgen_return_code(&self) -> i32 {
        match self {
            ConfigError::Read { .. } => -2,
            ConfigError::Syntax { .. } => -22,
        }
    }
}

/// Errors shown in a message before the rest are only counted: a garbage
/// file must not produce a message as large as itself.
const SHOWN_ERRORS: usize = 5;

fn join_errors(errors: &[LineError]) -> String {
    let mut parts: Vec<String> = errors
        .iter()
        .take(SHOWN_ERRORS)
        .map(ToString::to_string)
        .collect();
    if errors.len() > SHOWN_ERRORS {
        parts.push(format!(
            "and {} more invalid lines",
            errors.len() - SHOWN_ERRORS
        ));
    }
    parts.join("; ")
}

/// A token quoted in a message, cut to a readable length.
fn shown_token(token: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(token);
    if text.chars().count() <= MAX {
        text.into_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// Applies config files to [`TestSettings`] with LoadGen's per-process
/// bookkeeping: the first `user.conf` pulls in `mlperf.conf`, later ones are
/// flagged as "Multiple conf files".
///
/// Use one loader per test, as LoadGen uses one process.
#[derive(Debug, Default, Clone)]
pub struct ConfigLoader {
    user_confs_loaded: u32,
    diagnostics: Vec<String>,
    warnings: Vec<String>,
}

impl ConfigLoader {
    /// A loader that has loaded nothing yet.
    pub fn new() -> Self {
        ConfigLoader::default()
    }

    /// The `error_invalid_config` messages LoadGen would have logged so far,
    /// verbatim and in order. Any of them makes a submission invalid.
    pub fn diagnostics(&self) -> &[String] {
        &self.diagnostics
    }

    /// What LoadGen accepts silently but a user most likely did not mean,
    /// one line each naming the file and line: keys no setting reads (a
    /// misspelling), keys not of the form `model.scenario.key`, and a
    /// `target_qps` that is not above 0 (LoadGen then runs at 1 QPS). The
    /// keys are still ignored, as in LoadGen.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many `user.conf` files were loaded (LoadGen's `configCount`).
    pub fn user_confs_loaded(&self) -> u32 {
        self.user_confs_loaded
    }

    /// `FromConfig(path, model, scenario)` for a `user.conf`: applies the
    /// embedded `mlperf.conf` first if this is the loader's first user.conf,
    /// then the file.
    ///
    /// As in LoadGen, `mlperf.conf` is applied (and the count advanced) even
    /// when the user file is missing or invalid; the user file's keys are
    /// applied only if every line is valid.
    pub fn user_conf(
        &mut self,
        settings: &mut TestSettings,
        path: &Path,
        model: &str,
        scenario: &str,
    ) -> Result<(), ConfigError> {
        self.before_user_conf(settings, model, scenario);
        let text = self.read(path)?;
        let name = path.display().to_string();
        self.apply(settings, &name, &text, model, scenario, ConfType::UserConf)
    }

    /// Like [`ConfigLoader::user_conf`] for text already in memory; `name`
    /// labels it in errors.
    pub fn user_conf_text(
        &mut self,
        settings: &mut TestSettings,
        name: &str,
        text: &str,
        model: &str,
        scenario: &str,
    ) -> Result<(), ConfigError> {
        self.before_user_conf(settings, model, scenario);
        self.apply(
            settings,
            name,
            text.as_bytes(),
            model,
            scenario,
            ConfType::UserConf,
        )
    }

    /// `FromConfig(path, model, scenario, 2)`: an `audit.config`. LoadGen's
    /// `StartTest` calls it with model `*` and the scenario's name.
    pub fn audit_config(
        &mut self,
        settings: &mut TestSettings,
        path: &Path,
        model: &str,
        scenario: &str,
    ) -> Result<(), ConfigError> {
        let text = self.read(path)?;
        let name = path.display().to_string();
        self.apply(
            settings,
            &name,
            &text,
            model,
            scenario,
            ConfType::AuditConfig,
        )
    }

    /// Like [`ConfigLoader::audit_config`] for text already in memory.
    pub fn audit_config_text(
        &mut self,
        settings: &mut TestSettings,
        name: &str,
        text: &str,
        model: &str,
        scenario: &str,
    ) -> Result<(), ConfigError> {
        self.apply(
            settings,
            name,
            text.as_bytes(),
            model,
            scenario,
            ConfType::AuditConfig,
        )
    }

    /// `FromConfig("", model, scenario, 0)`: applies the embedded
    /// `mlperf.conf` alone (no user.conf bookkeeping).
    pub fn mlperf_conf(&mut self, settings: &mut TestSettings, model: &str, scenario: &str) {
        // The embedded file is valid; a failure here would be a build defect,
        // and LoadGen ignores the return value at this call site too.
        let _ = self.apply(
            settings,
            MLPERF_CONF_NAME,
            MLPERF_CONF.as_bytes(),
            model,
            scenario,
            ConfType::MlperfConf,
        );
    }

    fn before_user_conf(&mut self, settings: &mut TestSettings, model: &str, scenario: &str) {
        if self.user_confs_loaded == 0 {
            self.mlperf_conf(settings, model, scenario);
        } else {
            self.diagnostics.push(
                "Multiple conf files are used. This is not valid for official submission."
                    .to_owned(),
            );
        }
        self.user_confs_loaded += 1;
    }

    fn read(&mut self, path: &Path) -> Result<Vec<u8>, ConfigError> {
        crate::input::read_limited(path, crate::input::CONF_FILE_LIMIT).map_err(|source| {
            self.diagnostics
                .push(format!("can't open file {}", path.display()));
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
        })
    }

    fn apply(
        &mut self,
        settings: &mut TestSettings,
        name: &str,
        text: &[u8],
        model: &str,
        scenario: &str,
        conf_type: ConfType,
    ) -> Result<(), ConfigError> {
        match parse_config(text) {
            Ok(kv) => {
                if conf_type != ConfType::MlperfConf {
                    self.warnings.extend(kv.suspicious_lines(name));
                }
                if let Some(message) = kv.apply(settings, model, scenario, conf_type) {
                    self.diagnostics.push(message);
                }
                Ok(())
            }
            Err(errors) => {
                self.diagnostics
                    .extend(errors.iter().map(LineError::loadgen_message));
                Err(ConfigError::Syntax {
                    file: name.to_owned(),
                    errors,
                })
            }
        }
    }
}

impl TestSettings {
    /// LoadGen's usual set-up in one call: default settings, then the
    /// embedded `mlperf.conf` and `user_conf` for `model` and `scenario`
    /// (what `settings.FromConfig(user_conf, model, scenario)` does in the
    /// reference implementations).
    ///
    /// Returns the settings and the `error_invalid_config` messages to log.
    /// The scenario field is set from `scenario`; the mode is left at its
    /// default unless the file sets `mode`.
    pub fn from_user_conf(
        user_conf: &Path,
        model: &str,
        scenario: Scenario,
    ) -> Result<(TestSettings, Vec<String>), ConfigError> {
        let mut settings = TestSettings {
            scenario,
            ..TestSettings::default()
        };
        let mut loader = ConfigLoader::new();
        loader.user_conf(&mut settings, user_conf, model, scenario.as_str())?;
        Ok((settings, loader.diagnostics))
    }
}

/// `StartTest`'s TEST05 override: when `test05` is set, the run is a
/// performance run with the `test05_*` seeds. Returns whether it applied.
///
/// LoadGen logs the warning "Test05 flag detected Overriding random seeds"
/// when it does this.
pub fn apply_test05(settings: &mut TestSettings) -> bool {
    if !settings.test05 {
        return false;
    }
    settings.mode = TestMode::PerformanceOnly;
    settings.qsl_rng_seed = settings.test05_qsl_rng_seed;
    settings.sample_index_rng_seed = settings.test05_sample_index_rng_seed;
    settings.schedule_rng_seed = settings.test05_schedule_rng_seed;
    true
}

/// Maps a user-facing benchmark name to LoadGen's config keys.
///
/// MLPerf's "Interactive" category is a Server run under the model key
/// `<model>-interactive`; every other name must be a LoadGen scenario. Returns
/// the model key and the scenario to run.
pub fn config_target(model: &str, scenario: &str) -> Result<(String, Scenario), UnknownName> {
    if scenario.eq_ignore_ascii_case("interactive") {
        let key = if model.ends_with("-interactive") {
            model.to_owned()
        } else {
            format!("{model}-interactive")
        };
        return Ok((key, Scenario::Server));
    }
    Ok((model.to_owned(), scenario.parse()?))
}

/// A parsed file: key -> the last value token assigned to it.
#[derive(Debug, Default)]
struct KeyValues {
    map: HashMap<Vec<u8>, Vec<u8>>,
    /// Each assigned key with its 1-based line, in file order.
    lines: Vec<(usize, Vec<u8>)>,
}

/// The last component of every key [`KeyValues::apply`] reads.
const KNOWN_KEYS: &[&str] = &[
    "mode",
    "qsl_rng_seed",
    "sample_index_rng_seed",
    "schedule_rng_seed",
    "accuracy_log_probability",
    "test05",
    "test05_qsl_rng_seed",
    "test05_sample_index_rng_seed",
    "test05_schedule_rng_seed",
    "use_token_latencies",
    "ttft_latency",
    "tpot_latency",
    "infer_token_latencies",
    "token_latency_scaling_factor",
    "target_latency_percentile",
    "samples_per_query",
    "target_latency",
    "performance_issue_unique",
    "performance_issue_same",
    "performance_issue_same_index",
    "sample_concatenate_permutation",
    "coalesce_queries",
    "max_async_queries",
    "min_duration",
    "max_duration",
    "min_query_count",
    "max_query_count",
    "performance_sample_count_override",
    "accuracy_sample_count_override",
    "target_qps",
    "print_timestamps",
    "accuracy_log_rng_seed",
    "accuracy_log_sampling_target",
    // In mlperf.conf; LoadGen reads it nowhere, but it is a known key.
    "target_duration",
];

/// The scenario component of a key: a LoadGen scenario or `*`.
const KNOWN_SCENARIOS: &[&str] = &["*", "SingleStream", "MultiStream", "Server", "Offline"];

/// C's `isspace` in the "C" locale, which `operator>>` splits on.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses a config file with LoadGen's grammar. Returns every invalid line
/// when there is any.
fn parse_config(text: &[u8]) -> Result<KeyValues, Vec<LineError>> {
    let mut kv = KeyValues::default();
    let mut errors = Vec::new();
    // std::getline splits on '\n' only and yields a last line without one.
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if text.last() == Some(&b'\n') || text.is_empty() {
        lines.pop();
    }
    for (i, line) in lines.into_iter().enumerate() {
        let line_nr = i + 1;
        let mut key: &[u8] = &[];
        let mut looking_for = 0; // 0 = key, 1 = '=', 2 = values
        for token in line.split(|&b| is_c_space(b)).filter(|t| !t.is_empty()) {
            if token == b"#" && looking_for != 2 {
                break;
            }
            if looking_for == 2 {
                if full_strtoul(token) || full_strtod(token) {
                    if kv.lines.last().is_none_or(|(l, _)| *l != line_nr) {
                        kv.lines.push((line_nr, key.to_vec()));
                    }
                    kv.map.insert(key.to_vec(), token.to_vec());
                    continue;
                }
                errors.push(LineError {
                    line: line_nr,
                    kind: LineErrorKind::NotANumber,
                    key: shown_token(key),
                    token: shown_token(token),
                });
                break;
            }
            if looking_for == 1 && token != b"=" {
                errors.push(LineError {
                    line: line_nr,
                    kind: LineErrorKind::ExpectedEquals,
                    key: shown_token(key),
                    token: shown_token(token),
                });
                break;
            }
            if looking_for == 0 {
                key = token;
            }
            looking_for += 1;
        }
    }
    if errors.is_empty() {
        Ok(kv)
    } else {
        Err(errors)
    }
}

impl KeyValues {
    /// The warnings of [`ConfigLoader::warnings`] for this file.
    fn suspicious_lines(&self, file: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (line, key) in &self.lines {
            let key = String::from_utf8_lossy(key);
            let parts: Vec<&str> = key.split('.').collect();
            let shown = shown_token(key.as_bytes());
            match parts.as_slice() {
                [_, scenario, name] => {
                    if !KNOWN_KEYS.contains(name) {
                        out.push(format!(
                            "{file}:{line}: unknown key {name:?} in {shown:?} is ignored \
                             (a misspelling?)"
                        ));
                    } else if !KNOWN_SCENARIOS.contains(scenario) {
                        out.push(format!(
                            "{file}:{line}: unknown scenario {scenario:?} in {shown:?}: the line \
                             is ignored (scenarios: SingleStream, MultiStream, Server, Offline, *)"
                        ));
                    } else if *name == "target_qps"
                        && let Some(value) = self.map.get(key.as_bytes())
                        && strtod(value).0 < 0.0
                    {
                        out.push(format!(
                            "{file}:{line}: {shown} = {} is negative: LoadGen ignores it and \
                             runs at 1 QPS",
                            String::from_utf8_lossy(value)
                        ));
                    }
                }
                _ => out.push(format!(
                    "{file}:{line}: key {shown:?} is ignored: keys are model.scenario.key"
                )),
            }
        }
        out
    }

    /// `lookupkv`: the value for `key` under LoadGen's precedence.
    fn lookup(&self, model: &str, scenario: &str, key: &str) -> Option<&[u8]> {
        [
            format!("{model}.{scenario}.{key}"),
            format!("*.{scenario}.{key}"),
            format!("{model}.*.{key}"),
            format!("*.*.{key}"),
        ]
        .iter()
        .find_map(|k| self.map.get(k.as_bytes()).map(Vec::as_slice))
    }

    /// An integer key: `strtoull(v, 0, 0) * multiplier`, wrapping like C.
    fn int(&self, model: &str, scenario: &str, key: &str, multiplier: u64) -> Option<u64> {
        self.lookup(model, scenario, key)
            .map(|v| strtoull(v).0.wrapping_mul(multiplier))
    }

    /// A double key: `strtod(v) * multiplier`.
    fn double(&self, model: &str, scenario: &str, key: &str, multiplier: f64) -> Option<f64> {
        self.lookup(model, scenario, key)
            .map(|v| strtod(v).0 * multiplier)
    }

    /// Applies the file's keys the way the tail of `FromConfig` does. Returns
    /// the message LoadGen logs for an invalid `mode`, if any.
    ///
    /// Mirrors LoadGen 6.0.17's `TestSettings::FromConfig`
    /// (test_settings_internal.cc), the part after parsing that applies the
    /// keys, line for line; kept in one piece so the two read side by side.
    fn apply(
        &self,
        s: &mut TestSettings,
        model: &str,
        scenario: &str,
        conf_type: ConfType,
    ) -> Option<String> {
        const MS: u64 = 1_000_000; // ms -> ns for integer keys
        const MS_F: f64 = 1_000_000.0; // ms -> ns for double keys
        const PERCENT: f64 = 0.01;
        let (m, sc) = (model, scenario);
        let set_u64 = |field: &mut u64, key: &str, mult: u64| {
            if let Some(v) = self.int(m, sc, key, mult) {
                *field = v;
            }
        };
        let set_f64 = |field: &mut f64, key: &str, mult: f64| {
            if let Some(v) = self.double(m, sc, key, mult) {
                *field = v;
            }
        };
        let set_f64_in = |field: &mut f64, scenario: &str, key: &str, mult: f64| {
            if let Some(v) = self.double(m, scenario, key, mult) {
                *field = v;
            }
        };
        let set_u64_in = |field: &mut u64, scenario: &str, key: &str, mult: u64| {
            if let Some(v) = self.int(m, scenario, key, mult) {
                *field = v;
            }
        };

        let mut diagnostic = None;
        if let Some(v) = self.int(m, sc, "mode", 1) {
            match TestMode::from_config_value(v) {
                Some(mode) => s.mode = mode,
                None => diagnostic = Some("Invalid value passed to Mode key in config.".to_owned()),
            }
        }

        if conf_type == ConfType::MlperfConf {
            set_u64(&mut s.qsl_rng_seed, "qsl_rng_seed", 1);
            set_u64(&mut s.sample_index_rng_seed, "sample_index_rng_seed", 1);
            set_u64(&mut s.schedule_rng_seed, "schedule_rng_seed", 1);
            set_f64(
                &mut s.accuracy_log_probability,
                "accuracy_log_probability",
                PERCENT,
            );
            if let Some(v) = self.int(m, sc, "test05", 1) {
                s.test05 = v == 1;
            }
            set_u64(&mut s.test05_qsl_rng_seed, "test05_qsl_rng_seed", 1);
            set_u64(
                &mut s.test05_sample_index_rng_seed,
                "test05_sample_index_rng_seed",
                1,
            );
            set_u64(
                &mut s.test05_schedule_rng_seed,
                "test05_schedule_rng_seed",
                1,
            );
        }

        if let Some(v) = self.int(m, sc, "use_token_latencies", 1) {
            s.use_token_latencies = v == 1;
        }
        if s.use_token_latencies {
            set_u64_in(&mut s.server_ttft_latency, "Server", "ttft_latency", MS);
            set_u64_in(&mut s.server_tpot_latency, "Server", "tpot_latency", MS);
        }

        if let Some(v) = self.int(m, sc, "infer_token_latencies", 1) {
            s.infer_token_latencies = v == 1;
        }
        if s.infer_token_latencies {
            set_u64(
                &mut s.token_latency_scaling_factor,
                "token_latency_scaling_factor",
                1,
            );
        }

        set_f64_in(
            &mut s.single_stream_target_latency_percentile,
            "SingleStream",
            "target_latency_percentile",
            PERCENT,
        );
        set_f64_in(
            &mut s.multi_stream_target_latency_percentile,
            "MultiStream",
            "target_latency_percentile",
            PERCENT,
        );
        set_u64_in(
            &mut s.multi_stream_samples_per_query,
            "MultiStream",
            "samples_per_query",
            1,
        );
        set_f64_in(
            &mut s.server_target_latency_percentile,
            "Server",
            "target_latency_percentile",
            PERCENT,
        );
        set_u64_in(
            &mut s.server_target_latency_ns,
            "Server",
            "target_latency",
            MS,
        );

        if let Some(v) = self.int(m, sc, "performance_issue_unique", 1) {
            s.performance_issue_unique = v != 0;
        }
        if let Some(v) = self.int(m, sc, "performance_issue_same", 1) {
            s.performance_issue_same = v != 0;
        }
        set_u64(
            &mut s.performance_issue_same_index,
            "performance_issue_same_index",
            1,
        );
        if let Some(v) = self.int(m, sc, "sample_concatenate_permutation", 1) {
            s.sample_concatenate_permutation = v == 1;
        }
        if let Some(v) = self.int(m, "Server", "coalesce_queries", 1) {
            s.server_coalesce_queries = v != 0;
        }
        if let Some(v) = self.int(m, "Server", "max_async_queries", 1) {
            // LoadGen stores `int(val)` into a uint64_t: truncate to 32 bits,
            // then sign-extend.
            s.server_max_async_queries = i64::from(v as i32) as u64;
        }

        set_u64(&mut s.min_duration_ms, "min_duration", 1);
        set_u64(&mut s.max_duration_ms, "max_duration", 1);
        set_u64(&mut s.min_query_count, "min_query_count", 1);
        set_u64(&mut s.max_query_count, "max_query_count", 1);
        set_u64(
            &mut s.performance_sample_count_override,
            "performance_sample_count_override",
            1,
        );
        set_u64(
            &mut s.accuracy_sample_count_override,
            "accuracy_sample_count_override",
            1,
        );
        set_f64_in(
            &mut s.single_stream_expected_latency_ns,
            "SingleStream",
            "target_latency",
            MS_F,
        );
        set_f64_in(
            &mut s.multi_stream_expected_latency_ns,
            "MultiStream",
            "target_latency",
            MS_F,
        );
        set_f64_in(&mut s.server_target_qps, "Server", "target_qps", 1.0);
        set_f64_in(&mut s.offline_expected_qps, "Offline", "target_qps", 1.0);

        if let Some(v) = self.int(m, sc, "print_timestamps", 1) {
            s.print_timestamps = v != 0;
        }
        set_u64(&mut s.accuracy_log_rng_seed, "accuracy_log_rng_seed", 1);
        set_u64(
            &mut s.accuracy_log_sampling_target,
            "accuracy_log_sampling_target",
            1,
        );
        diagnostic
    }
}

// --- C number parsing -------------------------------------------------------
//
// LoadGen validates values with strtoul/strtod and reads them with
// strtoull/strtod, so what counts as a number, and what a number is worth, is
// glibc's definition. These functions return the value and how many bytes were
// consumed (0 when no conversion was possible), like the C `endptr`.

fn full_strtoul(token: &[u8]) -> bool {
    // strtoul and strtoull are the same function on LP64.
    strtoull(token).1 == token.len()
}

fn full_strtod(token: &[u8]) -> bool {
    strtod(token).1 == token.len()
}

fn skip_space_and_sign(s: &[u8]) -> (usize, bool) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    (i, negative)
}

fn digit_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// `strtoull(s, &end, 0)`: returns (value, bytes consumed).
fn strtoull(s: &[u8]) -> (u64, usize) {
    let (mut i, negative) = skip_space_and_sign(s);
    let mut base = 10u32;
    if i < s.len() && s[i] == b'0' {
        if i + 1 < s.len() && (s[i + 1] | 0x20) == b'x' {
            if i + 2 < s.len() && digit_value(s[i + 2]).is_some() {
                base = 16;
                i += 2;
            } else {
                // "0x" with no hex digit: glibc converts the "0" and leaves
                // the end at the 'x'.
                return (0, i + 1);
            }
        } else {
            base = 8;
        }
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < s.len() {
        let Some(d) = digit_value(s[i]).filter(|&d| d < base) else {
            break;
        };
        match value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    if overflow {
        return (u64::MAX, i);
    }
    (
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        i,
    )
}

fn eat_ascii_ci(s: &[u8], at: usize, word: &[u8]) -> bool {
    s.len() >= at + word.len() && s[at..at + word.len()].eq_ignore_ascii_case(word)
}

/// `strtod(s, &end)` in the "C" locale: returns (value, bytes consumed).
fn strtod(s: &[u8]) -> (f64, usize) {
    let (i, negative) = skip_space_and_sign(s);
    let sign = if negative { -1.0 } else { 1.0 };
    if eat_ascii_ci(s, i, b"inf") {
        let end = if eat_ascii_ci(s, i, b"infinity") {
            i + 8
        } else {
            i + 3
        };
        return (sign * f64::INFINITY, end);
    }
    if eat_ascii_ci(s, i, b"nan") {
        let mut end = i + 3;
        // An optional "(n-char-sequence)" is part of the number when closed.
        if end < s.len() && s[end] == b'(' {
            let mut j = end + 1;
            while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                j += 1;
            }
            if j < s.len() && s[j] == b')' {
                end = j + 1;
            }
        }
        let nan = if negative { -f64::NAN } else { f64::NAN };
        return (nan, end);
    }
    if i + 1 < s.len() && s[i] == b'0' && (s[i + 1] | 0x20) == b'x' {
        if let Some((value, end)) = hex_float(s, i + 2) {
            return (sign * value, end);
        }
        // "0x" not followed by a hex mantissa: only the "0" converts.
        return (sign * 0.0, i + 1);
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one digit.
    let mut j = i;
    let mut digits = 0;
    while j < s.len() && s[j].is_ascii_digit() {
        j += 1;
        digits += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    if j < s.len() && (s[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    // The slice is ASCII and in Rust's float grammar, which rounds correctly
    // like glibc.
    let text = std::str::from_utf8(&s[i..j]).unwrap_or("0");
    let value: f64 = text.parse().unwrap_or(0.0);
    (sign * value, j)
}

/// Parses a hex float mantissa and optional binary exponent starting after
/// "0x". Returns None when there is no hex digit in the mantissa.
fn hex_float(s: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut sticky = false;
    let mut any_digit = false;
    let mut push = |d: u32, fractional: bool, mantissa: &mut u64, exponent: &mut i64| {
        if *mantissa >> 60 == 0 {
            *mantissa = (*mantissa << 4) | u64::from(d);
            if fractional {
                *exponent -= 4;
            }
        } else {
            // No room left: the digit only matters for rounding.
            sticky |= d != 0;
            if !fractional {
                *exponent += 4;
            }
        }
    };
    while i < s.len() {
        let Some(d) = digit_value(s[i]) else { break };
        push(d, false, &mut mantissa, &mut exponent);
        any_digit = true;
        i += 1;
    }
    if i < s.len() && s[i] == b'.' {
        let mut j = i + 1;
        let mut frac_digit = false;
        while j < s.len() {
            let Some(d) = digit_value(s[j]) else { break };
            push(d, true, &mut mantissa, &mut exponent);
            frac_digit = true;
            j += 1;
        }
        if !any_digit && !frac_digit {
            return None;
        }
        any_digit = true;
        i = j;
    }
    if !any_digit {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        let (mut k, negative) = (i + 1, i + 1 < s.len() && s[i + 1] == b'-');
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = (e * 10 + i64::from(s[k] - b'0')).min(1 << 40);
                k += 1;
            }
            exponent += if negative { -e } else { e };
            i = k;
        }
    }
    Some((scale_binary(mantissa, exponent, sticky), i))
}

/// `mantissa * 2^exponent` rounded to nearest-even (with `sticky` standing
/// for nonzero bits below the mantissa), with gradual underflow.
fn scale_binary(mantissa: u64, exponent: i64, sticky: bool) -> f64 {
    if mantissa == 0 {
        return 0.0;
    }
    let lz = i64::from(mantissa.leading_zeros());
    let m = mantissa << lz; // leading bit at position 63
    let e = exponent - lz + 63; // value = 1.xxx * 2^e
    if e > 1023 {
        return f64::INFINITY;
    }
    // Bits of precision available: 53 for normal numbers, fewer below 2^-1022.
    let precision = if e >= -1022 { 53 } else { 53 - (-1022 - e) };
    if precision <= 0 {
        // Below half the smallest subnormal, or exactly half (ties to even 0)
        // unless more bits follow.
        let half_min = precision == 0 && (m << 1 != 0 || sticky);
        return if half_min { f64::from_bits(1) } else { 0.0 };
    }
    let drop = 64 - precision;
    let mut kept = m >> drop;
    let rest = m << precision; // the dropped bits, left-aligned
    let half = 1u64 << 63;
    if rest > half || (rest == half && (sticky || kept & 1 == 1)) {
        kept += 1;
    }
    let mut e_unit = e - (precision - 1); // exponent of kept's unit bit
    if kept >> precision != 0 {
        kept >>= 1;
        e_unit += 1;
    }
    if e_unit + precision - 1 > 1023 {
        return f64::INFINITY;
    }
    // kept < 2^53 is exact as f64; scale by powers of two in steps that
    // cannot overflow or lose bits before the final, exact result.
    let mut value = kept as f64;
    let mut k = e_unit;
    while k > 0 {
        let step = k.min(1000);
        value *= f64::from_bits(((1023 + step) as u64) << 52);
        k -= step;
    }
    while k < 0 {
        let step = (-k).min(1000);
        value /= f64::from_bits(((1023 + step) as u64) << 52);
        k += step;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelled_keys_and_negative_qps_are_warned_with_their_line() {
        let mut settings = TestSettings::default();
        let mut loader = ConfigLoader::new();
        let text = "# c\n*.Server.target_qpz = 3\nllama.Sever.min_duration = 5\nmin_duration = 1\n\
                    *.Server.target_qps = -5\n*.Server.min_query_count = 7\n";
        loader
            .user_conf_text(&mut settings, "u.conf", text, "llama", "Server")
            .unwrap();
        let w = loader.warnings();
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(
            w[0].starts_with("u.conf:2: unknown key \"target_qpz\""),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("u.conf:3: unknown scenario \"Sever\""),
            "{w:?}"
        );
        assert!(w[2].starts_with("u.conf:4: key \"min_duration\""), "{w:?}");
        assert!(
            w[3].starts_with("u.conf:5: *.Server.target_qps = -5 is negative"),
            "{w:?}"
        );
        // Still applied or ignored exactly as LoadGen does.
        assert_eq!(settings.min_query_count, 7);
    }

    #[test]
    fn a_garbage_file_gives_a_short_error() {
        let line = format!("key {}\n", "x".repeat(10_000));
        let text = line.repeat(1000);
        let mut settings = TestSettings::default();
        let e = ConfigLoader::new()
            .user_conf_text(&mut settings, "g.conf", &text, "m", "Server")
            .unwrap_err()
            .to_string();
        assert!(e.len() < 1000, "{} bytes", e.len());
        assert!(e.contains("and 995 more invalid lines"), "{e}");
    }

    fn ull(s: &str) -> (u64, usize) {
        strtoull(s.as_bytes())
    }
    fn dbl(s: &str) -> (f64, usize) {
        strtod(s.as_bytes())
    }

    #[test]
    fn strtoull_like_glibc() {
        assert_eq!(ull("42"), (42, 2));
        assert_eq!(ull("0x1F"), (31, 4));
        assert_eq!(ull("0X1f"), (31, 4));
        assert_eq!(ull("017"), (15, 3));
        assert_eq!(ull("08"), (0, 1));
        assert_eq!(ull("0x"), (0, 1));
        assert_eq!(ull("0xg"), (0, 1));
        assert_eq!(ull("-0x"), (0, 2));
        assert_eq!(ull("0.5"), (0, 1));
        assert_eq!(ull("1.5e3"), (1, 1));
        assert_eq!(ull("-1"), (u64::MAX, 2));
        assert_eq!(ull("+7"), (7, 2));
        assert_eq!(ull("abc"), (0, 0));
        assert_eq!(ull("-"), (0, 0));
        assert_eq!(ull("99999999999999999999999"), (u64::MAX, 23));
        assert_eq!(ull("-99999999999999999999999"), (u64::MAX, 24));
        assert_eq!(ull("18446744073709551615"), (u64::MAX, 20));
        assert_eq!(ull("0b1"), (0, 1));
    }

    #[test]
    fn strtod_like_glibc() {
        assert_eq!(dbl("1.5e3"), (1500.0, 5));
        assert_eq!(dbl(".5"), (0.5, 2));
        assert_eq!(dbl("5."), (5.0, 2));
        assert_eq!(dbl("1e"), (1.0, 1));
        assert_eq!(dbl("1e+"), (1.0, 1));
        assert_eq!(dbl("1E-2"), (0.01, 4));
        assert_eq!(dbl("."), (0.0, 0));
        assert_eq!(dbl("-2.5"), (-2.5, 4));
        assert_eq!(dbl("inf"), (f64::INFINITY, 3));
        assert_eq!(dbl("-Infinity"), (f64::NEG_INFINITY, 9));
        assert_eq!(dbl("infin"), (f64::INFINITY, 3));
        let (nan, n) = dbl("nan(x_1)");
        assert!(nan.is_nan());
        assert_eq!(n, 8);
        assert_eq!(dbl("nan(").1, 3);
        assert_eq!(dbl("0x10"), (16.0, 4));
        assert_eq!(dbl("0x1p3"), (8.0, 5));
        assert_eq!(dbl("0x.8"), (0.5, 4));
        assert_eq!(dbl("0x1.8p-1"), (0.75, 8));
        assert_eq!(dbl("0x1p"), (1.0, 3));
        assert_eq!(dbl("0x"), (0.0, 1));
        assert_eq!(dbl("0x.p1"), (0.0, 1));
        assert_eq!(dbl("1e400"), (f64::INFINITY, 5));
        assert_eq!(dbl("0x1p-1074"), (f64::from_bits(1), 9));
        assert_eq!(dbl("0x1p-1075").0, 0.0);
        assert_eq!(dbl("0x1.8p-1075").0, f64::from_bits(1));
        assert_eq!(dbl("0x1p1024").0, f64::INFINITY);
        assert_eq!(dbl("0x1.fffffffffffff8p0").0, 2.0);
        assert_eq!(dbl("0x1.fffffffffffff7p0").0, 1.0 + (1.0 - f64::EPSILON));
        assert_eq!(
            dbl("0x123456789abcdef0123p0").0,
            0x0123_4567_89ab_cdef_0123_u128 as f64
        );
    }

    fn user(
        text: &str,
        model: &str,
        scenario: &str,
    ) -> (TestSettings, Result<(), ConfigError>, ConfigLoader) {
        let mut s = TestSettings::default();
        let mut loader = ConfigLoader::new();
        let r = loader.user_conf_text(&mut s, "user.conf", text, model, scenario);
        (s, r, loader)
    }

    #[test]
    fn first_user_conf_loads_mlperf_conf() {
        let (s, r, loader) = user("", "llama3_1-8b", "Server");
        r.unwrap();
        assert_eq!(s.qsl_rng_seed, 2_085_463_073_848_966_840);
        assert_eq!(s.sample_index_rng_seed, 2_747_215_439_041_700_203);
        assert_eq!(s.schedule_rng_seed, 16_159_082_839_903_944_936);
        assert_eq!(s.performance_sample_count_override, 13368);
        assert!(s.sample_concatenate_permutation);
        assert!(s.use_token_latencies);
        assert_eq!(s.server_target_latency_ns, 0);
        assert_eq!(s.server_ttft_latency, 2_000_000_000);
        assert_eq!(s.server_tpot_latency, 100_000_000);
        assert_eq!(s.min_duration_ms, 600_000);
        assert!(loader.diagnostics().is_empty());
        assert_eq!(loader.user_confs_loaded(), 1);
    }

    #[test]
    fn interactive_model_keys() {
        let (model, scenario) = config_target("llama3_1-8b", "Interactive").unwrap();
        assert_eq!(
            (model.as_str(), scenario),
            ("llama3_1-8b-interactive", Scenario::Server)
        );
        let (s, r, _) = user("", &model, scenario.as_str());
        r.unwrap();
        assert_eq!(s.server_ttft_latency, 500_000_000);
        assert_eq!(s.server_tpot_latency, 30_000_000);
        assert_eq!(
            config_target("llama2-70b", "Offline").unwrap(),
            ("llama2-70b".to_owned(), Scenario::Offline)
        );
        assert!(config_target("x", "Nope").is_err());
    }

    #[test]
    fn precedence_exact_then_scenario_wildcard_then_model_wildcard() {
        let text = "*.*.min_query_count = 44\nresnet50.*.min_query_count = 33\n\
                    *.Server.min_query_count = 22\nresnet50.Server.min_query_count = 11\n";
        assert_eq!(user(text, "resnet50", "Server").0.min_query_count, 11);
        assert_eq!(user(text, "bert", "Server").0.min_query_count, 22);
        assert_eq!(user(text, "resnet50", "Offline").0.min_query_count, 33);
        assert_eq!(user(text, "bert", "Offline").0.min_query_count, 44);
    }

    #[test]
    fn integer_keys_truncate_like_strtoull() {
        let text = "*.*.min_duration = 1.5e3\n*.Server.target_latency = 0.5\n\
                    *.*.max_query_count = 0x10\n*.*.min_query_count = 010\n\
                    *.*.max_duration = 08\n";
        let (s, r, _) = user(text, "m", "Server");
        r.unwrap();
        assert_eq!(s.min_duration_ms, 1);
        assert_eq!(s.server_target_latency_ns, 0);
        assert_eq!(s.max_query_count, 16);
        assert_eq!(s.min_query_count, 8);
        assert_eq!(s.max_duration_ms, 0);
    }

    #[test]
    fn double_keys_and_multipliers() {
        let text = "*.Server.target_qps = 12.5\n*.SingleStream.target_latency = 0x1p1\n\
                    *.Server.target_latency_percentile = 97.5\n";
        let (s, _, _) = user(text, "m", "Server");
        assert_eq!(s.server_target_qps, 12.5);
        assert_eq!(s.single_stream_expected_latency_ns, 2_000_000.0);
        assert_eq!(s.server_target_latency_percentile, 97.5 * 0.01);
    }

    #[test]
    fn grammar_quirks() {
        // k=v without spaces is silently ignored; last value wins; comments.
        let text = "*.*.min_query_count=5\n*.*.max_query_count = 1 2 3\n# c\n  #  \n\n#lonely\n";
        let (s, r, loader) = user(text, "m", "Offline");
        r.unwrap();
        assert_eq!(s.min_query_count, 100);
        assert_eq!(s.max_query_count, 3);
        assert!(loader.diagnostics().is_empty());

        // A trailing comment is a value position: the whole file is rejected,
        // even its valid lines.
        let text = "*.*.max_query_count = 9\n*.*.min_query_count = 5 # why\n";
        let (s, r, loader) = user(text, "m", "Offline");
        let err = r.unwrap_err();
        assert_eq!(err.loadgen_return_code(), -22);
        assert_eq!(s.max_query_count, 0);
        assert_eq!(s.min_query_count, 100);
        assert_eq!(
            loader.diagnostics(),
            ["value needs to be integer or double, line=2"]
        );
        let msg = err.to_string();
        assert!(msg.contains("user.conf") && msg.contains("line 2"), "{msg}");

        // "#comment text": "#comment" is a key, "text" is not "=".
        let (_, r, loader) = user("#this is a comment\nk= 5\n", "m", "Offline");
        let ConfigError::Syntax { errors, .. } = r.unwrap_err() else {
            panic!("expected a syntax error")
        };
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].kind, LineErrorKind::ExpectedEquals);
        assert_eq!(
            loader.diagnostics(),
            [
                "expected 'key=value', line=1",
                "expected 'key=value', line=2"
            ]
        );
    }

    #[test]
    fn mlperf_conf_only_keys_are_ignored_elsewhere() {
        let text = "*.*.qsl_rng_seed = 1\n*.*.accuracy_log_probability = 50\n*.*.test05 = 1\n\
                    *.*.accuracy_log_rng_seed = 7\n*.*.accuracy_log_sampling_target = 9\n";
        let (s, r, _) = user(text, "m", "Offline");
        r.unwrap();
        assert_eq!(s.qsl_rng_seed, 2_085_463_073_848_966_840);
        assert_eq!(s.accuracy_log_probability, 0.0);
        assert!(!s.test05);
        assert_eq!(s.accuracy_log_rng_seed, 7);
        assert_eq!(s.accuracy_log_sampling_target, 9);
    }

    #[test]
    fn token_latencies_only_under_server_and_only_when_enabled() {
        let text = "m.*.ttft_latency = 5\nm.Offline.tpot_latency = 6\n";
        let (s, _, _) = user(text, "m", "Offline");
        assert_eq!(s.server_ttft_latency, 100_000_000);
        let text =
            "m.*.use_token_latencies = 1\nm.*.ttft_latency = 5\nm.Offline.tpot_latency = 6\n";
        let (s, _, _) = user(text, "m", "Offline");
        assert!(s.use_token_latencies);
        assert_eq!(s.server_ttft_latency, 5_000_000);
        assert_eq!(s.server_tpot_latency, 100_000_000);
    }

    #[test]
    fn second_user_conf_is_flagged_and_skips_mlperf_conf() {
        let mut s = TestSettings::default();
        let mut loader = ConfigLoader::new();
        loader
            .user_conf_text(
                &mut s,
                "a.conf",
                "*.*.min_query_count = 5\n",
                "resnet50",
                "Offline",
            )
            .unwrap();
        s.performance_sample_count_override = 0;
        loader
            .user_conf_text(
                &mut s,
                "b.conf",
                "*.*.max_query_count = 6\n",
                "resnet50",
                "Offline",
            )
            .unwrap();
        assert_eq!(s.performance_sample_count_override, 0);
        assert_eq!((s.min_query_count, s.max_query_count), (5, 6));
        assert_eq!(
            loader.diagnostics(),
            ["Multiple conf files are used. This is not valid for official submission."]
        );
    }

    #[test]
    fn missing_file_still_loads_mlperf_conf() {
        let mut s = TestSettings::default();
        let mut loader = ConfigLoader::new();
        let err = loader
            .user_conf(
                &mut s,
                Path::new("no/such/user.conf"),
                "resnet50",
                "Offline",
            )
            .unwrap_err();
        assert_eq!(err.loadgen_return_code(), -2);
        assert_eq!(s.performance_sample_count_override, 1024);
        assert_eq!(loader.diagnostics(), ["can't open file no/such/user.conf"]);
        assert!(err.to_string().contains("no/such/user.conf"));
    }

    #[test]
    fn from_user_conf_reads_a_file() {
        let path = std::env::temp_dir().join(format!(
            "loadgen-config-test-{}-user.conf",
            std::process::id()
        ));
        std::fs::write(
            &path,
            "# user.conf\nllama3_1-8b.Server.target_qps = 12.5\n*.Server.min_duration = 60000\n",
        )
        .unwrap();
        let result = TestSettings::from_user_conf(&path, "llama3_1-8b", Scenario::Server);
        std::fs::remove_file(&path).unwrap();
        let (s, diagnostics) = result.unwrap();
        assert_eq!(s.scenario, Scenario::Server);
        assert_eq!(s.server_target_qps, 12.5);
        assert_eq!(s.min_duration_ms, 60_000);
        assert_eq!(s.server_ttft_latency, 2_000_000_000);
        assert!(diagnostics.is_empty());
    }

    #[test]
    fn test05_replaces_seeds_and_mode() {
        let mut s = TestSettings {
            mode: TestMode::AccuracyOnly,
            ..TestSettings::default()
        };
        assert!(!apply_test05(&mut s));
        assert_eq!(s.mode, TestMode::AccuracyOnly);
        s.test05 = true;
        s.test05_qsl_rng_seed = 1;
        s.test05_sample_index_rng_seed = 2;
        s.test05_schedule_rng_seed = 3;
        assert!(apply_test05(&mut s));
        assert_eq!(s.mode, TestMode::PerformanceOnly);
        assert_eq!(
            (s.qsl_rng_seed, s.sample_index_rng_seed, s.schedule_rng_seed),
            (1, 2, 3)
        );
    }

    #[test]
    fn mode_and_audit_config() {
        let mut s = TestSettings::default();
        let mut loader = ConfigLoader::new();
        loader
            .audit_config_text(
                &mut s,
                "audit.config",
                "*.*.mode = 1\n*.*.min_duration = 0\n",
                "*",
                "Server",
            )
            .unwrap();
        assert_eq!(s.mode, TestMode::AccuracyOnly);
        assert_eq!(s.min_duration_ms, 0);
        assert_eq!(loader.user_confs_loaded(), 0);
        loader
            .audit_config_text(&mut s, "audit.config", "*.*.mode = 7\n", "*", "Server")
            .unwrap();
        assert_eq!(s.mode, TestMode::AccuracyOnly);
        assert_eq!(
            loader.diagnostics(),
            ["Invalid value passed to Mode key in config."]
        );
    }

    #[test]
    fn max_async_queries_goes_through_int() {
        let (s, _, _) = user("*.Server.max_async_queries = 4294967301\n", "m", "Server");
        assert_eq!(s.server_max_async_queries, 5);
        let (s, _, _) = user("*.Server.max_async_queries = 2147483648\n", "m", "Server");
        assert_eq!(s.server_max_async_queries, 0xffff_ffff_8000_0000);
    }

    #[test]
    fn embedded_mlperf_conf_parses() {
        let kv = parse_config(MLPERF_CONF.as_bytes()).unwrap();
        assert_eq!(
            kv.lookup("gptj", "Offline", "token_latency_scaling_factor"),
            Some(&b"69"[..])
        );
    }
}
