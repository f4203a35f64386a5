//! 2-D convolution (im2col + GEMM) and pooling, NCHW.

use super::gemm::{gemm, GemmSpec};
use super::Float;
use crate::error::Result;
use crate::kernel::PoolOp;

/// Sizes of a convolution, from validated shapes.
pub(super) struct ConvGeometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    outputs: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    padding: usize,
}

impl ConvGeometry {
    pub fn new(
        x: &[usize],
        w: &[usize],
        out: &[usize],
        stride: usize,
        padding: usize,
    ) -> ConvGeometry {
        ConvGeometry {
            batch: x[0],
            channels: x[1],
            height: x[2],
            width: x[3],
            outputs: w[0],
            kh: w[2],
            kw: w[3],
            oh: out[2],
            ow: out[3],
            stride,
            padding,
        }
    }
}

/// Unfolds one image into `[C*KH*KW, OH*OW]` columns (zeros in the padding).
fn im2col<F: Float>(img: &[F], g: &ConvGeometry, cols: &mut [F]) {
    let spatial = g.oh * g.ow;
    for c in 0..g.channels {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (c * g.kh + ky) * g.kw + kx;
                let dst = &mut cols[row * spatial..(row + 1) * spatial];
                for oy in 0..g.oh {
                    let y = (oy * g.stride + ky) as isize - g.padding as isize;
                    for ox in 0..g.ow {
                        let x = (ox * g.stride + kx) as isize - g.padding as isize;
                        let inside =
                            y >= 0 && x >= 0 && (y as usize) < g.height && (x as usize) < g.width;
                        dst[oy * g.ow + ox] = if inside {
                            img[(c * g.height + y as usize) * g.width + x as usize]
                        } else {
                            F::zero()
                        };
                    }
                }
            }
        }
    }
}

pub(super) fn conv2d<F: Float>(
    x: &[F],
    w: &[F],
    out: &mut [F],
    g: &ConvGeometry,
    threads: usize,
) -> Result<()> {
    let patch = g.channels * g.kh * g.kw;
    let spatial = g.oh * g.ow;
    let mut cols = vec![F::zero(); patch * spatial];
    let image = g.channels * g.height * g.width;
    for b in 0..g.batch {
        im2col(&x[b * image..(b + 1) * image], g, &mut cols);
        let dst = &mut out[b * g.outputs * spatial..(b + 1) * g.outputs * spatial];
        gemm(
            &GemmSpec::plain(threads),
            w,
            &[g.outputs, patch],
            &cols,
            &[patch, spatial],
            dst,
        )?;
    }
    Ok(())
}

pub(super) fn pool2d<F: Float>(
    op: PoolOp,
    x: &[F],
    shape: &[usize],
    window: usize,
    stride: usize,
    out: &mut [F],
    out_shape: &[usize],
) {
    let (h, w) = (shape[2], shape[3]);
    let (oh, ow) = (out_shape[2], out_shape[3]);
    let area = F::from(window * window).unwrap_or(F::one());
    for (plane, dst) in x.chunks(h * w).zip(out.chunks_mut(oh * ow)) {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = match op {
                    PoolOp::Max => F::neg_infinity(),
                    PoolOp::Avg => F::zero(),
                };
                for ky in 0..window {
                    let row = &plane[(oy * stride + ky) * w + ox * stride..][..window];
                    for &v in row {
                        acc = match op {
                            PoolOp::Max => acc.max(v),
                            PoolOp::Avg => acc + v,
                        };
                    }
                }
                dst[oy * ow + ox] = match op {
                    PoolOp::Max => acc,
                    PoolOp::Avg => acc / area,
                };
            }
        }
    }
}
