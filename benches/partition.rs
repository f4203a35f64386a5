//! Partitions against tiles of their own, in one process, alternating:
//! tiled Cholesky on the 2-D blocks of one plain tensor against
//! `TiledMatrix`'s separate tiles (GFLOP/s of the factorisation; the
//! scatter before it and the gather after it timed on their own), and the
//! row blocks of a 4096x4096 f32 tensor written and reassembled on the
//! host (bytes copied).
//!
//! ```sh
//! cargo bench --bench partition                     # 4096, tile 256, 7 rounds
//! cargo bench --bench partition -- 2048 128 5       # size, tile, rounds
//! ```

use std::time::Instant;

use xpu::bench::{factor, TileLayout};
use xpu::tiled::Algorithm;
use xpu::{DType, Kernel, Mode, Partition, Runtime, HOST};

fn main() -> xpu::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, tile, rounds) = (
        args.first().copied().unwrap_or(4096),
        args.get(1).copied().unwrap_or(256),
        args.get(2).copied().unwrap_or(7),
    );
    // CPU units only, as examples/cholesky.rs: the comparison is of the
    // tiles' layout, not of placement.
    let rt = Runtime::builder()
        .device_discovery(false)
        .profiling(false)
        .build()?;
    factor(
        &rt,
        Algorithm::Cholesky,
        n,
        tile,
        DType::F32,
        TileLayout::Separate,
    )?;
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // Alternate which goes first, so that neither always runs warmer.
        let order = match round % 2 {
            0 => [TileLayout::Separate, TileLayout::Partitioned],
            _ => [TileLayout::Partitioned, TileLayout::Separate],
        };
        let mut runs =
            order.map(|layout| factor(&rt, Algorithm::Cholesky, n, tile, DType::F32, layout));
        if order[0] == TileLayout::Partitioned {
            runs.reverse();
        }
        let [separate, partitioned] = runs;
        let (separate, partitioned) = (separate?, partitioned?);
        let ratio = partitioned.gflops / separate.gflops;
        ratios.push(ratio);
        println!(
            "round {round}: cholesky {n} tile {tile} f32: separate tiles {:.1} GFLOP/s, partitioned {:.1} GFLOP/s ({ratio:.3}x); scatter {:.1} ms before, gather and read {:.1} ms after (separate tiles read back: {:.1} ms)",
            separate.gflops,
            partitioned.gflops,
            partitioned.split_seconds * 1e3,
            partitioned.assemble_seconds * 1e3,
            separate.assemble_seconds * 1e3,
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "partitioned / separate GFLOP/s over {rounds} rounds: median {:.3}x (min {:.3}, max {:.3})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
    row_blocks(&rt)
}

/// Row blocks of a 4096x4096 f32 tensor: each written by a task, then the
/// whole read back, with the bytes gathers and scatters copied.
fn row_blocks(rt: &Runtime) -> xpu::Result<()> {
    let n = 4096;
    let touch = Kernel::custom("touch_first", &[Mode::ReadWrite], |args| {
        args[0].as_f32_mut()?[0] += 1.0;
        Ok(())
    });
    let a = rt.zeros(&[n, n], DType::F32)?.named("A");
    let before = rt.memory_stats()[HOST].bytes_copied;
    let start = Instant::now();
    let rows = a.partition(rt, Partition::rows(256))?;
    for part in rows.iter() {
        rt.submit(&touch, &[part.rw()])?;
    }
    let whole = rt.read::<f32>(&a)?;
    let seconds = start.elapsed().as_secs_f64();
    let touched = (0..rows.len())
        .filter(|b| whole[b * 256 * n] == 1.0)
        .count();
    println!(
        "row blocks of {n}x{n} f32: {} blocks written and the whole read back in {:.1} ms, {} bytes copied between whole and blocks ({touched} blocks seen written)",
        rows.len(),
        seconds * 1e3,
        rt.memory_stats()[HOST].bytes_copied - before
    );
    Ok(())
}
