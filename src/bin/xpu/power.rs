//! `xpu power`: each unit's power state, what its energy is modelled with
//! (or measured by), and energy per unit and kernel from a trace;
//! `xpu power set UNIT STATE` keeps a state for the later runs of `xpu`
//! (`power.toml` in the data directory, applied when a runtime starts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Deserialize;
use xpu::power::{PowerState, Rapl};
use xpu::trace::Profile;
use xpu::{Error, Runtime};

use crate::report::print_energy;
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
