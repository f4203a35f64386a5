//! Which shader runs each kernel, with what parameters and how many
//! workgroups: the plan a launch follows, and from which the backend
//! answers whether a unit supports a kernel on given arguments.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{
    blur_radius, gaussian_taps, gemm_dims, reduce_extents, ArgMeta, CustomKernel, Kernel,
};

/// What a compiled pipeline is cached under.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum ShaderKey {
    /// A built-in shader: file and entry point.
    Builtin(&'static str),
    /// A user kernel's WGSL, by [`CustomKernel::id`].
    User(u64),
}

/// A shader entry point. Built-in sources are the shaders of `shaders/` as
/// `build.rs` composed them with the op tables' generated code.
#[derive(Clone, Copy)]
pub(super) struct Shader<'k> {
    pub key: ShaderKey,
    pub source: &'k str,
    pub entry: &'k str,
}

impl Shader<'_> {
    /// A name for labels and errors.
    pub fn label(&self) -> String {
        match self.key {
            ShaderKey::Builtin(name) => name.to_string(),
            ShaderKey::User(_) => format!("user kernel entry `{}`", self.entry),
        }
    }
}

const fn shader(key: &'static str, source: &'static str, entry: &'static str) -> Shader<'static> {
    Shader {
        key: ShaderKey::Builtin(key),
        source,
        entry,
    }
}

const GEMM: Shader<'static> = shader(
    "gemm",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/gemm.wgsl")),
    "main",
);
const GEMM_ALIGNED: Shader<'static> = shader(
    "gemm_aligned",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/gemm_aligned.wgsl")),
    "main",
);
const UNARY: Shader<'static> = shader(
    "unary",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/unary.wgsl")),
    "main",
);
const UNARY_VEC4: Shader<'static> = shader(
    "unary_vec4",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/unary_vec4.wgsl")),
    "main",
);
const BINARY_VEC4: Shader<'static> = shader(
    "binary_vec4",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/binary_vec4.wgsl")),
    "main",
);
const BINARY: Shader<'static> = shader(
    "binary",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/binary.wgsl")),
    "main",
);
const REDUCE_SOURCE: &str = include_str!(concat!(env!("OUT_DIR"), "/shaders/reduce.wgsl"));
const REDUCE: Shader<'static> = shader("reduce", REDUCE_SOURCE, "main");
const REDUCE_PARTIAL: Shader<'static> = shader("reduce/partial", REDUCE_SOURCE, "partial");

/// A reduction axis at least this long, with fewer outputs than
/// [`FEW_OUTPUTS`], is reduced in two passes.
const LONG_AXIS: usize = 16_384;
const FEW_OUTPUTS: usize = 256;
/// Axis elements each first-pass workgroup folds.
const STRETCH: usize = 4_096;
const SOFTMAX: Shader<'static> = shader(
    "softmax",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/softmax.wgsl")),
    "main",
);
const LAYER_NORM: Shader<'static> = shader(
    "layer_norm",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/layer_norm.wgsl")),
    "main",
);
const CONV2D: Shader<'static> = shader(
    "conv2d",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/conv2d.wgsl")),
    "main",
);
const POOL2D: Shader<'static> = shader(
    "pool2d",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/pool2d.wgsl")),
    "main",
);
const IMAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/shaders/image.wgsl"));
const RESIZE: Shader<'static> = shader("image/resize", IMAGE, "resize");
const BLUR: Shader<'static> = shader("image/blur", IMAGE, "blur");
const SOBEL: Shader<'static> = shader("image/sobel", IMAGE, "sobel");
const RGB_TO_GRAY: Shader<'static> = shader("image/rgb_to_gray", IMAGE, "rgb_to_gray");
const THRESHOLD: Shader<'static> = shader("image/threshold", IMAGE, "threshold");
const SOBEL_THRESHOLD: Shader<'static> = shader("image/sobel_threshold", IMAGE, "sobel_threshold");
const IMAGE_U8: &str = include_str!(concat!(env!("OUT_DIR"), "/shaders/image_u8.wgsl"));
const RESIZE_U8: Shader<'static> = shader("image_u8/resize", IMAGE_U8, "resize");
const BLUR_U8: Shader<'static> = shader("image_u8/blur", IMAGE_U8, "blur");
const SOBEL_U8: Shader<'static> = shader("image_u8/sobel", IMAGE_U8, "sobel");
const RGB_TO_GRAY_U8: Shader<'static> = shader("image_u8/rgb_to_gray", IMAGE_U8, "rgb_to_gray");
const THRESHOLD_U8: Shader<'static> = shader("image_u8/threshold", IMAGE_U8, "threshold");
const SOBEL_THRESHOLD_U8: Shader<'static> =
    shader("image_u8/sobel_threshold", IMAGE_U8, "sobel_threshold");

/// Rows and columns of C one GEMM workgroup computes (`TILE` in gemm.wgsl).
const GEMM_TILE: usize = 64;

/// One dispatch: the shader, its uniform parameters (u32 words; f32 by
/// bits) and the workgroup grid.
pub(super) struct Pass<'k> {
    pub shader: Shader<'k>,
    pub params: Vec<u32>,
    pub groups: [u32; 3],
}

/// A launch: its pass on the arguments, possibly after a first pass.
pub(super) struct Plan<'k> {
    pub pass: Pass<'k>,
    pub first: Option<FirstPass<'k>>,
}

/// A pass that reads the first argument and writes `scratch` partial
/// results (in the arguments' element type) to a scratch buffer, which the
/// plan's own pass then reads in place of its first argument (a multi-pass
/// reduction).
pub(super) struct FirstPass<'k> {
    pub pass: Pass<'k>,
    pub scratch: usize,
}

/// An image kernel's plan from an image of shape `x` to one of shape `o`,
/// on u8 images packed four to a word when `bytes`.
fn image_plan(kernel: &Kernel, x: &[usize], o: &[usize], bytes: bool) -> Result<Plan<'static>> {
    let channels = x.get(2).copied().unwrap_or(1);
    let (level, high) = match kernel {
        Kernel::Threshold { value, max } | Kernel::SobelThreshold { value, max } => {
            (*value as f32, *max as f32)
        }
        _ => (0.0, 0.0),
    };
    let pick = |f32_shader, u8_shader| if bytes { u8_shader } else { f32_shader };
    let (shader, radius, sigma, norm) = match kernel {
        Kernel::Resize => (pick(RESIZE, RESIZE_U8), 0, 0.0, 0.0),
        Kernel::GaussianBlur { sigma } => {
            let total: f64 = gaussian_taps(*sigma).iter().sum();
            let norm = (1.0 / (total * total)) as f32;
            (
                pick(BLUR, BLUR_U8),
                blur_radius(*sigma),
                *sigma as f32,
                norm,
            )
        }
        Kernel::Sobel => (pick(SOBEL, SOBEL_U8), 0, 0.0, 0.0),
        Kernel::SobelThreshold { .. } => (pick(SOBEL_THRESHOLD, SOBEL_THRESHOLD_U8), 0, 0.0, 0.0),
        Kernel::Threshold { .. } => (pick(THRESHOLD, THRESHOLD_U8), 0, 0.0, 0.0),
        Kernel::RgbToGray => (pick(RGB_TO_GRAY, RGB_TO_GRAY_U8), 0, 0.0, 0.0),
        other => {
            return Err(unsupported(format!(
                "`{}` has no single image shader",
                other.name()
            )))
        }
    };
    let params = vec![
        u(x[0]),
        u(x[1]),
        u(channels),
        u(o[0]),
        u(o[1]),
        u(radius),
        0,
        0,
        sigma.to_bits(),
        norm.to_bits(),
        level.to_bits(),
        high.to_bits(),
    ];
    let len = o.iter().product::<usize>();
    // u8: one invocation per output word of four values.
    let invocations = if bytes { len.div_ceil(4) } else { len };
    per_element(shader, invocations, params, 6)
}

/// Whether the image kernels' shaders (f32, and u8 packed four to a word)
/// serve this kernel.
fn is_image(kernel: &Kernel) -> bool {
    matches!(
        kernel,
        Kernel::Resize
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Threshold { .. }
            | Kernel::GrayBlur { .. }
            | Kernel::SobelThreshold { .. }
    )
}

fn unsupported(what: String) -> Error {
    Error::Device {
        backend: "wgpu".into(),
        message: what,
    }
}

/// The element types a device with (or without) SHADER_F16 runs: built-in
/// kernels in f32, the tensor kernels also in f16; user kernels in
/// whatever their WGSL declares, except f64 (WGSL has none) and f16
/// without the feature.
fn check_dtypes(kernel: &Kernel, args: &[ArgMeta<'_>], f16: bool) -> Result<()> {
    let ok = |d: DType| match kernel {
        Kernel::Custom(_) => d != DType::F64 && (d != DType::F16 || f16),
        _ if is_image(kernel) => d == DType::F32 || d == DType::U8,
        _ => d == DType::F32 || (d == DType::F16 && f16),
    };
    match args.iter().find(|a| !ok(a.dtype)) {
        Some(a) => Err(unsupported(format!(
            "`{}` in {} has no WGSL kernel on this device",
            kernel.name(),
            a.dtype
        ))),
        None => Ok(()),
    }
}

/// Most workgroups per grid dimension every adapter allows.
const MAX_GROUPS: u32 = 65_535;

/// A grid of `groups` workgroups, folded into two dimensions when needed.
fn grid(groups: usize) -> Result<(u32, u32)> {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS as usize);
    let y = groups.div_ceil(x);
    if y > MAX_GROUPS as usize {
        return Err(Error::Device {
            backend: "wgpu".into(),
            message: format!("{groups} workgroups exceed the dispatch limit"),
        });
    }
    Ok((x as u32, y as u32))
}

fn u(v: usize) -> u32 {
    v as u32
}

/// Element-wise style plan: one invocation per element, 256 per workgroup;
/// `params` gets the grid's x extent where the shader expects it.
fn per_element(
    shader: Shader<'static>,
    elements: usize,
    params: Vec<u32>,
    gx_slot: usize,
) -> Result<Plan<'static>> {
    per_group(shader, elements.div_ceil(256), params, gx_slot)
}

/// An element-wise op: four elements per invocation when the length allows.
fn element_wise(
    scalar: Shader<'static>,
    vec4: Shader<'static>,
    len: usize,
    op: u32,
) -> Result<Plan<'static>> {
    if len.is_multiple_of(4) {
        per_element(vec4, len / 4, vec![u(len / 4), op, 0, 0], 2)
    } else {
        per_element(scalar, len, vec![u(len), op, 0, 0], 2)
    }
}

/// One workgroup per row or output.
fn per_group(
    shader: Shader<'static>,
    count: usize,
    mut params: Vec<u32>,
    gx_slot: usize,
) -> Result<Plan<'static>> {
    let groups = grid(count)?;
    params[gx_slot] = groups.0;
    Ok(Plan {
        pass: Pass {
            shader,
            params,
            groups: [groups.0, groups.1, 1],
        },
        first: None,
    })
}

/// A user kernel's WGSL on its launch rule.
fn user<'k>(kernel: &'k CustomKernel, args: &[ArgMeta<'_>]) -> Result<Plan<'k>> {
    let Some(program) = kernel.wgsl() else {
        return Err(unsupported(format!(
            "user kernel `{}` has no WGSL implementation",
            kernel.name()
        )));
    };
    let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape).collect();
    let launch = program.launch(&shapes);
    if launch.grid.iter().any(|&g| g > MAX_GROUPS) {
        return Err(unsupported(format!(
            "user kernel `{}` asks for {:?} workgroups, beyond the dispatch limit {MAX_GROUPS}",
            kernel.name(),
            launch.grid
        )));
    }
    // A uniform buffer is a whole number of 16-byte rows.
    let mut params = launch.params;
    params.resize(params.len().div_ceil(4).max(1) * 4, 0);
    Ok(Plan {
        pass: Pass {
            shader: Shader {
                key: ShaderKey::User(kernel.id()),
                source: program.source(),
                entry: program.entry(),
            },
            params,
            groups: launch.grid,
        },
        first: None,
    })
}

/// The plan for `kernel` on these arguments on a device with (or without)
/// SHADER_F16, or why there is none.
pub(super) fn plan<'k>(kernel: &'k Kernel, args: &[ArgMeta<'_>], f16: bool) -> Result<Plan<'k>> {
    check_dtypes(kernel, args, f16)?;
    let shape = |i: usize| args[i].shape;
    let len = |i: usize| args[i].shape.iter().product::<usize>();
    let last = |i: usize| shape(i).last().copied().unwrap_or(1).max(1);
    match kernel {
        Kernel::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => {
            let (m, k) = gemm_dims(shape(0), *trans_a);
            let n = shape(2)[1];
            let params = vec![
                u(m),
                u(n),
                u(k),
                *trans_a as u32,
                *trans_b as u32,
                (*alpha as f32).to_bits(),
                (*beta as f32).to_bits(),
                0,
            ];
            // Whole tiles and no transposes: the variant without bounds
            // checks, loading four floats at a time.
            let aligned = !trans_a && !trans_b && m % 128 == 0 && n % 64 == 0 && k % 16 == 0;
            let (shader, rows) = if aligned {
                (GEMM_ALIGNED, 128)
            } else {
                (GEMM, GEMM_TILE)
            };
            Ok(Plan {
                pass: Pass {
                    shader,
                    params,
                    groups: [u(n.div_ceil(GEMM_TILE)), u(m.div_ceil(rows)), 1],
                },
                first: None,
            })
        }
        Kernel::Unary(op) => element_wise(UNARY, UNARY_VEC4, len(0), op.code()),
        Kernel::Binary(op) => element_wise(BINARY, BINARY_VEC4, len(0), op.code()),
        Kernel::Reduce { op, axis } => {
            let (outer, n, inner) = reduce_extents(shape(0), *axis);
            let outputs = outer * inner;
            if n < LONG_AXIS || outputs >= FEW_OUTPUTS {
                return per_group(
                    REDUCE,
                    outputs,
                    vec![u(outer), u(n), u(inner), op.code(), 0, 0, 0, 0],
                    4,
                );
            }
            // Two passes: `chunks` workgroups per output fold stretches of
            // the axis, then one workgroup per output folds their results.
            let chunks = n.div_ceil(STRETCH);
            let first = per_group(
                REDUCE_PARTIAL,
                outputs * chunks,
                vec![u(outer), u(n), u(inner), op.code(), 0, u(chunks), 0, 0],
                4,
            )?;
            let mut second = per_group(
                REDUCE,
                outputs,
                vec![u(outputs), u(chunks), 1, op.code(), 0, 0, 0, 0],
                4,
            )?;
            second.first = Some(FirstPass {
                pass: first.pass,
                scratch: outputs * chunks,
            });
            Ok(second)
        }
        Kernel::Softmax => {
            let rows = len(0) / last(0);
            per_group(SOFTMAX, rows, vec![u(rows), u(last(0)), 0, 0], 2)
        }
        Kernel::LayerNorm { eps } => {
            let rows = len(0) / last(0);
            per_group(
                LAYER_NORM,
                rows,
                vec![u(rows), u(last(0)), 0, (*eps as f32).to_bits()],
                2,
            )
        }
        Kernel::Conv2d { stride, padding } => {
            let (x, w, o) = (shape(0), shape(1), shape(2));
            let params = vec![
                u(x[0]),
                u(x[1]),
                u(x[2]),
                u(x[3]),
                u(w[0]),
                u(w[2]),
                u(w[3]),
                u(o[2]),
                u(o[3]),
                u(*stride),
                u(*padding),
                0,
            ];
            per_element(CONV2D, len(2), params, 11)
        }
        Kernel::Pool2d { op, window, stride } => {
            let (x, o) = (shape(0), shape(1));
            let params = vec![
                u(x[0] * x[1]),
                u(x[2]),
                u(x[3]),
                u(o[2]),
                u(o[3]),
                u(*window),
                u(*stride),
                op.code(),
                0,
                0,
                0,
                0,
            ];
            per_element(POOL2D, len(1), params, 8)
        }
        Kernel::GrayBlur { sigma } => {
            // Gray into a transient buffer (whole words for packed u8),
            // then the blur from it: computing the gray value at each of
            // the blur's taps instead costs three loads per tap.
            let bytes = args[0].dtype == DType::U8;
            let (x, o) = (shape(0), shape(1));
            let gray = image_plan(&Kernel::RgbToGray, x, o, bytes)?;
            let blur = Kernel::GaussianBlur { sigma: *sigma };
            let mut plan = image_plan(&blur, o, o, bytes)?;
            plan.first = Some(FirstPass {
                pass: gray.pass,
                scratch: len(1).next_multiple_of(4),
            });
            Ok(plan)
        }
        _ if is_image(kernel) => image_plan(kernel, shape(0), shape(1), args[0].dtype == DType::U8),
        Kernel::Custom(c) => user(c, args),
        other => Err(unsupported(format!(
            "`{}` has no WGSL kernel",
            other.name()
        ))),
    }
}
