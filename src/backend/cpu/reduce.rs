//! Reductions along an axis, softmax and layer norm.

use super::Float;
use crate::kernel::ReduceOp;

/// Splits a shape around `axis` into (outer, axis length, inner).
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

pub(super) fn reduce<F: Float>(op: ReduceOp, x: &[F], shape: &[usize], axis: usize, out: &mut [F]) {
    let (outer, n, inner) = split(shape, axis);
    let (init, f): (F, fn(F, F) -> F) = match op {
        ReduceOp::Sum => (F::zero(), |a, b| a + b),
        ReduceOp::Max => (F::neg_infinity(), F::max),
    };
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
