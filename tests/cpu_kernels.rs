//! Every CPU kernel against the naive f64 reference of `tests/common`, over
//! random shapes (proptest), for every dtype it supports.
//! Tolerances: see `common::tolerance` (f64 1e-9, f32 1e-4, f16 2e-2,
//! bf16 6e-2 relative; u8 one unit).

mod common;

use common::rng::Rng;
use common::{check_kernel, window_out, Input};
use proptest::prelude::*;
use xpu::{BinaryOp, DType, Kernel, Placement, PoolOp, ReduceOp, Runtime, UnaryOp, UnitKind};

const FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const CPU: Placement = Placement::Kind(UnitKind::Cpu);

fn check_all(kernel: &Kernel, args: &[Input], dtypes: &[DType]) -> Result<(), TestCaseError> {
    let rt = Runtime::builder().cpu_units(1).build().unwrap();
    for &dtype in dtypes {
        check_kernel(&rt, CPU, kernel, args, dtype).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn gemm_with_transposes_and_scaling(
        (m, k, n) in (1usize..40, 1usize..40, 1usize..40),
        ta in any::<bool>(), tb in any::<bool>(), beta in prop::sample::select(vec![0.0, 1.0, -0.5]),
        seed in any::<u64>(),
    ) {
        let a_shape = if ta { vec![k, m] } else { vec![m, k] };
        let b_shape = if tb { vec![n, k] } else { vec![k, n] };
        let mut rng = Rng(seed);
        let a = rng.input(a_shape);
        let b = rng.input(b_shape);
        let c = rng.input(vec![m, n]);
        let mut kernel = Kernel::gemm().scaled(1.5, beta);
        if ta { kernel = kernel.transpose_a(); }
        if tb { kernel = kernel.transpose_b(); }
        check_all(&kernel, &[a, b, c], &FLOATS)?;
    }

    #[test]
    fn elementwise(shape in prop::collection::vec(1usize..12, 1..4), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let a = rng.input(shape.clone());
        let b = rng.input(shape.clone());
        let out = Input::zeros(&shape);
        for &op in UnaryOp::ALL {
            check_all(&Kernel::Unary(op), &[a.clone(), out.clone()], &FLOATS)?;
        }
        for &op in BinaryOp::ALL {
            check_all(&Kernel::Binary(op), &[a.clone(), b.clone(), out.clone()], &FLOATS)?;
        }
    }

    #[test]
    fn reductions_softmax_and_layer_norm(shape in prop::collection::vec(1usize..10, 1..4), axis_pick in any::<usize>(), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.input(shape.clone());
        let axis = axis_pick % shape.len();
        let mut reduced = shape.clone();
        reduced.remove(axis);
        if reduced.is_empty() { reduced.push(1); }
        for &op in ReduceOp::ALL {
            check_all(&Kernel::Reduce { op, axis }, &[x.clone(), Input::zeros(&reduced)], &FLOATS)?;
        }
        check_all(&Kernel::Softmax, &[x.clone(), Input::zeros(&shape)], &FLOATS)?;
        let n = *shape.last().unwrap();
        let gamma = rng.input(vec![n]);
        let beta = rng.input(vec![n]);
        check_all(&Kernel::LayerNorm { eps: 1e-5 }, &[x, gamma, beta, Input::zeros(&shape)], &[DType::F32, DType::F64])?;
    }

    #[test]
    fn conv2d_nchw_with_stride_and_padding(
        (batch, c, o) in (1usize..3, 1usize..4, 1usize..4),
        (h, w) in (3usize..12, 3usize..12),
        (kh, kw) in (1usize..4, 1usize..4),
        stride in 1usize..3, padding in 0usize..2, seed in any::<u64>(),
    ) {
        let (Some(oh), Some(ow)) = (window_out(h, kh, stride, padding), window_out(w, kw, stride, padding)) else {
            return Ok(());
        };
        let mut rng = Rng(seed);
        let x = rng.input(vec![batch, c, h, w]);
        let wt = rng.input(vec![o, c, kh, kw]);
        check_all(&Kernel::Conv2d { stride, padding }, &[x, wt, Input::zeros(&[batch, o, oh, ow])], &[DType::F32, DType::F64])?;
    }

    #[test]
    fn pooling(
        (batch, c, h, w) in (1usize..3, 1usize..3, 2usize..10, 2usize..10),
        window in 1usize..3, stride in 1usize..3, seed in any::<u64>(),
    ) {
        let (Some(oh), Some(ow)) = (window_out(h, window, stride, 0), window_out(w, window, stride, 0)) else {
            return Ok(());
        };
        let mut rng = Rng(seed);
        let x = rng.input(vec![batch, c, h, w]);
        for &op in PoolOp::ALL {
            check_all(&Kernel::Pool2d { op, window, stride }, &[x.clone(), Input::zeros(&[batch, c, oh, ow])], &FLOATS)?;
        }
    }

    #[test]
    fn image_ops_on_u8_and_f32(
        (h, w) in (1usize..20, 1usize..20), (oh, ow) in (1usize..24, 1usize..24),
        channels in prop::sample::select(vec![1usize, 3]), sigma in 0.5f64..2.0, seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let shape = |h: usize, w: usize| if channels == 1 { vec![h, w] } else { vec![h, w, channels] };
        let pixels: Vec<f64> = (0..h * w * channels).map(|_| rng.uniform(0.0, 255.0).round()).collect();
        let img = Input::new(&shape(h, w), pixels.clone());
        let both = [DType::U8, DType::F32];
        check_all(&Kernel::Resize, &[img.clone(), Input::zeros(&shape(oh, ow))], &both)?;
        check_all(&Kernel::GaussianBlur { sigma }, &[img.clone(), Input::zeros(&shape(h, w))], &both)?;
        check_all(&Kernel::Sobel, &[img.clone(), Input::zeros(&shape(h, w))], &both)?;
        check_all(&Kernel::Threshold { value: 127.5, max: 255.0 }, &[img.clone(), Input::zeros(&shape(h, w))], &both)?;
        check_all(&Kernel::SobelThreshold { value: 127.5, max: 255.0 }, &[img.clone(), Input::zeros(&shape(h, w))], &both)?;
        if channels == 3 {
            check_all(&Kernel::RgbToGray, &[img.clone(), Input::zeros(&[h, w])], &both)?;
            check_all(&Kernel::GrayBlur { sigma }, &[img, Input::zeros(&[h, w])], &both)?;
        }
    }

    #[test]
    fn cholesky_tiles(n in 1usize..100, m in 1usize..24, k in 1usize..24, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let spd = spd_matrix(n, &mut rng);
        let both = [DType::F32, DType::F64];
        check_all(&Kernel::Potrf, std::slice::from_ref(&spd), &both)?;
        let l = Input::new(&[n, n], common::reference(&Kernel::Potrf, &[spd]));
        let b = rng.input(vec![m, n]);
        check_all(&Kernel::Trsm, &[l, b], &both)?;
        let a = rng.input(vec![n, k]);
        let c = rng.input(vec![n, n]);
        check_all(&Kernel::Syrk, &[a, c], &both)?;
    }

    #[test]
    fn lu_tiles(n in 1usize..80, m in 1usize..24, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        // Diagonally dominant: LU without pivoting is stable on it (sizes
        // past 32 take the recursive path).
        let mut a = rng.input(vec![n, n]);
        for i in 0..n {
            a.data[i * n + i] += n as f64;
        }
        let both = [DType::F32, DType::F64];
        check_all(&Kernel::Getrf, std::slice::from_ref(&a), &both)?;
        let lu = Input::new(&[n, n], common::reference(&Kernel::Getrf, &[a]));
        check_all(&Kernel::TrsmLower, &[lu.clone(), rng.input(vec![n, m])], &both)?;
        check_all(&Kernel::TrsmUpper, &[lu, rng.input(vec![m, n])], &both)?;
    }
}

/// Deterministic pseudo-random data from a proptest-chosen seed.
trait RandomInput {
    fn input(&mut self, shape: Vec<usize>) -> Input;
}

impl RandomInput for Rng {
    /// Values in [-1, 1).
    fn input(&mut self, shape: Vec<usize>) -> Input {
        let n = shape.iter().product();
        Input::new(&shape, (0..n).map(|_| self.uniform(-1.0, 1.0)).collect())
    }
}

/// A well-conditioned symmetric positive definite matrix: M M^T / n + I.
fn spd_matrix(n: usize, rng: &mut Rng) -> Input {
    let m = rng.input(vec![n, n]);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n)
                .map(|p| m.data[i * n + p] * m.data[j * n + p])
                .sum::<f64>()
                / n as f64
                + if i == j { 1.0 } else { 0.0 };
        }
    }
    Input::new(&[n, n], a)
}
