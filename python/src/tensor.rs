//! The `Tensor` and `Access` classes.

use pyo3::prelude::*;
use xpu::Mode;

use crate::array::numpy_name;

/// A tensor: a shape, a dtype and its data wherever the runtime keeps it.
/// Made by `Runtime.tensor`, `Runtime.zeros` or `Runtime.empty`; read back
/// with `Runtime.read`.
#[pyclass(module = "xpu", frozen)]
pub struct Tensor {
    pub tensor: xpu::Tensor,
}

#[pymethods]
impl Tensor {
    /// The tensor accessed read-only by a task.
    fn read(&self) -> Access {
        self.access(Mode::Read)
    }

    /// The tensor written by a task (its previous content is not needed).
    fn write(&self) -> Access {
        self.access(Mode::Write)
    }

    /// The tensor read and written by a task.
    fn rw(&self) -> Access {
        self.access(Mode::ReadWrite)
    }

    /// Its shape, as a tuple.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.tensor.shape().to_vec()
    }

    /// numpy's name of its dtype (`"float32"`, ...).
    #[getter]
    fn dtype(&self) -> &'static str {
        numpy_name(self.tensor.dtype())
    }

    /// Its name, if it was given one.
    #[getter]
    fn name(&self) -> Option<String> {
        self.tensor.name().map(str::to_string)
    }

    /// Its size in bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.tensor.nbytes()
    }

    fn __repr__(&self) -> String {
        format!(
            "Tensor({}, shape={:?}, dtype={})",
            self.tensor.label(),
            self.tensor.shape(),
            numpy_name(self.tensor.dtype())
        )
    }
}

impl Tensor {
    fn access(&self, mode: Mode) -> Access {
        Access {
            access: self.tensor.access(mode),
        }
    }
}

/// A tensor and how a task accesses it: `t.read()`, `t.write()`, `t.rw()`.
#[pyclass(module = "xpu", frozen)]
pub struct Access {
    pub access: xpu::Access,
}

#[pymethods]
impl Access {
    fn __repr__(&self) -> String {
        format!("Access({})", self.access.meta())
    }
}
