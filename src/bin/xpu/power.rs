//! `xpu power`: each unit's power state, what its energy is modelled with
//! (or measured by), and energy per unit and kernel from a trace;
//! `xpu power set UNIT STATE` keeps a state for the later runs of `xpu`
//! (`power.toml` in the data directory, applied when a runtime starts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Deserialize;
use xpu::power::{PowerState, Rapl};
use xpu::trace::Profile;
use xpu::{Error, Placement, Runtime};

use crate::report::{print_energy, progress};
use crate::RuntimeArgs;

#[derive(Args)]
pub struct PowerArgs {
    #[command(subcommand)]
    command: Option<PowerCommand>,
    /// Also print energy per unit and per kernel from a trace written by
    /// `--trace` (or the demo's `xpu-trace.json`).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PowerCommand {
    /// Keep UNIT in STATE (low-power, normal, high-performance) in every
    /// later run of `xpu`, until set again.
    ///
    /// Example: xpu power set 1 low-power
    #[command(verbatim_doc_comment)]
    Set { unit: usize, state: String },
    /// Measure each unit's wake-up latency: gate it (idle 2 ms), give it
    /// a small task, and time from the task waking it to the task's
    /// start; prints the median per unit beside its profile's figure.
    ///
    /// Example: xpu power wake --rounds 20
    #[command(verbatim_doc_comment)]
    Wake {
        /// Wake-ups per unit.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
}

/// The states kept for later runs, by unit id.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Kept {
    #[serde(default)]
    states: BTreeMap<String, String>,
}

/// Where the kept states are.
fn kept_path() -> PathBuf {
    xpu::host::data_dir().join("power.toml")
}

/// The states kept in `path` (none if it does not exist).
fn read_kept(path: &Path) -> xpu::Result<BTreeMap<usize, PowerState>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::Io(format!("{}: {e}", path.display()))),
    };
    let bad = |what: String| Error::Config(format!("{}: {what}", path.display()));
    let kept: Kept = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
    kept.states
        .into_iter()
        .map(|(unit, state)| {
            let id = unit
                .parse()
                .map_err(|_| bad(format!("`{unit}` is not a unit id")))?;
            Ok((
                id,
                PowerState::parse(&state).map_err(|e| bad(e.to_string()))?,
            ))
        })
        .collect()
}

/// Puts each unit of `rt` in the state kept for it; a kept unit this run
/// does not have is reported and left.
pub fn apply_kept(rt: &Runtime) -> xpu::Result<()> {
    let path = kept_path();
    for (unit, state) in read_kept(&path)? {
        if rt.set_power_state(unit, state).is_err() {
            eprintln!(
                "note: {} keeps unit {unit} in {state}, but this run has units 0 to {}",
                path.display(),
                rt.units().len().saturating_sub(1)
            );
        }
    }
    Ok(())
}

pub fn run(runtime: &RuntimeArgs, args: &PowerArgs) -> xpu::Result<()> {
    if let Some(PowerCommand::Wake { rounds }) = &args.command {
        let mut gating = runtime.clone();
        gating.gate_after = GATE_AFTER_MS;
        return wake(&gating.build(None)?, *rounds);
    }
    let rt = runtime.build(None)?;
    if let Some(PowerCommand::Set { unit, state }) = &args.command {
        let state = PowerState::parse(state)?;
        rt.set_power_state(*unit, state)?;
        let path = kept_path();
        let mut kept = read_kept(&path)?;
        kept.insert(*unit, state);
        let mut text = String::from(
            "# Power states `xpu` puts units in when it starts (`xpu power set UNIT STATE`).\n[states]\n",
        );
        for (unit, state) in &kept {
            text.push_str(&format!("\"{unit}\" = \"{state}\"\n"));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        println!(
            "unit {unit} ({}) will run in {state} from the next run of xpu on ({})",
            rt.units()[*unit].kind,
            path.display()
        );
        return Ok(());
    }
    show(&rt)?;
    if let Some(file) = &args.trace {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
        let profile = Profile::from_chrome_trace(&text)?;
        match &profile.energy {
            Some(energy) => {
                println!("\n{}:", file.display());
                print_energy(energy, Some(&profile.tasks));
            }
            None => println!(
                "\n{}: no energy in this trace (simulated, or written before xpu kept energy)",
                file.display()
            ),
        }
    }
    Ok(())
}

/// How long `xpu power wake` lets a unit idle before it is gated.
const GATE_AFTER_MS: u64 = 2;

/// Gates each unit `rounds` times and wakes it with a small task placed on
/// it; prints the median measured wake-up latency per unit.
fn wake(rt: &Runtime, rounds: usize) -> xpu::Result<()> {
    let bar = progress((rt.units().len() * rounds) as u64, "waking gated units");
    let x = rt.tensor(&[256], vec![-1.0f32; 256])?;
    let mut skipped = Vec::new();
    for u in rt.units() {
        for _ in 0..rounds {
            std::thread::sleep(Duration::from_millis(4 * GATE_AFTER_MS));
            let y = rt.zeros(&[256], xpu::DType::F32)?;
            let task = rt.submit_with(
                &xpu::Kernel::Unary(xpu::UnaryOp::Relu),
                &[x.read(), y.write()],
                xpu::TaskOptions::default().on(Placement::Unit(u.id)),
            );
            match task {
                Ok(task) => rt.wait(&task)?,
                Err(e) => {
                    skipped.push(format!("unit {} ({}): {e}", u.id, u.kind));
                    break;
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let gating = rt.profile().gating;
    println!(
        "{:<5} {:<6} {:<28} {:>9} {:>14} {:>14}",
        "unit", "kind", "device", "wake-ups", "median µs", "profile µs"
    );
    for u in rt.units() {
        let mut measured: Vec<f64> = gating
            .iter()
            .filter(|g| g.unit == u.id)
            .filter_map(|g| g.wake_latency)
            .collect();
        measured.sort_by(f64::total_cmp);
        let median = measured
            .get(measured.len() / 2)
            .map_or("-".to_string(), |m| format!("{:.1}", m * 1e6));
        let device: String = u.device.chars().take(28).collect();
        println!(
            "{:<5} {:<6} {:<28} {:>9} {:>14} {:>14.0}",
            u.id,
            u.kind,
            device,
            measured.len(),
            median,
            rt.energy_profile(u.id)?.wake_latency * 1e6
        );
    }
    for s in skipped {
        println!("not measured: {s}");
    }
    Ok(())
}

/// Each unit: its state, and what its energy is measured by or modelled with.
fn show(rt: &Runtime) -> xpu::Result<()> {
    let rapl = Rapl::open();
    println!(
        "{:<5} {:<6} {:<28} {:<17} {:<9} {:>24} {:>7} {:>7} {:>9}",
        "unit",
        "kind",
        "device",
        "state",
        "profile",
        "busy W (low/normal/high)",
        "idle W",
        "gated W",
        "wake µs"
    );
    // A unit emulated on the host's cores draws the CPU's power while busy;
    // its idle cores are counted by the CPU units (0 W here).
    for (u, e) in rt.units().iter().zip(rt.energy().units) {
        let p = rt.energy_profile(u.id)?;
        let device: String = u.device.chars().take(28).collect();
        let w = e.busy_watts;
        println!(
            "{:<5} {:<6} {:<28} {:<17} {:<9} {:>24} {:>7.1} {:>7.1} {:>9.0}",
            u.id,
            u.kind,
            device,
            rt.power_state(u.id)?.as_str(),
            p.kind,
            format!("{:.1}/{:.1}/{:.1}", w[0], w[1], w[2]),
            e.idle_watts,
            e.gated_watts,
            p.wake_latency * 1e6
        );
    }
    match rapl {
        Some(r) => println!(
            "\nenergy of the units on the host's cores: measured (RAPL, {} package(s)); other units: modelled from platforms/energy/",
            r.packages()
        ),
        None => println!(
            "\nenergy: modelled from the profiles in platforms/energy/ (no RAPL counter readable here)"
        ),
    }
    Ok(())
}
