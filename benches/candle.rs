//! TPU and VPU units on candle beside a CPU unit, in one run: GEMM per
//! dtype (f32, f16, bf16) on the TPU, and the image kernels on u8 frames on
//! the VPU (throughput in bytes; megapixels/s = bytes/s / (bytes per pixel
//! of input + output)).
//!
//! `cargo bench --bench candle`

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use xpu::{DType, Runtime, UnitKind};

fn candle(c: &mut Criterion) {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(true)
        .build()
        .expect("runtime");
    let (Some(cpu), Some(tpu), Some(vpu)) = (
        rt.first_unit(UnitKind::Cpu),
        rt.first_unit(UnitKind::Tpu),
        rt.first_unit(UnitKind::Vpu),
    ) else {
        eprintln!("no TPU and VPU units (this build has no candle feature): nothing to measure");
        return;
    };
    let mut group = c.benchmark_group("candle");
    group.sample_size(10);
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        for size in [256, 1024] {
            let label = |kind: &str| format!("{kind}-{dtype}");
            common::bench_on_unit(&mut group, &rt, cpu, &label("cpu"), "gemm", size, dtype);
            common::bench_on_unit(&mut group, &rt, tpu, &label("tpu"), "gemm", size, dtype);
        }
    }
    for kernel in ["gaussian_blur", "sobel", "resize", "threshold"] {
        common::bench_on_unit(&mut group, &rt, cpu, "cpu-u8", kernel, 1024, DType::U8);
        common::bench_on_unit(&mut group, &rt, vpu, "vpu-u8", kernel, 1024, DType::U8);
    }
    group.finish();
}

criterion_group!(benches, candle);
criterion_main!(benches);
