//! A unit kind from outside the crate: an embedder's DSP backend (see
//! `dsp.rs`) registered on the runtime builder. Its tasks get the same
//! dependencies, transfers and accounting as built-in units.
//!
//! Run: `cargo run --release --example custom_unit`

mod dsp;

use std::sync::Arc;

use xpu::{DType, Kernel, Placement, Runtime, TaskOptions, UnaryOp, UnitKind};

fn main() -> xpu::Result<()> {
    let dsp = Arc::new(dsp::DspBackend::new(1, 64 << 20));
    let rt = Runtime::builder().backend(dsp.clone()).build()?;
    for u in rt.units() {
        let emulated = if u.emulated { " (emulated)" } else { "" };
        println!(
            "unit {}: {} on node {}: {}{emulated}",
            u.id, u.kind, u.node, u.device
        );
    }

    let n = 1 << 16;
    let signal: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.01).sin()).collect();
    let x = rt.tensor(&[n], &signal)?;
    let taps = rt.tensor(&[4], [0.25f32, 0.25, 0.25, 0.25])?;
    let filtered = rt.zeros(&[n], DType::F32)?;
    let rectified = rt.zeros(&[n], DType::F32)?;

    // The filter can only run on the DSP; the ReLU is pinned to a CPU unit,
    // so the filtered signal must come back to host memory in between.
    rt.submit(&dsp::fir()?, &[x.read(), taps.read(), filtered.write()])?;
    let on_cpu = TaskOptions::default().on(Placement::Kind(UnitKind::Cpu));
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[filtered.read(), rectified.write()],
        on_cpu,
    )?;
    let out: Vec<f32> = rt.read(&rectified)?;

    let expected = |i: usize| {
        (0..4)
            .filter(|k| *k <= i)
            .map(|k| 0.25 * signal[i - k])
            .sum::<f32>()
            .max(0.0)
    };
    let worst = (0..n)
        .map(|i| (out[i] - expected(i)).abs())
        .fold(0.0f32, f32::max);
    println!("fir + relu over {n} samples: max error {worst:.2e} against a direct loop");
    println!("DSP launches: {}", dsp.launches());
    for t in rt.transfers() {
        println!(
            "transfer tensor {} node {} -> {}: {} bytes in {:.1} us",
            t.tensor,
            t.from,
            t.to,
            t.bytes,
            t.seconds * 1e6
        );
    }
    Ok(())
}
