//! What placing a task costs under dmda as units are added: 4, 16 and 64
//! units (one CPU unit and DSP units of `examples/custom_unit`, each with
//! its own memory node), with models that know every unit (the DSPs a
//! thousand times slower, so every task goes to the CPU unit and the other
//! workers stay parked while each decision still weighs every unit).
//! Criterion reports the time per batch of 10,000 one-element relus; the
//! growth from 4 to 64 units over 60 units is the decision cost per unit
//! and task. Work-stealing on the same runtimes is the baseline.

#[path = "../examples/custom_unit/dsp.rs"]
#[allow(dead_code)] // only the backend is used here, not its `fir` kernel
mod dsp;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xpu::perfmodel::Footprint;
use xpu::{ArgMeta, DType, Kernel, Mode, Policy, Runtime, UnaryOp};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TASKS: usize = 10_000;

fn runtime(units: usize, policy: Policy) -> Runtime {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .profiling(false)
        .policy(policy)
        .backend(Arc::new(dsp::DspBackend::new(units - 1, 64 << 20)))
        .build()
        .expect("runtime");
    let relu = Kernel::Unary(UnaryOp::Relu);
    let meta = |mode| ArgMeta {
        shape: &[1],
        dtype: DType::F32,
        mode,
    };
    let metas = [meta(Mode::Read), meta(Mode::Write)];
    let fp = Footprint::of(&relu, &metas);
    for unit in 0..units {
        let seconds = if unit == 0 { 1e-6 } else { 1e-3 };
        rt.perf_models().observe("relu", unit, &fp, seconds);
    }
    rt
}

fn decision_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("placement");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(TASKS as u64));
    for units in [4, 16, 64] {
        for policy in [Policy::Dmda, Policy::WorkStealing] {
            let rt = runtime(units, policy);
            let x = rt.tensor(&[1], vec![1.0f32]).expect("input");
            let outs: Vec<_> = (0..64).map(|_| rt.empty(&[1], DType::F32)).collect();
            let relu = Kernel::Unary(UnaryOp::Relu);
            group.bench_function(format!("{}/{units}-units", policy.as_str()), |b| {
                b.iter(|| {
                    for i in 0..TASKS {
                        rt.submit(&relu, &[x.read(), outs[i % outs.len()].write()])
                            .expect("submit");
                    }
                    rt.wait_all();
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decision_cost);
criterion_main!(benches);
