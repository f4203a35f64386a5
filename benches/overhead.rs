//! Per-task overhead of the runtime: 100,000 independent empty tasks, a
//! 100,000-task dependency chain, and tasks spread over 1,000 tensors, under
//! every policy. Criterion reports the time per batch and tasks/s; divide the
//! time by 100,000 for µs per task (`xpu bench --dag indep` prints it).
//!
//! Each submission allocates one task node that another thread frees; like
//! the `xpu` binary, this bench uses mimalloc, which handles that pattern
//! far better than glibc's allocator.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xpu::bench::{overhead, OverheadMode};
use xpu::{Policy, Runtime};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TASKS: usize = 100_000;

fn per_task_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("overhead");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(TASKS as u64));
    for policy in Policy::ALL {
        let rt = Runtime::builder()
            .policy(policy)
            .device_discovery(false)
            .build()
            .expect("runtime");
        for mode in [
            OverheadMode::Indep,
            OverheadMode::Chain,
            OverheadMode::Spread,
        ] {
            let name = format!("{:?}/{}", mode, policy.as_str()).to_lowercase();
            group.bench_function(name, |b| {
                b.iter(|| overhead(&rt, mode, TASKS).expect("overhead run"));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, per_task_overhead);
criterion_main!(benches);
