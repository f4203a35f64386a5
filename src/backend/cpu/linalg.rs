//! The dense linear-algebra tiles of tiled Cholesky (POTRF, TRSM, SYRK) and
//! tiled LU without pivoting (GETRF and its two triangular solves) in f32
//! and f64: blocked algorithms whose work is in faer's matrix products.
//! Tiles are row-major.

use faer::linalg::matmul::{self, triangular::BlockStructure};
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_unit_lower_triangular_in_place,
};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, MatMut, MatRef, Par};

use super::widest::widest_fn;
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

/// Side of the diagonal blocks [`potrf`] and [`solve_right`] factor and
/// invert: the width at which their blocks' multiplications ran fastest
/// (a 256 x 256 f32 TRSM on one core: 32 and 48 were 3% slower, 96 16%).
const BLOCK: usize = 64;

/// A diagonal block, row-major; rows and columns past its size unused.
type Block<F> = [[F; BLOCK]; BLOCK];

/// Factors the lower triangle of `a` in place and zeroes the strict upper
/// triangle, so the tile holds exactly `L`.
///
/// Left-looking by blocks of [`BLOCK`] columns, the work in matrix
/// products: a block column takes the factored columns' share off
/// (`a_J.. -= l_J..<J l_J<J^T`), factors its diagonal block
/// ([`factor_lower`]) and solves the panel below against it
/// ([`apply_inverse`]). On a 256 x 256 f32 tile on one core this takes
/// 75-80 us (`cargo bench --bench tiles -- potrf`); faer's factorisation
/// of a column-major copy, before it, took 160-170.
pub(crate) fn potrf<F: Float + faer::traits::RealField>(
    a: &mut [F],
    n: usize,
    threads: usize,
) -> Result<()> {
    let par = par(threads);
    let mut scratch = Vec::new();
    let mut x = MatMut::from_row_major_slice_mut(a, n, n);
    for start in (0..n).step_by(BLOCK) {
        let width = BLOCK.min(n - start);
        if start > 0 {
            let (done, mut rest) = x.rb_mut().split_at_col_mut(start);
            matmul::matmul(
                rest.rb_mut().submatrix_mut(start, 0, n - start, width),
                Accum::Add,
                done.rb().subrows(start, n - start),
                done.rb().subrows(start, width).transpose(),
                -F::one(),
                par,
            );
        }
        let mut diagonal = block_of(x.rb().submatrix(start, start, width, width));
        if let Some(pivot) = factor_lower(&mut diagonal, width) {
            return Err(cpu_error(&format!(
                "potrf: the tile is not positive definite (pivot {} is {:?} after the updates)",
                start + pivot,
                diagonal[pivot][pivot]
            )));
        }
        for (i, row) in diagonal.iter().enumerate().take(width) {
            for (j, &v) in row.iter().enumerate().take(i + 1) {
                x[(start + i, start + j)] = v;
            }
        }
        let below = start + width;
        apply_inverse(
            x.rb_mut().submatrix_mut(below, start, n - below, width),
            &diagonal,
            &mut scratch,
            par,
        );
    }
    for (i, row) in a.chunks_exact_mut(n).enumerate() {
        row[i + 1..].fill(F::zero());
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
    solve_right(
        MatRef::from_row_major_slice(l, n, n),
        MatMut::from_row_major_slice_mut(b, m, n),
        threads,
    );
}

/// `x := x * t^-T` for lower triangular `t` (`n x n`) and `x` (`m x n`):
/// `x t^T = b`.
///
/// Left-looking by blocks of [`BLOCK`] columns, all but a sliver of the
/// work in matrix products: a block takes the solved blocks' share off
/// (`x_J -= x_<J t_J<J^T`), then multiplies by the inverse of its diagonal
/// block of `t` ([`apply_inverse`]). faer's own solver, given a row-major
/// `b`, recursed to 4 x 4 blocks whose rows stride across memory: on a
/// 256 x 256 f32 tile on one core it took 135-155 us, this 107-113.
fn solve_right<F: Float + faer::traits::RealField>(
    t: MatRef<'_, F>,
    mut x: MatMut<'_, F>,
    threads: usize,
) {
    let n = t.nrows();
    let par = par(threads);
    let mut scratch = Vec::new();
    for start in (0..n).step_by(BLOCK) {
        let width = BLOCK.min(n - start);
        let (done, mut rest) = x.rb_mut().split_at_col_mut(start);
        let mut block = rest.rb_mut().subcols_mut(0, width);
        if start > 0 {
            matmul::matmul(
                block.rb_mut(),
                Accum::Add,
                done.rb(),
                t.submatrix(start, 0, width, start).transpose(),
                -F::one(),
                par,
            );
        }
        let diagonal = block_of(t.submatrix(start, start, width, width));
        apply_inverse(block, &diagonal, &mut scratch, par);
    }
}

/// The lower triangle of `t` (at most [`BLOCK`] square) as a [`Block`].
fn block_of<F: Float>(t: MatRef<'_, F>) -> Block<F> {
    let mut block = [[F::zero(); BLOCK]; BLOCK];
    for (i, row) in block.iter_mut().enumerate().take(t.nrows()) {
        for (j, v) in row.iter_mut().enumerate().take(i + 1) {
            *v = t[(i, j)];
        }
    }
    block
}

/// `x := x * d^-T` for the lower triangular `d` (`w x w`, `x` is `m x w`):
/// one matrix product by the inverse of `d` into `scratch`, copied back.
/// Inverting a diagonal block, not substituting through it, is as
/// accurate for the well-conditioned triangles of a Cholesky or LU factor
/// (MAGMA's GPU TRSM does the same).
fn apply_inverse<F: Float + faer::traits::RealField>(
    mut x: MatMut<'_, F>,
    diagonal: &Block<F>,
    scratch: &mut Vec<F>,
    par: Par,
) {
    let (m, width) = (x.nrows(), x.ncols());
    if m == 0 {
        return;
    }
    let mut inverse = [[F::zero(); BLOCK]; BLOCK];
    invert_lower(diagonal, width, &mut inverse);
    let inverse = MatRef::from_row_major_slice(inverse.as_flattened(), BLOCK, BLOCK)
        .submatrix(0, 0, width, width);
    scratch.resize(m * width, F::zero());
    let mut product = MatMut::from_row_major_slice_mut(&mut scratch[..m * width], m, width);
    matmul::matmul(
        product.rb_mut(),
        Accum::Replace,
        x.rb(),
        inverse.transpose(),
        F::one(),
        par,
    );
    x.copy_from(product.rb());
}

widest_fn! {
    /// `inverse :=` the inverse of the leading `size x size` lower
    /// triangle of `t`, by rows: row `i` is `(e_i - sum_k<i t_ik row_k) /
    /// t_ii`, each a whole-row update the vector units take at once (the
    /// rows are zero past the diagonal). Rows past `size` are zeroed.
    fn invert_lower<F: Float>(t: &Block<F>, size: usize, inverse: &mut Block<F>) {
        for i in 0..BLOCK {
            let mut row = [F::zero(); BLOCK];
            if i < size {
                row[i] = F::one();
                for (k, done) in inverse.iter().enumerate().take(i) {
                    let tik = t[i][k];
                    for (r, d) in row.iter_mut().zip(done) {
                        *r = *r - tik * *d;
                    }
                }
                let scale = F::one() / t[i][i];
                for r in row.iter_mut() {
                    *r = *r * scale;
                }
            }
            inverse[i] = row;
        }
    }
}

widest_fn! {
    /// Factors the leading `size x size` lower triangle of `a` in place
    /// (`a = l l^T`), right-looking: each column scaled by its pivot's root,
    /// then every later row updated by it, whole rows at once for the
    /// vector units (what lands above the diagonal is never read). The
    /// first pivot that is not positive, if any.
    fn factor_lower<F: Float>(a: &mut Block<F>, size: usize) -> Option<usize> {
        for j in 0..size {
            let pivot = a[j][j];
            if pivot.partial_cmp(&F::zero()) != Some(std::cmp::Ordering::Greater) {
                return Some(j);
            }
            let root = pivot.sqrt();
            a[j][j] = root;
            let scale = F::one() / root;
            let mut column = [F::zero(); BLOCK];
            for i in j + 1..size {
                a[i][j] = a[i][j] * scale;
                column[i] = a[i][j];
            }
            for i in j + 1..size {
                let lij = column[i];
                for (v, c) in a[i].iter_mut().zip(&column) {
                    *v = *v - lij * *c;
                }
            }
        }
        None
    }
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
    matmul::triangular::matmul(
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
    matmul::matmul(
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
        MatMut::from_row_major_slice_mut(b, m, n),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `x t^T = b` by plain substitution in f64, the reference.
    fn substitute(t: &[f64], n: usize, b: &[f64], m: usize) -> Vec<f64> {
        let mut x = b.to_vec();
        for r in 0..m {
            for c in 0..n {
                let dot: f64 = (0..c).map(|k| x[r * n + k] * t[c * n + k]).sum();
                x[r * n + c] = (x[r * n + c] - dot) / t[c * n + c];
            }
        }
        x
    }

    /// The largest difference of `got` from `want`, relative where `want`
    /// is past 1 in magnitude.
    fn max_error<F: Copy + Into<f64>>(got: &[F], want: &[f64]) -> f64 {
        got.iter()
            .zip(want)
            .map(|(&g, w)| (g.into() - w).abs() / w.abs().max(1.0))
            .fold(0.0, f64::max)
    }

    /// A symmetric positive definite `n x n` matrix: a dominant diagonal,
    /// mixed signs off it.
    fn spd(n: usize) -> Vec<f64> {
        (0..n * n)
            .map(|e| match (e / n, e % n) {
                (i, j) if i == j => n as f64 / 4.0 + 1.0 + (i % 3) as f64,
                (i, j) => (((i + j) * 7919) % 23) as f64 / 23.0 - 0.5,
            })
            .collect()
    }

    /// `l` with `l l^T = a` by the textbook loops in f64, the reference.
    fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
        let mut l = vec![0.0; n * n];
        for j in 0..n {
            let d: f64 = (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum();
            l[j * n + j] = (a[j * n + j] - d).sqrt();
            for i in j + 1..n {
                let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
        l
    }

    #[test]
    fn blocked_potrf_matches_the_textbook_factor_across_block_edges_at_each_simd_level() {
        use super::super::widest::at_each_level;
        for n in [1, 5, BLOCK, BLOCK + 1, 150] {
            let a = spd(n);
            let want = cholesky(&a, n);
            at_each_level(|level| {
                let mut l = a.clone();
                potrf(&mut l, n, 1).unwrap();
                let err = max_error(&l, &want);
                assert!(err < 1e-12, "f64 n={n} at {level:?}: error {err}");
                let mut l32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                potrf(&mut l32, n, 1).unwrap();
                let err = max_error(&l32, &want);
                assert!(err < 1e-5, "f32 n={n} at {level:?}: error {err}");
            });
        }
    }

    #[test]
    fn potrf_names_the_first_pivot_that_is_not_positive_even_past_the_first_block() {
        let n = 2 * BLOCK + 10;
        let mut a = spd(n);
        let bad = BLOCK + 7;
        a[bad * n + bad] = -1.0;
        let err = potrf(&mut a, n, 1).unwrap_err().to_string();
        assert!(
            err.contains("not positive definite") && err.contains(&format!("pivot {bad} ")),
            "{err}"
        );
    }

    #[test]
    fn blocked_trsm_matches_substitution_across_block_edges_at_each_simd_level() {
        use super::super::widest::at_each_level;
        for (n, m) in [(1, 3), (BLOCK, 5), (BLOCK + 1, 70), (150, 33)] {
            // A Cholesky-like triangle: a dominant diagonal, mixed signs below.
            let t: Vec<f64> = (0..n * n)
                .map(|e| match (e / n, e % n) {
                    (i, j) if i == j => 2.0 + (i % 5) as f64 * 0.3,
                    (i, j) if j < i => ((e * 7919) % 23) as f64 / 23.0 - 0.5,
                    _ => 0.0,
                })
                .collect();
            let b: Vec<f64> = (0..m * n)
                .map(|e| ((e * 31) % 17) as f64 / 8.0 - 1.0)
                .collect();
            let want = substitute(&t, n, &b, m);
            at_each_level(|level| {
                let mut x = b.clone();
                trsm(&t, n, &mut x, m, 1);
                let err = max_error(&x, &want);
                assert!(err < 1e-12, "f64 n={n} m={m} at {level:?}: error {err}");
                let t32: Vec<f32> = t.iter().map(|&v| v as f32).collect();
                let mut x32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                trsm(&t32, n, &mut x32, m, 1);
                let err = max_error(&x32, &want);
                assert!(err < 1e-5, "f32 n={n} m={m} at {level:?}: error {err}");
            });
        }
    }
}
