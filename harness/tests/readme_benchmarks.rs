//! The README quotes only benchmark figures that BENCHMARKS.md holds, so the
//! user's manual and the benchmark record can never disagree (issue 15,
//! point 4). Checked: every figure in the README's "## Performance" section,
//! and every ratio such as `12.5x` anywhere in the README.
//!
//! A figure is matched as a whole number, never as a substring: "1.9" is not
//! backed by "11.95", nor "5 ms" by "15". Thousands separators are ignored
//! on both sides ("5,013" is backed by "5013"). A number with a unit glued to
//! it (`41.7x`, `60.5M`) needs the same suffix in BENCHMARKS.md; a number
//! with a unit of measure after it (`5 ms`, `3 µs`, `8 B/query`) needs the
//! number only, because BENCHMARKS.md's tables put units in their headers.

use std::collections::BTreeSet;
use std::path::Path;

/// Units of measure that make even a one-digit number a benchmark figure.
/// Longest first, so that "ms" is not read as "m".
const UNITS: &[&str] = &[
    "tokens/s",
    "samples/s",
    "queries/s",
    "B/query",
    "B/sample",
    "req/s",
    "seconds",
    "minutes",
    "QPS",
    "GiB",
    "MiB",
    "KiB",
    "min",
    "ms",
    "µs",
    "us",
    "ns",
    "MB",
    "GB",
    "KB",
    "s",
    "%",
    "x",
    "×",
];

/// One number as written, with what tells whether it is a figure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Figure {
    /// The number without thousands separators ("5013", "41.7").
    number: String,
    /// A unit letter glued to it: `x`, `M` or `k` ("" if none).
    suffix: String,
    /// Followed (after at most one space) by a unit of measure.
    has_unit: bool,
}

impl Figure {
    fn as_written(&self) -> String {
        format!("{}{}", self.number, self.suffix)
    }
}

/// Every number in `text`. A digit starts a number unless it is glued to a
/// word (`p99`, `-O3`, `x86_64`, `llama3`); after a digit and a hyphen it
/// does (the second end of a range such as `0.19-0.29`).
fn numbers(text: &str) -> Vec<Figure> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let glued = i > 0
            && (chars[i - 1].is_alphanumeric()
                || chars[i - 1] == '_'
                || (chars[i - 1] == '-' && !(i >= 2 && chars[i - 2].is_ascii_digit())));
        if !chars[i].is_ascii_digit() || glued {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len()
            && (chars[j].is_ascii_digit()
                || ((chars[j] == ',' || chars[j] == '.')
                    && chars.get(j + 1).is_some_and(char::is_ascii_digit)))
        {
            j += 1;
        }
        let number: String = chars[i..j].iter().filter(|c| **c != ',').collect();
        let ends_word = |k: usize| chars.get(k).is_none_or(|c| !c.is_alphanumeric());
        let suffix = chars
            .get(j)
            .filter(|c| matches!(c, 'x' | 'M' | 'k') && ends_word(j + 1))
            .map(|c| c.to_string())
            .unwrap_or_default();
        let after = if suffix.is_empty() { j } else { j + 1 };
        let from = if chars.get(after) == Some(&' ') {
            after + 1
        } else {
            after
        };
        let rest: String = chars[from.min(chars.len())..].iter().take(12).collect();
        let has_unit = !suffix.is_empty()
            || UNITS
                .iter()
                .any(|u| rest.starts_with(u) && ends_word(from + u.chars().count()));
        out.push(Figure {
            number,
            suffix,
            has_unit,
        });
        i = j.max(i + 1);
    }
    out
}

/// The numbers that count as benchmark figures: two or more digits, a
/// decimal point, a glued suffix, or a unit of measure after it.
fn figures(text: &str) -> Vec<Figure> {
    numbers(text)
        .into_iter()
        .filter(|f| {
            f.has_unit
                || f.number.contains('.')
                || f.number.chars().filter(char::is_ascii_digit).count() >= 2
        })
        .collect()
}

/// The README's figures (Performance section, ratios anywhere) that
/// BENCHMARKS.md does not hold, as written in the README.
fn unbacked(readme: &str, benchmarks: &str) -> Vec<String> {
    let section = readme
        .split_once("\n## Performance\n")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(""))
        .unwrap_or("");
    let held: BTreeSet<String> = numbers(benchmarks)
        .iter()
        .flat_map(|f| [f.number.clone(), f.as_written()])
        .collect();
    let ratios = figures(readme).into_iter().filter(|f| f.suffix == "x");
    let missing: BTreeSet<String> = figures(section)
        .into_iter()
        .chain(ratios)
        .filter(|f| !held.contains(&f.as_written()))
        .map(|f| f.as_written())
        .collect();
    missing.into_iter().collect()
}

#[test]
fn readme_quotes_only_figures_that_benchmarks_md_holds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let benchmarks = std::fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
    assert!(
        readme.contains("\n## Performance\n"),
        "README has a Performance section"
    );
    assert!(!benchmarks.is_empty(), "BENCHMARKS.md exists");
    let missing = unbacked(&readme, &benchmarks);
    assert!(
        missing.is_empty(),
        "README states benchmark figures that BENCHMARKS.md does not hold: {missing:?}"
    );
}

#[test]
fn a_figure_missing_from_benchmarks_md_is_caught() {
    let benchmarks = "ratio 41.7x; 60.5M samples/s; 3453.5 us; 1,000 QPS; 11.95 ms; 15 ms";
    let readme = "intro 99x faster\n## Performance\n41.7x and 60.5M, 3453.5 and 1,000; \
                  but 12.25 ms and 5,013 req/s and 7M\n## Next\n12.25 is fine here\n";
    assert_eq!(unbacked(readme, benchmarks), ["12.25", "5013", "7M", "99x"]);
}

#[test]
fn figures_with_units_are_caught_however_short() {
    // One-digit figures with a unit of measure, the second end of a range,
    // and numbers that only occur inside a longer number in BENCHMARKS.md.
    let benchmarks = "| 11.95 | 15 | 8000 | 3453.5 | 6482.6 |\n";
    let readme = "intro\n## Performance\nTTFT p99 3453.5-6482.6 µs; \
                  p99 1.9 ms, 5 ms late, 8 B/query, 3 µs, 7 tokens/s, 4 req/s, \
                  6 QPS, 2x, 9%\n";
    assert_eq!(
        unbacked(readme, benchmarks),
        ["1.9", "2x", "3", "4", "5", "6", "7", "8", "9"]
    );
    // Backed when BENCHMARKS.md holds them as whole numbers, with the same
    // suffix for a ratio, and thousands separators ignored.
    let benchmarks = "1.9 | 5 | 8 | 3 | 7 | 4 | 6 | 2x | 9 | 3,453.5 | 6482.6";
    assert_eq!(unbacked(readme, benchmarks), Vec::<String>::new());
}

#[test]
fn words_with_digits_and_counts_without_units_are_not_figures() {
    assert_eq!(
        figures("-O3, 2 cores, x86_64, p99, llama3-2, 1 of 3 repeats"),
        Vec::<Figure>::new()
    );
}
