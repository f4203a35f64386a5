//! GEMM on the CPU through the `gemm` crate's packed SIMD kernels.

use half::{bf16, f16};

use super::cpu_error;
use crate::backend::Arg;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::kernel::gemm_dims;

/// What a GEMM computes: `C = alpha * op(A) * op(B) + beta * C`, on `threads` threads.
#[derive(Debug, Clone, Copy)]
pub struct GemmSpec {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f64,
    pub beta: f64,
    pub threads: usize,
}

impl GemmSpec {
    /// `C = A * B` on `threads` threads.
    pub fn plain(threads: usize) -> GemmSpec {
        GemmSpec {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            threads,
        }
    }
}

/// Element types the `gemm` crate multiplies natively.
pub trait GemmElement: Element {}
impl GemmElement for f32 {}
impl GemmElement for f64 {}
impl GemmElement for f16 {}

/// Row-major GEMM on slices, the CPU kernel called directly.
///
/// `a` is `[m, k]` (`[k, m]` if `trans_a`), `b` is `[k, n]` (`[n, k]` if
/// `trans_b`), `c` is `[m, n]`.
///
/// ```
/// use xpu::backend::cpu::{gemm, GemmSpec};
/// let a = [1.0f32, 2.0, 3.0, 4.0];
/// let b = [5.0f32, 6.0, 7.0, 8.0];
/// let mut c = [0.0f32; 4];
/// gemm(&GemmSpec::plain(1), &a, &[2, 2], &b, &[2, 2], &mut c).unwrap();
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// ```
pub fn gemm<T: GemmElement>(
    spec: &GemmSpec,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    c: &mut [T],
) -> Result<()> {
    let (m, k) = gemm_dims(a_shape, spec.trans_a);
    let (k2, n) = gemm_dims(b_shape, spec.trans_b);
    if k != k2 || a.len() < m * k || b.len() < k * n || c.len() < m * n {
        return Err(cpu_error(&format!(
            "gemm: op(A) {m}x{k}, op(B) {k2}x{n} and C of {} elements do not fit",
            c.len()
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Strides of op(X) for a row-major X: (row stride, column stride).
    let strides = |shape: &[usize], trans: bool| -> (isize, isize) {
        if trans {
            (1, shape[1] as isize)
        } else {
            (shape[1] as isize, 1)
        }
    };
    let (a_rs, a_cs) = strides(a_shape, spec.trans_a);
    let (b_rs, b_cs) = strides(b_shape, spec.trans_b);
    let parallelism = if spec.threads > 1 {
        gemm::Parallelism::Rayon(spec.threads)
    } else {
        gemm::Parallelism::None
    };
    // The `gemm` crate computes dst = alpha * dst + beta * lhs * rhs.
    // SAFETY: the pointers cover m*k, k*n and m*n elements with the strides
    // above, as checked at the top; `c` does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            spec.beta != 0.0,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::from_f64(spec.beta),
            T::from_f64(spec.alpha),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// Runs a GEMM task; bf16 is computed in f32.
pub(super) fn launch(spec: &GemmSpec, args: &mut [Arg<'_>]) -> Result<()> {
    let [a, b, c] = args else {
        return Err(cpu_error("gemm takes three arguments"));
    };
    match c.dtype {
        DType::F32 => gemm(
            spec,
            a.as_slice::<f32>()?,
            a.shape,
            b.as_slice()?,
            b.shape,
            c.as_mut_slice()?,
        ),
        DType::F64 => gemm(
            spec,
            a.as_slice::<f64>()?,
            a.shape,
            b.as_slice()?,
            b.shape,
            c.as_mut_slice()?,
        ),
        DType::F16 => gemm(
            spec,
            a.as_slice::<f16>()?,
            a.shape,
            b.as_slice()?,
            b.shape,
            c.as_mut_slice()?,
        ),
        DType::BF16 => {
            let widen = |x: &[bf16]| -> Vec<f32> { x.iter().map(|v| v.to_f32()).collect() };
            let (wa, wb) = (widen(a.as_slice()?), widen(b.as_slice()?));
            let out = c.as_mut_slice::<bf16>()?;
            let mut wc = widen(out);
            gemm(spec, &wa, a.shape, &wb, b.shape, &mut wc)?;
            for (o, v) in out.iter_mut().zip(wc) {
                *o = bf16::from_f32(v);
            }
            Ok(())
        }
        DType::U8 | DType::U32 => Err(cpu_error(&format!("gemm has no {} version", c.dtype))),
    }
}
