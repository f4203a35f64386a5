//! Tensors made from host buffers, and reading them back.

use std::ffi::c_void;

use crate::runtime::XpuRuntime;
use crate::status::{guard, hand_out, reference, slice, Failure, XpuStatus};

/// A tensor: a shape, a dtype and its data wherever the runtime keeps it.
/// Opaque; made by `xpu_tensor_new`, freed by `xpu_tensor_free` (tasks
/// already submitted on it keep its data alive until they finish).
pub struct XpuTensor {
    pub(crate) tensor: xpu::Tensor,
}

/// Element types.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XpuDtype {
    F32 = 0,
    F64 = 1,
    F16 = 2,
    Bf16 = 3,
    U8 = 4,
    U32 = 5,
}

impl XpuDtype {
    /// The runtime's dtype for a value C passed (which may be any integer).
    pub(crate) fn checked(raw: u32) -> Result<xpu::DType, Failure> {
        Ok(match raw {
            0 => xpu::DType::F32,
            1 => xpu::DType::F64,
            2 => xpu::DType::F16,
            3 => xpu::DType::BF16,
            4 => xpu::DType::U8,
            5 => xpu::DType::U32,
            other => {
                return Err(Failure::invalid(format!(
                    "{other} is not an XpuDtype (0 to 5)"
                )))
            }
        })
    }

    pub(crate) fn of(dtype: xpu::DType) -> XpuDtype {
        match dtype {
            xpu::DType::F32 => XpuDtype::F32,
            xpu::DType::F64 => XpuDtype::F64,
            xpu::DType::F16 => XpuDtype::F16,
            xpu::DType::BF16 => XpuDtype::Bf16,
            xpu::DType::U8 => XpuDtype::U8,
            xpu::DType::U32 => XpuDtype::U32,
        }
    }
}

/// Makes a tensor of `dtype` and shape `shape[0..ndim]` in `*out`.
/// `data` is copied: `bytes` of it, which must be exactly the tensor's
/// size (the product of the shape times the dtype's size); a NULL `data`
/// (with `bytes` 0) makes a zero-filled tensor. `dtype` is an `XpuDtype`.
///
/// # Safety
/// `rt` must be a live runtime; `shape` must point to `ndim` sizes; a
/// non-null `data` must point to `bytes` readable bytes; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_tensor_new(
    rt: *const XpuRuntime,
    dtype: u32,
    shape: *const usize,
    ndim: usize,
    data: *const c_void,
    bytes: usize,
    out: *mut *mut XpuTensor,
) -> XpuStatus {
    guard("xpu_tensor_new", || {
        let r = reference(rt, "rt")?;
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        let dtype = XpuDtype::checked(dtype)?;
        let shape = slice(shape, ndim, "shape")?;
        let tensor = if data.is_null() && bytes == 0 {
            r.rt.zeros(shape, dtype)?
        } else {
            let data = slice(data.cast::<u8>(), bytes, "data")?;
            r.rt.tensor_from_bytes(shape, dtype, data)?
        };
        hand_out(out, XpuTensor { tensor });
        Ok(())
    })
}

/// The tensor's size in bytes (0 if `t` is NULL).
///
/// # Safety
/// `t` must be NULL or a live tensor.
#[no_mangle]
pub unsafe extern "C" fn xpu_tensor_bytes(t: *const XpuTensor) -> usize {
    t.as_ref().map_or(0, |t| t.tensor.nbytes())
}

/// The tensor's dtype.
///
/// # Safety
/// `t` must be a live tensor.
#[no_mangle]
pub unsafe extern "C" fn xpu_tensor_dtype(t: *const XpuTensor, out: *mut XpuDtype) -> XpuStatus {
    guard("xpu_tensor_dtype", || {
        let t = reference(t, "t")?;
        let out = out
            .as_mut()
            .ok_or_else(|| Failure::invalid("`out` is NULL"))?;
        *out = XpuDtype::of(t.tensor.dtype());
        Ok(())
    })
}

/// Waits for the tasks that write `t` and copies its content into `dst`,
/// which must hold exactly `xpu_tensor_bytes(t)` bytes. Fails with
/// `XPU_STATUS_DEPENDENCY_FAILED` if a task that writes it failed.
///
/// # Safety
/// `rt` and `t` must be live; `dst` must point to `bytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn xpu_tensor_read(
    rt: *const XpuRuntime,
    t: *const XpuTensor,
    dst: *mut c_void,
    bytes: usize,
) -> XpuStatus {
    guard("xpu_tensor_read", || {
        let r = reference(rt, "rt")?;
        let t = reference(t, "t")?;
        if dst.is_null() {
            return Err(Failure::invalid("`dst` is NULL"));
        }
        let dst = std::slice::from_raw_parts_mut(dst.cast::<u8>(), bytes);
        r.rt.read_into(&t.tensor, dst)?;
        Ok(())
    })
}

/// Frees a tensor handle. NULL does nothing.
///
/// # Safety
/// `t` must be NULL or a tensor not yet freed.
#[no_mangle]
pub unsafe extern "C" fn xpu_tensor_free(t: *mut XpuTensor) {
    if !t.is_null() {
        guard("xpu_tensor_free", || {
            drop(Box::from_raw(t));
            Ok(())
        });
    }
}
