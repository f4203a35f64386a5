//! The image kernels as candle ops, on `[H, W]` or `[H, W, C]` images
//! computed in f32 (the caller rounds u8 results): blur and Sobel as
//! depthwise convolutions over a border-replicated image, bilinear resize
//! as row and column gathers blended by their weights.

use candle_core::{DType, Device, Result, Tensor, D};

use crate::kernel::{gaussian_weights, Kernel};

/// `[H, W]` or `[H, W, C]` as `[1, C, H, W]` f32.
fn planes(x: &Tensor) -> Result<(Tensor, usize)> {
    let x = x.to_dtype(DType::F32)?;
    match *x.dims() {
        [h, w] => Ok((x.reshape((1, 1, h, w))?, 1)),
        [_, _, c] => Ok((x.permute((2, 0, 1))?.unsqueeze(0)?.contiguous()?, c)),
        ref other => Err(candle_core::Error::Msg(format!(
            "an image is [H, W] or [H, W, C], got {other:?}"
        ))),
    }
}

/// `[1, C, H, W]` back to the image layout of `like`.
fn image(p: &Tensor, like: &[usize]) -> Result<Tensor> {
    let p = p.squeeze(0)?;
    if like.len() == 2 {
        p.squeeze(0)
    } else {
        p.permute((1, 2, 0))?.contiguous()
    }
}

/// A depthwise convolution of every plane with `taps` (rows x cols).
fn depthwise(
    p: &Tensor,
    channels: usize,
    taps: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Tensor> {
    let k =
        Tensor::from_slice(taps, (1, 1, rows, cols), p.device())?.repeat((channels, 1, 1, 1))?;
    p.conv2d(&k, 0, 1, 1, channels)
}

fn blur(x: &Tensor, sigma: f64) -> Result<Tensor> {
    let (p, c) = planes(x)?;
    let taps = gaussian_weights(sigma);
    let r = taps.len() / 2;
    let horizontal = depthwise(&p.pad_with_same(3, r, r)?, c, &taps, 1, taps.len())?;
    let both = depthwise(&horizontal.pad_with_same(2, r, r)?, c, &taps, taps.len(), 1)?;
    image(&both, x.dims())
}

fn sobel(x: &Tensor) -> Result<Tensor> {
    let (p, c) = planes(x)?;
    let padded = p.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?;
    let gx = depthwise(&padded, c, &[-1., 0., 1., -2., 0., 2., -1., 0., 1.], 3, 3)?;
    let gy = depthwise(&padded, c, &[-1., -2., -1., 0., 0., 0., 1., 2., 1.], 3, 3)?;
    image(&(gx.sqr()? + gy.sqr()?)?.sqrt()?, x.dims())
}

/// Source rows (or columns) and blend weights of a bilinear resize from
/// `input` to `output` samples, pixel centres aligned.
fn bilinear_axis(input: usize, output: usize, device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let (mut first, mut second, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    for o in 0..output {
        let f =
            ((o as f32 + 0.5) * input as f32 / output as f32 - 0.5).clamp(0.0, (input - 1) as f32);
        let i0 = f.floor() as u32;
        first.push(i0);
        second.push((i0 + 1).min(input as u32 - 1));
        weight.push(f - f.floor());
    }
    Ok((
        Tensor::new(first, device)?,
        Tensor::new(second, device)?,
        Tensor::new(weight, device)?,
    ))
}

fn resize(x: &Tensor, out: &[usize]) -> Result<Tensor> {
    let (p, _) = planes(x)?;
    let (h, w) = (x.dims()[0], x.dims()[1]);
    let dev = p.device();
    let (y0, y1, wy) = bilinear_axis(h, out[0], dev)?;
    let (x0, x1, wx) = bilinear_axis(w, out[1], dev)?;
    let wy = wy.reshape((1, 1, out[0], 1))?;
    let wx = wx.reshape((1, 1, 1, out[1]))?;
    let blend = |a: &Tensor, b: &Tensor, t: &Tensor| -> Result<Tensor> {
        a.broadcast_mul(&t.affine(-1.0, 1.0)?)?
            .broadcast_add(&b.broadcast_mul(t)?)
    };
    let (top, bottom) = (p.index_select(&y0, 2)?, p.index_select(&y1, 2)?);
    let top = blend(&top.index_select(&x0, 3)?, &top.index_select(&x1, 3)?, &wx)?;
    let bottom = blend(
        &bottom.index_select(&x0, 3)?,
        &bottom.index_select(&x1, 3)?,
        &wx,
    )?;
    image(&blend(&top, &bottom, &wy)?, x.dims())
}

/// Rounds and saturates f32 values to u8 levels (kept in f32), as the
/// CPU path stores u8.
pub(super) fn levels(x: &Tensor) -> Result<Tensor> {
    x.round()?.clamp(0f32, 255f32)
}

/// Runs an image kernel on `x`, giving an f32 result of `out_shape`; a
/// fused kernel's intermediate is rounded to u8 levels when `u8` says the
/// tensors are u8.
pub(super) fn run(kernel: &Kernel, x: &Tensor, out_shape: &[usize], u8: bool) -> Result<Tensor> {
    let Some([first, second]) = kernel.unfused() else {
        return single(kernel, x, out_shape);
    };
    let middle = single(&first, x, out_shape)?;
    let middle = if u8 { levels(&middle)? } else { middle };
    single(&second, &middle, out_shape)
}

/// Runs an image kernel that is not fused.
fn single(kernel: &Kernel, x: &Tensor, out_shape: &[usize]) -> Result<Tensor> {
    match kernel {
        Kernel::Resize => resize(x, out_shape),
        Kernel::GaussianBlur { sigma } => blur(x, *sigma),
        Kernel::Sobel => sobel(x),
        Kernel::RgbToGray => {
            let luma = Tensor::new(&[0.299f32, 0.587, 0.114], x.device())?;
            x.to_dtype(DType::F32)?.broadcast_mul(&luma)?.sum(D::Minus1)
        }
        Kernel::Threshold { value, max } => x
            .to_dtype(DType::F32)?
            .gt(*value as f32)?
            .to_dtype(DType::F32)?
            .affine(*max, 0.0),
        other => Err(candle_core::Error::Msg(format!(
            "`{}` is not an image kernel",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::run_on_host;

    /// The candle ops (the route on devices other than the CPU) agree with
    /// the CPU kernels, fused ones included, in f32 and rounded to u8.
    #[test]
    fn candle_ops_agree_with_the_cpu_kernels() {
        let (h, w) = (23, 19);
        let rgb: Vec<f32> = (0..h * w * 3).map(|i| ((i * 7919) % 251) as f32).collect();
        let gray: Vec<f32> = rgb.iter().step_by(3).copied().collect();
        let cases = [
            (Kernel::RgbToGray, &rgb, vec![h, w, 3], vec![h, w]),
            (
                Kernel::GrayBlur { sigma: 1.5 },
                &rgb,
                vec![h, w, 3],
                vec![h, w],
            ),
            (
                Kernel::GaussianBlur { sigma: 1.5 },
                &rgb,
                vec![h, w, 3],
                vec![h, w, 3],
            ),
            (Kernel::Sobel, &gray, vec![h, w], vec![h, w]),
            (
                Kernel::SobelThreshold {
                    value: 200.0,
                    max: 255.0,
                },
                &gray,
                vec![h, w],
                vec![h, w],
            ),
            (Kernel::Resize, &rgb, vec![h, w, 3], vec![7, 31, 3]),
        ];
        for (kernel, input, shape, out_shape) in cases {
            let x = Tensor::from_slice(input, shape.as_slice(), &Device::Cpu).unwrap();
            for u8 in [false, true] {
                let got = run(&kernel, &x, &out_shape, u8).unwrap();
                let got = if u8 { levels(&got).unwrap() } else { got };
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                let want: Vec<f32> = if u8 {
                    let bytes: Vec<u8> = input.iter().map(|&v| v as u8).collect();
                    run_on_host(&kernel, &bytes, &shape, &out_shape, 1)
                        .into_iter()
                        .map(f32::from)
                        .collect()
                } else {
                    run_on_host(&kernel, input, &shape, &out_shape, 1)
                };
                let tolerance = if u8 { 1.0 } else { 1e-3 };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= tolerance,
                        "{} (u8: {u8}) value {i}: candle {g}, CPU {w}",
                        kernel.name()
                    );
                }
            }
        }
    }
}
