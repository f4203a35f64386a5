//! The streaming pipeline of the `fpga_pipeline` example, shared with its
//! test: every frame goes through Gaussian blur, Sobel edges and a binary
//! threshold on one unit, two frames in flight: frame k+1 is submitted
//! before frame k is read back, so the runtime overlaps the upload of one
//! with the work on the other.

use std::time::Instant;

use xpu::{DType, Kernel, NodeId, Placement, Runtime, TaskOptions, Tensor, UnitId, UnitKind};

/// Gradient level above which a pixel is an edge.
pub const THRESHOLD: f64 = 96.0;
const BLUR: Kernel = Kernel::GaussianBlur { sigma: 1.0 };
const EDGES: Kernel = Kernel::Threshold {
    value: THRESHOLD,
    max: 255.0,
};

/// What a run measured.
pub struct Summary {
    pub frames: usize,
    pub seconds: f64,
    /// Bytes copied to and from the unit's memory node while timing.
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub transfers: usize,
    /// Edge pixels that differ from the CPU path (only where the gradient
    /// is within 1 of the threshold; any other difference is an error).
    pub differing_edges: usize,
    /// Fraction of pixels that are edges.
    pub edge_fraction: f64,
    /// The last frame's edge map.
    pub last_edges: Vec<u8>,
}

/// A synthetic camera frame: a bright disc moving over a shaded background
/// with a grid of darker bars, so every frame has edges in new places.
pub fn frame(index: usize, width: usize, height: usize) -> Vec<u8> {
    let t = index as f32;
    let (cx, cy) = (
        width as f32 * (0.3 + 0.4 * (t * 0.13).sin().abs()),
        height as f32 * (0.5 + 0.3 * (t * 0.07).cos()),
    );
    let radius = height as f32 / 5.0;
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let background = 40.0 + 80.0 * x as f32 / width as f32;
            let bars = if (x / 32 + y / 48) % 2 == 0 {
                0.0
            } else {
                30.0
            };
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            let disc = if d < radius { 120.0 } else { 0.0 };
            pixels.push((background - bars + disc).clamp(0.0, 255.0) as u8);
        }
    }
    pixels
}

/// Submits blur, Sobel and threshold of `input` on `place`; returns the
/// Sobel magnitude and the edge map.
fn submit(rt: &Runtime, input: &Tensor, place: Placement) -> xpu::Result<(Tensor, Tensor)> {
    let shape = input.shape().to_vec();
    let (blurred, gradient, edges) = (
        rt.empty(&shape, DType::U8),
        rt.empty(&shape, DType::U8),
        rt.empty(&shape, DType::U8),
    );
    let on = TaskOptions::default().on(place);
    rt.submit_with(&BLUR, &[input.read(), blurred.write()], on.clone())?;
    rt.submit_with(
        &Kernel::Sobel,
        &[blurred.read(), gradient.write()],
        on.clone(),
    )?;
    rt.submit_with(&EDGES, &[gradient.read(), edges.write()], on)?;
    Ok((gradient, edges))
}

/// Runs `frames` frames of `width` x `height` through the pipeline on
/// `unit` (memory node `node`), times it after a warm-up frame, and checks
/// every frame against a CPU unit.
pub fn run(
    rt: &Runtime,
    unit: UnitId,
    node: NodeId,
    frames: usize,
    width: usize,
    height: usize,
) -> Result<Summary, Box<dyn std::error::Error>> {
    if frames == 0 || width < 3 || height < 3 {
        return Err("need at least one frame of at least 3x3 pixels".into());
    }
    let inputs: Vec<Tensor> = (0..frames)
        .map(|i| rt.tensor(&[height, width], frame(i, width, height)))
        .collect::<xpu::Result<_>>()?;
    // Warm-up on the first frame: compiles (or loads) the image programs.
    let warm = submit(rt, &inputs[0], Placement::Unit(unit))?;
    rt.read::<u8>(&warm.1)?;
    let transfers_before = rt.transfers().len();

    // Double buffering: frame k+1 is submitted (its upload included)
    // before frame k is read back, so one frame moves while the other
    // computes, and no more than two frames are in flight. (Every frame's
    // tensors are kept for the check below.)
    let start = Instant::now();
    let mut outputs: Vec<(Tensor, Tensor)> = Vec::with_capacity(frames);
    let mut edge_maps: Vec<Vec<u8>> = Vec::with_capacity(frames);
    for input in &inputs {
        outputs.push(submit(rt, input, Placement::Unit(unit))?);
        if let Some((_, edges)) = outputs.len().checked_sub(2).map(|k| &outputs[k]) {
            edge_maps.push(rt.read::<u8>(edges)?);
        }
    }
    if let Some((_, edges)) = outputs.last() {
        edge_maps.push(rt.read::<u8>(edges)?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let moved = rt.transfers()[transfers_before..].to_vec();

    let mut differing_edges = 0;
    for (input, ((gradient, _), edges)) in inputs.iter().zip(outputs.iter().zip(&edge_maps)) {
        let (cpu_gradient, cpu_edges) = submit(rt, input, Placement::Kind(UnitKind::Cpu))?;
        let (want, got) = (rt.read::<u8>(&cpu_gradient)?, rt.read::<u8>(gradient)?);
        if let Some(i) = (0..want.len()).find(|&i| want[i].abs_diff(got[i]) > 1) {
            return Err(format!(
                "Sobel pixel {i}: {} on the unit, {} on the CPU",
                got[i], want[i]
            )
            .into());
        }
        for (i, (a, b)) in rt.read::<u8>(&cpu_edges)?.iter().zip(edges).enumerate() {
            if a != b {
                if (want[i] as f64 - THRESHOLD).abs() > 1.0 {
                    return Err(format!("edge pixel {i}: {b} on the unit, {a} on the CPU").into());
                }
                differing_edges += 1;
            }
        }
    }
    let pixels = frames * width * height;
    Ok(Summary {
        frames,
        seconds,
        bytes_in: moved.iter().filter(|t| t.to == node).map(|t| t.bytes).sum(),
        bytes_out: moved
            .iter()
            .filter(|t| t.from == node)
            .map(|t| t.bytes)
            .sum(),
        transfers: moved.len(),
        differing_edges,
        edge_fraction: edge_maps.iter().flatten().filter(|&&v| v > 0).count() as f64
            / pixels as f64,
        last_edges: edge_maps.last().cloned().unwrap_or_default(),
    })
}
