//! Loading the run's dataset (the LoadGen QSL).

use dataset::{Dataset, DatasetFormat, DatasetOptions};

use crate::cli::DatasetFormatArg;
use crate::run_cmd::DatasetSpec;

/// Reads the dataset a run asked for.
pub fn load(spec: &DatasetSpec) -> anyhow::Result<Dataset> {
    let mut options = DatasetOptions::new();
    options = match spec.format {
        DatasetFormatArg::Auto => options,
        DatasetFormatArg::CnnEval => options.with_format(DatasetFormat::MlperfJson),
        DatasetFormatArg::Pickle => options.with_format(DatasetFormat::PandasPickle),
        DatasetFormatArg::Jsonl => options.with_format(DatasetFormat::Jsonl),
        DatasetFormatArg::Sharegpt => options.with_format(DatasetFormat::ShareGpt),
    };
    if let Some(n) = spec.limit {
        options = options.with_total_sample_count(n);
    }
    let dataset = Dataset::load(&spec.path, &options)?;
    if dataset.samples.is_empty() {
        anyhow::bail!("{}: the dataset has no samples", spec.path.display());
    }
    Ok(dataset)
}
