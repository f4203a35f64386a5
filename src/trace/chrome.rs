//! The Chrome trace-event format: one process per kind of track — units
//! (a thread per unit), transfers (a thread per direction between two
//! memory nodes) and memory (a thread per node, with instant events for
//! allocations and evictions and a counter of bytes allocated). Everything
//! a [`Profile`] holds travels in the events' `args` and in `otherData`, so
//! `xpu trace FILE.json` reads the profile back. The traces of several
//! processes (the ranks of a job) merge into one timeline
//! ([`merged_chrome_trace`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{MemoryEvent, PeerCopy, Profile, TaskEvent, TraceNode, TraceUnit, Transfer};
use crate::error::{Error, Result};
use crate::power::{Gating, PowerChange};

const UNITS: u64 = 1;
const TRANSFERS: u64 = 2;
const MEMORY: u64 = 3;

fn us(seconds: f64) -> f64 {
    seconds * 1e6
}

fn metadata(pid: u64, tid: Option<u64>, what: &str, name: &str) -> Value {
    let mut e = json!({"ph": "M", "pid": pid, "name": what, "args": {"name": name}});
    if let Some(tid) = tid {
        e["tid"] = json!(tid);
    }
    e
}

impl Profile {
    /// The profile as a Chrome trace (JSON object format).
    pub fn chrome_trace(&self) -> String {
        let mut events = vec![
            metadata(UNITS, None, "process_name", "units"),
            metadata(TRANSFERS, None, "process_name", "transfers"),
            metadata(MEMORY, None, "process_name", "memory"),
        ];
        for u in &self.units {
            let name = format!(
                "{} ({}{})",
                u.label(),
                u.device,
                if u.emulated { ", emulated" } else { "" }
            );
            events.push(metadata(UNITS, Some(u.id as u64), "thread_name", &name));
        }
        for t in &self.tasks {
            events.push(json!({
                "ph": "X", "cat": "task", "name": t.kernel, "pid": UNITS, "tid": t.unit,
                "ts": us(t.start), "dur": us(t.end - t.start),
                "args": {
                    "id": t.id, "submitted_us": us(t.submitted), "ready_us": us(t.ready),
                    "ok": t.ok, "flops": t.flops, "bytes_fetched": t.bytes_fetched,
                    "fetched_from": t.fetched_from, "footprint": t.footprint,
                    "released_by": t.released_by,
                    "tensors": t.tensors.iter().map(|&id| self.tensor_label(id)).collect::<Vec<_>>(),
                    "tensor_ids": t.tensors,
                    "power": t.power,
                },
            }));
        }
        for g in &self.gating {
            events.push(json!({
                "ph": "i", "s": "t", "cat": "gating", "name": "gated",
                "pid": UNITS, "tid": g.unit, "ts": us(g.at),
                "args": {"woke_us": g.woke.map(us), "wake_latency_us": g.wake_latency.map(us), "released_bytes": g.released_bytes},
            }));
        }
        for c in &self.power {
            events.push(json!({
                "ph": "i", "s": "t", "cat": "power", "name": format!("power: {}", c.to),
                "pid": UNITS, "tid": c.unit, "ts": us(c.at),
                "args": {"from": c.from, "to": c.to, "effect": c.effect},
            }));
        }
        let mut lanes: BTreeMap<String, u64> = BTreeMap::new();
        for t in &self.transfers {
            let next = lanes.len() as u64;
            let lane = *lanes.entry(self.direction(t)).or_insert(next);
            let mut args = json!({"tensor": t.tensor, "from": t.from, "to": t.to, "bytes": t.bytes, "direct": t.direct});
            if let Some(peer) = t.peer {
                args["peer_rank"] = json!(peer.rank);
                args["sent"] = json!(peer.sent);
            }
            events.push(json!({
                "ph": "X", "cat": "transfer", "name": self.tensor_label(t.tensor),
                "pid": TRANSFERS, "tid": lane, "ts": us(t.at), "dur": us(t.seconds),
                "args": args,
            }));
        }
        for (name, &lane) in &lanes {
            events.push(metadata(TRANSFERS, Some(lane), "thread_name", name));
        }
        for n in &self.nodes {
            events.push(metadata(MEMORY, Some(n.id as u64), "thread_name", &n.name));
        }
        for m in &self.memory {
            events.push(json!({
                "ph": "i", "s": "t", "cat": "memory", "name": m.kind, "pid": MEMORY,
                "tid": m.node, "ts": us(m.at),
                "args": {"node": m.node, "bytes": m.bytes, "tensor": m.tensor, "allocated": m.allocated},
            }));
            events.push(json!({
                "ph": "C", "name": format!("allocated on {}", self.node_name(m.node)),
                "pid": MEMORY, "tid": m.node, "ts": us(m.at), "args": {"bytes": m.allocated},
            }));
        }
        json!({
            "traceEvents": events,
            "displayTimeUnit": "ms",
            "otherData": {
                "generator": format!("xpu {}", env!("CARGO_PKG_VERSION")),
                "wall_seconds": self.wall,
                "units": self.units,
                "nodes": self.nodes,
                "tensor_names": self.tensor_names,
                "dropped": self.dropped,
                "simulated": self.simulated,
                "started_unix": self.started_unix,
                "energy": self.energy,
            },
        })
        .to_string()
    }

    /// Writes [`Profile::chrome_trace`] to `path`.
    pub fn write_chrome_trace(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        std::fs::write(path, self.chrome_trace())?;
        Ok(())
    }

    /// Reads a profile back from a trace written by [`Profile::chrome_trace`].
    pub fn from_chrome_trace(text: &str) -> Result<Profile> {
        let bad = |what: String| Error::Trace(what);
        let root: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let other = root
            .get("otherData")
            .ok_or_else(|| bad("no `otherData` (was it written by xpu?)".into()))?;
        let field = |name: &str| {
            other
                .get(name)
                .cloned()
                .ok_or_else(|| bad(format!("`otherData` has no `{name}`")))
        };
        let units: Vec<TraceUnit> = serde_json::from_value(field("units")?)
            .map_err(|e| bad(format!("`otherData.units`: {e}")))?;
        let nodes: Vec<TraceNode> = serde_json::from_value(field("nodes")?)
            .map_err(|e| bad(format!("`otherData.nodes`: {e}")))?;
        let wall = field("wall_seconds")?
            .as_f64()
            .ok_or_else(|| bad("`wall_seconds` is not a number".into()))?;
        let optional = |name: &str| other.get(name).cloned().unwrap_or(Value::Null);
        let tensor_names = serde_json::from_value(optional("tensor_names")).unwrap_or_default();
        let dropped = serde_json::from_value(optional("dropped")).unwrap_or_default();
        let simulated = optional("simulated").as_bool().unwrap_or(false);
        let started_unix = optional("started_unix").as_f64();
        let events = root
            .get("traceEvents")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `traceEvents` array".into()))?;
        let mut profile = Profile {
            units,
            nodes,
            tasks: Vec::new(),
            transfers: Vec::new(),
            memory: Vec::new(),
            wall,
            tensor_names,
            dropped,
            simulated,
            started_unix,
            power: Vec::new(),
            gating: Vec::new(),
            energy: serde_json::from_value(optional("energy")).unwrap_or_default(),
        };
        for (i, e) in events.iter().enumerate() {
            let at = |what: &str| bad(format!("event {i}: {what}"));
            let num = |v: &Value, key: &str| {
                v.get(key)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| at(&format!("`{key}` missing or not a number")))
            };
            let args = e.get("args").cloned().unwrap_or(Value::Null);
            match (
                e.get("ph").and_then(Value::as_str),
                e.get("cat").and_then(Value::as_str),
            ) {
                (Some("X"), Some("task")) => {
                    let start = num(e, "ts")? * 1e-6;
                    profile.tasks.push(TaskEvent {
                        id: num(&args, "id")? as u64,
                        kernel: e
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| at("task without a name"))?
                            .to_string(),
                        unit: num(e, "tid")? as usize,
                        submitted: num(&args, "submitted_us")? * 1e-6,
                        ready: num(&args, "ready_us")? * 1e-6,
                        start,
                        end: start + num(e, "dur")? * 1e-6,
                        ok: args.get("ok").and_then(Value::as_bool).unwrap_or(true),
                        flops: num(&args, "flops")?,
                        bytes_fetched: num(&args, "bytes_fetched")? as u64,
                        fetched_from: serde_json::from_value(
                            args.get("fetched_from").cloned().unwrap_or(Value::Null),
                        )
                        .unwrap_or_default(),
                        footprint: serde_json::from_value(
                            args.get("footprint").cloned().unwrap_or(Value::Null),
                        )
                        .unwrap_or_default(),
                        released_by: args.get("released_by").and_then(Value::as_u64),
                        tensors: serde_json::from_value(
                            args.get("tensor_ids").cloned().unwrap_or(Value::Null),
                        )
                        .unwrap_or_default(),
                        power: serde_json::from_value(
                            args.get("power").cloned().unwrap_or(Value::Null),
                        )
                        .unwrap_or_default(),
                    });
                }
                (Some("i"), Some("gating")) => profile.gating.push(Gating {
                    unit: num(e, "tid")? as usize,
                    at: num(e, "ts")? * 1e-6,
                    woke: args
                        .get("woke_us")
                        .and_then(Value::as_f64)
                        .map(|t| t * 1e-6),
                    wake_latency: args
                        .get("wake_latency_us")
                        .and_then(Value::as_f64)
                        .map(|t| t * 1e-6),
                    released_bytes: num(&args, "released_bytes")? as usize,
                }),
                (Some("i"), Some("power")) => {
                    let state = |key: &str| {
                        serde_json::from_value(args.get(key).cloned().unwrap_or(Value::Null))
                            .map_err(|err| at(&format!("power change `{key}`: {err}")))
                    };
                    profile.power.push(PowerChange {
                        unit: num(e, "tid")? as usize,
                        at: num(e, "ts")? * 1e-6,
                        from: state("from")?,
                        to: state("to")?,
                        effect: args
                            .get("effect")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    });
                }
                (Some("X"), Some("transfer")) => profile.transfers.push(Transfer {
                    tensor: num(&args, "tensor")? as u64,
                    from: num(&args, "from")? as usize,
                    to: num(&args, "to")? as usize,
                    bytes: num(&args, "bytes")? as usize,
                    at: num(e, "ts")? * 1e-6,
                    seconds: num(e, "dur")? * 1e-6,
                    direct: args.get("direct").and_then(Value::as_bool).unwrap_or(false),
                    peer: args
                        .get("peer_rank")
                        .and_then(Value::as_u64)
                        .map(|rank| PeerCopy {
                            rank: rank as usize,
                            sent: args.get("sent").and_then(Value::as_bool).unwrap_or(false),
                        }),
                }),
                (Some("i"), Some("memory")) => profile.memory.push(MemoryEvent {
                    at: num(e, "ts")? * 1e-6,
                    node: num(&args, "node")? as usize,
                    kind: serde_json::from_value(e.get("name").cloned().unwrap_or(Value::Null))
                        .map_err(|err| at(&format!("memory event kind: {err}")))?,
                    bytes: num(&args, "bytes")? as usize,
                    tensor: num(&args, "tensor")? as u64,
                    allocated: num(&args, "allocated")? as usize,
                }),
                _ => {}
            }
        }
        profile.tasks.sort_by(|a, b| a.start.total_cmp(&b.start));
        Ok(profile)
    }
}

/// The profiles of several processes (the ranks of one job, say) as one
/// Chrome trace: each keeps its three tracks under its own label
/// (`rank 1: units`), and their times are lined up by when each run
/// started ([`Profile::started_unix`]; a profile without it starts with
/// the earliest). Each part's `otherData` goes into `otherData.parts`.
///
/// ```
/// use xpu::trace::{merged_chrome_trace, Profile};
/// let rt = xpu::Runtime::builder().device_discovery(false).build()?;
/// let x = rt.tensor(&[4], vec![1.0f32; 4])?;
/// rt.submit(&xpu::Kernel::Unary(xpu::UnaryOp::Relu), &[x.read(), rt.empty(&[4], xpu::DType::F32).write()])?;
/// rt.wait_all();
/// let p = rt.profile();
/// let merged: serde_json::Value =
///     serde_json::from_str(&merged_chrome_trace(&[("rank 0", &p), ("rank 1", &p)])?).unwrap();
/// let names: Vec<&str> = merged["traceEvents"].as_array().unwrap().iter()
///     .filter(|e| e["name"] == "process_name")
///     .map(|e| e["args"]["name"].as_str().unwrap())
///     .collect();
/// assert!(names.contains(&"rank 1: units"), "{names:?}");
/// assert_eq!(merged["otherData"]["parts"].as_array().unwrap().len(), 2);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn merged_chrome_trace(parts: &[(&str, &Profile)]) -> Result<String> {
    let earliest = parts
        .iter()
        .filter_map(|(_, p)| p.started_unix)
        .fold(f64::INFINITY, f64::min);
    let mut events = Vec::new();
    let mut others = Vec::new();
    for (k, (label, profile)) in parts.iter().enumerate() {
        let mut trace: Value = serde_json::from_str(&profile.chrome_trace())
            .map_err(|e| Error::Trace(format!("{label}: {e}")))?;
        let shift = profile
            .started_unix
            .filter(|_| earliest.is_finite())
            .map_or(0.0, |s| us(s - earliest));
        let pid_base = 10 * k as u64;
        if let Some(list) = trace["traceEvents"].as_array_mut() {
            for mut e in list.drain(..) {
                if let Some(pid) = e["pid"].as_u64() {
                    e["pid"] = json!(pid_base + pid);
                }
                if let Some(ts) = e["ts"].as_f64() {
                    e["ts"] = json!(ts + shift);
                }
                if e["name"] == "process_name" {
                    let track = e["args"]["name"].as_str().unwrap_or_default().to_string();
                    e["args"]["name"] = json!(format!("{label}: {track}"));
                }
                events.push(e);
            }
        }
        let mut other = trace["otherData"].take();
        other["label"] = json!(label);
        others.push(other);
    }
    Ok(json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": format!("xpu {}", env!("CARGO_PKG_VERSION")),
            "parts": others,
        },
    })
    .to_string())
}
