//! `work-stealing`: a queue per unit. A task made ready by a unit's own work
//! stays on that unit (its inputs are likely there); idle units steal from
//! the others, oldest first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_deque::Injector;

use super::round_robin::{drain_unit, steal_one};
use super::{next_eligible, Placeable, PriorityQueue, QueueLengths, SchedPolicy};
use crate::unit::{UnitHealth, UnitId};

pub(crate) struct WorkStealing<T> {
    health: Arc<UnitHealth>,
    priority: PriorityQueue<T>,
    next: AtomicUsize,
    queues: Vec<Injector<Arc<T>>>,
}

impl<T> WorkStealing<T> {
    pub fn new(health: Arc<UnitHealth>) -> WorkStealing<T> {
        let units = health.len();
        WorkStealing {
            health,
            priority: PriorityQueue::default(),
            next: AtomicUsize::new(0),
            queues: (0..units).map(|_| Injector::new()).collect(),
        }
    }
}

impl<T: Placeable> SchedPolicy<T> for WorkStealing<T> {
    fn push(&self, task: Arc<T>, from: Option<UnitId>) -> Option<UnitId> {
        // A prioritised task waits in the shared queue: any unit takes it.
        let task = self.priority.offer(task)?;
        let unit = match from {
            Some(u) if task.eligible().contains(u) && !self.health.is_down(u) => u,
            _ => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                next_eligible(&*task, start, self.queues.len(), &self.health)
                    .or_else(|| task.eligible().iter().next())
                    .unwrap_or(0)
            }
        };
        self.queues[unit].push(task);
        // Any idle unit may steal it.
        None
    }

    fn pop(&self, unit: UnitId) -> Option<Arc<T>> {
        if let Some(t) = self
            .priority
            .pop(unit)
            .or_else(|| steal_one(&self.queues[unit]))
        {
            return Some(t);
        }
        let n = self.queues.len();
        for victim in (1..n).map(|i| (unit + i) % n) {
            if let Some(t) = steal_one(&self.queues[victim]) {
                if t.eligible().contains(unit) {
                    return Some(t);
                }
                // Not ours to run: put it back where it came from.
                self.queues[victim].push(t);
            }
        }
        None
    }

    fn drain(&self, unit: UnitId) -> Vec<Arc<T>> {
        drain_unit(&self.priority, &self.health, &self.queues[unit])
    }

    fn queued(&self, _units: usize) -> QueueLengths {
        QueueLengths {
            per_unit: self.queues.iter().map(Injector::len).collect(),
            shared: self.priority.len(),
        }
    }
}
