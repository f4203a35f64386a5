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
}

fn read(arg: &Arg<'_>) -> Result<Image> {
    let data = match arg.dtype {
        DType::U8 => arg.as_slice::<u8>()?.iter().map(|&v| v as f32).collect(),
        DType::F32 => arg.as_slice::<f32>()?.to_vec(),
        other => return Err(not_image_dtype(other)),
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
    if let Some((stencil, threshold)) = Stencil::of(kernel) {
        let shape = Shape::of(output.shape);
        if let (Stencil::Sobel, DType::U8, DType::U8) = (&stencil, input.dtype, output.dtype) {
            sobel_u8(
                input.as_slice()?,
                shape,
                output.as_mut_slice()?,
                threshold,
                threads,
            );
            return Ok(());
        }
        let gray = matches!(kernel, Kernel::GrayBlur { .. });
        let rows = match (input.dtype, gray) {
            (DType::U8, false) => Rows::U8(input.as_slice()?),
            (DType::U8, true) => Rows::GrayOfU8(input.as_slice()?),
            (DType::F32, false) => Rows::F32(input.as_slice()?),
            (DType::F32, true) => Rows::GrayOfF32(input.as_slice()?),
            (other, _) => return Err(not_image_dtype(other)),
        };
        return match output.dtype {
            DType::U8 => {
                let out = output.as_mut_slice::<u8>()?;
                stream(&stencil, rows, shape, out, threshold, threads);
                Ok(())
            }
            DType::F32 => {
                let out = output.as_mut_slice::<f32>()?;
                stream(&stencil, rows, shape, out, threshold, threads);
                Ok(())
            }
            other => Err(not_image_dtype(other)),
        };
    }
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

fn not_image_dtype(dtype: DType) -> crate::error::Error {
    cpu_error(&format!("image kernels take u8 or f32, got {dtype}"))
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
    by_bands(out, stride, threads, |y0, band| {
        for (j, row) in band.chunks_mut(stride.max(1)).enumerate() {
            f(y0 + j, row);
        }
    });
}

/// Splits `out` (rows of `stride` values) into up to `threads` bands of
/// whole rows and calls `band(first row, its rows)` on each, in parallel.
fn by_bands<T: Send>(
    out: &mut [T],
    stride: usize,
    threads: usize,
    band: impl Fn(usize, &mut [T]) + Sync,
) {
    let rows = out.len() / stride.max(1);
    if threads <= 1 || rows < 2 * threads {
        band(0, out);
        return;
    }
    let per = rows.div_ceil(threads);
    out.par_chunks_mut(per * stride)
        .enumerate()
        .for_each(|(i, block)| band(i * per, block));
}

/// An output image's height, width and channels.
#[derive(Clone, Copy)]
struct Shape {
    height: usize,
    width: usize,
    channels: usize,
}

impl Shape {
    fn of(shape: &[usize]) -> Shape {
        Shape {
            height: shape[0],
            width: shape[1],
            channels: shape.get(2).copied().unwrap_or(1),
        }
    }
}

/// Where a stencil's input rows come from, each as f32 values.
#[derive(Clone, Copy)]
enum Rows<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
    /// The gray image of u8 RGB pixels, in the levels `rgb_to_gray`
    /// writes to u8.
    GrayOfU8(&'a [u8]),
    /// The gray image of f32 RGB pixels.
    GrayOfF32(&'a [f32]),
}

impl Rows<'_> {
    /// Fills `out` with row `y` (rows of `out.len()` values).
    fn row(&self, y: usize, out: &mut [f32]) {
        let n = out.len();
        match *self {
            Rows::F32(s) => out.copy_from_slice(&s[y * n..(y + 1) * n]),
            Rows::U8(s) => {
                for (o, &v) in out.iter_mut().zip(&s[y * n..(y + 1) * n]) {
                    *o = f32::from(v);
                }
            }
            Rows::GrayOfU8(s) => gray_levels_f32(&s[3 * y * n..3 * (y + 1) * n], out),
            Rows::GrayOfF32(s) => {
                for (o, p) in out
                    .iter_mut()
                    .zip(s[3 * y * n..3 * (y + 1) * n].chunks_exact(3))
                {
                    *o = luma(p[0], p[1], p[2]);
                }
            }
        }
    }
}

/// The stencils that stream over a window of rows.
enum Stencil {
    /// Separable Gaussian blur with these normalised taps.
    Blur(Vec<f32>),
    /// Sobel gradient magnitude.
    Sobel,
}

/// A threshold applied to a stencil's stored result: (value, max).
type Cut = Option<(f32, f32)>;

impl Stencil {
    /// The stencil of an image kernel that is one, and the threshold
    /// applied to what it stores.
    fn of(kernel: &Kernel) -> Option<(Stencil, Cut)> {
        match kernel {
            Kernel::GaussianBlur { sigma } | Kernel::GrayBlur { sigma } => {
                Some((Stencil::Blur(gaussian_weights(*sigma)), None))
            }
            Kernel::Sobel => Some((Stencil::Sobel, None)),
            Kernel::SobelThreshold { value, max } => {
                Some((Stencil::Sobel, Some((*value as f32, *max as f32))))
            }
            _ => None,
        }
    }

    fn radius(&self) -> usize {
        match self {
            Stencil::Blur(weights) => weights.len() / 2,
            Stencil::Sobel => 1,
        }
    }
}

/// An element type the stencils store: a row of f32 results written as
/// the type holds them, then thresholded if asked.
trait Pixel: Copy + Send + Sync {
    fn store(values: &[f32], out: &mut [Self], cut: Cut);
}

impl Pixel for f32 {
    fn store(values: &[f32], out: &mut [f32], cut: Cut) {
        match cut {
            None => out.copy_from_slice(values),
            Some((value, max)) => {
                for (o, &v) in out.iter_mut().zip(values) {
                    *o = if v > value { max } else { 0.0 };
                }
            }
        }
    }
}

impl Pixel for u8 {
    fn store(values: &[f32], out: &mut [u8], cut: Cut) {
        to_u8(values, out);
        if let Some((value, max)) = cut {
            let high = level(max);
            for o in out.iter_mut() {
                *o = above(*o, value, high);
            }
        }
    }
}

/// Runs `stencil` over the image `rows` gives (border replicated), storing
/// each output row in `out` (`shape`), thresholded when `cut` is given.
/// Each of up to `threads` threads takes a band of output rows and keeps
/// only the window of input rows its current row needs, in f32 (for the
/// blur, already blurred along the row): the input is read once, the
/// output written once, and no whole-image f32 copy is made between.
fn stream<P: Pixel>(
    stencil: &Stencil,
    rows: Rows<'_>,
    shape: Shape,
    out: &mut [P],
    cut: Cut,
    threads: usize,
) {
    let (h, stride) = (shape.height, shape.width * shape.channels);
    if h == 0 || stride == 0 {
        return;
    }
    let r = stencil.radius();
    let slots = 2 * r + 1;
    let band = |y0: usize, out: &mut [P]| {
        let mut window = vec![0.0f32; slots * stride];
        let mut scratch = vec![0.0f32; stride];
        let mut acc = vec![0.0f32; stride];
        let mut next = y0.saturating_sub(r);
        for (j, dst) in out.chunks_mut(stride).enumerate() {
            let y = y0 + j;
            while next <= (y + r).min(h - 1) {
                let slot = &mut window[(next % slots) * stride..][..stride];
                match stencil {
                    Stencil::Blur(weights) => {
                        rows.row(next, &mut scratch);
                        slot.fill(0.0);
                        blur_row(&scratch, slot, weights, shape.channels);
                    }
                    Stencil::Sobel => rows.row(next, slot),
                }
                next += 1;
            }
            let at = |dy: usize| {
                let sy = (y + dy).saturating_sub(r).min(h - 1);
                &window[(sy % slots) * stride..][..stride]
            };
            match stencil {
                Stencil::Blur(weights) => {
                    acc.fill(0.0);
                    for (i, &k) in weights.iter().enumerate() {
                        add_scaled(&mut acc, k, at(i));
                    }
                }
                Stencil::Sobel => {
                    sobel_row(at(0), at(1), at(2), &mut acc, shape.channels);
                    sobel_edges(at(0), at(1), at(2), &mut acc, shape.channels);
                }
            }
            P::store(&acc, dst, cut);
        }
    };
    by_bands(out, stride, threads, band);
}

/// Sobel on u8 rows, in integers: exact, since |gx| and |gy| are at most
/// 1020 (16 bits) and their squares' sum at most 2,080,800 (exact in f32
/// too). The magnitude is stored as levels; an edge map compares the
/// squared magnitude with [`edge_bound`], no square root taken.
fn sobel_u8(src: &[u8], shape: Shape, out: &mut [u8], cut: Cut, threads: usize) {
    let (h, stride, ch) = (shape.height, shape.width * shape.channels, shape.channels);
    if h == 0 || stride == 0 {
        return;
    }
    let row = |y: usize| &src[y * stride..(y + 1) * stride];
    by_bands(out, stride, threads, |y0, band| {
        let mut squares = vec![0.0f32; stride];
        for (j, dst) in band.chunks_mut(stride).enumerate() {
            let y = y0 + j;
            let (above, below) = (row(y.saturating_sub(1)), row((y + 1).min(h - 1)));
            sobel_squares(above, row(y), below, &mut squares, ch);
            match cut {
                None => {
                    for v in squares.iter_mut() {
                        *v = v.sqrt();
                    }
                    to_u8(&squares, dst);
                }
                Some((value, max)) => {
                    let (bound, high) = (edge_bound(value), level(max));
                    for (o, &s) in dst.iter_mut().zip(&squares) {
                        *o = if s >= bound { high } else { 0 };
                    }
                }
            }
        }
    });
}

/// The smallest squared Sobel magnitude whose level is above `value`:
/// the level of a magnitude `m` is `floor(m + 0.5)`, so it reaches `l`, the
/// smallest level above `value`, when `m >= l - 0.5`, that is when the
/// whole square `s >= l * l - l + 1/4`: `s >= l * l - l + 1`. Infinite when
/// no level is above `value` (and NaN, which no square reaches, for NaN).
fn edge_bound(value: f32) -> f32 {
    let l = value.floor() + 1.0;
    if l > 255.0 {
        f32::INFINITY
    } else if l <= 0.0 {
        0.0
    } else {
        l * l - l + 1.0
    }
}

widest_fn! {
    /// The squared Sobel magnitude of one row of u8 pixels (`ch`
    /// interleaved channels, columns clamped) from the rows above, at and
    /// below, in 16-bit gradients.
    fn sobel_squares<F: Float>(above: &[u8], at: &[u8], below: &[u8], out: &mut [F], ch: usize) {
        let n = out.len();
        let v = |row: &[u8], i: usize| i16::from(row[i]);
        let square = |l: usize, p: usize, r: usize| {
            let gx = (v(above, r) - v(above, l)) + 2 * (v(at, r) - v(at, l)) + (v(below, r) - v(below, l));
            let gy = (v(below, l) + 2 * v(below, p) + v(below, r)) - (v(above, l) + 2 * v(above, p) + v(above, r));
            let s = i32::from(gx) * i32::from(gx) + i32::from(gy) * i32::from(gy);
            F::from(s).unwrap_or_else(F::zero)
        };
        let interior = n.saturating_sub(2 * ch);
        for (p, o) in out.iter_mut().enumerate().skip(ch).take(interior) {
            *o = square(p - ch, p, p + ch);
        }
        let w = n / ch;
        for x in [0, w - 1] {
            let (l, r) = (x.saturating_sub(1), (x + 1).min(w - 1));
            for c in 0..ch {
                out[x * ch + c] = square(l * ch + c, x * ch + c, r * ch + c);
            }
        }
    }
}

/// The Sobel magnitude of the first and last pixel of a row (columns
/// clamped), from the rows above, at and below.
fn sobel_edges(above: &[f32], at: &[f32], below: &[f32], out: &mut [f32], ch: usize) {
    let w = out.len() / ch;
    for x in [0, w - 1] {
        let (l, r) = (x.saturating_sub(1), (x + 1).min(w - 1));
        for c in 0..ch {
            let (l, p, r) = (l * ch + c, x * ch + c, r * ch + c);
            let gx = (above[r] - above[l]) + 2.0 * (at[r] - at[l]) + (below[r] - below[l]);
            let gy =
                (below[l] + 2.0 * below[p] + below[r]) - (above[l] + 2.0 * above[p] + above[r]);
            out[p] = (gx * gx + gy * gy).sqrt();
        }
    }
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

/// ITU-R BT.601 luma.
fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

widest_fn! {
    /// [`gray_levels`] as f32.
    fn gray_levels_f32(src: &[u8], dst: &mut [f32]) {
        gray_levels(src, dst, f32::from)
    }
}

widest_fn! {
    /// [`gray_levels`] as u8.
    fn gray_levels_u8(src: &[u8], dst: &mut [u8]) {
        gray_levels(src, dst, |v| v)
    }
}

/// The luma of u8 RGB pixels as levels (rounded as `write` rounds), each
/// stored as `to` makes it. Inlined into the callers built for the widest
/// vector instructions, where the three-way interleaved loads vectorise.
#[inline(always)]
fn gray_levels<O: Copy>(src: &[u8], dst: &mut [O], to: impl Fn(u8) -> O) {
    for (o, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
        let v = luma(f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
        // SAFETY: a luma of three u8 values plus 0.5 is finite and in
        // 0.5..256 (the f32 weights sum to 1 within an ulp, so white is
        // 255.5 at most), so the truncating conversion is defined, floors,
        // and gives a level that fits a u8. It vectorises; `as`, which
        // must saturate, does not.
        let level: i32 = unsafe { (v + 0.5).to_int_unchecked() };
        *o = to(level as u8);
    }
}

/// [`rgb_to_gray`] from u8 to u8, in blocks of pixels spread over
/// `threads` threads.
fn rgb_to_gray_u8(src: &[u8], dst: &mut [u8], threads: usize) {
    // Small images are not worth a thread.
    if threads <= 1 || dst.len() < 64 * 1024 {
        gray_levels_u8(src, dst);
        return;
    }
    let per = dst.len().div_ceil(threads).next_multiple_of(16);
    dst.par_chunks_mut(per)
        .zip(src.par_chunks(3 * per))
        .for_each(|(out, p)| gray_levels_u8(p, out));
}

/// `high` where a level is above `value`, else 0.
fn above(v: u8, value: f32, high: u8) -> u8 {
    if f32::from(v) > value {
        high
    } else {
        0
    }
}

widest_fn! {
    /// [`threshold`] from u8 to u8.
    fn threshold_u8(src: &[u8], dst: &mut [u8], value: f32, max: f32) {
        let high = level(max);
        for (o, &v) in dst.iter_mut().zip(src) {
            *o = above(v, value, high);
        }
    }
}

/// ITU-R BT.601 luma of RGB pixels.
pub(crate) fn rgb_to_gray(img: &Image) -> Vec<f32> {
    img.data.chunks(3).map(|p| luma(p[0], p[1], p[2])).collect()
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
    use crate::backend::cpu::run_on_host as run;

    fn pixels(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7919) % 251) as u8).collect()
    }

    #[test]
    fn rows_split_over_threads_give_the_one_thread_result() {
        let (h, w, ch) = (37, 29, 3);
        let rgb = pixels(h * w * ch);
        let data: Vec<f32> = rgb.iter().map(|&v| f32::from(v)).collect();
        let img = Image::new(&[h, w, ch], data.clone());
        let shape = [h, w, ch];
        for kernel in [
            Kernel::GaussianBlur { sigma: 1.5 },
            Kernel::Sobel,
            Kernel::SobelThreshold {
                value: 90.0,
                max: 200.0,
            },
        ] {
            for threads in [2, 3] {
                let one = run(&kernel, &data, &shape, &shape, 1);
                assert_eq!(run(&kernel, &data, &shape, &shape, threads), one);
                let one = run(&kernel, &rgb, &shape, &shape, 1);
                assert_eq!(run(&kernel, &rgb, &shape, &shape, threads), one);
            }
        }
        let gray_blur = Kernel::GrayBlur { sigma: 1.2 };
        for threads in [2, 3] {
            assert_eq!(
                run(&gray_blur, &rgb, &shape, &[h, w], threads),
                run(&gray_blur, &rgb, &shape, &[h, w], 1)
            );
            assert_eq!(resize(&img, 53, 17, threads), resize(&img, 53, 17, 1));
        }
    }

    #[test]
    fn fused_kernels_give_the_two_kernels_in_turn_exactly() {
        let (h, w) = (41, 33);
        let rgb = pixels(h * w * 3);
        let rgb_f32: Vec<f32> = rgb.iter().map(|&v| f32::from(v)).collect();
        let blur = Kernel::GaussianBlur { sigma: 1.5 };
        let (value, max) = (40.0, 255.0);
        let threshold = Kernel::Threshold { value, max };
        let edges = Kernel::SobelThreshold { value, max };
        let (color, gray) = ([h, w, 3], [h, w]);
        for threads in [1, 2] {
            let g = run(&Kernel::RgbToGray, &rgb, &color, &gray, threads);
            let want = run(&blur, &g, &gray, &gray, threads);
            let fused = Kernel::GrayBlur { sigma: 1.5 };
            assert_eq!(run(&fused, &rgb, &color, &gray, threads), want);
            let magnitude = run(&Kernel::Sobel, &want, &gray, &gray, threads);
            let edge_map = run(&edges, &want, &gray, &gray, threads);
            assert_eq!(edge_map, run(&threshold, &magnitude, &gray, &gray, 1));
            assert!(edge_map.contains(&0) && edge_map.contains(&255));

            let g = run(&Kernel::RgbToGray, &rgb_f32, &color, &gray, threads);
            let want = run(&blur, &g, &gray, &gray, threads);
            let fused = Kernel::GrayBlur { sigma: 1.5 };
            assert_eq!(run(&fused, &rgb_f32, &color, &gray, threads), want);
            let magnitude = run(&Kernel::Sobel, &want, &gray, &gray, threads);
            let edge_map = run(&edges, &want, &gray, &gray, threads);
            assert_eq!(edge_map, run(&threshold, &magnitude, &gray, &gray, 1));
        }
    }

    #[test]
    fn every_instruction_set_gives_the_baseline_images() {
        use crate::backend::cpu::widest::{at_each_level, Level};
        let (h, w) = (29, 37);
        let rgb = pixels(h * w * 3);
        let wide: Vec<f32> = rgb.iter().map(|&v| f32::from(v)).collect();
        let (color, gray) = (vec![h, w, 3], vec![h, w]);
        let cases = [
            (Kernel::RgbToGray, &color, &gray),
            (Kernel::GaussianBlur { sigma: 1.5 }, &color, &color),
            (Kernel::GrayBlur { sigma: 1.5 }, &color, &gray),
            (Kernel::Sobel, &color, &color),
            (
                Kernel::SobelThreshold {
                    value: 96.0,
                    max: 255.0,
                },
                &color,
                &color,
            ),
            (Kernel::Resize, &color, &vec![17, 53, 3]),
            (
                Kernel::Threshold {
                    value: 127.5,
                    max: 200.0,
                },
                &color,
                &color,
            ),
        ];
        let mut baseline = (Vec::new(), Vec::new());
        at_each_level(|level| {
            // One thread: the level is capped on this thread only.
            let bytes: Vec<Vec<u8>> = cases
                .iter()
                .map(|(k, i, o)| run(k, &rgb, i, o, 1))
                .collect();
            let floats: Vec<Vec<f32>> = cases
                .iter()
                .map(|(k, i, o)| run(k, &wide, i, o, 1))
                .collect();
            if level == Level::Baseline {
                baseline = (bytes, floats);
            } else {
                assert_eq!(bytes, baseline.0, "u8 at {level:?}");
                assert_eq!(floats, baseline.1, "f32 at {level:?}");
            }
        });
    }

    #[test]
    fn the_edge_bound_thresholds_every_square_as_its_level_would_be() {
        let largest = 2 * 1020 * 1020;
        for value in [
            -1.0,
            0.0,
            0.5,
            1.0,
            95.5,
            96.0,
            127.99,
            254.9,
            255.0,
            300.0,
            f32::NAN,
        ] {
            let bound = edge_bound(value);
            for s in 0..=largest {
                let magnitude = (s as f32).sqrt();
                assert_eq!(
                    level(magnitude) as f32 > value,
                    s as f32 >= bound,
                    "square {s}, threshold {value}"
                );
            }
        }
    }

    #[test]
    fn u8_sobel_in_integers_is_the_f32_path_rounded() {
        for shape in [[19, 23, 1], [7, 5, 3], [1, 1, 1], [2, 1, 3]] {
            let n = shape.iter().product();
            let img = pixels(n);
            let wide: Vec<f32> = img.iter().map(|&v| f32::from(v)).collect();
            let mut want = vec![0u8; n];
            to_u8(&run(&Kernel::Sobel, &wide, &shape, &shape, 1), &mut want);
            assert_eq!(
                run(&Kernel::Sobel, &img, &shape, &shape, 1),
                want,
                "{shape:?}"
            );
        }
    }

    #[test]
    fn u8_gray_in_blocks_and_over_threads_is_the_f32_path_rounded() {
        // Past the size where threads start, with a tail of 5 pixels.
        let pixels = 300 * 250 + 5;
        let mut rgb: Vec<u8> = (0..3 * pixels).map(|i| ((i * 7919) % 256) as u8).collect();
        // White and black among them.
        rgb[..6].copy_from_slice(&[255, 255, 255, 0, 0, 0]);
        let img = Image::new(&[pixels, 1, 3], rgb.iter().map(|&v| f32::from(v)).collect());
        let mut want = vec![0u8; pixels];
        to_u8(&rgb_to_gray(&img), &mut want);
        for threads in [1, 2, 3] {
            let mut got = vec![0u8; pixels];
            rgb_to_gray_u8(&rgb, &mut got, threads);
            assert_eq!(got, want, "{threads} threads");
            assert_eq!(got[..2], [255, 0]);
        }
    }
}
