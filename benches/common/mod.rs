//! Shared by the per-backend benches: one kernel case timed as one task on
//! one unit, from submission to device completion.
//! Throughput is in "elements" = FLOPs for GEMM and bytes for the others.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Throughput};
use xpu::bench::bench_case;
use xpu::{DType, Placement, Runtime, TaskOptions, UnitId};

/// Benchmarks `kernel` at `size` in `dtype` on `unit`, named `label/size`.
pub fn bench_on_unit(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    unit: UnitId,
    label: &str,
    kernel: &str,
    size: usize,
    dtype: DType,
) {
    let case = bench_case(kernel, size, dtype).expect("case");
    let shapes: Vec<&[usize]> = case.shapes.iter().map(Vec::as_slice).collect();
    let amount = if kernel == "gemm" {
        case.kernel.flops(&shapes) as u64
    } else {
        case.shapes
            .iter()
            .map(|s| (s.iter().product::<usize>() * dtype.size()) as u64)
            .sum()
    };
    group.throughput(Throughput::Elements(amount));
    let accesses = case.accesses(rt).expect("tensors");
    let opts = TaskOptions::default().on(Placement::Unit(unit));
    group.bench_function(BenchmarkId::new(format!("{kernel}/{label}"), size), |b| {
        b.iter(|| {
            rt.submit_with(&case.kernel, &accesses, opts.clone())
                .expect("submit");
            rt.synchronize().expect("synchronize");
        });
    });
}
