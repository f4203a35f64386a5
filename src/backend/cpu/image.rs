//! Image kernels on `[H, W]` or `[H, W, C]` images, u8 or f32. Computed in
//! f32; u8 results are rounded and clamped to 0..=255.

use super::cpu_error;
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
        DType::U8 => {
            for (o, &v) in arg.as_mut_slice::<u8>()?.iter_mut().zip(values) {
                *o = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        _ => arg.as_mut_slice::<f32>()?.copy_from_slice(values),
    }
    Ok(())
}

pub(super) fn launch(kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
    let [input, output] = args else {
        return Err(cpu_error("image kernels take an input and an output"));
    };
    let img = read(input)?;
    let result = match kernel {
        Kernel::Resize => resize(&img, output.shape[0], output.shape[1]),
        Kernel::GaussianBlur { sigma } => gaussian_blur(&img, *sigma),
        Kernel::Sobel => sobel(&img),
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

/// Bilinear resize with pixel centres aligned (OpenCV's INTER_LINEAR).
pub(crate) fn resize(img: &Image, oh: usize, ow: usize) -> Vec<f32> {
    let ch = img.channels;
    let sy = img.height as f32 / oh as f32;
    let sx = img.width as f32 / ow as f32;
    let mut out = vec![0.0; oh * ow * ch];
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (img.height - 1) as f32);
        let (y0, wy) = (fy.floor() as usize, fy - fy.floor());
        let y1 = (y0 + 1).min(img.height - 1);
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (img.width - 1) as f32);
            let (x0, wx) = (fx.floor() as usize, fx - fx.floor());
            let x1 = (x0 + 1).min(img.width - 1);
            for c in 0..ch {
                let top = img.at(y0, x0, c) * (1.0 - wx) + img.at(y0, x1, c) * wx;
                let bottom = img.at(y1, x0, c) * (1.0 - wx) + img.at(y1, x1, c) * wx;
                out[(y * ow + x) * ch + c] = top * (1.0 - wy) + bottom * wy;
            }
        }
    }
    out
}

/// Separable Gaussian blur, border replicated.
pub(crate) fn gaussian_blur(img: &Image, sigma: f64) -> Vec<f32> {
    let weights = gaussian_weights(sigma);
    let r = (weights.len() / 2) as isize;
    let (h, w, ch) = (img.height, img.width, img.channels);
    let mut horizontal = Image::new(&[h, w, ch], vec![0.0; h * w * ch]);
    for y in 0..h {
        for x in 0..w {
            for c in 0..ch {
                horizontal.data[(y * w + x) * ch + c] = weights
                    .iter()
                    .enumerate()
                    .map(|(i, k)| k * img.clamped(y as isize, x as isize + i as isize - r, c))
                    .sum();
            }
        }
    }
    let mut out = vec![0.0; h * w * ch];
    for y in 0..h {
        for x in 0..w {
            for c in 0..ch {
                out[(y * w + x) * ch + c] = weights
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        k * horizontal.clamped(y as isize + i as isize - r, x as isize, c)
                    })
                    .sum();
            }
        }
    }
    out
}

/// Sobel gradient magnitude per channel, border replicated.
pub(crate) fn sobel(img: &Image) -> Vec<f32> {
    let (h, w, ch) = (img.height, img.width, img.channels);
    let mut out = vec![0.0; h * w * ch];
    for y in 0..h as isize {
        for x in 0..w as isize {
            for c in 0..ch {
                let p = |dy: isize, dx: isize| img.clamped(y + dy, x + dx, c);
                let gx = p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1);
                let gy = p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1);
                out[((y as usize) * w + x as usize) * ch + c] = (gx * gx + gy * gy).sqrt();
            }
        }
    }
    out
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
