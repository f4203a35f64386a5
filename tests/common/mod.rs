//! Naive reference implementations of every built-in kernel, in f64, and a
//! checker that runs a kernel on a unit and compares it with the reference.
//! Shared by the kernel tests of every backend.

#![allow(dead_code)]
// each test binary uses a different part
// The references index like the formulas they transcribe, on purpose.
#![allow(clippy::needless_range_loop)]

pub mod rng;
pub mod suite;

use xpu::kernel::{blur_radius, conv_out};
use xpu::{
    BinaryOp, DType, Element, Kernel, Placement, PoolOp, ReduceOp, Runtime, TaskOptions, UnaryOp,
};

/// One argument: its shape and (initial) content.
#[derive(Debug, Clone)]
pub struct Input {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Input {
    pub fn new(shape: &[usize], data: Vec<f64>) -> Input {
        assert_eq!(shape.iter().product::<usize>(), data.len());
        Input {
            shape: shape.to_vec(),
            data,
        }
    }
    pub fn zeros(shape: &[usize]) -> Input {
        Input::new(shape, vec![0.0; shape.iter().product()])
    }
}

/// Rounds a value to what `dtype` can hold.
pub fn quantize(v: f64, dtype: DType) -> f64 {
    fn round<T: Element>(v: f64) -> f64 {
        T::from_f64(v).to_f64()
    }
    match dtype {
        DType::F32 => round::<f32>(v),
        DType::F64 => v,
        DType::F16 => round::<half::f16>(v),
        DType::BF16 => round::<half::bf16>(v),
        DType::U8 => round::<u8>(v),
        DType::U32 => round::<u32>(v),
    }
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// The final content of the last argument after `kernel` runs.
pub fn reference(kernel: &Kernel, args: &[Input]) -> Vec<f64> {
    reference_in(kernel, args, DType::F64)
}

/// [`reference`] for tensors of `dtype`: a fused kernel's intermediate
/// (the gray image of `gray_blur`, the magnitude of `sobel_threshold`) is
/// rounded to what `dtype` holds, as the two kernels in turn would store it.
pub fn reference_in(kernel: &Kernel, args: &[Input], dtype: DType) -> Vec<f64> {
    let Some([first, second]) = kernel.unfused() else {
        return single(kernel, args);
    };
    let out = args.last().unwrap();
    let middle = single(&first, &[args[0].clone(), Input::zeros(&out.shape)]);
    let middle = Input::new(
        &out.shape,
        middle.iter().map(|&v| quantize(v, dtype)).collect(),
    );
    single(&second, &[middle, out.clone()])
}

/// The reference of a kernel that is not fused.
fn single(kernel: &Kernel, args: &[Input]) -> Vec<f64> {
    let out = args.last().unwrap();
    let mut y = out.data.clone();
    let x = &args[0];
    match kernel {
        Kernel::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => {
            let (a, b) = (&args[0], &args[1]);
            let (m, n) = (out.shape[0], out.shape[1]);
            let k = if *trans_a { a.shape[0] } else { a.shape[1] };
            let at = |i: usize, p: usize| {
                if *trans_a {
                    a.data[p * m + i]
                } else {
                    a.data[i * k + p]
                }
            };
            let bt = |p: usize, j: usize| {
                if *trans_b {
                    b.data[j * k + p]
                } else {
                    b.data[p * n + j]
                }
            };
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                    y[i * n + j] = alpha * dot + beta * out.data[i * n + j];
                }
            }
        }
        Kernel::Unary(op) => {
            for (o, &v) in y.iter_mut().zip(&x.data) {
                *o = match op {
                    UnaryOp::Relu => v.max(0.0),
                    UnaryOp::Gelu => gelu(v),
                    UnaryOp::Exp => v.exp(),
                    UnaryOp::Tanh => v.tanh(),
                    UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                };
            }
        }
        Kernel::Binary(op) => {
            for i in 0..y.len() {
                let (a, b) = (args[0].data[i], args[1].data[i]);
                y[i] = match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Mul => a * b,
                };
            }
        }
        Kernel::Reduce { op, axis } => {
            let s = &x.shape;
            let outer: usize = s[..*axis].iter().product();
            let inner: usize = s[axis + 1..].iter().product();
            for o in 0..outer {
                for i in 0..inner {
                    let vals = (0..s[*axis]).map(|j| x.data[(o * s[*axis] + j) * inner + i]);
                    y[o * inner + i] = match op {
                        ReduceOp::Sum => vals.sum(),
                        ReduceOp::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                    };
                }
            }
        }
        Kernel::Softmax => {
            let n = *x.shape.last().unwrap();
            for (row, dst) in x.data.chunks(n).zip(y.chunks_mut(n)) {
                let total: f64 = row.iter().map(|v| v.exp()).sum();
                for (d, v) in dst.iter_mut().zip(row) {
                    *d = v.exp() / total;
                }
            }
        }
        Kernel::LayerNorm { eps } => {
            let n = *x.shape.last().unwrap();
            let (gamma, beta) = (&args[1].data, &args[2].data);
            for (row, dst) in x.data.chunks(n).zip(y.chunks_mut(n)) {
                let mean = row.iter().sum::<f64>() / n as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                for j in 0..n {
                    dst[j] = (row[j] - mean) / (var + eps).sqrt() * gamma[j] + beta[j];
                }
            }
        }
        Kernel::Conv2d { stride, padding } => {
            let (w, s, ws) = (&args[1], &x.shape, &args[1].shape);
            let (oh, ow) = (out.shape[2], out.shape[3]);
            for b in 0..s[0] {
                for o in 0..ws[0] {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = 0.0;
                            for c in 0..s[1] {
                                for ky in 0..ws[2] {
                                    for kx in 0..ws[3] {
                                        let iy = (oy * stride + ky) as isize - *padding as isize;
                                        let ix = (ox * stride + kx) as isize - *padding as isize;
                                        if iy < 0
                                            || ix < 0
                                            || iy >= s[2] as isize
                                            || ix >= s[3] as isize
                                        {
                                            continue;
                                        }
                                        let xv = x.data[((b * s[1] + c) * s[2] + iy as usize)
                                            * s[3]
                                            + ix as usize];
                                        acc += xv
                                            * w.data[((o * ws[1] + c) * ws[2] + ky) * ws[3] + kx];
                                    }
                                }
                            }
                            y[((b * ws[0] + o) * oh + oy) * ow + ox] = acc;
                        }
                    }
                }
            }
        }
        Kernel::Pool2d { op, window, stride } => {
            let s = &x.shape;
            let (oh, ow) = (out.shape[2], out.shape[3]);
            for plane in 0..s[0] * s[1] {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let vals: Vec<f64> = (0..window * window)
                            .map(|i| {
                                x.data[(plane * s[2] + oy * stride + i / window) * s[3]
                                    + ox * stride
                                    + i % window]
                            })
                            .collect();
                        y[(plane * oh + oy) * ow + ox] = match op {
                            PoolOp::Max => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                            PoolOp::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
                        };
                    }
                }
            }
        }
        Kernel::Resize => {
            let (h, w) = (x.shape[0], x.shape[1]);
            let ch = x.shape.get(2).copied().unwrap_or(1);
            let (oh, ow) = (out.shape[0], out.shape[1]);
            let px = |yy: usize, xx: usize, c: usize| x.data[(yy * w + xx) * ch + c];
            for oy in 0..oh {
                let sy =
                    ((oy as f64 + 0.5) * h as f64 / oh as f64 - 0.5).clamp(0.0, (h - 1) as f64);
                for ox in 0..ow {
                    let sx =
                        ((ox as f64 + 0.5) * w as f64 / ow as f64 - 0.5).clamp(0.0, (w - 1) as f64);
                    let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
                    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                    let (fy, fx) = (sy - y0 as f64, sx - x0 as f64);
                    for c in 0..ch {
                        y[(oy * ow + ox) * ch + c] = px(y0, x0, c) * (1.0 - fy) * (1.0 - fx)
                            + px(y0, x1, c) * (1.0 - fy) * fx
                            + px(y1, x0, c) * fy * (1.0 - fx)
                            + px(y1, x1, c) * fy * fx;
                    }
                }
            }
        }
        Kernel::GaussianBlur { sigma } => {
            let r = blur_radius(*sigma) as isize;
            let g: Vec<f64> = (-r..=r)
                .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
                .collect();
            let total: f64 = g.iter().sum::<f64>().powi(2);
            image_stencil(x, &mut y, r, |dy, dx| {
                g[(dy + r) as usize] * g[(dx + r) as usize] / total
            });
        }
        Kernel::Sobel => {
            let (h, w) = (x.shape[0] as isize, x.shape[1] as isize);
            let ch = x.shape.get(2).copied().unwrap_or(1);
            let px = |yy: isize, xx: isize, c: usize| {
                x.data[((yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)) as usize) * ch + c]
            };
            const KX: [[f64; 3]; 3] = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]];
            for yy in 0..h {
                for xx in 0..w {
                    for c in 0..ch {
                        let (mut gx, mut gy) = (0.0, 0.0);
                        for i in 0..3 {
                            for j in 0..3 {
                                let v = px(yy + i as isize - 1, xx + j as isize - 1, c);
                                gx += KX[i][j] * v;
                                gy += KX[j][i] * v;
                            }
                        }
                        y[((yy * w + xx) as usize) * ch + c] = (gx * gx + gy * gy).sqrt();
                    }
                }
            }
        }
        Kernel::Threshold { value, max } => {
            for (o, v) in y.iter_mut().zip(&x.data) {
                *o = if *v > *value { *max } else { 0.0 };
            }
        }
        Kernel::RgbToGray => {
            for (o, p) in y.iter_mut().zip(x.data.chunks(3)) {
                *o = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
            }
        }
        Kernel::Potrf => {
            let n = out.shape[0];
            let a = &out.data;
            y.fill(0.0);
            for j in 0..n {
                let d = a[j * n + j] - (0..j).map(|k| y[j * n + k].powi(2)).sum::<f64>();
                y[j * n + j] = d.sqrt();
                for i in j + 1..n {
                    let s = a[i * n + j] - (0..j).map(|k| y[i * n + k] * y[j * n + k]).sum::<f64>();
                    y[i * n + j] = s / y[j * n + j];
                }
            }
        }
        Kernel::Trsm => {
            // Solve X L^T = B row by row: x_j = (b_j - sum_{k<j} x_k l_jk) / l_jj.
            let (l, n, m) = (&args[0].data, args[0].shape[0], out.shape[0]);
            for r in 0..m {
                for j in 0..n {
                    let s: f64 = (0..j).map(|k| y[r * n + k] * l[j * n + k]).sum();
                    y[r * n + j] = (out.data[r * n + j] - s) / l[j * n + j];
                }
            }
        }
        Kernel::Syrk => {
            let (a, n, k) = (&args[0].data, args[0].shape[0], args[0].shape[1]);
            for i in 0..n {
                for j in 0..=i {
                    y[i * n + j] -= (0..k).map(|p| a[i * k + p] * a[j * k + p]).sum::<f64>();
                }
            }
        }
        Kernel::Getrf => {
            // Doolittle: U's row k, then L's column k.
            let n = out.shape[0];
            let a = &out.data;
            for k in 0..n {
                for j in k..n {
                    y[k * n + j] =
                        a[k * n + j] - (0..k).map(|p| y[k * n + p] * y[p * n + j]).sum::<f64>();
                }
                for i in k + 1..n {
                    let s = a[i * n + k] - (0..k).map(|p| y[i * n + p] * y[p * n + k]).sum::<f64>();
                    y[i * n + k] = s / y[k * n + k];
                }
            }
        }
        Kernel::TrsmLower => {
            // Forward substitution with a unit diagonal, column by column of B.
            let (lu, n, m) = (&args[0].data, args[0].shape[0], out.shape[1]);
            for c in 0..m {
                for r in 0..n {
                    let s: f64 = (0..r).map(|k| lu[r * n + k] * y[k * m + c]).sum();
                    y[r * m + c] = out.data[r * m + c] - s;
                }
            }
        }
        Kernel::TrsmUpper => {
            // Solve X U = B row by row: x_j = (b_j - sum_{k<j} x_k u_kj) / u_jj.
            let (lu, n, m) = (&args[0].data, args[0].shape[0], out.shape[0]);
            for r in 0..m {
                for j in 0..n {
                    let s: f64 = (0..j).map(|k| y[r * n + k] * lu[k * n + j]).sum();
                    y[r * n + j] = (out.data[r * n + j] - s) / lu[j * n + j];
                }
            }
        }
        other => panic!("no reference for {}", other.name()),
    }
    y
}

/// Applies a (2r+1)^2 stencil with replicated borders to an image.
fn image_stencil(x: &Input, y: &mut [f64], r: isize, weight: impl Fn(isize, isize) -> f64) {
    let (h, w) = (x.shape[0] as isize, x.shape[1] as isize);
    let ch = x.shape.get(2).copied().unwrap_or(1);
    for yy in 0..h {
        for xx in 0..w {
            for c in 0..ch {
                let mut acc = 0.0;
                for dy in -r..=r {
                    for dx in -r..=r {
                        let (sy, sx) = ((yy + dy).clamp(0, h - 1), (xx + dx).clamp(0, w - 1));
                        acc += weight(dy, dx) * x.data[((sy * w + sx) as usize) * ch + c];
                    }
                }
                y[((yy * w + xx) as usize) * ch + c] = acc;
            }
        }
    }
}

/// Output size of a sliding window, re-exported for shape generation.
pub fn window_out(input: usize, window: usize, stride: usize, padding: usize) -> Option<usize> {
    conv_out(input, window, stride, padding)
}

/// Creates a tensor of `dtype` from f64 values on `rt`.
pub fn make_tensor(rt: &Runtime, input: &Input, dtype: DType) -> xpu::Tensor {
    fn make<T: Element>(rt: &Runtime, input: &Input) -> xpu::Tensor {
        let values: Vec<T> = input.data.iter().map(|&v| T::from_f64(v)).collect();
        rt.tensor(&input.shape, values).unwrap()
    }
    match dtype {
        DType::F32 => make::<f32>(rt, input),
        DType::F64 => make::<f64>(rt, input),
        DType::F16 => make::<half::f16>(rt, input),
        DType::BF16 => make::<half::bf16>(rt, input),
        DType::U8 => make::<u8>(rt, input),
        DType::U32 => make::<u32>(rt, input),
    }
}

/// Reads any tensor back as f64.
pub fn read_f64(rt: &Runtime, t: &xpu::Tensor) -> Vec<f64> {
    fn read<T: Element>(rt: &Runtime, t: &xpu::Tensor) -> Vec<f64> {
        rt.read::<T>(t)
            .unwrap()
            .into_iter()
            .map(T::to_f64)
            .collect()
    }
    match t.dtype() {
        DType::F32 => read::<f32>(rt, t),
        DType::F64 => read::<f64>(rt, t),
        DType::F16 => read::<half::f16>(rt, t),
        DType::BF16 => read::<half::bf16>(rt, t),
        DType::U8 => read::<u8>(rt, t),
        DType::U32 => read::<u32>(rt, t),
    }
}

/// The tolerance used for a dtype: |got - want| <= tol * (1 + |want|);
/// u8 results may be one unit off (rounding of the f32 computation).
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-9,
        DType::F32 => 1e-4,
        DType::F16 => 2e-2,
        DType::BF16 => 6e-2,
        DType::U8 | DType::U32 => 1.0,
    }
}

/// The ids of `rt`'s units from `backend`, or `None` after a note saying
/// why the backend has none.
pub fn backend_units(rt: &Runtime, backend: &str) -> Option<Vec<usize>> {
    let units: Vec<usize> = rt
        .units()
        .iter()
        .filter(|u| u.backend == backend)
        .map(|u| u.id)
        .collect();
    if units.is_empty() {
        let why = rt
            .backends()
            .iter()
            .find(|b| b.name == backend)
            .and_then(|b| b.reason.clone());
        eprintln!(
            "no {backend} unit, tests skipped: {}",
            why.unwrap_or_default()
        );
        return None;
    }
    Some(units)
}

/// Puts `unit` in high-performance, low-power, then normal, and in each
/// runs a chain of 300 dependent launches on it (longer than any batch a
/// state gathers), checking the result after each; returns the effects
/// the backend gave for the three changes.
pub fn chain_in_each_power_state(rt: &Runtime, unit: usize) -> Vec<String> {
    use xpu::power::PowerState;
    let on_unit = || TaskOptions::default().on(Placement::Unit(unit));
    let x = rt.tensor(&[1024], vec![0.0f32; 1024]).unwrap();
    let one = rt.tensor(&[1024], vec![1.0f32; 1024]).unwrap();
    let mut expected = 0.0;
    for state in [
        PowerState::HighPerformance,
        PowerState::LowPower,
        PowerState::Normal,
    ] {
        rt.set_power_state(unit, state).unwrap();
        for _ in 0..150 {
            let y = rt.zeros(&[1024], DType::F32).unwrap();
            rt.submit_with(
                &Kernel::Binary(BinaryOp::Add),
                &[x.read(), one.read(), y.write()],
                on_unit(),
            )
            .unwrap();
            rt.submit_with(
                &Kernel::Unary(UnaryOp::Relu),
                &[y.read(), x.write()],
                on_unit(),
            )
            .unwrap();
            expected += 1.0;
        }
        assert_eq!(rt.read::<f32>(&x).unwrap(), vec![expected; 1024], "{state}");
    }
    rt.profile()
        .power
        .iter()
        .filter(|c| c.unit == unit)
        .map(|c| c.effect.clone())
        .collect()
}

/// Checks `kernel` on each of `units` in each of `dtypes`; panics naming
/// the unit, its device and the first wrong element.
pub fn check_on_units(
    rt: &Runtime,
    units: &[usize],
    kernel: &Kernel,
    args: &[Input],
    dtypes: &[DType],
) {
    for &unit in units {
        for &dtype in dtypes {
            if let Err(e) = check_kernel(rt, Placement::Unit(unit), kernel, args, dtype) {
                let u = &rt.units()[unit];
                panic!("unit {unit} ({} on {}): {e}", u.kind, u.device);
            }
        }
    }
}

/// Runs `kernel` on `placement` with `args` (the last is the output, with
/// its initial content) in `dtype`, and checks the result against the
/// reference. Returns the worst error found, for reporting.
pub fn check_kernel(
    rt: &Runtime,
    placement: Placement,
    kernel: &Kernel,
    args: &[Input],
    dtype: DType,
) -> Result<f64, String> {
    let args: Vec<Input> = args
        .iter()
        .map(|a| {
            Input::new(
                &a.shape,
                a.data.iter().map(|&v| quantize(v, dtype)).collect(),
            )
        })
        .collect();
    let tensors: Vec<xpu::Tensor> = args.iter().map(|a| make_tensor(rt, a, dtype)).collect();
    let modes = kernel
        .modes()
        .expect("built-in kernels declare their modes");
    let accesses: Vec<xpu::Access> = tensors
        .iter()
        .zip(&modes)
        .map(|(t, m)| t.access(*m))
        .collect();
    let task = rt
        .submit_with(kernel, &accesses, TaskOptions::default().on(placement))
        .map_err(|e| e.to_string())?;
    rt.wait(&task).map_err(|e| e.to_string())?;
    let got = read_f64(rt, tensors.last().unwrap());
    let want = reference_in(kernel, &args, dtype);
    let tol = tolerance(dtype);
    let mut worst: f64 = 0.0;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let w = if dtype == DType::U8 {
            w.round().clamp(0.0, 255.0)
        } else {
            *w
        };
        let err = (g - w).abs();
        let bound = if dtype == DType::U8 {
            tol
        } else {
            tol * (1.0 + w.abs())
        };
        if err.is_nan() || err > bound {
            return Err(format!(
                "{} {dtype}: element {i} is {g}, reference {w} (tolerance {bound:.2e})",
                kernel.name()
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}
