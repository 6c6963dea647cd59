//! Recorded exposition texts and the values mapped from them
//! (`collector`, `fixtures`).

use std::collections::BTreeMap;

/// The recorded exposition `tests/fixtures/metrics/{name}`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../tests/fixtures/metrics/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Asserts that `values[name]` is `expected` within a relative 1e-9.
#[track_caller]
pub fn assert_close(values: &BTreeMap<String, f64>, name: &str, expected: f64) {
    let got = values
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from {values:?}"));
    assert!(
        (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{name}: got {got}, expected {expected}"
    );
}
