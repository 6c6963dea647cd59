//! Replay mode: the simulator answers a known prompt with a fixed output
//! (a dataset's reference answer) instead of sampled tokens, so an accuracy
//! run scores what that output scores, without a GPU.

use std::collections::HashMap;
use std::sync::Arc;

/// Prompt token ids -> the output token ids to answer them with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    outputs: HashMap<Box<[u32]>, Arc<[u32]>>,
}

impl Replay {
    /// A table from `(prompt, output)` pairs; a prompt listed twice keeps its
    /// last output.
    pub fn new(pairs: impl IntoIterator<Item = (Vec<u32>, Vec<u32>)>) -> Replay {
        Replay {
            outputs: pairs
                .into_iter()
                .map(|(prompt, output)| (prompt.into_boxed_slice(), Arc::from(output)))
                .collect(),
        }
    }

    /// The output for `prompt`, if it is in the table.
    pub fn output(&self, prompt: &[u32]) -> Option<Arc<[u32]>> {
        self.outputs.get(prompt).cloned()
    }

    /// Prompts in the table.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }
}
