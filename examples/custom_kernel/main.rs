//! A kernel from outside the crate on every unit that can run it: `axpy`
//! (`axpy.rs`) has CPU, WGSL and OpenCL C implementations. It is
//! registered once (its WGSL checked by naga, its device programs built on
//! every unit), then run on each unit in turn and compared with the CPU
//! result. Units whose backend has no implementation (the candle units)
//! are listed as such.
//!
//! ```text
//! cargo run --release --example custom_kernel
//! XPU_OPENCL_UNITS=fpga=0:0,npu=0:0 cargo run --release --features opencl --example custom_kernel
//! ```

mod axpy;

use xpu::{Error, Placement, Runtime, TaskOptions};

/// Largest relative difference from the CPU result accepted: every unit
/// computes one fused or unfused multiply-add per element in f32.
const TOLERANCE: f32 = 1e-6;

fn main() -> xpu::Result<()> {
    let rt = Runtime::builder().build()?;
    let kernel = rt.register(axpy::axpy(2.5))?;
    let n = 100_003;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin()).collect();
    let y0: Vec<f32> = (0..n).map(|i| (i % 17) as f32 - 8.0).collect();
    let xt = rt.tensor(&[n], x.clone())?;
    let expected: Vec<f32> = x.iter().zip(&y0).map(|(x, y)| 2.5 * x + y).collect();

    let mut ran = 0;
    for unit in rt.units() {
        let y = rt.tensor(&[n], y0.clone())?;
        let placed = TaskOptions::default().on(Placement::Unit(unit.id));
        match rt.submit_with(&kernel, &[xt.read(), y.rw()], placed) {
            Err(Error::NoCapableUnit { .. }) => {
                println!(
                    "unit {} {:<5} no implementation: not placed here",
                    unit.id, unit.kind
                );
                continue;
            }
            other => other?,
        };
        let got = rt.read::<f32>(&y)?;
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
            .fold(0.0f32, f32::max);
        println!(
            "unit {} {:<5} {:<40} max relative error {worst:.1e}",
            unit.id, unit.kind, unit.device
        );
        if worst > TOLERANCE {
            return Err(Error::Config(format!(
                "unit {} differs from the CPU result by {worst:e} (tolerance {TOLERANCE:e})",
                unit.id
            )));
        }
        ran += 1;
    }
    println!("axpy ran on {ran} units, each within {TOLERANCE:e} of the CPU result");
    Ok(())
}
