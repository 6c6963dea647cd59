//! MLPerf llama2-70b pandas DataFrame pickle.

use std::path::Path;

use crate::{DatasetError, Sample};

/// The one-line Python conversion of a pandas pickle to JSON Lines that
/// [`crate::DatasetFormat::Jsonl`] reads with the default field names
/// (`IN` and `OUT` are the file names).
pub const PICKLE_TO_JSONL: &str = "python -c \"import pandas as pd; pd.read_pickle('IN').to_json('OUT', orient='records', lines=True)\"";

pub(crate) fn conversion_command(path: &Path) -> String {
    let input = path.display().to_string();
    let output = path.with_extension("jsonl").display().to_string();
    PICKLE_TO_JSONL
        .replace("IN", &input)
        .replace("OUT", &output)
}

pub(crate) fn load(path: &Path) -> Result<Vec<Sample>, DatasetError> {
    Err(DatasetError::Pickle {
        path: path.to_path_buf(),
        message: "not implemented yet".into(),
    })
}
