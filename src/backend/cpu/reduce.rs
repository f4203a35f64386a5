//! Reductions along an axis, softmax and layer norm.

use super::Float;
use crate::kernel::ReduceOp;

/// Splits a shape around `axis` into (outer, axis length, inner).
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Sum of a row with eight independent accumulators, so it vectorises.
fn row_sum<F: Float>(row: &[F]) -> F {
    let mut acc = [F::zero(); 8];
    let chunks = row.chunks_exact(8);
    let tail: F = chunks.remainder().iter().copied().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = *a + v;
        }
    }
    acc.iter().copied().sum::<F>() + tail
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
                ReduceOp::Max => row.iter().copied().fold(F::neg_infinity(), F::max),
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

pub(super) fn softmax<F: Float>(x: &[F], shape: &[usize], out: &mut [F]) {
    let n = shape.last().copied().unwrap_or(1).max(1);
    for (row, dst) in rows(x, shape).zip(out.chunks_mut(n)) {
        let max = row.iter().copied().fold(F::neg_infinity(), F::max);
        let mut total = F::zero();
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = (v - max).exp();
            total = total + *d;
        }
        let inv = F::one() / total;
        dst.iter_mut().for_each(|d| *d = *d * inv);
    }
}

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
        let mean = row.iter().copied().sum::<F>() / count;
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<F>() / count;
        let inv = F::one() / (var + eps).sqrt();
        for (((d, &v), &g), &b) in dst.iter_mut().zip(row).zip(gamma).zip(beta) {
            *d = (v - mean) * inv * g + b;
        }
    }
}
