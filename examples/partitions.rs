//! One tensor, many tasks: a plain matrix factored by tiled Cholesky on its
//! 2-D blocks, then an image filtered in bands with halos across units and
//! assembled, each checked against the same work done whole.
//!
//! ```text
//! cargo run --release --example partitions [-- SIZE TILE]
//! ```

use xpu::bench::spd_element;
use xpu::tiled::{self, TiledMatrix};
use xpu::vision::{parse_pipeline, submit_banded};
use xpu::{DType, Runtime, TaskOptions, HOST};

fn main() -> xpu::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, tile) = (
        args.first().copied().unwrap_or(1024),
        args.get(1).copied().unwrap_or(128),
    );
    let rt = Runtime::builder().build()?;

    // A plain n x n tensor; its tiles are its blocks, no copy by hand.
    let data: Vec<f64> = (0..n * n).map(|e| spd_element(n, e / n, e % n)).collect();
    let a = rt.tensor(&[n, n], &data)?.named("A");
    let tiles = TiledMatrix::partition(&rt, &a, tile)?;
    let tasks = tiled::cholesky(&rt, &tiles)?;
    let l = rt.read::<f64>(&a)?; // the tiles gathered back into A
                                 // Check one column of L L^T against A.
    let j = n / 2;
    let worst = (0..n)
        .map(|i| {
            let dot: f64 = (0..=i.min(j)).map(|k| l[i * n + k] * l[j * n + k]).sum();
            (dot - data[i * n + j]).abs()
        })
        .fold(0.0, f64::max);
    println!(
        "cholesky of a plain {n}x{n} tensor in {tile}x{tile} blocks: {tasks} tasks; column {j} of L L^T off A by {worst:.1e}; {} bytes copied by scatter and gather",
        rt.memory_stats()[HOST].bytes_copied
    );

    // An image in 4 bands with the halo blur and Sobel read around a pixel.
    let (h, w) = (480, 640);
    let pixels: Vec<u8> = (0..h * w).map(|i| ((i % w) ^ (i / w)) as u8).collect();
    let image = rt.tensor(&[h, w], &pixels)?.named("image");
    let stages = parse_pipeline("blur=1.5,sobel,threshold=64")?;
    let banded = submit_banded(&rt, &stages, &image, 4, &TaskOptions::default())?;
    let mut whole = image.clone();
    for stage in &stages {
        let out = rt.empty(&[h, w], DType::U8);
        rt.submit(&stage.kernel, &[whole.read(), out.write()])?;
        whole = out;
    }
    let (got, want) = (rt.read::<u8>(&banded)?, rt.read::<u8>(&whole)?);
    let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    println!(
        "{w}x{h} image in 4 bands: {differ} of {} pixels differ from the whole image's",
        h * w
    );
    Ok(())
}
