//! The pandas pickle walker against pickles pandas itself wrote: the
//! committed fixtures (pandas 2.3 / 3.0, protocols 4 / 5) always, and fresh
//! ones from scripts/peers/pandas.sh (PANDAS_PYTHON, PANDAS2_PYTHON) when
//! available. Expected values are what pandas reads back from each pickle.

// Helpers outside #[test] fns are test code too; clippy.toml's in-tests
// allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common {
    pub mod peer;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use dataset::{Dataset, DatasetError, DatasetFormat, DatasetOptions, read_dataframe};
use serde_json::Value;

use common::peer::run_peer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/datasets")
}

/// Every column of `pkl` equals what pandas read back (`expected`).
fn check_against_expected(pkl: &Path, expected: &Path) {
    let frame = read_dataframe(pkl).unwrap();
    let want: Vec<serde_json::Map<String, Value>> = std::fs::read_to_string(expected)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frame.rows, want.len(), "{}", pkl.display());
    let names: Vec<&str> = frame.columns.iter().map(|(n, _)| n.as_str()).collect();
    let want_names: Vec<&str> = want[0].keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut want_sorted = want_names.clone();
    want_sorted.sort_unstable();
    assert_eq!(sorted, want_sorted, "{}", pkl.display());
    for (name, values) in &frame.columns {
        for (i, v) in values.iter().enumerate() {
            assert_eq!(v, &want[i][name], "{} row {i} column {name}", pkl.display());
        }
    }
    let d = Dataset::load(pkl, &DatasetOptions::new()).unwrap();
    assert_eq!(d.samples.len(), want.len());
    for (s, w) in d.samples.iter().zip(&want) {
        let ids: Vec<u32> = w["tok_input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(s.input_tokens, ids);
        assert_eq!(s.reference.as_deref(), w["output"].as_str());
        assert_eq!(s.input_text.as_deref(), w["input"].as_str());
    }
}

#[test]
fn committed_fixtures_read_like_pandas() {
    for name in ["pandas2_p4", "pandas2_p5", "pandas3_p4", "pandas3_p5"] {
        let dir = fixtures().join("pickles");
        let pkl = dir.join(format!("{name}.pkl"));
        assert_eq!(
            DatasetFormat::detect(&pkl).unwrap(),
            DatasetFormat::PandasPickle
        );
        check_against_expected(&pkl, &dir.join(format!("{name}.expected.jsonl")));
    }
}

#[test]
fn fresh_pickles_from_real_pandas() {
    let pythons: Vec<String> = ["PANDAS_PYTHON", "PANDAS2_PYTHON"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .collect();
    if pythons.is_empty() {
        println!(
            "skipping fresh_pickles_from_real_pandas: PANDAS_PYTHON unset (scripts/peers/pandas.sh)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (k, py) in pythons.iter().enumerate() {
        run_peer(
            Command::new(py)
                .arg(fixtures().join("make_pickles.py"))
                .arg(dir.path())
                .args(["--rows", "300", "--seed", "7", "--tag"])
                .arg(format!("t{k}")),
        );
        for proto in [4, 5] {
            let base = dir.path().join(format!("t{k}_p{proto}"));
            check_against_expected(
                &base.with_extension("pkl"),
                &base.with_extension("expected.jsonl"),
            );
        }
    }
}

#[test]
fn a_pickle_that_is_no_dataframe_is_never_advised_to_be_unpickled() {
    // Unpickling in Python runs the file's code: advising `pd.read_pickle`
    // for a file that is not even a DataFrame (it may be hostile) was a bug.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.pkl");
    // pickle.dumps(1, protocol=2): valid pickle, not a DataFrame.
    std::fs::write(&path, b"\x80\x02K\x01.").unwrap();
    let e = Dataset::load(&path, &DatasetOptions::new()).unwrap_err();
    assert!(matches!(e, DatasetError::NotADataFrame { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("not a DataFrame pickle"), "{msg}");
    assert!(msg.contains("x.pkl"), "{msg}");
    assert!(!msg.contains("read_pickle"), "{msg}");
    assert!(msg.contains("executes code"), "{msg}");
    std::fs::write(&path, b"garbage").unwrap();
    let e = Dataset::load(&path, &DatasetOptions::new()).unwrap_err();
    assert!(matches!(e, DatasetError::NotADataFrame { .. }), "{e:?}");
    assert!(!e.to_string().contains("read_pickle"), "{e}");
}

/// Inputs the fuzzer once crashed on (`fuzz/regressions/dataset_pickle/`):
/// each is an error naming the file, never a panic.
#[test]
fn fuzz_regressions_are_errors_not_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/dataset_pickle");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let e = read_dataframe(&path).unwrap_err();
        assert!(
            matches!(
                e,
                DatasetError::Pickle { .. } | DatasetError::NotADataFrame { .. }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        let options = DatasetOptions::new().with_format(DatasetFormat::PandasPickle);
        assert!(Dataset::load(&path, &options).is_err());
        replayed += 1;
    }
    assert!(replayed > 0, "no regression inputs in {}", dir.display());
}
