//! Cross-checks the early-stopping port against an independent Python model
//! of LoadGen's `early_stopping.cc` (Python's `math.lgamma` is CPython's own
//! Lanczos implementation, not libm, so agreement is not a tautology).
//! Skips when `python3` is not available.
// Integration tests are not #[test]-scoped for clippy's allow-*-in-tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::Write;
use std::process::{Command, Stdio};

use loadgen::early_stopping::{MinPassingQueriesFinder, percentile_estimate_rank};

const MODEL: &str = r#"
import math, sys
def lbeta(x, y): return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)
def f21(b, c, x):
    tol = 1.0 / (1 << 33); term = 1.0; res = 1.0; i = 0
    while abs(term) > tol:
        term *= (b + i) * x / (c + i); res += term; i += 1
    return res
def breg(x, a, b):
    return math.exp(a * math.log(x) + (b - 1) * math.log(1 - x) - lbeta(a, b)) / a * f21(1 - b, 1 + a, x / (x - 1))
def search(lo, hi, t, p):
    n = hi - lo
    while n > 0:
        s = n // 2; h = lo + s
        if breg(p, h, 1 + t) < 1 - 0.99: n = s
        else: lo = h + 1; n -= s + 1
    return lo
class Finder:
    def __init__(self): self.cache = {}
    def __call__(self, t, p):
        c = self.cache.setdefault(p, {})
        if t in c: return c[t]
        below = sorted(k for k in c if k < t)
        x0, y0, x1, y1 = -1, 0, 0, math.ceil(math.log(1 - 0.99) / math.log(p))
        if below: x1 = below[-1]; y1 = c[x1]
        if len(below) > 1: x0 = below[-2]; y0 = c[x0]
        lo = int((t - x1) * (p / (1 - p)) + y1)
        hi = int((t - x1) * float((y1 - y0) * (x1 - x0)) + y1 + 1)
        h = search(lo, hi, t, p); c[t] = h; return h
for line in sys.stdin:
    kind, a, b = line.split()
    if kind == "server":
        print(Finder()(int(a), float(b)))
    else:
        n = int(a); p = float(b); f = Finder(); hmin = f(1, p)
        if n < hmin + 1: print("need", hmin + 1); continue
        t = 1
        for i in range(2, n + 1):
            if n < f(i, p) + i: t = i - 1; break
        print("t", t)
"#;

/// A small deterministic generator (splitmix64) so the cases are fixed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn matches_python_model_on_random_cases() {
    let mut cases = Vec::new();
    let mut rng = 42_u64;
    let percentiles = [0.9, 0.99, 0.999];
    for _ in 0..40 {
        let p = percentiles[(splitmix(&mut rng) % 3) as usize];
        cases.push(("server", (splitmix(&mut rng) % 400) as i64, p));
    }
    for _ in 0..25 {
        let p = percentiles[(splitmix(&mut rng) % 2) as usize];
        cases.push(("ss", 20 + (splitmix(&mut rng) % 3000) as i64, p));
    }
    let input: String = cases
        .iter()
        .map(|(k, a, p)| format!("{k} {a} {p}\n"))
        .collect();

    let child = Command::new("python3")
        .args(["-c", MODEL])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("skipping matches_python_model_on_random_cases: python3 not available");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python model failed");
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), cases.len());

    for ((kind, a, p), want) in cases.iter().zip(&lines) {
        let got = if *kind == "server" {
            MinPassingQueriesFinder::new()
                .find(*a, *p, 0.0, 0.99)
                .to_string()
        } else {
            match percentile_estimate_rank(&mut MinPassingQueriesFinder::new(), *a, *p) {
                Ok((t, _)) => format!("t {t}"),
                Err(h_min) => format!("need {}", h_min + 1),
            }
        };
        assert_eq!(&got, want, "case {kind} {a} {p}");
    }
}
