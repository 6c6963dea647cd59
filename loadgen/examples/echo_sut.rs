//! The loadgen library driving a trivial SUT: a one-second Server test at
//! 1,000 QPS whose "model" answers every query at once with one token.
//! `cargo run -p loadgen --example echo_sut`
#![allow(clippy::print_stdout)]

use loadgen::{EffectiveSettings, QslError, QuerySample, QuerySampleIndex, QuerySampleLibrary};
use loadgen::{QuerySampleResponse, Responder, RunOptions, Scenario, SummaryHooks};
use loadgen::{SystemUnderTest, TestSettings};

struct EchoSut;
impl SystemUnderTest for EchoSut {
    fn name(&self) -> &str {
        "echo"
    }
    // A real SUT returns at once and answers later, from its own threads.
    fn issue_query(&self, samples: &[QuerySample], responder: &Responder) {
        responder.complete(QuerySampleResponse::with_tokens(samples[0].id, &[7], 1));
    }
}

/// Ten samples with nothing to load (a real QSL reads its dataset here).
struct Ten;
impl QuerySampleLibrary for Ten {
    fn name(&self) -> &str {
        "ten"
    }
    fn total_sample_count(&self) -> usize {
        10
    }
    fn performance_sample_count(&self) -> usize {
        10
    }
    fn load_samples_to_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
        Ok(())
    }
    fn unload_samples_from_ram(&self, _: &[QuerySampleIndex]) -> Result<(), QslError> {
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requested = TestSettings {
        scenario: Scenario::Server,
        server_target_qps: 1_000.0,
        min_duration_ms: 1_000,
        min_query_count: 1_000,
        ..TestSettings::default()
    };
    let (settings, _warnings) = EffectiveSettings::new(&requested, 10, 10)?;
    let hooks = SummaryHooks::default();
    loadgen::start_test(&EchoSut, &Ten, &settings, &hooks, &RunOptions::default())?;
    for s in hooks.summaries() {
        let p99 = s.latency_percentiles[4].sample_latency;
        println!("valid {}, {} queries, p99 {p99} ns", s.valid, s.query_count);
    }
    Ok(())
}
