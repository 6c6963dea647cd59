//! The simulator's replay mode as the harness builds it: each dataset
//! sample's prompt token ids map to its reference output, encoded with the
//! tokenizer the accuracy check will decode with. An AccuracyOnly run then
//! scores what the reference itself scores (`harness accuracy` decoding
//! with the same tokenizer).

use std::path::Path;

use anyhow::{Context as _, bail};
use dataset::Dataset;
use dataset::tokenizer::{HfTokenizer, Tokenizer, TokenizerError};

/// The built-in simulator's tokenizer, for runs made against it.
pub struct SimTokenizer(sim::tokenizer::Tokenizer);

impl SimTokenizer {
    /// The vocabulary of a simulator profile.
    pub fn for_profile(profile: &str) -> anyhow::Result<SimTokenizer> {
        let config = sim::SimConfig::from_profile(profile)?;
        Ok(SimTokenizer(sim::tokenizer::Tokenizer::new(
            config.vocab_size,
        )))
    }
}

impl Tokenizer for SimTokenizer {
    fn encode(&self, text: &str, _add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        Ok(self.0.encode(text))
    }
    fn decode(&self, ids: &[u32], _skip_special_tokens: bool) -> Result<String, TokenizerError> {
        Ok(self.0.decode(ids))
    }
}

/// The tokenizer replay encodes references with: `tokenizer.json` when
/// given (the one `harness accuracy --tokenizer` will decode with), else
/// the simulator profile's own vocabulary, which is lossy for words outside
/// it (ROUGE then falls below the reference's).
pub fn replay_tokenizer(
    tokenizer: Option<&Path>,
    sim_profile: &str,
) -> anyhow::Result<Box<dyn Tokenizer>> {
    Ok(match tokenizer {
        Some(path) => Box::new(
            HfTokenizer::from_file(path)
                .with_context(|| format!("loading --tokenizer {}", path.display()))?,
        ),
        None => Box::new(SimTokenizer::for_profile(sim_profile)?),
    })
}

/// Prompt token ids -> reference output token ids (no special tokens) for
/// every sample with a reference. Refuses a dataset without references.
pub fn replay_table(dataset: &Dataset, tokenizer: &dyn Tokenizer) -> anyhow::Result<sim::Replay> {
    let mut pairs = Vec::with_capacity(dataset.samples.len());
    for (index, sample) in dataset.samples.iter().enumerate() {
        let Some(reference) = &sample.reference else {
            continue;
        };
        let output = tokenizer
            .encode(reference, false)
            .with_context(|| format!("encoding the reference output of sample {index}"))?;
        pairs.push((sample.input_tokens.clone(), output));
    }
    if pairs.is_empty() {
        bail!(
            "replay: dataset {} has no reference outputs to answer with",
            dataset.name
        );
    }
    Ok(sim::Replay::new(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::Sample;

    fn sample(prompt: Vec<u32>, reference: Option<&str>) -> Sample {
        Sample {
            input_tokens: prompt,
            reference: reference.map(str::to_owned),
            ..Sample::default()
        }
    }

    #[test]
    fn table_maps_each_prompt_to_its_encoded_reference() {
        let tokenizer = SimTokenizer(sim::tokenizer::Tokenizer::new(1000));
        let data = Dataset::from_samples(
            "t",
            vec![
                sample(vec![1, 5, 9], Some(" ba. da")),
                sample(vec![1, 7], None),
            ],
            None,
        );
        let table = replay_table(&data, &tokenizer).unwrap();
        assert_eq!(table.len(), 1);
        let output = table.output(&[1, 5, 9]).unwrap();
        assert_eq!(tokenizer.decode(&output, true).unwrap(), " ba. da");
        assert!(table.output(&[1, 7]).is_none());
    }

    #[test]
    fn a_dataset_without_references_is_refused() {
        let tokenizer = SimTokenizer(sim::tokenizer::Tokenizer::new(1000));
        let data = Dataset::from_samples("empty", vec![sample(vec![1], None)], None);
        let e = replay_table(&data, &tokenizer).unwrap_err().to_string();
        assert!(e.contains("no reference outputs"), "{e}");
    }
}
