//! ARCHITECTURE.md's crate table says which of our crates each crate depends
//! on; this keeps that column equal to the manifests, so the map a newcomer
//! reads is the house as built.

use std::collections::BTreeSet;
use std::path::Path;

/// Our crates named in a `[dependencies]` section of a manifest.
fn manifest_deps(manifest: &str, ours: &BTreeSet<String>) -> BTreeSet<String> {
    let mut in_deps = false;
    let mut deps = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps {
            let name = line.split(['=', '.', ' ']).next().unwrap_or("");
            if ours.contains(name) {
                deps.insert(name.to_owned());
            }
        }
    }
    deps
}

/// Rows of the crate table: (crate, our crates its last column names).
fn documented(doc: &str, ours: &BTreeSet<String>) -> Vec<(String, BTreeSet<String>)> {
    doc.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.trim_matches('`');
            if !ours.contains(name) || cells.len() < 5 {
                return None;
            }
            let deps = cells[3]
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| ours.contains(*w))
                .map(str::to_owned)
                .collect();
            Some((name.to_owned(), deps))
        })
        .collect()
}

#[test]
fn the_crate_table_matches_the_manifests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = workspace
        .lines()
        .find(|l| l.starts_with("members"))
        .unwrap_or_default();
    let ours: BTreeSet<String> = members
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(
        ours.contains("loadgen") && ours.contains("harness"),
        "{ours:?}"
    );
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    let rows = documented(&doc, &ours);
    let named: BTreeSet<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        named, ours,
        "every workspace crate has one row in ARCHITECTURE.md"
    );
    for (name, deps) in rows {
        let manifest =
            std::fs::read_to_string(root.join(&name).join("Cargo.toml")).unwrap_or_default();
        let mut actual = manifest_deps(&manifest, &ours);
        if name == "harness" {
            // Its row says "everything above"; check that it is.
            let others: BTreeSet<String> =
                ours.iter().filter(|c| *c != "harness").cloned().collect();
            let missing: Vec<_> = others.difference(&actual).collect();
            assert!(missing.is_empty(), "harness does not use {missing:?}");
            actual.clear();
        }
        assert_eq!(deps, actual, "ARCHITECTURE.md's row for {name}");
    }
}

#[test]
fn a_wrong_row_is_caught() {
    let ours: BTreeSet<String> = ["loadgen", "rundir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let doc = "| `rundir` | files | loadgen |\n| `loadgen` | LoadGen | nothing of ours |\n";
    let rows = documented(doc, &ours);
    assert_eq!(rows[0].1, BTreeSet::from(["loadgen".to_owned()]));
    assert!(rows[1].1.is_empty());
    let manifest = "[dependencies]\nloadgen.workspace = true\nserde = \"1\"\n[dev-dependencies]\nrundir = { path = \"x\" }\n";
    assert_eq!(manifest_deps(manifest, &ours), rows[0].1);
    assert_ne!(manifest_deps("[dependencies]\n", &ours), rows[0].1);
}
