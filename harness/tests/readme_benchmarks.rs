//! The README quotes only benchmark figures that BENCHMARKS.md holds, so the
//! user's manual and the benchmark record can never disagree (issue: honest
//! benchmarks). Checked: the README's "## Performance" section, and every
//! ratio such as `12.5x` anywhere in the README.

use std::path::Path;

/// A figure: a number of two or more digits, or with a decimal point, or with
/// a unit letter glued to it (`41.7x`, `60.5M`, `1M`), as written.
fn figures(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '-' | '_')));
        if !starts {
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
        let number: String = chars[i..j].iter().collect();
        let unit = chars
            .get(j)
            .filter(|c| matches!(c, 'x' | 'M' | 'k'))
            .filter(|_| chars.get(j + 1).is_none_or(|c| !c.is_alphanumeric()));
        let digits = number.chars().filter(char::is_ascii_digit).count();
        if let Some(u) = unit {
            out.push(format!("{number}{u}"));
        } else if digits >= 2 || number.contains('.') {
            out.push(number);
        }
        i = j.max(i + 1);
    }
    out
}

/// The README's figures (Performance section, ratios anywhere) that
/// BENCHMARKS.md does not contain verbatim.
fn unbacked(readme: &str, benchmarks: &str) -> Vec<String> {
    let section = readme
        .split_once("\n## Performance\n")
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(""))
        .unwrap_or("");
    let ratios = figures(readme).into_iter().filter(|f| f.ends_with('x'));
    let mut missing: Vec<String> = figures(section)
        .into_iter()
        .chain(ratios)
        .filter(|f| !benchmarks.contains(f.as_str()))
        .collect();
    missing.sort();
    missing.dedup();
    missing
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
    let benchmarks = "ratio 41.7x; 60.5M samples/s; 3453.5 us; 1,000 QPS";
    let readme = "intro 99x faster\n## Performance\n41.7x and 60.5M, 3453.5 and 1,000; \
                  but 12.25 ms and 5,013 req/s and 7M\n## Next\n12.25 is fine here\n";
    assert_eq!(
        unbacked(readme, benchmarks),
        ["12.25", "5,013", "7M", "99x"]
    );
    assert_eq!(figures("-O3, 2 cores, x86_64, p99"), Vec::<String>::new());
}
