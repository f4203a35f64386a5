//! Energy profiles of unit kinds: watts in each power state, idle and
//! gated watts, and the latency of waking a gated unit. Shipped as TOML in
//! `platforms/energy/` (one file per kind, built into the crate); a
//! directory of such files replaces the shipped ones kind by kind.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::PowerState;
use crate::error::{Error, Result};
use crate::unit::UnitKind;

/// The shipped profiles, by file name.
const SHIPPED: [(&str, &str); 8] = [
    ("cpu.toml", include_str!("../../platforms/energy/cpu.toml")),
    ("gpu.toml", include_str!("../../platforms/energy/gpu.toml")),
    ("tpu.toml", include_str!("../../platforms/energy/tpu.toml")),
    ("npu.toml", include_str!("../../platforms/energy/npu.toml")),
    ("lpu.toml", include_str!("../../platforms/energy/lpu.toml")),
    (
        "fpga.toml",
        include_str!("../../platforms/energy/fpga.toml"),
    ),
    ("vpu.toml", include_str!("../../platforms/energy/vpu.toml")),
    (
        "device.toml",
        include_str!("../../platforms/energy/device.toml"),
    ),
];

/// The kind whose profile serves units of kinds without one of their own.
const ANY_OTHER_KIND: &str = "device";

/// What a unit of one kind draws.
///
/// ```
/// use xpu::power::{EnergyProfile, PowerState};
/// let p = EnergyProfile::parse(r#"
///     kind = "dsp"
///     idle_watts = 1.0
///     gated_watts = 0.1
///     wake_latency_us = 300
///     [watts]
///     low-power = 2.0
///     normal = 4.0
///     high-performance = 6.0
///     [speed]
///     low-power = 0.5
///     normal = 1.0
///     high-performance = 1.2
/// "#)?;
/// assert_eq!(p.watts(PowerState::Normal), 4.0);
/// // Joules per unit of normal-state work: 4 at low power, 4 normal, 5 high.
/// assert_eq!(p.joules_per_normal_second(PowerState::LowPower), 4.0);
/// assert_eq!(p.joules_per_normal_second(PowerState::HighPerformance), 5.0);
/// assert_eq!(p.wake_latency, 300e-6);
/// assert!(EnergyProfile::parse("kind = \"dsp\"").is_err());
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyProfile {
    pub kind: String,
    /// Watts while running a task, per state (in [`PowerState::ALL`]'s order).
    pub busy_watts: [f64; 3],
    /// Throughput per state relative to the normal state's (modelled):
    /// a task of `t` seconds in the normal state takes `t / speed` in
    /// another.
    pub speed: [f64; 3],
    /// Watts while idle and not gated.
    pub idle_watts: f64,
    /// Watts while gated.
    pub gated_watts: f64,
    /// Seconds from work arriving at a gated unit to its first task.
    pub wake_latency: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    kind: String,
    idle_watts: f64,
    gated_watts: f64,
    wake_latency_us: f64,
    watts: PerState,
    speed: PerState,
}

/// A figure for each power state.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PerState {
    low_power: f64,
    normal: f64,
    high_performance: f64,
}

impl EnergyProfile {
    /// Reads a profile from TOML; a missing key or a negative figure is
    /// an error that names it.
    pub fn parse(text: &str) -> Result<EnergyProfile> {
        let file: ProfileFile = toml::from_str(text)
            .map_err(|e| Error::Config(format!("energy profile: {}", e.message())))?;
        let w = &file.watts;
        let figures = [
            ("watts.low-power", w.low_power),
            ("watts.normal", w.normal),
            ("watts.high-performance", w.high_performance),
            ("idle_watts", file.idle_watts),
            ("gated_watts", file.gated_watts),
            ("wake_latency_us", file.wake_latency_us),
        ];
        if let Some((name, v)) = figures.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::Config(format!(
                "energy profile `{}`: {name} is {v}; it must be a finite number, at least 0",
                file.kind
            )));
        }
        let s = &file.speed;
        let speeds = [
            ("speed.low-power", s.low_power),
            ("speed.normal", s.normal),
            ("speed.high-performance", s.high_performance),
        ];
        if let Some((name, v)) = speeds.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
            return Err(Error::Config(format!(
                "energy profile `{}`: {name} is {v}; it must be a finite number above 0",
                file.kind
            )));
        }
        Ok(EnergyProfile {
            kind: file.kind,
            busy_watts: [w.low_power, w.normal, w.high_performance],
            speed: [s.low_power, s.normal, s.high_performance],
            idle_watts: file.idle_watts,
            gated_watts: file.gated_watts,
            wake_latency: file.wake_latency_us * 1e-6,
        })
    }

    /// Watts while running a task in `state`.
    pub fn watts(&self, state: PowerState) -> f64 {
        self.busy_watts[state.index()]
    }

    /// How much longer than in the normal state a task takes in `state`.
    pub fn slowdown(&self, state: PowerState) -> f64 {
        self.speed[PowerState::Normal.index()] / self.speed[state.index()]
    }

    /// Joules a task drawing one second of the normal state's time takes
    /// in `state`.
    pub fn joules_per_normal_second(&self, state: PowerState) -> f64 {
        self.watts(state) * self.slowdown(state)
    }
}

/// Profiles by kind.
#[derive(Debug, Clone)]
pub struct EnergyProfiles {
    by_kind: HashMap<String, EnergyProfile>,
}

impl EnergyProfiles {
    /// The profiles shipped in `platforms/energy/`.
    pub fn shipped() -> EnergyProfiles {
        let by_kind = SHIPPED
            .iter()
            .map(|(file, text)| {
                let p = EnergyProfile::parse(text)
                    .unwrap_or_else(|e| panic!("platforms/energy/{file} is checked in CI: {e}"));
                (p.kind.clone(), p)
            })
            .collect();
        EnergyProfiles { by_kind }
    }

    /// The shipped profiles, with those of every `*.toml` in `dir` in
    /// place of the shipped ones of the same kinds.
    pub fn with_dir(dir: &Path) -> Result<EnergyProfiles> {
        let mut profiles = EnergyProfiles::shipped();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Io(format!("energy profiles {}: {e}", dir.display())))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::Io(format!("energy profiles {}: {e}", dir.display())))?
                .path();
            if path.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
                let p = EnergyProfile::parse(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                profiles.by_kind.insert(p.kind.clone(), p);
            }
        }
        Ok(profiles)
    }

    /// The profile of `kind`, or the one for any other kind.
    pub fn of(&self, kind: &UnitKind) -> &EnergyProfile {
        self.by_kind
            .get(kind.as_str())
            .or_else(|| self.by_kind.get(ANY_OTHER_KIND))
            .expect("the shipped profiles include one for any other kind")
    }
}
