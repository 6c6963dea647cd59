//! Integration tests of the SUT against in-process servers (one binary).

// Test scaffolding outside #[test] fns: a failed setup must fail the test,
// and a skipped peer test says why on stdout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod balancing;
mod common;
mod failures;
mod offline;
mod output_tokens;
mod shutdown;
mod streaming;
mod tokenizer;
