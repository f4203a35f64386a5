//! Where workers write what they ran: one buffer per unit, written only by
//! that unit's worker (its lock is never contended on the hot path; readers
//! take it briefly to copy a snapshot).

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use crate::kernel::Kernel;
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
    /// The predecessor whose completion made this task ready (0: it was
    /// ready when submitted).
    pub released_by: u64,
}

/// Records per buffer chunk: chunks are filled and kept, never moved, so
/// the buffer grows without copying, and clearing keeps them for reuse.
const CHUNK: usize = 4096;

/// One unit's records: full chunks, then the one being filled.
#[derive(Default)]
struct Buffer {
    chunks: Vec<Vec<TaskRecord>>,
    /// Index of the chunk being filled.
    current: usize,
}

pub(crate) struct Recorder {
    on: bool,
    units: Vec<CachePadded<Mutex<Buffer>>>,
}

impl Recorder {
    pub fn new(units: usize, on: bool) -> Recorder {
        Recorder {
            on,
            units: (0..units)
                .map(|_| CachePadded::new(Mutex::new(Buffer::default())))
                .collect(),
        }
    }

    /// Whether tasks are recorded.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Appends a finished task to its unit's buffer.
    pub fn record(&self, record: TaskRecord) {
        let Some(buffer) = self.units.get(record.unit) else {
            return;
        };
        let mut b = buffer.lock();
        if b.chunks.get(b.current).is_some_and(|c| c.len() == CHUNK) {
            b.current += 1;
        }
        if b.current == b.chunks.len() {
            b.chunks.push(Vec::with_capacity(CHUNK));
        }
        let current = b.current;
        b.chunks[current].push(record);
    }

    /// Forgets every record.
    pub fn clear(&self) {
        for b in &self.units {
            let mut b = b.lock();
            b.chunks.iter_mut().for_each(Vec::clear);
            b.current = 0;
        }
    }

    /// Every task recorded so far, ordered by start time.
    pub fn snapshot(&self) -> Vec<TaskRecord> {
        let mut all: Vec<TaskRecord> = self
            .units
            .iter()
            .flat_map(|b| b.lock().chunks.concat())
            .collect();
        all.sort_by_key(|r| (r.start, r.id));
        all
    }
}
