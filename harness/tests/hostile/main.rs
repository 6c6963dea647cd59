//! Hostile input: every attempt ends in a clear error, nothing lost,
//! nothing leaked, no hang.
//!
//! Each case runs the `harness` binary as a child and asserts:
//! - the exit code the README documents (0 VALID, 1 error, 2 usage,
//!   3 INVALID, 130 interrupted);
//! - that stderr names the file, flag or URL and the cause, in a few lines;
//! - an upper bound on wall time and on peak memory (the child's VmHWM);
//! - a consistent run directory where one was made (run.json's status is
//!   final; every issued sample is in records.jsonl and LoadGen's logs);
//! - no secret (API key, URL password) in stdout, stderr or any file.
//!
//! Misbehaving servers are small fakes on 127.0.0.1:0 (`fake.rs`).
//! Interruptions are synchronised, never timed: a signal is sent once the
//! child is known to be in the phase (it opened a pipe, or a fake server
//! received its request). The full-disk and read-only cases mount a small
//! tmpfs and are skipped, with the reason printed, where mounting is not
//! allowed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod fake;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake::{Completion, Fake, FakeServer};

/// A secret every case may pass: it must never be printed or stored.
const API_KEY: &str = "sk-hostile-0123456789abcdef";
/// A URL password.
const URL_PASSWORD: &str = "pw-hostile-s3cret";

/// A small run against whatever backend: a handful of samples, no report.
const TINY_RUN: &[&str] = &[
    "run",
    "--quiet",
    "--no-report",
    "--scenario",
    "Offline",
    "--synthetic",
    "samples=6,input=4,output=4",
    "--min-query-count",
    "6",
    "--min-duration-ms",
    "0",
    "--request-timeout",
    "5",
    "--stall-timeout",
    "2",
    "--idle-timeout",
    "10",
];

/// What a case expects.
#[derive(Debug, Clone)]
struct Expect {
    code: i32,
    /// Substrings stderr must hold (all of them).
    stderr: Vec<String>,
    /// Substrings stderr must not hold.
    not_stderr: Vec<String>,
    max_secs: f64,
    max_rss_mb: u64,
    /// Lines of stderr at most.
    max_stderr_lines: usize,
}

fn expect(code: i32, stderr: &[&str]) -> Expect {
    Expect {
        code,
        stderr: stderr.iter().map(|s| (*s).to_owned()).collect(),
        not_stderr: Vec::new(),
        max_secs: 30.0,
        max_rss_mb: 400,
        max_stderr_lines: 8,
    }
}

/// One child run with its measurements.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    secs: f64,
    peak_rss_kb: u64,
}

/// A scratch directory the child runs in.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    fn command(&self, args: &[String], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_harness"));
        cmd.current_dir(self.path())
            .args(args)
            .env_remove("HARNESS_LOG")
            .env("HOSTILE_KEY", API_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&self, args: &[String], env: &[(&str, &str)]) -> Child {
        self.command(args, env).spawn().unwrap()
    }

    /// Runs to the end (killed after `limit`).
    fn run(&self, args: &[String], env: &[(&str, &str)], limit: f64) -> Ran {
        finish(self.spawn(args, env), limit)
    }

    /// Every file under the scratch directory, with its bytes.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.is_file() && meta.len() < 64 << 20 {
                    out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
                }
            }
        }
        out
    }

    /// The run directories under `runs/` (or another output directory).
    fn run_dirs(&self, output: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.path().join(output))
            .map(|e| {
                e.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.join("run.json").exists())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }
}

/// Waits for the child (killing it after `limit` seconds), sampling its
/// peak memory while it lives.
fn finish(mut child: Child, limit: f64) -> Ran {
    let start = Instant::now();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut peak_rss_kb = 0;
    let status = loop {
        peak_rss_kb = peak_rss_kb.max(vm_hwm_kb(pid));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed().as_secs_f64() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        // Monitoring, not synchronisation: the child's end is what we wait for.
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = start.elapsed().as_secs_f64();
    Ran {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        secs,
        peak_rss_kb,
    }
}

/// The child's peak resident memory so far (0 once it is gone).
fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Asserts everything a case promises.
fn check(name: &str, scratch: &Scratch, ran: &Ran, e: &Expect) {
    let ctx = || {
        format!(
            "case {name}: exit {:?} in {:.2} s, peak {} kB\nstdout:\n{}\nstderr:\n{}",
            ran.code, ran.secs, ran.peak_rss_kb, ran.stdout, ran.stderr
        )
    };
    assert_eq!(ran.code, Some(e.code), "{}", ctx());
    for s in &e.stderr {
        assert!(ran.stderr.contains(s.as_str()), "missing {s:?}: {}", ctx());
    }
    for s in &e.not_stderr {
        assert!(
            !ran.stderr.contains(s.as_str()),
            "unwanted {s:?}: {}",
            ctx()
        );
    }
    assert!(
        ran.stderr.lines().count() <= e.max_stderr_lines,
        "stderr too long: {}",
        ctx()
    );
    assert!(ran.secs <= e.max_secs, "too slow: {}", ctx());
    assert!(
        ran.peak_rss_kb <= e.max_rss_mb * 1024,
        "too much memory: {}",
        ctx()
    );
    no_secrets(name, scratch, ran);
    consistent_run_dirs(name, scratch);
}

/// No secret in any output: stdout, stderr, every file the run wrote.
fn no_secrets(name: &str, scratch: &Scratch, ran: &Ran) {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{URL_PASSWORD}"));
    let secrets = [API_KEY, URL_PASSWORD, basic.as_str()];
    for secret in secrets {
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "case {name}: secret {secret:?} printed:\n{}\n{}",
            ran.stdout,
            ran.stderr
        );
        for (path, bytes) in scratch.files() {
            // The key files the case itself wrote hold it on purpose.
            if path.file_name().is_some_and(|n| n == "key.txt") {
                continue;
            }
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "case {name}: secret {secret:?} stored in {}",
                path.display()
            );
        }
    }
}

/// Every run directory under the scratch dir ended (run.json not
/// `running`), and its records match what LoadGen logged.
fn consistent_run_dirs(name: &str, scratch: &Scratch) {
    for (path, bytes) in scratch.files() {
        if path.file_name().is_none_or(|n| n != "run.json") {
            continue;
        }
        let dir = path.parent().unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("case {name}: {}: {e}", path.display()));
        let status = manifest["status"].as_str().unwrap_or("");
        assert!(
            matches!(status, "complete" | "interrupted" | "failed"),
            "case {name}: {} says {status:?}",
            path.display()
        );
        if status != "complete" {
            let reasons = manifest["verdict"]["reasons"].to_string();
            assert!(
                reasons.len() > 4,
                "case {name}: no reason in {}",
                path.display()
            );
            continue;
        }
        let records = std::fs::read_to_string(dir.join("records.jsonl")).unwrap_or_default();
        let mut samples = std::collections::HashSet::new();
        let mut completed = 0;
        for line in records.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            match v["type"].as_str() {
                Some("query") => {
                    assert!(
                        samples.insert(v["seq"].as_u64()),
                        "case {name}: duplicate {line}"
                    );
                }
                Some("phase_end") => completed += v["completed_samples"].as_u64().unwrap(),
                _ => {}
            }
        }
        assert_eq!(
            samples.len() as u64,
            completed,
            "case {name}: {}",
            dir.display()
        );
        let summary = std::fs::read_to_string(dir.join("mlperf_log_summary.txt")).unwrap();
        assert!(summary.contains("Result is"), "case {name}: {summary}");
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// A run with only a tiny synthetic dataset set (for flags TINY_RUN sets).
fn bare(extra: &[&str]) -> Vec<String> {
    let mut v = strings(&[
        "run",
        "--quiet",
        "--no-report",
        "--scenario",
        "Offline",
        "--synthetic",
        "samples=6,input=4,output=4",
    ]);
    v.extend(strings(extra));
    v
}

fn tiny(extra: &[&str]) -> Vec<String> {
    let mut v = strings(TINY_RUN);
    v.extend(strings(extra));
    v
}

/// A table case: arguments (with `{dir}` for the scratch directory and
/// `{url}` for a fake server), files to create, the fake, the expectation.
struct Case {
    name: &'static str,
    args: Vec<String>,
    files: Vec<(&'static str, Vec<u8>)>,
    env: Vec<(&'static str, &'static str)>,
    fake: Option<Fake>,
    expect: Expect,
}

fn case(name: &'static str, args: Vec<String>, expect: Expect) -> Case {
    Case {
        name,
        args,
        files: Vec::new(),
        env: Vec::new(),
        fake: None,
        expect,
    }
}

impl Case {
    fn file(mut self, name: &'static str, contents: impl Into<Vec<u8>>) -> Case {
        self.files.push((name, contents.into()));
        self
    }
    fn env(mut self, k: &'static str, v: &'static str) -> Case {
        self.env.push((k, v));
        self
    }
    fn fake(mut self, fake: Fake) -> Case {
        self.fake = Some(fake);
        self
    }
    fn secs(mut self, s: f64) -> Case {
        self.expect.max_secs = s;
        self
    }
    fn not_stderr(mut self, s: &str) -> Case {
        self.expect.not_stderr.push(s.to_owned());
        self
    }

    fn run(&self) {
        let scratch = Scratch::new();
        for (name, contents) in &self.files {
            scratch.file(name, contents);
        }
        let server = self.fake.map(FakeServer::start);
        let dir = scratch.path().display().to_string();
        let url = server.as_ref().map(FakeServer::url).unwrap_or_default();
        let host_port = server
            .as_ref()
            .map(FakeServer::host_port)
            .unwrap_or_default();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                a.replace("{dir}", &dir)
                    .replace("{url_host}", &host_port)
                    .replace("{url}", &url)
            })
            .collect();
        let ran = scratch.run(&args, &self.env, self.expect.max_secs + 10.0);
        check(self.name, &scratch, &ran, &self.expect);
    }
}

/// Runs cases on a few threads (each case is a child process).
fn run_all(cases: Vec<Case>) -> usize {
    let n = cases.len();
    let queue = std::sync::Mutex::new(cases.into_iter().collect::<Vec<_>>());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let Some(c) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let name = c.name;
                    if let Err(e) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.run()))
                    {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default();
                        failures.lock().unwrap().push(format!("{name}: {msg}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    n
}

// ---------------------------------------------------------------------------

/// Bad flags: usage errors (2) or validated errors (1) naming the flag.
fn flag_cases() -> Vec<Case> {
    let usage = |name, args: &[&str], needle: &'static str| {
        let mut a = strings(&["run"]);
        a.extend(strings(args));
        case(name, a, expect(2, &[needle]))
    };
    let error =
        |name, args: &[&str], needle: &'static str| case(name, bare(args), expect(1, &[needle]));
    vec![
        usage("max-tokens 0", &["--max-tokens", "0"], "--max-tokens"),
        usage("max-tokens negative", &["--max-tokens=-1"], "--max-tokens"),
        usage(
            "max-tokens not a number",
            &["--max-tokens", "many"],
            "--max-tokens",
        ),
        usage(
            "no-history with db",
            &["--no-history", "--db", "x.sqlite"],
            "--no-history",
        ),
        usage("unknown scenario", &["--scenario", "Sever"], "--scenario"),
        usage("unknown api", &["--api", "grpc"], "--api"),
        usage(
            "unknown dataset format",
            &["--dataset-format", "csv"],
            "--dataset-format",
        ),
        usage("unknown flag", &["--target-qsp", "3"], "--target-qsp"),
        usage("missing value", &["--dataset-path"], "--dataset-path"),
        usage(
            "key env and file",
            &["--api-key-env", "A", "--api-key-file", "f"],
            "--api-key-file",
        ),
        usage(
            "target-qps not a number",
            &["--target-qps", "fast"],
            "--target-qps",
        ),
        usage(
            "min-query-count negative",
            &["--min-query-count=-3"],
            "--min-query-count",
        ),
        usage(
            "min-query-count huge",
            &["--min-query-count", "99999999999999999999999"],
            "--min-query-count",
        ),
        usage(
            "prometheus not an address",
            &["--prometheus-listen", "here"],
            "--prometheus-listen",
        ),
        usage(
            "total sample count negative",
            &["--total-sample-count=-1"],
            "--total-sample-count",
        ),
        error("target-qps 0", &["--target-qps", "0"], "--target-qps"),
        error("target-qps negative", &["--target-qps=-5"], "--target-qps"),
        error("target-qps nan", &["--target-qps", "NaN"], "--target-qps"),
        error("target-qps inf", &["--target-qps", "inf"], "--target-qps"),
        case(
            "target-qps absurd",
            strings(&[
                "run",
                "--quiet",
                "--scenario",
                "Server",
                "--target-qps",
                "1e12",
            ]),
            expect(1, &["target_qps 1000000000000", "about"]),
        ),
        error(
            "min-query-count absurd",
            &["--min-query-count", "1000000000"],
            "min_query_count 1000000000",
        ),
        error(
            "request-timeout negative",
            &["--request-timeout=-1"],
            "--request-timeout",
        ),
        error(
            "stall-timeout nan",
            &["--stall-timeout", "nan"],
            "--stall-timeout",
        ),
        error("idle-timeout 0", &["--idle-timeout", "0"], "--idle-timeout"),
        error(
            "extra-body not json",
            &["--extra-body", "{x"],
            "--extra-body",
        ),
        error("extra-body array", &["--extra-body", "[1]"], "--extra-body"),
        error(
            "max-in-flight 0",
            &["--max-in-flight", "0"],
            "--max-in-flight",
        ),
        error(
            "sim profile unknown",
            &["--sim-profile", "warp9"],
            "--sim-profile",
        ),
        error("backend not a url", &["--backend", "nowhere"], "nowhere"),
        error("backend ftp", &["--backend", "ftp://127.0.0.1:1"], "ftp"),
        error(
            "backend with query",
            &["--backend", "http://127.0.0.1:1/v1?x=1"],
            "query",
        ),
        error(
            "backend refused",
            &["--backend", "http://127.0.0.1:1"],
            "127.0.0.1:1",
        ),
        case(
            "output-dir is a file",
            tiny(&["--output-dir", "afile"]),
            expect(1, &["afile", "not a directory"]),
        )
        .file("afile", "x"),
        case(
            "invalid log filter",
            tiny(&["--backend", "http://127.0.0.1:1"]),
            expect(1, &["invalid log filter", "[[["]),
        )
        .env("HARNESS_LOG", "[[["),
        case(
            "metrics interval 0",
            tiny(&[
                "--enable-metrics-collection",
                "--metrics-collection-interval",
                "0",
            ]),
            expect(1, &["--metrics-collection-interval"]),
        ),
    ]
}

/// Bad config files: size limits, devices, garbage, silent mistakes.
fn conf_cases() -> Vec<Case> {
    let conf = |name, path: &str, needles: &[&'static str]| {
        case(name, tiny(&["--user-conf", path]), expect(1, needles))
    };
    // Warnings come before the run; a refused backend ends it quickly.
    let warned = |name, text: &'static str, needles: &[&'static str]| {
        case(
            name,
            tiny(&["--user-conf", "u.conf", "--backend", "http://127.0.0.1:1"]),
            expect(1, needles),
        )
        .file("u.conf", text)
    };
    let garbage_lines = "garbage line without equals\n".repeat(30_000);
    let big_comment = format!("# {}\n", "x".repeat(2 << 20));
    vec![
        conf(
            "user.conf /dev/zero",
            "/dev/zero",
            &["/dev/zero", "larger than 1 MiB"],
        )
        .secs(5.0),
        conf(
            "user.conf /dev/urandom",
            "/dev/urandom",
            &["/dev/urandom", "larger than 1 MiB"],
        )
        .secs(5.0),
        conf(
            "user.conf missing",
            "missing.conf",
            &["missing.conf", "No such file"],
        ),
        conf("user.conf directory", "{dir}", &["--user-conf"]),
        conf(
            "user.conf 2 MB",
            "big.conf",
            &["big.conf", "larger than 1 MiB"],
        )
        .file("big.conf", big_comment),
        conf(
            "user.conf garbage",
            "g.conf",
            &["g.conf", "more invalid lines"],
        )
        .file("g.conf", garbage_lines),
        conf("user.conf binary", "b.conf", &["b.conf"])
            .file("b.conf", vec![0xff, 0xfe, b' ', b'=', 0, 1, 2, b'\n']),
        conf(
            "user.conf value not a number",
            "v.conf",
            &["v.conf", "line 1", "neither an integer"],
        )
        .file("v.conf", "*.Server.target_qps = fast\n"),
        conf(
            "user.conf no equals",
            "e.conf",
            &["e.conf", "line 2", "key = value"],
        )
        .file("e.conf", "# ok\n*.Server.target_qps 3\n"),
        conf(
            "user.conf trailing comment",
            "c.conf",
            &["c.conf", "line 1"],
        )
        .file("c.conf", "*.Offline.target_qps = 3 # three\n"),
        case(
            "user.conf absurd min_query_count",
            bare(&["--user-conf", "q.conf"]),
            expect(1, &["would schedule 1000000000 samples"]),
        )
        .file("q.conf", "*.Offline.min_query_count = 1000000000\n"),
        case(
            "user.conf saturated min_duration",
            bare(&["--user-conf", "d.conf"]),
            expect(1, &["would schedule"]),
        )
        .file(
            "d.conf",
            "*.Offline.min_duration = 99999999999999999999999\n*.Offline.target_qps = 10\n",
        )
        .not_stderr("panicked"),
        case(
            "user.conf saturated min_duration server",
            strings(&[
                "run",
                "--quiet",
                "--scenario",
                "Server",
                "--user-conf",
                "d.conf",
            ]),
            expect(1, &["would schedule"]),
        )
        .file(
            "d.conf",
            "*.Server.min_duration = 99999999999999999999999\n",
        ),
        case(
            "user.conf absurd target_qps",
            strings(&[
                "run",
                "--quiet",
                "--scenario",
                "Server",
                "--user-conf",
                "t.conf",
            ]),
            expect(1, &["target_qps 1000000000000"]),
        )
        .file("t.conf", "*.Server.target_qps = 1e12\n"),
        warned(
            "misspelled key warned",
            "*.Offline.target_qpz = 3\n",
            &["u.conf:1", "target_qpz"],
        ),
        warned(
            "misspelled scenario warned",
            "llama3_1-8b.Ofline.target_qps = 3\n",
            &["u.conf:1", "Ofline"],
        ),
        warned(
            "key without model warned",
            "target_qps = 3\n",
            &["u.conf:1", "model.scenario.key"],
        ),
        warned(
            "negative target_qps warned",
            "*.Offline.target_qps = -5\n",
            &["u.conf:1", "-5", "1 QPS"],
        ),
        warned(
            "many warnings, one line each",
            "a.b.c = 1\n*.*.d = 2\n*.*.e = 3\n",
            &["u.conf:1", "u.conf:2", "u.conf:3"],
        ),
        case(
            "audit.config /dev/zero",
            tiny(&["--audit-conf", "/dev/zero"]),
            expect(1, &["--audit-conf /dev/zero", "larger than 1 MiB"]),
        )
        .secs(5.0),
        case(
            "audit.config missing",
            tiny(&["--audit-conf", "nope.config"]),
            expect(1, &["--audit-conf nope.config"]),
        ),
        case(
            "audit.config garbage",
            tiny(&["--audit-conf", "a.config"]),
            expect(1, &["a.config", "line 1"]),
        )
        .file("a.config", "*.*.mode 2\n"),
    ]
}

/// Bad datasets: devices, pipes, garbage, prompt-only data without ids.
fn dataset_cases() -> Vec<Case> {
    let ds = |name, path: &str, extra: &[&str], needles: &[&'static str]| {
        let mut args = strings(&[
            "run",
            "--quiet",
            "--no-report",
            "--scenario",
            "Offline",
            "--min-query-count",
            "4",
            "--min-duration-ms",
            "0",
            "--dataset-path",
            path,
        ]);
        args.extend(strings(extra));
        case(name, args, expect(1, needles))
    };
    let synth = |name, spec: &str, needles: &[&'static str]| {
        case(
            name,
            strings(&["run", "--quiet", "--no-report", "--synthetic", spec]),
            expect(1, needles),
        )
    };
    let prompt_only_jsonl = "{\"prompt\": \"hello there\"}\n{\"prompt\": \"how are you\"}\n";
    let sharegpt = r#"[{"id":"a","conversations":[{"from":"human","value":"hi there"},{"from":"gpt","value":"hello, how can I help"}]}]"#;
    vec![
        ds(
            "dataset /dev/zero",
            "/dev/zero",
            &[],
            &["/dev/zero", "character device"],
        )
        .secs(5.0),
        ds(
            "dataset /dev/urandom jsonl",
            "/dev/urandom",
            &["--dataset-format", "jsonl"],
            &["/dev/urandom", "not a regular file"],
        )
        .secs(5.0),
        ds("dataset directory", "{dir}", &[], &["directory"]),
        ds("dataset missing", "nope.json", &[], &["nope.json"]),
        ds("dataset empty json", "e.json", &[], &["e.json"]).file("e.json", ""),
        ds("dataset garbage json", "g.json", &[], &["g.json"]).file("g.json", "{{{{ not json"),
        ds("dataset json wrong shape", "w.json", &[], &["w.json"]).file("w.json", "{\"a\": 1}"),
        ds("dataset empty list", "l.json", &[], &["l.json"]).file("l.json", "[]"),
        ds(
            "jsonl bad line",
            "b.jsonl",
            &[],
            &["b.jsonl:2", "invalid JSON"],
        )
        .file("b.jsonl", "{\"prompt_tokens\": [1,2]}\n{oops\n"),
        ds("jsonl empty", "e.jsonl", &[], &["e.jsonl"]).file("e.jsonl", "\n\n"),
        ds(
            "jsonl token id beyond the vocabulary",
            "v.jsonl",
            &[],
            &[
                "v.jsonl",
                "sample 1 has token id 200000",
                "128256 ids",
                "--sim-profile",
            ],
        )
        .file(
            "v.jsonl",
            "{\"prompt_tokens\": [1,2]}\n{\"prompt_tokens\": [3,200000]}\n",
        ),
        ds("jsonl binary", "x.jsonl", &[], &["x.jsonl"])
            .file("x.jsonl", vec![0u8, 159, 146, 150, 10]),
        ds(
            "prompt-only jsonl under token ids",
            "p.jsonl",
            &[],
            &["no token ids", "--tokenizer", "--api completions-text"],
        )
        .file("p.jsonl", prompt_only_jsonl),
        ds(
            "sharegpt without tokenizer",
            "s.json",
            &["--dataset-format", "sharegpt"],
            &["--tokenizer"],
        )
        .file("s.json", sharegpt),
        ds(
            "pickle not a dataframe",
            "x.pkl",
            &[],
            &["x.pkl", "not a pandas DataFrame pickle"],
        )
        .file("x.pkl", b"\x80\x02K\x01.".to_vec())
        .not_stderr("read_pickle"),
        ds("pickle garbage", "y.pkl", &[], &["y.pkl"])
            .file("y.pkl", "garbage")
            .not_stderr("read_pickle"),
        ds(
            "tokenizer /dev/zero",
            "p.jsonl",
            &["--tokenizer", "/dev/zero"],
            &["/dev/zero"],
        )
        .file("p.jsonl", prompt_only_jsonl)
        .secs(5.0),
        ds(
            "tokenizer missing",
            "p.jsonl",
            &["--tokenizer", "nope.json"],
            &["nope.json"],
        )
        .file("p.jsonl", prompt_only_jsonl),
        ds(
            "tokenizer garbage",
            "p.jsonl",
            &["--tokenizer", "t.json"],
            &["t.json"],
        )
        .file("p.jsonl", prompt_only_jsonl)
        .file("t.json", "{}"),
        synth("synthetic input 0", "input=0", &["input length 0"]),
        synth("synthetic output 0", "output=0", &["output length 0"]),
        synth("synthetic samples 0", "samples=0", &["0 samples"]),
        synth(
            "synthetic ids beyond the vocabulary",
            "samples=3,input=4,vocab=200000:200001",
            &["synthetic", "sample 0 has token id 20000", "128256 ids"],
        ),
        synth(
            "synthetic absurd size",
            "samples=100000000,input=1024",
            &["100000000 samples", "GiB"],
        )
        .secs(5.0),
        synth("synthetic unknown key", "size=3", &["size"]),
        synth("synthetic not a number", "samples=lots", &["samples=lots"]),
        synth("synthetic vocab reversed", "vocab=9:5", &["min 9 > max 5"]),
        synth("synthetic bad length", "input=1:2:3", &["input=1:2:3"]),
        synth(
            "synthetic uniform reversed",
            "input=9:5",
            &["min 9 > max 5"],
        ),
        synth("synthetic normal nan", "input=normal:nan:1", &["finite"]),
    ]
}

/// API key sources.
fn key_cases() -> Vec<Case> {
    let key = |name, args: &[&str], needles: &[&'static str]| {
        let mut a = tiny(&["--backend", "http://127.0.0.1:1"]);
        a.extend(strings(args));
        case(name, a, expect(1, needles))
    };
    vec![
        key(
            "key file /dev/zero",
            &["--api-key-file", "/dev/zero"],
            &["/dev/zero", "larger than 64 KiB"],
        )
        .secs(5.0),
        key(
            "key file /dev/urandom",
            &["--api-key-file", "/dev/urandom"],
            &["/dev/urandom"],
        )
        .secs(5.0),
        key("key file missing", &["--api-key-file", "nokey"], &["nokey"]),
        key(
            "key file empty",
            &["--api-key-file", "empty"],
            &["empty", "the key is empty"],
        )
        .file("empty", ""),
        key(
            "key file directory",
            &["--api-key-file", "{dir}"],
            &["api key from file"],
        ),
        key(
            "key file 100 KB",
            &["--api-key-file", "big"],
            &["big", "larger than 64 KiB"],
        )
        .file("big", "k".repeat(100_000)),
        key(
            "key file with spaces",
            &["--api-key-file", "sp"],
            &["sp", "cannot carry"],
        )
        .file("sp", "a b c"),
        key(
            "key env unset",
            &["--api-key-env", "HOSTILE_UNSET"],
            &["HOSTILE_UNSET", "not set"],
        ),
        key(
            "key env empty",
            &["--api-key-env", "HOSTILE_EMPTY"],
            &["HOSTILE_EMPTY", "empty"],
        )
        .env("HOSTILE_EMPTY", ""),
        key(
            "key env with newline",
            &["--api-key-env", "HOSTILE_NL"],
            &["HOSTILE_NL", "cannot carry"],
        )
        .env("HOSTILE_NL", "abc\ndef"),
    ]
}

/// Misbehaving servers: every failure counted, nothing hangs, no secret.
fn server_cases() -> Vec<Case> {
    let with_key = |mut args: Vec<String>| {
        args.extend(strings(&["--api-key-env", "HOSTILE_KEY"]));
        args
    };
    // Set-up failures end the run before it starts (exit 1).
    let setup = |name, fake: Fake, needles: &[&'static str]| {
        case(
            name,
            with_key(tiny(&["--backend", "{url}"])),
            expect(1, needles),
        )
        .fake(fake)
    };
    // Failed answers make the run INVALID (exit 3), every sample recorded.
    let answers = |name, completion: Completion, needles: &[&'static str]| {
        case(
            name,
            with_key(tiny(&["--backend", "{url}", "--model", "m"])),
            expect(3, needles),
        )
        .fake(Fake::Healthy(completion))
    };
    vec![
        setup("health 500", Fake::HealthStatus(500), &["/health", "500"]),
        setup("health 404", Fake::HealthStatus(404), &["/health", "404"]),
        setup("health echoes the key", Fake::HealthEchoAuth, &["/health"]),
        setup("health resets", Fake::HealthReset, &["/health"]),
        setup("health never answers", Fake::HealthHang, &["/health"]).secs(40.0),
        setup("models garbage", Fake::ModelsGarbage, &["/v1/models"]),
        setup("models empty", Fake::ModelsEmpty, &["model"]),
        case(
            "model not served",
            with_key(tiny(&["--backend", "{url}", "--model", "other"])),
            expect(1, &["other", "m"]),
        )
        .fake(Fake::Healthy(Completion::Valid)),
        case(
            "url password never printed (refused)",
            tiny(&["--backend", "http://user:pw-hostile-s3cret@127.0.0.1:1"]),
            expect(1, &["127.0.0.1:1"]),
        ),
        case(
            "url password never printed (health 500)",
            tiny(&["--backend", "http://user:pw-hostile-s3cret@{url_host}"]),
            expect(1, &["/health"]),
        )
        .fake(Fake::HealthEchoAuth),
        answers("completions 500", Completion::Status(500), &[]),
        answers("completions 429", Completion::Status(429), &[]),
        answers("completions 400", Completion::Status(400), &[]),
        answers("completions echo the key", Completion::EchoAuth, &[]),
        answers("completions huge error body", Completion::HugeBody, &[]),
        answers("completions reset", Completion::Reset, &[]),
        answers(
            "completions never answer (stall covers headers)",
            Completion::NoHeaders,
            &[],
        ),
        answers("completions garbage sse", Completion::GarbageSse, &[]),
        answers(
            "completions endless keep-alive comments",
            Completion::EndlessComments,
            &[],
        )
        .secs(40.0),
        answers("completions html 200", Completion::Html, &[]),
        answers("completions empty 200", Completion::Empty, &[]),
        answers(
            "completions stream cut mid-event",
            Completion::CutMidEvent,
            &[],
        ),
        answers("completions error event", Completion::ErrorEvent, &[]),
        case(
            "url password scrubbed from echoed answers",
            tiny(&[
                "--backend",
                "http://user:pw-hostile-s3cret@{url_host}",
                "--model",
                "m",
            ]),
            expect(3, &[]),
        )
        .fake(Fake::Healthy(Completion::EchoAuth)),
        case(
            "a valid fake server run is VALID",
            with_key(tiny(&["--backend", "{url}", "--model", "m"])),
            expect(0, &[]),
        )
        .fake(Fake::Healthy(Completion::Valid)),
    ]
}

/// A PostgreSQL URL (with a password) for a fake that completes the
/// start-up and then never answers: every statement waits at most its
/// statement_timeout (1 s) plus the connect timeout (1 s).
const PG_READY_THEN_SILENT: &str = "postgres://u:pw-hostile-s3cret@{url_host}/x?connect_timeout=1&options=-c%20statement_timeout%3D1000";

fn history_cases() -> Vec<Case> {
    vec![
        case(
            "history db is garbage",
            strings(&["history", "--db", "h.sqlite"]),
            expect(1, &["h.sqlite"]),
        )
        .file("h.sqlite", "this is not a database"),
        case(
            "history db is a directory",
            strings(&["history", "--db", "{dir}"]),
            expect(1, &[]),
        ),
        case(
            "history postgres refused",
            strings(&[
                "history",
                "--db",
                "postgres://u:pw-hostile-s3cret@127.0.0.1:1/x",
            ]),
            expect(1, &["postgres://"]),
        ),
        case(
            "history postgres never answers",
            strings(&[
                "history",
                "--db",
                "postgres://u:pw-hostile-s3cret@{url_host}/x?connect_timeout=1",
            ]),
            expect(1, &["no answer", "postgres://"]),
        )
        .fake(Fake::Silent)
        .secs(15.0),
        case(
            "history postgres ready then silent",
            strings(&["history", "--db", PG_READY_THEN_SILENT]),
            expect(1, &["no answer", "postgres://u:***@127.0.0.1"]),
        )
        .fake(Fake::PgReadyThenSilent)
        .secs(15.0),
        case(
            "run records despite a postgres that never answers a query",
            tiny(&["--db", PG_READY_THEN_SILENT]),
            expect(0, &["not recorded in the history", "no answer"]),
        )
        .fake(Fake::PgReadyThenSilent)
        .secs(20.0),
        case(
            "run records despite a silent postgres",
            tiny(&[
                "--db",
                "postgres://u:pw-hostile-s3cret@{url_host}/x?connect_timeout=1",
            ]),
            expect(0, &["not recorded in the history", "no answer"]),
        )
        .fake(Fake::Silent)
        .secs(20.0),
    ]
}

#[test]
fn hostile_table() {
    let mut cases = Vec::new();
    cases.extend(flag_cases());
    cases.extend(conf_cases());
    cases.extend(dataset_cases());
    cases.extend(key_cases());
    cases.extend(server_cases());
    cases.extend(history_cases());
    let n = run_all(cases);
    eprintln!("{n} table cases");
    assert!(n >= 100, "{n}");
}

// --- Interruption in every phase ------------------------------------------

/// Sends `sig` once the child is reading `fifo` (it opened it), then
/// checks a prompt exit 130.
fn interrupt_while_reading(flag: &str, sig: &str) {
    let scratch = Scratch::new();
    let fifo = scratch.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut args = tiny(&[flag, "pipe"]);
    if flag == "--api-key-file" {
        args.extend(strings(&["--backend", "http://127.0.0.1:1"]));
    }
    let child = scratch.spawn(&args, &[]);
    // Opening the write end succeeds once the child opened the read end: it
    // is then blocked reading, in the parsing phase.
    let writer = loop {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000) // O_NONBLOCK
            .open(&fifo)
        {
            Ok(w) => break w,
            Err(_) => std::thread::yield_now(),
        }
    };
    signal(child.id(), sig);
    let ran = finish(child, 20.0);
    drop(writer);
    check(
        &format!("{sig} while reading {flag}"),
        &scratch,
        &ran,
        &Expect {
            max_secs: 10.0,
            ..expect(130, &["interrupted"])
        },
    );
}

#[test]
fn interrupted_while_parsing_user_conf() {
    interrupt_while_reading("--user-conf", "INT");
    interrupt_while_reading("--user-conf", "TERM");
}

#[test]
fn interrupted_while_reading_the_key_file() {
    interrupt_while_reading("--api-key-file", "TERM");
}

/// Signals while connecting: the fake server has the health request and
/// never answers.
#[test]
fn interrupted_while_connecting() {
    for sig in ["INT", "TERM"] {
        let scratch = Scratch::new();
        let server = FakeServer::start(Fake::HealthHang);
        let child = scratch.spawn(&tiny(&["--backend", &server.url()]), &[]);
        server.wait_request();
        signal(child.id(), sig);
        let ran = finish(child, 20.0);
        check(
            &format!("{sig} while connecting"),
            &scratch,
            &ran,
            &Expect {
                max_secs: 20.0,
                ..expect(130, &["interrupted"])
            },
        );
        assert!(scratch.run_dirs("runs").is_empty());
    }
}

/// Signals while issuing: the server has the first completion request and
/// never answers; the run ends interrupted with every issued sample kept.
#[test]
fn interrupted_while_issuing() {
    for (sig, twice) in [("INT", false), ("TERM", false), ("INT", true)] {
        let scratch = Scratch::new();
        let server = FakeServer::start(Fake::Healthy(Completion::NoHeaders));
        // No timeouts: only the signal ends it.
        let args = bare(&[
            "--backend",
            &server.url(),
            "--model",
            "m",
            "--min-query-count",
            "6",
            "--min-duration-ms",
            "0",
            "--stall-timeout",
            "0",
            "--request-timeout",
            "0",
        ]);
        let child = scratch.spawn(&args, &[]);
        server.wait_completion();
        signal(child.id(), sig);
        if twice {
            signal(child.id(), sig);
        }
        let ran = finish(child, 30.0);
        check(
            &format!("{sig} while issuing (twice: {twice})"),
            &scratch,
            &ran,
            &Expect {
                max_secs: 15.0,
                ..expect(130, &["interrupted"])
            },
        );
        let dirs = scratch.run_dirs("runs");
        assert_eq!(dirs.len(), 1, "{ran:?}");
        let manifest = std::fs::read_to_string(dirs[0].join("run.json")).unwrap();
        assert!(manifest.contains("\"interrupted\""), "{manifest}");
        if !twice {
            // Graceful: every issued sample is in the records, as cancelled.
            let records = std::fs::read_to_string(dirs[0].join("records.jsonl")).unwrap();
            let queries = records.matches("\"type\":\"query\"").count();
            assert_eq!(queries, 6, "{records}");
            assert!(!records.contains("\"first_token_ns\":-"), "{records}");
        }
    }
}

/// A signal while the history is written (the database never answers):
/// the measured run is kept, the process ends promptly.
#[test]
fn interrupted_while_writing_history() {
    let scratch = Scratch::new();
    let server = FakeServer::start(Fake::Silent);
    let db = format!("postgres://u@{}/x?connect_timeout=60", server.host_port());
    let child = scratch.spawn(&tiny(&["--db", &db]), &[]);
    server.wait_request();
    signal(child.id(), "TERM");
    let ran = finish(child, 30.0);
    check(
        "TERM while writing history",
        &scratch,
        &ran,
        &Expect {
            max_secs: 10.0,
            max_stderr_lines: 20,
            ..expect(130, &["interrupted"])
        },
    );
    let dirs = scratch.run_dirs("runs");
    assert_eq!(dirs.len(), 1);
}

/// A signal while a finished run's reports are written: the completions
/// are held until a FIFO stands where `report.html` is rendered, so the
/// child blocks writing it; the test sends the signal once the child has
/// opened it. The run ends interrupted, no report is put in place (none
/// claims a complete run) and the history records nothing.
#[test]
fn interrupted_while_writing_reports() {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let scratch = Scratch::new();
    let server = FakeServer::start(Fake::Healthy(Completion::Gated));
    // TINY_RUN with reports, and no timeouts: only the gate holds the answers.
    let args = strings(&[
        "run",
        "--quiet",
        "--scenario",
        "Offline",
        "--synthetic",
        "samples=6,input=4,output=4",
        "--min-query-count",
        "6",
        "--min-duration-ms",
        "0",
        "--request-timeout",
        "0",
        "--stall-timeout",
        "0",
        "--backend",
        &server.url(),
        "--model",
        "m",
    ]);
    let child = scratch.spawn(&args, &[]);
    server.wait_completion();
    // The run directory exists once queries are issued.
    let dirs = scratch.run_dirs("runs");
    assert_eq!(dirs.len(), 1);
    let fifo = dirs[0].join(".report.html.tmp");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o4000) // O_NONBLOCK
        .open(&fifo)
        .unwrap();
    server.open_gate();
    // A FIFO read gives end-of-file while no writer has it open, and data
    // or "would block" once the child opened it to write the report.
    let mut byte = [0u8; 1];
    while matches!(reader.read(&mut byte), Ok(0)) {
        std::thread::yield_now();
    }
    signal(child.id(), "INT");
    let ran = finish(child, 30.0);
    drop(reader);
    // Reading it back (the checks read every file) would block.
    std::fs::remove_file(&fifo).unwrap();
    check(
        "INT while writing reports",
        &scratch,
        &ran,
        &Expect {
            max_secs: 20.0,
            ..expect(130, &["interrupted"])
        },
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs[0].join("run.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "interrupted", "{manifest}");
    assert!(
        manifest["verdict"]["reasons"]
            .to_string()
            .contains("reports"),
        "{manifest}"
    );
    for name in ["summary.json", "report.html", "queries.csv"] {
        assert!(!dirs[0].join(name).exists(), "{name} in place: {ran:?}");
    }
    assert!(
        !scratch.path().join("runs/history.sqlite").exists(),
        "recorded in the history: {ran:?}"
    );
}

// --- Disks ----------------------------------------------------------------

/// Mounts a tmpfs of `size` at `dir` (read-only when asked); false (with
/// the reason printed) where mounting is not allowed.
fn mount_tmpfs(dir: &Path, options: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount ({e})");
            false
        }
    }
}

fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg(dir).status();
}

#[test]
fn a_full_disk_leaves_the_run_failed_with_the_reason() {
    let scratch = Scratch::new();
    let out = scratch.path().join("full");
    if !mount_tmpfs(&out, "size=24k") {
        return;
    }
    let ran = scratch.run(
        &strings(&[
            "run",
            "--quiet",
            "--no-report",
            "--scenario",
            "Offline",
            "--synthetic",
            "samples=64,input=4,output=4",
            "--min-query-count",
            "64",
            "--min-duration-ms",
            "0",
            "--output-dir",
            "full",
            "--no-history",
        ]),
        &[],
        40.0,
    );
    let manifests: Vec<String> = scratch
        .run_dirs("full")
        .iter()
        .map(|d| std::fs::read_to_string(d.join("run.json")).unwrap_or_default())
        .collect();
    unmount(&out);
    let result = std::panic::catch_unwind(|| {
        assert_eq!(ran.code, Some(1), "{ran:?}");
        assert!(ran.stderr.contains("No space left"), "{ran:?}");
        for m in &manifests {
            assert!(m.contains("\"failed\""), "{m}");
            assert!(m.contains("No space left"), "{m}");
        }
    });
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_read_only_output_dir_is_a_clear_error() {
    let scratch = Scratch::new();
    let out = scratch.path().join("ro");
    if !mount_tmpfs(&out, "ro,size=64k") {
        return;
    }
    let ran = scratch.run(&tiny(&["--output-dir", "ro"]), &[], 30.0);
    unmount(&out);
    check(
        "read-only output dir",
        &scratch,
        &ran,
        &expect(1, &["ro", "Read-only"]),
    );
}

// --- Concurrency ------------------------------------------------------------

#[test]
fn concurrent_runs_against_one_new_database_all_land() {
    let scratch = Scratch::new();
    let children: Vec<Child> = (0..3)
        .map(|_| scratch.spawn(&tiny(&["--db", "shared.sqlite"]), &[]))
        .collect();
    for child in children {
        let ran = finish(child, 60.0);
        assert_eq!(ran.code, Some(0), "{ran:?}");
        assert!(!ran.stderr.contains("not recorded"), "{ran:?}");
    }
    let ran = scratch.run(&strings(&["history", "--db", "shared.sqlite"]), &[], 30.0);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let listed = scratch
        .run_dirs("runs")
        .iter()
        .filter(|d| {
            ran.stdout
                .contains(d.file_name().unwrap().to_str().unwrap())
        })
        .count();
    assert_eq!(listed, 3, "{}", ran.stdout);
    consistent_run_dirs("concurrent runs", &scratch);
}

// --- Damaged run directories -------------------------------------------------

#[test]
fn a_duplicated_record_line_is_an_error_not_an_extra_sample() {
    let scratch = Scratch::new();
    let ran = scratch.run(&tiny(&["--no-history"]), &[], 60.0);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let dir = scratch.run_dirs("runs").pop().unwrap();
    let path = dir.join("records.jsonl");
    let records = std::fs::read_to_string(&path).unwrap();
    let line = records
        .lines()
        .find(|l| l.contains("\"type\":\"query\""))
        .unwrap();
    std::fs::write(&path, format!("{records}{line}\n")).unwrap();
    let ran = scratch.run(
        &[String::from("report"), dir.display().to_string()],
        &[],
        60.0,
    );
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("records.jsonl"), "{ran:?}");
    assert!(ran.stderr.contains("duplicated line"), "{ran:?}");
}

/// A streamed Server run against `completion`, with reports; the scratch
/// directory and what the child printed.
fn server_run(completion: Completion, extra: &[&str]) -> (Scratch, Ran, PathBuf) {
    fake_server_run(Fake::Healthy(completion), "50", extra)
}

/// A streamed Server run at `qps` against `fake`, with reports.
fn fake_server_run(fake: Fake, qps: &str, extra: &[&str]) -> (Scratch, Ran, PathBuf) {
    let scratch = Scratch::new();
    let server = FakeServer::start(fake);
    let mut args = strings(&[
        "run",
        "--scenario",
        "Server",
        "--target-qps",
        qps,
        "--synthetic",
        "samples=6,input=4,output=4",
        "--min-query-count",
        "6",
        "--min-duration-ms",
        "0",
        "--request-timeout",
        "5",
        "--stall-timeout",
        "2",
        "--idle-timeout",
        "10",
        "--output-dir",
        "out",
        "--no-history",
        "--model",
        "m",
        "--api-key-env",
        "HOSTILE_KEY",
        "--backend",
    ]);
    args.push(server.url());
    args.extend(strings(extra));
    let ran = scratch.run(&args, &[], 60.0);
    let dirs = scratch.run_dirs("out");
    assert_eq!(dirs.len(), 1, "{ran:?}");
    let dir = dirs[0].clone();
    (scratch, ran, dir)
}

/// Every number after `key` (a `"key": value` or `key … value` pair) in `text`.
fn values_after(text: &str, key: &str) -> Vec<f64> {
    text.match_indices(key)
        .filter_map(|(i, _)| {
            let rest = &text[i + key.len()..];
            let start = rest.find(|c: char| c == '-' || c.is_ascii_digit())?;
            // Only a value on the same line, right after separators.
            if !rest[..start]
                .chars()
                .all(|c| matches!(c, '"' | ':' | ' ' | '\t' | '(' | ')' | '=' | 'm' | 's'))
            {
                return None;
            }
            let num: String = rest[start..]
                .chars()
                .take_while(|c| *c == '-' || *c == '.' || c.is_ascii_digit())
                .collect();
            num.parse().ok()
        })
        .collect()
}

#[test]
fn every_request_failing_after_a_first_token_prints_no_sentinel_ttft() {
    let (scratch, ran, dir) = server_run(Completion::FirstTokenThenGarbage, &[]);
    let e = Expect {
        max_stderr_lines: 40,
        ..expect(3, &[])
    };
    check("first token then garbage", &scratch, &ran, &e);
    let summary_txt = std::fs::read_to_string(dir.join("mlperf_log_summary.txt")).unwrap();
    let summary_json = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    for (name, text) in [
        ("stdout", ran.stdout.as_str()),
        ("mlperf_log_summary.txt", summary_txt.as_str()),
        ("summary.json", summary_json.as_str()),
    ] {
        assert!(
            !text.contains("-9223372036854") && !text.contains("9223372036854"),
            "{name} holds a sentinel:\n{text}"
        );
        let lower = text.to_ascii_lowercase();
        for key in [
            "first token",
            "ttft",
            "first_token",
            "tpot",
            "time per output token",
            "time_per_output_token",
        ] {
            for v in values_after(&lower, key) {
                assert!(v >= 0.0, "{name}: {key} {v}:\n{text}");
            }
        }
    }
}

#[test]
fn answers_longer_than_max_tokens_are_counted_and_warned() {
    // 80 tokens for max_tokens 4, every sample.
    let (scratch, ran, dir) = server_run(Completion::Tokens(80), &[]);
    // The count is every sample that completed (a loaded machine may fail
    // one on the stall timeout), so the sentence is matched without it.
    let wanted = "samples answered with more output tokens than their max_tokens";
    // Six queries are too few for Server's early stopping: INVALID (3).
    let e = Expect {
        max_stderr_lines: 40,
        ..expect(3, &[wanted])
    };
    check("more tokens than max_tokens", &scratch, &ran, &e);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let warnings = summary["warnings"].to_string();
    assert!(warnings.contains(wanted), "{warnings}");
}

#[test]
fn a_metrics_endpoint_that_never_answers_never_delays_the_issuer() {
    // Low QPS: the run lasts about 2.5 s, longer than the 1 s collection
    // interval and the scrape timeout, and every query is under latency
    // only if nothing held the issuer back.
    let (scratch, ran, dir) =
        fake_server_run(Fake::MetricsHang, "2", &["--enable-metrics-collection"]);
    let wanted = "metrics collection ticks skipped: a /metrics scrape was still outstanding";
    let e = Expect {
        max_stderr_lines: 40,
        max_secs: 15.0,
        ..expect(3, &[wanted])
    };
    check("metrics never answers", &scratch, &ran, &e);
    // INVALID only for the six queries early stopping cannot judge: the
    // latency constraint is met, no query failed.
    assert!(ran.stdout.contains("latency constraints met"), "{ran:?}");
    assert!(ran.stdout.contains(", 0 failed"), "{ran:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let warnings = summary["warnings"].to_string();
    assert!(warnings.contains(wanted), "{warnings}");
    // The start-of-window scrape (it times out after 2 s) never held the
    // first query back.
    let late = summary["issue_delay_ns"]["max"].as_f64().unwrap();
    assert!(late < 1e9, "issue delay {late} ns");
    let server: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("server_summary.json")).unwrap()).unwrap();
    assert!(server["skipped_ticks"].as_u64().unwrap() > 0, "{server}");
}

#[test]
fn the_first_query_never_waits_for_the_window_start_scrape() {
    // Offline issues its one query the moment the performance phase starts,
    // so its `issued_ns` (from the phase clock's start) is the whole delay
    // the window-start mark adds. Against a /metrics that accepts and never
    // answers, a start mark that waited for its scrape on the running clock
    // held the query back by 250 ms (its bounded wait) or more.
    let scratch = Scratch::new();
    let server = FakeServer::start(Fake::MetricsHang);
    let args = tiny(&[
        "--backend",
        &server.url(),
        "--model",
        "m",
        "--no-history",
        "--enable-metrics-collection",
    ]);
    let ran = scratch.run(&args, &[], 60.0);
    check(
        "first query vs an unanswered /metrics",
        &scratch,
        &ran,
        &Expect {
            max_stderr_lines: 40,
            ..expect(0, &[])
        },
    );
    let dir = scratch.run_dirs("runs").pop().unwrap();
    let records = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    let first_issue = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "query")
        .map(|v| v["issued_ns"].as_u64().unwrap())
        .min()
        .unwrap();
    assert!(
        first_issue < 250_000_000,
        "the first query waited {first_issue} ns for the start scrape"
    );
    // The window has no start for that backend, and says why.
    let server_summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("server_summary.json")).unwrap()).unwrap();
    let backend = &server_summary["backends"][0];
    assert!(backend["start_scrape_ns"].is_null(), "{server_summary}");
    assert!(
        backend["error"].as_str().unwrap().contains("window start"),
        "{server_summary}"
    );
}

/// GET `path` from `addr` over plain HTTP/1.1; the whole answer.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn the_prometheus_endpoint_shows_no_secret() {
    let scratch = Scratch::new();
    let server = FakeServer::start(Fake::Healthy(Completion::NoHeaders));
    // A free port (the harness needs it on its command line).
    let prom = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let backend = format!("http://user:{URL_PASSWORD}@{}", server.host_port());
    let args = bare(&[
        "--backend",
        &backend,
        "--api-key-env",
        "HOSTILE_KEY",
        "--model",
        "m",
        "--min-query-count",
        "6",
        "--min-duration-ms",
        "0",
        "--stall-timeout",
        "0",
        "--request-timeout",
        "0",
        "--prometheus-listen",
        &prom,
    ]);
    let child = scratch.spawn(&args, &[]);
    // Issuing: the endpoint serves the live metrics.
    server.wait_completion();
    let exposition = http_get(&prom, "/metrics");
    signal(child.id(), "TERM");
    let ran = finish(child, 30.0);
    check(
        "prometheus endpoint",
        &scratch,
        &ran,
        &Expect {
            max_secs: 15.0,
            ..expect(130, &["interrupted"])
        },
    );
    assert!(exposition.contains(" 200 "), "{exposition}");
    assert!(exposition.contains("harness_"), "{exposition}");
    for secret in [API_KEY, URL_PASSWORD] {
        assert!(
            !exposition.contains(secret),
            "secret {secret:?} served:\n{exposition}"
        );
    }
}
