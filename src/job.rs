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

use std::sync::Arc;

use crate::graph::JobState;

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
            state: Arc::new(JobState::new()),
        }
    }

    /// A unique id within the process.
    pub fn id(&self) -> u64 {
        self.state.id()
    }

    /// Whether [`Job::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Drops every task of the job that has not started and refuses later
    /// submissions to it. Returns how many tasks were dropped now; running
    /// tasks finish and keep their results.
    pub fn cancel(&self) -> usize {
        self.state.cancel()
    }
}

impl Default for Job {
    fn default() -> Job {
        Job::new()
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job#{}", self.state.id())?;
        if self.is_cancelled() {
            write!(f, " (cancelled)")?;
        }
        Ok(())
    }
}
