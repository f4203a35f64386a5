//! Tiled Cholesky across MPI ranks: each rank owns the tiles a 2-D
//! block-cyclic distribution gives it, runs the tasks that write them, and
//! receives the tiles it reads from their owners (`xpu::cluster::ranks`).
//!
//!   cargo build --release --features mpi --example mpi_cholesky
//!   mpirun --oversubscribe -np 2 target/release/examples/mpi_cholesky --n 2048 --tile 256 --check
//!
//! (As root, OpenMPI also wants OMPI_ALLOW_RUN_AS_ROOT=1 and
//! OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.) Options: `--n N` (matrix size,
//! default 1024), `--tile T` (default 128), `--cpu-units N` (that many
//! CPU units per rank and no devices; default: every unit), `--f32`
//! (single precision; default double), `--check` (rank 0 also
//! factors the matrix alone and compares), `--trace DIR` (each rank
//! writes its Chrome trace to DIR/rank-R.json; `xpu trace DIR/*.json
//! --merge all.json` lines them up). Rank 0 prints the time, the rate, and
//! the tiles moved against the fewest the distribution allows.

use std::time::Instant;

use xpu::cluster::mpi::Mpi;
use xpu::cluster::ranks::Ranks;
use xpu::tiled::{self, Algorithm, Distribution, RankTiledMatrix, TiledMatrix};
use xpu::{Element, Error, Result, Runtime};

struct Options {
    n: usize,
    tile: usize,
    cpu_units: Option<usize>,
    f32: bool,
    check: bool,
    trace: Option<std::path::PathBuf>,
}

fn options() -> Result<Options> {
    let mut o = Options {
        n: 1024,
        tile: 128,
        cpu_units: None,
        f32: false,
        check: false,
        trace: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| Error::Config(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--n" => o.n = number("--n", &value("--n")?)?,
            "--tile" => o.tile = number("--tile", &value("--tile")?)?,
            "--cpu-units" => o.cpu_units = Some(number("--cpu-units", &value("--cpu-units")?)?),
            "--check" => o.check = true,
            "--f32" => o.f32 = true,
            "--trace" => o.trace = Some(value("--trace")?.into()),
            "--" => {}
            other => return Err(Error::Config(format!(
                "unknown option `{other}` (--n N, --tile T, --cpu-units N, --f32, --check, --trace DIR)"
            ))),
        }
    }
    Ok(o)
}

fn number(name: &str, text: &str) -> Result<usize> {
    text.parse()
        .map_err(|_| Error::Config(format!("{name} takes a whole number, not `{text}`")))
}

/// A symmetric positive definite matrix: diagonally dominant.
fn spd<T: Element>(n: usize) -> impl Fn(usize, usize) -> T + Copy {
    move |i, j| {
        T::from_f64(if i == j {
            n as f64 + 1.0
        } else {
            1.0 / (1.0 + i.abs_diff(j) as f64)
        })
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mpi_cholesky: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let o = options()?;
    let transport = Mpi::init()?;
    let rt = match o.cpu_units {
        Some(units) => Runtime::builder()
            .cpu_units(units)
            .device_discovery(false)
            .build()?,
        None => Runtime::builder().build()?,
    };
    let ranks = Ranks::new(rt, transport)?;
    if o.f32 {
        factor::<f32>(&o, &ranks, 1e-4)?;
    } else {
        factor::<f64>(&o, &ranks, 1e-9)?;
    }
    ranks.finish()
}

/// Factors the matrix in `T` over `ranks`, reports, and with `--check`
/// compares with one process to `tolerance` (relative).
fn factor<T: Element>(o: &Options, ranks: &Ranks, tolerance: f64) -> Result<()> {
    let (rank, size) = (ranks.rank(), ranks.ranks());
    let distribution = Distribution::block_cyclic(size);
    let a = RankTiledMatrix::from_fn(ranks, o.n, o.tile, distribution, spd::<T>(o.n))?;
    let start = Instant::now();
    let tasks = tiled::cholesky_on_ranks(ranks, &a)?;
    ranks.wait_all();
    let seconds = start.elapsed().as_secs_f64();
    let moved = ranks.traffic();
    if let Some(dir) = &o.trace {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        ranks
            .runtime()
            .profile()
            .write_chrome_trace(dir.join(format!("rank-{rank}.json")))?;
    }
    let result = a.to_vec::<T>(ranks)?;
    if rank == 0 {
        let flops = (o.n as f64).powi(3) / 3.0;
        let minimum = Algorithm::Cholesky.min_transfers(o.n / o.tile, distribution);
        println!(
            "mpi_cholesky: n={} tile={} {}, {size} ranks ({distribution:?}), {tasks} tasks: {seconds:.3} s, {:.1} GFLOP/s",
            o.n,
            o.tile,
            T::DTYPE,
            flops / seconds / 1e9
        );
        println!(
            "rank 0 sent {} tiles ({} bytes) and received {}; the distribution needs at least {minimum} in all",
            moved.copies_sent, moved.bytes_sent, moved.copies_received
        );
    }
    if o.check && rank == 0 {
        let rt = Runtime::builder().build()?;
        let alone = TiledMatrix::from_fn(&rt, o.n, o.tile, spd::<T>(o.n))?;
        tiled::cholesky(&rt, &alone)?;
        let expected = alone.to_vec::<T>(&rt)?;
        let worst = result
            .iter()
            .zip(&expected)
            .map(|(g, e)| (g.to_f64() - e.to_f64()).abs() / e.to_f64().abs().max(1.0))
            .fold(0.0f64, f64::max);
        println!(
            "check: largest relative difference from one process {worst:.2e} (tolerance {tolerance:.0e})"
        );
        if worst > tolerance {
            return Err(Error::Config(format!(
                "the result differs from one process's by {worst:.2e}"
            )));
        }
    }
    println!(
        "rank {rank}: sent {} tiles, received {}",
        moved.copies_sent, moved.copies_received
    );
    Ok(())
}
