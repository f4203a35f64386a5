//! Resource monitoring: a thread that samples the host (CPU per core,
//! memory, the process's resident size, read by [`crate::host`]) and every unit
//! (tasks done and failed, ready tasks queued, utilisation over the last
//! period, its memory node's allocation) at a fixed period, keeping the
//! recent samples; and the runtime's counters as Prometheus text metrics
//! (`prometheus.rs`).
//!
//! The sampler only reads snapshots of counters the workers already keep
//! (taken through a function the runtime hands over), so it does not
//! disturb them and knows nothing of the runtime's insides. Device figures
//! come from the runtime's own accounting
//! (busy time, node memory) and, where the device API reports it, the
//! device's own view of its memory (wgpu's allocator report on Vulkan and
//! DX12); none of the device APIs here reports live device load.
//!
//! ```
//! use std::time::Duration;
//! use xpu::Runtime;
//! let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
//! let monitor = rt.monitor(Duration::from_millis(10));
//! std::thread::sleep(Duration::from_millis(50));
//! let sample = monitor.latest().expect("sampled");
//! assert!(sample.host.memory_total > 0);
//! assert!(monitor.metrics().contains("xpu_host_memory_used_bytes"));
//! # Ok::<(), xpu::Error>(())
//! ```

mod prometheus;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

pub(crate) use self::prometheus::metrics_text;
use crate::host::{self, CpuTimes};
use crate::memory::NodeStats;
use crate::power::{EnergyReport, PowerState};
use crate::profile::UnitReport;
use crate::sched::QueueLengths;
use crate::unit::{UnitId, UnitInfo};

/// The runtime at one moment, as observers see it.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeSnapshot {
    pub units: Vec<UnitInfo>,
    /// What each unit did so far, by unit.
    pub reports: Vec<UnitReport>,
    pub queued: QueueLengths,
    pub nodes: Vec<NodeStats>,
    /// Bytes each node's device reports taken, by node, where it tells.
    pub device_reported: Vec<Option<u64>>,
    /// Tasks submitted to the units so far.
    pub submitted: u64,
    /// Each unit's power state and energy so far.
    pub energy: EnergyReport,
    /// Seconds since the runtime started.
    pub at: f64,
}

/// How the monitor takes a snapshot.
pub(crate) type SnapshotFn = Arc<dyn Fn() -> RuntimeSnapshot + Send + Sync>;

/// Samples kept; older ones are dropped.
const KEEP: usize = 1024;

/// The host at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct HostSample {
    /// All cores, percent of one core each averaged (0 to 100).
    pub cpu_percent: f32,
    /// Each core, 0 to 100.
    pub cores: Vec<f32>,
    pub memory_used: u64,
    pub memory_total: u64,
    /// Resident memory of this process.
    pub process_resident: u64,
}

/// One unit at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct UnitSample {
    pub unit: UnitId,
    pub label: String,
    pub tasks: u64,
    pub failed: u64,
    /// Ready tasks in the unit's own queue.
    pub queued: usize,
    /// Busy time over the time since the previous sample (0 to 1).
    pub utilisation: f64,
    /// Bytes allocated on the unit's memory node.
    pub node_allocated: usize,
    /// Bytes the device itself reports taken on that node, where its API
    /// tells (wgpu's Vulkan and DX12 allocators do).
    pub device_reported: Option<u64>,
    /// The unit's power state.
    pub power: PowerState,
    /// Joules the unit used since the runtime started.
    pub joules: f64,
    /// `measured` or `modelled`.
    pub energy_source: &'static str,
}

/// Everything one sample saw.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the runtime started.
    pub at: f64,
    pub host: HostSample,
    pub units: Vec<UnitSample>,
    /// Ready tasks in shared queues (any capable unit takes them).
    pub shared_queue: usize,
    pub nodes: Vec<NodeStats>,
}

/// A running sampler; stops when dropped.
pub struct Monitor {
    snapshot: SnapshotFn,
    samples: Arc<Mutex<VecDeque<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    pub(crate) fn start(snapshot: SnapshotFn, period: Duration) -> Monitor {
        let samples = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (snapshot, samples, stop) = (snapshot.clone(), samples.clone(), stop.clone());
            std::thread::Builder::new()
                .name("xpu-monitor".into())
                .spawn(move || sample_loop(&*snapshot, &samples, &stop, period))
                .ok()
        };
        Monitor {
            snapshot,
            samples,
            stop,
            thread,
        }
    }

    /// The most recent sample (none before the first period ends).
    pub fn latest(&self) -> Option<Sample> {
        self.samples.lock().back().cloned()
    }

    /// The samples kept (the last 1024), oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().iter().cloned().collect()
    }

    /// The runtime's metrics and the latest host sample, in the Prometheus
    /// text format.
    pub fn metrics(&self) -> String {
        metrics_text(&(self.snapshot)(), self.latest().as_ref().map(|s| &s.host))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn sample_loop(
    snapshot: &(dyn Fn() -> RuntimeSnapshot + Send + Sync),
    samples: &Mutex<VecDeque<Sample>>,
    stop: &AtomicBool,
    period: Duration,
) {
    // CPU use is a difference between two readings: take the first now.
    let mut cpu_before = CpuTimes::now();
    let mut previous_busy: Vec<f64> = snapshot().reports.iter().map(|r| r.busy_seconds).collect();
    let mut previous = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(period);
        if stop.load(Ordering::Acquire) {
            return;
        }
        let cpu_now = CpuTimes::now();
        let cores = cpu_now.percent_since(&cpu_before);
        cpu_before = cpu_now;
        let now = Instant::now();
        let elapsed = (now - previous).as_secs_f64().max(1e-9);
        previous = now;
        let RuntimeSnapshot {
            units: infos,
            reports,
            queued,
            nodes,
            device_reported,
            energy,
            at,
            ..
        } = snapshot();
        let units = reports
            .iter()
            .zip(&infos)
            .map(|(r, u)| {
                let before = previous_busy.get(u.id).copied().unwrap_or(0.0);
                UnitSample {
                    unit: u.id,
                    label: format!("unit {} {}", u.id, u.kind),
                    tasks: r.tasks,
                    failed: r.failed,
                    queued: queued.per_unit.get(u.id).copied().unwrap_or(0),
                    utilisation: ((r.busy_seconds - before) / elapsed).clamp(0.0, 1.0),
                    node_allocated: nodes.get(u.node).map_or(0, |n| n.allocated),
                    device_reported: device_reported.get(u.node).copied().flatten(),
                    power: energy
                        .units
                        .get(u.id)
                        .map_or(PowerState::Normal, |e| e.state),
                    joules: energy.units.get(u.id).map_or(0.0, |e| e.joules()),
                    energy_source: energy
                        .units
                        .get(u.id)
                        .map_or("modelled", |e| e.source.as_str()),
                }
            })
            .collect();
        previous_busy = reports.iter().map(|r| r.busy_seconds).collect();
        let host = HostSample {
            cpu_percent: cores.iter().sum::<f32>() / cores.len().max(1) as f32,
            cores,
            memory_used: host::memory_used_bytes(),
            memory_total: host::memory_bytes() as u64,
            process_resident: host::process_resident_bytes(),
        };
        let mut kept = samples.lock();
        if kept.len() == KEEP {
            kept.pop_front();
        }
        kept.push_back(Sample {
            at,
            host,
            units,
            shared_queue: queued.shared,
            nodes,
        });
    }
}
