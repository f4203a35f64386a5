//! Stands in for the OpenCL backend (FPGA and NPU units) when the crate is
//! built without the `opencl` feature: discovery says so, and nothing else
//! changes.

use super::registry::{Discovered, DiscoveryOptions};

/// Always answers that the feature is off.
pub fn discover_units(_options: &DiscoveryOptions) -> Discovered {
    Ok(Err("not compiled in (feature `opencl`)".into()))
}
