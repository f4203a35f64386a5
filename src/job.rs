//! Jobs: groups of tasks that are cancelled together.
//!
//! A task joins a job through [`TaskOptions::job`](crate::TaskOptions::job).
//! Cancelling the job drops each of its tasks that no worker has taken yet;
//! tasks already running finish and keep their results. Tasks that read what
//! a dropped task should have written fail with [`Error::Cancelled`]; later
//! submissions to a cancelled job are refused.
//!
//! A dropped task stays in the graph until its own predecessors finish, so
//! that the tasks ordered after it still run in submission order; only then
//! does it end, without running, and release them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::graph::TaskNode;

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// The state a job's tasks share.
pub(crate) struct JobState {
    id: u64,
    cancelled: AtomicBool,
    /// The job's tasks, weakly: a finished task is freed as usual.
    tasks: Mutex<Vec<Weak<TaskNode>>>,
}

impl JobState {
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

/// A group of tasks cancelled together.
///
/// ```
/// use xpu::{DType, Job, Kernel, Runtime, TaskOptions, UnaryOp};
/// let rt = Runtime::builder().build()?;
/// let job = Job::new();
/// let x = rt.tensor(&[4], vec![1.0f32; 4])?;
/// let y = rt.empty(&[4], DType::F32);
/// let gate = rt.submit(&Kernel::Noop, &[])?;
/// rt.wait(&gate)?;
/// let t = rt.submit_with(
///     &Kernel::Unary(UnaryOp::Exp),
///     &[x.read(), y.write()],
///     TaskOptions::default().job(&job),
/// )?;
/// job.cancel();
/// // Either it ran before the cancel, or it was dropped.
/// match rt.wait(&t) {
///     Ok(()) => assert_eq!(rt.read::<f32>(&y)?.len(), 4),
///     Err(e) => assert!(matches!(e, xpu::Error::Cancelled { .. })),
/// }
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Clone)]
pub struct Job {
    pub(crate) state: Arc<JobState>,
}

impl Job {
    /// A new, empty job.
    pub fn new() -> Job {
        Job {
            state: Arc::new(JobState {
                id: NEXT_JOB.fetch_add(1, Ordering::Relaxed),
                cancelled: AtomicBool::new(false),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A unique id within the process.
    pub fn id(&self) -> u64 {
        self.state.id
    }

    /// Whether [`Job::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Drops every task of the job that has not started and refuses later
    /// submissions to it. Returns how many tasks were dropped now; running
    /// tasks finish and keep their results.
    pub fn cancel(&self) -> usize {
        let tasks = {
            let mut tasks = self.state.tasks.lock();
            self.state.cancelled.store(true, Ordering::Release);
            std::mem::take(&mut *tasks)
        };
        tasks
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|t| !t.is_done() && t.cancel())
            .count()
    }
}

impl Default for Job {
    fn default() -> Job {
        Job::new()
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job#{}", self.state.id)?;
        if self.is_cancelled() {
            write!(f, " (cancelled)")?;
        }
        Ok(())
    }
}
