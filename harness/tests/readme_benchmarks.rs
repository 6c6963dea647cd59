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
//!
//! Also here: scripts/bench/merge_sections.py, which assembles BENCHMARKS.md
//! from the sections `all.sh` ran and (with `--update`) keeps the others as an
//! earlier run wrote them; driven on small fixtures and on the real file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One section of all.sh's plan: name, title, and run|failed|skipped.
type Planned<'a> = (&'a str, &'a str, &'a str);

/// Runs merge_sections.py over a run folder holding `plan` (with a section
/// file for each run one, from `run_body`) and `keep` as the earlier file;
/// returns its exit code, the merged text and its error output. None when
/// python3 is not installed (all.sh needs it; then there is nothing to test).
fn merge(
    plan: &[Planned<'_>],
    run_body: &dyn Fn(&str) -> String,
    keep: Option<&str>,
) -> Option<(i32, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let tsv: String = plan
        .iter()
        .map(|(name, title, state)| format!("{name}\t{title}\t{state}\n"))
        .collect();
    std::fs::write(dir.path().join("sections.tsv"), tsv).unwrap();
    std::fs::write(dir.path().join("preamble.md"), "Updated by a test.\n").unwrap();
    for (name, _, state) in plan {
        if *state != "skipped" {
            std::fs::write(dir.path().join(format!("{name}.md")), run_body(name)).unwrap();
        }
    }
    let out = dir.path().join("out.md");
    let mut command = Command::new("python3");
    command
        .arg(repo_root().join("scripts/bench/merge_sections.py"))
        .arg("--dir")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .args(["--skip-reason", "left out for time"]);
    if let Some(keep) = keep {
        let path = dir.path().join("earlier.md");
        std::fs::write(&path, keep).unwrap();
        command.arg("--keep").arg(path);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping: python3 is not installed (scripts/bench/all.sh needs it)");
            return None;
        }
        Err(e) => panic!("running python3: {e}"),
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    Some((
        output.status.code().unwrap_or(-1),
        text,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

fn new_section(name: &str) -> String {
    format!(
        "<!-- section: {name}; commit: new1234; date: 2026-12-06 10:00 UTC; status: ok -->\n\
         ## Title of {name}\n\nRun at commit new1234 on 2026-12-06 10:00 UTC, on 2 cores \
         (AMD EPYC, family 26 model 2; Linux 6.18 x86_64), 24 GiB of memory.\n\
         new figure of {name}: 7.25 ms\n\n"
    )
}

#[test]
fn an_update_replaces_the_sections_run_and_keeps_the_others_with_their_origin() {
    let earlier = "# Benchmarks\n\nold header\n\n\
        <!-- section: a; commit: old1111; date: 2026-12-01 09:00 UTC; status: ok -->\n\
        ## Title of a\n\nold figure of a: 1.5 ms\n\n## an inner heading of a's own output\n\n\
        | 12 | 13 |\n\n\
        <!-- section: b; commit: old2222; date: 2026-12-02 09:00 UTC; status: ok -->\n\
        ## Title of b\n\nold figure of b: 2.5 ms\n";
    let plan = [
        ("a", "Title of a", "skipped"),
        ("b", "Title of b", "run"),
        ("c", "Title of c", "skipped"),
    ];
    let Some((code, text, stderr)) = merge(&plan, &new_section, Some(earlier)) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    // a: kept as it was, its inner heading and table included, origin named.
    assert!(text.contains("old figure of a: 1.5 ms"), "{text}");
    assert!(text.contains("## an inner heading of a's own output\n\n| 12 | 13 |"));
    assert!(text.contains(
        "| a | old1111 | 2026-12-01 09:00 UTC | not recorded | kept from an earlier run |"
    ));
    // b: the new run replaced the old figures.
    assert!(text.contains("new figure of b: 7.25 ms"));
    assert!(!text.contains("old figure of b"), "{text}");
    // The machine, from the section's "Run at" line: kept sections may come
    // from other hosts.
    assert!(text.contains(
        "| b | new1234 | 2026-12-06 10:00 UTC | \
         2 cores (AMD EPYC, family 26 model 2; Linux 6.18 x86_64) | this run |"
    ));
    // c: never run, listed as not run with the reason.
    assert!(text.contains("| c | - | - | - | not run (left out for time) |"));
    assert!(text.contains("**Not run** (left out for time)"));
    assert!(text.contains("- c: Title of c"));
    // Published in the plan's order, each once, each with its marker.
    let a = text.find("## Title of a").unwrap();
    let b = text.find("## Title of b").unwrap();
    assert!(a < b);
    assert_eq!(text.matches("<!-- section: ").count(), 2);
    // Without --keep (a plain partial run) the sections not run disappear.
    let (_, plain, _) = merge(&plan, &new_section, None).unwrap();
    assert!(!plain.contains("old figure of a"));
    assert!(plain.contains("| a | - | - | - | not run (left out for time) |"));
}

#[test]
fn a_failed_section_is_flagged_and_an_earlier_file_without_provenance_is_refused() {
    let plan = [("a", "Title of a", "failed")];
    let failed = |name: &str| {
        format!(
            "<!-- section: {name}; commit: new1234; date: 2026-12-06 10:00 UTC; status: failed -->\n\
             ## Title of {name}\n\n**FAILED** (exit 1).\n"
        )
    };
    let Some((code, text, _)) = merge(&plan, &failed, None) else {
        return;
    };
    assert_eq!(code, 0);
    assert!(
        text.contains("| a | new1234 | 2026-12-06 10:00 UTC | not recorded | FAILED in this run |")
    );
    assert!(text.contains("**Failed benchmarks: a**"));
    // A file with neither markers nor a commit and date in its header cannot
    // say which code produced its figures: refused, naming the file.
    let plan = [("a", "Title of a", "skipped")];
    let (code, _, stderr) = merge(&plan, &new_section, Some("## Title of a\n\n1.5 ms\n")).unwrap();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("earlier.md: has no section markers"),
        "{stderr}"
    );
}

#[test]
fn an_update_of_the_real_benchmarks_md_keeps_every_figure_the_readme_quotes() {
    // The sections and titles all.sh publishes, read from all.sh itself.
    let all_sh = std::fs::read_to_string(repo_root().join("scripts/bench/all.sh")).unwrap();
    let plan: Vec<(String, String)> = all_sh
        .lines()
        .filter_map(|line| line.strip_prefix("section "))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once(' ')?;
            let title = rest.strip_prefix('"')?.split_once('"')?.0;
            Some((name.to_string(), title.to_string()))
        })
        .collect();
    assert!(plan.len() >= 10, "all.sh's sections: {plan:?}");
    let planned: Vec<Planned<'_>> = plan
        .iter()
        .map(|(name, title)| (name.as_str(), title.as_str(), "skipped"))
        .collect();
    let benchmarks = std::fs::read_to_string(repo_root().join("BENCHMARKS.md")).unwrap();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let Some((code, merged, stderr)) = merge(&planned, &new_section, Some(&benchmarks)) else {
        return;
    };
    assert_eq!(code, 0, "{stderr}");
    // Nothing run now: every section BENCHMARKS.md has is kept, every line
    // of it, so the README's figures stay backed.
    for (name, title) in &plan {
        if benchmarks.contains(&format!("\n## {title}\n")) {
            assert!(
                merged.contains(&format!("<!-- section: {name}; ")),
                "{name} kept"
            );
        }
    }
    let body = |text: &str| -> BTreeSet<String> {
        let start = text.find("\n## ").unwrap_or(text.len());
        text[start..]
            .lines()
            .filter(|l| !l.starts_with("<!-- section: ") && !l.starts_with("Run at commit "))
            .map(str::to_string)
            .collect()
    };
    let lost: Vec<_> = body(&benchmarks)
        .difference(&body(&merged))
        .cloned()
        .collect();
    assert!(lost.is_empty(), "lines lost by the update: {lost:?}");
    // Every kept section's row names the machine it ran on.
    let rows: Vec<&str> = merged
        .lines()
        .filter(|l| l.ends_with("| kept from an earlier run |"))
        .collect();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row.contains(" cores ("), "{row}");
    }
    assert_eq!(unbacked(&readme, &merged), Vec::<String>::new());
    // Merging the merged file again changes nothing (markers read back).
    let (_, again, _) = merge(&planned, &new_section, Some(&merged)).unwrap();
    assert_eq!(body(&again), body(&merged));
}
