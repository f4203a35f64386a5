//! Tensors from and into `ndarray` arrays (feature `ndarray`), since Rust
//! users hold their data there.
//!
//! ```
//! use ndarray::array;
//! use xpu::{DType, Kernel, Runtime};
//!
//! let rt = Runtime::builder().device_discovery(false).build()?;
//! let a = rt.tensor_from(&array![[1.0f32, 0.0], [0.0, 2.0]])?;
//! let b = rt.tensor_from(&array![[1.0f32, 2.0], [3.0, 4.0]].t())?; // any layout
//! let c = rt.zeros(&[2, 2], DType::F32)?;
//! rt.submit(&Kernel::gemm(), &[a.read(), b.read(), c.write()])?;
//! let out = rt.read_array::<f32>(&c)?;
//! assert_eq!(out, array![[1.0f32, 3.0], [4.0, 8.0]].into_dyn());
//! # Ok::<(), xpu::Error>(())
//! ```

use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::tensor::Tensor;

impl Runtime {
    /// A tensor holding a copy of `array` in row-major order (an array in
    /// another layout is copied into that order; a row-major one is copied
    /// once, straight from its memory).
    pub fn tensor_from<S, D, T>(&self, array: &ArrayBase<S, D>) -> Result<Tensor>
    where
        S: Data<Elem = T>,
        D: Dimension,
        T: Element,
    {
        match array.as_slice() {
            Some(values) => self.tensor(array.shape(), values),
            None => self.tensor(array.shape(), array.iter().copied().collect::<Vec<T>>()),
        }
    }

    /// [`Runtime::read`] as an array of the tensor's shape.
    pub fn read_array<T: Element>(&self, t: &Tensor) -> Result<ArrayD<T>> {
        let values = self.read::<T>(t)?;
        ArrayD::from_shape_vec(IxDyn(t.shape()), values)
            .map_err(|e| Error::Config(format!("{} as an array: {e}", t.label())))
    }
}
