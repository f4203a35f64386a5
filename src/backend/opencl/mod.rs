//! FPGA and NPU units on OpenCL (cargo feature `opencl`).
//!
//! Every OpenCL platform and device is listed; the rule in `units` (or
//! `XPU_OPENCL_UNITS`) says which become FPGA or NPU units. Each unit gets
//! its own in-order command queue and memory node; the units of one device
//! share its context, so a tensor moves between them by a device copy, not
//! through the host ([`Backend::copy`]). The kernels are
//! the OpenCL C files of `kernels/`, built per element type on first use (or
//! ahead of time with `xpu opencl build`), with binaries cached on disk (see
//! `cache`).
//!
//! Launches are asynchronous: a kernel is enqueued and the worker moves on;
//! the queue is flushed to the device every few launches (the unit's power
//! state says how many: `flush_every`) and when the unit's work runs dry.
//! The unit's queue is in order, so kernels, uploads and downloads run in
//! the order the runtime issued them; a download waits for the kernels
//! before it, and [`Backend::synchronize`] waits for everything. On a
//! CPU-typed device (PoCL) launches run one at a time per device, across
//! every unit and runtime of the process, and to completion: PoCL 3 aborts
//! when kernels of several contexts on one device run at once.

mod cache;
mod kernels;
mod units;

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ocl::core;
use parking_lot::Mutex;
use smallvec::SmallVec;

pub use self::cache::default_cache_dir;
use self::cache::{Lookup, ProgramCache};
use self::kernels::{Program, ProgramKey, Scalar, SOURCES};
pub use self::units::{
    assign, kind_by_rule, parse_units, unit_requests, Assignment, DeviceListing, DeviceType,
    UnitRequest,
};
use crate::backend::{
    Arg, Backend, DeviceBuffer, Discovered, DiscoveryOptions, UnitDesc, UnitMemory,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{ArgMeta, Kernel};
use crate::power::PowerState;
use crate::unit::UnitKind;

fn cl_error(message: impl Into<String>) -> Error {
    Error::Device {
        backend: "opencl".into(),
        message: message.into(),
    }
}

/// Every OpenCL platform and device, or why there are none.
pub fn list_devices() -> std::result::Result<Vec<DeviceListing>, String> {
    Ok(open_devices()?.into_iter().map(|(l, _)| l).collect())
}

/// Discovery runs one thread at a time: some ICDs (PoCL among them) answer
/// concurrent first queries with no devices.
static DISCOVERY: Mutex<()> = Mutex::new(());

fn open_devices() -> std::result::Result<Vec<(DeviceListing, core::DeviceId)>, String> {
    let _one_at_a_time = DISCOVERY.lock();
    let platforms = core::get_platform_ids().map_err(|e| {
        format!(
            "no OpenCL platform ({}); on Debian, `apt-get install pocl-opencl-icd` provides a CPU one",
            first_line(&e.to_string())
        )
    })?;
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (pi, platform) in platforms.iter().enumerate() {
        let platform_name = match core::get_platform_info(platform, core::PlatformInfo::Name) {
            Ok(name) => name.to_string(),
            Err(e) => format!("platform {pi} ({e})"),
        };
        let ids = match core::get_device_ids(platform, Some(core::DeviceType::ALL), None) {
            Ok(ids) => ids,
            Err(e) => {
                problems.push(format!("{platform_name}: {}", first_line(&e.to_string())));
                continue;
            }
        };
        for (di, id) in ids.into_iter().enumerate() {
            let text = |what| device_text(&id, what);
            let device_type = match core::get_device_info(id, core::DeviceInfo::Type) {
                Ok(core::DeviceInfoResult::Type(t))
                    if t.contains(core::DeviceType::ACCELERATOR) =>
                {
                    DeviceType::Accelerator
                }
                Ok(core::DeviceInfoResult::Type(t)) if t.contains(core::DeviceType::CUSTOM) => {
                    DeviceType::Custom
                }
                Ok(core::DeviceInfoResult::Type(t)) if t.contains(core::DeviceType::GPU) => {
                    DeviceType::Gpu
                }
                Ok(core::DeviceInfoResult::Type(t)) if t.contains(core::DeviceType::CPU) => {
                    DeviceType::Cpu
                }
                _ => DeviceType::Other,
            };
            found.push((
                DeviceListing {
                    platform: pi,
                    device: di,
                    platform_name: platform_name.clone(),
                    name: text(core::DeviceInfo::Name),
                    vendor: text(core::DeviceInfo::Vendor),
                    device_type,
                },
                id,
            ));
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{} OpenCL platform(s) but no device ({})",
            platforms.len(),
            problems.join("; ")
        ));
    }
    Ok(found)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

fn device_text(id: &core::DeviceId, what: core::DeviceInfo) -> String {
    core::get_device_info(id, what)
        .map(|r| r.to_string())
        .unwrap_or_default()
}

fn device_number(id: &core::DeviceId, what: core::DeviceInfo) -> u64 {
    match core::get_device_info(id, what) {
        Ok(core::DeviceInfoResult::GlobalMemSize(v))
        | Ok(core::DeviceInfoResult::MaxMemAllocSize(v)) => v,
        Ok(core::DeviceInfoResult::MaxWorkGroupSize(v)) => v as u64,
        Ok(core::DeviceInfoResult::MaxComputeUnits(v))
        | Ok(core::DeviceInfoResult::MemBaseAddrAlign(v)) => v as u64,
        _ => 0,
    }
}

/// How a program came to be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from source (no cache entry).
    Compiled,
    /// Loaded from the on-disk cache.
    Cached,
    /// The cache entry was corrupt; compiled from source and stored again.
    Rebuilt,
}

/// One program built by [`OpenClBackend::build_all`].
#[derive(Debug, Clone)]
pub struct ProgramBuild {
    /// The backend's unit index.
    pub unit: usize,
    /// `kernels/FILE.cl` and element type, e.g. `gemm/f32`.
    pub program: String,
    pub origin: Origin,
    pub seconds: f64,
}

/// One device opened as a unit.
struct Unit {
    listing: DeviceListing,
    kind: UnitKind,
    emulated: bool,
    /// What the cache key depends on: platform, device, driver, versions.
    identity: String,
    summary: String,
    id: core::DeviceId,
    // Released in reverse order of need (see `Drop`): kernels, programs,
    // then the queue, then the context.
    queue: core::CommandQueue,
    context: core::Context,
    capacity: usize,
    max_alloc: usize,
    /// Sub-buffers start at multiples of this many bytes
    /// (`CL_DEVICE_MEM_BASE_ADDR_ALIGN`; 0 when the device did not say).
    base_align: usize,
    /// Dedicated local memory (picks the GEMM variant).
    local_memory: bool,
    /// Held by every launch on a CPU-typed device (PoCL) until the kernel
    /// has finished; shared by every unit of the process on that device.
    host_device: Option<Arc<Mutex<()>>>,
    programs: Mutex<HashMap<(ProgramKey, DType), Arc<core::Program>>>,
    /// Kernel objects by program, entry point and element type.
    kernels: Mutex<HashMap<(ProgramKey, String, DType), core::Kernel>>,
    /// Launches between flushes of the queue (its power state's), and
    /// launches enqueued since the last flush.
    flush_every: AtomicUsize,
    unflushed: AtomicUsize,
}

/// Launches a unit's queue gathers before it is flushed to the device, in
/// `state`: fewer, larger hand-overs at low power (the device wakes less
/// often), each launch at once at high performance.
fn flush_every(state: PowerState) -> usize {
    match state {
        PowerState::LowPower => 32,
        PowerState::Normal => 8,
        PowerState::HighPerformance => 1,
    }
}

impl Unit {
    /// Runs `f` holding this unit's host-device lock, if it computes on
    /// the host (PoCL): building, launching and releasing kernel code
    /// there must not overlap another context's on the same device (see
    /// [`host_device_lock`]).
    fn on_host_device<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.host_device.as_ref().map(|lock| lock.lock());
        f()
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        // Kernels before their programs, both before the queue and the
        // context they were made in (fields drop in declaration order):
        // PoCL has aborted on a program's code released out of order, and
        // on code released while another context's kernels ran on the same
        // host device (`pocl_release_dlhandle_cache`): release it under
        // that device's launch lock.
        let _ = core::finish(&self.queue);
        self.on_host_device(|| {
            self.kernels.lock().clear();
            self.programs.lock().clear();
        });
    }
}

/// A tensor's storage on a unit.
struct ClBuffer {
    mem: core::Mem,
    unit: usize,
}

/// The OpenCL backend: one FPGA or NPU unit per assigned device.
pub struct OpenClBackend {
    units: Vec<Unit>,
    cache: ProgramCache,
}

/// Opens the devices `requests` name (or the rule picks when `None`) and
/// caches programs under `cache_root` (no cache when `None`). Returns why
/// there is no unit when there is none.
/// The OpenCL backend for the registry (see [`crate::backend::discover`]):
/// the unit list from the options (else `XPU_OPENCL_UNITS`, else the
/// mapping rule), programs cached under the options' cache directory.
pub fn discover_units(options: &DiscoveryOptions) -> Discovered {
    let requests = unit_requests(options.opencl_units.as_deref())?;
    let cache = options.cache_dir.clone().or_else(default_cache_dir);
    Ok(discover(requests.as_deref(), cache.as_deref()).map(|b| b as Arc<dyn Backend>))
}

pub fn discover(
    requests: Option<&[UnitRequest]>,
    cache_root: Option<&Path>,
) -> std::result::Result<Arc<OpenClBackend>, String> {
    let devices = open_devices()?;
    let listings: Vec<DeviceListing> = devices.iter().map(|(l, _)| l.clone()).collect();
    let chosen = assign(&listings, requests)?;
    if chosen.is_empty() {
        let names: Vec<String> = listings
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} ({})",
                    d.platform,
                    d.device,
                    d.name,
                    d.device_type.as_str()
                )
            })
            .collect();
        return Err(format!(
            "no accelerator device among {}; to present one as a unit set XPU_OPENCL_UNITS, e.g. fpga=0:0",
            names.join(", ")
        ));
    }
    let mut opened = Vec::new();
    // Units on one device share its context, so that a tensor moves
    // between them without the host (`Backend::copy`).
    let mut contexts: HashMap<(usize, usize), core::Context> = HashMap::new();
    for a in chosen {
        let Some((listing, id)) = devices
            .iter()
            .find(|(l, _)| l.platform == a.platform && l.device == a.device)
        else {
            return Err(format!("device {}:{} vanished", a.platform, a.device));
        };
        let opening = |e: String| format!("opening {} as {}: {e}", listing.name, a.kind);
        let context = match contexts.get(&(a.platform, a.device)) {
            Some(c) => c.clone(),
            None => {
                let c = core::create_context(None, &[*id], None, None)
                    .map_err(|e| opening(e.to_string()))?;
                contexts.insert((a.platform, a.device), c.clone());
                c
            }
        };
        opened.push(open_unit(listing.clone(), *id, a, context).map_err(opening)?);
    }
    Ok(Arc::new(OpenClBackend {
        units: opened,
        cache: ProgramCache::new(cache_root),
    }))
}

/// Opens device `id` as the unit `a` asks for, in `context` (its device's,
/// shared with the other units on it), with a command queue of its own.
fn open_unit(
    listing: DeviceListing,
    id: core::DeviceId,
    a: Assignment,
    context: core::Context,
) -> std::result::Result<Unit, String> {
    let queue = core::create_command_queue(&context, id, None).map_err(|e| e.to_string())?;
    let driver = device_text(&id, core::DeviceInfo::DriverVersion);
    let version = device_text(&id, core::DeviceInfo::Version);
    let local_memory = matches!(
        core::get_device_info(id, core::DeviceInfo::LocalMemType),
        Ok(core::DeviceInfoResult::LocalMemType(
            core::DeviceLocalMemType::Local
        ))
    );
    let max_group = device_number(&id, core::DeviceInfo::MaxWorkGroupSize);
    if max_group < 256 {
        return Err(format!(
            "work-groups of at most {max_group} work-items; the kernels need 256"
        ));
    }
    let fp16 = device_text(&id, core::DeviceInfo::Extensions).contains("cl_khr_fp16");
    let max_alloc = device_number(&id, core::DeviceInfo::MaxMemAllocSize) as usize;
    let summary = format!(
        "OpenCL device {}:{} ({}), {version}, driver {driver}, {} compute units, max buffer {} MiB, \
         local memory {}, half arithmetic {}",
        listing.platform,
        listing.device,
        listing.device_type.as_str(),
        device_number(&id, core::DeviceInfo::MaxComputeUnits),
        max_alloc >> 20,
        if local_memory { "dedicated" } else { "in global memory" },
        if fp16 { "yes" } else { "no (f16 stored, computed in f32)" },
    );
    Ok(Unit {
        identity: format!(
            "{}\n{}\n{}\n{driver}\n{version}",
            listing.platform_name, listing.name, listing.vendor
        ),
        kind: a.kind,
        emulated: a.emulated,
        summary,
        capacity: device_number(&id, core::DeviceInfo::GlobalMemSize) as usize,
        max_alloc,
        base_align: (device_number(&id, core::DeviceInfo::MemBaseAddrAlign) / 8) as usize,
        local_memory,
        id,
        context,
        queue,
        host_device: (listing.device_type == units::DeviceType::Cpu)
            .then(|| host_device_lock(listing.platform, listing.device)),
        programs: Mutex::new(HashMap::new()),
        kernels: Mutex::new(HashMap::new()),
        flush_every: AtomicUsize::new(flush_every(PowerState::Normal)),
        unflushed: AtomicUsize::new(0),
        listing,
    })
}

/// The lock of OpenCL device `platform:device` when it computes on the
/// host (PoCL): launches on it from any unit or runtime of the process run
/// one at a time, to completion. PoCL 3 aborts in its kernel-code cache
/// (`pocl_release_dlhandle_cache`) when kernels of several contexts on one
/// device run at once; they share the host's cores anyway.
fn host_device_lock(platform: usize, device: usize) -> Arc<Mutex<()>> {
    type Locks = Mutex<HashMap<(usize, usize), Arc<Mutex<()>>>>;
    static LOCKS: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
    LOCKS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .entry((platform, device))
        .or_default()
        .clone()
}

impl OpenClBackend {
    fn unit(&self, index: usize) -> Result<&Unit> {
        self.units
            .get(index)
            .ok_or_else(|| cl_error(format!("no OpenCL unit {index}")))
    }

    /// Enqueues `entry` of `program` with `buffers`, then `plan`'s
    /// scalars, over `plan`'s range (without waiting).
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        u: &Unit,
        program: &core::Program,
        program_key: ProgramKey,
        dtype: DType,
        plan: &kernels::Plan<'_>,
        entry: &str,
        buffers: &[&core::Mem],
    ) -> Result<()> {
        let fail = |what: &str, e: core::Error| {
            cl_error(format!(
                "`{entry}` on {}: {what}: {}",
                u.listing.name,
                first_line(&e.to_string())
            ))
        };
        let mut cache = u.kernels.lock();
        let cl_kernel = match cache.entry((program_key, entry.to_string(), dtype)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                core::create_kernel(program, entry).map_err(|e| fail("creating the kernel", e))?,
            ),
        };
        for (i, mem) in buffers.iter().enumerate() {
            core::set_kernel_arg(cl_kernel, i as u32, core::ArgVal::mem(mem))
                .map_err(|e| fail("setting a buffer argument", e))?;
        }
        for (j, s) in plan.scalars.iter().enumerate() {
            let index = (buffers.len() + j) as u32;
            let set = match s {
                Scalar::U32(v) => core::set_kernel_arg(cl_kernel, index, core::ArgVal::scalar(v)),
                Scalar::F32(v) => core::set_kernel_arg(cl_kernel, index, core::ArgVal::scalar(v)),
            };
            set.map_err(|e| fail("setting a scalar argument", e))?;
        }
        // SAFETY: every argument is set, and the buffers stay alive while
        // the kernel runs: the queue retains them, and the runtime reuses a
        // buffer only for commands issued to this same in-order queue.
        // As few dimensions as the range has (the built-in kernels use
        // two).
        let dims = if plan.global[2] > 1 { 3 } else { 2 };
        unsafe {
            core::enqueue_kernel(
                &u.queue,
                cl_kernel,
                dims,
                None,
                &plan.global,
                plan.local,
                None::<()>,
                None::<()>,
            )
        }
        .map_err(|e| fail("enqueueing", e))
    }

    fn resolve<'a>(&'a self, buf: &'a DeviceBuffer) -> Result<(&'a Unit, &'a core::Mem)> {
        let b = buf.handle::<ClBuffer>("opencl")?;
        Ok((self.unit(b.unit)?, &b.mem))
    }

    /// Where compiled programs are cached (`None`: not cached).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache.dir().map(Path::to_path_buf)
    }

    /// Builds (or loads from the cache) every program for every unit, the
    /// way FPGA flows compile ahead of time; `progress` sees each as it is
    /// done. Programs already loaded are built again, so the report says
    /// what a fresh start would do.
    pub fn build_all(&self, mut progress: impl FnMut(&ProgramBuild)) -> Result<Vec<ProgramBuild>> {
        let mut report = Vec::new();
        for (ui, unit) in self.units.iter().enumerate() {
            for source in SOURCES {
                for &dtype in source.dtypes() {
                    let start = Instant::now();
                    let program = Program::Builtin(source);
                    let origin = unit.on_host_device(|| -> Result<Origin> {
                        let (built, origin) = self.load(unit, program, dtype)?;
                        unit.programs
                            .lock()
                            .insert(program.key(dtype), Arc::new(built));
                        Ok(origin)
                    })?;
                    let build = ProgramBuild {
                        unit: ui,
                        program: format!("{}/{dtype}", source.name()),
                        origin,
                        seconds: start.elapsed().as_secs_f64(),
                    };
                    progress(&build);
                    report.push(build);
                }
            }
        }
        Ok(report)
    }

    /// Number of programs `build_all` builds.
    pub fn program_count(&self) -> usize {
        self.units.len() * SOURCES.iter().map(|s| s.dtypes().len()).sum::<usize>()
    }

    /// `program` in `dtype` on `unit`, built on first use.
    fn program(
        &self,
        unit: &Unit,
        program: Program<'_>,
        dtype: DType,
    ) -> Result<Arc<core::Program>> {
        let key = program.key(dtype);
        if let Some(p) = unit.programs.lock().get(&key) {
            return Ok(p.clone());
        }
        // Built once, under the host device's lock: PoCL aborted in its
        // kernel-code cache (`pocl_release_dlhandle_cache`, 2 test runs in
        // 15) while one context built a program and another ran or
        // released its kernels.
        unit.on_host_device(|| {
            let mut programs = unit.programs.lock();
            if let Some(p) = programs.get(&key) {
                return Ok(p.clone());
            }
            let (built, _) = self.load(unit, program, dtype)?;
            let built = Arc::new(built);
            programs.insert(key, built.clone());
            Ok(built)
        })
    }

    /// Loads a program from the cache, or compiles it and stores it.
    fn load(
        &self,
        unit: &Unit,
        program: Program<'_>,
        dtype: DType,
    ) -> Result<(core::Program, Origin)> {
        let text = program.text();
        let options = program.options(dtype);
        let key = ProgramCache::key(&unit.identity, options, &text);
        let c_options =
            CString::new(options).map_err(|_| cl_error("build options contain a NUL byte"))?;
        let origin = match self.cache.load(&key) {
            Lookup::Hit(binary) => {
                let built = core::create_program_with_binary(&unit.context, &[unit.id], &[&binary])
                    .and_then(|p| {
                        core::build_program(&p, Some(&[unit.id]), &c_options, None, None).map(|_| p)
                    });
                match built {
                    Ok(p) => return Ok((p, Origin::Cached)),
                    // The driver refused a binary that passed the checksum
                    // (e.g. written by another driver build): rebuild it.
                    Err(_) => Origin::Rebuilt,
                }
            }
            Lookup::Miss => Origin::Compiled,
            Lookup::Corrupt => Origin::Rebuilt,
        };
        let what = format!("{} for {}", program.label(dtype), unit.listing.name);
        let program = compile(unit, &what, text, &c_options)?;
        if let Ok(core::ProgramInfoResult::Binaries(bins)) =
            core::get_program_info(&program, core::ProgramInfo::Binaries)
        {
            if let Some(binary) = bins.first().filter(|b| !b.is_empty()) {
                if let Err(e) = self.cache.store(&key, binary) {
                    eprintln!("xpu: could not cache {what}: {e}");
                }
            }
        }
        Ok((program, origin))
    }
}

/// Compiles `text` for `unit`; a failure carries the compiler's build log.
fn compile(unit: &Unit, what: &str, text: String, options: &CString) -> Result<core::Program> {
    let c_text = CString::new(text).map_err(|_| cl_error("kernel source contains a NUL byte"))?;
    let program = core::create_program_with_source(&unit.context, &[c_text])
        .map_err(|e| cl_error(format!("creating {what}: {e}")))?;
    core::build_program(&program, Some(&[unit.id]), options, None, None)
        .map_err(|e| cl_error(format!("building {what} failed; build log:\n{e}")))?;
    Ok(program)
}

impl Backend for OpenClBackend {
    fn name(&self) -> &str {
        "opencl"
    }

    fn units(&self) -> Vec<UnitDesc> {
        self.units
            .iter()
            .enumerate()
            .map(|(i, u)| UnitDesc {
                kind: u.kind,
                device: format!("{} ({})", u.listing.name, u.listing.platform_name),
                emulated: u.emulated,
                // A CPU-typed OpenCL device (PoCL) computes on the host.
                host_cores: u.listing.device_type == units::DeviceType::Cpu,
                // Two units on one device (FPGA and NPU on one card) share it.
                resource: Some(format!(
                    "opencl:{}:{}",
                    u.listing.platform, u.listing.device
                )),
                memory: UnitMemory::Device {
                    index: i,
                    capacity: u.capacity,
                },
                details: u.summary.clone(),
            })
            .collect()
    }

    fn alloc(&self, memory: usize, bytes: usize) -> Result<DeviceBuffer> {
        let u = self.unit(memory)?;
        if bytes > u.max_alloc {
            return Err(cl_error(format!(
                "a tensor of {bytes} bytes exceeds the largest buffer {} allows ({} bytes)",
                u.listing.name, u.max_alloc
            )));
        }
        // SAFETY: no host pointer is passed, so OpenCL owns the storage.
        let mem = unsafe {
            core::create_buffer::<_, u8>(&u.context, core::MEM_READ_WRITE, bytes.max(1), None)
        }
        .map_err(|e| {
            cl_error(format!(
                "allocating {bytes} bytes on {}: {}",
                u.listing.name,
                first_line(&e.to_string())
            ))
        })?;
        Ok(DeviceBuffer::new(bytes, ClBuffer { mem, unit: memory }))
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        let (u, mem) = self.resolve(dst)?;
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: blocking write; `src` outlives the call and fits the
        // buffer, which was allocated for at least this tensor.
        unsafe { core::enqueue_write_buffer(&u.queue, mem, true, 0, src, None::<()>, None::<()>) }
            .map_err(|e| {
                cl_error(format!(
                    "upload to {}: {}",
                    u.listing.name,
                    first_line(&e.to_string())
                ))
            })
    }

    /// A sub-buffer of the allocation, where the offset is a multiple of
    /// the device's base address alignment.
    fn view(
        &self,
        allocation: &Arc<DeviceBuffer>,
        offset: usize,
        bytes: usize,
    ) -> Option<Result<DeviceBuffer>> {
        let b = allocation.downcast_ref::<ClBuffer>()?;
        let u = self.units.get(b.unit)?;
        let fits = u.base_align > 0
            && offset.is_multiple_of(u.base_align)
            && bytes > 0
            && offset + bytes <= allocation.bytes();
        if !fits {
            return None;
        }
        let region = core::BufferRegion::<u8>::new(offset, bytes);
        let made = core::create_sub_buffer(&b.mem, core::MEM_READ_WRITE, &region).map_err(|e| {
            cl_error(format!(
                "a view of {bytes} bytes at {offset} on {}: {}",
                u.listing.name,
                first_line(&e.to_string())
            ))
        });
        Some(made.map(|mem| {
            DeviceBuffer::view(allocation, offset, bytes, ClBuffer { mem, unit: b.unit })
        }))
    }

    fn copy(&self, src: &DeviceBuffer, dst: &DeviceBuffer, bytes: usize) -> Option<Result<()>> {
        let (from, src_mem) = self.resolve(src).ok()?;
        let (to, dst_mem) = self.resolve(dst).ok()?;
        if from.context.as_ptr() != to.context.as_ptr() {
            return None;
        }
        if bytes == 0 {
            return Some(Ok(()));
        }
        // The source's writers are on its unit's queue: they finish first.
        // The copy runs on the destination's queue, in order with its
        // kernels, and is waited for, so that the source may be written
        // again as soon as this returns.
        let copied = core::finish(&from.queue)
            .and_then(|()| {
                core::enqueue_copy_buffer::<u8, _, _, _>(
                    &to.queue, src_mem, dst_mem, 0, 0, bytes, None::<()>, None::<()>,
                )
            })
            .and_then(|()| core::finish(&to.queue));
        Some(copied.map_err(|e| {
            cl_error(format!(
                "copy from {} to {}: {}",
                from.kind,
                to.kind,
                first_line(&e.to_string())
            ))
        }))
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        let (u, mem) = self.resolve(src)?;
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: blocking read into `dst`, which is no larger than the buffer.
        unsafe { core::enqueue_read_buffer(&u.queue, mem, true, 0, dst, None::<()>, None::<()>) }
            .map_err(|e| {
                cl_error(format!(
                    "download from {} (or a kernel before it failed): {}",
                    u.listing.name,
                    first_line(&e.to_string())
                ))
            })
    }

    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool {
        self.units
            .get(unit)
            .is_some_and(|u| kernels::plan(kernel, args, u.local_memory).is_ok())
    }

    fn prepare(&self, kernel: &Kernel) -> Result<()> {
        if let Kernel::Custom(c) = kernel {
            if c.opencl().is_some() {
                for u in &self.units {
                    self.program(u, Program::User(c), DType::F32)?;
                }
            }
        }
        Ok(())
    }

    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        let u = self.unit(unit)?;
        let Some(dtype) = args.first().map(|a| a.dtype) else {
            return Err(cl_error(format!("`{}` without arguments", kernel.name())));
        };
        let metas: SmallVec<[ArgMeta<'_>; 4]> = args.iter().map(Arg::meta).collect();
        let plan = kernels::plan(kernel, &metas, u.local_memory)?;
        let program = self.program(u, plan.program, dtype)?;
        let (program_key, dtype) = plan.program.key(dtype);
        let fail = |what: &str, e: core::Error| {
            cl_error(format!(
                "`{}` on {}: {what}: {}",
                kernel.name(),
                u.listing.name,
                first_line(&e.to_string())
            ))
        };
        let mems = args
            .iter()
            .map(|a| Ok(self.resolve(a.device()?)?.1))
            .collect::<Result<SmallVec<[&core::Mem; 4]>>>()?;
        let host_device = u.host_device.as_ref().map(|lock| lock.lock());
        match (plan.second, mems.as_slice()) {
            (None, _) => self.enqueue(u, &program, program_key, dtype, &plan, plan.entry, &mems)?,
            (Some(second), &[input, output]) => {
                // The transient buffer lives until this function returns;
                // OpenCL keeps its storage until the commands using it end.
                let values = args[1].len();
                // SAFETY: no host pointer is passed, so OpenCL owns the storage.
                let tmp = unsafe {
                    core::create_buffer::<_, f32>(
                        &u.context,
                        core::MEM_READ_WRITE,
                        values.max(1),
                        None,
                    )
                }
                .map_err(|e| fail("allocating the intermediate buffer", e))?;
                self.enqueue(
                    u,
                    &program,
                    program_key,
                    dtype,
                    &plan,
                    plan.entry,
                    &[input, &tmp],
                )?;
                self.enqueue(
                    u,
                    &program,
                    program_key,
                    dtype,
                    &plan,
                    second,
                    &[&tmp, output],
                )?;
            }
            (Some(_), _) => {
                return Err(cl_error(format!(
                    "`{}`: a two-pass kernel takes two arguments",
                    kernel.name()
                )))
            }
        }
        if host_device.is_some() {
            return core::finish(&u.queue).map_err(|e| fail("running", e));
        }
        if u.unflushed.fetch_add(1, Ordering::AcqRel) + 1 >= u.flush_every.load(Ordering::Relaxed) {
            u.unflushed.store(0, Ordering::Release);
            core::flush(&u.queue).map_err(|e| fail("flushing the queue", e))?;
        }
        Ok(())
    }

    fn flush(&self, unit: usize) {
        // A failed flush shows at the next wait on the queue, which
        // flushes it again.
        if let Ok(u) = self.unit(unit) {
            if u.unflushed.swap(0, Ordering::AcqRel) > 0 {
                let _ = core::flush(&u.queue);
            }
        }
    }

    fn set_power_state(&self, unit: usize, state: PowerState) -> Result<String> {
        let u = self.unit(unit)?;
        let every = flush_every(state);
        u.flush_every.store(every, Ordering::Relaxed);
        if u.host_device.is_some() {
            return Ok(format!(
                "queue flushed every {every} launch(es); this device computes on the host's cores, where each launch runs to its end before the next"
            ));
        }
        if u.unflushed.load(Ordering::Acquire) >= every {
            self.flush(unit);
        }
        Ok(format!(
            "queue flushed every {every} launch(es), and when the unit's work runs dry"
        ))
    }

    fn synchronize(&self, unit: usize) -> Result<()> {
        let u = self.unit(unit)?;
        core::finish(&u.queue).map_err(|e| {
            cl_error(format!(
                "waiting for {}: {}",
                u.listing.name,
                first_line(&e.to_string())
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_that_fails_to_build_shows_the_build_log() {
        let Ok(devices) = open_devices() else {
            eprintln!("no OpenCL device, test skipped");
            return;
        };
        let (listing, id) = devices[0].clone();
        let assignment = Assignment {
            kind: UnitKind::Fpga,
            platform: listing.platform,
            device: listing.device,
            emulated: true,
        };
        let context = core::create_context(None, &[id], None, None).unwrap();
        let unit = open_unit(listing, id, assignment, context).unwrap();
        let broken = "__kernel void f(__global float* x) {\n    x[0] = no_such_name;\n}\n";
        let err = compile(&unit, "broken.cl", broken.into(), &CString::default())
            .expect_err("the source does not compile")
            .to_string();
        assert!(
            err.contains("building broken.cl failed; build log"),
            "{err}"
        );
        assert!(
            err.contains("no_such_name"),
            "the log names the error: {err}"
        );
    }
}
