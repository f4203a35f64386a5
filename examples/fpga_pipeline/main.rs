//! A streaming image pipeline on the FPGA unit: every frame of a batch goes
//! through Gaussian blur, Sobel edges and a binary threshold, all placed on
//! the FPGA (see `stream.rs`). Prints the time per frame, the throughput
//! and the bytes moved to and from the FPGA's memory, checks every frame
//! against the CPU path, and writes the last edge map as `fpga_edges.pgm`
//! in the temporary directory.
//!
//! ```text
//! XPU_OPENCL_UNITS=fpga=0:0 cargo run --release --features opencl --example fpga_pipeline -- [FRAMES] [WIDTH] [HEIGHT]
//! ```
//!
//! On a machine without an FPGA, `XPU_OPENCL_UNITS=fpga=0:0` presents the
//! first OpenCL device (e.g. PoCL's CPU device) as an emulated FPGA unit.

mod stream;

use xpu::{Runtime, UnitKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, String> {
        std::env::args().nth(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| format!("argument {i} must be a number, got `{s}`"))
        })
    };
    let (frames, width, height) = (arg(1, 32)?, arg(2, 640)?, arg(3, 480)?);
    let rt = Runtime::builder().build()?;
    let Some(fpga) = rt.units().iter().find(|u| u.kind == UnitKind::Fpga) else {
        let why = rt
            .backends()
            .iter()
            .find(|b| b.name == "opencl")
            .and_then(|b| b.reason.clone())
            .unwrap_or_else(|| "built without the `opencl` feature".into());
        return Err(format!(
            "no FPGA unit ({why}); present an OpenCL device as one with XPU_OPENCL_UNITS=fpga=0:0"
        )
        .into());
    };
    println!(
        "FPGA unit {}: {}{}",
        fpga.id,
        fpga.device,
        if fpga.emulated { " (emulated)" } else { "" }
    );
    println!(
        "{frames} frames of {width}x{height} u8: blur (sigma 1) -> Sobel -> threshold {}",
        stream::THRESHOLD
    );
    let s = stream::run(&rt, fpga.id, fpga.node, frames, width, height)?;
    let megapixels = (s.frames * width * height) as f64 / 1e6;
    println!(
        "time: {:.2} ms per frame, {:.1} frames/s, {:.1} megapixels/s",
        s.seconds * 1e3 / s.frames as f64,
        s.frames as f64 / s.seconds,
        megapixels / s.seconds
    );
    println!(
        "moved: {:.2} MB to the FPGA, {:.2} MB back, in {} transfers ({:.1} bytes per pixel)",
        s.bytes_in as f64 / 1e6,
        s.bytes_out as f64 / 1e6,
        s.transfers,
        (s.bytes_in + s.bytes_out) as f64 / (megapixels * 1e6)
    );
    println!(
        "checked against the CPU path: gradients within 1, {} edge pixels on the threshold differ; \
         {:.1}% of pixels are edges",
        s.differing_edges,
        100.0 * s.edge_fraction
    );
    let mut pgm = format!("P5\n{width} {height}\n255\n").into_bytes();
    pgm.extend_from_slice(&s.last_edges);
    let path = std::env::temp_dir().join("fpga_edges.pgm");
    std::fs::write(&path, pgm)?;
    println!("last edge map written to {}", path.display());
    Ok(())
}
