//! ShareGPT JSON.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{DatasetError, Sample};

/// Filters for ShareGPT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShareGptOptions {}

pub(crate) fn load(path: &Path, _options: &ShareGptOptions) -> Result<Vec<Sample>, DatasetError> {
    Err(crate::format_error(path, "sharegpt: not implemented yet"))
}
