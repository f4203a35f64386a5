//! One tensor's copies across memory nodes and their MSI states.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use smallvec::SmallVec;

use crate::backend::DeviceBuffer;
use crate::error::{Error, Result};

/// The state of one replica (StarPU's MSI protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Stale or absent: must be fetched before use.
    Invalid,
    /// Valid; other nodes may also hold valid copies.
    Shared,
    /// The only valid copy.
    Modified,
}

impl ReplicaState {
    /// Whether the replica holds the current content.
    pub fn is_valid(self) -> bool {
        self != ReplicaState::Invalid
    }
}

const HOST_ALIGN: usize = 64;

/// 64-byte aligned host memory shared by the tasks that access a tensor.
///
/// Tasks write through it while others may hold the `Arc`: the task graph
/// guarantees that a writer never overlaps another access of the same tensor,
/// which is what makes the raw views in [`HostBuffer::bytes`] sound.
///
/// A buffer may be a slice of another (a contiguous part of a partitioned
/// tensor shares its whole's memory): it keeps the allocation alive, frees
/// nothing itself, and counts views on the allocation, so that a view of
/// any tensor sharing the memory keeps every one of them from writing it.
pub struct HostBuffer {
    ptr: NonNull<u8>,
    len: usize,
    /// Live [`HostView`]s of it: while any exists, the memory manager
    /// writes the tensor into a fresh buffer instead.
    views: AtomicUsize,
    /// The allocation this buffer is a slice of, if it is one.
    owner: Option<Arc<HostBuffer>>,
    _cell: UnsafeCell<()>,
}

// SAFETY: the buffer is plain bytes; concurrent access is ordered by the task
// graph (readers share, a writer is exclusive), as documented above.
unsafe impl Send for HostBuffer {}
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    /// Zeroed memory of `len` bytes.
    pub fn zeroed(len: usize) -> Result<HostBuffer> {
        let layout = Layout::from_size_align(len.max(1), HOST_ALIGN)
            .map_err(|e| Error::Config(format!("cannot allocate {len} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| Error::Device {
            backend: "host".into(),
            message: format!("the system refused {len} bytes of host memory"),
        })?;
        Ok(HostBuffer {
            ptr,
            len,
            views: AtomicUsize::new(0),
            owner: None,
            _cell: UnsafeCell::new(()),
        })
    }

    /// `len` bytes of `parent` from `offset`, sharing its memory.
    pub fn slice(parent: &Arc<HostBuffer>, offset: usize, len: usize) -> Result<HostBuffer> {
        if offset.checked_add(len).is_none_or(|end| end > parent.len) {
            return Err(Error::Config(format!(
                "bytes {offset}..{} are outside a host buffer of {} bytes",
                offset.saturating_add(len),
                parent.len
            )));
        }
        // SAFETY: the range is within the parent's allocation, checked above.
        let ptr = unsafe { NonNull::new_unchecked(parent.ptr.as_ptr().add(offset)) };
        Ok(HostBuffer {
            ptr,
            len,
            views: AtomicUsize::new(0),
            owner: Some(parent.allocation().clone()),
            _cell: UnsafeCell::new(()),
        })
    }

    /// The allocation whose memory this buffer holds: itself, or what it
    /// is a slice of.
    fn allocation(self: &Arc<Self>) -> &Arc<HostBuffer> {
        self.owner.as_ref().unwrap_or(self)
    }

    /// True for a slice of another buffer (it owns no memory).
    pub fn is_slice(&self) -> bool {
        self.owner.is_some()
    }

    /// A buffer holding a copy of `data`.
    pub fn from_bytes(data: &[u8]) -> Result<HostBuffer> {
        let buf = HostBuffer::zeroed(data.len())?;
        // SAFETY: fresh buffer, no other reference exists.
        unsafe { buf.bytes_mut() }.copy_from_slice(data);
        Ok(buf)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a [`HostView`] of it, or of any buffer sharing its
    /// allocation, is alive (then nothing may write it).
    pub fn is_viewed(&self) -> bool {
        let counted = self.owner.as_deref().unwrap_or(self);
        counted.views.load(Ordering::Acquire) > 0
    }

    /// A read view.
    ///
    /// # Safety
    /// No writer of this buffer may run while the view lives.
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        std::slice::from_raw_parts(self.ptr.as_ptr(), self.len)
    }

    /// A write view.
    ///
    /// # Safety
    /// No other view of this buffer may exist while the view lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut<'a>(&self) -> &'a mut [u8] {
        std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len)
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        if self.owner.is_some() {
            return;
        }
        // SAFETY: allocated in `zeroed` with this exact layout.
        unsafe {
            dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.len.max(1), HOST_ALIGN),
            )
        }
    }
}

/// A tensor's content in host memory, shared with the runtime without a
/// copy and never written while the view lives: a task that writes the
/// tensor afterwards, or a copy into its host replica, goes to a fresh
/// buffer. Made by [`Runtime::view`](crate::Runtime::view).
pub struct HostView {
    buffer: Arc<HostBuffer>,
    len: usize,
}

impl HostView {
    /// A view of the first `len` bytes of `buffer`, which no task writes
    /// from now on (the caller holds the tensor's read in the task graph).
    pub(crate) fn new(buffer: Arc<HostBuffer>, len: usize) -> HostView {
        buffer.allocation().views.fetch_add(1, Ordering::AcqRel);
        HostView { buffer, len }
    }

    /// The content's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: no writer touches a buffer with a live view (see
        // `MemoryManager::detach_viewed_host`), and `len` is within it.
        unsafe { &self.buffer.bytes()[..self.len] }
    }
}

impl Drop for HostView {
    fn drop(&mut self) {
        self.buffer
            .allocation()
            .views
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for HostView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostView({} bytes)", self.len)
    }
}

/// A replica's storage: host memory or a backend's device buffer.
#[derive(Clone)]
pub enum Storage {
    Host(Arc<HostBuffer>),
    Device(Arc<DeviceBuffer>),
}

/// One tensor's copy on one node.
pub struct Replica {
    pub state: ReplicaState,
    pub storage: Option<Storage>,
    /// Tasks currently using this copy: it cannot be evicted meanwhile.
    pub in_use: u32,
    /// A task is allocating its storage (without the tensor's lock):
    /// others wait for it on [`TensorInner::storage_placed`](crate::tensor::TensorInner).
    pub allocating: bool,
}

impl Replica {
    const EMPTY: Replica = Replica {
        state: ReplicaState::Invalid,
        storage: None,
        in_use: 0,
        allocating: false,
    };
}

/// All replicas of one tensor, indexed by node.
#[derive(Default)]
pub struct ReplicaSet {
    nodes: SmallVec<[Replica; 2]>,
}

impl ReplicaSet {
    /// Only a host copy, in the given state.
    pub fn with_host(host: HostBuffer, state: ReplicaState) -> ReplicaSet {
        ReplicaSet::with_host_buffer(Arc::new(host), state)
    }

    /// Only a host copy in a buffer that may be shared, in the given state.
    pub fn with_host_buffer(host: Arc<HostBuffer>, state: ReplicaState) -> ReplicaSet {
        let mut nodes = SmallVec::new();
        nodes.push(Replica {
            state,
            storage: Some(Storage::Host(host)),
            in_use: 0,
            allocating: false,
        });
        ReplicaSet { nodes }
    }

    /// The replica on `node`, created Invalid if missing.
    pub fn at(&mut self, node: usize) -> &mut Replica {
        while self.nodes.len() <= node {
            self.nodes.push(Replica::EMPTY);
        }
        &mut self.nodes[node]
    }

    /// The state on `node` (Invalid if never touched).
    pub fn state(&self, node: usize) -> ReplicaState {
        self.nodes
            .get(node)
            .map_or(ReplicaState::Invalid, |r| r.state)
    }

    /// The storage on `node`, if it has any.
    pub fn storage(&self, node: usize) -> Option<Storage> {
        self.nodes.get(node)?.storage.clone()
    }

    /// A node holding a valid copy, preferring the host.
    pub fn valid_source(&self) -> Option<usize> {
        self.nodes.iter().position(|r| r.state.is_valid())
    }

    /// Number of nodes with a valid copy.
    pub fn valid_count(&self) -> usize {
        self.nodes.iter().filter(|r| r.state.is_valid()).count()
    }

    /// Marks `node` as the only valid copy.
    pub fn make_exclusive(&mut self, node: usize) {
        for (i, r) in self.nodes.iter_mut().enumerate() {
            r.state = if i == node {
                ReplicaState::Modified
            } else {
                ReplicaState::Invalid
            };
        }
    }

    /// After a copy: the source is no longer the only valid copy.
    pub fn share(&mut self, node: usize) {
        for r in self.nodes.iter_mut() {
            if r.state == ReplicaState::Modified {
                r.state = ReplicaState::Shared;
            }
        }
        self.at(node).state = ReplicaState::Shared;
    }

    /// Iterates over `(node, replica)`.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut Replica)> {
        self.nodes.iter_mut().enumerate()
    }
}
