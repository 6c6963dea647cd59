//! JSON datasets: MLPerf `cnn_eval.json` (records and pandas column layout),
//! ShareGPT, and format detection, on hostile files.
#![no_main]

#[path = "dataset_file.rs"]
mod dataset_file;

use dataset::{Dataset, DatasetFormat, DatasetOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, content)) = data.split_first() else {
        return;
    };
    let path = dataset_file::scratch("data.json", content);
    let options = match pick % 3 {
        0 => DatasetOptions::new().with_format(DatasetFormat::MlperfJson),
        1 => DatasetOptions::new().with_format(DatasetFormat::ShareGpt),
        // Detection, then whichever loader it picks.
        _ => DatasetOptions::new(),
    };
    let _ = Dataset::load(&path, &options);
});
