//! `report.html`.

use std::io::{self, Write};

use crate::charts::Chart;
use crate::summary::Summary;

/// Renders the page.
pub fn render(_summary: &Summary, _charts: &[Chart], w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"<!doctype html>\n")
}
