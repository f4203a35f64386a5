//! Long runs keep memory flat: a million tasks with profiling off keep
//! nothing per task, and with profiling on no more than the profile's
//! capacity. Alone in its binary, so that no other test's memory counts.

#[path = "common/faults.rs"]
#[allow(dead_code)] // only the soak is used here
mod faults;
#[path = "common/rng.rs"]
mod rng;

/// A long run keeps nothing per task without profiling, and no more than
/// the profile's capacity with it: after the first rounds (the allocator
/// and, with profiling, the record rings fill up), a million more tasks
/// leave resident memory within 16 bytes a task of where it was.
#[test]
fn a_million_tasks_keep_resident_memory_flat() {
    for profiling in [false, true] {
        let rt = faults::soak_runtime(profiling);
        let rss = faults::soak(&rt, 13, 100_000);
        let (before, after) = (rss[2], rss[12]);
        let growth = after.saturating_sub(before);
        eprintln!(
            "profiling {profiling}: RSS {before} -> {after} bytes over 1M tasks: {:.2} bytes per task",
            growth as f64 / 1e6
        );
        assert!(
            growth < 16 * 1_000_000,
            "profiling {profiling}: grew {growth} bytes over 1M tasks"
        );
        if profiling {
            let p = rt.profile();
            assert_eq!(p.tasks.len() as u64 + p.dropped.tasks, 1_300_000);
            drop(p);
            let full = faults::rss_bytes().unwrap();
            rt.clear_profile();
            assert!(rt.profile().tasks.is_empty());
            let cleared = faults::rss_bytes().unwrap();
            eprintln!("clear_profile: RSS {full} -> {cleared} bytes");
            // The records' chunks go back to the system allocator.
            assert!(
                full.saturating_sub(cleared) > 8 << 20,
                "RSS {full} -> {cleared}"
            );
        }
    }
}
