//! Unified memory: replicas of every tensor on every memory node, kept
//! coherent with MSI states; transfers only when a needed copy is stale;
//! per-node capacity with pooled buffers and LRU eviction; accounting of
//! every byte allocated and moved.
//!
//! Host RAM is node 0. Each device memory of a backend is one more node.

mod pool;
mod replica;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

pub use crate::trace::{MemoryEvent, MemoryEventKind, Transfer};
pub use pool::size_class;
use pool::NodePool;
pub use replica::{HostBuffer, HostView, ReplicaState};
pub(crate) use replica::{ReplicaSet, Storage};

use crate::backend::{Backend, DeviceBuffer};
use crate::error::{Error, Result};
use crate::kernel::Mode;
use crate::perfmodel::PerfModels;
use crate::tensor::TensorInner;
use crate::trace::{Clock, MemoryLog, PeerCopy, Recording};
use crate::unit::{NodeId, HOST};

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
    /// Copies into this node.
    pub transfers_in: u64,
    /// Bytes copied within this node between partitioned tensors and
    /// their parts (the gathers and scatters of parts that do not share
    /// their whole's memory; see [`crate::Partition`]).
    pub bytes_copied: u64,
    /// Bytes of replicas pinned now by running and fetching tasks.
    pub pinned: usize,
    /// True once the device behind the node was lost.
    pub lost: bool,
}

pub(crate) struct MemoryNode {
    name: String,
    capacity: usize,
    /// The backend and its memory index; `None` for host RAM.
    device: Option<(Arc<dyn Backend>, usize)>,
    pool: Mutex<NodePool>,
    /// Signalled when room may have appeared: a replica unpinned, a
    /// buffer freed.
    room: Condvar,
    lost: AtomicBool,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    transfers_in: AtomicU64,
    bytes_copied: AtomicU64,
    evictions: AtomicU64,
    write_backs: AtomicU64,
}

/// How long an allocation waits for room before looking again; room is
/// also signalled, this only bounds a missed signal.
const ROOM_POLL: Duration = Duration::from_millis(1);

/// Owns every node's allocations and what the profile records of them.
pub(crate) struct MemoryManager {
    nodes: Vec<MemoryNode>,
    tick: AtomicU64,
    /// The clock of transfer and event times (time zero: the runtime's start).
    clock: Clock,
    /// Transfers, events and tensor names, when profiling.
    recording: Option<Recording>,
    /// Transfer models fed with every copy.
    models: Option<Arc<PerfModels>>,
}

impl MemoryManager {
    /// Host memory of `host_capacity` bytes; with `recording`, the profile
    /// keeps that many records of each stream.
    pub fn new(host_capacity: usize, recording: Option<usize>) -> MemoryManager {
        MemoryManager {
            nodes: vec![MemoryNode::new("host".into(), host_capacity, None)],
            tick: AtomicU64::new(0),
            clock: Clock::new(),
            recording: recording.map(Recording::new),
            models: None,
        }
    }

    /// Feeds every later copy's size and time to `models`.
    pub fn feed_models(&mut self, models: Arc<PerfModels>) {
        self.models = Some(models);
    }

    /// Memory nodes, the host's included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
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
        if let Some(r) = &self.recording {
            let event = MemoryEvent {
                at: 0.0,
                node,
                kind,
                bytes,
                tensor,
                allocated,
            };
            r.event(event, self.clock.ticks());
        }
    }

    /// Forgets the recorded transfers, allocations and evictions and
    /// returns their memory; the counters stay.
    pub fn clear_log(&self) {
        if let Some(r) = &self.recording {
            r.clear();
        }
    }

    /// What the profile recorded of memory so far.
    pub fn log(&self) -> MemoryLog {
        match &self.recording {
            Some(r) => r.log(self.clock),
            None => MemoryLog {
                transfers: Vec::new(),
                events: Vec::new(),
                dropped_transfers: 0,
                dropped_events: 0,
                tensor_names: Default::default(),
            },
        }
    }

    /// Records a tensor's name for profiles (nothing without profiling).
    pub fn name_tensor(&self, tensor: u64, name: &str) {
        if let Some(r) = &self.recording {
            r.name(tensor, name);
        }
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
        if let Some(r) = &mut self.recording {
            r.add_node();
        }
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
            pool.reserved += class;
            pool.put_free(Arc::new(buf));
        }
        Ok(())
    }

    /// Gives `node`'s free pooled buffers back to its device, down to the
    /// static pool reserved there; returns the bytes given back. Replicas
    /// stay: only memory no tensor holds goes. The host is not pooled.
    pub fn trim(&self, node: NodeId) -> usize {
        if node == HOST {
            return 0;
        }
        let Some(n) = self.nodes.get(node) else {
            return 0;
        };
        let mut pool = n.pool.lock();
        let mut released = 0;
        while pool.used > pool.reserved {
            match pool.release_largest_free() {
                Some(bytes) => released += bytes,
                None => break,
            }
        }
        released
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
                // Host replicas are never evicted: all of it is pinned.
                return Err(Error::OutOfMemory {
                    node: HOST,
                    requested: bytes,
                    pinned: pool.used,
                    capacity: host.capacity,
                    pinned_by: Vec::new(),
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

    /// Whether `node` has free room for `bytes` more without evicting
    /// anything.
    pub fn has_room(&self, node: NodeId, bytes: usize) -> bool {
        let n = &self.nodes[node];
        n.pool.lock().used + size_class(bytes) <= n.capacity
    }

    /// Makes `tensor` usable on `node` for `mode` by `task`: fetches a
    /// valid copy if the task reads and the local one is stale, allocates if
    /// needed, and invalidates the other copies if the task writes. The
    /// replica stays pinned (not evictable) until [`MemoryManager::release`].
    /// Returns the storage and the bytes copied to `node` for it.
    ///
    /// Device memory is allocated without holding the tensor's lock, so that
    /// eviction may wait for any other tensor's lock without a cycle; a
    /// task that finds the same replica being allocated (a prefetch and the
    /// task itself, two readers) waits for that buffer rather than
    /// allocating a second.
    pub fn acquire(
        &self,
        t: &Arc<TensorInner>,
        node: NodeId,
        mode: Mode,
        task: u64,
    ) -> Result<(Storage, Fetched)> {
        self.acquire_if(t, node, mode, task, &|| true)?
            .ok_or_else(|| Error::Uninitialised { tensor: t.label() })
    }

    /// Calls `f` with `t`'s host replica, acquired for `task` in `mode`
    /// (copied there from a device if need be) and released after.
    pub fn on_host<R>(
        &self,
        t: &Arc<TensorInner>,
        mode: Mode,
        task: u64,
        f: impl FnOnce(&Arc<HostBuffer>) -> R,
    ) -> Result<R> {
        let (storage, _) = self.acquire(t, HOST, mode, task)?;
        let result = match &storage {
            Storage::Host(h) => Ok(f(h)),
            Storage::Device(_) => Err(Error::Config(
                "the host replica is not in host memory".into(),
            )),
        };
        self.release(t, HOST, task);
        result
    }

    /// Copies `tensor` to `node` for `task` ahead of its run, if
    /// `still_waiting()` holds once the tensor's lock is taken for the
    /// copy (while the task has not started, no writer of the tensor can
    /// run: they all come after it). Returns whether it copied.
    pub fn prefetch(
        &self,
        t: &Arc<TensorInner>,
        node: NodeId,
        task: u64,
        still_waiting: &dyn Fn() -> bool,
    ) -> Result<bool> {
        let acquired = self.acquire_if(t, node, Mode::Read, task, still_waiting)?;
        if acquired.is_some() {
            self.release(t, node, task);
        }
        Ok(acquired.is_some())
    }

    /// [`MemoryManager::acquire`], unless `go()` is false once the lock
    /// for the copy is held (then `None`, nothing pinned).
    fn acquire_if(
        &self,
        t: &Arc<TensorInner>,
        node: NodeId,
        mode: Mode,
        task: u64,
        go: &dyn Fn() -> bool,
    ) -> Result<Option<(Storage, Fetched)>> {
        if self.nodes[node].lost.load(Ordering::Acquire) {
            return Err(self.lost_error(node));
        }
        let mut reps = t.replicas.lock();
        loop {
            if mode.reads() && !reps.state(node).is_valid() && reps.valid_source().is_none() {
                return Err(Error::Uninitialised { tensor: t.label() });
            }
            if node == HOST || reps.at(node).storage.is_some() {
                break;
            }
            // One task allocates a replica; others (a prefetch and the
            // worker, two readers on one node) wait and take its buffer.
            if reps.at(node).allocating {
                t.storage_placed.wait(&mut reps);
                continue;
            }
            reps.at(node).allocating = true;
            drop(reps);
            let allocated = match self.view_in_enclosing(t, node) {
                Ok(Some(view)) => Ok(view),
                Ok(None) => self.device_alloc(node, t.nbytes(), t.id),
                Err(e) => Err(e),
            };
            reps = t.replicas.lock();
            reps.at(node).allocating = false;
            t.storage_placed.notify_all();
            // Device storage is placed only here, and none was while the
            // flag was up: this replica has none.
            reps.at(node).storage = Some(Storage::Device(allocated?));
            break;
        }
        if !go() {
            return Ok(None);
        }
        if node != HOST {
            let tick = self.tick.fetch_add(1, Ordering::Relaxed);
            self.nodes[node].pool.lock().touch(t, tick);
        }
        let fetched = self.fill(t, &mut reps, node, mode)?;
        let replica = reps.at(node);
        let storage = replica
            .storage
            .clone()
            .ok_or_else(|| Error::Uninitialised { tensor: t.label() })?;
        replica.in_use += 1;
        if node != HOST {
            // A view pins the memory of its whole allocation.
            let bytes = match &storage {
                Storage::Device(d) => d.within().map_or(d.bytes(), |(a, _)| a.bytes()),
                Storage::Host(h) => h.len(),
            };
            self.nodes[node].pool.lock().pin(t.id, bytes, task);
        }
        Ok(Some((storage, fetched)))
    }

    /// A view for `t` on device node `node` inside the buffer of the
    /// nearest tensor it is a contiguous part of that has storage there,
    /// where the backend allows one at that offset; `None` otherwise.
    fn view_in_enclosing(
        &self,
        t: &TensorInner,
        node: NodeId,
    ) -> Result<Option<Arc<DeviceBuffer>>> {
        let (backend, _) = self.device(node)?;
        for (outer, offset) in crate::partition::enclosing(t) {
            let Some(Storage::Device(buf)) = outer.replicas.lock().storage(node) else {
                continue;
            };
            let (allocation, start) = buf.locate(offset);
            return backend
                .view(&allocation, start, t.nbytes())
                .transpose()
                .map(|view| view.map(Arc::new));
        }
        Ok(None)
    }

    /// Host storage where needed, the copy a read needs, the states a
    /// write leaves; returns what was copied.
    fn fill(
        &self,
        t: &Arc<TensorInner>,
        reps: &mut ReplicaSet,
        node: NodeId,
        mode: Mode,
    ) -> Result<Fetched> {
        let source = if mode.reads() && !reps.state(node).is_valid() {
            reps.valid_source()
        } else {
            None
        };
        if node == HOST {
            self.ensure_host_storage(t, reps)?;
            if mode.writes() {
                self.detach_viewed_host(reps)?;
            }
        }
        let mut fetched = Fetched::default();
        if let Some(src) = source {
            self.copy(t, reps, src, node)?;
            fetched = Fetched {
                bytes: t.nbytes(),
                from: Some(src),
            };
        }
        if mode.writes() {
            reps.make_exclusive(node);
        }
        Ok(fetched)
    }

    /// Unpins a replica that `task` acquired with [`MemoryManager::acquire`].
    pub fn release(&self, t: &TensorInner, node: NodeId, task: u64) {
        {
            let mut reps = t.replicas.lock();
            let r = reps.at(node);
            r.in_use = r.in_use.saturating_sub(1);
        }
        if node != HOST {
            let n = &self.nodes[node];
            n.pool.lock().unpin(t.id, task);
            n.room.notify_all();
        }
    }

    /// Gives the host replica a buffer of its own if a [`HostView`] shares
    /// its current one, which must then never be written again: the view
    /// keeps the old buffer (no longer charged to the node), the replica
    /// gets a fresh one holding the same content.
    fn detach_viewed_host(&self, reps: &mut ReplicaSet) -> Result<()> {
        let Some(Storage::Host(old)) = reps.at(HOST).storage.clone() else {
            return Ok(());
        };
        if !old.is_viewed() {
            return Ok(());
        }
        // SAFETY: a viewed buffer is only ever read.
        let content = reps.state(HOST).is_valid().then(|| unsafe { old.bytes() });
        let fresh = self.host_alloc(content, old.len())?;
        reps.at(HOST).storage = Some(Storage::Host(Arc::new(fresh)));
        if !old.is_slice() {
            let mut pool = self.nodes[HOST].pool.lock();
            pool.used = pool.used.saturating_sub(old.len());
        }
        Ok(())
    }

    /// `t`'s host buffer, allocated (its content not yet valid) if it has
    /// none: the memory that contiguous parts of `t` share.
    pub fn host_buffer(&self, t: &Arc<TensorInner>) -> Result<Arc<HostBuffer>> {
        let mut reps = t.replicas.lock();
        self.ensure_host_storage(t, &mut reps)?;
        match &reps.at(HOST).storage {
            Some(Storage::Host(h)) => Ok(h.clone()),
            _ => Err(Error::Config(format!(
                "{} has no storage in host memory",
                t.label()
            ))),
        }
    }

    /// Counts and records `bytes` copied within `node` for `tensor`
    /// (a gather or scatter of parts) begun at `start` (instant, ticks).
    pub fn copied_within(&self, node: NodeId, tensor: u64, bytes: usize, start: (Instant, u64)) {
        self.nodes[node]
            .bytes_copied
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(r) = &self.recording {
            let transfer = Transfer {
                tensor,
                from: node,
                to: node,
                bytes,
                at: 0.0,
                seconds: start.0.elapsed().as_secs_f64(),
                direct: true,
                peer: None,
            };
            r.transfer(transfer, start.1);
        }
    }

    /// Records `bytes` of `tensor` sent to or received from another rank
    /// (`peer`) through host memory, begun at `start` (instant, ticks).
    pub fn copied_between_ranks(
        &self,
        tensor: u64,
        bytes: usize,
        peer: PeerCopy,
        start: (Instant, u64),
    ) {
        let counter = if peer.sent {
            &self.nodes[HOST].bytes_out
        } else {
            &self.nodes[HOST].bytes_in
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(r) = &self.recording {
            let transfer = Transfer {
                tensor,
                from: HOST,
                to: HOST,
                bytes,
                at: 0.0,
                seconds: start.0.elapsed().as_secs_f64(),
                direct: false,
                peer: Some(peer),
            };
            r.transfer(transfer, start.1);
        }
    }

    fn ensure_host_storage(&self, t: &Arc<TensorInner>, reps: &mut ReplicaSet) -> Result<()> {
        if reps.at(HOST).storage.is_none() {
            let host = self.host_alloc(None, t.nbytes())?;
            reps.at(HOST).storage = Some(Storage::Host(Arc::new(host)));
        }
        Ok(())
    }

    /// A device buffer of at least `bytes` for tensor `requester`, reusing
    /// pooled buffers and evicting least-recently-used replicas that no
    /// task pins. While other tasks hold replicas for a moment it waits for
    /// them; it fails only when the pinned replicas alone leave no room.
    fn device_alloc(
        &self,
        node: NodeId,
        bytes: usize,
        requester: u64,
    ) -> Result<Arc<DeviceBuffer>> {
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
                if pool.pinned + class > n.capacity {
                    return Err(Error::OutOfMemory {
                        node,
                        requested: class,
                        pinned: pool.pinned,
                        capacity: n.capacity,
                        pinned_by: pool.pinning_tasks(),
                    });
                }
                pool.lru_order()
            };
            let evicted = victims
                .iter()
                .filter_map(|w| w.upgrade())
                .filter(|v| v.id != requester)
                .any(|v| self.evict(&v, node));
            if !evicted {
                // What is neither pinned nor evictable is on its way: a
                // buffer being installed, a tensor being dropped.
                let mut pool = n.pool.lock();
                n.room.wait_for(&mut pool, ROOM_POLL);
            }
        }
    }

    /// Drops `t`'s copy on `node` unless a task uses it; writes it back to
    /// the host first when it is the only valid copy. True if evicted.
    fn evict(&self, t: &Arc<TensorInner>, node: NodeId) -> bool {
        let mut reps = t.replicas.lock();
        let r = reps.at(node);
        if r.in_use > 0 || r.storage.is_none() {
            return false;
        }
        let sole_copy = r.state.is_valid() && reps.valid_count() == 1;
        if sole_copy {
            if self.ensure_host_storage(t, &mut reps).is_err()
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

    /// The device behind `node` is gone: every replica there is invalid
    /// and its buffers are forgotten. A tensor whose only valid copy was
    /// there is poisoned with `cause`, charged to `task`; tensors with a
    /// valid copy elsewhere stay readable.
    pub fn lose_node(&self, node: NodeId, task: u64, cause: &Error) {
        let n = &self.nodes[node];
        if node == HOST || n.lost.swap(true, Ordering::AcqRel) {
            return;
        }
        let residents = n.pool.lock().lose_everything();
        for t in residents.iter().filter_map(|w| w.upgrade()) {
            let mut reps = t.replicas.lock();
            let r = reps.at(node);
            let was_valid = r.state.is_valid();
            r.state = ReplicaState::Invalid;
            r.storage = None;
            if was_valid && reps.valid_count() == 0 {
                t.poison.replace(Some((task, cause.clone())));
            }
        }
        n.room.notify_all();
    }

    fn lost_error(&self, node: NodeId) -> Error {
        Error::DeviceLost {
            backend: self.nodes[node].name.clone(),
            message: format!("memory node {node} is gone"),
        }
    }

    /// Copies `t` from `src` to `dst` and records each copy: between two
    /// devices directly where their backend can, else through the host.
    fn copy(
        &self,
        t: &Arc<TensorInner>,
        reps: &mut ReplicaSet,
        src: NodeId,
        dst: NodeId,
    ) -> Result<()> {
        if src != HOST && dst != HOST {
            let start = (Instant::now(), self.clock.ticks());
            if let Some(copied) = self.copy_between_devices(t, reps, src, dst) {
                copied?;
                self.copied(t, reps, src, dst, start, true);
                return Ok(());
            }
            self.ensure_host_storage(t, reps)?;
            self.copy(t, reps, src, HOST)?;
            return self.copy(t, reps, HOST, dst);
        }
        if dst == HOST {
            self.detach_viewed_host(reps)?;
        }
        let bytes = t.nbytes();
        let start = (Instant::now(), self.clock.ticks());
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
        self.copied(t, reps, src, dst, start, false);
        Ok(())
    }

    /// Copies `t` between two device nodes of one backend without the
    /// host, if that backend can; `None` if it cannot.
    fn copy_between_devices(
        &self,
        t: &TensorInner,
        reps: &mut ReplicaSet,
        src: NodeId,
        dst: NodeId,
    ) -> Option<Result<()>> {
        let (from, _) = self.device(src).ok()?;
        let (to, _) = self.device(dst).ok()?;
        if !Arc::ptr_eq(from, to) {
            return None;
        }
        let source = reps.at(src).storage.clone();
        match (source, &reps.at(dst).storage) {
            (Some(Storage::Device(s)), Some(Storage::Device(d))) => from.copy(&s, d, t.nbytes()),
            _ => None,
        }
    }

    /// Counts and records a copy of `t` from `src` to `dst` begun at
    /// `start` (instant, clock ticks), and marks `dst`'s replica valid.
    fn copied(
        &self,
        t: &TensorInner,
        reps: &mut ReplicaSet,
        src: NodeId,
        dst: NodeId,
        start: (Instant, u64),
        direct: bool,
    ) {
        let bytes = t.nbytes();
        let seconds = start.0.elapsed().as_secs_f64();
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
            direct,
            peer: None,
        };
        self.nodes[dst].transfers_in.fetch_add(1, Ordering::Relaxed);
        if let Some(models) = &self.models {
            models.observe_transfer(src, dst, bytes, seconds);
        }
        if let Some(r) = &self.recording {
            r.transfer(transfer, start.1);
        }
        reps.share(dst);
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
                Some(Storage::Host(h)) if !h.is_slice() => {
                    let mut pool = self.nodes[HOST].pool.lock();
                    pool.used = pool.used.saturating_sub(h.len());
                }
                Some(Storage::Device(d)) => {
                    let n = &self.nodes[node];
                    let mut pool = n.pool.lock();
                    pool.forget(id);
                    pool.put_free(d);
                    n.room.notify_all();
                }
                Some(Storage::Host(_)) | None => {}
            }
        }
        if let Some(r) = &self.recording {
            r.forget(id);
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
                    transfers_in: n.transfers_in.load(Ordering::Relaxed),
                    bytes_copied: n.bytes_copied.load(Ordering::Relaxed),
                    pinned: pool.pinned,
                    lost: n.lost.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Bytes the device behind `node` reports taken, where its API tells.
    pub fn device_reported(&self, node: NodeId) -> Option<u64> {
        let (backend, index) = self.nodes.get(node)?.device.as_ref()?;
        backend.device_memory_in_use(*index)
    }

    /// The transfers the profile kept, in order (none without profiling).
    pub fn transfers(&self) -> Vec<Transfer> {
        self.recording
            .as_ref()
            .map(|r| r.transfers(self.clock).0)
            .unwrap_or_default()
    }
}

impl MemoryNode {
    fn new(name: String, capacity: usize, device: Option<(Arc<dyn Backend>, usize)>) -> MemoryNode {
        MemoryNode {
            name,
            capacity,
            device,
            pool: Mutex::new(NodePool::default()),
            room: Condvar::new(),
            lost: AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            transfers_in: AtomicU64::new(0),
            bytes_copied: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            write_backs: AtomicU64::new(0),
        }
    }
}

/// What making a replica valid copied: bytes, and the node they came from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fetched {
    pub bytes: usize,
    pub from: Option<NodeId>,
}
