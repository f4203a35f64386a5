//! Stands in for the wgpu backend when the crate is built without the
//! `wgpu` feature: discovery says so, and nothing else changes.

use super::registry::{Discovered, DiscoveryOptions};

/// Always answers that the feature is off.
pub fn discover_units(_options: &DiscoveryOptions) -> Discovered {
    Ok(Err("not compiled in (feature `wgpu`)".into()))
}

/// Without the wgpu backend no WGSL runs, so none is checked.
pub fn validate_wgsl(_kernel: &str, _source: &str, _entry: &str) -> crate::Result<()> {
    Ok(())
}

/// Without the wgpu backend there are no GPU units to measure: NVML is
/// not opened, and GPU energy stays modelled.
pub struct Nvml;

impl Nvml {
    /// Always `None`: the `wgpu` feature is off.
    pub fn open() -> Option<Nvml> {
        None
    }

    /// No devices.
    pub fn names(&self) -> Vec<&str> {
        Vec::new()
    }

    /// No counters.
    pub fn joules(&self, _index: usize) -> Option<f64> {
        None
    }
}
