//! Tensor handles: logical tensors whose data lives in replicas on memory
//! nodes, with the dependency state that orders the tasks touching them.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::dtype::DType;
use crate::graph::{DepState, FailureSlot};
use crate::kernel::Mode;
use crate::memory::{MemoryManager, ReplicaSet};

pub(crate) struct TensorInner {
    pub id: u64,
    pub runtime: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub deps: Mutex<DepState>,
    pub replicas: Mutex<ReplicaSet>,
    /// Set when the last task that wrote this tensor failed.
    pub poison: FailureSlot,
    pub memory: Arc<MemoryManager>,
}

impl TensorInner {
    pub fn nbytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

impl Drop for TensorInner {
    fn drop(&mut self) {
        self.memory.free(self.id, self.replicas.get_mut());
    }
}

/// A handle to a tensor registered with a [`Runtime`](crate::Runtime).
///
/// Cloning is cheap and gives another handle to the same data. The data is
/// freed when the last handle is dropped and no pending task uses it.
///
/// ```
/// let rt = xpu::Runtime::builder().build()?;
/// let t = rt.tensor(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0])?;
/// assert_eq!(t.shape(), &[2, 2]);
/// assert_eq!(t.dtype(), xpu::DType::F32);
/// # Ok::<(), xpu::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor {
    pub(crate) inner: Arc<TensorInner>,
}

impl Tensor {
    /// A unique id within the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.inner.shape
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.inner.dtype
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.inner.shape.iter().product()
    }
    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size of the data in bytes.
    pub fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }
    /// A read access, for [`Runtime::submit`](crate::Runtime::submit).
    pub fn read(&self) -> Access {
        self.access(Mode::Read)
    }
    /// A write access: the previous content is not needed.
    pub fn write(&self) -> Access {
        self.access(Mode::Write)
    }
    /// A read-write access.
    pub fn rw(&self) -> Access {
        self.access(Mode::ReadWrite)
    }
    /// An access with the given mode.
    pub fn access(&self, mode: Mode) -> Access {
        Access {
            tensor: self.clone(),
            mode,
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor#{}({:?}, {})",
            self.inner.id, self.inner.shape, self.inner.dtype
        )
    }
}

/// A tensor and how a task uses it.
#[derive(Clone, Debug)]
pub struct Access {
    pub tensor: Tensor,
    pub mode: Mode,
}
