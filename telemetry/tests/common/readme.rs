//! README tables checked against the code (`prom_docs`, `mapping_docs`).

/// The text of `name`, a path from the repository's root.
pub fn repo_file(name: &str) -> String {
    let path = format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Asserts that README.md holds exactly `table` between the marker lines
/// `start` (with its newline) and `end`; on a difference the message gives
/// the table to paste. `what` names the table in messages.
#[track_caller]
pub fn assert_readme_table(start: &str, end: &str, what: &str, table: &str) {
    let readme = repo_file("README.md");
    let from = readme
        .find(start)
        .unwrap_or_else(|| panic!("README.md lacks the {what} table's start marker"))
        + start.len();
    let len = readme[from..]
        .find(end)
        .unwrap_or_else(|| panic!("README.md lacks the {what} table's end marker"));
    let documented = &readme[from..from + len];
    assert!(
        documented == table,
        "README.md's {what} table differs from the code's; replace it with:\n\n{table}"
    );
}
