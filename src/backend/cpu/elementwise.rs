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
