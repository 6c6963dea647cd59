//! Prints one NVML reading per GPU, as the collector records it: a quick
//! check of the GPU path on a machine with NVIDIA GPUs.
//!
//!     cargo run --release -p telemetry --example nvml_probe
#![allow(clippy::print_stdout, clippy::print_stderr)]

use telemetry::gpu::{NvmlGpus, read_all};

fn main() -> std::process::ExitCode {
    let mut gpus = match NvmlGpus::init() {
        Ok(gpus) => gpus,
        Err(e) => {
            eprintln!("no NVML: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "driver {}",
        gpus.driver_version().unwrap_or_else(|| "?".into())
    );
    match read_all(&mut gpus) {
        Ok(readings) => {
            for (index, (instance, reading)) in readings.into_iter().enumerate() {
                let name = gpus.device_name(index as u32).unwrap_or_default();
                match reading {
                    Ok(r) => println!("{instance} {name}: {:?}", r.values()),
                    Err(e) => println!("{instance} {name}: error {e}"),
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reading GPUs: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
