//! The SUT against a real llama.cpp server, in its own test binary: cargo
//! runs test binaries one after another, so no other test competes with the
//! server for the CPU (on a saturated 2-core machine llama.cpp drops
//! connections, which the SUT rightly reports as disconnects).

// Test scaffolding outside #[test] fns: a failed setup must fail the test,
// and a skipped peer test says why on stdout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

// Shared with the integration binary, which uses the parts this one does not.
#[allow(dead_code)]
#[path = "integration/common.rs"]
mod common;
#[path = "integration/llamacpp.rs"]
mod llamacpp;
