//! User CPU kernels as C function pointers: registered by name, placed on
//! CPU units, ordered and profiled like any kernel.

use std::ffi::{c_char, c_int, c_void};

use crate::runtime::XpuRuntime;
use crate::status::{guard, reference, slice, text, Failure, XpuStatus};
use crate::tensor::XpuDtype;

/// How a task accesses a tensor.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XpuMode {
    /// Read only.
    Read = 0,
    /// Write only: the previous content is not needed.
    Write = 1,
    /// Read and write.
    ReadWrite = 2,
}

impl XpuMode {
    /// The runtime's mode for a value C passed (which may be any integer).
    pub(crate) fn checked(raw: u32) -> Result<xpu::Mode, Failure> {
        Ok(match raw {
            0 => xpu::Mode::Read,
            1 => xpu::Mode::Write,
            2 => xpu::Mode::ReadWrite,
            other => {
                return Err(Failure::invalid(format!(
                    "{other} is not an XpuMode (0 to 2)"
                )))
            }
        })
    }

    fn of(mode: xpu::Mode) -> XpuMode {
        match mode {
            xpu::Mode::Read => XpuMode::Read,
            xpu::Mode::Write => XpuMode::Write,
            xpu::Mode::ReadWrite => XpuMode::ReadWrite,
        }
    }
}

/// One argument as a user kernel sees it: host memory it may read (and
/// write, unless `mode` is `XPU_MODE_READ`), valid during the call only.
#[repr(C)]
pub struct XpuBuffer {
    pub data: *mut c_void,
    pub bytes: usize,
    pub shape: *const usize,
    pub ndim: usize,
    pub dtype: XpuDtype,
    pub mode: XpuMode,
}

/// A user CPU kernel: called with its `user_data` and the task's arguments
/// in the order they were registered; returns 0 on success, anything else
/// to fail the task (the number is in the task's error). It runs on the
/// runtime's worker threads, possibly several calls at once, so it must be
/// thread-safe.
pub type XpuCpuKernelFn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, args: *const XpuBuffer, nargs: usize) -> c_int,
>;

/// The user's pointer, handed back to the kernel on whichever worker runs it.
struct UserData(*mut c_void);
// SAFETY: the header requires a kernel and its user_data to be safe to use
// from any thread at once.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

/// Registers a CPU kernel `name` taking `nmodes` arguments accessed as
/// `modes` (each an `XpuMode`): tasks then name it in `xpu_submit`. The
/// runtime checks the argument count and modes at submission. A name of a
/// built-in kernel, or one already registered, is refused. `user_data` must
/// live as long as the runtime.
///
/// # Safety
/// `rt` must be live; `name` a NUL-terminated string; `modes` must point to
/// `nmodes` values; `kernel` must be safe to call from any thread with
/// `user_data`.
#[no_mangle]
pub unsafe extern "C" fn xpu_register_cpu_kernel(
    rt: *const XpuRuntime,
    name: *const c_char,
    modes: *const u32,
    nmodes: usize,
    kernel: XpuCpuKernelFn,
    user_data: *mut c_void,
) -> XpuStatus {
    guard("xpu_register_cpu_kernel", || {
        let r = reference(rt, "rt")?;
        let name = text(name, "name")?;
        let modes = slice(modes, nmodes, "modes")?
            .iter()
            .map(|&m| XpuMode::checked(m))
            .collect::<Result<Vec<_>, _>>()?;
        let f = kernel.ok_or_else(|| Failure::invalid("`kernel` is NULL"))?;
        let data = UserData(user_data);
        let def = xpu::Kernel::define(name, &modes).cpu(move |args| {
            let buffers = args
                .iter_mut()
                .map(|a| {
                    let (data, bytes) = match &mut a.data {
                        xpu::ArgData::HostMut(b) => (b.as_mut_ptr().cast::<c_void>(), b.len()),
                        xpu::ArgData::Host(b) => (b.as_ptr().cast_mut().cast::<c_void>(), b.len()),
                        xpu::ArgData::Device(_) => {
                            return Err(a.error("is a device buffer, expected host memory"))
                        }
                    };
                    Ok(XpuBuffer {
                        data,
                        bytes,
                        shape: a.shape.as_ptr(),
                        ndim: a.shape.len(),
                        dtype: XpuDtype::of(a.dtype),
                        mode: XpuMode::of(a.mode),
                    })
                })
                .collect::<xpu::Result<Vec<_>>>()?;
            let data = &data;
            // SAFETY: the buffers point into the task's replicas, valid and
            // ordered by the task graph for the call's duration.
            let code = unsafe { f(data.0, buffers.as_ptr(), buffers.len()) };
            if code == 0 {
                Ok(())
            } else {
                Err(xpu::Error::Device {
                    backend: "cpu".into(),
                    message: format!("the C kernel returned {code}"),
                })
            }
        });
        r.rt.register(def)?;
        Ok(())
    })
}
