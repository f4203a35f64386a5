//! NVML: the energy counters of NVIDIA GPUs (`libnvidia-ml`, loaded at
//! run time through `nvml-wrapper`). Without the library (no NVIDIA
//! driver), or on a GPU without the counter (before Volta), GPU energy
//! stays modelled and says so.

use nvml_wrapper::Nvml as Library;

/// The NVML library, and each device's name and counter at a start.
pub struct Nvml {
    library: Library,
    /// By NVML device index: its name and its counter (millijoules since
    /// the driver loaded) when opened; `None` for a device without one.
    devices: Vec<(String, Option<u64>)>,
}

impl Nvml {
    /// NVML, if its library loads and some device has an energy counter.
    pub fn open() -> Option<Nvml> {
        let library = Library::init().ok()?;
        let count = library.device_count().ok()?;
        let devices: Vec<(String, Option<u64>)> = (0..count)
            .filter_map(|i| {
                let device = library.device_by_index(i).ok()?;
                Some((device.name().ok()?, device.total_energy_consumption().ok()))
            })
            .collect();
        devices
            .iter()
            .any(|(_, counter)| counter.is_some())
            .then_some(Nvml { library, devices })
    }

    /// The devices' names, by NVML index.
    pub fn names(&self) -> Vec<&str> {
        self.devices.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// Joules device `index` has used since [`Nvml::open`].
    pub fn joules(&self, index: usize) -> Option<f64> {
        let start = self.devices.get(index)?.1?;
        let now = self
            .library
            .device_by_index(u32::try_from(index).ok()?)
            .ok()?
            .total_energy_consumption()
            .ok()?;
        Some(now.saturating_sub(start) as f64 * 1e-3)
    }
}
