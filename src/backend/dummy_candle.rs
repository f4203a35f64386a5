//! Stands in for the candle backend (TPU, VPU and LPU units) when the
//! crate is built without the `candle` feature: discovery says so, and
//! nothing else changes.

use super::registry::{Discovered, DiscoveryOptions};

/// Always answers that the feature is off.
pub fn discover_units(_options: &DiscoveryOptions) -> Discovered {
    Ok(Err("not compiled in (feature `candle`)".into()))
}
