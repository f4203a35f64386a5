//! Tiled Cholesky, the classic task-runtime benchmark, through the runtime:
//! POTRF, TRSM, SYRK and GEMM tiles with dependencies worked out from their
//! accesses. Prints GFLOP/s (n^3/3 flops) and the residual ||A - L L^T|| / ||A||.
//!
//! The matrix is one plain tensor cut into tiles by a partition
//! (`TiledMatrix::partition`); `separate` as the fourth argument holds the
//! tiles as tensors of their own instead.
//!
//! Run: `cargo run --release --example cholesky -- [SIZE] [TILE] [f32|f64] [partitioned|separate]`

use xpu::bench::{self, TileLayout};
use xpu::{tiled::Algorithm, DType, Runtime};

fn main() -> xpu::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse = |i: usize, default: usize| -> xpu::Result<usize> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| xpu::Error::Config(format!("`{s}` is not a size")))
        })
    };
    let (n, tile) = (parse(0, 2048)?, parse(1, 256)?);
    let dtype = args.get(2).map_or(Ok(DType::F32), |s| DType::parse(s))?;
    let layout = args
        .get(3)
        .map_or(Ok(TileLayout::Partitioned), |s| TileLayout::parse(s))?;
    // CPU units only: POTRF, TRSM and SYRK run on CPUs anyway, and without a
    // performance model the policies would hand GEMM tiles to a GPU even
    // when it is a slow emulated one.
    let rt = Runtime::builder().device_discovery(false).build()?;
    let run = bench::factor(&rt, Algorithm::Cholesky, n, tile, dtype, layout)?;
    println!(
        "cholesky {n} tile {tile} {dtype} ({layout:?} tiles): {} tasks in {:.3} s = {:.1} GFLOP/s, residual {:.2e}",
        run.tasks, run.seconds, run.gflops, run.residual
    );
    if layout == TileLayout::Partitioned {
        println!(
            "scatter into the tiles {:.1} ms before, gather and read back {:.1} ms after",
            run.split_seconds * 1e3,
            run.assemble_seconds * 1e3
        );
    }
    Ok(())
}
