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
