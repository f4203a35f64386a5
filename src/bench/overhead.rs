//! The runtime's own cost per task, measured as StarPU's `overhead.c` does:
//! empty tasks submitted, then all waited for, timed from the first submission.

use std::time::Instant;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::runtime::Runtime;

/// Which dependency pattern the empty tasks have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OverheadMode {
    /// No data: independent tasks.
    Indep,
    /// One tensor accessed read-write by every task: a dependency chain.
    Chain,
    /// 1,000 tensors, task `i` read-writes tensor `i % 1000`.
    Spread,
}

impl OverheadMode {
    /// Parses `indep`, `chain` or `spread`.
    pub fn parse(s: &str) -> Result<OverheadMode> {
        match s {
            "indep" => Ok(OverheadMode::Indep),
            "chain" => Ok(OverheadMode::Chain),
            "spread" => Ok(OverheadMode::Spread),
            other => Err(Error::Config(format!(
                "unknown overhead mode `{other}` (indep, chain, spread)"
            ))),
        }
    }
}

/// The outcome of an overhead run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OverheadRun {
    pub mode: OverheadMode,
    pub tasks: usize,
    pub seconds: f64,
    pub us_per_task: f64,
    pub tasks_per_second: f64,
}

/// Submits `tasks` empty tasks in `mode` and waits for all of them.
///
/// ```
/// use xpu::bench::{overhead, OverheadMode};
/// let rt = xpu::Runtime::builder().build()?;
/// let run = overhead(&rt, OverheadMode::Chain, 1000)?;
/// assert_eq!(run.tasks, 1000);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn overhead(rt: &Runtime, mode: OverheadMode, tasks: usize) -> Result<OverheadRun> {
    let handles = match mode {
        OverheadMode::Indep => Vec::new(),
        OverheadMode::Chain => vec![rt.zeros(&[16], DType::F32)?],
        OverheadMode::Spread => (0..1000)
            .map(|_| rt.zeros(&[16], DType::F32))
            .collect::<Result<_>>()?,
    };
    let noop = Kernel::Noop;
    let start = Instant::now();
    for i in 0..tasks {
        if handles.is_empty() {
            rt.submit(&noop, &[])?;
        } else {
            rt.submit(&noop, &[handles[i % handles.len()].rw()])?;
        }
    }
    rt.wait_all();
    let seconds = start.elapsed().as_secs_f64();
    Ok(OverheadRun {
        mode,
        tasks,
        seconds,
        us_per_task: seconds * 1e6 / tasks.max(1) as f64,
        tasks_per_second: tasks as f64 / seconds,
    })
}
