//! Per-node allocation: capacity, size classes, free-buffer reuse, and the
//! bookkeeping eviction needs (which tensors have a copy here, used when).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use smallvec::SmallVec;

use crate::backend::DeviceBuffer;
use crate::tensor::TensorInner;

/// Rounds a request up to its size class: four classes per power of two, so
/// a reused buffer wastes at most a quarter of its size.
///
/// ```
/// use xpu::memory::size_class;
/// assert_eq!(size_class(1000), 1024);
/// assert_eq!(size_class(1025), 1280);
/// assert_eq!(size_class(3), 64);
/// ```
pub fn size_class(bytes: usize) -> usize {
    let bytes = bytes.max(64);
    let top = usize::BITS - 1 - bytes.leading_zeros();
    let step = (1usize << top) / 4;
    bytes.div_ceil(step) * step
}

/// Allocation state of one device memory node.
#[derive(Default)]
pub struct NodePool {
    /// Bytes held by live buffers, including those in the free lists.
    pub used: usize,
    /// Highest `used` seen.
    pub peak: usize,
    /// Freed buffers by size class, reused before allocating.
    free: BTreeMap<usize, Vec<Arc<DeviceBuffer>>>,
    /// Freed buffers that views still share (still charged): each joins
    /// the free lists once no view of it is left.
    retired: Vec<Arc<DeviceBuffer>>,
    /// Tensors with storage on this node and the tick of their last use.
    resident: HashMap<u64, (Weak<TensorInner>, u64)>,
    /// Replicas pinned by running and fetching tasks: by tensor, the
    /// buffer's bytes and the tasks that pin it.
    pins: HashMap<u64, Pin>,
    /// Bytes of the pinned replicas.
    pub pinned: usize,
    /// Bytes of the static pool reserved at start: what gating keeps.
    pub reserved: usize,
}

/// One pinned replica.
struct Pin {
    bytes: usize,
    tasks: SmallVec<[u64; 2]>,
}

impl NodePool {
    /// A free buffer of exactly this class, if one is pooled.
    pub fn take_free(&mut self, class: usize) -> Option<Arc<DeviceBuffer>> {
        self.sweep_retired();
        let list = self.free.get_mut(&class)?;
        let buf = list.pop();
        if list.is_empty() {
            self.free.remove(&class);
        }
        buf
    }

    /// Returns a buffer to the free lists. A view owns no memory and is
    /// dropped; a buffer that views (or a task finishing with it) still
    /// hold waits until they let it go, so that no other tensor gets
    /// memory a view still shows.
    pub fn put_free(&mut self, buf: Arc<DeviceBuffer>) {
        if buf.is_view() {
            return;
        }
        if Arc::strong_count(&buf) > 1 {
            self.retired.push(buf);
            return;
        }
        self.free.entry(buf.bytes()).or_default().push(buf);
    }

    /// Moves the retired buffers that nothing else holds any more to the
    /// free lists (a retired buffer is in no replica, so no new view of
    /// it is made).
    fn sweep_retired(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        let (unused, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|b| Arc::strong_count(b) == 1);
        self.retired = held;
        for buf in unused {
            self.put_free(buf);
        }
    }

    /// Releases the largest pooled buffer to the device; returns its size.
    pub fn release_largest_free(&mut self) -> Option<usize> {
        self.sweep_retired();
        let (&class, list) = self.free.iter_mut().next_back()?;
        list.pop();
        if list.is_empty() {
            self.free.remove(&class);
        }
        self.used -= class;
        Some(class)
    }

    /// Counts `bytes` as allocated.
    pub fn charge(&mut self, bytes: usize) {
        self.used += bytes;
        self.peak = self.peak.max(self.used);
    }

    /// Records that `tensor` has storage here and was used at `tick`.
    pub fn touch(&mut self, tensor: &Arc<TensorInner>, tick: u64) {
        self.resident
            .entry(tensor.id)
            .and_modify(|e| e.1 = tick)
            .or_insert_with(|| (Arc::downgrade(tensor), tick));
    }

    /// Forgets `tensor`'s storage here.
    pub fn forget(&mut self, tensor: u64) {
        self.resident.remove(&tensor);
    }

    /// Resident tensors that no task pins, least recently used first.
    pub fn lru_order(&self) -> Vec<Weak<TensorInner>> {
        let mut v: Vec<_> = self
            .resident
            .iter()
            .filter(|(id, _)| !self.pins.contains_key(id))
            .map(|(_, entry)| entry)
            .collect();
        v.sort_by_key(|(_, tick)| *tick);
        v.into_iter().map(|(w, _)| w.clone()).collect()
    }

    /// `task` uses `tensor`'s replica of `bytes` here.
    pub fn pin(&mut self, tensor: u64, bytes: usize, task: u64) {
        let pin = self.pins.entry(tensor).or_insert_with(|| {
            self.pinned += bytes;
            Pin {
                bytes,
                tasks: SmallVec::new(),
            }
        });
        pin.tasks.push(task);
    }

    /// `task` no longer uses `tensor`'s replica here.
    pub fn unpin(&mut self, tensor: u64, task: u64) {
        let Some(pin) = self.pins.get_mut(&tensor) else {
            return;
        };
        if let Some(i) = pin.tasks.iter().position(|&t| t == task) {
            pin.tasks.swap_remove(i);
        }
        if pin.tasks.is_empty() {
            self.pinned -= pin.bytes;
            self.pins.remove(&tensor);
        }
    }

    /// The tasks pinning replicas here, in id order.
    pub fn pinning_tasks(&self) -> Vec<u64> {
        let mut tasks: Vec<u64> = self
            .pins
            .values()
            .flat_map(|p| p.tasks.iter().copied())
            .collect();
        tasks.sort_unstable();
        tasks.dedup();
        tasks
    }

    /// Forgets every buffer and pin: the device behind the node is gone.
    /// Returns the tensors that had a replica here.
    pub fn lose_everything(&mut self) -> Vec<Weak<TensorInner>> {
        self.free.clear();
        self.retired.clear();
        self.pins.clear();
        self.pinned = 0;
        self.used = 0;
        self.resident.drain().map(|(_, (w, _))| w).collect()
    }
}
