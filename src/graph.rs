//! Tasks and their implicit dependencies.
//!
//! Each tensor keeps its own small dependency state (its last writer and the
//! readers since); `submit` touches only the tensors a task names. A task
//! carries an atomic count of unfinished predecessors and a list of
//! successors; the predecessor that drops a successor's count to zero makes
//! it ready. Dependency state holds tasks weakly, so a finished task is freed
//! as soon as nothing else needs it.
//!
//! Failure travels with data only. A task that fails (or does not run)
//! poisons the tensors it writes; the next successful writer clears the
//! poison. A task fails as a dependency failure only if it reads a poisoned
//! tensor, or if a task it names in
//! [`TaskOptions::after`](crate::TaskOptions::after) failed: an explicit
//! edge says "needs that one to have happened", so it passes the failure on.
//! Write-after-read and write-after-write edges only order tasks. Since a
//! reader always runs after the writer it reads and before the next one,
//! the outcome never depends on how fast tasks ran.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::perfmodel::FootprintCell;
use crate::tensor::Access;
use crate::unit::UnitId;

/// A set of units, as a bitmask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnitSet(SmallVec<[u64; 2]>);

impl FromIterator<UnitId> for UnitSet {
    fn from_iter<I: IntoIterator<Item = UnitId>>(units: I) -> Self {
        let mut set = UnitSet::default();
        units.into_iter().for_each(|u| set.insert(u));
        set
    }
}

impl UnitSet {
    pub fn insert(&mut self, unit: UnitId) {
        let (w, b) = (unit / 64, unit % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }
    pub fn remove(&mut self, unit: UnitId) {
        if let Some(w) = self.0.get_mut(unit / 64) {
            *w &= !(1 << (unit % 64));
        }
    }
    pub fn contains(&self, unit: UnitId) -> bool {
        self.0
            .get(unit / 64)
            .is_some_and(|w| w & (1 << (unit % 64)) != 0)
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Whether every unit of `other` is in the set.
    pub fn contains_all(&self, other: &UnitSet) -> bool {
        other
            .0
            .iter()
            .enumerate()
            .all(|(i, &w)| self.0.get(i).copied().unwrap_or(0) & w == w)
    }
    /// The units in the set, lowest first (one step per unit, not per bit).
    pub fn iter(&self) -> impl Iterator<Item = UnitId> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + b
                })
            })
        })
    }
}

/// Why a task did not run: the first task that failed upstream, and its error.
pub(crate) type Failure = (u64, Error);

/// A failure recorded rarely and checked on every task: an atomic flag
/// keeps the check off the lock when there is none, and the failure is
/// boxed so that every task does not carry an error's room.
#[derive(Default)]
pub(crate) struct FailureSlot {
    present: AtomicBool,
    value: Mutex<Option<Box<Failure>>>,
}

impl FailureSlot {
    /// The recorded failure, if any.
    pub fn get(&self) -> Option<Failure> {
        if !self.present.load(Ordering::Acquire) {
            return None;
        }
        self.value.lock().as_deref().cloned()
    }

    /// Records `failure` unless one of an earlier task is recorded: of
    /// several failed predecessors the earliest one is named, whichever
    /// finished first.
    pub fn set_earliest(&self, failure: &Failure) {
        let mut v = self.value.lock();
        if v.as_deref().is_none_or(|(task, _)| failure.0 < *task) {
            *v = Some(Box::new(failure.clone()));
            self.present.store(true, Ordering::Release);
        }
    }

    /// Replaces the recorded failure (`None` clears it).
    pub fn replace(&self, failure: Option<Failure>) {
        if failure.is_none() && !self.present.load(Ordering::Acquire) {
            return;
        }
        let mut v = self.value.lock();
        self.present.store(failure.is_some(), Ordering::Release);
        *v = failure.map(Box::new);
    }
}

/// The state a job's tasks share (the public handle is [`crate::Job`]).
pub(crate) struct JobState {
    id: u64,
    cancelled: AtomicBool,
    /// The job's tasks, weakly: a finished task is freed as usual.
    tasks: Mutex<Vec<Weak<TaskNode>>>,
}

impl JobState {
    pub fn new() -> JobState {
        JobState {
            id: NEXT_JOB.fetch_add(1, Ordering::Relaxed),
            cancelled: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Cancels every task not started and refuses later ones; returns how
    /// many were dropped now.
    pub fn cancel(&self) -> usize {
        let tasks = {
            let mut tasks = self.tasks.lock();
            self.cancelled.store(true, Ordering::Release);
            std::mem::take(&mut *tasks)
        };
        tasks
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|t| t.cancel())
            .count()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Adds a task; refused once the job is cancelled.
    pub fn enroll(&self, task: &Arc<TaskNode>) -> Result<()> {
        let mut tasks = self.tasks.lock();
        if self.is_cancelled() {
            return Err(Error::Cancelled {
                task: task.id,
                cancelled_task: task.id,
            });
        }
        // Forget finished tasks now and then, so a long job stays small.
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| t.upgrade().is_some_and(|t| !t.is_done()));
        }
        tasks.push(Arc::downgrade(task));
        Ok(())
    }
}

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// A successor, and whether a failure of its predecessor fails it too
/// (explicit edges) or only orders it (data edges: poison carries those).
struct Edge {
    to: Arc<TaskNode>,
    passes_failure: bool,
}

struct Successors {
    done: bool,
    list: SmallVec<[Edge; 4]>,
}

/// Where a task is in its life: waiting (not yet taken by a worker),
/// running, or cancelled before it started.
const WAITING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

pub(crate) struct TaskNode {
    pub id: u64,
    pub kernel: Kernel,
    pub accesses: SmallVec<[Access; 4]>,
    pub priority: i32,
    pub eligible: UnitSet,
    /// Unfinished predecessors, plus one while `submit` is still linking.
    pending: AtomicUsize,
    successors: Mutex<Successors>,
    /// Set by a predecessor named by an explicit edge that failed.
    pub upstream_failure: FailureSlot,
    /// WAITING, RUNNING or CANCELLED.
    run_state: AtomicU8,
    /// The job the task belongs to, if any.
    pub job: Option<Arc<JobState>>,
    /// How it ended, once it has (an error boxed: tasks rarely fail, and
    /// every task would carry its room).
    pub outcome: OnceLock<Result<(), Box<Error>>>,
    /// A task someone is blocked on: its completion must wake them.
    pub watched: AtomicBool,
    /// Not scheduled: a thread waits for it to become ready (a read-back,
    /// an external task).
    pub inline: bool,
    /// When it was submitted and became ready (readings of the runtime's
    /// clock; 0 when profiling is off), and which predecessor's completion
    /// made it ready (0: none).
    pub submitted_at: u64,
    pub ready_at: AtomicU64,
    pub released_by: AtomicU64,
    /// What its run time depends on, once a policy or worker asked.
    pub footprint: FootprintCell,
}

/// How a scheduled task is to be placed: its priority, the units that may
/// run it, and the job it belongs to.
pub(crate) struct Dispatch {
    pub priority: i32,
    pub eligible: UnitSet,
    pub job: Option<Arc<JobState>>,
}

impl TaskNode {
    /// A task for the units; `submitted_at` is a clock reading.
    pub fn scheduled(
        id: u64,
        kernel: Kernel,
        accesses: SmallVec<[Access; 4]>,
        dispatch: Dispatch,
        submitted_at: u64,
    ) -> TaskNode {
        TaskNode::new(id, kernel, accesses, dispatch, false, submitted_at)
    }

    /// A task with one access that no unit runs: a thread waits for it
    /// to become ready and does the work itself (a read-back, an
    /// [`External`](crate::External)).
    pub fn inline(id: u64, access: Access) -> TaskNode {
        let dispatch = Dispatch {
            priority: 0,
            eligible: UnitSet::default(),
            job: None,
        };
        let accesses = std::iter::once(access).collect();
        TaskNode::new(id, Kernel::Noop, accesses, dispatch, true, 0)
    }

    fn new(
        id: u64,
        kernel: Kernel,
        accesses: SmallVec<[Access; 4]>,
        dispatch: Dispatch,
        inline: bool,
        submitted_at: u64,
    ) -> TaskNode {
        let Dispatch {
            priority,
            eligible,
            job,
        } = dispatch;
        TaskNode {
            id,
            kernel,
            accesses,
            priority,
            eligible,
            pending: AtomicUsize::new(1),
            successors: Mutex::new(Successors {
                done: false,
                list: SmallVec::new(),
            }),
            upstream_failure: FailureSlot::default(),
            run_state: AtomicU8::new(WAITING),
            job,
            outcome: OnceLock::new(),
            watched: AtomicBool::new(false),
            inline,
            submitted_at,
            ready_at: AtomicU64::new(submitted_at),
            released_by: AtomicU64::new(0),
            footprint: FootprintCell::default(),
        }
    }

    /// True once all predecessors finished (for inline tasks).
    pub fn is_ready(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// True once the task finished, successfully or not.
    pub fn is_done(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// Marks the task cancelled unless a worker already took it or it
    /// ended; true if it will not run.
    pub fn cancel(&self) -> bool {
        if self.is_done() {
            return false;
        }
        match self.run_state.compare_exchange(
            WAITING,
            CANCELLED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(state) => state == CANCELLED,
        }
    }

    /// Not yet taken by a worker, nor cancelled.
    pub fn is_waiting(&self) -> bool {
        self.run_state.load(Ordering::Acquire) == WAITING
    }

    /// Called by the worker that took the task: true if it may run, false
    /// if it (or its job) was cancelled first.
    pub fn start(&self) -> bool {
        if self.job.as_ref().is_some_and(|j| j.is_cancelled()) {
            self.cancel();
        }
        self.run_state
            .compare_exchange(WAITING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// One tensor's dependency state: its last writer and the readers since.
#[derive(Default)]
pub(crate) struct DepState {
    last_writer: Option<Weak<TaskNode>>,
    readers: SmallVec<[Weak<TaskNode>; 4]>,
}

impl DepState {
    /// Whether a task was submitted to write the tensor and may not have
    /// finished (a finished one is forgotten).
    pub fn has_writer(&self) -> bool {
        self.last_writer
            .as_ref()
            .is_some_and(|w| w.upgrade().is_some())
    }
}

/// Makes `succ` wait for `pred` unless `pred` already finished. An
/// explicit edge to a predecessor that already failed fails `succ` at once.
fn link(pred: &Arc<TaskNode>, succ: &Arc<TaskNode>, passes_failure: bool) {
    if Arc::ptr_eq(pred, succ) {
        return;
    }
    let mut s = pred.successors.lock();
    if !s.done {
        succ.pending.fetch_add(1, Ordering::Relaxed);
        s.list.push(Edge {
            to: succ.clone(),
            passes_failure,
        });
    } else if passes_failure {
        if let Some(f) = pred
            .outcome
            .get()
            .and_then(|o| failure_of(pred.id, o.as_ref().map_err(|e| &**e)))
        {
            succ.upstream_failure.set_earliest(&f);
        }
    }
}

/// Adds the edges that sequential consistency requires for `task` (read
/// after write, write after read, write after write) and the explicit
/// ones. The task stays blocked until [`release_submission`] is called.
pub(crate) fn add_dependencies(task: &Arc<TaskNode>, explicit: &[Arc<TaskNode>]) {
    for access in &task.accesses {
        let mut deps = access.tensor.inner.deps.lock();
        if access.mode.writes() {
            let mut had_readers = false;
            for r in deps.readers.drain(..) {
                if let Some(r) = r.upgrade() {
                    had_readers = true;
                    link(&r, task, false);
                }
            }
            if !had_readers {
                if let Some(w) = deps.last_writer.as_ref().and_then(Weak::upgrade) {
                    link(&w, task, false);
                }
            }
            deps.last_writer = Some(Arc::downgrade(task));
        } else {
            if let Some(w) = deps.last_writer.as_ref().and_then(Weak::upgrade) {
                link(&w, task, false);
            }
            if deps.readers.len() >= 16 {
                deps.readers
                    .retain(|r| r.upgrade().is_some_and(|r| !r.is_done()));
            }
            deps.readers.push(Arc::downgrade(task));
        }
    }
    for pred in explicit {
        link(pred, task, true);
    }
}

/// Makes `task` wait for each of `preds` that has not finished, as a
/// writer waits for the readers before it: their failures do not pass.
pub(crate) fn add_order(task: &Arc<TaskNode>, preds: &[Arc<TaskNode>]) {
    for pred in preds {
        link(pred, task, false);
    }
}

/// Drops the submission's own hold on `task`; true if it is now ready.
pub(crate) fn release_submission(task: &TaskNode) -> bool {
    task.pending.fetch_sub(1, Ordering::AcqRel) == 1
}

/// The failure that task `id`'s outcome passes on: the first failed (or
/// cancelled) task upstream and its error, or `id` itself with its own error.
pub(crate) fn failure_of(id: u64, outcome: Result<&(), &Error>) -> Option<Failure> {
    match outcome {
        Ok(()) => None,
        Err(Error::DependencyFailed {
            failed_task, cause, ..
        }) => Some((*failed_task, (**cause).clone())),
        Err(Error::Cancelled { cancelled_task, .. }) => Some((
            *cancelled_task,
            Error::Cancelled {
                task: *cancelled_task,
                cancelled_task: *cancelled_task,
            },
        )),
        Err(e) => Some((id, e.clone())),
    }
}

/// The error `task` ends with without running: a failed explicit
/// predecessor, or an input whose last writer failed or did not run. Of
/// several, the earliest failed task is named, so the error never depends
/// on which finished first.
pub(crate) fn inherited_failure(task: &TaskNode) -> Option<Error> {
    let (failed_task, cause) = task
        .accesses
        .iter()
        .filter(|a| a.mode.reads())
        .filter_map(|a| a.tensor.inner.poison.get())
        .chain(task.upstream_failure.get())
        .min_by_key(|(failed_task, _)| *failed_task)?;
    Some(match cause {
        Error::Cancelled { .. } => Error::Cancelled {
            task: task.id,
            cancelled_task: failed_task,
        },
        cause => Error::DependencyFailed {
            task: task.id,
            failed_task,
            cause: Box::new(cause),
        },
    })
}

/// Records `task`'s outcome and returns the successors that became ready.
/// A failure is passed on along explicit edges only; data edges carry it
/// through the poison of the tensors the task writes (set by the caller).
pub(crate) fn finish(task: &TaskNode, outcome: Result<(), Error>) -> SmallVec<[Arc<TaskNode>; 4]> {
    let failure = failure_of(task.id, outcome.as_ref());
    let _ = task.outcome.set(outcome.map_err(Box::new));
    release(task, failure.as_ref())
}

/// Releases the successors of `task`, whose outcome is set: `failure`
/// (its failure, if it failed) goes to those that take it; returns those
/// now ready.
pub(crate) fn release(task: &TaskNode, failure: Option<&Failure>) -> SmallVec<[Arc<TaskNode>; 4]> {
    let list = {
        let mut s = task.successors.lock();
        s.done = true;
        std::mem::take(&mut s.list)
    };
    let mut ready = SmallVec::new();
    for edge in list {
        if let (true, Some(f)) = (edge.passes_failure, failure) {
            edge.to.upstream_failure.set_earliest(f);
        }
        if edge.to.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            ready.push(edge.to);
        }
    }
    ready
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_set_spans_words() {
        let mut s = UnitSet::default();
        assert!(s.is_empty());
        for u in [0, 5, 63, 64, 130] {
            s.insert(u);
        }
        assert!(s.contains(64) && s.contains(130) && !s.contains(1) && !s.contains(200));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 5, 63, 64, 130]);
        s.remove(64);
        s.remove(200);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 5, 63, 130]);
        // Collected from units, in any order: the same set.
        assert_eq!([130, 0, 63, 5].into_iter().collect::<UnitSet>(), s);
        assert!(s.contains_all(&[5, 130].into_iter().collect()));
        assert!(!s.contains_all(&[5, 64].into_iter().collect()));
    }
}
