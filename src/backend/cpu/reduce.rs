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

/// Rows up to this many values (128 KiB of f32) stay in the L2 cache
/// between softmax's passes, which then cost little; longer ones (a
/// language model's vocabulary) are taken in blocks, so that each value is
/// read from memory twice and written once whatever the row's length.
const SOFTMAX_CACHED_ROW: usize = 32 * 1024;

/// The block of a long softmax row: it stays in L1 between its two reads.
const SOFTMAX_BLOCK: usize = 2048;

widest_fn! {
    pub(super) fn softmax<F: Float>(x: &[F], shape: &[usize], out: &mut [F]) {
        let n = shape.last().copied().unwrap_or(1).max(1);
        for (row, dst) in rows(x, shape).zip(out.chunks_mut(n)) {
            if n <= SOFTMAX_CACHED_ROW {
                let max = row_max(row);
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = (v - max).exp_kernel();
                }
                let inv = F::one() / row_sum(dst);
                dst.iter_mut().for_each(|d| *d = *d * inv);
                continue;
            }
            // The maximum and the sum in one pass over memory: each block's
            // maximum first (the block stays in L1), the running sum
            // rescaled when the maximum grows, then the block's terms.
            let (mut max, mut total) = (F::neg_infinity(), F::zero());
            for block in row.chunks(SOFTMAX_BLOCK) {
                let block_max = row_max(block);
                if block_max > max {
                    total = total * (max - block_max).exp_kernel();
                    max = block_max;
                }
                total = total + row_fold(block, F::zero(), |a, v| a + (v - max).exp_kernel(), |a, b| a + b);
            }
            let inv = F::one() / total;
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = (v - max).exp_kernel() * inv;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Softmax of `row` in f64, the plain way.
    fn reference(row: &[f32]) -> Vec<f64> {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let exps: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.iter().map(|e| e / total).collect()
    }

    #[test]
    fn every_instruction_set_gives_the_baseline_softmax_and_layer_norm() {
        use super::super::widest::{at_each_level, Level};
        let n = SOFTMAX_CACHED_ROW + 37;
        let x: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.01 - 5.0)
            .collect();
        let gamma: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.2).collect();
        let mut baseline = (Vec::new(), Vec::new());
        at_each_level(|level| {
            let (mut soft, mut norm) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * n]);
            softmax(&x, &[2, n], &mut soft);
            // Short rows too, where softmax takes its cached path.
            softmax(&x[..300], &[3, 100], &mut soft[..300]);
            layer_norm(&x, &[2, n], &gamma, &beta, 1e-5, &mut norm);
            if level == Level::Baseline {
                baseline = (soft, norm);
            } else {
                assert_eq!(soft, baseline.0, "softmax at {level:?}");
                assert_eq!(norm, baseline.1, "layer norm at {level:?}");
            }
        });
    }

    #[test]
    fn softmax_of_rows_in_and_beyond_the_cache_matches_f64() {
        for n in [
            7,
            SOFTMAX_CACHED_ROW,
            SOFTMAX_CACHED_ROW + 1,
            3 * SOFTMAX_CACHED_ROW + 13,
        ] {
            // Values rising along the row, so the maximum grows block by
            // block and the running sum is rescaled; a spike mid-row.
            let mut row: Vec<f32> = (0..n)
                .map(|i| (i % 97) as f32 * 0.3 + i as f32 * 1e-3)
                .collect();
            row[n / 2] += 40.0;
            let mut out = vec![0.0f32; n];
            softmax(&row, &[1, n], &mut out);
            for (i, (&got, want)) in out.iter().zip(reference(&row)).enumerate() {
                let err = (f64::from(got) - want).abs();
                assert!(
                    err <= 1e-6 * want.max(1e-30) + 1e-12,
                    "n={n} i={i}: {got} vs {want}"
                );
            }
        }
    }
}
