//! The runtime: registering tensors, submitting tasks, waiting, reading
//! results back, cancelling, and shutting down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::sync::Parker;
use parking_lot::{Condvar, Mutex, RwLock};
use smallvec::SmallVec;

use crate::backend::{Backend, BackendStatus};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::external::External;
use crate::graph::{self, Dispatch, JobState, TaskNode, UnitSet};
use crate::job::Job;
use crate::kernel::{ArgMeta, Kernel, KernelDef, Mode};
use crate::memory::{HostBuffer, HostView, NodeStats, ReplicaSet, ReplicaState, Transfer};
use crate::monitor::Monitor;
use crate::partition::Coherence;
use crate::power::{EnergyProfile, EnergyReport, PowerState};
use crate::profile::UnitReport;
use crate::sched::{Policy, QueueLengths};
use crate::tensor::{Access, Tensor, TensorInner};
use crate::trace::{Profile, TraceNode, TraceUnit};
use crate::unit::{Placement, UnitId, UnitInfo, UnitKind};
use crate::worker::{self, Shared};

static NEXT_TENSOR: AtomicU64 = AtomicU64::new(1);

/// A submitted task: wait for it, or name it as a dependency of another.
#[derive(Clone)]
pub struct Task {
    pub(crate) node: Arc<TaskNode>,
}

impl Task {
    /// The task's id.
    pub fn id(&self) -> u64 {
        self.node.id
    }
    /// True once it finished, successfully or not.
    pub fn is_done(&self) -> bool {
        self.node.is_done()
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task#{}({})", self.node.id, self.node.kernel.name())
    }
}

/// Per-task options for [`Runtime::submit_with`].
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// Higher runs first among ready tasks (default 0).
    pub priority: i32,
    /// Where the task may run.
    pub placement: Placement,
    /// Tasks to wait for in addition to the implicit data dependencies.
    /// Unlike data dependencies, these pass a failure on: if one of them
    /// fails (or is cancelled), this task fails without running.
    pub after: Vec<Task>,
    /// The job the task belongs to (cancelled together).
    pub job: Option<Job>,
}

impl TaskOptions {
    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    /// Pins the task to one unit or a kind of unit.
    pub fn on(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }
    /// Adds an explicit dependency: this task runs after `task` and fails
    /// if `task` fails (data dependencies fail a task only through the
    /// tensors it reads).
    pub fn after(mut self, task: &Task) -> Self {
        self.after.push(task.clone());
        self
    }
    /// Puts the task in `job`, to be cancelled with it ([`Job::cancel`]).
    pub fn job(mut self, job: &Job) -> Self {
        self.job = Some(job.clone());
        self
    }
}

/// The xpu runtime: units, their workers, and the memory they share.
///
/// ```
/// use xpu::{Kernel, Runtime};
/// let rt = Runtime::builder().build()?;
/// let a = rt.tensor(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0])?;
/// let b = rt.tensor(&[2, 2], vec![1.0f32, 0.0, 0.0, 1.0])?;
/// let c = rt.zeros(&[2, 2], xpu::DType::F32)?;
/// rt.submit(&Kernel::gemm(), &[a.read(), b.read(), c.write()])?;
/// assert_eq!(rt.read::<f32>(&c)?, vec![1.0, 2.0, 3.0, 4.0]);
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct Runtime {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The user kernels registered so far, by name: what a spec that names
    /// no built-in kernel resolves to.
    registered: RwLock<HashMap<String, Kernel>>,
}

impl Runtime {
    /// Starts one worker per unit over `shared`, each with its parker and
    /// bound to its entry of `cores`, if any.
    pub(crate) fn start(
        shared: Arc<Shared>,
        parkers: Vec<Parker>,
        cores: Vec<Option<usize>>,
    ) -> Result<Runtime> {
        let workers = worker::spawn(&shared, parkers, cores)?;
        Ok(Runtime {
            shared,
            workers: Mutex::new(workers),
            registered: RwLock::default(),
        })
    }

    /// Registers a user kernel ([`Kernel::define`]): builds it, checks its
    /// WGSL with naga, and has every backend build its device programs on
    /// its units now, so that source that does not compile is reported
    /// here, with the compiler's message, and not by the first task. The
    /// kernel then runs on every unit whose backend has an implementation.
    /// A name of a built-in kernel, or of a kernel registered before on
    /// this runtime, is refused; a registered kernel can then also be named
    /// in a spec ([`Runtime::kernel`]).
    ///
    /// ```
    /// use xpu::{Kernel, Launch, Mode, Runtime};
    /// let rt = Runtime::builder().build()?;
    /// let bad = Kernel::define("broken", &[Mode::ReadWrite])
    ///     .cpu(|_| Ok(()))
    ///     .wgsl("fn main( {", "main", |_| Launch::per_element(1, 64));
    /// let err = rt.register(bad).unwrap_err().to_string();
    /// if cfg!(feature = "wgpu") {
    ///     assert!(err.contains("WGSL does not parse"), "{err}");
    /// }
    /// let err = rt.register(Kernel::define("gemm", &[]).cpu(|_| Ok(()))).unwrap_err();
    /// assert!(err.to_string().contains("built-in kernel"));
    /// rt.register(Kernel::define("touch", &[Mode::ReadWrite]).cpu(|_| Ok(())))?;
    /// let err = rt.register(Kernel::define("touch", &[Mode::ReadWrite]).cpu(|_| Ok(()))).unwrap_err();
    /// assert!(err.to_string().contains("already registered"), "{err}");
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn register(&self, def: KernelDef) -> Result<Kernel> {
        let name = def.name().to_string();
        let taken = |what: &str| Error::KernelSpec {
            field: "name".into(),
            what: format!("`{name}` is {what}"),
        };
        const REGISTERED: &str = "already registered on this runtime";
        if crate::kernel::spec_names().contains(&name.as_str()) {
            return Err(taken("the name of a built-in kernel"));
        }
        if self.registered.read().contains_key(&name) {
            return Err(taken(REGISTERED));
        }
        let kernel = def.build()?;
        if let Kernel::Custom(c) = &kernel {
            if let Some(program) = c.wgsl() {
                crate::backend::gpu::validate_wgsl(c.name(), program.source(), program.entry())?;
            }
        }
        let mut prepared: Vec<&Arc<dyn Backend>> = Vec::new();
        for (backend, _) in &self.shared.unit_backends {
            if !prepared.iter().any(|b| Arc::ptr_eq(b, backend)) {
                backend.prepare(&kernel)?;
                prepared.push(backend);
            }
        }
        // Checked again: another thread may have registered the name while
        // this one built the device programs.
        let mut registered = self.registered.write();
        if registered.contains_key(&name) {
            return Err(taken(REGISTERED));
        }
        registered.insert(name.clone(), kernel.clone());
        Ok(kernel)
    }

    /// The kernel a spec names: a built-in one with its parameters
    /// ([`Kernel::from_spec`]), or a user kernel registered on this runtime,
    /// named alone (`{"name": "axpy"}`: its parameters are in its code). How
    /// the job service and the C and Python bindings name kernels.
    ///
    /// ```
    /// use xpu::{Kernel, Mode, Runtime};
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// rt.register(Kernel::define("touch", &[Mode::ReadWrite]).cpu(|_| Ok(())))?;
    /// assert_eq!(rt.kernel(&serde_json::json!({"name": "touch"}))?.name(), "touch");
    /// assert_eq!(rt.kernel(&serde_json::json!({"name": "gemm", "alpha": 2.0}))?.name(), "gemm");
    /// let err = rt.kernel(&serde_json::json!({"name": "nope"})).unwrap_err();
    /// assert!(err.to_string().contains("`nope`"), "{err}");
    /// let err = rt.kernel(&serde_json::json!({"name": "touch", "alpha": 1})).unwrap_err();
    /// assert!(err.to_string().contains("`alpha`"), "{err}");
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn kernel(&self, spec: &serde_json::Value) -> Result<Kernel> {
        let name = spec.get("name").and_then(|n| n.as_str());
        let Some(kernel) = name.and_then(|n| self.registered.read().get(n).cloned()) else {
            return Kernel::from_spec(spec);
        };
        if let Some(extra) = spec
            .as_object()
            .and_then(|m| m.keys().find(|k| k.as_str() != "name"))
        {
            return Err(Error::KernelSpec {
                field: extra.clone(),
                what: format!(
                    "user kernel `{}` takes no parameters in its spec",
                    kernel.name()
                ),
            });
        }
        Ok(kernel)
    }

    /// The performance models placement predicts with (see
    /// [`crate::perfmodel`]): fed by every task when the runtime
    /// [keeps models](Runtime::keeps_models), and by every copy between
    /// memory nodes.
    pub fn perf_models(&self) -> &crate::perfmodel::PerfModels {
        &self.shared.models
    }

    /// A batch: tasks recorded first and submitted together, each with a
    /// priority from its distance to the end of the graph (see
    /// [`Batch`](crate::Batch)).
    pub fn batch(&self) -> crate::Batch<'_> {
        crate::batch::Batch::new(self)
    }

    /// Whether this runtime measures its tasks for the performance models
    /// (its policy uses them, or it keeps a task history).
    pub fn keeps_models(&self) -> bool {
        self.shared.measuring
    }

    /// Every unit, indexed by [`UnitId`](crate::UnitId); [`UnitInfo::is_down`] says
    /// which are out of service now.
    pub fn units(&self) -> &[UnitInfo] {
        &self.shared.units
    }

    /// The first unit of `kind` (the lowest id), if there is one.
    ///
    /// ```
    /// use xpu::UnitKind;
    /// let rt = xpu::Runtime::builder().cpu_units(2).build()?;
    /// assert_eq!(rt.first_unit(UnitKind::Cpu), Some(0));
    /// assert_eq!(rt.first_unit(UnitKind::Custom("dsp")), None);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn first_unit(&self, kind: UnitKind) -> Option<UnitId> {
        self.shared
            .units
            .iter()
            .find(|u| u.kind == kind)
            .map(|u| u.id)
    }

    /// Each backend and whether it came up.
    pub fn backends(&self) -> &[BackendStatus] {
        &self.shared.statuses
    }

    /// The scheduling policy.
    pub fn policy(&self) -> Policy {
        self.shared.policy_kind
    }

    /// A tensor holding a copy of `data`, registered on host memory.
    pub fn tensor<T: Element>(&self, shape: &[usize], data: impl AsRef<[T]>) -> Result<Tensor> {
        let data = data.as_ref();
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(Error::DataLength {
                shape: shape.to_vec(),
                expected,
                got: data.len(),
            });
        }
        self.tensor_from_bytes(shape, T::DTYPE, bytemuck::cast_slice(data))
    }

    /// A tensor of `dtype` holding a copy of `bytes` (its elements in
    /// row-major order, native byte order): for callers that hold untyped
    /// buffers, such as the C and Python bindings.
    ///
    /// ```
    /// use xpu::{DType, Runtime};
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// let t = rt.tensor_from_bytes(&[2], DType::F32, bytemuck::cast_slice(&[1.5f32, 2.5]))?;
    /// assert_eq!(rt.read::<f32>(&t)?, vec![1.5, 2.5]);
    /// let err = rt.tensor_from_bytes(&[3], DType::F32, &[0u8; 8]).unwrap_err();
    /// assert_eq!(err.to_string(), "tensor of shape [3] f32 needs 12 bytes, got 8");
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn tensor_from_bytes(&self, shape: &[usize], dtype: DType, bytes: &[u8]) -> Result<Tensor> {
        let expected = byte_size(shape, dtype)?;
        if bytes.len() != expected {
            return Err(Error::ByteLength {
                shape: shape.to_vec(),
                dtype,
                expected,
                got: bytes.len(),
            });
        }
        let host = self.shared.memory.host_alloc(Some(bytes), bytes.len())?;
        Ok(self.new_tensor(
            shape,
            dtype,
            ReplicaSet::with_host(host, ReplicaState::Modified),
        ))
    }

    /// A zero-filled tensor on host memory.
    pub fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = byte_size(shape, dtype)?;
        let host = self.shared.memory.host_alloc(None, bytes)?;
        Ok(self.new_tensor(
            shape,
            dtype,
            ReplicaSet::with_host(host, ReplicaState::Modified),
        ))
    }

    /// A tensor with no content yet: its memory is allocated where the first
    /// task writes it. Reading it before a write is an error.
    pub fn empty(&self, shape: &[usize], dtype: DType) -> Tensor {
        self.new_tensor(shape, dtype, ReplicaSet::default())
    }

    /// The runtime's number, which its tensors carry.
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    pub(crate) fn new_tensor(&self, shape: &[usize], dtype: DType, replicas: ReplicaSet) -> Tensor {
        Tensor {
            inner: Arc::new(TensorInner {
                id: NEXT_TENSOR.fetch_add(1, Ordering::Relaxed),
                runtime: self.shared.id,
                shape: shape.to_vec(),
                dtype,
                deps: Default::default(),
                name: Default::default(),
                replicas: Mutex::new(replicas),
                storage_placed: Condvar::new(),
                poison: Default::default(),
                memory: self.shared.memory.clone(),
                family: Default::default(),
            }),
        }
    }

    /// Submits `kernel` on `accesses`; dependencies on earlier tasks that
    /// touch the same tensors are added automatically.
    pub fn submit(&self, kernel: &Kernel, accesses: &[Access]) -> Result<Task> {
        self.submit_inner(kernel, accesses, 0, Placement::Any, &[], None)
    }

    /// [`Runtime::submit`] with a priority, a placement and explicit dependencies.
    ///
    /// ```
    /// use xpu::{Kernel, Placement, Runtime, TaskOptions, UnitKind};
    /// let rt = Runtime::builder().build()?;
    /// let x = rt.tensor(&[4], vec![-1.0f32, 2.0, -3.0, 4.0])?;
    /// let y = rt.zeros(&[4], xpu::DType::F32)?;
    /// let first = rt.submit(&Kernel::Noop, &[])?;
    /// let opts = TaskOptions::default().priority(5).on(Placement::Kind(UnitKind::Cpu)).after(&first);
    /// let t = rt.submit_with(&Kernel::Unary(xpu::UnaryOp::Relu), &[x.read(), y.write()], opts)?;
    /// rt.wait(&t)?;
    /// assert_eq!(rt.read::<f32>(&y)?, vec![0.0, 2.0, 0.0, 4.0]);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn submit_with(
        &self,
        kernel: &Kernel,
        accesses: &[Access],
        opts: TaskOptions,
    ) -> Result<Task> {
        let after: Vec<Arc<TaskNode>> = opts.after.iter().map(|t| t.node.clone()).collect();
        let job = opts.job.map(|j| j.state);
        self.submit_inner(kernel, accesses, opts.priority, opts.placement, &after, job)
    }

    fn submit_inner(
        &self,
        kernel: &Kernel,
        accesses: &[Access],
        priority: i32,
        placement: Placement,
        after: &[Arc<TaskNode>],
        job: Option<Arc<JobState>>,
    ) -> Result<Task> {
        let eligible = self.admit(kernel, accesses, placement)?;
        let mut coherence = Coherence::lock(accesses);
        let readers = match &mut coherence {
            Some(c) => {
                c.prepare(accesses, &mut |k, a| self.submit_copy(k, a, priority))?;
                c.readers_before(accesses)
            }
            None => SmallVec::new(),
        };
        let task = self.link(kernel, accesses, eligible, priority, after, &readers, job)?;
        if let Some(c) = coherence {
            c.commit(accesses, &task.node);
        }
        Ok(task)
    }

    /// A scatter or gather between a partitioned tensor and its parts, on
    /// a CPU unit: where parts share their whole's host memory, the copies
    /// must happen there (see `partition/family.rs`).
    fn submit_copy(&self, kernel: &Kernel, accesses: &[Access], priority: i32) -> Result<()> {
        let eligible = self.admit(kernel, accesses, Placement::Kind(UnitKind::Cpu))?;
        self.link(kernel, accesses, eligible, priority, &[], &[], None)
            .map(drop)
    }

    /// Checks a task before it is planned: the runtime is up, the
    /// accesses fit the kernel; returns the units that may run it.
    fn admit(&self, kernel: &Kernel, accesses: &[Access], placement: Placement) -> Result<UnitSet> {
        if self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(Error::ShutDown);
        }
        self.check_accesses(kernel, accesses)?;
        self.eligible_units(kernel, accesses, placement)
    }

    /// Makes the task and links it into the graph: after its explicit
    /// predecessors `after`, the tasks its accesses depend on, and
    /// `readers` (of tensors sharing elements with one it writes).
    #[allow(clippy::too_many_arguments)]
    fn link(
        &self,
        kernel: &Kernel,
        accesses: &[Access],
        eligible: UnitSet,
        priority: i32,
        after: &[Arc<TaskNode>],
        readers: &[Arc<TaskNode>],
        job: Option<Arc<JobState>>,
    ) -> Result<Task> {
        let s = &self.shared;
        let id = s.next_task_id();
        let submitted_at = if s.recorder.is_on() {
            s.clock.ticks()
        } else {
            0
        };
        let dispatch = Dispatch {
            priority,
            eligible,
            job,
        };
        let node = Arc::new(TaskNode::scheduled(
            id,
            kernel.clone(),
            accesses.iter().cloned().collect(),
            dispatch,
            submitted_at,
        ));
        if let Some(job) = &node.job {
            job.enroll(&node)?;
        }
        s.count_submission();
        graph::add_dependencies(&node, after);
        graph::add_order(&node, readers);
        if graph::release_submission(&node) {
            s.make_ready(node.clone(), None);
        }
        Ok(Task { node })
    }

    /// Checks accesses against the kernel: tensors of this runtime, no
    /// tensor written twice (or written and read), shapes and modes.
    pub(crate) fn check_accesses(&self, kernel: &Kernel, accesses: &[Access]) -> Result<()> {
        let mut metas: SmallVec<[ArgMeta<'_>; 4]> = SmallVec::new();
        for (i, a) in accesses.iter().enumerate() {
            let t = &a.tensor.inner;
            if t.runtime != self.shared.id {
                return Err(Error::ForeignTensor { tensor: t.label() });
            }
            for b in &accesses[..i] {
                if b.tensor.inner.id == t.id && (a.mode.writes() || b.mode.writes()) {
                    return Err(Error::AliasedWrite { tensor: t.label() });
                }
            }
            metas.push(a.meta());
        }
        kernel.check(&metas).map_err(|e| {
            let names: SmallVec<[Option<&str>; 4]> =
                accesses.iter().map(|a| a.tensor.name()).collect();
            e.with_argument_names(&names)
        })
    }

    fn eligible_units(
        &self,
        kernel: &Kernel,
        accesses: &[Access],
        placement: Placement,
    ) -> Result<UnitSet> {
        let metas: SmallVec<[ArgMeta<'_>; 4]> = accesses.iter().map(Access::meta).collect();
        let mut set = UnitSet::default();
        let mut down = Vec::new();
        for (u, info) in self.shared.units.iter().enumerate() {
            let placed = match placement {
                Placement::Any => true,
                Placement::Unit(id) => id == u,
                Placement::Kind(k) => k == info.kind,
            };
            let (backend, local) = &self.shared.unit_backends[u];
            if placed && backend.supports(*local, kernel, &metas) {
                match self.shared.health.reason(u) {
                    Some(reason) => down.push(format!("unit {u} is down: {reason}")),
                    None => set.insert(u),
                }
            }
        }
        if set.is_empty() {
            let detail = match placement {
                Placement::Any => String::new(),
                Placement::Unit(u) if u >= self.shared.units.len() => {
                    return Err(Error::UnknownUnit(format!(
                        "unit {u} (this runtime has {})",
                        self.shared.units.len()
                    )))
                }
                Placement::Unit(u) => format!(" on unit {u}"),
                Placement::Kind(k) => format!(" on a {k} unit"),
            };
            let dts: Vec<String> = metas.iter().map(|a| a.dtype.to_string()).collect();
            let down = if down.is_empty() {
                String::new()
            } else {
                format!(" ({})", down.join("; "))
            };
            return Err(Error::NoCapableUnit {
                kernel: kernel.name().to_string(),
                detail: format!("{detail} with dtypes [{}]{down}", dts.join(", ")),
            });
        }
        Ok(set)
    }

    /// Cancels `task` if no worker has taken it yet: it will not run, and
    /// the tasks that read what it writes fail with [`Error::Cancelled`]
    /// (tasks that only write after it run as usual). Returns true if it
    /// will not run; false if it is running or finished, in which case it
    /// completes and its results are kept.
    ///
    /// A cancelled task still waits for its own predecessors, so that the
    /// tasks ordered after it keep the order of submission; then it ends
    /// without running. See [`Job`] to cancel a group of tasks.
    ///
    /// ```
    /// use xpu::{DType, Error, Kernel, Mode, Runtime, TaskOptions};
    /// let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
    /// let x = rt.tensor(&[1], vec![1.0f32])?;
    /// let slow = Kernel::custom("slow", &[Mode::ReadWrite], |_| {
    ///     std::thread::sleep(std::time::Duration::from_millis(50));
    ///     Ok(())
    /// });
    /// let double = Kernel::custom("double", &[Mode::ReadWrite], |args| {
    ///     args[0].as_f32_mut()?[0] *= 2.0;
    ///     Ok(())
    /// });
    /// rt.submit(&slow, &[x.rw()])?;
    /// let t = rt.submit(&double, &[x.rw()])?;
    /// assert!(rt.cancel(&t));
    /// assert!(matches!(rt.wait(&t), Err(Error::Cancelled { .. })));
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn cancel(&self, task: &Task) -> bool {
        task.node.cancel()
    }

    /// Waits for `task` and returns its outcome.
    pub fn wait(&self, task: &Task) -> Result<()> {
        task.node.watched.store(true, Ordering::SeqCst);
        self.shared.wait_until(|| task.node.is_done());
        task.node
            .outcome
            .get()
            .map_or(Ok(()), |o| o.clone().map_err(|e| *e))
    }

    /// Waits until every submitted task has finished.
    pub fn wait_all(&self) {
        let s = &self.shared;
        s.wait_until(|| s.all_done());
    }

    /// Waits for every task, then until every device has finished the work
    /// launched on it (device backends may launch asynchronously). For timing.
    pub fn synchronize(&self) -> Result<()> {
        self.wait_all();
        for (backend, local) in &self.shared.unit_backends {
            backend.synchronize(*local)?;
        }
        Ok(())
    }

    /// Waits for the last writer of `t` and copies its content to a `Vec`.
    /// Fails if the tensor is poisoned by a failed task.
    pub fn read<T: Element>(&self, t: &Tensor) -> Result<Vec<T>> {
        if t.inner.dtype != T::DTYPE {
            return Err(Error::ReadDType {
                tensor: t.inner.label(),
                actual: t.inner.dtype,
                requested: T::DTYPE,
            });
        }
        let mut out = vec![T::zeroed(); t.len()];
        self.read_into(t, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// [`Runtime::read`] into a caller's buffer of exactly the tensor's
    /// size in bytes, whatever its dtype: for callers that hold untyped
    /// buffers, such as the C and Python bindings.
    ///
    /// ```
    /// use xpu::{DType, Runtime};
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// let t = rt.tensor(&[2], vec![7u8, 9])?;
    /// let mut out = [0u8; 2];
    /// rt.read_into(&t, &mut out)?;
    /// assert_eq!(out, [7, 9]);
    /// let err = rt.read_into(&t, &mut [0u8; 3]).unwrap_err();
    /// assert!(err.to_string().contains("needs 2 bytes, got 3"), "{err}");
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn read_into(&self, t: &Tensor, out: &mut [u8]) -> Result<()> {
        if out.len() != t.inner.nbytes() {
            return Err(Error::ByteLength {
                shape: t.inner.shape.clone(),
                dtype: t.inner.dtype,
                expected: t.inner.nbytes(),
                got: out.len(),
            });
        }
        // SAFETY: the read is registered in the graph, so no writer runs.
        self.with_host_copy(t, |h| {
            out.copy_from_slice(unsafe { &h.bytes()[..out.len()] })
        })
    }

    /// The tensor's content where it sits in host memory, without a copy
    /// once it is there (one copy from a device if that is where the valid
    /// copy is): waits for its last writer, like [`Runtime::read`]. The
    /// view is read-only and stays as it is: tasks that write the tensor
    /// afterwards write a fresh buffer, so the view never changes under
    /// its holder (the Python binding's `rt.read` hands it to numpy).
    ///
    /// ```
    /// use xpu::{Kernel, Runtime, UnaryOp};
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// let x = rt.tensor(&[3], vec![-1.0f32, 0.5, 2.0])?;
    /// let before = rt.view(&x)?;
    /// let y = rt.zeros(&[3], xpu::DType::F32)?;
    /// rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
    /// rt.submit(&Kernel::Unary(UnaryOp::Exp), &[y.read(), x.write()])?; // x changes...
    /// assert_eq!(bytemuck::cast_slice::<u8, f32>(before.bytes()), &[-1.0, 0.5, 2.0]); // ...not the view
    /// assert_eq!(rt.read::<f32>(&x)?[0], 1.0);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    ///
    /// A partitioned tensor and its parts share memory that tasks on the
    /// others write, so their views are copies.
    pub fn view(&self, t: &Tensor) -> Result<HostView> {
        let len = t.inner.nbytes();
        let partitioned = t.inner.family.get().is_some();
        self.with_host_copy(t, |h| match partitioned {
            // SAFETY: the read is registered in the graph, so no writer runs.
            true => HostBuffer::from_bytes(unsafe { &h.bytes()[..len] })
                .map(|copy| HostView::new(Arc::new(copy), len)),
            false => Ok(HostView::new(h.clone(), len)),
        })?
    }

    /// Registers a read of `t` in the graph, waits for its writers, and
    /// calls `f` on its valid host replica.
    fn with_host_copy<R>(&self, t: &Tensor, f: impl FnOnce(&Arc<HostBuffer>) -> R) -> Result<R> {
        let node = self.link_inline(t.read())?;
        self.shared.wait_until(|| node.is_ready());
        let result = self.on_host_replica(t, node.id, f);
        // Tasks that wrote after this read was registered wait for it.
        for ready in graph::finish(&node, Ok(())) {
            self.shared.make_ready(ready, None);
        }
        result
    }

    /// A task that no unit runs, with one access, whose holder ends it:
    /// it becomes ready when a task with that access would, and tasks
    /// submitted after it on the tensor wait for it. For data that comes
    /// from or goes to outside the runtime (another process, a file);
    /// see [`External`].
    ///
    /// ```
    /// use xpu::{DType, Kernel, Runtime, UnaryOp};
    /// let rt = Runtime::builder().build()?;
    /// let x = rt.tensor(&[2], vec![1.0f32, 2.0])?;
    /// let y = rt.empty(&[2], DType::F32);
    /// rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
    /// // Send y elsewhere once the relu has written it.
    /// let departure = rt.external(y.read())?;
    /// let sent: Vec<u8> = departure.read(|bytes| bytes.to_vec())?;
    /// departure.complete();
    /// assert_eq!(sent.len(), 8);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn external(&self, access: Access) -> Result<External> {
        if self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(Error::ShutDown);
        }
        let node = self.link_inline(access)?;
        Ok(External::new(self.shared.clone(), node))
    }

    /// Links an inline task (see [`TaskNode::inline`]) with `access` into
    /// the graph, after the tasks it must follow.
    fn link_inline(&self, access: Access) -> Result<Arc<TaskNode>> {
        let inner = &access.tensor.inner;
        if inner.runtime != self.shared.id {
            return Err(Error::ForeignTensor {
                tensor: inner.label(),
            });
        }
        let access = [access];
        let mut coherence = Coherence::lock(&access);
        let readers = match &mut coherence {
            Some(c) => {
                c.prepare(&access, &mut |k, a| self.submit_copy(k, a, 0))?;
                c.readers_before(&access)
            }
            None => SmallVec::new(),
        };
        let [access] = access;
        let node = Arc::new(TaskNode::inline(self.shared.next_task_id(), access));
        graph::add_dependencies(&node, &[]);
        graph::add_order(&node, &readers);
        if let Some(c) = coherence {
            c.commit(&node.accesses, &node);
        }
        graph::release_submission(&node);
        Ok(node)
    }

    fn on_host_replica<R>(
        &self,
        t: &Tensor,
        reader: u64,
        f: impl FnOnce(&Arc<HostBuffer>) -> R,
    ) -> Result<R> {
        t.inner.unpoisoned()?;
        self.shared.memory.on_host(&t.inner, Mode::Read, reader, f)
    }

    /// What each unit did so far.
    pub fn report(&self) -> Vec<UnitReport> {
        self.shared.unit_reports()
    }

    /// Puts `unit` in a power state from its next task on: its worker
    /// applies it between two tasks, never under a running one (a unit
    /// running a task applies it when the task ends). What the state
    /// changes is the unit's backend's to say; the change, with the
    /// backend's words for it, is in the profile ([`Profile::power`]).
    ///
    /// ```
    /// use xpu::power::PowerState;
    /// let rt = xpu::Runtime::builder().cpu_units(1).device_discovery(false).build()?;
    /// rt.set_power_state(0, PowerState::HighPerformance)?;
    /// assert!(rt.set_power_state(7, PowerState::LowPower).is_err());
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn set_power_state(&self, unit: UnitId, state: PowerState) -> Result<()> {
        self.check_unit(unit)?;
        self.shared.power.want(unit, state);
        self.shared.wake_unit(unit);
        Ok(())
    }

    /// The power state `unit` was last asked to run in (it applies it
    /// before its next task).
    pub fn power_state(&self, unit: UnitId) -> Result<PowerState> {
        self.check_unit(unit)?;
        Ok(self.shared.power.wanted(unit))
    }

    /// The energy profile `unit`'s energy is modelled with: its kind's,
    /// or the CPU's for a unit emulated on the host's cores (whose idle
    /// power is then the CPU units', not its own: its report counts none).
    pub fn energy_profile(&self, unit: UnitId) -> Result<&EnergyProfile> {
        self.check_unit(unit)?;
        Ok(self.shared.power.profile_of(&self.shared.units[unit]).0)
    }

    fn check_unit(&self, unit: UnitId) -> Result<()> {
        match self.shared.units.len() {
            n if unit < n => Ok(()),
            n => Err(Error::UnknownUnit(format!(
                "unit {unit}: the runtime has units 0 to {}",
                n.saturating_sub(1)
            ))),
        }
    }

    /// The energy each unit used since the runtime started: measured where
    /// the machine's counters read (RAPL, shared among the units on the
    /// host's cores), modelled from the units' energy profiles elsewhere;
    /// each unit's figure says which ([`crate::power::EnergySource`]).
    pub fn energy(&self) -> EnergyReport {
        self.shared.power.report(
            &self.shared.units,
            self.shared.started.elapsed().as_secs_f64(),
        )
    }

    /// Ready tasks waiting for a unit, per unit queue and in shared queues.
    pub fn queued(&self) -> QueueLengths {
        self.shared.policy.queued(self.shared.units.len())
    }

    /// The runtime's counters in the Prometheus text format (tasks per
    /// unit, queue lengths, busy time, bytes moved, memory per node); see
    /// [`crate::monitor`] for host figures beside them.
    pub fn metrics(&self) -> String {
        crate::monitor::metrics_text(&self.shared.snapshot(), None)
    }

    /// Starts sampling host and unit use every `period` on a thread of its
    /// own (the workers are not disturbed); see [`Monitor`].
    pub fn monitor(&self, period: Duration) -> Monitor {
        let shared = self.shared.clone();
        Monitor::start(Arc::new(move || shared.snapshot()), period)
    }

    /// Accounting of every memory node.
    pub fn memory_stats(&self) -> Vec<NodeStats> {
        self.shared.memory.stats()
    }

    /// The transfers between memory nodes that the profile kept, in order:
    /// every one since the start or the last [`Runtime::clear_profile`],
    /// up to the profile's capacity; none with profiling off. The totals
    /// per node are in [`Runtime::memory_stats`] either way.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.shared.memory.transfers()
    }

    /// Forgets the recorded tasks, transfers, allocations and evictions and
    /// returns their memory, e.g. between runs of a long-lived runtime.
    /// Counters (per unit and per node) are kept.
    pub fn clear_profile(&self) {
        self.shared.recorder.clear();
        self.shared.memory.clear_log();
    }

    /// Everything recorded since the runtime started: tasks (when
    /// profiling is on, the default), transfers, allocations and evictions.
    /// Export it with [`Profile::write_chrome_trace`] or
    /// [`Profile::write_gantt`]; see [`crate::trace`].
    pub fn profile(&self) -> Profile {
        let s = &self.shared;
        let units = s
            .units
            .iter()
            .map(|u| TraceUnit {
                id: u.id,
                kind: u.kind.to_string(),
                device: u.device.clone(),
                emulated: u.emulated,
                node: u.node,
            })
            .collect();
        let nodes = s
            .memory
            .stats()
            .into_iter()
            .map(|n| TraceNode {
                id: n.node,
                name: n.name,
            })
            .collect();
        Profile::new(
            units,
            nodes,
            s.recorder.snapshot(),
            s.memory.log(),
            (s.power.changes(), s.power.gatings(), self.energy()),
            s.started.elapsed().as_secs_f64(),
            s.clock,
        )
    }

    /// Waits for all tasks, then stops the workers. Later submissions fail
    /// with [`Error::ShutDown`]. Dropping the runtime does the same.
    pub fn shutdown(&self) {
        self.wait_all();
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.wake_all_workers();
        for w in self.workers.lock().drain(..) {
            let _ = w.join();
        }
        if let Some(prefetcher) = &self.shared.prefetcher {
            prefetcher.stop();
        }
        if let Some(history) = &self.shared.history {
            let stored = history.store_once(
                &self.shared.models,
                &self.profile(),
                self.shared.policy_kind.as_str(),
            );
            if let Err(e) = stored {
                eprintln!("xpu: this run's history was not stored: {e}");
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The bytes of a tensor of `shape` and `dtype`, or an error if they do not
/// fit in memory's address space.
fn byte_size(shape: &[usize], dtype: DType) -> Result<usize> {
    shape
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            Error::Config(format!(
                "a tensor of shape {shape:?} {dtype} overflows the address space"
            ))
        })
}
