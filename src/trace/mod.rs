//! What ran where: a profile of every task (submitted, ready, started,
//! ended, on which unit), every transfer and every allocation and eviction,
//! taken with [`Runtime::profile`](crate::Runtime::profile); its per-unit
//! summary and critical path; and its exports, a Chrome trace (`chrome.rs`,
//! opens in Perfetto or chrome://tracing) and a Gantt chart (`gantt.rs`; feature `svg`).
//!
//! ```
//! use xpu::{DType, Kernel, Runtime, UnaryOp};
//! let rt = Runtime::builder().cpu_units(2).device_discovery(false).build()?;
//! let x = rt.tensor(&[4], vec![-1.0f32, 2.0, -3.0, 4.0])?;
//! let y = rt.empty(&[4], DType::F32);
//! rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
//! rt.wait_all();
//! let profile = rt.profile();
//! assert_eq!(profile.tasks.len(), 1);
//! assert_eq!(profile.tasks[0].kernel, "relu");
//! let again = xpu::trace::Profile::from_chrome_trace(&profile.chrome_trace())?;
//! assert_eq!(again.tasks.len(), 1);
//! # Ok::<(), xpu::Error>(())
//! ```

mod chrome;
mod clock;
mod memory_log;
mod recorder;
mod ring;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

pub use self::chrome::merged_chrome_trace;
pub(crate) use self::clock::Clock;
pub use self::memory_log::{MemoryEvent, MemoryEventKind, PeerCopy, Transfer};
pub(crate) use self::memory_log::{MemoryLog, Recording};
pub(crate) use self::recorder::{Recorder, TaskRecord};
use self::ring::RecordRing;
use crate::perfmodel::Footprint;
use crate::power::{EnergyReport, Gating, PowerChange, PowerState};
use crate::unit::{NodeId, UnitId};

/// One task; times in seconds since the runtime started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub id: u64,
    pub kernel: String,
    pub unit: UnitId,
    pub submitted: f64,
    /// When its last predecessor finished (its submission if it had none).
    pub ready: f64,
    pub start: f64,
    pub end: f64,
    pub ok: bool,
    pub flops: f64,
    /// Bytes copied to the unit's memory node for it.
    pub bytes_fetched: u64,
    /// The memory nodes those bytes came from.
    #[serde(default)]
    pub fetched_from: Vec<NodeId>,
    /// What its run time depends on (argument shapes, dtypes and modes as
    /// a key, the kernel's bytes as size), where it was worked out: for
    /// every task when placement uses the models or a history is kept.
    #[serde(default)]
    pub footprint: Option<Footprint>,
    /// The predecessor whose completion made it ready.
    pub released_by: Option<u64>,
    /// The ids of the tensors it accessed, in argument order (names in
    /// [`Profile::tensor_names`]).
    #[serde(default)]
    pub tensors: Vec<u64>,
    /// The power state its unit ran it in.
    #[serde(default)]
    pub power: PowerState,
}

/// Records dropped from a profile's bounded streams (see
/// [`RuntimeBuilder::profile_capacity`](crate::RuntimeBuilder::profile_capacity)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedRecords {
    pub tasks: u64,
    pub transfers: u64,
    pub memory_events: u64,
}

/// A unit as the profile names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceUnit {
    pub id: UnitId,
    pub kind: String,
    pub device: String,
    pub emulated: bool,
    pub node: NodeId,
}

impl TraceUnit {
    /// `unit 2 gpu` — the row label in charts and traces.
    pub fn label(&self) -> String {
        format!("unit {} {}", self.id, self.kind)
    }
}

/// A memory node as the profile names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceNode {
    pub id: NodeId,
    pub name: String,
}

/// Everything recorded, from the runtime's start to when it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub units: Vec<TraceUnit>,
    pub nodes: Vec<TraceNode>,
    /// Ordered by start time.
    pub tasks: Vec<TaskEvent>,
    /// In the order they happened.
    pub transfers: Vec<Transfer>,
    pub memory: Vec<MemoryEvent>,
    /// Seconds from the runtime's start to the profile.
    pub wall: f64,
    /// Names of the named tensors among those recorded
    /// ([`Tensor::named`](crate::Tensor::named)).
    #[serde(default)]
    pub tensor_names: BTreeMap<u64, String>,
    /// The oldest records dropped to keep each stream within its capacity.
    #[serde(default)]
    pub dropped: DroppedRecords,
    /// Taken from a simulated platform (`crate::sim`), not a real run.
    #[serde(default)]
    pub simulated: bool,
    /// When the run's time zero was, in seconds since the UNIX epoch
    /// (`None` for a simulated run): [`merged_chrome_trace`] lines up the
    /// traces of several processes by it.
    #[serde(default)]
    pub started_unix: Option<f64>,
    /// The units' changes of power state, in order.
    #[serde(default)]
    pub power: Vec<PowerChange>,
    /// The units' gatings, in order.
    #[serde(default)]
    pub gating: Vec<Gating>,
    /// Each unit's energy when the profile was taken (`None` for a
    /// simulated run and for traces written before energy was kept).
    #[serde(default)]
    pub energy: Option<EnergyReport>,
}

/// What one unit did, from a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitSummary {
    pub unit: UnitId,
    pub label: String,
    pub tasks: usize,
    pub failed: usize,
    pub busy_seconds: f64,
    /// Busy time over the profile's span (first submission to last end).
    pub utilisation: f64,
    pub gflops: f64,
    /// Bytes copied to the unit's node for its tasks.
    pub bytes_in: u64,
}

/// The chain of tasks that decided when the work ended: from the task that
/// ended last, back through the predecessor that released each one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriticalPath {
    /// Task ids, first to last.
    pub tasks: Vec<u64>,
    /// From the first task's submission to the last one's end.
    pub span_seconds: f64,
    /// Time the path's tasks ran (the rest is waiting and scheduling).
    pub busy_seconds: f64,
}

/// The nodes of a bit set (a bit per node).
pub(crate) fn nodes_in(mask: u64) -> Vec<NodeId> {
    (0..64).filter(|n| mask & (1 << n) != 0).collect()
}

impl Profile {
    /// Writes [`Profile::gantt_svg`] to `path`.
    pub fn write_gantt(&self, path: impl AsRef<std::path::Path>) -> crate::Result<()> {
        std::fs::write(path, self.gantt_svg()?)?;
        Ok(())
    }

    pub(crate) fn new(
        units: Vec<TraceUnit>,
        nodes: Vec<TraceNode>,
        (records, dropped_tasks): (Vec<TaskRecord>, u64),
        log: MemoryLog,
        (power, gating, energy): (Vec<PowerChange>, Vec<Gating>, EnergyReport),
        wall: f64,
        clock: Clock,
    ) -> Profile {
        let s = clock.seconds();
        let tasks = records
            .into_iter()
            .map(|r| TaskEvent {
                id: r.id,
                kernel: r.kernel.name().to_string(),
                unit: r.unit,
                submitted: s(r.submitted),
                ready: s(r.ready),
                start: s(r.start),
                end: s(r.end),
                ok: r.ok,
                flops: r.flops,
                bytes_fetched: r.bytes_fetched,
                fetched_from: nodes_in(r.fetched_from),
                footprint: r.footprint,
                released_by: (r.released_by != 0).then_some(r.released_by),
                tensors: r.tensors.to_vec(),
                power: r.power,
            })
            .collect();
        Profile {
            units,
            nodes,
            tasks,
            transfers: log.transfers,
            memory: log.events,
            wall,
            tensor_names: log.tensor_names,
            dropped: DroppedRecords {
                tasks: dropped_tasks,
                transfers: log.dropped_transfers,
                memory_events: log.dropped_events,
            },
            simulated: false,
            started_unix: Some(clock.start_unix()),
            power,
            gating,
            energy: Some(energy),
        }
    }

    /// `tensor 5 \`weights\`` for a named tensor, `tensor 5` otherwise.
    pub fn tensor_label(&self, id: u64) -> String {
        match self.tensor_names.get(&id) {
            Some(name) => format!("tensor {id} `{name}`"),
            None => format!("tensor {id}"),
        }
    }

    /// First submission to last end (0 without tasks).
    pub fn span(&self) -> (f64, f64) {
        let first = self
            .tasks
            .iter()
            .map(|t| t.submitted)
            .fold(f64::INFINITY, f64::min);
        let last = self.tasks.iter().map(|t| t.end).fold(0.0, f64::max);
        if first.is_finite() {
            (first, last)
        } else {
            (0.0, 0.0)
        }
    }

    /// Per-unit tasks, busy time, utilisation, GFLOP/s and bytes in.
    pub fn summary(&self) -> Vec<UnitSummary> {
        let (first, last) = self.span();
        let span = last - first;
        self.units
            .iter()
            .map(|u| {
                let mine = self.tasks.iter().filter(|t| t.unit == u.id);
                let (mut tasks, mut failed, mut busy, mut flops, mut bytes) = (0, 0, 0.0, 0.0, 0);
                for t in mine {
                    if t.ok {
                        tasks += 1;
                    } else {
                        failed += 1;
                    }
                    busy += t.end - t.start;
                    flops += t.flops;
                    bytes += t.bytes_fetched;
                }
                UnitSummary {
                    unit: u.id,
                    label: u.label(),
                    tasks,
                    failed,
                    busy_seconds: busy,
                    utilisation: if span > 0.0 {
                        (busy / span).min(1.0)
                    } else {
                        0.0
                    },
                    gflops: if busy > 0.0 { flops / busy * 1e-9 } else { 0.0 },
                    bytes_in: bytes,
                }
            })
            .collect()
    }

    /// The critical path (empty without tasks).
    pub fn critical_path(&self) -> CriticalPath {
        let by_id: HashMap<u64, &TaskEvent> = self.tasks.iter().map(|t| (t.id, t)).collect();
        let Some(mut at) = self.tasks.iter().max_by(|a, b| a.end.total_cmp(&b.end)) else {
            return CriticalPath {
                tasks: Vec::new(),
                span_seconds: 0.0,
                busy_seconds: 0.0,
            };
        };
        let end = at.end;
        let mut path = vec![at];
        while let Some(prev) = at.released_by.and_then(|id| by_id.get(&id)) {
            // Ids only grow along dependencies, so this cannot cycle.
            if prev.id >= at.id {
                break;
            }
            at = prev;
            path.push(at);
        }
        path.reverse();
        CriticalPath {
            tasks: path.iter().map(|t| t.id).collect(),
            span_seconds: end - path[0].submitted,
            busy_seconds: path.iter().map(|t| t.end - t.start).sum(),
        }
    }

    /// The unit a task ran on, if the profile knows it.
    pub fn unit(&self, id: UnitId) -> Option<&TraceUnit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// A node's name, or its number.
    pub fn node_name(&self, id: NodeId) -> String {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map_or_else(|| format!("node {id}"), |n| n.name.clone())
    }

    /// Which way a transfer went, by name: `host -> gpu0`, or for a copy
    /// between ranks `host -> rank 1` / `rank 1 -> host`.
    pub fn direction(&self, t: &Transfer) -> String {
        match t.peer {
            Some(PeerCopy { rank, sent: true }) => {
                format!("{} -> rank {rank}", self.node_name(t.from))
            }
            Some(PeerCopy { rank, sent: false }) => {
                format!("rank {rank} -> {}", self.node_name(t.to))
            }
            None => format!("{} -> {}", self.node_name(t.from), self.node_name(t.to)),
        }
    }
}
