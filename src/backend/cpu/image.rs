//! Image kernels on `[H, W]` or `[H, W, C]` images, u8 or f32. Computed in
//! f32; u8 results are rounded and clamped to 0..=255.

use rayon::prelude::*;

use super::widest::widest_fn;
use super::{cpu_error, Float};
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernel::{gaussian_weights, Kernel};

/// An image in f32: height, width, channels, interleaved pixels.
pub(crate) struct Image {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl Image {
    fn new(shape: &[usize], data: Vec<f32>) -> Image {
        Image {
            height: shape[0],
            width: shape[1],
            channels: shape.get(2).copied().unwrap_or(1),
            data,
        }
    }

    fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// The pixel at a clamped position (replicated border).
    fn clamped(&self, y: isize, x: isize, c: usize) -> f32 {
        let y = y.clamp(0, self.height as isize - 1) as usize;
        let x = x.clamp(0, self.width as isize - 1) as usize;
        self.at(y, x, c)
    }
}

fn read(arg: &Arg<'_>) -> Result<Image> {
    let data = match arg.dtype {
        DType::U8 => arg.as_slice::<u8>()?.iter().map(|&v| v as f32).collect(),
        DType::F32 => arg.as_slice::<f32>()?.to_vec(),
        other => {
            return Err(cpu_error(&format!(
                "image kernels take u8 or f32, got {other}"
            )))
        }
    };
    Ok(Image::new(arg.shape, data))
}

fn write(arg: &mut Arg<'_>, values: &[f32]) -> Result<()> {
    match arg.dtype {
        DType::U8 => to_u8(values, arg.as_mut_slice::<u8>()?),
        _ => arg.as_mut_slice::<f32>()?.copy_from_slice(values),
    }
    Ok(())
}

widest_fn! {
    /// Rounds to the nearest level and clamps to 0..=255 (NaN to 0).
    fn to_u8<F: Float>(values: &[F], out: &mut [u8]) {
        let top = F::from(255.0).unwrap_or_else(F::zero);
        let half = F::from(0.5).unwrap_or_else(F::zero);
        for (o, &v) in out.iter_mut().zip(values) {
            let v = if v.is_nan() { F::zero() } else { v.max(F::zero()).min(top) };
            // In 0..=255 and not NaN: the conversion cannot fail.
            *o = (v + half).floor().to_u8().unwrap_or(0);
        }
    }
}

pub(super) fn launch(kernel: &Kernel, args: &mut [Arg<'_>], threads: usize) -> Result<()> {
    let [input, output] = args else {
        return Err(cpu_error("image kernels take an input and an output"));
    };
    // Per-pixel kernels on u8 go from u8 to u8 directly: no f32 copy of
    // the image (on a 4K frame its first touch cost more than the work).
    if input.dtype == DType::U8 && output.dtype == DType::U8 {
        let (src, dst) = (input.as_slice::<u8>()?, output.as_mut_slice::<u8>()?);
        match kernel {
            Kernel::RgbToGray => {
                rgb_to_gray_u8(src, dst, threads);
                return Ok(());
            }
            Kernel::Threshold { value, max } => {
                threshold_u8(src, dst, *value as f32, *max as f32);
                return Ok(());
            }
            _ => {}
        }
    }
    let img = read(input)?;
    let result = match kernel {
        Kernel::Resize => resize(&img, output.shape[0], output.shape[1], threads),
        Kernel::GaussianBlur { sigma } => gaussian_blur(&img, *sigma, threads),
        Kernel::Sobel => sobel(&img, threads),
        Kernel::RgbToGray => rgb_to_gray(&img),
        Kernel::Threshold { value, max } => threshold(&img, *value as f32, *max as f32),
        other => {
            return Err(cpu_error(&format!(
                "`{}` is not an image kernel",
                other.name()
            )))
        }
    };
    write(output, &result)
}

/// Bilinear resize with pixel centres aligned (OpenCV's INTER_LINEAR):
/// each output column's two source columns and weight are computed once,
/// then the rows are spread over `threads` threads, each row the blend of
/// two source rows (contiguous values, so it vectorises).
pub(crate) fn resize(img: &Image, oh: usize, ow: usize, threads: usize) -> Vec<f32> {
    let ch = img.channels;
    let sy = img.height as f32 / oh as f32;
    let sx = img.width as f32 / ow as f32;
    // The source of a destination coordinate: the lower neighbour, the
    // upper one (clamped) and the upper one's weight.
    let source = |d: usize, scale: f32, size: usize| {
        let f = ((d as f32 + 0.5) * scale - 0.5).clamp(0.0, (size - 1) as f32);
        let low = f.floor() as usize;
        (low, (low + 1).min(size - 1), f - f.floor())
    };
    let columns: Vec<(usize, usize, f32)> = (0..ow).map(|x| source(x, sx, img.width)).collect();
    let stride = img.width * ch;
    let mut out = vec![0.0; oh * ow * ch];
    by_rows(&mut out, ow * ch, threads, |y, dst| {
        let (y0, y1, wy) = source(y, sy, img.height);
        let (top, bottom) = (
            &img.data[y0 * stride..(y0 + 1) * stride],
            &img.data[y1 * stride..(y1 + 1) * stride],
        );
        for (x, &(x0, x1, wx)) in columns.iter().enumerate() {
            for c in 0..ch {
                let (a, b) = (x0 * ch + c, x1 * ch + c);
                let upper = top[a] * (1.0 - wx) + top[b] * wx;
                let lower = bottom[a] * (1.0 - wx) + bottom[b] * wx;
                dst[x * ch + c] = upper * (1.0 - wy) + lower * wy;
            }
        }
    });
    out
}

/// Fills `out` (`rows` of `stride` values) row by row with `f(y, row)`,
/// on up to `threads` threads.
fn by_rows(out: &mut [f32], stride: usize, threads: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = out.len() / stride.max(1);
    if threads <= 1 || rows < 2 * threads {
        out.chunks_mut(stride.max(1))
            .enumerate()
            .for_each(|(y, row)| f(y, row));
        return;
    }
    let per = rows.div_ceil(threads);
    out.par_chunks_mut(per * stride)
        .enumerate()
        .for_each(|(i, block)| {
            for (j, row) in block.chunks_mut(stride).enumerate() {
                f(i * per + j, row);
            }
        });
}

/// Separable Gaussian blur, border replicated: each pass adds one tap at
/// a time over the interior of a row (a vectorised multiply-add over
/// contiguous values), the `radius` pixels at each border apart.
pub(crate) fn gaussian_blur(img: &Image, sigma: f64, threads: usize) -> Vec<f32> {
    let weights = gaussian_weights(sigma);
    let (h, w, ch) = (img.height, img.width, img.channels);
    let stride = w * ch;
    let mut horizontal = vec![0.0; h * stride];
    by_rows(&mut horizontal, stride, threads, |y, out| {
        blur_row(&img.data[y * stride..(y + 1) * stride], out, &weights, ch)
    });
    let r = weights.len() / 2;
    let mut out = vec![0.0; h * stride];
    by_rows(&mut out, stride, threads, |y, out| {
        for (i, &k) in weights.iter().enumerate() {
            let sy = (y + i).saturating_sub(r).min(h - 1);
            add_scaled(out, k, &horizontal[sy * stride..(sy + 1) * stride]);
        }
    });
    out
}

widest_fn! {
    /// `out += k * src`.
    fn add_scaled<F: Float>(out: &mut [F], k: F, src: &[F]) {
        for (o, &v) in out.iter_mut().zip(src) {
            *o = *o + k * v;
        }
    }
}

widest_fn! {
    /// One row of the horizontal pass (`ch` interleaved channels).
    fn blur_row<F: Float>(row: &[F], out: &mut [F], weights: &[F], ch: usize) {
        let r = weights.len() / 2;
        let w = row.len() / ch.max(1);
        let interior = if w > 2 * r { r..w - r } else { 0..0 };
        let (lo, hi) = (interior.start * ch, interior.end * ch);
        if hi > lo {
            // Tap i of pixel x reads pixel x + i - r: from x = r, pixel i.
            for (i, &k) in weights.iter().enumerate() {
                let src = &row[i * ch..i * ch + (hi - lo)];
                for (o, &v) in out[lo..hi].iter_mut().zip(src) {
                    *o = *o + k * v;
                }
            }
        }
        let border = (0..w).filter(|x| !interior.contains(x));
        for x in border {
            for c in 0..ch {
                out[x * ch + c] = weights
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        let sx = (x + i).saturating_sub(r).min(w - 1);
                        k * row[sx * ch + c]
                    })
                    .fold(F::zero(), |a, b| a + b);
            }
        }
    }
}

/// Sobel gradient magnitude per channel, border replicated: the interior
/// of each row over contiguous values, the first and last pixels apart.
pub(crate) fn sobel(img: &Image, threads: usize) -> Vec<f32> {
    let (h, w, ch) = (img.height, img.width, img.channels);
    let stride = w * ch;
    let row = |y: usize| &img.data[y * stride..(y + 1) * stride];
    let mut out = vec![0.0; h * stride];
    by_rows(&mut out, stride, threads, |y, dst| {
        let (above, below) = (row(y.saturating_sub(1)), row((y + 1).min(h - 1)));
        sobel_row(above, row(y), below, dst, ch);
        for x in [0, w - 1] {
            for c in 0..ch {
                let p = |dy: isize, dx: isize| img.clamped(y as isize + dy, x as isize + dx, c);
                let gx = p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1);
                let gy = p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1);
                dst[x * ch + c] = (gx * gx + gy * gy).sqrt();
            }
        }
    });
    out
}

widest_fn! {
    /// The interior of one Sobel row from the rows above, at and below.
    fn sobel_row<F: Float>(above: &[F], at: &[F], below: &[F], out: &mut [F], ch: usize) {
        let n = out.len();
        if n <= 2 * ch {
            return;
        }
        let two = F::one() + F::one();
        for p in ch..n - ch {
            let (l, r) = (p - ch, p + ch);
            let gx = (above[r] - above[l]) + two * (at[r] - at[l]) + (below[r] - below[l]);
            let gy = (below[l] + two * below[p] + below[r]) - (above[l] + two * above[p] + above[r]);
            out[p] = (gx * gx + gy * gy).sqrt();
        }
    }
}

/// The u8 level of a value as `write` rounds it.
fn level(v: f32) -> u8 {
    let mut out = [0u8];
    to_u8(&[v], &mut out);
    out[0]
}

/// [`rgb_to_gray`] from u8 to u8, rounded as `write` rounds, in blocks
/// of pixels spread over `threads` threads.
fn rgb_to_gray_u8(src: &[u8], dst: &mut [u8], threads: usize) {
    const BLOCK: usize = 16;
    let gray = |src: &[u8], dst: &mut [u8]| {
        let pixel = |p: &[u8]| {
            let v = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
            (v + 0.5).floor().min(255.0) as u8
        };
        let mut blocks = dst.chunks_exact_mut(BLOCK);
        let mut pixels = src.chunks_exact(3 * BLOCK);
        for (out, p) in (&mut blocks).zip(&mut pixels) {
            // Deinterleaved first, so that the arithmetic runs on lanes.
            let (mut r, mut g, mut b) = ([0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK]);
            for i in 0..BLOCK {
                r[i] = f32::from(p[3 * i]);
                g[i] = f32::from(p[3 * i + 1]);
                b[i] = f32::from(p[3 * i + 2]);
            }
            for i in 0..BLOCK {
                let v = 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i];
                // Non-negative: truncating is flooring, and `as` saturates
                // at 255 (no `floor` call where SSE4.1 is not assumed).
                out[i] = (v + 0.5) as u8;
            }
        }
        let tail = blocks.into_remainder();
        for (o, p) in tail.iter_mut().zip(pixels.remainder().chunks_exact(3)) {
            *o = pixel(p);
        }
    };
    // Small images are not worth a thread.
    if threads <= 1 || dst.len() < 64 * 1024 {
        gray(src, dst);
        return;
    }
    let per = dst.len().div_ceil(threads).next_multiple_of(BLOCK);
    dst.par_chunks_mut(per)
        .zip(src.par_chunks(3 * per))
        .for_each(|(out, p)| gray(p, out));
}

/// [`threshold`] from u8 to u8.
fn threshold_u8(src: &[u8], dst: &mut [u8], value: f32, max: f32) {
    let high = level(max);
    for (o, &v) in dst.iter_mut().zip(src) {
        *o = if f32::from(v) > value { high } else { 0 };
    }
}

/// ITU-R BT.601 luma.
pub(crate) fn rgb_to_gray(img: &Image) -> Vec<f32> {
    img.data
        .chunks(3)
        .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
        .collect()
}

/// Binary threshold: `max` above `value`, 0 elsewhere.
pub(crate) fn threshold(img: &Image, value: f32, max: f32) -> Vec<f32> {
    img.data
        .iter()
        .map(|&v| if v > value { max } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_over_threads_give_the_one_thread_result() {
        let (h, w, ch) = (37, 29, 3);
        let data = (0..h * w * ch).map(|i| ((i * 7919) % 251) as f32).collect();
        let img = Image::new(&[h, w, ch], data);
        for threads in [2, 3] {
            assert_eq!(
                gaussian_blur(&img, 1.5, threads),
                gaussian_blur(&img, 1.5, 1)
            );
            assert_eq!(sobel(&img, threads), sobel(&img, 1));
            assert_eq!(resize(&img, 53, 17, threads), resize(&img, 53, 17, 1));
        }
    }

    #[test]
    fn u8_gray_in_blocks_and_over_threads_is_the_f32_path_rounded() {
        // Past the size where threads start, with a tail of 5 pixels.
        let pixels = 300 * 250 + 5;
        let rgb: Vec<u8> = (0..3 * pixels).map(|i| ((i * 7919) % 256) as u8).collect();
        let img = Image::new(&[pixels, 1, 3], rgb.iter().map(|&v| f32::from(v)).collect());
        let mut want = vec![0u8; pixels];
        to_u8(&rgb_to_gray(&img), &mut want);
        for threads in [1, 2, 3] {
            let mut got = vec![0u8; pixels];
            rgb_to_gray_u8(&rgb, &mut got, threads);
            assert_eq!(got, want, "{threads} threads");
        }
    }
}
