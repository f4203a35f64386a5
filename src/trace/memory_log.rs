//! What the profile records of memory: every copy between memory nodes,
//! every allocation and eviction, and the names of named tensors; and the
//! bounded streams the memory manager writes them to while profiling (the
//! totals a long-running process needs are counters on the nodes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Clock, RecordRing};
use crate::unit::NodeId;

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
    /// Copied from one device to the other without the host (two units
    /// of one backend that can: OpenCL units on one context). A copy
    /// between two devices that cannot is two transfers, through the host.
    #[serde(default)]
    pub direct: bool,
    /// For a copy between ranks of one graph (`xpu::cluster::ranks`):
    /// the other rank, and which way it went. `from` and `to` are then
    /// this rank's host memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerCopy>,
}

/// The far side of a copy between ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerCopy {
    /// The rank the tensor went to or came from.
    pub rank: usize,
    /// Sent to `rank` (else received from it).
    pub sent: bool,
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

/// The recorded streams, read into a profile.
pub(crate) struct MemoryLog {
    pub transfers: Vec<Transfer>,
    pub events: Vec<MemoryEvent>,
    pub dropped_transfers: u64,
    pub dropped_events: u64,
    pub tensor_names: BTreeMap<u64, String>,
}

/// The streams as they are written: each behind its own lock, events one
/// stream per node so that nodes never contend.
pub(crate) struct Recording {
    capacity: usize,
    transfers: Mutex<RecordRing<(Transfer, u64)>>,
    events: Vec<Mutex<RecordRing<(MemoryEvent, u64)>>>,
    /// Names of live named tensors.
    names: Mutex<HashMap<u64, Arc<str>>>,
    /// Names of named tensors dropped since the last clear, so that a
    /// profile still names them.
    dropped_names: Mutex<RecordRing<(u64, Arc<str>)>>,
}

impl Recording {
    pub fn new(capacity: usize) -> Recording {
        Recording {
            capacity,
            transfers: Mutex::new(RecordRing::new(capacity)),
            events: vec![Mutex::new(RecordRing::new(capacity))],
            names: Mutex::new(HashMap::new()),
            dropped_names: Mutex::new(RecordRing::new(capacity)),
        }
    }

    /// One more memory node.
    pub fn add_node(&mut self) {
        self.events.push(Mutex::new(RecordRing::new(self.capacity)));
    }

    pub fn transfer(&self, transfer: Transfer, ticks: u64) {
        self.transfers.lock().push((transfer, ticks));
    }

    pub fn event(&self, event: MemoryEvent, ticks: u64) {
        if let Some(ring) = self.events.get(event.node) {
            ring.lock().push((event, ticks));
        }
    }

    pub fn name(&self, tensor: u64, name: &str) {
        self.names.lock().insert(tensor, Arc::from(name));
    }

    /// A tensor was dropped: its name is kept for the profile until cleared.
    pub fn forget(&self, tensor: u64) {
        if let Some(name) = self.names.lock().remove(&tensor) {
            self.dropped_names.lock().push((tensor, name));
        }
    }

    /// Forgets every record and returns their memory.
    pub fn clear(&self) {
        self.transfers.lock().clear();
        for e in &self.events {
            e.lock().clear();
        }
        self.dropped_names.lock().clear();
    }

    /// Every transfer kept, in order, with times from `clock`.
    pub fn transfers(&self, clock: Clock) -> (Vec<Transfer>, u64) {
        let seconds = clock.seconds();
        let ring = self.transfers.lock();
        let list = ring
            .iter()
            .map(|&(t, ticks)| Transfer {
                at: seconds(ticks),
                ..t
            })
            .collect();
        (list, ring.dropped())
    }

    /// Everything kept, with times from `clock`.
    pub fn log(&self, clock: Clock) -> MemoryLog {
        let seconds = clock.seconds();
        let (transfers, dropped_transfers) = self.transfers(clock);
        let mut events = Vec::new();
        let mut dropped_events = 0;
        for ring in &self.events {
            let ring = ring.lock();
            dropped_events += ring.dropped();
            events.extend(ring.iter().map(|&(e, ticks)| MemoryEvent {
                at: seconds(ticks),
                ..e
            }));
        }
        events.sort_by(|a, b| a.at.total_cmp(&b.at));
        let mut tensor_names: BTreeMap<u64, String> = self
            .dropped_names
            .lock()
            .iter()
            .map(|(id, name)| (*id, name.to_string()))
            .collect();
        for (id, name) in self.names.lock().iter() {
            tensor_names.insert(*id, name.to_string());
        }
        MemoryLog {
            transfers,
            events,
            dropped_transfers,
            dropped_events,
            tensor_names,
        }
    }
}
