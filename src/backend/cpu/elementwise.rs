//! Element-wise kernels, split across the unit's threads for large tensors.

use rayon::prelude::*;

use super::widest::widest_fn;
use super::Float;
use crate::kernel::{BinaryOp, UnaryOp};

/// Below this many elements one thread is faster than several.
const PARALLEL_MIN: usize = 1 << 16;

/// Applies `f` to matching chunks of `out` and the inputs, on up to `threads` threads.
fn chunked<F: Float>(out: &mut [F], threads: usize, f: impl Fn(usize, &mut [F]) + Sync) {
    if threads <= 1 || out.len() < PARALLEL_MIN {
        f(0, out);
        return;
    }
    let chunk = out.len().div_ceil(threads);
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i * chunk, c));
}

pub(super) fn unary<F: Float>(op: UnaryOp, x: &[F], out: &mut [F], threads: usize) {
    chunked(out, threads, |start, out| {
        unary_chunk(op, &x[start..start + out.len()], out)
    });
}

pub(super) fn binary<F: Float>(op: BinaryOp, a: &[F], b: &[F], out: &mut [F], threads: usize) {
    chunked(out, threads, |start, out| {
        let range = start..start + out.len();
        binary_chunk(op, &a[range.clone()], &b[range], out)
    });
}

widest_fn! {
    fn unary_chunk<F: Float>(op: UnaryOp, x: &[F], out: &mut [F]) {
        op.map(x, out)
    }
}

widest_fn! {
    fn binary_chunk<F: Float>(op: BinaryOp, a: &[F], b: &[F], out: &mut [F]) {
        op.map(a, b, out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::widest::{at_each_level, Level};
    use super::*;

    /// Values across the whole float range: zeros, subnormals, the
    /// overflow and underflow edges of `exp`, infinities, NaN, and a ramp
    /// whose length leaves a tail after every vector width.
    fn sweep() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::MIN_POSITIVE,
            1e-30,
            -1e-30,
            88.7,
            89.0,
            -87.3,
            -104.0,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        v.extend((0..541).map(|i| -100.0 + i as f32 * 0.37));
        v
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_instruction_set_gives_the_baseline_bits() {
        let a = sweep();
        let b: Vec<f32> = a.iter().rev().copied().collect();
        let mut baseline: Vec<Vec<u32>> = Vec::new();
        at_each_level(|level| {
            let mut results = Vec::new();
            for &op in UnaryOp::ALL {
                let mut out = vec![0.0; a.len()];
                unary_chunk(op, &a, &mut out);
                results.push(bits(&out));
            }
            for &op in BinaryOp::ALL {
                let mut out = vec![0.0; a.len()];
                binary_chunk(op, &a, &b, &mut out);
                results.push(bits(&out));
            }
            if level == Level::Baseline {
                baseline = results;
            } else {
                assert_eq!(results, baseline, "{level:?} differs from the baseline");
            }
        });
    }
}
