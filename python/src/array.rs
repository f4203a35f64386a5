//! numpy arrays into tensors and tensors into numpy arrays, and the dtype
//! names Python code uses.

use std::sync::Arc;

use numpy::ndarray::{ArrayD, ArrayViewD, IxDyn};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use xpu::{DType, Element};

use crate::errors::{to_py, DTypeError};

/// The dtype a name means: numpy's (`float32`, `uint8`, ...) or xpu's
/// (`f32`, `u8`, ...).
pub fn parse_dtype(name: &str) -> PyResult<DType> {
    let xpu_name = match name {
        "float32" => "f32",
        "float64" => "f64",
        "float16" => "f16",
        "bfloat16" => "bf16",
        "uint8" => "u8",
        "uint32" => "u32",
        other => other,
    };
    DType::parse(xpu_name).map_err(|_| {
        DTypeError::new_err(format!(
            "unknown dtype `{name}` (expected float32, float64, float16, uint8 or uint32)"
        ))
    })
}

/// numpy's name of a dtype.
pub fn numpy_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::U8 => "uint8",
        DType::U32 => "uint32",
    }
}

/// A tensor holding a copy of `array` (any numpy array, or anything
/// `numpy.ascontiguousarray` takes, such as a list).
pub fn tensor_from(rt: &xpu::Runtime, array: &Bound<'_, PyAny>) -> PyResult<xpu::Tensor> {
    let py = array.py();
    let contiguous = py
        .import("numpy")?
        .call_method1("ascontiguousarray", (array,))?;
    let untyped = contiguous.cast::<PyUntypedArray>()?;
    macro_rules! copy_as {
        ($($t:ty),*) => {$(
            if let Ok(typed) = untyped.cast::<PyArrayDyn<$t>>() {
                let view = typed.readonly();
                let values = view.as_slice().map_err(|e| DTypeError::new_err(e.to_string()))?;
                return rt.tensor(untyped.shape(), values).map_err(to_py);
            }
        )*};
    }
    copy_as!(f32, f64, half::f16, u8, u32);
    Err(DTypeError::new_err(format!(
        "numpy dtype {} has no tensor type (use float32, float64, float16, uint8 or uint32)",
        untyped.dtype()
    )))
}

/// A tensor's host copy lent to numpy: it keeps the view (and so the
/// buffer) alive as long as an array uses it.
#[pyclass(module = "xpu", frozen)]
pub struct HostBytes {
    _view: xpu::HostView,
}

/// Waits for `t`'s writers (without the GIL) and returns its content as a
/// numpy array of its shape and dtype: by default a read-only array over
/// the tensor's host copy itself (no copy; later tasks that write the
/// tensor write elsewhere, so the array never changes), with `writable` a
/// copy of its own.
pub fn read(
    py: Python<'_>,
    rt: &Arc<xpu::Runtime>,
    t: &xpu::Tensor,
    writable: bool,
) -> PyResult<Py<PyAny>> {
    fn read_as<T: Element + numpy::Element>(
        py: Python<'_>,
        rt: &Arc<xpu::Runtime>,
        t: &xpu::Tensor,
        writable: bool,
    ) -> PyResult<Py<PyAny>> {
        if writable {
            let values = py.detach(|| rt.read::<T>(t)).map_err(to_py)?;
            let array = ArrayD::from_shape_vec(IxDyn(t.shape()), values)
                .map_err(|e| DTypeError::new_err(e.to_string()))?;
            return Ok(PyArrayDyn::from_owned_array(py, array).into_any().unbind());
        }
        let view = py.detach(|| rt.view(t)).map_err(to_py)?;
        let values: &[T] = bytemuck::try_cast_slice(view.bytes())
            .map_err(|e| DTypeError::new_err(format!("{}: {e:?}", t.label())))?;
        let ptr = values.as_ptr();
        let container = Bound::new(py, HostBytes { _view: view })?;
        // SAFETY: `ptr` points to the view's buffer, aligned for `T` (host
        // buffers are 64-byte aligned) and holding the tensor's elements;
        // the container keeps the buffer alive and unwritten as long as
        // the array lives, and the array is made read-only below.
        let array = unsafe {
            let shaped = ArrayViewD::from_shape_ptr(IxDyn(t.shape()), ptr);
            PyArrayDyn::borrow_from_array(&shaped, container.into_any())
        };
        array.getattr("flags")?.setattr("writeable", false)?;
        Ok(array.into_any().unbind())
    }
    match t.dtype() {
        DType::F32 => read_as::<f32>(py, rt, t, writable),
        DType::F64 => read_as::<f64>(py, rt, t, writable),
        DType::F16 => read_as::<half::f16>(py, rt, t, writable),
        DType::U8 => read_as::<u8>(py, rt, t, writable),
        DType::U32 => read_as::<u32>(py, rt, t, writable),
        DType::BF16 => Err(DTypeError::new_err(format!(
            "{} is bf16, which numpy has no dtype for",
            t.label()
        ))),
    }
}
