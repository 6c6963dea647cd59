//! Accuracy scoring.
