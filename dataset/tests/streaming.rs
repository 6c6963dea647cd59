//! Large datasets are streamed: every sample arrives, and the progress
//! callback sees the bytes read grow to the file's size.

// Helpers outside #[test] fns are test code too; clippy.toml's in-tests
// allowances do not reach them.
#![allow(clippy::unwrap_used)]

use std::io::{BufWriter, Write};
use std::path::Path;

use dataset::{Dataset, DatasetFormat, DatasetOptions, MAX_JSONL_LINE_BYTES};

/// Samples in each generated file (over 10 MB of JSON).
const SAMPLES: usize = 16_000;

/// A prompt of a few hundred bytes that differs per sample.
fn prompt(i: usize) -> String {
    format!("sample {i}: {}", "lorem ipsum dolor sit amet ".repeat(16))
}

fn tokens(i: usize) -> String {
    let ids: Vec<String> = (0..64).map(|k| (i * 7 + k).to_string()).collect();
    ids.join(", ")
}

/// Loads `path` and checks the progress calls: byte counts strictly grow,
/// the total is the file's size, and the last count is the file's size.
fn load_watching(path: &Path, options: &DatasetOptions) -> Dataset {
    let size = std::fs::metadata(path).unwrap().len();
    let mut calls: Vec<(u64, u64)> = Vec::new();
    let dataset =
        Dataset::load_with_progress(path, options, &mut |read, total| calls.push((read, total)))
            .unwrap();
    assert!(calls.len() > 1, "{} progress calls", calls.len());
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "not increasing");
    assert!(calls.iter().all(|&(_, total)| total == size));
    assert_eq!(calls.last().map(|c| c.0), Some(size));
    dataset
}

fn check_samples(dataset: &Dataset, with_tokens: bool) {
    assert_eq!(dataset.samples.len(), SAMPLES);
    for i in [0, 1, SAMPLES / 2, SAMPLES - 1] {
        let s = &dataset.samples[i];
        assert_eq!(s.input_text.as_deref(), Some(prompt(i).as_str()));
        assert_eq!(s.reference.as_deref(), Some(format!("ref {i}").as_str()));
        if with_tokens {
            assert_eq!(s.input_tokens.len(), 64);
            assert_eq!(s.input_tokens[1], (i * 7 + 1) as u32);
        }
    }
}

#[test]
fn a_large_jsonl_file_loads_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..SAMPLES {
        writeln!(
            w,
            "{{\"prompt\": \"{}\", \"tok_input\": [{}], \"output\": \"ref {i}\"}}",
            prompt(i),
            tokens(i)
        )
        .unwrap();
    }
    w.into_inner().unwrap().sync_all().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 10 << 20);

    let dataset = load_watching(&path, &DatasetOptions::new());
    check_samples(&dataset, true);

    // A sample count bound keeps only the first samples, the rest checked.
    let options = DatasetOptions::new().with_total_sample_count(3);
    let first = load_watching(&path, &options);
    assert_eq!(first.samples.len(), 3);
    assert_eq!(first.samples[2], dataset.samples[2]);
}

#[test]
fn a_large_json_array_loads_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn_eval.json");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    write!(w, "[").unwrap();
    for i in 0..SAMPLES {
        let sep = if i == 0 { "" } else { ",\n" };
        write!(
            w,
            "{sep}{{\"instruction\": {{\"llama\": \"{{input}}\"}}, \"input\": \"{}\", \"tok_input\": [{}], \"output\": \"ref {i}\", \"id\": \"x{i}\"}}",
            prompt(i),
            tokens(i)
        )
        .unwrap();
    }
    writeln!(w, "]").unwrap();
    w.into_inner().unwrap().sync_all().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 10 << 20);

    let options = DatasetOptions::new().with_format(DatasetFormat::MlperfJson);
    check_samples(&load_watching(&path, &options), true);
}

#[test]
fn a_large_sharegpt_file_loads_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharegpt.json");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    write!(w, "[").unwrap();
    for i in 0..SAMPLES {
        let sep = if i == 0 { "" } else { ",\n" };
        write!(
            w,
            "{sep}{{\"id\": \"{i}\", \"conversations\": [{{\"from\": \"human\", \"value\": \"{}\"}}, {{\"from\": \"gpt\", \"value\": \"ref {i}\"}}]}}",
            prompt(i)
        )
        .unwrap();
    }
    write!(w, "]").unwrap();
    w.into_inner().unwrap().sync_all().unwrap();

    let options = DatasetOptions::new().with_format(DatasetFormat::ShareGpt);
    check_samples(&load_watching(&path, &options), false);
}

#[test]
fn an_overlong_jsonl_line_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(w, "{{\"prompt\": \"short\"}}").unwrap();
    write!(w, "{{\"prompt\": \"").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..=(MAX_JSONL_LINE_BYTES >> 20) {
        w.write_all(&chunk).unwrap();
    }
    writeln!(w, "\"}}").unwrap();
    w.into_inner().unwrap().sync_all().unwrap();

    let e = Dataset::load(&path, &DatasetOptions::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("{}:2: line longer than", path.display())),
        "{e}"
    );
}
