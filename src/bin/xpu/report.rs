//! Formatting shared by the commands: sizes, the per-unit report, progress bars.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use xpu::power::EnergyReport;
use xpu::trace::TaskEvent;
use xpu::Runtime;

/// A byte count for people: `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A progress bar counting `total` items; hidden when stderr is not a terminal.
pub fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{spinner} {msg:<24} [{bar:40}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Tasks finished (or failed) so far on all units.
pub fn tasks_finished(rt: &Runtime) -> u64 {
    rt.report().iter().map(|r| r.tasks + r.failed).sum()
}

/// Prints the per-unit report and the memory nodes' traffic.
pub fn print_unit_report(rt: &Runtime, wall_seconds: f64) {
    let reports = rt.report();
    println!(
        "{:<5} {:<6} {:<28} {:>7} {:>9} {:>6} {:>9} {:>11}",
        "unit", "kind", "device", "tasks", "busy s", "util", "GFLOP/s", "fetched"
    );
    let (mut tasks, mut busy, mut fetched) = (0, 0.0, 0);
    for r in &reports {
        let device: String = r.device.chars().take(28).collect();
        println!(
            "{:<5} {:<6} {:<28} {:>7} {:>9.3} {:>5.0}% {:>9.1} {:>11}",
            r.unit,
            r.kind,
            device,
            r.tasks,
            r.busy_seconds,
            100.0 * (r.busy_seconds / wall_seconds).min(1.0),
            r.gflops,
            bytes(r.bytes_fetched)
        );
        tasks += r.tasks;
        busy += r.busy_seconds;
        fetched += r.bytes_fetched;
    }
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    println!(
        "total: {tasks} tasks ({failed} failed), {busy:.3} s busy over {wall_seconds:.3} s wall, {} fetched",
        bytes(fetched)
    );
    for n in rt.memory_stats() {
        println!(
            "memory node {} ({}): peak {}, {} in, {} out, {} evictions",
            n.node,
            n.name,
            bytes(n.peak as u64),
            bytes(n.bytes_in),
            bytes(n.bytes_out),
            n.evictions
        );
    }
    println!("transfers: {}", rt.transfers().len());
    print_energy(&rt.energy(), None);
}

/// Prints each unit's power state and energy (busy, idle, gated, whole,
/// and whether measured or modelled), and with `tasks` the joules of each
/// kernel's tasks.
pub fn print_energy(energy: &EnergyReport, tasks: Option<&[TaskEvent]>) {
    println!(
        "\nenergy over {:.3} s ({}):",
        energy.wall_seconds,
        if energy.any_measured() {
            "measured where the host's counters read, modelled elsewhere"
        } else {
            "modelled from the energy profiles in platforms/energy/; no counter to read here"
        }
    );
    println!(
        "{:<5} {:<6} {:<17} {:<9} {:>10} {:>10} {:>10} {:>10}",
        "unit", "kind", "state", "source", "busy J", "idle J", "gated J", "total J"
    );
    for u in &energy.units {
        println!(
            "{:<5} {:<6} {:<17} {:<9} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            u.unit,
            u.kind,
            u.state.as_str(),
            u.source.as_str(),
            u.busy_joules(),
            u.idle_joules(),
            u.gated_joules(),
            u.joules()
        );
    }
    println!("total: {:.3} J", energy.total_joules());
    if let Some(tasks) = tasks {
        let kernels = energy.by_kernel(tasks);
        if !kernels.is_empty() {
            println!("per kernel (its tasks' run time at their unit's power):");
            for (kernel, joules) in kernels {
                println!("  {kernel:<24} {joules:>10.3} J");
            }
        }
    }
}
