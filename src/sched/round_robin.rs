//! `round-robin`: ready tasks are dealt to capable units in turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_deque::{Injector, Steal};

use super::{next_eligible, Placeable, PriorityQueue, QueueLengths, SchedPolicy};
use crate::unit::{UnitHealth, UnitId};

pub(crate) struct RoundRobin<T> {
    health: Arc<UnitHealth>,
    priority: PriorityQueue<T>,
    next: AtomicUsize,
    queues: Vec<Injector<Arc<T>>>,
}

impl<T> RoundRobin<T> {
    pub fn new(health: Arc<UnitHealth>) -> RoundRobin<T> {
        let units = health.len();
        RoundRobin {
            health,
            priority: PriorityQueue::default(),
            next: AtomicUsize::new(0),
            queues: (0..units).map(|_| Injector::new()).collect(),
        }
    }
}

/// For a unit out of service: the tasks no unit in service can run, and
/// everything in its own queue.
pub(crate) fn drain_unit<T: Placeable>(
    priority: &PriorityQueue<T>,
    health: &UnitHealth,
    own: &Injector<Arc<T>>,
) -> Vec<Arc<T>> {
    let mut gone = priority.drain_stranded(health);
    gone.extend(std::iter::from_fn(|| steal_one(own)));
    gone
}

/// Takes one task from `q`, retrying while the queue is being changed.
pub(crate) fn steal_one<E>(q: &Injector<E>) -> Option<E> {
    loop {
        match q.steal() {
            Steal::Success(t) => return Some(t),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

impl<T: Placeable> SchedPolicy<T> for RoundRobin<T> {
    fn push(&self, task: Arc<T>, _from: Option<UnitId>) -> Option<UnitId> {
        // A prioritised task waits in the shared queue: any unit takes it.
        let task = self.priority.offer(task)?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Eligibility is checked at submit, so some unit matches; if all
        // that match went out of service since, the first one's worker
        // fails the task.
        let unit = next_eligible(&*task, start, self.queues.len(), &self.health)
            .or_else(|| task.eligible().iter().next())
            .unwrap_or(0);
        self.queues[unit].push(task);
        Some(unit)
    }

    fn pop(&self, unit: UnitId) -> Option<Arc<T>> {
        self.priority
            .pop(unit)
            .or_else(|| steal_one(&self.queues[unit]))
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
