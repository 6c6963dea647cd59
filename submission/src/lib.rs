//! What an MLPerf Inference submitter does after the runs, from run
//! directories: the compliance audits (which ones a benchmark needs, their
//! `audit.config`, and the verification MLCommons' `compliance/TESTxx`
//! scripts do, with the same output files, text and verdicts) and the
//! submission tree (`tree`: which runs may go in, `rules`; the system
//! description, `system`), and the results of two trees side by side
//! (`results`).
//!
//! It reads files and writes files; it knows nothing of HTTP or of how the
//! audited run was made.

pub mod audit;
pub mod results;
pub mod rules;
pub mod system;
pub mod tree;

pub use audit::{AuditError, AuditTest, Test06Options, Test06Report, TokenDtype};
pub use system::{Accelerator, AcceleratorFacts, BackendFacts, HostFacts, SystemFacts};
pub use tree::{Division, RunLogs, TreeError, TreeOptions, TreeReport, build_tree};
