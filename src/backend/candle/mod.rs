//! TPU, VPU and LPU units on candle (cargo feature `candle`).
//!
//! The TPU unit runs the tensor kernels (GEMM, element-wise, reductions,
//! softmax, layer norm, convolution, pooling) as candle ops in f32, f64,
//! f16 and bf16; the VPU unit runs the image kernels (resize, Gaussian
//! blur, Sobel, RGB to gray, threshold) on u8 and f32 images, and
//! convolution and pooling on image batches. Its image kernels are its own,
//! not candle's generic convolution: where the candle device keeps its
//! memory on the host (the CPU device), they are the vectorised image
//! kernels, run on the replicas in place; on other devices, candle ops
//! (`image.rs`); the LPU unit runs user
//! kernels that give a [`HostKernel`] for it, such as the decode steps of a
//! language model ([`crate::llm`]), on its memory node (the KV cache stays
//! there between steps). Each unit has its own memory
//! node whose replicas are candle tensors on the unit's candle device.
//! Built with the `cuda` feature on a machine with the NVIDIA driver, the
//! TPU and VPU run on each CUDA device candle opens (GEMM through cuBLAS),
//! and the two units of one device say they share it. Otherwise, as here,
//! all three run on candle's CPU device and are marked emulated.
//!
//! A replica arrives as bytes (an upload) and becomes a candle tensor of
//! the tensor's shape and dtype the first time a kernel uses it; kernel
//! results stay candle tensors until downloaded. A host kernel works on
//! the node's memory in place (the candle CPU device's memory is host
//! memory): what it writes is kept as bytes there. None of
//! these steps moves data between memory nodes, so the memory manager's
//! accounting is complete.

mod image;
mod ops;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::backend::{
    Arg, ArgData, Backend, DeviceBuffer, Discovered, DiscoveryOptions, UnitDesc, UnitMemory,
};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{ArgMeta, HostKernel, Kernel};
use crate::power::PowerState;
use crate::unit::UnitKind;

/// Device memory a unit may use by default (bytes: candle does not tell);
/// `XPU_CANDLE_MEMORY` overrides.
const DEFAULT_MEMORY: usize = 4 << 30;

/// CUDA devices looked for at most.
const MAX_CUDA_DEVICES: usize = 16;

fn candle_error(message: impl Into<String>) -> Error {
    Error::Device {
        backend: "candle".into(),
        message: message.into(),
    }
}

/// A candle failure as a device error, with what was being done.
fn failed(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| candle_error(format!("{what}: {e}"))
}

/// Bytes in host memory, kept in 8-byte words so that any element type can
/// be viewed in place.
#[derive(Clone)]
struct HostBytes {
    words: Vec<u64>,
    len: usize,
}

impl HostBytes {
    fn zeroed(len: usize) -> HostBytes {
        HostBytes {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    fn from_bytes(bytes: &[u8]) -> HostBytes {
        let mut h = HostBytes::zeroed(bytes.len());
        h.bytes_mut().copy_from_slice(bytes);
        h
    }

    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

/// What a replica holds.
enum Stored {
    /// Nothing written yet.
    Empty,
    /// Bytes: uploaded, or written by a host kernel; not yet used by a
    /// candle op.
    Host(HostBytes),
    Tensor(Tensor),
}

struct CandleBuffer {
    stored: Mutex<Stored>,
}

/// One unit: its kind and candle device.
struct Unit {
    kind: UnitKind,
    device: Device,
    name: String,
    capacity: usize,
    /// On the CPU device, a one-thread pool of its own (made at its first
    /// low-power state, and kept), which its candle ops run on while
    /// `own_thread` is set; otherwise they run on the process's shared
    /// pool.
    own_pool: Mutex<Option<Arc<rayon::ThreadPool>>>,
    own_thread: AtomicBool,
}

/// The candle backend: a TPU, a VPU and an LPU unit.
pub struct CandleBackend {
    units: Vec<Unit>,
}

/// The candle backend for the registry (see [`crate::backend::discover`]).
pub fn discover_units(_options: &DiscoveryOptions) -> Discovered {
    Ok(discover().map(|b| b as Arc<dyn Backend>))
}

/// The candle units of this machine.
pub fn discover() -> std::result::Result<Arc<CandleBackend>, String> {
    let capacity = std::env::var("XPU_CANDLE_MEMORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MEMORY);
    let cpu = crate::host::cpu_model();
    let on_cpu = |kind| Unit {
        kind,
        device: Device::Cpu,
        name: format!("candle CPU device ({cpu})"),
        capacity,
        own_pool: Mutex::new(None),
        own_thread: AtomicBool::new(false),
    };
    // Each CUDA device candle opens (a build with the `cuda` feature, on a
    // machine with the NVIDIA driver) runs a TPU and a VPU; without one
    // they run on candle's CPU device. The LPU's decode steps are host
    // kernels: it stays on the CPU device.
    let cuda: Vec<Device> = (0..MAX_CUDA_DEVICES)
        .map_while(|ordinal| Device::new_cuda(ordinal).ok())
        .collect();
    let mut units = Vec::new();
    if cuda.is_empty() {
        units.extend([on_cpu(UnitKind::Tpu), on_cpu(UnitKind::Vpu)]);
    }
    for (ordinal, device) in cuda.into_iter().enumerate() {
        for kind in [UnitKind::Tpu, UnitKind::Vpu] {
            units.push(Unit {
                kind,
                device: device.clone(),
                name: format!("candle CUDA device {ordinal}"),
                capacity,
                own_pool: Mutex::new(None),
                own_thread: AtomicBool::new(false),
            });
        }
    }
    units.push(on_cpu(UnitKind::Lpu));
    Ok(Arc::new(CandleBackend { units }))
}

fn candle_dtype(d: DType) -> candle_core::DType {
    match d {
        DType::F32 => candle_core::DType::F32,
        DType::F64 => candle_core::DType::F64,
        DType::F16 => candle_core::DType::F16,
        DType::BF16 => candle_core::DType::BF16,
        DType::U8 => candle_core::DType::U8,
        DType::U32 => candle_core::DType::U32,
    }
}

/// How a candle unit runs a kernel: the one place that decides which unit
/// kind runs what in which dtypes, for `supports` and `launch` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Tensor kernels as candle ops (`ops.rs`).
    Ops,
    /// Image kernels (`image.rs`).
    Image,
    /// A user kernel's [`HostKernel`], on host views of the replicas.
    Host,
}

/// The route for `kernel` on a unit of `kind` with arguments of these
/// dtypes, or `None` if that unit does not run it.
fn route(kind: UnitKind, kernel: &Kernel, args: &[ArgMeta<'_>]) -> Option<Route> {
    let floats = [DType::F32, DType::F64, DType::F16, DType::BF16];
    let image = [DType::F32, DType::U8];
    let all = |allowed: &[DType]| args.iter().all(|a| allowed.contains(&a.dtype));
    let (route, allowed): (Route, &[DType]) = match (kind, kernel) {
        (UnitKind::Tpu | UnitKind::Vpu, Kernel::Conv2d { .. } | Kernel::Pool2d { .. }) => {
            (Route::Ops, &floats)
        }
        (
            UnitKind::Tpu,
            Kernel::Gemm { .. }
            | Kernel::Unary(_)
            | Kernel::Binary(_)
            | Kernel::Reduce { .. }
            | Kernel::Softmax
            | Kernel::LayerNorm { .. },
        ) => (Route::Ops, &floats),
        (
            UnitKind::Vpu,
            Kernel::Resize
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Threshold { .. }
            | Kernel::GrayBlur { .. }
            | Kernel::SobelThreshold { .. },
        ) => (Route::Image, &image),
        (kind, Kernel::Custom(c)) => {
            let host = c.implementation::<HostKernel>("candle")?;
            return host.runs_on(kind).then_some(Route::Host);
        }
        _ => return None,
    };
    all(allowed).then_some(route)
}

impl CandleBackend {
    fn unit(&self, index: usize) -> Result<&Unit> {
        self.units
            .get(index)
            .ok_or_else(|| candle_error(format!("no candle unit {index}")))
    }

    /// The argument as a candle tensor of its shape and dtype.
    fn tensor(&self, unit: &Unit, arg: &Arg<'_>) -> Result<Tensor> {
        let buf = arg.device()?.handle::<CandleBuffer>("candle")?;
        let mut stored = buf.stored.lock();
        let want = candle_dtype(arg.dtype);
        match &*stored {
            Stored::Tensor(t) if t.dtype() == want && t.dims() == arg.shape => Ok(t.clone()),
            Stored::Host(host) => {
                let n = arg.len() * arg.dtype.size();
                let bytes = host
                    .bytes()
                    .get(..n)
                    .ok_or_else(|| candle_error("a replica holds fewer bytes than its tensor"))?;
                let t = Tensor::from_raw_buffer(bytes, want, arg.shape, &unit.device)
                    .map_err(failed("loading a replica"))?;
                *stored = Stored::Tensor(t.clone());
                Ok(t)
            }
            Stored::Tensor(_) => Err(candle_error(
                "a replica holds a tensor of another shape or dtype",
            )),
            Stored::Empty => Err(candle_error("a replica was read before it was written")),
        }
    }
}

impl Backend for CandleBackend {
    fn name(&self) -> &str {
        "candle"
    }

    fn units(&self) -> Vec<UnitDesc> {
        self.units
            .iter()
            .enumerate()
            .map(|(i, u)| UnitDesc {
                kind: u.kind,
                device: u.name.clone(),
                emulated: u.device.is_cpu(),
                host_cores: u.device.is_cpu(),
                // The TPU, VPU and LPU on one CUDA or Metal device share it.
                resource: (!u.device.is_cpu()).then(|| format!("candle:{}", u.name)),
                memory: UnitMemory::Device {
                    index: i,
                    capacity: u.capacity,
                },
                details: match u.kind {
                    UnitKind::Tpu => "candle ops: GEMM, element-wise, reductions, softmax, layer norm, conv2d, pooling (f32, f64, f16, bf16)".into(),
                    UnitKind::Lpu => "user kernels with a host implementation for it: language-model decode steps (GGUF llama, quantized mat-vec kernels), KV cache on the unit's node".into(),
                    _ => "image kernels on the unit's memory: resize, Gaussian blur, Sobel, RGB to gray, threshold, fused gray+blur and Sobel+threshold (u8, f32); conv2d and pooling on image batches".into(),
                },
            })
            .collect()
    }

    fn alloc(&self, memory: usize, bytes: usize) -> Result<DeviceBuffer> {
        self.unit(memory)?;
        Ok(DeviceBuffer::new(
            bytes,
            CandleBuffer {
                stored: Mutex::new(Stored::Empty),
            },
        ))
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        let buf = dst.handle::<CandleBuffer>("candle")?;
        *buf.stored.lock() = Stored::Host(HostBytes::from_bytes(src));
        Ok(())
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        let buf = src.handle::<CandleBuffer>("candle")?;
        match &*buf.stored.lock() {
            Stored::Host(h) if h.len >= dst.len() => {
                let n = dst.len();
                dst.copy_from_slice(&h.bytes()[..n]);
                Ok(())
            }
            Stored::Tensor(t) => {
                let mut out: &mut [u8] = dst;
                t.write_bytes(&mut out)
                    .map_err(failed("reading a tensor back"))?;
                if out.is_empty() {
                    Ok(())
                } else {
                    Err(candle_error(
                        "a tensor read back was shorter than its replica",
                    ))
                }
            }
            _ => Err(candle_error("a replica was read before it was written")),
        }
    }

    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool {
        self.units
            .get(unit)
            .is_some_and(|u| route(u.kind, kernel, args).is_some())
    }

    fn set_power_state(&self, unit: usize, state: PowerState) -> Result<String> {
        let u = self.unit(unit)?;
        match u.kind {
            #[cfg(feature = "llm")]
            UnitKind::Lpu => Ok(crate::llm::set_decode_power(state)),
            kind if !u.device.is_cpu() => Err(candle_error(format!(
                "the {kind} unit runs on a CUDA device, whose clocks candle does not set: no power controls for {state}"
            ))),
            _ if state == PowerState::LowPower => {
                let mut pool = u.own_pool.lock();
                if pool.is_none() {
                    let built = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(move |_| format!("xpu-candle-{unit}"))
                        .build()
                        .map_err(|e| candle_error(format!("cannot start its thread: {e}")))?;
                    *pool = Some(Arc::new(built));
                }
                u.own_thread.store(true, Ordering::Release);
                Ok("candle ops on 1 thread of the unit's own".into())
            }
            _ => {
                u.own_thread.store(false, Ordering::Release);
                Ok(format!(
                    "candle ops on the process's shared pool ({} threads, every core)",
                    rayon::current_num_threads()
                ))
            }
        }
    }

    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        let u = self.unit(unit)?;
        let pool = if u.own_thread.load(Ordering::Acquire) {
            u.own_pool.lock().clone()
        } else {
            None
        };
        match pool {
            Some(pool) => pool.install(|| self.launch_on(u, kernel, args)),
            None => self.launch_on(u, kernel, args),
        }
    }
}

impl CandleBackend {
    /// Runs `kernel` on unit `u`, on the threads it is on now.
    fn launch_on(&self, u: &Unit, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        let metas: SmallVec<[ArgMeta<'_>; 4]> = args.iter().map(Arg::meta).collect();
        let Some(route) = route(u.kind, kernel, &metas) else {
            return Err(candle_error(format!(
                "the {} unit does not run `{}` on these dtypes",
                u.kind,
                kernel.name()
            )));
        };
        if route == Route::Image && u.device.is_cpu() {
            return run_image_in_place(kernel, args);
        }
        if route == Route::Host {
            return match kernel {
                Kernel::Custom(c) => match c.implementation::<HostKernel>("candle") {
                    Some(host) => run_on_host(host, args),
                    None => Err(candle_error("the host implementation went missing")),
                },
                _ => Err(candle_error("a built-in kernel has no host implementation")),
            };
        }
        let Some((out, inputs)) = args.split_last() else {
            return Err(candle_error(format!(
                "`{}` without arguments",
                kernel.name()
            )));
        };
        let mut tensors = inputs
            .iter()
            .map(|a| self.tensor(u, a))
            .collect::<Result<Vec<_>>>()?;
        if out.mode.reads() {
            tensors.push(self.tensor(u, out)?);
        }
        let what = format!("`{}` on the {} unit", kernel.name(), u.kind);
        let result = match route {
            Route::Image => image::run(kernel, &tensors[0], out.shape, out.dtype == DType::U8),
            _ => ops::run(kernel, &tensors, out.shape),
        }
        .and_then(|t| {
            if out.dtype == DType::U8 {
                image::levels(&t)?.to_dtype(candle_core::DType::U8)
            } else {
                t.to_dtype(candle_dtype(out.dtype))
            }
        })
        .map_err(failed(&what))?;
        if result.dims() != out.shape {
            return Err(candle_error(format!(
                "{what} produced shape {:?}, expected {:?}",
                result.dims(),
                out.shape
            )));
        }
        let ArgData::Device(buf) = &out.data else {
            return Err(candle_error("the output is not a device buffer"));
        };
        *buf.handle::<CandleBuffer>("candle")?.stored.lock() = Stored::Tensor(result);
        Ok(())
    }
}

/// A replica's buffer.
fn buffer<'a>(arg: &'a Arg<'_>) -> Result<&'a CandleBuffer> {
    arg.device()?.handle::<CandleBuffer>("candle")
}

/// The replica as `bytes` host bytes to work on in place (`Empty`: zeros).
fn host_in_place(stored: &mut Stored, bytes: usize) -> Result<&mut HostBytes> {
    let host = match std::mem::replace(stored, Stored::Empty) {
        Stored::Empty => HostBytes::zeroed(bytes),
        Stored::Host(h) => h,
        Stored::Tensor(t) => {
            let mut raw = Vec::with_capacity(bytes);
            t.write_bytes(&mut raw)
                .map_err(failed("reading a tensor"))?;
            HostBytes::from_bytes(&raw)
        }
    };
    *stored = Stored::Host(host);
    match stored {
        Stored::Host(h) if h.len >= bytes => Ok(h),
        _ => Err(candle_error("a replica holds fewer bytes than its tensor")),
    }
}

/// The VPU's image kernels where its replicas sit in host memory (candle's
/// CPU device): the vectorised image kernels of the CPU backend, on the
/// replicas in place, over the host's cores. A candle tensor left by an
/// earlier op becomes bytes once; nothing is copied per stage.
fn run_image_in_place(kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
    let [input, output] = args else {
        return Err(candle_error("image kernels take an input and an output"));
    };
    let (source, target) = (buffer(input)?, buffer(output)?);
    if std::ptr::eq(source, target) {
        return Err(candle_error(
            "an image kernel's input and output are one replica",
        ));
    }
    let size = |a: &Arg<'_>| a.len() * a.dtype.size();
    let (in_bytes, out_bytes) = (size(input), size(output));
    let mut source = source.stored.lock();
    let mut target = target.stored.lock();
    if !output.mode.reads() {
        *target = Stored::Empty;
    }
    let src = host_in_place(&mut source, in_bytes)?;
    let dst = host_in_place(&mut target, out_bytes)?;
    let mut views = [
        input.with_data(ArgData::Host(&src.bytes()[..in_bytes])),
        output.with_data(ArgData::HostMut(&mut dst.bytes_mut()[..out_bytes])),
    ];
    crate::backend::cpu::run_kernel(kernel, &mut views, crate::host::core_count())
}

/// Runs a host implementation on the unit's replicas: arguments it only
/// reads are copied out (one tensor may be read twice), those it writes
/// are worked on where they are (the KV cache of a decode step stays put).
fn run_on_host(host: &HostKernel, args: &[Arg<'_>]) -> Result<()> {
    let size = |a: &Arg<'_>| a.len() * a.dtype.size();
    let mut copies = Vec::new();
    let mut written = Vec::new();
    for a in args {
        let mut stored = buffer(a)?.stored.lock();
        if a.mode.writes() {
            host_in_place(&mut stored, size(a))?;
            written.push(stored);
        } else {
            copies.push(host_in_place(&mut stored, size(a))?.clone());
        }
    }
    let mut copies = copies.iter();
    let mut written = written.iter_mut();
    let mut views = Vec::with_capacity(args.len());
    for a in args {
        let view = if a.mode.writes() {
            match written.next().map(|g| &mut **g) {
                Some(Stored::Host(h)) => ArgData::HostMut(&mut h.bytes_mut()[..size(a)]),
                _ => return Err(candle_error("a written replica is not in host memory")),
            }
        } else {
            match copies.next() {
                Some(h) => ArgData::Host(&h.bytes()[..size(a)]),
                None => return Err(candle_error("a read replica was not copied")),
            }
        };
        views.push(a.with_data(view));
    }
    host.run(&mut views)
}
