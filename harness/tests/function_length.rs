//! No function over 150 lines outside tests, examples and the fuzz crate,
//! unless its doc comment says it "Mirrors LoadGen" (a line-for-line port
//! of a C++ function, kept in one piece so the two read side by side; see
//! ARCHITECTURE.md). Long functions are where the joins hide; this keeps
//! the rule true as the code grows.

use std::path::{Path, PathBuf};

const MAX_LINES: usize = 150;
const MIRROR_LABEL: &str = "Mirrors LoadGen";

/// The function's name when `line` starts a function.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in ["pub(crate) ", "pub(super) ", "pub(self) ", "pub "] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r;
            break;
        }
    }
    for qualifier in ["const ", "async ", "unsafe "] {
        if let Some(r) = rest.strip_prefix(qualifier) {
            rest = r;
        }
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The doc comment (and attributes) right above line `at`.
fn doc_above(lines: &[&str], at: usize) -> String {
    let mut doc = Vec::new();
    for line in lines[..at].iter().rev() {
        let t = line.trim_start();
        if t.starts_with("///") || t.starts_with("#[") {
            doc.push(t);
        } else {
            break;
        }
    }
    doc.reverse();
    doc.join("\n")
}

/// Functions in `text` longer than [`MAX_LINES`] (signature to closing
/// brace, as rustfmt lays them out) whose doc comment lacks
/// [`MIRROR_LABEL`]: (name, first line, length).
fn unlabelled_long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        // Where the signature ends: `{` opens a body; `;` ends a trait
        // method's declaration and `}` a one-line function, neither of
        // which can be long.
        let Some(sig_end) = lines[i..]
            .iter()
            .map(|l| l.trim_end())
            .find(|l| l.ends_with(['{', ';', '}']))
        else {
            continue;
        };
        if !sig_end.ends_with('{') {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent}}}");
        let Some(end) = lines[i + 1..].iter().position(|l| *l == close) else {
            continue;
        };
        let length = end + 2;
        if length > MAX_LINES && !doc_above(&lines, i).contains(MIRROR_LABEL) {
            found.push((name.to_owned(), i + 1, length));
        }
    }
    found
}

/// The .rs files under `dir`, skipping tests, examples, build output and
/// hidden directories.
fn source_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !(name.starts_with('.') || ["tests", "examples", "target"].contains(&&*name)) {
                source_files(&path, files);
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_function_over_150_lines_unless_it_mirrors_loadgen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)
        .expect("read the workspace root")
        .flatten()
    {
        let dir = entry.path();
        if dir.join("Cargo.toml").is_file() && entry.file_name() != "fuzz" {
            source_files(&dir, &mut files);
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("loadgen/src/schedule.rs")),
        "the walk found the workspace's sources"
    );
    let mut offenders = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (name, line, length) in unlabelled_long_functions(&text) {
            let file = file.strip_prefix(root).unwrap_or(file).display();
            offenders.push(format!("{file}:{line}: fn {name} is {length} lines"));
        }
    }
    assert!(
        offenders.is_empty(),
        "split these into smaller named functions (or, for a line-for-line port of a LoadGen \
         function, say \"{MIRROR_LABEL} <version>'s `<C++ function>`\" in its doc comment):\n{}",
        offenders.join("\n")
    );
}

/// A function of `body` lines inside an `impl`, with `doc` above it.
fn synthetic(doc: &str, body: usize) -> String {
    let mut text = String::from("impl X {\n");
    text.push_str(doc);
    text.push_str("    pub(crate) fn long_one(&self) -> u32 {\n");
    for i in 0..body {
        text.push_str(&format!("        let _v{i} = {i};\n"));
    }
    text.push_str(
        "        0\n    }\n\n    fn short(&self) {}\n    fn decl(\n        &self,\n    );\n}\n",
    );
    text
}

#[test]
fn the_check_flags_a_long_function_and_spares_a_labelled_mirror() {
    // Signature + 148 statements + tail + brace = 151 lines: flagged.
    let long = synthetic("    /// Does a lot.\n", 148);
    assert_eq!(
        unlabelled_long_functions(&long),
        vec![("long_one".to_owned(), 3, 151)]
    );
    // 150 lines: within the rule.
    assert!(unlabelled_long_functions(&synthetic("", 147)).is_empty());
    // The label, even with an attribute between it and the signature.
    let mirror = synthetic(
        "    /// Mirrors LoadGen 6.0.17's `Foo` (foo.cc) line for line.\n    #[allow(clippy::too_many_lines)]\n",
        148,
    );
    assert!(unlabelled_long_functions(&mirror).is_empty());
    // The label must be on this function, not another; a one-line
    // function is never measured to some later closing brace.
    let elsewhere = format!("/// Mirrors LoadGen's `Bar`.\nfn bar() {{}}\n{long}");
    assert_eq!(
        unlabelled_long_functions(&elsewhere),
        vec![("long_one".to_owned(), 5, 151)]
    );
}
