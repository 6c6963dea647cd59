//! PNG charts.

use crate::load::RunData;
use crate::summary::Summary;
use crate::{ReportError, ReportOutputs};

/// One drawn chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name.
    pub name: String,
    /// Title.
    pub title: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// Draws every chart whose data exists.
pub fn draw_all(
    _data: &RunData,
    _summary: &Summary,
    _out: &mut ReportOutputs,
) -> Result<Vec<Chart>, ReportError> {
    Ok(Vec::new())
}
