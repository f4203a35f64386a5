//! Per-task overhead through the C ABI against the Rust API, in the same
//! run, alternating: 100,000 empty tasks, submitted then waited for all at
//! once, on the same kind of runtime (CPU units, no profiling).
//!
//! `cargo bench -p xpu-capi --bench overhead` prints ns per task for each
//! path and the ratio of the medians (the target: C within 1.5x of Rust).

use std::ptr::{null, null_mut};
use std::time::Instant;

use xpu_c::runtime::{
    xpu_runtime_free, xpu_runtime_new, xpu_runtime_options_default, xpu_wait_all,
};
use xpu_c::task::{xpu_kernel_free, xpu_kernel_new, xpu_submit, xpu_submit_kernel};
use xpu_c::{XpuRuntimeOptions, XpuStatus};

const TASKS: usize = 100_000;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rust = xpu::Runtime::builder()
        .device_discovery(false)
        .profiling(false)
        .build()
        .expect("a CPU runtime");
    let mut options = std::mem::MaybeUninit::<XpuRuntimeOptions>::uninit();
    let mut c_rt = null_mut();
    let mut noop = null_mut();
    // SAFETY: valid out pointers; the handles are freed at the end.
    unsafe {
        assert_eq!(
            xpu_runtime_options_default(options.as_mut_ptr()),
            XpuStatus::Ok
        );
        let mut options = options.assume_init();
        options.device_discovery = false;
        options.profiling = false;
        assert_eq!(xpu_runtime_new(&options, &mut c_rt), XpuStatus::Ok);
        assert_eq!(
            xpu_kernel_new(c_rt, c"noop".as_ptr(), &mut noop),
            XpuStatus::Ok
        );
    }
    let (mut rust_ns, mut handle_ns, mut spec_ns) = (Vec::new(), Vec::new(), Vec::new());
    let per_task = |start: Instant| start.elapsed().as_secs_f64() * 1e9 / TASKS as f64;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..TASKS {
            rust.submit(&xpu::Kernel::Noop, &[]).expect("submits");
        }
        rust.wait_all();
        rust_ns.push(per_task(start));

        let start = Instant::now();
        // SAFETY: live runtime and kernel handle; no accesses.
        unsafe {
            for _ in 0..TASKS {
                assert_eq!(
                    xpu_submit_kernel(c_rt, noop, null(), 0, null_mut()),
                    XpuStatus::Ok
                );
            }
            xpu_wait_all(c_rt);
        }
        handle_ns.push(per_task(start));

        let start = Instant::now();
        // SAFETY: as above.
        unsafe {
            for _ in 0..TASKS {
                assert_eq!(
                    xpu_submit(c_rt, c"noop".as_ptr(), null(), 0, null_mut()),
                    XpuStatus::Ok
                );
            }
            xpu_wait_all(c_rt);
        }
        spec_ns.push(per_task(start));
    }
    let (rust, handle, spec) = (median(rust_ns), median(handle_ns), median(spec_ns));
    println!("{TASKS} empty tasks, submit + wait-all, median of {ROUNDS} alternating rounds:");
    println!("  Rust API                      {rust:7.0} ns/task");
    println!(
        "  C ABI, xpu_submit_kernel      {handle:7.0} ns/task  ({:.2}x Rust)",
        handle / rust
    );
    println!(
        "  C ABI, xpu_submit(\"noop\")     {spec:7.0} ns/task  ({:.2}x Rust)",
        spec / rust
    );
    // SAFETY: handles made above, freed once.
    unsafe {
        xpu_kernel_free(noop);
        xpu_runtime_free(c_rt);
    }
}
