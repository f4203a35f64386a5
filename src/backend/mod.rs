//! The backend trait: what a device must provide for its units to join the
//! runtime.
//!
//! A backend owns device discovery, buffers on its memory nodes, upload and
//! download, and the kernels it supports. The runtime owns everything else:
//! dependencies, placement, replicas, transfers, eviction and accounting.
//!
//! The built-in backends come up through one entry, [`discover`] (see
//! `registry.rs`); each feature-gated backend has a stub twin
//! (`dummy_*.rs`) that answers "not compiled in", so no call site needs a
//! `cfg`.
//!
//! An embedder adds a unit kind of its own (a DSP, a new accelerator) by
//! implementing [`Backend`] and registering it with
//! [`RuntimeBuilder::backend`](crate::RuntimeBuilder::backend); see
//! `examples/custom_unit.rs`.

#[cfg(feature = "candle")]
pub mod candle;
#[cfg(not(feature = "candle"))]
#[path = "dummy_candle.rs"]
pub mod candle;
pub mod cpu;
#[cfg(feature = "wgpu")]
pub mod gpu;
#[cfg(not(feature = "wgpu"))]
#[path = "dummy_gpu.rs"]
pub mod gpu;
#[cfg(feature = "opencl")]
pub mod opencl;
#[cfg(not(feature = "opencl"))]
#[path = "dummy_opencl.rs"]
pub mod opencl;
mod registry;

pub use registry::{discover, BackendStatus, Discovered, Discovery, DiscoveryOptions};

use std::sync::Arc;

use crate::error::{Error, Result};
pub use crate::kernel::{Arg, ArgData, DeviceBuffer};
use crate::kernel::{ArgMeta, Kernel};
use crate::power::PowerState;
use crate::unit::UnitKind;

/// Where a unit's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitMemory {
    /// The unit works on host RAM directly (memory node 0).
    Host,
    /// The unit has its own memory: the backend's device memory `index`,
    /// with `capacity` bytes.
    Device { index: usize, capacity: usize },
}

/// A unit as its backend describes it.
#[derive(Debug, Clone)]
pub struct UnitDesc {
    pub kind: UnitKind,
    /// The device's own name (e.g. "AMD EPYC 7B13", "llvmpipe").
    pub device: String,
    /// True when the device is not the hardware `kind` names.
    pub emulated: bool,
    /// True when the unit computes on the host's own cores (a CPU unit, or
    /// a device emulated on the CPU: lavapipe, candle's CPU device, PoCL):
    /// it then competes with the CPU units rather than adding capacity,
    /// and placement treats it so.
    pub host_cores: bool,
    /// The device the unit computes on when other units may compute on it
    /// too (`opencl:0:1` for two OpenCL units on one device): units naming
    /// the same resource share it, and placement adds up their queued work
    /// instead of counting them as added capacity. `None` when the unit has
    /// its device to itself (or computes on the host's cores, which
    /// `host_cores` says).
    pub resource: Option<String>,
    pub memory: UnitMemory,
    /// Limits and capabilities worth listing (free text, may be empty).
    pub details: String,
}

/// A device API that provides units.
///
/// Units are numbered by the backend from 0 in the order of [`Backend::units`];
/// device memories likewise, by [`UnitMemory::Device::index`].
pub trait Backend: Send + Sync + 'static {
    /// Short name used in listings and `XPU_REQUIRE_BACKENDS` (e.g. "cpu").
    fn name(&self) -> &str;

    /// The units this backend found.
    fn units(&self) -> Vec<UnitDesc>;

    /// Allocates `bytes` on device memory `memory`.
    fn alloc(&self, memory: usize, bytes: usize) -> Result<DeviceBuffer>;

    /// Copies `src` into the start of `dst`.
    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()>;

    /// Copies the start of `src` into `dst`.
    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()>;

    /// Whether unit `unit` can run `kernel` on arguments of these shapes,
    /// dtypes and modes (already accepted by [`Kernel::check`]). The
    /// built-in backends answer from the same plan their launch follows.
    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool;

    /// Gets a user kernel ready on this backend's units before its first
    /// task (compiles its device program), so that a program that does not
    /// build is reported when it is registered
    /// (`Runtime::register`), not when a task runs. Backends with nothing
    /// to prepare keep the default.
    fn prepare(&self, _kernel: &Kernel) -> Result<()> {
        Ok(())
    }

    /// Runs `kernel` on unit `unit`. Arguments are in the kernel's order;
    /// written arguments are writable. May return before the device has
    /// finished, as long as a later `download` or launch sees the results.
    ///
    /// The runtime calls it inside a panic boundary: a panic fails the task
    /// and the unit goes on. Return [`Error::DeviceLost`] when the device
    /// itself is gone: the unit is taken out of service, later tasks go to
    /// other units, and replicas on its memory are given up.
    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()>;

    /// Waits until the work launched on `unit` has finished on the device
    /// (for timing; ordering never needs it). Backends that launch
    /// synchronously keep the default.
    fn synchronize(&self, _unit: usize) -> Result<()> {
        Ok(())
    }

    /// The host core `unit`'s worker thread is bound to, where the unit
    /// computes on one core of its own: the CPU backend's units when there
    /// is a core for each. A worker that has its core to itself is not
    /// queued behind another unit's worker by the OS, and its tiles stay in
    /// that core's caches. The default, `None`, leaves the thread where the
    /// OS puts it (device units, whose worker mostly waits on the device).
    fn worker_core(&self, _unit: usize) -> Option<usize> {
        None
    }

    /// Hands the device what `unit`'s launches recorded and have not
    /// submitted yet. A backend that gathers launches into one submission
    /// (the wgpu backend, up to a bound) submits them here; its own
    /// downloads, uploads and `synchronize` submit them first too. The
    /// worker calls it when the unit's queue runs dry. Backends that
    /// submit each launch keep the default.
    fn flush(&self, _unit: usize) {}

    /// Puts `unit` in a power state: what it changes is the backend's to
    /// say (the README's table), and is returned in its words for the
    /// trace, e.g. "1 thread(s) per kernel". The runtime calls it between
    /// two tasks of the unit, never under a running one. Backends without
    /// power controls keep the default, which refuses: the unit stays in
    /// its state, its energy is counted at that state's power, and the
    /// trace records the refusal.
    fn set_power_state(&self, _unit: usize, state: PowerState) -> Result<String> {
        Err(Error::Config(format!(
            "the {} backend has no power controls for {state}",
            self.name()
        )))
    }

    /// Copies the first `bytes` of `src` into `dst`, buffers of this
    /// backend on two memory nodes, without the host, where the devices
    /// can (two OpenCL units on one context); returns once the copy is
    /// done. `None` when they cannot: the runtime copies through the host.
    fn copy(&self, _src: &DeviceBuffer, _dst: &DeviceBuffer, _bytes: usize) -> Option<Result<()>> {
        None
    }

    /// A buffer of `bytes` at `offset` inside `allocation` (a buffer this
    /// backend allocated, never a view) that shares its memory: what a
    /// contiguous part of a partitioned tensor gets where its whole has
    /// storage (see [`DeviceBuffer::view`]). `None` where the device does
    /// not allow a view there (an offset off the device's alignment for
    /// storage bindings or sub-buffers) or the backend has no views: the
    /// part then gets a buffer of its own.
    fn view(
        &self,
        _allocation: &Arc<DeviceBuffer>,
        _offset: usize,
        _bytes: usize,
    ) -> Option<Result<DeviceBuffer>> {
        None
    }

    /// Bytes of device memory `memory` that the device API itself reports
    /// taken (its allocator's view, which includes blocks reserved beyond
    /// the runtime's buffers), where the API can tell; `None` otherwise.
    /// Monitoring only: the runtime's own accounting is in the memory node.
    fn device_memory_in_use(&self, _memory: usize) -> Option<u64> {
        None
    }
}
