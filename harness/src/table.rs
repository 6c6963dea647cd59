//! Terminal tables (comfy-table): columns sized to their content, numbers
//! right-aligned, and on a terminal wrapped to its width so they stay
//! readable at 80 columns. Off a terminal nothing wraps, so a script reads
//! whole values, one row a line.

use std::io::{IsTerminal, Write};

use comfy_table::{CellAlignment, ContentArrangement, Table};

/// A borderless table with `header`; the columns listed in `numeric` are
/// right-aligned.
pub fn new(header: &[&str], numeric: &[usize]) -> Table {
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    if std::io::stdout().is_terminal()
        && let Some((_, cols)) = console::Term::stdout().size_checked()
    {
        table.set_width(cols);
    }
    for &i in numeric {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Writes `table`, each line without trailing blanks.
pub fn write(table: &Table, out: &mut dyn Write) -> std::io::Result<()> {
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_longest_value_and_numbers_align_right() {
        let mut table = new(&["run", "samples/s"], &[1]);
        table.add_row(["20261205-002008-sweep-p001-max_in_flight=64", "35.62"]);
        table.add_row(["short", "1234.50"]);
        let mut out = Vec::new();
        write(&table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // Every value whole, and the number column ends in the same place.
        assert!(lines[1].contains("20261205-002008-sweep-p001-max_in_flight=64"));
        let ends: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{text}");
        assert!(lines[2].ends_with(" 1234.50"), "{text}");
        assert!(lines[1].ends_with("   35.62"), "{text}");
    }

    #[test]
    fn at_80_columns_long_values_wrap_inside_their_column() {
        let mut table = new(&["run", "scenario", "mode", "samples/s"], &[3]);
        table.set_width(80);
        table.add_row([
            "20261205-002008-sweep-p001-max_in_flight=64-prompts_per_request=8-Server",
            "Server",
            "PerformanceOnly",
            "35.62",
        ]);
        let mut out = Vec::new();
        write(&table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert!(text.contains("35.62"));
    }
}
