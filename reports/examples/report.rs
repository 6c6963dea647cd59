//! `cargo run --release -p reports --example report -- RUN_DIR [--no-charts] [--no-html] [--no-csv]`:
//! generates a run directory's reports and prints what was written and how
//! long it took (the timing used by `scripts/bench/report_1m.sh`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: report RUN_DIR [--no-charts] [--no-html] [--no-csv]")?,
    );
    let mut opts = reports::ReportOptions::default();
    for a in args {
        match a.as_str() {
            "--no-charts" => opts.charts = false,
            "--no-html" => opts.html = false,
            "--no-csv" => opts.csv = false,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let start = Instant::now();
    let out = reports::generate(&dir, &opts)?;
    let elapsed = start.elapsed();
    let mut stdout = std::io::stdout().lock();
    out.render(&mut stdout)?;
    writeln!(stdout, "generate: {:.3} s", elapsed.as_secs_f64())?;
    Ok(())
}
