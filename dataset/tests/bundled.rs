//! The bundled sample dataset loads as an MLPerf cnn_eval.json.

use std::path::PathBuf;

use dataset::{Dataset, DatasetFormat, DatasetOptions};
use loadgen::QuerySampleLibrary;

fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/cnn_dailymail_sample.json")
}

#[test]
fn bundled_sample_is_an_mlperf_cnn_eval_file() {
    let path = bundled();
    assert_eq!(
        DatasetFormat::detect(&path).unwrap(),
        DatasetFormat::MlperfJson
    );
    let d = Dataset::load(&path, &DatasetOptions::new()).unwrap();
    assert_eq!(d.name, "cnn_dailymail_sample");
    assert!((50..=100).contains(&d.samples.len()), "{}", d.samples.len());
    assert_eq!(d.performance_sample_count, d.samples.len());
    for (i, s) in d.samples.iter().enumerate() {
        // Llama 3 BOS, as the reference's tokenizer.encode adds.
        assert_eq!(s.input_tokens[0], 128_000, "sample {i}");
        let text = s.input_text.as_deref().unwrap();
        assert!(text.starts_with("Summarize the following news article in 128 tokens."));
        assert!(text.ends_with("\n\nSummary:"));
        assert!(!s.reference.as_deref().unwrap().trim().is_empty());
    }
    let opts = DatasetOptions::new()
        .with_total_sample_count(10)
        .with_performance_sample_count(4)
        .with_name("cnn");
    let d = Dataset::load(&path, &opts).unwrap();
    assert_eq!(
        (
            d.total_sample_count(),
            d.performance_sample_count(),
            d.name()
        ),
        (10, 4, "cnn")
    );
}

#[test]
fn bundled_sample_is_small() {
    let len = std::fs::metadata(bundled()).unwrap().len();
    assert!(len < 500 * 1024, "{len} bytes");
}

#[test]
fn missing_file_names_the_path() {
    let e = Dataset::load("no/such/file.json", &DatasetOptions::new()).unwrap_err();
    assert!(
        e.to_string().starts_with("cannot read no/such/file.json"),
        "{e}"
    );
}
