//! Host and harness-process readings through sysinfo.
//!
//! Rates (CPU, network, disk) are computed from cumulative counters over the
//! run clock's interval between two readings, so the first reading has none.

use std::collections::BTreeMap;

use rundir::metrics::names;
use sysinfo::{
    DiskRefreshKind, Disks, MemoryRefreshKind, Networks, Pid, ProcessRefreshKind,
    ProcessesToUpdate, System,
};

/// Cumulative counters kept between readings.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    t_ns: u64,
    net_rx: u64,
    net_tx: u64,
    disk_read: u64,
    disk_write: u64,
    process_cpu_ms: u64,
}

/// Reads the host and this process.
#[derive(Debug)]
pub struct SystemSampler {
    sys: System,
    networks: Networks,
    disks: Disks,
    pid: Option<Pid>,
    host: String,
    prev: Option<Totals>,
}

/// One round of readings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemReading {
    /// Host name, the instance of the host sample.
    pub host: String,
    /// Host values.
    pub system: BTreeMap<String, f64>,
    /// Harness-process values (empty if the process could not be read).
    pub process: BTreeMap<String, f64>,
}

impl SystemSampler {
    /// Prepares the readers (lists interfaces and disks once).
    pub fn new() -> Result<SystemSampler, String> {
        let sys = System::new().map_err(|e| format!("sysinfo unavailable: {e}"))?;
        let networks = Networks::new_with_refreshed_list()
            .map_err(|e| format!("network counters unavailable: {e}"))?;
        let disks =
            Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_io_usage())
                .map_err(|e| format!("disk counters unavailable: {e}"))?;
        let host = System::host_name().unwrap_or_else(|_| "localhost".to_owned());
        Ok(SystemSampler {
            sys,
            networks,
            disks,
            pid: sysinfo::get_current_pid().ok(),
            host,
            prev: None,
        })
    }

    /// Reads everything at run-clock time `t_ns`.
    pub fn sample(&mut self, t_ns: u64) -> SystemReading {
        self.sys.refresh_cpu_usage();
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        self.networks.refresh(false);
        self.disks
            .refresh_specifics(false, DiskRefreshKind::nothing().with_io_usage());

        let mut totals = Totals {
            t_ns,
            ..Totals::default()
        };
        for (_, data) in self.networks.iter() {
            totals.net_rx += data.total_received();
            totals.net_tx += data.total_transmitted();
        }
        // Several mounts can share one device; count each device once.
        let mut seen = std::collections::BTreeSet::new();
        for disk in self.disks.iter() {
            if seen.insert(disk.name().to_owned()) {
                let usage = disk.usage();
                totals.disk_read += usage.total_read_bytes;
                totals.disk_write += usage.total_written_bytes;
            }
        }

        let mut system = BTreeMap::new();
        system.insert(
            names::MEMORY_USED_BYTES.to_owned(),
            self.sys.used_memory() as f64,
        );
        system.insert(
            names::MEMORY_TOTAL_BYTES.to_owned(),
            self.sys.total_memory() as f64,
        );

        let mut process = BTreeMap::new();
        if let Some(pid) = self.pid {
            self.sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
            if let Some(p) = self.sys.process(pid) {
                totals.process_cpu_ms = p.accumulated_cpu_time();
                process.insert(names::PROCESS_RSS_BYTES.to_owned(), p.memory() as f64);
            }
        }

        if let Some(prev) = self.prev {
            let dt_s = t_ns.saturating_sub(prev.t_ns) as f64 / 1e9;
            if dt_s > 0.0 {
                // sysinfo computes CPU usage over its own refresh interval,
                // which is ours.
                system.insert(
                    names::CPU_PCT.to_owned(),
                    f64::from(self.sys.global_cpu_usage()),
                );
                let rate = |now: u64, before: u64| {
                    // A counter that went down (interface gone) has no rate.
                    now.checked_sub(before).map(|d| d as f64 / dt_s)
                };
                let rates = [
                    (names::NET_RX_BYTES_PER_S, rate(totals.net_rx, prev.net_rx)),
                    (names::NET_TX_BYTES_PER_S, rate(totals.net_tx, prev.net_tx)),
                    (
                        names::DISK_READ_BYTES_PER_S,
                        rate(totals.disk_read, prev.disk_read),
                    ),
                    (
                        names::DISK_WRITE_BYTES_PER_S,
                        rate(totals.disk_write, prev.disk_write),
                    ),
                ];
                for (name, value) in rates {
                    if let Some(v) = value {
                        system.insert(name.to_owned(), v);
                    }
                }
                if !process.is_empty()
                    && let Some(ms) = totals.process_cpu_ms.checked_sub(prev.process_cpu_ms)
                {
                    // Percent of one core: 1000 ms of CPU per second = 100.
                    process.insert(names::PROCESS_CPU_PCT.to_owned(), ms as f64 / 10.0 / dt_s);
                }
            }
        }
        self.prev = Some(totals);
        SystemReading {
            host: self.host.clone(),
            system,
            process,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_reading_has_rates_and_the_process_is_visible() {
        let mut s = SystemSampler::new().unwrap();
        let first = s.sample(1_000_000_000);
        assert!(first.system[names::MEMORY_TOTAL_BYTES] > 0.0);
        assert!(!first.system.contains_key(names::CPU_PCT));
        assert!(first.process[names::PROCESS_RSS_BYTES] > 1e6);
        // Burn some CPU so the process counter moves.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = s.sample(2_000_000_000);
        for name in [
            names::CPU_PCT,
            names::NET_RX_BYTES_PER_S,
            names::NET_TX_BYTES_PER_S,
            names::DISK_READ_BYTES_PER_S,
            names::DISK_WRITE_BYTES_PER_S,
        ] {
            assert!(
                second.system.get(name).is_some_and(|v| *v >= 0.0),
                "{name}: {second:?}"
            );
        }
        assert!(second.process[names::PROCESS_CPU_PCT] >= 0.0);
        assert!(!second.host.is_empty());
    }
}
