//! Prometheus exposition text through the parser, the mapping to the
//! harness's vocabulary, and the rate/delta computation between two scrapes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry::prom_parse::Exposition;
use telemetry::server::{ServerDelta, ServerSnapshot};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Two scrapes: the input cut at its middle line, so deltas see series
    // that appear, vanish and go backwards.
    let mid = text.len() / 2;
    // A newline is one byte in UTF-8, so the cut is on a char boundary.
    let split = text.as_bytes()[..mid]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let first = Exposition::parse(&text[..split]);
    let second = Exposition::parse(&text);
    let before = ServerSnapshot::from_exposition(&first);
    let after = ServerSnapshot::from_exposition(&second);
    let delta = ServerDelta::between(&before, &after, 1.0);
    let _ = delta.rates();
    let _ = delta.distribution_values();
    let backwards = ServerDelta::between(&after, &before, 0.0);
    let _ = backwards.rates();
    let _ = backwards.distribution_values();
});
