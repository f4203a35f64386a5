//! `xpu vision IMG --frames N`: frames made from one image streamed through
//! a pipeline, two in flight, timed, the bytes moved counted, and every
//! frame checked stage by stage against the CPU path (each frame's tensors
//! are kept until then).

use std::collections::VecDeque;
use std::time::Instant;

use xpu::vision::{Pixels, Stage};
use xpu::{Error, Runtime, TaskOptions, Tensor};

use crate::vision::{pipeline_tensors, read_result, submit_stages};

/// Frame `k`: the image with every row rotated by `7 k` pixels, so that
/// each frame differs from the last and has the same size.
fn frame(image: &Pixels, k: usize) -> Vec<u8> {
    let (width, channels) = (image.shape[1], image.shape.get(2).copied().unwrap_or(1));
    let row_bytes = width * channels;
    let shift = (7 * k % width.max(1)) * channels;
    let mut out = image.data.clone();
    for row in out.chunks_mut(row_bytes.max(1)) {
        row.rotate_left(shift.min(row.len()));
    }
    out
}

/// Submits every stage on a fresh input tensor holding `pixels`: the
/// tensors, input first.
fn submit(
    rt: &Runtime,
    stages: &[Stage],
    shape: &[usize],
    pixels: &[u8],
    on: &TaskOptions,
) -> xpu::Result<Vec<Tensor>> {
    let tensors = pipeline_tensors(rt, stages, rt.tensor(shape, pixels)?)?;
    submit_stages(rt, stages, &tensors, on)?;
    Ok(tensors)
}

/// Bytes copied between memory nodes so far, all directions.
fn bytes_moved(rt: &Runtime) -> u64 {
    rt.memory_stats().iter().map(|n| n.bytes_in).sum()
}

pub fn run(
    rt: &Runtime,
    stages: &[Stage],
    image: &Pixels,
    on: &TaskOptions,
    frames: usize,
) -> xpu::Result<()> {
    let moved_before = bytes_moved(rt);
    let start = Instant::now();
    let mut in_flight: VecDeque<Vec<Tensor>> = VecDeque::with_capacity(2);
    // Every frame's tensors are kept for the check after timing.
    let mut streamed = Vec::with_capacity(frames);
    for k in 0..frames {
        in_flight.push_back(submit(rt, stages, &image.shape, &frame(image, k), on)?);
        if in_flight.len() == 2 {
            if let Some(done) = in_flight.pop_front() {
                read_result(rt, &done)?;
                streamed.push(done);
            }
        }
    }
    for done in in_flight {
        read_result(rt, &done)?;
        streamed.push(done);
    }
    let seconds = start.elapsed().as_secs_f64();
    let moved = bytes_moved(rt) - moved_before;
    let pixels = frames * image.shape[0] * image.shape[1];
    println!(
        "streamed {frames} frames, two in flight: {:.1} frames/s ({:.2} ms per frame, {:.1} megapixels/s)",
        frames as f64 / seconds,
        seconds * 1e3 / frames as f64,
        pixels as f64 / seconds * 1e-6
    );
    println!(
        "moved {:.2} MB between memory nodes ({:.2} bytes per pixel)",
        moved as f64 / 1e6,
        moved as f64 / pixels as f64
    );
    let mut worst = 0u8;
    for (k, tensors) in streamed.iter().enumerate() {
        let diff = crate::vision::check_on_cpu(rt, stages, tensors)
            .map_err(|e| Error::Config(format!("frame {k}: {e}")))?;
        worst = worst.max(diff);
    }
    println!("every frame checked against the CPU path: max difference {worst} (tolerance 1)");
    Ok(())
}
