//! Unified memory: replicas of every tensor on every memory node, kept
//! coherent with MSI states; transfers only when a needed copy is stale;
//! per-node capacity with pooled buffers and LRU eviction; accounting of
//! every byte allocated and moved.
//!
//! Host RAM is node 0. Each device memory of a backend is one more node.

mod pool;
mod replica;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

pub use pool::size_class;
use pool::NodePool;
pub use replica::{HostBuffer, ReplicaState};
pub(crate) use replica::{ReplicaSet, Storage};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::kernel::Mode;
use crate::tensor::TensorInner;
use crate::trace::Clock;
use crate::unit::{NodeId, HOST};

/// One copy between memory nodes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// The tensor's id.
    pub tensor: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub bytes: usize,
    /// When the copy started, in seconds since the runtime started.
    pub at: f64,
    /// Wall time of the copy.
    pub seconds: f64,
}

/// What happened to a memory node's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryEventKind {
    /// New storage from the backend (or host RAM).
    Allocate,
    /// A pooled buffer of the right size class reused.
    Reuse,
    /// A replica dropped to make room.
    Evict,
    /// An evicted replica that was the only valid copy, copied to the host first.
    WriteBack,
}

/// One allocation or eviction, recorded when profiling is on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemoryEvent {
    /// Seconds since the runtime started.
    pub at: f64,
    pub node: NodeId,
    pub kind: MemoryEventKind,
    pub bytes: usize,
    /// The tensor concerned (0 when the allocation is not yet a tensor's).
    pub tensor: u64,
    /// Bytes allocated on the node after the event.
    pub allocated: usize,
}

/// Accounting of one memory node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStats {
    pub node: NodeId,
    pub name: String,
    /// Capacity in bytes (`usize::MAX`: unlimited).
    pub capacity: usize,
    /// Bytes allocated now (including pooled free buffers).
    pub allocated: usize,
    /// Highest allocation seen.
    pub peak: usize,
    /// Bytes copied into this node.
    pub bytes_in: u64,
    /// Bytes copied out of this node.
    pub bytes_out: u64,
    /// Replicas evicted from this node.
    pub evictions: u64,
    /// Evicted replicas that were the only valid copy and were written back first.
    pub write_backs: u64,
}

pub(crate) struct MemoryNode {
    name: String,
    capacity: usize,
    /// The backend and its memory index; `None` for host RAM.
    device: Option<(Arc<dyn Backend>, usize)>,
    pool: Mutex<NodePool>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    evictions: AtomicU64,
    write_backs: AtomicU64,
    /// Allocations and evictions with their clock readings, when
    /// profiling (this node's own lock).
    events: Mutex<Vec<(MemoryEvent, u64)>>,
}

/// Owns every node's allocations and the transfer log.
pub(crate) struct MemoryManager {
    nodes: Vec<MemoryNode>,
    tick: AtomicU64,
    /// Every copy, with the clock reading of its start.
    transfers: Mutex<Vec<(Transfer, u64)>>,
    /// The clock of transfer and event times (time zero: the runtime's start).
    clock: Clock,
    record_events: bool,
}

impl MemoryManager {
    pub fn new(host_capacity: usize, record_events: bool) -> MemoryManager {
        MemoryManager {
            nodes: vec![MemoryNode::new("host".into(), host_capacity, None)],
            tick: AtomicU64::new(0),
            transfers: Mutex::new(Vec::new()),
            clock: Clock::new(),
            record_events,
        }
    }

    /// The clock of every recorded time.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn note(
        &self,
        node: NodeId,
        kind: MemoryEventKind,
        bytes: usize,
        tensor: u64,
        allocated: usize,
    ) {
        if self.record_events {
            let event = MemoryEvent {
                at: 0.0,
                node,
                kind,
                bytes,
                tensor,
                allocated,
            };
            self.nodes[node]
                .events
                .lock()
                .push((event, self.clock.ticks()));
        }
    }

    /// Forgets the recorded allocations and evictions.
    pub fn clear_events(&self) {
        for n in &self.nodes {
            n.events.lock().clear();
        }
    }

    /// Every allocation and eviction recorded so far, in time order.
    pub fn events(&self) -> Vec<MemoryEvent> {
        let seconds = self.clock.seconds();
        let mut all: Vec<MemoryEvent> = self
            .nodes
            .iter()
            .flat_map(|n| n.events.lock().clone())
            .map(|(e, ticks)| MemoryEvent {
                at: seconds(ticks),
                ..e
            })
            .collect();
        all.sort_by(|a, b| a.at.total_cmp(&b.at));
        all
    }

    /// Adds a device memory node; returns its id.
    pub fn add_device_node(
        &mut self,
        name: String,
        capacity: usize,
        backend: Arc<dyn Backend>,
        index: usize,
    ) -> NodeId {
        self.nodes
            .push(MemoryNode::new(name, capacity, Some((backend, index))));
        self.nodes.len() - 1
    }

    /// Pre-allocates `count` buffers of `bytes` (rounded to a size class) on `node`.
    pub fn reserve(&self, node: NodeId, bytes: usize, count: usize) -> Result<()> {
        let n = self.node(node)?;
        let (backend, index) = n.device.as_ref().ok_or_else(|| {
            Error::Config("the static pool is for device nodes; host memory is not pooled".into())
        })?;
        let class = size_class(bytes);
        let mut pool = n.pool.lock();
        for _ in 0..count {
            if pool.used + class > n.capacity {
                return Err(Error::Config(format!(
                    "static pool of {count} x {class} bytes exceeds node {node}'s capacity of {} bytes",
                    n.capacity
                )));
            }
            let buf = backend.alloc(*index, class)?;
            pool.charge(class);
            pool.put_free(Arc::new(buf));
        }
        Ok(())
    }

    fn node(&self, node: NodeId) -> Result<&MemoryNode> {
        self.nodes
            .get(node)
            .ok_or_else(|| Error::Config(format!("no memory node {node}")))
    }

    /// Host storage for a new tensor, charged to node 0.
    pub fn host_alloc(&self, data: Option<&[u8]>, bytes: usize) -> Result<HostBuffer> {
        let host = &self.nodes[HOST];
        {
            let mut pool = host.pool.lock();
            if pool.used + bytes > host.capacity {
                return Err(Error::OutOfMemory {
                    node: HOST,
                    requested: bytes,
                    used: pool.used,
                    capacity: host.capacity,
                });
            }
            pool.charge(bytes);
            self.note(HOST, MemoryEventKind::Allocate, bytes, 0, pool.used);
        }
        let buf = match data {
            Some(d) => HostBuffer::from_bytes(d),
            None => HostBuffer::zeroed(bytes),
        };
        if buf.is_err() {
            host.pool.lock().used -= bytes;
        }
        buf
    }

    /// Makes `tensor` usable on `node` for `mode`: fetches a valid copy if
    /// the task reads and the local one is stale, allocates if needed, and
    /// invalidates the other copies if the task writes. The replica stays
    /// pinned (not evictable) until [`MemoryManager::release`].
    /// Returns the storage and the bytes copied to `node` for it.
    pub fn acquire(
        &self,
        t: &Arc<TensorInner>,
        node: NodeId,
        mode: Mode,
    ) -> Result<(Storage, usize)> {
        let mut reps = t.replicas.lock();
        // Find the source first: a tensor never written gets no storage.
        let source = if mode.reads() && !reps.state(node).is_valid() {
            Some(
                reps.valid_source()
                    .ok_or(Error::Uninitialised { tensor: t.id })?,
            )
        } else {
            None
        };
        self.ensure_storage(t, &mut reps, node)?;
        let mut fetched = 0;
        if let Some(src) = source {
            self.copy(t, &mut reps, src, node)?;
            fetched = t.nbytes();
        }
        if mode.writes() {
            reps.make_exclusive(node);
        }
        let replica = reps.at(node);
        replica.in_use += 1;
        let storage = replica.storage.clone();
        if node != HOST {
            let tick = self.tick.fetch_add(1, Ordering::Relaxed);
            self.nodes[node].pool.lock().touch(t, tick);
        }
        storage
            .map(|s| (s, fetched))
            .ok_or(Error::Uninitialised { tensor: t.id })
    }

    /// Unpins a replica acquired by [`MemoryManager::acquire`].
    pub fn release(&self, t: &TensorInner, node: NodeId) {
        let mut reps = t.replicas.lock();
        let r = reps.at(node);
        r.in_use = r.in_use.saturating_sub(1);
    }

    fn ensure_storage(
        &self,
        t: &Arc<TensorInner>,
        reps: &mut ReplicaSet,
        node: NodeId,
    ) -> Result<()> {
        if reps.at(node).storage.is_some() {
            return Ok(());
        }
        let storage = if node == HOST {
            Storage::Host(Arc::new(self.host_alloc(None, t.nbytes())?))
        } else {
            Storage::Device(self.device_alloc(node, t.nbytes(), t.id)?)
        };
        reps.at(node).storage = Some(storage);
        Ok(())
    }

    /// A device buffer of at least `bytes`, reusing pooled buffers and
    /// evicting least-recently-used replicas when the node is full.
    fn device_alloc(
        &self,
        node: NodeId,
        bytes: usize,
        requester: u64,
    ) -> Result<Arc<crate::backend::DeviceBuffer>> {
        let n = &self.nodes[node];
        let Some((backend, index)) = &n.device else {
            return Err(Error::Config(format!("node {node} is not a device node")));
        };
        let class = size_class(bytes);
        loop {
            let victims = {
                let mut pool = n.pool.lock();
                if let Some(buf) = pool.take_free(class) {
                    self.note(node, MemoryEventKind::Reuse, class, requester, pool.used);
                    return Ok(buf);
                }
                if pool.used + class <= n.capacity {
                    pool.charge(class);
                    self.note(node, MemoryEventKind::Allocate, class, requester, pool.used);
                    drop(pool);
                    return match backend.alloc(*index, class) {
                        Ok(buf) => Ok(Arc::new(buf)),
                        Err(e) => {
                            n.pool.lock().used -= class;
                            Err(e)
                        }
                    };
                }
                if pool.release_largest_free().is_some() {
                    continue;
                }
                pool.lru_order()
            };
            let evicted = victims
                .iter()
                .filter_map(|w| w.upgrade())
                .filter(|v| v.id != requester)
                .any(|v| self.try_evict(&v, node));
            if !evicted {
                let used = n.pool.lock().used;
                return Err(Error::OutOfMemory {
                    node,
                    requested: class,
                    used,
                    capacity: n.capacity,
                });
            }
        }
    }

    /// Drops `t`'s copy on `node` unless a task uses it; writes it back to
    /// the host first when it is the only valid copy. True if evicted.
    fn try_evict(&self, t: &Arc<TensorInner>, node: NodeId) -> bool {
        let Some(mut reps) = t.replicas.try_lock() else {
            return false;
        };
        let r = reps.at(node);
        if r.in_use > 0 || r.storage.is_none() {
            return false;
        }
        let sole_copy = r.state.is_valid() && reps.valid_count() == 1;
        if sole_copy {
            if self.ensure_storage(t, &mut reps, HOST).is_err()
                || self.copy(t, &mut reps, node, HOST).is_err()
            {
                return false;
            }
            self.nodes[node].write_backs.fetch_add(1, Ordering::Relaxed);
            let allocated = self.nodes[node].pool.lock().used;
            self.note(
                node,
                MemoryEventKind::WriteBack,
                t.nbytes(),
                t.id,
                allocated,
            );
        }
        let r = reps.at(node);
        r.state = ReplicaState::Invalid;
        let storage = r.storage.take();
        if sole_copy {
            reps.make_exclusive(HOST);
        }
        let mut pool = self.nodes[node].pool.lock();
        pool.forget(t.id);
        if let Some(Storage::Device(buf)) = storage {
            pool.put_free(buf);
        }
        self.note(node, MemoryEventKind::Evict, t.nbytes(), t.id, pool.used);
        self.nodes[node].evictions.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Copies `t` from `src` to `dst` (through the host between two devices)
    /// and records each copy.
    fn copy(
        &self,
        t: &Arc<TensorInner>,
        reps: &mut ReplicaSet,
        src: NodeId,
        dst: NodeId,
    ) -> Result<()> {
        if src != HOST && dst != HOST {
            self.ensure_storage(t, reps, HOST)?;
            self.copy(t, reps, src, HOST)?;
            return self.copy(t, reps, HOST, dst);
        }
        let bytes = t.nbytes();
        let start = Instant::now();
        let start_ticks = self.clock.ticks();
        let src_store = reps.at(src).storage.clone();
        let dst_store = reps.at(dst).storage.clone();
        match (src_store, dst_store) {
            (Some(Storage::Host(h)), Some(Storage::Device(d))) => {
                let (backend, _) = self.device(dst)?;
                // SAFETY: the source is a valid replica that no task writes
                // while this tensor's replica lock is held for a read.
                backend.upload(&d, unsafe { &h.bytes()[..bytes] })?;
            }
            (Some(Storage::Device(d)), Some(Storage::Host(h))) => {
                let (backend, _) = self.device(src)?;
                // SAFETY: the host replica is invalid, so no task reads it.
                backend.download(&d, unsafe { &mut h.bytes_mut()[..bytes] })?;
            }
            _ => {
                return Err(Error::Config(format!(
                    "cannot copy tensor {} from node {src} to node {dst}",
                    t.id
                )))
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        self.nodes[src]
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.nodes[dst]
            .bytes_in
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let transfer = Transfer {
            tensor: t.id,
            from: src,
            to: dst,
            bytes,
            at: 0.0,
            seconds,
        };
        self.transfers.lock().push((transfer, start_ticks));
        reps.share(dst);
        Ok(())
    }

    fn device(&self, node: NodeId) -> Result<&(Arc<dyn Backend>, usize)> {
        self.nodes[node]
            .device
            .as_ref()
            .ok_or_else(|| Error::Config(format!("node {node} is not a device node")))
    }

    /// Returns a dropped tensor's storage to its nodes.
    pub fn free(&self, id: u64, reps: &mut ReplicaSet) {
        for (node, r) in reps.iter_mut() {
            match r.storage.take() {
                Some(Storage::Host(h)) => {
                    let mut pool = self.nodes[HOST].pool.lock();
                    pool.used = pool.used.saturating_sub(h.len());
                }
                Some(Storage::Device(d)) => {
                    let mut pool = self.nodes[node].pool.lock();
                    pool.forget(id);
                    pool.put_free(d);
                }
                None => {}
            }
        }
    }

    /// Accounting of every node.
    pub fn stats(&self) -> Vec<NodeStats> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let pool = n.pool.lock();
                NodeStats {
                    node: i,
                    name: n.name.clone(),
                    capacity: n.capacity,
                    allocated: pool.used,
                    peak: pool.peak,
                    bytes_in: n.bytes_in.load(Ordering::Relaxed),
                    bytes_out: n.bytes_out.load(Ordering::Relaxed),
                    evictions: n.evictions.load(Ordering::Relaxed),
                    write_backs: n.write_backs.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Bytes the device behind `node` reports taken, where its API tells.
    pub fn device_reported(&self, node: NodeId) -> Option<u64> {
        let (backend, index) = self.nodes.get(node)?.device.as_ref()?;
        backend.device_memory_in_use(*index)
    }

    /// Every transfer so far, in order.
    pub fn transfers(&self) -> Vec<Transfer> {
        let seconds = self.clock.seconds();
        self.transfers
            .lock()
            .iter()
            .map(|&(t, ticks)| Transfer {
                at: seconds(ticks),
                ..t
            })
            .collect()
    }
}

impl MemoryNode {
    fn new(name: String, capacity: usize, device: Option<(Arc<dyn Backend>, usize)>) -> MemoryNode {
        MemoryNode {
            name,
            capacity,
            device,
            pool: Mutex::new(NodePool::default()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            write_backs: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
        }
    }
}
