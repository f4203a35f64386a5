//! Where workers write what they ran: one bounded buffer per unit, written
//! only by that unit's worker (its lock is never contended on the hot path;
//! readers take it briefly to copy a snapshot).

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::ring::RecordRing;
use crate::kernel::Kernel;
use crate::perfmodel::Footprint;
use crate::power::PowerState;
use crate::unit::UnitId;

/// One task as a worker saw it; times are readings of the runtime's
/// [`Clock`](super::Clock).
#[derive(Clone)]
pub(crate) struct TaskRecord {
    pub id: u64,
    pub kernel: Kernel,
    pub unit: UnitId,
    pub submitted: u64,
    pub ready: u64,
    pub start: u64,
    pub end: u64,
    pub ok: bool,
    pub flops: f64,
    pub bytes_fetched: u64,
    /// The nodes those bytes came from, a bit per node.
    pub fetched_from: u64,
    /// What its run time depends on, where it was worked out.
    pub footprint: Option<Footprint>,
    /// The predecessor whose completion made this task ready (0: it was
    /// ready when submitted).
    pub released_by: u64,
    /// The tensors it accessed, in argument order.
    pub tensors: SmallVec<[u64; 4]>,
    /// The power state its unit ran it in.
    pub power: PowerState,
}

pub(crate) struct Recorder {
    on: bool,
    units: Vec<CachePadded<Mutex<RecordRing<TaskRecord>>>>,
}

impl Recorder {
    /// A recorder keeping `capacity` records per unit, or none when `None`.
    pub fn new(units: usize, capacity: Option<usize>) -> Recorder {
        Recorder {
            on: capacity.is_some(),
            units: (0..units)
                .map(|_| CachePadded::new(Mutex::new(RecordRing::new(capacity.unwrap_or(1)))))
                .collect(),
        }
    }

    /// Whether tasks are recorded.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Appends a finished task to its unit's buffer.
    #[inline]
    pub fn record(&self, record: TaskRecord) {
        if let Some(buffer) = self.units.get(record.unit) {
            buffer.lock().push(record);
        }
    }

    /// Forgets every record and returns their memory.
    pub fn clear(&self) {
        for b in &self.units {
            b.lock().clear();
        }
    }

    /// Every task recorded and kept so far, ordered by start time, and how
    /// many older ones were dropped to stay within the capacity.
    pub fn snapshot(&self) -> (Vec<TaskRecord>, u64) {
        let mut dropped = 0;
        let mut all = Vec::new();
        for b in &self.units {
            let b = b.lock();
            dropped += b.dropped();
            all.extend(b.iter().cloned());
        }
        all.sort_by_key(|r| (r.start, r.id));
        (all, dropped)
    }
}
