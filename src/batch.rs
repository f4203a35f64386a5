//! A batch: tasks recorded before any runs, so the whole graph is known
//! and each task can get a priority from its distance to the end of the
//! graph (HEFT's upward rank, the "bottom level"): its own predicted time
//! plus the longest chain of predicted times after it. The critical path of
//! a tiled Cholesky or LU then runs first without hand-set priorities;
//! `dmdas` orders each unit's queue by them, the other policies take
//! prioritised tasks first.
//!
//! A task's weight is its predicted run time on the fastest unit that has
//! a model of it (`crate::perfmodel`); without one, its FLOPs at 10
//! GFLOP/s, and 1 microsecond for a kernel that counts none. Dependencies
//! are the runtime's own: read after write, write after read, write after
//! write, on the tensors the tasks access.

use smallvec::SmallVec;

use crate::dag;
use crate::error::Result;
use crate::kernel::{ArgMeta, Kernel};
use crate::perfmodel::Footprint;
use crate::runtime::{Runtime, Task, TaskOptions};
use crate::tensor::Access;

/// Weight of a task no model knows, per FLOP (10 GFLOP/s).
const SECONDS_PER_FLOP: f64 = 1e-10;
/// Weight of a task no model knows that counts no FLOPs.
const UNKNOWN_SECONDS: f64 = 1e-6;

struct Recorded {
    kernel: Kernel,
    accesses: Vec<Access>,
    options: TaskOptions,
}

/// Tasks recorded with [`Batch::add`], submitted together by
/// [`Batch::submit`] with priorities from their bottom levels.
///
/// ```
/// use xpu::{DType, Kernel, Runtime, UnaryOp};
/// let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
/// let x = rt.tensor(&[4], vec![-1.0f32, 2.0, -3.0, 4.0])?;
/// let (a, b, side) = (rt.empty(&[4], DType::F32), rt.empty(&[4], DType::F32), rt.empty(&[4], DType::F32));
/// let relu = Kernel::Unary(UnaryOp::Relu);
/// let mut batch = rt.batch();
/// batch.add(&relu, &[x.read(), side.write()]);          // ends the graph
/// batch.add(&relu, &[x.read(), a.write()]);             // then two more tasks
/// batch.add(&Kernel::Unary(UnaryOp::Exp), &[a.read(), b.write()]);
/// let ranks = batch.priorities();
/// assert!(ranks[1] > ranks[0] && ranks[1] > ranks[2]);   // the long chain first
/// let tasks = batch.submit()?;
/// assert_eq!(tasks.len(), 3);
/// assert_eq!(rt.read::<f32>(&b)?[1], 2f32.exp());
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct Batch<'rt> {
    rt: &'rt Runtime,
    tasks: Vec<Recorded>,
}

impl<'rt> Batch<'rt> {
    pub(crate) fn new(rt: &'rt Runtime) -> Batch<'rt> {
        Batch {
            rt,
            tasks: Vec::new(),
        }
    }

    /// Records a task with default options.
    pub fn add(&mut self, kernel: &Kernel, accesses: &[Access]) {
        self.add_with(kernel, accesses, TaskOptions::default());
    }

    /// Records a task; its `priority` is replaced by its rank at submission.
    pub fn add_with(&mut self, kernel: &Kernel, accesses: &[Access], options: TaskOptions) {
        self.tasks.push(Recorded {
            kernel: kernel.clone(),
            accesses: accesses.to_vec(),
            options,
        });
    }

    /// Tasks recorded.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Each recorded task's priority: its bottom level scaled to
    /// 1..=1,000,000 (the longest remaining chain highest).
    pub fn priorities(&self) -> Vec<i32> {
        let weights: Vec<f64> = self.tasks.iter().map(|t| self.weight(t)).collect();
        let successors = dag::successors(self.tasks.len(), |i| {
            self.tasks[i]
                .accesses
                .iter()
                .map(|a| (a.tensor.id(), a.mode))
        });
        dag::priorities(&dag::bottom_levels(&weights, &successors))
    }

    /// Submits every recorded task, in the order recorded, each with its
    /// rank as priority.
    pub fn submit(self) -> Result<Vec<Task>> {
        let priorities = self.priorities();
        self.tasks
            .into_iter()
            .zip(priorities)
            .map(|(t, p)| {
                let options = t.options.priority(p);
                self.rt.submit_with(&t.kernel, &t.accesses, options)
            })
            .collect()
    }

    /// Predicted seconds of a task on its fastest modelled unit.
    fn weight(&self, t: &Recorded) -> f64 {
        let metas: SmallVec<[ArgMeta<'_>; 4]> = t.accesses.iter().map(Access::meta).collect();
        let fp = Footprint::of(&t.kernel, &metas);
        let models = self.rt.perf_models();
        let predicted = (0..self.rt.units().len())
            .filter_map(|u| models.predict(t.kernel.name(), u, &fp))
            .fold(f64::INFINITY, f64::min);
        if predicted.is_finite() {
            return predicted;
        }
        let shapes: SmallVec<[&[usize]; 4]> = metas.iter().map(|m| m.shape).collect();
        match t.kernel.flops(&shapes) {
            f if f > 0.0 => f * SECONDS_PER_FLOP,
            _ => UNKNOWN_SECONDS,
        }
    }
}
