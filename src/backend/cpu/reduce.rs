//! Reductions along an axis, softmax and layer norm.

use super::widest::widest_fn;
use super::Float;
use crate::kernel::ReduceOp;

/// Splits a shape around `axis` into (outer, axis length, inner).
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Sum of a row with eight independent accumulators, so it vectorises.
#[inline(always)]
fn row_sum<F: Float>(row: &[F]) -> F {
    row_fold(row, F::zero(), |a, v| a + v, |a, b| a + b)
}

/// Largest value of a row (NaN ignored, as `max` does), vectorised alike.
#[inline(always)]
fn row_max<F: Float>(row: &[F]) -> F {
    row_fold(row, F::neg_infinity(), F::max, F::max)
}

/// Sum and sum of squares of `row - shift`, in one pass with eight lanes.
#[inline(always)]
fn row_moments<F: Float>(row: &[F], shift: F) -> (F, F) {
    let (mut sums, mut squares) = ([F::zero(); 8], [F::zero(); 8]);
    let chunks = row.chunks_exact(8);
    let (mut sum, mut square) = (F::zero(), F::zero());
    for &v in chunks.remainder() {
        sum = sum + (v - shift);
        square = square + (v - shift) * (v - shift);
    }
    for c in chunks {
        for ((s, q), &v) in sums.iter_mut().zip(squares.iter_mut()).zip(c) {
            let y = v - shift;
            *s = *s + y;
            *q = *q + y * y;
        }
    }
    (
        sums.into_iter().fold(sum, |a, b| a + b),
        squares.into_iter().fold(square, |a, b| a + b),
    )
}

/// Folds a row into eight independent accumulators with `step`, then
/// joins them with `join`, so that the loop vectorises.
#[inline(always)]
fn row_fold<F: Float>(row: &[F], init: F, step: impl Fn(F, F) -> F, join: impl Fn(F, F) -> F) -> F {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(init, |a, &v| step(a, v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = step(*a, v);
        }
    }
    join(acc.into_iter().fold(init, &join), tail)
}

/// Reduces the middle axis of an `[outer, n, inner]` view with `f`.
fn reduce_strided<F: Float>(
    x: &[F],
    (outer, n, inner): (usize, usize, usize),
    out: &mut [F],
    init: F,
    f: impl Fn(F, F) -> F,
) {
    for o in 0..outer {
        let dst = &mut out[o * inner..(o + 1) * inner];
        dst.fill(init);
        for j in 0..n {
            let row = &x[(o * n + j) * inner..(o * n + j + 1) * inner];
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = f(*d, v);
            }
        }
    }
}

pub(super) fn reduce<F: Float>(op: ReduceOp, x: &[F], shape: &[usize], axis: usize, out: &mut [F]) {
    let dims = split(shape, axis);
    let (_, n, inner) = dims;
    if inner == 1 {
        // Reducing the last axis: each output is one contiguous row.
        for (dst, row) in out.iter_mut().zip(x.chunks(n.max(1))) {
            *dst = match op {
                ReduceOp::Sum => row_sum(row),
                ReduceOp::Max => row_max(row),
            };
        }
        return;
    }
    match op {
        ReduceOp::Sum => reduce_strided(x, dims, out, F::zero(), |a, b| a + b),
        ReduceOp::Max => reduce_strided(x, dims, out, F::neg_infinity(), F::max),
    }
}

/// Rows of the last axis.
fn rows<'a, F>(x: &'a [F], shape: &[usize]) -> impl Iterator<Item = &'a [F]> {
    x.chunks(shape.last().copied().unwrap_or(1).max(1))
}

widest_fn! {
    pub(super) fn softmax<F: Float>(x: &[F], shape: &[usize], out: &mut [F]) {
        let n = shape.last().copied().unwrap_or(1).max(1);
        for (row, dst) in rows(x, shape).zip(out.chunks_mut(n)) {
            let max = row_max(row);
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v - max).exp_kernel();
            }
            let total = row_sum(dst);
            let inv = F::one() / total;
            dst.iter_mut().for_each(|d| *d = *d * inv);
        }
    }
}

widest_fn! {
    pub(super) fn layer_norm<F: Float>(
        x: &[F],
        shape: &[usize],
        gamma: &[F],
        beta: &[F],
        eps: F,
        out: &mut [F],
    ) {
        let n = shape.last().copied().unwrap_or(1).max(1);
        let count = F::from(n).unwrap_or(F::one());
        for (row, dst) in rows(x, shape).zip(out.chunks_mut(n)) {
            // One pass for both moments, shifted by the row's first value so
            // that E[y^2] - E[y]^2 does not cancel when the mean is large.
            let shift = row[0];
            let (sum, squares) = row_moments(row, shift);
            let mean_shifted = sum / count;
            let var = (squares / count - mean_shifted * mean_shifted).max(F::zero());
            let mean = shift + mean_shifted;
            let inv = F::one() / (var + eps).sqrt();
            for (((d, &v), &g), &b) in dst.iter_mut().zip(row).zip(gamma).zip(beta) {
                *d = (v - mean) * inv * g + b;
            }
        }
    }
}
