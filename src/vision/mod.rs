//! Images in and out of the runtime: PNG files as u8 `[H, W]` or
//! `[H, W, 3]` pixels (`png_file.rs`; feature `png`), and image pipelines written as text
//! (`gray,blur=1.5,sobel,threshold=96,resize=256x256`) turned into kernels
//! with the shapes they produce, run on the whole image or on bands of it
//! ([`submit_banded`]); and where fetched data lives.
//!
//! ```
//! use xpu::vision::parse_pipeline;
//! let stages = parse_pipeline("gray,blur=2,sobel,resize=64x48")?;
//! let shapes: Vec<Vec<usize>> = stages.iter().scan(vec![100, 80, 3], |s, st| {
//!     *s = st.output_shape(s).unwrap();
//!     Some(s.clone())
//! }).collect();
//! assert_eq!(shapes.last().unwrap(), &vec![48, 64]);
//! assert!(parse_pipeline("gray,sharpen").is_err());
//! # Ok::<(), xpu::Error>(())
//! ```

use crate::dtype::DType;
use crate::error::{Error, Result};
pub use crate::host::{data_dir, data_file};
use crate::kernel::{blur_radius, Kernel, Mode};
use crate::partition::Partition;
pub use crate::png_file::{load_png, save_png};
use crate::runtime::{Runtime, TaskOptions};
use crate::tensor::Tensor;

/// Pixels of an 8-bit image: `[H, W]` (gray) or `[H, W, 3]` (RGB).
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// One stage of an image pipeline.
#[derive(Debug, Clone)]
pub struct Stage {
    /// As written in the pipeline (`blur=1.5`).
    pub name: String,
    pub kernel: Kernel,
    /// Output size for `resize` (width, height).
    resize: Option<(usize, usize)>,
}

impl Stage {
    /// The shape of the stage's output for an input of `input`.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut out = input.to_vec();
        match (&self.kernel, self.resize) {
            (Kernel::RgbToGray | Kernel::GrayBlur { .. }, _) => {
                if input.len() != 3 || input[2] != 3 {
                    return Err(Error::Config(format!(
                        "`gray` needs an RGB image, got {input:?}"
                    )));
                }
                out.truncate(2);
            }
            (Kernel::Resize, Some((w, h))) => {
                out[0] = h;
                out[1] = w;
            }
            _ => {}
        }
        Ok(out)
    }
}

/// The stages with each `gray` followed by `blur` and each `sobel`
/// followed by `threshold` merged into one fused stage (`gray_blur`,
/// `sobel_threshold`), named by both (`gray+blur=1.5`): the same result,
/// with the intermediate image never written to memory.
///
/// ```
/// use xpu::vision::{fuse, parse_pipeline};
/// let stages = fuse(parse_pipeline("gray,blur=2,sobel,threshold=50,resize=64x48")?);
/// let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
/// assert_eq!(names, ["gray+blur=2", "sobel+threshold=50", "resize=64x48"]);
/// assert_eq!(stages[0].kernel.name(), "gray_blur");
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn fuse(stages: Vec<Stage>) -> Vec<Stage> {
    let mut fused: Vec<Stage> = Vec::with_capacity(stages.len());
    for stage in stages {
        let merged = match (fused.last().map(|s| &s.kernel), &stage.kernel) {
            (Some(Kernel::RgbToGray), Kernel::GaussianBlur { sigma }) => {
                Some(Kernel::GrayBlur { sigma: *sigma })
            }
            (Some(Kernel::Sobel), Kernel::Threshold { value, max }) => {
                Some(Kernel::SobelThreshold {
                    value: *value,
                    max: *max,
                })
            }
            _ => None,
        };
        match (merged, fused.last_mut()) {
            (Some(kernel), Some(last)) => {
                last.name = format!("{}+{}", last.name, stage.name);
                last.kernel = kernel;
            }
            _ => fused.push(stage),
        }
    }
    fused
}

/// Parses stages separated by commas: `gray`, `blur[=SIGMA]` (default 1.5),
/// `sobel`, `threshold[=LEVEL]` (default 128; to 255 above it),
/// `resize=WxH`.
pub fn parse_pipeline(spec: &str) -> Result<Vec<Stage>> {
    let bad = |stage: &str, why: &str| {
        Error::Config(format!(
            "pipeline stage `{stage}`: {why} (stages: gray, blur[=SIGMA], sobel, threshold[=LEVEL], resize=WxH)"
        ))
    };
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|stage| {
            let (name, value) = match stage.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (stage, None),
            };
            let number = |default: f64| -> Result<f64> {
                value.map_or(Ok(default), |v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| bad(stage, &format!("`{v}` is not a positive number")))
                })
            };
            let (kernel, resize) = match name {
                "gray" => (Kernel::RgbToGray, None),
                "blur" => (
                    Kernel::GaussianBlur {
                        sigma: number(1.5)?,
                    },
                    None,
                ),
                "sobel" => (Kernel::Sobel, None),
                "threshold" => (
                    Kernel::Threshold {
                        value: number(128.0)?,
                        max: 255.0,
                    },
                    None,
                ),
                "resize" => {
                    let size = value
                        .and_then(|v| v.split_once('x'))
                        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                        .filter(|&(w, h): &(usize, usize)| w > 0 && h > 0)
                        .ok_or_else(|| bad(stage, "give the size as resize=WIDTHxHEIGHT"))?;
                    (Kernel::Resize, Some(size))
                }
                other => return Err(bad(stage, &format!("unknown stage `{other}`"))),
            };
            Ok(Stage {
                name: stage.to_string(),
                kernel,
                resize,
            })
        })
        .collect()
}

/// How many rows on either side of a pixel the stages read, all together:
/// the halo a band needs for its own rows to come out as in the whole
/// image. `None` when a stage resizes (bands of a resized image do not
/// line up with the input's).
///
/// ```
/// use xpu::vision::{parse_pipeline, stencil_radius};
/// assert_eq!(stencil_radius(&parse_pipeline("gray,blur=1,sobel,threshold")?), Some(3 + 1));
/// assert_eq!(stencil_radius(&parse_pipeline("gray,resize=8x8")?), None);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn stencil_radius(stages: &[Stage]) -> Option<usize> {
    stages.iter().try_fold(0, |total, stage| {
        let own = match stage.kernel {
            Kernel::Resize => return None,
            Kernel::GaussianBlur { sigma } | Kernel::GrayBlur { sigma } => blur_radius(sigma),
            Kernel::Sobel | Kernel::SobelThreshold { .. } => 1,
            _ => 0,
        };
        Some(total + own)
    })
}

/// A CPU kernel that copies rows `skip..skip + n` of its first argument
/// into its second, of `n` rows (the same dtype and later axes): a band's
/// own rows, without its halo.
pub fn crop_rows(skip: usize) -> Result<Kernel> {
    Kernel::define("crop_rows", &[Mode::Read, Mode::Write])
        .check(move |args| {
            let (from, to) = (&args[0], &args[1]);
            let fits = from.dtype == to.dtype
                && from.shape.len() == to.shape.len()
                && from.shape[1..] == to.shape[1..]
                && to
                    .shape
                    .first()
                    .zip(from.shape.first())
                    .is_some_and(|(n, all)| skip + n <= *all);
            match fits {
                true => Ok(()),
                false => Err(Error::Config(format!(
                    "crop_rows cannot take rows {skip}.. of a {} into a {}",
                    from, to
                ))),
            }
        })
        .cpu(move |args| {
            let (from, to) = args.split_at_mut(1);
            let row = from[0].host()?.len() / from[0].shape[0].max(1);
            let out = to[0].host_mut()?;
            out.copy_from_slice(&from[0].host()?[skip * row..skip * row + out.len()]);
            Ok(())
        })
        .build()
}

/// Submits `stages` on `input` cut into `bands` bands of rows, each with the
/// halo the stages need ([`stencil_radius`]), so that the bands run on any
/// units side by side; each band's own rows go into the returned output
/// tensor (its row blocks), which reads back as the whole image's result.
/// The input keeps its bands for the next call.
///
/// ```
/// use xpu::{vision::{parse_pipeline, submit_banded}, Runtime, TaskOptions};
/// let rt = Runtime::builder().device_discovery(false).build()?;
/// let stages = parse_pipeline("blur=1,sobel")?;
/// let pixels: Vec<u8> = (0..40 * 30).map(|i| (i * 7 % 251) as u8).collect();
/// let image = rt.tensor(&[40, 30], &pixels)?.named("image");
/// let banded = submit_banded(&rt, &stages, &image, 3, &TaskOptions::default())?;
/// // the same as the whole image at once
/// let mut whole = image.clone();
/// for stage in &stages {
///     let out = rt.empty(&[40, 30], xpu::DType::U8);
///     rt.submit(&stage.kernel, &[whole.read(), out.write()])?;
///     whole = out;
/// }
/// assert_eq!(rt.read::<u8>(&banded)?, rt.read::<u8>(&whole)?);
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn submit_banded(
    rt: &Runtime,
    stages: &[Stage],
    input: &Tensor,
    bands: usize,
    on: &TaskOptions,
) -> Result<Tensor> {
    let halo = stencil_radius(stages)
        .ok_or_else(|| Error::Config("a pipeline that resizes cannot run in bands".into()))?;
    let height = input.shape().first().copied().unwrap_or(0);
    if bands == 0 || bands > height {
        return Err(Error::Config(format!(
            "{bands} bands do not fit an image of {height} rows"
        )));
    }
    let rows = height.div_ceil(bands);
    let mut out_shape = input.shape().to_vec();
    for stage in stages {
        out_shape = stage.output_shape(&out_shape)?;
    }
    let output = rt.empty(&out_shape, DType::U8);
    let output = match input.name() {
        Some(name) => output.named(&format!("{name}.out")),
        None => output,
    };
    let own_rows = output.partition(rt, Partition::rows(rows))?;
    let bands_of = Partition::bands(rows, halo);
    let band_inputs = match input.parts(&bands_of) {
        Some(parts) => parts,
        None => input.partition(rt, bands_of)?,
    };
    for (i, (band, own)) in band_inputs.iter().zip(own_rows.iter()).enumerate() {
        let mut current = band.clone();
        for stage in stages {
            let next = rt.empty(&stage.output_shape(current.shape())?, DType::U8);
            rt.submit_with(&stage.kernel, &[current.read(), next.write()], on.clone())
                .map_err(|e| Error::Config(format!("band {i}, stage `{}`: {e}", stage.name)))?;
            current = next;
        }
        let skip = i * rows - (i * rows).saturating_sub(halo);
        rt.submit(&crop_rows(skip)?, &[current.read(), own.write()])?;
    }
    Ok(output)
}
