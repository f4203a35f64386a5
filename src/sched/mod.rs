//! Scheduling policies: where a ready task goes and which task an idle unit
//! takes next.
//!
//! A policy is a small trait — `SchedPolicy::push` a ready task,
//! `SchedPolicy::pop` work for a unit — so each policy is one file. Tasks
//! with a non-zero priority go to a shared priority queue that every policy
//! consults first; the common priority-0 path never touches it.

mod dmda;
mod eager;
mod round_robin;
mod work_stealing;

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::graph::{TaskNode, UnitSet};
use crate::kernel::ArgMeta;
use crate::perfmodel::{Footprint, PerfModels};
use crate::power::{EnergyProfile, PowerState};
use crate::tensor::Access;
use crate::trace::Clock;
use crate::unit::{NodeId, UnitHealth, UnitId};

/// The scheduling policy of a runtime.
///
/// ```
/// let rt = xpu::Runtime::builder().policy(xpu::Policy::RoundRobin).build()?;
/// assert_eq!(rt.policy(), xpu::Policy::RoundRobin);
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// One shared queue; any capable unit takes the next task.
    Eager,
    /// Ready tasks are dealt to capable units in turn; no stealing.
    RoundRobin,
    /// A queue per unit; a task made ready by a unit stays there; idle units steal.
    WorkStealing,
    /// Each task to the unit where it is expected to finish first
    /// (performance models, data already in place); see `sched/dmda.rs`.
    /// The default: a slow unit gets only the work it finishes first.
    #[default]
    Dmda,
    /// `Dmda`, each unit's queue run by priority.
    Dmdas,
    /// Each task to the unit and power state where it is predicted to cost
    /// the least energy, within a bound on how much slower than `Dmda`'s
    /// choice the schedule may get (`RuntimeBuilder::slowdown`, `--slowdown`;
    /// see `sched/dmda.rs`). The workers put each unit in the state its
    /// task was placed for.
    Energy,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 6] = [
        Policy::Eager,
        Policy::RoundRobin,
        Policy::WorkStealing,
        Policy::Dmda,
        Policy::Dmdas,
        Policy::Energy,
    ];

    /// The policy's name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Eager => "eager",
            Policy::RoundRobin => "round-robin",
            Policy::WorkStealing => "work-stealing",
            Policy::Dmda => "dmda",
            Policy::Dmdas => "dmdas",
            Policy::Energy => "energy",
        }
    }

    /// Whether the policy places tasks by the performance models (the
    /// workers then measure every task for them).
    pub fn uses_models(self) -> bool {
        matches!(self, Policy::Dmda | Policy::Dmdas | Policy::Energy)
    }

    /// Whether the policy chooses the power state each task runs in (the
    /// state set for a unit is then the most it may choose).
    pub fn chooses_power_states(self) -> bool {
        self == Policy::Energy
    }

    /// Whether a task's inputs start moving to its unit's memory when the
    /// policy queues it there, rather than when it starts (the policies
    /// that place each task on one unit ahead of time).
    pub fn prefetches(self) -> bool {
        self.uses_models()
    }

    /// Parses `eager`, `round-robin`, `work-stealing`, `dmda`, `dmdas` or
    /// `energy`.
    pub fn parse(s: &str) -> crate::Result<Policy> {
        crate::named::parse_named(s, "policy", &Policy::ALL, Policy::as_str)
    }

    /// The policy over units in `health`, described by `units`, placing
    /// tasks of type `T` (the runtime's, or the simulator's) on `clock`;
    /// `slowdown` bounds each of the energy policy's decisions.
    pub(crate) fn build<T: Placeable>(
        self,
        health: Arc<UnitHealth>,
        models: Arc<PerfModels>,
        units: Vec<UnitPlace>,
        clock: SchedClock,
        slowdown: Slowdown,
    ) -> Box<dyn SchedPolicy<T>> {
        let objective = match self {
            Policy::Eager => return Box::new(eager::Eager::new(health)),
            Policy::RoundRobin => return Box::new(round_robin::RoundRobin::new(health)),
            Policy::WorkStealing => return Box::new(work_stealing::WorkStealing::new(health)),
            Policy::Dmda => dmda::Objective::Finish { by_priority: false },
            Policy::Dmdas => dmda::Objective::Finish { by_priority: true },
            Policy::Energy => dmda::Objective::Energy(slowdown),
        };
        Box::new(dmda::Dmda::new(health, models, units, clock, objective))
    }
}

/// How much slower than `dmda`'s the energy policy's schedule may be: a
/// factor of at least 1 (1: only choices that cost `dmda` nothing).
///
/// ```
/// use xpu::sched::Slowdown;
/// assert_eq!(Slowdown::new(1.2)?.factor(), 1.2);
/// assert_eq!(Slowdown::default().factor(), 1.2);
/// assert!(Slowdown::new(0.9).unwrap_err().to_string().contains("0.9"));
/// assert!(Slowdown::new(f64::NAN).is_err());
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slowdown(f64);

impl Slowdown {
    /// A bound of `factor` times `dmda`'s makespan; below 1, or not a
    /// number, is an error that says so.
    pub fn new(factor: f64) -> crate::Result<Slowdown> {
        if factor.is_finite() && factor >= 1.0 {
            Ok(Slowdown(factor))
        } else {
            Err(crate::Error::Config(format!(
                "slowdown {factor}: the energy policy's bound is a factor of at least 1 \
                 (1.2: at most 20% slower than dmda)"
            )))
        }
    }

    pub fn factor(self) -> f64 {
        self.0
    }
}

impl Default for Slowdown {
    /// 1.2: at most 20% slower than `dmda`.
    fn default() -> Self {
        Slowdown(1.2)
    }
}

/// What a policy knows of a task: the runtime's tasks and the simulator's
/// are placed by the same policies.
pub(crate) trait Placeable: Send + Sync + 'static {
    fn id(&self) -> u64;
    fn kernel_name(&self) -> &str;
    /// The units that can run it.
    fn eligible(&self) -> &UnitSet;
    fn priority(&self) -> i32;
    /// What its run time depends on.
    fn footprint(&self) -> Footprint;
    /// Predicted seconds to bring the tensors it reads to `node`, from
    /// where their valid copies are now.
    fn transfer_time(&self, node: NodeId, models: &PerfModels) -> f64;
}

impl Placeable for TaskNode {
    fn id(&self) -> u64 {
        self.id
    }

    fn kernel_name(&self) -> &str {
        self.kernel.name()
    }

    fn eligible(&self) -> &UnitSet {
        &self.eligible
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn footprint(&self) -> Footprint {
        footprint(self)
    }

    fn transfer_time(&self, node: NodeId, models: &PerfModels) -> f64 {
        self.accesses
            .iter()
            .filter(|a| a.mode.reads())
            .map(|a| {
                let t = &a.tensor.inner;
                let reps = t.replicas.lock();
                if reps.state(node).is_valid() {
                    0.0
                } else {
                    reps.valid_source()
                        .map_or(0.0, |src| models.transfer_time(src, node, t.nbytes()))
                }
            })
            .sum()
    }
}

/// The footprint of a task's arguments (computed once per task).
pub(crate) fn footprint(task: &TaskNode) -> Footprint {
    task.footprint.get_or_compute(|| {
        let metas: SmallVec<[ArgMeta<'_>; 4]> = task.accesses.iter().map(Access::meta).collect();
        Footprint::of(&task.kernel, &metas)
    })
}

/// The time a policy reads: the runtime's clock (the profiler's, a
/// time-stamp counter where there is one: a few nanoseconds a reading,
/// three readings a task), or a virtual clock that the simulator advances.
#[derive(Clone)]
pub(crate) enum SchedClock {
    Wall {
        clock: Clock,
        start_ticks: u64,
        per_tick: f64,
    },
    /// Seconds as f64 bits.
    Virtual(Arc<AtomicU64>),
}

impl SchedClock {
    /// Seconds on `clock`, converted at its rate measured now, over at
    /// least 200 microseconds since it started (to well under 0.1%).
    pub fn wall(clock: Clock) -> SchedClock {
        while clock.start().elapsed() < std::time::Duration::from_micros(200) {
            std::hint::spin_loop();
        }
        let (start_ticks, per_tick) = clock.calibration();
        SchedClock::Wall {
            clock,
            start_ticks,
            per_tick,
        }
    }

    /// Seconds since the clock started.
    pub fn now(&self) -> f64 {
        match self {
            SchedClock::Wall {
                clock,
                start_ticks,
                per_tick,
            } => clock.ticks().saturating_sub(*start_ticks) as f64 * per_tick,
            SchedClock::Virtual(bits) => f64::from_bits(bits.load(Ordering::Acquire)),
        }
    }
}

/// What placement needs to know of a unit besides its speed.
#[derive(Debug, Clone)]
pub(crate) struct UnitPlace {
    pub node: NodeId,
    /// It computes on the host's cores (see `UnitDesc::host_cores`).
    pub host_cores: bool,
    pub is_cpu: bool,
    /// The device it shares with other units (see `UnitDesc::resource`),
    /// as an index among the runtime's shared devices.
    pub shares: Option<usize>,
    /// What it draws busy in each state, and how fast it runs there.
    pub energy: Arc<EnergyProfile>,
    /// What it draws idle (0 for a unit emulated on the host's cores,
    /// whose idle cores the CPU units count).
    pub idle_watts: f64,
}

/// For each unit, the device it shares with other units (its name in
/// `devices`, `None`: a device of its own) as an index among the devices
/// named: what [`UnitPlace::shares`] holds.
pub(crate) fn shared_devices<'a>(
    devices: impl Iterator<Item = Option<&'a str>>,
) -> Vec<Option<usize>> {
    let mut names: Vec<&str> = Vec::new();
    devices
        .map(|device| {
            let name = device?;
            Some(names.iter().position(|n| *n == name).unwrap_or_else(|| {
                names.push(name);
                names.len() - 1
            }))
        })
        .collect()
}

/// A scheduling policy.
pub(crate) trait SchedPolicy<T: Placeable = TaskNode>: Send + Sync {
    /// A task became ready; `from` is the unit whose task released it.
    /// Returns the unit whose own queue it joined, if it went to one unit
    /// only (that unit is woken), or `None` if any capable unit may take it.
    fn push(&self, task: Arc<T>, from: Option<UnitId>) -> Option<UnitId>;
    /// The next task for `unit`, which must be in the task's eligible set.
    fn pop(&self, unit: UnitId) -> Option<Arc<T>>;
    /// Called for a unit out of service: takes every task waiting in its
    /// own queue (to be placed elsewhere) and every waiting task that no
    /// unit in service can run (to be failed).
    fn drain(&self, unit: UnitId) -> Vec<Arc<T>>;
    /// Ready tasks waiting, per unit queue (`units` of them) and in shared
    /// queues (a snapshot, for monitoring).
    fn queued(&self, units: usize) -> QueueLengths;
    /// `unit` finished `task` (run, failed or cancelled).
    fn finished(&self, _unit: UnitId, _task: &T) {}
    /// Whether `unit` is running a task, so that a task queued there now
    /// waits for it. Asked only of policies that prefetch
    /// ([`Policy::prefetches`]); the others need not know, and say yes.
    fn is_running(&self, _unit: UnitId) -> bool {
        true
    }
    /// `unit` is gated and takes `seconds` to start work (0: it is awake
    /// again). Policies that predict when tasks finish count it in.
    fn set_wake_latency(&self, _unit: UnitId, _seconds: f64) {}
    /// The power state the task `unit` last took was placed for (`None`:
    /// the policy does not choose states; see
    /// [`Policy::chooses_power_states`]).
    fn power_state(&self, _unit: UnitId) -> Option<PowerState> {
        None
    }
    /// `unit`'s backend refused `state`: the policy no longer chooses it
    /// there.
    fn refuse_power_state(&self, _unit: UnitId, _state: PowerState) {}
}

/// Ready tasks not yet taken by a unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueLengths {
    /// Waiting in each unit's own queue (all zero for a shared-queue policy).
    pub per_unit: Vec<usize>,
    /// Waiting in queues any capable unit takes from (priority tasks too).
    pub shared: usize,
}

/// A queued task in priority order (highest first, FIFO among equals),
/// with what its queue keeps beside it.
struct Prioritised<T, P = ()> {
    priority: i32,
    seq: u64,
    task: Arc<T>,
    payload: P,
}

impl<T, P> PartialEq for Prioritised<T, P> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl<T, P> Eq for Prioritised<T, P> {}
impl<T, P> PartialOrd for Prioritised<T, P> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<T, P> Ord for Prioritised<T, P> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Tasks with a non-zero priority, highest first, FIFO among equals.
pub(crate) struct PriorityQueue<T> {
    len: AtomicUsize,
    seq: AtomicU64,
    heap: Mutex<BinaryHeap<Prioritised<T>>>,
}

impl<T> Default for PriorityQueue<T> {
    fn default() -> Self {
        PriorityQueue {
            len: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            heap: Mutex::new(BinaryHeap::new()),
        }
    }
}

impl<T: Placeable> PriorityQueue<T> {
    /// Tasks waiting.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Takes `task` if it has a priority; otherwise hands it back.
    pub fn offer(&self, task: Arc<T>) -> Option<Arc<T>> {
        if task.priority() == 0 {
            return Some(task);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut heap = self.heap.lock();
        heap.push(Prioritised {
            priority: task.priority(),
            seq,
            task,
            payload: (),
        });
        self.len.store(heap.len(), Ordering::Release);
        None
    }

    /// The highest-priority task `unit` can run.
    pub fn pop(&self, unit: UnitId) -> Option<Arc<T>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut heap = self.heap.lock();
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(p) = heap.pop() {
            if p.task.eligible().contains(unit) {
                found = Some(p.task);
                break;
            }
            skipped.push(p);
        }
        heap.extend(skipped);
        self.len.store(heap.len(), Ordering::Release);
        found
    }

    /// Takes the tasks that no unit in service can run.
    pub fn drain_stranded(&self, health: &UnitHealth) -> Vec<Arc<T>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut heap = self.heap.lock();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *heap)
            .into_iter()
            .partition(|p| stranded(&*p.task, health));
        heap.extend(kept);
        self.len.store(heap.len(), Ordering::Release);
        gone.into_iter().map(|p| p.task).collect()
    }
}

/// True when every unit that could run `task` is out of service.
pub(crate) fn stranded<T: Placeable>(task: &T, health: &UnitHealth) -> bool {
    task.eligible().iter().all(|u| health.is_down(u))
}

/// The first unit in service that can run `task`, trying them in turn
/// from `start`.
pub(crate) fn next_eligible<T: Placeable>(
    task: &T,
    start: usize,
    units: usize,
    health: &UnitHealth,
) -> Option<UnitId> {
    (0..units)
        .map(|i| (start + i) % units)
        .find(|&u| task.eligible().contains(u) && !health.is_down(u))
}
