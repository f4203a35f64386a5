//! SGEMM GFLOP/s at 256, 512, 1024 and 2048: the CPU kernel called directly
//! on all cores, and the same product through the runtime as a tiled DAG
//! (tiles of a quarter of the size, at least 128). Criterion's throughput is
//! in "elements" = floating-point operations, so its elem/s are FLOP/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xpu::backend::cpu::{gemm, GemmSpec};
use xpu::host::core_count;
use xpu::tiled::{self, TiledMatrix};
use xpu::{DType, Placement, Runtime};

fn sgemm(c: &mut Criterion) {
    // CPU units only: this bench compares the tiled DAG with the direct CPU call.
    let rt = Runtime::builder()
        .device_discovery(false)
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("sgemm");
    group.sample_size(10);
    for n in [256usize, 512, 1024, 2048] {
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        let a: Vec<f32> = (0..n * n).map(|e| (e % 17) as f32 / 17.0).collect();
        let b: Vec<f32> = (0..n * n).map(|e| (e % 13) as f32 / 13.0).collect();
        let mut out = vec![0f32; n * n];
        let spec = GemmSpec::plain(core_count());
        group.bench_function(BenchmarkId::new("direct", n), |bench| {
            bench.iter(|| gemm(&spec, &a, &[n, n], &b, &[n, n], &mut out).expect("gemm"));
        });
        let tile = (n / 4).max(128);
        let ta = TiledMatrix::from_fn(&rt, n, tile, |i, j| a[i * n + j]).expect("tiles");
        let tb = TiledMatrix::from_fn(&rt, n, tile, |i, j| b[i * n + j]).expect("tiles");
        let tc = TiledMatrix::zeros(&rt, n, tile, DType::F32).expect("tiles");
        group.bench_function(BenchmarkId::new("tiled-dag", n), |bench| {
            bench.iter(|| {
                tiled::gemm(&rt, &ta, &tb, &tc, Placement::Any).expect("submit");
                rt.wait_all();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, sgemm);
criterion_main!(benches);
