//! `dmda` and `dmdas` (StarPU's "deque model data aware", HEFT-like): each
//! ready task goes to the unit where it is expected to finish first:
//! the unit's expected free time, plus the predicted transfer time of the
//! inputs it lacks (from the replica states the memory manager holds),
//! plus the predicted run time (`crate::perfmodel`).
//!
//! A (kernel, unit) pair that has never run is explored: a task is sent
//! there when no exploratory task of that pair is in flight and the task
//! is among the smallest of its kernel seen so far, so one task measures
//! the pair without a large task waiting on a unit of unknown speed. A
//! running task past its prediction counts as running as long again, and
//! past ten times its prediction its elapsed time enters the model at once,
//! so a unit far slower than predicted stops receiving the kernel before
//! the task ends.
//!
//! Each unit has its own queue; `dmda` runs it in arrival order, `dmdas`
//! by priority (highest first), then arrival.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use smallvec::SmallVec;

use super::{Prioritised, QueueLengths, SchedPolicy, UnitPlace};
use crate::graph::TaskNode;
use crate::kernel::ArgMeta;
use crate::perfmodel::{Footprint, PerfModels};
use crate::unit::{NodeId, UnitHealth, UnitId};

/// A task on a unit: its prediction, for the unit's expected free time.
struct Placed {
    unit: UnitId,
    kernel: String,
    fp: Footprint,
    seconds: f64,
    explores: bool,
}

/// The task a unit runs now.
struct Running {
    task: u64,
    kernel: String,
    fp: Footprint,
    predicted: f64,
    since: Instant,
    /// Its elapsed time already entered the model (a large overrun).
    reported: bool,
}

#[derive(Default)]
struct Load {
    /// Predicted seconds of the tasks in the unit's queue.
    queued: f64,
    running: Option<Running>,
}

struct Book {
    loads: Vec<Load>,
    placed: HashMap<u64, Placed>,
    /// (kernel, unit) pairs with an exploratory task in flight.
    exploring: HashSet<(String, UnitId)>,
    /// Smallest footprint size seen per kernel.
    smallest: HashMap<String, f64>,
}

pub(crate) struct Dmda {
    health: Arc<UnitHealth>,
    models: Arc<PerfModels>,
    units: Vec<UnitPlace>,
    by_priority: bool,
    seq: AtomicU64,
    queues: Vec<Mutex<BinaryHeap<Prioritised>>>,
    lengths: Vec<AtomicU64>,
    /// Tasks not yet placed: nothing was known of them when they became
    /// ready.
    unplaced: Mutex<VecDeque<Arc<TaskNode>>>,
    book: Mutex<Book>,
}

/// Ratio of elapsed to predicted time past which a running task's elapsed
/// time enters the model before it ends.
const OVERRUN: f64 = 10.0;

/// Unplaced tasks an idle unit looks through for one it can run.
const SCAN: usize = 64;

impl Dmda {
    pub fn new(
        health: Arc<UnitHealth>,
        models: Arc<PerfModels>,
        places: Vec<UnitPlace>,
        by_priority: bool,
    ) -> Dmda {
        let units = places.len();
        Dmda {
            health,
            models,
            by_priority,
            seq: AtomicU64::new(0),
            queues: (0..units).map(|_| Mutex::new(BinaryHeap::new())).collect(),
            lengths: (0..units).map(|_| AtomicU64::new(0)).collect(),
            unplaced: Mutex::new(VecDeque::new()),
            book: Mutex::new(Book {
                loads: (0..units).map(|_| Load::default()).collect(),
                placed: HashMap::new(),
                exploring: HashSet::new(),
                smallest: HashMap::new(),
            }),
            units: places,
        }
    }

    /// Seconds until `unit` is expected to be free, as of `now`. A running
    /// task far past its prediction corrects the model at once, and the
    /// tasks queued on that unit on the strength of the old model go back
    /// to be placed again.
    fn busy_for(&self, book: &mut Book, unit: UnitId, now: Instant) -> f64 {
        let load = &mut book.loads[unit];
        let mut mispredicted = false;
        let running = match &mut load.running {
            Some(r) => {
                let elapsed = (now - r.since).as_secs_f64();
                if r.predicted > 0.0 && elapsed > OVERRUN * r.predicted && !r.reported {
                    r.reported = true;
                    mispredicted = true;
                    self.models.correct(&r.kernel, unit, &r.fp, elapsed);
                }
                if elapsed <= r.predicted {
                    r.predicted - elapsed
                } else {
                    elapsed
                }
            }
            None => 0.0,
        };
        if mispredicted {
            self.requeue(book, unit);
        }
        running + book.loads[unit].queued
    }

    /// Moves the tasks queued on `unit` back to the unplaced queue.
    fn requeue(&self, book: &mut Book, unit: UnitId) {
        let tasks: Vec<Arc<TaskNode>> = {
            let mut q = self.queues[unit].lock();
            self.lengths[unit].store(0, Ordering::Relaxed);
            std::mem::take(&mut *q)
                .into_sorted_vec()
                .into_iter()
                .rev()
                .map(|p| p.task)
                .collect()
        };
        for t in &tasks {
            forget(book, t.id, true);
        }
        self.unplaced.lock().extend(tasks);
    }

    /// Predicted seconds to bring the task's inputs to `node`.
    fn transfer_time(&self, task: &TaskNode, node: NodeId) -> f64 {
        task.accesses
            .iter()
            .filter(|a| a.mode.reads())
            .map(|a| {
                let t = &a.tensor.inner;
                let reps = t.replicas.lock();
                if reps.state(node).is_valid() {
                    0.0
                } else {
                    reps.valid_source()
                        .map_or(0.0, |src| self.models.transfer_time(src, node, t.nbytes()))
                }
            })
            .sum()
    }

    /// Where `task` should go: the unit it is expected to finish first on,
    /// with its predicted run time, or a unit to explore (a pair never
    /// run); `None` when nothing is known and no pair may be explored now.
    fn decide(
        &self,
        book: &mut Book,
        task: &TaskNode,
        kernel: &str,
        fp: &Footprint,
    ) -> Option<(UnitId, f64, bool)> {
        let now = Instant::now();
        let smallest = book.smallest.get(kernel).copied().unwrap_or(fp.size);
        let mut best: Option<(UnitId, f64, f64)> = None;
        let mut explore: Option<UnitId> = None;
        for unit in task.eligible.iter().filter(|&u| !self.health.is_down(u)) {
            match self.models.predict(kernel, unit, fp) {
                Some(run) => {
                    let finish = self.busy_for(book, unit, now)
                        + self.transfer_time(task, self.units[unit].node)
                        + run;
                    if best.is_none_or(|b| finish < b.1) {
                        best = Some((unit, finish, run));
                    }
                }
                None => {
                    let in_flight = book.exploring.contains(&(kernel.to_string(), unit));
                    if explore.is_none() && !in_flight && fp.size <= 2.0 * smallest {
                        explore = Some(unit);
                    }
                }
            }
        }
        if let Some((unit, _, run)) = best {
            // A unit emulated on the host's cores competes with the CPU
            // units for them: it is no added capacity, so it gets the task
            // only when it runs it faster than a CPU unit would.
            let place = self.units[unit];
            if place.host_cores && !place.is_cpu {
                if let Some(cpu) = self.best_cpu_unit(book, task, kernel, fp, run, now) {
                    best = Some(cpu);
                }
            }
        }
        match (explore, best) {
            (Some(unit), _) => Some((unit, 0.0, true)),
            (None, Some((unit, _, run))) => Some((unit, run, false)),
            (None, None) => None,
        }
    }

    /// Among the CPU units in service that run `task` in at most `than`
    /// seconds (as fast as the emulated unit `decide` picked), the one
    /// expected to finish it first, with its finish and run times.
    fn best_cpu_unit(
        &self,
        book: &mut Book,
        task: &TaskNode,
        kernel: &str,
        fp: &Footprint,
        than: f64,
        now: Instant,
    ) -> Option<(UnitId, f64, f64)> {
        let mut best: Option<(UnitId, f64, f64)> = None;
        for unit in task
            .eligible
            .iter()
            .filter(|&u| self.units[u].is_cpu && !self.health.is_down(u))
        {
            let Some(run) = self.models.predict(kernel, unit, fp) else {
                continue;
            };
            if run > than {
                continue;
            }
            let finish = self.busy_for(book, unit, now)
                + self.transfer_time(task, self.units[unit].node)
                + run;
            if best.is_none_or(|b| finish < b.1) {
                best = Some((unit, finish, run));
            }
        }
        best
    }

    /// Books `task` on `unit` with its prediction.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &self,
        book: &mut Book,
        task: &TaskNode,
        unit: UnitId,
        kernel: String,
        fp: Footprint,
        seconds: f64,
        explores: bool,
    ) {
        book.loads[unit].queued += seconds;
        book.placed.insert(
            task.id,
            Placed {
                unit,
                kernel,
                fp,
                seconds,
                explores,
            },
        );
    }

    /// A task from the shared queue for an idle `unit`: decided again now
    /// that more may be known; one that another unit should run moves to
    /// that unit's queue.
    fn take_unplaced(&self, unit: UnitId) -> Option<Arc<TaskNode>> {
        loop {
            let task = {
                let mut q = self.unplaced.lock();
                let pos = q
                    .iter()
                    .take(SCAN)
                    .position(|t| t.eligible.contains(unit))?;
                q.remove(pos)?
            };
            let kernel = task.kernel.name().to_string();
            let fp = footprint(&task);
            let mut book = self.book.lock();
            match self.decide(&mut book, &task, &kernel, &fp) {
                Some((there, seconds, explores)) if there != unit => {
                    if explores {
                        book.exploring.insert((kernel.clone(), there));
                    }
                    self.place(&mut book, &task, there, kernel, fp, seconds, explores);
                    drop(book);
                    self.enqueue(there, task);
                }
                decided => {
                    let (seconds, explores) = decided.map_or((0.0, false), |d| (d.1, d.2));
                    if explores {
                        book.exploring.insert((kernel.clone(), unit));
                    }
                    self.place(&mut book, &task, unit, kernel, fp, seconds, explores);
                    return Some(task);
                }
            }
        }
    }

    fn enqueue(&self, unit: UnitId, task: Arc<TaskNode>) {
        let priority = if self.by_priority { task.priority } else { 0 };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut q = self.queues[unit].lock();
        q.push(Prioritised {
            priority,
            seq,
            task,
        });
        self.lengths[unit].store(q.len() as u64, Ordering::Relaxed);
    }
}

/// Drops what the book holds of a task that finished or left its queue
/// (`queued`: its prediction still counts in its unit's queue).
fn forget(book: &mut Book, task: u64, queued: bool) {
    if let Some(p) = book.placed.remove(&task) {
        if queued {
            let load = &mut book.loads[p.unit];
            load.queued = (load.queued - p.seconds).max(0.0);
        }
        if p.explores {
            book.exploring.remove(&(p.kernel, p.unit));
        }
    }
}

/// The footprint of a task's arguments.
pub(crate) fn footprint(task: &TaskNode) -> Footprint {
    let metas: SmallVec<[ArgMeta<'_>; 4]> = task
        .accesses
        .iter()
        .map(|a| ArgMeta {
            shape: &a.tensor.inner.shape,
            dtype: a.tensor.inner.dtype,
            mode: a.mode,
        })
        .collect();
    Footprint::of(&metas, task.kernel.bytes(&metas))
}

impl SchedPolicy for Dmda {
    fn push(&self, task: Arc<TaskNode>, _from: Option<UnitId>) -> Option<UnitId> {
        let kernel = task.kernel.name().to_string();
        let fp = footprint(&task);
        let mut book = self.book.lock();
        book.smallest
            .entry(kernel.clone())
            .and_modify(|s| *s = s.min(fp.size))
            .or_insert(fp.size);
        let Some((unit, seconds, explores)) = self.decide(&mut book, &task, &kernel, &fp) else {
            // Nothing known and every unknown pair busy exploring: the
            // first capable unit to be idle takes it (and decides again).
            drop(book);
            self.unplaced.lock().push_back(task);
            return None;
        };
        if explores {
            book.exploring.insert((kernel.clone(), unit));
        }
        self.place(&mut book, &task, unit, kernel, fp, seconds, explores);
        drop(book);
        self.enqueue(unit, task);
        Some(unit)
    }

    fn pop(&self, unit: UnitId) -> Option<Arc<TaskNode>> {
        let own = {
            let mut q = self.queues[unit].lock();
            let t = q.pop().map(|p| p.task);
            self.lengths[unit].store(q.len() as u64, Ordering::Relaxed);
            t
        };
        let task = match own {
            Some(t) => t,
            None => self.take_unplaced(unit)?,
        };
        let mut book = self.book.lock();
        let running = match book.placed.get(&task.id) {
            Some(p) => Running {
                task: task.id,
                kernel: p.kernel.clone(),
                fp: p.fp,
                predicted: p.seconds,
                since: Instant::now(),
                reported: false,
            },
            None => return Some(task),
        };
        let load = &mut book.loads[unit];
        load.queued = (load.queued - running.predicted).max(0.0);
        load.running = Some(running);
        Some(task)
    }

    fn finished(&self, unit: UnitId, task: &TaskNode) {
        let mut book = self.book.lock();
        forget(&mut book, task.id, false);
        if book.loads[unit]
            .running
            .as_ref()
            .is_some_and(|r| r.task == task.id)
        {
            book.loads[unit].running = None;
        }
    }

    fn drain(&self, unit: UnitId) -> Vec<Arc<TaskNode>> {
        let mut gone: Vec<Arc<TaskNode>> = {
            let mut q = self.queues[unit].lock();
            let all = std::mem::take(&mut *q)
                .into_iter()
                .map(|p| p.task)
                .collect();
            self.lengths[unit].store(0, Ordering::Relaxed);
            all
        };
        // Tasks queued on other units that no unit in service can run.
        for (u, q) in self.queues.iter().enumerate() {
            if u == unit {
                continue;
            }
            let mut q = q.lock();
            let (stranded, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *q)
                .into_iter()
                .partition(|p| super::stranded(&p.task, &self.health));
            q.extend(kept);
            self.lengths[u].store(q.len() as u64, Ordering::Relaxed);
            gone.extend(stranded.into_iter().map(|p| p.task));
        }
        {
            let mut q = self.unplaced.lock();
            let (stranded, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut *q)
                .into_iter()
                .partition(|t| super::stranded(t, &self.health));
            *q = kept;
            gone.extend(stranded);
        }
        let mut book = self.book.lock();
        for t in &gone {
            forget(&mut book, t.id, true);
        }
        gone
    }

    fn queued(&self, units: usize) -> QueueLengths {
        QueueLengths {
            per_unit: (0..units)
                .map(|u| {
                    self.lengths
                        .get(u)
                        .map_or(0, |l| l.load(Ordering::Relaxed) as usize)
                })
                .collect(),
            shared: self.unplaced.lock().len(),
        }
    }
}
