//! The cost per task of a graph spread over MPI ranks, measured as the
//! single-process `xpu bench --dag spread` does: empty tasks, task `i`
//! read-writing tensor `i mod 1000`, whose owners alternate between the
//! ranks, so no tensor ever moves. Every rank plans every task and runs
//! its own.
//!
//!   cargo build --release --features mpi --example mpi_overhead
//!   mpirun --oversubscribe -np 2 target/release/examples/mpi_overhead --tasks 1000000 --cpu-units 1
//!   mpirun -np 1 target/release/examples/mpi_overhead --tasks 1000000 --cpu-units 2
//!
//! Rank 0 prints the wall time per task (over every task of the graph).

use std::time::Instant;

use xpu::cluster::mpi::Mpi;
use xpu::cluster::ranks::Ranks;
use xpu::{Error, Kernel, Result, Runtime};

fn main() {
    if let Err(e) = run() {
        eprintln!("mpi_overhead: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut tasks = 100_000usize;
    let mut cpu_units = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| Error::Config(format!("{arg} needs a value")))?;
        let number = value
            .parse()
            .map_err(|_| Error::Config(format!("{arg} takes a whole number, not `{value}`")))?;
        match arg.as_str() {
            "--tasks" => tasks = number,
            "--cpu-units" => cpu_units = number,
            other => {
                return Err(Error::Config(format!(
                    "unknown option `{other}` (--tasks N, --cpu-units N)"
                )))
            }
        }
    }
    let transport = Mpi::init()?;
    let rt = Runtime::builder()
        .cpu_units(cpu_units)
        .device_discovery(false)
        .build()?;
    let ranks = Ranks::new(rt, transport)?;
    let size = ranks.ranks();
    let tensors = (0..1000)
        .map(|i| ranks.tensor(i % size, &[16], || vec![0.0f32; 16]))
        .collect::<Result<Vec<_>>>()?;
    let noop = Kernel::Noop;
    let start = Instant::now();
    for i in 0..tasks {
        ranks.submit(&noop, &[tensors[i % tensors.len()].rw()])?;
    }
    ranks.wait_all();
    let seconds = start.elapsed().as_secs_f64();
    let moved = ranks.traffic();
    if ranks.rank() == 0 {
        println!(
            "mpi_overhead: {tasks} empty tasks on {size} ranks x {cpu_units} CPU units: {seconds:.3} s, {:.3} us per task; rank 0 sent {} copies",
            seconds * 1e6 / tasks.max(1) as f64,
            moved.copies_sent
        );
    }
    ranks.finish()
}
