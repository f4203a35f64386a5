//! Per-task overhead of the runtime: 100,000 independent empty tasks, a
//! 100,000-task dependency chain, and tasks spread over 1,000 tensors, under
//! every policy, with the profiler recording (the default); and the same
//! under work-stealing with profiling off (`.../unprofiled`), which shows
//! what recording costs. Criterion reports the time per batch and tasks/s;
//! divide the time by 100,000 for µs per task (`xpu bench --dag indep`
//! prints it).
//!
//! Each submission allocates one task node that another thread frees; like
//! the `xpu` binary, this bench uses mimalloc, which handles that pattern
//! far better than glibc's allocator.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
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
    let configs = Policy::ALL
        .into_iter()
        .map(|p| (p, true))
        .chain([(Policy::WorkStealing, false)]);
    for (policy, profiling) in configs {
        let rt = Runtime::builder()
            .policy(policy)
            .device_discovery(false)
            .profiling(profiling)
            .build()
            .expect("runtime");
        for mode in [
            OverheadMode::Indep,
            OverheadMode::Chain,
            OverheadMode::Spread,
        ] {
            let suffix = if profiling { "" } else { "/unprofiled" };
            let name = format!("{:?}/{}{suffix}", mode, policy.as_str()).to_lowercase();
            group.bench_function(name, |b| {
                // Each run starts with an empty profile, so records do not
                // pile up over the iterations.
                b.iter_batched(
                    || rt.clear_profile(),
                    |()| overhead(&rt, mode, TASKS).expect("overhead run"),
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, per_task_overhead);
criterion_main!(benches);
