//! The built-in backends behind one entry: which exist, how each comes up,
//! and the status of those that did not. A backend left out of the build
//! answers through its stub twin ("not compiled in (feature X)"), so the
//! options and the listing are the same whatever the features.

use std::path::PathBuf;
use std::sync::Arc;

use super::{candle, cpu, gpu, opencl, Backend};
use crate::error::{Error, Result};

/// What discovery needs beyond the environment. Every option exists
/// whatever the features; a backend that is not compiled in ignores its own.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    /// Which OpenCL devices become FPGA and NPU units, as in
    /// `XPU_OPENCL_UNITS` (which it overrides), e.g. `"fpga=0:0,npu=0:0"`.
    pub opencl_units: Option<String>,
    /// Where compiled device programs are cached (default: `$XPU_CACHE_DIR`,
    /// else `$XDG_CACHE_HOME/xpu`, else `~/.cache/xpu`).
    pub cache_dir: Option<PathBuf>,
    /// The memory of each GPU in bytes, where the API does not tell (as
    /// `XPU_GPU_MEMORY`, which it overrides).
    pub gpu_memory: Option<usize>,
}

/// Whether a backend came up, and why not.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    pub name: String,
    /// Units it provides (0 when unavailable).
    pub units: usize,
    /// Why it has no units, when it has none.
    pub reason: Option<String>,
}

/// A backend that came up, or why it did not. Configuration errors (a
/// malformed unit list) are the outer `Err`.
pub type Discovered = Result<std::result::Result<Arc<dyn Backend>, String>>;

/// How a built-in device backend comes up.
type BringUp = fn(&DiscoveryOptions) -> Discovered;

/// The built-in device backends, in the order they are asked: a name
/// and how to bring it up. A new device backend is one line here.
const DEVICE_BACKENDS: [(&str, BringUp); 3] = [
    ("wgpu", gpu::discover_units),
    ("candle", candle::discover_units),
    ("opencl", opencl::discover_units),
];

/// What discovery found.
pub struct Discovery {
    /// The CPU backend, then each device backend that came up.
    pub backends: Vec<Arc<dyn Backend>>,
    /// The device backends that did not, and why.
    pub unavailable: Vec<BackendStatus>,
}

/// The CPU backend with `cpu_units` units and, when `devices` is on, every
/// built-in device backend that came up; the statuses of those that did not.
///
/// ```
/// use xpu::backend::{discover, DiscoveryOptions};
/// let found = discover(2, false, &DiscoveryOptions::default())?;
/// assert_eq!(found.backends.len(), 1);
/// assert_eq!(found.backends[0].name(), "cpu");
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn discover(cpu_units: usize, devices: bool, options: &DiscoveryOptions) -> Result<Discovery> {
    if cpu_units == 0 {
        return Err(Error::Config("at least one CPU unit is needed".into()));
    }
    let mut backends: Vec<Arc<dyn Backend>> = vec![Arc::new(cpu::CpuBackend::new(cpu_units))];
    let mut unavailable = Vec::new();
    if devices {
        for (name, bring_up) in DEVICE_BACKENDS {
            match bring_up(options)? {
                Ok(backend) => backends.push(backend),
                Err(reason) => unavailable.push(BackendStatus {
                    name: name.into(),
                    units: 0,
                    reason: Some(reason),
                }),
            }
        }
    }
    Ok(Discovery {
        backends,
        unavailable,
    })
}
