//! The built-in kernel set: what each kernel takes, how it is checked at
//! submission (`check.rs`), what it costs in FLOPs and bytes, the op
//! tables of the element-wise, reduction and pooling kernels (`ops.rs`),
//! and kernels as JSON specs (`spec.rs`).
//!
//! A [`Kernel`] is a description, not code: each backend that supports it has
//! its own implementation (see [`crate::backend`]). User kernels
//! (`custom.rs`) are [`Kernel::define`]d with a name, an access list, a
//! check, a cost and implementations for any of CPU, WGSL, OpenCL C or a
//! named backend; [`Kernel::custom`] is the short form for a CPU closure.

use std::sync::Arc;

pub mod approx;
mod arg;
mod check;
mod custom;
mod ops;
mod spec;

pub use arg::{Arg, ArgData, DeviceBuffer};
pub use custom::{
    CheckFn, CpuFn, CustomKernel, DeviceProgram, FlopsFn, HostKernel, KernelDef, Launch, LaunchFn,
};
pub use ops::{BinaryOp, PoolOp, ReduceOp, UnaryOp};
pub use spec::spec_names;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// How a task accesses a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Read only: the task needs a valid copy.
    Read,
    /// Write only: the previous content is not needed.
    Write,
    /// Read and write.
    ReadWrite,
}

impl Mode {
    /// Whether the task reads the previous content.
    pub const fn reads(self) -> bool {
        matches!(self, Mode::Read | Mode::ReadWrite)
    }
    /// Whether the task changes the content.
    pub const fn writes(self) -> bool {
        matches!(self, Mode::Write | Mode::ReadWrite)
    }
    /// `R`, `W` or `RW`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Read => "R",
            Mode::Write => "W",
            Mode::ReadWrite => "RW",
        }
    }
}

/// A reduction of `shape` along `axis` as `[outer, len, inner]`.
///
/// ```
/// assert_eq!(xpu::kernel::reduce_extents(&[2, 3, 4], 1), (2, 3, 4));
/// assert_eq!(xpu::kernel::reduce_extents(&[5], 0), (1, 5, 1));
/// ```
pub fn reduce_extents(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// A kernel: what a task computes.
///
/// ```
/// use xpu::Kernel;
/// let k = Kernel::gemm().transpose_b();
/// assert_eq!(k.name(), "gemm");
/// ```
#[derive(Debug, Clone)]
pub enum Kernel {
    /// Does nothing; used to measure the runtime's own overhead.
    Noop,
    /// `C = alpha * op(A) * op(B) + beta * C`.
    Gemm {
        trans_a: bool,
        trans_b: bool,
        alpha: f64,
        beta: f64,
    },
    /// `out = f(x)` element-wise.
    Unary(UnaryOp),
    /// `out = a (op) b` element-wise, same shapes.
    Binary(BinaryOp),
    /// Reduces `x` along `axis`; `out` has that axis removed.
    Reduce { op: ReduceOp, axis: usize },
    /// Softmax along the last axis.
    Softmax,
    /// Layer norm over the last axis: `x, gamma, beta -> out`.
    LayerNorm { eps: f64 },
    /// 2-D convolution, NCHW input, OIHW weights, no bias.
    Conv2d { stride: usize, padding: usize },
    /// 2-D pooling over NCHW with a square window.
    Pool2d {
        op: PoolOp,
        window: usize,
        stride: usize,
    },
    /// Bilinear resize of an `[H, W]` or `[H, W, C]` image to the output's size.
    Resize,
    /// Gaussian blur of an `[H, W]` or `[H, W, C]` image (border clamped).
    GaussianBlur { sigma: f64 },
    /// Sobel gradient magnitude of an `[H, W]` or `[H, W, C]` image, per channel.
    Sobel,
    /// `[H, W, 3]` RGB to `[H, W]` gray (ITU-R BT.601 weights).
    RgbToGray,
    /// Binary threshold of an `[H, W]` or `[H, W, C]` image: `max` where the
    /// value is above `value`, 0 elsewhere (OpenCV's THRESH_BINARY).
    Threshold { value: f64, max: f64 },
    /// [`Kernel::RgbToGray`] then [`Kernel::GaussianBlur`] in one pass,
    /// `[H, W, 3]` to `[H, W]`: the gray image is what `rgb_to_gray` would
    /// store in the tensors' dtype (u8: rounded) but is never written to
    /// memory, so the result is that of the two kernels in turn.
    GrayBlur { sigma: f64 },
    /// [`Kernel::Sobel`] then [`Kernel::Threshold`] in one pass: the
    /// magnitude is what `sobel` would store in the tensors' dtype (u8:
    /// rounded and saturated) but is never written to memory, so the
    /// result is that of the two kernels in turn (an edge map).
    SobelThreshold { value: f64, max: f64 },
    /// Cholesky factor of a symmetric positive definite tile, in place (lower).
    Potrf,
    /// `B := B * L^-T` with `L` lower triangular (the Cholesky panel update).
    Trsm,
    /// `C := C - A * A^T`, lower triangle of `C` (the Cholesky trailing update).
    Syrk,
    /// LU factor of a tile without pivoting, in place: `L` (unit diagonal,
    /// not stored) below the diagonal, `U` on and above it (the LU diagonal
    /// tile; the tile must not need pivoting, e.g. diagonally dominant).
    Getrf,
    /// `B := L^-1 * B` with `L` the unit lower triangle of an LU tile (the
    /// LU row panel).
    TrsmLower,
    /// `B := B * U^-1` with `U` the upper triangle of an LU tile (the LU
    /// column panel).
    TrsmUpper,
    /// A user kernel.
    Custom(Arc<CustomKernel>),
}

/// The shape, dtype and access mode of one argument, as seen at submission.
#[derive(Debug, Clone, Copy)]
pub struct ArgMeta<'a> {
    pub shape: &'a [usize],
    pub dtype: DType,
    pub mode: Mode,
}

/// `512x512 f32 RW`: shape, dtype and mode.
///
/// ```
/// use xpu::{ArgMeta, DType, Mode};
/// let a = ArgMeta { shape: &[512, 256], dtype: DType::F32, mode: Mode::ReadWrite };
/// assert_eq!(a.to_string(), "512x256 f32 RW");
/// ```
impl std::fmt::Display for ArgMeta<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        write!(
            f,
            "{} {} {}",
            dims.join("x"),
            self.dtype,
            self.mode.as_str()
        )
    }
}

impl Kernel {
    /// `C = A * B` (alpha 1, beta 0): arguments `A (R), B (R), C (W)`.
    pub fn gemm() -> Kernel {
        Kernel::Gemm {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// Sets `trans_a` on a GEMM (other kernels are returned unchanged).
    pub fn transpose_a(mut self) -> Kernel {
        if let Kernel::Gemm { trans_a, .. } = &mut self {
            *trans_a = true;
        }
        self
    }

    /// Sets `trans_b` on a GEMM (other kernels are returned unchanged).
    pub fn transpose_b(mut self) -> Kernel {
        if let Kernel::Gemm { trans_b, .. } = &mut self {
            *trans_b = true;
        }
        self
    }

    /// Sets alpha and beta on a GEMM; with `beta != 0`, C must be accessed read-write.
    pub fn scaled(mut self, new_alpha: f64, new_beta: f64) -> Kernel {
        if let Kernel::Gemm { alpha, beta, .. } = &mut self {
            *alpha = new_alpha;
            *beta = new_beta;
        }
        self
    }

    /// Starts the definition of a user kernel with these access modes;
    /// add implementations, then [`KernelDef::build`] it (or
    /// `Runtime::register` it, which also validates and builds its device
    /// programs). See `examples/custom_kernel.rs`.
    ///
    /// ```
    /// use xpu::{DType, Error, Kernel, Mode, Runtime};
    /// let scale = Kernel::define("scale3", &[Mode::Read, Mode::Write])
    ///     .check(|args| match args[0].dtype {
    ///         DType::F32 => Ok(()),
    ///         other => Err(Error::Config(format!("scale3 takes f32, got {other}"))),
    ///     })
    ///     .flops(|shapes| shapes[0].iter().product::<usize>() as f64)
    ///     .cpu(|args| {
    ///         let x = args[0].as_slice::<f32>()?.to_vec();
    ///         for (o, v) in args[1].as_mut_slice::<f32>()?.iter_mut().zip(x) {
    ///             *o = 3.0 * v;
    ///         }
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// let rt = Runtime::builder().device_discovery(false).build()?;
    /// let x = rt.tensor(&[2], vec![1.0f32, 2.0])?;
    /// let y = rt.empty(&[2], DType::F32);
    /// rt.submit(&scale, &[x.read(), y.write()])?;
    /// assert_eq!(rt.read::<f32>(&y)?, vec![3.0, 6.0]);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn define(name: &str, modes: &[Mode]) -> KernelDef {
        KernelDef::new(name, modes)
    }

    /// A user kernel with only a CPU implementation (the short form of
    /// [`Kernel::define`]).
    ///
    /// ```
    /// use xpu::{Kernel, Mode, Runtime};
    /// let double = Kernel::custom("double", &[Mode::ReadWrite], |args| {
    ///     for v in args[0].as_f32_mut()? { *v *= 2.0; }
    ///     Ok(())
    /// });
    /// let rt = Runtime::builder().build()?;
    /// let t = rt.tensor(&[3], vec![1.0f32, 2.0, 3.0])?;
    /// rt.submit(&double, &[t.rw()])?;
    /// assert_eq!(rt.read::<f32>(&t)?, vec![2.0, 4.0, 6.0]);
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn custom<F>(name: &str, modes: &[Mode], cpu: F) -> Kernel
    where
        F: Fn(&mut [Arg<'_>]) -> Result<()> + Send + Sync + 'static,
    {
        KernelDef::new(name, modes).cpu(cpu).into_kernel()
    }

    /// A user kernel with no implementation of its own: only a backend that
    /// recognises it by name (an embedder's own backend) can run it.
    pub fn named(name: &str, modes: &[Mode]) -> Kernel {
        KernelDef::new(name, modes).into_kernel()
    }

    /// The kernel's name, as used by `xpu bench --kernel`.
    pub fn name(&self) -> &str {
        match self {
            Kernel::Noop => "noop",
            Kernel::Gemm { .. } => "gemm",
            Kernel::Unary(op) => op.name(),
            Kernel::Binary(op) => op.name(),
            Kernel::Reduce { op, .. } => op.name(),
            Kernel::Softmax => "softmax",
            Kernel::LayerNorm { .. } => "layer_norm",
            Kernel::Conv2d { .. } => "conv2d",
            Kernel::Pool2d { op, .. } => op.name(),
            Kernel::Resize => "resize",
            Kernel::GaussianBlur { .. } => "gaussian_blur",
            Kernel::Sobel => "sobel",
            Kernel::RgbToGray => "rgb_to_gray",
            Kernel::Threshold { .. } => "threshold",
            Kernel::GrayBlur { .. } => "gray_blur",
            Kernel::SobelThreshold { .. } => "sobel_threshold",
            Kernel::Potrf => "potrf",
            Kernel::Trsm => "trsm",
            Kernel::Syrk => "syrk",
            Kernel::Getrf => "getrf",
            Kernel::TrsmLower => "trsm_ll",
            Kernel::TrsmUpper => "trsm_ru",
            Kernel::Custom(c) => c.name(),
        }
    }

    /// The two kernels a fused kernel runs in turn (its intermediate
    /// stored in the tensors' dtype), or `None` for one that is not fused.
    ///
    /// ```
    /// use xpu::Kernel;
    /// let [first, second] = Kernel::GrayBlur { sigma: 2.0 }.unfused().unwrap();
    /// assert_eq!((first.name(), second.name()), ("rgb_to_gray", "gaussian_blur"));
    /// assert!(Kernel::Sobel.unfused().is_none());
    /// ```
    pub fn unfused(&self) -> Option<[Kernel; 2]> {
        match *self {
            Kernel::GrayBlur { sigma } => Some([Kernel::RgbToGray, Kernel::GaussianBlur { sigma }]),
            Kernel::SobelThreshold { value, max } => {
                Some([Kernel::Sobel, Kernel::Threshold { value, max }])
            }
            _ => None,
        }
    }

    /// The access modes the kernel expects, one per argument (`None`: any list).
    ///
    /// ```
    /// use xpu::{Kernel, Mode};
    /// assert_eq!(Kernel::Potrf.modes(), Some(vec![Mode::ReadWrite]));
    /// assert_eq!(Kernel::Noop.modes(), None);
    /// ```
    pub fn modes(&self) -> Option<Vec<Mode>> {
        use Mode::*;
        Some(match self {
            Kernel::Noop => return None,
            Kernel::Gemm { beta, .. } if *beta != 0.0 => vec![Read, Read, ReadWrite],
            Kernel::Gemm { .. } => vec![Read, Read, Write],
            Kernel::Binary(_) => vec![Read, Read, Write],
            Kernel::LayerNorm { .. } => vec![Read, Read, Read, Write],
            Kernel::Conv2d { .. } => vec![Read, Read, Write],
            Kernel::Unary(_)
            | Kernel::Reduce { .. }
            | Kernel::Softmax
            | Kernel::Pool2d { .. }
            | Kernel::Resize
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Threshold { .. }
            | Kernel::GrayBlur { .. }
            | Kernel::SobelThreshold { .. } => vec![Read, Write],
            Kernel::Potrf | Kernel::Getrf => vec![ReadWrite],
            Kernel::Trsm | Kernel::Syrk | Kernel::TrsmLower | Kernel::TrsmUpper => {
                vec![Read, ReadWrite]
            }
            Kernel::Custom(c) => c.modes().to_vec(),
        })
    }

    fn shape_err(&self, what: String) -> Error {
        Error::Shape {
            kernel: self.name().to_string(),
            what,
        }
    }

    /// Floating-point operations the kernel performs on these shapes.
    pub fn flops(&self, shapes: &[&[usize]]) -> f64 {
        let n = |i: usize| shapes[i].iter().product::<usize>() as f64;
        match self {
            Kernel::Noop => 0.0,
            Kernel::Custom(c) => c.flops(shapes),
            Kernel::Gemm { trans_a, .. } => {
                let (m, k) = gemm_dims(shapes[0], *trans_a);
                2.0 * m as f64 * k as f64 * shapes[2][1] as f64
            }
            Kernel::Unary(op) => op.flops_per_element() * n(0),
            Kernel::Binary(op) => op.flops_per_element() * n(0),
            Kernel::Reduce { op, .. } => op.flops_per_element() * n(0),
            Kernel::Softmax => 4.0 * n(0),
            Kernel::LayerNorm { .. } => 8.0 * n(0),
            Kernel::Conv2d { .. } => {
                let w = shapes[1];
                2.0 * n(2) * (w[1] * w[2] * w[3]) as f64
            }
            Kernel::Pool2d { window, .. } => n(1) * (window * window) as f64,
            Kernel::Resize => 8.0 * n(1),
            Kernel::GaussianBlur { sigma } => 4.0 * n(0) * (2 * blur_radius(*sigma) + 1) as f64,
            Kernel::Sobel => 20.0 * n(0),
            Kernel::RgbToGray => 5.0 * n(1),
            Kernel::Threshold { .. } => n(0),
            Kernel::GrayBlur { sigma } => n(1) * (5 + 4 * (2 * blur_radius(*sigma) + 1)) as f64,
            Kernel::SobelThreshold { .. } => 21.0 * n(0),
            Kernel::Potrf => (shapes[0][0] as f64).powi(3) / 3.0,
            Kernel::Trsm => (shapes[0][0] as f64).powi(2) * shapes[1][0] as f64,
            Kernel::Syrk => (shapes[1][0] as f64).powi(2) * shapes[0][1] as f64,
            Kernel::Getrf => 2.0 * (shapes[0][0] as f64).powi(3) / 3.0,
            Kernel::TrsmLower | Kernel::TrsmUpper => shapes[0][0] as f64 * n(1),
        }
    }

    /// Bytes the kernel moves to and from memory at least once on these
    /// arguments: each argument read, each written (read-write counts
    /// twice). With [`Kernel::flops`], the footprint placement keys on.
    ///
    /// ```
    /// use xpu::{ArgMeta, DType, Kernel, Mode, UnaryOp};
    /// let x = ArgMeta { shape: &[256], dtype: DType::F32, mode: Mode::Read };
    /// let y = ArgMeta { shape: &[256], dtype: DType::F32, mode: Mode::Write };
    /// assert_eq!(Kernel::Unary(UnaryOp::Relu).bytes(&[x, y]), 2 * 256 * 4);
    /// ```
    pub fn bytes(&self, args: &[ArgMeta<'_>]) -> u64 {
        args.iter()
            .map(|a| {
                let size = (a.shape.iter().product::<usize>() * a.dtype.size()) as u64;
                size * (a.mode.reads() as u64 + a.mode.writes() as u64)
            })
            .sum()
    }

    /// Whether throughput is better reported in GB/s than GFLOP/s.
    pub fn is_memory_bound(&self) -> bool {
        !(self.is_dense_linear_algebra() || matches!(self, Kernel::Conv2d { .. }))
    }

    /// GEMM and the tiles of the Cholesky and LU factorisations: the
    /// kernels that work on their operands in packed blocks.
    pub(crate) fn is_dense_linear_algebra(&self) -> bool {
        matches!(
            self,
            Kernel::Gemm { .. }
                | Kernel::Potrf
                | Kernel::Trsm
                | Kernel::Syrk
                | Kernel::Getrf
                | Kernel::TrsmLower
                | Kernel::TrsmUpper
        )
    }
}

/// Rows and columns of `op(X)` for a stored `[r, c]` matrix.
pub(crate) fn gemm_dims(shape: &[usize], trans: bool) -> (usize, usize) {
    if trans {
        (shape[1], shape[0])
    } else {
        (shape[0], shape[1])
    }
}

/// Output extent of a sliding window, or `None` if it does not fit.
///
/// ```
/// assert_eq!(xpu::kernel::conv_out(32, 3, 1, 1), Some(32));
/// assert_eq!(xpu::kernel::conv_out(2, 3, 1, 0), None);
/// ```
pub fn conv_out(input: usize, window: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = input + 2 * padding;
    (stride > 0 && window > 0 && padded >= window).then(|| (padded - window) / stride + 1)
}

/// The Gaussian kernel's radius for a sigma: three standard deviations.
///
/// ```
/// assert_eq!(xpu::kernel::blur_radius(1.0), 3);
/// ```
pub fn blur_radius(sigma: f64) -> usize {
    (3.0 * sigma).ceil().max(1.0) as usize
}

/// The 1-D Gaussian taps `exp(-d^2 / (2 sigma^2))` for `|d| <=
/// blur_radius(sigma)`, not normalised (divide by their sum).
///
/// ```
/// let taps = xpu::kernel::gaussian_taps(1.0);
/// assert_eq!(taps.len(), 7);
/// assert_eq!(taps[3], 1.0);
/// ```
pub fn gaussian_taps(sigma: f64) -> Vec<f64> {
    let r = blur_radius(sigma) as i64;
    (-r..=r)
        .map(|d| (-((d * d) as f64) / (2.0 * sigma * sigma)).exp())
        .collect()
}

/// The 1-D Gaussian taps for `sigma`, normalised to sum 1.
pub fn gaussian_weights(sigma: f64) -> Vec<f32> {
    let taps = gaussian_taps(sigma);
    let total: f64 = taps.iter().sum();
    taps.iter().map(|v| (v / total) as f32).collect()
}
