//! The dense linear-algebra tiles of tiled Cholesky (POTRF, TRSM, SYRK) in
//! f32 and f64, through `faer`. Tiles are row-major.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    cholesky_in_place, cholesky_in_place_scratch, LltRegularization,
};
use faer::linalg::matmul::triangular::{matmul, BlockStructure};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, MatMut, MatRef, Par};

use super::{cpu_error, Float};
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernel::Kernel;

fn par(threads: usize) -> Par {
    if threads > 1 {
        Par::rayon(threads)
    } else {
        Par::Seq
    }
}

/// Factors the lower triangle of `a` in place and zeroes the strict upper
/// triangle, so the tile holds exactly `L`.
pub(crate) fn potrf<F: Float + faer::traits::RealField>(
    a: &mut [F],
    n: usize,
    threads: usize,
) -> Result<()> {
    let par = par(threads);
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<F>(n, par, Default::default()));
    let view = MatMut::from_row_major_slice_mut(a, n, n);
    cholesky_in_place(
        view,
        LltRegularization::default(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| cpu_error(&format!("potrf: the tile is not positive definite ({e:?})")))?;
    for i in 0..n {
        a[i * n + i + 1..(i + 1) * n].fill(F::zero());
    }
    Ok(())
}

/// `b := b * l^-T` for lower triangular `l` (`n x n`) and `b` (`m x n`).
pub(crate) fn trsm<F: Float + faer::traits::RealField>(
    l: &[F],
    n: usize,
    b: &mut [F],
    m: usize,
    threads: usize,
) {
    let l = MatRef::from_row_major_slice(l, n, n);
    let bt = MatMut::from_row_major_slice_mut(b, m, n).transpose_mut();
    solve_lower_triangular_in_place(l, bt, par(threads));
}

/// `c := c - a * a^T` on the lower triangle of `c` (`n x n`), `a` is `n x k`.
pub(crate) fn syrk<F: Float + faer::traits::RealField>(
    a: &[F],
    n: usize,
    k: usize,
    c: &mut [F],
    threads: usize,
) {
    let a = MatRef::from_row_major_slice(a, n, k);
    let c = MatMut::from_row_major_slice_mut(c, n, n);
    matmul(
        c,
        BlockStructure::TriangularLower,
        Accum::Add,
        a,
        BlockStructure::Rectangular,
        a.transpose(),
        BlockStructure::Rectangular,
        -F::one(),
        par(threads),
    );
}

fn run<F: Float + faer::traits::RealField>(
    kernel: &Kernel,
    args: &mut [Arg<'_>],
    threads: usize,
) -> Result<()> {
    match (kernel, args) {
        (Kernel::Potrf, [a]) => {
            let n = a.shape[0];
            potrf(a.as_mut_slice::<F>()?, n, threads)
        }
        (Kernel::Trsm, [l, b]) => {
            let (n, m) = (l.shape[0], b.shape[0]);
            trsm(l.as_slice::<F>()?, n, b.as_mut_slice::<F>()?, m, threads);
            Ok(())
        }
        (Kernel::Syrk, [a, c]) => {
            let (n, k) = (a.shape[0], a.shape[1]);
            syrk(a.as_slice::<F>()?, n, k, c.as_mut_slice::<F>()?, threads);
            Ok(())
        }
        (k, _) => Err(cpu_error(&format!(
            "`{}`: wrong arguments for a Cholesky tile",
            k.name()
        ))),
    }
}

pub(super) fn launch(kernel: &Kernel, args: &mut [Arg<'_>], threads: usize) -> Result<()> {
    match args.first().map(|a| a.dtype) {
        Some(DType::F32) => run::<f32>(kernel, args, threads),
        Some(DType::F64) => run::<f64>(kernel, args, threads),
        other => Err(cpu_error(&format!(
            "`{}` takes f32 or f64, got {other:?}",
            kernel.name()
        ))),
    }
}
