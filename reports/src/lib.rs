//! Statistical summaries, charts, CSV and HTML reports from run directories.
