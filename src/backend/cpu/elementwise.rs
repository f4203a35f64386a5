//! Element-wise kernels, split across the unit's threads for large tensors.

use rayon::prelude::*;

use super::Float;
use crate::kernel::{BinaryOp, UnaryOp};

/// Below this many elements one thread is faster than several.
const PARALLEL_MIN: usize = 1 << 16;

/// GELU, tanh approximation (as in GPT-2 and most inference runtimes).
fn gelu<F: Float>(x: F) -> F {
    let c = F::from(0.797_884_560_802_865_4).unwrap_or(F::one()); // sqrt(2/pi)
    let k = F::from(0.044_715).unwrap_or(F::zero());
    let half = F::from(0.5).unwrap_or(F::one());
    half * x * (F::one() + (c * (x + k * x * x * x)).tanh())
}

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
    // One loop per op, so each is inlined and vectorised.
    chunked(out, threads, |start, out| {
        let x = &x[start..start + out.len()];
        match op {
            UnaryOp::Relu => out
                .iter_mut()
                .zip(x)
                .for_each(|(o, &v)| *o = if v > F::zero() { v } else { F::zero() }),
            UnaryOp::Gelu => out.iter_mut().zip(x).for_each(|(o, &v)| *o = gelu(v)),
            UnaryOp::Exp => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.exp()),
            UnaryOp::Tanh => out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.tanh()),
            UnaryOp::Sigmoid => out
                .iter_mut()
                .zip(x)
                .for_each(|(o, &v)| *o = F::one() / (F::one() + (-v).exp())),
        }
    });
}

pub(super) fn binary<F: Float>(op: BinaryOp, a: &[F], b: &[F], out: &mut [F], threads: usize) {
    chunked(out, threads, |start, out| {
        let (a, b) = (&a[start..start + out.len()], &b[start..start + out.len()]);
        match op {
            BinaryOp::Add => out
                .iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(o, (&x, &y))| *o = x + y),
            BinaryOp::Mul => out
                .iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(o, (&x, &y))| *o = x * y),
        }
    });
}
