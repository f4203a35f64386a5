//! `work-stealing`: a queue per unit. A task made ready by a unit's own work
//! stays on that unit (its inputs are likely there); idle units steal from
//! the others, oldest first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_deque::Injector;

use super::round_robin::{drain_unit, steal_one};
use super::{next_eligible, PriorityQueue, QueueLengths, SchedPolicy};
use crate::graph::TaskNode;
use crate::unit::{UnitHealth, UnitId};

pub(crate) struct WorkStealing {
    health: Arc<UnitHealth>,
    priority: PriorityQueue,
    next: AtomicUsize,
    queues: Vec<Injector<Arc<TaskNode>>>,
}

impl WorkStealing {
    pub fn new(health: Arc<UnitHealth>) -> WorkStealing {
        let units = health.len();
        WorkStealing {
            health,
            priority: PriorityQueue::default(),
            next: AtomicUsize::new(0),
            queues: (0..units).map(|_| Injector::new()).collect(),
        }
    }
}

impl SchedPolicy for WorkStealing {
    fn push(&self, task: Arc<TaskNode>, from: Option<UnitId>) -> Option<UnitId> {
        // A prioritised task waits in the shared queue: any unit takes it.
        let task = self.priority.offer(task)?;
        let unit = match from {
            Some(u) if task.eligible.contains(u) && !self.health.is_down(u) => u,
            _ => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                next_eligible(&task, start, self.queues.len(), &self.health)
                    .or_else(|| task.eligible.iter().next())
                    .unwrap_or(0)
            }
        };
        self.queues[unit].push(task);
        // Any idle unit may steal it.
        None
    }

    fn pop(&self, unit: UnitId) -> Option<Arc<TaskNode>> {
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
                if t.eligible.contains(unit) {
                    return Some(t);
                }
                // Not ours to run: put it back where it came from.
                self.queues[victim].push(t);
            }
        }
        None
    }

    fn drain(&self, unit: UnitId) -> Vec<Arc<TaskNode>> {
        drain_unit(&self.priority, &self.health, &self.queues[unit])
    }

    fn queued(&self, _units: usize) -> QueueLengths {
        QueueLengths {
            per_unit: self.queues.iter().map(Injector::len).collect(),
            shared: self.priority.len(),
        }
    }
}
