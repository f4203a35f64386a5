//! The Prometheus text exposition format (version 0.0.4): a `# HELP` and
//! `# TYPE` line per metric family, then one line per labelled sample.

use std::fmt::Write;

use super::HostSample;
use super::RuntimeSnapshot;

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The runtime's metrics, and the host's when a sample is given.
pub(crate) fn metrics_text(s: &RuntimeSnapshot, host: Option<&HostSample>) -> String {
    let mut out = Exposition(String::new());
    let reports = &s.reports;
    let queued = &s.queued;
    let ids: Vec<String> = s.units.iter().map(|u| u.id.to_string()).collect();
    let kinds: Vec<String> = s.units.iter().map(|u| u.kind.to_string()).collect();
    let unit = |i: usize| [("unit", ids[i].as_str()), ("kind", kinds[i].as_str())];

    out.family(
        "xpu_unit_info",
        "gauge",
        "Units of the runtime (value 1), with their backend and device.",
    );
    for (i, u) in s.units.iter().enumerate() {
        let emulated = if u.emulated { "true" } else { "false" };
        let [a, b] = unit(i);
        out.sample(
            "xpu_unit_info",
            &[
                a,
                b,
                ("backend", &u.backend),
                ("device", &u.device),
                ("emulated", emulated),
            ],
            1.0,
        );
    }
    out.family(
        "xpu_uptime_seconds",
        "gauge",
        "Seconds since the runtime started.",
    );
    out.sample("xpu_uptime_seconds", &[], s.at);
    out.family(
        "xpu_tasks_submitted_total",
        "counter",
        "Tasks submitted for scheduling.",
    );
    out.sample("xpu_tasks_submitted_total", &[], s.submitted as f64);

    type Field = fn(&crate::UnitReport) -> f64;
    let per_unit: [(&str, &str, &str, Field); 5] = [
        (
            "xpu_tasks_completed_total",
            "counter",
            "Tasks a unit completed.",
            |r| r.tasks as f64,
        ),
        (
            "xpu_tasks_failed_total",
            "counter",
            "Tasks a unit failed (or skipped after a failed dependency).",
            |r| r.failed as f64,
        ),
        (
            "xpu_unit_busy_seconds_total",
            "counter",
            "Time a unit spent fetching data and running kernels.",
            |r| r.busy_seconds,
        ),
        (
            "xpu_unit_flops_total",
            "counter",
            "Floating-point operations of the kernels a unit ran.",
            |r| r.flops,
        ),
        (
            "xpu_unit_fetched_bytes_total",
            "counter",
            "Bytes copied to a unit's memory node for its tasks.",
            |r| r.bytes_fetched as f64,
        ),
    ];
    for (name, kind, help, field) in per_unit {
        out.family(name, kind, help);
        for (i, r) in reports.iter().enumerate() {
            out.sample(name, &unit(i), field(r));
        }
    }
    out.family(
        "xpu_unit_energy_joules_total",
        "counter",
        "Joules a unit used since the runtime started: measured (RAPL) or modelled from its kind's energy profile, as `source` says.",
    );
    for (i, e) in s.energy.units.iter().enumerate() {
        let [a, b] = unit(i);
        out.sample(
            "xpu_unit_energy_joules_total",
            &[a, b, ("source", e.source.as_str())],
            e.joules(),
        );
    }
    out.family(
        "xpu_unit_power_state",
        "gauge",
        "A unit's power state (value 1 for the state it runs in).",
    );
    for (i, e) in s.energy.units.iter().enumerate() {
        let [a, b] = unit(i);
        out.sample(
            "xpu_unit_power_state",
            &[a, b, ("state", e.state.as_str())],
            1.0,
        );
    }
    out.family(
        "xpu_queue_length",
        "gauge",
        "Ready tasks waiting in a unit's own queue.",
    );
    for i in 0..s.units.len() {
        out.sample(
            "xpu_queue_length",
            &unit(i),
            queued.per_unit.get(i).copied().unwrap_or(0) as f64,
        );
    }
    out.family(
        "xpu_shared_queue_length",
        "gauge",
        "Ready tasks waiting in queues any capable unit takes from.",
    );
    out.sample("xpu_shared_queue_length", &[], queued.shared as f64);

    let nodes = &s.nodes;
    let node_ids: Vec<String> = nodes.iter().map(|n| n.node.to_string()).collect();
    type NodeField = fn(&crate::NodeStats) -> Option<f64>;
    let per_node: [(&str, &str, &str, NodeField); 7] = [
        (
            "xpu_memory_allocated_bytes",
            "gauge",
            "Bytes allocated on a memory node (pooled buffers included).",
            |n| Some(n.allocated as f64),
        ),
        (
            "xpu_memory_peak_bytes",
            "gauge",
            "Highest allocation seen on a memory node.",
            |n| Some(n.peak as f64),
        ),
        (
            "xpu_memory_capacity_bytes",
            "gauge",
            "Capacity of a memory node (absent when unlimited).",
            |n| (n.capacity != usize::MAX).then_some(n.capacity as f64),
        ),
        (
            "xpu_memory_in_bytes_total",
            "counter",
            "Bytes copied into a memory node.",
            |n| Some(n.bytes_in as f64),
        ),
        (
            "xpu_memory_out_bytes_total",
            "counter",
            "Bytes copied out of a memory node.",
            |n| Some(n.bytes_out as f64),
        ),
        (
            "xpu_memory_evictions_total",
            "counter",
            "Replicas evicted from a memory node.",
            |n| Some(n.evictions as f64),
        ),
        (
            "xpu_memory_write_backs_total",
            "counter",
            "Evicted replicas written back to the host first.",
            |n| Some(n.write_backs as f64),
        ),
    ];
    for (name, kind, help, field) in per_node {
        out.family(name, kind, help);
        for (n, id) in nodes.iter().zip(&node_ids) {
            if let Some(v) = field(n) {
                out.sample(name, &[("node", id), ("name", &n.name)], v);
            }
        }
    }
    out.family(
        "xpu_device_reported_bytes",
        "gauge",
        "Device memory a node's device reports taken (where its API tells).",
    );
    for (n, id) in nodes.iter().zip(&node_ids) {
        if let Some(v) = s.device_reported.get(n.node).copied().flatten() {
            out.sample(
                "xpu_device_reported_bytes",
                &[("node", id), ("name", &n.name)],
                v as f64,
            );
        }
    }
    // From the nodes' counters: the profile's transfer log is bounded
    // and absent without profiling.
    out.family(
        "xpu_transfers_total",
        "counter",
        "Copies between memory nodes.",
    );
    out.sample(
        "xpu_transfers_total",
        &[],
        nodes.iter().map(|n| n.transfers_in as f64).sum(),
    );
    out.family(
        "xpu_transfer_bytes_total",
        "counter",
        "Bytes copied between memory nodes.",
    );
    out.sample(
        "xpu_transfer_bytes_total",
        &[],
        nodes.iter().map(|n| n.bytes_in as f64).sum(),
    );

    if let Some(h) = host {
        out.family(
            "xpu_host_cpu_usage_percent",
            "gauge",
            "Host CPU use per core (0 to 100).",
        );
        for (i, c) in h.cores.iter().enumerate() {
            out.sample(
                "xpu_host_cpu_usage_percent",
                &[("core", &i.to_string())],
                *c as f64,
            );
        }
        out.family("xpu_host_memory_used_bytes", "gauge", "Host memory in use.");
        out.sample("xpu_host_memory_used_bytes", &[], h.memory_used as f64);
        out.family(
            "xpu_host_memory_total_bytes",
            "gauge",
            "Host memory in all.",
        );
        out.sample("xpu_host_memory_total_bytes", &[], h.memory_total as f64);
        out.family(
            "xpu_process_resident_bytes",
            "gauge",
            "Resident memory of this process.",
        );
        out.sample("xpu_process_resident_bytes", &[], h.process_resident as f64);
    }
    out.0
}
