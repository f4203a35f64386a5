//! Power states, and the record of a unit changing state.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::unit::UnitId;

/// How hard a unit works, and so how much power it draws. What each state
/// changes depends on the backend (the README's table): a CPU unit's
/// kernels use one thread in `LowPower`, its share of the cores in
/// `Normal` and every core in `HighPerformance`, and its worker parks at
/// once when idle in `LowPower` but spins longer before parking in
/// `HighPerformance`.
///
/// ```
/// use xpu::power::PowerState;
/// assert_eq!(PowerState::parse("low-power")?, PowerState::LowPower);
/// assert_eq!(PowerState::default().to_string(), "normal");
/// assert!(PowerState::parse("turbo").is_err());
/// # Ok::<(), xpu::Error>(())
/// ```
///
/// States are ordered from the least power to the most.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PowerState {
    LowPower,
    #[default]
    Normal,
    HighPerformance,
}

impl PowerState {
    /// Every state, from the least power to the most.
    pub const ALL: [PowerState; 3] = [
        PowerState::LowPower,
        PowerState::Normal,
        PowerState::HighPerformance,
    ];

    /// The state's name as the CLI and the profiles spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::LowPower => "low-power",
            PowerState::Normal => "normal",
            PowerState::HighPerformance => "high-performance",
        }
    }

    /// Parses `low-power`, `normal` or `high-performance`.
    pub fn parse(s: &str) -> Result<PowerState> {
        crate::named::parse_named(s, "power state", &PowerState::ALL, PowerState::as_str)
    }

    /// Its place in [`PowerState::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn from_index(i: u8) -> PowerState {
        PowerState::ALL[usize::from(i).min(2)]
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A unit's change of power state, applied between two of its tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerChange {
    pub unit: UnitId,
    /// Seconds since the runtime started.
    pub at: f64,
    pub from: PowerState,
    pub to: PowerState,
    /// What the backend now does differently, in its words (e.g. "1
    /// thread per kernel; parks at once when idle").
    pub effect: String,
}
