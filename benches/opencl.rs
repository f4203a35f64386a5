//! FPGA and NPU units on OpenCL beside the CPU: each case runs on one CPU
//! unit using every core and on the first unit of each OpenCL kind, in the
//! same run, so the figures compare directly (`fpga`/`npu` vs `cpu` in the
//! names). The units come from `XPU_OPENCL_UNITS` (e.g. `fpga=0:0,npu=0:0`
//! on PoCL) or the mapping rule; without any it measures nothing.
//!
//! `cargo bench --features opencl --bench opencl`

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use xpu::{DType, Runtime, UnitKind};

fn opencl(c: &mut Criterion) {
    let rt = Runtime::builder().cpu_units(1).build().expect("runtime");
    let opencl: Vec<(usize, &str)> = [UnitKind::Fpga, UnitKind::Npu]
        .into_iter()
        .filter_map(|k| rt.first_unit(k).map(|id| (id, k.as_str())))
        .collect();
    if opencl.is_empty() {
        eprintln!("no OpenCL unit (set XPU_OPENCL_UNITS, e.g. fpga=0:0): nothing to measure");
        return;
    }
    let cpu = rt.first_unit(UnitKind::Cpu).expect("a CPU unit");
    let mut group = c.benchmark_group("opencl");
    group.sample_size(10);
    let cases = [
        ("gemm", vec![256, 1024], DType::F32),
        ("gemm", vec![512], DType::F16),
        ("add", vec![2048], DType::F32),
        ("softmax", vec![2048], DType::F32),
        ("gaussian_blur", vec![1024], DType::U8),
        ("sobel", vec![1024], DType::U8),
    ];
    for (kernel, sizes, dtype) in cases {
        for size in sizes {
            let label = |kind: &str| format!("{kind}-{dtype}");
            common::bench_on_unit(&mut group, &rt, cpu, &label("cpu"), kernel, size, dtype);
            for &(unit, kind) in &opencl {
                common::bench_on_unit(&mut group, &rt, unit, &label(kind), kernel, size, dtype);
            }
        }
    }
    group.finish();
}

criterion_group!(benches, opencl);
criterion_main!(benches);
