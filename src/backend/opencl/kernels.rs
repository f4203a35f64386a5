//! Which program and entry point of `kernels/*.cl` (or of a user
//! kernel's OpenCL C) runs each kernel, with what scalar arguments and over
//! what range of work-items: the plan a launch follows, and from which the
//! backend answers whether it supports a kernel on given arguments.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{
    blur_radius, gaussian_taps, gemm_dims, reduce_extents, ArgMeta, CustomKernel, Kernel,
};

/// Prepended to every program: the op-code constants, element types and
/// shared helpers (`kernels/common.cl`), the element-wise expressions
/// (`kernels/ops.cl`) and their dispatch, as `build.rs` composed them.
const COMMON: &str = include_str!(concat!(env!("OUT_DIR"), "/kernels/prelude.cl"));

/// One `.cl` file; built once per element type it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Gemm,
    Elementwise,
    Reduce,
    Conv,
    Image,
}

/// Every program, for ahead-of-time builds.
pub const SOURCES: [Source; 5] = [
    Source::Gemm,
    Source::Elementwise,
    Source::Reduce,
    Source::Conv,
    Source::Image,
];

/// Tensor kernels take f32 or f16 (stored as half, computed in float);
/// image kernels f32 or u8.
const TENSOR_DTYPES: &[DType] = &[DType::F32, DType::F16];
const IMAGE_DTYPES: &[DType] = &[DType::F32, DType::U8];

impl Source {
    /// The file's name without `.cl`.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Gemm => "gemm",
            Source::Elementwise => "elementwise",
            Source::Reduce => "reduce",
            Source::Conv => "conv",
            Source::Image => "image",
        }
    }

    fn body(&self) -> &'static str {
        match self {
            Source::Gemm => include_str!("../../../kernels/gemm.cl"),
            Source::Elementwise => include_str!("../../../kernels/elementwise.cl"),
            Source::Reduce => include_str!("../../../kernels/reduce.cl"),
            Source::Conv => include_str!("../../../kernels/conv.cl"),
            Source::Image => include_str!("../../../kernels/image.cl"),
        }
    }

    /// The full source handed to the compiler.
    pub fn text(&self) -> String {
        format!("{COMMON}\n{}", self.body())
    }

    /// The element types the program is built for.
    pub fn dtypes(&self) -> &'static [DType] {
        match self {
            Source::Image => IMAGE_DTYPES,
            _ => TENSOR_DTYPES,
        }
    }
}

/// Build options selecting the element type (see `kernels/common.cl`).
pub fn options(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "-cl-mad-enable -DXPU_F16",
        DType::U8 => "-cl-mad-enable -DXPU_U8",
        _ => "-cl-mad-enable",
    }
}

/// A scalar kernel argument.
#[derive(Debug, Clone, Copy)]
pub enum Scalar {
    U32(u32),
    F32(f32),
}

/// What a built program is cached under (with its element type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgramKey {
    Builtin(Source),
    /// A user kernel's OpenCL C, by [`CustomKernel::id`].
    User(u64),
}

/// The program a launch needs.
#[derive(Clone, Copy)]
pub enum Program<'k> {
    Builtin(Source),
    User(&'k CustomKernel),
}

impl Program<'_> {
    /// The cache key of this program built for `dtype` (a user program
    /// declares its own types: one build serves all).
    pub fn key(&self, dtype: DType) -> (ProgramKey, DType) {
        match self {
            Program::Builtin(s) => (ProgramKey::Builtin(*s), dtype),
            Program::User(k) => (ProgramKey::User(k.id()), DType::F32),
        }
    }

    /// The full source handed to the compiler: a built-in file after the
    /// prelude; a user's source as given.
    pub fn text(&self) -> String {
        match self {
            Program::Builtin(s) => s.text(),
            Program::User(k) => k.opencl().map_or(String::new(), |p| p.source().to_string()),
        }
    }

    /// Build options for `dtype`.
    pub fn options(&self, dtype: DType) -> &'static str {
        match self {
            Program::Builtin(_) => options(dtype),
            Program::User(_) => "",
        }
    }

    /// What build messages call it.
    pub fn label(&self, dtype: DType) -> String {
        match self {
            Program::Builtin(s) => format!("kernels/{}.cl ({dtype})", s.name()),
            Program::User(k) => format!("the OpenCL C of user kernel `{}`", k.name()),
        }
    }
}

/// A launch: program and entry point, the scalars that follow the buffer
/// arguments, and the work-item range.
pub struct Plan<'k> {
    pub program: Program<'k>,
    pub entry: &'k str,
    pub scalars: Vec<Scalar>,
    pub global: [usize; 3],
    /// Work-group size; `None` lets the driver choose.
    pub local: Option<[usize; 3]>,
    /// A second pass for a two-argument kernel (the separable blur):
    /// `entry` reads the input and writes a transient `f32` buffer of one
    /// value per output element, then this entry, with the same scalars
    /// and range, reads that buffer and writes the output.
    pub second: Option<&'static str>,
}

/// Work-items per group of the element-wise kernels.
const GROUP: usize = 256;
/// `ROW_GROUP` in `kernels/common.cl`.
const ROW_GROUP: usize = 64;

/// The program that runs a built-in `kernel`, if any.
fn source_of(kernel: &Kernel) -> Option<Source> {
    Some(match kernel {
        Kernel::Gemm { .. } => Source::Gemm,
        Kernel::Unary(_) | Kernel::Binary(_) => Source::Elementwise,
        Kernel::Reduce { .. } | Kernel::Softmax | Kernel::LayerNorm { .. } => Source::Reduce,
        Kernel::Conv2d { .. } | Kernel::Pool2d { .. } => Source::Conv,
        Kernel::Resize
        | Kernel::GaussianBlur { .. }
        | Kernel::Sobel
        | Kernel::RgbToGray
        | Kernel::Threshold { .. }
        | Kernel::GrayBlur { .. }
        | Kernel::SobelThreshold { .. } => Source::Image,
        _ => return None,
    })
}

fn unsupported(what: String) -> Error {
    Error::Device {
        backend: "opencl".into(),
        message: what,
    }
}

/// A user kernel's OpenCL C on its launch rule; its words become `uint`
/// arguments.
fn user<'k>(kernel: &'k CustomKernel, args: &[ArgMeta<'_>]) -> Result<Plan<'k>> {
    let Some(program) = kernel.opencl() else {
        return Err(unsupported(format!(
            "user kernel `{}` has no OpenCL C implementation",
            kernel.name()
        )));
    };
    let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape).collect();
    let launch = program.launch(&shapes);
    Ok(Plan {
        program: Program::User(kernel),
        entry: program.entry(),
        scalars: launch.params.into_iter().map(Scalar::U32).collect(),
        global: launch.grid.map(|g| g.max(1) as usize),
        local: None,
        second: None,
    })
}

fn u(v: usize) -> Scalar {
    Scalar::U32(v as u32)
}

fn f(v: f64) -> Scalar {
    Scalar::F32(v as f32)
}

fn per_element(
    source: Source,
    entry: &'static str,
    n: usize,
    scalars: Vec<Scalar>,
) -> Plan<'static> {
    Plan {
        program: Program::Builtin(source),
        entry,
        scalars,
        global: [n.max(1).div_ceil(GROUP) * GROUP, 1, 1],
        local: Some([GROUP, 1, 1]),
        second: None,
    }
}

fn per_row(entry: &'static str, rows: usize, scalars: Vec<Scalar>) -> Plan<'static> {
    Plan {
        program: Program::Builtin(Source::Reduce),
        entry,
        scalars,
        global: [rows.max(1) * ROW_GROUP, 1, 1],
        local: Some([ROW_GROUP, 1, 1]),
        second: None,
    }
}

/// The launch for `kernel` on these arguments, or why there is none (no
/// program, or not in these element types). `local_memory` says whether
/// the device has dedicated local memory (it picks the GEMM variant).
pub fn plan<'k>(kernel: &'k Kernel, args: &[ArgMeta<'_>], local_memory: bool) -> Result<Plan<'k>> {
    if let Kernel::Custom(c) = kernel {
        return user(c, args);
    }
    let Some(source) = source_of(kernel) else {
        return Err(unsupported(format!(
            "`{}` has no OpenCL kernel",
            kernel.name()
        )));
    };
    if let Some(a) = args.iter().find(|a| !source.dtypes().contains(&a.dtype)) {
        return Err(unsupported(format!(
            "`{}` has no OpenCL kernel in {}",
            kernel.name(),
            a.dtype
        )));
    }
    let shape = |i: usize| args[i].shape;
    let len = |i: usize| args[i].shape.iter().product::<usize>();
    let last = |i: usize| shape(i).last().copied().unwrap_or(1).max(1);
    let image = |entry, n, scalars| per_element(Source::Image, entry, n, scalars);
    Ok(match kernel {
        Kernel::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => {
            let (m, k) = gemm_dims(shape(0), *trans_a);
            let n = shape(2)[1];
            if !local_memory && !trans_a && !trans_b && m % 8 == 0 && n % 32 == 0 {
                Plan {
                    program: Program::Builtin(Source::Gemm),
                    entry: "gemm_block",
                    scalars: vec![u(m), u(n), u(k), f(*alpha), f(*beta)],
                    global: [n / 32, m / 8, 1],
                    local: None,
                    second: None,
                }
            } else {
                Plan {
                    program: Program::Builtin(Source::Gemm),
                    entry: "gemm_tiled",
                    scalars: vec![
                        u(m),
                        u(n),
                        u(k),
                        Scalar::U32(*trans_a as u32),
                        Scalar::U32(*trans_b as u32),
                        f(*alpha),
                        f(*beta),
                    ],
                    global: [n.div_ceil(64) * 16, m.div_ceil(64) * 16, 1],
                    local: Some([16, 16, 1]),
                    second: None,
                }
            }
        }
        Kernel::Unary(op) => per_element(
            Source::Elementwise,
            "unary",
            len(0),
            vec![u(len(0)), Scalar::U32(op.code())],
        ),
        Kernel::Binary(op) => per_element(
            Source::Elementwise,
            "binary",
            len(0),
            vec![u(len(0)), Scalar::U32(op.code())],
        ),
        Kernel::Reduce { op, axis } => {
            let (outer, n, inner) = reduce_extents(shape(0), *axis);
            per_row(
                "reduce",
                outer * inner,
                vec![u(outer), u(n), u(inner), Scalar::U32(op.code())],
            )
        }
        Kernel::Softmax => per_row("softmax", len(0) / last(0), vec![u(last(0))]),
        Kernel::LayerNorm { eps } => {
            per_row("layer_norm", len(0) / last(0), vec![u(last(0)), f(*eps)])
        }
        Kernel::Conv2d { stride, padding } => {
            let (x, w, o) = (shape(0), shape(1), shape(2));
            let scalars = [x[0], x[1], x[2], x[3], w[0], w[2], w[3], o[2], o[3]]
                .into_iter()
                .chain([*stride, *padding])
                .map(u)
                .collect();
            per_element(Source::Conv, "conv2d", len(2), scalars)
        }
        Kernel::Pool2d { op, window, stride } => {
            let (x, o) = (shape(0), shape(1));
            let mut scalars: Vec<Scalar> = [x[0] * x[1], x[2], x[3], o[2], o[3], *window, *stride]
                .into_iter()
                .map(u)
                .collect();
            scalars.push(Scalar::U32(op.code()));
            per_element(Source::Conv, "pool2d", len(1), scalars)
        }
        Kernel::Resize => {
            let (x, o) = (shape(0), shape(1));
            let channels = x.get(2).copied().unwrap_or(1);
            let scalars = [x[0], x[1], channels, o[0], o[1]];
            image("resize", len(1), scalars.into_iter().map(u).collect())
        }
        Kernel::GaussianBlur { sigma } | Kernel::GrayBlur { sigma } => {
            let o = shape(1);
            let total: f64 = gaussian_taps(*sigma).iter().sum();
            let channels = o.get(2).copied().unwrap_or(1);
            let mut scalars: Vec<Scalar> = [o[0], o[1], channels, blur_radius(*sigma)]
                .into_iter()
                .map(u)
                .collect();
            let gray = matches!(kernel, Kernel::GrayBlur { .. });
            scalars.extend([f(*sigma), f(1.0 / total), Scalar::U32(gray.into())]);
            Plan {
                second: Some("blur_cols"),
                ..image("blur_rows", len(1), scalars)
            }
        }
        Kernel::Sobel | Kernel::SobelThreshold { .. } => {
            let x = shape(0);
            let mut scalars: Vec<Scalar> = [x[0], x[1], x.get(2).copied().unwrap_or(1)]
                .into_iter()
                .map(u)
                .collect();
            scalars.extend(match kernel {
                Kernel::SobelThreshold { value, max } => [Scalar::U32(1), f(*value), f(*max)],
                _ => [Scalar::U32(0), f(0.0), f(0.0)],
            });
            image("sobel", len(1), scalars)
        }
        Kernel::RgbToGray => image("rgb_to_gray", len(1), vec![u(len(1))]),
        Kernel::Threshold { value, max } => {
            image("threshold", len(1), vec![u(len(1)), f(*value), f(*max)])
        }
        other => {
            return Err(unsupported(format!(
                "`{}` has no OpenCL kernel",
                other.name()
            )))
        }
    })
}
