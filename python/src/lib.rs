//! The native module of the `xpu` Python package (`xpu._native`, re-exported
//! by `xpu/__init__.py`): a thin layer over xpu's public Rust API.
//!
//! | module | owns |
//! | --- | --- |
//! | `errors` | the exception classes and how xpu's errors map to them |
//! | `array` | numpy arrays in and out of tensors, dtype names |
//! | `runtime` | the `Runtime`, `Unit`, `Task` and `Profile` classes |
//! | `tensor` | the `Tensor` and `Access` classes |

use pyo3::prelude::*;

mod array;
mod errors;
mod runtime;
mod tensor;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Mesa's Vulkan device-select layer prints XDG_RUNTIME_DIR errors where
    // no desktop session runs; xpu enumerates every adapter itself. Set at
    // import, before the module starts any thread.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    m.add_class::<runtime::Runtime>()?;
    m.add_class::<runtime::Unit>()?;
    m.add_class::<runtime::Task>()?;
    m.add_class::<runtime::Profile>()?;
    m.add_class::<tensor::Tensor>()?;
    m.add_class::<tensor::Access>()?;
    m.add_class::<array::HostBytes>()?;
    errors::add(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
