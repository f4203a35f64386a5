//! Power: each unit's power state, which changes what its backend really
//! does (see the README's table); the energy profiles of unit kinds
//! (`platforms/energy/`); and the energy each unit used, measured where
//! the machine can tell (RAPL for the host's cores, NVML for NVIDIA GPUs)
//! and modelled from the profiles elsewhere, every figure saying which.
//!
//! ```
//! use xpu::power::{EnergySource, PowerState};
//! use xpu::{Kernel, Runtime};
//! let rt = Runtime::builder().cpu_units(1).device_discovery(false).build()?;
//! rt.set_power_state(0, PowerState::LowPower)?;
//! rt.submit(&Kernel::Noop, &[])?;
//! rt.wait_all();
//! assert_eq!(rt.power_state(0)?, PowerState::LowPower);
//! let energy = rt.energy();
//! assert!(energy.units[0].joules() >= 0.0);
//! assert!(matches!(energy.units[0].source, EnergySource::Modelled { .. } | EnergySource::Measured { .. }));
//! # Ok::<(), xpu::Error>(())
//! ```

mod energy;
mod nvml;
mod profile;
mod rapl;
mod state;

pub(crate) use self::energy::PowerLedger;
pub use self::energy::{EnergyReport, EnergySource, Gating, UnitEnergy};
pub use self::profile::{EnergyProfile, EnergyProfiles};
pub use self::rapl::Rapl;
pub use self::state::{PowerChange, PowerState};
