//! `xpu vision IN.png --out OUT.png`: an image pipeline on a unit, checked
//! stage by stage against the CPU path.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use xpu::vision::{self, Pixels};
use xpu::{DType, Error, Placement, Runtime, TaskOptions, Tensor, UnitKind};

use crate::RuntimeArgs;

#[derive(Args)]
pub struct VisionArgs {
    /// A PNG image (8-bit gray, RGB or RGBA). `scripts/fetch-models.sh`
    /// puts sample photographs in the data directory's images/.
    input: PathBuf,
    /// Where to write the result, as PNG.
    #[arg(long)]
    out: PathBuf,
    /// Stages, comma-separated: gray, blur[=SIGMA], sobel,
    /// threshold[=LEVEL], resize=WIDTHxHEIGHT.
    #[arg(long, default_value = "gray,blur=1.5,sobel,threshold=96")]
    pipeline: String,
    /// Run every stage as its own task. By default `gray` followed by
    /// `blur`, and `sobel` followed by `threshold`, run as one fused
    /// kernel each (`gray_blur`, `sobel_threshold`): the same pixels, the
    /// intermediate image never written to memory.
    #[arg(long)]
    unfused: bool,
    /// Unit for every stage: an id or a kind (vpu, gpu, cpu, ...).
    /// Default: the VPU when there is one, else any unit that can run each
    /// stage (with --bands: any unit).
    #[arg(long)]
    unit: Option<String>,
    /// After the first run, run the pipeline N more times on the same
    /// tensors (warm: programs built, buffers allocated, data in place)
    /// and print the median time of the whole and of each stage.
    #[arg(long, value_name = "N")]
    bench: Option<usize>,
    /// Then stream N frames made from the image (each shifted along its
    /// rows) through the pipeline, two in flight (frame k+1 is submitted,
    /// its upload included, before frame k is read back); print frames/s
    /// and the bytes moved, and check every frame against the CPU path.
    #[arg(long, value_name = "N")]
    frames: Option<usize>,
    /// Cut the image into N bands of rows, each with the halo of rows the
    /// stages read around a pixel, run the pipeline on every band (the
    /// bands on any units, side by side), and assemble the bands' own rows
    /// into the result; checked against the whole image on the CPU.
    #[arg(long, value_name = "N", conflicts_with_all = ["bench", "frames"])]
    bands: Option<usize>,
}

fn placement(rt: &Runtime, unit: Option<&str>) -> xpu::Result<Placement> {
    match unit {
        Some(s) => Placement::parse(s),
        None if rt.units().iter().any(|u| u.kind == UnitKind::Vpu) => {
            Ok(Placement::Kind(UnitKind::Vpu))
        }
        None => Ok(Placement::Any),
    }
}

pub fn run(runtime: &RuntimeArgs, args: &VisionArgs) -> xpu::Result<()> {
    let rt = runtime.build(None)?;
    let image = vision::load_png(&args.input)?;
    let stages = vision::parse_pipeline(&args.pipeline)?;
    let stages = if args.unfused {
        stages
    } else {
        vision::fuse(stages)
    };
    if stages.is_empty() {
        return Err(Error::Config("the pipeline has no stages".into()));
    }
    if let Some(bands) = args.bands {
        // Bands go to whichever units the policy picks, unless --unit says.
        let place = args
            .unit
            .as_deref()
            .map_or(Ok(Placement::Any), Placement::parse)?;
        let on = TaskOptions::default().on(place);
        return run_banded(&rt, runtime, args, &stages, &image, bands, &on);
    }
    let place = placement(&rt, args.unit.as_deref())?;
    let on = TaskOptions::default().on(place);
    let tensors = pipeline_tensors(&rt, &stages, rt.tensor(&image.shape, &image.data)?)?;
    let (seconds, pixels) = run_once(&rt, &stages, &tensors, &on)?;
    let result = tensors
        .last()
        .ok_or_else(|| Error::Config("no output".into()))?;

    let megapixels = (image.shape[0] * image.shape[1]) as f64 * 1e-6;
    let mut profile = rt.profile();
    profile.tasks.sort_by_key(|t| t.id);
    println!(
        "{}: {}x{}{} through {} stages in {:.2} ms ({:.1} megapixels/s)",
        args.input.display(),
        image.shape[1],
        image.shape[0],
        if image.shape.len() == 3 {
            " RGB"
        } else {
            " gray"
        },
        stages.len(),
        seconds * 1e3,
        megapixels / seconds
    );
    let width = name_width(&stages);
    for (stage, task) in stages.iter().zip(&profile.tasks) {
        let unit = profile
            .unit(task.unit)
            .map(|u| u.label())
            .unwrap_or_default();
        println!(
            "  {:<width$} on {:<12} {:>8.2} ms",
            stage.name,
            unit,
            (task.end - task.start) * 1e3
        );
    }

    if let Some(runs) = args.bench.filter(|&n| n > 0) {
        bench(&rt, &stages, &tensors, &on, runs, megapixels)?;
    }
    if let Some(frames) = args.frames.filter(|&n| n > 0) {
        crate::stream::run(&rt, &stages, &image, &on, frames)?;
    }

    let worst = check_on_cpu(&rt, &stages, &tensors)?;
    println!("checked against the CPU path stage by stage: max difference {worst} (tolerance 1)");
    write_result(&rt, runtime, args, result, pixels)
}

/// The pipeline on `bands` bands of the image; compared with the whole
/// image through the CPU path.
fn run_banded(
    rt: &Runtime,
    runtime: &RuntimeArgs,
    args: &VisionArgs,
    stages: &[vision::Stage],
    image: &Pixels,
    bands: usize,
    on: &TaskOptions,
) -> xpu::Result<()> {
    let input = rt.tensor(&image.shape, &image.data)?.named("image");
    let halo = vision::stencil_radius(stages).unwrap_or(0);
    let start = Instant::now();
    let output = vision::submit_banded(rt, stages, &input, bands, on)?;
    let pixels = rt.read::<u8>(&output)?;
    let seconds = start.elapsed().as_secs_f64();
    let megapixels = (image.shape[0] * image.shape[1]) as f64 * 1e-6;
    println!(
        "{}: {}x{} in {bands} bands (halo {halo} rows) through {} stages in {:.2} ms ({:.1} megapixels/s)",
        args.input.display(),
        image.shape[1],
        image.shape[0],
        stages.len(),
        seconds * 1e3,
        megapixels / seconds
    );
    let mut busy: Vec<(String, usize, f64)> = Vec::new();
    let profile = rt.profile();
    for task in &profile.tasks {
        let unit = profile
            .unit(task.unit)
            .map(|u| u.label())
            .unwrap_or_default();
        match busy.iter_mut().find(|(u, _, _)| *u == unit) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += task.end - task.start;
            }
            None => busy.push((unit, 1, task.end - task.start)),
        }
    }
    for (unit, tasks, seconds) in &busy {
        println!(
            "  {unit:<12} {tasks:>4} tasks {:>8.2} ms busy",
            seconds * 1e3
        );
    }
    let cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
    let whole = pipeline_tensors(rt, stages, input)?;
    submit_stages(rt, stages, &whole, &cpu)?;
    let want = read_result(rt, &whole)?;
    let worst = max_difference(&pixels, &want);
    if worst > 1 {
        return Err(Error::Config(format!(
            "the bands differ from the whole image on the CPU by {worst} (more than 1)"
        )));
    }
    println!("checked against the whole image on the CPU: max difference {worst} (tolerance 1)");
    write_result(rt, runtime, args, &output, pixels)
}

/// Writes the result's `pixels` (of `result`'s shape) to --out, then the
/// trace and chart asked for.
fn write_result(
    rt: &Runtime,
    runtime: &RuntimeArgs,
    args: &VisionArgs,
    result: &Tensor,
    pixels: Vec<u8>,
) -> xpu::Result<()> {
    vision::save_png(
        &args.out,
        &Pixels {
            shape: result.shape().to_vec(),
            data: pixels,
        },
    )?;
    println!("wrote {}", args.out.display());
    runtime.export(rt, None, None)
}

/// Runs every stage on `tensors` (the input, then each stage's output) and
/// reads the result back: the seconds it took and the result's pixels.
fn run_once(
    rt: &Runtime,
    stages: &[vision::Stage],
    tensors: &[Tensor],
    on: &TaskOptions,
) -> xpu::Result<(f64, Vec<u8>)> {
    let start = Instant::now();
    submit_stages(rt, stages, tensors, on)?;
    let pixels = read_result(rt, tensors)?;
    Ok((start.elapsed().as_secs_f64(), pixels))
}

/// `input`, then an empty u8 tensor for each stage's output.
pub(crate) fn pipeline_tensors(
    rt: &Runtime,
    stages: &[vision::Stage],
    input: Tensor,
) -> xpu::Result<Vec<Tensor>> {
    let mut tensors = vec![input];
    for stage in stages {
        let shape = stage.output_shape(tensors.last().map_or(&[][..], |t| t.shape()))?;
        tensors.push(rt.empty(&shape, DType::U8));
    }
    Ok(tensors)
}

/// Submits every stage on `tensors` (the input, then each stage's output).
pub(crate) fn submit_stages(
    rt: &Runtime,
    stages: &[vision::Stage],
    tensors: &[Tensor],
    on: &TaskOptions,
) -> xpu::Result<()> {
    for (stage, pair) in stages.iter().zip(tensors.windows(2)) {
        rt.submit_with(
            &stage.kernel,
            &[pair[0].read(), pair[1].write()],
            on.clone(),
        )
        .map_err(|e| Error::Config(format!("stage `{}`: {e}", stage.name)))?;
    }
    Ok(())
}

/// Reads the last stage's result back (waiting for its tasks).
pub(crate) fn read_result(rt: &Runtime, tensors: &[Tensor]) -> xpu::Result<Vec<u8>> {
    let last = tensors
        .last()
        .ok_or_else(|| Error::Config("no output".into()))?;
    rt.read::<u8>(last)
}

/// `runs` warm runs of the pipeline: the median of the whole and of each
/// stage (its task's run time on its unit).
fn bench(
    rt: &Runtime,
    stages: &[vision::Stage],
    tensors: &[Tensor],
    on: &TaskOptions,
    runs: usize,
    megapixels: f64,
) -> xpu::Result<()> {
    let mut totals = Vec::with_capacity(runs);
    let mut per_stage = vec![Vec::with_capacity(runs); stages.len()];
    for _ in 0..runs {
        rt.clear_profile();
        totals.push(run_once(rt, stages, tensors, on)?.0);
        let mut tasks = rt.profile().tasks;
        tasks.sort_by_key(|t| t.id);
        for (times, task) in per_stage.iter_mut().zip(&tasks) {
            times.push(task.end - task.start);
        }
    }
    let total = median(&mut totals);
    println!(
        "warm, median of {runs} runs: {:.2} ms ({:.1} megapixels/s)",
        total * 1e3,
        megapixels / total
    );
    let width = name_width(stages);
    for (stage, times) in stages.iter().zip(&mut per_stage) {
        println!("  {:<width$} {:>8.2} ms", stage.name, median(times) * 1e3);
    }
    Ok(())
}

/// The width of the stage name column: the longest name, at least 16.
fn name_width(stages: &[vision::Stage]) -> usize {
    stages.iter().map(|s| s.name.len()).fold(16, usize::max)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Each stage again on a CPU unit from the same input as on the unit (the
/// tensors: input, then each stage's output): the largest difference, or
/// an error if one is above 1.
pub(crate) fn check_on_cpu(
    rt: &Runtime,
    stages: &[vision::Stage],
    tensors: &[Tensor],
) -> xpu::Result<u8> {
    let cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
    let mut worst = 0u8;
    for (stage, pair) in stages.iter().zip(tensors.windows(2)) {
        let want = rt.empty(pair[1].shape(), DType::U8);
        rt.submit_with(&stage.kernel, &[pair[0].read(), want.write()], cpu.clone())?;
        let (got, want) = (rt.read::<u8>(&pair[1])?, rt.read::<u8>(&want)?);
        let diff = max_difference(&got, &want);
        if diff > 1 {
            return Err(Error::Config(format!(
                "stage `{}` differs from the CPU path by {diff} (more than 1)",
                stage.name
            )));
        }
        worst = worst.max(diff);
    }
    Ok(worst)
}

/// The largest difference between two images' pixels.
pub(crate) fn max_difference(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}
