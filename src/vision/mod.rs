//! Images in and out of the runtime: PNG files as u8 `[H, W]` or
//! `[H, W, 3]` pixels (`png_file.rs`; feature `png`), and image pipelines written as text
//! (`gray,blur=1.5,sobel,threshold=96,resize=256x256`) turned into kernels
//! with the shapes they produce; and where fetched data lives.
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

use crate::error::{Error, Result};
pub use crate::host::{data_dir, data_file};
use crate::kernel::Kernel;
pub use crate::png_file::{load_png, save_png};

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
