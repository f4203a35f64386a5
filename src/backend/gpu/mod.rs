//! GPU units on wgpu: every adapter (Vulkan, Metal, DX12, or GL when no
//! other API is present) becomes a GPU unit with its own memory node. The
//! kernels are the WGSL compute shaders of `shaders/`, compiled once per
//! device and element type (f32; f16 too where the adapter has
//! SHADER_F16; the image kernels also on u8 images, four values to a
//! word) and cached; shapes travel in a uniform buffer, so one pipeline
//! serves every size.
//!
//! Launches are asynchronous: a kernel is recorded into a command buffer
//! and the worker moves on. Command buffers wait in a batch (32 launches
//! at most in the `Normal` power state, 128 in `LowPower`, 1 in
//! `HighPerformance`) that is submitted when the unit's queue runs dry
//! ([`Backend::flush`]), when it is full, or before any copy to or from the
//! device; the queue keeps launches and copies in order, and a download
//! waits for the work before it. What a launch binds is made once
//! (`binding.rs`): its parameters go into a ring of uniform memory at a
//! dynamic offset (the bind group layout, read from the WGSL by
//! `layout.rs`, says so), and its bind group is kept for the next launch on
//! the same buffers. Validation errors reach a handler, not an error scope
//! per launch; the launch that raised one fails with it.

mod binding;
mod kernels;
mod layout;
mod nvml;
mod variant;
mod wgsl;

pub use nvml::Nvml;
pub use wgsl::validate_wgsl;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use smallvec::SmallVec;

use binding::{BindGroups, BindKey, ParamRing};

use crate::backend::{
    Arg, Backend, DeviceBuffer, Discovered, DiscoveryOptions, UnitDesc, UnitMemory,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{ArgMeta, Kernel};
use crate::power::PowerState;
use crate::unit::UnitKind;

/// Launches gathered into one submission at most, in the `Normal` power
/// state: a chain of tiny tasks costs one submission per this many, not
/// one each. `LowPower` gathers four times as many (fewer submissions and
/// device wake-ups); `HighPerformance` submits each launch at once (the
/// device starts it soonest).
const BATCH: usize = 32;

/// Launches per submission in each power state.
fn batch_of(state: PowerState) -> usize {
    match state {
        PowerState::LowPower => 4 * BATCH,
        PowerState::Normal => BATCH,
        PowerState::HighPerformance => 1,
    }
}

/// Device memory assumed when the API does not say (wgpu does not report
/// it); `XPU_GPU_MEMORY` (bytes) overrides.
const DEFAULT_DISCRETE_MEMORY: usize = 8 << 30;
const DEFAULT_SOFTWARE_MEMORY: usize = 2 << 30;

/// One adapter opened as a device.
struct Gpu {
    name: String,
    api: wgpu::Backend,
    device_type: wgpu::DeviceType,
    limits: wgpu::Limits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    capacity: usize,
    /// Whether the device runs shaders with f16 elements (SHADER_F16).
    f16: bool,
    pipelines: Mutex<HashMap<(kernels::ShaderKey, DType), Arc<Compiled>>>,
    /// Launch parameters, bound at a dynamic offset.
    params: ParamRing,
    /// Bind groups by pipeline and tensor buffers.
    binds: Arc<BindGroups>,
    /// Launches recorded and not yet submitted (at most `batch`).
    pending: Mutex<Vec<wgpu::CommandBuffer>>,
    /// Launches per submission, by the unit's power state ([`batch_of`]).
    batch: AtomicUsize,
    /// Reused read-back buffer, grown as needed.
    staging: Mutex<Option<wgpu::Buffer>>,
    /// Set by wgpu when the device is lost (driver reset, removal).
    lost: Arc<Mutex<Option<String>>>,
    /// The first error wgpu reported outside an error scope (a launch's
    /// validation error): the launch that finds it fails with it. A scope
    /// per launch cost more than the launch itself.
    errors: Arc<Mutex<Option<String>>>,
}

/// A compiled entry point and the layout of its bind group.
struct Compiled {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// A tensor's storage on a GPU: a buffer, or a range of one (a view).
struct GpuBuffer {
    buffer: wgpu::Buffer,
    /// Where the storage starts in `buffer`, and its bytes (a multiple
    /// of four).
    offset: u64,
    size: u64,
    /// Whether this is the buffer's allocation (not a view of it).
    owns: bool,
    /// Index of the GPU whose device made it.
    gpu: usize,
    /// That device's bind groups, which must let the buffer go with it.
    binds: Arc<BindGroups>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if self.owns {
            self.binds.forget(&self.buffer);
        }
    }
}

/// The bytes of a buffer that a tensor's storage is.
#[derive(Clone, Copy)]
struct Span<'a> {
    buffer: &'a wgpu::Buffer,
    offset: u64,
    size: u64,
}

impl<'a> Span<'a> {
    fn whole(buffer: &'a wgpu::Buffer) -> Span<'a> {
        Span {
            buffer,
            offset: 0,
            size: buffer.size(),
        }
    }

    fn binding(self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.size),
        })
    }
}

/// The wgpu backend: one GPU unit per adapter.
pub struct WgpuBackend {
    gpus: Vec<Gpu>,
}

/// The wgpu backend for the registry (see [`crate::backend::discover`]).
pub fn discover_units(options: &DiscoveryOptions) -> Discovered {
    Ok(discover(options.gpu_memory))
}

/// Opens every adapter, with `memory` bytes per GPU where the API does not
/// tell (else `XPU_GPU_MEMORY`, else a default); returns the backend, or
/// why there is none.
pub fn discover(memory: Option<usize>) -> std::result::Result<Arc<dyn Backend>, String> {
    Ok(Arc::new(open(memory)?))
}

/// Opens every adapter (see [`discover`]).
fn open(memory: Option<usize>) -> std::result::Result<WgpuBackend, String> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    if adapters.is_empty() {
        adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::SECONDARY));
    }
    if adapters.is_empty() {
        return Err(
            "no GPU adapter found (no Vulkan, Metal, DX12 or GL driver answered; \
                    on Debian, `apt-get install mesa-vulkan-drivers` provides a software one)"
                .into(),
        );
    }
    let memory_override = memory.or_else(|| {
        std::env::var("XPU_GPU_MEMORY")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    let mut gpus = Vec::new();
    let mut problems = Vec::new();
    for adapter in adapters {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features() & wgpu::Features::SHADER_F16;
        // Ask for everything the adapter offers; some drivers (GL) refuse
        // that, so fall back to the portable limits.
        let open = |limits: &wgpu::Limits| {
            let desc = wgpu::DeviceDescriptor {
                label: Some("xpu"),
                required_limits: limits.clone(),
                required_features: features,
                ..Default::default()
            };
            pollster::block_on(adapter.request_device(&desc)).map(|dq| (dq, limits.clone()))
        };
        let opened = open(&limits).or_else(|_| open(&wgpu::Limits::downlevel_defaults()));
        match opened {
            Ok(((device, queue), limits)) => {
                let f16 = device.features().contains(wgpu::Features::SHADER_F16);
                let lost = Arc::new(Mutex::new(None));
                let flag = lost.clone();
                device.set_device_lost_callback(move |reason, message| {
                    *flag.lock() = Some(format!("{reason:?}: {message}"));
                });
                let errors: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
                let first = errors.clone();
                device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                    first.lock().get_or_insert_with(|| e.to_string());
                }));
                let default = if info.device_type == wgpu::DeviceType::Cpu {
                    DEFAULT_SOFTWARE_MEMORY
                } else {
                    DEFAULT_DISCRETE_MEMORY
                };
                let params = ParamRing::new(&device, &limits);
                gpus.push(Gpu {
                    name: info.name.clone(),
                    api: info.backend,
                    device_type: info.device_type,
                    limits,
                    device,
                    queue,
                    capacity: memory_override.unwrap_or(default),
                    f16,
                    pipelines: Mutex::new(HashMap::new()),
                    params,
                    binds: Arc::default(),
                    pending: Mutex::new(Vec::new()),
                    batch: AtomicUsize::new(BATCH),
                    staging: Mutex::new(None),
                    lost,
                    errors,
                });
            }
            Err(e) => problems.push(format!("{}: {e}", info.name)),
        }
    }
    if gpus.is_empty() {
        return Err(format!(
            "no GPU adapter could be opened: {}",
            problems.join("; ")
        ));
    }
    Ok(WgpuBackend { gpus })
}

fn gpu_error(message: impl Into<String>) -> Error {
    Error::Device {
        backend: "wgpu".into(),
        message: message.into(),
    }
}

impl WgpuBackend {
    fn gpu(&self, index: usize) -> Result<&Gpu> {
        self.gpus
            .get(index)
            .ok_or_else(|| gpu_error(format!("no GPU {index}")))
    }

    /// A buffer's bytes and the GPU that made it.
    fn resolve<'a>(&'a self, buf: &'a DeviceBuffer) -> Result<(&'a Gpu, Span<'a>)> {
        let b = buf.handle::<GpuBuffer>("wgpu")?;
        let span = Span {
            buffer: &b.buffer,
            offset: b.offset,
            size: b.size,
        };
        Ok((self.gpu(b.gpu)?, span))
    }
}

/// Rounds a copy size up to wgpu's 4-byte copy alignment.
fn aligned(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(wgpu::COPY_BUFFER_ALIGNMENT) * wgpu::COPY_BUFFER_ALIGNMENT
}

impl Backend for WgpuBackend {
    fn name(&self) -> &str {
        "wgpu"
    }

    fn units(&self) -> Vec<UnitDesc> {
        self.gpus
            .iter()
            .enumerate()
            .map(|(i, g)| UnitDesc {
                kind: UnitKind::Gpu,
                device: format!("{} ({:?}, {:?})", g.name, g.api, g.device_type),
                emulated: g.device_type == wgpu::DeviceType::Cpu,
                host_cores: g.device_type == wgpu::DeviceType::Cpu,
                resource: None,
                memory: UnitMemory::Device {
                    index: i,
                    capacity: g.capacity,
                },
                details: format!(
                    "kernels in {}; max buffer {} MiB, {} invocations and {} KiB shared memory per workgroup",
                    if g.f16 { "f32 and f16" } else { "f32 (no SHADER_F16)" },
                    g.limits.max_buffer_size >> 20,
                    g.limits.max_compute_invocations_per_workgroup,
                    g.limits.max_compute_workgroup_storage_size >> 10
                ),
            })
            .collect()
    }

    fn alloc(&self, memory: usize, bytes: usize) -> Result<DeviceBuffer> {
        let g = self.gpu(memory)?;
        let size = aligned(bytes.max(4));
        let max = g
            .limits
            .max_buffer_size
            .min(g.limits.max_storage_buffer_binding_size);
        if size > max {
            return Err(gpu_error(format!(
                "a tensor of {bytes} bytes exceeds the adapter's largest storage buffer ({max} bytes) on {}",
                g.name
            )));
        }
        let scope = g.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xpu tensor"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(gpu_error(format!(
                "allocating {bytes} bytes on {}: {e}",
                g.name
            )));
        }
        Ok(DeviceBuffer::new(
            bytes,
            GpuBuffer {
                size: buffer.size(),
                buffer,
                offset: 0,
                owns: true,
                gpu: memory,
                binds: g.binds.clone(),
            },
        ))
    }

    /// A range of the allocation, bound at its offset: the offset must be
    /// a multiple of the device's storage-buffer offset alignment, and
    /// the size a multiple of four bytes (so that an upload, which wgpu
    /// pads to four, never touches the bytes after it).
    fn view(
        &self,
        allocation: &Arc<DeviceBuffer>,
        offset: usize,
        bytes: usize,
    ) -> Option<Result<DeviceBuffer>> {
        let b = allocation.downcast_ref::<GpuBuffer>()?;
        let g = self.gpus.get(b.gpu)?;
        let align = u64::from(g.limits.min_storage_buffer_offset_alignment.max(4));
        let (start, size) = (offset as u64, bytes as u64);
        let fits = start.is_multiple_of(align)
            && size > 0
            && size.is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
            && start + size <= b.size;
        fits.then(|| {
            Ok(DeviceBuffer::view(
                allocation,
                offset,
                bytes,
                GpuBuffer {
                    buffer: b.buffer.clone(),
                    offset: b.offset + start,
                    size,
                    owns: false,
                    gpu: b.gpu,
                    binds: b.binds.clone(),
                },
            ))
        })
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        let (g, span) = self.resolve(dst)?;
        // The write lands before the next submission's commands: launches
        // recorded before it must go first.
        g.flush();
        if src
            .len()
            .is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT as usize)
        {
            g.queue.write_buffer(span.buffer, span.offset, src);
        } else {
            let mut padded = src.to_vec();
            padded.resize(aligned(src.len()) as usize, 0);
            g.queue.write_buffer(span.buffer, span.offset, &padded);
        }
        g.queue.submit([]);
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        let (g, span) = self.resolve(src)?;
        let size = aligned(dst.len().max(4));
        let mut staging = g.staging.lock();
        if staging.as_ref().is_none_or(|s| s.size() < size) {
            *staging = Some(g.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xpu read-back"),
                size: size.next_power_of_two(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let Some(stage) = staging.as_ref() else {
            return Err(gpu_error("read-back buffer missing"));
        };
        let mut encoder = g.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(span.buffer, span.offset, stage, 0, size);
        g.flush();
        g.queue.submit([encoder.finish()]);
        let slice = stage.slice(..size);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        g.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error(format!("waiting for {}: {e}", g.name)))?;
        rx.recv()
            .map_err(|_| gpu_error("read-back was cancelled"))?
            .map_err(|e| gpu_error(format!("mapping the read-back buffer: {e}")))?;
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| gpu_error(format!("reading the read-back buffer: {e}")))?;
            dst.copy_from_slice(&view[..dst.len()]);
        }
        stage.unmap();
        Ok(())
    }

    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool {
        self.gpus
            .get(unit)
            .is_some_and(|g| kernels::plan(kernel, args, g.f16).is_ok())
    }

    fn prepare(&self, kernel: &Kernel) -> Result<()> {
        let Kernel::Custom(c) = kernel else {
            return Ok(());
        };
        let Some(program) = c.wgsl() else {
            return Ok(());
        };
        let shader = kernels::Shader {
            key: kernels::ShaderKey::User(c.id()),
            source: program.source(),
            entry: program.entry(),
        };
        for g in &self.gpus {
            g.pipeline(shader, DType::F32)?;
        }
        Ok(())
    }

    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        let g = self.gpu(unit)?;
        if let Some(why) = g.lost.lock().clone() {
            return Err(Error::DeviceLost {
                backend: "wgpu".into(),
                message: format!("{} was lost ({why})", g.name),
            });
        }
        let metas: SmallVec<[ArgMeta<'_>; 4]> = args.iter().map(Arg::meta).collect();
        let plan = kernels::plan(kernel, &metas, g.f16)?;
        let dtype = args.first().map_or(DType::F32, |a| a.dtype);
        let scratch;
        let mut buffers: SmallVec<[Span<'_>; 4]> = SmallVec::new();
        for a in args.iter() {
            buffers.push(self.resolve(a.device()?)?.1);
        }
        let mut encoder = g.device.create_command_encoder(&Default::default());
        if let Some(first) = &plan.first {
            // Partial results: transient, on the device, never a replica
            // (nor kept in a bind group).
            scratch = g.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xpu partial results"),
                size: (first.scratch * dtype.size()) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let inputs = [buffers[0], Span::whole(&scratch)];
            g.encode(&mut encoder, &first.pass, dtype, &inputs, false)?;
            buffers[0] = Span::whole(&scratch);
        }
        g.encode(
            &mut encoder,
            &plan.pass,
            dtype,
            &buffers,
            plan.first.is_none(),
        )?;
        // Each launch is its own command buffer, so that a validation error
        // (raised when it is finished) fails this task and no other; they
        // are submitted together.
        let commands = encoder.finish();
        if let Some(e) = g.errors.lock().take() {
            return Err(gpu_error(format!("`{}` on {}: {e}", kernel.name(), g.name)));
        }
        let mut pending = g.pending.lock();
        pending.push(commands);
        if pending.len() >= g.batch.load(Ordering::Relaxed) {
            g.queue.submit(pending.drain(..));
        }
        Ok(())
    }

    fn set_power_state(&self, unit: usize, state: PowerState) -> Result<String> {
        let g = self
            .gpus
            .get(unit)
            .ok_or_else(|| gpu_error(format!("no GPU unit {unit}")))?;
        let batch = batch_of(state);
        g.batch.store(batch, Ordering::Relaxed);
        // What a smaller batch would have submitted already goes now.
        if g.pending.lock().len() >= batch {
            g.flush();
        }
        Ok(format!(
            "submits every {batch} launch(es), and when the unit's queue runs dry"
        ))
    }

    fn flush(&self, unit: usize) {
        if let Some(g) = self.gpus.get(unit) {
            g.flush();
        }
    }

    fn device_memory_in_use(&self, memory: usize) -> Option<u64> {
        self.gpus
            .get(memory)?
            .device
            .generate_allocator_report()
            .map(|r| r.total_reserved_bytes)
    }

    fn synchronize(&self, unit: usize) -> Result<()> {
        let g = self.gpu(unit)?;
        g.flush();
        g.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| gpu_error(format!("waiting for {}: {e}", g.name)))
    }
}

impl Gpu {
    /// Submits the launches recorded and not yet submitted.
    fn flush(&self) {
        let mut pending = self.pending.lock();
        if !pending.is_empty() {
            self.queue.submit(pending.drain(..));
        }
    }

    /// Records one dispatch of a pass on `buffers` (bindings 0, 1, ...)
    /// and its parameters (the binding after them, from the ring). With
    /// `keep`, the bind group is kept for the next launch on the same
    /// buffers (not for a transient buffer).
    fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pass: &kernels::Pass,
        dtype: DType,
        buffers: &[Span<'_>],
        keep: bool,
    ) -> Result<()> {
        let compiled = self.pipeline(pass.shader, dtype)?;
        let params_bytes = (pass.params.len().max(1) * 4) as u64;
        let offset = self
            .params
            .write(&self.queue, &pass.params)
            .ok_or_else(|| {
                gpu_error(format!(
                    "`{}` has {params_bytes} bytes of parameters, more than a launch may have",
                    pass.shader.label()
                ))
            })?;
        let make = || {
            let mut entries: SmallVec<[wgpu::BindGroupEntry; 5]> = buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.binding(),
                })
                .collect();
            entries.push(wgpu::BindGroupEntry {
                binding: buffers.len() as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: self.params.buffer(),
                    offset: 0,
                    size: std::num::NonZeroU64::new(params_bytes),
                }),
            });
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(pass.shader.entry),
                layout: &compiled.layout,
                entries: &entries,
            })
        };
        let bind_group = if keep {
            let key = BindKey {
                shader: pass.shader.key,
                dtype,
                params_bytes,
                buffers: buffers
                    .iter()
                    .map(|b| (b.buffer.clone(), b.offset, b.size))
                    .collect(),
            };
            self.binds.get_or_make(key, make)
        } else {
            make()
        };
        let mut compute = encoder.begin_compute_pass(&Default::default());
        compute.set_pipeline(&compiled.pipeline);
        compute.set_bind_group(0, &bind_group, &[offset]);
        compute.dispatch_workgroups(pass.groups[0], pass.groups[1], pass.groups[2]);
        Ok(())
    }

    /// The pipeline of a shader entry point for an element type and its
    /// bind group layout, compiled on first use. A user kernel's WGSL
    /// declares its own element types: it has one pipeline.
    fn pipeline(&self, shader: kernels::Shader<'_>, dtype: DType) -> Result<Arc<Compiled>> {
        let builtin = matches!(shader.key, kernels::ShaderKey::Builtin(_));
        let dtype = if builtin { dtype } else { DType::F32 };
        let mut cache = self.pipelines.lock();
        if let Some(p) = cache.get(&(shader.key, dtype)) {
            return Ok(p.clone());
        }
        let label = shader.label();
        let source = match dtype {
            DType::F16 => variant::with_f16_elements(shader.source)
                .ok_or_else(|| gpu_error(format!("`{label}` has no f16 variant")))?,
            _ => shader.source.to_string(),
        };
        let entries = layout::entries(&source, shader.entry).map_err(|e| {
            gpu_error(format!(
                "reading the bindings of `{label}` for {}: {e}",
                self.name
            ))
        })?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(shader.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(gpu_error(format!(
                "compiling `{label}` for {}: {e}",
                self.name
            )));
        }
        let compiled = Arc::new(Compiled { pipeline, layout });
        cache.insert((shader.key, dtype), compiled.clone());
        Ok(compiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{ArgData, Mode, UnaryOp};

    fn relu(backend: &WgpuBackend, x: &DeviceBuffer, y: &DeviceBuffer) {
        let shape = [256];
        let arg = |index, mode, data| Arg {
            index,
            name: None,
            shape: &shape,
            dtype: DType::F32,
            mode,
            data,
        };
        let mut args = [
            arg(0, Mode::Read, ArgData::Device(x)),
            arg(1, Mode::Write, ArgData::Device(y)),
        ];
        backend
            .launch(0, &Kernel::Unary(UnaryOp::Relu), &mut args)
            .unwrap();
    }

    #[test]
    fn launches_on_the_same_buffers_share_a_bind_group_that_goes_with_them() {
        let backend = match open(None) {
            Ok(b) => b,
            Err(why) => {
                eprintln!("no GPU adapter ({why}): test skipped");
                return;
            }
        };
        let kept = || backend.gpus[0].binds.len();
        let buffer = || backend.alloc(0, 1024).unwrap();
        let (x, y, z) = (buffer(), buffer(), buffer());
        let values: Vec<f32> = (0..256).map(|i| i as f32 - 128.0).collect();
        backend.upload(&x, bytemuck::cast_slice(&values)).unwrap();
        for _ in 0..3 {
            relu(&backend, &x, &y);
        }
        assert_eq!(kept(), 1);
        relu(&backend, &x, &z);
        assert_eq!(kept(), 2);
        let mut out = vec![0f32; 256];
        backend
            .download(&z, bytemuck::cast_slice_mut(&mut out))
            .unwrap();
        let want: Vec<f32> = values.iter().map(|v| v.max(0.0)).collect();
        assert_eq!(out, want);
        drop(z);
        assert_eq!(kept(), 1);
        drop(x);
        assert_eq!(kept(), 0);
    }
}
