//! The runtime: registering tensors, submitting tasks, waiting, reading
//! results back, and shutting down; and the state its workers share.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::sync::{Parker, Unparker};
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;

use crate::backend::Backend;
use crate::backend::BackendStatus;
use crate::builder::RuntimeBuilder;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::graph::{self, Dispatch, TaskNode, UnitSet};
use crate::job::{Job, JobState};
use crate::kernel::{ArgMeta, Kernel, Mode};
use crate::memory::{MemoryManager, NodeStats, ReplicaSet, ReplicaState, Storage, Transfer};
use crate::monitor::Monitor;
use crate::profile::{UnitCounters, UnitReport};
use crate::sched::{Policy, QueueLengths, SchedPolicy};
use crate::tensor::{Access, Tensor, TensorInner};
use crate::trace::{Clock, Profile, Recorder, TraceNode, TraceUnit};
use crate::unit::{Placement, UnitHealth, UnitId, UnitInfo, HOST};
use crate::worker;

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);
static NEXT_TENSOR: AtomicU64 = AtomicU64::new(1);

/// State shared by the runtime handle and its workers.
pub(crate) struct Shared {
    pub id: u64,
    pub policy_kind: Policy,
    pub policy: Box<dyn SchedPolicy>,
    pub units: Vec<UnitInfo>,
    /// Which units are out of service.
    pub health: Arc<UnitHealth>,
    pub unit_backends: Vec<(Arc<dyn Backend>, usize)>,
    pub statuses: Vec<BackendStatus>,
    pub memory: Arc<MemoryManager>,
    pub counters: UnitCounters,
    pub recorder: Recorder,
    /// The clock of every recorded time.
    pub clock: Clock,
    next_task: CachePadded<AtomicU64>,
    /// Scheduled tasks submitted so far.
    submitted: CachePadded<AtomicU64>,
    /// Tasks each unit finished; only that unit's worker writes its counter,
    /// so submitting and finishing never contend on one cache line.
    finished: Vec<CachePadded<AtomicU64>>,
    sleepers: CachePadded<AtomicUsize>,
    pub sleeping: Vec<AtomicBool>,
    unparkers: Vec<Unparker>,
    pub shutdown: AtomicBool,
    waiters: CachePadded<AtomicUsize>,
    event_lock: Mutex<()>,
    event: Condvar,
    pub started: Instant,
}

impl Shared {
    /// Hands a ready task to the policy (or wakes its waiter) and wakes a
    /// sleeping capable unit if there is one.
    pub fn make_ready(&self, task: Arc<TaskNode>, from: Option<UnitId>) {
        if task.inline {
            self.notify();
            return;
        }
        // The common case, nobody asleep, copies nothing; a unit that fell
        // asleep while the task was pushed is woken without knowing the task.
        let eligible = (self.sleepers.load(Ordering::SeqCst) > 0).then(|| task.eligible.clone());
        self.policy.push(task, from);
        std::sync::atomic::fence(Ordering::SeqCst);
        match eligible {
            Some(units) => self.wake(&units),
            None if self.sleepers.load(Ordering::SeqCst) > 0 => self.wake_any(),
            None => {}
        }
    }

    fn wake(&self, eligible: &UnitSet) {
        for u in eligible.iter() {
            if self.sleeping[u].swap(false, Ordering::SeqCst) {
                self.unparkers[u].unpark();
                return;
            }
        }
    }

    fn wake_any(&self) {
        for (u, s) in self.sleeping.iter().enumerate() {
            if s.swap(false, Ordering::SeqCst) {
                self.unparkers[u].unpark();
            }
        }
    }

    /// A worker is about to park.
    pub fn going_to_sleep(&self, unit: UnitId) {
        self.sleeping[unit].store(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
    }

    /// A worker woke up.
    pub fn woke_up(&self, unit: UnitId) {
        self.sleeping[unit].store(false, Ordering::SeqCst);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Called by `unit`'s worker when a task finished: wakes whoever waits
    /// for it or for all tasks.
    pub fn task_done(&self, unit: UnitId, task: &TaskNode) {
        let count = &self.finished[unit];
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0
            && (task.watched.load(Ordering::Acquire) || self.all_done())
        {
            self.notify();
        }
    }

    /// Tasks submitted to the policy so far.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// What each unit did so far.
    pub fn unit_reports(&self) -> Vec<UnitReport> {
        let wall = self.started.elapsed().as_secs_f64();
        self.units
            .iter()
            .map(|u| self.counters.report(u, wall))
            .collect()
    }

    /// True when every submitted task has finished.
    fn all_done(&self) -> bool {
        let submitted = self.submitted.load(Ordering::Acquire);
        let finished: u64 = self
            .finished
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .sum();
        finished >= submitted
    }

    fn notify(&self) {
        let _guard = self.event_lock.lock();
        self.event.notify_all();
    }

    /// Blocks until `done()` holds.
    fn wait_until(&self, done: impl Fn() -> bool) {
        if done() {
            return;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.event_lock.lock();
        while !done() {
            // The timeout only guards against a missed notification.
            self.event.wait_for(&mut guard, Duration::from_millis(20));
        }
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn wake_all_workers(&self) {
        for u in &self.unparkers {
            u.unpark();
        }
    }

    /// `unit`'s device reported itself lost while running `task`: the unit
    /// takes no more tasks, its memory's replicas are given up, and every
    /// worker is woken so that the queued tasks move elsewhere.
    pub fn take_out_of_service(&self, unit: UnitId, task: u64, cause: &Error) {
        if self.health.mark_down(unit, cause.to_string()) {
            let node = self.units[unit].node;
            let shares_node = self
                .units
                .iter()
                .any(|u| u.id != unit && u.node == node && !self.health.is_down(u.id));
            if !shares_node {
                self.memory.lose_node(node, task, cause);
            }
            self.wake_all_workers();
        }
    }
}

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
}

impl Runtime {
    /// Starts one worker per unit over the discovered units and memory.
    pub(crate) fn start(
        policy: Policy,
        units: Vec<UnitInfo>,
        unit_backends: Vec<(Arc<dyn Backend>, usize)>,
        statuses: Vec<BackendStatus>,
        memory: MemoryManager,
        recording: Option<usize>,
    ) -> Result<Runtime> {
        let n = units.len();
        let health = Arc::new(UnitHealth::new(&units));
        let parkers: Vec<Parker> = (0..n).map(|_| Parker::new()).collect();
        let shared = Arc::new(Shared {
            id: NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed),
            policy_kind: policy,
            policy: policy.build(health.clone()),
            units,
            health,
            unit_backends,
            statuses,
            counters: UnitCounters::new(n),
            recorder: Recorder::new(n, recording),
            clock: memory.clock(),
            next_task: CachePadded::new(AtomicU64::new(1)),
            submitted: CachePadded::new(AtomicU64::new(0)),
            finished: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            sleeping: (0..n).map(|_| AtomicBool::new(false)).collect(),
            unparkers: parkers.iter().map(|p| p.unparker().clone()).collect(),
            shutdown: AtomicBool::new(false),
            waiters: CachePadded::new(AtomicUsize::new(0)),
            event_lock: Mutex::new(()),
            event: Condvar::new(),
            started: memory.clock().start(),
            memory: Arc::new(memory),
        });
        let mut workers = Vec::with_capacity(n);
        for (unit, parker) in parkers.into_iter().enumerate() {
            let s = shared.clone();
            let name = format!("xpu-{}{}", s.units[unit].kind, unit);
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || worker::run(s, unit, parker))
                .map_err(|e| Error::Config(format!("cannot start worker thread: {e}")))?;
            workers.push(handle);
        }
        Ok(Runtime {
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// A builder with the defaults: work-stealing, one CPU unit per core.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// Every unit, indexed by [`UnitId`]; [`UnitInfo::is_down`] says
    /// which are out of service now.
    pub fn units(&self) -> &[UnitInfo] {
        &self.shared.units
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
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let host = self.shared.memory.host_alloc(Some(bytes), bytes.len())?;
        Ok(self.register(
            shape,
            T::DTYPE,
            ReplicaSet::with_host(host, ReplicaState::Modified),
        ))
    }

    /// A zero-filled tensor on host memory.
    pub fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = shape.iter().product::<usize>() * dtype.size();
        let host = self.shared.memory.host_alloc(None, bytes)?;
        Ok(self.register(
            shape,
            dtype,
            ReplicaSet::with_host(host, ReplicaState::Modified),
        ))
    }

    /// A tensor with no content yet: its memory is allocated where the first
    /// task writes it. Reading it before a write is an error.
    pub fn empty(&self, shape: &[usize], dtype: DType) -> Tensor {
        self.register(shape, dtype, ReplicaSet::default())
    }

    fn register(&self, shape: &[usize], dtype: DType, replicas: ReplicaSet) -> Tensor {
        Tensor {
            inner: Arc::new(TensorInner {
                id: NEXT_TENSOR.fetch_add(1, Ordering::Relaxed),
                runtime: self.shared.id,
                shape: shape.to_vec(),
                dtype,
                deps: Default::default(),
                name: Default::default(),
                replicas: Mutex::new(replicas),
                poison: Default::default(),
                memory: self.shared.memory.clone(),
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
        let s = &self.shared;
        if s.shutdown.load(Ordering::Relaxed) {
            return Err(Error::ShutDown);
        }
        self.check_accesses(kernel, accesses)?;
        let eligible = self.eligible_units(kernel, accesses, placement)?;
        let id = s.next_task.fetch_add(1, Ordering::Relaxed);
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
        s.submitted.fetch_add(1, Ordering::AcqRel);
        graph::add_dependencies(&node, after);
        if graph::release_submission(&node) {
            s.make_ready(node.clone(), None);
        }
        Ok(Task { node })
    }

    fn check_accesses(&self, kernel: &Kernel, accesses: &[Access]) -> Result<()> {
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
            metas.push(ArgMeta {
                shape: &t.shape,
                dtype: t.dtype,
                mode: a.mode,
            });
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
        let dtypes: SmallVec<[DType; 4]> = accesses.iter().map(|a| a.tensor.inner.dtype).collect();
        let mut set = UnitSet::default();
        let mut down = Vec::new();
        for (u, info) in self.shared.units.iter().enumerate() {
            let placed = match placement {
                Placement::Any => true,
                Placement::Unit(id) => id == u,
                Placement::Kind(k) => k == info.kind,
            };
            let (backend, local) = &self.shared.unit_backends[u];
            if placed && backend.supports(*local, kernel, &dtypes) {
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
            let dts: Vec<String> = dtypes.iter().map(|d| d.to_string()).collect();
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
        !task.node.is_done() && task.node.cancel()
    }

    /// Waits for `task` and returns its outcome.
    pub fn wait(&self, task: &Task) -> Result<()> {
        task.node.watched.store(true, Ordering::SeqCst);
        self.shared.wait_until(|| task.node.is_done());
        task.node.outcome.get().cloned().unwrap_or(Ok(()))
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
        let inner = &t.inner;
        if inner.runtime != self.shared.id {
            return Err(Error::ForeignTensor {
                tensor: inner.label(),
            });
        }
        if inner.dtype != T::DTYPE {
            return Err(Error::ReadDType {
                tensor: inner.label(),
                actual: inner.dtype,
                requested: T::DTYPE,
            });
        }
        let node = Arc::new(TaskNode::inline_read(
            self.shared.next_task.fetch_add(1, Ordering::Relaxed),
            t.read(),
        ));
        graph::add_dependencies(&node, &[]);
        if !graph::release_submission(&node) {
            self.shared.wait_until(|| node.is_ready());
        }
        let result = self.copy_out(t, node.id);
        // Tasks that wrote after this read was registered wait for it.
        for ready in graph::finish(&node, Ok(())) {
            self.shared.make_ready(ready, None);
        }
        result
    }

    fn copy_out<T: Element>(&self, t: &Tensor, reader: u64) -> Result<Vec<T>> {
        let inner = &t.inner;
        if let Some((failed_task, cause)) = inner.poison.get() {
            return Err(Error::Poisoned {
                tensor: inner.label(),
                failed_task,
                cause: Box::new(cause),
            });
        }
        let (storage, _) = self
            .shared
            .memory
            .acquire(&t.inner, HOST, Mode::Read, reader)?;
        let out = match &storage {
            Storage::Host(h) => {
                // SAFETY: this read is registered in the graph, so no writer runs.
                let bytes = unsafe { &h.bytes()[..inner.nbytes()] };
                let mut out = vec![T::zeroed(); t.len()];
                bytemuck::cast_slice_mut(&mut out).copy_from_slice(bytes);
                Ok(out)
            }
            Storage::Device(_) => Err(Error::Config(
                "the host replica is not in host memory".into(),
            )),
        };
        self.shared.memory.release(inner, HOST, reader);
        out
    }

    /// What each unit did so far.
    pub fn report(&self) -> Vec<UnitReport> {
        self.shared.unit_reports()
    }

    /// Ready tasks waiting for a unit, per unit queue and in shared queues.
    pub fn queued(&self) -> QueueLengths {
        self.shared.policy.queued(self.shared.units.len())
    }

    /// The runtime's counters in the Prometheus text format (tasks per
    /// unit, queue lengths, busy time, bytes moved, memory per node); see
    /// [`crate::monitor`] for host figures beside them.
    pub fn metrics(&self) -> String {
        crate::monitor::metrics_text(&self.shared, None)
    }

    /// Starts sampling host and unit use every `period` on a thread of its
    /// own (the workers are not disturbed); see [`Monitor`].
    pub fn monitor(&self, period: Duration) -> Monitor {
        Monitor::start(self.shared.clone(), period)
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
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
