//! GPU units: GEMM GFLOP/s from 256 to 4096 and element-wise / reduction
//! bandwidth, each timed as one task on the first GPU unit (submission to
//! device completion). Without a GPU unit it reports that and measures nothing.
//! Throughput is in "elements" = FLOPs for GEMM and bytes for the others.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xpu::bench::bench_case;
use xpu::{DType, Placement, Runtime, TaskOptions, UnitKind};

fn gpu(c: &mut Criterion) {
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let Some(unit) = rt
        .units()
        .iter()
        .find(|u| u.kind == UnitKind::Gpu)
        .map(|u| u.id)
    else {
        eprintln!("no GPU unit: nothing to measure");
        return;
    };
    let mut group = c.benchmark_group("gpu");
    group.sample_size(10);
    let cases = [
        ("gemm", vec![256, 1024, 4096]),
        ("add", vec![1024, 4096]),
        ("relu", vec![4096]),
        ("sum", vec![4096]),
    ];
    for (kernel, sizes) in cases {
        for size in sizes {
            let case = bench_case(kernel, size, DType::F32).expect("case");
            let shapes: Vec<&[usize]> = case.shapes.iter().map(Vec::as_slice).collect();
            let amount = if kernel == "gemm" {
                case.kernel.flops(&shapes) as u64
            } else {
                case.shapes
                    .iter()
                    .map(|s| s.iter().product::<usize>() as u64 * 4)
                    .sum()
            };
            group.throughput(Throughput::Elements(amount));
            let accesses = case.accesses(&rt).expect("tensors");
            let opts = TaskOptions::default().on(Placement::Unit(unit));
            group.bench_function(BenchmarkId::new(kernel, size), |b| {
                b.iter(|| {
                    rt.submit_with(&case.kernel, &accesses, opts.clone())
                        .expect("submit");
                    rt.synchronize().expect("synchronize");
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, gpu);
criterion_main!(benches);
