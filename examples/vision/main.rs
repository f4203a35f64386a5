//! A photograph through an image pipeline placed across units: gray on a
//! CPU unit, Gaussian blur on the VPU, Sobel on the GPU (in f32), a
//! threshold on the VPU (see `across.rs`); each stage is checked against
//! the CPU path, and the edge map is written as `vision_edges.png`.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example vision [-- PHOTO.png]
//! ```
//!
//! Without a VPU (feature `candle`) or a GPU, those stages run on a CPU unit.

mod across;

use xpu::vision;
use xpu::Runtime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(p) => p.into(),
        None => vision::data_file("images/astronaut.png")?,
    };
    let photo = vision::load_png(&path)?;
    let rt = Runtime::builder().build()?;
    println!(
        "{}: {}x{} ({} channels)",
        path.display(),
        photo.shape[1],
        photo.shape[0],
        photo.shape.get(2).copied().unwrap_or(1)
    );
    let outcome = across::run(&rt, &photo)?;
    for (stage, unit, ms) in &outcome.stages {
        println!("  {stage:<10} on {unit:<12} {ms:>8.2} ms");
    }
    println!(
        "every stage checked against the CPU path: max difference {:.3} (tolerance 1)",
        outcome.worst
    );
    if outcome.worst > 1.0 {
        return Err("a stage differs from the CPU path".into());
    }
    vision::save_png("vision_edges.png", &outcome.edges)?;
    println!("edge map written to vision_edges.png");
    Ok(())
}
