//! The state a runtime's handle and its workers share: units, policy,
//! memory, counters, the profile's recorder, and the parking and waking of
//! workers and waiters. The workers own it; the runtime's handle submits
//! through it, and the monitor reads snapshots of it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::sync::{Parker, Unparker};
use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use super::prefetch::Prefetcher;
use crate::backend::{Backend, BackendStatus};
use crate::error::Error;
use crate::error::Result;
use crate::graph::{TaskNode, UnitSet};
use crate::history::{unit_identity, RunHistory, TaskStore};
use crate::memory::MemoryManager;
use crate::monitor::RuntimeSnapshot;
use crate::perfmodel::PerfModels;
use crate::power::{EnergyProfiles, PowerLedger};
use crate::profile::{UnitCounters, UnitReport};
use crate::sched::{Policy, SchedClock, SchedPolicy, Slowdown, UnitPlace};
use crate::trace::{Clock, Recorder};
use crate::unit::{UnitHealth, UnitId, UnitInfo, UnitKind, HOST};

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

/// State shared by the runtime handle and its workers.
pub(crate) struct Shared {
    pub id: u64,
    pub policy_kind: Policy,
    pub policy: Box<dyn SchedPolicy>,
    pub units: Vec<UnitInfo>,
    /// Which units are out of service.
    pub health: Arc<UnitHealth>,
    pub unit_backends: Vec<(Arc<dyn Backend>, usize)>,
    pub statuses: Vec<BackendStatus>,
    pub memory: Arc<MemoryManager>,
    /// Moves a queued task's inputs to its unit early (policies that
    /// place ahead of time, on machines with device memory).
    pub prefetcher: Option<Prefetcher>,
    /// What placement predicts with; fed by the workers when the policy
    /// uses it.
    pub models: Arc<PerfModels>,
    /// The history file this run loads models from and stores into.
    pub history: Option<RunHistory>,
    /// Whether workers measure each task for the models: the policy uses
    /// them, or a history keeps them.
    pub measuring: bool,
    pub counters: UnitCounters,
    /// Power states, busy time per state, changes and energy profiles.
    pub power: PowerLedger,
    /// How long a unit stays idle before it is gated (`None`: never).
    pub gate_after: Option<Duration>,
    pub recorder: Recorder,
    /// The clock of every recorded time.
    pub clock: Clock,
    next_task: CachePadded<AtomicU64>,
    /// Scheduled tasks submitted so far.
    submitted: CachePadded<AtomicU64>,
    /// Tasks each unit finished; only that unit's worker writes its counter,
    /// so submitting and finishing never contend on one cache line.
    finished: Vec<CachePadded<AtomicU64>>,
    sleepers: CachePadded<AtomicUsize>,
    pub sleeping: Vec<AtomicBool>,
    unparkers: Vec<Unparker>,
    pub shutdown: AtomicBool,
    waiters: CachePadded<AtomicUsize>,
    event_lock: Mutex<()>,
    event: Condvar,
    pub started: Instant,
}

/// What a runtime keeps account of besides its counters: task records
/// (their capacity per stream, or none), the task history, the energy
/// profiles its energy is modelled with, and how long a unit stays idle
/// before it is gated (`None`: never).
pub(crate) struct Accounts {
    pub recording: Option<usize>,
    pub history: Option<Arc<dyn TaskStore>>,
    pub energy: EnergyProfiles,
    pub gate_after: Option<Duration>,
    /// The energy policy's bound.
    pub slowdown: Slowdown,
}

impl Shared {
    /// The state of a runtime over `units` (backed by `unit_backends`),
    /// and a parker per unit for its worker.
    pub fn new(
        policy: Policy,
        units: Vec<UnitInfo>,
        unit_backends: Vec<(Arc<dyn Backend>, usize)>,
        statuses: Vec<BackendStatus>,
        memory: MemoryManager,
        Accounts {
            recording,
            history,
            energy,
            gate_after,
            slowdown,
        }: Accounts,
    ) -> Result<(Arc<Shared>, Vec<Parker>)> {
        let n = units.len();
        let health = Arc::new(UnitHealth::new(&units));
        let shares = crate::sched::shared_devices(units.iter().map(|u| u.resource.as_deref()));
        let power = PowerLedger::new(n, energy);
        let places: Vec<UnitPlace> = units
            .iter()
            .zip(shares)
            .map(|(u, shares)| {
                let (profile, idle_is_own) = power.profile_of(u);
                UnitPlace {
                    node: u.node,
                    host_cores: u.host_cores,
                    is_cpu: u.kind == UnitKind::Cpu,
                    shares,
                    idle_watts: if idle_is_own { profile.idle_watts } else { 0.0 },
                    energy: Arc::new(profile.clone()),
                }
            })
            .collect();
        let models = Arc::new(PerfModels::new(n, memory.node_count()));
        let mut memory = memory;
        memory.feed_models(models.clone());
        let history = match history {
            Some(store) => {
                let identities = units
                    .iter()
                    .zip(&unit_backends)
                    .map(|(u, (_, local))| {
                        unit_identity(&u.backend, &u.kind.to_string(), &u.device, *local)
                    })
                    .collect();
                let nodes = memory.stats().into_iter().map(|n| n.name).collect();
                Some(RunHistory::attach(store, identities, nodes, &models)?)
            }
            None => None,
        };
        let parkers: Vec<Parker> = (0..n).map(|_| Parker::new()).collect();
        let memory = Arc::new(memory);
        let prefetcher = if policy.prefetches() && units.iter().any(|u| u.node != HOST) {
            Some(
                Prefetcher::start(memory.clone())
                    .map_err(|e| Error::Config(format!("cannot start the prefetch thread: {e}")))?,
            )
        } else {
            None
        };
        let shared = Arc::new(Shared {
            id: NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed),
            policy_kind: policy,
            policy: policy.build(
                health.clone(),
                models.clone(),
                places,
                SchedClock::wall(memory.clock()),
                slowdown,
            ),
            models,
            measuring: policy.uses_models() || history.is_some(),
            history,
            units,
            health,
            unit_backends,
            statuses,
            counters: UnitCounters::new(n),
            power,
            gate_after,
            recorder: Recorder::new(n, recording),
            clock: memory.clock(),
            next_task: CachePadded::new(AtomicU64::new(1)),
            submitted: CachePadded::new(AtomicU64::new(0)),
            finished: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            sleeping: (0..n).map(|_| AtomicBool::new(false)).collect(),
            unparkers: parkers.iter().map(|p| p.unparker().clone()).collect(),
            shutdown: AtomicBool::new(false),
            waiters: CachePadded::new(AtomicUsize::new(0)),
            event_lock: Mutex::new(()),
            event: Condvar::new(),
            started: memory.clock().start(),
            memory,
            prefetcher,
        });
        Ok((shared, parkers))
    }

    /// A fresh task id.
    pub fn next_task_id(&self) -> u64 {
        self.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// One more scheduled task to wait for.
    pub fn count_submission(&self) {
        self.submitted.fetch_add(1, Ordering::AcqRel);
    }
    /// Hands a ready task to the policy (or wakes its waiter) and wakes a
    /// sleeping capable unit if there is one.
    pub fn make_ready(&self, task: Arc<TaskNode>, from: Option<UnitId>) {
        if task.inline {
            // Pairs with the fence in `External::end`: an external task
            // its holder ended before it was ready ends now.
            std::sync::atomic::fence(Ordering::SeqCst);
            if task.is_done() {
                crate::external::finish_ended(self, &task);
            } else {
                self.notify();
            }
            return;
        }
        // The common case, nobody asleep, copies nothing; a unit that fell
        // asleep while the task was pushed is woken without knowing the task.
        let eligible = (self.sleepers.load(Ordering::SeqCst) > 0).then(|| task.eligible.clone());
        let prefetched = self.prefetcher.as_ref().map(|p| (p, Arc::downgrade(&task)));
        let queued_for = self.policy.push(task, from);
        std::sync::atomic::fence(Ordering::SeqCst);
        if let (Some(unit), Some((prefetcher, task))) = (queued_for, prefetched) {
            let node = self.units[unit].node;
            // A unit with nothing running starts the task at once and
            // fetches for itself: a prefetch would only race it.
            if node != HOST && self.policy.is_running(unit) {
                if let Some(task) = task.upgrade() {
                    prefetcher.request(&task, node);
                }
            }
        }
        match (queued_for, eligible) {
            (Some(unit), _) => {
                // Only that unit takes it: wake it if it sleeps (read
                // first: the flag's cache line stays shared while the unit
                // is awake, the common case).
                let flag = &self.sleeping[unit];
                if flag.load(Ordering::SeqCst) && flag.swap(false, Ordering::SeqCst) {
                    self.unpark(unit);
                }
            }
            (None, Some(units)) => self.wake(&units),
            (None, None) if self.sleepers.load(Ordering::SeqCst) > 0 => self.wake_any(),
            (None, None) => {}
        }
    }

    fn wake(&self, eligible: &UnitSet) {
        for u in eligible.iter() {
            if self.sleeping[u].swap(false, Ordering::SeqCst) {
                self.unpark(u);
                return;
            }
        }
    }

    fn wake_any(&self) {
        for (u, s) in self.sleeping.iter().enumerate() {
            if s.swap(false, Ordering::SeqCst) {
                self.unpark(u);
            }
        }
    }

    /// A worker is about to park.
    pub fn going_to_sleep(&self, unit: UnitId) {
        self.sleeping[unit].store(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
    }

    /// A worker woke up.
    pub fn woke_up(&self, unit: UnitId) {
        self.sleeping[unit].store(false, Ordering::SeqCst);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Called by `unit`'s worker when a task finished: wakes whoever waits
    /// for it or for all tasks.
    pub fn task_done(&self, unit: UnitId, task: &TaskNode) {
        let count = &self.finished[unit];
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Release);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0
            && (task.watched.load(Ordering::Acquire) || self.all_done())
        {
            self.notify();
        }
    }

    /// Tasks submitted to the policy so far.
    pub fn submitted(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// The runtime at this moment, for observers.
    pub fn snapshot(&self) -> RuntimeSnapshot {
        let nodes = self.memory.stats();
        RuntimeSnapshot {
            units: self.units.clone(),
            reports: self.unit_reports(),
            queued: self.policy.queued(self.units.len()),
            device_reported: nodes
                .iter()
                .map(|n| self.memory.device_reported(n.node))
                .collect(),
            nodes,
            submitted: self.submitted(),
            energy: self
                .power
                .report(&self.units, self.started.elapsed().as_secs_f64()),
            at: self.started.elapsed().as_secs_f64(),
        }
    }

    /// What each unit did so far.
    pub fn unit_reports(&self) -> Vec<UnitReport> {
        let wall = self.started.elapsed().as_secs_f64();
        self.units
            .iter()
            .map(|u| self.counters.report(u, wall))
            .collect()
    }

    /// True when every submitted task has finished.
    pub fn all_done(&self) -> bool {
        let submitted = self.submitted.load(Ordering::Acquire);
        let finished: u64 = self
            .finished
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .sum();
        finished >= submitted
    }

    fn notify(&self) {
        let _guard = self.event_lock.lock();
        self.event.notify_all();
    }

    /// Blocks until `done()` holds.
    pub fn wait_until(&self, done: impl Fn() -> bool) {
        if done() {
            return;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.event_lock.lock();
        while !done() {
            // The timeout only guards against a missed notification.
            self.event.wait_for(&mut guard, Duration::from_millis(20));
        }
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes `unit`'s worker if it sleeps (to apply a power state).
    pub fn wake_unit(&self, unit: UnitId) {
        if self.sleeping[unit].swap(false, Ordering::SeqCst) {
            self.unpark(unit);
        }
    }

    /// Unparks `unit`'s worker, noting when, if it is gated, so that its
    /// wake-up latency can be measured.
    fn unpark(&self, unit: UnitId) {
        if self.power.is_gated(unit) {
            self.power.wake_asked(unit, self.started.elapsed());
        }
        self.unparkers[unit].unpark();
    }

    pub fn wake_all_workers(&self) {
        for u in &self.unparkers {
            u.unpark();
        }
    }

    /// `unit`'s device reported itself lost while running `task`: the unit
    /// takes no more tasks, its memory's replicas are given up, and every
    /// worker is woken so that the queued tasks move elsewhere.
    pub fn take_out_of_service(&self, unit: UnitId, task: u64, cause: &Error) {
        if self.health.mark_down(unit, cause.to_string()) {
            let node = self.units[unit].node;
            let shares_node = self
                .units
                .iter()
                .any(|u| u.id != unit && u.node == node && !self.health.is_down(u.id));
            if !shares_node {
                self.memory.lose_node(node, task, cause);
            }
            self.wake_all_workers();
        }
    }
}
