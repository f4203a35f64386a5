//! Per-node allocation: capacity, size classes, free-buffer reuse, and the
//! bookkeeping eviction needs (which tensors have a copy here, used when).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

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
    /// Tensors with storage on this node and the tick of their last use.
    resident: HashMap<u64, (Weak<TensorInner>, u64)>,
}

impl NodePool {
    /// A free buffer of exactly this class, if one is pooled.
    pub fn take_free(&mut self, class: usize) -> Option<Arc<DeviceBuffer>> {
        let list = self.free.get_mut(&class)?;
        let buf = list.pop();
        if list.is_empty() {
            self.free.remove(&class);
        }
        buf
    }

    /// Returns a buffer to the free lists.
    pub fn put_free(&mut self, buf: Arc<DeviceBuffer>) {
        self.free.entry(buf.bytes()).or_default().push(buf);
    }

    /// Releases the largest pooled buffer to the device; returns its size.
    pub fn release_largest_free(&mut self) -> Option<usize> {
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

    /// Resident tensors, least recently used first.
    pub fn lru_order(&self) -> Vec<Weak<TensorInner>> {
        let mut v: Vec<_> = self.resident.values().collect();
        v.sort_by_key(|(_, tick)| *tick);
        v.into_iter().map(|(w, _)| w.clone()).collect()
    }
}
