//! The fault suite at scale: random task graphs with injected errors
//! (1%), panics (0.1%), delays, explicit edges and cancellations, from
//! three submitting threads, on every unit this machine has, under each
//! policy, with device memory capped at twice the largest working set,
//! checked against a sequential replay. Then a soak: tasks with profiling
//! off and on, and the resident memory they leave behind.
//!
//! ```sh
//! cargo bench --bench faults                 # 100,000 random tasks per policy
//! cargo bench --bench faults -- --soak       # 1,000,000 per policy, 10M-task soak
//! cargo bench --bench faults -- --tasks 250000
//! ```
//!
//! It prints, per policy, the tasks run, the errors and panics injected,
//! the failures found (all as the replay predicts, or the run fails), the
//! out-of-memory failures and evictions; then resident memory per task.

#[path = "../tests/common/faults.rs"]
mod faults;
#[path = "../tests/common/rng.rs"]
mod rng;

use xpu::{Policy, Runtime};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let soak = args.iter().any(|a| a == "--soak");
    let tasks = args
        .iter()
        .position(|a| a == "--tasks")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(if soak { 1_000_000 } else { 100_000 });
    let threads = 3;
    let mut wrong = 0;
    for (i, policy) in Policy::ALL.into_iter().enumerate() {
        let rt = match Runtime::builder()
            .policy(policy)
            .device_memory_limit(faults::DEVICE_CAPACITY)
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cannot start the runtime: {e}");
                std::process::exit(1);
            }
        };
        let cfg = faults::FaultConfig::new(0xfa017 + i as u64, threads, tasks.div_ceil(threads));
        let before = faults::rss_bytes().unwrap_or(0);
        let report = faults::run(&rt, &cfg);
        let after = faults::rss_bytes().unwrap_or(0);
        let evictions: u64 = rt.memory_stats().iter().map(|n| n.evictions).sum();
        let kinds: Vec<String> = rt.units().iter().map(|u| u.kind.to_string()).collect();
        println!(
            "{:<13} {report}; {evictions} evictions; RSS {} -> {} MB; units {}",
            policy.as_str(),
            before / 1_000_000,
            after / 1_000_000,
            kinds.join(",")
        );
        for m in report.mismatches.iter().take(10) {
            println!("  WRONG: {m}");
        }
        wrong += report.mismatches.len() + report.out_of_memory as usize;
    }
    let soak_tasks = if soak { 10_000_000 } else { 1_000_000 };
    for profiling in [false, true] {
        let rt = faults::soak_runtime(profiling);
        // Rounds of 100,000, the first three to warm up.
        let rounds = soak_tasks / 100_000;
        let rss = faults::soak(&rt, rounds + 3, 100_000);
        let (before, after) = (rss[2], rss[rss.len() - 1]);
        println!(
            "soak, profiling {:<5}: {soak_tasks} tasks, RSS {:.1} -> {:.1} MB, {:.2} bytes per task",
            if profiling { "on" } else { "off" },
            before as f64 / 1e6,
            after as f64 / 1e6,
            after.saturating_sub(before) as f64 / soak_tasks as f64
        );
    }
    if wrong > 0 {
        println!("FAILED: {wrong} wrong results or out-of-memory failures");
        std::process::exit(1);
    }
    println!("ok: 0 hangs, 0 wrong results");
}
