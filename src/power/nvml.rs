//! Which GPU units an NVIDIA card's energy counter (NVML, read by the
//! wgpu backend: `crate::backend::gpu::Nvml`) belongs to.

use crate::unit::{UnitId, UnitInfo, UnitKind};

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
