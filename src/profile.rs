//! Per-unit counters: tasks, busy time, FLOPs and bytes fetched.
//!
//! Each unit's worker is the only writer of its counters (no shared lock on
//! the hot path); readers take a snapshot with [`UnitReport`].

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::unit::UnitInfo;

#[derive(Default)]
struct Counters {
    tasks: AtomicU64,
    failed: AtomicU64,
    busy_ns: AtomicU64,
    flops: AtomicU64,
    bytes_fetched: AtomicU64,
}

/// The counters of every unit, one cache line each.
pub(crate) struct UnitCounters(Vec<CachePadded<Counters>>);

impl UnitCounters {
    pub fn new(units: usize) -> UnitCounters {
        UnitCounters(
            (0..units)
                .map(|_| CachePadded::new(Counters::default()))
                .collect(),
        )
    }

    /// Records one finished task on `unit`.
    pub fn record(&self, unit: usize, ok: bool, busy_ns: u64, flops: f64, bytes_fetched: u64) {
        let c = &self.0[unit];
        let add = |a: &AtomicU64, v: u64| a.store(a.load(Ordering::Relaxed) + v, Ordering::Relaxed);
        // Single writer per unit: load + store is enough and avoids locked instructions.
        add(if ok { &c.tasks } else { &c.failed }, 1);
        add(&c.busy_ns, busy_ns);
        add(&c.flops, flops as u64);
        add(&c.bytes_fetched, bytes_fetched);
    }

    pub fn report(&self, unit: &UnitInfo, wall_seconds: f64) -> UnitReport {
        let c = &self.0[unit.id];
        let busy = c.busy_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        let flops = c.flops.load(Ordering::Relaxed) as f64;
        UnitReport {
            unit: unit.id,
            kind: unit.kind.to_string(),
            device: unit.device.clone(),
            emulated: unit.emulated,
            tasks: c.tasks.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            busy_seconds: busy,
            utilisation: if wall_seconds > 0.0 {
                (busy / wall_seconds).min(1.0)
            } else {
                0.0
            },
            flops,
            gflops: if busy > 0.0 { flops / busy * 1e-9 } else { 0.0 },
            bytes_fetched: c.bytes_fetched.load(Ordering::Relaxed),
        }
    }
}

/// What one unit did since the runtime started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnitReport {
    pub unit: usize,
    pub kind: String,
    pub device: String,
    pub emulated: bool,
    /// Tasks that completed successfully.
    pub tasks: u64,
    /// Tasks that failed (or did not run because a dependency failed).
    pub failed: u64,
    /// Time spent running kernels and fetching their data.
    pub busy_seconds: f64,
    /// Busy time over the wall time of the report.
    pub utilisation: f64,
    /// FLOPs of the kernels it ran.
    pub flops: f64,
    /// FLOPs of the kernels it ran over its busy time.
    pub gflops: f64,
    /// Bytes copied to the unit's memory node for its tasks.
    pub bytes_fetched: u64,
}
