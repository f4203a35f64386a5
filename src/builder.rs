//! Building a runtime: which backends and units, how much memory, which
//! policy, what to record; the `XPU_REQUIRE_BACKENDS` check. The built-in
//! backends come from the registry ([`crate::backend::discover`]); this
//! module names none of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{self, Backend, BackendStatus, DiscoveryOptions, UnitMemory};
use crate::error::{Error, Result};
use crate::history::{HistoryStore, TaskStore};
use crate::memory::MemoryManager;
use crate::power::EnergyProfiles;
use crate::runtime::Runtime;
use crate::sched::{Policy, Slowdown};
use crate::unit::{NodeId, UnitInfo, HOST};
use crate::worker::{Accounts, Shared};

/// The records the profile keeps of each stream by default (see
/// [`RuntimeBuilder::profile_capacity`]).
pub const DEFAULT_PROFILE_CAPACITY: usize = 65_536;

/// How long a unit stays idle before it is gated, by default (see
/// [`RuntimeBuilder::gate_after`]).
pub const DEFAULT_GATE_AFTER: Duration = Duration::from_secs(1);

impl Runtime {
    /// A builder with the defaults: dmda, one CPU unit per core.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// use xpu::{Policy, Runtime};
/// let rt = Runtime::builder().policy(Policy::Eager).cpu_units(2).device_discovery(false).build()?;
/// assert_eq!(rt.units().len(), 2);
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct RuntimeBuilder {
    policy: Policy,
    cpu_units: Option<usize>,
    extra: Vec<Arc<dyn Backend>>,
    host_capacity: usize,
    device_limit: Option<usize>,
    pools: Vec<(NodeId, usize, usize)>,
    discovery: bool,
    profiling: bool,
    profile_capacity: usize,
    options: DiscoveryOptions,
    history: Option<HistorySource>,
    energy: Option<EnergyProfiles>,
    gate_after: Option<Duration>,
    slowdown: Slowdown,
    bind_workers: bool,
}

/// Where a runtime's task history is kept.
enum HistorySource {
    File(PathBuf),
    Store(Arc<dyn TaskStore>),
}

impl RuntimeBuilder {
    /// The defaults: dmda, one CPU unit per core, device discovery on.
    fn new() -> RuntimeBuilder {
        RuntimeBuilder {
            policy: Policy::default(),
            cpu_units: None,
            extra: Vec::new(),
            host_capacity: usize::MAX,
            device_limit: None,
            pools: Vec::new(),
            discovery: true,
            profiling: true,
            profile_capacity: DEFAULT_PROFILE_CAPACITY,
            options: DiscoveryOptions::default(),
            history: None,
            energy: None,
            gate_after: Some(DEFAULT_GATE_AFTER),
            slowdown: Slowdown::default(),
            bind_workers: true,
        }
    }

    /// Which OpenCL devices become FPGA and NPU units, in the form of
    /// `XPU_OPENCL_UNITS` (which it overrides), e.g. `"fpga=0:0,npu=0:0"`.
    /// Without it the rule of the OpenCL backend decides (see the README);
    /// a build without the `opencl` feature ignores it.
    pub fn opencl_units(mut self, spec: impl Into<String>) -> Self {
        self.options.opencl_units = Some(spec.into());
        self
    }

    /// Where the runtime keeps its caches (compiled OpenCL programs).
    /// Default: `$XPU_CACHE_DIR`, else `$XDG_CACHE_HOME/xpu`, else
    /// `~/.cache/xpu`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.cache_dir = Some(dir.into());
        self
    }

    /// The memory of each GPU in bytes, where the device API does not tell
    /// (wgpu does not): overrides `XPU_GPU_MEMORY` and the default (8 GiB,
    /// 2 GiB for a software adapter).
    pub fn gpu_memory(mut self, bytes: usize) -> Self {
        self.options.gpu_memory = Some(bytes);
        self
    }

    /// Whether to look for devices of the built-in backends besides the
    /// CPU (default: yes): GPUs through wgpu, and with the features
    /// `opencl` and `candle` the FPGA/NPU and TPU/VPU units. Tests that
    /// need an exact set of units turn it off.
    pub fn device_discovery(mut self, on: bool) -> Self {
        self.discovery = on;
        self
    }

    /// Whether to record every task (submit, ready, start and end, unit),
    /// transfer and allocation for [`Runtime::profile`] (default: on; it
    /// costs about 10-20 ns per task here). The records are bounded: see
    /// [`RuntimeBuilder::profile_capacity`]. With profiling off nothing is
    /// kept per task or transfer; the totals per unit and node (tasks,
    /// busy time, bytes moved) are counters either way.
    pub fn profiling(mut self, on: bool) -> Self {
        self.profiling = on;
        self
    }

    /// How many records the profile keeps of each stream: task records per
    /// unit, transfers, and allocation events per memory node (default
    /// [`DEFAULT_PROFILE_CAPACITY`], 65,536; a task record is about 150
    /// bytes). When a stream is full its oldest records are dropped, a
    /// chunk at a time, and [`Profile::dropped`](crate::trace::Profile)
    /// counts them, so a long-running process stays within a fixed size.
    ///
    /// ```
    /// use xpu::{Kernel, Runtime};
    /// let rt = Runtime::builder().cpu_units(1).device_discovery(false).profile_capacity(100).build()?;
    /// for _ in 0..250 {
    ///     rt.submit(&Kernel::Noop, &[])?;
    /// }
    /// rt.wait_all();
    /// let profile = rt.profile();
    /// assert!(profile.tasks.len() <= 100 && profile.tasks.len() >= 50);
    /// assert_eq!(profile.tasks.len() as u64 + profile.dropped.tasks, 250);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn profile_capacity(mut self, records: usize) -> Self {
        self.profile_capacity = records.max(1);
        self
    }

    /// Keeps the task history in the SQLite file `path` (see
    /// [`crate::history`]): the performance models start from what earlier
    /// runs on these units learnt, and this run's tasks and models are
    /// stored when it shuts down. Off by default; the `xpu` command uses
    /// [`crate::history::default_path`].
    ///
    /// ```
    /// use xpu::{Kernel, Policy, Runtime, UnaryOp, DType};
    /// let path = std::env::temp_dir().join(format!("xpu-doc-history-{}.sqlite", std::process::id()));
    /// for _ in 0..2 {
    ///     let rt = Runtime::builder().cpu_units(1).device_discovery(false)
    ///         .policy(Policy::Dmda).history(&path).build()?;
    ///     let x = rt.tensor(&[1024], vec![1.0f32; 1024])?;
    ///     let y = rt.empty(&[1024], DType::F32);
    ///     rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
    ///     rt.wait_all();
    /// }
    /// use xpu::history::TaskStore;
    /// let (store, _) = xpu::history::HistoryStore::open(&path)?;
    /// assert_eq!(store.runs()?, 2);
    /// // Two samples of relu; one when the second run's, on a loaded machine, was
    /// // so far off the first that it replaced it (see `PerfModels::correct`).
    /// assert!(store.footprints()?.iter().any(|f| f.kernel == "relu" && (1..=2).contains(&f.count)));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn history(mut self, path: impl Into<PathBuf>) -> Self {
        self.history = Some(HistorySource::File(path.into()));
        self
    }

    /// Keeps the task history in `store`, as [`RuntimeBuilder::history`]
    /// does in a file: e.g. a [`MemoryStore`](crate::history::MemoryStore)
    /// shared by the runtimes of one process, or an embedder's own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use xpu::history::{MemoryStore, TaskStore};
    /// use xpu::{DType, Kernel, Policy, Runtime, UnaryOp};
    /// let store = Arc::new(MemoryStore::default());
    /// for _ in 0..2 {
    ///     let rt = Runtime::builder().cpu_units(1).device_discovery(false)
    ///         .policy(Policy::Dmda).task_store(store.clone()).build()?;
    ///     let x = rt.tensor(&[1024], vec![1.0f32; 1024])?;
    ///     let y = rt.empty(&[1024], DType::F32);
    ///     rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])?;
    /// }
    /// assert_eq!(store.runs()?, 2);
    /// let task = &store.tasks(1)?[0];
    /// assert_eq!((task.kernel.as_str(), task.shapes.as_str(), task.bytes), ("relu", "1024 f32 R, 1024 f32 W", 8192));
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn task_store(mut self, store: Arc<dyn TaskStore>) -> Self {
        self.history = Some(HistorySource::Store(store));
        self
    }

    /// The energy profiles the units' energy is modelled with where it is
    /// not measured (default: [`EnergyProfiles::shipped`], those of
    /// `platforms/energy/`).
    pub fn energy_profiles(mut self, profiles: EnergyProfiles) -> Self {
        self.energy = Some(profiles);
        self
    }

    /// How long a unit stays idle before it is gated (default
    /// [`DEFAULT_GATE_AFTER`]; `None`: never). A gated unit's worker parks
    /// and its device memory's free pooled buffers go back to the device
    /// (down to the static pool); work that arrives wakes it, its wake-up
    /// latency is measured, and placement (`dmda`) counts that latency
    /// in when it weighs a gated unit. Its time gated is counted at its
    /// energy profile's gated power.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = xpu::Runtime::builder().cpu_units(1).device_discovery(false)
    ///     .gate_after(Some(Duration::from_millis(5))).build()?;
    /// std::thread::sleep(Duration::from_millis(100));
    /// rt.submit(&xpu::Kernel::Noop, &[])?;
    /// rt.wait_all();
    /// assert!(!rt.profile().gating.is_empty());
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn gate_after(mut self, idle: Option<Duration>) -> Self {
        self.gate_after = idle;
        self
    }

    /// The scheduling policy (default: dmda).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How much slower than `dmda`'s the energy policy's schedule may be
    /// ([`Policy::Energy`]; default 1.2). The policy puts each task on the
    /// unit, and in the power state, that adds the least energy (the
    /// units' energy profiles), among the choices within the bound.
    ///
    /// ```
    /// use xpu::{power::PowerState, sched::Slowdown, Policy};
    /// let rt = xpu::Runtime::builder().cpu_units(1).device_discovery(false)
    ///     .policy(Policy::Energy).slowdown(Slowdown::new(3.0)?).build()?;
    /// let a = rt.tensor(&[64, 64], vec![1.0f32; 64 * 64])?;
    /// let c = rt.zeros(&[64, 64], xpu::DType::F32)?;
    /// for _ in 0..20 {
    ///     rt.submit(&xpu::Kernel::gemm(), &[a.read(), a.read(), c.write()])?;
    /// }
    /// rt.wait_all();
    /// // A CPU unit does the most work per joule at low power (the shipped
    /// // profile), and the bound leaves room for it.
    /// assert!(rt.profile().tasks.iter().any(|t| t.power == PowerState::LowPower));
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn slowdown(mut self, slowdown: Slowdown) -> Self {
        self.slowdown = slowdown;
        self
    }

    /// Number of CPU units (default: one per core). Each CPU unit's kernels
    /// use `cores / units` threads, so `cpu_units(1)` gives one unit whose
    /// kernels use every core.
    pub fn cpu_units(mut self, n: usize) -> Self {
        self.cpu_units = Some(n);
        self
    }

    /// Whether a unit that computes on a core of its own has its worker
    /// thread bound to that core (default: yes; see
    /// [`Backend::worker_core`]): the CPU units, when there is a core for
    /// each. Unbound, the OS may queue two workers on one core while
    /// another idles (seen at the start of a tiled Cholesky: one unit
    /// waited 2-4 ms with tasks queued). Turn it off when other work
    /// shares the machine and should move the workers around.
    ///
    /// ```
    /// // One CPU unit per core (the default): each worker has its core.
    /// let rt = xpu::Runtime::builder().device_discovery(false).build()?;
    /// let bound = rt.units().iter().filter(|u| u.details.contains("bound to core")).count();
    /// assert_eq!(bound, if cfg!(target_os = "linux") { rt.units().len() } else { 0 });
    /// let rt = xpu::Runtime::builder().device_discovery(false).bind_workers(false).build()?;
    /// assert!(rt.units().iter().all(|u| !u.details.contains("bound to core")));
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn bind_workers(mut self, on: bool) -> Self {
        self.bind_workers = on;
        self
    }

    /// Adds a backend of the embedder's own (see `examples/custom_unit.rs`).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.extra.push(backend);
        self
    }

    /// Caps host memory (node 0) in bytes; allocations beyond fail.
    pub fn host_capacity(mut self, bytes: usize) -> Self {
        self.host_capacity = bytes;
        self
    }

    /// Caps every device memory node at `bytes` (below what the device has),
    /// e.g. to exercise eviction.
    pub fn device_memory_limit(mut self, bytes: usize) -> Self {
        self.device_limit = Some(bytes);
        self
    }

    /// Reserves a static pool on device node `node` at start-up: `count`
    /// buffers of `bytes` each, reused for tensors of that size class.
    pub fn static_pool(mut self, node: NodeId, bytes: usize, count: usize) -> Self {
        self.pools.push((node, bytes, count));
        self
    }

    /// Discovers units and starts one worker per unit.
    ///
    /// Fails if a backend named in `XPU_REQUIRE_BACKENDS` (comma-separated)
    /// has no unit.
    pub fn build(self) -> Result<Runtime> {
        let cpu_units = self.cpu_units.unwrap_or_else(crate::host::core_count);
        let backend::Discovery {
            mut backends,
            unavailable,
        } = backend::discover(cpu_units, self.discovery, &self.options)?;
        backends.extend(self.extra);
        let recording = self.profiling.then_some(self.profile_capacity);
        let mut memory = MemoryManager::new(self.host_capacity, recording);
        let mut units = Vec::new();
        let mut unit_backends = Vec::new();
        let mut statuses = Vec::new();
        let mut device_nodes: Vec<(usize, usize, NodeId)> = Vec::new();
        let mut worker_cores = Vec::new();
        for (bi, backend) in backends.iter().enumerate() {
            let descs = backend.units();
            statuses.push(BackendStatus {
                name: backend.name().to_string(),
                units: descs.len(),
                reason: descs.is_empty().then(|| "no device found".to_string()),
            });
            for (local, mut d) in descs.into_iter().enumerate() {
                let core = self
                    .bind_workers
                    .then(|| backend.worker_core(local))
                    .flatten();
                if let Some(core) = core {
                    d.details = format!("{}; worker bound to core {core}", d.details);
                }
                worker_cores.push(core);
                let (node, memory_bytes) = match d.memory {
                    UnitMemory::Host => (HOST, crate::host::memory_bytes()),
                    UnitMemory::Device { index, capacity } => {
                        let cap = self.device_limit.map_or(capacity, |l| l.min(capacity));
                        let node = match device_nodes
                            .iter()
                            .find(|(b, i, _)| *b == bi && *i == index)
                        {
                            Some(&(_, _, n)) => n,
                            None => {
                                let name = format!("{}:{}", backend.name(), index);
                                let n = memory.add_device_node(name, cap, backend.clone(), index);
                                device_nodes.push((bi, index, n));
                                n
                            }
                        };
                        (node, cap)
                    }
                };
                units.push(UnitInfo {
                    id: units.len(),
                    kind: d.kind,
                    backend: backend.name().to_string(),
                    device: d.device,
                    emulated: d.emulated,
                    host_cores: d.host_cores,
                    resource: d.resource,
                    node,
                    memory_bytes,
                    details: d.details,
                    status: Default::default(),
                });
                unit_backends.push((backend.clone(), local));
            }
        }
        statuses.extend(unavailable);
        check_required(&statuses, self.discovery)?;
        for (node, bytes, count) in self.pools {
            memory.reserve(node, bytes, count)?;
        }
        let history: Option<Arc<dyn TaskStore>> = match self.history {
            Some(HistorySource::File(path)) => {
                let (store, warning) = HistoryStore::open(&path)?;
                if let Some(w) = warning {
                    eprintln!("xpu: {w}");
                }
                Some(Arc::new(store))
            }
            Some(HistorySource::Store(store)) => Some(store),
            None => None,
        };
        let (shared, parkers) = Shared::new(
            self.policy,
            units,
            unit_backends,
            statuses,
            memory,
            Accounts {
                recording,
                history,
                energy: self.energy.unwrap_or_else(EnergyProfiles::shipped),
                gate_after: self.gate_after,
                slowdown: self.slowdown,
            },
        )?;
        Runtime::start(shared, parkers, worker_cores)
    }
}

/// Fails if a backend named in `XPU_REQUIRE_BACKENDS` has no unit. With
/// device discovery turned off, backends that were never asked to come up
/// are not held against the build.
fn check_required(statuses: &[BackendStatus], discovery: bool) -> Result<()> {
    let Ok(list) = std::env::var("XPU_REQUIRE_BACKENDS") else {
        return Ok(());
    };
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match statuses.iter().find(|s| s.name == name) {
            Some(s) if s.units > 0 => {}
            Some(s) => {
                return Err(Error::BackendRequired {
                    backend: name.into(),
                    reason: s.reason.clone().unwrap_or_else(|| "no units".into()),
                })
            }
            None if !discovery => {}
            None => {
                return Err(Error::BackendRequired {
                    backend: name.into(),
                    reason: "not compiled into this build".into(),
                })
            }
        }
    }
    Ok(())
}
