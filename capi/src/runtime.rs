//! Creating and freeing a runtime, its options, its units, waiting for
//! every task.

use std::ffi::{c_char, CString};

use crate::status::{guard, hand_out, reference, Failure, XpuStatus};

/// A runtime: units, their workers, and the tensors and tasks made on it.
/// Opaque; made by `xpu_runtime_new`, freed by `xpu_runtime_free`.
pub struct XpuRuntime {
    pub(crate) rt: xpu::Runtime,
    /// The units' names as C strings, made once so that pointers handed
    /// out stay valid for the runtime's life.
    names: Vec<[CString; 3]>,
}

/// How to build a runtime; fill it with `xpu_runtime_options_default`
/// first, then change what you need.
#[repr(C)]
pub struct XpuRuntimeOptions {
    /// A scheduling policy: "eager", "round-robin", "work-stealing",
    /// "dmda", "dmdas" or "energy" (at most 1.2x slower than dmda); NULL
    /// for the default (dmda).
    pub policy: *const c_char,
    /// Number of CPU units; 0 for one per core.
    pub cpu_units: usize,
    /// Whether to look for devices besides the CPU (GPUs, and the units of
    /// the other backends compiled in).
    pub device_discovery: bool,
    /// Whether to record every task for profiles (a few ns per task).
    pub profiling: bool,
}

/// One processing unit. Its strings belong to the runtime and live as long
/// as it does.
#[repr(C)]
pub struct XpuUnitInfo {
    /// Its index, as `xpu_unit_info` takes it.
    pub id: usize,
    /// "cpu", "gpu", "tpu", "npu", "lpu", "fpga" or "vpu".
    pub kind: *const c_char,
    /// The backend that runs it: "cpu", "wgpu", "opencl", "candle".
    pub backend: *const c_char,
    /// The device's own name.
    pub device: *const c_char,
    /// True when the device is not the hardware its kind names.
    pub emulated: bool,
    /// True when the unit is out of service (its device was lost).
    pub down: bool,
    /// The memory node it computes on (0 is host memory).
    pub node: usize,
}

/// Fills `out` with the defaults: the default policy, one CPU unit per
/// core, device discovery and profiling on.
///
/// # Safety
/// `out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_runtime_options_default(out: *mut XpuRuntimeOptions) -> XpuStatus {
    guard("xpu_runtime_options_default", || {
        let out = out
            .as_mut()
            .ok_or_else(|| Failure::invalid("`out` is NULL"))?;
        *out = XpuRuntimeOptions {
            policy: std::ptr::null(),
            cpu_units: 0,
            device_discovery: true,
            profiling: true,
        };
        Ok(())
    })
}

/// Builds a runtime: discovers units and starts their workers. `options`
/// may be NULL for the defaults. On success `*out` is the runtime, which
/// the caller frees with `xpu_runtime_free`.
///
/// # Safety
/// `options` must be NULL or point to options whose `policy` is NULL or a
/// NUL-terminated string; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_runtime_new(
    options: *const XpuRuntimeOptions,
    out: *mut *mut XpuRuntime,
) -> XpuStatus {
    guard("xpu_runtime_new", || {
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        let mut builder = xpu::Runtime::builder();
        if let Some(o) = options.as_ref() {
            if !o.policy.is_null() {
                let name = crate::status::text(o.policy, "options.policy")?;
                builder = builder.policy(xpu::Policy::parse(name)?);
            }
            if o.cpu_units > 0 {
                builder = builder.cpu_units(o.cpu_units);
            }
            builder = builder
                .device_discovery(o.device_discovery)
                .profiling(o.profiling);
        }
        let rt = builder.build()?;
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let names = rt
            .units()
            .iter()
            .map(|u| [c(&u.kind.to_string()), c(&u.backend), c(&u.device)])
            .collect();
        hand_out(out, XpuRuntime { rt, names });
        Ok(())
    })
}

/// Waits for every task, stops the workers and frees the runtime. Tensors
/// and tasks made on it must not be used afterwards (freeing them is still
/// allowed). NULL does nothing.
///
/// # Safety
/// `rt` must be NULL or a runtime from `xpu_runtime_new`, not yet freed,
/// that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn xpu_runtime_free(rt: *mut XpuRuntime) {
    if !rt.is_null() {
        guard("xpu_runtime_free", || {
            let runtime = Box::from_raw(rt);
            runtime.rt.wait_all();
            runtime.rt.shutdown();
            Ok(())
        });
    }
}

/// The number of units (0 if `rt` is NULL).
///
/// # Safety
/// `rt` must be NULL or a live runtime.
#[no_mangle]
pub unsafe extern "C" fn xpu_unit_count(rt: *const XpuRuntime) -> usize {
    rt.as_ref().map_or(0, |r| r.rt.units().len())
}

/// Describes unit `index` (0 to `xpu_unit_count() - 1`) in `*out`.
///
/// # Safety
/// `rt` must be a live runtime; `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_unit_info(
    rt: *const XpuRuntime,
    index: usize,
    out: *mut XpuUnitInfo,
) -> XpuStatus {
    guard("xpu_unit_info", || {
        let r = reference(rt, "rt")?;
        let out = out
            .as_mut()
            .ok_or_else(|| Failure::invalid("`out` is NULL"))?;
        let (Some(unit), Some(names)) = (r.rt.units().get(index), r.names.get(index)) else {
            return Err(Failure::invalid(format!(
                "no unit {index}: the runtime has {}",
                r.rt.units().len()
            )));
        };
        *out = XpuUnitInfo {
            id: unit.id,
            kind: names[0].as_ptr(),
            backend: names[1].as_ptr(),
            device: names[2].as_ptr(),
            emulated: unit.emulated,
            down: unit.is_down(),
            node: unit.node,
        };
        Ok(())
    })
}

/// Waits until every task submitted so far has finished (failed ones
/// included: their errors come from `xpu_task_wait` and from reading what
/// they wrote).
///
/// # Safety
/// `rt` must be a live runtime.
#[no_mangle]
pub unsafe extern "C" fn xpu_wait_all(rt: *const XpuRuntime) -> XpuStatus {
    guard("xpu_wait_all", || {
        reference(rt, "rt")?.rt.wait_all();
        Ok(())
    })
}
