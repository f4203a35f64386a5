//! Element-wise kernels.

use super::Float;
use crate::kernel::{BinaryOp, UnaryOp};

/// GELU, tanh approximation (as in GPT-2 and most inference runtimes).
fn gelu<F: Float>(x: F) -> F {
    let c = F::from(0.797_884_560_802_865_4).unwrap_or(F::one()); // sqrt(2/pi)
    let k = F::from(0.044_715).unwrap_or(F::zero());
    let half = F::from(0.5).unwrap_or(F::one());
    half * x * (F::one() + (c * (x + k * x * x * x)).tanh())
}

pub(super) fn unary<F: Float>(op: UnaryOp, x: &[F], out: &mut [F]) {
    let f: fn(F) -> F = match op {
        UnaryOp::Relu => |v| v.max(F::zero()),
        UnaryOp::Gelu => gelu,
        UnaryOp::Exp => F::exp,
    };
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

pub(super) fn binary<F: Float>(op: BinaryOp, a: &[F], b: &[F], out: &mut [F]) {
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
}
