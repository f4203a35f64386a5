//! The dense linear-algebra tiles of tiled Cholesky (POTRF, TRSM, SYRK) and
//! tiled LU without pivoting (GETRF and its two triangular solves) in f32
//! and f64, through `faer`. Tiles are row-major.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    cholesky_in_place, cholesky_in_place_scratch, LltRegularization,
};
use faer::linalg::matmul::triangular::{matmul, BlockStructure};
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_unit_lower_triangular_in_place,
};
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
/// triangle, so the tile holds exactly `L`. faer factors a column-major
/// copy: on the row-major tile in place it ran at 17-20 GFLOP/s on one
/// core (256 x 256 f32), on the copy at 30-35.
pub(crate) fn potrf<F: Float + faer::traits::RealField>(
    a: &mut [F],
    n: usize,
    threads: usize,
) -> Result<()> {
    let par = par(threads);
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<F>(n, par, Default::default()));
    let mut l = faer::Mat::<F>::from_fn(n, n, |i, j| if j <= i { a[i * n + j] } else { F::zero() });
    cholesky_in_place(
        l.as_mut(),
        LltRegularization::default(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| cpu_error(&format!("potrf: the tile is not positive definite ({e:?})")))?;
    for (i, row) in a.chunks_exact_mut(n).enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = if j <= i { l[(i, j)] } else { F::zero() };
        }
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
    solve_right(MatRef::from_row_major_slice(l, n, n), b, m, threads);
}

/// `b := b * t^-T` for lower triangular `t` (`n x n`) and `b` (`m x n`):
/// `t x^T = b^T`.
fn solve_right<F: Float + faer::traits::RealField>(
    t: MatRef<'_, F>,
    b: &mut [F],
    m: usize,
    threads: usize,
) {
    let bt = MatMut::from_row_major_slice_mut(b, m, t.nrows()).transpose_mut();
    solve_lower_triangular_in_place(t, bt, par(threads));
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

/// Below this size GETRF factors with plain loops.
const GETRF_BLOCK: usize = 32;

/// Factors `a` (`n x n`) as `L U` without pivoting, in place.
pub(crate) fn getrf<F: Float + faer::traits::RealField>(
    a: &mut [F],
    n: usize,
    threads: usize,
) -> Result<()> {
    getrf_view(MatMut::from_row_major_slice_mut(a, n, n), 0, par(threads))
}

/// Recursively: factor the leading half, solve the two panels against it,
/// update the trailing half and factor it. `offset` is the view's place on
/// the tile's diagonal (for the error).
fn getrf_view<F: Float + faer::traits::RealField>(
    mut a: MatMut<'_, F>,
    offset: usize,
    par: Par,
) -> Result<()> {
    let n = a.nrows();
    if n <= GETRF_BLOCK {
        for k in 0..n {
            let pivot = a[(k, k)];
            if pivot == F::zero() || !pivot.is_finite() {
                return Err(cpu_error(&format!(
                    "getrf: pivot {} is {pivot:?}; the tile needs pivoting (LU without pivoting takes e.g. a diagonally dominant tile)",
                    offset + k
                )));
            }
            for i in k + 1..n {
                let l = a[(i, k)] / pivot;
                a[(i, k)] = l;
                for j in k + 1..n {
                    let u = a[(k, j)];
                    a[(i, j)] -= l * u;
                }
            }
        }
        return Ok(());
    }
    let h = n / 2;
    let (mut a11, mut a12, mut a21, mut a22) = a.split_at_mut(h, h);
    getrf_view(a11.as_mut(), offset, par)?;
    solve_unit_lower_triangular_in_place(a11.as_ref(), a12.as_mut(), par);
    solve_lower_triangular_in_place(a11.as_ref().transpose(), a21.as_mut().transpose_mut(), par);
    faer::linalg::matmul::matmul(
        a22.as_mut(),
        Accum::Add,
        a21.as_ref(),
        a12.as_ref(),
        -F::one(),
        par,
    );
    getrf_view(a22, offset + h, par)
}

/// `b := l^-1 b` for `l` the unit lower triangle of an LU tile (`n x n`)
/// and `b` (`n x m`).
pub(crate) fn trsm_lower<F: Float + faer::traits::RealField>(
    lu: &[F],
    n: usize,
    b: &mut [F],
    m: usize,
    threads: usize,
) {
    let lu = MatRef::from_row_major_slice(lu, n, n);
    let b = MatMut::from_row_major_slice_mut(b, n, m);
    solve_unit_lower_triangular_in_place(lu, b, par(threads));
}

/// `b := b u^-1` for `u` the upper triangle of an LU tile (`n x n`) and
/// `b` (`m x n`): `u^-1 = (u^T)^-T`, `u^T` lower.
pub(crate) fn trsm_upper<F: Float + faer::traits::RealField>(
    lu: &[F],
    n: usize,
    b: &mut [F],
    m: usize,
    threads: usize,
) {
    solve_right(
        MatRef::from_row_major_slice(lu, n, n).transpose(),
        b,
        m,
        threads,
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
        (Kernel::Trsm | Kernel::TrsmLower | Kernel::TrsmUpper, [triangle, b]) => {
            let (n, rows, cols) = (triangle.shape[0], b.shape[0], b.shape[1]);
            let (t, b) = (triangle.as_slice::<F>()?, b.as_mut_slice::<F>()?);
            match kernel {
                Kernel::TrsmLower => trsm_lower(t, n, b, cols, threads),
                Kernel::TrsmUpper => trsm_upper(t, n, b, rows, threads),
                _ => trsm(t, n, b, rows, threads),
            }
            Ok(())
        }
        (Kernel::Syrk, [a, c]) => {
            let (n, k) = (a.shape[0], a.shape[1]);
            syrk(a.as_slice::<F>()?, n, k, c.as_mut_slice::<F>()?, threads);
            Ok(())
        }
        (Kernel::Getrf, [a]) => {
            let n = a.shape[0];
            getrf(a.as_mut_slice::<F>()?, n, threads)
        }
        (k, _) => Err(cpu_error(&format!(
            "`{}`: wrong arguments for a Cholesky or LU tile",
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
