//! NVML: the energy counters of NVIDIA GPUs (`libnvidia-ml`, loaded at run
//! time through `nvml-wrapper`; part of the `wgpu` feature). Without the
//! library (no NVIDIA driver), or on a GPU without the counter (before
//! Volta), GPU energy stays modelled and says so.

use nvml_wrapper::Nvml as Library;

use crate::unit::{UnitId, UnitInfo, UnitKind};

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

/// Which GPU units each NVML device is: a GPU unit with a device of its
/// own whose adapter name and the device's name contain one another
/// (ignoring case) goes to the first such device not yet taken, in order,
/// so that identical cards pair up one by one. Returns, per device index
/// with units, those units.
pub(crate) fn units_of_devices(names: &[&str], units: &[UnitInfo]) -> Vec<(usize, Vec<UnitId>)> {
    let mut taken: Vec<Vec<UnitId>> = vec![Vec::new(); names.len()];
    for u in units
        .iter()
        .filter(|u| u.kind == UnitKind::Gpu && !u.host_cores)
    {
        let adapter = u.device.to_lowercase();
        let same = |name: &str| {
            let name = name.to_lowercase();
            adapter.contains(&name) || name.contains(&adapter)
        };
        if let Some(i) = (0..names.len()).find(|&i| taken[i].is_empty() && same(names[i])) {
            taken[i].push(u.id);
        }
    }
    taken
        .into_iter()
        .enumerate()
        .filter(|(_, units)| !units.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(id: UnitId, device: &str, host_cores: bool) -> UnitInfo {
        UnitInfo {
            id,
            kind: UnitKind::Gpu,
            backend: "wgpu".into(),
            device: device.to_string(),
            emulated: host_cores,
            host_cores,
            resource: None,
            node: id,
            memory_bytes: 1 << 30,
            details: String::new(),
            status: Default::default(),
        }
    }

    #[test]
    fn identical_cards_pair_up_in_order_and_other_units_are_left_out() {
        let units = [
            gpu(0, "NVIDIA H100 80GB HBM3", false),
            gpu(1, "llvmpipe (LLVM 15.0.7, 256 bits)", true),
            gpu(2, "NVIDIA H100 80GB HBM3", false),
            gpu(3, "AMD Radeon RX 7900", false),
        ];
        let names = [
            "NVIDIA H100 80GB HBM3",
            "NVIDIA H100 80GB HBM3",
            "NVIDIA A10",
        ];
        assert_eq!(
            units_of_devices(&names, &units),
            vec![(0, vec![0]), (1, vec![2])]
        );
    }
}
