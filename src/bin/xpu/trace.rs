//! `xpu trace FILE.json...`: what a traced run did, per unit, and its
//! critical path; for the traces of several processes (the ranks of a
//! job), each in turn, the copies and bytes sent between ranks, and with
//! --merge one timeline of them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use xpu::trace::Profile;

use crate::report::{bytes, print_energy};

#[derive(Args)]
pub struct TraceArgs {
    /// Traces written by `--trace FILE` or `xpu demo`: one, or one per
    /// process of a job (each rank's).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write the traces as one Chrome trace to FILE: each file's tracks
    /// under its own name, times lined up by when each run started.
    #[arg(long, value_name = "FILE")]
    merge: Option<PathBuf>,
}

pub fn run(args: &TraceArgs, gantt: Option<&Path>) -> xpu::Result<()> {
    let mut profiles = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| xpu::Error::Io(format!("{}: {e}", file.display())))?;
        profiles.push(Profile::from_chrome_trace(&text)?);
    }
    for (i, (file, profile)) in args.files.iter().zip(&profiles).enumerate() {
        if i > 0 {
            println!();
        }
        // One Gantt chart, of the first trace.
        summarise(file, profile, gantt.filter(|_| i == 0))?;
    }
    let sent: Vec<_> = profiles
        .iter()
        .flat_map(|p| &p.transfers)
        .filter(|t| t.peer.is_some_and(|peer| peer.sent))
        .collect();
    if !sent.is_empty() {
        println!(
            "\nbetween ranks: {} copies sent, {}",
            sent.len(),
            bytes(sent.iter().map(|t| t.bytes as u64).sum())
        );
    }
    if let Some(out) = &args.merge {
        let labels: Vec<String> = args
            .files
            .iter()
            .map(|f| {
                f.file_stem().map_or_else(
                    || f.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let parts: Vec<(&str, &Profile)> =
            labels.iter().map(String::as_str).zip(&profiles).collect();
        std::fs::write(out, xpu::trace::merged_chrome_trace(&parts)?)
            .map_err(|e| xpu::Error::Io(format!("{}: {e}", out.display())))?;
        println!(
            "
merged {} traces into {} (a process per trace)",
            parts.len(),
            out.display()
        );
    }
    Ok(())
}

/// What one traced run did.
fn summarise(file: &Path, profile: &Profile, gantt: Option<&Path>) -> xpu::Result<()> {
    let (first, last) = profile.span();
    println!(
        "{}: {} tasks on {} units, {} transfers, {:.3} s from the first submission to the last end",
        file.display(),
        profile.tasks.len(),
        profile.units.len(),
        profile.transfers.len(),
        last - first
    );
    println!(
        "\n{:<14} {:<34} {:>7} {:>7} {:>9} {:>6} {:>9} {:>11}",
        "unit", "device", "tasks", "failed", "busy s", "util", "GFLOP/s", "bytes in"
    );
    for s in profile.summary() {
        let device: String = profile
            .unit(s.unit)
            .map(|u| {
                format!(
                    "{}{}",
                    u.device,
                    if u.emulated { " (emulated)" } else { "" }
                )
            })
            .unwrap_or_default()
            .chars()
            .take(34)
            .collect();
        println!(
            "{:<14} {:<34} {:>7} {:>7} {:>9.3} {:>5.0}% {:>9.1} {:>11}",
            s.label,
            device,
            s.tasks,
            s.failed,
            s.busy_seconds,
            100.0 * s.utilisation,
            s.gflops,
            bytes(s.bytes_in)
        );
    }
    let mut directions: BTreeMap<String, (usize, u64, f64)> = BTreeMap::new();
    for t in &profile.transfers {
        let d = directions.entry(profile.direction(t)).or_default();
        d.0 += 1;
        d.1 += t.bytes as u64;
        d.2 += t.seconds;
    }
    if !directions.is_empty() {
        println!("\ntransfers:");
        for (direction, (count, total, seconds)) in directions {
            println!(
                "  {direction}: {count} copies, {} in {:.3} s ({:.2} GB/s)",
                bytes(total),
                seconds,
                if seconds > 0.0 {
                    total as f64 / seconds * 1e-9
                } else {
                    0.0
                }
            );
        }
    }
    let path = profile.critical_path();
    if !path.tasks.is_empty() {
        let kernels: Vec<String> = path
            .tasks
            .iter()
            .filter_map(|id| profile.tasks.iter().find(|t| t.id == *id))
            .map(|t| format!("{}@{}", t.kernel, t.unit))
            .collect();
        let shown = if kernels.len() > 12 {
            format!(
                "{} -> ... ({} more) -> {}",
                kernels[..6].join(" -> "),
                kernels.len() - 12,
                kernels[kernels.len() - 6..].join(" -> ")
            )
        } else {
            kernels.join(" -> ")
        };
        println!(
            "\ncritical path: {} tasks, {:.3} s from its first submission to its end, {:.3} s of it running ({:.0}%)\n  {shown}",
            path.tasks.len(),
            path.span_seconds,
            path.busy_seconds,
            if path.span_seconds > 0.0 { 100.0 * path.busy_seconds / path.span_seconds } else { 0.0 }
        );
    }
    if !profile.power.is_empty() {
        println!("\npower states:");
        for c in &profile.power {
            println!(
                "  {:.6} s  unit {}: {} -> {} ({})",
                c.at, c.unit, c.from, c.to, c.effect
            );
        }
    }
    if !profile.gating.is_empty() {
        let woken: Vec<f64> = profile
            .gating
            .iter()
            .filter_map(|g| g.wake_latency)
            .collect();
        let gated: f64 = profile
            .gating
            .iter()
            .map(|g| g.woke.unwrap_or(profile.wall) - g.at)
            .sum();
        println!(
            "\ngating: {} times, {:.3} s gated in all, {} wake-up(s) measured{}",
            profile.gating.len(),
            gated,
            woken.len(),
            match woken.iter().copied().reduce(f64::max) {
                Some(worst) => format!(
                    " (mean {:.1} µs, worst {:.1} µs)",
                    woken.iter().sum::<f64>() / woken.len() as f64 * 1e6,
                    worst * 1e6
                ),
                None => String::new(),
            }
        );
    }
    if let Some(energy) = &profile.energy {
        print_energy(energy, Some(&profile.tasks));
    }
    if let Some(out) = gantt {
        profile.write_gantt(out)?;
        println!("\ngantt chart: {}", out.display());
    }
    Ok(())
}
