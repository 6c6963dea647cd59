//! Files of the repository the tests run with.

use std::path::{Path, PathBuf};

/// The bundled CNN/DailyMail sample (`datasets/cnn_dailymail_sample.json`).
pub fn sample_dataset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/cnn_dailymail_sample.json")
}
