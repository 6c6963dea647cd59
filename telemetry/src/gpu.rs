//! GPU readings through NVML, behind a small trait so the mapping can be
//! tested without a GPU.

use std::collections::BTreeMap;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use rundir::metrics::names;

/// Why a GPU could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// NVML could not be loaded or initialised (no driver, no GPU).
    #[error("nvml unavailable: {0}")]
    Unavailable(String),
    /// A selected GPU index that this machine does not have.
    #[error("no GPU with index {index}: NVML sees {count} GPU(s), numbered from 0")]
    NoSuchDevice {
        /// The index asked for.
        index: u32,
        /// How many devices there are.
        count: u32,
    },
    /// Reading one device failed.
    #[error("gpu {index}: {message}")]
    Device {
        /// Device index.
        index: u32,
        /// What failed.
        message: String,
    },
}

/// One GPU at one instant. A field the device does not support is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    /// Percent of the last sample period a kernel was running.
    pub utilization_pct: Option<f64>,
    /// Percent of the last sample period device memory was read or written.
    pub memory_utilization_pct: Option<f64>,
    /// Memory allocated.
    pub memory_used_bytes: Option<u64>,
    /// Memory free.
    pub memory_free_bytes: Option<u64>,
    /// Memory installed.
    pub memory_total_bytes: Option<u64>,
    /// Die temperature, °C.
    pub temperature_c: Option<f64>,
    /// Power draw, watts.
    pub power_w: Option<f64>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<f64>,
    /// Memory clock, MHz.
    pub memory_clock_mhz: Option<f64>,
    /// NVML clock-throttle (clock event) reason bits.
    pub throttle_reasons: Option<u64>,
}

impl GpuReading {
    /// The reading in the vocabulary; unsupported fields are left out.
    pub fn values(&self) -> BTreeMap<String, f64> {
        let fields: [(&str, Option<f64>); 10] = [
            (names::GPU_UTILIZATION_PCT, self.utilization_pct),
            (
                names::GPU_MEMORY_UTILIZATION_PCT,
                self.memory_utilization_pct,
            ),
            (
                names::GPU_MEMORY_USED_BYTES,
                self.memory_used_bytes.map(|v| v as f64),
            ),
            (
                names::GPU_MEMORY_FREE_BYTES,
                self.memory_free_bytes.map(|v| v as f64),
            ),
            (
                names::GPU_MEMORY_TOTAL_BYTES,
                self.memory_total_bytes.map(|v| v as f64),
            ),
            (names::GPU_TEMPERATURE_C, self.temperature_c),
            (names::GPU_POWER_W, self.power_w),
            (names::GPU_SM_CLOCK_MHZ, self.sm_clock_mhz),
            (names::GPU_MEMORY_CLOCK_MHZ, self.memory_clock_mhz),
            // Reason bits fit in 53 bits, so the f64 is exact.
            (
                names::GPU_THROTTLE_REASONS,
                self.throttle_reasons.map(|v| v as f64),
            ),
        ];
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect()
    }

    fn is_empty(&self) -> bool {
        *self == GpuReading::default()
    }
}

/// Something that reads GPUs: NVML in production, a fake in tests.
pub trait GpuReader: Send + std::fmt::Debug {
    /// Number of devices.
    fn device_count(&mut self) -> Result<u32, GpuError>;
    /// Reads device `index`.
    fn read(&mut self, index: u32) -> Result<GpuReading, GpuError>;
}

/// One device's reading, named `gpu<index>`.
pub type DeviceReading = (String, Result<GpuReading, GpuError>);

/// Reads every device. A device that fails is reported and the others are
/// still read.
pub fn read_all(reader: &mut dyn GpuReader) -> Result<Vec<DeviceReading>, GpuError> {
    read_selected(reader, None)
}

/// The devices to read among `count`: all of them, or the selected NVML
/// indices (`--gpus 0,2`), each of which must exist.
pub fn select_devices(count: u32, selection: Option<&[u32]>) -> Result<Vec<u32>, GpuError> {
    match selection {
        None => Ok((0..count).collect()),
        Some(indices) => {
            if let Some(&index) = indices.iter().find(|&&i| i >= count) {
                return Err(GpuError::NoSuchDevice { index, count });
            }
            Ok(indices.to_vec())
        }
    }
}

/// Reads the selected devices (all when `selection` is `None`), named
/// `gpu<NVML index>`. A device that fails is reported and the others are
/// still read.
pub fn read_selected(
    reader: &mut dyn GpuReader,
    selection: Option<&[u32]>,
) -> Result<Vec<DeviceReading>, GpuError> {
    let devices = select_devices(reader.device_count()?, selection)?;
    Ok(devices
        .into_iter()
        .map(|i| (format!("gpu{i}"), reader.read(i)))
        .collect())
}

/// NVML, loaded at run time (`libnvidia-ml.so.1`): no link-time dependency,
/// and on a machine without a driver [`NvmlGpus::init`] fails cleanly.
pub struct NvmlGpus {
    nvml: Nvml,
}

impl std::fmt::Debug for NvmlGpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlGpus").finish_non_exhaustive()
    }
}

impl NvmlGpus {
    /// Loads and initialises NVML.
    pub fn init() -> Result<NvmlGpus, GpuError> {
        Nvml::init()
            .map(|nvml| NvmlGpus { nvml })
            .map_err(|e| GpuError::Unavailable(e.to_string()))
    }

    /// Driver version, for run metadata.
    pub fn driver_version(&self) -> Option<String> {
        self.nvml.sys_driver_version().ok()
    }

    /// Device name (e.g. `NVIDIA H100 80GB HBM3`).
    pub fn device_name(&self, index: u32) -> Option<String> {
        self.nvml.device_by_index(index).ok()?.name().ok()
    }
}

impl GpuReader for NvmlGpus {
    fn device_count(&mut self) -> Result<u32, GpuError> {
        self.nvml
            .device_count()
            .map_err(|e| GpuError::Unavailable(e.to_string()))
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, GpuError> {
        let dev = self
            .nvml
            .device_by_index(index)
            .map_err(|e| GpuError::Device {
                index,
                message: e.to_string(),
            })?;
        // Each field on its own: an unsupported query (power on some boards,
        // clocks under MIG) must not hide the others.
        let util = dev.utilization_rates().ok();
        let mem = dev.memory_info().ok();
        let reading = GpuReading {
            utilization_pct: util.as_ref().map(|u| f64::from(u.gpu)),
            memory_utilization_pct: util.as_ref().map(|u| f64::from(u.memory)),
            memory_used_bytes: mem.as_ref().map(|m| m.used),
            memory_free_bytes: mem.as_ref().map(|m| m.free),
            memory_total_bytes: mem.as_ref().map(|m| m.total),
            temperature_c: dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
            power_w: dev.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            sm_clock_mhz: dev.clock_info(Clock::SM).ok().map(f64::from),
            memory_clock_mhz: dev.clock_info(Clock::Memory).ok().map(f64::from),
            throttle_reasons: dev.current_throttle_reasons().ok().map(|r| r.bits()),
        };
        if reading.is_empty() {
            return Err(GpuError::Device {
                index,
                message: "no query succeeded (device lost?)".into(),
            });
        }
        Ok(reading)
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// A scripted GPU set.
    #[derive(Debug, Default)]
    pub(crate) struct FakeGpus {
        pub(crate) readings: Vec<Result<GpuReading, GpuError>>,
        pub(crate) count_error: Option<GpuError>,
    }

    impl GpuReader for FakeGpus {
        fn device_count(&mut self) -> Result<u32, GpuError> {
            match &self.count_error {
                Some(e) => Err(e.clone()),
                None => Ok(self.readings.len() as u32),
            }
        }
        fn read(&mut self, index: u32) -> Result<GpuReading, GpuError> {
            self.readings[index as usize].clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeGpus;
    use super::*;

    fn h100() -> GpuReading {
        GpuReading {
            utilization_pct: Some(87.0),
            memory_utilization_pct: Some(41.0),
            memory_used_bytes: Some(70_000_000_000),
            memory_free_bytes: Some(10_000_000_000),
            memory_total_bytes: Some(80_000_000_000),
            temperature_c: Some(64.0),
            power_w: Some(512.25),
            sm_clock_mhz: Some(1980.0),
            memory_clock_mhz: Some(2619.0),
            throttle_reasons: Some(0x4 | 0x20),
        }
    }

    #[test]
    fn readings_map_to_the_vocabulary_and_skip_unsupported_fields() {
        let v = h100().values();
        assert_eq!(v.len(), 10);
        assert_eq!(v[names::GPU_UTILIZATION_PCT], 87.0);
        assert_eq!(v[names::GPU_MEMORY_USED_BYTES], 70e9);
        assert_eq!(v[names::GPU_POWER_W], 512.25);
        assert_eq!(v[names::GPU_THROTTLE_REASONS], 36.0);
        let partial = GpuReading {
            power_w: None,
            sm_clock_mhz: None,
            ..h100()
        };
        let v = partial.values();
        assert_eq!(v.len(), 8);
        assert!(!v.contains_key(names::GPU_POWER_W));
    }

    #[test]
    fn one_failing_device_does_not_hide_the_others() {
        let mut fake = FakeGpus {
            readings: vec![
                Ok(h100()),
                Err(GpuError::Device {
                    index: 1,
                    message: "gpu lost".into(),
                }),
            ],
            count_error: None,
        };
        let all = read_all(&mut fake).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "gpu0");
        assert!(all[0].1.is_ok());
        assert!(all[1].1.is_err());
        fake.count_error = Some(GpuError::Unavailable("driver gone".into()));
        assert!(read_all(&mut fake).is_err());
    }

    #[test]
    fn a_selection_reads_only_those_devices_under_their_own_indices() {
        let mut fake = FakeGpus {
            readings: vec![Ok(h100()), Ok(GpuReading::default()), Ok(h100())],
            count_error: None,
        };
        let read = read_selected(&mut fake, Some(&[2, 0])).unwrap();
        let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["gpu2", "gpu0"]);
        assert_eq!(select_devices(3, None).unwrap(), [0, 1, 2]);
        let err = read_selected(&mut fake, Some(&[0, 3])).unwrap_err();
        assert_eq!(err, GpuError::NoSuchDevice { index: 3, count: 3 });
        assert_eq!(
            err.to_string(),
            "no GPU with index 3: NVML sees 3 GPU(s), numbered from 0"
        );
    }

    #[test]
    fn nvml_init_fails_cleanly_without_a_driver() {
        // On a machine with a driver this reads real devices instead; both
        // outcomes are fine, a panic is not.
        match NvmlGpus::init() {
            Ok(mut gpus) => {
                let n = gpus.device_count().unwrap_or(0);
                for i in 0..n {
                    let _ = gpus.read(i);
                }
            }
            Err(e) => assert!(e.to_string().starts_with("nvml unavailable")),
        }
    }
}
