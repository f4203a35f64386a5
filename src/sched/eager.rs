//! `eager`: one shared queue; any capable unit takes the oldest task it can run.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{stranded, Placeable, PriorityQueue, QueueLengths, SchedPolicy};
use crate::unit::{UnitHealth, UnitId};

/// How far a unit looks past tasks it cannot run.
const SCAN: usize = 64;

pub(crate) struct Eager<T> {
    health: Arc<UnitHealth>,
    priority: PriorityQueue<T>,
    queue: Mutex<VecDeque<Arc<T>>>,
}

impl<T> Eager<T> {
    pub fn new(health: Arc<UnitHealth>) -> Eager<T> {
        Eager {
            health,
            priority: PriorityQueue::default(),
            queue: Mutex::new(VecDeque::new()),
        }
    }
}

impl<T: Placeable> SchedPolicy<T> for Eager<T> {
    fn push(&self, task: Arc<T>, _from: Option<UnitId>) -> Option<UnitId> {
        if let Some(task) = self.priority.offer(task) {
            self.queue.lock().push_back(task);
        }
        None
    }

    fn pop(&self, unit: UnitId) -> Option<Arc<T>> {
        if let Some(t) = self.priority.pop(unit) {
            return Some(t);
        }
        let mut q = self.queue.lock();
        let pos = q
            .iter()
            .take(SCAN)
            .position(|t| t.eligible().contains(unit))?;
        q.remove(pos)
    }

    fn drain(&self, _unit: UnitId) -> Vec<Arc<T>> {
        // One shared queue: a unit out of service stops taking from it, and
        // only what no unit in service can run is taken out.
        let mut gone = self.priority.drain_stranded(&self.health);
        let mut q = self.queue.lock();
        if q.iter().any(|t| stranded(&**t, &self.health)) {
            let (out, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut *q)
                .into_iter()
                .partition(|t| stranded(&**t, &self.health));
            *q = kept;
            gone.extend(out);
        }
        gone
    }

    fn queued(&self, units: usize) -> QueueLengths {
        QueueLengths {
            per_unit: vec![0; units],
            shared: self.queue.lock().len() + self.priority.len(),
        }
    }
}
