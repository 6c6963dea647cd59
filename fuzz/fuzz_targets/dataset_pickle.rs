//! The llama2-70b pandas DataFrame pickle reader on hostile pickles: the
//! pickle decoder (serde_pickle), the DataFrame walk and the sample mapping.
#![no_main]

#[path = "dataset_file.rs"]
mod dataset_file;

use dataset::{Dataset, DatasetFormat, DatasetOptions, read_dataframe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = dataset_file::scratch("data.pkl", data);
    let _ = read_dataframe(&path);
    let options = DatasetOptions::new().with_format(DatasetFormat::PandasPickle);
    let _ = Dataset::load(&path, &options);
});
