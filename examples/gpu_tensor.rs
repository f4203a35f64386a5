//! Tensor work on a GPU unit: a small MLP forward pass (GEMM, bias add,
//! GELU, softmax) and a tiled GEMM, each pinned to the first GPU unit, with
//! time, GFLOP/s and bytes moved. Results are checked against the CPU path.
//!
//! Run: `cargo run --release --example gpu_tensor`

use std::time::Instant;

use xpu::tiled::{self, TiledMatrix};
use xpu::{BinaryOp, DType, Kernel, Placement, Runtime, TaskOptions, Tensor, UnaryOp, UnitKind};

fn bytes_moved(rt: &Runtime) -> usize {
    rt.transfers().iter().map(|t| t.bytes).sum()
}

/// logits = softmax(gelu(x W1 + b1) W2 + b2), every task placed by `placement`.
fn mlp(
    rt: &Runtime,
    x: &Tensor,
    layers: &[(Tensor, Tensor)],
    placement: Placement,
) -> xpu::Result<Tensor> {
    let opts = TaskOptions::default().on(placement);
    let batch = x.shape()[0];
    let mut h = x.clone();
    for (i, (w, b)) in layers.iter().enumerate() {
        let width = w.shape()[1];
        let z = rt.empty(&[batch, width], DType::F32);
        rt.submit_with(
            &Kernel::gemm(),
            &[h.read(), w.read(), z.write()],
            opts.clone(),
        )?;
        let biased = rt.empty(&[batch, width], DType::F32);
        rt.submit_with(
            &Kernel::Binary(BinaryOp::Add),
            &[z.read(), b.read(), biased.write()],
            opts.clone(),
        )?;
        let out = rt.empty(&[batch, width], DType::F32);
        let last = i + 1 == layers.len();
        let kernel = if last {
            Kernel::Softmax
        } else {
            Kernel::Unary(UnaryOp::Gelu)
        };
        rt.submit_with(&kernel, &[biased.read(), out.write()], opts.clone())?;
        h = out;
    }
    Ok(h)
}

fn main() -> xpu::Result<()> {
    let rt = Runtime::builder().build()?;
    let Some(gpu) = rt.units().iter().find(|u| u.kind == UnitKind::Gpu) else {
        let why = rt
            .backends()
            .iter()
            .find(|b| b.name == "wgpu")
            .and_then(|b| b.reason.clone());
        println!("no GPU unit on this machine: {}", why.unwrap_or_default());
        return Ok(());
    };
    let emulated = if gpu.emulated { " (emulated)" } else { "" };
    println!("GPU unit {}: {}{emulated}", gpu.id, gpu.device);
    let on_gpu = Placement::Unit(gpu.id);
    let on_cpu = Placement::Kind(UnitKind::Cpu);

    let (batch, sizes) = (256, [512, 1024, 1024, 10]);
    let fill = |n: usize, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    };
    let x = rt.tensor(&[batch, sizes[0]], fill(batch * sizes[0], 1))?;
    let mut layers = Vec::new();
    for (l, pair) in sizes.windows(2).enumerate() {
        let w = rt.tensor(
            &[pair[0], pair[1]],
            fill(pair[0] * pair[1], l + 2)
                .iter()
                .map(|v| v * 0.1)
                .collect::<Vec<_>>(),
        )?;
        // The bias is broadcast over the batch by storing it per row.
        let b = rt.tensor(
            &[batch, pair[1]],
            fill(batch * pair[1], l + 7)
                .iter()
                .map(|v| v * 0.01)
                .collect::<Vec<_>>(),
        )?;
        layers.push((w, b));
    }
    let flops: f64 = sizes
        .windows(2)
        .map(|p| 2.0 * (batch * p[0] * p[1]) as f64)
        .sum();

    mlp(&rt, &x, &layers, on_gpu)?; // warm-up: pipelines and weight uploads
    rt.synchronize()?;
    let moved_before = bytes_moved(&rt);
    let start = Instant::now();
    let out = mlp(&rt, &x, &layers, on_gpu)?;
    rt.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let got: Vec<f32> = rt.read(&out)?;
    let want: Vec<f32> = rt.read(&mlp(&rt, &x, &layers, on_cpu)?)?;
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "MLP {batch}x{:?}: {:.3} ms, {:.1} GFLOP/s, {} bytes moved, max error vs CPU {err:.1e}",
        sizes,
        seconds * 1e3,
        flops / seconds * 1e-9,
        bytes_moved(&rt) - moved_before
    );

    let (n, tile) = (2048, 512);
    let a = TiledMatrix::from_fn(&rt, n, tile, |i, j| ((i + 2 * j) % 7) as f32 - 3.0)?;
    let b = TiledMatrix::from_fn(&rt, n, tile, |i, j| ((3 * i + j) % 5) as f32 - 2.0)?;
    let c = TiledMatrix::zeros(&rt, n, tile, DType::F32)?;
    let moved_before = bytes_moved(&rt);
    let start = Instant::now();
    tiled::gemm(&rt, &a, &b, &c, on_gpu)?;
    rt.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let moved = bytes_moved(&rt) - moved_before;
    let result: Vec<f32> = c.to_vec(&rt)?;
    let expected = |i: usize, j: usize| {
        (0..n)
            .map(|k| (((i + 2 * k) % 7) as f32 - 3.0) * (((3 * k + j) % 5) as f32 - 2.0))
            .sum::<f32>()
    };
    let sample = [(0, 0), (1, 2047), (1000, 17), (2047, 2047)];
    let exact = sample
        .iter()
        .all(|&(i, j)| result[i * n + j] == expected(i, j));
    println!(
        "tiled GEMM {n} (tile {tile}) on the GPU: {:.3} s including uploads, {:.1} GFLOP/s, {moved} bytes moved, spot checks {}",
        seconds,
        2.0 * (n as f64).powi(3) / seconds * 1e-9,
        if exact { "exact" } else { "WRONG" }
    );
    Ok(())
}
