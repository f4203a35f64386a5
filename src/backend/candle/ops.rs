//! The tensor kernels as candle ops. GEMM and max pooling run in the
//! tensors' own dtype (candle's f16/bf16 GEMM accumulates in f32); the
//! other kernels compute in f32 and the caller converts the result.

use candle_core::{DType, Result, Tensor, D};

use crate::kernel::{BinaryOp, Kernel, PoolOp, ReduceOp, UnaryOp};

fn f32(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)
}

/// Runs `kernel` on its inputs (for GEMM with beta != 0, the old C last)
/// and returns the output, of `out_shape`.
pub(super) fn run(kernel: &Kernel, t: &[Tensor], out_shape: &[usize]) -> Result<Tensor> {
    let arg = |i: usize| {
        t.get(i).ok_or_else(|| {
            candle_core::Error::Msg(format!("`{}` is missing argument {i}", kernel.name()))
        })
    };
    match kernel {
        Kernel::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => {
            let a = if *trans_a {
                arg(0)?.t()?
            } else {
                arg(0)?.clone()
            };
            let b = if *trans_b {
                arg(1)?.t()?
            } else {
                arg(1)?.clone()
            };
            let ab = a.matmul(&b)?;
            let ab = if *alpha == 1.0 {
                ab
            } else {
                ab.affine(*alpha, 0.0)?
            };
            if *beta == 0.0 {
                Ok(ab)
            } else {
                ab.add(&arg(2)?.affine(*beta, 0.0)?)
            }
        }
        Kernel::Unary(op) => {
            let x = f32(arg(0)?)?;
            match op {
                UnaryOp::Relu => x.relu(),
                // candle's gelu is the tanh approximation, as everywhere here.
                UnaryOp::Gelu => x.gelu(),
                UnaryOp::Exp => x.exp(),
                UnaryOp::Tanh => x.tanh(),
                UnaryOp::Sigmoid => x.neg()?.exp()?.affine(1.0, 1.0)?.recip(),
            }
        }
        Kernel::Binary(op) => {
            let (a, b) = (f32(arg(0)?)?, f32(arg(1)?)?);
            match op {
                BinaryOp::Add => a.add(&b),
                BinaryOp::Mul => a.mul(&b),
            }
        }
        Kernel::Reduce { op, axis } => {
            let x = f32(arg(0)?)?;
            let r = match op {
                ReduceOp::Sum => x.sum(*axis)?,
                ReduceOp::Max => x.max(*axis)?,
            };
            r.reshape(out_shape)
        }
        Kernel::Softmax => {
            let x = f32(arg(0)?)?;
            let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?.exp()?;
            shifted.broadcast_div(&shifted.sum_keepdim(D::Minus1)?)
        }
        Kernel::LayerNorm { eps } => {
            let x = f32(arg(0)?)?;
            let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
            let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = centred.broadcast_div(&var.affine(1.0, *eps)?.sqrt()?)?;
            normed
                .broadcast_mul(&f32(arg(1)?)?)?
                .broadcast_add(&f32(arg(2)?)?)
        }
        // candle's CPU convolution has no bf16 path: half types go through f32.
        Kernel::Conv2d { stride, padding } => {
            f32(arg(0)?)?.conv2d(&f32(arg(1)?)?, *padding, *stride, 1, 1)
        }
        Kernel::Pool2d { op, window, stride } => {
            let x = arg(0)?;
            match op {
                PoolOp::Max => x.max_pool2d_with_stride(*window, *stride),
                PoolOp::Avg => f32(x)?.avg_pool2d_with_stride(*window, *stride),
            }
        }
        other => Err(candle_core::Error::Msg(format!(
            "`{}` is not a tensor kernel of this unit",
            other.name()
        ))),
    }
}
