//! The CPU backend: the host's cores as units computing on host memory.
//!
//! GEMM goes to the `gemm` crate (packed, SIMD micro-kernels), the Cholesky
//! tiles to `faer`, the rest to loops written for the compiler to vectorise.
//! Half-precision inputs are widened to f32 for everything but GEMM.
//! A one-thread GEMM or Cholesky/LU tile first reads operands that fit in
//! the core's L2 cache into it (`warm`).

mod conv;
mod elementwise;
mod gemm;
mod image;
mod linalg;
mod reduce;
mod warm;
mod widest;

use std::sync::atomic::{AtomicUsize, Ordering};

use half::{bf16, f16};
use smallvec::SmallVec;

pub use self::gemm::{gemm, GemmElement, GemmSpec};
use crate::backend::{Arg, Backend, DeviceBuffer, UnitDesc, UnitMemory};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::host;
use crate::kernel::approx::KernelMath;
use crate::kernel::{ArgMeta, Kernel};
use crate::power::PowerState;
use crate::unit::UnitKind;

/// The host's cores as CPU units.
pub struct CpuBackend {
    units: usize,
    /// Threads a kernel uses in the `Normal` power state.
    threads: usize,
    /// Threads a kernel of each unit uses now (its power state's).
    unit_threads: Vec<AtomicUsize>,
    model: String,
    /// Operand bytes up to which a one-thread blocked kernel reads its
    /// operands into cache first (see `warm`): one core's L2 cache.
    warm_budget: usize,
    /// The cores the process may use, when it was made.
    cores: Vec<usize>,
}

/// The L2 cache assumed where the system does not report one.
const DEFAULT_L2_BYTES: usize = 256 << 10;

impl CpuBackend {
    /// `units` CPU units sharing the cores; each kernel uses `cores / units` threads.
    pub fn new(units: usize) -> CpuBackend {
        let threads = (host::core_count() / units.max(1)).max(1);
        CpuBackend {
            units,
            threads,
            unit_threads: (0..units).map(|_| AtomicUsize::new(threads)).collect(),
            model: host::cpu_model(),
            warm_budget: host::l2_cache_bytes().unwrap_or(DEFAULT_L2_BYTES),
            cores: host::allowed_cores(),
        }
    }

    /// Threads one kernel uses in the `Normal` power state.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Threads a kernel of `unit` uses now: one in `LowPower`, the unit's
    /// share of the cores in `Normal`, every core in `HighPerformance`.
    pub fn threads_of(&self, unit: usize) -> usize {
        self.unit_threads
            .get(unit)
            .map_or(self.threads, |t| t.load(Ordering::Relaxed))
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }

    fn units(&self) -> Vec<UnitDesc> {
        (0..self.units)
            .map(|_| UnitDesc {
                kind: UnitKind::Cpu,
                device: self.model.clone(),
                emulated: false,
                host_cores: true,
                resource: None,
                memory: UnitMemory::Host,
                details: format!("{} thread(s) per kernel", self.threads),
            })
            .collect()
    }

    fn alloc(&self, _memory: usize, _bytes: usize) -> Result<DeviceBuffer> {
        Err(cpu_error(
            "CPU units use host memory; there is no device memory to allocate",
        ))
    }

    fn upload(&self, _dst: &DeviceBuffer, _src: &[u8]) -> Result<()> {
        Err(cpu_error("CPU units have no device memory"))
    }

    fn download(&self, _src: &DeviceBuffer, _dst: &mut [u8]) -> Result<()> {
        Err(cpu_error("CPU units have no device memory"))
    }

    fn supports(&self, _unit: usize, kernel: &Kernel, _args: &[ArgMeta<'_>]) -> bool {
        match kernel {
            Kernel::Custom(c) => c.cpu().is_some(),
            _ => true,
        }
    }

    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        let threads = self.threads_of(unit);
        // Packed blocks: the kernels whose first touches of a cold operand stall.
        if threads == 1 && kernel.is_dense_linear_algebra() {
            warm::warm(args, self.warm_budget);
        }
        run_kernel(kernel, args, threads)
    }

    /// With a core for each unit, unit `i` computes on the `i`-th core the
    /// process may use (on Linux, where threads can be bound). Fewer units
    /// than cores share the cores through their kernels' threads, and more
    /// units than cores take turns: those are not bound.
    fn worker_core(&self, unit: usize) -> Option<usize> {
        (cfg!(target_os = "linux") && self.threads == 1 && self.units <= self.cores.len())
            .then(|| self.cores.get(unit).copied())
            .flatten()
    }

    fn set_power_state(&self, unit: usize, state: PowerState) -> Result<String> {
        let threads = match state {
            PowerState::LowPower => 1,
            PowerState::Normal => self.threads,
            PowerState::HighPerformance => host::core_count().max(self.threads),
        };
        let slot = self
            .unit_threads
            .get(unit)
            .ok_or_else(|| cpu_error(&format!("no CPU unit {unit}")))?;
        slot.store(threads, Ordering::Relaxed);
        Ok(format!("{threads} thread(s) per kernel"))
    }
}

/// Runs a built-in or CPU user kernel on host arguments with `threads` threads.
///
/// Arguments must already satisfy [`Kernel::check`].
pub fn run_kernel(kernel: &Kernel, args: &mut [Arg<'_>], threads: usize) -> Result<()> {
    match kernel {
        Kernel::Noop => Ok(()),
        Kernel::Custom(c) => match c.cpu() {
            Some(f) => f(args),
            None => Err(cpu_error(&format!(
                "kernel `{}` has no CPU implementation",
                c.name()
            ))),
        },
        Kernel::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => {
            let spec = GemmSpec {
                trans_a: *trans_a,
                trans_b: *trans_b,
                alpha: *alpha,
                beta: *beta,
                threads,
            };
            gemm::launch(&spec, args)
        }
        Kernel::Potrf
        | Kernel::Trsm
        | Kernel::Syrk
        | Kernel::Getrf
        | Kernel::TrsmLower
        | Kernel::TrsmUpper => linalg::launch(kernel, args, threads),
        Kernel::Resize
        | Kernel::GaussianBlur { .. }
        | Kernel::Sobel
        | Kernel::RgbToGray
        | Kernel::Threshold { .. }
        | Kernel::GrayBlur { .. }
        | Kernel::SobelThreshold { .. } => image::launch(kernel, args, threads),
        _ => run_float_kernel(kernel, args, threads),
    }
}

/// Runs a kernel of one input and one output on host slices with
/// `threads` threads: the output, a fresh one of `out_shape`.
#[cfg(test)]
pub(crate) fn run_on_host<T: crate::Element + Default>(
    kernel: &Kernel,
    input: &[T],
    in_shape: &[usize],
    out_shape: &[usize],
    threads: usize,
) -> Vec<T> {
    use crate::kernel::{ArgData, Mode};
    let mut out = vec![T::default(); out_shape.iter().product()];
    let arg = |shape, mode, data| Arg {
        index: 0,
        name: None,
        shape,
        dtype: T::DTYPE,
        mode,
        data,
    };
    let mut args = [
        arg(
            in_shape,
            Mode::Read,
            ArgData::Host(bytemuck::cast_slice(input)),
        ),
        arg(
            out_shape,
            Mode::Write,
            ArgData::HostMut(bytemuck::cast_slice_mut(&mut out)),
        ),
    ];
    run_kernel(kernel, &mut args, threads).expect("the kernel runs");
    out
}

/// Runs a kernel whose last argument is its only output and whose
/// arguments all share one float dtype; f16 and bf16 are widened to f32.
fn run_float_kernel(kernel: &Kernel, args: &mut [Arg<'_>], threads: usize) -> Result<()> {
    let (out, ins) = args
        .split_last_mut()
        .ok_or_else(|| cpu_error("kernel without arguments"))?;
    let shapes: SmallVec<[&[usize]; 4]> = ins.iter().map(|a| a.shape).collect();
    match out.dtype {
        DType::F32 => native::<f32>(kernel, ins, &shapes, out, threads),
        DType::F64 => native::<f64>(kernel, ins, &shapes, out, threads),
        DType::F16 => widened::<f16>(kernel, ins, &shapes, out, threads),
        DType::BF16 => widened::<bf16>(kernel, ins, &shapes, out, threads),
        DType::U8 | DType::U32 => Err(cpu_error(&format!(
            "`{}` has no {} version",
            kernel.name(),
            out.dtype
        ))),
    }
}

/// Runs a kernel on f32 or f64 arguments as they are.
fn native<F: Float>(
    kernel: &Kernel,
    ins: &[Arg<'_>],
    shapes: &[&[usize]],
    out: &mut Arg<'_>,
    threads: usize,
) -> Result<()> {
    let ins: SmallVec<[&[F]; 4]> = ins.iter().map(|a| a.as_slice()).collect::<Result<_>>()?;
    let out_shape = out.shape;
    float_kernel(
        kernel,
        &ins,
        shapes,
        out.as_mut_slice()?,
        out_shape,
        threads,
    )
}

/// Runs a half-precision kernel in f32 and rounds the result back.
fn widened<H: Element>(
    kernel: &Kernel,
    ins: &[Arg<'_>],
    shapes: &[&[usize]],
    out: &mut Arg<'_>,
    threads: usize,
) -> Result<()> {
    let wide: Vec<Vec<f32>> = ins
        .iter()
        .map(|a| {
            Ok(a.as_slice::<H>()?
                .iter()
                .map(|v| v.to_f64() as f32)
                .collect())
        })
        .collect::<Result<_>>()?;
    let refs: SmallVec<[&[f32]; 4]> = wide.iter().map(Vec::as_slice).collect();
    let mut result = vec![0f32; out.len()];
    float_kernel(kernel, &refs, shapes, &mut result, out.shape, threads)?;
    for (o, r) in out.as_mut_slice::<H>()?.iter_mut().zip(result) {
        *o = H::from_f64(r as f64);
    }
    Ok(())
}

/// The float kernels with one output, on f32 or f64.
fn float_kernel<F: Float>(
    kernel: &Kernel,
    ins: &[&[F]],
    shapes: &[&[usize]],
    out: &mut [F],
    out_shape: &[usize],
    threads: usize,
) -> Result<()> {
    match kernel {
        Kernel::Unary(op) => elementwise::unary(*op, ins[0], out, threads),
        Kernel::Binary(op) => elementwise::binary(*op, ins[0], ins[1], out, threads),
        Kernel::Reduce { op, axis } => reduce::reduce(*op, ins[0], shapes[0], *axis, out),
        Kernel::Softmax => reduce::softmax(ins[0], shapes[0], out),
        Kernel::LayerNorm { eps } => reduce::layer_norm(
            ins[0],
            shapes[0],
            ins[1],
            ins[2],
            F::from(*eps).unwrap_or(F::zero()),
            out,
        ),
        Kernel::Conv2d { stride, padding } => {
            let geometry =
                conv::ConvGeometry::new(shapes[0], shapes[1], out_shape, *stride, *padding);
            return conv::conv2d(ins[0], ins[1], out, &geometry, threads);
        }
        Kernel::Pool2d { op, window, stride } => {
            conv::pool2d(*op, ins[0], shapes[0], *window, *stride, out, out_shape)
        }
        other => {
            return Err(cpu_error(&format!(
                "`{}` is not a float kernel",
                other.name()
            )))
        }
    }
    Ok(())
}

/// Float element types the CPU kernels compute in.
pub(crate) trait Float:
    num_traits::Float + KernelMath + GemmElement + std::iter::Sum + Default
{
}
impl Float for f32 {}
impl Float for f64 {}

fn cpu_error(message: &str) -> Error {
    Error::Device {
        backend: "cpu".into(),
        message: message.into(),
    }
}
