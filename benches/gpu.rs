//! GPU units: GEMM GFLOP/s from 256 to 4096 and element-wise / reduction
//! bandwidth, each timed as one task on the first GPU unit (submission to
//! device completion). Without a GPU unit it reports that and measures nothing.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use xpu::{DType, Runtime, UnitKind};

fn gpu(c: &mut Criterion) {
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let Some(unit) = rt.first_unit(UnitKind::Gpu) else {
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
            common::bench_on_unit(&mut group, &rt, unit, "gpu", kernel, size, DType::F32);
        }
    }
    group.finish();
}

criterion_group!(benches, gpu);
criterion_main!(benches);
