//! `xpu demo`: a mixed workload over every unit, checked against the CPU path.

use std::time::{Duration, Instant};

use clap::Args;
use xpu::bench;
use xpu::tiled::{self, TiledMatrix};
use xpu::{
    BinaryOp, DType, Element, Kernel, Placement, Runtime, TaskOptions, Tensor, UnaryOp, UnitKind,
};

use crate::report::{print_unit_report, progress, tasks_finished};
use crate::RuntimeArgs;

#[derive(Args)]
pub struct DemoArgs {
    /// Size n of the n x n tiled GEMM.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Tile size of the GEMM (must divide --size).
    #[arg(long, default_value_t = 256)]
    tile: usize,
    /// Frames through the image pipeline (gray, blur, Sobel, resize).
    #[arg(long, default_value_t = 8)]
    frames: usize,
    /// Width and height of each frame in pixels.
    #[arg(long, default_value_t = 512)]
    frame_size: usize,
}

/// The workload's outputs, read back for comparison.
pub struct Outputs {
    gemm: TiledMatrix,
    frames: Vec<Tensor>,
    chains: Vec<Tensor>,
    /// Tasks submitted.
    pub tasks: u64,
}

/// A synthetic RGB frame: gradients and rings, different per frame.
fn frame(index: usize, side: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(side * side * 3);
    let c = side as f32 / 2.0;
    for y in 0..side {
        for x in 0..side {
            let r = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
            let ring = if ((r as usize + index * 7) / 16).is_multiple_of(2) {
                200
            } else {
                40
            };
            px.push(((x * 255) / side) as u8);
            px.push(ring);
            px.push(((y * 255) / side) as u8);
        }
    }
    px
}

fn chain_input(e: usize) -> f32 {
    ((e * 7919) % 2000) as f32 / 1000.0 - 1.0
}

/// Submits the whole workload with `placement` for every task.
pub fn submit(rt: &Runtime, args: &DemoArgs, placement: Placement) -> xpu::Result<Outputs> {
    let opts = TaskOptions::default().on(placement);
    let n = args.size;
    let a = TiledMatrix::from_fn(rt, n, args.tile, bench::gemm_a)?;
    let b = TiledMatrix::from_fn(rt, n, args.tile, bench::gemm_b)?;
    let c = TiledMatrix::zeros(rt, n, args.tile, DType::F32)?;
    let mut tasks = tiled::gemm(rt, &a, &b, &c, placement)? as u64;
    let side = args.frame_size;
    let mut frames = Vec::new();
    for f in 0..args.frames {
        let rgb = rt.tensor(&[side, side, 3], frame(f, side))?;
        let gray = rt.empty(&[side, side], DType::U8);
        let blurred = rt.empty(&[side, side], DType::U8);
        let edges = rt.empty(&[side, side], DType::U8);
        let small = rt.empty(&[side / 2, side / 2], DType::U8);
        rt.submit_with(
            &Kernel::RgbToGray,
            &[rgb.read(), gray.write()],
            opts.clone(),
        )?;
        rt.submit_with(
            &Kernel::GaussianBlur { sigma: 1.5 },
            &[gray.read(), blurred.write()],
            opts.clone(),
        )?;
        rt.submit_with(
            &Kernel::Sobel,
            &[blurred.read(), edges.write()],
            opts.clone(),
        )?;
        rt.submit_with(
            &Kernel::Resize,
            &[edges.read(), small.write()],
            opts.clone(),
        )?;
        frames.push(small);
        tasks += 4;
    }
    let (rows, cols) = (256, 1024);
    let mut chains = Vec::new();
    for block in 0..8 {
        let x = rt.tensor(
            &[rows, cols],
            (0..rows * cols)
                .map(|e| chain_input(e + block))
                .collect::<Vec<_>>(),
        )?;
        let w = rt.tensor(
            &[rows, cols],
            (0..rows * cols)
                .map(|e| chain_input(e * 3))
                .collect::<Vec<_>>(),
        )?;
        let gamma = rt.tensor(&[cols], vec![1.5f32; cols])?;
        let beta = rt.tensor(&[cols], vec![0.1f32; cols])?;
        let t: Vec<Tensor> = (0..4)
            .map(|_| rt.empty(&[rows, cols], DType::F32))
            .collect();
        let out = rt.empty(&[rows, cols], DType::F32);
        rt.submit_with(
            &Kernel::Binary(BinaryOp::Mul),
            &[x.read(), w.read(), t[0].write()],
            opts.clone(),
        )?;
        rt.submit_with(
            &Kernel::Binary(BinaryOp::Add),
            &[t[0].read(), x.read(), t[1].write()],
            opts.clone(),
        )?;
        rt.submit_with(
            &Kernel::Unary(UnaryOp::Gelu),
            &[t[1].read(), t[2].write()],
            opts.clone(),
        )?;
        rt.submit_with(&Kernel::Softmax, &[t[2].read(), t[3].write()], opts.clone())?;
        rt.submit_with(
            &Kernel::LayerNorm { eps: 1e-5 },
            &[t[3].read(), gamma.read(), beta.read(), out.write()],
            opts.clone(),
        )?;
        chains.push(out);
        tasks += 5;
    }
    Ok(Outputs {
        gemm: c,
        frames,
        chains,
        tasks,
    })
}

/// Largest |a - b| / (1 + |b|) over two tensors' contents.
fn worst_error<T: Element>(
    rt: &Runtime,
    got: &Tensor,
    reference: &Runtime,
    want: &Tensor,
) -> xpu::Result<f64> {
    let g: Vec<T> = rt.read(got)?;
    let w: Vec<T> = reference.read(want)?;
    Ok(g.iter()
        .zip(&w)
        .map(|(a, b)| (a.to_f64() - b.to_f64()).abs() / (1.0 + b.to_f64().abs()))
        .fold(0.0, f64::max))
}

fn verdict(name: &str, error: f64, tolerance: f64, failures: &mut Vec<String>) {
    let ok = error <= tolerance;
    println!(
        "  {name:<44} max error {error:.2e} (tolerance {tolerance:.0e}): {}",
        if ok { "ok" } else { "MISMATCH" }
    );
    if !ok {
        failures.push(name.to_string());
    }
}

pub fn run(runtime: &RuntimeArgs, args: &DemoArgs) -> xpu::Result<()> {
    let rt = runtime.build(None)?;
    println!(
        "xpu demo: {} units, policy {}",
        rt.units().len(),
        rt.policy().as_str()
    );
    for u in rt.units() {
        let emulated = if u.emulated { ", emulated" } else { "" };
        println!(
            "  unit {}: {} ({}{emulated}) {}",
            u.id, u.kind, u.backend, u.device
        );
    }
    let start = Instant::now();
    let out = submit(&rt, args, Placement::Any)?;
    let bar = progress(out.tasks, "running tasks");
    loop {
        let done = tasks_finished(&rt);
        bar.set_position(done.min(out.tasks));
        if done >= out.tasks {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.synchronize()?;
    let wall = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let gemm_flops = 2.0 * (args.size as f64).powi(3);
    println!(
        "\nran {} tasks in {wall:.3} s (tiled GEMM {n}x{n} in {t}x{t} tiles: {:.1} GFLOP/s over the whole run)\n",
        out.tasks,
        gemm_flops / wall * 1e-9,
        n = args.size,
        t = args.tile
    );
    print_unit_report(&rt, wall);
    println!();
    runtime.export(&rt, Some("xpu-trace.json"), Some("xpu-gantt.svg"))?;

    println!("\nchecking every result against the CPU reference path:");
    let reference = Runtime::builder().build()?;
    let want = submit(&reference, args, Placement::Kind(UnitKind::Cpu))?;
    reference.wait_all();
    let mut failures = Vec::new();
    let g: Vec<f32> = out.gemm.to_vec(&rt)?;
    let w: Vec<f32> = want.gemm.to_vec(&reference)?;
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    let gemm_err = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs() as f64 / (1.0 + scale))
        .fold(0.0, f64::max);
    verdict(
        &format!("tiled gemm {}x{} (f32)", args.size, args.size),
        gemm_err,
        1e-4,
        &mut failures,
    );
    let mut frame_err: f64 = 0.0;
    for (g, w) in out.frames.iter().zip(&want.frames) {
        let a: Vec<u8> = rt.read(g)?;
        let b: Vec<u8> = reference.read(w)?;
        let e = crate::vision::max_difference(&a, &b);
        frame_err = frame_err.max(e as f64);
    }
    // Each u8 stage may round a value the other way (1 unit); Sobel's
    // weights sum to 8 in magnitude, so a 1-unit difference in its input
    // can become 8 in its output, which the final resize only averages.
    verdict(
        &format!("image pipeline, {} frames (u8, in units)", args.frames),
        frame_err,
        8.0,
        &mut failures,
    );
    let mut chain_err: f64 = 0.0;
    for (g, w) in out.chains.iter().zip(&want.chains) {
        chain_err = chain_err.max(worst_error::<f32>(&rt, g, &reference, w)?);
    }
    verdict(
        "element-wise chain, 8 blocks (f32)",
        chain_err,
        1e-4,
        &mut failures,
    );
    #[cfg(all(feature = "llm", feature = "candle"))]
    language_model(&rt, &reference, &mut failures)?;
    if failures.is_empty() {
        println!("all results match the CPU reference");
        Ok(())
    } else {
        Err(xpu::Error::Config(format!(
            "results differ from the CPU reference: {}",
            failures.join(", ")
        )))
    }
}

/// A short greedy answer from the language model on the LPU, checked token
/// for token against the same model on a CPU unit; skipped, saying how to
/// enable it, when the model is not fetched.
#[cfg(all(feature = "llm", feature = "candle"))]
fn language_model(
    rt: &Runtime,
    reference: &Runtime,
    failures: &mut Vec<String>,
) -> xpu::Result<()> {
    use xpu::llm::{generate, GenerateOptions, LanguageModel};

    let name = "language model, 16 greedy tokens (differing)";
    let path = match LanguageModel::default_path() {
        Ok(path) => path,
        Err(e) => {
            println!("  {name:<44} skipped: {e}");
            return Ok(());
        }
    };
    if !rt.units().iter().any(|u| u.kind == UnitKind::Lpu) {
        println!("  {name:<44} skipped: no LPU unit");
        return Ok(());
    }
    let model = LanguageModel::load(&path)?;
    let prompt = "The capital of France is";
    let on = |kind| GenerateOptions {
        max_tokens: 16,
        placement: Placement::Kind(kind),
        ..GenerateOptions::default()
    };
    let got = generate(rt, &model, prompt, &on(UnitKind::Lpu), |_| {})?;
    let want = generate(reference, &model, prompt, &on(UnitKind::Cpu), |_| {})?;
    let differing = got.tokens.len().abs_diff(want.tokens.len())
        + got
            .tokens
            .iter()
            .zip(&want.tokens)
            .filter(|(a, b)| a != b)
            .count();
    verdict(name, differing as f64, 0.0, failures);
    println!(
        "    LPU: {prompt:?} -> {:?} ({:.0} tokens/s)",
        got.text,
        got.generation_tokens_per_second()
    );
    Ok(())
}
