//! Where workers write what they ran: one buffer per unit, written only by
//! that unit's worker (its lock is never contended on the hot path; readers
//! take it briefly to copy a snapshot).

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::kernel::Kernel;
use crate::unit::UnitId;

/// One task as a worker saw it; times in nanoseconds since the runtime
/// started.
#[derive(Clone)]
pub(crate) struct TaskRecord {
    pub id: u64,
    pub kernel: Kernel,
    pub unit: UnitId,
    pub submitted_ns: u64,
    pub ready_ns: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub ok: bool,
    pub flops: f64,
    pub bytes_fetched: u64,
    /// The predecessor whose completion made this task ready (0: it was
    /// ready when submitted).
    pub released_by: u64,
}

pub(crate) struct Recorder {
    on: bool,
    units: Vec<CachePadded<Mutex<Vec<TaskRecord>>>>,
}

impl Recorder {
    pub fn new(units: usize, on: bool) -> Recorder {
        Recorder {
            on,
            units: (0..units)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
        }
    }

    /// Whether tasks are recorded.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Appends a finished task to its unit's buffer.
    pub fn record(&self, record: TaskRecord) {
        if let Some(buffer) = self.units.get(record.unit) {
            buffer.lock().push(record);
        }
    }

    /// Every task recorded so far, ordered by start time.
    pub fn snapshot(&self) -> Vec<TaskRecord> {
        let mut all: Vec<TaskRecord> = self.units.iter().flat_map(|b| b.lock().clone()).collect();
        all.sort_by_key(|r| (r.start_ns, r.id));
        all
    }
}
