//! The tiled Cholesky's kernels on one core, through the CPU backend as a
//! worker launches them: a 256 x 256 f32 GEMM (`C -= A B^T`), SYRK and
//! TRSM, on tiles already in cache ("hot": the same tiles each time) and on
//! tiles cycled through 32 MiB ("cold": what a factorisation larger than
//! the caches meets), and POTRF in cache. The gap between hot and cold is
//! what the backend's cache warming (`backend/cpu/warm.rs`) has left. Criterion's
//! throughput is in "elements" = floating-point operations.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use xpu::backend::cpu::CpuBackend;
use xpu::{Arg, ArgData, Backend, DType, Kernel, Mode};

const N: usize = 256;
/// Tiles per operand role in the cold case: 128 x 256 KiB = 32 MiB.
const COLD_TILES: usize = 128;

fn tile(seed: usize) -> Vec<u8> {
    let values: Vec<f32> = (0..N * N)
        .map(|i| ((i * 7 + seed * 13) % 101) as f32 / 101.0)
        .collect();
    bytemuck::cast_slice(&values).to_vec()
}

/// The identity as TRSM's triangle: a tile solved against it thousands of
/// times keeps its values (any other triangle scales them towards
/// subnormals or infinity), and the solver does the same work for any
/// triangle.
fn identity() -> Vec<u8> {
    let values: Vec<f32> = (0..N * N)
        .map(|e| if e / N == e % N { 1.0 } else { 0.0 })
        .collect();
    bytemuck::cast_slice(&values).to_vec()
}

fn arg<'a>(index: usize, mode: Mode, data: ArgData<'a>) -> Arg<'a> {
    const SHAPE: [usize; 2] = [N, N];
    Arg {
        index,
        name: None,
        shape: &SHAPE,
        dtype: DType::F32,
        mode,
        data,
    }
}

fn tiles(c: &mut Criterion) {
    let cpu = CpuBackend::new(xpu::host::core_count());
    let kernels = [
        (
            "gemm",
            Kernel::Gemm {
                trans_a: false,
                trans_b: true,
                alpha: -1.0,
                beta: 1.0,
            },
            2.0,
        ),
        ("syrk", Kernel::Syrk, 1.0),
        ("trsm", Kernel::Trsm, 1.0),
    ];
    let triangle = identity();
    let mut group = c.benchmark_group("cholesky-tiles");
    group.sample_size(20);
    for (count, case) in [(2, "hot"), (COLD_TILES, "cold")] {
        let inputs: Vec<Vec<u8>> = (0..count).map(tile).collect();
        let mut outputs: Vec<Vec<u8>> = (0..count).map(|i| tile(i + count)).collect();
        for (name, kernel, flops_per_n3) in &kernels {
            group.throughput(Throughput::Elements(
                (flops_per_n3 * (N as f64).powi(3)) as u64,
            ));
            let mut next = 0;
            group.bench_function(BenchmarkId::new(*name, case), |bench| {
                bench.iter(|| {
                    let (i, j) = (next % count, (next * 7 + 3) % count);
                    next += 1;
                    let out = ArgData::HostMut(&mut outputs[i]);
                    let mut args = match kernel {
                        Kernel::Gemm { .. } => vec![
                            arg(0, Mode::Read, ArgData::Host(&inputs[i])),
                            arg(1, Mode::Read, ArgData::Host(&inputs[j])),
                            arg(2, Mode::ReadWrite, out),
                        ],
                        Kernel::Syrk => vec![
                            arg(0, Mode::Read, ArgData::Host(&inputs[i])),
                            arg(1, Mode::ReadWrite, out),
                        ],
                        _ => vec![
                            arg(0, Mode::Read, ArgData::Host(&triangle)),
                            arg(1, Mode::ReadWrite, out),
                        ],
                    };
                    cpu.launch(0, kernel, &mut args).expect("kernel");
                });
            });
        }
    }
    // POTRF factors in place: each call gets a fresh copy of one
    // positive definite tile (the copy not timed), in cache.
    let spd: Vec<f32> = (0..N * N)
        .map(|e| match (e / N, e % N) {
            (i, j) if i == j => N as f32,
            (i, j) => 1.0 / (i + j + 1) as f32,
        })
        .collect();
    let spd: Vec<u8> = bytemuck::cast_slice(&spd).to_vec();
    group.throughput(Throughput::Elements((N as f64).powi(3) as u64 / 3));
    group.bench_function(BenchmarkId::new("potrf", "hot"), |bench| {
        bench.iter_batched_ref(
            || spd.clone(),
            |tile| {
                let mut args = [arg(0, Mode::ReadWrite, ArgData::HostMut(tile))];
                cpu.launch(0, &Kernel::Potrf, &mut args).expect("potrf");
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, tiles);
criterion_main!(benches);
