//! A small conv net's forward pass tiled over every unit found (see
//! `net.rs`): the runtime places each task on a unit that has its kernel
//! (CPU, GPU, FPGA/NPU, TPU, VPU: whatever this build and machine have),
//! moves the data each needs, and reports what every unit did. The result
//! is checked against the same pass on CPU units only.
//!
//! ```text
//! cargo run --release --features opencl --example tensor [-- BATCH]
//! ```

mod net;

use std::time::Instant;

use xpu::{Placement, Runtime, UnitKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let batch = match std::env::args().nth(1) {
        Some(b) => b
            .parse()
            .map_err(|_| format!("BATCH must be a number, got `{b}`"))?,
        None => 256,
    };
    let shape = net::Shape {
        batch,
        side: 32,
        hidden: 512,
        classes: 10,
        tile: 32,
    };
    let rt = Runtime::builder().build()?;
    for u in rt.units() {
        println!(
            "unit {}: {} ({}){}",
            u.id,
            u.kind,
            u.device,
            if u.emulated { ", emulated" } else { "" }
        );
    }
    let start = Instant::now();
    let got = net::forward(&rt, shape, Placement::Any)?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "\nforward pass, batch {batch}: {:.1} ms on every unit",
        seconds * 1e3
    );
    println!(
        "{:<5} {:<5} {:>7} {:>9} {:>9} {:>11}",
        "unit", "kind", "tasks", "busy ms", "GFLOP/s", "fetched"
    );
    for r in rt.report() {
        println!(
            "{:<5} {:<5} {:>7} {:>9.2} {:>9.2} {:>11}",
            r.unit,
            r.kind,
            r.tasks,
            r.busy_seconds * 1e3,
            r.gflops,
            r.bytes_fetched
        );
    }
    let reference = Runtime::builder().build()?;
    let want = net::forward(&reference, shape, Placement::Kind(UnitKind::Cpu))?;
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("\nlargest difference from the CPU-only pass: {worst:.2e} (tolerance 1e-4)");
    if worst > 1e-4 {
        return Err("the result differs from the CPU-only pass".into());
    }
    let rows: Vec<String> = got
        .chunks(shape.classes)
        .take(3)
        .map(|p| {
            let (class, prob) =
                p.iter()
                    .enumerate()
                    .fold((0, 0f32), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
            format!("class {class} ({prob:.3})")
        })
        .collect();
    println!("first images: {}", rows.join(", "));
    Ok(())
}
