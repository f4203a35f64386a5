//! xpu's errors as Python exceptions: every one is an `xpu.XpuError`
//! carrying xpu's message; the common kinds have their own subclass.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(xpu, XpuError, PyException, "An error from the xpu runtime.");
create_exception!(
    xpu,
    ShapeError,
    XpuError,
    "Shapes that do not fit a kernel, or data of the wrong size."
);
create_exception!(
    xpu,
    DTypeError,
    XpuError,
    "A dtype a kernel cannot use, or that has no tensor type."
);
create_exception!(
    xpu,
    UnknownKernelError,
    XpuError,
    "A kernel name or parameter that no kernel has."
);
create_exception!(
    xpu,
    TaskError,
    XpuError,
    "A task failed, or did not run because a task it depends on failed."
);

/// The exception for an xpu error.
pub fn to_py(e: xpu::Error) -> PyErr {
    use xpu::Error as E;
    let message = e.to_string();
    match e {
        E::ArgCount { .. } | E::Shape { .. } | E::DataLength { .. } | E::ByteLength { .. } => {
            ShapeError::new_err(message)
        }
        E::DType { .. } | E::ReadDType { .. } => DTypeError::new_err(message),
        E::KernelSpec { .. } => UnknownKernelError::new_err(message),
        E::KernelFailed { .. }
        | E::DependencyFailed { .. }
        | E::Poisoned { .. }
        | E::Cancelled { .. } => TaskError::new_err(message),
        _ => XpuError::new_err(message),
    }
}

/// Adds the exception classes to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("XpuError", py.get_type::<XpuError>())?;
    m.add("ShapeError", py.get_type::<ShapeError>())?;
    m.add("DTypeError", py.get_type::<DTypeError>())?;
    m.add("UnknownKernelError", py.get_type::<UnknownKernelError>())?;
    m.add("TaskError", py.get_type::<TaskError>())?;
    Ok(())
}
