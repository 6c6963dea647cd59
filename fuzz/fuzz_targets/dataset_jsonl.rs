//! JSON Lines datasets on hostile files.
#![no_main]

#[path = "dataset_file.rs"]
mod dataset_file;

use dataset::{Dataset, DatasetFormat, DatasetOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = dataset_file::scratch("data.jsonl", data);
    let options = DatasetOptions::new().with_format(DatasetFormat::Jsonl);
    let _ = Dataset::load(&path, &options);
});
