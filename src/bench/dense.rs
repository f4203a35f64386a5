//! Dense linear algebra workloads: tiled Cholesky and LU, and SGEMM, direct and tiled.

use std::time::Instant;

use crate::backend::cpu::{gemm, GemmElement, GemmSpec};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::host::core_count;
use crate::kernel::Kernel;
use crate::runtime::{Runtime, TaskOptions};
use crate::tiled::{self, Algorithm, TiledMatrix};
use crate::unit::{Placement, UnitKind};

/// How a benchmark holds a tiled matrix's tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TileLayout {
    /// Tensors of their own, filled one by one.
    Separate,
    /// The 2-D blocks of one plain tensor ([`TiledMatrix::partition`]):
    /// scattered into the tiles before the factorisation, gathered after.
    Partitioned,
}

impl TileLayout {
    /// `separate` or `partitioned`.
    pub fn parse(name: &str) -> Result<TileLayout> {
        match name {
            "separate" => Ok(TileLayout::Separate),
            "partitioned" => Ok(TileLayout::Partitioned),
            other => Err(Error::Config(format!(
                "unknown tile layout `{other}` (separate, partitioned)"
            ))),
        }
    }
}

/// The outcome of a tiled factorisation run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FactorRun {
    /// `cholesky` or `lu`.
    pub algorithm: &'static str,
    pub size: usize,
    pub tile: usize,
    pub dtype: DType,
    pub tasks: usize,
    pub layout: TileLayout,
    /// Making the tiles current before the factorisation (the scatter of
    /// a partitioned matrix; 0 for separate tiles, filled before).
    pub split_seconds: f64,
    /// From the first submission to the end of the last task.
    pub seconds: f64,
    /// Reading the factors back as one matrix (the gather and the read of
    /// a partitioned matrix; reading and placing each separate tile).
    pub assemble_seconds: f64,
    /// `n^3 / 3` (Cholesky) or `2 n^3 / 3` (LU) over `seconds`.
    pub gflops: f64,
    /// `||A - L L^T||_F / ||A||_F`, or `||A - L U||_F / ||A||_F`.
    pub residual: f64,
}

/// The symmetric positive definite test matrix of StarPU's Cholesky example:
/// `a(i, j) = 1 / (i + j + 1) + n * [i == j]`. Diagonally dominant, so LU
/// factors it without pivoting too.
pub fn spd_element(n: usize, i: usize, j: usize) -> f64 {
    1.0 / (i + j + 1) as f64 + if i == j { n as f64 } else { 0.0 }
}

/// Factors the `n x n` test matrix ([`spd_element`]) with tiled Cholesky or
/// LU and checks the factors.
///
/// ```
/// use xpu::{bench::{factor, TileLayout}, tiled::Algorithm, DType, Runtime};
/// let rt = Runtime::builder().build()?;
/// let run = factor(&rt, Algorithm::Cholesky, 64, 16, DType::F64, TileLayout::Separate)?;
/// assert!(run.residual < 1e-12);
/// assert_eq!(run.tasks, 20); // 4 potrf + 6 trsm + 6 syrk + 4 gemm
/// let run = factor(&rt, Algorithm::Lu, 64, 16, DType::F32, TileLayout::Partitioned)?;
/// assert!(run.residual < 1e-5, "{}", run.residual);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn factor(
    rt: &Runtime,
    algorithm: Algorithm,
    n: usize,
    tile: usize,
    dtype: DType,
    layout: TileLayout,
) -> Result<FactorRun> {
    if algorithm == Algorithm::Gemm {
        return Err(Error::Config(
            "bench::factor runs cholesky or lu; tiled GEMM is bench::tiled_sgemm".into(),
        ));
    }
    match dtype {
        DType::F32 => factor_typed::<f32>(rt, algorithm, n, tile, layout),
        DType::F64 => factor_typed::<f64>(rt, algorithm, n, tile, layout),
        other => Err(Error::Config(format!(
            "tiled {} runs in f32 or f64, not {other}",
            algorithm.name()
        ))),
    }
}

fn factor_typed<T: Element + GemmElement>(
    rt: &Runtime,
    algorithm: Algorithm,
    n: usize,
    tile: usize,
    layout: TileLayout,
) -> Result<FactorRun> {
    let element = |i, j| T::from_f64(spd_element(n, i, j));
    let a = match layout {
        TileLayout::Separate => TiledMatrix::from_fn(rt, n, tile, element)?,
        TileLayout::Partitioned => {
            let data: Vec<T> = (0..n * n).map(|e| element(e / n, e % n)).collect();
            TiledMatrix::partition(rt, &rt.tensor(&[n, n], data)?, tile)?
        }
    };
    rt.wait_all();
    let start = Instant::now();
    if layout == TileLayout::Partitioned {
        // One task that reads every tile makes them current: the scatter.
        let reads: Vec<_> = a.tiles().iter().map(|t| t.read()).collect();
        let on_cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
        rt.wait(&rt.submit_with(&Kernel::Noop, &reads, on_cpu)?)?;
    }
    let split_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let tasks = match algorithm {
        Algorithm::Lu => tiled::lu(rt, &a)?,
        _ => tiled::cholesky(rt, &a)?,
    };
    rt.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let f: Vec<T> = a.to_vec(rt)?;
    let assemble_seconds = start.elapsed().as_secs_f64();
    // Split the result into the two factors and multiply them back.
    let mut l = f.clone();
    let mut r = f;
    for i in 0..n {
        for j in 0..n {
            let e = i * n + j;
            match (algorithm, j.cmp(&i)) {
                (Algorithm::Lu, std::cmp::Ordering::Less) => r[e] = T::zeroed(),
                (Algorithm::Lu, std::cmp::Ordering::Equal) => l[e] = T::from_f64(1.0),
                (Algorithm::Lu, std::cmp::Ordering::Greater) => l[e] = T::zeroed(),
                (_, std::cmp::Ordering::Greater) => l[e] = T::zeroed(),
                _ => {}
            }
        }
    }
    let spec = match algorithm {
        Algorithm::Lu => GemmSpec::plain(core_count()),
        _ => {
            r.clone_from(&l);
            GemmSpec {
                trans_b: true,
                ..GemmSpec::plain(core_count())
            }
        }
    };
    let mut product = vec![T::zeroed(); n * n];
    gemm(&spec, &l, &[n, n], &r, &[n, n], &mut product)?;
    let (mut diff, mut norm) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let want = T::from_f64(spd_element(n, i, j)).to_f64();
            diff += (want - product[i * n + j].to_f64()).powi(2);
            norm += want * want;
        }
    }
    let flops = match algorithm {
        Algorithm::Lu => 2.0 * (n as f64).powi(3) / 3.0,
        _ => (n as f64).powi(3) / 3.0,
    };
    Ok(FactorRun {
        algorithm: algorithm.name(),
        size: n,
        tile,
        dtype: T::DTYPE,
        tasks,
        layout,
        split_seconds,
        seconds,
        assemble_seconds,
        gflops: flops / seconds * 1e-9,
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
    let mut sgemm = DirectSgemm::new(n);
    for _ in 0..reps.max(1) {
        sgemm.time_once()?;
    }
    Ok(sgemm.best())
}

/// Direct SGEMM as a reference rate taken a call at a time, so that a
/// benchmark can alternate it with the work it judges: on a shared machine
/// the rate drifts, and only timings taken side by side compare.
///
/// ```
/// let mut sgemm = xpu::bench::DirectSgemm::new(64);
/// sgemm.time_once()?;
/// sgemm.time_once()?;
/// assert!(sgemm.best().gflops > 0.0);
/// # Ok::<(), xpu::Error>(())
/// ```
pub struct DirectSgemm {
    n: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    best: f64,
}

impl DirectSgemm {
    /// `n x n` operands, filled (not timed).
    pub fn new(n: usize) -> DirectSgemm {
        DirectSgemm {
            n,
            a: (0..n * n).map(|e| (e % 17) as f32 / 17.0).collect(),
            b: (0..n * n).map(|e| (e % 13) as f32 / 13.0).collect(),
            c: vec![0f32; n * n],
            best: f64::INFINITY,
        }
    }

    /// Times one `C = A B` on all cores; returns its seconds.
    pub fn time_once(&mut self) -> Result<f64> {
        let shape = [self.n, self.n];
        let start = Instant::now();
        gemm(
            &GemmSpec::plain(core_count()),
            &self.a,
            &shape,
            &self.b,
            &shape,
            &mut self.c,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        self.best = self.best.min(seconds);
        Ok(seconds)
    }

    /// The fastest call so far.
    pub fn best(&self) -> GemmRun {
        GemmRun {
            size: self.n,
            seconds: self.best,
            gflops: 2.0 * (self.n as f64).powi(3) / self.best * 1e-9,
            max_error: 0.0,
        }
    }
}
