//! Dense linear algebra workloads: tiled Cholesky and SGEMM, direct and tiled.

use std::time::Instant;

use crate::backend::cpu::{gemm, GemmElement, GemmSpec};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::host::core_count;
use crate::runtime::Runtime;
use crate::tiled::{self, TiledMatrix};
use crate::unit::Placement;

/// The outcome of a tiled Cholesky run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CholeskyRun {
    pub size: usize,
    pub tile: usize,
    pub dtype: DType,
    pub tasks: usize,
    /// From the first submission to the end of the last task.
    pub seconds: f64,
    /// `n^3 / 3` over `seconds`.
    pub gflops: f64,
    /// `||A - L L^T||_F / ||A||_F`.
    pub residual: f64,
}

/// The symmetric positive definite test matrix of StarPU's Cholesky example:
/// `a(i, j) = 1 / (i + j + 1) + n * [i == j]`.
pub fn spd_element(n: usize, i: usize, j: usize) -> f64 {
    1.0 / (i + j + 1) as f64 + if i == j { n as f64 } else { 0.0 }
}

/// Factors the `n x n` test matrix with tiled Cholesky and checks the factor.
///
/// ```
/// use xpu::{bench::cholesky, DType, Runtime};
/// let rt = Runtime::builder().build()?;
/// let run = cholesky(&rt, 64, 16, DType::F64)?;
/// assert!(run.residual < 1e-12);
/// assert_eq!(run.tasks, 20); // 4 potrf + 6 trsm + 6 syrk + 4 gemm
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn cholesky(rt: &Runtime, n: usize, tile: usize, dtype: DType) -> Result<CholeskyRun> {
    match dtype {
        DType::F32 => cholesky_typed::<f32>(rt, n, tile),
        DType::F64 => cholesky_typed::<f64>(rt, n, tile),
        other => Err(Error::Config(format!(
            "tiled Cholesky runs in f32 or f64, not {other}"
        ))),
    }
}

fn cholesky_typed<T: Element + GemmElement>(
    rt: &Runtime,
    n: usize,
    tile: usize,
) -> Result<CholeskyRun> {
    let a = TiledMatrix::from_fn(rt, n, tile, |i, j| T::from_f64(spd_element(n, i, j)))?;
    rt.wait_all();
    let start = Instant::now();
    let tasks = tiled::cholesky(rt, &a)?;
    rt.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let mut l: Vec<T> = a.to_vec(rt)?;
    for i in 0..n {
        for v in &mut l[i * n + i + 1..(i + 1) * n] {
            *v = T::zeroed();
        }
    }
    let mut llt = vec![T::zeroed(); n * n];
    let spec = GemmSpec {
        trans_b: true,
        ..GemmSpec::plain(core_count())
    };
    gemm(&spec, &l, &[n, n], &l, &[n, n], &mut llt)?;
    let (mut diff, mut norm) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let want = T::from_f64(spd_element(n, i, j)).to_f64();
            diff += (want - llt[i * n + j].to_f64()).powi(2);
            norm += want * want;
        }
    }
    Ok(CholeskyRun {
        size: n,
        tile,
        dtype: T::DTYPE,
        tasks,
        seconds,
        gflops: (n as f64).powi(3) / 3.0 / seconds * 1e-9,
        residual: (diff / norm).sqrt(),
    })
}

/// The outcome of a GEMM measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GemmRun {
    pub size: usize,
    pub seconds: f64,
    pub gflops: f64,
    /// Largest difference from the reference (the direct call).
    pub max_error: f64,
}

/// Element `(i, j)` of the A operand of the SGEMM workloads: values in
/// [-0.5, 0.5) with no simple structure a kernel could exploit.
pub fn gemm_a(i: usize, j: usize) -> f32 {
    ((i * 7 + j * 3) % 17) as f32 / 17.0 - 0.5
}

/// Element `(i, j)` of the B operand of the SGEMM workloads.
pub fn gemm_b(i: usize, j: usize) -> f32 {
    ((i * 5 + j * 11) % 13) as f32 / 13.0 - 0.5
}

/// `C = A B` on `n x n` f32 through the runtime as a tiled DAG, best of
/// `reps` runs; the result is checked against one direct call of the CPU kernel.
pub fn tiled_sgemm(rt: &Runtime, n: usize, tile: usize, reps: usize) -> Result<GemmRun> {
    let a = TiledMatrix::from_fn(rt, n, tile, gemm_a)?;
    let b = TiledMatrix::from_fn(rt, n, tile, gemm_b)?;
    let c = TiledMatrix::zeros(rt, n, tile, DType::F32)?;
    rt.wait_all();
    let mut seconds = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        tiled::gemm(rt, &a, &b, &c, Placement::Any)?;
        rt.synchronize()?;
        seconds = seconds.min(start.elapsed().as_secs_f64());
    }
    let got: Vec<f32> = c.to_vec(rt)?;
    let full = |f: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
        (0..n * n).map(|e| f(e / n, e % n)).collect()
    };
    let mut want = vec![0f32; n * n];
    gemm(
        &GemmSpec::plain(core_count()),
        &full(&gemm_a),
        &[n, n],
        &full(&gemm_b),
        &[n, n],
        &mut want,
    )?;
    let max_error = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() as f64)
        .fold(0.0, f64::max);
    Ok(GemmRun {
        size: n,
        seconds,
        gflops: 2.0 * (n as f64).powi(3) / seconds * 1e-9,
        max_error,
    })
}

/// The best of `reps` timings of one direct call of the CPU SGEMM kernel
/// on all cores.
pub fn direct_sgemm(n: usize, reps: usize) -> Result<GemmRun> {
    let a: Vec<f32> = (0..n * n).map(|e| (e % 17) as f32 / 17.0).collect();
    let b: Vec<f32> = (0..n * n).map(|e| (e % 13) as f32 / 13.0).collect();
    let mut c = vec![0f32; n * n];
    let spec = GemmSpec::plain(core_count());
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        gemm(&spec, &a, &[n, n], &b, &[n, n], &mut c)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(GemmRun {
        size: n,
        seconds: best,
        gflops: 2.0 * (n as f64).powi(3) / best * 1e-9,
        max_error: 0.0,
    })
}
