//! The kernel x unit x size table of `xpu bench`: one case per kernel and
//! size, timed through the runtime on one unit.

use std::time::Instant;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernel::{spec_names, BinaryOp, Kernel, Mode, PoolOp, ReduceOp, UnaryOp};
use crate::runtime::{Runtime, TaskOptions};
use crate::tensor::Tensor;
use crate::unit::{Placement, UnitId};

use super::spd_element;

/// Kernels `xpu bench` knows how to size: every built-in kernel with a
/// spec but `noop` (the element-wise, reduction and pooling ops come from
/// their tables, so a new op is benchmarked at once).
pub fn bench_kernels() -> Vec<&'static str> {
    let mut names = spec_names();
    names.retain(|n| *n != "noop");
    names
}

/// Fills argument `arg` at flat index `e` of an argument whose rows have `n` elements.
type Fill = fn(usize, usize, usize) -> f64;

/// One benchmark case: a kernel and the shapes of its arguments.
#[derive(Debug, Clone)]
pub struct BenchCase {
    pub kernel: Kernel,
    pub shapes: Vec<Vec<usize>>,
    pub dtype: DType,
    /// The size it was made for.
    pub size: usize,
    fill: Fill,
}

fn pattern(_arg: usize, e: usize, _n: usize) -> f64 {
    ((e * 7919) % 1000) as f64 / 1000.0 - 0.5
}

fn pixels(_arg: usize, e: usize, _n: usize) -> f64 {
    ((e * 31) % 256) as f64
}

/// SPD matrices for POTRF and SYRK's C; a well-conditioned lower factor for TRSM's L.
fn cholesky_tiles(arg: usize, e: usize, n: usize) -> f64 {
    let (i, j) = (e / n, e % n);
    if arg == 0 && j > i {
        0.0
    } else {
        spd_element(n, i, j)
    }
}

/// Diagonally dominant tiles, which LU factors without pivoting.
fn lu_tiles(_arg: usize, e: usize, n: usize) -> f64 {
    spd_element(n, e / n, e % n)
}

/// The benchmark case of kernel `name` at `size` (matrices are `size x size`;
/// images `size x size`; convolutions and pooling 16 channels of `size/4`).
///
/// ```
/// let case = xpu::bench::bench_case("gemm", 256, xpu::DType::F32).unwrap();
/// assert_eq!(case.shapes, vec![vec![256, 256]; 3]);
/// assert!(xpu::bench::bench_case("fft", 256, xpu::DType::F32).is_err());
/// ```
pub fn bench_case(name: &str, size: usize, dtype: DType) -> Result<BenchCase> {
    let s = size.max(4);
    let sq = vec![s, s];
    let q = (s / 4).max(2);
    let image = |c: usize| if c == 1 { vec![s, s] } else { vec![s, s, c] };
    let (kernel, shapes, fill): (Kernel, Vec<Vec<usize>>, Fill) =
        if let Some(op) = BinaryOp::from_name(name) {
            (Kernel::Binary(op), vec![sq.clone(); 3], pattern)
        } else if let Some(op) = UnaryOp::from_name(name) {
            (Kernel::Unary(op), vec![sq.clone(); 2], pattern)
        } else if let Some(op) = ReduceOp::from_name(name) {
            (
                Kernel::Reduce { op, axis: 1 },
                vec![sq.clone(), vec![s]],
                pattern,
            )
        } else if let Some(op) = PoolOp::from_name(name) {
            let half = (q / 2).max(1);
            (
                Kernel::Pool2d {
                    op,
                    window: 2,
                    stride: 2,
                },
                vec![vec![1, 16, 2 * half, 2 * half], vec![1, 16, half, half]],
                pattern,
            )
        } else {
            let case: (Kernel, Vec<Vec<usize>>, Fill) = match name {
                "gemm" => (Kernel::gemm(), vec![sq.clone(); 3], pattern),
                "softmax" => (Kernel::Softmax, vec![sq.clone(); 2], pattern),
                "layer_norm" => (
                    Kernel::LayerNorm { eps: 1e-5 },
                    vec![sq.clone(), vec![s], vec![s], sq.clone()],
                    pattern,
                ),
                "conv2d" => (
                    Kernel::Conv2d {
                        stride: 1,
                        padding: 1,
                    },
                    vec![vec![1, 16, q, q], vec![32, 16, 3, 3], vec![1, 32, q, q]],
                    pattern,
                ),
                "resize" => (
                    Kernel::Resize,
                    vec![image(3), vec![s / 2, s / 2, 3]],
                    pixels,
                ),
                "gaussian_blur" => (
                    Kernel::GaussianBlur { sigma: 1.5 },
                    vec![image(3), image(3)],
                    pixels,
                ),
                "sobel" => (Kernel::Sobel, vec![image(1), image(1)], pixels),
                "rgb_to_gray" => (Kernel::RgbToGray, vec![image(3), image(1)], pixels),
                "threshold" => (
                    Kernel::Threshold {
                        value: 0.5,
                        max: 1.0,
                    },
                    vec![image(1), image(1)],
                    pixels,
                ),
                "gray_blur" => (
                    Kernel::GrayBlur { sigma: 1.5 },
                    vec![image(3), image(1)],
                    pixels,
                ),
                "sobel_threshold" => (
                    Kernel::SobelThreshold {
                        value: 128.0,
                        max: 255.0,
                    },
                    vec![image(1), image(1)],
                    pixels,
                ),
                "potrf" => (Kernel::Potrf, vec![sq.clone()], cholesky_tiles),
                "trsm" => (Kernel::Trsm, vec![sq.clone(); 2], cholesky_tiles),
                "syrk" => (Kernel::Syrk, vec![sq.clone(); 2], cholesky_tiles),
                "getrf" => (Kernel::Getrf, vec![sq.clone()], lu_tiles),
                "trsm_ll" => (Kernel::TrsmLower, vec![sq.clone(); 2], lu_tiles),
                "trsm_ru" => (Kernel::TrsmUpper, vec![sq.clone(); 2], lu_tiles),
                other => return Err(unknown(other)),
            };
            case
        };
    Ok(BenchCase {
        kernel,
        shapes,
        dtype,
        size,
        fill,
    })
}

fn unknown(name: &str) -> Error {
    Error::Config(format!(
        "no benchmark for kernel `{name}` (known: {})",
        bench_kernels().join(", ")
    ))
}

/// One row of the benchmark table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    pub kernel: String,
    pub unit: UnitId,
    pub kind: String,
    pub device: String,
    pub emulated: bool,
    pub size: usize,
    pub dtype: DType,
    /// Tasks submitted back to back per timed run.
    pub batch: usize,
    /// Best time per task, from submission to completion of the run.
    pub seconds: f64,
    pub gflops: f64,
    /// Bytes of all arguments over the time.
    pub gbps: f64,
    /// Whether GB/s (rather than GFLOP/s) is the figure that matters.
    pub memory_bound: bool,
}

impl BenchCase {
    /// One tensor per argument, filled with the case's data, with the
    /// kernel's access modes: ready to submit.
    pub fn accesses(&self, rt: &Runtime) -> Result<Vec<crate::tensor::Access>> {
        let modes = self.kernel.modes().unwrap_or_default();
        modes
            .iter()
            .enumerate()
            .map(|(i, m)| Ok(self.tensor(rt, i)?.access(*m)))
            .collect()
    }

    fn tensor(&self, rt: &Runtime, arg: usize) -> Result<Tensor> {
        let shape = &self.shapes[arg];
        let n = shape.get(1).copied().unwrap_or(1);
        let count: usize = shape.iter().product();
        let values = (0..count).map(|e| (self.fill)(arg, e, n));
        match self.dtype {
            DType::F32 => rt.tensor(shape, values.map(|v| v as f32).collect::<Vec<_>>()),
            DType::F64 => rt.tensor(shape, values.collect::<Vec<_>>()),
            DType::F16 => rt.tensor(shape, values.map(half::f16::from_f64).collect::<Vec<_>>()),
            DType::BF16 => rt.tensor(shape, values.map(half::bf16::from_f64).collect::<Vec<_>>()),
            DType::U8 => rt.tensor(shape, values.map(|v| v as u8).collect::<Vec<_>>()),
            DType::U32 => rt.tensor(shape, values.map(|v| v as u32).collect::<Vec<_>>()),
        }
    }
}

/// Runs `case` on `unit` once to warm up (and move the inputs there), then
/// `reps` times; written arguments are fresh for every run, so in-place
/// kernels always see the same input. Each run submits `batch` tasks back
/// to back and reports the time per task, which shows a device's
/// throughput rather than its latency (kernels that update an argument in
/// place always run one at a time).
pub fn measure(
    rt: &Runtime,
    unit: UnitId,
    case: &BenchCase,
    reps: usize,
    batch: usize,
) -> Result<BenchRow> {
    let info = rt
        .units()
        .get(unit)
        .ok_or_else(|| Error::UnknownUnit(format!("unit {unit}")))?;
    let modes = case.kernel.modes().unwrap_or_default();
    let inputs: Vec<Option<Tensor>> = modes
        .iter()
        .enumerate()
        .map(|(i, m)| (*m == Mode::Read).then(|| case.tensor(rt, i)).transpose())
        .collect::<Result<_>>()?;
    let opts = TaskOptions::default().on(Placement::Unit(unit));
    let batch = if modes.contains(&Mode::ReadWrite) {
        1
    } else {
        batch.max(1)
    };
    let mut best = f64::INFINITY;
    for rep in 0..=reps.max(1) {
        let accesses = modes
            .iter()
            .zip(&inputs)
            .enumerate()
            .map(|(i, (m, t))| match t {
                Some(t) => Ok(t.access(*m)),
                None => Ok(case.tensor(rt, i)?.access(*m)),
            })
            .collect::<Result<Vec<_>>>()?;
        let start = Instant::now();
        let tasks = (0..batch)
            .map(|_| rt.submit_with(&case.kernel, &accesses, opts.clone()))
            .collect::<Result<Vec<_>>>()?;
        for task in &tasks {
            rt.wait(task)?;
        }
        rt.synchronize()?;
        if rep > 0 {
            best = best.min(start.elapsed().as_secs_f64() / batch as f64);
        }
    }
    let shapes: Vec<&[usize]> = case.shapes.iter().map(Vec::as_slice).collect();
    let bytes: usize = case
        .shapes
        .iter()
        .map(|s| s.iter().product::<usize>() * case.dtype.size())
        .sum();
    Ok(BenchRow {
        kernel: case.kernel.name().to_string(),
        unit,
        kind: info.kind.to_string(),
        device: info.device.clone(),
        emulated: info.emulated,
        size: case.size,
        dtype: case.dtype,
        batch,
        seconds: best,
        gflops: case.kernel.flops(&shapes) / best * 1e-9,
        gbps: bytes as f64 / best * 1e-9,
        memory_bound: case.kernel.is_memory_bound(),
    })
}
