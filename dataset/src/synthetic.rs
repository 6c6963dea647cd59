//! Seeded synthetic datasets: random prompt token ids of random lengths.
//!
//! The generator is LoadGen's own engine ([`loadgen::rng::Mt19937`] and its
//! libstdc++ distributions), so a seed means the same data on every machine
//! and every build. Draw order (part of the contract, so a seed keeps its
//! meaning): the shared prefix tokens first, then per sample its input
//! length, its output length, then its own input tokens.
//!
//! A sample's prompt is `prefix_len` shared tokens (identical in every
//! sample, for prefix-cache tests) followed by its own `input_len` tokens;
//! its `max_output_tokens` is the drawn output length. Samples carry token
//! ids only (no text).

use loadgen::rng::{Mt19937, generate_canonical, uniform_int};
use serde::{Deserialize, Serialize};

use crate::{Dataset, DatasetError, Sample};

/// A distribution of lengths (in tokens).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LengthDist {
    /// Always this length.
    Fixed {
        /// The length.
        len: u32,
    },
    /// Uniform over `min..=max`.
    Uniform {
        /// Smallest length.
        min: u32,
        /// Largest length.
        max: u32,
    },
    /// Normal with this mean and standard deviation, rounded to the nearest
    /// integer and clamped to `min..=max`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
        /// Clamp floor.
        min: u32,
        /// Clamp ceiling.
        max: u32,
    },
}

impl LengthDist {
    fn validate(&self, what: &str) -> Result<(), DatasetError> {
        let bad = |m: String| {
            Err(DatasetError::Options(format!(
                "synthetic {what} length: {m}"
            )))
        };
        match *self {
            Self::Fixed { .. } => Ok(()),
            Self::Uniform { min, max } | Self::Normal { min, max, .. } if min > max => {
                bad(format!("min {min} > max {max}"))
            }
            Self::Normal { mean, std, .. }
                if !mean.is_finite() || !std.is_finite() || std < 0.0 =>
            {
                bad(format!(
                    "mean {mean} and std {std} must be finite, std >= 0"
                ))
            }
            _ => Ok(()),
        }
    }

    /// The smallest length it can draw.
    fn min_len(&self) -> u32 {
        match *self {
            Self::Fixed { len } => len,
            Self::Uniform { min, .. } | Self::Normal { min, .. } => min,
        }
    }

    /// Its mean length (for the memory estimate).
    fn mean_len(&self) -> f64 {
        match *self {
            Self::Fixed { len } => f64::from(len),
            Self::Uniform { min, max } => (f64::from(min) + f64::from(max)) / 2.0,
            Self::Normal { mean, min, max, .. } => mean.clamp(f64::from(min), f64::from(max)),
        }
    }

    fn draw(&self, g: &mut Mt19937) -> u32 {
        match *self {
            Self::Fixed { len } => len,
            Self::Uniform { min, max } => {
                // Bounded by max, which is a u32.
                uniform_int(g, u64::from(min), u64::from(max)) as u32
            }
            Self::Normal {
                mean,
                std,
                min,
                max,
            } => {
                let x = mean + std * standard_normal(g);
                // Clamped into u32 range first, so the cast is exact.
                x.round().clamp(f64::from(min), f64::from(max)) as u32
            }
        }
    }
}

/// Box–Muller (one value per two uniforms; documented draw order).
fn standard_normal(g: &mut Mt19937) -> f64 {
    let u1 = 1.0 - generate_canonical(g); // (0, 1]: ln is finite
    let u2 = generate_canonical(g);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// What [`generate`] builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSpec {
    /// Samples to generate.
    pub num_samples: usize,
    /// Seed; the same seed gives the same dataset.
    pub seed: u64,
    /// Per-sample prompt length (after the shared prefix).
    pub input_len: LengthDist,
    /// Per-sample output length (`max_output_tokens`).
    pub output_len: LengthDist,
    /// Shared prefix length (0 for none).
    pub prefix_len: u32,
    /// Smallest token id drawn.
    pub vocab_min: u32,
    /// Largest token id drawn.
    pub vocab_max: u32,
}

impl Default for SyntheticSpec {
    /// 1000 samples of 1024 input / 128 output tokens, seed 0, ids in
    /// `1000..=30000` (clear of the special tokens of common vocabularies).
    fn default() -> Self {
        Self {
            num_samples: 1000,
            seed: 0,
            input_len: LengthDist::Fixed { len: 1024 },
            output_len: LengthDist::Fixed { len: 128 },
            prefix_len: 0,
            vocab_min: 1000,
            vocab_max: 30000,
        }
    }
}

/// The most memory a synthetic dataset may take (estimated before it is
/// generated): more is a typo in `samples=` that would exhaust memory.
pub const MAX_SYNTHETIC_BYTES: u64 = 4 << 30;

impl SyntheticSpec {
    /// Memory the samples will take: their token ids plus a sample's own
    /// size.
    pub fn estimated_bytes(&self) -> u64 {
        let tokens = f64::from(self.prefix_len) + self.input_len.mean_len();
        let per_sample = tokens * 4.0 + std::mem::size_of::<Sample>() as f64;
        // Saturates for absurd counts, which is all the check needs.
        (per_sample * self.num_samples as f64) as u64
    }
}

/// Builds the dataset `spec` describes, named `synthetic-<seed>`; every
/// sample is a performance sample.
pub fn generate(spec: &SyntheticSpec) -> Result<Dataset, DatasetError> {
    spec.input_len.validate("input")?;
    spec.output_len.validate("output")?;
    if spec.vocab_min > spec.vocab_max {
        return Err(DatasetError::Options(format!(
            "synthetic vocabulary: min {} > max {}",
            spec.vocab_min, spec.vocab_max
        )));
    }
    if spec.num_samples == 0 {
        return Err(DatasetError::Options("synthetic dataset: 0 samples".into()));
    }
    if spec.prefix_len == 0 && spec.input_len.min_len() == 0 {
        return Err(DatasetError::Options(
            "synthetic input length 0 (and no prefix): a prompt would be empty".into(),
        ));
    }
    if spec.output_len.min_len() == 0 {
        return Err(DatasetError::Options(
            "synthetic output length 0: a sample would ask for no tokens".into(),
        ));
    }
    let bytes = spec.estimated_bytes();
    if bytes > MAX_SYNTHETIC_BYTES {
        return Err(DatasetError::Options(format!(
            "synthetic dataset of {} samples of about {:.0} tokens needs about {} of memory; \
             the limit is {}: fewer samples or shorter prompts",
            spec.num_samples,
            f64::from(spec.prefix_len) + spec.input_len.mean_len(),
            loadgen::input::human_bytes(bytes),
            loadgen::input::human_bytes(MAX_SYNTHETIC_BYTES),
        )));
    }
    let mut g = Mt19937::new(spec.seed);
    let (lo, hi) = (u64::from(spec.vocab_min), u64::from(spec.vocab_max));
    // Bounded by vocab_max, a u32.
    let token = |g: &mut Mt19937| uniform_int(g, lo, hi) as u32;
    let prefix: Vec<u32> = (0..spec.prefix_len).map(|_| token(&mut g)).collect();
    let mut samples = Vec::with_capacity(spec.num_samples);
    for _ in 0..spec.num_samples {
        let input_len = spec.input_len.draw(&mut g);
        let output_len = spec.output_len.draw(&mut g);
        let mut ids = Vec::with_capacity(prefix.len() + input_len as usize);
        ids.extend_from_slice(&prefix);
        ids.extend((0..input_len).map(|_| token(&mut g)));
        samples.push(Sample {
            input_tokens: ids,
            input_text: None,
            reference: None,
            max_output_tokens: Some(output_len),
        });
    }
    Ok(Dataset::from_samples(
        format!("synthetic-{}", spec.seed),
        samples,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_prompts_and_absurd_sizes_are_refused_before_generating() {
        let spec = |input: u32, samples: usize| SyntheticSpec {
            num_samples: samples,
            input_len: LengthDist::Fixed { len: input },
            ..SyntheticSpec::default()
        };
        let e = generate(&spec(0, 10)).unwrap_err().to_string();
        assert!(e.contains("input length 0"), "{e}");
        let e = generate(&spec(1024, 100_000_000)).unwrap_err().to_string();
        assert!(e.contains("100000000 samples"), "{e}");
        assert!(e.contains("GiB"), "{e}");
        let zero_out = SyntheticSpec {
            output_len: LengthDist::Uniform { min: 0, max: 4 },
            ..spec(8, 10)
        };
        assert!(
            generate(&zero_out)
                .unwrap_err()
                .to_string()
                .contains("output length 0")
        );
        assert!(generate(&spec(1024, 100)).is_ok());
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let spec = SyntheticSpec {
            num_samples: 50,
            seed: 7,
            input_len: LengthDist::Uniform { min: 5, max: 20 },
            output_len: LengthDist::Normal {
                mean: 30.0,
                std: 10.0,
                min: 1,
                max: 40,
            },
            prefix_len: 4,
            vocab_min: 100,
            vocab_max: 200,
        };
        let a = generate(&spec).unwrap();
        assert_eq!(a, generate(&spec).unwrap());
        let b = generate(&SyntheticSpec { seed: 8, ..spec }).unwrap();
        assert_ne!(a.samples, b.samples);
        assert_eq!(a.name, "synthetic-7");
        assert_eq!(a.performance_sample_count, 50);
        let prefix = &a.samples[0].input_tokens[..4];
        for s in &a.samples {
            assert_eq!(&s.input_tokens[..4], prefix);
            let own = s.input_tokens.len() - 4;
            assert!((5..=20).contains(&own));
            assert!(s.input_tokens.iter().all(|t| (100..=200).contains(t)));
            let out = s.max_output_tokens.unwrap();
            assert!((1..=40).contains(&out));
        }
        // Uniform lengths actually vary and cover both ends over 50 draws.
        let lens: Vec<usize> = a.samples.iter().map(|s| s.input_tokens.len() - 4).collect();
        assert!(lens.contains(&5) || lens.contains(&20), "{lens:?}");
        assert!(lens.iter().any(|&l| l != lens[0]));
    }

    #[test]
    fn normal_lengths_have_the_requested_moments() {
        let spec = SyntheticSpec {
            num_samples: 20_000,
            // One token: an empty prompt is refused.
            input_len: LengthDist::Fixed { len: 1 },
            output_len: LengthDist::Normal {
                mean: 200.0,
                std: 25.0,
                min: 1,
                max: 10_000,
            },
            ..SyntheticSpec::default()
        };
        let d = generate(&spec).unwrap();
        let xs: Vec<f64> = d
            .samples
            .iter()
            .map(|s| f64::from(s.max_output_tokens.unwrap()))
            .collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        // Standard error of the mean is 25/sqrt(20000) = 0.18.
        assert!((mean - 200.0).abs() < 1.0, "mean {mean}");
        assert!((sd - 25.0).abs() < 1.0, "sd {sd}");
    }

    #[test]
    fn clamps_and_rejects_bad_specs() {
        let spec = SyntheticSpec {
            num_samples: 100,
            input_len: LengthDist::Normal {
                mean: 10.0,
                std: 100.0,
                min: 3,
                max: 12,
            },
            ..SyntheticSpec::default()
        };
        let d = generate(&spec).unwrap();
        assert!(
            d.samples
                .iter()
                .all(|s| (3..=12).contains(&s.input_tokens.len()))
        );
        assert!(d.samples.iter().any(|s| s.input_tokens.len() == 3));
        assert!(d.samples.iter().any(|s| s.input_tokens.len() == 12));

        let bad = SyntheticSpec {
            input_len: LengthDist::Uniform { min: 5, max: 4 },
            ..SyntheticSpec::default()
        };
        assert!(
            generate(&bad)
                .unwrap_err()
                .to_string()
                .contains("min 5 > max 4")
        );
        let bad = SyntheticSpec {
            vocab_min: 9,
            vocab_max: 1,
            ..SyntheticSpec::default()
        };
        assert!(generate(&bad).is_err());
    }
}
