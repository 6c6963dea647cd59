//! The llama2-70b pandas DataFrame pickle reader on hostile pickles: the
//! pickle decoder (serde_pickle), the DataFrame walk and the sample mapping.
#![no_main]

#[path = "dataset_file.rs"]
mod dataset_file;

use dataset::{Dataset, DatasetFormat, DatasetOptions, read_dataframe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // The reader catches serde-pickle's own panics (it panics on some
        // malformed pickles) and returns an error; libFuzzer's hook would
        // abort even on a caught panic. An uncaught one still aborts: the
        // harness around this target turns it into a crash report.
        std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    },
    |data: &[u8]| {
        let path = dataset_file::scratch("data.pkl", data);
        let _ = read_dataframe(&path);
        let options = DatasetOptions::new().with_format(DatasetFormat::PandasPickle);
        let _ = Dataset::load(&path, &options);
    }
);
