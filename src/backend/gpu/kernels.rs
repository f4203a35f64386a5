//! Which shader runs each kernel, with what parameters and how many workgroups.

use crate::backend::Arg;
use crate::error::{Error, Result};
use crate::kernel::{blur_radius, gaussian_taps, gemm_dims, reduce_extents, Kernel};

/// A shader entry point. Sources are the shaders of `shaders/` as
/// `build.rs` composed them with the op tables' generated code.
#[derive(Clone, Copy)]
pub(super) struct Shader {
    /// Cache key: file and entry point.
    pub key: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
}

const fn shader(key: &'static str, source: &'static str, entry: &'static str) -> Shader {
    Shader { key, source, entry }
}

const GEMM: Shader = shader(
    "gemm",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/gemm.wgsl")),
    "main",
);
const GEMM_ALIGNED: Shader = shader(
    "gemm_aligned",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/gemm_aligned.wgsl")),
    "main",
);
const UNARY: Shader = shader(
    "unary",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/unary.wgsl")),
    "main",
);
const UNARY_VEC4: Shader = shader(
    "unary_vec4",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/unary_vec4.wgsl")),
    "main",
);
const BINARY_VEC4: Shader = shader(
    "binary_vec4",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/binary_vec4.wgsl")),
    "main",
);
const BINARY: Shader = shader(
    "binary",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/binary.wgsl")),
    "main",
);
const REDUCE_SOURCE: &str = include_str!(concat!(env!("OUT_DIR"), "/shaders/reduce.wgsl"));
const REDUCE: Shader = shader("reduce", REDUCE_SOURCE, "main");
const REDUCE_PARTIAL: Shader = shader("reduce/partial", REDUCE_SOURCE, "partial");

/// A reduction axis at least this long, with fewer outputs than
/// [`FEW_OUTPUTS`], is reduced in two passes.
const LONG_AXIS: usize = 16_384;
const FEW_OUTPUTS: usize = 256;
/// Axis elements each first-pass workgroup folds.
const STRETCH: usize = 4_096;
const SOFTMAX: Shader = shader(
    "softmax",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/softmax.wgsl")),
    "main",
);
const LAYER_NORM: Shader = shader(
    "layer_norm",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/layer_norm.wgsl")),
    "main",
);
const CONV2D: Shader = shader(
    "conv2d",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/conv2d.wgsl")),
    "main",
);
const POOL2D: Shader = shader(
    "pool2d",
    include_str!(concat!(env!("OUT_DIR"), "/shaders/pool2d.wgsl")),
    "main",
);
const IMAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/shaders/image.wgsl"));
const RESIZE: Shader = shader("image/resize", IMAGE, "resize");
const BLUR: Shader = shader("image/blur", IMAGE, "blur");
const SOBEL: Shader = shader("image/sobel", IMAGE, "sobel");
const RGB_TO_GRAY: Shader = shader("image/rgb_to_gray", IMAGE, "rgb_to_gray");
const THRESHOLD: Shader = shader("image/threshold", IMAGE, "threshold");

/// Rows and columns of C one GEMM workgroup computes (`TILE` in gemm.wgsl).
const GEMM_TILE: usize = 64;

/// One dispatch: the shader, its uniform parameters (u32 words; f32 by
/// bits) and the workgroup grid.
pub(super) struct Pass {
    pub shader: Shader,
    pub params: Vec<u32>,
    pub groups: (u32, u32),
}

/// A launch: its pass on the arguments, possibly after a first pass.
pub(super) struct Plan {
    pub pass: Pass,
    pub first: Option<FirstPass>,
}

/// A pass that reads the first argument and writes `scratch` partial
/// results (in the arguments' element type) to a scratch buffer, which the
/// plan's own pass then reads in place of its first argument (a multi-pass
/// reduction).
pub(super) struct FirstPass {
    pub pass: Pass,
    pub scratch: usize,
}

/// Whether a kernel has a shader (in f32).
pub(super) fn supported(kernel: &Kernel) -> bool {
    matches!(
        kernel,
        Kernel::Gemm { .. }
            | Kernel::Unary(_)
            | Kernel::Binary(_)
            | Kernel::Reduce { .. }
            | Kernel::Softmax
            | Kernel::LayerNorm { .. }
            | Kernel::Conv2d { .. }
            | Kernel::Pool2d { .. }
            | Kernel::Resize
            | Kernel::GaussianBlur { .. }
            | Kernel::Sobel
            | Kernel::RgbToGray
            | Kernel::Threshold { .. }
    )
}

/// Whether a kernel's shader has an f16 variant (the tensor kernels; the
/// image kernels are f32 only).
pub(super) fn has_f16(kernel: &Kernel) -> bool {
    supported(kernel)
        && !matches!(
            kernel,
            Kernel::Resize
                | Kernel::GaussianBlur { .. }
                | Kernel::Sobel
                | Kernel::RgbToGray
                | Kernel::Threshold { .. }
        )
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
fn per_element(shader: Shader, elements: usize, params: Vec<u32>, gx_slot: usize) -> Result<Plan> {
    per_group(shader, elements.div_ceil(256), params, gx_slot)
}

/// An element-wise op: four elements per invocation when the length allows.
fn element_wise(scalar: Shader, vec4: Shader, len: usize, op: u32) -> Result<Plan> {
    if len.is_multiple_of(4) {
        per_element(vec4, len / 4, vec![u(len / 4), op, 0, 0], 2)
    } else {
        per_element(scalar, len, vec![u(len), op, 0, 0], 2)
    }
}

/// One workgroup per row or output.
fn per_group(shader: Shader, count: usize, mut params: Vec<u32>, gx_slot: usize) -> Result<Plan> {
    let groups = grid(count)?;
    params[gx_slot] = groups.0;
    Ok(Plan {
        pass: Pass {
            shader,
            params,
            groups,
        },
        first: None,
    })
}

pub(super) fn plan(kernel: &Kernel, args: &[Arg<'_>]) -> Result<Plan> {
    let shape = |i: usize| args[i].shape;
    let len = |i: usize| args[i].len();
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
                    groups: (u(n.div_ceil(GEMM_TILE)), u(m.div_ceil(rows))),
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
        Kernel::Resize
        | Kernel::GaussianBlur { .. }
        | Kernel::Sobel
        | Kernel::RgbToGray
        | Kernel::Threshold { .. } => {
            let (x, o) = (shape(0), shape(1));
            let channels = x.get(2).copied().unwrap_or(1);
            let (level, high) = match kernel {
                Kernel::Threshold { value, max } => (*value as f32, *max as f32),
                _ => (0.0, 0.0),
            };
            let (shader, radius, sigma, norm) = match kernel {
                Kernel::Resize => (RESIZE, 0, 0.0, 0.0),
                Kernel::GaussianBlur { sigma } => {
                    let total: f64 = gaussian_taps(*sigma).iter().sum();
                    let norm = (1.0 / (total * total)) as f32;
                    (BLUR, blur_radius(*sigma), *sigma as f32, norm)
                }
                Kernel::Sobel => (SOBEL, 0, 0.0, 0.0),
                Kernel::Threshold { .. } => (THRESHOLD, 0, 0.0, 0.0),
                _ => (RGB_TO_GRAY, 0, 0.0, 0.0),
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
            per_element(shader, len(1), params, 6)
        }
        other => Err(Error::Device {
            backend: "wgpu".into(),
            message: format!("`{}` has no WGSL kernel", other.name()),
        }),
    }
}
