//! `systems/<system>.json`: the system description MLCommons' submission
//! checker requires, filled from what can be measured (the host, NVML's
//! accelerators, what the backend said about itself) under the user's
//! template, with every field the checker would still reject listed.
//!
//! Field lists are the checker's (`SYSTEM_DESC_REQUIRED_FIELDS`,
//! `SYSTEM_DESC_MEANINGFUL_RESPONSE_REQUIRED_FIELDS`, `VALID_AVAILABILITIES`
//! and the system types of `system_check.py`, v6.0 and v6.1 alike).

use serde_json::{Map, Value};

/// Fields the checker requires to be present (`SYSTEM_DESC_REQUIRED_FIELDS`).
pub const SYSTEM_REQUIRED_FIELDS: [&str; 35] = [
    "division",
    "submitter",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_storage_capacity",
    "host_storage_type",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "framework",
    "operating_system",
    "system_type",
    "other_software_stack",
    "host_processor_frequency",
    "host_processor_caches",
    "host_memory_configuration",
    "host_processor_interconnect",
    "host_networking",
    "host_networking_topology",
    "accelerator_frequency",
    "accelerator_host_interconnect",
    "accelerator_interconnect",
    "accelerator_interconnect_topology",
    "accelerator_memory_configuration",
    "accelerator_on-chip_memories",
    "cooling",
    "hw_notes",
    "sw_notes",
    "host_network_card_count",
    "system_type_detail",
];

/// Required fields the checker also rejects when empty
/// (`SYSTEM_DESC_MEANINGFUL_RESPONSE_REQUIRED_FIELDS`); the other required
/// fields may stay `""`.
pub const SYSTEM_MEANINGFUL_FIELDS: [&str; 26] = [
    "division",
    "submitter",
    "system_type",
    "status",
    "system_name",
    "number_of_nodes",
    "host_processor_model_name",
    "host_processors_per_node",
    "host_processor_core_count",
    "host_memory_capacity",
    "host_memory_configuration",
    "host_storage_capacity",
    "host_storage_type",
    "host_networking",
    "host_network_card_count",
    "host_networking_topology",
    "accelerators_per_node",
    "accelerator_model_name",
    "accelerator_memory_capacity",
    "accelerator_host_interconnect",
    "accelerator_memory_configuration",
    "accelerator_interconnect",
    "cooling",
    "framework",
    "operating_system",
    "other_software_stack",
];

/// `status` values the checker accepts (`VALID_AVAILABILITIES`).
pub const VALID_STATUS: [&str; 3] = ["available", "preview", "rdi"];

/// `system_type` values the checker accepts.
pub const VALID_SYSTEM_TYPES: [&str; 4] =
    ["datacenter", "edge", "datacenter,edge", "edge,datacenter"];

/// What this machine says about its host (build the tree on the system
/// under test). `None` where it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// CPU brand string.
    pub processor_model: Option<String>,
    /// CPU sockets.
    pub processors: Option<u32>,
    /// Physical cores per socket.
    pub cores_per_processor: Option<u64>,
    /// Installed memory, bytes.
    pub memory_bytes: Option<u64>,
    /// OS name and version.
    pub os: Option<String>,
    /// Kernel version.
    pub kernel: Option<String>,
}

/// One accelerator as NVML names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accelerator {
    /// Device name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Memory installed, bytes.
    pub memory_bytes: Option<u64>,
}

/// The machine's accelerators (NVML).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceleratorFacts {
    /// Every device, in NVML order.
    pub devices: Vec<Accelerator>,
    /// The driver version.
    pub driver: Option<String>,
}

/// What the runs recorded about the serving software.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendFacts {
    /// The serving framework and version (`vllm 0.9.2`), from the backend's
    /// `/v1/models` `owned_by` and `/version`.
    pub framework: Option<String>,
    /// The load generator and LoadGen that made the runs.
    pub harness: Option<String>,
}

/// Everything measured for the description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemFacts {
    /// The host, when the tree is built on the system under test.
    pub host: Option<HostFacts>,
    /// The accelerators, when NVML answered.
    pub accelerators: Option<AcceleratorFacts>,
    /// The serving software.
    pub backend: BackendFacts,
}

/// Memory in binary gigabytes as the checker's samples write it (`80 GB`):
/// whole GiB, one decimal below 10.
fn gib(bytes: u64) -> String {
    let g = bytes as f64 / f64::from(1u32 << 30);
    if g < 10.0 {
        format!("{g:.1} GB")
    } else {
        format!("{g:.0} GB")
    }
}

/// The description fields the facts answer.
pub fn fact_fields(facts: &SystemFacts) -> Map<String, Value> {
    let mut f = Map::new();
    let mut put = |k: &str, v: Value| {
        f.insert(k.to_owned(), v);
    };
    if let Some(host) = &facts.host {
        if let Some(m) = &host.processor_model {
            put("host_processor_model_name", m.clone().into());
        }
        if let Some(n) = host.processors {
            put("host_processors_per_node", n.into());
        }
        if let Some(n) = host.cores_per_processor {
            put("host_processor_core_count", n.into());
        }
        if let Some(b) = host.memory_bytes {
            put("host_memory_capacity", gib(b).into());
        }
        let os = match (&host.os, &host.kernel) {
            (Some(os), Some(k)) => Some(format!("{os} (kernel {k})")),
            (Some(os), None) => Some(os.clone()),
            (None, Some(k)) => Some(format!("kernel {k}")),
            (None, None) => None,
        };
        if let Some(os) = os {
            put("operating_system", os.into());
        }
    }
    if let Some(acc) = facts
        .accelerators
        .as_ref()
        .filter(|a| !a.devices.is_empty())
    {
        put("accelerators_per_node", acc.devices.len().into());
        let mut names: Vec<&str> = acc.devices.iter().map(|d| d.name.as_str()).collect();
        names.dedup();
        put("accelerator_model_name", names.join(" + ").into());
        let mut memories: Vec<String> = acc
            .devices
            .iter()
            .filter_map(|d| d.memory_bytes.map(gib))
            .collect();
        memories.dedup();
        if !memories.is_empty() {
            put("accelerator_memory_capacity", memories.join(" + ").into());
        }
    }
    let mut stack = Vec::new();
    if let Some(fw) = &facts.backend.framework {
        put("framework", fw.clone().into());
    }
    if let Some(h) = &facts.backend.harness {
        stack.push(h.clone());
    }
    if let Some(d) = facts.accelerators.as_ref().and_then(|a| a.driver.as_ref()) {
        stack.push(format!("NVIDIA driver {d}"));
    }
    if !stack.is_empty() {
        put("other_software_stack", stack.join(", ").into());
    }
    f
}

/// The description: every required field (empty when nothing answers it),
/// the measured facts, the user's template over them, and the identity the
/// tree is built for over everything.
pub fn system_description(
    template: &Map<String, Value>,
    facts: &Map<String, Value>,
    identity: [(&str, &str); 3],
) -> Map<String, Value> {
    let mut system: Map<String, Value> = SYSTEM_REQUIRED_FIELDS
        .iter()
        .map(|k| ((*k).to_owned(), Value::from("")))
        .collect();
    system.extend(facts.clone());
    system.extend(
        template
            .iter()
            .filter(|(_, v)| !is_empty(v))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for (k, v) in identity {
        system.insert(k.to_owned(), v.into());
    }
    system
}

/// A value the template leaves unset.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Whether the checker's `not value` holds: Python's falsy values (an
/// empty string, 0, false, null, an empty list or object).
fn python_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// What the checker would reject in a description, one line each: a
/// required field missing, a meaningful one empty, a status or system type
/// it does not know, a node or accelerator count that is not a whole
/// number (its results table multiplies them).
pub fn system_problems(system: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for field in SYSTEM_REQUIRED_FIELDS {
        match system.get(field) {
            None => problems.push(format!("{field} (missing)")),
            Some(v) if python_falsy(v) && SYSTEM_MEANINGFUL_FIELDS.contains(&field) => {
                problems.push(if v.is_number() {
                    // The checker reads a number 0 as empty; "0" passes.
                    format!("{field} (the number 0 reads as empty to the checker: write \"0\")")
                } else {
                    field.to_owned()
                });
            }
            Some(_) => {}
        }
    }
    let text = |k: &str| match system.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.to_lowercase()),
        _ => None,
    };
    if let Some(status) = text("status")
        && !VALID_STATUS.contains(&status.as_str())
    {
        problems.push(format!(
            "status {status:?} is not one of {}",
            VALID_STATUS.join(", ")
        ));
    }
    if let Some(kind) = text("system_type")
        && !VALID_SYSTEM_TYPES.contains(&kind.as_str())
    {
        problems.push(format!(
            "system_type {kind:?} is not one of {}",
            VALID_SYSTEM_TYPES.join(", ")
        ));
    }
    for field in ["number_of_nodes", "accelerators_per_node"] {
        let whole = match system.get(field) {
            Some(Value::Number(n)) => n.is_u64(),
            Some(Value::String(s)) => s.is_empty() || s.trim().parse::<u64>().is_ok(),
            _ => true,
        };
        if !whole {
            problems.push(format!("{field} must be a whole number"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> SystemFacts {
        SystemFacts {
            host: Some(HostFacts {
                processor_model: Some("AMD EPYC 9575F 64-Core Processor".into()),
                processors: Some(2),
                cores_per_processor: Some(64),
                memory_bytes: Some(1_649_267_441_664),
                os: Some("Linux 12 (Debian)".into()),
                kernel: Some("6.1.0".into()),
            }),
            accelerators: Some(AcceleratorFacts {
                devices: vec![
                    Accelerator {
                        name: "NVIDIA H100 80GB HBM3".into(),
                        memory_bytes: Some(81_559 << 20),
                    };
                    8
                ],
                driver: Some("550.54.15".into()),
            }),
            backend: BackendFacts {
                framework: Some("vllm 0.9.2".into()),
                harness: Some("harness 0.1.0 (LoadGen: mlcommons-loadgen 6.0.17)".into()),
            },
        }
    }

    #[test]
    fn facts_fill_what_they_answer_and_the_template_wins() {
        let f = fact_fields(&facts());
        assert_eq!(f["accelerators_per_node"], 8);
        assert_eq!(f["accelerator_model_name"], "NVIDIA H100 80GB HBM3");
        assert_eq!(f["accelerator_memory_capacity"], "80 GB");
        assert_eq!(f["host_memory_capacity"], "1536 GB");
        assert_eq!(f["host_processors_per_node"], 2);
        assert_eq!(f["operating_system"], "Linux 12 (Debian) (kernel 6.1.0)");
        assert_eq!(f["framework"], "vllm 0.9.2");
        assert_eq!(
            f["other_software_stack"],
            "harness 0.1.0 (LoadGen: mlcommons-loadgen 6.0.17), NVIDIA driver 550.54.15"
        );
        let template = json!({"framework": "vLLM 0.9.2, PyTorch 2.7", "cooling": "air",
                              "division": "open", "hw_notes": ""});
        let system = system_description(
            template.as_object().unwrap(),
            &f,
            [
                ("division", "closed"),
                ("submitter", "Acme"),
                ("system_name", "box"),
            ],
        );
        assert_eq!(system["framework"], "vLLM 0.9.2, PyTorch 2.7");
        assert_eq!(system["division"], "closed");
        assert_eq!(system["cooling"], "air");
        assert_eq!(system["hw_notes"], "");
        assert_eq!(system.len(), SYSTEM_REQUIRED_FIELDS.len());
        let problems = system_problems(&system);
        assert!(problems.contains(&"status".to_owned()), "{problems:?}");
        assert!(problems.contains(&"host_storage_type".to_owned()));
        // Fields the checker lets stay empty are not listed.
        assert!(!problems.iter().any(|p| p == "hw_notes"));
        assert!(
            !problems
                .iter()
                .any(|p| p.starts_with("accelerator_model_name"))
        );
    }

    #[test]
    fn values_the_checker_rejects_are_named() {
        let mut system = system_description(
            &Map::new(),
            &Map::new(),
            [
                ("division", "open"),
                ("submitter", "A"),
                ("system_name", "b"),
            ],
        );
        system.insert("status".into(), "Available".into());
        system.insert("system_type".into(), "cloud".into());
        system.insert("number_of_nodes".into(), "one".into());
        system.insert("accelerators_per_node".into(), json!(0));
        let problems = system_problems(&system);
        assert!(
            problems.contains(
                &"accelerators_per_node (the number 0 reads as empty to the checker: write \"0\")"
                    .to_owned()
            ),
            "{problems:?}"
        );
        system.insert("accelerators_per_node".into(), json!("0"));
        let problems = system_problems(&system);
        assert!(
            !problems.iter().any(|p| p.starts_with("status")),
            "{problems:?}"
        );
        assert!(problems.contains(
            &"system_type \"cloud\" is not one of datacenter, edge, datacenter,edge, edge,datacenter"
                .to_owned()
        ));
        assert!(problems.contains(&"number_of_nodes must be a whole number".to_owned()));
        assert!(
            !problems
                .iter()
                .any(|p| p.starts_with("accelerators_per_node"))
        );
        system.remove("cooling");
        assert!(system_problems(&system).contains(&"cooling (missing)".to_owned()));
    }
}
