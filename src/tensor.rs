//! Tensor handles: logical tensors whose data lives in replicas on memory
//! nodes, with the dependency state that orders the tasks touching them.

use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use crate::dtype::DType;
use crate::graph::{DepState, FailureSlot};
use crate::kernel::{ArgMeta, Mode};
use crate::memory::{MemoryManager, ReplicaSet};
use crate::partition::FamilyLink;

pub(crate) struct TensorInner {
    pub id: u64,
    /// A name given by the caller, shown in errors and traces.
    pub name: OnceLock<Arc<str>>,
    pub runtime: u64,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub deps: Mutex<DepState>,
    pub replicas: Mutex<ReplicaSet>,
    /// Woken when an allocation of one of its device replicas ends, placed
    /// or failed: a task that found it under way then takes the buffer
    /// (or allocates itself), so a tensor is never allocated twice on a node.
    pub storage_placed: Condvar,
    /// Set when the last task that wrote this tensor failed.
    pub poison: FailureSlot,
    pub memory: Arc<MemoryManager>,
    /// Its partitioned family, once it is partitioned or is a part.
    pub family: OnceLock<FamilyLink>,
}

impl TensorInner {
    /// The error a reader gets when the task that last wrote it failed.
    pub fn unpoisoned(&self) -> crate::Result<()> {
        match self.poison.get() {
            Some((failed_task, cause)) => Err(crate::Error::Poisoned {
                tensor: self.label(),
                failed_task,
                cause: Box::new(cause),
            }),
            None => Ok(()),
        }
    }

    pub fn nbytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }

    /// How errors name this tensor.
    pub fn label(&self) -> TensorLabel {
        TensorLabel {
            id: self.id,
            name: self.name.get().map(|n| n.to_string()),
        }
    }
}

/// A tensor as errors and traces name it: its id and, when it was given
/// one with [`Tensor::named`], its name.
///
/// ```
/// let label = xpu::TensorLabel { id: 7, name: Some("weights".into()) };
/// assert_eq!(label.to_string(), "tensor 7 `weights`");
/// let anonymous = xpu::TensorLabel { id: 8, name: None };
/// assert_eq!(anonymous.to_string(), "tensor 8");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorLabel {
    pub id: u64,
    pub name: Option<String>,
}

impl std::fmt::Display for TensorLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "tensor {} `{name}`", self.id),
            None => write!(f, "tensor {}", self.id),
        }
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
    /// Gives the tensor a name, shown in every error and trace that
    /// mentions it. A tensor is named once: a second name is ignored.
    ///
    /// ```
    /// let rt = xpu::Runtime::builder().build()?;
    /// let w = rt.tensor(&[2], vec![1.0f32, 2.0])?.named("weights");
    /// assert_eq!(w.name(), Some("weights"));
    /// let err = rt.read::<f64>(&w).unwrap_err();
    /// assert!(err.to_string().contains("`weights`"), "{err}");
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn named(self, name: &str) -> Tensor {
        if self.inner.name.set(Arc::from(name)).is_ok() {
            self.inner.memory.name_tensor(self.inner.id, name);
        }
        self
    }
    /// The name given with [`Tensor::named`].
    pub fn name(&self) -> Option<&str> {
        self.inner.name.get().map(|n| &**n)
    }
    /// How errors and traces name it.
    pub fn label(&self) -> TensorLabel {
        self.inner.label()
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
        write!(f, "Tensor#{}", self.inner.id)?;
        if let Some(name) = self.name() {
            write!(f, " `{name}`")?;
        }
        write!(f, "({:?}, {})", self.inner.shape, self.inner.dtype)
    }
}

/// A tensor and how a task uses it.
#[derive(Clone, Debug)]
pub struct Access {
    pub tensor: Tensor,
    pub mode: Mode,
}

impl Access {
    /// Its shape, dtype and mode, as kernels, backends and the
    /// performance models see them.
    pub fn meta(&self) -> ArgMeta<'_> {
        ArgMeta {
            shape: &self.tensor.inner.shape,
            dtype: self.tensor.inner.dtype,
            mode: self.mode,
        }
    }
}
