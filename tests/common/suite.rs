//! The kernel suite every device backend runs: each case calls `check`
//! with a kernel and its arguments (the last is the output); the backend's
//! test file runs it on its units in the element types it supports.

use super::Input;
use xpu::{BinaryOp, Kernel, PoolOp, ReduceOp, UnaryOp};

/// A deterministic, sign-changing fill of `shape`, scaled by `scale`.
pub fn ramp(shape: &[usize], scale: f64) -> Input {
    let n: usize = shape.iter().product();
    Input::new(
        shape,
        (0..n)
            .map(|i| ((i * 37 % 101) as f64 / 101.0 - 0.5) * scale)
            .collect(),
    )
}

/// Element-wise ops, reductions along every axis, softmax and layer norm.
pub fn tensor_kernels(check: &dyn Fn(&Kernel, &[Input])) {
    for shape in [vec![1], vec![7, 13], vec![3, 5, 300]] {
        let a = ramp(&shape, 4.0);
        let b = ramp(&shape, -2.0);
        let out = Input::zeros(&shape);
        for &op in UnaryOp::ALL {
            check(&Kernel::Unary(op), &[a.clone(), out.clone()]);
        }
        for &op in BinaryOp::ALL {
            check(&Kernel::Binary(op), &[a.clone(), b.clone(), out.clone()]);
        }
        for axis in 0..shape.len() {
            let mut reduced = shape.clone();
            reduced.remove(axis);
            if reduced.is_empty() {
                reduced.push(1);
            }
            for &op in ReduceOp::ALL {
                check(
                    &Kernel::Reduce { op, axis },
                    &[a.clone(), Input::zeros(&reduced)],
                );
            }
        }
        check(&Kernel::Softmax, &[a.clone(), out.clone()]);
        let n = *shape.last().unwrap();
        check(
            &Kernel::LayerNorm { eps: 1e-5 },
            &[a.clone(), ramp(&[n], 1.0), ramp(&[n], 0.3), out.clone()],
        );
    }
}

/// Reductions along axes long enough for devices to split them over
/// several workgroups (the GPU backend's two-pass reduction).
pub fn long_reductions(check: &dyn Fn(&Kernel, &[Input])) {
    for (shape, axis, reduced) in [
        (vec![40_000], 0, vec![1]),
        (vec![3, 20_000], 1, vec![3]),
        (vec![17_000, 2], 0, vec![2]),
    ] {
        for &op in ReduceOp::ALL {
            check(
                &Kernel::Reduce { op, axis },
                &[ramp(&shape, 1.0), Input::zeros(&reduced)],
            );
        }
    }
}

/// Convolutions with and without padding and stride, max and average pooling.
pub fn conv_and_pooling(check: &dyn Fn(&Kernel, &[Input])) {
    check(
        &Kernel::Conv2d {
            stride: 1,
            padding: 1,
        },
        &[
            ramp(&[2, 3, 9, 7], 1.0),
            ramp(&[4, 3, 3, 3], 1.0),
            Input::zeros(&[2, 4, 9, 7]),
        ],
    );
    check(
        &Kernel::Conv2d {
            stride: 2,
            padding: 0,
        },
        &[
            ramp(&[1, 2, 8, 8], 1.0),
            ramp(&[3, 2, 2, 3], 1.0),
            Input::zeros(&[1, 3, 4, 3]),
        ],
    );
    for &op in PoolOp::ALL {
        check(
            &Kernel::Pool2d {
                op,
                window: 2,
                stride: 2,
            },
            &[ramp(&[2, 3, 8, 6], 1.0), Input::zeros(&[2, 3, 4, 3])],
        );
        check(
            &Kernel::Pool2d {
                op,
                window: 3,
                stride: 1,
            },
            &[ramp(&[1, 1, 5, 5], 1.0), Input::zeros(&[1, 1, 3, 3])],
        );
    }
}

/// Resize, blur, Sobel, threshold on gray and RGB images; RGB to gray;
/// the fused gray+blur and Sobel+threshold. Pixels are in 0..=255, so the
/// same cases serve u8 and f32.
pub fn image_ops(check: &dyn Fn(&Kernel, &[Input])) {
    for shape in [vec![17, 23], vec![16, 12, 3]] {
        let img = ramp(&shape, 255.0);
        let img = Input::new(&shape, img.data.iter().map(|v| v + 127.5).collect());
        let mut smaller = shape.clone();
        smaller[0] = 9;
        smaller[1] = 31;
        check(&Kernel::Resize, &[img.clone(), Input::zeros(&smaller)]);
        check(
            &Kernel::GaussianBlur { sigma: 1.2 },
            &[img.clone(), Input::zeros(&shape)],
        );
        check(&Kernel::Sobel, &[img.clone(), Input::zeros(&shape)]);
        check(
            &Kernel::SobelThreshold {
                value: 100.0,
                max: 255.0,
            },
            &[img.clone(), Input::zeros(&shape)],
        );
        check(
            &Kernel::Threshold {
                value: 100.0,
                max: 255.0,
            },
            &[img.clone(), Input::zeros(&shape)],
        );
    }
    let rgb = ramp(&[5, 7, 3], 255.0);
    let rgb = Input::new(&rgb.shape, rgb.data.iter().map(|v| v + 127.5).collect());
    check(&Kernel::RgbToGray, &[rgb.clone(), Input::zeros(&[5, 7])]);
    check(
        &Kernel::GrayBlur { sigma: 1.2 },
        &[rgb, Input::zeros(&[5, 7])],
    );
}

/// GEMM of `op(A)` (m x k) and `op(B)` (k x n) with alpha 1.25 and `beta`.
pub fn gemm(m: usize, n: usize, k: usize, ta: bool, tb: bool, beta: f64) -> (Kernel, Vec<Input>) {
    let a = ramp(&if ta { [k, m] } else { [m, k] }, 1.0);
    let b = ramp(&if tb { [n, k] } else { [k, n] }, 1.0);
    let mut kernel = Kernel::gemm().scaled(1.25, beta);
    if ta {
        kernel = kernel.transpose_a();
    }
    if tb {
        kernel = kernel.transpose_b();
    }
    (kernel, vec![a, b, ramp(&[m, n], 1.0)])
}
