//! The simulator's event loop. One thread, a virtual clock: the policy
//! (the runtime's own, built over [`SimTask`]s) is asked for work whenever
//! a unit is idle and something became ready; a started task first waits
//! for room in its unit's memory (least recently used copies are dropped,
//! a last copy is written back to the host) and for its inputs to cross
//! the platform's links (one queue per link and direction, through the
//! host where two nodes share no link), then runs for the time the
//! platform gives its kernel on that unit. Completions advance the clock.
//! Nothing is computed: only times, bytes and placements.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use smallvec::SmallVec;

use super::platform::Platform;
use super::workload::{fastest, run_seconds, SimGraph, SimTask, Tiles, Workload};
use crate::error::{Error, Result};
use crate::perfmodel::PerfModels;
use crate::power::{EnergyProfile, EnergyProfiles, PowerChange, PowerState};
use crate::sched::{Placeable, Policy, SchedClock, SchedPolicy, Slowdown, UnitPlace};
use crate::trace::{DroppedRecords, Profile, TaskEvent, TraceNode, TraceUnit, Transfer};
use crate::unit::{NodeId, UnitHealth, UnitId, UnitKind};

/// How to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    pub policy: Policy,
    /// Start with performance models that know every (kernel, unit) pair
    /// and every link, as after `xpu calibrate`; otherwise the models
    /// learn during the run, as on a fresh data directory.
    pub calibrated: bool,
    /// Keep a [`Profile`] of the schedule (for a Gantt chart).
    pub profile: bool,
    /// The energy policy's bound: its makespan at most this many times
    /// `dmda`'s ([`Policy::Energy`]; the other policies ignore it).
    pub slowdown: Slowdown,
}

/// What one simulated unit did.
#[derive(Debug, Clone, Serialize)]
pub struct SimUnitReport {
    pub name: String,
    pub kind: String,
    pub tasks: u64,
    pub busy_seconds: f64,
    /// Modelled joules over the makespan: busy at its kind's power in the
    /// state each task ran in (`platforms/energy/`; the normal state but
    /// under the energy policy), idle power the rest of the time.
    pub energy_joules: f64,
    /// Tasks it ran in each power state (low-power, normal,
    /// high-performance).
    pub tasks_by_state: [u64; 3],
}

/// The outcome of a simulation; times are virtual seconds.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub platform: String,
    pub workload: String,
    pub policy: String,
    pub tasks: usize,
    /// When the last task ended.
    pub makespan: f64,
    /// The longest chain of tasks, each on its fastest unit, transfers
    /// free.
    pub critical_path: f64,
    /// The work bound: the tasks spread over the units as fluid work, each
    /// unit at its own speed per kernel (StarPU's `starpu_bound`).
    pub area_bound: f64,
    /// The larger of the two bounds: no schedule ends sooner.
    pub lower_bound: f64,
    /// `makespan / lower_bound` (1 is a perfect schedule).
    pub ratio: f64,
    pub bytes_moved: u64,
    pub transfers: u64,
    /// Copies dropped from a full memory node.
    pub evictions: u64,
    /// Every unit's modelled joules (see [`SimUnitReport::energy_joules`]).
    pub energy_joules: f64,
    pub units: Vec<SimUnitReport>,
    /// Real seconds the simulation took.
    pub wall_seconds: f64,
    /// Under the energy policy, how its schedule was found.
    pub energy_search: Option<EnergySearch>,
    /// The schedule, when asked for ([`SimOptions::profile`]).
    #[serde(skip)]
    pub profile: Option<Profile>,
}

/// A memory node's contents, for eviction (the host is unbounded and not
/// tracked).
#[derive(Default)]
struct NodeMemory {
    capacity: Option<u64>,
    used: u64,
    /// Least recently used first.
    lru: BTreeMap<u64, u32>,
    stamp_of: HashMap<u32, u64>,
    /// Tiles in use by a task running (or starting) on the node.
    pinned: HashMap<u32, u32>,
}

/// The hops of a copy, in order.
type Route = Vec<(NodeId, NodeId)>;

struct Running {
    task: usize,
    start: f64,
    end: f64,
    state: PowerState,
    bytes_fetched: u64,
    /// The nodes they came from, a bit per node.
    fetched_from: u64,
}

struct Engine<'p> {
    platform: &'p Platform,
    clock: Arc<AtomicU64>,
    policy: Box<dyn SchedPolicy<SimTask>>,
    models: Arc<PerfModels>,
    data: Arc<Tiles>,
    tasks: Vec<Arc<SimTask>>,
    successors: Vec<Vec<usize>>,
    pending: Vec<u32>,
    ready_at: Vec<f64>,
    released_by: Vec<u32>,
    /// Completion events: (end time as f64 bits, unit), earliest first.
    events: BinaryHeap<std::cmp::Reverse<(u64, UnitId)>>,
    running: Vec<Option<Running>>,
    /// Per link, per direction (low node to high, high to low): when free.
    link_free: Vec<[f64; 2]>,
    /// Each unit's shared device (`UnitPlace::shares`), and when each
    /// shared device is free: its units run one kernel at a time.
    resources: Vec<Option<usize>>,
    resource_free: Vec<f64>,
    /// `routes[from][to]`.
    routes: Vec<Vec<Option<Route>>>,
    /// When an in-flight copy of a tile reaches a node.
    arrival: HashMap<(u32, NodeId), f64>,
    memory: Vec<NodeMemory>,
    stamp: u64,
    finished: usize,
    bytes_moved: u64,
    transfers: u64,
    evictions: u64,
    unit_tasks: Vec<[u64; 3]>,
    unit_busy: Vec<f64>,
    /// Joules each unit drew running tasks, and the state it is in.
    unit_joules: Vec<f64>,
    unit_state: Vec<PowerState>,
    /// Each unit's energy profile, the one its placement reads too.
    profiles: Vec<Arc<EnergyProfile>>,
    power_changes: Vec<PowerChange>,
    /// Units to offer work to after the current event.
    wake: Vec<UnitId>,
    wake_all: bool,
    /// Inputs are copied when a task is queued on a unit, not when it starts.
    prefetch: bool,
    records: Option<(Vec<TaskEvent>, Vec<Transfer>)>,
}

/// Runs `workload` on `platform` under `options.policy`.
///
/// ```
/// use xpu::sim::{simulate, Platform, SimOptions, Workload};
/// use xpu::{tiled::Algorithm, Policy};
/// let platform = Platform::from_toml(r#"
///     name = "one GPU"
///     [[node]]
///     name = "host"
///     [[node]]
///     name = "gpu"
///     capacity_gib = 4
///     [[link]]
///     between = ["host", "gpu"]
///     bandwidth_gbs = 12
///     latency_us = 10
///     [[unit]]
///     kind = "cpu"
///     count = 2
///     node = "host"
///     gflops = { gemm = 50, potrf = 20, trsm = 40, syrk = 40 }
///     [[unit]]
///     kind = "gpu"
///     node = "gpu"
///     gflops = { gemm = 5000, trsm = 2000, syrk = 3000 }
/// "#)?;
/// let workload = Workload::Tiled { algorithm: Algorithm::Cholesky, tiles: 8, tile: 512 };
/// let options = SimOptions {
///     policy: Policy::Dmdas,
///     calibrated: true,
///     profile: false,
///     slowdown: Default::default(),
/// };
/// let report = simulate(&platform, &workload, &options)?;
/// assert_eq!(report.tasks, 120);
/// assert!(report.makespan >= report.lower_bound && report.ratio >= 1.0);
/// assert!(report.bytes_moved > 0);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn simulate(
    platform: &Platform,
    workload: &Workload,
    options: &SimOptions,
) -> Result<SimReport> {
    if options.policy == Policy::Energy {
        energy_schedule(platform, workload, options)
    } else {
        simulate_once(platform, workload, options)
    }
}

/// How the energy policy's schedule was found ([`simulate`] under
/// `Policy::Energy`: a search over bounds on each decision).
#[derive(Debug, Clone, Serialize)]
pub struct EnergySearch {
    /// `dmda`'s schedule of the same graph.
    pub dmda_makespan: f64,
    pub dmda_energy_joules: f64,
    /// The makespan the energy policy's schedule had to keep: the
    /// slowdown asked for times `dmda`'s.
    pub makespan_limit: f64,
    /// The bound on each decision that gave the schedule kept (`None`:
    /// no bound kept within the limit with less energy than `dmda`'s
    /// choices, which were kept).
    pub decision_slowdown: Option<f64>,
    /// Schedules simulated to find it (`dmda`'s among them).
    pub tried: usize,
}

/// Per-decision bounds tried, as multiples of the asked slowdown's margin
/// over 1 (in eighths): from `dmda`'s choices alone to twice the margin.
const DECISION_BOUNDS: std::ops::RangeInclusive<u32> = 0..=16;

/// The energy policy's schedule: the graph is known ahead here, so its
/// makespan can be held to the slowdown asked for times `dmda`'s (the
/// online policy bounds each decision, which can add up to more or less
/// than that bound over a graph). `dmda`'s schedule is simulated, then the
/// energy policy's with each decision bound in a ladder from 1 (only
/// choices that end when `dmda`'s would) to twice the asked margin; the
/// least energy among those within the makespan limit is kept, and
/// `dmda`'s own choices where none of them saves energy within it.
fn energy_schedule(
    platform: &Platform,
    workload: &Workload,
    options: &SimOptions,
) -> Result<SimReport> {
    let wall = Instant::now();
    let quick = SimOptions {
        profile: false,
        ..*options
    };
    let dmda = simulate_once(
        platform,
        workload,
        &SimOptions {
            policy: Policy::Dmda,
            ..quick
        },
    )?;
    let margin = options.slowdown.factor() - 1.0;
    let limit = dmda.makespan * options.slowdown.factor();
    let mut kept: (Option<Slowdown>, SimReport) = (None, dmda.clone());
    for eighths in DECISION_BOUNDS {
        let bound = Slowdown::new(1.0 + margin * f64::from(eighths) / 8.0)?;
        let r = simulate_once(
            platform,
            workload,
            &SimOptions {
                slowdown: bound,
                ..quick
            },
        )?;
        if r.makespan <= limit && r.energy_joules < kept.1.energy_joules {
            kept = (Some(bound), r);
        }
    }
    let (bound, mut report) = kept;
    if options.profile {
        let again = match bound {
            Some(slowdown) => SimOptions {
                slowdown,
                ..*options
            },
            None => SimOptions {
                policy: Policy::Dmda,
                ..*options
            },
        };
        report = simulate_once(platform, workload, &again)?;
    }
    report.policy = Policy::Energy.as_str().to_string();
    report.energy_search = Some(EnergySearch {
        dmda_makespan: dmda.makespan,
        dmda_energy_joules: dmda.energy_joules,
        makespan_limit: limit,
        decision_slowdown: bound.map(Slowdown::factor),
        tried: DECISION_BOUNDS.count() + 1,
    });
    report.wall_seconds = wall.elapsed().as_secs_f64();
    Ok(report)
}

/// One simulation of `workload` under `options.policy`.
fn simulate_once(
    platform: &Platform,
    workload: &Workload,
    options: &SimOptions,
) -> Result<SimReport> {
    let wall = Instant::now();
    let (graph, data) = SimGraph::build(workload, platform)?;
    let (critical_path, area_bound) = bounds(&graph, platform);
    let n_units = platform.units.len();
    let models = Arc::new(PerfModels::new(n_units, platform.nodes.len()));
    let clock = Arc::new(AtomicU64::new(0f64.to_bits()));
    let resources =
        crate::sched::shared_devices(platform.units.iter().map(|u| u.resource.as_deref()));
    let energy = EnergyProfiles::shipped();
    let profiles: Vec<Arc<EnergyProfile>> = platform
        .units
        .iter()
        .map(|u| Arc::new(energy.of(&u.kind).clone()))
        .collect();
    let places = platform
        .units
        .iter()
        .zip(&resources)
        .zip(&profiles)
        .map(|((u, &shares), profile)| UnitPlace {
            node: u.node,
            host_cores: u.kind == UnitKind::Cpu,
            is_cpu: u.kind == UnitKind::Cpu,
            shares,
            energy: profile.clone(),
            idle_watts: profile.idle_watts,
        })
        .collect();
    let policy = options.policy.build(
        Arc::new(UnitHealth::in_service(n_units)),
        models.clone(),
        places,
        SchedClock::Virtual(clock.clone()),
        options.slowdown,
    );
    let routes = (0..platform.nodes.len())
        .map(|a| {
            (0..platform.nodes.len())
                .map(|b| platform.route(a, b))
                .collect()
        })
        .collect();
    let SimGraph { tasks, successors } = graph;
    let mut pending = vec![0u32; tasks.len()];
    for s in successors.iter().flatten() {
        pending[*s] += 1;
    }
    let mut engine = Engine {
        platform,
        clock,
        policy,
        models,
        data,
        ready_at: vec![0.0; tasks.len()],
        released_by: vec![0; tasks.len()],
        tasks: tasks.into_iter().map(Arc::new).collect(),
        successors,
        pending,
        events: BinaryHeap::new(),
        running: (0..n_units).map(|_| None).collect(),
        link_free: vec![[0.0; 2]; platform.links.len()],
        resource_free: vec![0.0; resources.iter().flatten().max().map_or(0, |&r| r + 1)],
        resources,
        routes,
        arrival: HashMap::new(),
        memory: platform
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeMemory {
                // The host holds every tile from the start.
                capacity: if i == 0 { None } else { n.capacity },
                ..NodeMemory::default()
            })
            .collect(),
        stamp: 0,
        finished: 0,
        bytes_moved: 0,
        transfers: 0,
        evictions: 0,
        unit_tasks: vec![[0; 3]; n_units],
        unit_busy: vec![0.0; n_units],
        unit_joules: vec![0.0; n_units],
        unit_state: vec![PowerState::Normal; n_units],
        profiles,
        power_changes: Vec::new(),
        wake: Vec::new(),
        wake_all: false,
        prefetch: options.policy.prefetches(),
        records: options.profile.then(|| (Vec::new(), Vec::new())),
    };
    if options.calibrated {
        engine.calibrate();
    }
    engine.run()?;
    let makespan = engine.now();
    let lower_bound = critical_path.max(area_bound);
    let units: Vec<SimUnitReport> = platform
        .units
        .iter()
        .enumerate()
        .map(|(u, unit)| {
            let busy = engine.unit_busy[u];
            SimUnitReport {
                name: unit.name.clone(),
                kind: unit.kind.to_string(),
                tasks: engine.unit_tasks[u].iter().sum(),
                busy_seconds: busy,
                energy_joules: engine.unit_joules[u]
                    + (makespan - busy).max(0.0) * engine.profiles[u].idle_watts,
                tasks_by_state: engine.unit_tasks[u],
            }
        })
        .collect();
    let profile = engine.records.take().map(|(mut tasks, transfers)| {
        tasks.sort_by(|a, b| a.start.total_cmp(&b.start));
        Profile {
            units: platform
                .units
                .iter()
                .enumerate()
                .map(|(id, u)| TraceUnit {
                    id,
                    kind: u.kind.to_string(),
                    device: format!("simulated {} ({})", u.name, platform.name),
                    emulated: false,
                    node: u.node,
                })
                .collect(),
            nodes: platform
                .nodes
                .iter()
                .enumerate()
                .map(|(id, n)| TraceNode {
                    id,
                    name: n.name.clone(),
                })
                .collect(),
            tasks,
            transfers,
            memory: Vec::new(),
            wall: makespan,
            tensor_names: Default::default(),
            dropped: DroppedRecords::default(),
            simulated: true,
            started_unix: None,
            power: std::mem::take(&mut engine.power_changes),
            gating: Vec::new(),
            energy: None,
        }
    });
    Ok(SimReport {
        platform: platform.name.clone(),
        workload: workload.describe(),
        policy: options.policy.as_str().to_string(),
        tasks: engine.tasks.len(),
        makespan,
        critical_path,
        area_bound,
        lower_bound,
        ratio: if lower_bound > 0.0 {
            makespan / lower_bound
        } else {
            1.0
        },
        bytes_moved: engine.bytes_moved,
        transfers: engine.transfers,
        evictions: engine.evictions,
        energy_joules: units.iter().map(|u| u.energy_joules).sum(),
        units,
        wall_seconds: wall.elapsed().as_secs_f64(),
        energy_search: None,
        profile,
    })
}

/// The critical path on the fastest units, and the work bound: the tasks
/// spread over the units as fluid work, each unit running each kind of
/// task at its own speed (the linear program StarPU's `starpu_bound`
/// solves). It is taken from the program's dual: for any weights `z_u >= 0`
/// summing to 1, `sum over kinds k of N_k * min_u(d_ku * z_u)` is a lower
/// bound on the makespan, so the weights are searched (equal within a
/// class of identical units) and any point found is a valid bound.
fn bounds(graph: &SimGraph, platform: &Platform) -> (f64, f64) {
    let weights: Vec<f64> = graph.tasks.iter().map(|t| fastest(t, platform)).collect();
    let critical = crate::dag::bottom_levels(&weights, &graph.successors)
        .into_iter()
        .fold(0.0, f64::max);
    // Kinds of task (kernel, footprint) with their counts.
    let mut kinds: HashMap<(u8, u64), (&SimTask, f64)> = HashMap::new();
    for t in &graph.tasks {
        kinds
            .entry((t.kernel, t.footprint.key))
            .or_insert((t, 0.0))
            .1 += 1.0;
    }
    // Classes of units with the same time for every kind.
    let times = |u: usize| -> Vec<f64> {
        kinds
            .values()
            .map(|(t, _)| run_seconds(t, platform, u).unwrap_or(f64::INFINITY))
            .collect()
    };
    let mut classes: Vec<(Vec<f64>, f64)> = Vec::new();
    for u in 0..platform.units.len() {
        let d = times(u);
        match classes.iter_mut().find(|(c, _)| *c == d) {
            Some((_, members)) => *members += 1.0,
            None => classes.push((d, 1.0)),
        }
    }
    let counts: Vec<f64> = kinds.values().map(|(_, n)| *n).collect();
    // The dual's value with class weights `w` (each unit of class c
    // weighs w_c / m_c).
    let value = |w: &[f64]| -> f64 {
        counts
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let best = classes
                    .iter()
                    .zip(w)
                    .map(|((d, m), wc)| d[k] * wc / m)
                    .filter(|x| !x.is_nan())
                    .fold(f64::INFINITY, f64::min);
                n * best
            })
            .sum()
    };
    let total: f64 = classes.iter().map(|(_, m)| m).sum();
    let mut w: Vec<f64> = classes.iter().map(|(_, m)| m / total).collect();
    let mut best = value(&w);
    // Move weight between pairs of classes while it helps, in shrinking
    // steps (the dual is concave: this climbs to its top).
    let mut step: f64 = 0.25;
    while step > 1e-6 {
        let mut moved = false;
        for i in 0..w.len() {
            for j in 0..w.len() {
                if i == j {
                    continue;
                }
                let delta = step.min(w[i]);
                if delta <= 0.0 {
                    continue;
                }
                w[i] -= delta;
                w[j] += delta;
                let v = value(&w);
                if v > best {
                    best = v;
                    moved = true;
                } else {
                    w[i] += delta;
                    w[j] -= delta;
                }
            }
        }
        if !moved {
            step /= 2.0;
        }
    }
    (critical, if best.is_finite() { best } else { 0.0 })
}

impl Engine<'_> {
    fn now(&self) -> f64 {
        f64::from_bits(self.clock.load(Ordering::Acquire))
    }

    fn set_now(&self, t: f64) {
        self.clock.store(t.to_bits(), Ordering::Release);
    }

    /// Gives the models what `xpu calibrate` would measure: each kernel's
    /// time on each unit that runs it, and copies of two sizes between
    /// every pair of nodes over idle links.
    fn calibrate(&self) {
        let mut seen = std::collections::HashSet::new();
        for t in &self.tasks {
            if !seen.insert((t.kernel, t.footprint.key)) {
                continue;
            }
            for u in t.eligible.iter() {
                if let Some(s) = run_seconds(t, self.platform, u) {
                    self.models.observe(t.kernel_name(), u, &t.footprint, s);
                }
            }
        }
        for (a, row) in self.routes.iter().enumerate() {
            for (b, route) in row.iter().enumerate() {
                let Some(route) = route.as_ref().filter(|r| !r.is_empty()) else {
                    continue;
                };
                for bytes in [64usize << 10, 16 << 20] {
                    let seconds: f64 = route
                        .iter()
                        .filter_map(|&(x, y)| self.platform.link(x, y))
                        .map(|l| {
                            let l = &self.platform.links[l];
                            l.latency + bytes as f64 / l.bandwidth
                        })
                        .sum();
                    self.models.observe_transfer(a, b, bytes, seconds);
                }
            }
        }
    }

    fn run(&mut self) -> Result<()> {
        for i in 0..self.tasks.len() {
            if self.pending[i] == 0 {
                self.push(i, None);
            }
        }
        self.wake_all = true;
        self.dispatch(None)?;
        loop {
            while let Some(std::cmp::Reverse((bits, unit))) = self.events.pop() {
                self.set_now(f64::from_bits(bits));
                self.finish(unit);
                self.dispatch(Some(unit))?;
            }
            if self.finished == self.tasks.len() {
                return Ok(());
            }
            // Nothing running: offer work to every unit once more.
            self.wake_all = true;
            self.dispatch(None)?;
            if self.events.is_empty() {
                return Err(Error::Config(format!(
                    "the simulation stalled under {}: {} of {} tasks finished and no unit takes the rest",
                    self.platform.name,
                    self.finished,
                    self.tasks.len()
                )));
            }
        }
    }

    fn push(&mut self, task: usize, from: Option<UnitId>) {
        match self.policy.push(self.tasks[task].clone(), from) {
            Some(u) => {
                if self.prefetch {
                    self.prefetch(u, task);
                }
                self.wake.push(u)
            }
            None => self.wake_all = true,
        }
    }

    /// Starts copying the inputs `task` lacks to `unit`'s node now that it
    /// is queued there, as far as the node has free room (a prefetch
    /// evicts nothing).
    fn prefetch(&mut self, unit: UnitId, task: usize) {
        let node = self.platform.units[unit].node;
        let now = self.now();
        let task = self.tasks[task].clone();
        for &(tile, mode) in &task.tiles {
            if !mode.reads() || self.data.mask(tile) & (1 << node) != 0 {
                continue;
            }
            let m = &self.memory[node];
            if m.capacity.is_some_and(|c| m.used + self.data.bytes > c) {
                return;
            }
            let Some(src) = self.data.source(tile) else {
                continue;
            };
            if self.copy(src, node, tile, now).is_ok() {
                self.touch(node, tile);
            }
        }
    }

    /// Offers work to the idle units woken by the last event.
    fn dispatch(&mut self, finished_on: Option<UnitId>) -> Result<()> {
        let mut candidates = std::mem::take(&mut self.wake);
        candidates.extend(finished_on);
        if std::mem::take(&mut self.wake_all) {
            candidates.clear();
            candidates.extend(0..self.running.len());
        }
        for u in candidates {
            if self.running[u].is_some() {
                continue;
            }
            if let Some(task) = self.policy.pop(u) {
                self.start(u, (task.id - 1) as usize)?;
            }
        }
        Ok(())
    }

    fn start(&mut self, unit: UnitId, i: usize) -> Result<()> {
        let now = self.now();
        let node = self.platform.units[unit].node;
        let task = self.tasks[i].clone();
        let mut ready = now;
        // Pin what is already there, make room for the rest, then fetch.
        let mut missing = 0u64;
        for &(tile, _) in &task.tiles {
            if self.data.mask(tile) & (1 << node) == 0 {
                missing += self.data.bytes;
            }
            *self.memory[node].pinned.entry(tile).or_insert(0) += 1;
        }
        ready = ready.max(self.make_room(node, missing, now)?);
        let (mut fetched, mut fetched_from) = (0u64, 0u64);
        for &(tile, mode) in &task.tiles {
            let here = self.data.mask(tile) & (1 << node) != 0;
            if here {
                if let Some(&t) = self.arrival.get(&(tile, node)) {
                    ready = ready.max(t);
                }
            } else if mode.reads() {
                if let Some(src) = self.data.source(tile) {
                    ready = ready.max(self.copy(src, node, tile, now)?);
                    fetched += self.data.bytes;
                    fetched_from |= 1 << src;
                }
            } else {
                self.data.set_mask(tile, self.data.mask(tile) | (1 << node));
            }
            self.touch(node, tile);
        }
        let normal = run_seconds(&task, self.platform, unit).ok_or_else(|| {
            Error::Config(format!(
                "unit {unit} was given `{}`, which it does not run",
                task.kernel_name()
            ))
        })?;
        // The models learn the normal state's time (a policy choosing
        // states scales it).
        if self.models.wants_sample(task.kernel_name(), unit, task.id) {
            self.models
                .observe(task.kernel_name(), unit, &task.footprint, normal);
        }
        let state = self.policy.power_state(unit).unwrap_or(PowerState::Normal);
        if state != self.unit_state[unit] {
            if self.records.is_some() {
                self.power_changes.push(PowerChange {
                    unit,
                    at: ready,
                    from: self.unit_state[unit],
                    to: state,
                    effect: "simulated: runs at the energy profile's speed and power".into(),
                });
            }
            self.unit_state[unit] = state;
        }
        let run = normal * self.profiles[unit].slowdown(state);
        // Units on one device take turns: the run starts when it is free.
        if let Some(r) = self.resources[unit] {
            ready = ready.max(self.resource_free[r]);
            self.resource_free[r] = ready + run;
        }
        let end = ready + run;
        self.running[unit] = Some(Running {
            task: i,
            start: ready,
            end,
            state,
            bytes_fetched: fetched,
            fetched_from,
        });
        self.events.push(std::cmp::Reverse((end.to_bits(), unit)));
        Ok(())
    }

    fn finish(&mut self, unit: UnitId) {
        let Some(r) = self.running[unit].take() else {
            return;
        };
        let task = self.tasks[r.task].clone();
        self.policy.finished(unit, &task);
        let node = self.platform.units[unit].node;
        for &(tile, mode) in &task.tiles {
            if let Some(p) = self.memory[node].pinned.get_mut(&tile) {
                *p -= 1;
                if *p == 0 {
                    self.memory[node].pinned.remove(&tile);
                }
            }
            if mode.writes() {
                let others = self.data.mask(tile) & !(1 << node);
                for other in (0..self.memory.len()).filter(|n| others & (1 << n) != 0) {
                    self.forget(other, tile);
                }
                self.data.set_mask(tile, 1 << node);
            }
        }
        self.finished += 1;
        self.unit_tasks[unit][r.state.index()] += 1;
        self.unit_busy[unit] += r.end - r.start;
        self.unit_joules[unit] += (r.end - r.start) * self.profiles[unit].watts(r.state);
        if let Some((events, _)) = &mut self.records {
            events.push(TaskEvent {
                id: task.id,
                kernel: task.kernel_name().to_string(),
                unit,
                submitted: 0.0,
                ready: self.ready_at[r.task],
                start: r.start,
                end: r.end,
                ok: true,
                flops: task.flops,
                bytes_fetched: r.bytes_fetched,
                fetched_from: crate::trace::nodes_in(r.fetched_from),
                footprint: Some(task.footprint),
                released_by: match self.released_by[r.task] {
                    0 => None,
                    id => Some(id as u64),
                },
                tensors: task.tiles.iter().map(|&(t, _)| t as u64).collect(),
                power: r.state,
            });
        }
        let now = self.now();
        for k in 0..self.successors[r.task].len() {
            let s = self.successors[r.task][k];
            self.pending[s] -= 1;
            if self.pending[s] == 0 {
                self.ready_at[s] = now;
                self.released_by[s] = task.id as u32;
                self.push(s, Some(unit));
            }
        }
    }

    /// Copies `tile` from `from` to `to` over the route's links, each copy
    /// waiting for its link; returns when it arrives.
    fn copy(&mut self, from: NodeId, to: NodeId, tile: u32, earliest: f64) -> Result<f64> {
        let route: SmallVec<[(NodeId, NodeId); 2]> = self.routes[from][to]
            .as_deref()
            .map(|r| r.iter().copied().collect())
            .ok_or_else(|| {
                Error::Config(format!(
                    "no route from node `{}` to `{}`",
                    self.platform.nodes[from].name, self.platform.nodes[to].name
                ))
            })?;
        let bytes = self.data.bytes;
        let mut t = earliest;
        for (a, b) in route {
            let Some(l) = self.platform.link(a, b) else {
                continue;
            };
            let link = self.platform.links[l];
            let dir = usize::from(a > b);
            let start = t.max(self.link_free[l][dir]);
            let seconds = link.latency + bytes as f64 / link.bandwidth;
            t = start + seconds;
            self.link_free[l][dir] = t;
            self.bytes_moved += bytes;
            self.transfers += 1;
            if let Some((_, transfers)) = &mut self.records {
                transfers.push(Transfer {
                    tensor: tile as u64,
                    from: a,
                    to: b,
                    bytes: bytes as usize,
                    at: start,
                    seconds,
                    direct: false,
                    peer: None,
                });
            }
            // A copy through the host leaves one there too.
            self.data.set_mask(tile, self.data.mask(tile) | (1 << b));
        }
        self.models
            .observe_transfer(from, to, bytes as usize, t - earliest);
        self.arrival.insert((tile, to), t);
        Ok(t)
    }

    /// Marks `tile` used now on `node`.
    fn touch(&mut self, node: NodeId, tile: u32) {
        let bytes = self.data.bytes;
        let m = &mut self.memory[node];
        if m.capacity.is_none() {
            return;
        }
        self.stamp += 1;
        match m.stamp_of.insert(tile, self.stamp) {
            Some(old) => {
                m.lru.remove(&old);
            }
            None => m.used += bytes,
        }
        m.lru.insert(self.stamp, tile);
    }

    /// Drops `node`'s copy of `tile` from its accounting.
    fn forget(&mut self, node: NodeId, tile: u32) {
        let bytes = self.data.bytes;
        let m = &mut self.memory[node];
        if let Some(stamp) = m.stamp_of.remove(&tile) {
            m.lru.remove(&stamp);
            m.used -= bytes;
        }
    }

    /// Frees `bytes` on `node` by dropping its least recently used copies
    /// that no running task holds; a last copy goes back to the host
    /// first. Returns when the room is there.
    fn make_room(&mut self, node: NodeId, bytes: u64, now: f64) -> Result<f64> {
        let Some(capacity) = self.memory[node].capacity else {
            return Ok(now);
        };
        let mut ready = now;
        while self.memory[node].used + bytes > capacity {
            let m = &self.memory[node];
            let victim = m.lru.values().copied().find(|t| !m.pinned.contains_key(t));
            let Some(tile) = victim else {
                return Err(Error::Config(format!(
                    "node `{}` ({} bytes) cannot hold the tiles of the tasks running on it",
                    self.platform.nodes[node].name, capacity
                )));
            };
            let mask = self.data.mask(tile);
            if mask & !(1 << node) == 0 {
                ready = ready.max(self.copy(node, 0, tile, now)?);
            }
            self.data
                .set_mask(tile, self.data.mask(tile) & !(1 << node));
            self.arrival.remove(&(tile, node));
            self.forget(node, tile);
            self.evictions += 1;
        }
        Ok(ready)
    }
}
