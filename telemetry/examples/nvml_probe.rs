//! Reads every GPU once through NVML and prints one `metrics.jsonl`-style
//! line per device, exactly as the collector would write it, preceded by the
//! driver version and device names on stderr.
//!
//! `cargo run -p telemetry --example nvml_probe` (exit status 1 without a
//! driver or GPU, 2 when a device could not be read).

// An example binary: printing and exit codes are its job.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

use rundir::metrics::{MetricSource, MetricsSample};
use telemetry::gpu::read_all;
use telemetry::{GpuReader, NvmlGpus};

fn main() {
    let mut gpus = match NvmlGpus::init() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("nvml_probe: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "driver {}",
        gpus.driver_version().as_deref().unwrap_or("unknown")
    );
    let n = match gpus.device_count() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("nvml_probe: {e}");
            std::process::exit(1);
        }
    };
    for i in 0..n {
        eprintln!(
            "gpu{i}: {}",
            gpus.device_name(i).as_deref().unwrap_or("unknown")
        );
    }
    let devices = match read_all(&mut gpus) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nvml_probe: {e}");
            std::process::exit(1);
        }
    };
    let mut failed = false;
    for (instance, reading) in devices {
        match reading {
            Ok(r) => {
                let sample = MetricsSample {
                    tick: None,
                    t_ns: 0,
                    source: MetricSource::Gpu,
                    instance,
                    values: r.values(),
                };
                match serde_json::to_string(&sample) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!(
                            "nvml_probe: {instance_err}: {e}",
                            instance_err = sample.instance
                        );
                        failed = true;
                    }
                }
            }
            Err(e) => {
                eprintln!("nvml_probe: {instance}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(2);
    }
}
