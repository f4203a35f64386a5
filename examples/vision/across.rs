//! The pipeline of the `vision` example, shared with its test: a
//! photograph through gray (CPU), Gaussian blur (VPU), Sobel (GPU, in f32)
//! and a threshold (VPU), each stage on the unit best suited to it, every
//! stage checked against the CPU path on the same input.

use xpu::vision::Pixels;
use xpu::{DType, Kernel, Mode, Placement, Runtime, TaskOptions, Tensor, UnitKind};

/// What ran where, and the result.
pub struct Outcome {
    /// Stage name, the unit that ran it, milliseconds.
    pub stages: Vec<(String, String, f64)>,
    /// Largest difference from the CPU path over every stage (u8 levels).
    pub worst: f64,
    pub edges: Pixels,
}

/// A kernel converting u8 pixels to f32, or back with rounding, on a CPU
/// unit: the GPU's kernels take f32.
fn cast(to_f32: bool) -> Kernel {
    Kernel::custom(
        if to_f32 { "u8_to_f32" } else { "f32_to_u8" },
        &[Mode::Read, Mode::Write],
        move |args| {
            if to_f32 {
                let src: Vec<f32> = args[0]
                    .as_slice::<u8>()?
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                args[1].as_f32_mut()?.copy_from_slice(&src);
            } else {
                let src: Vec<u8> = args[0]
                    .as_f32()?
                    .iter()
                    .map(|v| v.round().clamp(0.0, 255.0) as u8)
                    .collect();
                args[1].as_mut_slice::<u8>()?.copy_from_slice(&src);
            }
            Ok(())
        },
    )
}

/// The first unit of `kind`, else a CPU unit.
fn place(rt: &Runtime, kind: UnitKind) -> Placement {
    if rt.units().iter().any(|u| u.kind == kind) {
        Placement::Kind(kind)
    } else {
        Placement::Kind(UnitKind::Cpu)
    }
}

pub fn run(rt: &Runtime, photo: &Pixels) -> Result<Outcome, Box<dyn std::error::Error>> {
    if photo.shape.len() != 3 {
        return Err("the pipeline starts from an RGB photograph".into());
    }
    let (h, w) = (photo.shape[0], photo.shape[1]);
    let cpu = Placement::Kind(UnitKind::Cpu);
    let stages: Vec<(&str, Kernel, Placement, DType)> = vec![
        ("gray", Kernel::RgbToGray, cpu, DType::U8),
        (
            "blur",
            Kernel::GaussianBlur { sigma: 1.5 },
            place(rt, UnitKind::Vpu),
            DType::U8,
        ),
        ("to f32", cast(true), cpu, DType::F32),
        ("sobel", Kernel::Sobel, place(rt, UnitKind::Gpu), DType::F32),
        (
            "threshold",
            Kernel::Threshold {
                value: 64.0,
                max: 255.0,
            },
            place(rt, UnitKind::Vpu),
            DType::F32,
        ),
        ("to u8", cast(false), cpu, DType::U8),
    ];
    let mut tensors: Vec<Tensor> = vec![rt.tensor(&photo.shape, &photo.data)?];
    rt.clear_profile();
    for (_, kernel, placement, dtype) in &stages {
        let out = rt.empty(&[h, w], *dtype);
        let input = tensors.last().ok_or("no input")?;
        rt.submit_with(
            kernel,
            &[input.read(), out.write()],
            TaskOptions::default().on(*placement),
        )?;
        tensors.push(out);
    }
    let result = tensors.last().ok_or("no output")?;
    let edges = Pixels {
        shape: vec![h, w],
        data: rt.read::<u8>(result)?,
    };
    let profile = rt.profile();
    let ran: Vec<(String, String, f64)> = stages
        .iter()
        .zip(&profile.tasks)
        .map(|((name, ..), t)| {
            let unit = profile.unit(t.unit).map(|u| u.label()).unwrap_or_default();
            (name.to_string(), unit, (t.end - t.start) * 1e3)
        })
        .collect();
    // Every stage again on a CPU unit, from the same input.
    let mut worst: f64 = 0.0;
    for ((_, kernel, _, dtype), pair) in stages.iter().zip(tensors.windows(2)) {
        let want = rt.empty(pair[1].shape(), *dtype);
        rt.submit_with(
            kernel,
            &[pair[0].read(), want.write()],
            TaskOptions::default().on(cpu),
        )?;
        let diff = match dtype {
            DType::U8 => {
                let (a, b) = (rt.read::<u8>(&pair[1])?, rt.read::<u8>(&want)?);
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| x.abs_diff(*y) as f64)
                    .fold(0.0, f64::max)
            }
            _ => {
                let (a, b) = (rt.read::<f32>(&pair[1])?, rt.read::<f32>(&want)?);
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs() as f64)
                    .fold(0.0, f64::max)
            }
        };
        worst = worst.max(diff);
    }
    Ok(Outcome {
        stages: ran,
        worst,
        edges,
    })
}
