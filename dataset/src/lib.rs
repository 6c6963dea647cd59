//! Datasets: the samples a run sends, and what they are scored against.
//!
//! A [`Dataset`] is an in-memory list of [`Sample`]s. Loaders for the MLPerf
//! formats and common benchmark formats build one; [`Dataset`] is also the
//! LoadGen query sample library the run loads samples from.

use serde::{Deserialize, Serialize};

/// One prompt, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Prompt token ids (what the SUT sends when the server accepts ids).
    pub input_tokens: Vec<u32>,
    /// Prompt text, when the dataset has it (for chat endpoints or servers
    /// that take text only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_text: Option<String>,
    /// Reference output for accuracy scoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Output length cap for this sample, if the dataset fixes one
    /// (synthetic and ShareGPT-style data); otherwise the run's max_tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// A named list of samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// Name logged as `qsl_name`.
    pub name: String,
    /// The samples, indexed by LoadGen's `QuerySampleIndex`.
    pub samples: Vec<Sample>,
    /// Samples a performance run uses (LoadGen's performance sample count);
    /// the MLPerf LLM references use every sample.
    pub performance_sample_count: usize,
}
