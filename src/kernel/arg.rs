//! What a kernel launch gets: one [`Arg`] per tensor access, its data in
//! host memory or in a backend's [`DeviceBuffer`], with errors that name
//! the argument.

use std::any::Any;
use std::sync::Arc;

use super::{ArgMeta, Mode};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A buffer in a backend's device memory. The runtime only stores it and
/// hands it back; the backend puts whatever it needs inside.
///
/// A buffer may be a *view*: bytes inside another buffer (its
/// allocation), sharing its memory, as a contiguous part of a
/// partitioned tensor shares its whole's ([`Backend::view`](crate::backend::Backend::view)).
/// A view keeps its allocation alive and owns no memory of its own.
pub struct DeviceBuffer {
    bytes: usize,
    handle: Box<dyn Any + Send + Sync>,
    /// For a view: its allocation (never itself a view) and where in it.
    within: Option<(Arc<DeviceBuffer>, usize)>,
}

impl DeviceBuffer {
    /// Wraps a backend's buffer of `bytes` bytes.
    pub fn new<T: Any + Send + Sync>(bytes: usize, handle: T) -> DeviceBuffer {
        DeviceBuffer {
            bytes,
            handle: Box::new(handle),
            within: None,
        }
    }

    /// Wraps a backend's view of `bytes` bytes at `offset` in
    /// `allocation` (the allocation of `allocation`, if that is a view
    /// too, with the offsets added).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use xpu::DeviceBuffer;
    /// // The handles are the backend's own (here nothing).
    /// let whole = Arc::new(DeviceBuffer::new(4096, ()));
    /// let half = Arc::new(DeviceBuffer::view(&whole, 2048, 2048, ()));
    /// let quarter = DeviceBuffer::view(&half, 1024, 1024, ());
    /// let (allocation, offset) = quarter.within().unwrap();
    /// assert!(Arc::ptr_eq(allocation, &whole) && offset == 3072);
    /// assert!(quarter.is_view() && !whole.is_view());
    /// ```
    pub fn view<T: Any + Send + Sync>(
        allocation: &Arc<DeviceBuffer>,
        offset: usize,
        bytes: usize,
        handle: T,
    ) -> DeviceBuffer {
        DeviceBuffer {
            bytes,
            handle: Box::new(handle),
            within: Some(allocation.locate(offset)),
        }
    }

    /// Where the byte at `offset` in this buffer lies: in its allocation
    /// (the buffer itself, unless it is a view), at the returned offset.
    pub fn locate(self: &Arc<Self>, offset: usize) -> (Arc<DeviceBuffer>, usize) {
        match &self.within {
            Some((allocation, start)) => (allocation.clone(), start + offset),
            None => (self.clone(), offset),
        }
    }

    /// For a view, the buffer whose memory it shares and its offset there.
    pub fn within(&self) -> Option<(&Arc<DeviceBuffer>, usize)> {
        self.within.as_ref().map(|(a, offset)| (a, *offset))
    }

    /// True for a view (see [`DeviceBuffer::view`]).
    pub fn is_view(&self) -> bool {
        self.within.is_some()
    }

    /// The buffer's size in bytes (may exceed the tensor it holds: buffers
    /// are reused by size class).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The backend's handle, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }

    /// The backend's handle, or a device error naming the backend.
    pub fn handle<T: Any>(&self, backend: &str) -> Result<&T> {
        self.downcast_ref().ok_or_else(|| Error::Device {
            backend: backend.to_string(),
            message: "buffer was not made by this backend".to_string(),
        })
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({} bytes)", self.bytes)
    }
}

/// The data of one kernel argument.
pub enum ArgData<'a> {
    /// Host memory, read only.
    Host(&'a [u8]),
    /// Host memory, writable.
    HostMut(&'a mut [u8]),
    /// A buffer on the unit's device memory.
    Device(&'a DeviceBuffer),
}

/// One argument of a kernel launch: its position, the tensor's name, shape
/// and dtype, and where its valid replica is.
pub struct Arg<'a> {
    /// Its position in the task's access list.
    pub index: usize,
    /// The tensor's name, if it was given one.
    pub name: Option<&'a str>,
    pub shape: &'a [usize],
    pub dtype: DType,
    /// How the task accesses it: a backend writes back only written arguments.
    pub mode: Mode,
    pub data: ArgData<'a>,
}

impl<'a> Arg<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its shape, dtype and mode, as [`Kernel::check`](super::Kernel::check)
    /// and `Backend::supports` see them.
    pub fn meta(&self) -> ArgMeta<'a> {
        ArgMeta {
            shape: self.shape,
            dtype: self.dtype,
            mode: self.mode,
        }
    }

    /// The same argument over other data, e.g. a backend's private copy
    /// of a device buffer in host memory.
    pub fn with_data<'b>(&self, data: ArgData<'b>) -> Arg<'b>
    where
        'a: 'b,
    {
        Arg {
            index: self.index,
            name: self.name,
            shape: self.shape,
            dtype: self.dtype,
            mode: self.mode,
            data,
        }
    }

    /// An error about this argument: `argument 1 \`weights\`: what`.
    ///
    /// ```
    /// use xpu::{Arg, ArgData, DType, Mode};
    /// let bytes = [0u8; 8];
    /// let arg = Arg { index: 1, name: Some("weights"), shape: &[2], dtype: DType::F32, mode: Mode::Read, data: ArgData::Host(&bytes) };
    /// let err = arg.as_slice::<f64>().unwrap_err();
    /// assert_eq!(err.to_string(), "argument 1 `weights`: has dtype f32, used as f64");
    /// ```
    pub fn error(&self, what: impl Into<String>) -> Error {
        argument_error(self.index, self.name, what.into())
    }

    /// The host bytes, read only.
    pub fn host(&self) -> Result<&[u8]> {
        match &self.data {
            ArgData::Host(b) => Ok(b),
            ArgData::HostMut(b) => Ok(b),
            ArgData::Device(_) => Err(self.error("is a device buffer, expected host memory")),
        }
    }

    /// The host bytes, writable (only for written arguments).
    pub fn host_mut(&mut self) -> Result<&mut [u8]> {
        let (index, name) = (self.index, self.name);
        let error = |what: &str| argument_error(index, name, what.to_string());
        match &mut self.data {
            ArgData::HostMut(b) => Ok(b),
            ArgData::Host(_) => Err(error("is read-only: the task does not write it")),
            ArgData::Device(_) => Err(error("is a device buffer, expected host memory")),
        }
    }

    /// The elements as `T`, checking the dtype.
    pub fn as_slice<T: crate::Element>(&self) -> Result<&[T]> {
        self.expect_dtype(T::DTYPE)?;
        bytemuck::try_cast_slice(self.host()?).map_err(|e| self.cast_error(e))
    }

    /// The elements as mutable `T`, checking the dtype.
    pub fn as_mut_slice<T: crate::Element>(&mut self) -> Result<&mut [T]> {
        self.expect_dtype(T::DTYPE)?;
        let (index, name) = (self.index, self.name);
        bytemuck::try_cast_slice_mut(self.host_mut()?)
            .map_err(|e| argument_error(index, name, format!("is misaligned host memory: {e:?}")))
    }

    /// Shorthand for `as_slice::<f32>()`.
    pub fn as_f32(&self) -> Result<&[f32]> {
        self.as_slice()
    }

    /// Shorthand for `as_mut_slice::<f32>()`.
    pub fn as_f32_mut(&mut self) -> Result<&mut [f32]> {
        self.as_mut_slice()
    }

    /// The device buffer (for device backends).
    pub fn device(&self) -> Result<&DeviceBuffer> {
        match &self.data {
            ArgData::Device(b) => Ok(b),
            _ => Err(self.error("is in host memory, expected a device buffer")),
        }
    }

    fn expect_dtype(&self, want: DType) -> Result<()> {
        if self.dtype == want {
            Ok(())
        } else {
            Err(self.error(format!("has dtype {}, used as {want}", self.dtype)))
        }
    }

    fn cast_error(&self, e: bytemuck::PodCastError) -> Error {
        self.error(format!("is misaligned host memory: {e:?}"))
    }
}

fn argument_error(arg: usize, name: Option<&str>, what: String) -> Error {
    Error::Argument {
        arg,
        name: name.map(str::to_string),
        what,
    }
}
