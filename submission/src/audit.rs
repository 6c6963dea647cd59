//! Compliance audits as MLCommons defines them (`compliance/` of
//! mlcommons/inference) for the LLM benchmarks.
//!
//! Which tests a benchmark needs comes from the submission checker's v6.0
//! table (`models_TEST01`, `models_TEST04`, `models_TEST06`, ...): for
//! llama3.1-8b, llama3.1-8b-interactive, llama2-70b-99, llama2-70b-99.9 and
//! their interactive variants that is TEST06 alone (TEST01/TEST04 are for
//! non-LLM models, TEST07/TEST09 for gpt-oss-120b). The checker looks for
//! `<results>/<system>/<benchmark>/<scenario>/TEST06/verify_accuracy.txt`
//! and accepts it when it holds `First token check pass: True` (or
//! `Skipped`), `EOS check pass: True` and `Sample length check pass: True`.
//!
//! TEST06 runs a performance test with `accuracy_log_sampling_target = 100`
//! (about 100 responses land in the accuracy log) and checks each logged
//! response: its first token equals the separately reported first token
//! (not in Offline), it ends in at most one EOS token, and `token_count`
//! equals its length. [`verify_test06`] does what
//! `compliance/TEST06/run_verification.py` does, quirks included (see its
//! docs), and [`Test06Report::render`] writes its `verify_accuracy.txt`
//! byte for byte.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A compliance test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditTest {
    /// TEST06: LLM output consistency (first token, EOS, output length).
    Test06,
}

impl AuditTest {
    /// Every test this crate runs.
    pub const ALL: [AuditTest; 1] = [AuditTest::Test06];

    /// The name MLCommons uses (`TEST06`), also the output folder's.
    pub fn name(self) -> &'static str {
        match self {
            AuditTest::Test06 => "TEST06",
        }
    }

    /// Parses `TEST06` (any case).
    pub fn from_name(name: &str) -> Option<AuditTest> {
        AuditTest::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The `audit.config` LoadGen reads for this test: the same settings as
    /// MLCommons' `compliance/TEST06/audit.config` (performance mode, about
    /// 100 responses sampled into the accuracy log, no minimum duration,
    /// equal issue off).
    pub fn audit_config(self) -> &'static str {
        match self {
            AuditTest::Test06 => {
                "# TEST06 (LLM output consistency): LoadGen reads this file as audit.config;\n\
                 # its keys override mlperf.conf, user.conf and the command line.\n\
                 # mode: 0 submission, 1 accuracy, 2 performance, 3 find peak performance\n\
                 *.*.mode = 2\n\
                 *.*.accuracy_log_rng_seed = 720381539243781796\n\
                 *.*.accuracy_log_sampling_target = 100\n\
                 *.*.min_query_count = 100\n\
                 *.*.min_duration = 0\n\
                 # Equal issue off for TEST06\n\
                 *.*.sample_concatenate_permutation = 0\n"
            }
        }
    }
}

impl fmt::Display for AuditTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The audits the MLCommons submission checker (v6.0 table) requires of a
/// closed-division result for `benchmark` (the checker's model names:
/// `llama3.1-8b`, `llama2-70b-99.9`, ...). Benchmarks this crate has no
/// table entry for get an empty list.
pub fn required_audits(benchmark: &str) -> Vec<AuditTest> {
    const TEST06: [&str; 10] = [
        "llama2-70b-99",
        "llama2-70b-99.9",
        "llama2-70b-interactive-99",
        "llama2-70b-interactive-99.9",
        "llama3.1-405b",
        "llama3.1-8b",
        "llama3.1-8b-interactive",
        "llama3.1-405b-interactive",
        "mixtral-8x7b",
        "deepseek-r1",
    ];
    if TEST06.contains(&benchmark) {
        vec![AuditTest::Test06]
    } else {
        Vec::new()
    }
}

/// Element type of the accuracy log's hex data (`--dtype` of the script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenDtype {
    /// 64-bit signed.
    Int64,
    /// 32-bit signed: what the LLM references and this harness log.
    #[default]
    Int32,
    /// 16-bit signed.
    Int16,
    /// 32-bit float.
    Float32,
}

impl TokenDtype {
    /// Parses the script's names (`int64`, `int32`, `int16`, `float32`).
    pub fn from_name(name: &str) -> Option<TokenDtype> {
        match name {
            "int64" => Some(TokenDtype::Int64),
            "int32" => Some(TokenDtype::Int32),
            "int16" => Some(TokenDtype::Int16),
            "float32" => Some(TokenDtype::Float32),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            TokenDtype::Int64 => 8,
            TokenDtype::Int32 | TokenDtype::Float32 => 4,
            TokenDtype::Int16 => 2,
        }
    }
}

/// How TEST06 is verified (the script's flags).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test06Options {
    /// `--scenario Offline` skips the first-token check.
    pub offline: bool,
    /// `--dtype`.
    pub dtype: TokenDtype,
    /// `--eos_token_id`. The script's default is 2 (Llama 2's EOS). Given on
    /// its command line, the script compares tokens with the *string* and
    /// the EOS check can never fail; here the id is always a number.
    pub eos_token_id: i64,
}

impl Default for Test06Options {
    fn default() -> Self {
        Test06Options {
            offline: false,
            dtype: TokenDtype::Int32,
            eos_token_id: 2,
        }
    }
}

/// Why a verification could not be done (where the script would crash).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The accuracy log is not a JSON array of entries.
    #[error("{path}: not an accuracy log: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An entry the sample-length check cannot read (the script stops with
    /// a traceback and writes nothing).
    #[error("{path}: entry {index}: {message}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's position in the log.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// TEST06's verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test06Report {
    /// First-token check; `None` when skipped (Offline).
    pub first_token: Option<bool>,
    /// At most one trailing EOS in every response.
    pub eos: bool,
    /// `token_count` equals the response length everywhere.
    pub sample_len: bool,
    /// What the script prints before the verdicts when a check hit an
    /// unreadable entry (that check then fails).
    pub messages: Vec<String>,
}

impl Test06Report {
    /// Whether the test passed (the checker's reading of the file).
    pub fn passed(&self) -> bool {
        self.first_token.unwrap_or(true) && self.eos && self.sample_len
    }

    /// `verify_accuracy.txt`, exactly as the script writes it.
    pub fn render(&self, w: &mut (impl Write + ?Sized)) -> io::Result<()> {
        let py = |b: bool| if b { "True" } else { "False" };
        match self.first_token {
            Some(b) => writeln!(w, "First token check pass: {}", py(b))?,
            None => writeln!(w, "First token check pass: Skipped")?,
        }
        writeln!(w, "EOS check pass: {}", py(self.eos))?;
        writeln!(w, "Sample length check pass: {}", py(self.sample_len))?;
        if self.passed() {
            writeln!(w, "TEST06 verification complete")
        } else {
            writeln!(w, "TEST06 verification failed")
        }
    }
}

/// Decoded response tokens.
enum Tokens {
    Int(Vec<i64>),
    Float(Vec<f32>),
}

impl Tokens {
    fn len(&self) -> usize {
        match self {
            Tokens::Int(v) => v.len(),
            Tokens::Float(v) => v.len(),
        }
    }

    fn is(&self, i: usize, id: i64) -> bool {
        match self {
            Tokens::Int(v) => v[i] == id,
            Tokens::Float(v) => f64::from(v[i]) == id as f64,
        }
    }

    fn same(&self, i: usize, other: &Tokens) -> bool {
        match (self, other) {
            (Tokens::Int(a), Tokens::Int(b)) => a[i] == b[i],
            (Tokens::Float(a), Tokens::Float(b)) => a[i] == b[i],
            _ => false,
        }
    }
}

/// Python's `bytes.fromhex`: pairs of hex digits, ASCII whitespace allowed
/// between pairs (not inside one).
fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digit = |c: char| {
        c.to_digit(16)
            .ok_or_else(|| format!("non-hexadecimal character {c:?}"))
    };
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut chars = text.chars();
    while let Some(hi) = chars.next() {
        if hi.is_ascii_whitespace() {
            continue;
        }
        let lo = chars
            .next()
            .ok_or_else(|| "odd number of hex digits".to_owned())?;
        out.push((digit(hi)? * 16 + digit(lo)?) as u8);
    }
    Ok(out)
}

/// `np.frombuffer(bytes.fromhex(hex), dtype)` (little-endian, as numpy on
/// every platform MLPerf runs on).
fn decode(hex: &Value, dtype: TokenDtype) -> Result<Tokens, String> {
    let text = hex
        .as_str()
        .ok_or_else(|| format!("expected a hex string, got {hex}"))?;
    let bytes = from_hex(text)?;
    if !bytes.len().is_multiple_of(dtype.size()) {
        return Err("buffer size must be a multiple of element size".to_owned());
    }
    let chunks = bytes.chunks_exact(dtype.size());
    Ok(match dtype {
        TokenDtype::Int64 => Tokens::Int(
            chunks
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        TokenDtype::Int32 => Tokens::Int(
            chunks
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        TokenDtype::Int16 => Tokens::Int(
            chunks
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        TokenDtype::Float32 => Tokens::Float(
            chunks
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    })
}

fn field<'a>(entry: &'a Value, key: &str) -> Result<&'a Value, String> {
    entry.get(key).ok_or_else(|| format!("no {key:?}"))
}

/// The script's `eos_check`: walks back from the last token while tokens
/// are EOS and fails on a second one. Its loop stops before index 0, so a
/// response made only of EOS tokens counts one fewer.
fn eos_check(entries: &[Value], dtype: TokenDtype, eos: i64) -> Result<bool, String> {
    for entry in entries {
        let data = decode(field(entry, "data")?, dtype)?;
        let mut i = data.len() as i64 - 1;
        let mut n_eos = 0;
        while i > 0 {
            let is_eos = data.is(i as usize, eos);
            if is_eos {
                n_eos += 1;
            }
            if n_eos >= 2 {
                return Ok(false);
            }
            if !is_eos {
                break;
            }
            i -= 1;
        }
    }
    Ok(true)
}

/// The script's `first_token_check`: the reported first token(s) equal the
/// response's first tokens (compared over the shorter of the two).
fn first_token_check(entries: &[Value], dtype: TokenDtype) -> Result<bool, String> {
    for entry in entries {
        let data = decode(field(entry, "data")?, dtype)?;
        let first = decode(field(entry, "token_data")?, dtype)?;
        for i in 0..data.len().min(first.len()) {
            if !data.same(i, &first) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Python's `int()` of a JSON value: integers, floats (truncated) and
/// strings holding an integer.
fn python_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .ok_or_else(|| format!("int() of {n}")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("invalid literal for int(): {s:?}")),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(format!("int() of {other}")),
    }
}

/// Checks an `mlperf_log_accuracy.json` as `compliance/TEST06/
/// run_verification.py` does. Where the script catches an error (EOS and
/// first-token checks) the check fails with the script's message; where it
/// crashes (unreadable file, sample-length check) this returns the error.
pub fn verify_test06(
    accuracy_log: &Path,
    options: &Test06Options,
) -> Result<Test06Report, AuditError> {
    let bytes = std::fs::read(accuracy_log).map_err(|source| AuditError::Io {
        path: accuracy_log.to_owned(),
        source,
    })?;
    let format = |message: String| AuditError::Format {
        path: accuracy_log.to_owned(),
        message,
    };
    let log: Value = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    let entries = log
        .as_array()
        .ok_or_else(|| format("the top level is not an array".to_owned()))?;
    let mut messages = Vec::new();
    let eos = eos_check(entries, options.dtype, options.eos_token_id).unwrap_or_else(|_| {
        messages.push("Unexpected error occured while doing the EOS check".to_owned());
        false
    });
    let first_token = (!options.offline).then(|| {
        first_token_check(entries, options.dtype).unwrap_or_else(|_| {
            messages.push("Unexpected error occured while doing the first token check".to_owned());
            false
        })
    });
    let mut sample_len = true;
    for (index, entry) in entries.iter().enumerate() {
        let entry_error = |message: String| AuditError::Entry {
            path: accuracy_log.to_owned(),
            index,
            message,
        };
        let data = field(entry, "data")
            .and_then(|d| decode(d, options.dtype))
            .map_err(entry_error)?;
        let count = field(entry, "token_count")
            .and_then(python_int)
            .map_err(entry_error)?;
        if data.len() as i64 != count {
            sample_len = false;
            break;
        }
    }
    Ok(Test06Report {
        first_token,
        eos,
        sample_len,
        messages,
    })
}

/// Writes the script's outputs under `output_dir`: `TEST06/
/// verify_accuracy.txt` and a copy of the accuracy log in
/// `TEST06/accuracy/`. Returns the `TEST06` folder.
pub fn write_test06(
    report: &Test06Report,
    accuracy_log: &Path,
    output_dir: &Path,
) -> Result<PathBuf, AuditError> {
    let dir = output_dir.join(AuditTest::Test06.name());
    let accuracy_dir = dir.join("accuracy");
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| AuditError::Io { path, source }
    };
    std::fs::create_dir_all(&accuracy_dir).map_err(io_err(&accuracy_dir))?;
    let verify = dir.join("verify_accuracy.txt");
    let mut text = Vec::new();
    report.render(&mut text).map_err(io_err(&verify))?;
    std::fs::write(&verify, text).map_err(io_err(&verify))?;
    let copy = accuracy_dir.join("mlperf_log_accuracy.json");
    std::fs::copy(accuracy_log, &copy).map_err(io_err(&copy))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex32(tokens: &[i32]) -> String {
        tokens
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    fn entry(data: &[i32], first: &[i32], count: i64) -> Value {
        json!({"seq_id": 0, "qsl_idx": 0, "data": hex32(data), "token_data": hex32(first), "token_count": count})
    }

    fn verify(entries: &[Value], offline: bool) -> Test06Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlperf_log_accuracy.json");
        std::fs::write(&path, serde_json::to_vec(entries).unwrap()).unwrap();
        verify_test06(
            &path,
            &Test06Options {
                offline,
                ..Test06Options::default()
            },
        )
        .unwrap()
    }

    fn rendered(r: &Test06Report) -> String {
        let mut v = Vec::new();
        r.render(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn a_clean_log_passes_and_renders_the_scripts_text() {
        let r = verify(&[entry(&[5, 6, 2], &[5], 3)], false);
        assert_eq!(
            rendered(&r),
            "First token check pass: True\nEOS check pass: True\n\
             Sample length check pass: True\nTEST06 verification complete\n"
        );
        let r = verify(&[entry(&[5, 6, 2], &[5], 3)], true);
        assert!(rendered(&r).starts_with("First token check pass: Skipped\n"));
        assert!(r.passed());
    }

    #[test]
    fn each_check_fails_on_its_own_fault() {
        let r = verify(&[entry(&[5, 6], &[7], 2)], false);
        assert_eq!(
            (r.first_token, r.eos, r.sample_len),
            (Some(false), true, true)
        );
        let r = verify(&[entry(&[5, 2, 2], &[5], 3)], false);
        assert_eq!(
            (r.first_token, r.eos, r.sample_len),
            (Some(true), false, true)
        );
        let r = verify(&[entry(&[5, 6], &[5], 3)], false);
        assert_eq!(
            (r.first_token, r.eos, r.sample_len),
            (Some(true), true, false)
        );
        assert!(rendered(&r).ends_with("TEST06 verification failed\n"));
    }

    #[test]
    fn the_scripts_quirks_are_kept() {
        // Index 0 is never examined: two EOS tokens alone pass.
        assert!(verify(&[entry(&[2, 2], &[2], 2)], false).eos);
        // A first-token report longer than the response compares the overlap.
        assert_eq!(
            verify(&[entry(&[5], &[5, 9], 1)], false).first_token,
            Some(true)
        );
        // An unreadable token_data fails the first-token check with the
        // script's message instead of stopping.
        let mut e = entry(&[5, 6], &[5], 2);
        e["token_data"] = json!("0G");
        let r = verify(&[e], false);
        assert_eq!(r.first_token, Some(false));
        assert_eq!(
            r.messages,
            ["Unexpected error occured while doing the first token check"]
        );
    }

    #[test]
    fn an_entry_the_length_check_cannot_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlperf_log_accuracy.json");
        std::fs::write(&path, r#"[{"data": "0500000006000000"}]"#).unwrap();
        let e = verify_test06(&path, &Test06Options::default()).unwrap_err();
        assert!(e.to_string().contains("token_count"), "{e}");
    }

    #[test]
    fn outputs_land_where_the_checker_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mlperf_log_accuracy.json");
        std::fs::write(&log, "[\n]\n").unwrap();
        let r = verify_test06(&log, &Test06Options::default()).unwrap();
        let out = write_test06(&r, &log, &dir.path().join("Offline")).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("verify_accuracy.txt")).unwrap(),
            rendered(&r)
        );
        assert_eq!(
            std::fs::read(out.join("accuracy/mlperf_log_accuracy.json")).unwrap(),
            b"[\n]\n"
        );
    }

    #[test]
    fn required_audits_follow_the_checkers_table() {
        assert_eq!(required_audits("llama3.1-8b"), [AuditTest::Test06]);
        assert_eq!(required_audits("llama2-70b-99.9"), [AuditTest::Test06]);
        assert!(required_audits("resnet").is_empty());
        assert_eq!(AuditTest::from_name("test06"), Some(AuditTest::Test06));
    }
}
