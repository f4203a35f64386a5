//! Energy accounting: each unit's busy time per power state (written by
//! its worker alone, beside the counters it already keeps), its power
//! changes, and the report that turns them into joules with the unit's
//! energy profile, or with the RAPL counters where they read.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{EnergyProfile, EnergyProfiles, PowerChange, PowerState, Rapl};
use crate::backend::gpu::Nvml;
use crate::trace::TaskEvent;
use crate::unit::{UnitId, UnitInfo, UnitKind};

/// Where a unit's joules come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum EnergySource {
    /// From a hardware counter (`counter` names it), shared among the
    /// units that draw on it in proportion to their modelled energy.
    Measured { counter: String },
    /// From the energy profile of `profile` (a unit kind's, in
    /// `platforms/energy/`) over the unit's busy and idle time.
    Modelled { profile: String },
}

impl EnergySource {
    /// `measured` or `modelled`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EnergySource::Measured { .. } => "measured",
            EnergySource::Modelled { .. } => "modelled",
        }
    }
}

/// One unit's energy since the runtime started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitEnergy {
    pub unit: UnitId,
    pub kind: String,
    /// The state it runs in now.
    pub state: PowerState,
    pub source: EnergySource,
    /// Seconds running tasks, per state (in [`PowerState::ALL`]'s order).
    pub busy_seconds: [f64; 3],
    /// Seconds neither running a task nor gated.
    pub idle_seconds: f64,
    /// Seconds gated.
    pub gated_seconds: f64,
    /// Watts while running a task, per state.
    pub busy_watts: [f64; 3],
    pub idle_watts: f64,
    pub gated_watts: f64,
}

impl UnitEnergy {
    /// Joules spent running tasks.
    pub fn busy_joules(&self) -> f64 {
        self.busy_seconds
            .iter()
            .zip(&self.busy_watts)
            .map(|(s, w)| s * w)
            .sum()
    }

    /// Joules spent idle.
    pub fn idle_joules(&self) -> f64 {
        self.idle_seconds * self.idle_watts
    }

    /// Joules spent gated.
    pub fn gated_joules(&self) -> f64 {
        self.gated_seconds * self.gated_watts
    }

    /// Every joule of the unit.
    pub fn joules(&self) -> f64 {
        self.busy_joules() + self.idle_joules() + self.gated_joules()
    }

    /// The joules of one of its tasks: the unit's power in the state the
    /// task ran in, over its run time.
    pub fn task_joules(&self, task: &TaskEvent) -> f64 {
        self.busy_watts[task.power.index()] * (task.end - task.start).max(0.0)
    }
}

/// Every unit's energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    /// Seconds since the runtime started.
    pub wall_seconds: f64,
    pub units: Vec<UnitEnergy>,
}

impl EnergyReport {
    /// Joules of every unit.
    pub fn total_joules(&self) -> f64 {
        self.units.iter().map(UnitEnergy::joules).sum()
    }

    /// Joules of the tasks of each kernel in `tasks` (a profile's), the
    /// most first.
    pub fn by_kernel(&self, tasks: &[TaskEvent]) -> Vec<(String, f64)> {
        let mut joules: Vec<(String, f64)> = Vec::new();
        for t in tasks {
            let Some(u) = self.units.get(t.unit) else {
                continue;
            };
            let j = u.task_joules(t);
            match joules.iter_mut().find(|(k, _)| *k == t.kernel) {
                Some((_, sum)) => *sum += j,
                None => joules.push((t.kernel.clone(), j)),
            }
        }
        joules.sort_by(|a, b| b.1.total_cmp(&a.1));
        joules
    }

    /// Whether any unit's figure is measured rather than modelled.
    pub fn any_measured(&self) -> bool {
        self.units
            .iter()
            .any(|u| matches!(u.source, EnergySource::Measured { .. }))
    }
}

/// A unit's gating: idle past the runtime's timeout, its worker parked
/// and its device memory's free buffers given back, until work woke it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gating {
    pub unit: UnitId,
    /// Seconds since the runtime started.
    pub at: f64,
    /// When work woke it (`None`: still gated).
    pub woke: Option<f64>,
    /// From the work waking it to its first task's start, where measured.
    pub wake_latency: Option<f64>,
    /// Bytes of free pooled buffers released to its device.
    pub released_bytes: usize,
}

/// One unit's power state, busy time per state and gating.
#[derive(Default)]
struct UnitPower {
    /// The state asked for (by the API, the CLI or a policy).
    wanted: AtomicU8,
    /// The state its worker applied last.
    applied: AtomicU8,
    busy_ns: [AtomicU64; 3],
    /// When it was gated, in ns since the runtime started plus one (0:
    /// not gated).
    gated_since: AtomicU64,
    /// Time gated before the current gating.
    gated_ns: AtomicU64,
    /// When work last woke it while gated (ns since the start).
    wake_asked: AtomicU64,
    /// Its last measured wake-up latency in ns (0: none measured yet).
    wake_ns: AtomicU64,
}

/// The power side of a runtime: states, busy time per state, changes,
/// profiles and the RAPL counters if they read.
pub(crate) struct PowerLedger {
    units: Vec<CachePadded<UnitPower>>,
    changes: Mutex<Vec<PowerChange>>,
    gating: Mutex<Vec<Gating>>,
    profiles: EnergyProfiles,
    rapl: Option<Rapl>,
    nvml: Option<Nvml>,
}

impl PowerLedger {
    pub fn new(units: usize, profiles: EnergyProfiles) -> PowerLedger {
        let normal = PowerState::Normal.index() as u8;
        PowerLedger {
            units: (0..units)
                .map(|_| {
                    let u = UnitPower::default();
                    u.wanted.store(normal, Ordering::Relaxed);
                    u.applied.store(normal, Ordering::Relaxed);
                    CachePadded::new(u)
                })
                .collect(),
            changes: Mutex::new(Vec::new()),
            gating: Mutex::new(Vec::new()),
            profiles,
            rapl: Rapl::open(),
            nvml: Nvml::open(),
        }
    }

    /// Asks `unit` to run in `state` from its next task on.
    pub fn want(&self, unit: UnitId, state: PowerState) {
        self.units[unit]
            .wanted
            .store(state.index() as u8, Ordering::Release);
    }

    /// The state asked of `unit`.
    #[inline]
    pub fn wanted(&self, unit: UnitId) -> PowerState {
        PowerState::from_index(self.units[unit].wanted.load(Ordering::Acquire))
    }

    /// The state `unit` runs in.
    pub fn applied(&self, unit: UnitId) -> PowerState {
        PowerState::from_index(self.units[unit].applied.load(Ordering::Acquire))
    }

    /// `unit`'s worker applied the change to `asked` (or the backend
    /// refused it: then `change.to` is `change.from`, which is wanted
    /// again unless another state was asked for meanwhile).
    pub fn note_change(&self, change: PowerChange, asked: PowerState) {
        let u = &self.units[change.unit];
        u.applied.store(change.to.index() as u8, Ordering::Release);
        if change.to != asked {
            let _ = u.wanted.compare_exchange(
                asked.index() as u8,
                change.to.index() as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        self.changes.lock().push(change);
    }

    /// Every change so far, in order.
    pub fn changes(&self) -> Vec<PowerChange> {
        self.changes.lock().clone()
    }

    /// Gates `unit` at `now` (its worker, idle past the timeout).
    pub fn gate(&self, unit: UnitId, now: Duration, released_bytes: usize) {
        self.units[unit]
            .gated_since
            .store(now.as_nanos() as u64 + 1, Ordering::Release);
        self.gating.lock().push(Gating {
            unit,
            at: now.as_secs_f64(),
            woke: None,
            wake_latency: None,
            released_bytes,
        });
    }

    /// Whether `unit` is gated.
    #[inline]
    pub fn is_gated(&self, unit: UnitId) -> bool {
        self.units[unit].gated_since.load(Ordering::Acquire) != 0
    }

    /// Work for gated `unit` woke it at `now`.
    pub fn wake_asked(&self, unit: UnitId, now: Duration) {
        self.units[unit]
            .wake_asked
            .store(now.as_nanos() as u64, Ordering::Release);
    }

    /// `unit`'s worker, gated, starts work at `now`: ends the gating and
    /// measures the wake-up latency from when the work woke it (none when
    /// the worker found the work on its own, before anything woke it).
    pub fn wake(&self, unit: UnitId, now: Duration) {
        let u = &self.units[unit];
        let since = u.gated_since.swap(0, Ordering::AcqRel);
        if since == 0 {
            return;
        }
        let now_ns = now.as_nanos() as u64;
        let since = since - 1;
        u.gated_ns
            .fetch_add(now_ns.saturating_sub(since), Ordering::AcqRel);
        let asked = u.wake_asked.load(Ordering::Acquire);
        let latency = (asked >= since && asked <= now_ns).then(|| now_ns - asked);
        if let Some(ns) = latency {
            u.wake_ns.store(ns.max(1), Ordering::Release);
        }
        let mut gating = self.gating.lock();
        if let Some(g) = gating.iter_mut().rev().find(|g| g.unit == unit) {
            g.woke = Some(now.as_secs_f64());
            g.wake_latency = latency.map(|ns| ns as f64 * 1e-9);
        }
    }

    /// Seconds a gated `unit` takes to start work: its last measured
    /// wake-up, else its energy profile's.
    pub fn wake_latency(&self, unit: &UnitInfo) -> f64 {
        match self.units[unit.id].wake_ns.load(Ordering::Acquire) {
            0 => self.profile_of(unit).0.wake_latency,
            ns => ns as f64 * 1e-9,
        }
    }

    /// Every gating so far, in order.
    pub fn gatings(&self) -> Vec<Gating> {
        self.gating.lock().clone()
    }

    /// `unit` ran a task for `ns` in `state` (its worker alone writes).
    #[inline]
    pub fn record_busy(&self, unit: UnitId, state: PowerState, ns: u64) {
        let c = &self.units[unit].busy_ns[state.index()];
        c.store(c.load(Ordering::Relaxed) + ns, Ordering::Relaxed);
    }

    /// The profile a unit's energy is modelled with, and whether its idle
    /// power is its own: a unit emulated on the host's cores draws the
    /// CPU's power while busy, and its idle cores are the CPU units'.
    pub fn profile_of(&self, unit: &UnitInfo) -> (&EnergyProfile, bool) {
        if unit.host_cores && unit.kind != UnitKind::Cpu {
            (self.profiles.of(&UnitKind::Cpu), false)
        } else {
            (self.profiles.of(&unit.kind), true)
        }
    }

    /// The energy of `units` over `wall_seconds`.
    pub fn report(&self, units: &[UnitInfo], wall_seconds: f64) -> EnergyReport {
        let mut report = EnergyReport {
            wall_seconds,
            units: units
                .iter()
                .map(|u| {
                    let (profile, idles) = self.profile_of(u);
                    let p = &self.units[u.id];
                    let busy_seconds: [f64; 3] =
                        std::array::from_fn(|i| p.busy_ns[i].load(Ordering::Relaxed) as f64 * 1e-9);
                    let busy: f64 = busy_seconds.iter().sum();
                    let since = p.gated_since.load(Ordering::Acquire);
                    let gated_now = match since {
                        0 => 0.0,
                        s => (wall_seconds - (s - 1) as f64 * 1e-9).max(0.0),
                    };
                    let gated = p.gated_ns.load(Ordering::Acquire) as f64 * 1e-9 + gated_now;
                    UnitEnergy {
                        unit: u.id,
                        kind: u.kind.to_string(),
                        state: self.applied(u.id),
                        source: EnergySource::Modelled {
                            profile: profile.kind.clone(),
                        },
                        busy_seconds,
                        idle_seconds: (wall_seconds - busy - gated).max(0.0),
                        gated_seconds: gated,
                        busy_watts: profile.busy_watts,
                        idle_watts: if idles { profile.idle_watts } else { 0.0 },
                        gated_watts: if idles { profile.gated_watts } else { 0.0 },
                    }
                })
                .collect(),
        };
        if let Some(measured) = self.rapl.as_ref().and_then(Rapl::joules) {
            let counter = format!(
                "RAPL, {} package(s)",
                self.rapl.as_ref().map_or(0, Rapl::packages)
            );
            let on_host: Vec<UnitId> = units
                .iter()
                .filter(|u| u.host_cores)
                .map(|u| u.id)
                .collect();
            share_measured(&mut report, &on_host, measured, &counter);
        }
        if let Some(nvml) = &self.nvml {
            let names = nvml.names();
            for (device, gpus) in super::nvml::units_of_devices(&names, units) {
                if let Some(measured) = nvml.joules(device) {
                    let counter = format!("NVML, {} (device {device})", names[device]);
                    share_measured(&mut report, &gpus, measured, &counter);
                }
            }
        }
        report
    }
}

/// Spreads `joules` measured on one counter over `units`, which draw on
/// what it measures, in proportion to their modelled energy.
fn share_measured(report: &mut EnergyReport, units: &[UnitId], joules: f64, counter: &str) {
    let modelled: f64 = units.iter().map(|&i| report.units[i].joules()).sum();
    if modelled <= 0.0 {
        return;
    }
    let scale = joules / modelled;
    for &i in units {
        let u = &mut report.units[i];
        u.busy_watts.iter_mut().for_each(|w| *w *= scale);
        u.idle_watts *= scale;
        u.gated_watts *= scale;
        u.source = EnergySource::Measured {
            counter: counter.to_string(),
        };
    }
}
