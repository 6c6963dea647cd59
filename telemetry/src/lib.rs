//! Metrics collection during runs: Prometheus scrapes, NVML GPU counters, host and process stats.
