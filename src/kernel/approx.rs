//! The exponential and hyperbolic tangent that element-wise kernels
//! compute on the host. In f32, branch-free polynomials after Cephes'
//! `expf` and `tanhf`, which the compiler vectorises across a slice (the
//! CPU backend runs those loops built for AVX2 or AVX-512 where the CPU
//! has them); in f64, the standard library's.
//!
//! Largest errors in f32, against the f64 functions, over every exponent
//! of the float range (tested in this module): `exp` 1 ulp (3 ulp where
//! the result is subnormal, where an ulp is 2^-149); `tanh` 2 ulp. Both
//! return NaN for NaN, and their limits at ±inf. The element-wise ops
//! built on them: `sigmoid` within 2 epsilon of the result (or of the
//! smallest normal float, below it); `gelu` within 4 epsilon of the larger
//! of the result and |x| (its tanh form cancels for negative x).

use num_traits::Float;

/// The exponential and hyperbolic tangent as the kernels compute them.
pub trait KernelMath: Float {
    /// `e^x`.
    fn exp_kernel(self) -> Self;
    /// `tanh(x)`.
    fn tanh_kernel(self) -> Self;
}

impl KernelMath for f64 {
    fn exp_kernel(self) -> f64 {
        self.exp()
    }

    fn tanh_kernel(self) -> f64 {
        self.tanh()
    }
}

impl KernelMath for f32 {
    #[inline(always)]
    fn exp_kernel(self) -> f32 {
        exp_f32(self)
    }

    #[inline(always)]
    fn tanh_kernel(self) -> f32 {
        tanh_f32(self)
    }
}

/// `2^n` for `n` in -126..=127.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// `e^x`: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by a degree-7
/// polynomial, and `2^n` applied in two halves so that subnormal results
/// round once.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Past these, the result is 0 or infinity anyway; NaN stays NaN.
    let x = x.clamp(-104.0, 89.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = (((((1.987_569e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_58e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * (r * r)
        + r
        + 1.0;
    // n as an integer without a float-to-int conversion (whose NaN and
    // range checks do not vectorise): adding 1.5 * 2^23 puts it in the low
    // mantissa bits. NaN gives garbage here, and NaN in `p`.
    let n = (n + 12_582_912.0).to_bits() as i32 - 0x4b40_0000;
    let half = n >> 1;
    p * pow2(half) * pow2(n - half)
}

/// `tanh(x)`: an odd polynomial below 0.625, `1 - 2 / (e^2|x| + 1)`
/// above, with the sign of `x`.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    let z = x * x;
    let small = ((((-5.704_989e-3 * z + 2.063_909e-2) * z - 5.373_972e-2) * z + 1.333_144e-1) * z
        - 3.333_328e-1)
        * z
        * x
        + x;
    let e = exp_f32(2.0 * x.abs());
    let large = 1.0 - 2.0 / (e + 1.0);
    // Both have the sign of x; copying it keeps tanh(-0) = -0.
    if x.abs() < 0.625 { small } else { large }.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 values across the whole range: every exponent, a spread of
    /// mantissas, both signs, subnormals, zeros, infinities and NaN.
    fn samples() -> Vec<f32> {
        let mut v = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        for bits in (0u32..0x7f80_0000).step_by(4_093) {
            let x = f32::from_bits(bits);
            v.push(x);
            v.push(-x);
        }
        v
    }

    /// Distance in ulps between `got` and the f64 `want` rounded to f32.
    fn ulps(got: f32, want: f64) -> u32 {
        let want = want as f32;
        if got.is_nan() || want.is_nan() {
            return if got.is_nan() && want.is_nan() {
                0
            } else {
                u32::MAX
            };
        }
        if got == want {
            return 0;
        }
        if got.is_sign_negative() != want.is_sign_negative() {
            return u32::MAX;
        }
        got.to_bits().abs_diff(want.to_bits())
    }

    #[test]
    fn exp_is_within_one_ulp_and_three_where_subnormal() {
        for x in samples() {
            let want = f64::from(x).exp();
            let u = ulps(x.exp_kernel(), want);
            let bound = if (want as f32) < f32::MIN_POSITIVE {
                3
            } else {
                1
            };
            assert!(
                u <= bound,
                "exp({x:e}) = {:e}, want {want:e}: {u} ulp",
                x.exp_kernel()
            );
        }
        assert_eq!(f32::NEG_INFINITY.exp_kernel(), 0.0);
        assert_eq!(f32::INFINITY.exp_kernel(), f32::INFINITY);
        assert!(f32::NAN.exp_kernel().is_nan());
    }

    #[test]
    fn tanh_is_within_two_ulp() {
        for x in samples() {
            let want = f64::from(x).tanh();
            let u = ulps(x.tanh_kernel(), want);
            assert!(
                u <= 2,
                "tanh({x:e}) = {:e}, want {want:e}: {u} ulp",
                x.tanh_kernel()
            );
        }
        assert_eq!(f32::INFINITY.tanh_kernel(), 1.0);
        assert_eq!(f32::NEG_INFINITY.tanh_kernel(), -1.0);
        assert!((-0.0f32).tanh_kernel().is_sign_negative());
    }

    /// Largest error of an element-wise op over the samples, against its
    /// f64 expression, in units of f32's epsilon relative to the larger
    /// of the result and `scale(x)` (the size below which the op's own
    /// rounding in f32 loses its digits).
    fn worst(
        op: crate::kernel::UnaryOp,
        reference: impl Fn(f64) -> f64,
        scale: impl Fn(f64) -> f64,
    ) -> f64 {
        let x = samples();
        let mut got = vec![0f32; x.len()];
        op.map(&x, &mut got);
        x.iter()
            .zip(&got)
            .filter(|(x, _)| !x.is_nan())
            .map(|(&x, &g)| {
                let want = reference(f64::from(x));
                if want.is_infinite() || g.is_infinite() {
                    return if want == f64::from(g) {
                        0.0
                    } else {
                        f64::INFINITY
                    };
                }
                let size = want
                    .abs()
                    .max(scale(f64::from(x)))
                    .max(f64::from(f32::MIN_POSITIVE));
                (f64::from(g) - want).abs() / size / f64::from(f32::EPSILON)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn sigmoid_and_gelu_stay_within_their_stated_error() {
        use crate::kernel::UnaryOp;
        let sigmoid = worst(UnaryOp::Sigmoid, |x| 1.0 / (1.0 + (-x).exp()), |_| 0.0);
        assert!(sigmoid <= 2.0, "sigmoid: {sigmoid} eps");
        // GELU's tanh form cancels for negative x (1 + tanh near 0): its
        // error is relative to |x| there.
        let gelu = worst(
            UnaryOp::Gelu,
            |x| 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)).tanh()),
            |x| x.abs(),
        );
        assert!(gelu <= 4.0, "gelu: {gelu} eps");
        let mut nan = [0f32];
        UnaryOp::Sigmoid.map(&[f32::NAN], &mut nan);
        assert!(nan[0].is_nan());
    }
}
