//! GEMM on the CPU through the `gemm` crate's packed SIMD kernels, or
//! faer's where B is transposed (f32, f64): the `gemm` crate packs a
//! transposed B 10-20% slower (one core, 256 to 1024: 89-99 against faer's
//! 101-113 GFLOP/s; the tiled Cholesky's updates are `C -= A B^T`).

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
pub trait GemmElement: Element {
    /// Runs the GEMM through faer instead when that is the faster path
    /// for its layout; whether it did.
    fn faer_gemm(
        _spec: &GemmSpec,
        _a: Operand<'_, Self>,
        _b: Operand<'_, Self>,
        _c: &mut [Self],
    ) -> bool {
        false
    }
}

impl GemmElement for f32 {
    fn faer_gemm(spec: &GemmSpec, a: Operand<'_, f32>, b: Operand<'_, f32>, c: &mut [f32]) -> bool {
        faer_gemm(spec, a, b, c)
    }
}

impl GemmElement for f64 {
    fn faer_gemm(spec: &GemmSpec, a: Operand<'_, f64>, b: Operand<'_, f64>, c: &mut [f64]) -> bool {
        faer_gemm(spec, a, b, c)
    }
}

impl GemmElement for f16 {}

/// A row-major GEMM operand: its elements and its stored shape.
pub type Operand<'a, T> = (&'a [T], &'a [usize]);

/// `C = alpha * op(A) * op(B) + beta * C` through faer, taken where B is
/// transposed (see the module's note); false, doing nothing, elsewhere.
/// The shapes were checked against the slices by the caller.
fn faer_gemm<T: Element + faer::traits::RealField>(
    spec: &GemmSpec,
    (a, a_shape): Operand<'_, T>,
    (b, b_shape): Operand<'_, T>,
    c: &mut [T],
) -> bool {
    if !spec.trans_b {
        return false;
    }
    fn view<'a, T: faer::traits::RealField>(
        x: &'a [T],
        shape: &[usize],
        trans: bool,
    ) -> faer::MatRef<'a, T> {
        let m = faer::MatRef::from_row_major_slice(&x[..shape[0] * shape[1]], shape[0], shape[1]);
        if trans {
            m.transpose()
        } else {
            m
        }
    }
    let (av, bv) = (
        view(a, a_shape, spec.trans_a),
        view(b, b_shape, spec.trans_b),
    );
    let (m, n) = (av.nrows(), bv.ncols());
    let c = &mut c[..m * n];
    let accum = if spec.beta == 0.0 {
        faer::Accum::Replace
    } else {
        if spec.beta != 1.0 {
            let beta = T::from_f64(spec.beta);
            c.iter_mut().for_each(|v| *v *= beta);
        }
        faer::Accum::Add
    };
    let cv = faer::MatMut::from_row_major_slice_mut(c, m, n);
    let par = if spec.threads > 1 {
        faer::Par::rayon(spec.threads)
    } else {
        faer::Par::Seq
    };
    faer::linalg::matmul::matmul(cv, accum, av, bv, T::from_f64(spec.alpha), par);
    true
}

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
    if T::faer_gemm(spec, (a, a_shape), (b, b_shape), c) {
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
