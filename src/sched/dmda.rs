//! `dmda` and `dmdas` (StarPU's "deque model data aware", HEFT-like): each
//! ready task goes to the unit where it is expected to finish first:
//! the unit's expected free time, plus the predicted transfer time of the
//! inputs it lacks (from the replica states the memory manager holds),
//! plus the predicted run time (`crate::perfmodel`).
//!
//! A (kernel, unit) pair that has never run is explored: a task is sent
//! there when no exploratory task of that pair is in flight and the task
//! is among the smallest of its kernel seen so far, so one task measures
//! the pair without a large task waiting on a unit of unknown speed. Units
//! emulated on the host's cores are not explored when a CPU unit can run
//! the task (they would take cores from it; `xpu calibrate` measures them,
//! and a model stored in the task history brings them back). A task
//! nothing is known of, while every unknown pair is being explored, waits
//! in a shared queue; an idle unit takes it and decides again (a unit
//! emulated on the host's cores only one that no CPU unit can run). A running
//! task past its prediction is expected to end now (StarPU's rule). When
//! a unit's second task in a row runs past ten times its prediction, the
//! second counts as running as long again, and its elapsed time (while it
//! runs, or when it ends) replaces the model's figure at once; the tasks
//! queued on that unit are placed again, so a unit far slower than
//! predicted stops receiving the kernel, often before its second task
//! ends. One such task alone is not enough: on a loaded machine a worker
//! preempted for a few milliseconds runs a 5 µs kernel a thousand times
//! past its prediction, and replacing the model with that one run, or
//! counting the unit busy for as long again, gave a unit 100 times slower
//! 20 to 130 of 400 independent relus where 4 would do. A corrected pair
//! gets a task once ten times the corrected time has passed, and once
//! more as long after: the correction may have measured a passing load,
//! and a unit its model calls slow is otherwise never measured again.
//!
//! Each unit has its own queue, whose entries carry their prediction;
//! `dmda` runs it in arrival order (a lock-free queue), `dmdas` by
//! priority (highest first), then arrival (a heap under the unit's lock).
//! The common path takes no lock shared by all units but the models' read
//! lock.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_deque::Injector;
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::round_robin::steal_one;
use super::{Placeable, Prioritised, QueueLengths, SchedClock, SchedPolicy, Slowdown, UnitPlace};
use crate::graph::UnitSet;
use crate::perfmodel::PerfModels;
use crate::power::PowerState;
use crate::unit::{UnitHealth, UnitId};

/// What a unit's queue keeps with each task: its prediction there, the
/// power state it was placed for (the energy policy's), and whether an
/// idle CPU unit may take it from there (`Dmda::steal_for`).
#[derive(Debug, Clone, Copy)]
struct Prediction {
    seconds: f64,
    explores: bool,
    state: Option<PowerState>,
    stealable: bool,
}

type Queued<T> = Prioritised<T, Prediction>;

/// The task a unit runs now.
struct Running<T> {
    task: Arc<T>,
    predicted: f64,
    explores: bool,
    /// When it started, on the policy's clock.
    since: f64,
    /// Its elapsed time already corrected the model (a large overrun).
    reported: bool,
}

/// A unit's queue, with the count of its entries another CPU unit may
/// not take: one of those at the head would have to go back, and in
/// arrival order back is the tail.
struct UnitQueue<T> {
    order: QueueOrder<T>,
    unstealable: AtomicUsize,
}

/// In arrival order (`dmda`, lock-free: the thread placing a task and the
/// unit's worker taking one do not wait on each other), or by priority,
/// then arrival (`dmdas`, a heap).
enum QueueOrder<T> {
    Arrival(Box<Injector<Queued<T>>>),
    Priority(Mutex<BinaryHeap<Queued<T>>>),
}

impl<T> UnitQueue<T> {
    fn new(by_priority: bool) -> Self {
        UnitQueue {
            order: if by_priority {
                QueueOrder::Priority(Mutex::new(BinaryHeap::new()))
            } else {
                QueueOrder::Arrival(Box::default())
            },
            unstealable: AtomicUsize::new(0),
        }
    }

    fn push(&self, entry: Queued<T>) {
        if !entry.payload.stealable {
            self.unstealable.fetch_add(1, Ordering::AcqRel);
        }
        match &self.order {
            QueueOrder::Arrival(q) => q.push(entry),
            QueueOrder::Priority(q) => q.lock().push(entry),
        }
    }

    fn pop(&self) -> Option<Queued<T>> {
        let entry = match &self.order {
            QueueOrder::Arrival(q) => steal_one(q),
            QueueOrder::Priority(q) => q.lock().pop(),
        }?;
        if !entry.payload.stealable {
            self.unstealable.fetch_sub(1, Ordering::AcqRel);
        }
        Some(entry)
    }

    fn len(&self) -> usize {
        match &self.order {
            QueueOrder::Arrival(q) => q.len(),
            QueueOrder::Priority(q) => q.lock().len(),
        }
    }

    /// Whether it holds entries, every one of which another CPU unit may
    /// take.
    fn all_stealable(&self) -> bool {
        self.len() > 0 && self.unstealable.load(Ordering::Acquire) == 0
    }

    /// Every entry, in the order they would run.
    fn take_all(&self) -> Vec<Queued<T>> {
        std::iter::from_fn(|| self.pop()).collect()
    }
}

/// One unit's queue and load, on cache lines of its own: each unit's
/// worker writes its own state on every task.
struct UnitState<T> {
    queue: UnitQueue<T>,
    /// Predicted seconds of the queued tasks (f64 bits).
    queued_seconds: AtomicU64,
    running: Mutex<Option<Running<T>>>,
    /// The running task's start and prediction (f64 bits; the prediction
    /// NaN while none runs): what decisions read, without the lock.
    running_since: AtomicU64,
    running_predicted: AtomicU64,
    /// The last task to end here ran far past its prediction: a second
    /// such task in a row corrects the model (one alone may only have
    /// waited for a core).
    overran_last: AtomicBool,
    /// Seconds the unit takes to wake, while gated (f64 bits; 0 awake).
    wake_latency: AtomicU64,
    /// The power state the task taken last was placed for
    /// ([`NO_STATE`]: none), and the states its backend refused, a bit
    /// each.
    chosen: AtomicU8,
    refused: AtomicU8,
}

/// `UnitState::chosen` when no state was chosen.
const NO_STATE: u8 = u8::MAX;

impl<T> UnitState<T> {
    fn new(by_priority: bool) -> Self {
        UnitState {
            queue: UnitQueue::new(by_priority),
            queued_seconds: AtomicU64::new(0),
            running: Mutex::new(None),
            running_since: AtomicU64::new(0),
            running_predicted: AtomicU64::new(f64::NAN.to_bits()),
            overran_last: AtomicBool::new(false),
            wake_latency: AtomicU64::new(0f64.to_bits()),
            chosen: AtomicU8::new(NO_STATE),
            refused: AtomicU8::new(0),
        }
    }

    fn add_queued(&self, seconds: f64) {
        let _ = self
            .queued_seconds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some((f64::from_bits(bits) + seconds).max(0.0).to_bits())
            });
    }

    fn queued(&self) -> f64 {
        f64::from_bits(self.queued_seconds.load(Ordering::Acquire))
    }
}

/// Tasks not yet placed, with their count beside them: an idle unit asks
/// on every turn of its wait, and must not take the lock to learn that
/// there are none.
struct Unplaced<T> {
    len: AtomicUsize,
    queue: Mutex<VecDeque<Arc<T>>>,
}

impl<T> Default for Unplaced<T> {
    fn default() -> Self {
        Unplaced {
            len: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
        }
    }
}

impl<T> Unplaced<T> {
    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on the queue, under its lock.
    fn with<R>(&self, f: impl FnOnce(&mut VecDeque<Arc<T>>) -> R) -> R {
        let mut q = self.queue.lock();
        let r = f(&mut q);
        self.len.store(q.len(), Ordering::Release);
        r
    }
}

/// What exploring a kernel's unknown pairs makes of a task.
enum Exploration {
    /// Send it to this unit, to measure the pair.
    Send(UnitId),
    /// An exploratory task of one of the pairs is out: wait for it.
    Awaited,
    /// Place it on what is known.
    Closed,
}

/// What exploration keeps of a kernel: the units it has an exploratory
/// task in flight on, the smallest footprint size seen, and the units
/// whose model a correction replaced, with when to measure them again.
/// Kept per kernel name, so that a decision looks it up without copying
/// the name.
struct Explored {
    in_flight: UnitSet,
    smallest: f64,
    rechecks: SmallVec<[Recheck; 2]>,
}

/// A pair to measure again after a correction.
#[derive(Debug, Clone, Copy)]
struct Recheck {
    unit: UnitId,
    /// When the next measurement is due, on the policy's clock.
    due: f64,
    /// Seconds between measurements.
    every: f64,
    /// Measurements still to take.
    left: u8,
}

impl Explored {
    fn new(smallest: f64) -> Explored {
        Explored {
            in_flight: UnitSet::default(),
            smallest,
            rechecks: SmallVec::new(),
        }
    }
}

/// What a placement minimises.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Objective {
    /// The task's finish (`dmda`; `dmdas` when each unit's queue runs by
    /// priority).
    Finish { by_priority: bool },
    /// The energy the task adds, within a slowdown of `dmda`'s choice.
    Energy(Slowdown),
}

/// The energy policy's account of the run time it placed: what `dmda`'s
/// choices would have placed, and what it placed instead.
#[derive(Debug, Default)]
struct Placed {
    reference: f64,
    chosen: f64,
}

/// The energy policy's bound, and its account.
struct EnergyBound {
    slowdown: Slowdown,
    placed: Mutex<Placed>,
}

pub(crate) struct Dmda<T> {
    health: Arc<UnitHealth>,
    models: Arc<PerfModels>,
    units: Vec<UnitPlace>,
    clock: SchedClock,
    by_priority: bool,
    energy: Option<EnergyBound>,
    seq: AtomicU64,
    state: Vec<CachePadded<UnitState<T>>>,
    /// For each unit, the other units on its device (`UnitPlace::shares`).
    sharers: Vec<SmallVec<[UnitId; 4]>>,
    /// The CPU units.
    cpus: UnitSet,
    /// Tasks not yet placed: nothing was known of them when they became
    /// ready.
    unplaced: Unplaced<T>,
    exploration: Mutex<HashMap<String, Explored>>,
    /// Rechecks listed in `exploration`: a decision looks for one only
    /// when there are any.
    rechecks: AtomicUsize,
}

/// Ratio of elapsed to predicted time past which a running task's elapsed
/// time corrects the model before it ends.
const OVERRUN: f64 = 10.0;

/// A pair whose model a correction replaced is measured again when this
/// many times the corrected time has passed. The correction may have
/// measured a passing load (another process on the unit's cores), and a
/// unit its model calls slow gets no task that would show otherwise;
/// waiting ten times as long bounds what measuring a unit that is truly
/// that slow costs to a tenth.
const RECHECK_AFTER: f64 = 10.0;

/// Measurements a corrected pair gets, one per [`RECHECK_AFTER`] times
/// the corrected time: with the correction, three samples, whose median
/// is the prediction (`crate::perfmodel`), so one run under a passing
/// load no longer decides it.
const RECHECKS: u8 = 2;

/// Seconds a task must also run before it counts as past its prediction:
/// below this, a task ten times over a sub-microsecond prediction is the
/// operating system's noise (a page fault, a preempted thread), not the
/// unit's speed, and correcting the model for it would place again every
/// task queued on the unit.
const OVERRUN_FLOOR: f64 = 50e-6;

/// Whether a task predicted to take `predicted` seconds is, after
/// `elapsed`, far enough past it to correct the model at once.
fn overruns(predicted: f64, elapsed: f64) -> bool {
    predicted > 0.0 && elapsed > (OVERRUN * predicted).max(OVERRUN_FLOOR)
}

/// What waking an idle unit's worker costs before it starts a task (a
/// parked thread woken and scheduled: a few microseconds here): counted
/// against giving a task to an idle unit rather than to the one that
/// released it, so tiny tasks stay where they became ready.
const WAKE_UP: f64 = 5e-6;

/// Unplaced tasks an idle unit looks through for one it can run.
const SCAN: usize = 64;

/// A unit `decide` weighs: its predicted run time for the task (`None`
/// if never measured) and the task's expected finish there.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    unit: UnitId,
    run: Option<f64>,
    finish: f64,
}

/// Where `decide` sends a task.
#[derive(Debug, Clone, Copy)]
struct Decision {
    unit: UnitId,
    seconds: f64,
    explores: bool,
    state: Option<PowerState>,
}

impl<T: Placeable> Dmda<T> {
    pub fn new(
        health: Arc<UnitHealth>,
        models: Arc<PerfModels>,
        units: Vec<UnitPlace>,
        clock: SchedClock,
        objective: Objective,
    ) -> Dmda<T> {
        let by_priority = matches!(objective, Objective::Finish { by_priority: true });
        Dmda {
            health,
            models,
            clock,
            by_priority,
            energy: match objective {
                Objective::Energy(slowdown) => Some(EnergyBound {
                    slowdown,
                    placed: Mutex::new(Placed::default()),
                }),
                Objective::Finish { .. } => None,
            },
            seq: AtomicU64::new(0),
            state: units
                .iter()
                .map(|_| CachePadded::new(UnitState::new(by_priority)))
                .collect(),
            sharers: units
                .iter()
                .enumerate()
                .map(|(u, place)| {
                    units
                        .iter()
                        .enumerate()
                        .filter(|&(v, other)| {
                            v != u && place.shares.is_some() && other.shares == place.shares
                        })
                        .map(|(v, _)| v)
                        .collect()
                })
                .collect(),
            cpus: (0..units.len()).filter(|&u| units[u].is_cpu).collect(),
            units,
            unplaced: Unplaced::default(),
            exploration: Mutex::new(HashMap::new()),
            rechecks: AtomicUsize::new(0),
        }
    }

    /// Seconds until `unit` is expected to be free, as of `now`: its own
    /// work, and that of the units sharing its device, which runs on the
    /// same hardware.
    fn busy_for(&self, unit: UnitId, now: f64) -> f64 {
        self.sharers[unit]
            .iter()
            .fold(self.own_busy(unit, now), |busy, &u| {
                busy + self.own_busy(u, now)
            })
    }

    /// Seconds until the work placed on `unit` itself is expected to end,
    /// as of `now`. A running task past its prediction is expected to end
    /// now, unless the unit's last task ran far past its own: then it
    /// counts as running as long again, and once far past its prediction
    /// too it corrects the model at once, and the tasks queued on that
    /// unit on the strength of the old model go back to be placed again.
    fn own_busy(&self, unit: UnitId, now: f64) -> f64 {
        let s = &self.state[unit];
        let predicted = f64::from_bits(s.running_predicted.load(Ordering::Acquire));
        let running = if predicted.is_nan() {
            0.0
        } else {
            let elapsed = now - f64::from_bits(s.running_since.load(Ordering::Acquire));
            let slow = s.overran_last.load(Ordering::Acquire);
            if slow && overruns(predicted, elapsed) {
                self.overran(unit, now);
            }
            if elapsed <= predicted {
                predicted - elapsed
            } else if slow {
                elapsed
            } else {
                0.0
            }
        };
        running + s.queued()
    }

    /// The task running on `unit` is far past its prediction: its elapsed
    /// time corrects the model (once), and the tasks queued there on the
    /// strength of the old model are placed again.
    fn overran(&self, unit: UnitId, now: f64) {
        let corrected = match &mut *self.state[unit].running.lock() {
            Some(r) if !r.reported => {
                r.reported = true;
                self.correct(&*r.task, unit, now - r.since, now);
                true
            }
            _ => false,
        };
        if corrected {
            self.requeue(unit);
        }
    }

    /// Replaces the model of `task`'s footprint on `unit` with `elapsed`,
    /// and lists the pair to be measured again [`RECHECK_AFTER`] times
    /// `elapsed` after `now`.
    fn correct(&self, task: &T, unit: UnitId, elapsed: f64, now: f64) {
        let kernel = task.kernel_name();
        self.models
            .correct(kernel, unit, &task.footprint(), elapsed);
        let mut exploration = self.exploration.lock();
        let e = match exploration.get_mut(kernel) {
            Some(e) => e,
            None => exploration
                .entry(kernel.to_string())
                .or_insert(Explored::new(f64::INFINITY)),
        };
        let listed = e.rechecks.len();
        e.rechecks.retain(|r| r.unit != unit);
        let every = RECHECK_AFTER * elapsed;
        e.rechecks.push(Recheck {
            unit,
            due: now + every,
            every,
            left: RECHECKS,
        });
        if e.rechecks.len() > listed {
            self.rechecks.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A unit among `candidates` due to measure `kernel` again, marked in
    /// flight; its next measurement is listed, or it leaves the list.
    fn recheck(&self, kernel: &str, now: f64, candidates: &[Candidate]) -> Option<UnitId> {
        let mut exploration = self.exploration.lock();
        let e = exploration.get_mut(kernel)?;
        let pos = e.rechecks.iter().position(|r| {
            now >= r.due
                && !e.in_flight.contains(r.unit)
                && candidates.iter().any(|c| c.unit == r.unit)
        })?;
        let r = &mut e.rechecks[pos];
        let unit = r.unit;
        r.left -= 1;
        r.due = now + r.every;
        if r.left == 0 {
            e.rechecks.swap_remove(pos);
            self.rechecks.fetch_sub(1, Ordering::AcqRel);
        }
        e.in_flight.insert(unit);
        Some(unit)
    }

    /// Moves the tasks queued on `unit` back to the unplaced queue.
    fn requeue(&self, unit: UnitId) {
        let entries = self.take_queue(unit);
        self.unplaced
            .with(|unplaced| unplaced.extend(entries.into_iter().map(|q| q.task)));
    }

    /// Empties `unit`'s queue, highest first, releasing what it booked.
    fn take_queue(&self, unit: UnitId) -> Vec<Queued<T>> {
        let entries = self.state[unit].queue.take_all();
        for e in &entries {
            self.release(
                unit,
                e.payload.seconds,
                e.payload.explores.then_some(&*e.task),
            );
        }
        entries
    }

    /// Takes back a queued prediction, and the exploration mark of
    /// `explored` if it explored `unit`.
    fn release(&self, unit: UnitId, seconds: f64, explored: Option<&T>) {
        self.state[unit].add_queued(-seconds);
        if let Some(task) = explored {
            if let Some(e) = self.exploration.lock().get_mut(task.kernel_name()) {
                e.in_flight.remove(unit);
            }
        }
    }

    /// Where `task` should go: the unit it is expected to finish first on,
    /// with its predicted run time, or a unit to explore (a pair never
    /// run, marked in flight here); `None` when nothing is known and no
    /// pair may be explored now. `awake` is the unit deciding (it released
    /// the task, or is idle and asking): an idle other unit must first be
    /// woken, which costs [`WAKE_UP`], and a gated one its wake-up latency
    /// besides.
    fn decide(&self, task: &T, awake: Option<UnitId>) -> Option<Decision> {
        let kernel = task.kernel_name();
        let fp = task.footprint();
        // Every unit in service that can run it, with its predicted run
        // time (`None`: never measured). The models' lock is released
        // before the units' loads are read, which may correct a model.
        let mut candidates: SmallVec<[Candidate; 8]> = SmallVec::new();
        {
            let models = self.models.kernel(kernel);
            for unit in task.eligible().iter() {
                if !self.health.is_down(unit) {
                    candidates.push(Candidate {
                        unit,
                        run: models.predict(unit, &fp),
                        finish: f64::INFINITY,
                    });
                }
            }
        }
        let now = self.clock.now();
        // Units on one node need the same copies: work them out once per
        // node, and not at all when every unit is on one node (the same
        // time added to every finish changes no choice).
        let first_node = candidates.first().map(|c| self.units[c.unit].node);
        let one_node = candidates
            .iter()
            .all(|c| Some(self.units[c.unit].node) == first_node);
        let mut transfers: SmallVec<[(usize, f64); 4]> = SmallVec::new();
        let mut best: Option<Candidate> = None;
        let mut unknown = false;
        for c in &mut candidates {
            let Some(run) = c.run else {
                unknown = true;
                continue;
            };
            let busy = self.busy_for(c.unit, now);
            let wake = if busy == 0.0 && awake != Some(c.unit) {
                WAKE_UP + f64::from_bits(self.state[c.unit].wake_latency.load(Ordering::Relaxed))
            } else {
                0.0
            };
            let node = self.units[c.unit].node;
            let transfer = if one_node {
                0.0
            } else if let Some(&(_, t)) = transfers.iter().find(|(n, _)| *n == node) {
                t
            } else {
                let t = task.transfer_time(node, &self.models);
                transfers.push((node, t));
                t
            };
            c.finish = busy + wake + transfer + run;
            if best.is_none_or(|b| c.finish < b.finish) {
                best = Some(*c);
            }
        }
        if unknown {
            // Units emulated on the host's cores are no added capacity
            // beside CPU units: exploring them in a run only takes cores
            // from the CPU units. `xpu calibrate` measures them instead.
            let cpu_can_run = self.cpu_can_run(task);
            let explorable: SmallVec<[UnitId; 8]> = candidates
                .iter()
                .filter(|c| c.run.is_none())
                .map(|c| c.unit)
                .filter(|&u| !cpu_can_run || !self.units[u].host_cores || self.units[u].is_cpu)
                .collect();
            if !explorable.is_empty() {
                match self.explore(kernel, fp.size, &explorable) {
                    Exploration::Send(unit) => {
                        return Some(Decision {
                            unit,
                            seconds: 0.0,
                            explores: true,
                            state: None,
                        })
                    }
                    // A pair's first measurement is due: the task waits
                    // for the first unit to be idle rather than commit to
                    // a known one (a unit 100 times slower than the one
                    // being explored was otherwise given every task until
                    // the exploration ended).
                    Exploration::Awaited => return None,
                    Exploration::Closed => {}
                }
            }
        }
        if self.rechecks.load(Ordering::Acquire) > 0 {
            if let Some(unit) = self.recheck(kernel, now, &candidates) {
                return Some(Decision {
                    unit,
                    seconds: 0.0,
                    explores: true,
                    state: None,
                });
            }
        }
        let mut best = best?;
        // A unit emulated on the host's cores competes with the CPU units
        // for them: it is no added capacity, so it gets the task only when
        // it runs it faster than a CPU unit would.
        let place = &self.units[best.unit];
        if place.host_cores && !place.is_cpu {
            let run = best.run;
            if let Some(cpu) = candidates
                .iter()
                .filter(|c| self.units[c.unit].is_cpu && c.run.is_some() && c.run <= run)
                .min_by(|a, b| a.finish.total_cmp(&b.finish))
            {
                best = *cpu;
            }
        }
        Some(match &self.energy {
            Some(bound) => self.cheapest(bound, &candidates, best),
            None => Decision {
                unit: best.unit,
                seconds: best.run.unwrap_or(0.0),
                explores: false,
                state: None,
            },
        })
    }

    /// The energy policy's choice for a task `dmda` sends to `best`: of
    /// the units with a prediction, each in every state its backend takes,
    /// the one that adds the least energy above its idle power. Admitted
    /// are the choices that end by the bound times `best`'s finish and
    /// keep the run time placed so far within the bound times what
    /// `dmda`'s choices would have placed. With nothing cheaper admitted,
    /// `dmda`'s choice in the normal state.
    fn cheapest(&self, bound: &EnergyBound, candidates: &[Candidate], best: Candidate) -> Decision {
        let reference = best.run.unwrap_or(0.0);
        let factor = bound.slowdown.factor();
        let latest = factor * best.finish;
        let mut placed = bound.placed.lock();
        let allowance = factor * (placed.reference + reference) - placed.chosen;
        let mut choice = Decision {
            unit: best.unit,
            seconds: reference,
            explores: false,
            state: Some(PowerState::Normal),
        };
        let mut least = self.added_joules(best.unit, reference, PowerState::Normal);
        for c in candidates {
            let Some(run) = c.run else { continue };
            let refused = self.state[c.unit].refused.load(Ordering::Relaxed);
            for state in PowerState::ALL {
                if refused & (1 << state.index()) != 0 {
                    continue;
                }
                let seconds = run * self.units[c.unit].energy.slowdown(state);
                if seconds > allowance || c.finish - run + seconds > latest {
                    continue;
                }
                let joules = self.added_joules(c.unit, run, state);
                if joules < least {
                    least = joules;
                    choice = Decision {
                        unit: c.unit,
                        seconds,
                        explores: false,
                        state: Some(state),
                    };
                }
            }
        }
        placed.reference += reference;
        placed.chosen += choice.seconds;
        choice
    }

    /// Joules above its idle power that `unit` draws running, in `state`,
    /// a task of `normal_seconds` in the normal state.
    fn added_joules(&self, unit: UnitId, normal_seconds: f64, state: PowerState) -> f64 {
        let place = &self.units[unit];
        normal_seconds
            * place.energy.slowdown(state)
            * (place.energy.watts(state) - place.idle_watts)
    }

    /// The first of `unknown` to explore with a task of `size`, marked in
    /// flight: one whose pair has no exploratory task out, when the task
    /// is among its kernel's smallest.
    fn explore(&self, kernel: &str, size: f64, unknown: &[UnitId]) -> Exploration {
        let mut exploration = self.exploration.lock();
        let e = match exploration.get_mut(kernel) {
            Some(e) => {
                e.smallest = e.smallest.min(size);
                e
            }
            None => exploration
                .entry(kernel.to_string())
                .or_insert(Explored::new(size)),
        };
        let mut idle = unknown
            .iter()
            .copied()
            .filter(|&u| !e.in_flight.contains(u));
        match idle.next() {
            Some(unit) if size <= 2.0 * e.smallest => {
                e.in_flight.insert(unit);
                Exploration::Send(unit)
            }
            _ if unknown.iter().any(|&u| e.in_flight.contains(u)) => Exploration::Awaited,
            _ => Exploration::Closed,
        }
    }

    /// A task from the shared queue for an idle `unit`, decided again now
    /// that more may be known; one that another unit should run moves to
    /// that unit's queue. Returns the task and what was predicted for it.
    fn take_unplaced(&self, unit: UnitId) -> Option<(Arc<T>, Decision)> {
        // A unit emulated on the host's cores leaves to the CPU units what
        // they can run: running it unmeasured would take their cores.
        let place = &self.units[unit];
        let shares_cores = place.host_cores && !place.is_cpu;
        loop {
            if self.unplaced.is_empty() {
                return None;
            }
            let task = self.unplaced.with(|q| {
                let pos = q.iter().take(SCAN).position(|t| {
                    t.eligible().contains(unit) && !(shares_cores && self.cpu_can_run(&**t))
                })?;
                q.remove(pos)
            })?;
            match self.decide(&task, Some(unit)) {
                Some(d) if d.unit != unit => self.enqueue(task, d),
                decided => {
                    let d = decided.unwrap_or(Decision {
                        unit,
                        seconds: 0.0,
                        explores: false,
                        state: None,
                    });
                    return Some((task, d));
                }
            }
        }
    }

    /// For an idle CPU unit, the next task queued on the busy CPU unit with
    /// the most work queued, and its prediction. CPU units are alike cores
    /// of one host: the task runs as fast here and starts now, not when
    /// that unit's running task ends, which a worker the operating system
    /// preempted can put milliseconds late (seen in a tiled Cholesky: one
    /// GEMM ran 1.5 ms instead of 0.16 while the other unit went idle with
    /// six tasks, the critical POTRF among them, queued behind it). Only
    /// a queue whose every task any CPU unit may take is stolen from: an
    /// exploratory task, one placed on its unit (or for a power state of
    /// it, the energy policy's), stays in order on that unit. (One placed
    /// while the head was being taken goes back.)
    fn steal_for(&self, unit: UnitId) -> Option<(Arc<T>, f64)> {
        if !self.units[unit].is_cpu || self.energy.is_some() {
            return None;
        }
        let victim = self
            .cpus
            .iter()
            .filter(|&v| v != unit && self.is_running(v) && self.state[v].queue.all_stealable())
            .max_by(|&a, &b| self.state[a].queued().total_cmp(&self.state[b].queued()))?;
        let s = &self.state[victim];
        let entry = s.queue.pop()?;
        if !entry.payload.stealable {
            s.queue.push(entry);
            return None;
        }
        s.add_queued(-entry.payload.seconds);
        Some((entry.task, entry.payload.seconds))
    }

    /// Whether a CPU unit in service can run `task`.
    fn cpu_can_run(&self, task: &T) -> bool {
        task.eligible()
            .iter()
            .any(|u| self.units[u].is_cpu && !self.health.is_down(u))
    }

    fn enqueue(&self, task: Arc<T>, d: Decision) {
        let s = &self.state[d.unit];
        s.add_queued(d.seconds);
        let stealable =
            !d.explores && d.state.is_none() && task.eligible().contains_all(&self.cpus);
        let priority = if self.by_priority { task.priority() } else { 0 };
        // Only a heap needs the arrival order written down.
        let seq = if self.by_priority {
            self.seq.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        s.queue.push(Queued {
            priority,
            seq,
            task,
            payload: Prediction {
                seconds: d.seconds,
                explores: d.explores,
                state: d.state,
                stealable,
            },
        });
    }
}

impl<T: Placeable> SchedPolicy<T> for Dmda<T> {
    fn push(&self, task: Arc<T>, from: Option<UnitId>) -> Option<UnitId> {
        let Some(d) = self.decide(&task, from) else {
            // Nothing known and every unknown pair busy exploring: the
            // first capable unit to be idle takes it (and decides again).
            self.unplaced.with(|q| q.push_back(task));
            return None;
        };
        self.enqueue(task, d);
        Some(d.unit)
    }

    fn pop(&self, unit: UnitId) -> Option<Arc<T>> {
        let s = &self.state[unit];
        let (task, seconds, explores, state) = match s.queue.pop() {
            Some(e) => {
                s.add_queued(-e.payload.seconds);
                let p = e.payload;
                (e.task, p.seconds, p.explores, p.state)
            }
            None => match self.take_unplaced(unit) {
                Some((task, d)) => (task, d.seconds, d.explores, d.state),
                None => {
                    let (task, seconds) = self.steal_for(unit)?;
                    (task, seconds, false, None)
                }
            },
        };
        s.chosen.store(
            state.map_or(NO_STATE, |st| st.index() as u8),
            Ordering::Release,
        );
        let since = self.clock.now();
        *s.running.lock() = Some(Running {
            task: task.clone(),
            predicted: seconds,
            explores,
            since,
            reported: false,
        });
        s.running_since.store(since.to_bits(), Ordering::Release);
        s.running_predicted
            .store(seconds.to_bits(), Ordering::Release);
        Some(task)
    }

    fn finished(&self, unit: UnitId, task: &T) {
        let s = &self.state[unit];
        let done = {
            let mut running = s.running.lock();
            match &*running {
                Some(r) if r.task.id() == task.id() => {
                    s.running_predicted
                        .store(f64::NAN.to_bits(), Ordering::Release);
                    running.take()
                }
                _ => None,
            }
        };
        let Some(r) = done else { return };
        // A second task in a row that ended far past its prediction
        // corrects the model now, whether or not the worker sampled it.
        // (One that corrected it while running starts the count again.)
        let now = self.clock.now();
        let elapsed = now - r.since;
        let overran = !r.reported && overruns(r.predicted, elapsed);
        if s.overran_last.swap(overran, Ordering::AcqRel) && overran {
            self.correct(task, unit, elapsed, now);
        }
        if r.explores {
            self.release(unit, 0.0, Some(&r.task));
        }
    }

    fn set_wake_latency(&self, unit: UnitId, seconds: f64) {
        self.state[unit]
            .wake_latency
            .store(seconds.to_bits(), Ordering::Relaxed);
    }

    fn power_state(&self, unit: UnitId) -> Option<PowerState> {
        match self.state[unit].chosen.load(Ordering::Acquire) {
            NO_STATE => None,
            i => Some(PowerState::from_index(i)),
        }
    }

    fn refuse_power_state(&self, unit: UnitId, state: PowerState) {
        self.state[unit]
            .refused
            .fetch_or(1 << state.index(), Ordering::AcqRel);
    }

    fn is_running(&self, unit: UnitId) -> bool {
        !f64::from_bits(self.state[unit].running_predicted.load(Ordering::Acquire)).is_nan()
    }

    fn drain(&self, unit: UnitId) -> Vec<Arc<T>> {
        let mut gone: Vec<Arc<T>> = self.take_queue(unit).into_iter().map(|q| q.task).collect();
        // Tasks queued on other units that no unit in service can run.
        for (u, s) in self.state.iter().enumerate().filter(|(u, _)| *u != unit) {
            let (stranded, kept): (Vec<_>, Vec<_>) = s
                .queue
                .take_all()
                .into_iter()
                .partition(|e| super::stranded(&*e.task, &self.health));
            for e in kept {
                s.queue.push(e);
            }
            for e in stranded {
                self.release(u, e.payload.seconds, e.payload.explores.then_some(&*e.task));
                gone.push(e.task);
            }
        }
        self.unplaced.with(|q| {
            let (stranded, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(q)
                .into_iter()
                .partition(|t| super::stranded(&**t, &self.health));
            *q = kept;
            gone.extend(stranded);
        });
        gone
    }

    fn queued(&self, units: usize) -> QueueLengths {
        QueueLengths {
            per_unit: (0..units)
                .map(|u| self.state.get(u).map_or(0, |s| s.queue.len()))
                .collect(),
            shared: self.unplaced.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perfmodel::Footprint;
    use crate::power::EnergyProfiles;
    use crate::NodeId;

    /// A task of kernel `k` that either of two units can run.
    struct Job {
        id: u64,
        eligible: UnitSet,
    }

    impl Placeable for Job {
        fn id(&self) -> u64 {
            self.id
        }
        fn kernel_name(&self) -> &str {
            "k"
        }
        fn eligible(&self) -> &UnitSet {
            &self.eligible
        }
        fn priority(&self) -> i32 {
            0
        }
        fn footprint(&self) -> Footprint {
            Footprint { key: 1, size: 1.0 }
        }
        fn transfer_time(&self, _: NodeId, _: &PerfModels) -> f64 {
            0.0
        }
    }

    /// Places task `id`, which either of two units can run, takes it from
    /// its unit, calls `running` (which may move the clock) and ends it;
    /// returns the unit.
    fn place_and_run(dmda: &Dmda<Job>, id: u64, running: impl FnOnce()) -> UnitId {
        let task = Arc::new(Job {
            id,
            eligible: [0, 1].into_iter().collect(),
        });
        let unit = dmda.push(task, None).expect("a known kernel is placed");
        let popped = dmda.pop(unit).expect("the task placed");
        running();
        dmda.finished(unit, &popped);
        unit
    }

    /// Models of kernel `k` on two units, 1 ms on unit 0 and 2 ms on unit
    /// 1, each measured twenty times, and the footprint they were for.
    fn two_measured_units() -> (Arc<PerfModels>, Footprint) {
        let models = Arc::new(PerfModels::new(2, 1));
        let fp = Footprint { key: 1, size: 1.0 };
        for _ in 0..20 {
            models.observe("k", 0, &fp, 1e-3);
            models.observe("k", 1, &fp, 2e-3);
        }
        (models, fp)
    }

    const DMDA: Objective = Objective::Finish { by_priority: false };

    /// A unit on the host's memory with the shipped CPU profile; on the
    /// host's cores if `is_cpu`.
    fn place(is_cpu: bool) -> UnitPlace {
        let energy = EnergyProfiles::shipped().of(&crate::UnitKind::Cpu).clone();
        UnitPlace {
            node: 0,
            host_cores: is_cpu,
            is_cpu,
            shares: None,
            idle_watts: energy.idle_watts,
            energy: Arc::new(energy),
        }
    }

    #[test]
    fn two_overruns_in_a_row_correct_a_model_which_is_measured_again_later() {
        let (models, fp) = two_measured_units();
        let time = Arc::new(AtomicU64::new(0.0f64.to_bits()));
        let set = |t: f64| time.store(t.to_bits(), Ordering::Release);
        let dmda: Dmda<Job> = Dmda::new(
            Arc::new(UnitHealth::in_service(2)),
            models.clone(),
            vec![place(true), place(false)],
            SchedClock::Virtual(time.clone()),
            DMDA,
        );
        // Predictions keep the latest samples as f32.
        let predicts = |seconds: f64| {
            let p = models.predict("k", 0, &fp).expect("unit 0 was measured");
            assert!(
                (p - seconds).abs() < 1e-6 * seconds,
                "{p} s, not {seconds} s"
            );
        };
        let mut next = 0;
        // Submits a task at `at` and, if it goes to unit 0, runs it there
        // for `runs` seconds; returns the unit it went to.
        let mut run = |at: f64, runs: f64| {
            set(at);
            next += 1;
            place_and_run(&dmda, next, || set(at + runs))
        };
        // One task fifty times past its prediction (a worker that waited
        // for a core) leaves the model as it was.
        assert_eq!(run(0.0, 0.05), 0);
        predicts(1e-3);
        // A second in a row replaces it.
        assert_eq!(run(0.1, 0.05), 0);
        predicts(0.05);
        // The other unit now gets the kernel...
        assert_eq!(run(0.2, 0.0), 1);
        assert_eq!(run(0.6, 0.0), 1);
        // ...until ten times the corrected time has passed: then unit 0 is
        // measured again (its worker records the time), and once more as
        // long after; the median of the three is the prediction.
        assert_eq!(run(0.7, 1e-3), 0);
        models.observe("k", 0, &fp, 1e-3);
        predicts((0.05 + 1e-3) / 2.0);
        assert_eq!(run(0.8, 0.0), 1);
        assert_eq!(run(1.3, 1e-3), 0);
        models.observe("k", 0, &fp, 1e-3);
        predicts(1e-3);
        assert_eq!(run(1.4, 0.0), 0);
    }

    #[test]
    fn an_idle_cpu_unit_takes_the_next_task_queued_on_a_busy_one() {
        let models = Arc::new(PerfModels::new(2, 1));
        let fp = Footprint { key: 1, size: 1.0 };
        for unit in 0..2 {
            for _ in 0..20 {
                models.observe("k", unit, &fp, 1e-3);
            }
        }
        let time = Arc::new(AtomicU64::new(0.0f64.to_bits()));
        let make = |cpu: bool| -> Dmda<Job> {
            Dmda::new(
                Arc::new(UnitHealth::in_service(2)),
                models.clone(),
                vec![place(cpu); 2],
                SchedClock::Virtual(time.clone()),
                DMDA,
            )
        };
        let job = |id: u64, units: &[UnitId]| {
            Arc::new(Job {
                id,
                eligible: units.iter().copied().collect(),
            })
        };
        for cpu in [true, false] {
            let dmda = make(cpu);
            // Each unit runs a task of 1 ms; one either unit may run then
            // ends as early on both, and is queued on the first, unit 0.
            assert_eq!(dmda.push(job(1, &[0]), None), Some(0));
            assert_eq!(dmda.pop(0).map(|t| t.id), Some(1));
            assert_eq!(dmda.push(job(2, &[1]), None), Some(1));
            assert_eq!(dmda.pop(1).map(|t| t.id), Some(2));
            assert_eq!(dmda.push(job(3, &[0, 1]), None), Some(0));
            dmda.finished(1, &job(2, &[1]));
            // Unit 1 is idle, unit 0 still busy: a CPU unit takes the
            // queued task; a unit of a device does not.
            let taken = dmda.pop(1).map(|t| t.id);
            if cpu {
                assert_eq!(taken, Some(3));
                assert_eq!(dmda.state[0].queue.len(), 0);
                assert!(
                    dmda.state[0].queued() < 1e-12,
                    "unit 0's booked time went with the task"
                );
            } else {
                assert_eq!(taken, None);
                assert_eq!(dmda.state[0].queue.len(), 1);
            }
        }
        // A queue holding a task placed on its unit is not stolen from: its
        // tasks stay there, in order.
        let dmda = make(true);
        assert_eq!(dmda.push(job(1, &[0]), None), Some(0));
        assert_eq!(dmda.pop(0).map(|t| t.id), Some(1));
        assert_eq!(dmda.push(job(2, &[1]), None), Some(1));
        assert_eq!(dmda.pop(1).map(|t| t.id), Some(2));
        // Unit 0: 1 ms running and task 3 queued; unit 1: 1 ms running and
        // tasks 4 and 5 queued, so task 6 ends first on unit 0.
        assert_eq!(dmda.push(job(3, &[0]), None), Some(0));
        assert_eq!(dmda.push(job(4, &[1]), None), Some(1));
        assert_eq!(dmda.push(job(5, &[1]), None), Some(1));
        assert_eq!(dmda.push(job(6, &[0, 1]), None), Some(0));
        dmda.finished(1, &job(2, &[1]));
        assert_eq!(dmda.pop(1).map(|t| t.id), Some(4));
        dmda.finished(1, &job(4, &[1]));
        assert_eq!(dmda.pop(1).map(|t| t.id), Some(5));
        dmda.finished(1, &job(5, &[1]));
        // Unit 1 is idle and unit 0 busy, but task 3 may run only there.
        assert!(dmda.pop(1).is_none());
        assert_eq!(dmda.pop(0).map(|t| t.id), Some(3));
        assert_eq!(dmda.pop(0).map(|t| t.id), Some(6));
    }

    #[test]
    fn a_gated_units_wake_up_latency_counts_in_its_finish_time() {
        let (models, _) = two_measured_units();
        let dmda: Dmda<Job> = Dmda::new(
            Arc::new(UnitHealth::in_service(2)),
            models,
            vec![place(false); 2],
            SchedClock::Virtual(Arc::new(AtomicU64::new(0.0f64.to_bits()))),
            DMDA,
        );
        let mut next = 0;
        let mut place_one = || {
            next += 1;
            place_and_run(&dmda, next, || {})
        };
        // Awake, the faster unit finishes first.
        assert_eq!(place_one(), 0);
        // Gated with a 5 ms wake-up, it would finish after the other.
        dmda.set_wake_latency(0, 5e-3);
        assert_eq!(place_one(), 1);
        // Awake again.
        dmda.set_wake_latency(0, 0.0);
        assert_eq!(place_one(), 0);
    }

    #[test]
    fn the_energy_objective_picks_the_cheapest_admitted_state_and_not_a_refused_one() {
        let (models, _) = two_measured_units();
        let dmda: Dmda<Job> = Dmda::new(
            Arc::new(UnitHealth::in_service(2)),
            models,
            vec![place(true); 2],
            SchedClock::Virtual(Arc::new(AtomicU64::new(0.0f64.to_bits()))),
            Objective::Energy(Slowdown::new(3.0).expect("a valid bound")),
        );
        let mut next = 0;
        let mut place_one = || {
            next += 1;
            let unit = place_and_run(&dmda, next, || {});
            (unit, dmda.power_state(unit))
        };
        // Unit 0 takes 1 ms, unit 1 2 ms, both with the CPU profile: at low
        // power (half the speed, 12 W against 28 W, 6 W idle) unit 0 adds
        // 12 mJ a task against 22 mJ normal, and ends within 3x the 1 ms.
        assert_eq!(place_one(), (0, Some(PowerState::LowPower)));
        // Refused there, the next cheapest admitted is unit 0 normal (unit
        // 1 at low power would end after 4 ms, past the bound).
        dmda.refuse_power_state(0, PowerState::LowPower);
        assert_eq!(place_one(), (0, Some(PowerState::Normal)));
    }

    #[test]
    fn only_a_task_far_and_measurably_past_its_prediction_overruns() {
        // Ten times over, but within the operating system's noise.
        assert!(!overruns(1e-7, 40e-6));
        // Ten times over and past the floor.
        assert!(overruns(1e-7, 60e-6));
        assert!(overruns(1e-3, 20e-3));
        // Late, but not ten times over.
        assert!(!overruns(1e-3, 5e-3));
        // Nothing predicted: nothing to overrun.
        assert!(!overruns(0.0, 1.0));
    }
}
